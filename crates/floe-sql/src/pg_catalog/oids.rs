//! OIDs: PostgreSQL's fixed ones (namespaces, roles, system catalogs, types), and the ones
//! Floe derives for objects its catalog has no OID for (indexes, constraints, defaults).
//!
//! Tables, views, sequences, schemas and databases carry their own stable OIDs in Floe's
//! catalog. A primary key or UNIQUE constraint has no OID there, so its index and constraint
//! get a derived OID: `2^30 + (table − 16384) · 4096 + kind · 1024 + slot`, where `slot` is 0
//! for the primary key and `i + 1` for the table's `i`-th other constraint (the column number
//! for column defaults). Derived OIDs are stable across restarts and never collide with
//! allocated ones (which stay far below 2^30); they change only when an earlier constraint of
//! the same table is dropped.

use datafusion::arrow::datatypes::{DataType, Field};
use floe_storage::catalog::FIRST_USER_OID;
use floe_storage::{ColumnDef, ConstraintDef, TableDef};

use crate::types::{SqlType, PG_TYPMOD_KEY};

/// The bootstrap superuser, `postgres`.
pub(crate) const SUPERUSER_OID: u32 = 10;
/// `pg_database_owner`, owner of every database's `public` schema.
pub(crate) const DATABASE_OWNER_OID: u32 = 6171;
/// `pg_catalog`.
pub(crate) const PG_CATALOG_OID: u32 = 11;
/// `information_schema` (PostgreSQL assigns it at initdb; any OID below 16384 will do).
pub(crate) const INFORMATION_SCHEMA_OID: u32 = 13000;
/// `floe_catalog`'s namespace OID (its views are 13501…).
pub(crate) const FLOE_CATALOG_OID: u32 = 13500;
/// `pg_class` (the `classid` of relations in `pg_depend`).
pub(crate) const PG_CLASS_OID: u32 = 1259;
/// The `heap` table access method.
pub(crate) const HEAP_AM_OID: u32 = 2;
/// The `btree` index access method.
pub(crate) const BTREE_AM_OID: u32 = 403;
/// The `pg_default` tablespace.
pub(crate) const DEFAULT_TABLESPACE_OID: u32 = 1663;
/// The database's default collation.
pub(crate) const DEFAULT_COLLATION_OID: u32 = 100;
/// The `C` collation (`name` columns).
pub(crate) const C_COLLATION_OID: u32 = 950;
/// `UTF8` in `pg_database.encoding`.
pub(crate) const UTF8_ENCODING: i32 = 6;

/// What a derived OID names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derived {
    /// The index of a primary key or UNIQUE constraint.
    Index = 0,
    /// A constraint.
    Constraint = 1,
    /// A column default (`pg_attrdef`).
    Default = 2,
}

const DERIVED_BASE: u32 = 1 << 30;

/// The derived OID of `kind` number `slot` of relation `rel`.
pub(crate) fn derived_oid(rel: u32, kind: Derived, slot: u32) -> u32 {
    let rel = rel.saturating_sub(FIRST_USER_OID) & 0x3_ffff;
    DERIVED_BASE + (rel << 12) + ((kind as u32) << 10) + (slot & 0x3ff)
}

/// The relation, kind and slot a derived OID stands for.
pub(crate) fn decode_derived(oid: u32) -> Option<(u32, Derived, u32)> {
    if !(DERIVED_BASE..(1 << 31)).contains(&oid) {
        return None;
    }
    let rest = oid - DERIVED_BASE;
    let kind = match (rest >> 10) & 3 {
        0 => Derived::Index,
        1 => Derived::Constraint,
        2 => Derived::Default,
        _ => return None,
    };
    Some(((rest >> 12) + FIRST_USER_OID, kind, rest & 0x3ff))
}

/// A primary key or unique constraint as PostgreSQL shows it: an index plus a constraint.
#[derive(Debug, Clone)]
pub(crate) struct KeyInfo {
    pub slot: u32,
    pub name: String,
    pub primary: bool,
    /// Whether the index rejects duplicates.
    pub unique: bool,
    /// Column numbers (attnum).
    pub columns: Vec<i64>,
}

impl KeyInfo {
    pub(crate) fn index_oid(&self, rel: u32) -> u32 {
        derived_oid(rel, Derived::Index, self.slot)
    }
}

/// The primary key and UNIQUE constraints of `def`, each backed by an index.
pub(crate) fn keys(def: &TableDef) -> Vec<KeyInfo> {
    let mut keys = Vec::new();
    if let Some(pk) = &def.primary_key {
        keys.push(KeyInfo {
            slot: 0,
            name: pk.name.clone(),
            primary: true,
            unique: true,
            columns: pk
                .columns
                .iter()
                .filter_map(|p| def.columns.get(*p).map(|c| c.id as i64))
                .collect(),
        });
    }
    for (i, constraint) in def.constraints.iter().enumerate() {
        if let ConstraintDef::Unique { name, columns } = constraint {
            keys.push(KeyInfo {
                slot: i as u32 + 1,
                name: name.clone(),
                primary: false,
                unique: true,
                columns: columns.iter().map(|c| *c as i64).collect(),
            });
        }
    }
    keys
}

/// Every index of `def`: the constraints' ([`keys`]) and then the `CREATE INDEX`es, which get
/// derived OIDs in slots from [`STANDALONE_INDEX_SLOT`] on (by position among the table's
/// indexes).
pub(crate) fn indexes(def: &TableDef) -> Vec<KeyInfo> {
    let mut out = keys(def);
    for (i, index) in def.indexes.iter().enumerate() {
        if index.constraint {
            continue;
        }
        out.push(KeyInfo {
            slot: STANDALONE_INDEX_SLOT + i as u32,
            name: index.name.clone(),
            primary: false,
            unique: index.unique,
            columns: index.columns.iter().map(|c| *c as i64).collect(),
        });
    }
    out
}

/// First derived-OID slot of indexes that no constraint owns.
pub(crate) const STANDALONE_INDEX_SLOT: u32 = 512;

/// The column with attnum `id`.
pub(crate) fn column_by_id(def: &TableDef, id: i64) -> Option<&ColumnDef> {
    def.columns.iter().find(|c| c.id as i64 == id)
}

/// A column default as PostgreSQL prints it. Floe stores a serial column's default with the
/// sequence's schema (`nextval('public.t_id_seq'::regclass)`); PostgreSQL leaves out a schema
/// on the search path, which for `public` is the usual case.
pub(crate) fn display_default(default: &str) -> String {
    match default
        .strip_prefix("nextval('public.")
        .filter(|rest| rest.ends_with("'::regclass)"))
    {
        Some(rest) => format!("nextval('{rest}"),
        None => default.to_string(),
    }
}

/// A name as PostgreSQL prints it in generated SQL: quoted unless a plain lower-case word.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
        && !is_reserved(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Whether `word` is a keyword PostgreSQL quotes as an identifier: every keyword but the
/// unreserved ones (PostgreSQL 15's `pg_get_keywords()` with `catcode <> 'U'`).
fn is_reserved(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "between",
        "bigint",
        "binary",
        "bit",
        "boolean",
        "both",
        "case",
        "cast",
        "char",
        "character",
        "check",
        "coalesce",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "dec",
        "decimal",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "exists",
        "extract",
        "false",
        "fetch",
        "float",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "greatest",
        "group",
        "grouping",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "inout",
        "int",
        "integer",
        "intersect",
        "interval",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "least",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "national",
        "natural",
        "nchar",
        "none",
        "normalize",
        "not",
        "notnull",
        "null",
        "nullif",
        "numeric",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "out",
        "outer",
        "overlaps",
        "overlay",
        "placing",
        "position",
        "precision",
        "primary",
        "real",
        "references",
        "returning",
        "right",
        "row",
        "select",
        "session_user",
        "setof",
        "similar",
        "smallint",
        "some",
        "substring",
        "symmetric",
        "table",
        "tablesample",
        "then",
        "time",
        "timestamp",
        "to",
        "trailing",
        "treat",
        "trim",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "values",
        "varchar",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
        "xmlattributes",
        "xmlconcat",
        "xmlelement",
        "xmlexists",
        "xmlforest",
        "xmlnamespaces",
        "xmlparse",
        "xmlpi",
        "xmlroot",
        "xmlserialize",
        "xmltable",
    ];
    RESERVED.binary_search(&word).is_ok()
}

/// `pg_type` facts about a type.
#[derive(Debug, Clone)]
pub(crate) struct TypeInfo {
    pub oid: u32,
    pub typname: String,
    pub typlen: i16,
    pub typbyval: bool,
    pub typtype: &'static str,
    pub typcategory: &'static str,
    pub typalign: &'static str,
    pub typstorage: &'static str,
    pub typelem: u32,
    pub typarray: u32,
    pub typcollation: u32,
    /// Input function name stem (`int4` for `int4in`).
    pub io: String,
}

/// Floe's scalar types, in `pg_type` order.
pub(crate) const SCALAR_TYPES: [SqlType; 21] = [
    SqlType::Bool,
    SqlType::Bytea,
    SqlType::Name,
    SqlType::Int8,
    SqlType::Int2,
    SqlType::Int4,
    SqlType::Text,
    SqlType::Oid,
    SqlType::Json,
    SqlType::Float4,
    SqlType::Float8,
    SqlType::Bpchar,
    SqlType::Varchar,
    SqlType::Date,
    SqlType::Time,
    SqlType::Timestamp,
    SqlType::Timestamptz,
    SqlType::Interval,
    SqlType::Numeric,
    SqlType::Uuid,
    SqlType::Jsonb,
];

/// `pg_type` facts about one of Floe's types.
pub(crate) fn type_info(t: &SqlType) -> TypeInfo {
    let (typname, len, byval, category, align, storage) = match t {
        SqlType::Bool => ("bool", 1, true, "B", "c", "p"),
        SqlType::Bytea => ("bytea", -1, false, "U", "i", "x"),
        SqlType::Name => ("name", 64, false, "S", "c", "p"),
        SqlType::Int8 => ("int8", 8, true, "N", "d", "p"),
        SqlType::Int2 => ("int2", 2, true, "N", "s", "p"),
        SqlType::Int4 => ("int4", 4, true, "N", "i", "p"),
        SqlType::Text => ("text", -1, false, "S", "i", "x"),
        SqlType::Oid => ("oid", 4, true, "N", "i", "p"),
        SqlType::Json => ("json", -1, false, "U", "i", "x"),
        SqlType::Float4 => ("float4", 4, true, "N", "i", "p"),
        SqlType::Float8 => ("float8", 8, true, "N", "d", "p"),
        SqlType::Unknown => ("unknown", -2, false, "X", "c", "p"),
        SqlType::Void => ("void", 4, true, "P", "i", "p"),
        SqlType::Bpchar => ("bpchar", -1, false, "S", "i", "x"),
        SqlType::Varchar => ("varchar", -1, false, "S", "i", "x"),
        SqlType::Date => ("date", 4, true, "D", "i", "p"),
        SqlType::Time => ("time", 8, true, "D", "d", "p"),
        SqlType::Timestamp => ("timestamp", 8, true, "D", "d", "p"),
        SqlType::Timestamptz => ("timestamptz", 8, true, "D", "d", "p"),
        SqlType::Interval => ("interval", 16, false, "T", "d", "p"),
        SqlType::Numeric => ("numeric", -1, false, "N", "i", "m"),
        SqlType::Uuid => ("uuid", 16, false, "U", "c", "p"),
        SqlType::Jsonb => ("jsonb", -1, false, "U", "i", "x"),
        SqlType::Array(inner) => {
            let elem = type_info(inner);
            return TypeInfo {
                oid: t.oid(),
                typname: format!("_{}", elem.typname),
                typlen: -1,
                typbyval: false,
                typtype: "b",
                typcategory: "A",
                typalign: if elem.typalign == "d" { "d" } else { "i" },
                typstorage: "x",
                typelem: elem.oid,
                typarray: 0,
                typcollation: elem.typcollation,
                io: "array_".into(),
            };
        }
    };
    let collation = match t {
        SqlType::Text | SqlType::Varchar | SqlType::Bpchar => DEFAULT_COLLATION_OID,
        SqlType::Name => C_COLLATION_OID,
        _ => 0,
    };
    TypeInfo {
        oid: t.oid(),
        typname: typname.to_string(),
        typlen: len,
        typbyval: byval,
        typtype: if matches!(t, SqlType::Unknown | SqlType::Void) {
            "p"
        } else {
            "b"
        },
        typcategory: category,
        typalign: align,
        typstorage: storage,
        typelem: 0,
        typarray: t.array_oid(),
        typcollation: collation,
        io: typname.to_string(),
    }
}

/// Types of PostgreSQL's own catalogs that Floe has no values of, for `pg_type` and
/// `format_type`: (oid, typname, typlen, typbyval, typtype, typcategory).
pub(crate) const SYSTEM_TYPES: &[(u32, &str, i16, bool, &str, &str)] = &[
    (18, "char", 1, true, "b", "Z"),
    (22, "int2vector", -1, false, "b", "A"),
    (24, "regproc", 4, true, "b", "N"),
    (27, "tid", 6, false, "b", "U"),
    (28, "xid", 4, true, "b", "U"),
    (29, "cid", 4, true, "b", "U"),
    (30, "oidvector", -1, false, "b", "A"),
    (194, "pg_node_tree", -1, false, "b", "Z"),
    (705, "unknown", -2, false, "p", "X"),
    (1033, "aclitem", 12, false, "b", "U"),
    (2202, "regprocedure", 4, true, "b", "N"),
    (2205, "regclass", 4, true, "b", "N"),
    (2206, "regtype", 4, true, "b", "N"),
    (2249, "record", -1, false, "p", "P"),
    (2275, "cstring", -2, false, "p", "P"),
    (2276, "any", 4, true, "p", "P"),
    (2277, "anyarray", -1, false, "p", "P"),
    (2278, "void", 4, true, "p", "P"),
    (2279, "trigger", 4, true, "p", "P"),
    (2283, "anyelement", 4, true, "p", "P"),
    (4089, "regnamespace", 4, true, "b", "N"),
    (4096, "regrole", 4, true, "b", "N"),
];

/// The type named `name` in `pg_type` (its `typname`, e.g. `int4`, `_text`, `regclass`).
pub(crate) fn type_by_typname(name: &str) -> Option<u32> {
    for t in SCALAR_TYPES.iter() {
        if type_info(t).typname == name {
            return Some(t.oid());
        }
        let array = SqlType::Array(Box::new(t.clone()));
        if type_info(&array).typname == name {
            return Some(array.oid());
        }
    }
    SYSTEM_TYPES
        .iter()
        .find(|(_, typname, ..)| *typname == name)
        .map(|(oid, ..)| *oid)
}

/// PostgreSQL's `format_type(oid, typmod)`.
pub(crate) fn format_type(oid: u32, typmod: i32) -> String {
    match SqlType::from_oid(oid) {
        Some(SqlType::Array(inner)) => format!("{}[]", format_scalar(&inner, typmod)),
        Some(t) => format_scalar(&t, typmod),
        None => match SYSTEM_TYPES.iter().find(|(o, ..)| *o == oid) {
            Some((_, "char", ..)) => "\"char\"".into(),
            Some((_, name, ..)) => (*name).to_string(),
            None => "???".into(),
        },
    }
}

fn format_scalar(t: &SqlType, typmod: i32) -> String {
    let has_mod = typmod >= 0;
    match t {
        SqlType::Varchar if typmod >= 4 => format!("character varying({})", typmod - 4),
        SqlType::Bpchar if typmod >= 4 => format!("character({})", typmod - 4),
        SqlType::Bpchar => "bpchar".into(),
        SqlType::Numeric if typmod >= 4 => {
            let m = typmod - 4;
            format!("numeric({},{})", (m >> 16) & 0xffff, m & 0xffff)
        }
        SqlType::Time if has_mod => format!("time({typmod}) without time zone"),
        SqlType::Timestamp if has_mod => format!("timestamp({typmod}) without time zone"),
        SqlType::Timestamptz if has_mod => format!("timestamp({typmod}) with time zone"),
        other => other.name(),
    }
}

/// A column's `atttypmod`: `varchar(n)`/`char(n)` → n + 4, `numeric(p,s)` → (p << 16 | s) + 4,
/// otherwise −1.
pub(crate) fn typmod(field: &Field) -> i32 {
    let field = element_field(field);
    let Some(text) = field.metadata().get(PG_TYPMOD_KEY) else {
        return -1;
    };
    let numbers: Vec<i32> = text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    match (SqlType::from_arrow_field(field), numbers.as_slice()) {
        (SqlType::Numeric, [p]) => (p << 16) + 4,
        (SqlType::Numeric, [p, s]) => ((p << 16) | s) + 4,
        (SqlType::Varchar | SqlType::Bpchar, [n]) => n + 4,
        (SqlType::Time | SqlType::Timestamp | SqlType::Timestamptz, [p]) => *p,
        _ => -1,
    }
}

/// The element field of a list field, else the field itself.
pub(crate) fn element_field(field: &Field) -> &Field {
    match field.data_type() {
        DataType::List(inner) | DataType::LargeList(inner) => inner.as_ref(),
        _ => field,
    }
}

/// A column's PostgreSQL type.
pub(crate) fn column_type(field: &Field) -> SqlType {
    SqlType::from_arrow_field(field)
}

/// Number of array dimensions of a column.
pub(crate) fn ndims(field: &Field) -> i32 {
    match field.data_type() {
        DataType::List(_) | DataType::LargeList(_) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn derived_oids_round_trip() {
        for (rel, kind, slot) in [
            (16384, Derived::Index, 0),
            (16390, Derived::Constraint, 3),
            (99999, Derived::Default, 12),
        ] {
            let oid = derived_oid(rel, kind, slot);
            assert!(oid < (1 << 31));
            assert_eq!(decode_derived(oid), Some((rel, kind, slot)));
        }
        assert_eq!(decode_derived(16384), None);
    }

    #[test]
    fn format_type_matches_postgres() {
        assert_eq!(format_type(23, -1), "integer");
        assert_eq!(format_type(1043, 24), "character varying(20)");
        assert_eq!(format_type(1043, -1), "character varying");
        assert_eq!(format_type(1042, 5), "character(1)");
        assert_eq!(format_type(1700, ((12 << 16) | 2) + 4), "numeric(12,2)");
        assert_eq!(format_type(1007, -1), "integer[]");
        assert_eq!(format_type(2205, -1), "regclass");
        assert_eq!(format_type(18, -1), "\"char\"");
        assert_eq!(format_type(1, -1), "???");
    }

    #[test]
    fn typmods_follow_postgres_encoding() {
        let with = |t: SqlType, m: &str| {
            t.to_arrow_field("c").with_metadata(HashMap::from([
                (crate::types::PG_TYPE_KEY.to_string(), "varchar".to_string()),
                (PG_TYPMOD_KEY.to_string(), m.to_string()),
            ]))
        };
        assert_eq!(typmod(&with(SqlType::Varchar, "(20)")), 24);
        let numeric = Field::new("n", DataType::Decimal128(12, 2), true).with_metadata(
            HashMap::from([(PG_TYPMOD_KEY.to_string(), "(12,2)".to_string())]),
        );
        assert_eq!(typmod(&numeric), ((12 << 16) | 2) + 4);
        assert_eq!(typmod(&Field::new("i", DataType::Int32, true)), -1);
    }

    #[test]
    fn serial_defaults_print_like_postgres() {
        assert_eq!(
            display_default("nextval('public.t_id_seq'::regclass)"),
            "nextval('t_id_seq'::regclass)"
        );
        assert_eq!(
            display_default("nextval('sch.t_id_seq'::regclass)"),
            "nextval('sch.t_id_seq'::regclass)"
        );
        assert_eq!(display_default("0"), "0");
    }

    #[test]
    fn identifiers_are_quoted_like_postgres() {
        assert_eq!(quote_ident("id"), "id");
        assert_eq!(quote_ident("Id"), "\"Id\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("a b"), "\"a b\"");
    }
}

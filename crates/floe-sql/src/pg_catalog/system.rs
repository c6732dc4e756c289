//! The tables of `pg_catalog`.
//!
//! Three kinds:
//! - computed from Floe's catalog at scan time (`pg_class`, `pg_attribute`, `pg_index`, …),
//!   with the relations' real OIDs;
//! - empty because Floe has no such objects (`pg_inherits`, `pg_trigger`, `pg_policy`, …); the
//!   query rewriter knows they are empty ([`is_empty_table`]);
//! - PostgreSQL 15's own rows for built-in objects Floe does not model (`pg_proc`,
//!   `pg_operator`, `pg_cast`, …), taken from `datafusion-pg-catalog`'s export.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::sql::sqlparser::ast::{self, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::pg_catalog::{ArrowTable, PgCatalogStaticTables};
use floe_storage::{ConstraintDef, Db, RelationKind, SequenceDef, TableDef};

use super::oids::{self, Derived, KeyInfo};
use super::table::{ints, CatalogTable, Columns, Ctx, Kind, Row, RowFn, V};
use crate::types::SqlType;
use crate::vars::SessionVars;

use Kind::{Bool, Float4, Int2, Int2Array, Int4, Int8, Oid, OidArray, Text, TextArray};

/// Where a system table's rows come from.
pub(crate) enum Source {
    /// Computed from the catalog.
    Rows(Columns, RowFn),
    /// Always empty in Floe.
    Empty(Columns),
    /// PostgreSQL's built-in rows.
    Static(fn(&PgCatalogStaticTables) -> &Arc<ArrowTable>),
}

/// A relation of `pg_catalog`.
pub(crate) struct SystemTable {
    pub name: &'static str,
    /// `pg_class.oid` (PostgreSQL's where it is fixed).
    pub oid: u32,
    /// `r` for tables, `v` for views.
    pub relkind: &'static str,
    pub source: Source,
}

const fn rows(name: &'static str, oid: u32, columns: Columns, f: RowFn) -> SystemTable {
    SystemTable {
        name,
        oid,
        relkind: "r",
        source: Source::Rows(columns, f),
    }
}

const fn view(name: &'static str, oid: u32, columns: Columns, f: RowFn) -> SystemTable {
    SystemTable {
        name,
        oid,
        relkind: "v",
        source: Source::Rows(columns, f),
    }
}

const fn empty(name: &'static str, oid: u32, columns: Columns) -> SystemTable {
    SystemTable {
        name,
        oid,
        relkind: "r",
        source: Source::Empty(columns),
    }
}

const fn fixed(
    name: &'static str,
    oid: u32,
    f: fn(&PgCatalogStaticTables) -> &Arc<ArrowTable>,
) -> SystemTable {
    SystemTable {
        name,
        oid,
        relkind: "r",
        source: Source::Static(f),
    }
}

/// Every relation of `pg_catalog`, by name.
pub(crate) const SYSTEM_TABLES: &[SystemTable] = &[
    rows("pg_am", 2601, PG_AM, pg_am),
    fixed("pg_aggregate", 2600, |s| &s.pg_aggregate),
    fixed("pg_amop", 2602, |s| &s.pg_amop),
    fixed("pg_amproc", 2603, |s| &s.pg_amproc),
    rows("pg_attrdef", 2604, PG_ATTRDEF, pg_attrdef),
    rows("pg_attribute", 1249, PG_ATTRIBUTE, pg_attribute),
    empty("pg_auth_members", 1261, PG_AUTH_MEMBERS),
    rows("pg_authid", 1260, PG_AUTHID, pg_authid),
    fixed("pg_cast", 2605, |s| &s.pg_cast),
    rows("pg_class", 1259, PG_CLASS, pg_class),
    rows("pg_collation", 3456, PG_COLLATION, pg_collation),
    rows("pg_constraint", 2606, PG_CONSTRAINT, pg_constraint),
    fixed("pg_conversion", 2607, |s| &s.pg_conversion),
    rows("pg_database", 1262, PG_DATABASE, pg_database),
    empty("pg_db_role_setting", 2964, PG_DB_ROLE_SETTING),
    empty("pg_default_acl", 826, PG_DEFAULT_ACL),
    rows("pg_depend", 2608, PG_DEPEND, pg_depend),
    empty("pg_description", 2609, PG_DESCRIPTION),
    empty("pg_enum", 3501, PG_ENUM),
    empty("pg_event_trigger", 3466, PG_EVENT_TRIGGER),
    empty("pg_extension", 3079, PG_EXTENSION),
    empty("pg_foreign_data_wrapper", 2328, PG_FOREIGN_DATA_WRAPPER),
    empty("pg_foreign_server", 1417, PG_FOREIGN_SERVER),
    empty("pg_foreign_table", 3118, PG_FOREIGN_TABLE),
    rows("pg_index", 2610, PG_INDEX, pg_index),
    empty("pg_inherits", 2611, PG_INHERITS),
    empty("pg_init_privs", 3394, PG_INIT_PRIVS),
    fixed("pg_language", 2612, |s| &s.pg_language),
    empty("pg_largeobject_metadata", 2995, PG_LARGEOBJECT_METADATA),
    rows("pg_namespace", 2615, PG_NAMESPACE, pg_namespace),
    fixed("pg_opclass", 2616, |s| &s.pg_opclass),
    fixed("pg_operator", 2617, |s| &s.pg_operator),
    fixed("pg_opfamily", 2753, |s| &s.pg_opfamily),
    empty("pg_partitioned_table", 3350, PG_PARTITIONED_TABLE),
    empty("pg_policy", 3256, PG_POLICY),
    fixed("pg_proc", 1255, |s| &s.pg_proc),
    empty("pg_publication", 6104, PG_PUBLICATION),
    empty("pg_publication_namespace", 6237, PG_PUBLICATION_NAMESPACE),
    empty("pg_publication_rel", 6106, PG_PUBLICATION_REL),
    fixed("pg_range", 3541, |s| &s.pg_range),
    empty("pg_rewrite", 2618, PG_REWRITE),
    empty("pg_seclabel", 3596, PG_SECLABEL),
    rows("pg_sequence", 2224, PG_SEQUENCE, pg_sequence),
    empty("pg_shdepend", 1214, PG_SHDEPEND),
    empty("pg_shdescription", 2396, PG_SHDESCRIPTION),
    empty("pg_shseclabel", 3592, PG_SHSECLABEL),
    empty("pg_statistic", 2619, PG_STATISTIC),
    empty("pg_statistic_ext", 3381, PG_STATISTIC_EXT),
    empty("pg_statistic_ext_data", 3429, PG_STATISTIC_EXT_DATA),
    empty("pg_subscription", 6100, PG_SUBSCRIPTION),
    empty("pg_subscription_rel", 6102, PG_SUBSCRIPTION_REL),
    rows("pg_tablespace", 1213, PG_TABLESPACE, pg_tablespace),
    empty("pg_trigger", 2620, PG_TRIGGER),
    fixed("pg_ts_config", 3602, |s| &s.pg_ts_config),
    fixed("pg_ts_dict", 3600, |s| &s.pg_ts_dict),
    fixed("pg_ts_parser", 3601, |s| &s.pg_ts_parser),
    fixed("pg_ts_template", 3764, |s| &s.pg_ts_template),
    rows("pg_type", 1247, PG_TYPE, pg_type),
    empty("pg_user_mapping", 1418, PG_USER_MAPPING),
    // Views.
    view("pg_indexes", 12010, PG_INDEXES, pg_indexes),
    view("pg_locks", 12019, PG_LOCKS, pg_locks),
    view("pg_matviews", 12011, PG_MATVIEWS, pg_matviews),
    view("pg_roles", 12012, PG_ROLES, pg_roles),
    view("pg_sequences", 12013, PG_SEQUENCES, pg_sequences),
    view("pg_settings", 12014, PG_SETTINGS, pg_settings),
    view(
        "pg_stat_user_tables",
        12015,
        PG_STAT_USER_TABLES,
        pg_stat_user_tables,
    ),
    view("pg_tables", 12016, PG_TABLES, pg_tables),
    view("pg_user", 12017, PG_USER, pg_user),
    view("pg_views", 12018, PG_VIEWS, pg_views),
];

/// The `pg_catalog` relation named `name`.
pub(crate) fn system_table(name: &str) -> Option<&'static SystemTable> {
    SYSTEM_TABLES.iter().find(|t| t.name == name)
}

/// Whether `pg_catalog.name` never has rows in Floe.
pub(crate) fn is_empty_table(name: &str) -> bool {
    system_table(name).is_some_and(|t| matches!(t.source, Source::Empty(_)))
}

fn statics() -> DfResult<&'static PgCatalogStaticTables> {
    static STATICS: OnceLock<Result<PgCatalogStaticTables, String>> = OnceLock::new();
    STATICS
        .get_or_init(|| PgCatalogStaticTables::try_new().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| DataFusionError::Internal(format!("pg_catalog data: {e}")))
}

/// PostgreSQL's built-in functions (`pg_proc`) by OID and by name, for `regproc`.
#[derive(Debug, Default)]
pub(crate) struct Procs {
    names: std::collections::HashMap<u32, String>,
    oids: std::collections::HashMap<String, Vec<u32>>,
    /// Name and argument count of each stable or volatile form (`provolatile` other than
    /// `i`); `None` for a variadic one.
    not_immutable: std::collections::HashSet<(String, Option<usize>)>,
}

impl Procs {
    /// Whether every built-in function called `name` with `args` arguments is immutable (also
    /// when there is none), so PostgreSQL folds a call of it with constant arguments while
    /// planning. `to_timestamp(double precision)` is; `to_timestamp(text, text)` is not.
    pub(crate) fn immutable(&self, name: &str, args: usize) -> bool {
        let key = |arity| (name.to_string(), arity);
        !self.not_immutable.contains(&key(Some(args))) && !self.not_immutable.contains(&key(None))
    }

    /// The name of function `oid`.
    pub(crate) fn name(&self, oid: u32) -> Option<&str> {
        self.names.get(&oid).map(String::as_str)
    }

    /// The OID of the one function called `name`; `None` if there is none or more than one.
    pub(crate) fn unique(&self, name: &str) -> Option<u32> {
        match self.oids.get(name).map(Vec::as_slice) {
            Some([oid]) => Some(*oid),
            _ => None,
        }
    }
}

/// The built-in functions, read once from `pg_proc`'s rows.
pub(crate) fn procs() -> &'static Procs {
    static PROCS: OnceLock<Procs> = OnceLock::new();
    PROCS.get_or_init(|| {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::{DataType, Int64Type};
        let mut procs = Procs::default();
        let Ok(statics) = statics() else {
            return procs;
        };
        for batch in statics.pg_proc.data() {
            let (Some(oids), Some(names)) =
                (batch.column_by_name("oid"), batch.column_by_name("proname"))
            else {
                continue;
            };
            let (Ok(oids), Ok(names)) =
                (cast(oids, &DataType::Int64), cast(names, &DataType::Utf8))
            else {
                continue;
            };
            let (oids, names) = (oids.as_primitive::<Int64Type>(), names.as_string::<i32>());
            let column = |name: &str, to: &DataType| {
                batch.column_by_name(name).and_then(|v| cast(v, to).ok())
            };
            let volatility = column("provolatile", &DataType::Utf8);
            let arity = column("pronargs", &DataType::Int64);
            let defaults = column("pronargdefaults", &DataType::Int64);
            let variadic = column("provariadic", &DataType::Int64);
            let int = |array: &Option<datafusion::arrow::array::ArrayRef>, row: usize| {
                array
                    .as_ref()
                    .map(|a| a.as_primitive::<Int64Type>())
                    .filter(|a| a.is_valid(row))
                    .map_or(0, |a| a.value(row))
            };
            for row in 0..batch.num_rows() {
                if oids.is_null(row) || names.is_null(row) {
                    continue;
                }
                let (oid, name) = (oids.value(row) as u32, names.value(row).to_string());
                if let Some(volatility) = &volatility {
                    let volatility = volatility.as_string::<i32>();
                    if volatility.is_valid(row) && volatility.value(row) != "i" {
                        if int(&variadic, row) != 0 || arity.is_none() {
                            procs.not_immutable.insert((name.clone(), None));
                        } else {
                            let most = int(&arity, row).max(0) as usize;
                            let least = most.saturating_sub(int(&defaults, row).max(0) as usize);
                            for args in least..=most {
                                procs.not_immutable.insert((name.clone(), Some(args)));
                            }
                        }
                    }
                }
                procs.oids.entry(name.clone()).or_default().push(oid);
                procs.names.insert(oid, name);
            }
        }
        procs
    })
}

impl SystemTable {
    /// The table as DataFusion reads it in `database`.
    pub(crate) fn provider(
        &self,
        db: &Arc<Db>,
        database: &str,
    ) -> DfResult<Arc<dyn TableProvider>> {
        Ok(match &self.source {
            Source::Rows(columns, f) => Arc::new(CatalogTable::new(
                self.name,
                columns,
                *f,
                db.clone(),
                database,
            )),
            Source::Empty(columns) => Arc::new(CatalogTable::new(
                self.name,
                columns,
                |_| Vec::new(),
                db.clone(),
                database,
            )),
            Source::Static(f) => f(statics()?).try_into_memtable()?,
        })
    }

    /// The table's columns: (name, type OID).
    pub(crate) fn columns(&self) -> Vec<(String, u32)> {
        match &self.source {
            Source::Rows(columns, _) | Source::Empty(columns) => kind_columns(columns),
            Source::Static(f) => match statics() {
                Ok(s) => arrow_columns(&f(s).schema()),
                Err(_) => Vec::new(),
            },
        }
    }
}

/// Column names and type OIDs of a spec.
pub(crate) fn kind_columns(columns: Columns) -> Vec<(String, u32)> {
    columns
        .iter()
        .map(|(name, kind)| {
            let oid = match kind {
                Oid => 26,
                Text => 25,
                Bool => 16,
                Int2 => 21,
                Int4 => 23,
                Int8 => 20,
                Float4 => 700,
                TextArray => 1009,
                Int2Array => 1005,
                OidArray => 1028,
                Kind::TimestampTz => 1184,
            };
            (name.to_string(), oid)
        })
        .collect()
}

fn arrow_columns(schema: &SchemaRef) -> Vec<(String, u32)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), SqlType::from_arrow_field(f).oid()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Column lists (PostgreSQL 15).

const PG_NAMESPACE: Columns = &[
    ("oid", Oid),
    ("nspname", Text),
    ("nspowner", Oid),
    ("nspacl", TextArray),
];

const PG_CLASS: Columns = &[
    ("oid", Oid),
    ("relname", Text),
    ("relnamespace", Oid),
    ("reltype", Oid),
    ("reloftype", Oid),
    ("relowner", Oid),
    ("relam", Oid),
    ("relfilenode", Oid),
    ("reltablespace", Oid),
    ("relpages", Int4),
    ("reltuples", Float4),
    ("relallvisible", Int4),
    ("reltoastrelid", Oid),
    ("relhasindex", Bool),
    ("relisshared", Bool),
    ("relpersistence", Text),
    ("relkind", Text),
    ("relnatts", Int2),
    ("relchecks", Int2),
    ("relhasrules", Bool),
    ("relhastriggers", Bool),
    ("relhassubclass", Bool),
    ("relrowsecurity", Bool),
    ("relforcerowsecurity", Bool),
    ("relispopulated", Bool),
    ("relreplident", Text),
    ("relispartition", Bool),
    ("relrewrite", Oid),
    ("relfrozenxid", Oid),
    ("relminmxid", Oid),
    ("relacl", TextArray),
    ("reloptions", TextArray),
    ("relpartbound", Text),
];

const PG_ATTRIBUTE: Columns = &[
    ("attrelid", Oid),
    ("attname", Text),
    ("atttypid", Oid),
    ("attstattarget", Int4),
    ("attlen", Int2),
    ("attnum", Int2),
    ("attndims", Int4),
    ("attcacheoff", Int4),
    ("atttypmod", Int4),
    ("attbyval", Bool),
    ("attalign", Text),
    ("attstorage", Text),
    ("attcompression", Text),
    ("attnotnull", Bool),
    ("atthasdef", Bool),
    ("atthasmissing", Bool),
    ("attidentity", Text),
    ("attgenerated", Text),
    ("attisdropped", Bool),
    ("attislocal", Bool),
    ("attinhcount", Int4),
    ("attcollation", Oid),
    ("attacl", TextArray),
    ("attoptions", TextArray),
    ("attfdwoptions", TextArray),
    ("attmissingval", Text),
];

const PG_ATTRDEF: Columns = &[
    ("oid", Oid),
    ("adrelid", Oid),
    ("adnum", Int2),
    ("adbin", Text),
];

const PG_INDEX: Columns = &[
    ("indexrelid", Oid),
    ("indrelid", Oid),
    ("indnatts", Int2),
    ("indnkeyatts", Int2),
    ("indisunique", Bool),
    ("indnullsnotdistinct", Bool),
    ("indisprimary", Bool),
    ("indisexclusion", Bool),
    ("indimmediate", Bool),
    ("indisclustered", Bool),
    ("indisvalid", Bool),
    ("indcheckxmin", Bool),
    ("indisready", Bool),
    ("indislive", Bool),
    ("indisreplident", Bool),
    ("indkey", Int2Array),
    ("indcollation", OidArray),
    ("indclass", OidArray),
    ("indoption", Int2Array),
    ("indexprs", Text),
    ("indpred", Text),
];

const PG_CONSTRAINT: Columns = &[
    ("oid", Oid),
    ("conname", Text),
    ("connamespace", Oid),
    ("contype", Text),
    ("condeferrable", Bool),
    ("condeferred", Bool),
    ("convalidated", Bool),
    ("conrelid", Oid),
    ("contypid", Oid),
    ("conindid", Oid),
    ("conparentid", Oid),
    ("confrelid", Oid),
    ("confupdtype", Text),
    ("confdeltype", Text),
    ("confmatchtype", Text),
    ("conislocal", Bool),
    ("coninhcount", Int4),
    ("connoinherit", Bool),
    ("conkey", Int2Array),
    ("confkey", Int2Array),
    ("conpfeqop", OidArray),
    ("conppeqop", OidArray),
    ("conffeqop", OidArray),
    ("confdelsetcols", Int2Array),
    ("conexclop", OidArray),
    ("conbin", Text),
];

const PG_DATABASE: Columns = &[
    ("oid", Oid),
    ("datname", Text),
    ("datdba", Oid),
    ("encoding", Int4),
    ("datlocprovider", Text),
    ("datistemplate", Bool),
    ("datallowconn", Bool),
    ("datconnlimit", Int4),
    ("datfrozenxid", Oid),
    ("datminmxid", Oid),
    ("dattablespace", Oid),
    ("datcollate", Text),
    ("datctype", Text),
    ("daticulocale", Text),
    ("datcollversion", Text),
    ("datacl", TextArray),
];

const PG_SEQUENCE: Columns = &[
    ("seqrelid", Oid),
    ("seqtypid", Oid),
    ("seqstart", Int8),
    ("seqincrement", Int8),
    ("seqmax", Int8),
    ("seqmin", Int8),
    ("seqcache", Int8),
    ("seqcycle", Bool),
];

const PG_DEPEND: Columns = &[
    ("classid", Oid),
    ("objid", Oid),
    ("objsubid", Int4),
    ("refclassid", Oid),
    ("refobjid", Oid),
    ("refobjsubid", Int4),
    ("deptype", Text),
];

const PG_TYPE: Columns = &[
    ("oid", Oid),
    ("typname", Text),
    ("typnamespace", Oid),
    ("typowner", Oid),
    ("typlen", Int2),
    ("typbyval", Bool),
    ("typtype", Text),
    ("typcategory", Text),
    ("typispreferred", Bool),
    ("typisdefined", Bool),
    ("typdelim", Text),
    ("typrelid", Oid),
    ("typsubscript", Text),
    ("typelem", Oid),
    ("typarray", Oid),
    ("typinput", Text),
    ("typoutput", Text),
    ("typreceive", Text),
    ("typsend", Text),
    ("typmodin", Text),
    ("typmodout", Text),
    ("typanalyze", Text),
    ("typalign", Text),
    ("typstorage", Text),
    ("typnotnull", Bool),
    ("typbasetype", Oid),
    ("typtypmod", Int4),
    ("typndims", Int4),
    ("typcollation", Oid),
    ("typdefaultbin", Text),
    ("typdefault", Text),
    ("typacl", TextArray),
];

const PG_AM: Columns = &[
    ("oid", Oid),
    ("amname", Text),
    ("amhandler", Text),
    ("amtype", Text),
];

const PG_TABLESPACE: Columns = &[
    ("oid", Oid),
    ("spcname", Text),
    ("spcowner", Oid),
    ("spcacl", TextArray),
    ("spcoptions", TextArray),
];

const PG_COLLATION: Columns = &[
    ("oid", Oid),
    ("collname", Text),
    ("collnamespace", Oid),
    ("collowner", Oid),
    ("collprovider", Text),
    ("collisdeterministic", Bool),
    ("collencoding", Int4),
    ("collcollate", Text),
    ("collctype", Text),
    ("colliculocale", Text),
    ("collversion", Text),
];

const PG_AUTHID: Columns = &[
    ("oid", Oid),
    ("rolname", Text),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolbypassrls", Bool),
    ("rolconnlimit", Int4),
    ("rolpassword", Text),
    ("rolvaliduntil", Text),
];

const PG_ROLES: Columns = &[
    ("rolname", Text),
    ("rolsuper", Bool),
    ("rolinherit", Bool),
    ("rolcreaterole", Bool),
    ("rolcreatedb", Bool),
    ("rolcanlogin", Bool),
    ("rolreplication", Bool),
    ("rolconnlimit", Int4),
    ("rolpassword", Text),
    ("rolvaliduntil", Text),
    ("rolbypassrls", Bool),
    ("rolconfig", TextArray),
    ("oid", Oid),
];

/// Floe shows its advisory locks here (row locks are not listed).
const PG_LOCKS: Columns = &[
    ("locktype", Text),
    ("database", Oid),
    ("relation", Oid),
    ("page", Int4),
    ("tuple", Int2),
    ("virtualxid", Text),
    ("transactionid", Text),
    ("classid", Oid),
    ("objid", Oid),
    ("objsubid", Int2),
    ("virtualtransaction", Text),
    ("pid", Int4),
    ("mode", Text),
    ("granted", Bool),
    ("fastpath", Bool),
    ("waitstart", Text),
];

const PG_USER: Columns = &[
    ("usename", Text),
    ("usesysid", Oid),
    ("usecreatedb", Bool),
    ("usesuper", Bool),
    ("userepl", Bool),
    ("usebypassrls", Bool),
    ("passwd", Text),
    ("valuntil", Text),
    ("useconfig", TextArray),
];

/// `pg_settings` columns (the query rewriter fills them with the session's values).
pub(crate) const PG_SETTINGS: Columns = &[
    ("name", Text),
    ("setting", Text),
    ("unit", Text),
    ("category", Text),
    ("short_desc", Text),
    ("extra_desc", Text),
    ("context", Text),
    ("vartype", Text),
    ("source", Text),
    ("min_val", Text),
    ("max_val", Text),
    ("enumvals", TextArray),
    ("boot_val", Text),
    ("reset_val", Text),
    ("sourcefile", Text),
    ("sourceline", Int4),
    ("pending_restart", Bool),
];

const PG_TABLES: Columns = &[
    ("schemaname", Text),
    ("tablename", Text),
    ("tableowner", Text),
    ("tablespace", Text),
    ("hasindexes", Bool),
    ("hasrules", Bool),
    ("hastriggers", Bool),
    ("rowsecurity", Bool),
];

const PG_VIEWS: Columns = &[
    ("schemaname", Text),
    ("viewname", Text),
    ("viewowner", Text),
    ("definition", Text),
];

const PG_MATVIEWS: Columns = &[
    ("schemaname", Text),
    ("matviewname", Text),
    ("matviewowner", Text),
    ("tablespace", Text),
    ("hasindexes", Bool),
    ("ispopulated", Bool),
    ("definition", Text),
];

const PG_INDEXES: Columns = &[
    ("schemaname", Text),
    ("tablename", Text),
    ("indexname", Text),
    ("tablespace", Text),
    ("indexdef", Text),
];

const PG_SEQUENCES: Columns = &[
    ("schemaname", Text),
    ("sequencename", Text),
    ("sequenceowner", Text),
    ("data_type", Text),
    ("start_value", Int8),
    ("min_value", Int8),
    ("max_value", Int8),
    ("increment_by", Int8),
    ("cycle", Bool),
    ("cache_size", Int8),
    ("last_value", Int8),
];

const PG_STAT_USER_TABLES: Columns = &[
    ("relid", Oid),
    ("schemaname", Text),
    ("relname", Text),
    ("seq_scan", Int8),
    ("seq_tup_read", Int8),
    ("idx_scan", Int8),
    ("idx_tup_fetch", Int8),
    ("n_tup_ins", Int8),
    ("n_tup_upd", Int8),
    ("n_tup_del", Int8),
    ("n_tup_hot_upd", Int8),
    ("n_live_tup", Int8),
    ("n_dead_tup", Int8),
    ("n_mod_since_analyze", Int8),
    ("n_ins_since_vacuum", Int8),
    ("last_vacuum", Text),
    ("last_autovacuum", Text),
    ("last_analyze", Text),
    ("last_autoanalyze", Text),
    ("vacuum_count", Int8),
    ("autovacuum_count", Int8),
    ("analyze_count", Int8),
    ("autoanalyze_count", Int8),
];

const PG_INHERITS: Columns = &[
    ("inhrelid", Oid),
    ("inhparent", Oid),
    ("inhseqno", Int4),
    ("inhdetachpending", Bool),
];

const PG_PARTITIONED_TABLE: Columns = &[
    ("partrelid", Oid),
    ("partstrat", Text),
    ("partnatts", Int2),
    ("partdefid", Oid),
    ("partattrs", Int2Array),
    ("partclass", OidArray),
    ("partcollation", OidArray),
    ("partexprs", Text),
];

const PG_POLICY: Columns = &[
    ("oid", Oid),
    ("polname", Text),
    ("polrelid", Oid),
    ("polcmd", Text),
    ("polpermissive", Bool),
    ("polroles", OidArray),
    ("polqual", Text),
    ("polwithcheck", Text),
];

const PG_STATISTIC_EXT: Columns = &[
    ("oid", Oid),
    ("stxrelid", Oid),
    ("stxname", Text),
    ("stxnamespace", Oid),
    ("stxowner", Oid),
    ("stxstattarget", Int4),
    ("stxkeys", Int2Array),
    ("stxkind", TextArray),
    ("stxexprs", Text),
];

const PG_STATISTIC_EXT_DATA: Columns = &[
    ("stxoid", Oid),
    ("stxdinherit", Bool),
    ("stxdndistinct", Text),
    ("stxddependencies", Text),
    ("stxdmcv", Text),
    ("stxdexpr", Text),
];

const PG_STATISTIC: Columns = &[
    ("starelid", Oid),
    ("staattnum", Int2),
    ("stainherit", Bool),
    ("stanullfrac", Float4),
    ("stawidth", Int4),
    ("stadistinct", Float4),
];

const PG_PUBLICATION: Columns = &[
    ("oid", Oid),
    ("pubname", Text),
    ("pubowner", Oid),
    ("puballtables", Bool),
    ("pubinsert", Bool),
    ("pubupdate", Bool),
    ("pubdelete", Bool),
    ("pubtruncate", Bool),
    ("pubviaroot", Bool),
];

const PG_PUBLICATION_REL: Columns = &[
    ("oid", Oid),
    ("prpubid", Oid),
    ("prrelid", Oid),
    ("prqual", Text),
    ("prattrs", Int2Array),
];

const PG_PUBLICATION_NAMESPACE: Columns = &[("oid", Oid), ("pnpubid", Oid), ("pnnspid", Oid)];

const PG_REWRITE: Columns = &[
    ("oid", Oid),
    ("rulename", Text),
    ("ev_class", Oid),
    ("ev_type", Text),
    ("ev_enabled", Text),
    ("is_instead", Bool),
    ("ev_qual", Text),
    ("ev_action", Text),
];

const PG_TRIGGER: Columns = &[
    ("oid", Oid),
    ("tgrelid", Oid),
    ("tgparentid", Oid),
    ("tgname", Text),
    ("tgfoid", Oid),
    ("tgtype", Int2),
    ("tgenabled", Text),
    ("tgisinternal", Bool),
    ("tgconstrrelid", Oid),
    ("tgconstrindid", Oid),
    ("tgconstraint", Oid),
    ("tgdeferrable", Bool),
    ("tginitdeferred", Bool),
    ("tgnargs", Int2),
    ("tgattr", Int2Array),
    ("tgargs", Text),
    ("tgqual", Text),
    ("tgoldtable", Text),
    ("tgnewtable", Text),
];

const PG_DESCRIPTION: Columns = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("objsubid", Int4),
    ("description", Text),
];

const PG_SHDESCRIPTION: Columns = &[("objoid", Oid), ("classoid", Oid), ("description", Text)];

const PG_EVENT_TRIGGER: Columns = &[
    ("oid", Oid),
    ("evtname", Text),
    ("evtevent", Text),
    ("evtowner", Oid),
    ("evtfoid", Oid),
    ("evtenabled", Text),
    ("evttags", TextArray),
];

const PG_EXTENSION: Columns = &[
    ("oid", Oid),
    ("extname", Text),
    ("extowner", Oid),
    ("extnamespace", Oid),
    ("extrelocatable", Bool),
    ("extversion", Text),
    ("extconfig", OidArray),
    ("extcondition", TextArray),
];

const PG_FOREIGN_DATA_WRAPPER: Columns = &[
    ("oid", Oid),
    ("fdwname", Text),
    ("fdwowner", Oid),
    ("fdwhandler", Oid),
    ("fdwvalidator", Oid),
    ("fdwacl", TextArray),
    ("fdwoptions", TextArray),
];

const PG_FOREIGN_SERVER: Columns = &[
    ("oid", Oid),
    ("srvname", Text),
    ("srvowner", Oid),
    ("srvfdw", Oid),
    ("srvtype", Text),
    ("srvversion", Text),
    ("srvacl", TextArray),
    ("srvoptions", TextArray),
];

const PG_FOREIGN_TABLE: Columns = &[
    ("ftrelid", Oid),
    ("ftserver", Oid),
    ("ftoptions", TextArray),
];

const PG_USER_MAPPING: Columns = &[
    ("oid", Oid),
    ("umuser", Oid),
    ("umserver", Oid),
    ("umoptions", TextArray),
];

const PG_SUBSCRIPTION: Columns = &[
    ("oid", Oid),
    ("subdbid", Oid),
    ("subname", Text),
    ("subowner", Oid),
    ("subenabled", Bool),
    ("subconninfo", Text),
    ("subslotname", Text),
    ("subsynccommit", Text),
    ("subpublications", TextArray),
];

const PG_SUBSCRIPTION_REL: Columns = &[
    ("srsubid", Oid),
    ("srrelid", Oid),
    ("srsubstate", Text),
    ("srsublsn", Text),
];

const PG_INIT_PRIVS: Columns = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("objsubid", Int4),
    ("privtype", Text),
    ("initprivs", TextArray),
];

const PG_DEFAULT_ACL: Columns = &[
    ("oid", Oid),
    ("defaclrole", Oid),
    ("defaclnamespace", Oid),
    ("defaclobjtype", Text),
    ("defaclacl", TextArray),
];

const PG_SECLABEL: Columns = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("objsubid", Int4),
    ("provider", Text),
    ("label", Text),
];

const PG_SHSECLABEL: Columns = &[
    ("objoid", Oid),
    ("classoid", Oid),
    ("provider", Text),
    ("label", Text),
];

const PG_SHDEPEND: Columns = &[
    ("dbid", Oid),
    ("classid", Oid),
    ("objid", Oid),
    ("objsubid", Int4),
    ("refclassid", Oid),
    ("refobjid", Oid),
    ("deptype", Text),
];

const PG_DB_ROLE_SETTING: Columns = &[
    ("setdatabase", Oid),
    ("setrole", Oid),
    ("setconfig", TextArray),
];

const PG_AUTH_MEMBERS: Columns = &[
    ("oid", Oid),
    ("roleid", Oid),
    ("member", Oid),
    ("grantor", Oid),
    ("admin_option", Bool),
];

const PG_ENUM: Columns = &[
    ("oid", Oid),
    ("enumtypid", Oid),
    ("enumsortorder", Float4),
    ("enumlabel", Text),
];

const PG_LARGEOBJECT_METADATA: Columns = &[("oid", Oid), ("lomowner", Oid), ("lomacl", TextArray)];

// ---------------------------------------------------------------------------------------------
// Rows.

/// The user relations of the connected database, with their schema's OID.
fn relations(ctx: &Ctx) -> Vec<(u32, &Arc<TableDef>)> {
    ctx.catalog
        .schemas(&ctx.database)
        .flat_map(|schema| {
            ctx.catalog
                .relations_in(&ctx.database, &schema.name)
                .map(move |def| (schema.oid, def))
        })
        .collect()
}

fn relkind(def: &TableDef) -> &'static str {
    match def.kind {
        RelationKind::Table => "r",
        RelationKind::View { .. } => "v",
        RelationKind::Sequence(_) => "S",
        RelationKind::MaterializedView { .. } => "m",
    }
}

/// `pg_namespace` rows: `pg_catalog`, `information_schema` and the database's schemas.
pub(crate) fn namespaces(ctx: &Ctx) -> Vec<(u32, String, u32)> {
    let mut out = vec![
        (
            oids::PG_CATALOG_OID,
            "pg_catalog".to_string(),
            oids::SUPERUSER_OID,
        ),
        (
            oids::INFORMATION_SCHEMA_OID,
            "information_schema".to_string(),
            oids::SUPERUSER_OID,
        ),
        (
            oids::FLOE_CATALOG_OID,
            super::FLOE_CATALOG.to_string(),
            oids::SUPERUSER_OID,
        ),
    ];
    for schema in ctx.catalog.schemas(&ctx.database) {
        let owner = if schema.name == crate::engine::DEFAULT_SCHEMA {
            oids::DATABASE_OWNER_OID
        } else {
            oids::SUPERUSER_OID
        };
        out.push((schema.oid, schema.name.clone(), owner));
    }
    out
}

fn pg_namespace(ctx: &Ctx) -> Vec<Row> {
    namespaces(ctx)
        .into_iter()
        .map(|(oid, name, owner)| vec![oid.into(), name.into(), owner.into(), V::Null])
        .collect()
}

struct ClassRow<'a> {
    oid: u32,
    name: &'a str,
    namespace: u32,
    relkind: &'static str,
    am: u32,
    tuples: f32,
    natts: usize,
    checks: usize,
    hasindex: bool,
    /// `relpersistence`: `p` (permanent) or `t` (temporary).
    persistence: &'static str,
}

impl ClassRow<'_> {
    fn row(&self) -> Row {
        let filenode = if self.relkind == "v" { 0 } else { self.oid };
        vec![
            self.oid.into(),
            self.name.into(),
            self.namespace.into(),
            0u32.into(),
            0u32.into(),
            oids::SUPERUSER_OID.into(),
            self.am.into(),
            filenode.into(),
            0u32.into(),
            0i32.into(),
            self.tuples.into(),
            0i32.into(),
            0u32.into(),
            self.hasindex.into(),
            false.into(),
            self.persistence.into(),
            self.relkind.into(),
            (self.natts as i16).into(),
            (self.checks as i16).into(),
            false.into(),
            false.into(),
            false.into(),
            false.into(),
            false.into(),
            true.into(),
            if self.relkind == "r" && self.namespace != oids::PG_CATALOG_OID {
                "d"
            } else {
                "n"
            }
            .into(),
            false.into(),
            0u32.into(),
            0u32.into(),
            0u32.into(),
            V::Null,
            V::Null,
            V::Null,
        ]
    }
}

fn row_count(ctx: &Ctx, def: &TableDef) -> f32 {
    ctx.db
        .table(def.id)
        .map(|t| t.hot.key_count() as f32)
        .unwrap_or(0.0)
}

fn pg_class(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in SYSTEM_TABLES {
        rows.push(
            ClassRow {
                oid: t.oid,
                name: t.name,
                namespace: oids::PG_CATALOG_OID,
                relkind: t.relkind,
                am: if t.relkind == "r" {
                    oids::HEAP_AM_OID
                } else {
                    0
                },
                tuples: -1.0,
                natts: t.columns().len(),
                checks: 0,
                hasindex: false,
                persistence: "p",
            }
            .row(),
        );
    }
    for (namespace, _, views) in super::information_schema::view_schemas() {
        for t in views {
            rows.push(
                ClassRow {
                    oid: t.oid,
                    name: t.name,
                    namespace,
                    relkind: "v",
                    am: 0,
                    tuples: -1.0,
                    natts: t.columns.len(),
                    checks: 0,
                    hasindex: false,
                    persistence: "p",
                }
                .row(),
            );
        }
    }
    for (namespace, def) in relations(ctx) {
        let persistence = if def.is_temporary() { "t" } else { "p" };
        let keys = oids::indexes(def);
        let (am, tuples, natts) = match &def.kind {
            RelationKind::Table => (oids::HEAP_AM_OID, row_count(ctx, def), def.columns.len()),
            RelationKind::View { .. } => (0, -1.0, def.columns.len()),
            RelationKind::MaterializedView { .. } => (0, -1.0, def.columns.len()),
            RelationKind::Sequence(_) => (0, 1.0, 3),
        };
        let checks = def
            .constraints
            .iter()
            .filter(|c| matches!(c, ConstraintDef::Check { .. }))
            .count();
        rows.push(
            ClassRow {
                oid: def.id,
                name: &def.name,
                namespace,
                relkind: relkind(def),
                am,
                tuples,
                natts,
                checks,
                hasindex: !keys.is_empty(),
                persistence,
            }
            .row(),
        );
        for key in &keys {
            rows.push(
                ClassRow {
                    oid: key.index_oid(def.id),
                    name: &key.name,
                    namespace,
                    relkind: "i",
                    am: oids::BTREE_AM_OID,
                    tuples: -1.0,
                    natts: key.columns.len(),
                    checks: 0,
                    hasindex: false,
                    persistence,
                }
                .row(),
            );
        }
    }
    rows
}

/// One `pg_attribute` row.
struct AttRow<'a> {
    rel: u32,
    name: &'a str,
    attnum: i64,
    sql_type: Option<SqlType>,
    type_oid: u32,
    typmod: i32,
    ndims: i32,
    not_null: bool,
    has_default: bool,
    identity: &'static str,
}

impl AttRow<'_> {
    fn row(&self) -> Row {
        let info = self.sql_type.as_ref().map(oids::type_info);
        let (len, byval, align, storage, collation) = match &info {
            Some(i) => (
                i.typlen,
                i.typbyval,
                i.typalign,
                i.typstorage,
                i.typcollation,
            ),
            None => (-1, false, "i", "x", 0),
        };
        vec![
            self.rel.into(),
            self.name.into(),
            self.type_oid.into(),
            (-1i32).into(),
            len.into(),
            (self.attnum as i16).into(),
            self.ndims.into(),
            (-1i32).into(),
            self.typmod.into(),
            byval.into(),
            align.into(),
            storage.into(),
            "".into(),
            self.not_null.into(),
            self.has_default.into(),
            false.into(),
            self.identity.into(),
            "".into(),
            false.into(),
            true.into(),
            0i32.into(),
            collation.into(),
            V::Null,
            V::Null,
            V::Null,
            V::Null,
        ]
    }
}

/// `pg_attribute` rows of a relation described by (name, type OID) pairs.
fn plain_attributes(rows: &mut Vec<Row>, rel: u32, columns: Vec<(String, u32)>) {
    for (i, (name, type_oid)) in columns.iter().enumerate() {
        let sql_type = SqlType::from_oid(*type_oid);
        rows.push(
            AttRow {
                rel,
                name,
                attnum: i as i64 + 1,
                ndims: i32::from(matches!(sql_type, Some(SqlType::Array(_)))),
                sql_type,
                type_oid: *type_oid,
                typmod: -1,
                not_null: false,
                has_default: false,
                identity: "",
            }
            .row(),
        );
    }
}

fn pg_attribute(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    let system = plain_attributes;
    for t in SYSTEM_TABLES {
        system(&mut rows, t.oid, t.columns());
    }
    for (_, _, views) in super::information_schema::view_schemas() {
        for t in views {
            system(&mut rows, t.oid, kind_columns(t.columns));
        }
    }
    for (_, def) in relations(ctx) {
        if let RelationKind::Sequence(_) = def.kind {
            system(
                &mut rows,
                def.id,
                vec![
                    ("last_value".into(), 20),
                    ("log_cnt".into(), 20),
                    ("is_called".into(), 16),
                ],
            );
            continue;
        }
        for column in &def.columns {
            let t = oids::column_type(&column.field);
            rows.push(
                AttRow {
                    rel: def.id,
                    name: &column.name,
                    attnum: column.id as i64,
                    type_oid: t.oid(),
                    sql_type: Some(t),
                    typmod: oids::typmod(&column.field),
                    ndims: oids::ndims(&column.field),
                    not_null: column.not_null(),
                    has_default: column.default.is_some() && column.identity.is_none(),
                    identity: match column.identity {
                        Some(true) => "a",
                        Some(false) => "d",
                        None => "",
                    },
                }
                .row(),
            );
        }
        for key in oids::indexes(def) {
            for (i, id) in key.columns.iter().enumerate() {
                let Some(column) = oids::column_by_id(def, *id) else {
                    continue;
                };
                let t = oids::column_type(&column.field);
                rows.push(
                    AttRow {
                        rel: key.index_oid(def.id),
                        name: &column.name,
                        attnum: i as i64 + 1,
                        type_oid: t.oid(),
                        sql_type: Some(t),
                        typmod: oids::typmod(&column.field),
                        ndims: oids::ndims(&column.field),
                        not_null: false,
                        has_default: false,
                        identity: "",
                    }
                    .row(),
                );
            }
        }
    }
    rows
}

fn pg_attrdef(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for (_, def) in relations(ctx) {
        for column in &def.columns {
            if let (Some(default), None) = (&column.default, column.identity) {
                rows.push(vec![
                    oids::derived_oid(def.id, Derived::Default, column.id).into(),
                    def.id.into(),
                    (column.id as i16).into(),
                    oids::display_default(default).into(),
                ]);
            }
        }
    }
    rows
}

fn index_row(def: &TableDef, key: &KeyInfo) -> Row {
    let collations: Vec<i64> = key
        .columns
        .iter()
        .map(|id| {
            oids::column_by_id(def, *id)
                .map(|c| oids::type_info(&oids::column_type(&c.field)).typcollation as i64)
                .unwrap_or(0)
        })
        .collect();
    let n = key.columns.len() as i16;
    vec![
        key.index_oid(def.id).into(),
        def.id.into(),
        n.into(),
        n.into(),
        key.unique.into(),
        false.into(),
        key.primary.into(),
        false.into(),
        true.into(),
        false.into(),
        true.into(),
        false.into(),
        true.into(),
        true.into(),
        false.into(),
        ints(&key.columns),
        V::IntArray(collations),
        V::IntArray(vec![0; key.columns.len()]),
        V::IntArray(vec![0; key.columns.len()]),
        V::Null,
        V::Null,
    ]
}

fn pg_index(ctx: &Ctx) -> Vec<Row> {
    relations(ctx)
        .into_iter()
        .flat_map(|(_, def)| {
            oids::indexes(def)
                .iter()
                .map(|key| index_row(def, key))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The column numbers a CHECK expression mentions.
pub(crate) fn check_columns(def: &TableDef, expr: &str) -> Vec<i64> {
    struct Names(Vec<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &ast::Expr) -> std::ops::ControlFlow<()> {
            match expr {
                ast::Expr::Identifier(i) => self.0.push(i.value.clone()),
                ast::Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last() {
                        self.0.push(last.value.clone())
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let Ok(parsed) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
    else {
        return Vec::new();
    };
    let mut names = Names(Vec::new());
    let _ = parsed.visit(&mut names);
    let mut ids: Vec<i64> = def
        .columns
        .iter()
        .filter(|c| {
            names
                .0
                .iter()
                .any(|n| *n == c.name || n.to_lowercase() == c.name)
        })
        .map(|c| c.id as i64)
        .collect();
    ids.dedup();
    ids
}

#[allow(clippy::too_many_arguments)]
fn constraint_row(
    oid: u32,
    name: &str,
    namespace: u32,
    contype: &str,
    rel: u32,
    index: u32,
    columns: V,
    conbin: V,
) -> Row {
    vec![
        oid.into(),
        name.into(),
        namespace.into(),
        contype.into(),
        false.into(),
        false.into(),
        true.into(),
        rel.into(),
        0u32.into(),
        index.into(),
        0u32.into(),
        0u32.into(),
        " ".into(),
        " ".into(),
        " ".into(),
        true.into(),
        0i32.into(),
        (contype != "c").into(),
        columns,
        V::Null,
        V::Null,
        V::Null,
        V::Null,
        V::Null,
        V::Null,
        conbin,
    ]
}

fn pg_constraint(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for (namespace, def) in relations(ctx) {
        for key in oids::keys(def) {
            rows.push(constraint_row(
                oids::derived_oid(def.id, Derived::Constraint, key.slot),
                &key.name,
                namespace,
                if key.primary { "p" } else { "u" },
                def.id,
                key.index_oid(def.id),
                ints(&key.columns),
                V::Null,
            ));
        }
        for (i, constraint) in def.constraints.iter().enumerate() {
            if let ConstraintDef::Check { name, expr } = constraint {
                rows.push(constraint_row(
                    oids::derived_oid(def.id, Derived::Constraint, i as u32 + 1),
                    name,
                    namespace,
                    "c",
                    def.id,
                    0,
                    ints(&check_columns(def, expr)),
                    expr.into(),
                ));
            }
        }
    }
    rows
}

fn pg_database(ctx: &Ctx) -> Vec<Row> {
    ctx.catalog
        .databases()
        .map(|d| {
            vec![
                d.oid.into(),
                (&d.name).into(),
                oids::SUPERUSER_OID.into(),
                oids::UTF8_ENCODING.into(),
                "c".into(),
                false.into(),
                true.into(),
                (-1i32).into(),
                0u32.into(),
                1u32.into(),
                oids::DEFAULT_TABLESPACE_OID.into(),
                "C.UTF-8".into(),
                "C.UTF-8".into(),
                V::Null,
                V::Null,
                V::Null,
            ]
        })
        .collect()
}

/// The integer type a sequence counts in: PostgreSQL's `smallint`/`integer` sequences for
/// `smallserial`/`serial` columns, else `bigint`.
pub(crate) fn sequence_type(seq: &SequenceDef) -> SqlType {
    match seq.max {
        m if m == i16::MAX as i64 => SqlType::Int2,
        m if m == i32::MAX as i64 => SqlType::Int4,
        _ => SqlType::Int8,
    }
}

fn sequences(ctx: &Ctx) -> Vec<(u32, &Arc<TableDef>, &SequenceDef)> {
    relations(ctx)
        .into_iter()
        .filter_map(|(namespace, def)| match &def.kind {
            RelationKind::Sequence(seq) => Some((namespace, def, seq)),
            _ => None,
        })
        .collect()
}

fn pg_sequence(ctx: &Ctx) -> Vec<Row> {
    sequences(ctx)
        .into_iter()
        .map(|(_, def, seq)| {
            vec![
                def.id.into(),
                sequence_type(seq).oid().into(),
                seq.start.into(),
                seq.increment.into(),
                seq.max.into(),
                seq.min.into(),
                1i64.into(),
                seq.cycle.into(),
            ]
        })
        .collect()
}

fn pg_depend(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for (_, def, seq) in sequences(ctx) {
        let Some((table, column)) = seq.owned_by else {
            continue;
        };
        let identity = ctx
            .catalog
            .relation(table)
            .and_then(|t| oids::column_by_id(t, column as i64).map(|c| c.identity.is_some()))
            .unwrap_or(false);
        rows.push(vec![
            oids::PG_CLASS_OID.into(),
            def.id.into(),
            0i32.into(),
            oids::PG_CLASS_OID.into(),
            table.into(),
            (column as i32).into(),
            if identity { "i" } else { "a" }.into(),
        ]);
    }
    rows
}

fn type_row(info: &oids::TypeInfo) -> Row {
    let io = |suffix: &str| V::Text(format!("{}{suffix}", info.io));
    let preferred = matches!(
        info.typname.as_str(),
        "bool" | "text" | "float8" | "oid" | "timestamptz" | "interval"
    );
    vec![
        info.oid.into(),
        (&info.typname).into(),
        oids::PG_CATALOG_OID.into(),
        oids::SUPERUSER_OID.into(),
        info.typlen.into(),
        info.typbyval.into(),
        info.typtype.into(),
        info.typcategory.into(),
        preferred.into(),
        true.into(),
        ",".into(),
        0u32.into(),
        if info.typelem != 0 {
            "array_subscript_handler"
        } else {
            "-"
        }
        .into(),
        info.typelem.into(),
        info.typarray.into(),
        io("in"),
        io("out"),
        io("recv"),
        io("send"),
        "-".into(),
        "-".into(),
        "-".into(),
        info.typalign.into(),
        info.typstorage.into(),
        false.into(),
        0u32.into(),
        (-1i32).into(),
        0i32.into(),
        info.typcollation.into(),
        V::Null,
        V::Null,
        V::Null,
    ]
}

fn pg_type(_ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for t in oids::SCALAR_TYPES.iter() {
        rows.push(type_row(&oids::type_info(t)));
        rows.push(type_row(&oids::type_info(&SqlType::Array(Box::new(
            t.clone(),
        )))));
    }
    for (oid, name, len, byval, typtype, category) in oids::SYSTEM_TYPES {
        rows.push(type_row(&oids::TypeInfo {
            oid: *oid,
            typname: name.to_string(),
            typlen: *len,
            typbyval: *byval,
            typtype,
            typcategory: category,
            typalign: if *len == 1 { "c" } else { "i" },
            typstorage: if *len == -1 { "x" } else { "p" },
            typelem: 0,
            typarray: 0,
            typcollation: 0,
            io: name.to_string(),
        }));
    }
    rows
}

fn pg_am(_ctx: &Ctx) -> Vec<Row> {
    [
        (2u32, "heap", "heap_tableam_handler", "t"),
        (403, "btree", "bthandler", "i"),
        (405, "hash", "hashhandler", "i"),
        (783, "gist", "gisthandler", "i"),
        (2742, "gin", "ginhandler", "i"),
        (4000, "spgist", "spghandler", "i"),
        (3580, "brin", "brinhandler", "i"),
    ]
    .into_iter()
    .map(|(oid, name, handler, kind)| vec![oid.into(), name.into(), handler.into(), kind.into()])
    .collect()
}

fn pg_tablespace(_ctx: &Ctx) -> Vec<Row> {
    [(1663u32, "pg_default"), (1664, "pg_global")]
        .into_iter()
        .map(|(oid, name)| {
            vec![
                oid.into(),
                name.into(),
                oids::SUPERUSER_OID.into(),
                V::Null,
                V::Null,
            ]
        })
        .collect()
}

fn pg_collation(_ctx: &Ctx) -> Vec<Row> {
    [
        (oids::DEFAULT_COLLATION_OID, "default", "d", None),
        (oids::C_COLLATION_OID, "C", "c", Some("C")),
        (951, "POSIX", "c", Some("POSIX")),
    ]
    .into_iter()
    .map(|(oid, name, provider, locale)| {
        vec![
            oid.into(),
            name.into(),
            oids::PG_CATALOG_OID.into(),
            oids::SUPERUSER_OID.into(),
            provider.into(),
            true.into(),
            (-1i32).into(),
            locale.into(),
            locale.into(),
            V::Null,
            V::Null,
        ]
    })
    .collect()
}

/// The roles: (oid, name, superuser, can log in).
pub(crate) const ROLES: &[(u32, &str, bool, bool)] = &[
    (oids::SUPERUSER_OID, "postgres", true, true),
    (oids::DATABASE_OWNER_OID, "pg_database_owner", false, false),
];

fn pg_authid(_ctx: &Ctx) -> Vec<Row> {
    ROLES
        .iter()
        .map(|(oid, name, sup, login)| {
            vec![
                (*oid).into(),
                (*name).into(),
                (*sup).into(),
                true.into(),
                (*sup).into(),
                (*sup).into(),
                (*login).into(),
                (*sup).into(),
                (*sup).into(),
                (-1i32).into(),
                V::Null,
                V::Null,
            ]
        })
        .collect()
}

fn pg_roles(_ctx: &Ctx) -> Vec<Row> {
    ROLES
        .iter()
        .map(|(oid, name, sup, login)| {
            vec![
                (*name).into(),
                (*sup).into(),
                true.into(),
                (*sup).into(),
                (*sup).into(),
                (*login).into(),
                (*sup).into(),
                (-1i32).into(),
                "********".into(),
                V::Null,
                (*sup).into(),
                V::Null,
                (*oid).into(),
            ]
        })
        .collect()
}

fn pg_locks(ctx: &Ctx) -> Vec<Row> {
    use floe_storage::advisory::AdvisoryNumber;
    ctx.db
        .advisory_locks()
        .held()
        .into_iter()
        .map(|lock| {
            // As PostgreSQL splits the key: high and low halves of a bigint (objsubid 1), or
            // the two integers (objsubid 2).
            let (classid, objid, objsubid) = match lock.key.number {
                AdvisoryNumber::Int8(n) => ((n >> 32) as u32, n as u32, 1i16),
                AdvisoryNumber::Int4Pair(a, b) => (a as u32, b as u32, 2),
            };
            vec![
                "advisory".into(),
                lock.key.database.into(),
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                classid.into(),
                objid.into(),
                objsubid.into(),
                format!("{}/1", lock.holder).as_str().into(),
                lock.holder.into(),
                lock.mode.pg_name().into(),
                true.into(),
                false.into(),
                V::Null,
            ]
        })
        .collect()
}

fn pg_user(_ctx: &Ctx) -> Vec<Row> {
    ROLES
        .iter()
        .filter(|(.., login)| *login)
        .map(|(oid, name, sup, _)| {
            vec![
                (*name).into(),
                (*oid).into(),
                (*sup).into(),
                (*sup).into(),
                (*sup).into(),
                (*sup).into(),
                "********".into(),
                V::Null,
                V::Null,
            ]
        })
        .collect()
}

/// `pg_settings` rows for `vars`.
pub(crate) fn settings_rows(vars: &SessionVars) -> Vec<Row> {
    vars.show_all()
        .into_iter()
        .map(|(name, setting, description)| {
            vec![
                name.into(),
                setting.clone().into(),
                V::Null,
                "Floe".into(),
                description.into(),
                V::Null,
                "user".into(),
                "string".into(),
                "default".into(),
                V::Null,
                V::Null,
                V::Null,
                setting.clone().into(),
                setting.into(),
                V::Null,
                V::Null,
                false.into(),
            ]
        })
        .collect()
}

fn pg_settings(_ctx: &Ctx) -> Vec<Row> {
    settings_rows(&SessionVars::default())
}

fn pg_tables(ctx: &Ctx) -> Vec<Row> {
    let mut rows: Vec<Row> = SYSTEM_TABLES
        .iter()
        .filter(|t| t.relkind == "r")
        .map(|t| {
            vec![
                "pg_catalog".into(),
                t.name.into(),
                "postgres".into(),
                V::Null,
                false.into(),
                false.into(),
                false.into(),
                false.into(),
            ]
        })
        .collect();
    for (_, def) in relations(ctx) {
        if def.is_table() {
            rows.push(vec![
                (&def.schema).into(),
                (&def.name).into(),
                "postgres".into(),
                V::Null,
                (!oids::indexes(def).is_empty()).into(),
                false.into(),
                false.into(),
                false.into(),
            ]);
        }
    }
    rows
}

fn pg_views(ctx: &Ctx) -> Vec<Row> {
    let mut rows: Vec<Row> = SYSTEM_TABLES
        .iter()
        .filter(|t| t.relkind == "v")
        .map(|t| {
            vec![
                "pg_catalog".into(),
                t.name.into(),
                "postgres".into(),
                V::Null,
            ]
        })
        .collect();
    for (_, def) in relations(ctx) {
        if let RelationKind::View { query, .. } = &def.kind {
            rows.push(vec![
                (&def.schema).into(),
                (&def.name).into(),
                "postgres".into(),
                view_definition(query).into(),
            ]);
        }
    }
    rows
}

fn pg_matviews(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for (_, def) in relations(ctx) {
        if let RelationKind::MaterializedView { query, .. } = &def.kind {
            rows.push(vec![
                (&def.schema).into(),
                (&def.name).into(),
                "postgres".into(),
                V::Null,
                (!oids::indexes(def).is_empty()).into(),
                // Floe's materialized views are always populated (maintained on every commit).
                true.into(),
                view_definition(query).into(),
            ]);
        }
    }
    rows
}

/// A view's definition as `pg_get_viewdef` prints it.
pub(crate) fn view_definition(query: &str) -> String {
    format!(" {};", query.trim().trim_end_matches(';'))
}

/// `CREATE [UNIQUE] INDEX …` for a key.
pub(crate) fn index_definition(def: &TableDef, key: &KeyInfo) -> String {
    let columns: Vec<String> = key
        .columns
        .iter()
        .filter_map(|id| oids::column_by_id(def, *id).map(|c| oids::quote_ident(&c.name)))
        .collect();
    format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if key.unique { "UNIQUE " } else { "" },
        oids::quote_ident(&key.name),
        oids::quote_ident(&def.schema),
        oids::quote_ident(&def.name),
        columns.join(", ")
    )
}

fn pg_indexes(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for (_, def) in relations(ctx) {
        for key in oids::indexes(def) {
            rows.push(vec![
                (&def.schema).into(),
                (&def.name).into(),
                (&key.name).into(),
                V::Null,
                index_definition(def, &key).into(),
            ]);
        }
    }
    rows
}

fn pg_sequences(ctx: &Ctx) -> Vec<Row> {
    sequences(ctx)
        .into_iter()
        .map(|(_, def, seq)| {
            let last = match ctx.db.sequence_value(def) {
                Ok((value, true)) => Some(value),
                _ => None,
            };
            vec![
                (&def.schema).into(),
                (&def.name).into(),
                "postgres".into(),
                sequence_type(seq).name().into(),
                seq.start.into(),
                seq.min.into(),
                seq.max.into(),
                seq.increment.into(),
                seq.cycle.into(),
                1i64.into(),
                last.into(),
            ]
        })
        .collect()
}

fn pg_stat_user_tables(ctx: &Ctx) -> Vec<Row> {
    relations(ctx)
        .into_iter()
        .filter(|(_, def)| def.is_table())
        .map(|(_, def)| {
            let live = row_count(ctx, def) as i64;
            let mut row: Row = vec![def.id.into(), (&def.schema).into(), (&def.name).into()];
            row.extend((0..8).map(|_| V::Int(0)));
            row.push(live.into());
            row.extend((0..3).map(|_| V::Int(0)));
            row.extend((0..4).map(|_| V::Null));
            row.extend((0..4).map(|_| V::Int(0)));
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tables_have_unique_names_and_oids() {
        let mut names: Vec<_> = SYSTEM_TABLES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SYSTEM_TABLES.len());
        let mut oids: Vec<_> = SYSTEM_TABLES.iter().map(|t| t.oid).collect();
        oids.sort();
        oids.dedup();
        assert_eq!(oids.len(), SYSTEM_TABLES.len());
        assert!(is_empty_table("pg_inherits"));
        assert!(!is_empty_table("pg_class"));
    }

    #[test]
    fn static_tables_load() {
        for t in SYSTEM_TABLES {
            assert!(!t.columns().is_empty(), "{} has columns", t.name);
        }
    }
}

//! `information_schema`, computed from Floe's catalog with PostgreSQL's names and type
//! spellings (`integer`, `character varying`, …). It replaces DataFusion's own
//! `information_schema`, which speaks Arrow types.
//!
//! It describes the connected database's user relations (PostgreSQL also lists the system
//! catalogs here; Floe does not).

use std::sync::Arc;

use floe_storage::{ConstraintDef, RelationKind, TableDef};

use super::oids;
use super::system::{check_columns, sequence_type};
use super::table::{Columns, Ctx, Kind, Row, RowFn, V};
use crate::types::SqlType;

use Kind::{Int4, Text};

/// A view of `information_schema`.
pub(crate) struct InfoTable {
    pub name: &'static str,
    pub oid: u32,
    pub columns: Columns,
    pub rows: RowFn,
}

/// The schemas of views computed from Floe's state: `information_schema` and `floe_catalog`,
/// as (namespace OID, name, views).
pub(crate) fn view_schemas() -> [(u32, &'static str, &'static [InfoTable]); 2] {
    [
        (oids::INFORMATION_SCHEMA_OID, "information_schema", TABLES),
        (
            oids::FLOE_CATALOG_OID,
            super::floe_catalog::FLOE_CATALOG,
            super::floe_catalog::TABLES,
        ),
    ]
}

/// The view with OID `oid` of [`view_schemas`], with its schema's name.
pub(crate) fn view_by_oid(oid: u32) -> Option<(&'static str, &'static InfoTable)> {
    view_schemas()
        .into_iter()
        .find_map(|(_, schema, views)| views.iter().find(|t| t.oid == oid).map(|t| (schema, t)))
}

/// Every view of `information_schema`.
pub(crate) const TABLES: &[InfoTable] = &[
    InfoTable {
        name: "check_constraints",
        oid: 13101,
        columns: CHECK_CONSTRAINTS,
        rows: check_constraints,
    },
    InfoTable {
        name: "columns",
        oid: 13102,
        columns: COLUMNS,
        rows: columns,
    },
    InfoTable {
        name: "key_column_usage",
        oid: 13103,
        columns: KEY_COLUMN_USAGE,
        rows: key_column_usage,
    },
    InfoTable {
        name: "referential_constraints",
        oid: 13104,
        columns: REFERENTIAL_CONSTRAINTS,
        rows: |_| Vec::new(),
    },
    InfoTable {
        name: "routines",
        oid: 13105,
        columns: ROUTINES,
        rows: |_| Vec::new(),
    },
    InfoTable {
        name: "schemata",
        oid: 13106,
        columns: SCHEMATA,
        rows: schemata,
    },
    InfoTable {
        name: "sequences",
        oid: 13107,
        columns: SEQUENCES,
        rows: sequences,
    },
    InfoTable {
        name: "table_constraints",
        oid: 13108,
        columns: TABLE_CONSTRAINTS,
        rows: table_constraints,
    },
    InfoTable {
        name: "tables",
        oid: 13109,
        columns: TABLES_COLUMNS,
        rows: tables,
    },
    InfoTable {
        name: "triggers",
        oid: 13110,
        columns: TRIGGERS,
        rows: |_| Vec::new(),
    },
    InfoTable {
        name: "views",
        oid: 13111,
        columns: VIEWS,
        rows: views,
    },
];

/// The view named `name`.
pub(crate) fn table(name: &str) -> Option<&'static InfoTable> {
    TABLES.iter().find(|t| t.name == name)
}

const SCHEMATA: Columns = &[
    ("catalog_name", Text),
    ("schema_name", Text),
    ("schema_owner", Text),
    ("default_character_set_catalog", Text),
    ("default_character_set_schema", Text),
    ("default_character_set_name", Text),
    ("sql_path", Text),
];

const TABLES_COLUMNS: Columns = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("table_type", Text),
    ("self_referencing_column_name", Text),
    ("reference_generation", Text),
    ("user_defined_type_catalog", Text),
    ("user_defined_type_schema", Text),
    ("user_defined_type_name", Text),
    ("is_insertable_into", Text),
    ("is_typed", Text),
    ("commit_action", Text),
];

const COLUMNS: Columns = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", Int4),
    ("column_default", Text),
    ("is_nullable", Text),
    ("data_type", Text),
    ("character_maximum_length", Int4),
    ("character_octet_length", Int4),
    ("numeric_precision", Int4),
    ("numeric_precision_radix", Int4),
    ("numeric_scale", Int4),
    ("datetime_precision", Int4),
    ("interval_type", Text),
    ("interval_precision", Int4),
    ("character_set_catalog", Text),
    ("character_set_schema", Text),
    ("character_set_name", Text),
    ("collation_catalog", Text),
    ("collation_schema", Text),
    ("collation_name", Text),
    ("domain_catalog", Text),
    ("domain_schema", Text),
    ("domain_name", Text),
    ("udt_catalog", Text),
    ("udt_schema", Text),
    ("udt_name", Text),
    ("scope_catalog", Text),
    ("scope_schema", Text),
    ("scope_name", Text),
    ("maximum_cardinality", Int4),
    ("dtd_identifier", Text),
    ("is_self_referencing", Text),
    ("is_identity", Text),
    ("identity_generation", Text),
    ("identity_start", Text),
    ("identity_increment", Text),
    ("identity_maximum", Text),
    ("identity_minimum", Text),
    ("identity_cycle", Text),
    ("is_generated", Text),
    ("generation_expression", Text),
    ("is_updatable", Text),
];

const VIEWS: Columns = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("view_definition", Text),
    ("check_option", Text),
    ("is_updatable", Text),
    ("is_insertable_into", Text),
    ("is_trigger_updatable", Text),
    ("is_trigger_deletable", Text),
    ("is_trigger_insertable_into", Text),
];

const SEQUENCES: Columns = &[
    ("sequence_catalog", Text),
    ("sequence_schema", Text),
    ("sequence_name", Text),
    ("data_type", Text),
    ("numeric_precision", Int4),
    ("numeric_precision_radix", Int4),
    ("numeric_scale", Int4),
    ("start_value", Text),
    ("minimum_value", Text),
    ("maximum_value", Text),
    ("increment", Text),
    ("cycle_option", Text),
];

const TABLE_CONSTRAINTS: Columns = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("constraint_type", Text),
    ("is_deferrable", Text),
    ("initially_deferred", Text),
    ("enforced", Text),
    ("nulls_distinct", Text),
];

const KEY_COLUMN_USAGE: Columns = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", Int4),
    ("position_in_unique_constraint", Int4),
];

const CHECK_CONSTRAINTS: Columns = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("check_clause", Text),
];

const REFERENTIAL_CONSTRAINTS: Columns = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("unique_constraint_catalog", Text),
    ("unique_constraint_schema", Text),
    ("unique_constraint_name", Text),
    ("match_option", Text),
    ("update_rule", Text),
    ("delete_rule", Text),
];

const ROUTINES: Columns = &[
    ("specific_catalog", Text),
    ("specific_schema", Text),
    ("specific_name", Text),
    ("routine_catalog", Text),
    ("routine_schema", Text),
    ("routine_name", Text),
    ("routine_type", Text),
    ("data_type", Text),
    ("routine_body", Text),
    ("routine_definition", Text),
    ("external_language", Text),
];

const TRIGGERS: Columns = &[
    ("trigger_catalog", Text),
    ("trigger_schema", Text),
    ("trigger_name", Text),
    ("event_manipulation", Text),
    ("event_object_catalog", Text),
    ("event_object_schema", Text),
    ("event_object_table", Text),
    ("action_order", Int4),
    ("action_condition", Text),
    ("action_statement", Text),
    ("action_orientation", Text),
    ("action_timing", Text),
];

fn yes(b: bool) -> V {
    if b { "YES" } else { "NO" }.into()
}

/// The database's relations, in schema and OID order.
fn relations(ctx: &Ctx) -> Vec<&Arc<TableDef>> {
    ctx.catalog
        .schemas(&ctx.database)
        .flat_map(|s| ctx.catalog.relations_in(&ctx.database, &s.name))
        .collect()
}

fn schemata(ctx: &Ctx) -> Vec<Row> {
    super::system::namespaces(ctx)
        .into_iter()
        .map(|(_, name, owner)| {
            let owner = super::system::ROLES
                .iter()
                .find(|r| r.0 == owner)
                .map_or("postgres", |r| r.1);
            vec![
                (&ctx.database).into(),
                name.into(),
                owner.into(),
                V::Null,
                V::Null,
                V::Null,
                V::Null,
            ]
        })
        .collect()
}

fn tables(ctx: &Ctx) -> Vec<Row> {
    relations(ctx)
        .into_iter()
        .filter_map(|def| {
            let (kind, insertable) = match def.kind {
                RelationKind::Table if def.is_temporary() => ("LOCAL TEMPORARY", true),
                RelationKind::Table => ("BASE TABLE", true),
                RelationKind::View { .. } => ("VIEW", false),
                // PostgreSQL's information_schema leaves materialized views out.
                RelationKind::Sequence(_) | RelationKind::MaterializedView { .. } => return None,
            };
            Some(vec![
                (&ctx.database).into(),
                (&def.schema).into(),
                (&def.name).into(),
                kind.into(),
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                yes(insertable),
                "NO".into(),
                V::Null,
            ])
        })
        .collect()
}

/// `information_schema` spelling of a type (`ARRAY` for arrays).
fn data_type(t: &SqlType) -> String {
    match t {
        SqlType::Array(_) => "ARRAY".into(),
        SqlType::Bpchar => "character".into(),
        other => other.name(),
    }
}

struct Numeric {
    precision: Option<i32>,
    radix: Option<i32>,
    scale: Option<i32>,
}

fn numeric_facts(t: &SqlType, typmod: i32) -> Numeric {
    let binary = |p: i32, scale: Option<i32>| Numeric {
        precision: Some(p),
        radix: Some(2),
        scale,
    };
    match t {
        SqlType::Int2 => binary(16, Some(0)),
        SqlType::Int4 => binary(32, Some(0)),
        SqlType::Int8 => binary(64, Some(0)),
        SqlType::Float4 => binary(24, None),
        SqlType::Float8 => binary(53, None),
        SqlType::Numeric => {
            let (p, s) = if typmod >= 4 {
                let m = typmod - 4;
                (Some((m >> 16) & 0xffff), Some(m & 0xffff))
            } else {
                (None, None)
            };
            Numeric {
                precision: p,
                radix: Some(10),
                scale: s,
            }
        }
        _ => Numeric {
            precision: None,
            radix: None,
            scale: None,
        },
    }
}

fn columns(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for def in relations(ctx) {
        if matches!(
            def.kind,
            RelationKind::Sequence(_) | RelationKind::MaterializedView { .. }
        ) {
            continue;
        }
        let is_view = matches!(def.kind, RelationKind::View { .. });
        for column in &def.columns {
            let t = oids::column_type(&column.field);
            let typmod = oids::typmod(&column.field);
            let info = oids::type_info(&t);
            let (char_len, octet_len) = match t {
                SqlType::Varchar | SqlType::Bpchar if typmod >= 4 => {
                    (Some(typmod - 4), Some((typmod - 4) * 4))
                }
                SqlType::Varchar | SqlType::Bpchar | SqlType::Text => (None, Some(1073741824)),
                _ => (None, None),
            };
            let numeric = numeric_facts(&t, typmod);
            let datetime = match t {
                SqlType::Date => Some(0),
                SqlType::Time | SqlType::Timestamp | SqlType::Timestamptz | SqlType::Interval => {
                    Some(6)
                }
                _ => None,
            };
            let identity = column.identity;
            let (default, identity_generation) = match identity {
                Some(always) => (None, Some(if always { "ALWAYS" } else { "BY DEFAULT" })),
                None => (column.default.as_deref().map(oids::display_default), None),
            };
            let mut row: Row = vec![
                (&ctx.database).into(),
                (&def.schema).into(),
                (&def.name).into(),
                (&column.name).into(),
                (column.id as i32).into(),
                default.into(),
                yes(!column.not_null()),
                data_type(&t).into(),
                char_len.into(),
                octet_len.into(),
                numeric.precision.into(),
                numeric.radix.into(),
                numeric.scale.into(),
                datetime.into(),
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                (&ctx.database).into(),
                "pg_catalog".into(),
                info.typname.into(),
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                column.id.to_string().into(),
                "NO".into(),
                yes(identity.is_some()),
                identity_generation.into(),
            ];
            let sequence = identity.and_then(|_| identity_sequence(ctx, def, column.id));
            match sequence {
                Some(seq) => {
                    row.push(seq.start.to_string().into());
                    row.push(seq.increment.to_string().into());
                    row.push(seq.max.to_string().into());
                    row.push(seq.min.to_string().into());
                    row.push(yes(seq.cycle));
                }
                None if identity.is_some() => {
                    row.extend((0..4).map(|_| V::Null));
                    row.push("NO".into());
                }
                None => row.extend((0..5).map(|_| V::Null)),
            }
            row.push("NEVER".into());
            row.push(V::Null);
            row.push(yes(!is_view));
            rows.push(row);
        }
    }
    rows
}

/// The sequence behind identity column `column` of `def`.
fn identity_sequence(ctx: &Ctx, def: &TableDef, column: u32) -> Option<floe_storage::SequenceDef> {
    ctx.catalog
        .relations_in(&ctx.database, &def.schema)
        .find_map(|r| match &r.kind {
            RelationKind::Sequence(seq) if seq.owned_by == Some((def.id, column)) => {
                Some(seq.clone())
            }
            _ => None,
        })
}

fn views(ctx: &Ctx) -> Vec<Row> {
    relations(ctx)
        .into_iter()
        .filter_map(|def| match &def.kind {
            RelationKind::View { query, .. } => Some(vec![
                (&ctx.database).into(),
                (&def.schema).into(),
                (&def.name).into(),
                super::system::view_definition(query).into(),
                "NONE".into(),
                "NO".into(),
                "NO".into(),
                "NO".into(),
                "NO".into(),
                "NO".into(),
            ]),
            _ => None,
        })
        .collect()
}

fn sequences(ctx: &Ctx) -> Vec<Row> {
    relations(ctx)
        .into_iter()
        .filter_map(|def| match &def.kind {
            RelationKind::Sequence(seq) => {
                let t = sequence_type(seq);
                let bits: i32 = match t {
                    SqlType::Int2 => 16,
                    SqlType::Int4 => 32,
                    _ => 64,
                };
                Some(vec![
                    (&ctx.database).into(),
                    (&def.schema).into(),
                    (&def.name).into(),
                    t.name().into(),
                    bits.into(),
                    2i32.into(),
                    0i32.into(),
                    seq.start.to_string().into(),
                    seq.min.to_string().into(),
                    seq.max.to_string().into(),
                    seq.increment.to_string().into(),
                    yes(seq.cycle),
                ])
            }
            _ => None,
        })
        .collect()
}

/// Every constraint of `def` as (name, type, columns), NOT NULL columns included (PostgreSQL
/// lists them as CHECK constraints named `<schema oid>_<table oid>_<attnum>_not_null`).
fn table_constraint_list(ctx: &Ctx, def: &TableDef) -> Vec<(String, &'static str, Vec<i64>)> {
    let mut out = Vec::new();
    for key in oids::keys(def) {
        let kind = if key.primary { "PRIMARY KEY" } else { "UNIQUE" };
        out.push((key.name.clone(), kind, key.columns.clone()));
    }
    for constraint in &def.constraints {
        if let ConstraintDef::Check { name, expr } = constraint {
            out.push((name.clone(), "CHECK", check_columns(def, expr)));
        }
    }
    let schema_oid = ctx
        .catalog
        .schema(&ctx.database, &def.schema)
        .map_or(0, |s| s.oid);
    for column in def.columns.iter().filter(|c| c.not_null()) {
        out.push((
            format!("{schema_oid}_{}_{}_not_null", def.id, column.id),
            "CHECK",
            vec![column.id as i64],
        ));
    }
    out
}

fn table_constraints(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for def in relations(ctx).into_iter().filter(|d| d.is_table()) {
        for (name, kind, _) in table_constraint_list(ctx, def) {
            rows.push(vec![
                (&ctx.database).into(),
                (&def.schema).into(),
                name.into(),
                (&ctx.database).into(),
                (&def.schema).into(),
                (&def.name).into(),
                kind.into(),
                "NO".into(),
                "NO".into(),
                "YES".into(),
                if kind == "CHECK" {
                    V::Null
                } else {
                    "YES".into()
                },
            ]);
        }
    }
    rows
}

fn key_column_usage(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for def in relations(ctx).into_iter().filter(|d| d.is_table()) {
        for key in oids::keys(def) {
            for (i, id) in key.columns.iter().enumerate() {
                let Some(column) = oids::column_by_id(def, *id) else {
                    continue;
                };
                rows.push(vec![
                    (&ctx.database).into(),
                    (&def.schema).into(),
                    (&key.name).into(),
                    (&ctx.database).into(),
                    (&def.schema).into(),
                    (&def.name).into(),
                    (&column.name).into(),
                    (i as i32 + 1).into(),
                    V::Null,
                ]);
            }
        }
    }
    rows
}

fn check_constraints(ctx: &Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    for def in relations(ctx).into_iter().filter(|d| d.is_table()) {
        for constraint in &def.constraints {
            if let ConstraintDef::Check { name, expr } = constraint {
                rows.push(vec![
                    (&ctx.database).into(),
                    (&def.schema).into(),
                    name.into(),
                    format!("({expr})").into(),
                ]);
            }
        }
        let schema_oid = ctx
            .catalog
            .schema(&ctx.database, &def.schema)
            .map_or(0, |s| s.oid);
        for column in def.columns.iter().filter(|c| c.not_null()) {
            rows.push(vec![
                (&ctx.database).into(),
                (&def.schema).into(),
                format!("{schema_oid}_{}_{}_not_null", def.id, column.id).into(),
                format!("{} IS NOT NULL", oids::quote_ident(&column.name)).into(),
            ]);
        }
    }
    rows
}

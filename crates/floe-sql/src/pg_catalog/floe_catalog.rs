//! `floe_catalog`: views of what Floe does that PostgreSQL has no catalog for, in every
//! database: the cold tier's runs (`cold_runs`, the newest manifest version) and its
//! compactions (`compactions`: running ones, with progress, and the last finished), and the
//! maintenance of the database's materialized views (`materialized_views`).
//!
//! Like `information_schema`, computed when scanned; the runs and compactions are the whole
//! server's (the cold tier is shared), named by the connected database's relations where it
//! has them.

use std::time::{SystemTime, UNIX_EPOCH};

use super::information_schema::InfoTable;
use super::table::{Columns, Ctx, Kind, Row, V};

use Kind::{Bool, Int4, Int8, Oid, Text, TimestampTz};

/// The schema's name.
pub const FLOE_CATALOG: &str = "floe_catalog";

/// Every view of `floe_catalog`.
pub(crate) const TABLES: &[InfoTable] = &[
    InfoTable {
        name: "cold_runs",
        oid: 13501,
        columns: COLD_RUNS,
        rows: cold_runs,
    },
    InfoTable {
        name: "compactions",
        oid: 13502,
        columns: COMPACTIONS,
        rows: compactions,
    },
    InfoTable {
        name: "materialized_views",
        oid: 13503,
        columns: MATERIALIZED_VIEWS,
        rows: materialized_views,
    },
];

/// The view named `name`.
pub(crate) fn table(name: &str) -> Option<&'static InfoTable> {
    TABLES.iter().find(|t| t.name == name)
}

const COLD_RUNS: Columns = &[
    ("relid", Oid),
    ("schemaname", Text),
    ("relname", Text),
    ("path", Text),
    ("level", Int4),
    ("rows", Int8),
    ("bytes", Int8),
    ("min_commit_ts", Int8),
    ("max_commit_ts", Int8),
    ("unique_keys", Bool),
];

const MATERIALIZED_VIEWS: Columns = &[
    ("relid", Oid),
    ("schemaname", Text),
    ("relname", Text),
    ("state", Text),
    ("frontier_ts", Int8),
    ("lag_ts", Int8),
    ("rows", Int8),
    ("output_bytes", Int8),
    ("hydration_ms", Int8),
    ("error", Text),
];

const COMPACTIONS: Columns = &[
    ("id", Int8),
    ("relid", Oid),
    ("schemaname", Text),
    ("relname", Text),
    ("state", Text),
    ("started", TimestampTz),
    ("finished", TimestampTz),
    ("input_runs", Int4),
    ("input_rows", Int8),
    ("input_bytes", Int8),
    ("rows_read", Int8),
    ("output_runs", Int4),
    ("output_rows", Int8),
    ("output_bytes", Int8),
    ("moved_runs", Int4),
    ("dropped_runs", Int4),
    ("error", Text),
];

/// The schema and name of relation `oid` in the connected database (NULLs: another
/// database's, or dropped).
fn names(ctx: &Ctx, oid: u32) -> (V, V) {
    match ctx.catalog.relation(oid) {
        Some(def) if def.database == ctx.database => {
            (def.schema.as_str().into(), def.name.as_str().into())
        }
        _ => (V::Null, V::Null),
    }
}

fn micros(time: SystemTime) -> V {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => V::Int(since.as_micros() as i64),
        Err(_) => V::Null,
    }
}

fn cold_runs(ctx: &Ctx) -> Vec<Row> {
    ctx.db
        .cold_runs()
        .into_iter()
        .map(|run| {
            let (schema, name) = names(ctx, run.table_id);
            vec![
                run.table_id.into(),
                schema,
                name,
                run.path.into(),
                run.level.into(),
                (run.rows as i64).into(),
                (run.bytes as i64).into(),
                (run.min_ts as i64).into(),
                (run.max_ts as i64).into(),
                run.unique_keys.into(),
            ]
        })
        .collect()
}

fn compactions(ctx: &Ctx) -> Vec<Row> {
    ctx.db
        .compactions()
        .into_iter()
        .map(|c| {
            let (schema, name) = names(ctx, c.table_id);
            vec![
                (c.id as i64).into(),
                c.table_id.into(),
                schema,
                name,
                c.state.name().into(),
                micros(c.started),
                c.finished.map_or(V::Null, micros),
                c.input_runs.into(),
                (c.input_rows as i64).into(),
                (c.input_bytes as i64).into(),
                (c.rows_read as i64).into(),
                c.output_runs.into(),
                (c.output_rows as i64).into(),
                (c.output_bytes as i64).into(),
                c.moved_runs.into(),
                c.dropped_runs.into(),
                c.error.into(),
            ]
        })
        .collect()
}

/// The connected database's materialized views and their maintenance: `state` is `hydrating`
/// (being built from its base tables), `running`, `error` (the defining query fails at the
/// newest snapshot; reads return that error), `stopped` (maintenance ended; `error` says why)
/// or `not maintained` (read as its query: created by a block not yet committed, or its
/// maintenance could not start). `lag_ts`: commits not yet reflected.
fn materialized_views(ctx: &Ctx) -> Vec<Row> {
    let visible = ctx.db.visible_ts();
    ctx.catalog
        .relations()
        .filter(|r| r.database == ctx.database && r.is_materialized_view())
        .map(|def| {
            let maintained = ctx.matviews.as_ref().and_then(|m| m.get(def.id));
            let head = vec![
                def.id.into(),
                def.schema.as_str().into(),
                def.name.as_str().into(),
            ];
            let tail = match maintained {
                None => vec![
                    "not maintained".into(),
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                    V::Null,
                ],
                Some(m) => {
                    let status = m.status();
                    let state = match (&status.error, status.hydrated, status.stats.errors) {
                        (Some(_), _, _) => "stopped",
                        (None, false, _) => "hydrating",
                        (None, true, true) => "error",
                        (None, true, false) => "running",
                    };
                    let lag = (visible + 1).saturating_sub(status.frontier);
                    vec![
                        state.into(),
                        (status.frontier.saturating_sub(1) as i64).into(),
                        (lag as i64).into(),
                        (status.stats.rows as i64).into(),
                        (status.stats.output_bytes as i64).into(),
                        status
                            .hydration_time
                            .map_or(V::Null, |d| V::Int(d.as_millis() as i64)),
                        status.error.map_or(V::Null, V::from),
                    ]
                }
            };
            head.into_iter().chain(tail).collect()
        })
        .collect()
}

//! PostgreSQL's catalog as clients look for it: the `pg_catalog` and `information_schema`
//! schemas of every database, backed by Floe's own catalog, and the catalog functions
//! (`format_type`, `pg_get_indexdef`, `pg_table_is_visible`, …).
//!
//! - Tables describing relations (`pg_class`, `pg_attribute`, `pg_index`, `pg_constraint`,
//!   `pg_attrdef`, `pg_namespace`, `pg_sequence`, `pg_depend`, …) are computed from the storage
//!   catalog each time a query scans them, so a new table shows up at once, with its real,
//!   stable OID. Objects Floe's catalog has no OID for (the index behind a primary key, a
//!   constraint, a column default) get OIDs derived from their table's ([`oids`]).
//! - `pg_type` lists the types Floe speaks ([`crate::types::SqlType`]) plus the few system
//!   types catalog columns use.
//! - Catalogs of objects Floe does not have (`pg_inherits`, `pg_trigger`, `pg_policy`,
//!   `pg_publication`, …) are empty; built-in objects Floe does not model (`pg_proc`,
//!   `pg_operator`, `pg_cast`, …) are PostgreSQL 15's rows from `datafusion-pg-catalog`.
//! - OID columns are `int4` on the wire (PostgreSQL's `oid` is unsigned 32-bit; Floe's OIDs stay
//!   below 2^31).
//! - Queries are adapted before planning ([`rewrite`]): `pg_catalog.`-qualified calls,
//!   `OPERATOR(pg_catalog.~)`, `'t'::regclass`, `ARRAY(subquery)`, correlated subqueries in
//!   select lists, and queries over always-empty catalogs.
//!
//! Not modelled: roles beyond `postgres` (every user is trusted), privileges (every
//! `has_*_privilege` is true), comments (`obj_description` is NULL), statistics, and the
//! system catalogs' own rows in `information_schema`.

pub(crate) mod floe_catalog;
mod functions;
pub(crate) mod information_schema;
pub(crate) mod oids;
pub(crate) mod rewrite;
mod system;
mod table;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::execution::{FunctionRegistry, SessionState};
use floe_storage::Db;

use crate::error::{SqlError, SqlResult};

/// The schema of PostgreSQL's system catalogs.
pub const PG_CATALOG: &str = "pg_catalog";
/// The SQL-standard catalog views.
pub const INFORMATION_SCHEMA: &str = "information_schema";
pub use floe_catalog::FLOE_CATALOG;

/// Installs the catalog functions into `state` and replaces DataFusion's own
/// `information_schema` with Floe's (the schemas themselves resolve through
/// [`crate::catalog::FloeCatalogList`], see [`schema`]).
pub fn install(state: &mut SessionState, db: Arc<Db>) -> SqlResult<()> {
    state.config_mut().options_mut().catalog.information_schema = false;
    for udf in functions::all(db) {
        state.register_udf(Arc::new(udf)).map_err(SqlError::from)?;
    }
    Ok(())
}

/// `pg_catalog` or `information_schema` of `database`, if `name` is one of them.
pub fn schema(
    db: &Arc<Db>,
    matviews: &Arc<crate::matview::MatViews>,
    database: &str,
    name: &str,
) -> Option<Arc<dyn SchemaProvider>> {
    let kind = match name {
        PG_CATALOG => Kind::PgCatalog,
        INFORMATION_SCHEMA => Kind::InformationSchema,
        FLOE_CATALOG => Kind::FloeCatalog,
        _ => return None,
    };
    Some(Arc::new(CatalogSchema {
        db: db.clone(),
        matviews: matviews.clone(),
        database: database.to_string(),
        kind,
    }))
}

pub(crate) use rewrite::CatalogContext;
pub(crate) use system::procs;

/// Names of the catalog schemas every database has.
pub fn schema_names() -> [&'static str; 3] {
    [PG_CATALOG, INFORMATION_SCHEMA, FLOE_CATALOG]
}

/// Rewrites `statement` so DataFusion can answer clients' catalog queries (see [`rewrite`]).
pub(crate) fn rewrite_statement(
    statement: &mut datafusion::sql::sqlparser::ast::Statement,
    session: &dyn rewrite::CatalogContext,
) -> SqlResult<()> {
    rewrite::rewrite_statement(statement, session)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    PgCatalog,
    InformationSchema,
    FloeCatalog,
}

/// One database's `pg_catalog` or `information_schema`.
#[derive(Debug)]
struct CatalogSchema {
    db: Arc<Db>,
    matviews: Arc<crate::matview::MatViews>,
    database: String,
    kind: Kind,
}

#[async_trait]
impl SchemaProvider for CatalogSchema {
    fn table_names(&self) -> Vec<String> {
        match self.kind {
            Kind::PgCatalog => system::SYSTEM_TABLES
                .iter()
                .map(|t| t.name.to_string())
                .collect(),
            Kind::InformationSchema => information_schema::TABLES
                .iter()
                .map(|t| t.name.to_string())
                .collect(),
            Kind::FloeCatalog => floe_catalog::TABLES
                .iter()
                .map(|t| t.name.to_string())
                .collect(),
        }
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.kind {
            Kind::PgCatalog => match system::system_table(name) {
                Some(t) => Ok(Some(t.provider(&self.db, &self.database)?)),
                None => Ok(None),
            },
            Kind::InformationSchema | Kind::FloeCatalog => {
                let found = match self.kind {
                    Kind::InformationSchema => information_schema::table(name),
                    _ => floe_catalog::table(name),
                };
                Ok(found.map(|t| {
                    Arc::new(
                        table::CatalogTable::new(
                            t.name,
                            t.columns,
                            t.rows,
                            self.db.clone(),
                            &self.database,
                        )
                        .with_matviews(self.matviews.clone()),
                    ) as Arc<dyn TableProvider>
                }))
            }
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        match self.kind {
            Kind::PgCatalog => system::system_table(name).is_some(),
            Kind::InformationSchema => information_schema::table(name).is_some(),
            Kind::FloeCatalog => floe_catalog::table(name).is_some(),
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_psql;

//! DataFusion's catalog over Floe's: databases are DataFusion catalogs, schemas are schemas,
//! tables resolve to storage's [`FloeTable`] providers. Every database also has the
//! `pg_catalog` and `information_schema` schemas ([`crate::pg_catalog`]).
//!
//! The hidden schema `floe_internal` names the relations a DML statement reads while it is
//! being planned — its target with the row-key column (`floe_internal.target`) and the rows
//! RETURNING reads (`floe_internal.returning`). They are set for the planning task only
//! ([`with_dml_sources`]), so no session can see another's. COPY FROM reads its rows as
//! `floe_internal.copy`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use floe_storage::{Db, FloeTable};

use crate::matview::{MatViewTable, MatViews};

/// The schema that resolves DML planning's private relations.
pub const INTERNAL_SCHEMA: &str = "floe_internal";

/// The relations `floe_internal` resolves to while a DML statement is planned.
#[derive(Debug, Clone, Default)]
pub struct DmlSources {
    /// `floe_internal.target`: the statement's target table with its key column.
    pub target: Option<Arc<dyn TableProvider>>,
    /// `floe_internal.returning`: the rows RETURNING reads.
    pub returning: Option<Arc<dyn TableProvider>>,
    /// `floe_internal.copy`: the rows COPY FROM delivers, as text.
    pub copy: Option<Arc<dyn TableProvider>>,
    /// `floe_internal.lock_<i>`: the tables `SELECT … FOR UPDATE` locks rows of, with keys.
    pub locked: Vec<Arc<dyn TableProvider>>,
}

impl DmlSources {
    fn get(&self, name: &str) -> Option<Arc<dyn TableProvider>> {
        match name {
            "target" => self.target.clone(),
            "returning" => self.returning.clone(),
            "copy" => self.copy.clone(),
            _ => name
                .strip_prefix("lock_")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| self.locked.get(i).cloned()),
        }
    }
}

tokio::task_local! {
    static DML_SOURCES: DmlSources;
}

/// Runs `planning` with `floe_internal` resolving to `sources`.
pub async fn with_dml_sources<F: std::future::Future>(
    sources: DmlSources,
    planning: F,
) -> F::Output {
    DML_SOURCES.scope(sources, planning).await
}

/// Every database of the server.
#[derive(Debug)]
pub struct FloeCatalogList {
    db: Arc<Db>,
    matviews: Arc<MatViews>,
}

impl FloeCatalogList {
    /// The catalog list over `db`, its materialized views read from `matviews`.
    pub fn new(db: Arc<Db>, matviews: Arc<MatViews>) -> FloeCatalogList {
        FloeCatalogList { db, matviews }
    }
}

fn read_only<T>(what: &str) -> DfResult<T> {
    Err(DataFusionError::NotImplemented(format!(
        "{what} through DataFusion is not supported; use SQL DDL"
    )))
}

impl CatalogProviderList for FloeCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.db
            .catalog()
            .databases()
            .map(|d| d.name.clone())
            .collect()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        self.db.catalog().database(name)?;
        Some(Arc::new(FloeDatabase {
            db: self.db.clone(),
            matviews: self.matviews.clone(),
            database: name.to_string(),
        }))
    }
}

/// One database.
#[derive(Debug)]
struct FloeDatabase {
    db: Arc<Db>,
    matviews: Arc<MatViews>,
    database: String,
}

impl CatalogProvider for FloeDatabase {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .catalog()
            .schemas(&self.database)
            .map(|s| s.name.clone())
            .collect();
        names.extend(crate::pg_catalog::schema_names().map(String::from));
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(schema) =
            crate::pg_catalog::schema(&self.db, &self.matviews, &self.database, name)
        {
            return Some(schema);
        }
        if name == INTERNAL_SCHEMA {
            return Some(Arc::new(InternalSchema));
        }
        self.db.catalog().schema(&self.database, name)?;
        Some(Arc::new(FloeSchema {
            db: self.db.clone(),
            matviews: self.matviews.clone(),
            database: self.database.clone(),
            schema: name.to_string(),
        }))
    }

    fn register_schema(
        &self,
        _name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        read_only("registering a schema")
    }
}

/// One schema's tables.
#[derive(Debug)]
struct FloeSchema {
    db: Arc<Db>,
    matviews: Arc<MatViews>,
    database: String,
    schema: String,
}

#[async_trait]
impl SchemaProvider for FloeSchema {
    fn table_names(&self) -> Vec<String> {
        self.db
            .catalog()
            .relations_in(&self.database, &self.schema)
            .filter(|t| t.is_table())
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let catalog = self.db.catalog();
        let Some(def) = catalog.relation_by_name(&self.database, &self.schema, name) else {
            return Ok(None);
        };
        if def.is_materialized_view() {
            return Ok(self
                .matviews
                .get(def.id)
                .map(|m| Arc::new(MatViewTable::new(m, def.arrow_schema())) as _));
        }
        Ok(self
            .db
            .table(def.id)
            .map(|data| Arc::new(FloeTable::new(self.db.clone(), data, false)) as _))
    }

    fn register_table(
        &self,
        _name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        read_only("registering a table")
    }

    fn table_exist(&self, name: &str) -> bool {
        self.db
            .catalog()
            .relation_by_name(&self.database, &self.schema, name)
            .is_some_and(|t| t.is_table())
    }
}

/// `floe_internal`: the planning task's DML sources.
#[derive(Debug)]
struct InternalSchema;

#[async_trait]
impl SchemaProvider for InternalSchema {
    fn table_names(&self) -> Vec<String> {
        vec![]
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(DML_SOURCES.try_with(|s| s.get(name)).ok().flatten())
    }

    fn table_exist(&self, name: &str) -> bool {
        DML_SOURCES
            .try_with(|s| s.get(name).is_some())
            .unwrap_or(false)
    }
}

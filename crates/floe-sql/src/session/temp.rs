//! Temporary relations: the session's temporary schema and how names find it.
//!
//! As in PostgreSQL, a session's temporary tables, views and sequences live in a schema of its
//! own, `pg_temp_N`, where `N` is a slot no other live session holds ([`crate::engine::Engine`]'s temporary
//! slots, lowest free first). The schema is made when the session first creates a temporary
//! relation and stays (empty) after the session ends, for the next session given the slot.
//! Storage keeps it and its relations in memory only ([`floe_storage::Persistence`]): their
//! definitions, rows and sequence values are never written to disk, so nothing of them
//! survives a restart.
//!
//! Names: for a bare relation name the session's temporary schema is searched first, before
//! `search_path` (or where `search_path` lists `pg_temp`), so a temporary table hides a
//! permanent one of the same name; `pg_temp.t` names the session's own explicitly. All of this
//! is [`Session::relation_path`] and [`Session::schema_alias`], used by every lookup of a
//! relation by name ([`Session::find_relation`], `regclass`, `pg_table_is_visible`). DataFusion
//! resolves a bare name in one default schema only, so before planning
//! ([`Session::expand_views`]) a bare name that means a temporary relation is rewritten to its
//! qualified name. Other sessions see the catalog rows (`pg_class`, as in PostgreSQL) but any
//! use of another session's temporary schema is refused with 0A000.
//!
//! End of life: when the session ends (its [`Session`] is dropped: the client disconnected,
//! cleanly or not) its temporary relations are dropped before its slot is free again;
//! `DISCARD TEMP` and `DISCARD ALL` drop them earlier. A session that claims a slot first drops
//! whatever relations its schema still holds.

use datafusion::sql::sqlparser::ast::{ObjectName, OnCommit as AstOnCommit};
use floe_storage::{CatalogChange, OnCommit, Persistence, SchemaDef, TableDef};

use super::Session;
use crate::error::{sqlstate, SqlError, SqlResult};

/// The name that always means the session's own temporary schema.
pub(crate) const TEMP_SCHEMA_ALIAS: &str = "pg_temp";

/// The temporary schema of slot `slot`.
pub(crate) fn temp_schema_name(slot: u32) -> String {
    format!("pg_temp_{slot}")
}

/// Whether `schema` is some session's temporary schema (by name: PostgreSQL reserves `pg_`
/// schema names, so no user schema looks like one).
pub(crate) fn is_temp_schema_name(schema: &str) -> bool {
    schema
        .strip_prefix("pg_temp_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `ON COMMIT` as storage keeps it.
pub(super) fn on_commit(action: Option<AstOnCommit>) -> OnCommit {
    match action {
        None | Some(AstOnCommit::PreserveRows) => OnCommit::PreserveRows,
        Some(AstOnCommit::DeleteRows) => OnCommit::DeleteRows,
        Some(AstOnCommit::Drop) => OnCommit::Drop,
    }
}

fn invalid_definition(message: &str) -> SqlError {
    SqlError::new(sqlstate::INVALID_TABLE_DEFINITION, message)
}

impl Session {
    /// The session's temporary schema, once it has one.
    pub(crate) fn temp_schema(&self) -> Option<String> {
        self.temp_slot.map(temp_schema_name)
    }

    /// A schema name as written, with `pg_temp` meaning the session's temporary schema.
    pub(crate) fn schema_alias(&self, schema: &str) -> String {
        match (schema == TEMP_SCHEMA_ALIAS, self.temp_schema()) {
            (true, Some(temp)) => temp,
            _ => schema.to_string(),
        }
    }

    /// Refuses another session's temporary schema (0A000, as PostgreSQL refuses to read
    /// another session's temporary tables).
    pub(crate) fn check_schema_access(&self, schema: &str) -> SqlResult<()> {
        if is_temp_schema_name(schema) && self.temp_schema().as_deref() != Some(schema) {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cannot access temporary tables of other sessions",
            ));
        }
        Ok(())
    }

    /// The schemas a bare relation name is looked up in, in order: `search_path`'s existing
    /// schemas with the session's temporary schema where `search_path` lists `pg_temp`, or
    /// first when it does not.
    pub(crate) fn relation_path(&self) -> Vec<String> {
        let Some(temp) = self.temp_schema() else {
            return self.search_path();
        };
        let raw = self.vars.get("search_path").unwrap_or_default();
        let catalog = self.db().catalog();
        let mut path = Vec::new();
        let mut temp_listed = false;
        for entry in raw.split(',') {
            let name = entry.trim().trim_matches('"');
            let name = if name == "$user" {
                self.user.as_str()
            } else {
                name
            };
            if name == TEMP_SCHEMA_ALIAS || name == temp {
                if !temp_listed {
                    temp_listed = true;
                    path.push(temp.clone());
                }
            } else if !is_temp_schema_name(name) && catalog.schema(&self.database, name).is_some() {
                path.push(name.to_string());
            }
        }
        if !temp_listed {
            path.insert(0, temp);
        }
        path
    }

    /// Where a new relation named `name` goes: its schema, its bare name and its persistence.
    /// `temporary` is `CREATE TEMP …`; a relation created in the session's temporary schema
    /// is temporary even without it. The temporary schema is made on first use.
    pub(super) async fn creation_target(
        &mut self,
        name: &ObjectName,
        temporary: bool,
        action: Option<AstOnCommit>,
    ) -> SqlResult<(String, String, Persistence)> {
        let (schema, relation) = self.split_name(name)?;
        let schema = match schema {
            Some(schema) if schema == TEMP_SCHEMA_ALIAS => Some(self.ensure_temp_schema().await?),
            Some(schema) => {
                let exists = self
                    .db()
                    .catalog()
                    .schema(&self.database, &schema)
                    .is_some();
                if !exists {
                    return Err(SqlError::new(
                        sqlstate::INVALID_SCHEMA_NAME,
                        format!("schema \"{schema}\" does not exist"),
                    ));
                }
                if is_temp_schema_name(&schema) && self.temp_schema().as_deref() != Some(&schema) {
                    return Err(invalid_definition(
                        "cannot create relations in temporary schemas of other sessions",
                    ));
                }
                if temporary && !is_temp_schema_name(&schema) {
                    return Err(invalid_definition(
                        "cannot create temporary relation in non-temporary schema",
                    ));
                }
                Some(schema)
            }
            None if temporary => Some(self.ensure_temp_schema().await?),
            None => None,
        };
        let schema = match schema {
            Some(schema) => schema,
            None => self.search_path().into_iter().next().ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_SCHEMA_NAME,
                    "no schema has been selected to create in",
                )
            })?,
        };
        let persistence = if self.temp_schema().as_deref() == Some(schema.as_str()) {
            Persistence::Temporary(on_commit(action))
        } else {
            if action.is_some() {
                return Err(invalid_definition(
                    "ON COMMIT can only be used on temporary tables",
                ));
            }
            Persistence::Permanent
        };
        Ok((schema, relation, persistence))
    }

    /// The session's temporary schema, made (and cleared of a previous owner's leftovers) on
    /// first use. Committed on its own, outside any transaction block: the schema is empty
    /// and only this session can put anything in it.
    async fn ensure_temp_schema(&mut self) -> SqlResult<String> {
        if let Some(temp) = self.temp_schema() {
            return Ok(temp);
        }
        let slot = self.engine.claim_temp_slot();
        let name = temp_schema_name(slot);
        let db = self.db().clone();
        let catalog = db.committed_catalog();
        let mut changes: Vec<CatalogChange> = catalog
            .relations_in(&self.database, &name)
            .map(|def| CatalogChange::DropRelation(def.id))
            .collect();
        if catalog.schema(&self.database, &name).is_none() {
            changes.push(CatalogChange::PutSchema(SchemaDef {
                oid: db.allocate_oid(),
                database: self.database.clone(),
                name: name.clone(),
                temporary: true,
            }));
        }
        if !changes.is_empty() {
            if let Err(e) = db.commit_catalog(changes).await {
                self.engine.release_temp_slot(slot);
                return Err(e.into());
            }
        }
        self.temp_slot = Some(slot);
        Ok(name)
    }

    /// Drops for every relation in the session's temporary schema, as of `catalog`.
    fn temp_relation_drops(&self, catalog: &floe_storage::Catalog) -> Vec<CatalogChange> {
        let Some(temp) = self.temp_schema() else {
            return Vec::new();
        };
        catalog
            .relations_in(&self.database, &temp)
            .map(|def| CatalogChange::DropRelation(def.id))
            .collect()
    }

    /// `DISCARD TEMP`: drops the session's temporary relations (transactionally, like DROP).
    pub(super) async fn discard_temp(&mut self) -> SqlResult<()> {
        let changes = self.temp_relation_drops(&self.db().catalog());
        if !changes.is_empty() {
            self.commit_ddl(changes).await?;
        }
        Ok(())
    }

    /// Whether a view reading `depends_on` must be temporary (it reads a temporary relation).
    pub(super) fn reads_temporary(&self, depends_on: &[u32]) -> bool {
        let catalog = self.db().catalog();
        depends_on
            .iter()
            .any(|id| catalog.relation(*id).is_some_and(|r| r.is_temporary()))
    }

    /// The qualified name DataFusion must be given for `def`, a temporary relation.
    pub(super) fn temp_qualified(def: &TableDef) -> ObjectName {
        use datafusion::sql::sqlparser::ast::Ident;
        ObjectName::from(vec![
            Ident::with_quote('"', def.schema.clone()),
            Ident::with_quote('"', def.name.clone()),
        ])
    }
}

impl Session {
    /// At session end (from `Drop`): drops the session's temporary relations, waiting until
    /// that is applied so a next session given the same slot finds its schema empty, and
    /// frees the slot. Any open transaction block is rolled back first.
    pub(super) fn end_temporary(&mut self) {
        self.txn = None;
        self.ddl_locker = None;
        let Some(slot) = self.temp_slot.take() else {
            return;
        };
        let db = self.db().clone();
        let temp = temp_schema_name(slot);
        let changes: Vec<CatalogChange> = db
            .committed_catalog()
            .relations_in(&self.database, &temp)
            .map(|def| CatalogChange::DropRelation(def.id))
            .collect();
        if !changes.is_empty() {
            if let Err(e) = db.commit_catalog_blocking(changes) {
                // Shutting down: temporary relations are never on disk, so nothing remains.
                tracing::debug!(error = %e, "dropping temporary relations at session end failed");
            }
        }
        self.engine.release_temp_slot(slot);
    }
}

/// Whether `statement` creates a temporary relation: such DDL takes no name locks (the
/// session's temporary schema is its own, so no other session can take the name).
pub(super) fn creates_temporary(statement: &datafusion::sql::sqlparser::ast::Statement) -> bool {
    use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
    let named_temp = |name: &ObjectName| {
        name.0.len() >= 2
            && name.0[name.0.len() - 2].as_ident().is_some_and(|schema| {
                let schema = super::ddl::ident_name(schema);
                schema == TEMP_SCHEMA_ALIAS || is_temp_schema_name(&schema)
            })
    };
    match statement {
        Statement::CreateTable(create) => create.temporary || named_temp(&create.name),
        Statement::CreateView(create) => create.temporary || named_temp(&create.name),
        Statement::Query(query) => match query.body.as_ref() {
            SetExpr::Select(select) => select
                .into
                .as_ref()
                .is_some_and(|into| into.temporary || named_temp(&into.name)),
            _ => false,
        },
        _ => false,
    }
}

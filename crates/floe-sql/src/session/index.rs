//! `CREATE [UNIQUE] INDEX` and `DROP INDEX`.
//!
//! An index is part of its table's definition ([`floe_storage::IndexDef`]); creating one
//! commits the table's new definition, and storage builds the index from the rows before the
//! commit is written (a unique index over duplicates fails with 23505 and leaves nothing).
//! A materialized view's index is kept by the view engine beside the view's rows (built when
//! the reconciliation after the commit sees it, `crate::matview`).
//! Index names share the schema's namespace with relations, as in PostgreSQL. UNIQUE
//! constraints own an index of their own name; it is dropped with the constraint, not alone.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{CreateIndex, Expr, IndexType, ObjectName};
use floe_storage::{Catalog, CatalogChange, IndexDef, TableDef};

use super::ddl::ident_name;
use super::{Session, StatementResult};
use crate::error::{sqlstate, SqlError, SqlResult};

/// Whether `name` is taken in `schema` by a relation, a primary key or an index.
pub(super) fn name_taken(catalog: &Catalog, database: &str, schema: &str, name: &str) -> bool {
    catalog.relation_by_name(database, schema, name).is_some()
        || catalog.relations_in(database, schema).any(|def| {
            def.index(name).is_some() || def.primary_key.as_ref().is_some_and(|pk| pk.name == name)
        })
}

/// PostgreSQL's name for an unnamed index: `table_col1_col2_idx`, then `…_idx1`, `…_idx2`.
fn choose_name(catalog: &Catalog, def: &TableDef, columns: &[String]) -> String {
    let base = format!("{}_{}_idx", def.name, columns.join("_"));
    let mut name = base.clone();
    let mut n = 0;
    while name_taken(catalog, &def.database, &def.schema, &name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}

impl Session {
    /// `CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t [USING btree] (col, …)`.
    pub(super) async fn create_index(&mut self, create: CreateIndex) -> SqlResult<StatementResult> {
        let tag = || StatementResult::Command("CREATE INDEX".into());
        let def = self.relation(&create.table_name)?;
        if !def.is_table() && !def.is_materialized_view() {
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("cannot create index on relation \"{}\"", def.name),
            ));
        }
        match &create.using {
            None | Some(IndexType::BTree) => {}
            Some(other) => {
                return Err(SqlError::not_supported(format!(
                    "access method \"{}\" is not supported; Floe indexes are btree",
                    other.to_string().to_lowercase()
                )))
            }
        }
        if create.predicate.is_some() {
            return Err(SqlError::not_supported("partial indexes"));
        }
        if !create.include.is_empty() {
            return Err(SqlError::not_supported("INCLUDE columns in an index"));
        }
        if create.nulls_distinct == Some(false) {
            return Err(SqlError::not_supported("NULLS NOT DISTINCT"));
        }
        let mut ids = Vec::with_capacity(create.columns.len());
        let mut names = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            let name = match &column.column.expr {
                Expr::Identifier(ident) => ident_name(ident),
                Expr::CompoundIdentifier(parts) if parts.len() == 1 => ident_name(&parts[0]),
                _ => return Err(SqlError::not_supported("indexes on expressions")),
            };
            let position = def.column_index(&name).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{name}\" does not exist"),
                )
            })?;
            ids.push(def.columns[position].id);
            names.push(name);
        }
        if ids.is_empty() {
            return Err(SqlError::syntax("an index needs at least one column"));
        }
        let catalog = self.db().catalog();
        let name = match &create.name {
            Some(name) => {
                let (schema, name) = self.split_name(name)?;
                if schema.is_some_and(|s| s != def.schema) {
                    return Err(SqlError::syntax(
                        "cannot specify a schema for the index: it goes in its table's schema",
                    ));
                }
                name
            }
            None => choose_name(&catalog, &def, &names),
        };
        if name_taken(&catalog, &def.database, &def.schema, &name) {
            if create.if_not_exists {
                self.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(tag());
            }
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        if def.is_materialized_view() && create.unique {
            self.check_view_unique(&def, &name, &names).await?;
        }
        let mut new_def = def.as_ref().clone();
        new_def.indexes.push(IndexDef {
            oid: self.db().allocate_oid(),
            name,
            columns: ids,
            unique: create.unique,
            constraint: false,
        });
        self.commit_ddl(vec![CatalogChange::PutRelation(Arc::new(new_def))])
            .await?;
        Ok(tag())
    }

    /// Fails with 23505 when the materialized view `def` repeats a key of `columns` (without
    /// NULLs) now. Later commits that make it repeat one are reported by its reads.
    async fn check_view_unique(
        &mut self,
        def: &TableDef,
        index: &str,
        columns: &[String],
    ) -> SqlResult<()> {
        let quoted: Vec<String> = columns
            .iter()
            .map(|c| super::matview::name_ident(c).to_string())
            .collect();
        let list = quoted.join(", ");
        let not_null: Vec<String> = quoted.iter().map(|c| format!("{c} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT {list} FROM {}.{} WHERE {} GROUP BY {list} HAVING count(*) > 1 LIMIT 1",
            super::matview::name_ident(&def.schema),
            super::matview::name_ident(&def.name),
            not_null.join(" AND ")
        );
        let statement = self
            .parse(&sql)?
            .pop()
            .ok_or_else(|| SqlError::internal("no statement"))?;
        let plan = self.plan_query(&statement, &[]).await?;
        let view = self.read_view().await;
        let batches = self.collect_plan(&plan, view).await?;
        match batches.iter().find(|b| b.num_rows() > 0) {
            Some(batch) => Err(crate::matview::duplicated(
                index,
                columns,
                &batch.slice(0, 1),
            )),
            None => Ok(()),
        }
    }

    /// `DROP INDEX [IF EXISTS] name, …`.
    pub(super) async fn drop_indexes(
        &mut self,
        names: Vec<ObjectName>,
        if_exists: bool,
    ) -> SqlResult<StatementResult> {
        let mut changed: Vec<TableDef> = Vec::new();
        for object in &names {
            let (schema, name) = self.split_name(object)?;
            let schemas = match schema {
                Some(schema) => {
                    let schema = self.schema_alias(&schema);
                    self.check_schema_access(&schema)?;
                    vec![schema]
                }
                None => self.relation_path(),
            };
            let catalog = self.db().catalog();
            let mut found = None;
            for schema in &schemas {
                if let Some(rel) = catalog.relation_by_name(&self.database, schema, &name) {
                    return Err(SqlError::new(
                        sqlstate::WRONG_OBJECT_TYPE,
                        format!("\"{}\" is not an index", rel.name),
                    ));
                }
                let owner = catalog.relations_in(&self.database, schema).find(|def| {
                    def.index(&name).is_some()
                        || def.primary_key.as_ref().is_some_and(|pk| pk.name == name)
                });
                if let Some(owner) = owner {
                    found = Some(owner.clone());
                    break;
                }
            }
            let Some(owner) = found else {
                if if_exists {
                    self.notice(format!("index \"{name}\" does not exist, skipping"));
                    continue;
                }
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!("index \"{name}\" does not exist"),
                ));
            };
            if owner.index(&name).is_none_or(|i| i.constraint) {
                return Err(SqlError::new(
                    sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                    format!(
                        "cannot drop index {name} because constraint {name} on table {} \
                         requires it",
                        owner.name
                    ),
                )
                .with_hint(format!(
                    "You can drop constraint {name} on table {} instead.",
                    owner.name
                )));
            }
            // Several indexes of one table in one statement edit one definition.
            match changed.iter_mut().find(|d| d.id == owner.id) {
                Some(def) => def.indexes.retain(|i| i.name != name),
                None => {
                    let mut def = owner.as_ref().clone();
                    def.indexes.retain(|i| i.name != name);
                    changed.push(def);
                }
            }
        }
        if !changed.is_empty() {
            let changes = changed
                .into_iter()
                .map(|def| CatalogChange::PutRelation(Arc::new(def)))
                .collect();
            self.commit_ddl(changes).await?;
        }
        Ok(StatementResult::Command("DROP INDEX".into()))
    }
}

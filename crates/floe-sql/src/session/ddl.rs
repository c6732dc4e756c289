//! DDL: CREATE/DROP of tables, schemas, sequences and databases, TRUNCATE.
//!
//! Definitions become storage [`TableDef`]s; SQL-level parts (DEFAULT and CHECK expressions)
//! are kept as SQL text and interpreted again by the DML planner.
//!
//! DDL is transactional as in PostgreSQL: inside a transaction block the changes go to the
//! transaction's pending catalog ([`floe_storage::pending`]) through [`Session::commit_ddl`],
//! are seen by this session at once and by others only when COMMIT writes them with the
//! transaction's rows in one commit record; ROLLBACK (or ROLLBACK TO SAVEPOINT, or an error
//! that fails the block) discards them. Outside a block each statement commits on its own.
//! CREATE/DROP DATABASE refuse to run inside a block (25001), as in PostgreSQL.
//!
//! Concurrency: before it runs, a DDL statement takes the DDL lock of every name it creates,
//! changes or drops ([`ddl_lock_names`]) — held to the end of the block inside one, to the end
//! of the statement outside — so DDL on one name serialises across sessions: the second waits
//! for the first to end, then sees its outcome (42P07, 42P01, …). DML and queries do not take
//! these locks: they read the committed catalog (never a half state), and a commit whose rows
//! were written for a table that a concurrent DDL dropped or rewrote meanwhile fails with 40001.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    self, ColumnOption, CreateTable, DataType as AstType, Expr, ObjectName, ObjectType, Statement,
    TableConstraint,
};
use floe_storage::{
    CatalogChange, ColumnDef, ConstraintDef, DatabaseDef, OnCommit, Persistence, PrimaryKey,
    RelationKind, SchemaDef, SequenceDef, TableDef,
};

use super::{Notice, Session, StatementResult};
use crate::error::{sqlstate, SqlError, SqlResult};
pub(crate) use crate::names::ident_name;
use crate::names::object_parts;
use crate::types::column_field;

fn already_exists(kind: &str, name: &str) -> SqlError {
    let code = match kind {
        "schema" => sqlstate::DUPLICATE_SCHEMA,
        "database" => sqlstate::DUPLICATE_DATABASE,
        _ => sqlstate::DUPLICATE_TABLE,
    };
    SqlError::new(code, format!("{kind} \"{name}\" already exists"))
}

impl Session {
    /// Splits a possibly qualified relation name into (schema if given, name).
    pub(crate) fn split_name(&self, name: &ObjectName) -> SqlResult<(Option<String>, String)> {
        let parts = object_parts(name);
        match parts.as_slice() {
            [name] => Ok((None, name.clone())),
            [schema, name] => Ok((Some(schema.clone()), name.clone())),
            [database, schema, name] => {
                if *database != self.database {
                    return Err(SqlError::not_supported(format!(
                        "cross-database references are not implemented: {name}"
                    )));
                }
                Ok((Some(schema.clone()), name.clone()))
            }
            _ => Err(SqlError::syntax(format!(
                "improper qualified name (too many dotted names): {name}"
            ))),
        }
    }

    /// The schemas of `search_path` that exist, in order.
    pub(crate) fn search_path(&self) -> Vec<String> {
        let path = self.vars.get("search_path").unwrap_or_default();
        let catalog = self.db().catalog();
        path.split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .map(|s| if s == "$user" { self.user.clone() } else { s })
            .filter(|s| catalog.schema(&self.database, s).is_some())
            .collect()
    }

    /// The relation `name` refers to, looked up along [`Session::relation_path`] (the
    /// session's temporary schema first) when unqualified. Naming another session's
    /// temporary schema is 0A000.
    pub(crate) fn find_relation(&self, name: &ObjectName) -> SqlResult<Option<Arc<TableDef>>> {
        self.find_relation_with(name, true)
    }

    /// [`Session::find_relation`]; `temporary`: whether a bare name may find a temporary
    /// relation (not from a permanent view's query, which cannot read one).
    pub(crate) fn find_relation_with(
        &self,
        name: &ObjectName,
        temporary: bool,
    ) -> SqlResult<Option<Arc<TableDef>>> {
        let (schema, relation) = self.split_name(name)?;
        let catalog = self.db().catalog();
        let found = match schema {
            Some(schema) => {
                let schema = self.schema_alias(&schema);
                self.check_schema_access(&schema)?;
                catalog
                    .relation_by_name(&self.database, &schema, &relation)
                    .cloned()
            }
            None => {
                let path = match temporary {
                    true => self.relation_path(),
                    false => self.search_path(),
                };
                path.iter().find_map(|schema| {
                    catalog
                        .relation_by_name(&self.database, schema, &relation)
                        .cloned()
                })
            }
        };
        Ok(found)
    }

    /// Like [`Session::find_relation`], but a missing relation is 42P01.
    pub(crate) fn relation(&self, name: &ObjectName) -> SqlResult<Arc<TableDef>> {
        self.find_relation(name)?.ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!(
                    "relation \"{}\" does not exist",
                    object_parts(name).join(".")
                ),
            )
        })
    }

    pub(super) fn notice(&mut self, message: String) {
        self.notices.push(Notice {
            severity: "NOTICE",
            code: sqlstate::SUCCESSFUL_COMPLETION,
            message,
        });
    }

    pub(super) async fn create_table(&mut self, create: CreateTable) -> SqlResult<StatementResult> {
        if create.query.is_some() {
            return Err(SqlError::not_supported(
                "CREATE TABLE AS is not supported yet",
            ));
        }
        let (schema, name, persistence) = self
            .creation_target(&create.name, create.temporary, create.on_commit)
            .await?;
        // A serial column's sequence shares its table's life (but not its ON COMMIT action,
        // which storage applies to the sequences a dropped table owns).
        let sequence_persistence = match persistence {
            Persistence::Permanent => Persistence::Permanent,
            Persistence::Temporary(_) => Persistence::Temporary(OnCommit::PreserveRows),
        };
        // Indexes share the relations' namespace.
        if super::index::name_taken(&self.db().catalog(), &self.database, &schema, &name) {
            if create.if_not_exists {
                self.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(StatementResult::Command("CREATE TABLE".into()));
            }
            return Err(already_exists("relation", &name));
        }
        let db = self.db().clone();
        let table_id = db.allocate_oid();
        let mut columns: Vec<ColumnDef> = Vec::new();
        let mut primary_key: Option<PrimaryKey> = None;
        let mut constraints: Vec<ConstraintDef> = Vec::new();
        let mut sequences: Vec<TableDef> = Vec::new();
        let mut names = HashSet::new();
        let mut not_null_columns = HashSet::new();

        for (position, column) in create.columns.iter().enumerate() {
            let column_name = ident_name(&column.name);
            if !names.insert(column_name.clone()) {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{column_name}\" specified more than once"),
                ));
            }
            let serial = serial_type(&column.data_type);
            let mut field = match &serial {
                Some(int_type) => column_field(&column_name, int_type)?,
                None => column_field(&column_name, &column.data_type)?,
            };
            let mut default = None;
            let mut identity = None;
            let mut identity_options = Vec::new();
            let mut not_null = false;
            let mut needs_sequence = false;
            if serial.is_some() {
                not_null = true;
                needs_sequence = true;
            }
            for option in &column.options {
                let constraint_name = option.name.as_ref().map(ident_name);
                match &option.option {
                    ColumnOption::Null => {}
                    ColumnOption::NotNull => not_null = true,
                    ColumnOption::Default(expr) => default = Some(expr.to_string()),
                    ColumnOption::PrimaryKey(_) => {
                        if primary_key.is_some() {
                            return Err(multiple_primary_keys(&name));
                        }
                        primary_key = Some(PrimaryKey {
                            name: constraint_name.unwrap_or_else(|| format!("{name}_pkey")),
                            columns: vec![position],
                        });
                        not_null = true;
                    }
                    ColumnOption::Unique(_) => constraints.push(ConstraintDef::Unique {
                        name: constraint_name
                            .unwrap_or_else(|| format!("{name}_{column_name}_key")),
                        columns: vec![position as u32 + 1],
                    }),
                    ColumnOption::Check(check) => constraints.push(ConstraintDef::Check {
                        name: constraint_name.unwrap_or_else(|| {
                            check_constraint_name(&name, &check.expr, &constraints)
                        }),
                        expr: check.expr.to_string(),
                    }),
                    ColumnOption::Generated {
                        generated_as,
                        generation_expr: None,
                        sequence_options,
                        ..
                    } => {
                        identity = Some(matches!(generated_as, ast::GeneratedAs::Always));
                        not_null = true;
                        needs_sequence = true;
                        identity_options = sequence_options.clone().unwrap_or_default();
                    }
                    ColumnOption::ForeignKey(_) => {
                        return Err(SqlError::not_supported(
                            "FOREIGN KEY constraints are not supported yet",
                        ))
                    }
                    other => {
                        return Err(SqlError::not_supported(format!(
                            "column option {other} is not supported"
                        )))
                    }
                }
            }
            if needs_sequence {
                let seq_name = format!("{name}_{column_name}_seq");
                let seq_id = db.allocate_oid();
                let mut sequence = sequence_options(field.data_type(), &identity_options)?;
                sequence.owned_by = Some((table_id, position as u32 + 1));
                sequences.push(TableDef {
                    id: seq_id,
                    database: self.database.clone(),
                    schema: schema.clone(),
                    name: seq_name.clone(),
                    kind: RelationKind::Sequence(sequence),
                    columns: vec![],
                    primary_key: None,
                    constraints: vec![],
                    indexes: vec![],
                    next_column_id: 1,
                    persistence: sequence_persistence,
                });
                default = Some(format!("nextval('{schema}.{seq_name}'::regclass)"));
            }
            if not_null {
                not_null_columns.insert(position);
            }
            field = field.with_nullable(!not_null);
            columns.push(ColumnDef {
                id: position as u32 + 1,
                name: column_name,
                field,
                default,
                identity,
            });
        }

        let column_position = |ident: &ast::Ident| -> SqlResult<usize> {
            let wanted = ident_name(ident);
            columns
                .iter()
                .position(|c| c.name == wanted)
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{wanted}\" named in key does not exist"),
                    )
                })
        };
        let index_positions = |index_columns: &[ast::IndexColumn]| -> SqlResult<Vec<usize>> {
            index_columns
                .iter()
                .map(|c| match &c.column.expr {
                    Expr::Identifier(ident) => column_position(ident),
                    other => Err(SqlError::not_supported(format!(
                        "expressions in keys are not supported: {other}"
                    ))),
                })
                .collect()
        };
        for constraint in &create.constraints {
            match constraint {
                TableConstraint::PrimaryKey(pk) => {
                    if primary_key.is_some() {
                        return Err(multiple_primary_keys(&name));
                    }
                    let positions = index_positions(&pk.columns)?;
                    primary_key = Some(PrimaryKey {
                        name: pk
                            .name
                            .as_ref()
                            .map(ident_name)
                            .unwrap_or_else(|| format!("{name}_pkey")),
                        columns: positions,
                    });
                }
                TableConstraint::Unique(unique) => {
                    let positions = index_positions(&unique.columns)?;
                    let column_names: Vec<&str> = positions
                        .iter()
                        .map(|&i| columns[i].name.as_str())
                        .collect();
                    constraints.push(ConstraintDef::Unique {
                        name: unique
                            .name
                            .as_ref()
                            .map(ident_name)
                            .unwrap_or_else(|| format!("{name}_{}_key", column_names.join("_"))),
                        columns: positions.iter().map(|&i| columns[i].id).collect(),
                    });
                }
                TableConstraint::Check(check) => {
                    constraints.push(ConstraintDef::Check {
                        name: check.name.as_ref().map(ident_name).unwrap_or_else(|| {
                            check_constraint_name(&name, &check.expr, &constraints)
                        }),
                        expr: check.expr.to_string(),
                    })
                }
                TableConstraint::ForeignKey(_) => {
                    return Err(SqlError::not_supported(
                        "FOREIGN KEY constraints are not supported yet",
                    ))
                }
                other => {
                    return Err(SqlError::not_supported(format!(
                        "table constraint {other} is not supported"
                    )))
                }
            }
        }
        if let Some(pk) = &primary_key {
            for &i in &pk.columns {
                columns[i].field = columns[i].field.clone().with_nullable(false);
            }
        }
        if columns.is_empty() {
            return Err(SqlError::not_supported(
                "tables without columns are not supported",
            ));
        }
        let next_column_id = columns.len() as u32 + 1;
        let table = TableDef {
            id: table_id,
            database: self.database.clone(),
            schema,
            name,
            kind: RelationKind::Table,
            columns,
            primary_key,
            constraints,
            indexes: vec![],
            next_column_id,
            persistence,
        };
        // Validates that every column type has a storage encoding before anything is written.
        floe_storage::TableCodec::new(&table).map_err(SqlError::from)?;
        let mut changes: Vec<CatalogChange> = sequences
            .into_iter()
            .map(|s| CatalogChange::PutRelation(Arc::new(s)))
            .collect();
        changes.push(CatalogChange::PutRelation(Arc::new(table)));
        self.commit_ddl(changes).await?;
        Ok(StatementResult::Command("CREATE TABLE".into()))
    }

    pub(super) async fn drop_objects(
        &mut self,
        object_type: ObjectType,
        names: Vec<ObjectName>,
        if_exists: bool,
        cascade: bool,
    ) -> SqlResult<StatementResult> {
        let tag = format!("DROP {object_type}");
        match object_type {
            ObjectType::Table
            | ObjectType::View
            | ObjectType::MaterializedView
            | ObjectType::Sequence => {
                let mut changes = Vec::new();
                let named: Vec<u32> = names
                    .iter()
                    .filter_map(|n| self.find_relation(n).ok().flatten())
                    .map(|d| d.id)
                    .collect();
                let mut dropped: Vec<u32> = Vec::new();
                for name in &names {
                    let Some(def) = self.find_relation(name)? else {
                        if if_exists {
                            let kind = object_type.to_string().to_lowercase();
                            self.notice(format!(
                                "{kind} \"{}\" does not exist, skipping",
                                object_parts(name).join(".")
                            ));
                            continue;
                        }
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_TABLE,
                            format!(
                                "{} \"{}\" does not exist",
                                object_type.to_string().to_lowercase(),
                                object_parts(name).join(".")
                            ),
                        ));
                    };
                    let kind_matches = matches!(
                        (&def.kind, object_type),
                        (RelationKind::Table, ObjectType::Table)
                            | (RelationKind::View { .. }, ObjectType::View)
                            | (
                                RelationKind::MaterializedView { .. },
                                ObjectType::MaterializedView
                            )
                            | (RelationKind::Sequence(_), ObjectType::Sequence)
                    );
                    if !kind_matches {
                        return Err(SqlError::new(
                            sqlstate::WRONG_OBJECT_TYPE,
                            format!(
                                "\"{}\" is not a {}",
                                def.name,
                                object_type.to_string().to_lowercase()
                            ),
                        ));
                    }
                    if dropped.contains(&def.id) {
                        continue;
                    }
                    for view in self.drop_dependents(&def, &named, cascade)? {
                        if !dropped.contains(&view.id) {
                            dropped.push(view.id);
                            changes.push(CatalogChange::DropRelation(view.id));
                        }
                    }
                    dropped.push(def.id);
                    changes.extend(self.drop_relation_changes(&def));
                }
                if !changes.is_empty() {
                    self.commit_ddl(changes).await?;
                }
                Ok(StatementResult::Command(tag))
            }
            ObjectType::Schema => {
                let mut changes = Vec::new();
                for name in &names {
                    let schema = object_parts(name).join(".");
                    let catalog = self.db().catalog();
                    if catalog.schema(&self.database, &schema).is_none() {
                        if if_exists {
                            self.notice(format!("schema \"{schema}\" does not exist, skipping"));
                            continue;
                        }
                        return Err(SqlError::new(
                            sqlstate::INVALID_SCHEMA_NAME,
                            format!("schema \"{schema}\" does not exist"),
                        ));
                    }
                    let members: Vec<Arc<TableDef>> = catalog
                        .relations_in(&self.database, &schema)
                        .cloned()
                        .collect();
                    if !members.is_empty() && !cascade {
                        return Err(SqlError::new(
                            sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "cannot drop schema {schema} because other objects depend on it"
                            ),
                        )
                        .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
                    }
                    for member in &members {
                        changes.push(CatalogChange::DropRelation(member.id));
                    }
                    changes.push(CatalogChange::DropSchema(self.database.clone(), schema));
                }
                if !changes.is_empty() {
                    self.commit_ddl(changes).await?;
                }
                Ok(StatementResult::Command(tag))
            }
            other => Err(SqlError::not_supported(format!(
                "DROP {other} is not supported yet"
            ))),
        }
    }

    /// Dropping a relation drops the sequences it owns.
    fn drop_relation_changes(&self, def: &TableDef) -> Vec<CatalogChange> {
        let catalog = self.db().catalog();
        let mut changes: Vec<CatalogChange> = catalog
            .relations()
            .filter(|r| match &r.kind {
                RelationKind::Sequence(seq) => seq.owned_by.is_some_and(|(t, _)| t == def.id),
                _ => false,
            })
            .map(|r| CatalogChange::DropRelation(r.id))
            .collect();
        changes.push(CatalogChange::DropRelation(def.id));
        changes
    }

    pub(super) async fn create_schema(
        &mut self,
        name: &ast::SchemaName,
        if_not_exists: bool,
    ) -> SqlResult<StatementResult> {
        let schema = match name {
            ast::SchemaName::Simple(name) | ast::SchemaName::NamedAuthorization(name, _) => {
                object_parts(name).join(".")
            }
            ast::SchemaName::UnnamedAuthorization(user) => ident_name(user),
        };
        if self
            .db()
            .catalog()
            .schema(&self.database, &schema)
            .is_some()
        {
            if if_not_exists {
                self.notice(format!("schema \"{schema}\" already exists, skipping"));
                return Ok(StatementResult::Command("CREATE SCHEMA".into()));
            }
            return Err(already_exists("schema", &schema));
        }
        if schema.starts_with("pg_") {
            return Err(SqlError::new(
                sqlstate::RESERVED_NAME,
                format!("unacceptable schema name \"{schema}\""),
            )
            .with_detail("The prefix \"pg_\" is reserved for system schemas."));
        }
        let oid = self.db().allocate_oid();
        self.commit_ddl(vec![CatalogChange::PutSchema(SchemaDef {
            oid,
            database: self.database.clone(),
            name: schema,
            temporary: false,
        })])
        .await?;
        Ok(StatementResult::Command("CREATE SCHEMA".into()))
    }

    pub(super) async fn create_database(
        &mut self,
        name: &ObjectName,
        if_not_exists: bool,
    ) -> SqlResult<StatementResult> {
        if self.txn.is_some() {
            return Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                "CREATE DATABASE cannot run inside a transaction block",
            ));
        }
        let database = object_parts(name).join(".");
        if self.db().catalog().database(&database).is_some() {
            if if_not_exists {
                self.notice(format!("database \"{database}\" already exists, skipping"));
                return Ok(StatementResult::Command("CREATE DATABASE".into()));
            }
            return Err(already_exists("database", &database));
        }
        let db = self.db().clone();
        let oid = db.allocate_oid();
        let schema_oid = db.allocate_oid();
        db.commit_catalog(vec![
            CatalogChange::PutDatabase(DatabaseDef {
                oid,
                name: database.clone(),
            }),
            CatalogChange::PutSchema(SchemaDef {
                oid: schema_oid,
                database,
                name: floe_storage::DEFAULT_SCHEMA.into(),
                temporary: false,
            }),
        ])
        .await?;
        Ok(StatementResult::Command("CREATE DATABASE".into()))
    }

    pub(super) async fn drop_database(
        &mut self,
        name: &ObjectName,
        if_exists: bool,
    ) -> SqlResult<StatementResult> {
        if self.txn.is_some() {
            return Err(SqlError::new(
                sqlstate::ACTIVE_SQL_TRANSACTION,
                "DROP DATABASE cannot run inside a transaction block",
            ));
        }
        let database = object_parts(name).join(".");
        let catalog = self.db().catalog();
        if catalog.database(&database).is_none() {
            if if_exists {
                self.notice(format!("database \"{database}\" does not exist, skipping"));
                return Ok(StatementResult::Command("DROP DATABASE".into()));
            }
            return Err(SqlError::new(
                sqlstate::INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist"),
            ));
        }
        if database == self.database {
            return Err(SqlError::new(
                sqlstate::OBJECT_IN_USE,
                "cannot drop the currently open database",
            ));
        }
        let mut changes: Vec<CatalogChange> = catalog
            .relations()
            .filter(|r| r.database == database)
            .map(|r| CatalogChange::DropRelation(r.id))
            .collect();
        changes.extend(
            catalog
                .schemas(&database)
                .map(|s| CatalogChange::DropSchema(database.clone(), s.name.clone())),
        );
        changes.push(CatalogChange::DropDatabase(database));
        self.commit_ddl(changes).await?;
        Ok(StatementResult::Command("DROP DATABASE".into()))
    }

    /// `TRUNCATE t, … [RESTART IDENTITY]`: RESTART also sets the sequences the tables own
    /// (serial and identity columns) back to their start. Like `nextval`, that is not undone
    /// by a rollback (PostgreSQL undoes it).
    pub(super) async fn truncate(
        &mut self,
        names: Vec<ObjectName>,
        restart_identity: bool,
    ) -> SqlResult<StatementResult> {
        if self.db().relations_locked() {
            // Uncommitted DDL of another session on a table: wait for it first.
            let mut ids = Vec::new();
            for name in &names {
                ids.push(self.relation(name)?.id);
            }
            self.wait_for_tables(ids).await?;
        }
        let mut tables = Vec::new();
        for name in &names {
            let def = self.relation(name)?;
            if !def.is_table() {
                return Err(SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{}\" is not a table", def.name),
                ));
            }
            let data = self
                .db()
                .table(def.id)
                .ok_or_else(|| SqlError::internal("table has no storage"))?;
            tables.push(data);
        }
        self.with_write_txn(|txn| {
            for table in &tables {
                txn.truncate(table);
            }
            Ok(())
        })
        .await?;
        if restart_identity {
            let catalog = self.db().catalog();
            for sequence in catalog.relations() {
                let RelationKind::Sequence(seq) = &sequence.kind else {
                    continue;
                };
                if seq
                    .owned_by
                    .is_some_and(|(owner, _)| tables.iter().any(|t| t.def.id == owner))
                {
                    self.db().setval(sequence, seq.start, false)?;
                }
            }
        }
        Ok(StatementResult::Command("TRUNCATE TABLE".into()))
    }
}

/// The sequence behind a serial or identity column of type `data_type`, with the column's
/// `GENERATED … AS IDENTITY (START WITH … INCREMENT BY …)` options and PostgreSQL's defaults:
/// an ascending sequence runs from 1 to the type's maximum, a descending one from -1 down to
/// its minimum, each starting at its first value.
fn sequence_options(
    data_type: &datafusion::arrow::datatypes::DataType,
    options: &[ast::SequenceOptions],
) -> SqlResult<SequenceDef> {
    use datafusion::arrow::datatypes::DataType;
    let (type_min, type_max) = match data_type {
        DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    };
    let number = |expr: &ast::Expr| -> SqlResult<i64> {
        let text = expr.to_string().replace(' ', "");
        text.parse::<i64>().map_err(|_| {
            SqlError::syntax(format!("sequence option must be an integer, not {expr}"))
        })
    };
    let (mut increment, mut start, mut min, mut max, mut cycle) = (1, None, None, None, false);
    for option in options {
        match option {
            ast::SequenceOptions::IncrementBy(e, _) => increment = number(e)?,
            ast::SequenceOptions::StartWith(e, _) => start = Some(number(e)?),
            ast::SequenceOptions::MinValue(e) => min = e.as_ref().map(number).transpose()?,
            ast::SequenceOptions::MaxValue(e) => max = e.as_ref().map(number).transpose()?,
            // sqlparser's flag is `NO`: `Cycle(true)` is NO CYCLE.
            ast::SequenceOptions::Cycle(no) => cycle = !*no,
            ast::SequenceOptions::Cache(_) => {}
        }
    }
    if increment == 0 {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "INCREMENT must not be zero",
        ));
    }
    let min = min.unwrap_or(if increment > 0 { 1 } else { type_min });
    let max = max.unwrap_or(if increment > 0 { type_max } else { -1 });
    let start = start.unwrap_or(if increment > 0 { min } else { max });
    for (what, value) in [("MINVALUE", min), ("MAXVALUE", max)] {
        if value < type_min || value > type_max {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("{what} ({value}) is out of range for sequence data type"),
            ));
        }
    }
    if min >= max {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("MINVALUE ({min}) must be less than MAXVALUE ({max})"),
        ));
    }
    if start < min {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("START value ({start}) cannot be less than MINVALUE ({min})"),
        ));
    }
    if start > max {
        return Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("START value ({start}) cannot be greater than MAXVALUE ({max})"),
        ));
    }
    Ok(SequenceDef {
        start,
        increment,
        min,
        max,
        cycle,
        owned_by: None,
    })
}

/// The DDL lock names of the objects `statement` creates, changes or drops (empty for
/// statements that are not DDL). Relations (tables, views, sequences, indexes) are locked by
/// database and bare name — coarser than by schema, never finer — and schemas by name.
pub(super) fn ddl_lock_names(statement: &Statement, database: &str) -> Vec<String> {
    if super::temp::creates_temporary(statement) {
        return Vec::new();
    }
    let relation = |name: &ObjectName| {
        let parts = object_parts(name);
        format!(
            "rel/{database}/{}",
            parts.last().map(String::as_str).unwrap_or_default()
        )
    };
    let schema = |name: &ObjectName| format!("schema/{database}/{}", object_parts(name).join("."));
    let mut names = match statement {
        Statement::CreateTable(create) => vec![relation(&create.name)],
        Statement::CreateView(create) => vec![relation(&create.name)],
        Statement::CreateIndex(create) => {
            let mut names = vec![relation(&create.table_name)];
            names.extend(create.name.as_ref().map(relation));
            names
        }
        Statement::AlterTable(alter) => {
            let mut names = vec![relation(&alter.name)];
            for operation in &alter.operations {
                if let ast::AlterTableOperation::RenameTable { table_name } = operation {
                    let (ast::RenameTableNameKind::As(name) | ast::RenameTableNameKind::To(name)) =
                        table_name;
                    names.push(relation(name));
                }
            }
            names
        }
        Statement::Drop {
            object_type: ObjectType::Schema,
            names,
            ..
        } => names.iter().map(schema).collect(),
        Statement::Drop {
            object_type:
                ObjectType::Table | ObjectType::View | ObjectType::Sequence | ObjectType::Index,
            names,
            ..
        } => names.iter().map(relation).collect(),
        Statement::CreateSchema { schema_name, .. } => match schema_name {
            ast::SchemaName::Simple(name) | ast::SchemaName::NamedAuthorization(name, _) => {
                vec![schema(name)]
            }
            ast::SchemaName::UnnamedAuthorization(user) => {
                vec![format!("schema/{database}/{}", ident_name(user))]
            }
        },
        Statement::Query(query) => match query.body.as_ref() {
            ast::SetExpr::Select(select) => select
                .into
                .as_ref()
                .map(|into| vec![relation(&into.name)])
                .unwrap_or_default(),
            _ => vec![],
        },
        _ => vec![],
    };
    // One order for every transaction, so two DDLs over the same names cannot deadlock.
    names.sort();
    names.dedup();
    names
}

fn multiple_primary_keys(table: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_TABLE_DEFINITION,
        format!("multiple primary keys for table \"{table}\" are not allowed"),
    )
}

/// `serial`, `bigserial`, `smallserial`: the integer type they stand for.
fn serial_type(data_type: &AstType) -> Option<AstType> {
    let AstType::Custom(name, _) = data_type else {
        return None;
    };
    match name.to_string().to_lowercase().as_str() {
        "serial" | "serial4" => Some(AstType::Integer(None)),
        "bigserial" | "serial8" => Some(AstType::BigInt(None)),
        "smallserial" | "serial2" => Some(AstType::SmallInt(None)),
        _ => None,
    }
}

/// PostgreSQL's name for an unnamed CHECK constraint of table `table`: `t_col_check` when its
/// expression names one column, `t_check` otherwise, with `1`, `2`, … appended while a
/// constraint of the table already has the name.
pub(crate) fn check_constraint_name(
    table: &str,
    expr: &Expr,
    constraints: &[ConstraintDef],
) -> String {
    let mut columns: Vec<String> = Vec::new();
    let _ = ast::visit_expressions(expr, |e| {
        let column = match e {
            Expr::Identifier(ident) => Some(ident_name(ident)),
            Expr::CompoundIdentifier(parts) => parts.last().map(ident_name),
            _ => None,
        };
        if let Some(column) = column.filter(|c| !columns.contains(c)) {
            columns.push(column);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    let base = match columns.as_slice() {
        [column] => format!("{table}_{column}_check"),
        _ => format!("{table}_check"),
    };
    let taken = |candidate: &str| constraints.iter().any(|c| c.name() == candidate);
    let mut name = base.clone();
    let mut n = 0;
    while taken(&name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}

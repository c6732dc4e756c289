//! DML: INSERT, UPDATE and DELETE as a query DataFusion plans plus a writer that applies its
//! rows to the statement's transaction.
//!
//! Each statement is rewritten into a SELECT that yields, per affected row, the row's new values
//! in table-column order (cast to the column types; defaults filled in), the row's storage key
//! (`__floe_key`, UPDATE and DELETE), and one boolean per CHECK constraint. DataFusion plans
//! it like any query, so parameters get their types from the target columns, and every
//! expression, join (UPDATE … FROM, DELETE … USING) and subquery works as in a SELECT. The
//! target table is read through `floe_internal.target`, a provider with the key column.
//!
//! The writer locks each row, then asks storage whether it changed since the snapshot: under
//! READ COMMITTED a changed row is re-evaluated at the newest version (PostgreSQL's
//! EvalPlanQual: the UPDATE applies to the new version if it still matches); under REPEATABLE
//! READ it is a serialization failure (40001).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::Rows;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::{provider_as_source, MemTable, TableProvider};
use datafusion::logical_expr::{col, lit, LogicalPlan, LogicalPlanBuilder};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Assignment, AssignmentTarget, ConflictTarget, Expr, FromTable, OnConflictAction,
    OnInsert, Query, SetExpr, Statement, TableFactor, TableObject, UpdateTableFromKind,
};
use floe_storage::{
    ConstraintDef, FloeTable, Key, RowBytes, RowCheck, TableCodec, TableData, TableDef, Txn,
    KEY_COLUMN,
};

use super::ddl::ident_name;
use super::{bind_params, describe_plan, RowStream, Session, StatementResult};
use crate::catalog::{with_dml_sources, DmlSources, INTERNAL_SCHEMA};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::sqlbuild;
use crate::types::{assignment_cast, SqlType};

/// Which statement a [`DmlPlan`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DmlKind {
    Insert,
    Update,
    Delete,
}

/// What INSERT does when the key already exists.
#[derive(Debug, Clone)]
enum OnConflict {
    /// Fail with 23505.
    Error,
    /// Skip the row.
    Nothing,
    /// Update the existing row: a plan over `floe_internal.target` (the existing rows, with
    /// keys) and `floe_internal.returning` (the proposed rows as `excluded`, with keys).
    Update(Box<LogicalPlan>),
}

/// Which existing row an INSERT … ON CONFLICT yields to (PostgreSQL's arbiter index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arbiter {
    /// No conflict target (DO NOTHING): any unique constraint or index.
    Any,
    /// The primary key.
    PrimaryKey,
    /// The unique index with this OID.
    Index(u32),
}

/// A planned INSERT, UPDATE or DELETE.
#[derive(Debug, Clone)]
pub(crate) struct DmlPlan {
    pub kind: DmlKind,
    table: Arc<TableData>,
    /// See the module doc for its columns.
    select: LogicalPlan,
    /// Names of the CHECK constraints whose results follow the key column.
    checks: Vec<String>,
    returning: Option<LogicalPlan>,
    on_conflict: OnConflict,
    arbiter: Arbiter,
}

/// Why [`Session::copy_rows`] failed.
pub(super) enum CopyRowsError {
    /// Converting the chunk failed (a value of the wrong type): the row is not known.
    Convert(SqlError),
    /// Writing failed, at this row of the chunk when known.
    Row(SqlError, Option<usize>),
}

impl DmlPlan {
    /// Adds the tables the statement writes and reads to `tables`.
    pub(crate) fn tables(&self, tables: &mut Vec<u32>) {
        tables.push(self.table.def.id);
        super::scanned_tables(&self.select, tables);
        if let Some(returning) = &self.returning {
            super::scanned_tables(returning, tables);
        }
    }
}

fn internal_table(name: &str) -> String {
    format!("{INTERNAL_SCHEMA}.{name}")
}

impl DmlPlan {
    /// The table the statement writes.
    pub(crate) fn table_def(&self) -> &TableDef {
        &self.table.def
    }

    /// The plan producing the statement's rows.
    pub(super) fn select(&self) -> &LogicalPlan {
        &self.select
    }
}

impl Session {
    /// Plans a DML statement; returns the plan, parameter types and RETURNING's columns.
    pub(super) async fn plan_dml(
        &self,
        statement: &Statement,
        declared: &[SqlType],
    ) -> SqlResult<(DmlPlan, Vec<SqlType>, Option<SchemaRef>)> {
        self.plan_dml_from(statement, declared, None).await
    }

    /// [`Session::plan_dml`] with `floe_internal.copy` shaped like `copy_source` (COPY FROM).
    pub(super) async fn plan_dml_from(
        &self,
        statement: &Statement,
        declared: &[SqlType],
        copy_source: Option<SchemaRef>,
    ) -> SqlResult<(DmlPlan, Vec<SqlType>, Option<SchemaRef>)> {
        let (kind, table_name, alias, returning) = match statement {
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return Err(SqlError::not_supported("INSERT INTO a table function"));
                };
                let alias = insert.table_alias.as_ref().map(|a| ident_name(&a.alias));
                (
                    DmlKind::Insert,
                    name.clone(),
                    alias,
                    insert.returning.clone(),
                )
            }
            Statement::Update(update) => {
                let TableFactor::Table { name, alias, .. } = &update.table.relation else {
                    return Err(SqlError::not_supported("UPDATE of a non-table relation"));
                };
                if !update.table.joins.is_empty() {
                    return Err(SqlError::syntax("syntax error at or near \"JOIN\""));
                }
                let alias = alias.as_ref().map(|a| ident_name(&a.name));
                (
                    DmlKind::Update,
                    name.clone(),
                    alias,
                    update.returning.clone(),
                )
            }
            Statement::Delete(delete) => {
                let tables = match &delete.from {
                    FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
                };
                let [target] = tables.as_slice() else {
                    return Err(SqlError::not_supported("DELETE from several tables"));
                };
                let TableFactor::Table { name, alias, .. } = &target.relation else {
                    return Err(SqlError::not_supported("DELETE from a non-table relation"));
                };
                let alias = alias.as_ref().map(|a| ident_name(&a.name));
                (
                    DmlKind::Delete,
                    name.clone(),
                    alias,
                    delete.returning.clone(),
                )
            }
            _ => return Err(SqlError::internal("not a DML statement")),
        };
        let def = self.relation(&table_name)?;
        if matches!(def.kind, floe_storage::RelationKind::View { .. }) {
            let verb = match kind {
                DmlKind::Insert => "insert into",
                DmlKind::Update => "update",
                DmlKind::Delete => "delete from",
            };
            return Err(SqlError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("cannot {verb} view \"{}\"", def.name),
            )
            .with_detail("Views are not automatically updatable in Floe yet."));
        }
        if !def.is_table() {
            let what = if def.is_materialized_view() {
                "materialized view"
            } else {
                "relation"
            };
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("cannot change {what} \"{}\"", def.name),
            ));
        }
        let table = self
            .db()
            .table(def.id)
            .ok_or_else(|| SqlError::internal("table has no storage"))?;
        let alias = alias.unwrap_or_else(|| def.name.clone());
        // Only new rows are checked: DELETE has none.
        let checks: Vec<(String, String)> = def
            .constraints
            .iter()
            .filter(|_| kind != DmlKind::Delete)
            .filter_map(|c| match c {
                ConstraintDef::Check { name, expr } => Some((name.clone(), expr.clone())),
                _ => None,
            })
            .collect();

        let inner = match statement {
            Statement::Insert(insert) => self.insert_select(&table, insert)?,
            Statement::Update(update) => update_select(&table, &alias, update)?,
            Statement::Delete(delete) => delete_select(&alias, delete)?,
            _ => unreachable!("matched above"),
        };
        let outer = with_checks(inner, &checks)?;

        let copy = match copy_source {
            Some(schema) => Some(Arc::new(MemTable::try_new(schema, vec![vec![]])?) as _),
            None => None,
        };
        let sources = DmlSources {
            target: Some(Arc::new(FloeTable::new(
                self.db().clone(),
                table.clone(),
                true,
            ))),
            returning: Some(empty_rows(&table, true)?),
            copy,
            locked: vec![],
        };
        let select_statement = Statement::Query(Box::new(outer));
        let select = with_dml_sources(sources.clone(), async {
            self.plan_query(&select_statement, declared).await
        })
        .await?;
        let (param_types, _) = describe_plan(&select, declared)?;

        let returning = match returning {
            Some(items) => {
                returning_reads_target_only(statement, &items)?;
                // `*` means the table's columns (the internal source also has the row key).
                let columns =
                    |qualifier: Vec<ast::Ident>, projection: &mut Vec<ast::SelectItem>| {
                        for c in &table.def.columns {
                            let mut parts = qualifier.clone();
                            parts.push(sqlbuild::name(&c.name));
                            projection.push(ast::SelectItem::UnnamedExpr(
                                Expr::CompoundIdentifier(parts),
                            ));
                        }
                    };
                let mut projection = Vec::new();
                for item in items {
                    match item {
                        ast::SelectItem::Wildcard(_) => {
                            columns(vec![sqlbuild::name(&alias)], &mut projection)
                        }
                        ast::SelectItem::QualifiedWildcard(
                            ast::SelectItemQualifiedWildcardKind::ObjectName(name),
                            _,
                        ) => columns(
                            name.0
                                .iter()
                                .filter_map(|p| p.as_ident().cloned())
                                .collect(),
                            &mut projection,
                        ),
                        other => projection.push(other),
                    }
                }
                let mut query = sqlbuild::template_query(&format!(
                    "SELECT 1 FROM {} AS t",
                    internal_table("returning")
                ))?;
                let select = sqlbuild::select_mut(&mut query)?;
                sqlbuild::set_first_alias(select, &alias)?;
                select.projection = projection;
                let computed = select.projection.iter().any(|item| {
                    !matches!(
                        item,
                        ast::SelectItem::UnnamedExpr(
                            Expr::Identifier(_) | Expr::CompoundIdentifier(_)
                        )
                    )
                });
                let statement = Statement::Query(Box::new(query));
                let plan = with_dml_sources(sources.clone(), async {
                    self.plan_query(&statement, &[]).await
                })
                .await?;
                // Its constants are folded now, before any row is written, as PostgreSQL
                // plans RETURNING with the statement (`RETURNING 1/0` fails and writes
                // nothing, also where a row would have failed a constraint first).
                if computed {
                    self.state.analyzer().execute_and_check(
                        plan.clone(),
                        self.state.config_options(),
                        |_, _| {},
                    )?;
                }
                Some(plan)
            }
            None => None,
        };
        let result_schema = returning.as_ref().map(super::plan_output_schema);

        let (on_conflict, arbiter) = match statement {
            Statement::Insert(insert) => {
                self.plan_on_conflict(&table, &alias, insert.on.as_ref(), &sources)
                    .await?
            }
            _ => (OnConflict::Error, Arbiter::Any),
        };
        Ok((
            DmlPlan {
                kind,
                table,
                select,
                checks: checks.into_iter().map(|(name, _)| name).collect(),
                returning,
                on_conflict,
                arbiter,
            },
            param_types,
            result_schema,
        ))
    }

    pub(super) fn parse_one(&self, sql: &str) -> SqlResult<Statement> {
        self.parse(sql)?
            .pop()
            .ok_or_else(|| SqlError::internal("generated SQL has no statement"))
    }

    /// `INSERT INTO t (cols) source` as a SELECT of whole rows.
    fn insert_select(&self, table: &TableData, insert: &ast::Insert) -> SqlResult<Query> {
        let def = &table.def;
        let mut target: Vec<usize> = Vec::new();
        for column in &insert.columns {
            let name = column
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(ident_name)
                .unwrap_or_default();
            let position = def.column_index(&name).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!(
                        "column \"{name}\" of relation \"{}\" does not exist",
                        def.name
                    ),
                )
            })?;
            if target.contains(&position) {
                return Err(SqlError::syntax(format!(
                    "column \"{name}\" specified more than once"
                )));
            }
            target.push(position);
        }
        if insert.columns.is_empty() {
            target = (0..def.columns.len()).collect();
        }
        let default_of = |position: usize| -> SqlResult<Expr> {
            let column = &def.columns[position];
            default_value(column.default.as_deref(), &column.field)
        };
        let Some(source) = &insert.source else {
            // DEFAULT VALUES.
            let mut query = sqlbuild::template_query("SELECT 1")?;
            sqlbuild::select_mut(&mut query)?.projection = def
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| Ok(sqlbuild::aliased(default_of(i)?, &c.name)))
                .collect::<SqlResult<_>>()?;
            return Ok(query);
        };
        let mut source = source.clone();
        let mut width = None;
        if let SetExpr::Values(values) = source.body.as_mut() {
            for row in &mut values.rows {
                if row.len() > target.len() {
                    return Err(SqlError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                if row.len() < target.len() && !insert.columns.is_empty() {
                    return Err(SqlError::syntax(
                        "INSERT has more target columns than expressions",
                    ));
                }
                width = Some(row.len());
                for (j, value) in row.iter_mut().enumerate() {
                    let column = &def.columns[target[j]];
                    let is_default = matches!(value, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
                    // Each value is converted to its column's type on its own, as PostgreSQL
                    // does for INSERT's VALUES (no common type across rows), which also types
                    // a parameter `$n` as its column.
                    *value = if is_default {
                        default_of(target[j])?
                    } else {
                        assignment_cast(value.clone(), &column.field)?
                    };
                }
            }
        }
        if let Some(width) = width {
            target.truncate(width);
        }
        let source_columns: Vec<String> = (0..target.len()).map(|j| format!("__c{j}")).collect();
        let mut values = Vec::with_capacity(def.columns.len());
        for (i, column) in def.columns.iter().enumerate() {
            let value = match target.iter().position(|&t| t == i) {
                Some(j) => {
                    if column.identity == Some(true) {
                        return Err(SqlError::new(
                            sqlstate::GENERATED_ALWAYS,
                            format!(
                                "cannot insert a non-DEFAULT value into column \"{}\"",
                                column.name
                            ),
                        )
                        .with_detail(format!(
                            "Column \"{}\" is an identity column defined as GENERATED ALWAYS.",
                            column.name
                        ))
                        .with_hint("Use OVERRIDING SYSTEM VALUE to override."));
                    }
                    assignment_cast(sqlbuild::column("__src", &source_columns[j]), &column.field)?
                }
                None => default_of(i)?,
            };
            values.push(sqlbuild::aliased(value, &column.name));
        }
        let mut query = sqlbuild::template_query("SELECT 1")?;
        let select = sqlbuild::select_mut(&mut query)?;
        select.projection = values;
        select.from = vec![sqlbuild::derived(*source, "__src", &source_columns)];
        Ok(query)
    }

    async fn plan_on_conflict(
        &self,
        table: &Arc<TableData>,
        alias: &str,
        on: Option<&OnInsert>,
        sources: &DmlSources,
    ) -> SqlResult<(OnConflict, Arbiter)> {
        let Some(on) = on else {
            return Ok((OnConflict::Error, Arbiter::Any));
        };
        let OnInsert::OnConflict(conflict) = on else {
            return Err(SqlError::not_supported("ON DUPLICATE KEY UPDATE"));
        };
        let def = &table.def;
        let no_match = || {
            SqlError::new(
                sqlstate::INVALID_COLUMN_REFERENCE,
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            )
        };
        let arbiter = match &conflict.conflict_target {
            Some(ConflictTarget::Columns(columns)) => {
                let mut wanted: Vec<u32> = Vec::new();
                for c in columns {
                    match def.column_index(&ident_name(c)) {
                        Some(i) => wanted.push(def.columns[i].id),
                        None => {
                            return Err(SqlError::new(
                                sqlstate::UNDEFINED_COLUMN,
                                format!("column \"{}\" does not exist", ident_name(c)),
                            ))
                        }
                    }
                }
                wanted.sort_unstable();
                let sorted = |mut ids: Vec<u32>| {
                    ids.sort_unstable();
                    ids
                };
                let pk_ids = def
                    .primary_key
                    .as_ref()
                    .map(|pk| sorted(pk.columns.iter().map(|&p| def.columns[p].id).collect()));
                if pk_ids.as_ref() == Some(&wanted) {
                    Arbiter::PrimaryKey
                } else {
                    def.indexes
                        .iter()
                        .find(|i| i.unique && sorted(i.columns.clone()) == wanted)
                        .map(|i| Arbiter::Index(i.oid))
                        .ok_or_else(no_match)?
                }
            }
            Some(ConflictTarget::OnConstraint(name)) => {
                let name = name.to_string();
                if def.primary_key.as_ref().is_some_and(|pk| pk.name == name) {
                    Arbiter::PrimaryKey
                } else if let Some(index) =
                    def.indexes.iter().find(|i| i.constraint && i.name == name)
                {
                    Arbiter::Index(index.oid)
                } else {
                    return Err(SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!(
                            "constraint \"{name}\" for table \"{}\" does not exist",
                            def.name
                        ),
                    ));
                }
            }
            None => Arbiter::Any,
        };
        match &conflict.action {
            OnConflictAction::DoNothing => Ok((OnConflict::Nothing, arbiter)),
            OnConflictAction::DoUpdate(update) => {
                if conflict.conflict_target.is_none() {
                    return Err(SqlError::syntax(
                        "ON CONFLICT DO UPDATE requires inference specification or constraint name",
                    ));
                }
                let assigned = assignments(def, &update.assignments)?;
                let mut projection = Vec::new();
                for (i, column) in def.columns.iter().enumerate() {
                    let value = match assigned.get(&i) {
                        Some(expr) => assignment_cast(expr.clone(), &column.field)?,
                        None => sqlbuild::column(alias, &column.name),
                    };
                    projection.push(sqlbuild::aliased(value, &column.name));
                }
                projection.push(sqlbuild::aliased(
                    sqlbuild::column(alias, KEY_COLUMN),
                    KEY_COLUMN,
                ));
                let mut inner = sqlbuild::template_query(&format!(
                    "SELECT 1 FROM {} AS t, {} AS excluded",
                    internal_table("target"),
                    internal_table("returning"),
                ))?;
                let select = sqlbuild::select_mut(&mut inner)?;
                sqlbuild::set_first_alias(select, alias)?;
                select.projection = projection;
                let same_key = Expr::BinaryOp {
                    left: Box::new(sqlbuild::column(alias, KEY_COLUMN)),
                    op: ast::BinaryOperator::Eq,
                    right: Box::new(sqlbuild::column("excluded", KEY_COLUMN)),
                };
                select.selection = Some(match &update.selection {
                    Some(selection) => Expr::BinaryOp {
                        left: Box::new(same_key),
                        op: ast::BinaryOperator::And,
                        right: Box::new(Expr::Nested(Box::new(selection.clone()))),
                    },
                    None => same_key,
                });
                let checks: Vec<(String, String)> = def
                    .constraints
                    .iter()
                    .filter_map(|c| match c {
                        ConstraintDef::Check { name, expr } => Some((name.clone(), expr.clone())),
                        _ => None,
                    })
                    .collect();
                let statement = Statement::Query(Box::new(with_checks(inner, &checks)?));
                let sources = DmlSources {
                    target: Some(empty_rows(table, true)?),
                    returning: sources.returning.clone(),
                    copy: None,
                    locked: vec![],
                };
                let plan =
                    with_dml_sources(sources, async { self.plan_query(&statement, &[]).await })
                        .await?;
                Ok((OnConflict::Update(Box::new(plan)), arbiter))
            }
        }
    }

    /// `UPDATE … SET col = $n` and `INSERT INTO t (col, …) VALUES ($n, …)`: parameter `$n`
    /// takes the column's type, as in PostgreSQL (the generated SELECT casts the value, which
    /// would leave the parameter untyped).
    pub(super) fn assignment_param_types(&self, statement: &Statement, types: &mut Vec<SqlType>) {
        /// Where a value goes: a named column, or the n-th column of the table.
        enum Target<'a> {
            Named(&'a ast::Ident),
            Position(usize),
        }
        let (name, targets): (&ast::ObjectName, Vec<(Target, &Expr)>) = match statement {
            Statement::Update(update) => {
                let TableFactor::Table { name, .. } = &update.table.relation else {
                    return;
                };
                let targets = update
                    .assignments
                    .iter()
                    .filter_map(|assignment| match &assignment.target {
                        AssignmentTarget::ColumnName(target) => target
                            .0
                            .last()
                            .and_then(|p| p.as_ident())
                            .map(|ident| (Target::Named(ident), &assignment.value)),
                        _ => None,
                    })
                    .collect();
                (name, targets)
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return;
                };
                let Some(source) = &insert.source else {
                    return;
                };
                let SetExpr::Values(values) = source.body.as_ref() else {
                    return;
                };
                let mut targets = Vec::new();
                for row in &values.rows {
                    for (i, value) in row.iter().enumerate() {
                        let target = match insert.columns.get(i) {
                            Some(column) => match column.0.last().and_then(|p| p.as_ident()) {
                                Some(ident) => Target::Named(ident),
                                None => continue,
                            },
                            None if insert.columns.is_empty() => Target::Position(i),
                            None => continue,
                        };
                        targets.push((target, value));
                    }
                }
                (name, targets)
            }
            _ => return,
        };
        let Ok(Some(def)) = self.find_relation(name) else {
            return;
        };
        for (target, value) in targets {
            let column = match target {
                Target::Named(ident) => {
                    let column_name = ident_name(ident);
                    def.columns.iter().find(|c| c.name == column_name)
                }
                Target::Position(i) => def.columns.get(i),
            };
            let Some(column) = column else {
                continue;
            };
            let mut value = value;
            while let Expr::Nested(inner) = value {
                value = inner;
            }
            let Expr::Value(v) = value else {
                continue;
            };
            let ast::Value::Placeholder(p) = &v.value else {
                continue;
            };
            let Some(n) = p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| (1..=usize::from(u16::MAX)).contains(n))
            else {
                continue;
            };
            if types.len() < n {
                types.resize(n, SqlType::Unknown);
            }
            if types[n - 1] == SqlType::Unknown {
                types[n - 1] = SqlType::from_arrow_field(&column.field);
            }
        }
    }

    /// Runs a planned DML statement in the session's transaction (or its own).
    pub(super) async fn execute_dml(
        &mut self,
        plan: &DmlPlan,
        param_types: &[SqlType],
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        self.check_writable(match plan.kind {
            DmlKind::Insert => "INSERT",
            DmlKind::Update => "UPDATE",
            DmlKind::Delete => "DELETE",
        })?;
        let select = bind_params(plan.select.clone(), param_types, params, self.zone())?;
        let mut txn = self.statement_txn().await?;
        let result = match self.write_rows(plan, &select, &mut txn).await {
            // RETURNING is computed before the statement's writes commit: an error in it
            // (`RETURNING k / 0`) fails the statement with nothing written, as in PostgreSQL.
            Ok(affected) => match &plan.returning {
                Some(returning) => self
                    .run_returning(plan, returning, &affected)
                    .await
                    .map(|rows| (affected.len(), Some(rows))),
                None => Ok((affected.len(), None)),
            },
            Err(e) => Err(e),
        };
        let (count, returned) = self.finish_statement_txn(txn, result).await?;
        let tag = match plan.kind {
            DmlKind::Insert => "INSERT 0",
            DmlKind::Update => "UPDATE",
            DmlKind::Delete => "DELETE",
        };
        match returned {
            None => Ok(StatementResult::Command(format!("{tag} {count}"))),
            Some(rows) => Ok(StatementResult::Rows { rows, tag }),
        }
    }

    /// Applies the statement's rows; returns the rows RETURNING sees.
    pub(super) async fn write_rows(
        &self,
        plan: &DmlPlan,
        select: &LogicalPlan,
        txn: &mut Txn,
    ) -> SqlResult<Vec<RowBytes>> {
        let view = txn.statement_view();
        let batches = match self.collect_plan(select, view.clone()).await {
            Ok(batches) => batches,
            Err(e) if plan.kind == DmlKind::Insert && e.code.starts_with("22") => {
                return self.insert_row_by_row(plan, select, txn, e).await;
            }
            Err(e) => return Err(e),
        };
        let table = &plan.table;
        let width = table.def.columns.len();
        let mut affected = Vec::new();
        for batch in batches {
            match plan.kind {
                DmlKind::Insert => {
                    let values = self.checked_values(plan, &batch, 0)?;
                    self.insert_rows(plan, values, txn, &mut affected).await?;
                }
                DmlKind::Update => {
                    let keys = key_column(&batch, width)?;
                    let values = self.checked_values(plan, &batch, 1)?;
                    let rows = table.codec.encode_rows(&values)?;
                    let new_keys = table.codec.encode_keys(&values)?;
                    for i in 0..batch.num_rows() {
                        let old_key: Key = Arc::from(keys.value(i));
                        txn.lock_row(table, &old_key).await?;
                        let (row, new_key): (RowBytes, Option<Key>) =
                            match txn.check_row(table, &old_key, &view)? {
                                RowCheck::Current(Some(_)) => (
                                    Arc::from(rows.row(i).data()),
                                    new_keys.as_ref().map(|k| Arc::from(k.row(i).data())),
                                ),
                                RowCheck::Current(None) | RowCheck::Changed(None) => continue,
                                RowCheck::Changed(Some(_)) => {
                                    match self.recheck(plan, select, &old_key, txn).await? {
                                        Some(values) => {
                                            let rows = table.codec.encode_rows(&values)?;
                                            let keys = table.codec.encode_keys(&values)?;
                                            (
                                                Arc::from(rows.row(0).data()),
                                                keys.map(|k| Arc::from(k.row(0).data())),
                                            )
                                        }
                                        None => continue,
                                    }
                                }
                            };
                        match new_key {
                            Some(new_key) if new_key != old_key => {
                                txn.lock_row(table, &new_key).await?;
                                if txn.key_exists(table, &new_key)? {
                                    return Err(duplicate_key(table, &new_key));
                                }
                                txn.write(table, old_key, None).await?;
                                txn.write(table, new_key, Some(row.clone())).await?;
                            }
                            _ => txn.write(table, old_key, Some(row.clone())).await?,
                        }
                        affected.push(row);
                    }
                }
                DmlKind::Delete => {
                    let keys = key_column(&batch, 0)?;
                    for i in 0..batch.num_rows() {
                        let key: Key = Arc::from(keys.value(i));
                        txn.lock_row(table, &key).await?;
                        let old = match txn.check_row(table, &key, &view)? {
                            RowCheck::Current(Some(row)) => row,
                            RowCheck::Current(None) | RowCheck::Changed(None) => continue,
                            RowCheck::Changed(Some(row)) => {
                                if self.recheck(plan, select, &key, txn).await?.is_none() {
                                    continue;
                                }
                                row
                            }
                        };
                        txn.write(table, key, None).await?;
                        affected.push(old);
                    }
                }
            }
        }
        Ok(affected)
    }

    /// INSERT … VALUES of several rows whose values failed to convert: PostgreSQL computes and
    /// inserts one row at a time, so an earlier row's own error (a duplicate key) comes first.
    /// The rows are converted and inserted one by one until one fails; `error` stands if none
    /// does (or the source is not a VALUES list). The statement fails either way.
    async fn insert_row_by_row(
        &self,
        plan: &DmlPlan,
        select: &LogicalPlan,
        txn: &mut Txn,
        error: SqlError,
    ) -> SqlResult<Vec<RowBytes>> {
        let Some(rows) = values_rows(select) else {
            return Err(error);
        };
        if rows < 2 {
            return Err(error);
        }
        // A literal that does not read as its type fails while PostgreSQL parses, before any
        // row is computed (`VALUES (…, too_long_expr), (…, '日本'::timestamptz)`).
        // The errors Floe raises where PostgreSQL parses and plans (the analyzer's
        // `const_errors`) come before any row's.
        self.state
            .analyzer()
            .execute_and_check(select.clone(), self.state.config_options(), |_, _| {})
            .map_err(|e| crate::error::from_datafusion(&e))?;
        let mut affected = Vec::new();
        for i in 0..rows {
            let one = with_values_row(select.clone(), i)?;
            for batch in self.collect_plan(&one, txn.statement_view()).await? {
                let values = self.checked_values(plan, &batch, 0)?;
                self.insert_rows(plan, values, txn, &mut affected).await?;
            }
        }
        Err(error)
    }

    /// COPY FROM's write of one chunk of rows: `select` (the INSERT's plan over the chunk)
    /// converts them (types, defaults, CHECK results), then they are encoded once and handed to
    /// the transaction in bulk ([`Txn::insert_new`]). Returns the rows written.
    pub(super) async fn copy_rows(
        &self,
        plan: &DmlPlan,
        select: &LogicalPlan,
        txn: &mut Txn,
    ) -> Result<u64, CopyRowsError> {
        let batches = self
            .collect_in_order(select, txn.statement_view())
            .await
            .map_err(CopyRowsError::Convert)?;
        let table = &plan.table;
        let mut offset = 0;
        for batch in batches {
            let values = self.checked_values_at(plan, &batch, 0).map_err(|failure| {
                let (error, row) = *failure;
                CopyRowsError::Row(error, row.map(|r| offset + r))
            })?;
            let rows = table
                .codec
                .encode_rows(&values)
                .map_err(|e| CopyRowsError::Row(e.into(), None))?;
            let keys = table
                .codec
                .encode_keys(&values)
                .map_err(|e| CopyRowsError::Row(e.into(), None))?;
            let pairs = keyed_rows(&rows, keys.as_ref(), || table.next_rowid());
            let count = pairs.len();
            match txn.insert_new(table, pairs, Some(&values)).await {
                Ok(None) => {}
                Ok(Some(i)) => {
                    let key: Key = match &keys {
                        Some(keys) => Arc::from(keys.row(i).data()),
                        None => {
                            return Err(CopyRowsError::Row(
                                SqlError::internal("duplicate row id"),
                                None,
                            ))
                        }
                    };
                    return Err(CopyRowsError::Row(
                        duplicate_key(table, &key),
                        Some(offset + i),
                    ));
                }
                Err(e) => return Err(CopyRowsError::Row(e.into(), None)),
            }
            offset += count;
        }
        Ok(offset as u64)
    }

    /// Converts a COPY chunk without writing it (to find the row that made conversion fail).
    pub(super) async fn copy_converts(&self, select: &LogicalPlan, txn: &mut Txn) -> bool {
        self.collect_in_order(select, txn.statement_view())
            .await
            .is_ok()
    }

    /// Runs `plan` in one partition: its rows come out in the order of its input.
    async fn collect_in_order(
        &self,
        plan: &LogicalPlan,
        view: Arc<floe_storage::ReadView>,
    ) -> SqlResult<Vec<RecordBatch>> {
        let physical = self.physical_plan_in_order(plan).await?;
        self.collect_physical(physical, view).await
    }

    async fn insert_rows(
        &self,
        plan: &DmlPlan,
        values: Vec<ArrayRef>,
        txn: &mut Txn,
        affected: &mut Vec<RowBytes>,
    ) -> SqlResult<()> {
        let table = &plan.table;
        let rows = table.codec.encode_rows(&values)?;
        let keys = table.codec.encode_keys(&values)?;
        let mut conflicts: Vec<(Key, usize)> = Vec::new();
        // Rows this statement inserted: DO UPDATE may not touch them again either.
        let mut inserted: std::collections::HashSet<Key> = std::collections::HashSet::new();
        let second_time = || {
            SqlError::new(
                sqlstate::CARDINALITY_VIOLATION,
                "ON CONFLICT DO UPDATE command cannot affect row a second time",
            )
            .with_hint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values.")
        };
        for i in 0..rows.num_rows() {
            let row: RowBytes = Arc::from(rows.row(i).data());
            let key: Key = match &keys {
                Some(keys) => {
                    let key: Key = Arc::from(keys.row(i).data());
                    txn.lock_row(table, &key).await?;
                    if txn.key_exists(table, &key)? {
                        if matches!(plan.arbiter, Arbiter::Index(_)) {
                            return Err(duplicate_key(table, &key));
                        }
                        match plan.on_conflict {
                            OnConflict::Error => return Err(duplicate_key(table, &key)),
                            OnConflict::Nothing => continue,
                            OnConflict::Update(_) => {
                                if inserted.contains(&key)
                                    || conflicts.iter().any(|(k, _)| *k == key)
                                {
                                    return Err(second_time());
                                }
                                conflicts.push((key, i));
                                continue;
                            }
                        }
                    }
                    key
                }
                None => TableCodec::rowid_key(table.next_rowid()),
            };
            if !matches!(plan.on_conflict, OnConflict::Error) {
                if let Some((oid, existing)) = txn.unique_conflict(table, &key, Some(&row)).await? {
                    match (&plan.on_conflict, plan.arbiter) {
                        (OnConflict::Nothing, Arbiter::Any) => continue,
                        (OnConflict::Nothing, Arbiter::Index(arbiter)) if arbiter == oid => {
                            continue
                        }
                        (OnConflict::Update(_), Arbiter::Index(arbiter)) if arbiter == oid => {
                            txn.lock_row(table, &existing).await?;
                            let still = txn.unique_conflict(table, &key, Some(&row)).await?;
                            if still.as_ref().map(|(_, k)| k) != Some(&existing) {
                                return Err(floe_storage::StorageError::SerializationFailure.into());
                            }
                            if inserted.contains(&existing)
                                || conflicts.iter().any(|(k, _)| *k == existing)
                            {
                                return Err(second_time());
                            }
                            conflicts.push((existing, i));
                            continue;
                        }
                        _ => return Err(txn.unique_violation(table, oid, Some(&row)).into()),
                    }
                }
            }
            if matches!(plan.on_conflict, OnConflict::Update(_)) {
                inserted.insert(key.clone());
            }
            txn.write(table, key, Some(row.clone())).await?;
            affected.push(row);
        }
        if let (OnConflict::Update(update), false) = (&plan.on_conflict, conflicts.is_empty()) {
            self.upsert(plan, update.as_ref(), &values, &conflicts, txn, affected)
                .await?;
        }
        Ok(())
    }

    /// ON CONFLICT DO UPDATE for the rows whose keys exist.
    async fn upsert(
        &self,
        plan: &DmlPlan,
        update: &LogicalPlan,
        proposed: &[ArrayRef],
        conflicts: &[(Key, usize)],
        txn: &mut Txn,
        affected: &mut Vec<RowBytes>,
    ) -> SqlResult<()> {
        let table = &plan.table;
        let indices = datafusion::arrow::array::UInt32Array::from_iter_values(
            conflicts.iter().map(|(_, i)| *i as u32),
        );
        let key_array: ArrayRef = Arc::new(BinaryArray::from_iter_values(
            conflicts.iter().map(|(k, _)| k.as_ref()),
        ));
        let mut excluded: Vec<ArrayRef> = proposed
            .iter()
            .map(|c| datafusion::arrow::compute::take(c.as_ref(), &indices, None))
            .collect::<Result<_, _>>()?;
        excluded.push(key_array.clone());
        let mut existing_rows = Vec::with_capacity(conflicts.len());
        for (key, _) in conflicts {
            let current = match txn.own_row(table.def.id, key).flatten() {
                Some(own) => Some(own),
                None => table.latest().try_get(key)?,
            };
            existing_rows
                .push(current.ok_or_else(|| SqlError::internal("conflicting row vanished"))?);
        }
        let existing = table
            .codec
            .decode_rows(existing_rows.iter().map(|r| r.as_ref()))?;
        let mut existing_columns = existing.columns().to_vec();
        existing_columns.push(key_array);
        let schema = keyed_schema(table);
        let existing = RecordBatch::try_new(schema.clone(), existing_columns)?;
        let excluded = RecordBatch::try_new(schema.clone(), excluded)?;
        let update = replace_sources(
            update.clone(),
            &[("target", existing), ("returning", excluded)],
        )?;
        let batches = self.collect_plan(&update, txn.statement_view()).await?;
        let width = table.def.columns.len();
        for batch in batches {
            let keys = key_column(&batch, width)?;
            let values = self.checked_values(
                plan,
                &RecordBatch::try_new(batch.schema(), batch.columns().to_vec())?,
                1,
            )?;
            let rows = table.codec.encode_rows(&values)?;
            let new_keys = table.codec.encode_keys(&values)?;
            for i in 0..batch.num_rows() {
                let key: Key = Arc::from(keys.value(i));
                let row: RowBytes = Arc::from(rows.row(i).data());
                if let Some(new_keys) = &new_keys {
                    let new_key: Key = Arc::from(new_keys.row(i).data());
                    if new_key != key {
                        return Err(SqlError::not_supported(
                            "ON CONFLICT DO UPDATE that changes the key is not supported",
                        ));
                    }
                }
                txn.write(table, key, Some(row.clone())).await?;
                affected.push(row);
            }
        }
        Ok(())
    }

    /// The new values of a batch (table columns, cast exactly), after NOT NULL and CHECK.
    /// `extra` is the number of columns between the values and the checks (the key).
    fn checked_values(
        &self,
        plan: &DmlPlan,
        batch: &RecordBatch,
        extra: usize,
    ) -> SqlResult<Vec<ArrayRef>> {
        self.checked_values_at(plan, batch, extra)
            .map_err(|failure| failure.0)
    }

    /// [`Session::checked_values`], with the failing row's position when a constraint fails.
    fn checked_values_at(
        &self,
        plan: &DmlPlan,
        batch: &RecordBatch,
        extra: usize,
    ) -> Result<Vec<ArrayRef>, Box<(SqlError, Option<usize>)>> {
        let def = &plan.table.def;
        let width = def.columns.len();
        let schema = plan.table.codec.schema();
        let mut values = Vec::with_capacity(width);
        for (i, field) in schema.fields().iter().enumerate() {
            let column = batch.column(i);
            let column = if column.data_type() == field.data_type() {
                column.clone()
            } else if crate::numeric::is_numeric_field_type(column.data_type())
                && matches!(field.data_type(), DataType::Decimal128(..))
            {
                // A wide numeric (an UPDATE's `'NaN'`) into a `numeric(p, s)` column: checked
                // like a cast (NaN makes the column wide, see `Session::widen_for_nan`).
                crate::numeric::functions::convert(column, field.data_type())
                    .map_err(|e| Box::new((e.into(), None)))?
            } else {
                cast(column, field.data_type()).map_err(|e| Box::new((e.into(), None)))?
            };
            if !field.is_nullable() && column.null_count() > 0 {
                let row = (0..column.len()).find(|&r| column.is_null(r)).unwrap_or(0);
                return Err(Box::new((SqlError::new(
                    sqlstate::NOT_NULL_VIOLATION,
                    format!(
                        "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                        field.name(),
                        def.name
                    ),
                )
                .with_detail(failing_row(batch, width, row)), Some(row))));
            }
            values.push(column);
        }
        for (c, name) in plan.checks.iter().enumerate() {
            let result = batch.column(width + extra + c);
            let Some(result) = result.as_any().downcast_ref::<BooleanArray>() else {
                return Err(Box::new((
                    SqlError::new(
                        sqlstate::DATATYPE_MISMATCH,
                        format!("CHECK constraint \"{name}\" is not a boolean expression"),
                    ),
                    None,
                )));
            };
            if let Some(row) = (0..result.len()).find(|&r| result.is_valid(r) && !result.value(r)) {
                return Err(Box::new((
                    SqlError::new(
                        sqlstate::CHECK_VIOLATION,
                        format!(
                            "new row for relation \"{}\" violates check constraint \"{name}\"",
                            def.name
                        ),
                    )
                    .with_detail(failing_row(batch, width, row)),
                    Some(row),
                )));
            }
        }
        Ok(values)
    }

    /// READ COMMITTED re-check of one row at the newest committed version: its new values if
    /// it still qualifies.
    async fn recheck(
        &self,
        plan: &DmlPlan,
        select: &LogicalPlan,
        key: &Key,
        txn: &Txn,
    ) -> SqlResult<Option<Vec<ArrayRef>>> {
        let filtered = LogicalPlanBuilder::from(select.clone())
            .filter(col(KEY_COLUMN).eq(lit(ScalarValue::Binary(Some(key.to_vec())))))?
            .build()?;
        let batches = self.collect_plan(&filtered, txn.latest_view()).await?;
        let Some(batch) = batches.into_iter().find(|b| b.num_rows() > 0) else {
            return Ok(None);
        };
        let batch = batch.slice(0, 1);
        if plan.kind == DmlKind::Delete {
            return Ok(Some(vec![]));
        }
        self.checked_values(plan, &batch, 1).map(Some)
    }

    async fn run_returning(
        &self,
        plan: &DmlPlan,
        returning: &LogicalPlan,
        affected: &[RowBytes],
    ) -> SqlResult<RowStream> {
        let table = &plan.table;
        let rows = table
            .codec
            .decode_rows(affected.iter().map(|r| r.as_ref()))?;
        let mut columns = rows.columns().to_vec();
        columns.push(Arc::new(BinaryArray::from_iter_values(
            std::iter::repeat_n(&[][..], affected.len()),
        )));
        let batch = RecordBatch::try_new(keyed_schema(table), columns)?;
        let plan_with_rows = replace_sources(returning.clone(), &[("returning", batch)])?;
        let view = Arc::new(floe_storage::ReadView::committed(self.db().snapshot()));
        let physical = self.physical_plan(&plan_with_rows).await?;
        let schema = super::plan_output_schema(returning);
        // Collected now (see `execute_dml`), streamed to the client after the commit.
        let batches = self.collect_physical(physical, view).await?;
        Ok(RowStream {
            schema: schema.clone(),
            stream: Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::iter(batches.into_iter().map(Ok)),
                ),
            ),
        })
    }
}

/// Refuses a RETURNING list that needs the other tables of `UPDATE … FROM` or `DELETE …
/// USING` (`*` or a column of theirs): RETURNING is computed from the written rows alone.
fn returning_reads_target_only(statement: &Statement, items: &[ast::SelectItem]) -> SqlResult<()> {
    let from: &[ast::TableWithJoins] = match statement {
        Statement::Update(ast::Update {
            from: Some(UpdateTableFromKind::BeforeSet(t) | UpdateTableFromKind::AfterSet(t)),
            ..
        }) => t,
        Statement::Delete(delete) => delete.using.as_deref().unwrap_or_default(),
        _ => &[],
    };
    if from.is_empty() {
        return Ok(());
    }
    // The names the other tables go by (aliases, else their own names).
    let mut others: Vec<String> = Vec::new();
    for table in from {
        for factor in
            std::iter::once(&table.relation).chain(table.joins.iter().map(|j| &j.relation))
        {
            let name = match factor {
                TableFactor::Table { alias: Some(a), .. }
                | TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::Function { alias: Some(a), .. }
                | TableFactor::UNNEST { alias: Some(a), .. } => Some(ident_name(&a.name)),
                TableFactor::Table { name, .. } => {
                    name.0.last().and_then(|p| p.as_ident()).map(ident_name)
                }
                _ => None,
            };
            others.extend(name);
        }
    }
    let refused = || {
        SqlError::not_supported(
            "RETURNING of UPDATE … FROM or DELETE … USING can name only the target table's \
             columns (not * or the other tables' columns) yet",
        )
    };
    let mut other = false;
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) => return Err(refused()),
            ast::SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) => {
                let last = name.0.last().and_then(|p| p.as_ident()).map(ident_name);
                if last.is_some_and(|l| others.contains(&l)) {
                    return Err(refused());
                }
            }
            ast::SelectItem::UnnamedExpr(expr) | ast::SelectItem::ExprWithAlias { expr, .. } => {
                let mut finder = OtherTableColumns {
                    others: &others,
                    depth: 0,
                    found: false,
                };
                let _ = ast::Visit::visit(expr, &mut finder);
                other |= finder.found;
            }
            _ => {}
        }
    }
    if other {
        return Err(refused());
    }
    Ok(())
}

/// Finds `other.column` outside subqueries (inside one, the name may be the subquery's own).
struct OtherTableColumns<'a> {
    others: &'a [String],
    depth: usize,
    found: bool,
}

impl ast::Visitor for OtherTableColumns<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> std::ops::ControlFlow<()> {
        self.depth += 1;
        std::ops::ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> std::ops::ControlFlow<()> {
        self.depth -= 1;
        std::ops::ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> std::ops::ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr {
            if self.depth == 0
                && parts.len() >= 2
                && self.others.contains(&ident_name(&parts[parts.len() - 2]))
            {
                self.found = true;
            }
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Wraps a SELECT of new rows with one boolean column per CHECK constraint.
fn with_checks(inner: Query, checks: &[(String, String)]) -> SqlResult<Query> {
    let mut outer = sqlbuild::template_query("SELECT __new.*")?;
    let select = sqlbuild::select_mut(&mut outer)?;
    for (i, (_, expr)) in checks.iter().enumerate() {
        select.projection.push(sqlbuild::aliased(
            sqlbuild::template_expr(expr)?,
            &format!("__check_{i}"),
        ));
    }
    select.from = vec![sqlbuild::derived(inner, "__new", &[])];
    Ok(outer)
}

/// A column's default (its stored expression, or NULL) cast to the column's type.
fn default_value(
    default: Option<&str>,
    field: &datafusion::arrow::datatypes::Field,
) -> SqlResult<Expr> {
    assignment_cast(sqlbuild::template_expr(default.unwrap_or("NULL"))?, field)
}

/// `SELECT 1 FROM floe_internal.target AS alias`, to fill in.
fn target_query(alias: &str) -> SqlResult<Query> {
    let mut query =
        sqlbuild::template_query(&format!("SELECT 1 FROM {} AS t", internal_table("target")))?;
    sqlbuild::set_first_alias(sqlbuild::select_mut(&mut query)?, alias)?;
    Ok(query)
}

/// `UPDATE t SET … [FROM …] WHERE …` as a SELECT of new rows and keys.
fn update_select(table: &TableData, alias: &str, update: &ast::Update) -> SqlResult<Query> {
    let def = &table.def;
    let assigned = assignments(def, &update.assignments)?;
    let mut projection = Vec::new();
    for (i, column) in def.columns.iter().enumerate() {
        let value = match assigned.get(&i) {
            Some(expr) => {
                if column.identity == Some(true) && !is_default(expr) {
                    return Err(SqlError::new(
                        sqlstate::GENERATED_ALWAYS,
                        format!("column \"{}\" can only be updated to DEFAULT", column.name),
                    ));
                }
                if is_default(expr) {
                    default_value(column.default.as_deref(), &column.field)?
                } else {
                    assignment_cast(expr.clone(), &column.field)?
                }
            }
            None => sqlbuild::column(alias, &column.name),
        };
        projection.push(sqlbuild::aliased(value, &column.name));
    }
    projection.push(sqlbuild::aliased(
        sqlbuild::column(alias, KEY_COLUMN),
        KEY_COLUMN,
    ));
    let mut query = target_query(alias)?;
    let select = sqlbuild::select_mut(&mut query)?;
    select.projection = projection;
    if let Some(UpdateTableFromKind::BeforeSet(tables) | UpdateTableFromKind::AfterSet(tables)) =
        &update.from
    {
        select.from.extend(tables.iter().cloned());
    }
    select.selection = update.selection.clone();
    Ok(query)
}

/// `DELETE FROM t [USING …] WHERE …` as a SELECT of keys.
fn delete_select(alias: &str, delete: &ast::Delete) -> SqlResult<Query> {
    let mut query = target_query(alias)?;
    let select = sqlbuild::select_mut(&mut query)?;
    select.projection = vec![sqlbuild::aliased(
        sqlbuild::column(alias, KEY_COLUMN),
        KEY_COLUMN,
    )];
    select.from.extend(delete.using.iter().flatten().cloned());
    select.selection = delete.selection.clone();
    Ok(query)
}

fn is_default(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))
}

/// `SET a = 1, b = 2` as column position → expression.
fn assignments(
    def: &floe_storage::TableDef,
    assignments: &[Assignment],
) -> SqlResult<HashMap<usize, Expr>> {
    let mut out = HashMap::new();
    for assignment in assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return Err(SqlError::not_supported("assigning to a column list"));
        };
        let column = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(ident_name)
            .unwrap_or_default();
        let position = def.column_index(&column).ok_or_else(|| {
            SqlError::new(
                sqlstate::UNDEFINED_COLUMN,
                format!(
                    "column \"{column}\" of relation \"{}\" does not exist",
                    def.name
                ),
            )
        })?;
        if out.insert(position, assignment.value.clone()).is_some() {
            return Err(SqlError::syntax(format!(
                "multiple assignments to same column \"{column}\""
            )));
        }
    }
    Ok(out)
}

fn key_column(batch: &RecordBatch, position: usize) -> SqlResult<&BinaryArray> {
    batch
        .column(position)
        .as_any()
        .downcast_ref::<BinaryArray>()
        .ok_or_else(|| SqlError::internal("DML key column is not binary"))
}

pub(super) fn duplicate_key(table: &TableData, key: &Key) -> SqlError {
    let constraint = table
        .def
        .primary_key
        .as_ref()
        .map(|pk| pk.name.clone())
        .unwrap_or_default();
    SqlError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!("duplicate key value violates unique constraint \"{constraint}\""),
    )
    .with_detail(format!(
        "Key {} already exists.",
        table.codec.describe_key(key)
    ))
}

/// `Failing row contains (1, null, x).`
pub(super) fn failing_row(batch: &RecordBatch, width: usize, row: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    let values: Vec<String> = (0..width.min(batch.num_columns()))
        .map(|i| {
            let column = batch.column(i);
            // PostgreSQL prints booleans as t/f in row images, and every value in its own
            // text form.
            if column.is_valid(row) {
                use datafusion::arrow::array::AsArray;
                use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
                match column.data_type() {
                    DataType::Boolean => {
                        return if column.as_boolean().value(row) {
                            "t"
                        } else {
                            "f"
                        }
                        .to_string()
                    }
                    DataType::LargeBinary | DataType::Decimal128(..) => {
                        if let Ok(Some(n)) = crate::numeric::functions::value_at(column, row) {
                            return n.to_text();
                        }
                    }
                    DataType::Float64 => {
                        return crate::types::float8_text(
                            column.as_primitive::<Float64Type>().value(row),
                        )
                    }
                    DataType::Float32 => {
                        return crate::types::float4_text(
                            column.as_primitive::<Float32Type>().value(row),
                        )
                    }
                    DataType::Binary => {
                        let bytes = column.as_binary::<i32>().value(row);
                        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                        return format!("\\x{hex}");
                    }
                    _ => {}
                }
            }
            ArrayFormatter::try_new(column.as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default()
        })
        .collect();
    format!("Failing row contains ({}).", values.join(", "))
}

/// The table's schema plus the key column.
fn keyed_schema(table: &TableData) -> SchemaRef {
    let mut fields: Vec<_> = table
        .codec
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(datafusion::arrow::datatypes::Field::new(
        KEY_COLUMN,
        datafusion::arrow::datatypes::DataType::Binary,
        false,
    ));
    Arc::new(datafusion::arrow::datatypes::Schema::new(fields))
}

/// An empty in-memory relation shaped like the table (with the key column when asked).
fn empty_rows(table: &TableData, with_key: bool) -> SqlResult<Arc<dyn TableProvider>> {
    let schema = if with_key {
        keyed_schema(table)
    } else {
        table.codec.schema().clone()
    };
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

/// Points a plan's `floe_internal.<name>` scans at these rows.
pub(super) fn replace_sources(
    plan: LogicalPlan,
    sources: &[(&str, RecordBatch)],
) -> SqlResult<LogicalPlan> {
    let mut providers: Vec<(&str, Arc<dyn TableProvider>)> = Vec::with_capacity(sources.len());
    for (name, batch) in sources {
        let provider = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
        providers.push((name, Arc::new(provider)));
    }
    let replaced = plan.transform_up(|node| {
        if let LogicalPlan::TableScan(mut scan) = node {
            if scan.table_name.schema() == Some(INTERNAL_SCHEMA) {
                let found = providers
                    .iter()
                    .find(|(name, _)| *name == scan.table_name.table());
                if let Some((_, provider)) = found {
                    scan.source = provider_as_source(provider.clone());
                    return Ok(Transformed::yes(LogicalPlan::TableScan(scan)));
                }
            }
            return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
        }
        Ok(Transformed::no(node))
    })?;
    Ok(replaced.data)
}

/// Each encoded row with its key: the primary key's encoding, or (a table without one) a row
/// id from `rowid`.
pub(super) fn keyed_rows(
    rows: &Rows,
    keys: Option<&Rows>,
    mut rowid: impl FnMut() -> u64,
) -> Vec<(Key, RowBytes)> {
    (0..rows.num_rows())
        .map(|i| {
            let key: Key = match keys {
                Some(keys) => Arc::from(keys.row(i).data()),
                None => TableCodec::rowid_key(rowid()),
            };
            (key, Arc::from(rows.row(i).data()))
        })
        .collect()
}

/// The number of rows of the VALUES list an INSERT reads (its source `__src`), if it is one.
fn values_rows(select: &LogicalPlan) -> Option<usize> {
    let mut rows = None;
    let _ = select.apply(|node| {
        if let LogicalPlan::Values(values) = node {
            rows = Some(values.values.len());
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    rows
}

/// `select` reading only row `i` of its VALUES list.
fn with_values_row(select: LogicalPlan, i: usize) -> SqlResult<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
    let mut done = false;
    Ok(select
        .transform_down(|node| {
            if done {
                return Ok(Transformed::new(node, false, TreeNodeRecursion::Jump));
            }
            match node {
                LogicalPlan::Values(mut values) => {
                    done = true;
                    values.values = values.values.into_iter().skip(i).take(1).collect();
                    Ok(Transformed::yes(LogicalPlan::Values(values)))
                }
                other => Ok(Transformed::no(other)),
            }
        })?
        .data)
}

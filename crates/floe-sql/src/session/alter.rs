//! ALTER TABLE.
//!
//! Metadata changes (renames, defaults, NOT NULL, CHECK) replace the table's definition and
//! keep its rows. Changes to how rows are laid out (ADD/DROP COLUMN, ADD PRIMARY KEY, column
//! types) rewrite the table: a SELECT computes every row in the new layout, and one commit
//! replaces definition and rows together (storage validates that no other commit wrote rows in
//! the old layout after it).
//!
//! Inside a transaction block ALTER is part of the transaction (see [`super::ddl`]): the new
//! definition (and a rewrite's rows) go to the transaction's pending catalog and write set, a
//! rewrite reads the rows the transaction sees (its own writes included), and all of it
//! commits or rolls back with the transaction.
//!
//! ALTER takes the table's relation lock before it reads the table (to the end of the block,
//! or of the statement outside one): other sessions' statements on the table wait, then plan
//! again against the new definition. Departure from PostgreSQL, for now: DML takes no lock, so
//! ALTER does not wait for transactions that already wrote to the table; such a transaction
//! committing after a rewrite fails with 40001, one committing during the rewrite's read can
//! lose its rows to the rewrite.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::sql::sqlparser::ast::{
    self, AlterColumnOperation, AlterTable, AlterTableOperation, ColumnOption, Expr, Query,
    RenameTableNameKind, TableConstraint,
};
use floe_storage::{CatalogChange, ColumnDef, ConstraintDef, Key, PrimaryKey, TableData, TableDef};

use super::ddl::ident_name;
use super::{Session, StatementResult};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::sqlbuild;
use crate::types::{assignment_cast, column_field};

impl Session {
    pub(super) async fn alter_table(&mut self, alter: AlterTable) -> SqlResult<StatementResult> {
        let Some(def) = self.find_relation(&alter.name)? else {
            if alter.if_exists {
                self.notices.push(super::Notice {
                    severity: "NOTICE",
                    code: sqlstate::SUCCESSFUL_COMPLETION,
                    message: format!("relation \"{}\" does not exist, skipping", alter.name),
                });
                return Ok(StatementResult::Command("ALTER TABLE".into()));
            }
            return Err(SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("relation \"{}\" does not exist", alter.name),
            ));
        };
        self.lock_relation_for_ddl(def.id).await?;
        if matches!(
            def.kind,
            floe_storage::RelationKind::View { .. }
                | floe_storage::RelationKind::MaterializedView { .. }
        ) {
            return self.alter_view(def, alter).await;
        }
        if !def.is_table() {
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{}\" is not a table", def.name),
            ));
        }
        let mut new_def = (*def).clone();
        // `SELECT` list computing each new column from the old row (None: metadata only).
        let mut rewrite = false;
        // Whether a column's type changes (every CHECK is validated again).
        let mut retype = false;
        let mut new_values: Vec<Expr> = def
            .columns
            .iter()
            .map(|c| Expr::Identifier(sqlbuild::name(&c.name)))
            .collect();
        let mut checks_to_validate = Vec::new();
        let mut not_null_to_validate = Vec::new();
        for operation in alter.operations {
            match operation {
                AlterTableOperation::RenameTable { table_name } => {
                    new_def.name = self.renamed_relation(&def, table_name)?;
                }
                AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                } => {
                    rename_column(
                        &mut new_def,
                        &ident_name(&old_column_name),
                        &ident_name(&new_column_name),
                    )?;
                }
                AlterTableOperation::AddColumn {
                    if_not_exists,
                    column_def,
                    ..
                } => {
                    let name = ident_name(&column_def.name);
                    if new_def.column_index(&name).is_some() {
                        if if_not_exists {
                            continue;
                        }
                        return Err(SqlError::new(
                            sqlstate::DUPLICATE_COLUMN,
                            format!(
                                "column \"{name}\" of relation \"{}\" already exists",
                                def.name
                            ),
                        ));
                    }
                    let mut field = column_field(&name, &column_def.data_type)?;
                    let mut default = None;
                    let mut default_expr = None;
                    let mut not_null = false;
                    for option in &column_def.options {
                        match &option.option {
                            ColumnOption::Null => {}
                            ColumnOption::NotNull => not_null = true,
                            ColumnOption::Default(expr) => {
                                default = Some(expr.to_string());
                                default_expr = Some(expr.clone());
                            }
                            ColumnOption::Check(check) => {
                                let constraint = super::ddl::check_constraint_name(
                                    &def.name,
                                    &check.expr,
                                    &new_def.constraints,
                                );
                                new_def.constraints.push(ConstraintDef::Check {
                                    name: constraint.clone(),
                                    expr: check.expr.to_string(),
                                });
                                checks_to_validate.push((constraint, (*check.expr).clone()));
                            }
                            other => {
                                return Err(SqlError::not_supported(format!(
                                    "ADD COLUMN … {other} is not supported yet"
                                )))
                            }
                        }
                    }
                    field = field.with_nullable(!not_null);
                    let value = match default_expr {
                        Some(expr) => expr,
                        None => sqlbuild::template_expr("NULL")?,
                    };
                    new_values.push(assignment_cast(value, &field)?);
                    if not_null {
                        not_null_to_validate.push(new_def.columns.len());
                    }
                    new_def.columns.push(ColumnDef {
                        id: new_def.next_column_id,
                        name,
                        field,
                        default,
                        identity: None,
                    });
                    new_def.next_column_id += 1;
                    rewrite = true;
                }
                AlterTableOperation::DropColumn {
                    column_names,
                    if_exists,
                    ..
                } => {
                    for column in column_names {
                        let name = ident_name(&column);
                        let Some(position) = new_def.column_index(&name) else {
                            if if_exists {
                                continue;
                            }
                            return Err(undefined_column(&name, &def.name));
                        };
                        if let Some(pk) = &new_def.primary_key {
                            if pk.columns.contains(&position) {
                                new_def.primary_key = None;
                            }
                        }
                        let id = new_def.columns[position].id;
                        new_def.constraints.retain(|c| match c {
                            ConstraintDef::Unique { columns, .. } => !columns.contains(&id),
                            ConstraintDef::Check { expr, .. } => !mentions_column(expr, &name),
                        });
                        new_def.columns.remove(position);
                        new_values.remove(position);
                        if let Some(pk) = &mut new_def.primary_key {
                            for c in &mut pk.columns {
                                if *c > position {
                                    *c -= 1;
                                }
                            }
                        }
                        rewrite = true;
                    }
                }
                AlterTableOperation::AlterColumn { column_name, op } => {
                    let name = ident_name(&column_name);
                    let position = column_position(&new_def, &name)?;
                    match op {
                        AlterColumnOperation::SetNotNull => {
                            let column = &mut new_def.columns[position];
                            column.field = column.field.clone().with_nullable(false);
                            not_null_to_validate.push(position);
                        }
                        AlterColumnOperation::DropNotNull => {
                            if new_def
                                .primary_key
                                .as_ref()
                                .is_some_and(|pk| pk.columns.contains(&position))
                            {
                                return Err(SqlError::new(
                                    sqlstate::INVALID_TABLE_DEFINITION,
                                    format!("column \"{name}\" is in a primary key"),
                                ));
                            }
                            let column = &mut new_def.columns[position];
                            column.field = column.field.clone().with_nullable(true);
                        }
                        AlterColumnOperation::SetDefault { value } => {
                            new_def.columns[position].default = Some(value.to_string());
                        }
                        AlterColumnOperation::DropDefault => {
                            new_def.columns[position].default = None;
                        }
                        AlterColumnOperation::SetDataType {
                            data_type, using, ..
                        } => {
                            let column = &new_def.columns[position];
                            let exact_source = using.is_none()
                                && crate::numeric::functions::converts_to_numeric(
                                    column.field.data_type(),
                                )
                                && !crate::numeric::is_numeric_field_type(column.field.data_type());
                            let mut field = column_field(&name, &data_type)?
                                .with_nullable(column.field.is_nullable());
                            let source = match using {
                                Some(expr) => expr,
                                None => Expr::Identifier(sqlbuild::name(&name)),
                            };
                            if matches!(field.data_type(), DataType::Decimal128(..))
                                && !exact_source
                                && self.holds_nan(&def, &source).await?
                            {
                                // NaN (from a float, text or numeric) into numeric(p, s): held
                                // as a wide numeric with the typmod, as a column NaN is
                                // written into is (see `Session::widen_for_nan`).
                                field = Field::new(name.as_str(), DataType::LargeBinary, true)
                                    .with_nullable(field.is_nullable())
                                    .with_metadata(field.metadata().clone());
                            }
                            new_values[position] = assignment_cast(source, &field)?;
                            retype = true;
                            new_def.columns[position].field = field;
                            rewrite = true;
                        }
                        other => {
                            return Err(SqlError::not_supported(format!(
                                "ALTER COLUMN … {other} is not supported yet"
                            )))
                        }
                    }
                }
                AlterTableOperation::AddConstraint { constraint, .. } => match constraint {
                    TableConstraint::PrimaryKey(pk) => {
                        if new_def.primary_key.is_some() {
                            return Err(SqlError::new(
                                sqlstate::INVALID_TABLE_DEFINITION,
                                format!(
                                    "multiple primary keys for table \"{}\" are not allowed",
                                    def.name
                                ),
                            ));
                        }
                        let mut columns = Vec::new();
                        for c in &pk.columns {
                            let name = key_column_name(&c.column.expr)?;
                            let position = column_position(&new_def, &name)?;
                            let column = &mut new_def.columns[position];
                            column.field = column.field.clone().with_nullable(false);
                            not_null_to_validate.push(position);
                            columns.push(position);
                        }
                        new_def.primary_key = Some(PrimaryKey {
                            name: pk
                                .name
                                .as_ref()
                                .map(ident_name)
                                .unwrap_or_else(|| format!("{}_pkey", def.name)),
                            columns,
                        });
                        rewrite = true;
                    }
                    TableConstraint::Check(check) => {
                        let constraint = check.name.as_ref().map(ident_name).unwrap_or_else(|| {
                            super::ddl::check_constraint_name(
                                &def.name,
                                &check.expr,
                                &new_def.constraints,
                            )
                        });
                        new_def.constraints.push(ConstraintDef::Check {
                            name: constraint.clone(),
                            expr: check.expr.to_string(),
                        });
                        checks_to_validate.push((constraint, (*check.expr).clone()));
                    }
                    TableConstraint::Unique(unique) => {
                        let mut ids = Vec::new();
                        let mut names = Vec::new();
                        for c in &unique.columns {
                            let name = key_column_name(&c.column.expr)?;
                            let position = column_position(&new_def, &name)?;
                            ids.push(new_def.columns[position].id);
                            names.push(name);
                        }
                        new_def.constraints.push(ConstraintDef::Unique {
                            name: unique
                                .name
                                .as_ref()
                                .map(ident_name)
                                .unwrap_or_else(|| format!("{}_{}_key", def.name, names.join("_"))),
                            columns: ids,
                        });
                    }
                    other => {
                        return Err(SqlError::not_supported(format!(
                            "ADD {other} is not supported yet"
                        )))
                    }
                },
                AlterTableOperation::DropConstraint {
                    if_exists, name, ..
                } => {
                    let name = ident_name(&name);
                    let before = new_def.constraints.len();
                    new_def.constraints.retain(|c| c.name() != name);
                    if new_def
                        .primary_key
                        .as_ref()
                        .is_some_and(|pk| pk.name == name)
                    {
                        new_def.primary_key = None;
                        rewrite = true;
                    } else if new_def.constraints.len() == before && !if_exists {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_OBJECT,
                            format!(
                                "constraint \"{name}\" of relation \"{}\" does not exist",
                                def.name
                            ),
                        ));
                    }
                }
                other => {
                    return Err(SqlError::not_supported(format!(
                        "ALTER TABLE … {other} is not supported yet"
                    )))
                }
            }
        }
        if retype {
            // A column's new type must still satisfy (and type-check in) every CHECK.
            for constraint in &new_def.constraints {
                if let ConstraintDef::Check { name, expr } = constraint {
                    if !checks_to_validate.iter().any(|(n, _)| n == name) {
                        checks_to_validate.push((name.clone(), sqlbuild::template_expr(expr)?));
                    }
                }
            }
        }
        let new_def = Arc::new(new_def);
        // The table's rows as they will be: each new column computed from the old row.
        let new_rows = || -> SqlResult<Query> {
            let mut query = sqlbuild::template_query("SELECT 1 FROM t")?;
            let select = sqlbuild::select_mut(&mut query)?;
            sqlbuild::set_first_table(select, &def.schema, &def.name)?;
            select.projection = new_values
                .iter()
                .zip(&new_def.columns)
                .map(|(value, column)| sqlbuild::aliased(value.clone(), &column.name))
                .collect();
            Ok(query)
        };
        // How many of the new rows match `selection`.
        let count_new = |selection: Expr| -> SqlResult<Query> {
            let mut query = sqlbuild::template_query("SELECT count(*)")?;
            let select = sqlbuild::select_mut(&mut query)?;
            select.from = vec![sqlbuild::derived(new_rows()?, &new_def.name, &[])];
            select.selection = Some(selection);
            Ok(query)
        };
        for position in not_null_to_validate {
            let Some(column) = new_def.columns.get(position).map(|c| c.name.clone()) else {
                continue;
            };
            let is_null = Expr::IsNull(Box::new(Expr::Identifier(sqlbuild::name(&column))));
            if self.count_rows(count_new(is_null)?).await? > 0 {
                return Err(SqlError::new(
                    sqlstate::NOT_NULL_VIOLATION,
                    format!(
                        "column \"{column}\" of relation \"{}\" contains null values",
                        def.name
                    ),
                ));
            }
        }
        for (constraint, check) in checks_to_validate {
            // A row violates a CHECK only when it is false (NULL passes).
            let violated = Expr::UnaryOp {
                op: ast::UnaryOperator::Not,
                expr: Box::new(Expr::Nested(Box::new(check))),
            };
            if self.count_rows(count_new(violated)?).await? > 0 {
                return Err(SqlError::new(
                    sqlstate::CHECK_VIOLATION,
                    format!(
                        "check constraint \"{constraint}\" of relation \"{}\" is violated by some row",
                        def.name
                    ),
                ));
            }
        }
        if rewrite {
            let select = new_rows()?;
            self.rewrite_table(new_def, select).await?;
        } else {
            self.commit_ddl(vec![CatalogChange::PutRelation(new_def)])
                .await?;
        }
        Ok(StatementResult::Command("ALTER TABLE".into()))
    }

    /// Whether `value`, computed from each row of table `def`, is NaN for some row.
    async fn holds_nan(&self, def: &TableDef, value: &Expr) -> SqlResult<bool> {
        let mut query = sqlbuild::template_query("SELECT count(*) FROM t")?;
        let select = sqlbuild::select_mut(&mut query)?;
        sqlbuild::set_first_table(select, &def.schema, &def.name)?;
        let nan = sqlbuild::template_expr(&format!(
            "CAST(({}) AS numeric) = CAST('NaN' AS numeric)",
            sqlbuild::SLOT
        ))?;
        select.selection = Some(sqlbuild::fill(nan, value.clone()));
        Ok(self.count_rows(query).await? > 0)
    }

    async fn count_rows(&self, query: Query) -> SqlResult<i64> {
        let batches = self.query_latest(query).await?;
        let value = batches
            .first()
            .filter(|b| b.num_rows() > 0)
            .map(|b| datafusion::scalar::ScalarValue::try_from_array(b.column(0), 0))
            .transpose()?;
        Ok(match value {
            Some(datafusion::scalar::ScalarValue::Int64(Some(n))) => n,
            _ => 0,
        })
    }

    /// Runs a query at the newest committed state (plus the block's own writes).
    async fn query_latest(&self, query: Query) -> SqlResult<Vec<RecordBatch>> {
        let statement = ast::Statement::Query(Box::new(query));
        let plan = self.plan_query(&statement, &[]).await?;
        let view = match &self.txn {
            Some(block) => block.storage.lock().await.latest_view(),
            None => Arc::new(floe_storage::ReadView::committed(self.db().snapshot())),
        };
        self.collect_plan(&plan, view).await
    }

    /// Makes table `id`'s `numeric(p, s)` columns of typmod `typmod` that are held as
    /// `Decimal128` wide numerics (keeping the typmod, as `numeric(p > 38, s)` columns are), so
    /// they can hold NaN as PostgreSQL's do: a rewrite, like `ALTER … TYPE`, and transactional
    /// like it. Values, the column's type as clients see it and its constraints are unchanged;
    /// only arithmetic on the column leaves the vectorised `Decimal128` path. False when the
    /// table has no such column.
    pub(super) async fn widen_for_nan(&mut self, id: u32, typmod: (u32, u32)) -> SqlResult<bool> {
        let Some(def) = self.db().catalog().relation(id).cloned() else {
            return Ok(false);
        };
        let Some((new_def, select)) = nan_widened(&def, typmod)? else {
            return Ok(false);
        };
        self.lock_relation_for_ddl(def.id).await?;
        self.rewrite_table(Arc::new(new_def), select).await?;
        Ok(true)
    }

    /// [`Session::widen_for_nan`] inside `txn`, which has written rows of the table (a COPY
    /// that meets NaN after some chunks): the rewrite reads them too, and the new definition
    /// is in `txn`'s pending catalog until it commits.
    pub(super) async fn widen_for_nan_in(
        &self,
        txn: &mut floe_storage::Txn,
        id: u32,
        typmod: (u32, u32),
    ) -> SqlResult<bool> {
        let pending = txn.pending_catalog();
        floe_storage::with_pending_catalog(pending, async {
            let Some(def) = self.db().catalog().relation(id).cloned() else {
                return Ok(false);
            };
            let Some((new_def, select)) = nan_widened(&def, typmod)? else {
                return Ok(false);
            };
            txn.lock_relation(id).await?;
            let plan = self
                .plan_query(&ast::Statement::Query(Box::new(select)), &[])
                .await?;
            let batches = self.collect_plan(&plan, txn.latest_view()).await?;
            fill_rewritten(txn, Arc::new(new_def), batches).await?;
            Ok(true)
        })
        .await
    }

    /// Replaces the table's definition and all its rows (computed by `select`) in one commit.
    async fn rewrite_table(&mut self, new_def: Arc<TableDef>, select: Query) -> SqlResult<()> {
        let batches = self.query_latest(select).await?;
        let mut txn = self.statement_txn().await?;
        let result = fill_rewritten(&mut txn, new_def, batches).await;
        self.finish_statement_txn(txn, result).await
    }
}

/// Writes a rewritten table's rows (`batches`, in `new_def`'s column order) in place of all its
/// rows, and its new definition, into `txn`.
async fn fill_rewritten(
    txn: &mut floe_storage::Txn,
    new_def: Arc<TableDef>,
    batches: Vec<RecordBatch>,
) -> SqlResult<()> {
    {
        let data = Arc::new(TableData::new(new_def.clone())?);
        let schema = data.codec.schema().clone();
        txn.truncate(&data);
        let mut rowid = 0u64;
        for batch in batches {
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
            for (i, field) in schema.fields().iter().enumerate() {
                let column = batch.column(i);
                let column = if column.data_type() == field.data_type() {
                    column.clone()
                } else {
                    cast(column, field.data_type())?
                };
                if !field.is_nullable() && column.null_count() > 0 {
                    return Err(SqlError::new(
                        sqlstate::NOT_NULL_VIOLATION,
                        format!(
                            "column \"{}\" of relation \"{}\" contains null values",
                            field.name(),
                            new_def.name
                        ),
                    ));
                }
                columns.push(column);
            }
            let rows = data.codec.encode_rows(&columns)?;
            let keys = data.codec.encode_keys(&columns)?;
            let pairs = super::dml::keyed_rows(&rows, keys.as_ref(), || {
                rowid += 1;
                rowid
            });
            // A batch at a time, without row locks: nobody else sees the new table yet.
            let duplicate = txn.insert_rewritten(&data, pairs, Some(&columns)).await?;
            if let (Some(i), Some(keys)) = (duplicate, &keys) {
                let key: Key = Arc::from(keys.row(i).data());
                let pk = new_def
                    .primary_key
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                return Err(SqlError::new(
                    sqlstate::UNIQUE_VIOLATION,
                    format!("could not create unique index \"{pk}\""),
                )
                .with_detail(format!(
                    "Key {} is duplicated.",
                    data.codec.describe_key(&key)
                )));
            }
        }
        txn.change_catalog(CatalogChange::PutRelation(new_def))?;
        Ok(())
    }
}

/// `def` with its `Decimal128(p, s)` columns of typmod `typmod` as wide numerics, and the
/// query computing its rows in that layout; `None` when it has no such column.
fn nan_widened(def: &TableDef, typmod: (u32, u32)) -> SqlResult<Option<(TableDef, Query)>> {
    let fits = |field: &Field| {
        matches!(field.data_type(), DataType::Decimal128(p, s)
            if (*p as u32, *s as u32) == typmod)
    };
    if !def.columns.iter().any(|c| fits(&c.field)) {
        return Ok(None);
    }
    let mut new_def = def.clone();
    let mut values = Vec::with_capacity(def.columns.len());
    let to_numeric = sqlbuild::template_expr(&format!("CAST({} AS numeric)", sqlbuild::SLOT))?;
    for column in &mut new_def.columns {
        let name = Expr::Identifier(sqlbuild::name(&column.name));
        if fits(&column.field) {
            column.field = Field::new(
                column.field.name(),
                DataType::LargeBinary,
                column.field.is_nullable(),
            )
            .with_metadata(column.field.metadata().clone());
            values.push(sqlbuild::fill(to_numeric.clone(), name));
        } else {
            values.push(name);
        }
    }
    tracing::info!(
        table = %def.name,
        "numeric({},{}) columns become wide numerics to hold NaN",
        typmod.0,
        typmod.1
    );
    let mut query = sqlbuild::template_query("SELECT 1 FROM t")?;
    let select = sqlbuild::select_mut(&mut query)?;
    sqlbuild::set_first_table(select, &def.schema, &def.name)?;
    select.projection = values
        .into_iter()
        .zip(&new_def.columns)
        .map(|(value, column)| sqlbuild::aliased(value, &column.name))
        .collect();
    Ok(Some((new_def, query)))
}

/// Whether `def` has `numeric(p, s)` columns held as `Decimal128` (see
/// [`Session::widen_for_nan`]).
pub(super) fn has_fixed_numerics(def: &TableDef) -> bool {
    def.columns
        .iter()
        .any(|c| matches!(c.field.data_type(), DataType::Decimal128(..)))
}

impl Session {
    /// The new name of `ALTER TABLE/VIEW … RENAME TO`, checked to be free in the relation's
    /// schema (42P07 otherwise).
    pub(super) fn renamed_relation(
        &self,
        def: &TableDef,
        table_name: RenameTableNameKind,
    ) -> SqlResult<String> {
        let name = match table_name {
            RenameTableNameKind::As(n) | RenameTableNameKind::To(n) => n,
        };
        let (_, name) = self.split_name(&name)?;
        if self
            .db()
            .catalog()
            .relation_by_name(&def.database, &def.schema, &name)
            .is_some()
        {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        Ok(name)
    }
}

/// `RENAME COLUMN old TO new` on a table's or view's definition, with PostgreSQL's errors.
pub(super) fn rename_column(def: &mut TableDef, old: &str, new: &str) -> SqlResult<()> {
    let position = def.column_index(old).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{old}\" does not exist"),
        )
    })?;
    if def.column_index(new).is_some() {
        return Err(SqlError::new(
            sqlstate::DUPLICATE_COLUMN,
            format!(
                "column \"{new}\" of relation \"{}\" already exists",
                def.name
            ),
        ));
    }
    def.columns[position].name = new.to_string();
    def.columns[position].field = def.columns[position].field.clone().with_name(new);
    // CHECK and DEFAULT expressions follow the column under its new name.
    for constraint in &mut def.constraints {
        if let ConstraintDef::Check { expr, .. } = constraint {
            *expr = rename_in_expr(expr, old, new);
        }
    }
    for column in &mut def.columns {
        if let Some(default) = &mut column.default {
            *default = rename_in_expr(default, old, new);
        }
    }
    Ok(())
}

/// Column references in an expression stored as SQL text (a CHECK or a DEFAULT): the last
/// part of each identifier, folded like a column name. `None` if the text does not parse.
fn with_column_refs(expr: &str, mut each: impl FnMut(&mut ast::Ident)) -> Option<ast::Expr> {
    use datafusion::sql::sqlparser::ast::{Expr, VisitMut, VisitorMut};
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    struct Refs<'a, F: FnMut(&mut ast::Ident)>(&'a mut F);
    impl<F: FnMut(&mut ast::Ident)> VisitorMut for Refs<'_, F> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> std::ops::ControlFlow<()> {
            match expr {
                Expr::Identifier(ident) => (self.0)(ident),
                Expr::CompoundIdentifier(parts) => {
                    if let Some(last) = parts.last_mut() {
                        (self.0)(last)
                    }
                }
                _ => {}
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
        .ok()?;
    let _ = parsed.visit(&mut Refs(&mut each));
    Some(parsed)
}

/// Whether a stored expression refers to `column` (by name, not as a substring of other text).
fn mentions_column(expr: &str, column: &str) -> bool {
    let mut found = false;
    let parsed = with_column_refs(expr, |ident| found |= ident_name(ident) == column);
    // Text that no longer parses cannot be checked; keep the old, cautious answer.
    parsed.is_some() && found || parsed.is_none() && expr.contains(column)
}

/// A stored expression with references to column `old` renamed to `new`.
fn rename_in_expr(expr: &str, old: &str, new: &str) -> String {
    let renamed = with_column_refs(expr, |ident| {
        if ident_name(ident) == old {
            let plain = new
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !new.starts_with(|c: char| c.is_ascii_digit());
            *ident = if plain {
                ast::Ident::new(new)
            } else {
                ast::Ident::with_quote('"', new)
            };
        }
    });
    renamed.map_or_else(|| expr.to_string(), |e| e.to_string())
}

/// The column a key (PRIMARY KEY, UNIQUE) names.
fn key_column_name(expr: &Expr) -> SqlResult<String> {
    match expr {
        Expr::Identifier(ident) => Ok(ident_name(ident)),
        other => Err(SqlError::not_supported(format!(
            "expressions in keys are not supported: {other}"
        ))),
    }
}

fn column_position(def: &TableDef, name: &str) -> SqlResult<usize> {
    def.column_index(name)
        .ok_or_else(|| undefined_column(name, &def.name))
}

fn undefined_column(column: &str, table: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" does not exist"),
    )
}

#[cfg(test)]
mod expr_tests {
    use super::{mentions_column, rename_in_expr};

    #[test]
    fn column_references_are_names_not_substrings() {
        assert!(!mentions_column("balance >= 0", "a"));
        assert!(mentions_column("balance >= 0", "balance"));
        assert!(mentions_column("t.balance >= 0", "balance"));
        assert!(!mentions_column("note <> 'balance'", "balance"));
        assert!(mentions_column("\"Mixed\" > 1", "Mixed"));
        assert_eq!(
            rename_in_expr("balance >= 0 AND b < balance", "balance", "bal"),
            "bal >= 0 AND b < bal"
        );
        assert_eq!(
            rename_in_expr("note <> 'balance'", "balance", "x"),
            "note <> 'balance'"
        );
        assert_eq!(rename_in_expr("a > 0", "a", "New"), "\"New\" > 0");
    }
}

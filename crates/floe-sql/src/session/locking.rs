//! `SELECT … FOR UPDATE | FOR NO KEY UPDATE | FOR SHARE | FOR KEY SHARE [OF t] [NOWAIT | SKIP
//! LOCKED]`: the returned rows of the base tables are locked in the session's transaction (or
//! the statement's own, which commits at once, as outside a transaction block in PostgreSQL).
//!
//! The query is planned with each locked table read through `floe_internal.lock_<i>` (the table
//! with its row-key column) and the keys appended as hidden result columns. Each returned row's
//! keys are locked with the same row locks UPDATE takes; a row another transaction changed after
//! the snapshot is, under READ COMMITTED, evaluated again at the newest version (PostgreSQL's
//! EvalPlanQual: the new version is returned if it still qualifies, else the row is skipped),
//! and under REPEATABLE READ is a serialization failure (40001).
//!
//! Floe has one kind of row lock, exclusive: the share strengths lock like FOR UPDATE, so two
//! `FOR SHARE` readers of one row wait for each other. LIMIT applies before locking, so with
//! SKIP LOCKED fewer rows than the limit may come back.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::logical_expr::{col, lit, Expr as PlanExpr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Expr, Ident, NonBlock, ObjectName, ObjectNamePart, Query, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor,
};
use floe_storage::{FloeTable, Key, RowCheck, TableData, Txn, KEY_COLUMN};

use super::ddl::ident_name;
use super::{bind_params, describe_plan, RowStream, Session, StatementResult};
use crate::catalog::{with_dml_sources, DmlSources, INTERNAL_SCHEMA};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::SqlType;

/// A planned row-locking query.
#[derive(Debug)]
pub(crate) struct LockingPlan {
    /// The query; its last `targets.len()` columns are the locked rows' keys.
    plan: LogicalPlan,
    /// The table each key column locks rows of.
    targets: Vec<Arc<TableData>>,
    /// The columns the client sees.
    schema: SchemaRef,
    nonblock: Option<NonBlock>,
}

impl LockingPlan {
    /// Adds the tables the statement locks rows of and reads to `tables`.
    pub(crate) fn tables(&self, tables: &mut Vec<u32>) {
        tables.extend(self.targets.iter().map(|t| t.def.id));
        super::scanned_tables(&self.plan, tables);
    }
}

fn lock_column(i: usize) -> String {
    format!("__floe_lock_{i}")
}

fn not_allowed(strength: &str, what: &str) -> SqlError {
    SqlError::new(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("{strength} is not allowed with {what}"),
    )
}

/// One FROM item of the locking query.
enum FromItem {
    /// A locked table: its alias and definition.
    Locked(Ident, Arc<TableData>),
    /// Any other relation, by the name its columns are qualified with.
    Other(ObjectName),
}

impl Session {
    /// Plans a query with locking clauses; returns the plan, parameter types and result columns.
    pub(super) async fn plan_locking(
        &self,
        query: &Query,
        declared: &[SqlType],
    ) -> SqlResult<(LockingPlan, Vec<SqlType>, SchemaRef)> {
        let mut query = query.clone();
        let locks = std::mem::take(&mut query.locks);
        let strength = match locks.first().map(|l| &l.lock_type) {
            Some(ast::LockType::Share) => "FOR SHARE",
            _ => "FOR UPDATE",
        };
        let nonblock = if locks
            .iter()
            .any(|l| matches!(l.nonblock, Some(NonBlock::Nowait)))
        {
            Some(NonBlock::Nowait)
        } else if locks
            .iter()
            .any(|l| matches!(l.nonblock, Some(NonBlock::SkipLocked)))
        {
            Some(NonBlock::SkipLocked)
        } else {
            None
        };
        let only: Option<Vec<String>> = if locks.iter().all(|l| l.of.is_some()) {
            Some(
                locks
                    .iter()
                    .filter_map(|l| l.of.as_ref())
                    .filter_map(|name| name.0.last().and_then(|p| p.as_ident()).map(ident_name))
                    .collect(),
            )
        } else {
            None
        };
        let select = match query.body.as_mut() {
            SetExpr::Select(select) => select,
            SetExpr::SetOperation { .. } => {
                return Err(not_allowed(strength, "UNION/INTERSECT/EXCEPT"));
            }
            _ => return Err(SqlError::not_supported("FOR UPDATE on this kind of query")),
        };
        if select.distinct.is_some() {
            return Err(not_allowed(strength, "DISTINCT clause"));
        }
        let grouped =
            !matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if e.is_empty());
        if grouped || select.having.is_some() {
            return Err(not_allowed(strength, "GROUP BY clause"));
        }

        let mut items: Vec<FromItem> = Vec::new();
        let mut targets: Vec<Arc<TableData>> = Vec::new();
        let mut providers = Vec::new();
        let mut found_of: Vec<String> = Vec::new();
        for table in &mut select.from {
            let factors = std::iter::once(&mut table.relation)
                .chain(table.joins.iter_mut().map(|j| &mut j.relation));
            for factor in factors {
                match factor {
                    TableFactor::Table {
                        name,
                        alias,
                        args: None,
                        ..
                    } => {
                        let alias_ident =
                            alias.as_ref().map(|a| a.name.clone()).unwrap_or_else(|| {
                                name.0
                                    .last()
                                    .and_then(|p| p.as_ident())
                                    .cloned()
                                    .unwrap_or_else(|| Ident::new(""))
                            });
                        let def = self.find_relation(name).ok().flatten();
                        let wanted = only
                            .as_ref()
                            .is_none_or(|o| o.contains(&ident_name(&alias_ident)));
                        match def {
                            Some(def) if def.is_table() && wanted => {
                                let data = self
                                    .db()
                                    .table(def.id)
                                    .ok_or_else(|| SqlError::internal("table has no storage"))?;
                                found_of.push(ident_name(&alias_ident));
                                let i = targets.len();
                                *name = ObjectName(vec![
                                    ObjectNamePart::Identifier(Ident::new(INTERNAL_SCHEMA)),
                                    ObjectNamePart::Identifier(Ident::new(format!("lock_{i}"))),
                                ]);
                                let columns = alias.as_ref().map(|a| a.columns.clone());
                                *alias = Some(TableAlias {
                                    explicit: true,
                                    name: alias_ident.clone(),
                                    columns: columns.unwrap_or_default(),
                                    at: None,
                                });
                                providers.push(Arc::new(FloeTable::new(
                                    self.db().clone(),
                                    data.clone(),
                                    true,
                                ))
                                    as Arc<dyn datafusion::datasource::TableProvider>);
                                items.push(FromItem::Locked(alias_ident, data.clone()));
                                targets.push(data);
                            }
                            _ => items.push(FromItem::Other(ObjectName::from(vec![alias_ident]))),
                        }
                    }
                    TableFactor::Derived {
                        alias: Some(alias), ..
                    }
                    | TableFactor::Function {
                        alias: Some(alias), ..
                    } => items.push(FromItem::Other(ObjectName::from(vec![alias.name.clone()]))),
                    _ => {
                        return Err(SqlError::not_supported(
                            "FOR UPDATE with this kind of FROM item",
                        ))
                    }
                }
            }
        }
        if let Some(only) = &only {
            if let Some(missing) = only.iter().find(|o| !found_of.contains(o)) {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_TABLE,
                    format!("relation \"{missing}\" in FOR UPDATE clause not found in FROM clause"),
                ));
            }
        }

        // The key columns must not show through `*`: spell wildcards out.
        if !targets.is_empty() {
            let mut projection = Vec::with_capacity(select.projection.len());
            for item in std::mem::take(&mut select.projection) {
                match item {
                    SelectItem::Wildcard(_) => {
                        for from in &items {
                            projection.extend(expand_item(from));
                        }
                    }
                    SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(name),
                        options,
                    ) => {
                        let qualifier = name.0.last().and_then(|p| p.as_ident()).map(ident_name);
                        let locked = items.iter().find(|i| {
                            matches!(i, FromItem::Locked(alias, _) if Some(ident_name(alias)) == qualifier)
                        });
                        match locked {
                            Some(from) => projection.extend(expand_item(from)),
                            None => projection.push(SelectItem::QualifiedWildcard(
                                SelectItemQualifiedWildcardKind::ObjectName(name),
                                options,
                            )),
                        }
                    }
                    other => projection.push(other),
                }
            }
            for (i, from) in items
                .iter()
                .filter(|i| matches!(i, FromItem::Locked(..)))
                .enumerate()
            {
                if let FromItem::Locked(alias, _) = from {
                    projection.push(SelectItem::ExprWithAlias {
                        expr: Expr::CompoundIdentifier(vec![alias.clone(), Ident::new(KEY_COLUMN)]),
                        alias: Ident::new(lock_column(i)),
                    });
                }
            }
            select.projection = projection;
        }

        let statement = Statement::Query(Box::new(query));
        let sources = DmlSources {
            locked: providers,
            ..DmlSources::default()
        };
        let plan = with_dml_sources(sources, async {
            self.plan_query(&statement, declared).await
        })
        .await
        .map_err(|err| {
            // The hidden key column is what an aggregate cannot group: PostgreSQL's error.
            if err.to_string().contains(KEY_COLUMN) {
                not_allowed(strength, "aggregate functions")
            } else {
                err
            }
        })?;
        let (param_types, full) = describe_plan(&plan, declared)?;
        let visible = full.fields().len().saturating_sub(targets.len());
        let schema = Arc::new(Schema::new(full.fields()[..visible].to_vec()));
        Ok((
            LockingPlan {
                plan,
                targets,
                schema: schema.clone(),
                nonblock,
            },
            param_types,
            schema,
        ))
    }

    /// Runs a row-locking query: reads, locks each row, re-checks changed rows.
    pub(super) async fn execute_locking(
        &mut self,
        plan: &LockingPlan,
        param_types: &[SqlType],
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        if self.vars.get("transaction_read_only").unwrap_or_default() == "on" {
            return Err(SqlError::new(
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                "cannot execute SELECT FOR UPDATE in a read-only transaction",
            ));
        }
        let query = bind_params(plan.plan.clone(), param_types, params, self.zone())?;
        let mut txn = self.statement_txn().await?;
        let result = self.lock_rows(plan, &query, &mut txn).await;
        let rows = self.finish_statement_txn(txn, result).await?;
        let schema = plan.schema.clone();
        let batches: Vec<_> = rows
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(
                    schema.clone(),
                    b.columns()[..schema.fields().len()].to_vec(),
                )
                .map_err(datafusion::error::DataFusionError::from)
            })
            .collect();
        Ok(StatementResult::Rows {
            rows: RowStream {
                schema: schema.clone(),
                stream: Box::pin(RecordBatchStreamAdapter::new(
                    schema,
                    futures::stream::iter(batches),
                )),
            },
            tag: "SELECT",
        })
    }

    async fn lock_rows(
        &self,
        plan: &LockingPlan,
        query: &LogicalPlan,
        txn: &mut Txn,
    ) -> SqlResult<Vec<RecordBatch>> {
        let view = txn.statement_view();
        let batches = self.collect_plan(query, view.clone()).await?;
        let first_key = plan.schema.fields().len();
        let mut out = Vec::new();
        for batch in batches {
            let keys: Vec<&BinaryArray> = (0..plan.targets.len())
                .map(|i| {
                    batch
                        .column(first_key + i)
                        .as_any()
                        .downcast_ref::<BinaryArray>()
                        .ok_or_else(|| SqlError::internal("lock key column is not binary"))
                })
                .collect::<SqlResult<_>>()?;
            'rows: for row in 0..batch.num_rows() {
                let mut changed = false;
                let mut row_keys: Vec<Option<Key>> = Vec::with_capacity(keys.len());
                for (table, keys) in plan.targets.iter().zip(&keys) {
                    if keys.is_null(row) {
                        // The outer side of a join without a row: nothing to lock.
                        row_keys.push(None);
                        continue;
                    }
                    let key: Key = Arc::from(keys.value(row));
                    match plan.nonblock {
                        None => txn.lock_row(table, &key).await?,
                        Some(NonBlock::Nowait) => {
                            if !txn.try_lock_row(table, &key) {
                                return Err(SqlError::new(
                                    sqlstate::LOCK_NOT_AVAILABLE,
                                    format!(
                                        "could not obtain lock on row in relation \"{}\"",
                                        table.def.name
                                    ),
                                ));
                            }
                        }
                        Some(NonBlock::SkipLocked) => {
                            if !txn.try_lock_row(table, &key) {
                                continue 'rows;
                            }
                        }
                    }
                    match txn.check_row(table, &key, &view)? {
                        RowCheck::Current(Some(_)) => {}
                        RowCheck::Current(None) | RowCheck::Changed(None) => continue 'rows,
                        RowCheck::Changed(Some(_)) => changed = true,
                    }
                    row_keys.push(Some(key));
                }
                if !changed {
                    out.push(batch.slice(row, 1));
                    continue;
                }
                // READ COMMITTED: the row as it is now, if it still qualifies.
                let mut filter: Option<PlanExpr> = None;
                for (i, key) in row_keys.iter().enumerate() {
                    let condition = match key {
                        Some(key) => {
                            col(lock_column(i)).eq(lit(ScalarValue::Binary(Some(key.to_vec()))))
                        }
                        None => col(lock_column(i)).is_null(),
                    };
                    filter = Some(match filter {
                        Some(f) => f.and(condition),
                        None => condition,
                    });
                }
                let Some(filter) = filter else {
                    continue;
                };
                let recheck = LogicalPlanBuilder::from(query.clone())
                    .filter(filter)?
                    .build()?;
                for again in self.collect_plan(&recheck, txn.latest_view()).await? {
                    if again.num_rows() > 0 {
                        out.push(again.slice(0, 1));
                        break;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The select items `*` stands for in one FROM item, without key columns.
fn expand_item(from: &FromItem) -> Vec<SelectItem> {
    match from {
        FromItem::Locked(alias, data) => data
            .def
            .columns
            .iter()
            .map(|c| {
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                    alias.clone(),
                    Ident::with_quote('"', c.name.clone()),
                ]))
            })
            .collect(),
        FromItem::Other(name) => vec![SelectItem::QualifiedWildcard(
            SelectItemQualifiedWildcardKind::ObjectName(name.clone()),
            ast::WildcardAdditionalOptions::default(),
        )],
    }
}

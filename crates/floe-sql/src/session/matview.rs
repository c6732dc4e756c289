//! `CREATE`, `REFRESH` (and, through the generic paths, `DROP` and `ALTER … RENAME`) of
//! materialized views, and starting their maintenance (see [`crate::matview`]).
//!
//! CREATE plans the query as a `SELECT` would be planned, compiles the optimised plan for the
//! view engine (a construct it cannot maintain is refused here with 0A000, naming it), runs it
//! once (a query that fails now fails the CREATE, as in PostgreSQL, and the row count is the
//! command tag's), and commits the definition with every relation name qualified by its schema
//! (so planning it again after a restart means the same relations). Maintenance starts once
//! the definition is committed: at once outside a block, at COMMIT inside one
//! ([`Session::sync_materialized_views`]).
//!
//! Maintenance reads base tables only: the views and materialized views a definition reads
//! are expanded into their queries for it (a materialized view over another one maintains the
//! combined query; both answer at every snapshot exactly as their queries do).

use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{self, Ident, ObjectName, Statement};
use floe_storage::{CatalogChange, FloeTable, RelationKind, TableCodec, TableDef};
use floe_views::ViewError;

use super::{Session, StatementResult};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::matview::Maintained;

/// A view engine error at CREATE or planning time.
fn view_sql_error(e: ViewError) -> SqlError {
    match e {
        ViewError::Unsupported(_) => SqlError::not_supported(e.to_string()),
        ViewError::Stopped(text) if text.contains('\u{1f}') => SqlError::from_view_message(&text),
        ViewError::DataFusion(e) => SqlError::from(e),
        ViewError::Query(text) => SqlError::from_view_message(&text),
        other => SqlError::internal(other.to_string()),
    }
}

/// What maintaining a view needs: its incremental plan and the base tables it reads.
struct Compiled {
    plan: floe_views::Plan,
    sources: Vec<(u32, Arc<TableCodec>)>,
}

impl Session {
    /// `CREATE MATERIALIZED VIEW [IF NOT EXISTS] name [(columns)] AS query`.
    pub(super) async fn create_materialized_view(
        &mut self,
        create: ast::CreateView,
    ) -> SqlResult<StatementResult> {
        if create.or_replace || create.temporary {
            let word = if create.or_replace {
                "REPLACE"
            } else {
                "TEMPORARY"
            };
            return Err(SqlError::syntax(format!(
                "syntax error at or near \"{word}\""
            )));
        }
        let depends_on = self.referenced_relations(&create.query)?;
        if self.reads_temporary(&depends_on) {
            return Err(SqlError::not_supported(
                "materialized views must not use temporary tables or views",
            ));
        }
        let (schema, name, persistence) = self.creation_target(&create.name, false, None).await?;
        let existing = self
            .db()
            .catalog()
            .relation_by_name(&self.database, &schema, &name)
            .cloned();
        if existing.is_some() {
            if create.if_not_exists {
                self.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(StatementResult::Command("CREATE MATERIALIZED VIEW".into()));
            }
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{name}\" already exists"),
            ));
        }
        let mut query = create.query.clone();
        self.qualify_relations(&mut query)?;
        let statement = Statement::Query(query.clone());
        let columns = self
            .view_columns(
                &statement,
                &create.columns,
                "CREATE MATERIALIZED VIEW specifies too many column names",
            )
            .await?;
        // Refused constructs fail before anything runs.
        let compiled = self.compile_materialized(&statement).await?;
        let id = self.db().allocate_oid();
        let next_column_id = columns.len() as u32 + 1;
        let def = TableDef {
            id,
            database: self.database.clone(),
            schema,
            name,
            kind: RelationKind::MaterializedView {
                query: query.to_string(),
                depends_on,
            },
            columns,
            primary_key: None,
            constraints: vec![],
            indexes: vec![],
            next_column_id,
            persistence,
        };
        if self.txn.is_some() {
            // Inside a block the view is read as its query, at the block's snapshot with its
            // own writes (its base tables may be new in it), until COMMIT starts maintaining
            // it; a rollback leaves nothing running. CREATE reports the query's rows there.
            let plan = self.plan_query(&statement, &[]).await?;
            self.commit_ddl(vec![CatalogChange::PutRelation(Arc::new(def))])
                .await?;
            let view = self.read_view().await;
            let rows: usize = self
                .collect_plan(&plan, view)
                .await?
                .iter()
                .map(|b| b.num_rows())
                .sum();
            return Ok(StatementResult::Command(format!("SELECT {rows}")));
        }
        // Built now, from the base tables at the latest commit: CREATE returns once the view
        // is, fails as its query fails there (as PostgreSQL's CREATE does), or with 53200 when
        // its state does not fit the memory limit.
        let maintained = Maintained::start(
            Arc::clone(self.db()),
            id,
            def.name.clone(),
            compiled.plan,
            compiled.sources,
            self.engine.matviews().permits(),
        )
        .map_err(view_sql_error)?;
        maintained.wait_hydrated().await.map_err(view_sql_error)?;
        let rows = maintained.initial_rows(&def.arrow_schema()).await?;
        let state = maintained.stats().state_bytes;
        if let Err((needed, free)) = self.engine.matviews().fits(self.db(), state) {
            return Err(SqlError::new(
                sqlstate::OUT_OF_MEMORY,
                format!(
                    "out of memory: materialized view \"{}\" holds {needed} bytes of state, {free} bytes of the memory limit are free",
                    def.name
                ),
            )
            .with_hint("Raise --memory-limit or define a smaller view."));
        }
        // The commit's reconciliation takes this view over.
        self.engine.matviews().offer(maintained);
        if let Err(e) = self
            .commit_ddl(vec![CatalogChange::PutRelation(Arc::new(def))])
            .await
        {
            self.engine.matviews().take_offered(id);
            return Err(e);
        }
        Ok(StatementResult::Command(format!("SELECT {rows}")))
    }

    /// `EXPLAIN CREATE MATERIALIZED VIEW …`: the incremental plan that would maintain it.
    pub(super) async fn explain_materialized_view(
        &mut self,
        create: ast::CreateView,
    ) -> SqlResult<Vec<String>> {
        let mut query = create.query.clone();
        self.qualify_relations(&mut query)?;
        let compiled = self.compile_materialized(&Statement::Query(query)).await?;
        Ok(compiled.plan.explain())
    }

    /// `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name`: builds the view again from its base
    /// tables (its maintained rows already equal its query's; this recomputes them from
    /// scratch) and returns once it is built.
    pub(super) async fn refresh_materialized_view(
        &mut self,
        name: &ObjectName,
        no_data: bool,
    ) -> SqlResult<StatementResult> {
        let def = self.relation(name)?;
        if !def.is_materialized_view() {
            return Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{}\" is not a materialized view", def.name),
            ));
        }
        if no_data {
            return Err(SqlError::not_supported(
                "REFRESH MATERIALIZED VIEW … WITH NO DATA is not supported: Floe's materialized views are always populated",
            ));
        }
        let committed = self.db().committed_catalog().relation(def.id).is_some();
        if committed {
            let maintained = self.start_materialized(&def).await?;
            let maintained = self.engine.matviews().insert(maintained);
            maintained.set_indexes(&def);
            maintained
                .wait_hydrated()
                .await
                .map_err(|e| SqlError::internal(e.to_string()))?;
        }
        Ok(StatementResult::Command("REFRESH MATERIALIZED VIEW".into()))
    }

    /// Reconciles the running views with the committed catalog: starts the views of this
    /// session's database that do not run, plans again those whose base tables changed their
    /// row layout, stops those no longer in the catalog. Starting a view returns before it is
    /// built (reads wait for it); its feed loads the base tables under the registry's permits.
    /// `all`: look at every view even if the catalog did not change since the last time
    /// (startup, one session per database).
    pub async fn sync_materialized_views(&mut self, all: bool) {
        let registry = Arc::clone(self.engine.matviews());
        let mut synced = registry.sync.lock().await;
        let version = self.db().catalog_version();
        if *synced == version && !all {
            return;
        }
        let catalog = self.db().committed_catalog();
        for oid in registry.oids() {
            if !catalog
                .relation(oid)
                .is_some_and(|r| r.is_materialized_view())
            {
                registry.remove(oid);
            }
        }
        let wanted: Vec<Arc<TableDef>> = catalog
            .relations()
            .filter(|r| r.is_materialized_view() && r.database == self.database)
            .cloned()
            .collect();
        for def in wanted {
            if let Some(running) = registry.get(def.id) {
                if !running.is_outdated(self.db()) {
                    running.set_indexes(&def);
                    continue;
                }
            }
            let started = match registry.take_offered(def.id) {
                Some(built) => Ok(built),
                None => self.start_materialized(&def).await,
            };
            match started {
                Ok(maintained) => {
                    registry.insert(maintained).set_indexes(&def);
                }
                Err(e) => {
                    // Read as its query until it can be maintained (the read reports the
                    // same error if the query itself no longer plans).
                    tracing::warn!(view = %def.name, error = %e.message, "materialized view maintenance did not start");
                    registry.remove(def.id);
                }
            }
        }
        registry.share_memory(self.db());
        *synced = version;
    }

    /// Plans `def`'s query and starts maintaining it.
    async fn start_materialized(&mut self, def: &TableDef) -> SqlResult<Maintained> {
        let RelationKind::MaterializedView { query, .. } = &def.kind else {
            return Err(SqlError::internal("not a materialized view"));
        };
        let statement = self
            .parse(query)?
            .pop()
            .ok_or_else(|| SqlError::internal("materialized view has no query"))?;
        let compiled = self.compile_materialized(&statement).await?;
        if compiled.plan.schema().fields().len() != def.columns.len() {
            return Err(SqlError::new(
                sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!(
                    "materialized view \"{}\" no longer matches its query's columns",
                    def.name
                ),
            ));
        }
        Maintained::start(
            Arc::clone(self.db()),
            def.id,
            def.name.clone(),
            compiled.plan,
            compiled.sources,
            self.engine.matviews().permits(),
        )
        .map_err(view_sql_error)
    }

    /// The incremental plan of a view's query (`statement`) over base tables.
    async fn compile_materialized(&self, statement: &Statement) -> SqlResult<Compiled> {
        let mut statement = statement.clone();
        self.expand_all_views(&mut statement)?;
        let plan = self.plan_query(&statement, &[]).await?;
        let plan = without_deferral(self.state.optimize(&plan)?)?;
        let plan = crate::view_shapes::for_views(plan)?;
        let compiled = floe_views::compile(&plan).map_err(view_sql_error)?;
        let scans = base_tables(&plan)?;
        let catalog = self.db().catalog();
        let mut sources = Vec::new();
        for table in compiled.sources() {
            let Some((_, data)) = scans.iter().find(|(name, _)| *name == table) else {
                return Err(SqlError::internal(format!(
                    "materialized view source {table} not found in its plan"
                )));
            };
            if catalog
                .relation(data.def.id)
                .is_some_and(|r| r.is_temporary())
            {
                return Err(SqlError::not_supported(
                    "materialized views must not use temporary tables or views",
                ));
            }
            sources.push((data.def.id, Arc::clone(&data.codec)));
        }
        Ok(Compiled {
            plan: compiled,
            sources,
        })
    }
}

/// The optimised plan without `floe_deferred(x)` wrappers: identities marked volatile so
/// planning never folds what PostgreSQL evaluates at run time (`const_errors`); planning is
/// over, and the view engine would refuse them as volatile.
fn without_deferral(plan: LogicalPlan) -> SqlResult<LogicalPlan> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::logical_expr::Expr;
    let plan = plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::ScalarFunction(f) if f.name() == "floe_deferred" && f.args.len() == 1 => {
                    Ok(Transformed::yes(f.args.into_iter().next().unwrap_or_else(
                        || Expr::Literal(datafusion::scalar::ScalarValue::Null, None),
                    )))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    })?;
    Ok(plan.data)
}

/// `name` as an identifier, quoted only where it must be (not lower case, or a keyword).
pub(super) fn name_ident(name: &str) -> Ident {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !datafusion::sql::sqlparser::keywords::ALL_KEYWORDS
            .contains(&name.to_ascii_uppercase().as_str());
    if plain {
        Ident::new(name)
    } else {
        Ident::with_quote('"', name)
    }
}

/// Every table scan of `plan` with the storage table it reads; a scan of anything else
/// (a system catalog, a table function) cannot be maintained.
fn base_tables(
    plan: &LogicalPlan,
) -> SqlResult<
    Vec<(
        datafusion::common::TableReference,
        Arc<floe_storage::TableData>,
    )>,
> {
    let mut found = Vec::new();
    let mut error = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = match source_as_provider(&scan.source) {
                Ok(p) => p,
                Err(e) => {
                    error = Some(SqlError::from(e));
                    return Ok(TreeNodeRecursion::Stop);
                }
            };
            match provider.downcast_ref::<FloeTable>() {
                Some(table) => found.push((scan.table_name.clone(), Arc::clone(table.data()))),
                // A recursive query's reference to itself.
                None if provider
                    .downcast_ref::<datafusion::datasource::cte_worktable::CteWorkTable>()
                    .is_some() => {}
                None => {
                    error = Some(SqlError::not_supported(format!(
                        "materialized views do not support reading {} yet",
                        scan.table_name
                    )));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match error {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

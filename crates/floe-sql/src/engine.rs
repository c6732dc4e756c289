//! The engine: what all sessions share — the database, the DataFusion state (catalog,
//! functions, memory pool) and the server-wide settings.
//!
//! Planning reads the shared [`SessionState`] through an `Arc` without cloning it; a session
//! gets a private copy only when it changes a setting DataFusion itself must see (TimeZone).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use datafusion::execution::memory_pool::{FairSpillPool, GreedyMemoryPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::optimizer::{Analyzer, Optimizer};
use datafusion::prelude::SessionConfig;

use floe_storage::{Db, DbOptions};

use crate::catalog::FloeCatalogList;
use crate::error::{SqlError, SqlResult};
use crate::functions;
use crate::matview::MatViews;
use crate::session::Session;
use crate::types::FloeTypePlanner;

/// The database every server starts with.
pub const DEFAULT_DATABASE: &str = floe_storage::DEFAULT_DATABASE;
/// The default schema.
pub const DEFAULT_SCHEMA: &str = floe_storage::DEFAULT_SCHEMA;

/// Server-wide settings the SQL layer needs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the database keeps its files.
    pub data_dir: std::path::PathBuf,
    /// Bytes query execution may use before it spills or fails with 53200. `None`: no limit.
    pub query_memory_limit: Option<usize>,
    /// Bytes the hot tier may hold; writes beyond it fail with 53200. `None`: no limit.
    pub hot_memory_limit: Option<usize>,
    /// Threads of parallelism a single query may use.
    pub target_partitions: usize,
    /// Commit-log bytes after which storage takes a checkpoint and truncates the log.
    pub checkpoint_log_bytes: u64,
    /// The server's limit of concurrent connections, as `SHOW max_connections` reports it.
    pub max_connections: usize,
    /// Where cold data lives (`file://…` or `s3://…`; `None`: a folder in the data dir).
    pub storage: Option<String>,
    /// Checkpoints flush rows not written in this many commits into cold runs (`None`: only
    /// under memory pressure).
    pub flush_age_commits: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            data_dir: std::path::PathBuf::from("floe-data"),
            query_memory_limit: None,
            hot_memory_limit: None,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            checkpoint_log_bytes: floe_storage::DEFAULT_CHECKPOINT_LOG_BYTES,
            max_connections: 100,
            storage: None,
            flush_age_commits: None,
        }
    }
}

/// Shared state of the SQL layer; cheap to clone via `Arc`.
pub struct Engine {
    db: Arc<Db>,
    /// The materialized views being maintained.
    matviews: Arc<MatViews>,
    state: Arc<SessionState>,
    next_backend_pid: AtomicI32,
    /// Temporary-schema slots (`pg_temp_N`) held by live sessions.
    temp_slots: std::sync::Mutex<std::collections::BTreeSet<u32>>,
    max_connections: usize,
    /// The runtime parallel query plans run on (see [`Engine::executor`]).
    executor: Option<tokio::runtime::Handle>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the engine: opens the database in `config.data_dir` (replaying its commit log)
    /// and configures DataFusion to read SQL the way PostgreSQL does.
    pub fn new(config: EngineConfig) -> SqlResult<Arc<Engine>> {
        let db = Db::open(
            &config.data_dir,
            DbOptions {
                memory_limit: config.hot_memory_limit,
                checkpoint_log_bytes: Some(config.checkpoint_log_bytes.max(1)),
                storage: config.storage.clone(),
                flush_age_commits: Some(
                    config
                        .flush_age_commits
                        .unwrap_or(floe_storage::db::DEFAULT_FLUSH_AGE_COMMITS),
                ),
                ..DbOptions::default()
            },
        )?;
        let matviews = Arc::new(MatViews::default());
        floe_views::set_error_text(SqlError::view_error_text);
        let mut session_config = SessionConfig::new()
            .with_default_catalog_and_schema(DEFAULT_DATABASE, DEFAULT_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_target_partitions(config.target_partitions.max(1));
        {
            let options = session_config.options_mut();
            options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
            // `1.5` is numeric in PostgreSQL, not double precision.
            options.sql_parser.parse_float_as_decimal = true;
            options.sql_parser.enable_ident_normalization = true;
            options.execution.time_zone = Some("+00:00".to_string());
            // Sorts run after their partitions are merged, not per partition with a merge
            // above: DataFusion's per-partition TopK under a UNION ALL whose branches hold
            // different constants in a sort key returned wrong rows (`… UNION ALL … ORDER BY
            // 1, 2 LIMIT 2` took the first key for constant and merged by the second only).
            options.optimizer.repartition_sorts = false;
            // DataFusion's top-k aggregation (`SELECT DISTINCT f ORDER BY f LIMIT n`) finds its
            // float groups again by `==`, so a NaN group panicked ("entered unreachable code").
            options.optimizer.enable_topk_aggregation = false;
            // A sort sets aside room to merge its spills (10 MB by default), per partition: with
            // a small memory limit every ORDER BY failed with 53200, even of three rows.
            if let Some(limit) = config.query_memory_limit {
                let partitions = config.target_partitions.max(1);
                let share = limit / (8 * partitions);
                let reserve = &mut options.execution.sort_spill_reservation_bytes;
                *reserve = (*reserve).min(share.max(64 * 1024));
            }
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = config.query_memory_limit {
            let pool: Arc<dyn MemoryPool> = if config.target_partitions > 1 {
                Arc::new(FairSpillPool::new(limit))
            } else {
                Arc::new(GreedyMemoryPool::new(limit))
            };
            runtime = runtime.with_memory_pool(pool);
        }
        let runtime = runtime.build_arc().map_err(SqlError::from)?;
        // Numeric semantics go before type coercion, which would otherwise refuse (or
        // compute on the bytes of) wide numerics.
        let mut analyzer_rules = Analyzer::new().rules;
        let coercion = analyzer_rules
            .iter()
            .position(|r| r.name() == "type_coercion")
            .unwrap_or(0);
        analyzer_rules.insert(coercion, Arc::new(crate::numeric::NumericSemantics));
        // Before numeric semantics: `jsonb` casts to numbers become casts of text.
        analyzer_rules.insert(coercion, Arc::new(functions::jsonb::operators::JsonbCasts));
        // Before coercion too: it refuses RANGE frames ordered by binary keys.
        analyzer_rules.insert(coercion, Arc::new(crate::window_frames::PeerFrames));
        // Date/time operands too (see the rule's doc).
        analyzer_rules.insert(0, Arc::new(crate::datetime_udf::PgTemporalOperands));
        // First: the later rules see its subqueries in a projection.
        analyzer_rules.insert(0, Arc::new(crate::subquery::SortSubqueries));
        analyzer_rules.insert(0, Arc::new(crate::subquery::InSubqueryOperands));
        analyzer_rules.insert(0, Arc::new(crate::set_operations::AllSetOperations));
        // Numeric keys by value: as soon as IN-subqueries are joins (before later rules
        // derive byte comparisons from join keys), and last, when DISTINCT and
        // count(DISTINCT) have become aggregates.
        let mut optimizer_rules = Optimizer::new().rules;
        let subqueries_done = optimizer_rules
            .iter()
            .position(|r| r.name() == "decorrelate_lateral_join")
            .map_or(0, |i| i + 1);
        optimizer_rules.insert(subqueries_done, Arc::new(crate::apply::SubqueriesPerRow));
        let empties = optimizer_rules
            .iter()
            .position(|r| r.name() == "propagate_empty_relation")
            .unwrap_or(0);
        optimizer_rules.insert(empties, Arc::new(crate::set_operations::UnionInputNames));
        // Right after the first constant folding, before filters are dropped or pushed down.
        let folded = optimizer_rules
            .iter()
            .position(|r| r.name() == "simplify_expressions")
            .map_or(0, |i| i + 1);
        optimizer_rules.insert(folded, Arc::new(crate::null_conditions::NullConditions));
        optimizer_rules.insert(subqueries_done, Arc::new(crate::numeric::keys::NumericKeys));
        optimizer_rules.push(Arc::new(crate::numeric::keys::NumericKeys));
        // Before common subexpressions leave the aggregates' arguments.
        optimizer_rules.insert(0, Arc::new(crate::numeric::aggregate::SumOfProducts));
        optimizer_rules.push(Arc::new(crate::set_operations::UnionNullability));
        // A sum of small integers is bigint; split in two steps it would become numeric.
        for rule in optimizer_rules.iter_mut() {
            if rule.name() == "single_distinct_aggregation_to_group_by" {
                *rule = Arc::new(crate::numeric::aggregate::SingleDistinctSums::default());
            }
        }
        let mut builder = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_catalog_list(Arc::new(FloeCatalogList::new(db.clone(), matviews.clone())))
            .with_type_planner(Arc::new(FloeTypePlanner))
            .with_analyzer_rules(analyzer_rules)
            .with_optimizer_rules(optimizer_rules)
            .with_query_planner(Arc::new(crate::apply::FloeQueryPlanner))
            .with_physical_optimizer_rules({
                let mut rules = crate::filter_pushdown_guard::guarded(
                    datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules,
                );
                rules.push(Arc::new(crate::lazy_logic::LazyLogic));
                rules
            })
            .with_relation_planners(vec![Arc::new(crate::type_tags::DerivedTableTags)]);
        {
            // First: the planners are asked in order; numeric operands never reach
            // DataFusion's operators.
            let planners = builder.expr_planners().get_or_insert_with(Vec::new);
            planners.insert(0, functions::text::substring_planner());
            planners.insert(0, Arc::new(crate::arithmetic::PostgresOperators::new()));
            planners.insert(0, Arc::new(crate::numeric::NumericExprPlanner));
            planners.insert(0, Arc::new(functions::jsonb::operators::JsonOperators));
        }
        let mut state = builder.build();
        for name in ["generate_series", "range"] {
            if let Some(series) = state.table_functions().get(name).cloned() {
                let widened = functions::series::IntegerArguments(series.function().clone());
                state.register_udtf(name, Arc::new(widened));
            }
        }
        let mut math: Vec<_> = [
            "round", "trunc", "abs", "ceil", "floor", "signum", "sqrt", "power", "ln", "exp",
            "log", "log10",
        ]
        .iter()
        .filter_map(|name| state.scalar_functions().get(*name).cloned())
        .collect();
        let conditionals: Vec<_> = ["coalesce", "nullif", "greatest", "least"]
            .iter()
            .filter_map(|name| state.scalar_functions().get(*name).cloned())
            .collect();
        // PostgreSQL's `sign` (functions/math.rs), for wide numerics too.
        math.extend(
            functions::math::udfs()
                .into_iter()
                .filter(|f| f.name() == "sign")
                .map(Arc::new),
        );
        let aggregates = ["sum", "avg"].map(|name| state.aggregate_functions().get(name).cloned());
        if let [Some(sum), Some(avg)] = aggregates {
            for udaf in crate::numeric::aggregate::udafs(sum, avg) {
                state
                    .register_udaf(Arc::new(udaf))
                    .map_err(SqlError::from)?;
            }
        }
        let min_max = ["min", "max"].map(|name| state.aggregate_functions().get(name).cloned());
        if let [Some(min), Some(max)] = min_max {
            for udaf in functions::float_min_max::udafs(min, max) {
                state
                    .register_udaf(Arc::new(udaf))
                    .map_err(SqlError::from)?;
            }
        }
        if let Some(string_agg) = state.aggregate_functions().get("string_agg").cloned() {
            state
                .register_udaf(Arc::new(functions::string_agg::StringAgg::udaf(string_agg)))
                .map_err(SqlError::from)?;
        }
        state
            .register_udaf(Arc::new(functions::array_agg::TaggedArrayAgg::udaf()))
            .map_err(SqlError::from)?;
        for udaf in functions::jsonb::aggregate::udafs() {
            state
                .register_udaf(Arc::new(udaf))
                .map_err(SqlError::from)?;
        }
        let statistics: Vec<_> = ["var", "var_pop", "stddev", "stddev_pop"]
            .iter()
            .filter_map(|name| state.aggregate_functions().get(*name).cloned())
            .collect();
        for udaf in crate::numeric::variance::udafs(statistics) {
            state
                .register_udaf(Arc::new(udaf))
                .map_err(SqlError::from)?;
        }
        let udfs = [functions::nextval_udf(db.clone())]
            .into_iter()
            .chain(functions::handle::placeholders())
            .chain(functions::sleep::udfs())
            .chain(functions::math::udfs())
            .chain(functions::datetime::udfs())
            .chain(functions::to_timestamp::udfs())
            .chain(functions::encoding::udfs())
            .chain(functions::jsonb::udfs())
            .chain([
                functions::type_of::udf(),
                functions::gen_random_uuid::udf(),
                functions::datetime::date_part_udf(),
                crate::numeric::functions::negate_udf(),
                crate::interval::make_interval_udf(),
            ])
            .chain(crate::interval::justify_udfs())
            .chain(crate::bounded_text::udfs())
            .chain([
                crate::subquery::single_row_udf(),
                functions::any::udf(),
                crate::cast_names::udf(),
                crate::datetime_udf::now_udf(),
                crate::datetime_udf::date_trunc_udf(),
                crate::datetime_udf::to_char_udf(),
                crate::datetime_udf::timezone_udf(),
                crate::datetime_udf::time_precision_udf(),
            ])
            .chain(crate::numeric::functions::numeric_only())
            .chain(crate::numeric::functions::overloads(math))
            .chain(crate::numeric::functions::conditionals(conditionals));
        for udf in udfs {
            state.register_udf(Arc::new(udf)).map_err(SqlError::from)?;
        }
        let extended: Vec<_> = functions::domain::udfs(&state)
            .into_iter()
            .chain(functions::text::udfs(&state))
            .collect();
        for udf in extended {
            state.register_udf(Arc::new(udf)).map_err(SqlError::from)?;
        }
        for udwf in functions::window::udwfs(&state) {
            state
                .register_udwf(Arc::new(udwf))
                .map_err(SqlError::from)?;
        }
        crate::pg_catalog::install(&mut state, db.clone())?;
        // After type coercion (appended to the default rules): operand types are final.
        state.add_analyzer_rule(Arc::new(crate::numeric::NumericCoercedCasts));
        state.add_analyzer_rule(Arc::new(crate::arithmetic::CheckedIntegerArithmetic::new()));
        state.add_analyzer_rule(Arc::new(crate::subquery::PostgresSubqueries::new()));
        state.add_analyzer_rule(Arc::new(crate::datetime_udf::PgDateTimeCasts));
        state.add_analyzer_rule(Arc::new(crate::bounded_text::BpcharComparisons));
        state.add_analyzer_rule(Arc::new(functions::jsonb::operators::JsonbOrder));
        state.add_analyzer_rule(Arc::new(crate::type_tags::Nullability));
        // Last: operand types and PostgreSQL's operators are final.
        state.add_analyzer_rule(Arc::new(crate::const_errors::PlanTimeErrors));
        Ok(Arc::new(Engine {
            db,
            matviews,
            state: Arc::new(state),
            next_backend_pid: AtomicI32::new(std::process::id() as i32 % 10_000 * 100 + 1),
            temp_slots: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            max_connections: config.max_connections,
            executor: tokio::runtime::Handle::try_current().ok(),
        }))
    }

    /// The runtime the engine was built in (the server's multi-thread runtime), where query
    /// plans with more than one partition run. Connections run on threads of their own, each
    /// with a single-threaded runtime (`floe-wire`), so a plan's partitions spawned there would
    /// all share that one thread; `None` outside a runtime (plans then run where they are
    /// polled).
    pub fn executor(&self) -> Option<&tokio::runtime::Handle> {
        self.executor.as_ref()
    }

    /// The server's limit of concurrent connections.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The database.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Stops accepting commits after the ones in flight (shutdown), and view maintenance.
    pub fn close(&self) {
        self.matviews.stop_all();
        self.db.close();
    }

    /// The materialized views being maintained.
    pub fn matviews(&self) -> &Arc<MatViews> {
        &self.matviews
    }

    /// Starts maintaining every materialized view of the catalog (at startup, before the
    /// server accepts connections): each is built again from its base tables on threads of its
    /// own, a few at a time; a read of one waits until it is built. Returns once they are all
    /// started (not built), with the views.
    pub async fn start_materialized_views(
        self: &Arc<Self>,
    ) -> SqlResult<Vec<Arc<crate::matview::Maintained>>> {
        let databases: Vec<String> = self
            .db
            .committed_catalog()
            .relations()
            .filter(|r| r.is_materialized_view())
            .map(|r| r.database.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for database in databases {
            let mut session = self.new_session("floe", &database, [])?;
            session.sync_materialized_views(true).await;
        }
        Ok(self.matviews.all())
    }

    /// The shared DataFusion state sessions plan and execute with.
    pub fn state(&self) -> &Arc<SessionState> {
        &self.state
    }

    /// Claims the lowest temporary-schema slot no live session holds (`pg_temp_N` starts at
    /// 3, like the first backend's in PostgreSQL).
    pub(crate) fn claim_temp_slot(&self) -> u32 {
        let mut slots = self.temp_slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut slot = 3;
        while slots.contains(&slot) {
            slot += 1;
        }
        slots.insert(slot);
        slot
    }

    /// Frees a slot once its session's temporary relations are gone.
    pub(crate) fn release_temp_slot(&self, slot: u32) {
        self.temp_slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&slot);
    }

    /// Opens a session for `user` on `database` with the startup packet's parameters.
    pub fn new_session<'a>(
        self: &Arc<Self>,
        user: &str,
        database: &str,
        startup_params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> SqlResult<Session> {
        let pid = self.next_backend_pid.fetch_add(1, Ordering::Relaxed);
        Session::new(self.clone(), user, database, pid, startup_params)
    }
}

//! A client session: its settings, its transaction block, and the statements it runs.
//!
//! Statements are prepared first ([`Session::prepare`]: parsed, routed, planned, parameter and
//! result types known) and then executed with parameter values ([`Session::execute`]); the
//! simple protocol does both in a row. Queries go to DataFusion; transaction control, `SET`,
//! `SHOW`, `RESET` and `DISCARD` are handled here.
//!
//! Invariant: after any error inside a transaction block the block is *failed*, and every
//! statement except `ROLLBACK` (or `COMMIT`, which then rolls back, or `ROLLBACK TO SAVEPOINT`)
//! gets 25P02 until the block ends — as in PostgreSQL.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::metadata::{FieldMetadata, ScalarAndMetadata};
use datafusion::common::ParamValues;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, Statement as PlanStatement};
use datafusion::physical_plan::stream::{RecordBatchReceiverStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::{
    execute_stream, ExecutionPlan, ExecutionPlanProperties, SendableRecordBatchStream,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    self, DiscardObject, Expr, Ident, ObjectName, Reset, Set, Statement, TransactionIsolationLevel,
    TransactionMode, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::stream;

mod alter;
mod copy;
mod ddl;
mod dml;
mod fast;
mod index;
mod locking;
mod matview;
mod temp;
mod view;

pub(crate) use ddl::ident_name as fold_ident;

use datafusion::execution::TaskContext;
use floe_storage::{with_pending_catalog, Isolation, PendingCatalog, ReadView, SavepointMark, Txn};

use crate::colnames;
use crate::engine::Engine;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::functions::handle::{SessionHandle, SettingChange};
use crate::rewrite;
use crate::types::SqlType;
use crate::vars::{arrow_timezone, ParameterChange, SessionVars};

/// Maximum nesting depth the parser accepts before answering 54001-like errors.
const PARSER_RECURSION_LIMIT: usize = 200;

/// The transaction state a client sees in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// Not in a transaction block ('I').
    Idle,
    /// In a transaction block ('T').
    InBlock,
    /// In a failed transaction block ('E').
    Failed,
}

/// A message for the client that is not an error (NoticeResponse).
#[derive(Debug, Clone)]
pub struct Notice {
    /// `WARNING`, `NOTICE`, …
    pub severity: &'static str,
    /// SQLSTATE.
    pub code: &'static str,
    /// Message text.
    pub message: String,
}

/// Rows a statement produced: their schema and a stream of batches.
pub struct RowStream {
    /// Column names and types (tagged fields carry their PostgreSQL type).
    pub schema: SchemaRef,
    /// The batches, produced lazily; an error here is a statement error too.
    pub stream: SendableRecordBatchStream,
}

/// What executing one statement produced.
pub enum StatementResult {
    /// Rows, to be completed with the tag `SELECT n` (or `tag` if set, e.g. `SHOW`).
    Rows {
        /// The rows.
        rows: RowStream,
        /// Command tag word; the row count is appended where PostgreSQL does.
        tag: &'static str,
    },
    /// A command with only a completion tag, e.g. `BEGIN` or `SET`.
    Command(String),
    /// COPY FROM STDIN started: the client sends `columns` columns of data next
    /// ([`Session::copy_data`], [`Session::copy_done`]).
    CopyIn {
        /// Number of columns per row.
        columns: usize,
    },
    /// COPY TO STDOUT: these rows, written in COPY's format.
    CopyOut {
        /// The rows.
        rows: RowStream,
        /// Output format.
        options: crate::copy::CopyOptions,
    },
    /// The empty query.
    Empty,
}

/// What a prepared statement will do when executed.
#[derive(Debug, Clone)]
enum PreparedPlan {
    /// A query planned by DataFusion (a `Prepare` node when it has parameters).
    Query(LogicalPlan),
    /// `EXPLAIN`: the plan is printed as PostgreSQL's single `QUERY PLAN` column.
    Explain(LogicalPlan),
    /// INSERT, UPDATE or DELETE.
    Dml(Arc<dml::DmlPlan>),
    /// A primary-key read or write run without DataFusion (see [`fast`]).
    Fast(Arc<fast::FastPlan>),
    /// `SELECT … FOR UPDATE` and the other row-locking clauses.
    Locking(Arc<locking::LockingPlan>),
    /// A statement this module executes itself.
    Utility(Box<Statement>),
    /// Nothing (the empty query).
    Empty,
}

/// A statement ready to execute: parameter and result types are known.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The source statement as the parser saw it (None for the empty query).
    pub statement: Option<Statement>,
    plan: PreparedPlan,
    /// The type of each parameter `$1..$n`.
    pub param_types: Vec<SqlType>,
    /// The result columns, or `None` for a statement that returns no rows.
    pub result_schema: Option<SchemaRef>,
    /// The physical plan, kept for re-execution when that is safe (see [`Prepared::reusable`]).
    physical: Arc<std::sync::OnceLock<Arc<dyn ExecutionPlan>>>,
    /// Whether executions may share one physical plan: a parameterless query whose value does
    /// not depend on when it runs (no `now()`, no `random()`).
    reusable: bool,
    /// The catalog version the plan was made against; a plan older than the catalog is made
    /// again before it runs.
    catalog_version: u64,
    /// The table the statement writes when it has `numeric(p, s)` columns held as
    /// `Decimal128`: writing NaN into one makes it a wide numeric and runs the statement again
    /// ([`Session::widen_for_nan`]).
    nan_widens: Option<u32>,
    /// Whether parameters stand in a table function's arguments: then each execution plans
    /// the statement again with their values ([`crate::table_params`]).
    table_params: bool,
}

impl Prepared {
    fn new(
        statement: Option<Statement>,
        plan: PreparedPlan,
        param_types: Vec<SqlType>,
        result_schema: Option<SchemaRef>,
    ) -> Prepared {
        let reusable = match &plan {
            PreparedPlan::Query(p) => param_types.is_empty() && rewrite::is_deterministic(p),
            _ => false,
        };
        Prepared {
            statement,
            plan,
            param_types,
            result_schema,
            physical: Arc::new(std::sync::OnceLock::new()),
            reusable,
            catalog_version: 0,
            table_params: false,
            nan_widens: None,
        }
        .with_nan_widens()
    }

    fn with_nan_widens(mut self) -> Prepared {
        let written = match &self.plan {
            PreparedPlan::Dml(plan) => Some(plan.table_def()),
            PreparedPlan::Fast(plan) => plan.written_table(),
            _ => None,
        };
        self.nan_widens = written
            .filter(|def| alter::has_fixed_numerics(def))
            .map(|def| def.id);
        self
    }

    /// Whether a simple-protocol query string may be answered from the session's statement
    /// cache: a query whose plan depends on nothing but the session's settings.
    pub fn is_cacheable(&self) -> bool {
        matches!(self.plan, PreparedPlan::Query(_))
    }

    /// Whether the statement is the empty query.
    pub fn is_empty(&self) -> bool {
        matches!(self.plan, PreparedPlan::Empty)
    }
}

/// How many times a statement may widen its table's columns for NaN (one per typmod).
const MAX_NAN_WIDENINGS: usize = 16;

/// Settings restored when a transaction block ends: `SET LOCAL` always, plain `SET` on
/// rollback (PostgreSQL undoes settings of an aborted transaction).
#[derive(Debug, Default)]
struct SettingsUndo {
    /// Value before the block's first SET of each parameter.
    before: HashMap<String, (String, bool)>,
}

#[derive(Debug)]
struct TxnBlock {
    failed: bool,
    /// The implicit block of a multi-statement simple Query: not opened by BEGIN, ended when
    /// the query string is done (see [`Session::begin_implicit`]).
    implicit: bool,
    /// Whether a statement of the block has taken a snapshot (run a query): the isolation
    /// level is fixed from then on.
    queried: bool,
    /// When the block began: `now()` inside the block, as in PostgreSQL.
    started_at: chrono::DateTime<chrono::Utc>,
    savepoints: Vec<(String, SavepointMark)>,
    undo: SettingsUndo,
    /// The storage transaction's pending catalog (its DDL), shared with it.
    pending: Arc<PendingCatalog>,
    /// The storage transaction's id (it waits for relation locks under it).
    txn_id: floe_storage::lock::TxnId,
    /// The storage transaction. Behind a mutex so a statement can hold it across awaits and a
    /// cancelled statement still leaves it in the block.
    storage: Arc<tokio::sync::Mutex<Txn>>,
}

/// The storage transaction a statement writes in.
enum StatementTxn {
    /// The transaction block's; stays open after the statement.
    Block(tokio::sync::OwnedMutexGuard<Txn>),
    /// The statement's own; committed when the statement succeeds.
    Auto(Txn),
}

impl std::ops::Deref for StatementTxn {
    type Target = Txn;
    fn deref(&self) -> &Txn {
        match self {
            StatementTxn::Block(guard) => guard,
            StatementTxn::Auto(txn) => txn,
        }
    }
}

impl std::ops::DerefMut for StatementTxn {
    fn deref_mut(&mut self) -> &mut Txn {
        match self {
            StatementTxn::Block(guard) => &mut *guard,
            StatementTxn::Auto(txn) => txn,
        }
    }
}

/// One client's session.
pub struct Session {
    engine: Arc<Engine>,
    /// DataFusion state: the engine's shared one until a session setting needs its own copy.
    state: Arc<SessionState>,
    vars: SessionVars,
    txn: Option<TxnBlock>,
    user: String,
    database: String,
    backend_pid: i32,
    notices: Vec<Notice>,
    parameter_changes: Vec<ParameterChange>,
    /// SQL-level prepared statements (`PREPARE name AS …`).
    sql_prepared: HashMap<String, Arc<Prepared>>,
    /// Simple-protocol query strings already prepared, cleared by any utility statement.
    statement_cache: HashMap<String, Arc<Prepared>>,
    /// A COPY FROM STDIN in progress.
    copy_in: Option<copy::CopyIn>,
    /// Outside a block, the transaction holding a DDL statement's locks while it runs.
    ddl_locker: Option<Txn>,
    /// `lock_timeout`, parsed when settings change (every writing statement reads it).
    lock_timeout: Option<std::time::Duration>,
    /// What the session's functions reach while a statement runs: its advisory locks and
    /// `set_config` ([`crate::functions::handle`]).
    handle: Arc<SessionHandle>,
    /// The slot of the session's temporary schema `pg_temp_N`, once it has one ([`temp`]).
    temp_slot: Option<u32>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Advisory locks end with the session, however it ends.
        self.handle.end_session();
        // So do its temporary relations.
        self.end_temporary();
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("database", &self.database)
            .field("txn", &self.txn)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new<'a>(
        engine: Arc<Engine>,
        user: &str,
        database: &str,
        backend_pid: i32,
        startup_params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> SqlResult<Session> {
        let Some(database_oid) = engine.db().catalog().database(database).map(|d| d.oid) else {
            return Err(SqlError::new(
                sqlstate::INVALID_CATALOG_NAME,
                format!("database \"{database}\" does not exist"),
            ));
        };
        let vars = SessionVars::from_startup(startup_params)?
            .with_server_setting("max_connections", &engine.max_connections().to_string());
        let handle =
            SessionHandle::new(backend_pid, database_oid, engine.db().clone(), vars.clone());
        let mut session = Session {
            state: engine.state().clone(),
            engine,
            vars,
            txn: None,
            user: user.to_string(),
            database: database.to_string(),
            backend_pid,
            notices: Vec::new(),
            parameter_changes: Vec::new(),
            sql_prepared: HashMap::new(),
            statement_cache: HashMap::new(),
            copy_in: None,
            ddl_locker: None,
            lock_timeout: None,
            handle,
            temp_slot: None,
        };
        session.sync_datafusion_settings();
        Ok(session)
    }

    /// The session's user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The connected database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The process id reported to the client (BackendKeyData, `pg_backend_pid()`).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// The session's parameters.
    pub fn vars(&self) -> &SessionVars {
        &self.vars
    }

    /// The transaction status for ReadyForQuery.
    pub fn txn_status(&self) -> TxnStatus {
        match &self.txn {
            None => TxnStatus::Idle,
            Some(b) if b.failed => TxnStatus::Failed,
            Some(_) => TxnStatus::InBlock,
        }
    }

    /// Notices produced since the last call, at or above `client_min_messages`.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        let mut notices = std::mem::take(&mut self.notices);
        if !notices.is_empty() {
            let min = self.vars.get("client_min_messages").unwrap_or_default();
            let min_rank = message_rank(&min);
            notices.retain(|n| n.severity == "INFO" || message_rank(n.severity) >= min_rank);
        }
        notices
    }

    /// Reported parameters that changed since the last call (to send as ParameterStatus).
    pub fn take_parameter_changes(&mut self) -> Vec<ParameterChange> {
        std::mem::take(&mut self.parameter_changes)
    }

    /// Ends a statement once its last row is sent or it failed: applies what its functions
    /// left for the session ([`crate::functions::handle`]) — `set_config` changes if it
    /// `succeeded`, warnings as notices — and, outside a transaction block, releases the
    /// transaction-level advisory locks it took.
    pub fn finish_statement(&mut self, succeeded: bool) {
        let Some(effects) = self.handle.take_effects() else {
            return;
        };
        self.notices.extend(effects.notices);
        if succeeded && !effects.settings.is_empty() {
            for change in effects.settings {
                self.apply_set_config(change);
            }
            self.statement_cache.clear();
            self.sync_datafusion_settings();
        }
        if self.txn.is_none() {
            self.handle.end_transaction();
        }
    }

    /// Applies one `set_config` change as `SET` / `SET LOCAL` would (it was checked when the
    /// function ran). `SET LOCAL` outside a block lasted for the statement only.
    fn apply_set_config(&mut self, change: SettingChange) {
        if change.local && self.txn.is_none() {
            return;
        }
        self.remember_for_undo(&change.name, change.local);
        let result = match &change.value {
            Some(value) => self.vars.set(&change.name, value),
            None => self.vars.reset(&change.name),
        };
        match result {
            Ok(Some(reported)) => self.parameter_changes.push(reported),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(parameter = %change.name, error = %e, "set_config change was checked but failed")
            }
        }
    }

    /// Records that a statement failed (also when the failure surfaced while streaming rows):
    /// a transaction block becomes failed.
    pub fn on_statement_error(&mut self) {
        if let Some(block) = &mut self.txn {
            block.failed = true;
        }
    }

    /// The prepared form of a simple-protocol query string seen before, if still valid.
    pub fn cached_statement(&self, sql: &str) -> Option<Arc<Prepared>> {
        self.statement_cache.get(sql).cloned()
    }

    /// Remembers a simple-protocol query string's prepared form (queries only).
    pub fn cache_statement(&mut self, sql: &str, prepared: Arc<Prepared>) {
        const MAX_CACHED: usize = 256;
        if !prepared.is_cacheable() || sql.len() > 64 * 1024 {
            return;
        }
        if self.statement_cache.len() >= MAX_CACHED {
            self.statement_cache.clear();
        }
        self.statement_cache.insert(sql.to_string(), prepared);
    }

    /// Splits a query string into statements (PostgreSQL dialect; see [`crate::syntax`]).
    pub fn parse(&self, sql: &str) -> SqlResult<Vec<Statement>> {
        let statements = crate::syntax::parse_statements(sql, PARSER_RECURSION_LIMIT)
            .map_err(|e| crate::syntax::positioned(sql, e))?;
        for statement in &statements {
            check_nesting(statement)?;
        }
        Ok(statements)
    }

    /// The pending catalog of the session's transaction block, if it has one (see
    /// [`floe_storage::pending`]: the session's statements see it, nobody else does).
    ///
    /// Only a non-empty one is put in scope: a block without DDL (and a statement making the
    /// block's first DDL, which works through the transaction itself) needs none, so the
    /// statement fast path pays one atomic load for it.
    fn active_pending_catalog(&self) -> Option<Arc<PendingCatalog>> {
        self.txn
            .as_ref()
            .filter(|block| !block.pending.is_empty())
            .map(|block| block.pending.clone())
    }

    /// Prepares a statement. `param_types` are the types the client declared (`Unknown` where
    /// it left them open); the rest are inferred.
    pub async fn prepare(
        &self,
        statement: Option<Statement>,
        declared_types: &[SqlType],
    ) -> SqlResult<Prepared> {
        match self.active_pending_catalog() {
            // Boxed: keeps this future (and every caller's) as small as without DDL.
            Some(pending) => {
                Box::pin(with_pending_catalog(
                    pending,
                    self.prepare_inner(statement, declared_types),
                ))
                .await
            }
            None => self.prepare_inner(statement, declared_types).await,
        }
    }

    async fn prepare_inner(
        &self,
        statement: Option<Statement>,
        declared_types: &[SqlType],
    ) -> SqlResult<Prepared> {
        let Some(statement) = statement else {
            return Ok(Prepared::new(None, PreparedPlan::Empty, vec![], None));
        };
        if self.txn_status() == TxnStatus::Failed && !ends_failed_block(&statement) {
            return Err(SqlError::in_failed_transaction());
        }
        if let Some(fast) = self.fast_match(&statement, declared_types) {
            let mut prepared = Prepared::new(
                Some(statement),
                PreparedPlan::Fast(Arc::new(fast.plan)),
                fast.param_types,
                fast.result_schema,
            );
            prepared.catalog_version = self.db().catalog_version();
            return Ok(prepared);
        }
        match &statement {
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let mut declared = with_placeholder_casts(&statement, declared_types);
                self.assignment_param_types(&statement, &mut declared);
                let (plan, param_types, result_schema) =
                    self.plan_dml(&statement, &declared).await?;
                let mut prepared = Prepared::new(
                    Some(statement),
                    PreparedPlan::Dml(Arc::new(plan)),
                    param_types,
                    result_schema,
                );
                prepared.catalog_version = self.db().catalog_version();
                Ok(prepared)
            }
            Statement::Query(query) if view::has_into(query) => Ok(Prepared::new(
                Some(statement.clone()),
                PreparedPlan::Utility(Box::new(statement)),
                declared_types.to_vec(),
                None,
            )),
            Statement::Query(query) if !query.locks.is_empty() => {
                let declared = with_placeholder_casts(&statement, declared_types);
                let (plan, param_types, schema) = self.plan_locking(query, &declared).await?;
                let mut prepared = Prepared::new(
                    Some(statement),
                    PreparedPlan::Locking(Arc::new(plan)),
                    param_types,
                    Some(schema),
                );
                prepared.catalog_version = self.db().catalog_version();
                Ok(prepared)
            }
            Statement::Query(_) => {
                let declared = with_placeholder_casts(&statement, declared_types);
                let table_params = crate::table_params::parameters(&statement, &declared);
                if !table_params.is_empty() {
                    // Rare: boxed, so every other statement's future stays small.
                    return Box::pin(self.prepare_table_params(statement, declared, table_params))
                        .await;
                }
                let plan = self.plan_query(&statement, &declared).await?;
                self.prepared_query(statement, plan, &declared)
            }
            Statement::Explain {
                statement: inner, ..
            } if matches!(inner.as_ref(), Statement::CreateView(c) if c.materialized) => {
                Ok(Prepared::new(
                    Some(statement.clone()),
                    PreparedPlan::Utility(Box::new(statement)),
                    vec![],
                    Some(query_plan_schema()),
                ))
            }
            Statement::Explain { .. } => {
                let declared = with_placeholder_casts(&statement, declared_types);
                let plan = self.plan_query(&statement, &declared).await?;
                let (param_types, _) = describe_plan(&plan, &declared)?;
                Ok(Prepared::new(
                    Some(statement),
                    PreparedPlan::Explain(plan),
                    param_types,
                    Some(query_plan_schema()),
                ))
            }
            _ => {
                let result_schema = self.utility_result_schema(&statement)?;
                Ok(Prepared::new(
                    Some(statement.clone()),
                    PreparedPlan::Utility(Box::new(statement)),
                    declared_types.to_vec(),
                    result_schema,
                ))
            }
        }
    }

    /// The session's time zone (parameters in text are read in it).
    fn zone(&self) -> crate::datetime::Zone {
        crate::datetime_udf::session_zone(self.state.config_options())
    }

    /// Prepares a query whose table functions take parameters (`table_params`, with their
    /// types): planned with those as NULLs for its Describe; each execution plans it again with
    /// their values ([`crate::table_params`]).
    async fn prepare_table_params(
        &self,
        statement: Statement,
        mut declared: Vec<SqlType>,
        table_params: Vec<(usize, SqlType)>,
    ) -> SqlResult<Prepared> {
        for (n, t) in &table_params {
            if declared.len() < *n {
                declared.resize(*n, SqlType::Unknown);
            }
            declared[n - 1] = t.clone();
        }
        let nulls = crate::table_params::with_nulls(&statement, &table_params);
        let plan = self.plan_query(&nulls, &declared).await?;
        let mut prepared = self.prepared_query(statement, plan, &declared)?;
        prepared.table_params = true;
        Ok(prepared)
    }

    /// A query prepared as `plan`, described with its parameter and result types.
    fn prepared_query(
        &self,
        statement: Statement,
        plan: LogicalPlan,
        declared: &[SqlType],
    ) -> SqlResult<Prepared> {
        let (param_types, mut schema) = describe_plan(&plan, declared)?;
        if let Some(analyzed) = self.analyzed_output(&plan) {
            schema = analyzed;
        }
        let mut prepared = Prepared::new(
            Some(statement),
            PreparedPlan::Query(plan),
            param_types,
            Some(schema),
        );
        prepared.catalog_version = self.db().catalog_version();
        Ok(prepared)
    }

    /// Executes a query whose table functions take parameters: planned again with their
    /// values in place.
    async fn execute_table_params(
        &mut self,
        statement: &Statement,
        param_types: &[SqlType],
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        let statement = crate::table_params::with_values(statement, param_types, &params)?;
        let replanned = self.prepare(Some(statement), param_types).await?;
        Box::pin(self.execute_inner(&replanned, params)).await
    }

    /// Executes a prepared statement with parameter values. On error the transaction block
    /// (if any) is failed.
    pub async fn execute(
        &mut self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        let result = match prepared.nan_widens {
            None => self.execute_once(prepared, params).await,
            Some(table) => Box::pin(self.execute_widening(prepared, params, table)).await,
        };
        if result.is_err() {
            self.on_statement_error();
        }
        result
    }

    /// [`Session::execute`] of a statement writing `table`, which has `numeric(p, s)`
    /// columns held as `Decimal128`: when the statement fails because it writes NaN into
    /// one, that column becomes a wide numeric (which holds NaN, as PostgreSQL's
    /// `numeric(p, s)` does) and the statement runs again, planned anew.
    async fn execute_widening(
        &mut self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
        table: u32,
    ) -> SqlResult<StatementResult> {
        let mut mark = self.statement_mark().await;
        let mut result = self.execute_once(prepared, params.clone()).await;
        // One rewrite per typmod of the table's fixed-point columns at most.
        for _ in 0..MAX_NAN_WIDENINGS {
            let Some(typmod) = result
                .as_ref()
                .err()
                .and_then(crate::numeric::value::nan_in_fixed)
            else {
                return result;
            };
            if let (Some(block), Some(mark)) = (&self.txn, mark) {
                // Undo what the statement wrote before it failed; the block goes on.
                block.storage.lock().await.rollback_to(mark);
            }
            let widened = match self.active_pending_catalog() {
                Some(pending) => {
                    Box::pin(with_pending_catalog(
                        pending,
                        self.widen_for_nan(table, typmod),
                    ))
                    .await
                }
                None => Box::pin(self.widen_for_nan(table, typmod)).await,
            };
            match widened {
                Ok(true) => {
                    mark = self.statement_mark().await;
                    result = self.execute_once(prepared, params.clone()).await;
                }
                Ok(false) => return result,
                Err(e) => return Err(e),
            }
        }
        result
    }

    /// Where the block's write set stands before a statement (`None` outside a block).
    async fn statement_mark(&self) -> Option<SavepointMark> {
        match &self.txn {
            Some(block) => Some(block.storage.lock().await.savepoint()),
            None => None,
        }
    }

    async fn execute_once(
        &mut self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        match self.active_pending_catalog() {
            Some(pending) => {
                let result = Box::pin(with_pending_catalog(
                    pending.clone(),
                    self.execute_inner(prepared, params),
                ))
                .await;
                // Rows are produced after this returns: their stream sees the pending
                // catalog too (catalog functions evaluated while streaming).
                match result {
                    Ok(StatementResult::Rows { rows, tag }) if !pending.is_empty() => {
                        Ok(StatementResult::Rows {
                            rows: with_pending_rows(rows, pending),
                            tag,
                        })
                    }
                    other => other,
                }
            }
            None => self.execute_inner(prepared, params).await,
        }
    }

    async fn execute_inner(
        &mut self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        if let Some(statement) = &prepared.statement {
            if self.txn_status() == TxnStatus::Failed && !ends_failed_block(statement) {
                return Err(SqlError::in_failed_transaction());
            }
        }
        if self.read_only() {
            check_writable(prepared)?;
        }
        if let Some(block) = &mut self.txn {
            block.queried |= takes_snapshot(&prepared.plan);
        }
        if self.db().relations_locked() {
            // Rare (uncommitted DDL somewhere): boxed, so the fast path's future stays small.
            Box::pin(self.wait_for_relation_locks(&prepared.plan)).await?;
        }
        if let PreparedPlan::Fast(plan) = &prepared.plan {
            if prepared.catalog_version == self.db().catalog_version() {
                return self.execute_fast(plan, &prepared.param_types, params).await;
            }
        }
        // Everything but the fast path runs in its own heap-allocated future: the general
        // path's state machine (DataFusion planning and execution) is tens of kilobytes, and
        // keeping it inline would make every pgbench-shaped statement copy it around.
        Box::pin(self.execute_general(prepared, params)).await
    }

    async fn execute_general(
        &mut self,
        prepared: &Prepared,
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        let stale = matches!(
            prepared.plan,
            PreparedPlan::Query(_)
                | PreparedPlan::Dml(_)
                | PreparedPlan::Fast(_)
                | PreparedPlan::Locking(_)
        ) && prepared.catalog_version != self.db().catalog_version();
        if let (true, Some(statement)) = (prepared.table_params, &prepared.statement) {
            let types = &prepared.param_types;
            return Box::pin(self.execute_table_params(statement, types, params)).await;
        }
        if stale {
            // Tables changed since planning: plan again against today's catalog.
            let replanned = self
                .prepare(prepared.statement.clone(), &prepared.param_types)
                .await?;
            if replanned.param_types.len() != prepared.param_types.len() {
                return Err(SqlError::not_supported(
                    "cached plan must not change its parameters",
                ));
            }
            return Box::pin(self.execute_inner(&replanned, params)).await;
        }
        match &prepared.plan {
            PreparedPlan::Dml(plan) => self.execute_dml(plan, &prepared.param_types, params).await,
            PreparedPlan::Fast(plan) => {
                self.execute_fast(plan, &prepared.param_types, params).await
            }
            PreparedPlan::Locking(plan) => {
                self.execute_locking(plan, &prepared.param_types, params)
                    .await
            }
            PreparedPlan::Empty => Ok(StatementResult::Empty),
            PreparedPlan::Query(plan) => {
                let view = self.read_view().await;
                let rows = if prepared.reusable {
                    self.run_reusable(prepared, plan, view).await?
                } else {
                    let plan =
                        bind_params(plan.clone(), &prepared.param_types, params, self.zone())?;
                    self.run_plan(plan, view).await?
                };
                Ok(StatementResult::Rows {
                    rows,
                    tag: "SELECT",
                })
            }
            PreparedPlan::Explain(plan) => {
                let plan = bind_params(plan.clone(), &prepared.param_types, params, self.zone())?;
                let view = self.read_view().await;
                let rows = self.run_explain(plan, view).await?;
                Ok(StatementResult::Rows {
                    rows,
                    tag: "EXPLAIN",
                })
            }
            PreparedPlan::Utility(statement) => {
                self.execute_utility((**statement).clone(), params).await
            }
        }
    }

    /// Waits while other transactions hold the relation locks of tables `plan` reads or
    /// writes (their uncommitted DDL changes them), as PostgreSQL's AccessExclusiveLock makes
    /// statements wait. Only called while some relation lock is held anywhere.
    async fn wait_for_relation_locks(&self, plan: &PreparedPlan) -> SqlResult<()> {
        let mut tables = Vec::new();
        match plan {
            PreparedPlan::Query(plan) | PreparedPlan::Explain(plan) => {
                scanned_tables(plan, &mut tables)
            }
            PreparedPlan::Dml(plan) => plan.tables(&mut tables),
            PreparedPlan::Fast(plan) => tables.push(plan.table_id()),
            PreparedPlan::Locking(plan) => plan.tables(&mut tables),
            PreparedPlan::Utility(_) | PreparedPlan::Empty => {}
        }
        self.wait_for_tables(tables).await
    }

    /// Waits while other transactions hold the relation lock of any of `tables`.
    pub(crate) async fn wait_for_tables(&self, mut tables: Vec<u32>) -> SqlResult<()> {
        tables.sort_unstable();
        tables.dedup();
        let waiter = self.txn.as_ref().map(|block| block.txn_id);
        for id in tables {
            self.db().wait_for_relation(waiter, id).await?;
        }
        Ok(())
    }

    /// `CHECKPOINT`: writes every table into a storage checkpoint and truncates the commit log.
    async fn checkpoint(&mut self) -> SqlResult<StatementResult> {
        let db = self.db().clone();
        tokio::task::spawn_blocking(move || db.checkpoint())
            .await
            .map_err(|e| SqlError::internal(format!("checkpoint task failed: {e}")))??;
        Ok(StatementResult::Command("CHECKPOINT".into()))
    }

    /// Parses and runs one query string's statements with the simple protocol's semantics.
    /// Convenience for tests and internal callers; the wire layer streams instead.
    pub async fn run_simple(&mut self, statement: Statement) -> SqlResult<StatementResult> {
        let prepared = self.prepare(Some(statement), &[]).await?;
        self.execute(&prepared, vec![]).await
    }

    async fn plan_query(
        &self,
        statement: &Statement,
        declared: &[SqlType],
    ) -> SqlResult<LogicalPlan> {
        let mut statement = statement.clone();
        self.expand_views(&mut statement)?;
        colnames::name_columns(&mut statement);
        crate::cast_names::distinguish(&mut statement);
        rewrite::rewrite_statement(&mut statement, self)?;
        let known: Vec<ast::DataType> = declared
            .iter()
            .take_while(|t| **t != SqlType::Unknown)
            .map(sql_data_type)
            .collect();
        let statement = if known.is_empty() {
            statement
        } else {
            Statement::Prepare {
                name: Ident::new("floe_unnamed"),
                data_types: known,
                statement: Box::new(statement),
            }
        };
        let plan = self
            .state
            .statement_to_plan(DFStatement::Statement(Box::new(statement)))
            .await?;
        let plan = rewrite::postgres_literal_types(plan)?;
        let plan = crate::param_types::infer(plan, declared)?;
        let plan = crate::type_tags::keep_type_tags(plan)?;
        crate::functions::handle::bind(plan, &self.handle)
    }

    /// Optimizes and plans for execution. Plans that read the clock (`now()`, …) get a state
    /// stamped with the statement's start — the transaction's start inside a block.
    ///
    /// While the block has uncommitted DDL, plans run in one partition: DataFusion runs the
    /// partitions of a plan on tasks of their own, where the session's pending catalog (a
    /// task-local) is not in scope, and functions that look up the catalog while rows stream
    /// (`nextval` of a new serial column, `pg_table_is_visible`, …) must see it.
    async fn physical_plan(
        &self,
        plan: &LogicalPlan,
    ) -> SqlResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let pending = self.active_pending_catalog().is_some();
        if !pending && !rewrite::uses_clock(plan) {
            return Ok(self.state.create_physical_plan(plan).await?);
        }
        let mut state = (*self.state).clone();
        if pending {
            state.config_mut().options_mut().execution.target_partitions = 1;
        }
        state.mark_start_execution();
        if let Some(block) = &self.txn {
            state.execution_props_mut().query_execution_start_time = Some(block.started_at);
        }
        Ok(state.create_physical_plan(plan).await?)
    }

    /// [`Session::physical_plan`] in one partition, so rows come out in input order (COPY
    /// maps output rows back to input lines).
    async fn physical_plan_in_order(
        &self,
        plan: &LogicalPlan,
    ) -> SqlResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let mut state = (*self.state).clone();
        state.config_mut().options_mut().execution.target_partitions = 1;
        if rewrite::uses_clock(plan) {
            state.mark_start_execution();
            if let Some(block) = &self.txn {
                state.execution_props_mut().query_execution_start_time = Some(block.started_at);
            }
        }
        Ok(state.create_physical_plan(plan).await?)
    }

    /// The database.
    pub(crate) fn db(&self) -> &Arc<floe_storage::Db> {
        self.engine.db()
    }

    /// Starts executing `physical` with scans reading `view`.
    ///
    /// A plan with more than one partition anywhere runs on the engine's executor, the
    /// server's multi-thread runtime ([`Engine::executor`]); its batches come back through a
    /// small channel, and dropping the stream (cancel, timeout, a closed client) aborts it.
    /// A plan with one partition runs where it is polled, on the connection's own thread: it
    /// has no parallelism to gain and skips a hop between threads. So do plans under the
    /// block's uncommitted DDL: the pending catalog is task-local, and such plans have one
    /// partition anyway ([`Session::physical_plan`]).
    pub(crate) fn start_plan(
        &self,
        physical: Arc<dyn ExecutionPlan>,
        view: Arc<ReadView>,
    ) -> SqlResult<SendableRecordBatchStream> {
        let ctx = self.task_ctx(view);
        match self.engine.executor() {
            Some(executor)
                if self.active_pending_catalog().is_none() && runs_in_parallel(&physical) =>
            {
                let mut builder = RecordBatchReceiverStream::builder(physical.schema(), 2);
                let tx = builder.tx();
                builder.spawn_on(
                    async move {
                        let mut stream = execute_stream(physical, ctx)?;
                        while let Some(batch) = futures::StreamExt::next(&mut stream).await {
                            let failed = batch.is_err();
                            if tx.send(batch).await.is_err() || failed {
                                break;
                            }
                        }
                        Ok(())
                    },
                    executor,
                );
                Ok(builder.build())
            }
            _ => Ok(execute_stream(physical, ctx)?),
        }
    }

    /// Plans `plan` for execution, runs it over `view` and gathers its batches.
    pub(crate) async fn collect_plan(
        &self,
        plan: &LogicalPlan,
        view: Arc<ReadView>,
    ) -> SqlResult<Vec<RecordBatch>> {
        let physical = self.physical_plan(plan).await?;
        self.collect_physical(physical, view).await
    }

    /// Executes `physical` (see [`Session::start_plan`]) and gathers its batches.
    pub(crate) async fn collect_physical(
        &self,
        physical: Arc<dyn ExecutionPlan>,
        view: Arc<ReadView>,
    ) -> SqlResult<Vec<RecordBatch>> {
        Ok(futures::TryStreamExt::try_collect(self.start_plan(physical, view)?).await?)
    }

    /// A task context whose scans read `view`.
    pub(crate) fn task_ctx(&self, view: Arc<ReadView>) -> Arc<TaskContext> {
        let ctx = TaskContext::from(self.state.as_ref());
        let config = ctx.session_config().clone().with_extension(view);
        Arc::new(ctx.with_session_config(config))
    }

    /// The isolation level the session's settings ask for.
    fn isolation(&self) -> Isolation {
        // Outside a block each statement is a transaction of the default characteristics.
        let setting = if self.txn.is_some() {
            "transaction_isolation"
        } else {
            "default_transaction_isolation"
        };
        match self.vars.get(setting).unwrap_or_default().as_str() {
            "repeatable read" => Isolation::RepeatableRead,
            "serializable" => Isolation::Serializable,
            _ => Isolation::ReadCommitted,
        }
    }

    /// Whether the current transaction is read-only (`BEGIN READ ONLY`, `SET TRANSACTION READ
    /// ONLY`, or `default_transaction_read_only` for blocks and single statements).
    fn read_only(&self) -> bool {
        let setting = if self.txn.is_some() {
            "transaction_read_only"
        } else {
            "default_transaction_read_only"
        };
        self.vars.get(setting).is_ok_and(|v| v == "on")
    }

    /// What the next read statement sees: the block's snapshot rules, or the latest commit.
    async fn read_view(&mut self) -> Arc<ReadView> {
        let isolation = self.isolation();
        match &self.txn {
            Some(block) => {
                let read_only = self.read_only();
                let mut txn = block.storage.clone().lock_owned().await;
                if !txn.has_snapshot() {
                    txn.set_isolation(isolation);
                    txn.set_read_only(read_only);
                }
                txn.statement_view()
            }
            // A query outside a block is a serializable transaction of its own (that only
            // reads) when `default_transaction_isolation` says so.
            None if isolation == Isolation::Serializable => self.db().serializable_view(),
            None => Arc::new(ReadView::committed(self.db().snapshot())),
        }
    }

    /// The transaction a writing statement uses.
    async fn statement_txn(&mut self) -> SqlResult<StatementTxn> {
        let isolation = self.isolation();
        let mut txn = match &self.txn {
            Some(block) => {
                let read_only = self.read_only();
                let mut txn = block.storage.clone().lock_owned().await;
                if !txn.has_snapshot() {
                    txn.set_isolation(isolation);
                    txn.set_read_only(read_only);
                }
                StatementTxn::Block(txn)
            }
            // A statement outside a block is a transaction of the default isolation level
            // when that is SERIALIZABLE (its reads and writes take part in its checks);
            // otherwise READ COMMITTED, whose per-statement snapshot is all it needs.
            None if isolation == Isolation::Serializable => {
                StatementTxn::Auto(self.db().begin(Isolation::Serializable))
            }
            None => StatementTxn::Auto(self.db().begin(Isolation::ReadCommitted)),
        };
        if isolation == Isolation::Serializable && !txn.has_snapshot() {
            // A serializable transaction's snapshot (and registration) is taken at its first
            // statement, whatever the statement: a blind INSERT too.
            txn.statement_view();
        }
        txn.set_lock_timeout(self.lock_timeout);
        Ok(txn)
    }

    /// Ends a writing statement: its own transaction commits if it succeeded.
    async fn finish_statement_txn<T>(
        &mut self,
        txn: StatementTxn,
        result: SqlResult<T>,
    ) -> SqlResult<T> {
        match (txn, result) {
            (StatementTxn::Auto(txn), Ok(value)) => {
                txn.commit().await?;
                Ok(value)
            }
            (_, result) => result,
        }
    }

    /// Runs `write` in the statement's transaction.
    async fn with_write_txn(
        &mut self,
        write: impl FnOnce(&mut Txn) -> SqlResult<()>,
    ) -> SqlResult<()> {
        let mut txn = self.statement_txn().await?;
        let result = write(&mut txn);
        self.finish_statement_txn(txn, result).await
    }

    /// The OID of the sequence `name` (for `nextval`).
    pub(crate) fn sequence_oid(&self, name: &str) -> SqlResult<u32> {
        let parts: Vec<ast::Ident> = name
            .split('.')
            .map(|p| {
                let p = p.trim();
                if p.starts_with('"') && p.ends_with('"') && p.len() >= 2 {
                    Ident::with_quote('"', &p[1..p.len() - 1])
                } else {
                    Ident::new(p)
                }
            })
            .collect();
        let object = ObjectName::from(parts);
        let def = self.relation(&object)?;
        match def.kind {
            floe_storage::RelationKind::Sequence(_) => Ok(def.id),
            _ => Err(SqlError::new(
                sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{}\" is not a sequence", def.name),
            )),
        }
    }

    /// Runs a reusable query, planning it for execution only the first time.
    async fn run_reusable(
        &self,
        prepared: &Prepared,
        plan: &LogicalPlan,
        view: Arc<ReadView>,
    ) -> SqlResult<RowStream> {
        let schema = prepared
            .result_schema
            .clone()
            .unwrap_or_else(|| plan_output_schema(plan));
        let physical = match prepared.physical.get() {
            Some(p) => p.clone(),
            None => {
                let physical = self.physical_plan(plan).await?;
                if stateless(&physical) {
                    let _ = prepared.physical.set(physical.clone());
                }
                physical
            }
        };
        let stream = self.start_plan(physical, view)?;
        Ok(RowStream { schema, stream })
    }

    async fn run_plan(&self, plan: LogicalPlan, view: Arc<ReadView>) -> SqlResult<RowStream> {
        let physical = self.physical_plan(&plan).await?;
        let schema = plan_output_schema(&plan);
        let stream = self.start_plan(physical, view)?;
        Ok(RowStream {
            schema: schema.clone(),
            stream: Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::StreamExt::map(stream, move |batch| batch),
            )),
        })
    }

    async fn run_explain(&self, plan: LogicalPlan, view: Arc<ReadView>) -> SqlResult<RowStream> {
        let batches = self.collect_plan(&plan, view).await?;
        let mut lines = Vec::new();
        for batch in &batches {
            let plan_type = batch.column(0).as_any().downcast_ref::<StringArray>();
            let plan_text = batch.column(1).as_any().downcast_ref::<StringArray>();
            if let (Some(types), Some(texts)) = (plan_type, plan_text) {
                for i in 0..batch.num_rows() {
                    if !lines.is_empty() {
                        lines.push(String::new());
                    }
                    lines.push(format!("{}:", types.value(i)));
                    lines.extend(texts.value(i).lines().map(|l| format!("  {l}")));
                }
            }
        }
        Ok(text_rows(query_plan_schema(), vec![lines]))
    }

    fn utility_result_schema(&self, statement: &Statement) -> SqlResult<Option<SchemaRef>> {
        Ok(match statement {
            Statement::ShowVariable { variable } => {
                let name = show_name(variable);
                if name.eq_ignore_ascii_case("all") {
                    Some(show_all_schema())
                } else {
                    // Validates the name at prepare time, like PostgreSQL.
                    self.vars.get(&name)?;
                    Some(Arc::new(Schema::new(vec![Field::new(
                        name.to_ascii_lowercase(),
                        DataType::Utf8,
                        true,
                    )])))
                }
            }
            Statement::Execute {
                name: Some(name), ..
            } => {
                let key = crate::names::object_parts(name).join(".");
                self.sql_prepared
                    .get(&key)
                    .ok_or_else(|| unknown_prepared(&key))?
                    .result_schema
                    .clone()
            }
            _ => None,
        })
    }

    /// Runs a utility statement; DDL first takes the DDL locks of the names it changes
    /// ([`ddl::ddl_lock_names`]): to the end of the block inside one, to the end of the
    /// statement outside.
    async fn execute_utility(
        &mut self,
        statement: Statement,
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        let names = ddl::ddl_lock_names(&statement, &self.database);
        if names.is_empty() {
            return Box::pin(self.execute_utility_statement(statement, params)).await;
        }
        match &self.txn {
            Some(block) => {
                let mut txn = block.storage.clone().lock_owned().await;
                for name in &names {
                    txn.lock_name(name).await?;
                }
                drop(txn);
                Box::pin(self.execute_utility_statement(statement, params)).await
            }
            None => {
                let mut locker = self.db().begin(Isolation::ReadCommitted);
                for name in &names {
                    locker.lock_name(name).await?;
                }
                self.ddl_locker = Some(locker);
                let result = Box::pin(self.execute_utility_statement(statement, params)).await;
                // Released once the statement's commit is applied (or it failed).
                self.ddl_locker = None;
                result
            }
        }
    }

    /// Takes the relation lock of relation `id` before a DDL statement reads it (an ALTER's
    /// rewrite or checks), so other sessions' statements on it wait from then on: to the end
    /// of the block inside one, to the end of the statement outside.
    pub(crate) async fn lock_relation_for_ddl(&mut self, id: u32) -> SqlResult<()> {
        if let Some(block) = &self.txn {
            block.storage.lock().await.lock_relation(id).await?;
        } else if let Some(locker) = &mut self.ddl_locker {
            locker.lock_relation(id).await?;
        }
        Ok(())
    }

    /// Makes catalog changes: part of the transaction inside a block (visible to this session
    /// at once, to others at COMMIT), committed at once outside one.
    pub(crate) async fn commit_ddl(
        &mut self,
        changes: Vec<floe_storage::CatalogChange>,
    ) -> SqlResult<()> {
        match &self.txn {
            Some(block) => {
                let mut txn = block.storage.clone().lock_owned().await;
                let committed = self.db().committed_catalog();
                for change in changes {
                    // Other sessions' statements on a relation this changes wait for the
                    // block to end.
                    let existing = match &change {
                        floe_storage::CatalogChange::PutRelation(def) => Some(def.id),
                        floe_storage::CatalogChange::DropRelation(id) => Some(*id),
                        _ => None,
                    }
                    .filter(|id| committed.relation(*id).is_some());
                    if let Some(id) = existing {
                        txn.lock_relation(id).await?;
                    }
                    txn.change_catalog(change)?;
                }
                Ok(())
            }
            None => {
                self.db().commit_catalog(changes).await?;
                self.sync_materialized_views(false).await;
                Ok(())
            }
        }
    }

    async fn execute_utility_statement(
        &mut self,
        statement: Statement,
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        // Settings may change how queries plan (TimeZone, …): forget cached plans.
        self.statement_cache.clear();
        match statement {
            Statement::StartTransaction { modes, begin, .. } => {
                self.begin(&modes)?;
                Ok(StatementResult::Command(
                    if begin { "BEGIN" } else { "START TRANSACTION" }.into(),
                ))
            }
            Statement::Commit { chain, .. } => self.commit(chain).await,
            Statement::Rollback { chain, savepoint } => match savepoint {
                Some(name) => self.rollback_to_savepoint(&name.value),
                None => self.rollback(chain),
            },
            Statement::Savepoint { name } => self.savepoint(name.value),
            Statement::ReleaseSavepoint { name } => self.release_savepoint(&name.value),
            Statement::Set(set) => self.execute_set(set),
            Statement::ShowVariable { variable } => self.execute_show(&variable),
            Statement::Reset(reset) => {
                match reset.reset {
                    Reset::ALL => {
                        let changes = self.vars.reset_all();
                        self.parameter_changes.extend(changes);
                    }
                    Reset::ConfigurationParameter(name) => {
                        let name = object_name_key(&name);
                        self.remember_for_undo(&name, false);
                        if let Some(change) = self.vars.reset(&name)? {
                            self.parameter_changes.push(change);
                        }
                    }
                }
                self.sync_datafusion_settings();
                Ok(StatementResult::Command("RESET".into()))
            }
            Statement::Discard { object_type } => self.discard(object_type).await,
            // Floe has no cursors and no LISTEN: both are no-ops (asyncpg's pool sends them when
            // it hands a connection back).
            Statement::Close {
                cursor: ast::CloseCursor::All,
            } => Ok(StatementResult::Command("CLOSE CURSOR ALL".into())),
            Statement::Close {
                cursor: ast::CloseCursor::Specific { name },
            } => Err(SqlError::new(
                sqlstate::INVALID_CURSOR_NAME,
                format!("cursor \"{}\" does not exist", name.value),
            )),
            Statement::UNLISTEN { .. } => Ok(StatementResult::Command("UNLISTEN".into())),
            Statement::CreateTable(create) if create.query.is_some() => {
                refuse_table_kinds(&create)?;
                self.create_table_as(create).await
            }
            Statement::CreateTable(create) => {
                refuse_table_kinds(&create)?;
                self.create_table(create).await
            }
            Statement::CreateView(create) => self.create_view(create).await,
            Statement::Explain { statement, .. } => match *statement {
                Statement::CreateView(create) if create.materialized => {
                    let lines = self.explain_materialized_view(create).await?;
                    Ok(StatementResult::Rows {
                        rows: text_rows(query_plan_schema(), vec![lines]),
                        tag: "EXPLAIN",
                    })
                }
                _ => Err(SqlError::internal("EXPLAIN of a utility statement")),
            },
            Statement::Query(query) if view::has_into(&query) => self.select_into(*query).await,
            copy @ Statement::Copy { .. } => self.copy(copy).await,
            Statement::AlterTable(alter) => self.alter_table(alter).await,
            Statement::Vacuum(vacuum) if vacuum.recluster => self.checkpoint().await,
            // `REFRESH MATERIALIZED VIEW` (see `syntax::REFRESH_STATEMENT`).
            Statement::Vacuum(vacuum) if vacuum.reindex => match &vacuum.table_name {
                Some(name) => self.refresh_materialized_view(name, vacuum.boost).await,
                None => Err(SqlError::internal("REFRESH without a name")),
            },
            // Storage needs neither: accepted so scripts and tools (pgbench -i) run unchanged,
            // once the table named is known to exist.
            Statement::Vacuum(vacuum) => {
                if let Some(name) = &vacuum.table_name {
                    self.relation(name)?;
                }
                Ok(StatementResult::Command("VACUUM".into()))
            }
            Statement::Analyze(analyze) => {
                if let Some(name) = &analyze.table_name {
                    self.relation(name)?;
                }
                Ok(StatementResult::Command("ANALYZE".into()))
            }
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => self.create_schema(&schema_name, if_not_exists).await,
            Statement::CreateDatabase {
                db_name,
                if_not_exists,
                ..
            } => self.create_database(&db_name, if_not_exists).await,
            Statement::Drop {
                object_type: ast::ObjectType::Database,
                names,
                if_exists,
                ..
            } => match names.as_slice() {
                [name] => self.drop_database(name, if_exists).await,
                _ => Err(SqlError::syntax("DROP DATABASE takes one name")),
            },
            Statement::Drop {
                object_type: ast::ObjectType::Index,
                names,
                if_exists,
                ..
            } => self.drop_indexes(names, if_exists).await,
            Statement::CreateIndex(create) => self.create_index(create).await,
            Statement::Drop {
                object_type,
                names,
                if_exists,
                cascade,
                ..
            } => {
                self.drop_objects(object_type, names, if_exists, cascade)
                    .await
            }
            Statement::Truncate(truncate) => {
                let restart = matches!(
                    truncate.identity,
                    Some(ast::TruncateIdentityOption::Restart)
                );
                self.truncate(
                    truncate.table_names.into_iter().map(|t| t.name).collect(),
                    restart,
                )
                .await
            }
            Statement::Prepare {
                name,
                data_types,
                statement,
            } => self.sql_prepare(name, data_types, *statement).await,
            Statement::Execute {
                name: Some(name),
                parameters,
                ..
            } => self.sql_execute(&name, parameters, params).await,
            Statement::Deallocate { name, .. } => {
                if name.value.eq_ignore_ascii_case("all") {
                    self.sql_prepared.clear();
                } else if self
                    .sql_prepared
                    .remove(&crate::names::ident_name(&name))
                    .is_none()
                {
                    return Err(unknown_prepared(&name.value));
                }
                Ok(StatementResult::Command("DEALLOCATE".into()))
            }
            other => Err(not_supported_statement(&other)),
        }
    }

    fn begin(&mut self, modes: &[TransactionMode]) -> SqlResult<()> {
        if let Some(block) = self.txn.as_mut().filter(|b| b.implicit) {
            // BEGIN inside a multi-statement query string: the implicit block becomes an
            // ordinary one that outlives the string, as in PostgreSQL.
            block.implicit = false;
            return self.apply_transaction_modes(modes, false);
        }
        if self.txn.is_some() {
            self.notices.push(Notice {
                severity: "WARNING",
                code: sqlstate::ACTIVE_SQL_TRANSACTION,
                message: "there is already a transaction in progress".into(),
            });
            return Ok(());
        }
        let storage = self.db().begin(self.isolation());
        self.txn = Some(TxnBlock {
            failed: false,
            implicit: false,
            queried: false,
            started_at: chrono::Utc::now(),
            savepoints: Vec::new(),
            undo: SettingsUndo::default(),
            pending: storage.pending_catalog(),
            txn_id: storage.id(),
            storage: Arc::new(tokio::sync::Mutex::new(storage)),
        });
        // A block starts with the default characteristics (reset again when it ends).
        for (setting, default) in [
            ("transaction_isolation", "default_transaction_isolation"),
            ("transaction_read_only", "default_transaction_read_only"),
        ] {
            let value = self.vars.get(default)?;
            self.set_var(setting, &value, true)?;
        }
        self.apply_transaction_modes(modes, false)
    }

    fn apply_transaction_modes(&mut self, modes: &[TransactionMode], local: bool) -> SqlResult<()> {
        let started = self.txn.as_ref().is_some_and(|block| block.queried);
        for mode in modes {
            match mode {
                TransactionMode::IsolationLevel(_) if started => {
                    return Err(SqlError::new(
                        sqlstate::ACTIVE_SQL_TRANSACTION,
                        "SET TRANSACTION ISOLATION LEVEL must be called before any query",
                    ));
                }
                TransactionMode::IsolationLevel(level) => {
                    let value = match level {
                        TransactionIsolationLevel::ReadUncommitted => "read uncommitted",
                        TransactionIsolationLevel::ReadCommitted => "read committed",
                        TransactionIsolationLevel::RepeatableRead => "repeatable read",
                        TransactionIsolationLevel::Serializable => "serializable",
                        TransactionIsolationLevel::Snapshot => "repeatable read",
                    };
                    self.set_var("transaction_isolation", value, true)?;
                }
                TransactionMode::AccessMode(mode) => {
                    let value = match mode {
                        ast::TransactionAccessMode::ReadOnly => "on",
                        ast::TransactionAccessMode::ReadWrite => "off",
                    };
                    self.set_var("transaction_read_only", value, true)?;
                }
            }
        }
        let _ = local;
        Ok(())
    }

    async fn commit(&mut self, chain: bool) -> SqlResult<StatementResult> {
        self.check_chain_outside_implicit(chain, "COMMIT")?;
        match self.txn.take() {
            None => {
                self.no_transaction_warning();
                Ok(StatementResult::Command("COMMIT".into()))
            }
            Some(block) => {
                if block.implicit {
                    self.no_transaction_warning();
                }
                let failed = block.failed;
                let storage = block.storage.clone();
                self.finish_block(block, failed);
                let txn = {
                    let mut guard = storage.lock().await;
                    std::mem::replace(&mut *guard, self.db().begin(Isolation::ReadCommitted))
                };
                let committed = if failed { Ok(None) } else { txn.commit().await };
                // Transaction-level advisory locks end once the commit is applied.
                self.handle.end_transaction();
                committed?;
                // The block's DDL may have created or dropped materialized views.
                self.sync_materialized_views(false).await;
                if chain {
                    self.begin(&[])?;
                }
                Ok(StatementResult::Command(
                    if failed { "ROLLBACK" } else { "COMMIT" }.into(),
                ))
            }
        }
    }

    fn rollback(&mut self, chain: bool) -> SqlResult<StatementResult> {
        self.check_chain_outside_implicit(chain, "ROLLBACK")?;
        match self.txn.take() {
            None => self.no_transaction_warning(),
            Some(block) => {
                if block.implicit {
                    self.no_transaction_warning();
                }
                self.finish_block(block, true);
                if chain {
                    self.begin(&[])?;
                }
            }
        }
        Ok(StatementResult::Command("ROLLBACK".into()))
    }

    /// Opens the implicit transaction block a simple Query message of several statements runs
    /// in (PostgreSQL runs the whole string as one transaction unless it has its own
    /// transaction control): an error anywhere undoes the statements before it. Does nothing
    /// inside a transaction block.
    pub fn begin_implicit(&mut self) -> SqlResult<()> {
        if self.txn.is_some() {
            return Ok(());
        }
        self.begin(&[])?;
        if let Some(block) = &mut self.txn {
            block.implicit = true;
        }
        Ok(())
    }

    /// Ends the implicit block (if the string did not end it or make it explicit with BEGIN):
    /// commits it when every statement succeeded, else rolls it back.
    pub async fn end_implicit(&mut self, succeeded: bool) -> SqlResult<()> {
        if !self.txn.as_ref().is_some_and(|b| b.implicit) {
            return Ok(());
        }
        if succeeded {
            // Not through `commit`: this COMMIT is nobody's statement, so it warns of nothing.
            if let Some(block) = &mut self.txn {
                block.implicit = false;
            }
            self.commit(false).await.map(|_| ())
        } else {
            self.abort_implicit();
            Ok(())
        }
    }

    /// Rolls the implicit block back, if one is open.
    pub fn abort_implicit(&mut self) {
        if let Some(block) = self.txn.take_if(|b| b.implicit) {
            self.finish_block(block, true);
        }
    }

    /// `COMMIT AND CHAIN` / `ROLLBACK AND CHAIN` need a real transaction block (25P01).
    fn check_chain_outside_implicit(&self, chain: bool, command: &str) -> SqlResult<()> {
        if chain && self.txn.as_ref().is_some_and(|b| b.implicit) {
            return Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                format!("{command} AND CHAIN can only be used in transaction blocks"),
            ));
        }
        Ok(())
    }

    fn no_transaction_warning(&mut self) {
        self.notices.push(Notice {
            severity: "WARNING",
            code: sqlstate::NO_ACTIVE_SQL_TRANSACTION,
            message: "there is no transaction in progress".into(),
        });
    }

    /// Ends a block: undoes SET LOCAL always, and every SET when rolling back.
    fn finish_block(&mut self, block: TxnBlock, rolled_back: bool) {
        for (name, (value, local)) in block.undo.before {
            if rolled_back || local {
                if let Ok(Some(change)) = self.vars.set(&name, &value) {
                    self.parameter_changes.push(change);
                }
            }
        }
        if rolled_back {
            // A commit releases them once it is applied ([`Session::commit`]).
            self.handle.end_transaction();
        }
        // Per-transaction characteristics end with the block.
        let _ = self.vars.reset("transaction_isolation");
        let _ = self.vars.reset("transaction_read_only");
        self.sync_datafusion_settings();
    }

    fn savepoint(&mut self, name: String) -> SqlResult<StatementResult> {
        match self.txn.as_mut().filter(|b| !b.implicit) {
            Some(block) => {
                let mark = block
                    .storage
                    .try_lock()
                    .map_err(|_| SqlError::internal("transaction busy"))?
                    .savepoint();
                block.savepoints.push((name.to_ascii_lowercase(), mark));
                Ok(StatementResult::Command("SAVEPOINT".into()))
            }
            None => Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "SAVEPOINT can only be used in transaction blocks",
            )),
        }
    }

    fn release_savepoint(&mut self, name: &str) -> SqlResult<StatementResult> {
        let key = name.to_ascii_lowercase();
        match self.txn.as_mut().filter(|b| !b.implicit) {
            Some(block) => match block.savepoints.iter().rposition(|s| s.0 == key) {
                Some(pos) => {
                    block.savepoints.truncate(pos);
                    Ok(StatementResult::Command("RELEASE".into()))
                }
                None => Err(no_such_savepoint(name)),
            },
            None => Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "RELEASE SAVEPOINT can only be used in transaction blocks",
            )),
        }
    }

    fn rollback_to_savepoint(&mut self, name: &str) -> SqlResult<StatementResult> {
        let key = name.to_ascii_lowercase();
        match self.txn.as_mut().filter(|b| !b.implicit) {
            Some(block) => match block.savepoints.iter().rposition(|s| s.0 == key) {
                Some(pos) => {
                    block.savepoints.truncate(pos + 1);
                    block
                        .storage
                        .try_lock()
                        .map_err(|_| SqlError::internal("transaction busy"))?
                        .rollback_to(block.savepoints[pos].1);
                    block.failed = false;
                    Ok(StatementResult::Command("ROLLBACK".into()))
                }
                None => Err(no_such_savepoint(name)),
            },
            None => Err(SqlError::new(
                sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
            )),
        }
    }

    fn execute_set(&mut self, set: Set) -> SqlResult<StatementResult> {
        match set {
            Set::SingleAssignment {
                scope,
                variable,
                values,
                ..
            } => {
                let local = matches!(scope, Some(ast::ContextModifier::Local));
                let name = object_name_key(&variable);
                let value = set_value_text(&values)?;
                if value.eq_ignore_ascii_case("default") && values.len() == 1 {
                    self.remember_for_undo(&name, local);
                    if let Some(change) = self.vars.reset(&name)? {
                        self.parameter_changes.push(change);
                    }
                } else {
                    self.set_var(&name, &value, local)?;
                }
            }
            Set::SetTimeZone { local, value } => {
                let value = set_value_text(std::slice::from_ref(&value))?;
                self.set_var("TimeZone", &value, local)?;
            }
            Set::SetNames { charset_name, .. } => {
                self.set_var("client_encoding", &charset_name.value, false)?;
            }
            Set::SetTransaction { modes, .. } => {
                if self.txn.is_none() {
                    self.notices.push(Notice {
                        severity: "WARNING",
                        code: sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                        message: "SET TRANSACTION can only be used in transaction blocks".into(),
                    });
                } else {
                    self.apply_transaction_modes(&modes, true)?;
                }
            }
            Set::SetRole { role_name, .. } => {
                if let Some(role) = role_name {
                    if role.value != self.user && !role.value.eq_ignore_ascii_case("none") {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_OBJECT,
                            format!("role \"{}\" does not exist", role.value),
                        ));
                    }
                }
            }
            Set::SetSessionAuthorization(param) => {
                let text = param.to_string();
                if !text.to_ascii_lowercase().contains("default") && !text.contains(&self.user) {
                    return Err(SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("role {text} does not exist"),
                    ));
                }
            }
            other => return Err(SqlError::not_supported(format!("{other} is not supported"))),
        }
        self.sync_datafusion_settings();
        Ok(StatementResult::Command("SET".into()))
    }

    fn set_var(&mut self, name: &str, value: &str, local: bool) -> SqlResult<()> {
        if local && self.txn.is_none() {
            self.notices.push(Notice {
                severity: "WARNING",
                code: sqlstate::NO_ACTIVE_SQL_TRANSACTION,
                message: "SET LOCAL can only be used in transaction blocks".into(),
            });
            return Ok(());
        }
        self.remember_for_undo(name, local);
        if let Some(change) = self.vars.set(name, value)? {
            self.parameter_changes.push(change);
        }
        Ok(())
    }

    fn remember_for_undo(&mut self, name: &str, local: bool) {
        let current = self.vars.get_opt(name);
        if let (Some(block), Some(current)) = (&mut self.txn, current) {
            let key = SessionVars::canonical_name(name);
            let entry = block.undo.before.entry(key).or_insert((current, local));
            // A plain SET after SET LOCAL makes the value stick on commit.
            entry.1 = entry.1 && local;
        }
    }

    fn execute_show(&mut self, variable: &[Ident]) -> SqlResult<StatementResult> {
        let name = show_name(variable);
        if name.eq_ignore_ascii_case("all") {
            let rows = self.vars.show_all();
            let (names, rest): (Vec<_>, Vec<_>) =
                rows.into_iter().map(|(n, s, d)| (n, (s, d))).unzip();
            let (settings, descriptions): (Vec<_>, Vec<_>) = rest.into_iter().unzip();
            return Ok(StatementResult::Rows {
                rows: text_rows(show_all_schema(), vec![names, settings, descriptions]),
                tag: "SHOW",
            });
        }
        let value = self.vars.get(&name)?;
        let schema = Arc::new(Schema::new(vec![Field::new(
            name.to_ascii_lowercase(),
            DataType::Utf8,
            true,
        )]));
        Ok(StatementResult::Rows {
            rows: text_rows(schema, vec![vec![value]]),
            tag: "SHOW",
        })
    }

    async fn discard(&mut self, object: DiscardObject) -> SqlResult<StatementResult> {
        match object {
            DiscardObject::ALL => {
                if self.txn.is_some() {
                    return Err(SqlError::new(
                        sqlstate::ACTIVE_SQL_TRANSACTION,
                        "DISCARD ALL cannot run inside a transaction block",
                    ));
                }
                self.discard_temp().await?;
                let changes = self.vars.reset_all();
                self.parameter_changes.extend(changes);
                self.sql_prepared.clear();
                self.handle.unlock_all();
                self.sync_datafusion_settings();
                Ok(StatementResult::Command("DISCARD ALL".into()))
            }
            DiscardObject::PLANS => Ok(StatementResult::Command("DISCARD PLANS".into())),
            DiscardObject::SEQUENCES => Ok(StatementResult::Command("DISCARD SEQUENCES".into())),
            DiscardObject::TEMP => {
                self.discard_temp().await?;
                Ok(StatementResult::Command("DISCARD TEMP".into()))
            }
        }
    }

    async fn sql_prepare(
        &mut self,
        name: Ident,
        data_types: Vec<ast::DataType>,
        statement: Statement,
    ) -> SqlResult<StatementResult> {
        let key = crate::names::ident_name(&name);
        if self.sql_prepared.contains_key(&key) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{}\" already exists", name.value),
            ));
        }
        let declared: Vec<SqlType> = data_types
            .iter()
            .map(sql_type_of)
            .collect::<SqlResult<_>>()?;
        let prepared = self.prepare(Some(statement), &declared).await?;
        self.sql_prepared.insert(key, Arc::new(prepared));
        Ok(StatementResult::Command("PREPARE".into()))
    }

    async fn sql_execute(
        &mut self,
        name: &ObjectName,
        arguments: Vec<Expr>,
        _params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        let key = crate::names::object_parts(name).join(".");
        let prepared = self
            .sql_prepared
            .get(&key)
            .cloned()
            .ok_or_else(|| unknown_prepared(&key))?;
        if arguments.len() != prepared.param_types.len() {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("wrong number of parameters for prepared statement \"{key}\"",),
            )
            .with_detail(format!(
                "Expected {} parameters but got {}.",
                prepared.param_types.len(),
                arguments.len()
            )));
        }
        let mut values = Vec::with_capacity(arguments.len());
        for (arg, ty) in arguments.into_iter().zip(&prepared.param_types) {
            values.push(self.evaluate_constant(arg, ty).await?);
        }
        Box::pin(self.execute(&prepared, values)).await
    }

    /// Evaluates a constant expression (an `EXECUTE` argument) to a value of type `ty`.
    async fn evaluate_constant(&self, expr: Expr, ty: &SqlType) -> SqlResult<ScalarValue> {
        let sql = format!("SELECT CAST({expr} AS {})", cast_target_name(ty));
        let statement = self
            .parse(&sql)?
            .pop()
            .ok_or_else(|| SqlError::internal("no statement"))?;
        let plan = self.plan_query(&statement, &[]).await?;
        let view = Arc::new(ReadView::committed(self.db().snapshot()));
        let batches = self.collect_plan(&plan, view).await?;
        let batch = batches
            .first()
            .ok_or_else(|| SqlError::internal("constant expression produced no row"))?;
        Ok(ScalarValue::try_from_array(batch.column(0), 0)?)
    }

    /// Makes DataFusion see the settings it depends on (the session time zone).
    fn sync_datafusion_settings(&mut self) {
        self.lock_timeout = self.vars.lock_timeout();
        self.handle.set_lock_timeout(self.lock_timeout);
        let tz = arrow_timezone(&self.vars.get("TimeZone").unwrap_or_else(|_| "UTC".into()));
        // DataFusion resolves unqualified names in one schema: the first of search_path.
        let schema = self
            .search_path()
            .into_iter()
            .next()
            .unwrap_or_else(|| crate::engine::DEFAULT_SCHEMA.to_string());
        let wanted = (Some(tz.as_str()), self.database.as_str(), schema.as_str());
        let options = self.state.config().options();
        let current = (
            options.execution.time_zone.as_deref(),
            options.catalog.default_catalog.as_str(),
            options.catalog.default_schema.as_str(),
        );
        if current == wanted {
            return;
        }
        let base = self.engine.state().config().options();
        let base = (
            base.execution.time_zone.as_deref(),
            base.catalog.default_catalog.as_str(),
            base.catalog.default_schema.as_str(),
        );
        if base == wanted {
            self.state = self.engine.state().clone();
            return;
        }
        let mut state = (*self.engine.state().as_ref()).clone();
        let options = state.config_mut().options_mut();
        options.execution.time_zone = Some(tz);
        options.catalog.default_catalog = self.database.clone();
        options.catalog.default_schema = schema;
        // Functions read settings (the time zone) from the execution properties' copy.
        let config = Arc::clone(state.config().options());
        state.execution_props_mut().config_options = Some(config);
        self.state = Arc::new(state);
    }

    /// Current value of a setting, for `current_setting()`.
    pub(crate) fn setting(&self, name: &str) -> SqlResult<String> {
        self.vars.get(name)
    }
}

/// Deepest expression or set-operation nesting a statement may have. The parser builds long
/// operator chains (`1 + 1 + …`, `UNION ALL …`) iteratively, but planning recurses over them;
/// PostgreSQL answers such statements with 54001 too.
const MAX_NESTING: usize = 400;

/// Rejects statements nested deeper than [`MAX_NESTING`] with 54001.
fn check_nesting(statement: &Statement) -> SqlResult<()> {
    use datafusion::sql::sqlparser::ast::{SetExpr, Visit, Visitor};
    struct Depth {
        current: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.current += 1;
            if self.current > MAX_NESTING {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
            self.current -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &ast::Query) -> ControlFlow<()> {
            // A chain of set operations nests one level per operator.
            let mut depth = 0;
            let mut body = query.body.as_ref();
            while let SetExpr::SetOperation { left, .. } = body {
                depth += 1;
                body = left.as_ref();
            }
            if self.current + depth > MAX_NESTING {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut depth = Depth { current: 0 };
    match statement.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(SqlError::new(
            sqlstate::STATEMENT_TOO_COMPLEX,
            "stack depth limit exceeded",
        )
        .with_hint(format!(
            "The statement nests expressions or set operations more than {MAX_NESTING} deep; \
             split it up."
        ))),
    }
}

/// Partitioned tables, partitions and inheritance are not built: refused (0A000) rather than
/// created as the plain table they would otherwise become.
fn refuse_table_kinds(create: &ast::CreateTable) -> SqlResult<()> {
    let clause = if create.partition_by.is_some() {
        "PARTITION BY"
    } else if create.partition_of.is_some() {
        "PARTITION OF"
    } else if create.inherits.is_some() {
        "INHERITS"
    } else {
        return Ok(());
    };
    Err(SqlError::not_supported(format!(
        "CREATE TABLE … {clause} is not supported yet"
    )))
}

/// The order of message levels for `client_min_messages` (INFO is always sent).
fn message_rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "debug5" => 0,
        "debug4" => 1,
        "debug3" => 2,
        "debug2" => 3,
        "debug1" | "debug" => 4,
        "log" => 5,
        "notice" => 6,
        "warning" => 7,
        _ => 8,
    }
}

/// Whether running `plan` takes a snapshot (PostgreSQL's "query": everything but transaction
/// control and settings).
fn takes_snapshot(plan: &PreparedPlan) -> bool {
    match plan {
        PreparedPlan::Empty => false,
        PreparedPlan::Utility(statement) => !matches!(
            **statement,
            Statement::StartTransaction { .. }
                | Statement::Commit { .. }
                | Statement::Rollback { .. }
                | Statement::Savepoint { .. }
                | Statement::ReleaseSavepoint { .. }
                | Statement::Set(_)
                | Statement::ShowVariable { .. }
                | Statement::Reset(_)
                | Statement::Discard { .. }
                | Statement::Prepare { .. }
                | Statement::Deallocate { .. }
        ),
        _ => true,
    }
}

/// 25006 for a statement that writes, in a read-only transaction.
fn check_writable(prepared: &Prepared) -> SqlResult<()> {
    let command = match (&prepared.plan, &prepared.statement) {
        (PreparedPlan::Fast(plan), _) => match plan.as_ref() {
            fast::FastPlan::Get { .. } => return Ok(()),
            fast::FastPlan::Update { .. } => "UPDATE",
            fast::FastPlan::Delete { .. } => "DELETE",
            fast::FastPlan::Insert { .. } => "INSERT",
        },
        (PreparedPlan::Locking(_), _) => "SELECT FOR UPDATE",
        (_, Some(statement)) => match statement {
            Statement::Insert(_) => "INSERT",
            Statement::Update(_) => "UPDATE",
            Statement::Delete(_) => "DELETE",
            Statement::Merge { .. } => "MERGE",
            Statement::Truncate(_) => "TRUNCATE TABLE",
            Statement::Copy { to: false, .. } => "COPY FROM",
            Statement::Query(query) if view::has_into(query) => "SELECT INTO",
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::CreateView(create) if create.materialized => "CREATE MATERIALIZED VIEW",
            Statement::CreateView(_) => "CREATE VIEW",
            Statement::Vacuum(vacuum) if vacuum.reindex => "REFRESH MATERIALIZED VIEW",
            Statement::CreateIndex(_) => "CREATE INDEX",
            Statement::CreateSchema { .. } => "CREATE SCHEMA",
            Statement::CreateSequence { .. } => "CREATE SEQUENCE",
            Statement::AlterTable(_) => "ALTER TABLE",
            Statement::Drop { object_type, .. } => match object_type {
                ast::ObjectType::Table => "DROP TABLE",
                ast::ObjectType::View => "DROP VIEW",
                ast::ObjectType::MaterializedView => "DROP MATERIALIZED VIEW",
                ast::ObjectType::Index => "DROP INDEX",
                ast::ObjectType::Schema => "DROP SCHEMA",
                ast::ObjectType::Sequence => "DROP SEQUENCE",
                _ => return Ok(()),
            },
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    Err(SqlError::new(
        sqlstate::READ_ONLY_SQL_TRANSACTION,
        format!("cannot execute {command} in a read-only transaction"),
    ))
}

/// Whether `statement` may run in a failed transaction block.
fn ends_failed_block(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Rollback { .. } | Statement::Commit { .. }
    )
}

fn no_such_savepoint(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_SAVEPOINT_SPECIFICATION,
        format!("savepoint \"{name}\" does not exist"),
    )
}

fn unknown_prepared(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_SQL_STATEMENT_NAME,
        format!("prepared statement \"{name}\" does not exist"),
    )
}

fn not_supported_statement(statement: &Statement) -> SqlError {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    SqlError::not_supported(format!("{} is not supported yet", words.join(" ")))
}

/// The lower-cased dotted name of an object (`SET Foo.Bar` → `foo.bar`).
fn object_name_key(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.to_ascii_lowercase(),
            None => part.to_string().to_ascii_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn show_name(variable: &[Ident]) -> String {
    let words: Vec<String> = variable
        .iter()
        .map(|i| i.value.to_ascii_lowercase())
        .collect();
    match words.join(" ").as_str() {
        "time zone" => "TimeZone".into(),
        "transaction isolation level" => "transaction_isolation".into(),
        "session authorization" => "session_authorization".into(),
        _ => words.join("."),
    }
}

/// The text of SET's value list (`SET search_path TO a, b` → `a, b`).
fn set_value_text(values: &[Expr]) -> SqlResult<String> {
    let mut parts = Vec::with_capacity(values.len());
    for value in values {
        let text = match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s)
                | Value::DoubleQuotedString(s)
                | Value::EscapedStringLiteral(s) => s.clone(),
                Value::Number(n, _) => n.to_string(),
                Value::Boolean(b) => b.to_string(),
                other => other.to_string(),
            },
            Expr::Identifier(ident) => ident.value.clone(),
            Expr::CompoundIdentifier(parts) => parts
                .iter()
                .map(|p| p.value.clone())
                .collect::<Vec<_>>()
                .join("."),
            Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => {
                format!("-{}", set_value_text(std::slice::from_ref(expr))?)
            }
            Expr::Interval(interval) => interval.value.to_string().trim_matches('\'').to_string(),
            other => {
                return Err(SqlError::syntax(format!(
                    "syntax error at or near \"{other}\""
                )))
            }
        };
        parts.push(text);
    }
    Ok(parts.join(", "))
}

/// A SQL type name for a [`SqlType`], used to declare parameter types to the planner.
pub(crate) fn sql_data_type(t: &SqlType) -> ast::DataType {
    let name = cast_target_name(t);
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .try_with_sql(&name)
        .and_then(|mut p| p.parse_data_type())
        .unwrap_or(ast::DataType::Text)
}

/// The SQL spelling of a type in a CAST.
fn cast_target_name(t: &SqlType) -> String {
    match t {
        // A wide numeric; in arrays, DataFusion's NUMERIC (Decimal128(38, 10)), as
        // `SqlType::to_arrow` holds arrays of numeric.
        SqlType::Numeric => "NUMERIC".into(),
        SqlType::Unknown => "TEXT".into(),
        SqlType::Oid => "BIGINT".into(),
        SqlType::Array(inner) => format!("{}[]", cast_target_name(inner)),
        SqlType::Timestamptz => "TIMESTAMPTZ".into(),
        SqlType::Timestamp => "TIMESTAMP".into(),
        SqlType::Time => "TIME".into(),
        SqlType::Bpchar => "CHAR".into(),
        SqlType::Varchar => "VARCHAR".into(),
        other => other.name().to_ascii_uppercase(),
    }
}

/// Parameter types the client left open but the statement casts (`$1::int2`), as PostgreSQL
/// infers them.
fn with_placeholder_casts(statement: &Statement, declared: &[SqlType]) -> Vec<SqlType> {
    let mut types = declared.to_vec();
    for (n, data_type) in rewrite::placeholder_casts(statement) {
        let Some(ty) = SqlType::from_sql(&data_type) else {
            continue;
        };
        if n == 0 {
            continue;
        }
        if types.len() < n {
            types.resize(n, SqlType::Unknown);
        }
        if types[n - 1] == SqlType::Unknown {
            types[n - 1] = ty;
        }
    }
    // Trailing unknowns add nothing the plan does not say itself.
    while types.last() == Some(&SqlType::Unknown) && types.len() > declared.len() {
        types.pop();
    }
    types
}

/// The [`SqlType`] a SQL type name denotes.
fn sql_type_of(t: &ast::DataType) -> SqlResult<SqlType> {
    SqlType::from_sql(t).ok_or_else(|| {
        SqlError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!(
                "type \"{}\" does not exist",
                t.to_string().to_ascii_lowercase()
            ),
        )
    })
}

impl Session {
    /// The output schema of `plan` once the analyzer has run, for plans whose column types
    /// it may change (set operations and VALUES lists mixing numerics: an integer column
    /// UNION a `1e40` is numeric), so that a Describe tells the type the rows come in.
    /// `None` for other plans and when the analyzer fails (the execution reports that).
    fn analyzed_output(&self, plan: &LogicalPlan) -> Option<SchemaRef> {
        use datafusion::common::tree_node::TreeNode;
        let mut retypes = false;
        let _ = plan.apply(|node| {
            retypes |= match node {
                LogicalPlan::Union(_) | LogicalPlan::Values(_) => true,
                LogicalPlan::Join(join) => matches!(
                    join.join_type,
                    datafusion::common::JoinType::LeftSemi | datafusion::common::JoinType::LeftAnti
                ),
                _ => false,
            };
            Ok(match retypes {
                true => datafusion::common::tree_node::TreeNodeRecursion::Stop,
                false => datafusion::common::tree_node::TreeNodeRecursion::Continue,
            })
        });
        if !retypes {
            return None;
        }
        let input = match plan {
            LogicalPlan::Statement(PlanStatement::Prepare(prepare)) => prepare.input.as_ref(),
            other => other,
        };
        let analyzed = self
            .state
            .analyzer()
            .execute_and_check(input.clone(), self.state.config_options(), |_, _| {})
            .ok()?;
        // Only the types come from the analyzer: where a column's type stayed, its PostgreSQL
        // type tag is the planned one (the analyzer merges the tags of a union's inputs, so
        // `text UNION varchar` became varchar; PostgreSQL takes the first input's type).
        let planned = plan_output_schema(plan);
        let analyzed = plan_output_schema(&analyzed);
        if planned.fields().len() != analyzed.fields().len() {
            return Some(analyzed);
        }
        let inputs = union_inputs(input);
        let fields: Vec<Field> = planned
            .fields()
            .iter()
            .zip(analyzed.fields().iter())
            .enumerate()
            .map(|(i, (planned, analyzed))| {
                let mut field = match planned.data_type() == analyzed.data_type() {
                    true => planned.as_ref().clone(),
                    false => analyzed.as_ref().clone(),
                };
                // A union's column has its first typed input's PostgreSQL type where the
                // types agree (DataFusion merges the inputs' tags: `text UNION varchar` took
                // the varchar's tag where the text side had none, a CASE or a function's
                // result); a bare string literal is of unknown type and decides nothing
                // (`'a' UNION varchar` is varchar).
                let first = inputs
                    .iter()
                    .find(|input| !unknown_literal(input, i))
                    .or(inputs.first())
                    .map(|input| input.schema().field(i).clone());
                if let Some(first) = first.as_ref() {
                    let text = |t: &DataType| {
                        matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
                    };
                    let tag = |f: &Field| f.metadata().get(crate::types::PG_TYPE_KEY).cloned();
                    let same_kind = first.data_type() == field.data_type()
                        || text(first.data_type()) && text(field.data_type());
                    if same_kind && tag(first) != tag(&field) {
                        // The inputs' types differ, so no type modifier holds (as
                        // PostgreSQL's select_common_typmod finds).
                        let mut metadata = field.metadata().clone();
                        metadata.remove(crate::types::PG_TYPMOD_KEY);
                        metadata.remove(crate::types::PG_TYPE_KEY);
                        if let Some(tag) = tag(first) {
                            metadata.insert(crate::types::PG_TYPE_KEY.to_string(), tag);
                        }
                        field = field.with_metadata(metadata);
                    }
                }
                field
            })
            .collect();
        Some(Arc::new(Schema::new_with_metadata(
            fields,
            analyzed.metadata().clone(),
        )))
    }
}

/// The inputs of the union whose columns `plan` returns as they are (through ORDER BY,
/// LIMIT, DISTINCT and aliases), if any.
fn union_inputs(plan: &LogicalPlan) -> Vec<&LogicalPlan> {
    match plan {
        LogicalPlan::Union(union) => union.inputs.iter().map(|i| i.as_ref()).collect(),
        LogicalPlan::Sort(sort) => union_inputs(&sort.input),
        LogicalPlan::Limit(limit) => union_inputs(&limit.input),
        LogicalPlan::SubqueryAlias(alias) => union_inputs(&alias.input),
        LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
            union_inputs(input)
        }
        _ => Vec::new(),
    }
}

/// Whether column `i` of `plan` is a string literal without a type written right in the
/// union's select list (PostgreSQL's `unknown`: `'a'`, not `'a'::text`; a literal a derived
/// table, DISTINCT or ORDER BY returns has been resolved to text already).
fn unknown_literal(plan: &LogicalPlan, i: usize) -> bool {
    let LogicalPlan::Projection(projection) = plan else {
        return false;
    };
    match projection
        .expr
        .get(i)
        .map(|e| e.clone().unalias_nested().data)
    {
        Some(datafusion::logical_expr::Expr::Literal(
            ScalarValue::Utf8(_) | ScalarValue::Utf8View(_),
            metadata,
        )) => metadata.is_none_or(|m| !m.inner().contains_key(crate::types::PG_TYPE_KEY)),
        _ => false,
    }
}

/// Parameter types (declared, else inferred, else text) and the output schema of a plan.
fn describe_plan(plan: &LogicalPlan, declared: &[SqlType]) -> SqlResult<(Vec<SqlType>, SchemaRef)> {
    let fields = plan.get_parameter_fields()?;
    let mut count = declared.len();
    for name in fields.keys() {
        if let Some(n) = name.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
            count = count.max(n);
        } else {
            return Err(SqlError::syntax(format!(
                "named parameter {name} is not supported"
            )));
        }
    }
    let mut types = Vec::with_capacity(count);
    for i in 0..count {
        let declared_type = declared.get(i).filter(|t| **t != SqlType::Unknown);
        let inferred = fields
            .get(&format!("${}", i + 1))
            .and_then(|f| f.as_ref())
            .map(|f| SqlType::from_arrow_field(f));
        types.push(declared_type.cloned().or(inferred).unwrap_or(SqlType::Text));
    }
    Ok((types, plan_output_schema(plan)))
}

/// Whether any operator of a physical plan has more than one partition.
fn runs_in_parallel(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.output_partitioning().partition_count() > 1
        || plan.children().iter().any(|c| runs_in_parallel(c))
}

/// Whether a physical plan may be executed again: only operators that keep no state between
/// executions (a hash join's build side, a lazy generator's position would leak otherwise).
fn stateless(plan: &Arc<dyn ExecutionPlan>) -> bool {
    const STATELESS: [&str; 5] = [
        "ProjectionExec",
        "PlaceholderRowExec",
        "EmptyExec",
        "FilterExec",
        "CoalesceBatchesExec",
    ];
    STATELESS.contains(&plan.name()) && plan.children().iter().all(|c| stateless(c))
}

/// The schema of the rows a plan returns (looking through a `Prepare` wrapper).
fn plan_output_schema(plan: &LogicalPlan) -> SchemaRef {
    let schema = match plan {
        LogicalPlan::Statement(PlanStatement::Prepare(prepare)) => {
            prepare.input.schema().as_arrow()
        }
        other => other.schema().as_arrow(),
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = colnames::display_name(f.name());
            if name.len() == f.name().len() {
                f.as_ref().clone()
            } else {
                f.as_ref().clone().with_name(name)
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// Substitutes parameter values, cast to the statement's parameter types.
fn bind_params(
    plan: LogicalPlan,
    types: &[SqlType],
    params: Vec<ScalarValue>,
    zone: crate::datetime::Zone,
) -> SqlResult<LogicalPlan> {
    let declared_fields: Option<Vec<FieldRef>> = match &plan {
        LogicalPlan::Statement(PlanStatement::Prepare(p)) => Some(p.fields.clone()),
        _ => None,
    };
    if params.is_empty() && types.is_empty() {
        return Ok(plan);
    }
    if params.len() != types.len() {
        return Err(SqlError::new(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                params.len(),
                types.len()
            ),
        ));
    }
    // A parameter compared with a numeric(p, s) column is inferred as its Decimal128.
    let inferred = plan.get_parameter_fields().unwrap_or_default();
    let mut values = Vec::with_capacity(params.len());
    for (i, value) in params.into_iter().enumerate() {
        let field = declared_fields.as_ref().and_then(|f| f.get(i));
        let inferred_decimal = inferred
            .get(&format!("${}", i + 1))
            .and_then(|f| f.as_ref())
            .map(|f| f.data_type().clone())
            .filter(|t| matches!(t, DataType::Decimal128(..)));
        let target = field
            .map(|f| f.data_type().clone())
            .or(inferred_decimal)
            .unwrap_or_else(|| types[i].to_arrow());
        let value = if value.data_type() == target {
            value
        } else if value.data_type() == DataType::Utf8
            && matches!(
                target,
                DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_)
            )
        {
            // Dates and times in text read as PostgreSQL reads them (`10:00` without seconds,
            // a zone-less timestamptz in the session's zone), not by Arrow's cast.
            let read = crate::datetime_udf::from_text(&value.to_array()?, &target, zone)?;
            let read = datafusion::arrow::compute::cast(&read, &target)?;
            ScalarValue::try_from_array(&read, 0)?
        } else if matches!(value.data_type(), DataType::LargeBinary)
            || matches!(target, DataType::LargeBinary)
        {
            let converted = crate::numeric::functions::convert(&value.to_array()?, &target)?;
            ScalarValue::try_from_array(&converted, 0)?
        } else {
            value.cast_to(&target)?
        };
        // Declared parameters carry their PostgreSQL type tag (uuid, varchar, …) as metadata.
        let metadata = field
            .filter(|f| !f.metadata().is_empty())
            .map(|f| FieldMetadata::new_from_field(f));
        values.push(ScalarAndMetadata::new(value, metadata));
    }
    // A Prepare node checks every declared parameter; a plain plan just substitutes.
    let param_values = ParamValues::List(values);
    match plan {
        LogicalPlan::Statement(PlanStatement::Prepare(prepare))
            if prepare.fields.len() < types.len() =>
        {
            let input = Arc::unwrap_or_clone(prepare.input);
            Ok(input.replace_params_with_values(&param_values)?)
        }
        plan => Ok(plan.with_param_values(param_values)?),
    }
}

fn query_plan_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        DataType::Utf8,
        true,
    )]))
}

fn show_all_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("setting", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
    ]))
}

/// A row stream of text columns given column-wise.
fn text_rows(schema: SchemaRef, columns: Vec<Vec<String>>) -> RowStream {
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays);
    let batch = batch.map_err(datafusion::error::DataFusionError::from);
    RowStream {
        schema: schema.clone(),
        stream: Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream::iter(vec![batch]),
        )),
    }
}

/// Adds the ids of the Floe tables `plan` scans (subqueries included) to `tables`.
pub(crate) fn scanned_tables(plan: &LogicalPlan, tables: &mut Vec<u32>) {
    use datafusion::common::tree_node::TreeNodeRecursion;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source) {
                if let Some(table) = provider.downcast_ref::<floe_storage::FloeTable>() {
                    tables.push(table.data().def.id);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
}

/// `rows` with `pending` in scope whenever the stream is polled.
fn with_pending_rows(rows: RowStream, pending: Arc<PendingCatalog>) -> RowStream {
    let mut inner = rows.stream;
    let schema = inner.schema();
    let stream = futures::stream::poll_fn(move |cx| {
        floe_storage::sync_with_pending_catalog(pending.clone(), || {
            futures::Stream::poll_next(inner.as_mut(), cx)
        })
    });
    RowStream {
        schema: rows.schema,
        stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
    }
}

impl crate::pg_catalog::CatalogContext for Session {
    fn db(&self) -> &Arc<floe_storage::Db> {
        Session::db(self)
    }

    fn database(&self) -> &str {
        Session::database(self)
    }

    fn search_path(&self) -> Vec<String> {
        Session::search_path(self)
    }

    fn relation_path(&self) -> Vec<String> {
        Session::relation_path(self)
    }

    fn vars(&self) -> &SessionVars {
        Session::vars(self)
    }

    fn temp_schema(&self) -> Option<String> {
        Session::temp_schema(self)
    }
}

//! The per-connection protocol handlers: startup, simple query, extended query, errors.
//!
//! One [`Connection`] exists per client socket and owns that client's [`Session`]. pgwire
//! processes a connection's messages one at a time, so the session lock is never contended;
//! it exists because pgwire's handler traits take `&self`.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use floe_sql::{
    sqlstate, Engine, Notice, Prepared, RowStream, Session, SqlError, SqlType, StatementResult,
    TxnStatus,
};
use futures::sink::{Sink, SinkExt};
use futures::stream::{self, StreamExt};
use pgwire::api::auth::{
    protocol_negotiation, save_startup_parameters_to_metadata, StartupHandler,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse,
    Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, PgWireConnectionState, PgWireServerHandlers, Type,
    DEFAULT_NAME,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyInResponse, CopyOutResponse};
use pgwire::messages::data::{DataRow, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, Sync as PgSync,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, NoticeResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{
    Authentication, BackendKeyData, ParameterStatus, SecretKey, Startup,
};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::cancel::{CancelReason, ConnControl, Registration, Registry};
use crate::deferred::Deferred;
use crate::encode::{self, RowEncoder};
use crate::params;

/// Limits and settings shared by all connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Connections beyond this get FATAL 53300 at startup.
    pub(crate) max_connections: usize,
}

/// What a simple query leaves the connection doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Ready for the next query.
    Continue,
    /// Waiting for COPY data.
    CopyIn,
}

/// Session state shared between a connection's handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) session: Mutex<Option<Session>>,
    /// Text output options of the session, refreshed after utility statements.
    /// With the [`SessionVars::stamp`](floe_sql::vars::SessionVars::stamp) it was derived from.
    format: StdMutex<(Option<u64>, Arc<FormatOptions>)>,
    /// COPY FROM STDIN data received and not yet handed to the session (see
    /// [`crate::copy`]).
    copy_pending: StdMutex<crate::copy::CopyPending>,
    /// Field descriptions built lately, by result schema and format (see [`FieldsCache`]).
    fields: StdMutex<FieldsCache>,
}

/// The field descriptions of the result shapes a connection described last. A prepared
/// statement executed again (pgbench, any driver's cached statements) describes the same
/// schema (the same `Arc`) in the same format each time: its descriptions are built once,
/// not at every Describe and Execute.
#[derive(Debug, Default)]
struct FieldsCache {
    entries: Vec<FieldsEntry>,
}

#[derive(Debug)]
struct FieldsEntry {
    /// Held so the pointer compared stays this schema's.
    schema: Arc<Schema>,
    format: Format,
    options: Arc<FormatOptions>,
    fields: Arc<Vec<FieldInfo>>,
}

/// Result shapes remembered per connection.
const FIELDS_CACHED: usize = 4;

fn same_format(a: &Format, b: &Format) -> bool {
    match (a, b) {
        (Format::UnifiedText, Format::UnifiedText)
        | (Format::UnifiedBinary, Format::UnifiedBinary) => true,
        (Format::Individual(a), Format::Individual(b)) => a == b,
        _ => false,
    }
}

impl Shared {
    /// The field descriptions of results of `schema` in `format`, with the session's output
    /// options (cached: see [`FieldsCache`]).
    fn fields(&self, schema: &Arc<Schema>, format: &Format) -> Arc<Vec<FieldInfo>> {
        let options = self.format();
        let mut cache = self.fields.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = cache.entries.iter().find(|e| {
            Arc::ptr_eq(&e.schema, schema)
                && Arc::ptr_eq(&e.options, &options)
                && same_format(&e.format, format)
        }) {
            return entry.fields.clone();
        }
        let fields = Arc::new(encode::field_infos(schema, format, &options));
        if cache.entries.len() >= FIELDS_CACHED {
            cache.entries.remove(0);
        }
        cache.entries.push(FieldsEntry {
            schema: schema.clone(),
            format: format.clone(),
            options,
            fields: fields.clone(),
        });
        fields
    }

    /// The COPY data collected and not yet given to the session.
    pub(crate) fn copy_pending(&self) -> std::sync::MutexGuard<'_, crate::copy::CopyPending> {
        self.copy_pending.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn format(&self) -> Arc<FormatOptions> {
        self.format
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn refresh_format(&self, session: &Session) {
        let stamp = session.vars().stamp();
        let mut format = self.format.lock().unwrap_or_else(|e| e.into_inner());
        if format.0 != Some(stamp) {
            *format = (Some(stamp), encode::format_options(session.vars()));
        }
    }
}

/// One client connection's handlers.
#[derive(Debug)]
pub(crate) struct Connection {
    engine: Arc<Engine>,
    registry: Arc<Registry>,
    limits: ConnectionLimits,
    pub(crate) shared: Arc<Shared>,
    parser: Arc<FloeQueryParser>,
    registration: OnceLock<Registration>,
}

impl Connection {
    pub(crate) fn new(
        engine: Arc<Engine>,
        registry: Arc<Registry>,
        limits: ConnectionLimits,
    ) -> Arc<Connection> {
        let shared = Arc::new(Shared {
            session: Mutex::new(None),
            format: StdMutex::new((None, Arc::new(FormatOptions::default()))),
            copy_pending: StdMutex::new(Default::default()),
            fields: StdMutex::new(FieldsCache::default()),
        });
        Arc::new(Connection {
            engine,
            registry,
            limits,
            parser: Arc::new(FloeQueryParser {
                shared: shared.clone(),
            }),
            shared,
            registration: OnceLock::new(),
        })
    }

    /// The connection's control block, once startup completed.
    pub(crate) fn control(&self) -> Option<&Arc<ConnControl>> {
        self.registration.get().map(|r| r.control())
    }

    /// `idle_in_transaction_session_timeout` as it applies now: `Some(timeout)` while the
    /// session sits in a transaction block (open or failed) between statements with the
    /// setting on; `None` otherwise (or while a statement holds the session).
    pub(crate) fn idle_in_transaction_timeout(&self) -> Option<Duration> {
        let session = self.shared.session.try_lock().ok()?;
        let session = session.as_ref()?;
        if session.txn_status() == TxnStatus::Idle {
            return None;
        }
        session.vars().idle_in_transaction_timeout()
    }
}

/// The handler set pgwire asks for; every role is played by the one [`Connection`].
pub(crate) struct Handlers {
    pub(crate) conn: Arc<Connection>,
    pub(crate) cancel: Arc<FloeCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.conn.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.conn.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.conn.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.conn.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.conn.clone()
    }
}

/// Answers CancelRequests by backend key.
#[derive(Debug)]
pub(crate) struct FloeCancelHandler {
    pub(crate) registry: Arc<Registry>,
}

#[async_trait]
impl CancelHandler for FloeCancelHandler {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let secret = match &request.secret_key {
            SecretKey::I32(s) => Some(*s),
            SecretKey::Bytes(b) if b.len() == 4 => {
                Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            SecretKey::Bytes(_) => None,
        };
        let matched = secret.is_some_and(|s| self.registry.cancel(request.pid, s));
        tracing::debug!(pid = request.pid, matched, "cancel request");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An ErrorResponse's (or NoticeResponse's) fields: severity, also non-localized (`V`, which
/// clients read to tell errors apart whatever the server's language), SQLSTATE and message.
fn error_fields(severity: String, code: String, message: String) -> ErrorInfo {
    let mut info = ErrorInfo::new(severity.clone(), code, message);
    info.severity_nonlocalized = Some(severity);
    info
}

/// The ErrorResponse fields for a SQL error.
pub(crate) fn error_info(err: &SqlError) -> ErrorInfo {
    let mut info = error_fields(
        if err.code == sqlstate::ADMIN_SHUTDOWN {
            "FATAL".to_owned()
        } else {
            "ERROR".to_owned()
        },
        err.code.to_owned(),
        err.message.clone(),
    );
    info.detail = err.detail.clone();
    info.hint = err.hint.clone();
    info.position = err.position.map(|p| p.to_string());
    info.where_context = err.context.as_deref().map(str::to_owned);
    info
}

pub(crate) fn user_error(err: SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&err)))
}

fn fatal(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(error_fields(
        "FATAL".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// Why a simple-protocol statement stopped.
enum Failure {
    /// The statement failed: report it and carry on with the connection.
    Statement(Box<ErrorInfo>),
    /// The connection itself failed (I/O): stop.
    Connection(PgWireError),
}

impl From<SqlError> for Failure {
    fn from(err: SqlError) -> Self {
        Failure::Statement(Box::new(error_info(&err)))
    }
}

/// Errors from encoding values are statement errors; errors writing to the socket are not.
fn classify(err: PgWireError) -> Failure {
    match err {
        PgWireError::IoError(_) => Failure::Connection(err),
        other => {
            let mut info: ErrorInfo = other.into();
            info.severity_nonlocalized = Some(info.severity.clone());
            Failure::Statement(Box::new(info))
        }
    }
}

/// An unknown portal is PostgreSQL's 34000 (pgwire says 26000, the code for statements).
fn unknown_portal(err: PgWireError) -> PgWireError {
    match err {
        PgWireError::PortalNotFound(name) => PgWireError::UserError(Box::new(error_fields(
            "ERROR".to_owned(),
            sqlstate::INVALID_CURSOR_NAME.to_owned(),
            format!("portal \"{name}\" does not exist"),
        ))),
        other => other,
    }
}

pub(crate) fn txn_status(status: TxnStatus) -> TransactionStatus {
    match status {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InBlock => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    }
}

fn not_started() -> PgWireError {
    fatal(
        sqlstate::PROTOCOL_VIOLATION,
        "connection startup is not complete",
    )
}

// ---------------------------------------------------------------------------------------------
// Cancellation and statement_timeout

/// Stops a statement on a CancelRequest, on `statement_timeout`, or at shutdown.
#[derive(Clone)]
struct Cancellation {
    control: Option<Arc<ConnControl>>,
    deadline: Option<Instant>,
}

impl Cancellation {
    fn new(control: Option<Arc<ConnControl>>, timeout_ms: u64) -> Cancellation {
        Cancellation {
            control,
            deadline: (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms)),
        }
    }

    /// Runs `fut` unless the statement is cancelled first. A panic inside it (a bug, in Floe
    /// or a library it calls) fails the statement with XX000 instead of dropping the
    /// connection: every statement's work and every batch it streams runs through here.
    async fn run<F: Future>(&self, fut: F) -> Result<F::Output, SqlError> {
        let fut = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut));
        let cancelled = async {
            match &self.control {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let timeout = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            out = fut => out.map_err(panic_error),
            reason = cancelled => Err(match reason {
                CancelReason::User => SqlError::query_canceled(),
                CancelReason::Shutdown => SqlError::new(
                    sqlstate::ADMIN_SHUTDOWN,
                    "terminating connection due to administrator command",
                ),
            }),
            _ = timeout => Err(SqlError::new(
                sqlstate::QUERY_CANCELED,
                "canceling statement due to statement timeout",
            )),
        }
    }
}

/// The error a statement that panicked fails with; the panic is logged as the bug it is.
fn panic_error(panic: Box<dyn std::any::Any + Send>) -> SqlError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %message, "statement panicked");
    SqlError::internal(format!("internal error: {message}"))
}

// ---------------------------------------------------------------------------------------------
// Messages shared by both protocols

async fn send_notices<C>(client: &mut C, notices: Vec<Notice>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<C::Error>,
{
    for notice in notices {
        let info = error_fields(
            notice.severity.to_owned(),
            notice.code.to_owned(),
            notice.message,
        );
        client
            .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                info,
            )))
            .await?;
    }
    Ok(())
}

async fn send_parameter_changes<C>(client: &mut C, session: &mut Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<C::Error>,
{
    for (name, value) in session.take_parameter_changes() {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    Ok(())
}

/// Turns a DataFusion batch stream into a DataRow stream that honours cancellation.
fn row_stream(
    rows: RowStream,
    fields: Arc<Vec<FieldInfo>>,
    cancel: Cancellation,
) -> impl futures::Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let encoder = RowEncoder::new(&rows.schema, fields);
    let state = (
        rows.stream,
        encoder,
        Vec::<DataRow>::new().into_iter(),
        cancel,
        false,
    );
    stream::unfold(
        state,
        |(mut batches, mut encoder, mut pending, cancel, done)| async move {
            if done {
                return None;
            }
            loop {
                if let Some(row) = pending.next() {
                    return Some((Ok(row), (batches, encoder, pending, cancel, false)));
                }
                let next = match cancel.run(batches.next()).await {
                    Ok(next) => next,
                    Err(e) => {
                        return Some((
                            Err(user_error(e)),
                            (batches, encoder, pending, cancel, true),
                        ))
                    }
                };
                match next {
                    None => return None,
                    Some(Err(e)) => {
                        let e = user_error(SqlError::from(e));
                        return Some((Err(e), (batches, encoder, pending, cancel, true)));
                    }
                    Some(Ok(batch)) => {
                        let mut out = Vec::with_capacity(batch.num_rows());
                        if let Err(e) = encoder.encode(&batch, &mut out) {
                            return Some((Err(e), (batches, encoder, pending, cancel, true)));
                        }
                        pending = out.into_iter();
                    }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Startup

/// `options` from the startup packet: `-c name=value` and `--name=value` pairs.
fn startup_options(options: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next()
        } else if let Some(rest) = word.strip_prefix("-c") {
            Some(rest)
        } else {
            word.strip_prefix("--")
        };
        if let Some((name, value)) = setting.and_then(|s| s.split_once('=')) {
            out.push((name.replace('-', "_"), value.to_string()));
        }
    }
    out
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let PgWireFrontendMessage::Startup(startup) = message else {
            return Err(fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "expected a startup message",
            ));
        };
        match self.start(client, &startup).await {
            // PostgreSQL's last word to a refused login is the FATAL error; pgwire would follow
            // it with a ReadyForQuery. Sent and closed here, the connection is then done.
            Err(PgWireError::UserError(info)) if info.is_fatal() => {
                client
                    .send(PgWireBackendMessage::ErrorResponse((*info).into()))
                    .await?;
                client.close().await?;
                Err(PgWireError::IoError(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "login refused",
                )))
            }
            other => other,
        }
    }
}

impl Connection {
    async fn start<C>(&self, client: &mut C, startup: &Startup) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        protocol_negotiation(client, startup).await?;
        save_startup_parameters_to_metadata(client, startup);
        let params = &startup.parameters;
        let user = match params.get("user").filter(|u| !u.is_empty()) {
            Some(u) => u.clone(),
            None => {
                return Err(fatal(
                    sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                    "no PostgreSQL user name specified in startup packet",
                ))
            }
        };
        let database = params
            .get("database")
            .filter(|d| !d.is_empty())
            .cloned()
            .unwrap_or_else(|| user.clone());
        if *self.registry.shutdown_signal().borrow() {
            return Err(fatal("57P03", "the database system is shutting down"));
        }
        if self.registry.connection_count() > self.limits.max_connections {
            return Err(fatal("53300", "sorry, too many clients already"));
        }
        let options = params
            .get("options")
            .map(|o| startup_options(o))
            .unwrap_or_default();
        let settings = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let session = self
            .engine
            .new_session(&user, &database, settings)
            .map_err(|e| fatal(e.code, e.message))?;
        let registration = self.registry.register(session.backend_pid());
        let pid = session.backend_pid();
        let secret = registration.secret();
        client.set_pid_and_secret_key(pid, SecretKey::I32(secret));
        let _ = self.registration.set(registration);

        client
            .feed(PgWireBackendMessage::Authentication(Authentication::Ok))
            .await?;
        for (name, value) in session.vars().reported() {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name, value,
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                pid,
                SecretKey::I32(secret),
            )))
            .await?;
        self.shared.refresh_format(&session);
        *self.shared.session.lock().await = Some(session);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        tracing::debug!(%user, %database, pid, "session started");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Simple query protocol

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let mut guard = self.shared.session.lock().await;
        let session = guard.as_mut().ok_or_else(not_started)?;
        let control = self.control().cloned();
        if let Some(c) = &control {
            c.begin();
        }
        let outcome = self
            .simple_query(client, session, &query.query, &control)
            .await;
        if let Some(c) = &control {
            c.end();
        }
        let mut fatal_error = None;
        match outcome {
            Ok(Flow::CopyIn) => {
                // The client sends CopyData next; the copy handler finishes the statement
                // and pgwire sends ReadyForQuery after CopyDone.
                client.set_transaction_status(txn_status(session.txn_status()));
                client.set_state(PgWireConnectionState::CopyInProgress(false));
                client.flush().await?;
                return Ok(());
            }
            Ok(Flow::Continue) => {}
            Err(Failure::Connection(e)) => return Err(e),
            Err(Failure::Statement(info)) => {
                session.on_statement_error();
                send_notices(client, session.take_notices()).await?;
                if info.is_fatal() {
                    fatal_error = Some(info.message.clone());
                }
                client
                    .feed(PgWireBackendMessage::ErrorResponse((*info).into()))
                    .await?;
            }
        }
        if let Some(message) = fatal_error {
            client.flush().await?;
            client.close().await?;
            return Err(PgWireError::IoError(std::io::Error::other(message)));
        }
        send_parameter_changes(client, session).await?;
        let status = txn_status(session.txn_status());
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // `on_query` is overridden and never calls this.
        Err(user_error(SqlError::internal(
            "unexpected simple query path",
        )))
    }
}

impl Connection {
    /// Text-format field descriptions of a result (simple protocol and COPY output).
    fn text_fields(&self, schema: &Arc<Schema>) -> Arc<Vec<FieldInfo>> {
        self.shared.fields(schema, &Format::UnifiedText)
    }

    /// Runs each statement of a simple Query message, streaming its results.
    async fn simple_query<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        sql: &str,
        control: &Option<Arc<ConnControl>>,
    ) -> Result<Flow, Failure>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<C::Error>,
    {
        let timeout = session.vars().statement_timeout_ms();
        if let Some(prepared) = session.cached_statement(sql) {
            let cancel = Cancellation::new(control.clone(), timeout);
            return self
                .run_statement(client, session, &prepared, &cancel)
                .await;
        }
        let statements = session.parse(sql)?;
        if statements.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await
                .map_err(|e| Failure::Connection(e.into()))?;
            return Ok(Flow::Continue);
        }
        let count = statements.len();
        if count == 1 {
            let statement = statements.into_iter().next();
            let cancel = Cancellation::new(control.clone(), timeout);
            let prepared = Arc::new(cancel.run(session.prepare(statement, &[])).await??);
            session.cache_statement(sql, prepared.clone());
            return self
                .run_statement(client, session, &prepared, &cancel)
                .await;
        }
        // Several statements run as one implicit transaction, as in PostgreSQL.
        let outcome = self
            .run_statements(client, session, statements, control)
            .await;
        match &outcome {
            Ok(Flow::Continue) => session.end_implicit(true).await?,
            // COPY's end (CopyDone or CopyFail) ends the block.
            Ok(Flow::CopyIn) => {}
            Err(_) => session.abort_implicit(),
        }
        outcome
    }

    /// Runs the statements of a multi-statement simple Query in order, stopping at the first
    /// error.
    async fn run_statements<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        statements: Vec<floe_sql::datafusion::sql::sqlparser::ast::Statement>,
        control: &Option<Arc<ConnControl>>,
    ) -> Result<Flow, Failure>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<C::Error>,
    {
        let count = statements.len();
        for (i, statement) in statements.into_iter().enumerate() {
            // Also after a COMMIT or ROLLBACK in the string: what follows is a new one.
            session.begin_implicit()?;
            let cancel = Cancellation::new(control.clone(), session.vars().statement_timeout_ms());
            let prepared = Arc::new(cancel.run(session.prepare(Some(statement), &[])).await??);
            let flow = self
                .run_statement(client, session, &prepared, &cancel)
                .await?;
            if flow == Flow::CopyIn {
                if i + 1 < count {
                    return Err(SqlError::not_supported(
                        "COPY FROM STDIN must be the last statement of a query string",
                    )
                    .into());
                }
                return Ok(Flow::CopyIn);
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs one prepared statement of a simple query ([`Connection::run_prepared`]) and ends
    /// it ([`Session::finish_statement`]), sending the notices its functions left.
    async fn run_statement<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        prepared: &Prepared,
        cancel: &Cancellation,
    ) -> Result<Flow, Failure>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<C::Error>,
    {
        let outcome = self.run_prepared(client, session, prepared, cancel).await;
        session.finish_statement(outcome.is_ok());
        if outcome.is_ok() {
            // On failure they go out with the error.
            send_notices(client, session.take_notices())
                .await
                .map_err(Failure::Connection)?;
        }
        outcome
    }

    /// Executes one prepared statement of a simple query and sends its results.
    async fn run_prepared<C>(
        &self,
        client: &mut C,
        session: &mut Session,
        prepared: &Prepared,
        cancel: &Cancellation,
    ) -> Result<Flow, Failure>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<C::Error>,
    {
        let result = cancel.run(session.execute(prepared, vec![])).await??;
        send_notices(client, session.take_notices())
            .await
            .map_err(Failure::Connection)?;
        match result {
            StatementResult::Rows { rows, tag } => {
                self.send_rows(client, rows, tag, cancel).await?;
            }
            StatementResult::Command(tag) => {
                self.shared.refresh_format(session);
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        tag,
                    )))
                    .await
                    .map_err(|e| Failure::Connection(e.into()))?;
            }
            StatementResult::Empty => {
                client
                    .feed(PgWireBackendMessage::EmptyQueryResponse(
                        EmptyQueryResponse::new(),
                    ))
                    .await
                    .map_err(|e| Failure::Connection(e.into()))?;
            }
            StatementResult::CopyIn { columns } => {
                // Nothing left over from a COPY the client abandoned.
                *self.shared.copy_pending() = Default::default();
                let response = CopyInResponse::new(0, columns as i16, vec![0; columns]);
                client
                    .feed(PgWireBackendMessage::CopyInResponse(response))
                    .await
                    .map_err(|e| Failure::Connection(e.into()))?;
                return Ok(Flow::CopyIn);
            }
            StatementResult::CopyOut { rows, options } => {
                self.send_copy_out(client, rows, &options, cancel).await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// COPY TO STDOUT: CopyOutResponse, one CopyData per row, CopyDone, `COPY n`.
    async fn send_copy_out<C>(
        &self,
        client: &mut C,
        rows: RowStream,
        options: &floe_sql::copy::CopyOptions,
        cancel: &Cancellation,
    ) -> Result<(), Failure>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<C::Error>,
    {
        let wire = |e: C::Error| Failure::Connection(e.into());
        let fields = self.text_fields(&rows.schema);
        let columns = fields.len();
        client
            .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                0,
                columns as i16,
                vec![0; columns],
            )))
            .await
            .map_err(wire)?;
        let mut encoder = RowEncoder::new(&rows.schema, fields);
        let mut batches = rows.stream;
        let mut count = 0usize;
        let mut buffer = Vec::new();
        while let Some(batch) = cancel.run(batches.next()).await? {
            let batch = batch.map_err(SqlError::from)?;
            encoder.encode(&batch, &mut buffer).map_err(classify)?;
            for data in crate::copy::copy_data(&buffer, options) {
                client
                    .feed(PgWireBackendMessage::CopyData(data))
                    .await
                    .map_err(wire)?;
                count += 1;
            }
            buffer.clear();
        }
        client
            .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
            .await
            .map_err(wire)?;
        client
            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                format!("COPY {count}"),
            )))
            .await
            .map_err(wire)?;
        Ok(())
    }

    async fn send_rows<C>(
        &self,
        client: &mut C,
        rows: RowStream,
        tag: &str,
        cancel: &Cancellation,
    ) -> Result<(), Failure>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<C::Error>,
    {
        let wire = |e: C::Error| Failure::Connection(e.into());
        let fields = self.text_fields(&rows.schema);
        let description = RowDescription::new(fields.iter().map(Into::into).collect());
        client
            .feed(PgWireBackendMessage::RowDescription(description))
            .await
            .map_err(wire)?;
        let mut encoder = RowEncoder::new(&rows.schema, fields);
        let mut batches = rows.stream;
        let mut count = 0usize;
        let mut buffer = Vec::new();
        while let Some(batch) = cancel.run(batches.next()).await? {
            let batch = batch.map_err(SqlError::from)?;
            encoder.encode(&batch, &mut buffer).map_err(classify)?;
            for row in buffer.drain(..) {
                client
                    .feed(PgWireBackendMessage::DataRow(row))
                    .await
                    .map_err(wire)?;
                count += 1;
            }
        }
        // Row-returning DML (RETURNING) reports its row count like SELECT.
        let tag = if matches!(tag, "SELECT" | "INSERT 0" | "UPDATE" | "DELETE") {
            format!("{tag} {count}")
        } else {
            tag.to_string()
        };
        client
            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await
            .map_err(wire)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Extended query protocol

/// Prepares statements for Parse messages.
#[derive(Debug)]
pub(crate) struct FloeQueryParser {
    shared: Arc<Shared>,
}

impl Shared {
    /// The field descriptions of a statement's results, for Describe.
    fn result_fields(&self, schema: Option<&Arc<Schema>>, format: &Format) -> Vec<FieldInfo> {
        match schema {
            Some(schema) => self.fields(schema, format).as_ref().clone(),
            None => Vec::new(),
        }
    }
}

#[async_trait]
impl QueryParser for FloeQueryParser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut guard = self.shared.session.lock().await;
        let session = guard.as_mut().ok_or_else(not_started)?;
        // Clients that leave parameter types open re-send the same text: reuse its plan.
        let open_types = types.iter().all(|t| t.is_none());
        if open_types {
            if let Some(prepared) = session.cached_statement(sql) {
                return Ok(Some(prepared));
            }
        }
        let mut statements = session.parse(sql).map_err(user_error)?;
        if statements.len() > 1 {
            return Err(user_error(SqlError::syntax(
                "cannot insert multiple commands into a prepared statement",
            )));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let declared: Vec<SqlType> = types
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|t| SqlType::from_oid(t.oid()))
                    .unwrap_or(SqlType::Unknown)
            })
            .collect();
        let prepared = Arc::new(
            session
                .prepare(Some(statement), &declared)
                .await
                .map_err(user_error)?,
        );
        if open_types {
            session.cache_statement(sql, prepared.clone());
        }
        Ok(Some(prepared))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.iter().map(encode::pg_type).collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(self.shared.result_fields(
            stmt.result_schema.as_ref(),
            column_format.unwrap_or(&Format::UnifiedText),
        ))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Arc<Prepared>;
    type QueryParser = FloeQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.clone().unwrap_or_default();
        if !name.is_empty() && client.portal_store().get_statement(&name).is_some() {
            return Err(user_error(SqlError::new(
                sqlstate::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            )));
        }
        let parser = self.query_parser();
        match StoredStatement::parse(client, &message, parser).await? {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client
                .portal_store()
                .put_empty_statement(message.name.as_deref().unwrap_or(DEFAULT_NAME)),
        }
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// Like pgwire's default, but BindComplete is only queued: the reply goes out with the
    /// rest at Sync (or Flush), as PostgreSQL does. A flush per message would cost a segment
    /// and a client wake-up each, for every execution of a prepared statement.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        match client.portal_store().get_statement(statement_name) {
            Some(Entry::Value(statement)) => {
                let portal = Portal::try_new(&message, statement)?;
                client.portal_store().put_portal(Arc::new(portal));
            }
            Some(Entry::Empty) => {
                if !message.parameters.is_empty() {
                    return Err(user_error(SqlError::new(
                        sqlstate::PROTOCOL_VIOLATION,
                        format!(
                            "bind message supplies {} parameters, but prepared statement \"{}\" requires 0",
                            message.parameters.len(),
                            message.statement_name.as_deref().unwrap_or("")
                        ),
                    )));
                }
                client.portal_store().put_empty_portal(portal_name);
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        }
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let control = self.control().cloned();
        if let Some(c) = &control {
            c.begin();
        }
        // Replies are queued, not flushed: they go out with ReadyForQuery at Sync.
        let result = self
            ._on_execute(&mut Deferred(client), message)
            .await
            .map_err(unknown_portal);
        if let Some(c) = &control {
            c.end();
        }
        if result.is_ok() && matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
            // The client sends no more messages until it has seen CopyInResponse.
            client.flush().await?;
        }
        let mut guard = self.shared.session.lock().await;
        if let Some(session) = guard.as_mut() {
            if result.is_err() {
                session.on_statement_error();
            }
            // Its notices go out at Sync.
            session.finish_statement(result.is_ok());
            client.set_transaction_status(txn_status(session.txn_status()));
        }
        result
    }

    /// Like pgwire's default, but the description is queued for Sync (see [`Deferred`]).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // A query with no columns (`SELECT FROM t`) still returns rows: PostgreSQL describes
        // it with an empty RowDescription, where pgwire would send NoData (and the client
        // would then refuse the DataRows).
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let zero_columns = |p: &Prepared| {
            p.result_schema
                .as_ref()
                .is_some_and(|s| s.fields().is_empty())
        };
        let zero = match message.target_type {
            b'S' => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) if zero_columns(&stmt.statement) => Some(Some(
                    stmt.statement
                        .param_types
                        .iter()
                        .map(|t| encode::pg_type(t).oid())
                        .collect::<Vec<u32>>(),
                )),
                _ => None,
            },
            b'P' => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) if zero_columns(&portal.statement.statement) => {
                    Some(None)
                }
                _ => None,
            },
            _ => None,
        };
        let mut client = Deferred(client);
        if let Some(params) = zero {
            if let Some(types) = params {
                client
                    .send(PgWireBackendMessage::ParameterDescription(
                        pgwire::messages::data::ParameterDescription::new(types),
                    ))
                    .await?;
            }
            client
                .send(PgWireBackendMessage::RowDescription(RowDescription::new(
                    Vec::new(),
                )))
                .await?;
            return Ok(());
        }
        self._on_describe(&mut client, message)
            .await
            .map_err(unknown_portal)
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.portal_store().rm_portal(DEFAULT_NAME);
        let mut guard = self.shared.session.lock().await;
        let status = match guard.as_mut() {
            Some(session) => {
                send_notices(client, session.take_notices()).await?;
                send_parameter_changes(client, session).await?;
                txn_status(session.txn_status())
            }
            None => TransactionStatus::Idle,
        };
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &target.statement;
        let params = prepared.param_types.iter().map(encode::pg_type).collect();
        let fields = self
            .shared
            .result_fields(prepared.result_schema.as_ref(), &Format::UnifiedText);
        Ok(DescribeStatementResponse::new(params, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &target.statement.statement;
        Ok(DescribePortalResponse::new(self.shared.result_fields(
            prepared.result_schema.as_ref(),
            &target.result_column_format,
        )))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = portal.statement.statement.clone();
        let mut guard = self.shared.session.lock().await;
        let session = guard.as_mut().ok_or_else(not_started)?;
        let values = params::decode(
            &portal.parameters,
            &portal.parameter_format,
            &prepared.param_types,
        )
        .map_err(user_error)?;
        let cancel = Cancellation::new(
            self.control().cloned(),
            session.vars().statement_timeout_ms(),
        );
        let result = cancel
            .run(session.execute(&prepared, values))
            .await
            .map_err(user_error)?
            .map_err(user_error)?;
        send_notices(client, session.take_notices()).await?;
        match result {
            StatementResult::Rows { rows, tag } => {
                let fields = self
                    .shared
                    .fields(&rows.schema, &portal.result_column_format);
                let mut response =
                    QueryResponse::new(fields.clone(), row_stream(rows, fields, cancel));
                response.set_command_tag(tag);
                Ok(Response::Query(response))
            }
            StatementResult::Command(tag) => {
                self.shared.refresh_format(session);
                Ok(Response::Execution(Tag::new(&tag)))
            }
            StatementResult::Empty => Ok(Response::EmptyQuery),
            StatementResult::CopyIn { columns } => {
                *self.shared.copy_pending() = Default::default();
                Ok(Response::CopyIn(CopyResponse::new(
                    0,
                    columns,
                    stream::empty(),
                )))
            }
            StatementResult::CopyOut { rows, options } => {
                let fields = self.text_fields(&rows.schema);
                let columns = fields.len();
                let mut encoder = RowEncoder::new(&rows.schema, fields);
                let data = rows.stream.flat_map(move |batch| {
                    let mut buffer = Vec::new();
                    let encoded = batch
                        .map_err(|e| user_error(SqlError::from(e)))
                        .and_then(|batch| encoder.encode(&batch, &mut buffer));
                    let items: Vec<PgWireResult<CopyData>> = match encoded {
                        Ok(()) => crate::copy::copy_data(&buffer, &options)
                            .into_iter()
                            .map(Ok)
                            .collect(),
                        Err(e) => vec![Err(e)],
                    };
                    stream::iter(items)
                });
                Ok(Response::CopyOut(CopyResponse::new(0, columns, data)))
            }
        }
    }
}

impl ErrorHandler for Connection {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        // Any error inside a transaction block fails the block, as in PostgreSQL. Message
        // processing is sequential, so the session is free here.
        if let Ok(mut guard) = self.shared.session.try_lock() {
            if let Some(session) = guard.as_mut() {
                session.on_statement_error();
            }
        }
        tracing::debug!(error = %error, "statement error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_options_parse_like_libpq() {
        assert_eq!(
            startup_options("-c statement_timeout=5s --search-path=public -cTimeZone=UTC"),
            vec![
                ("statement_timeout".to_string(), "5s".to_string()),
                ("search_path".to_string(), "public".to_string()),
                ("TimeZone".to_string(), "UTC".to_string()),
            ]
        );
    }
}

//! The TCP listener: accepts clients, serves each on a thread of its own, shuts down
//! gracefully.
//!
//! Threads: each connection runs on its own OS thread with a single-threaded tokio runtime,
//! much as PostgreSQL runs a process per connection, while the listener and the partitions of
//! parallel query plans run on the server's shared multi-thread runtime
//! (`floe_sql::Engine::executor`). With every connection a task on the shared runtime, a
//! worker that found no task parked and was woken per burst of requests: with 8 pgbench
//! clients on 2 cores ~5% of the machine sat idle and select-only reached ~0.9× PostgreSQL's
//! rate. A blocked connection thread is woken by the kernel directly when its socket becomes
//! readable, and the scheduler shares the cores fairly: ~1.2× PostgreSQL's rate with a lower
//! p99 latency than PostgreSQL's. Polling readiness after every task on the shared runtime
//! (tokio's `event_interval(1)`) gained as much throughput but let a few connections
//! ping-pong while the others waited (4× PostgreSQL's p99). A thread whose client left waits
//! up to a minute for the next one (runtime included), so clients that connect per
//! transaction don't start a thread each time; at most `max_connections` threads wait so.
//!
//! Shutdown: stop accepting; each connection closes as soon as it is between statements;
//! statements still running after the grace period are cancelled (the client gets 57P01),
//! then the remaining sockets are closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use floe_sql::Engine;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::cancel::{CancelReason, Registry};
use crate::handler::{Connection, ConnectionLimits, FloeCancelHandler, Handlers};

/// Listener settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Maximum concurrent client connections.
    pub max_connections: usize,
    /// How long shutdown waits for running statements before cancelling them.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5432)),
            max_connections: 100,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// A bound Floe server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    engine: Arc<Engine>,
    registry: Arc<Registry>,
    config: ServerConfig,
    threads: Arc<ConnectionThreads>,
}

impl Server {
    /// Binds the listening socket.
    pub async fn bind(config: ServerConfig, engine: Arc<Engine>) -> io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server {
            listener,
            engine,
            registry: Registry::new(),
            threads: Arc::new(ConnectionThreads {
                max_idle: config.max_connections,
                ..ConnectionThreads::default()
            }),
            config,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> io::Result<()> {
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let engine = self.engine.clone();
                        let registry = self.registry.clone();
                        let limits = ConnectionLimits {
                            max_connections: self.config.max_connections,
                        };
                        let grace = self.config.shutdown_grace;
                        let client = Client { peer, engine, registry, limits, grace };
                        tasks.spawn(serve_on_thread(self.threads.clone(), socket, client));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = &mut shutdown => break,
            }
        }
        drop(self.listener);
        tracing::info!(
            connections = self.registry.connection_count(),
            "shutting down: waiting for running statements"
        );
        self.registry.begin_shutdown();
        let deadline = self.config.shutdown_grace + Duration::from_secs(5);
        if tokio::time::timeout(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing them");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Serves one client on a connection thread (see the module docs): an idle one if there is
/// one, else a new one. If no thread can be started (the process is at its thread limit), the
/// client is served on the shared runtime instead. Resolves when the connection has ended;
/// dropping it (shutdown gave up waiting) ends the connection at its next await point.
async fn serve_on_thread(threads: Arc<ConnectionThreads>, socket: TcpStream, client: Client) {
    let std_socket = match socket.into_std() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(peer = %client.peer, error = %e, "cannot hand a connection to a thread");
            return;
        }
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let job = Job {
        socket: std_socket,
        client,
        stop: stop_rx,
        done: done_tx,
    };
    if let Err(job) = threads.start(job) {
        let Job { socket, client, .. } = *job;
        tracing::warn!(peer = %client.peer, "no thread for a connection; serving it on the shared runtime");
        match TcpStream::from_std(socket) {
            Ok(socket) => serve_connection(socket, client).await,
            Err(e) => {
                tracing::warn!(peer = %client.peer, error = %e, "cannot register a connection")
            }
        }
        return;
    }
    // Held until the thread is done: dropping it (this future was dropped) stops the client.
    let _stop = stop_tx;
    let _ = done_rx.await;
}

/// What a connection needs besides its socket.
struct Client {
    peer: SocketAddr,
    engine: Arc<Engine>,
    registry: Arc<Registry>,
    limits: ConnectionLimits,
    grace: Duration,
}

/// One client handed to a connection thread.
struct Job {
    socket: std::net::TcpStream,
    client: Client,
    /// Resolves (its sender dropped) when the listener gives up on the connection.
    stop: tokio::sync::oneshot::Receiver<()>,
    /// Sent when the connection has ended.
    done: tokio::sync::oneshot::Sender<()>,
}

impl Job {
    async fn run(self) {
        let Job {
            socket,
            client,
            stop,
            done,
        } = self;
        match TcpStream::from_std(socket) {
            Ok(socket) => {
                tokio::select! {
                    _ = serve_connection(socket, client) => {}
                    _ = stop => {}
                }
            }
            Err(e) => {
                tracing::warn!(peer = %client.peer, error = %e, "cannot register a connection")
            }
        }
        let _ = done.send(());
    }
}

/// Connection threads, and the idle ones waiting for their next client. A thread (with its
/// runtime) outlives its connection by up to [`IDLE_THREAD_KEEP`], so clients that connect
/// per transaction do not pay for a new thread and runtime each time.
#[derive(Default)]
struct ConnectionThreads {
    idle: std::sync::Mutex<Vec<IdleThread>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Idle threads beyond this many exit at once (`max_connections`).
    max_idle: usize,
}

/// An idle connection thread: its id and where to send its next client.
type IdleThread = (u64, std::sync::mpsc::SyncSender<Box<Job>>);

/// How long a connection thread waits for its next client before it exits.
const IDLE_THREAD_KEEP: Duration = Duration::from_secs(60);

/// Stack reserved for each connection's thread. Planning deep expressions recurses deeply in
/// DataFusion (see the server's runtime in `floe`): the space is reserved, not committed.
const CONNECTION_STACK: usize = 64 << 20;

impl std::fmt::Debug for ConnectionThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionThreads")
            .field("idle", &self.idle_list().len())
            .finish()
    }
}

impl ConnectionThreads {
    /// The idle threads (a panic elsewhere cannot leave the list half-changed: every change
    /// is one push or remove).
    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<IdleThread>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `job` to an idle thread or a new one; gives it back if no thread can be started.
    fn start(self: &Arc<Self>, mut job: Job) -> Result<(), Box<Job>> {
        loop {
            let idle = self.idle_list().pop();
            let Some((_, sender)) = idle else {
                break;
            };
            match sender.send(Box::new(job)) {
                Ok(()) => return Ok(()),
                // That thread is gone: try the next.
                Err(std::sync::mpsc::SendError(back)) => job = *back,
            }
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let threads = self.clone();
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Box<Job>>(1);
        let thread_sender = sender.clone();
        let spawned = std::thread::Builder::new()
            .name("floe-conn".into())
            .stack_size(CONNECTION_STACK)
            .spawn(move || threads.thread_main(id, thread_sender, receiver));
        match spawned {
            Ok(_) => {
                // The channel has room for one job and the thread holds its receiver.
                let _ = sender.send(Box::new(job));
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a connection thread");
                Err(Box::new(job))
            }
        }
    }

    fn thread_main(
        &self,
        id: u64,
        sender: std::sync::mpsc::SyncSender<Box<Job>>,
        receiver: std::sync::mpsc::Receiver<Box<Job>>,
    ) {
        let Ok(mut job) = receiver.recv() else {
            return;
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(peer = %job.client.peer, error = %e, "cannot start a connection's runtime");
                return;
            }
        };
        loop {
            runtime.block_on(job.run());
            {
                let mut idle = self.idle_list();
                if idle.len() >= self.max_idle {
                    return;
                }
                idle.push((id, sender.clone()));
            }
            job = match receiver.recv_timeout(IDLE_THREAD_KEEP) {
                Ok(next) => next,
                Err(_) => {
                    let mut idle = self.idle_list();
                    if let Some(at) = idle.iter().position(|(i, _)| *i == id) {
                        idle.remove(at);
                        return;
                    }
                    drop(idle);
                    // Taken from the idle list just now: its client is on the way.
                    match receiver.recv() {
                        Ok(next) => next,
                        Err(_) => return,
                    }
                }
            };
        }
    }
}

async fn serve_connection(socket: TcpStream, client: Client) {
    let Client {
        peer,
        engine,
        registry,
        limits,
        grace,
    } = client;
    registry.connection_opened();
    // Counted closed however the task ends (also when it is dropped or unwinds).
    let _open = OpenConnection(&registry);
    if let Err(e) = socket.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    // A second handle on the socket, to send a FATAL error after pgwire's side is dropped.
    let side = match duplicate(&socket) {
        Ok(side) => Some(side),
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot duplicate the socket");
            None
        }
    };
    let conn = Connection::new(engine, registry.clone(), limits);
    let handlers = Handlers {
        conn: conn.clone(),
        cancel: Arc::new(FloeCancelHandler {
            registry: registry.clone(),
        }),
    };
    let mut shutdown = registry.shutdown_signal();
    let mut process = Box::pin(pgwire::tokio::process_socket(socket, None, handlers));
    let stop = async {
        let _ = shutdown.wait_for(|s| *s).await;
        if let Some(control) = conn.control() {
            if tokio::time::timeout(grace, control.wait_idle())
                .await
                .is_err()
            {
                control.cancel(CancelReason::Shutdown);
                let _ = tokio::time::timeout(Duration::from_secs(2), control.wait_idle()).await;
            }
        }
        // Let the last response (ReadyForQuery) reach the socket.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fatal = tokio::select! {
        biased;
        result = &mut process => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            None
        }
        _ = stop => {
            tracing::debug!(%peer, "connection closed for shutdown");
            Some(("57P01", "terminating connection due to administrator command"))
        }
        _ = idle_in_transaction(&conn) => {
            tracing::debug!(%peer, "idle-in-transaction timeout");
            Some(("25P03", "terminating connection due to idle-in-transaction timeout"))
        }
    };
    // pgwire's half goes first (nothing of it is in flight: the session was idle); the
    // transaction block ends with the session, releasing its locks.
    drop(process);
    if let (Some((code, message)), Some(side)) = (fatal, side) {
        let _ = send_fatal(side, code, message).await;
    }
}

/// A second handle on the socket (a duplicated descriptor of the same connection).
fn duplicate(socket: &TcpStream) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    Ok(std::net::TcpStream::from(
        socket.as_fd().try_clone_to_owned()?,
    ))
}

/// Resolves when the session has sat idle inside a transaction block for longer than its
/// `idle_in_transaction_session_timeout` (never while the setting is 0).
async fn idle_in_transaction(conn: &Connection) {
    loop {
        let Some(control) = conn.control() else {
            // Startup has not finished.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let next_end = control.next_end();
        // Without a limit (or while a statement holds the session): look again when the next
        // statement ends, or after a second at most.
        let wait = match conn.idle_in_transaction_timeout() {
            Some(timeout) => {
                let idle = control.idle_for();
                if idle >= timeout && !control.is_busy() {
                    return;
                }
                timeout.saturating_sub(idle).max(Duration::from_millis(1))
            }
            None => Duration::from_secs(1),
        };
        tokio::select! {
            _ = next_end => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Writes a FATAL ErrorResponse (PostgreSQL's severity, SQLSTATE and message fields) and
/// closes the socket.
async fn send_fatal(side: std::net::TcpStream, code: &str, message: &str) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    let mut side = TcpStream::from_std(side)?;
    side.write_all(&frame).await?;
    side.shutdown().await
}

/// Counts a connection closed when dropped.
struct OpenConnection<'a>(&'a Registry);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

//! Test support: start a real `floe serve` (or a PostgreSQL 15 server) on a free port with a
//! throw-away data directory, and talk to it over the wire with `tokio-postgres`.
//!
//! Used by the sqllogictest runner (`tests/slt.rs`) and the protocol tests (`tests/wire.rs`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Where PostgreSQL 15's server binaries live on these machines.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// A server process that is stopped (and its data directory removed) on drop.
pub struct TestServer {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    kind: ServerKind,
    pg_user: Option<String>,
}

/// Which server a [`TestServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Floe,
    Postgres,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn temp_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot create temp dir");
    dir
}

/// The `floe` binary: `FLOE_BIN`, else `floe` beside the test executable's target directory.
pub fn floe_binary() -> PathBuf {
    if let Ok(path) = std::env::var("FLOE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/<test> -> target/debug/floe
    let debug_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable has no target directory");
    debug_dir.join("floe")
}

/// Waits until the Floe child accepts TCP on `port` and is still running shortly after;
/// false if it exited (e.g. the port was taken).
fn floe_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            return matches!(child.try_wait(), Ok(None));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn spawn_floe(port: u16, data_dir: &Path, extra: &[&str]) -> Child {
    let binary = floe_binary();
    assert!(
        binary.exists(),
        "floe binary not found at {} (build it with `cargo build -p floe`)",
        binary.display()
    );
    Command::new(&binary)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--log-level")
        .arg(std::env::var("FLOE_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .args(extra)
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot start floe")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TestServer {
    /// Starts `floe serve` on a free port.
    pub fn start_floe() -> TestServer {
        Self::start_floe_with(&[])
    }

    /// Starts `floe serve` with extra arguments.
    pub fn start_floe_with(extra: &[&str]) -> TestServer {
        let data_dir = temp_dir("floe-test");
        // A port chosen free can be taken by a parallel test's server before Floe binds it:
        // then Floe exits at once (and a readiness probe may have reached the other server),
        // so a start only counts once the child is seen alive after answering.
        for _ in 0..5 {
            let port = free_port();
            let mut child = spawn_floe(port, &data_dir, extra);
            if floe_ready(&mut child, port) {
                return TestServer {
                    child,
                    port,
                    data_dir,
                    kind: ServerKind::Floe,
                    pg_user: None,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("floe serve did not start (5 attempts on different ports)");
    }

    /// Kills the server with SIGKILL (no chance to clean up) and waits for it to die.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts Floe again on the same data directory and port (after [`TestServer::kill9`] or
    /// [`TestServer::terminate`]).
    pub fn restart(&mut self, extra: &[&str]) {
        assert_eq!(self.kind, ServerKind::Floe, "only Floe restarts");
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
        self.child = spawn_floe(self.port, &self.data_dir, extra);
        self.wait_ready();
    }

    /// Whether PostgreSQL 15 can be started here.
    pub fn postgres_available() -> bool {
        Path::new(PG_BIN_DIR).join("postgres").exists()
    }

    /// Starts a private PostgreSQL 15 (initdb into a temp dir, trust auth, loopback only). As
    /// root, the server runs as the `postgres` OS user.
    pub fn start_postgres() -> TestServer {
        let data_dir = temp_dir("floe-pg-test");
        let as_user = running_as_root().then(|| "postgres".to_string());
        let run = |program: &str, args: &[&str]| -> Command {
            let path = Path::new(PG_BIN_DIR).join(program);
            match &as_user {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.arg("-u").arg(user).arg("--").arg(path).args(args);
                    c
                }
                None => {
                    let mut c = Command::new(path);
                    c.args(args);
                    c
                }
            }
        };
        if let Some(user) = &as_user {
            let status = Command::new("chown")
                .arg("-R")
                .arg(user)
                .arg(&data_dir)
                .status()
                .expect("chown");
            assert!(status.success(), "cannot chown the PostgreSQL data dir");
        }
        let pgdata = data_dir.join("pgdata");
        let pgdata_s = pgdata.to_string_lossy().to_string();
        let out = run(
            "initdb",
            &[
                "-D",
                &pgdata_s,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                // Floe's locale: code point order, Unicode case mapping.
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        )
        .output()
        .expect("cannot run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let socket_dir = data_dir.to_string_lossy().to_string();
        // A port chosen free can be taken by a parallel test's server before PostgreSQL binds
        // it; PostgreSQL then exits, and the other server must not pass for this one.
        for _ in 0..5 {
            let port = free_port();
            let port_s = port.to_string();
            let mut child = run(
                "postgres",
                &[
                    "-D",
                    &pgdata_s,
                    "-p",
                    &port_s,
                    "-h",
                    "127.0.0.1",
                    "-k",
                    &socket_dir,
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "TimeZone=UTC",
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start postgres");
            if postgres_ready(&mut child, port, &pgdata) {
                return TestServer {
                    child,
                    port,
                    data_dir,
                    kind: ServerKind::Postgres,
                    pg_user: as_user,
                };
            }
            stop_child(&mut child);
        }
        panic!("PostgreSQL did not start (5 attempts on different ports)");
    }

    /// Waits until the (restarted Floe) server accepts TCP on its port.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{:?} server did not start on port {}", self.kind, self.port);
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// A libpq-style connection string for user `postgres`, database `postgres`.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Connects with tokio-postgres; the connection task runs in the background.
    pub async fn connect(&self) -> Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("cannot connect");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// The server process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns whether it exited.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
        let _ = self.pg_user;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A database error as the runner reports it: `SQLSTATE: message`, so `.slt` files can match
/// either the code or the text.
#[derive(Debug)]
pub struct SqlFailure(pub String);

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlFailure {}

/// Formats a tokio-postgres error with its SQLSTATE (and DETAIL, when there is one).
pub fn describe_error(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {} DETAIL: {detail}", db.code().code(), db.message()),
            None => format!("{}: {}", db.code().code(), db.message()),
        },
        None => format!("client error: {err}"),
    }
}

/// A sqllogictest database over the simple query protocol (text results, like psql).
pub struct SltDb {
    client: Client,
    engine: &'static str,
}

impl SltDb {
    pub async fn connect(server: &TestServer) -> Result<SltDb, SqlFailure> {
        let (client, connection) = tokio_postgres::connect(&server.url(), NoTls)
            .await
            .map_err(|e| SqlFailure(describe_error(&e)))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(SltDb {
            client,
            engine: match server.kind() {
                ServerKind::Floe => "floe",
                ServerKind::Postgres => "postgres",
            },
        })
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SltDb {
    type Error = SqlFailure;
    type ColumnType = sqllogictest::DefaultColumnType;

    async fn run(
        &mut self,
        sql: &str,
    ) -> Result<sqllogictest::DBOutput<Self::ColumnType>, Self::Error> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| SqlFailure(describe_error(&e)))?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut affected = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(desc) => columns = Some(desc.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        match columns {
            Some(n) => Ok(sqllogictest::DBOutput::Rows {
                types: vec![sqllogictest::DefaultColumnType::Any; n],
                rows,
            }),
            None => Ok(sqllogictest::DBOutput::StatementComplete(affected)),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        self.engine
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// Stops a server process: SIGTERM, up to 5 s for it to exit, then SIGKILL.
fn stop_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits until the PostgreSQL `child` answers queries on `port` as the server of `pgdata`
/// (its `data_directory`); false if it exited first (it could not bind the port) or another
/// server answers there.
fn postgres_ready(child: &mut Child, port: u16, pgdata: &Path) -> bool {
    let expected = std::fs::canonicalize(pgdata).unwrap_or_else(|_| pgdata.to_path_buf());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // PostgreSQL accepts TCP before it accepts queries; a real connection tells.
            let url = url.clone();
            let answer = rt.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.ok()?;
                tokio::spawn(connection);
                let row = client.query_one("SHOW data_directory", &[]).await.ok()?;
                row.try_get::<_, String>(0).ok()
            });
            if let Some(dir) = answer {
                let dir = PathBuf::from(dir);
                let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
                return dir == expected;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

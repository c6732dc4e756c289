//! The `floe` binary: command line, configuration, logging, and wiring of the parts.

mod config;

use std::fs::File;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use floe_sql::{Engine, EngineConfig};
use floe_wire::{Server, ServerConfig};
use tracing_subscriber::EnvFilter;

use config::{Cli, Command, ServeConfig};

/// mimalloc instead of glibc's malloc: the per-statement path allocates many small, short-lived
/// objects from several threads, where glibc's arenas cost ~10% of a pgbench run's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before giving it back to the OS, in milliseconds
/// (its default is 1 s). A bulk load allocates its write set, log record and hot-tier rows in
/// fresh memory; returned to the OS after a second, the next load (pgbench -i after a DROP)
/// takes every page fault and the kernel's zeroing again: ~15% of a 1M-row COPY's time.
/// Memory freed and not reused for this long still goes back.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 30_000;

/// [`ALLOCATOR_PURGE_DELAY_MS`] when `--memory-limit` is set: mimalloc's own default.
const BUDGETED_ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 1_000;

/// `mi_option_purge_delay` of mimalloc.h's `mi_option_e` (15 in its v2 and v3; the sys
/// crate names the options on either side of it but not this one).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // SAFETY: sets one of mimalloc's documented options; called before any thread starts.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match args.resolve() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("floe: {e}");
                    return ExitCode::from(2);
                }
            };
            if config.memory_limit.is_some() {
                // Under a memory budget, freed memory goes back to the OS within a second
                // (bulk loads pay the page faults again; the budget is worth more).
                // SAFETY: as above; mimalloc reads the option when it next purges.
                unsafe {
                    libmimalloc_sys::mi_option_set(
                        MI_OPTION_PURGE_DELAY,
                        BUDGETED_ALLOCATOR_PURGE_DELAY_MS,
                    );
                }
            }
            if let Err(e) = init_logging(&config.log_level) {
                eprintln!("floe: invalid --log-level {:?}: {e}", config.log_level);
                return ExitCode::from(2);
            }
            // Planning deep expressions (a 300-term sum, a 75-way UNION) recurses deeply in
            // DataFusion; the default 2 MiB stacks overflow and abort the process. The space is
            // reserved, not committed: only deep statements touch it.
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads)
                .enable_all()
                .thread_name("floe")
                .thread_stack_size(64 << 20)
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("floe: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("floe: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(level: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| e.to_string())
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("data directory {0} is in use by another Floe server")]
    DataDirLocked(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the SQL engine: {0}")]
    Engine(floe_sql::SqlError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Takes the data directory's lock file so two servers never share one directory.
fn lock_data_dir(config: &ServeConfig) -> Result<File, ServeError> {
    let dir = &config.data_dir;
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(|source| ServeError::DataDir {
        path: shown.clone(),
        source,
    })?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("floe.lock"))
        .map_err(|source| ServeError::DataDir {
            path: shown.clone(),
            source,
        })?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::DataDirLocked(shown)),
        Err(std::fs::TryLockError::Error(source)) => Err(ServeError::DataDir {
            path: shown,
            source,
        }),
    }
}

async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let _lock = lock_data_dir(&config)?;
    let engine = Engine::new(EngineConfig {
        data_dir: config.data_dir.clone(),
        // One budget, split: rows held in memory and query execution never exceed it together.
        query_memory_limit: config.memory_limit.map(|m| m / 5 * 2),
        hot_memory_limit: config.memory_limit.map(|m| m / 5 * 3),
        checkpoint_log_bytes: config.checkpoint_log_size as u64,
        max_connections: config.max_connections,
        storage: config.storage.clone(),
        flush_age_commits: config.flush_age,
        ..EngineConfig::default()
    })
    .map_err(ServeError::Engine)?;
    start_materialized_views(&engine).await;
    let server = Server::bind(
        ServerConfig {
            listen: config.listen,
            max_connections: config.max_connections,
            shutdown_grace: Duration::from_secs(config.shutdown_grace),
        },
        Arc::clone(&engine),
    )
    .await
    .map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let addr = server.local_addr()?;
    tracing::info!(
        %addr,
        data_dir = %config.data_dir.display(),
        "Floe is ready: psql -h {} -p {} -U postgres",
        addr.ip(),
        addr.port()
    );
    server.run(shutdown_signal()).await?;
    engine.close();
    Ok(())
}

/// Starts maintaining the catalog's materialized views before connections are accepted, so a
/// read of one waits until it is rebuilt from its base tables (a few at a time, on threads of
/// their own); logs the time once all are.
async fn start_materialized_views(engine: &Arc<Engine>) {
    let started = std::time::Instant::now();
    let views = match engine.start_materialized_views().await {
        Ok(views) => views,
        Err(e) => {
            tracing::error!(error = %e.message, "materialized views not started");
            return;
        }
    };
    if views.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("floe-view-startup".into())
        .spawn(move || {
            for view in &views {
                let _ = view.wait_hydrated_blocking();
            }
            tracing::info!(
                views = views.len(),
                ms = started.elapsed().as_millis() as u64,
                "materialized views rehydrated"
            );
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "materialized view startup log not started");
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("received SIGINT"),
        _ = term => tracing::info!("received SIGTERM"),
    }
}

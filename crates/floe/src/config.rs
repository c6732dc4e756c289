//! Configuration: command-line flags, `FLOE_*` environment variables, and a TOML file.
//!
//! Precedence, highest first: flag, environment variable, config file, built-in default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// Floe: a PostgreSQL-compatible SQL database (durable tables, transactions, COPY).
///
/// Connect with any PostgreSQL client once the server runs, e.g.
/// `psql -h 127.0.0.1 -U postgres`.
#[derive(Debug, Parser)]
#[command(name = "floe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (listens on 127.0.0.1:5432, keeps its files in ./floe-data).
    Serve(ServeArgs),
}

/// Options of `floe serve`. Each can also come from `FLOE_<NAME>` or the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:5432]
    #[arg(long, env = "FLOE_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Directory for the server's files; created if missing [default: ./floe-data]
    #[arg(long, env = "FLOE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// TOML file with any of these settings (keys like `listen`, `data_dir`, `log_level`)
    #[arg(long, env = "FLOE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log verbosity: error, warn, info, debug, trace, or a tracing filter such as
    /// `floe_wire=debug,info` [default: info]
    #[arg(long, env = "FLOE_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Maximum concurrent client connections [default: 100]
    #[arg(long, env = "FLOE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Memory query execution may use, e.g. `512MB` or `2GB`; beyond it queries fail with
    /// SQLSTATE 53200 [default: unlimited]
    #[arg(long, env = "FLOE_MEMORY_LIMIT", value_name = "SIZE", value_parser = parse_size)]
    pub memory_limit: Option<usize>,

    /// Seconds shutdown waits for running statements before cancelling them [default: 10]
    #[arg(long, env = "FLOE_SHUTDOWN_GRACE", value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,

    /// Commit-log growth, e.g. `64MB`, after which a checkpoint is taken in the background and
    /// the log truncated; smaller means faster restarts, more checkpoint writing
    /// [default: 256MB]
    #[arg(long, env = "FLOE_CHECKPOINT_LOG_SIZE", value_name = "SIZE", value_parser = parse_size)]
    pub checkpoint_log_size: Option<usize>,

    /// Where cold data (Parquet runs and their manifest) lives: `file:///dir` or
    /// `s3://bucket/prefix` (region, credentials and endpoint from the usual AWS_* settings)
    /// [default: file://<data dir>/cold]
    #[arg(long, env = "FLOE_STORAGE", value_name = "URL")]
    pub storage: Option<String>,

    /// Checkpoints also move rows not written in the last N commits into cold runs (0: every
    /// row no reader needs an older version of) [default: only when the hot tier passes half
    /// its share of --memory-limit]
    #[arg(long, env = "FLOE_FLUSH_AGE", value_name = "COMMITS")]
    pub flush_age: Option<u64>,

    /// Threads that run the partitions of parallel query plans (each connection also has a thread
    /// of its own) [default: the CPU cores]
    #[arg(long, env = "FLOE_WORKER_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
}

/// Default of `--checkpoint-log-size` (the storage default).
const DEFAULT_CHECKPOINT_LOG_SIZE: usize = 256 << 20;

/// The config file's contents; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_level: Option<String>,
    max_connections: Option<usize>,
    memory_limit: Option<String>,
    shutdown_grace: Option<u64>,
    checkpoint_log_size: Option<String>,
    worker_threads: Option<u16>,
    storage: Option<String>,
    flush_age: Option<u64>,
}

/// The effective settings of `floe serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub max_connections: usize,
    pub memory_limit: Option<usize>,
    pub shutdown_grace: u64,
    pub checkpoint_log_size: usize,
    pub worker_threads: usize,
    /// The cold tier's location (`None`: `file://<data dir>/cold`).
    pub storage: Option<String>,
    /// Flush rows not written in this many commits at each checkpoint (`None`: under memory
    /// pressure only).
    pub flush_age: Option<u64>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid memory_limit in config file: {0}")]
    Size(String),
    #[error("invalid checkpoint_log_size in config file: {0}")]
    CheckpointSize(String),
}

impl ServeArgs {
    /// Merges flags/env with the config file and defaults.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let file_memory = match file.memory_limit {
            Some(s) => Some(parse_size(&s).map_err(ConfigError::Size)?),
            None => None,
        };
        let file_checkpoint = match file.checkpoint_log_size {
            Some(s) => Some(parse_size(&s).map_err(ConfigError::CheckpointSize)?),
            None => None,
        };
        Ok(ServeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5432))),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("floe-data")),
            log_level: self
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(100),
            memory_limit: self.memory_limit.or(file_memory),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace).unwrap_or(10),
            checkpoint_log_size: self
                .checkpoint_log_size
                .or(file_checkpoint)
                .unwrap_or(DEFAULT_CHECKPOINT_LOG_SIZE),
            worker_threads: match self.worker_threads.or(file.worker_threads) {
                Some(n) => usize::from(n.max(1)),
                None => default_worker_threads(),
            },
            storage: self.storage.or(file.storage),
            flush_age: self.flush_age.or(file.flush_age),
        })
    }
}

/// One worker thread per core. The workers run the listener and the partitions of parallel
/// query plans; each client connection has a thread of its own (`floe-wire`'s server module),
/// so the worker count bounds how many cores one analytic query uses, not how many clients
/// are served at once.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// `1048576`, `512kB`, `64MB`, `2GB`, `1TB` (PostgreSQL's units, powers of 1024).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 512MB"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        "t" | "tb" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit (use kB, MB, GB or TB)"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("floe-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("floe.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:6000\"\nlog_level = \"debug\"\nmemory_limit = \"1GB\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            listen: None,
            data_dir: Some(PathBuf::from("/tmp/x")),
            config: Some(file.clone()),
            log_level: Some("warn".into()),
            max_connections: None,
            memory_limit: None,
            shutdown_grace: None,
            checkpoint_log_size: None,
            worker_threads: None,
            storage: None,
            flush_age: None,
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.listen.port(), 6000);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.memory_limit, Some(1 << 30));
        assert_eq!(c.max_connections, 100);
        assert_eq!(c.checkpoint_log_size, 256 << 20);
        assert!(c.worker_threads >= 2);
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let args = ServeArgs {
            listen: None,
            data_dir: None,
            config: Some(file),
            log_level: None,
            max_connections: None,
            memory_limit: None,
            shutdown_grace: None,
            checkpoint_log_size: None,
            worker_threads: Some(3),
            storage: None,
            flush_age: None,
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Parse { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }
}

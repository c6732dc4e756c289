//! The storage layer's error types. The SQL layer maps each [`StorageError`] variant to one
//! SQLSTATE.
//!
//! [`ColdError`] is the cold tier's (object store, Parquet runs, manifest): typed so callers
//! and tests can tell a fenced writer from a missing file from a store that keeps failing.
//! It reaches SQL as [`StorageError::Cold`] (an I/O failure, SQLSTATE 58030): a cold read
//! that fails is an error, never "no row".

use datafusion::arrow::error::ArrowError;

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

/// What can go wrong below SQL: users' conflicts (unique keys, serialization, deadlocks, the
/// memory budget) and our own failures (I/O, corruption), kept apart so the wire layer can tell
/// a client "your transaction lost a race" from "the server is broken".
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory could not be read or written.
    #[error("could not access the data directory: {0}")]
    Io(#[from] std::io::Error),
    /// RocksDB failed (commit log or catalog).
    #[error("storage engine error: {0}")]
    Engine(#[from] rocksdb::Error),
    /// Stored bytes do not decode: a bug or a damaged data directory.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// Arrow could not convert values (a type the row format does not hold, …).
    #[error("{0}")]
    Arrow(#[from] ArrowError),
    /// REPEATABLE READ / SERIALIZABLE: a row changed after the snapshot (40001).
    #[error("could not serialize access due to concurrent update")]
    SerializationFailure,
    /// SERIALIZABLE: committing (or reading on) would complete a dangerous structure of
    /// rw-conflicts among serializable transactions (40001, see [`crate::predicate`]).
    #[error("could not serialize access due to read/write dependencies among transactions")]
    SerializationConflict {
        /// PostgreSQL's `Reason code: …` line.
        detail: String,
    },
    /// Lock waits form a cycle (40P01).
    #[error("deadlock detected")]
    Deadlock {
        /// Which transactions waited for which.
        detail: String,
    },
    /// A lock wait lasted longer than the transaction's lock timeout (55P03).
    #[error("canceling statement due to lock timeout")]
    LockTimeout,
    /// A key already exists (23505).
    #[error("duplicate key value violates unique constraint \"{constraint}\"")]
    UniqueViolation {
        /// The constraint's name.
        constraint: String,
        /// `Key (a)=(1) already exists.`
        detail: String,
    },
    /// CREATE UNIQUE INDEX (or ADD UNIQUE) over rows that already repeat a key (23505).
    #[error("could not create unique index \"{index}\"")]
    DuplicateInIndex {
        /// The index's name.
        index: String,
        /// `Key (a)=(1) is duplicated.`
        detail: String,
    },
    /// The hot tier's memory budget would be exceeded (53200).
    #[error("out of memory")]
    MemoryLimit {
        /// What was asked and what the limit is.
        detail: String,
    },
    /// A name that does not exist (42P01 for tables).
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    /// A name that is taken (42P07).
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    /// An earlier commit-log write failed; the server must restart to recover.
    #[error("the commit log is unavailable after an earlier write failure; restart the server")]
    Poisoned,
    /// The server is shutting down.
    #[error("the storage engine is shutting down")]
    ShuttingDown,
    /// The cold tier (object store, Parquet runs, manifest) failed after its retries
    /// (58030): a read of cold rows that fails is an error, never "no row".
    #[error("cold storage: {0}")]
    Cold(Box<ColdError>),
    /// An invariant of ours broke.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StorageError {
    /// The cold-tier error this one wraps, if any.
    pub fn cold(&self) -> Option<&ColdError> {
        match self {
            StorageError::Cold(cold) => Some(cold),
            _ => None,
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> StorageError {
        StorageError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

impl From<StorageError> for datafusion::error::DataFusionError {
    fn from(e: StorageError) -> Self {
        datafusion::error::DataFusionError::External(Box::new(e))
    }
}

/// Result of a cold-tier operation.
pub type ColdResult<T> = Result<T, ColdError>;

/// What can go wrong in the cold tier: the object store (after retries), a Parquet run, the
/// manifest, or the writer lost its epoch to a newer process.
#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    /// `--storage` names no location we can use.
    #[error("invalid storage location \"{url}\": {detail}")]
    Location {
        /// The location as given.
        url: String,
        /// Why it is unusable.
        detail: String,
    },
    /// An object-store call failed (transient failures were retried first).
    #[error("could not {op} {path} in the object store: {source}")]
    ObjectStore {
        /// The call: `put`, `get`, `list`, `delete`, `read`.
        op: &'static str,
        /// The object (or prefix) it named.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A create-only put found the object already there: another writer holds the name.
    #[error("object {path} already exists")]
    AlreadyExists {
        /// The object's path.
        path: String,
    },
    /// A run's Parquet bytes could not be written or read.
    #[error("cold run {path}: {source}")]
    Parquet {
        /// The run's path.
        path: String,
        /// Parquet's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Stored cold data does not mean what it must (a damaged run or manifest, or a bug).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// A newer writer (a later epoch) took over the cold tier: this process must stop writing.
    #[error("writer epoch {epoch} is fenced: {detail}")]
    Fenced {
        /// This writer's epoch.
        epoch: u64,
        /// What showed the newer writer.
        detail: String,
    },
    /// Row or key encoding failed while converting a run's rows.
    #[error(transparent)]
    Storage(Box<StorageError>),
    /// An invariant of the cold tier broke.
    #[error("internal cold-tier error: {0}")]
    Internal(String),
}

impl ColdError {
    pub(crate) fn corrupt(what: impl ToString, detail: impl ToString) -> ColdError {
        ColdError::Corrupt {
            what: what.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Whether the writer was fenced by a newer one.
    pub fn is_fenced(&self) -> bool {
        matches!(self, ColdError::Fenced { .. })
    }
}

impl From<StorageError> for ColdError {
    fn from(e: StorageError) -> Self {
        ColdError::Storage(Box::new(e))
    }
}

impl From<ArrowError> for ColdError {
    fn from(e: ArrowError) -> Self {
        ColdError::Storage(Box::new(StorageError::Arrow(e)))
    }
}

impl From<ColdError> for StorageError {
    fn from(e: ColdError) -> Self {
        match e {
            ColdError::Storage(inner) => *inner,
            other => StorageError::Cold(Box::new(other)),
        }
    }
}

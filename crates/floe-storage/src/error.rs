//! The storage layer's one error type. The SQL layer maps each variant to one SQLSTATE.

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
    /// An invariant of ours broke.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StorageError {
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

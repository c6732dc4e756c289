//! Floe's storage: where rows live and how commits become durable.
//!
//! Owns the commit clock, the commit log, checkpoints and catalog (RocksDB), the MVCC hot tier,
//! row and advisory locks, transactions, sequences, the change stream and the DataFusion
//! `TableProvider` over it all. Modules are named by the noun they own: `db` (the handle
//! sessions hold), `table`, `commit`, `recovery`, `checkpoint`, `sequence`, `hot`, `index`,
//! `source` (the read seam: every read of a table's committed rows goes through
//! [`TableData::sources`], which merges its sources newest-wins; see
//! `docs/design/0009-storage-read-seam.md`), and the cold tier: `store` (the object store and
//! the runtime its calls run on), `cold_run` (immutable Parquet runs, a [`Source`] each),
//! `manifest` (the truth about which runs are live, writer fencing, the sweeper),
//! `cold_tier` (the store and writer an open database holds; runs attached at recovery) and
//! `flush` (settled keys moved into runs at checkpoints), `compaction` (level-0 runs merged
//! into non-overlapping level-1 runs, runs of dropped tables dropped) and `cold_scan` (scans that read runs
//! by batch where that is exact); see `docs/design/0010-cold-runs.md`,
//! `docs/design/0011-cold-tier-in-the-engine.md` and `docs/design/0012-cold-scans.md`.
//! It must not know SQL syntax: defaults, CHECK expressions and view text are opaque strings
//! here, interpreted by `floe-sql`.
//!
//! Invariants: every commit has a unique `u64` timestamp from one sequence; a commit is
//! acknowledged only after its log record is synced and it is applied to the hot tier; a
//! snapshot at `ts` sees exactly the commits with `commit_ts <= ts` (plus its transaction's
//! own writes).

pub mod advisory;
pub mod catalog;
pub mod changes;
pub mod checkpoint;
pub mod codec;
pub mod cold_run;
mod cold_scan;
mod cold_tier;
mod commit;
pub mod compaction;
pub mod db;
pub mod error;
/// A fault-injecting object store, for the tests of this crate and its users.
#[doc(hidden)]
pub mod fault;
mod flush;
pub mod hot;
pub mod index;
mod keymap;
pub mod lock;
pub mod manifest;
pub mod numeric_key;
pub mod pending;
mod predicate;
pub mod provider;
mod recovery;
mod sequence;
pub mod source;
pub mod store;
pub mod table;
pub mod txn;

pub use catalog::{
    Catalog, CatalogChange, ColumnDef, ConstraintDef, DatabaseDef, IndexDef, OnCommit, Persistence,
    PrimaryKey, RelationKind, SchemaDef, SequenceDef, TableDef,
};
pub use changes::{ChangeError, ChangeReader, CommitChanges, RowChange};
pub use checkpoint::{CheckpointFailpoint, CheckpointInfo};
pub use codec::{Key, RowBytes, TableCodec};
pub use db::{Db, DbOptions, Snapshot, DEFAULT_CHECKPOINT_LOG_BYTES};
pub use error::{ColdError, ColdResult, StorageError, StorageResult};
pub use index::HotIndex;
pub use pending::{sync_with_pending_catalog, with_pending_catalog, PendingCatalog};
pub use provider::{FloeTable, KEY_COLUMN};
pub use source::{Lookup, Source, Sources, Versioned};
pub use table::TableData;
pub use txn::{Isolation, OwnWrites, ReadView, RowCheck, SavepointMark, Txn};

/// The database every server has from the start.
pub const DEFAULT_DATABASE: &str = "postgres";
/// The schema every database has from the start.
pub const DEFAULT_SCHEMA: &str = "public";

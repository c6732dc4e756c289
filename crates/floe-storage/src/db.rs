//! The database: the commit clock, the commit log and catalog in RocksDB, the hot tier of every
//! table, snapshots, row locks, sequences and the change stream.
//!
//! Writes: a transaction buffers its changes ([`crate::Txn`]) and hands them to the one
//! committer thread. The committer takes every commit waiting, gives each the next timestamp,
//! writes all their log records in one RocksDB batch with one fsync (group commit), then applies
//! them to the catalog and hot tier and publishes them on the change stream, in timestamp order,
//! and only then acknowledges. So an acknowledged commit is on disk, and a snapshot at `ts`
//! sees exactly the commits up to `ts`.
//!
//! Recovery loads the current checkpoint ([`crate::checkpoint`]) and replays the log records
//! after it over the catalog. RocksDB's write-ahead log is checksummed and recovers to the last
//! whole batch, so a torn tail is dropped, never applied. Checkpoints delete the log records
//! they cover, so restart time follows the data and the log written since the last checkpoint,
//! not the whole history.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use tokio::sync::oneshot;

use crate::advisory::AdvisoryLocks;
use crate::catalog::{
    Catalog, CatalogChange, DatabaseDef, IndexDef, OnCommit, Persistence, RelationKind, SchemaDef,
    TableDef,
};
use crate::changes::{ChangeLog, ChangeReader, CommitChanges, RowChange};
use crate::checkpoint::{
    self, CheckpointFailpoint, CheckpointInfo, CheckpointState, CheckpointTrigger, CF_CHECKPOINT,
};
use crate::codec::{
    decode_record, Key, LogEntry, RecordBuilder, RowBytes, TableCodec, RECORD_PREFIX,
};
use crate::error::{StorageError, StorageResult};
use crate::hot::{pending_row, HotTable, PendingRows};
use crate::index::{index_changes, HotIndex};
use crate::lock::{LockManager, TxnId};
use crate::predicate::{PredicateLocks, SerialXact};
use crate::txn::{EncodedLog, Isolation, ReadView, Txn};

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_CATALOG: &str = "catalog";
const CF_SEQUENCES: &str = "sequences";
/// Values a sequence reserves on disk at a time (PostgreSQL logs 32 ahead too).
const SEQUENCE_RESERVE: i64 = 32;
/// Commits written in one group at most.
const MAX_GROUP: usize = 512;

/// How the database is opened.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Bytes the hot tier may hold; writes beyond it fail with [`StorageError::MemoryLimit`].
    pub memory_limit: Option<usize>,
    /// Commits the change stream keeps for late readers.
    pub change_retention_commits: usize,
    /// Bytes the change stream keeps for late readers.
    pub change_retention_bytes: usize,
    /// Take a checkpoint (and truncate the commit log) in the background once the log has
    /// grown by this many bytes since the last one. `None`: only on request and on close.
    pub checkpoint_log_bytes: Option<u64>,
    /// Take a checkpoint on [`Db::close`], so a clean restart replays (almost) nothing.
    pub checkpoint_on_close: bool,
    /// Tests only: make checkpoints fail at this point.
    #[doc(hidden)]
    pub checkpoint_failpoint: Option<CheckpointFailpoint>,
}

/// Default of [`DbOptions::checkpoint_log_bytes`].
pub const DEFAULT_CHECKPOINT_LOG_BYTES: u64 = 256 << 20;

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            memory_limit: None,
            change_retention_commits: 100_000,
            change_retention_bytes: 64 << 20,
            checkpoint_log_bytes: Some(DEFAULT_CHECKPOINT_LOG_BYTES),
            checkpoint_on_close: true,
            checkpoint_failpoint: None,
        }
    }
}

/// One table's live state: definition, codec and hot rows.
#[derive(Debug)]
pub struct TableData {
    /// The definition the rows are encoded for.
    pub def: Arc<TableDef>,
    /// Key and row encoding.
    pub codec: Arc<TableCodec>,
    /// The in-memory rows.
    pub hot: Arc<HotTable>,
    /// The secondary indexes over `hot` (those of `def.indexes` whose columns exist).
    pub indexes: Vec<Arc<HotIndex>>,
    next_rowid: Arc<AtomicU64>,
}

impl TableData {
    /// Live state for `def` with no rows: a table being created or rewritten.
    pub fn new(def: Arc<TableDef>) -> StorageResult<TableData> {
        // An index over a column the definition no longer has (DROP COLUMN, before commit
        // drops the index from the definition) indexes nothing.
        let indexes = def
            .indexes
            .iter()
            .filter(|index| {
                index
                    .columns
                    .iter()
                    .all(|id| def.columns.iter().any(|c| c.id == *id))
            })
            .map(|index| HotIndex::new(index, &def).map(Arc::new))
            .collect::<StorageResult<_>>()?;
        Ok(TableData {
            codec: Arc::new(TableCodec::new(&def)?),
            def,
            hot: Arc::new(HotTable::default()),
            indexes,
            next_rowid: Arc::new(AtomicU64::new(1)),
        })
    }

    /// Live state for `def`, a new definition of `old`'s table with the same row layout: the
    /// same rows, kept indexes shared, new indexes built over the rows now (a duplicate key
    /// fails a new unique index with [`StorageError::DuplicateInIndex`]).
    pub fn redefined(def: Arc<TableDef>, old: &TableData) -> StorageResult<TableData> {
        let codec = Arc::new(TableCodec::new(&def)?);
        let mut indexes = Vec::with_capacity(def.indexes.len());
        for index_def in &def.indexes {
            if !index_def
                .columns
                .iter()
                .all(|id| def.columns.iter().any(|c| c.id == *id))
            {
                continue;
            }
            if let Some(kept) = old.indexes.iter().find(|i| i.same_shape(index_def, &def)) {
                indexes.push(kept.clone());
                continue;
            }
            let index = HotIndex::new(index_def, &def)?;
            index.build(&index_def.name, &def, &codec, &old.hot)?;
            indexes.push(Arc::new(index));
        }
        Ok(TableData {
            def,
            codec,
            hot: old.hot.clone(),
            indexes,
            next_rowid: old.next_rowid.clone(),
        })
    }

    /// The index with OID `oid` and its definition.
    pub fn index(&self, oid: u32) -> Option<(&IndexDef, &Arc<HotIndex>)> {
        let def = self.def.indexes.iter().find(|i| i.oid == oid)?;
        let index = self.indexes.iter().find(|i| i.oid == oid)?;
        Some((def, index))
    }

    /// A hidden row id for a new row of a table without a primary key.
    pub fn next_rowid(&self) -> u64 {
        self.next_rowid.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn saw_rowid(&self, key: &[u8]) {
        if !self.codec.has_primary_key() {
            if let Some(id) = TableCodec::rowid_of(key) {
                self.next_rowid.fetch_max(id + 1, Ordering::Relaxed);
            }
        }
    }
}

/// A registered read point: versions it can see are kept until it is dropped.
#[derive(Debug)]
pub struct Snapshot {
    /// Commits with `commit_ts <= ts` are visible.
    pub ts: u64,
    inner: Arc<Inner>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut active = self.inner.snapshots.lock();
        if let Some(count) = active.get_mut(&self.ts) {
            *count -= 1;
            if *count == 0 {
                active.remove(&self.ts);
            }
        }
    }
}

/// A catalog key to put (`Some` value) or delete (`None`).
type CatalogWrite = (Vec<u8>, Option<Vec<u8>>);

/// One table's part of a commit.
#[derive(Debug)]
pub(crate) struct TableCommit {
    pub table_id: u32,
    /// The codec the rows were encoded with (checked against the table's at commit).
    pub codec: Arc<TableCodec>,
    pub truncate: bool,
    pub rows: PendingRows,
    /// `rows`' log-record entries, when bulk inserts encoded them as they wrote the rows.
    pub log: Option<EncodedLog>,
    /// The unique indexes the new rows were checked against (`None`: no new rows).
    pub unique_checked: Option<Vec<u32>>,
    /// The table's persistence: a temporary table's rows are never logged, and its
    /// `ON COMMIT` action applies.
    pub persistence: Persistence,
}

/// A transaction's changes on their way to the committer.
#[derive(Debug, Default)]
pub(crate) struct CommitBody {
    pub catalog: Vec<CatalogChange>,
    pub tables: Vec<TableCommit>,
    /// The committing transaction when it is SERIALIZABLE: its writes are checked for
    /// rw-conflicts as it gets its timestamp ([`crate::predicate`]).
    pub serializable: Option<TxnId>,
}

struct CommitRequest {
    body: CommitBody,
    /// The log record is `record[record_start..]` (see [`RecordBuilder::around`]).
    record: Vec<u8>,
    record_start: usize,
    reply: oneshot::Sender<StorageResult<u64>>,
}

#[derive(Debug)]
struct SequenceState {
    /// The last value handed out, and whether one was (`setval(…, false)` clears it).
    last: i64,
    called: bool,
    /// Values up to here are covered by the durable reservation.
    reserved: Option<i64>,
}

/// Everything the committer thread shares with the sessions.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) rocks: DB,
    pub(crate) catalog: RwLock<Arc<Catalog>>,
    pub(crate) tables: RwLock<HashMap<u32, Arc<TableData>>>,
    visible_ts: AtomicU64,
    snapshots: Mutex<BTreeMap<u64, usize>>,
    pub(crate) locks: LockManager,
    /// Serializable transactions' SIREAD marks and rw-conflicts.
    pub(crate) predicate: PredicateLocks,
    /// Relation locks held now by all transactions ([`crate::Txn::lock_relation`]): while it
    /// is zero, statements skip looking for them.
    pub(crate) relation_locks: AtomicUsize,
    changes: Arc<ChangeLog>,
    hot_bytes: AtomicI64,
    pub(crate) poisoned: AtomicBool,
    sequences: Mutex<HashMap<u32, SequenceState>>,
    catalog_version: AtomicU64,
    /// Indexes built by `validate` for the catalog commit being written, by OID.
    pending_indexes: Mutex<HashMap<u32, Arc<HotIndex>>>,
    pub(crate) options: DbOptions,
    /// The current checkpoint; held for the whole of a checkpoint, so one runs at a time.
    pub(crate) checkpoint_state: Mutex<CheckpointState>,
    /// Log bytes written since the current checkpoint's ts (approximate).
    pub(crate) log_bytes_since_checkpoint: AtomicU64,
    pub(crate) checkpoint_trigger: CheckpointTrigger,
}

/// An open database. Cheap to share as `Arc<Db>`.
#[derive(Debug)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    committer: Mutex<Option<mpsc::Sender<CommitRequest>>>,
    committer_thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer_thread: Mutex<Option<JoinHandle<()>>>,
    closed: AtomicBool,
    next_txn_id: AtomicU64,
    advisory_locks: AdvisoryLocks,
}

impl Db {
    /// Opens (or creates) the database in `dir`, replaying the commit log.
    pub fn open(dir: &Path, options: DbOptions) -> StorageResult<Arc<Db>> {
        std::fs::create_dir_all(dir)?;
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        db_options.set_keep_log_file_num(4);
        // Bounds RocksDB's own WAL (replayed on open): past it, RocksDB flushes the column
        // families that keep old WAL files alive.
        db_options.set_max_total_wal_size(128 << 20);
        let cfs = [CF_LOG, CF_CATALOG, CF_SEQUENCES, CF_CHECKPOINT]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let rocks = DB::open_cf_descriptors(&db_options, dir.join("meta"), cfs)?;

        let mut catalog = {
            let cf = cf(&rocks, CF_CATALOG)?;
            let entries = rocks
                .iterator_cf(cf, rocksdb::IteratorMode::Start)
                .collect::<Result<Vec<_>, _>>()?;
            Catalog::load(entries.into_iter())?
        };
        if catalog.database(crate::DEFAULT_DATABASE).is_none() {
            bootstrap(&rocks, &mut catalog)?;
        }
        let mut tables = HashMap::new();
        for def in catalog.relations().filter(|d| d.is_table()) {
            tables.insert(def.id, Arc::new(TableData::new(def.clone())?));
        }
        let checkpoint_state = checkpoint::read_state(&rocks)?;
        let checkpoint_rows = checkpoint::load(&rocks, &checkpoint_state, &tables)?;
        let (replayed_ts, log_records, log_bytes) = replay(&rocks, &tables, checkpoint_state.ts())?;
        // After a clean shutdown the log may be empty: the clock resumes after the checkpoint.
        let last_ts = replayed_ts.max(checkpoint_state.ts());
        // Leftovers of a checkpoint interrupted by a crash (or of its cleanup).
        checkpoint::remove_garbage(&rocks, &checkpoint_state, CF_LOG, false);
        for table in tables.values() {
            for index in &table.indexes {
                let Some((def, _)) = table.index(index.oid) else {
                    continue;
                };
                if let Err(e) = index.build(&def.name, &table.def, &table.codec, &table.hot) {
                    // Writers enforced uniqueness; a duplicate here is our bug. The index
                    // still holds the other entries, so lookups stay as good as they can be.
                    tracing::error!(error = %e, index = def.name, "index rebuild failed");
                }
            }
        }
        let hot_bytes: usize = tables.values().map(|t| t.hot.bytes()).sum();
        tracing::info!(
            commit_ts = last_ts,
            checkpoint_ts = checkpoint_state.ts(),
            checkpoint_rows,
            log_records,
            log_bytes,
            tables = tables.len(),
            hot_bytes,
            "recovered from the checkpoint and the commit log"
        );

        let inner = Arc::new(Inner {
            rocks,
            catalog: RwLock::new(Arc::new(catalog)),
            tables: RwLock::new(tables),
            visible_ts: AtomicU64::new(last_ts),
            snapshots: Mutex::new(BTreeMap::new()),
            locks: LockManager::default(),
            predicate: PredicateLocks::default(),
            relation_locks: AtomicUsize::new(0),
            changes: Arc::new(ChangeLog::new(
                last_ts,
                options.change_retention_commits,
                options.change_retention_bytes,
            )),
            hot_bytes: AtomicI64::new(hot_bytes as i64),
            poisoned: AtomicBool::new(false),
            sequences: Mutex::new(HashMap::new()),
            catalog_version: AtomicU64::new(1),
            pending_indexes: Mutex::new(HashMap::new()),
            options,
            checkpoint_state: Mutex::new(checkpoint_state),
            log_bytes_since_checkpoint: AtomicU64::new(log_bytes),
            checkpoint_trigger: CheckpointTrigger::default(),
        });
        let (sender, receiver) = mpsc::channel();
        let committer_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("floe-committer".into())
            .spawn(move || committer_inner.run_committer(receiver, last_ts + 1))?;
        let checkpointer_inner = inner.clone();
        let checkpointer = std::thread::Builder::new()
            .name("floe-checkpointer".into())
            .spawn(move || checkpoint::run_checkpointer(checkpointer_inner))?;
        // A long log replayed at startup is worth a checkpoint right away.
        inner.maybe_trigger_checkpoint(log_bytes);
        Ok(Arc::new(Db {
            inner,
            committer: Mutex::new(Some(sender)),
            committer_thread: Mutex::new(Some(thread)),
            checkpointer_thread: Mutex::new(Some(checkpointer)),
            closed: AtomicBool::new(false),
            next_txn_id: AtomicU64::new(1),
            advisory_locks: AdvisoryLocks::default(),
        }))
    }

    /// Stops the committer after the commits already handed to it (later commits fail), then
    /// takes a checkpoint (unless [`DbOptions::checkpoint_on_close`] is off) so the next open
    /// replays almost nothing.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.checkpoint_trigger.stop();
        if let Some(thread) = self.checkpointer_thread.lock().take() {
            let _ = thread.join();
        }
        self.committer.lock().take();
        if let Some(thread) = self.committer_thread.lock().take() {
            let _ = thread.join();
        }
        self.inner.changes.close();
        if self.inner.options.checkpoint_on_close && !self.inner.poisoned.load(Ordering::Acquire) {
            if let Err(e) = self.inner.checkpoint() {
                tracing::warn!(error = %e, "checkpoint at shutdown failed; the next start replays the log");
            }
        }
    }

    /// Takes a checkpoint now (SQL `CHECKPOINT`): writes every table as of the newest commit
    /// and deletes the log records it covers. Blocks until done; `None` when nothing was
    /// committed since the last checkpoint.
    pub fn checkpoint(&self) -> StorageResult<Option<CheckpointInfo>> {
        self.inner.checkpoint()
    }

    /// The commit ts of the current checkpoint (0: none yet). Waits for a running checkpoint.
    pub fn checkpoint_ts(&self) -> u64 {
        self.inner.checkpoint_state.lock().ts()
    }

    /// Number of records in the commit log (a diagnostic: it scans the log).
    pub fn log_record_count(&self) -> StorageResult<usize> {
        let log_cf = cf(&self.inner.rocks, CF_LOG)?;
        let mut count = 0;
        for item in self
            .inner
            .rocks
            .iterator_cf(log_cf, rocksdb::IteratorMode::Start)
        {
            item?;
            count += 1;
        }
        Ok(count)
    }

    /// Starts a transaction.
    pub fn begin(self: &Arc<Self>, isolation: Isolation) -> Txn {
        let id = self.next_txn_id.fetch_add(1, Ordering::Relaxed);
        Txn::new(self.clone(), id, isolation)
    }

    /// The view of a statement outside a transaction block that runs as a SERIALIZABLE
    /// transaction of its own and only reads: its snapshot plus SIREAD marks, committed (read
    /// only) when the last clone of the view is dropped.
    pub fn serializable_view(self: &Arc<Self>) -> Arc<ReadView> {
        let id = self.next_txn_id.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.inner.predicate.register(&self.inner, id, true);
        let serial = Arc::new(SerialXact {
            inner: self.inner.clone(),
            id,
            commit_on_drop: true,
        });
        ReadView::serializable(snapshot, None, serial)
    }

    /// Serializable transactions whose SIREAD marks are kept now (running ones, and committed
    /// ones that overlap a running one). For tests and diagnostics.
    pub fn serializable_tracked(&self) -> usize {
        self.inner.predicate.tracked()
    }

    /// A snapshot of everything committed so far.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot()
    }

    /// The newest commit timestamp visible to new snapshots.
    pub fn visible_ts(&self) -> u64 {
        self.inner.visible_ts.load(Ordering::Acquire)
    }

    /// The catalog as of now (an immutable copy; cheap to take): the committed one, with the
    /// pending changes of the session's transaction applied when one is in scope
    /// ([`crate::pending`]).
    pub fn catalog(&self) -> Arc<Catalog> {
        let committed = self.committed_catalog();
        match crate::pending::current() {
            Some(pending) => pending.effective(committed),
            None => committed,
        }
    }

    /// The committed catalog, whatever transaction is in scope.
    pub fn committed_catalog(&self) -> Arc<Catalog> {
        self.inner.catalog.read().clone()
    }

    /// A number that changes whenever the catalog does, pending changes of any transaction
    /// included (for plan caches).
    pub fn catalog_version(&self) -> u64 {
        self.inner.catalog_version.load(Ordering::Acquire)
    }

    /// Makes every plan made so far stale (a pending catalog changed or was discarded).
    pub(crate) fn bump_catalog_version(&self) {
        self.inner.catalog_version.fetch_add(1, Ordering::AcqRel);
    }

    /// The live state of table `id` (the pending one when the transaction in scope changed it).
    pub fn table(&self, id: u32) -> Option<Arc<TableData>> {
        if let Some(pending) = crate::pending::current() {
            if let Some(data) = pending.table(id) {
                return data;
            }
        }
        self.committed_table(id)
    }

    /// The committed live state of table `id`, whatever transaction is in scope.
    pub fn committed_table(&self, id: u32) -> Option<Arc<TableData>> {
        self.inner.tables.read().get(&id).cloned()
    }

    /// The row locks.
    pub fn locks(&self) -> &LockManager {
        &self.inner.locks
    }

    /// The advisory locks sessions take (`pg_advisory_lock`).
    pub fn advisory_locks(&self) -> &AdvisoryLocks {
        &self.advisory_locks
    }

    /// Whether any transaction holds a relation lock now (one atomic load: the statement fast
    /// path asks before every execution).
    pub fn relations_locked(&self) -> bool {
        self.inner.relation_locks.load(Ordering::Acquire) != 0
    }

    /// Waits while another transaction holds the relation lock of table `id` (its uncommitted
    /// DDL changes the table). `waiter` is the waiting transaction, for deadlock detection
    /// (`None`: a statement outside a transaction block, which holds nothing).
    pub async fn wait_for_relation(&self, waiter: Option<TxnId>, id: u32) -> StorageResult<()> {
        let waiter = waiter.unwrap_or_else(|| self.next_txn_id.fetch_add(1, Ordering::Relaxed));
        let key = crate::txn::relation_lock_key(id);
        if self
            .inner
            .locks
            .lock(waiter, crate::txn::RELATION_LOCK_SPACE, &key, None)
            .await?
        {
            self.inner
                .locks
                .release(waiter, [(crate::txn::RELATION_LOCK_SPACE, key)]);
        }
        Ok(())
    }

    /// Follows every commit after `after_ts`.
    pub fn changes(&self, after_ts: u64) -> ChangeReader {
        self.inner.changes.subscribe(after_ts)
    }

    /// Bytes held by the hot tier.
    pub fn hot_bytes(&self) -> usize {
        self.inner.hot_bytes.load(Ordering::Relaxed).max(0) as usize
    }

    /// The hot tier's budget.
    pub fn memory_limit(&self) -> Option<usize> {
        self.inner.options.memory_limit
    }

    /// A fresh OID (persisted with the next catalog change that uses it).
    pub fn allocate_oid(&self) -> u32 {
        let mut catalog = self.inner.catalog.write();
        let next = catalog.next_oid;
        Arc::make_mut(&mut catalog).next_oid = next + 1;
        next
    }

    /// Commits catalog changes on their own (DDL outside a transaction's data).
    pub async fn commit_catalog(
        self: &Arc<Self>,
        changes: Vec<CatalogChange>,
    ) -> StorageResult<u64> {
        self.submit(CommitBody {
            catalog: changes,
            tables: vec![],
            serializable: None,
        })
        .await
    }

    pub(crate) async fn submit(&self, body: CommitBody) -> StorageResult<u64> {
        self.send(body)?
            .await
            .map_err(|_| StorageError::ShuttingDown)?
    }

    /// Commits catalog changes and waits for them on this thread (for callers that cannot
    /// await, such as a session ending in `Drop`). Meant for changes to temporary relations,
    /// which are applied in memory without a disk write.
    pub fn commit_catalog_blocking(&self, changes: Vec<CatalogChange>) -> StorageResult<u64> {
        let answer = self.send(CommitBody {
            catalog: changes,
            tables: vec![],
            serializable: None,
        })?;
        futures::executor::block_on(answer).map_err(|_| StorageError::ShuttingDown)?
    }

    /// Hands a commit to the committer; the answer arrives once it is applied.
    fn send(&self, mut body: CommitBody) -> StorageResult<oneshot::Receiver<StorageResult<u64>>> {
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned);
        }
        apply_on_commit_actions(&mut body);
        for change in &mut body.catalog {
            if let CatalogChange::PutRelation(def) = change {
                if def.is_table() {
                    *def = Arc::new(def.with_constraint_indexes(|| self.allocate_oid()));
                }
            }
        }
        let (record, record_start) = Self::build_record(&mut body)?;
        if u32::try_from(record.len() - record_start).is_err() {
            // RocksDB values are at most 4 GiB.
            return Err(StorageError::Internal(
                "a transaction's changes exceed 4 GiB of commit log in one commit".into(),
            ));
        }
        let (reply, answer) = oneshot::channel();
        {
            let sender = self.committer.lock();
            let sender = sender.as_ref().ok_or(StorageError::ShuttingDown)?;
            sender
                .send(CommitRequest {
                    body,
                    record,
                    record_start,
                    reply,
                })
                .map_err(|_| StorageError::ShuttingDown)?;
        }
        Ok(answer)
    }

    /// Encodes a commit's log record: the buffer and where the record starts in it. It is
    /// built around the biggest table's entries encoded ahead (a bulk load's), which are not
    /// copied; other tables' encoded entries are copied after them, and rows not encoded yet
    /// are encoded.
    fn build_record(body: &mut CommitBody) -> StorageResult<(Vec<u8>, usize)> {
        // Temporary tables are never logged.
        for table in body.tables.iter_mut() {
            if !table.persistence.is_permanent() {
                table.log = None;
            }
        }
        let host = body
            .tables
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.log.as_ref().map(|log| (log.bytes.len(), i)))
            .max()
            .map(|(_, i)| i);
        // The IPC form of a row is about the size of its row-format bytes (smaller for fixed
        // width columns): reserve that, plus per-batch framing.
        let estimate: usize = body
            .tables
            .iter()
            .enumerate()
            .filter(|(i, t)| Some(*i) != host && t.persistence.is_permanent())
            .map(|(_, t)| match &t.log {
                Some(log) => 16 + log.bytes.len(),
                None => {
                    1024 + t
                        .rows
                        .iter()
                        .map(|(k, r)| k.len() + pending_row(r).as_ref().map_or(0, |r| r.len()) + 8)
                        .sum::<usize>()
                }
            })
            .sum();
        let mut record = match host {
            Some(i) => {
                let table = &mut body.tables[i];
                let log = table.log.take().unwrap_or_default();
                let mut record = RecordBuilder::around(
                    log.bytes,
                    log.entries,
                    table.truncate.then_some(table.table_id),
                );
                record.reserve(estimate);
                record
            }
            None => RecordBuilder::with_capacity(estimate),
        };
        for (i, table) in body.tables.iter_mut().enumerate() {
            if Some(i) == host || !table.persistence.is_permanent() {
                continue;
            }
            if table.truncate {
                record.truncate(table.table_id);
            }
            if let Some(log) = table.log.take() {
                record.encoded(
                    &log.bytes[RECORD_PREFIX.min(log.bytes.len())..],
                    log.entries,
                );
            } else if !table.rows.is_empty() {
                record.rows(
                    &table.codec,
                    table.table_id,
                    table.rows.iter().map(|(k, r)| (k, pending_row(r))),
                )?;
            }
        }
        Ok(record.finish())
    }

    /// `nextval`: the sequence's next value, durable before it is returned.
    pub fn nextval(&self, sequence: &TableDef) -> StorageResult<Option<i64>> {
        let crate::catalog::RelationKind::Sequence(params) = &sequence.kind else {
            return Err(StorageError::Internal(format!(
                "\"{}\" is not a sequence",
                sequence.name
            )));
        };
        let mut states = self.inner.sequences.lock();
        let state =
            self.inner
                .sequence_state(&mut states, sequence.id, params, sequence.is_temporary())?;
        let next = if state.called {
            match state.last.checked_add(params.increment) {
                Some(v) if v <= params.max && v >= params.min => v,
                _ if params.cycle && params.increment > 0 => params.min,
                _ if params.cycle => params.max,
                _ => return Ok(None),
            }
        } else {
            state.last
        };
        let reserved = state.reserved.is_some_and(|r| {
            if params.increment > 0 {
                next <= r
            } else {
                next >= r
            }
        });
        if !reserved {
            let upto = next.saturating_add(params.increment.saturating_mul(SEQUENCE_RESERVE));
            if !sequence.is_temporary() {
                self.inner.persist_sequence(sequence.id, upto)?;
            }
            state.reserved = Some(upto);
        }
        state.last = next;
        state.called = true;
        Ok(Some(next))
    }

    /// `setval(seq, value, is_called)`.
    pub fn setval(&self, sequence: &TableDef, value: i64, called: bool) -> StorageResult<()> {
        let crate::catalog::RelationKind::Sequence(params) = &sequence.kind else {
            return Err(StorageError::Internal("not a sequence".into()));
        };
        let mut states = self.inner.sequences.lock();
        let state =
            self.inner
                .sequence_state(&mut states, sequence.id, params, sequence.is_temporary())?;
        // After a crash, continue after `value` (a gap is allowed, a repeat is not).
        if !sequence.is_temporary() {
            self.inner.persist_sequence(sequence.id, value)?;
        }
        state.last = value;
        state.called = called;
        state.reserved = Some(value);
        Ok(())
    }

    /// The sequence's last value and whether it was handed out (for `SELECT * FROM seq`).
    pub fn sequence_value(&self, sequence: &TableDef) -> StorageResult<(i64, bool)> {
        let crate::catalog::RelationKind::Sequence(params) = &sequence.kind else {
            return Err(StorageError::Internal("not a sequence".into()));
        };
        let mut states = self.inner.sequences.lock();
        let state =
            self.inner
                .sequence_state(&mut states, sequence.id, params, sequence.is_temporary())?;
        Ok((state.last, state.called))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
}

pub(crate) fn cf<'a>(rocks: &'a DB, name: &str) -> StorageResult<&'a rocksdb::ColumnFamily> {
    rocks
        .cf_handle(name)
        .ok_or_else(|| StorageError::Internal(format!("column family {name} missing")))
}

/// Creates the `postgres` database with its `public` schema in a new data directory.
fn bootstrap(rocks: &DB, catalog: &mut Catalog) -> StorageResult<()> {
    let changes = [
        CatalogChange::PutDatabase(DatabaseDef {
            oid: 5,
            name: crate::DEFAULT_DATABASE.into(),
        }),
        CatalogChange::PutSchema(SchemaDef {
            oid: 2200,
            database: crate::DEFAULT_DATABASE.into(),
            name: crate::DEFAULT_SCHEMA.into(),
            temporary: false,
        }),
    ];
    let mut batch = WriteBatch::default();
    let catalog_cf = cf(rocks, CF_CATALOG)?;
    for change in &changes {
        let (key, value) = Catalog::persist(change)?;
        if let Some(value) = value {
            batch.put_cf(catalog_cf, key, value);
        }
        catalog.apply(change);
    }
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    rocks.write_opt(batch, &sync)?;
    Ok(())
}

/// Applies temporary tables' `ON COMMIT` actions to a commit: a table created `ON COMMIT
/// DROP` (with the sequences it owns and the views that read it) never reaches the catalog,
/// and rows written to an `ON COMMIT DELETE ROWS` table are dropped — every commit leaves such
/// a table empty, so what a transaction wrote to it is all it could hold.
fn apply_on_commit_actions(body: &mut CommitBody) {
    let mut dropped: Vec<u32> = body
        .catalog
        .iter()
        .filter_map(|change| match change {
            CatalogChange::PutRelation(def) if def.on_commit() == Some(OnCommit::Drop) => {
                Some(def.id)
            }
            _ => None,
        })
        .collect();
    if !dropped.is_empty() {
        // Dependents: owned sequences and views over dropped relations, to a fixed point.
        loop {
            let before = dropped.len();
            for change in &body.catalog {
                let CatalogChange::PutRelation(def) = change else {
                    continue;
                };
                let depends = match &def.kind {
                    RelationKind::Sequence(seq) => {
                        seq.owned_by.is_some_and(|(t, _)| dropped.contains(&t))
                    }
                    RelationKind::View { depends_on, .. } => {
                        depends_on.iter().any(|d| dropped.contains(d))
                    }
                    RelationKind::Table => false,
                };
                if depends && def.is_temporary() && !dropped.contains(&def.id) {
                    dropped.push(def.id);
                }
            }
            if dropped.len() == before {
                break;
            }
        }
        body.catalog.retain(|change| match change {
            CatalogChange::PutRelation(def) => !dropped.contains(&def.id),
            CatalogChange::DropRelation(id) => !dropped.contains(id),
            _ => true,
        });
    }
    body.tables.retain(|table| {
        !dropped.contains(&table.table_id)
            && table.persistence != Persistence::Temporary(OnCommit::DeleteRows)
    });
}

/// Applies the log records after `after_ts` (the checkpoint's) to the tables; returns the last
/// commit ts (0 if none), the records and the bytes replayed.
fn replay(
    rocks: &DB,
    tables: &HashMap<u32, Arc<TableData>>,
    after_ts: u64,
) -> StorageResult<(u64, usize, u64)> {
    let log_cf = cf(rocks, CF_LOG)?;
    let mut last_ts = 0;
    let mut records = 0;
    let mut bytes = 0u64;
    let start = after_ts.saturating_add(1).to_be_bytes();
    for item in rocks.iterator_cf(
        log_cf,
        rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
    ) {
        let (key, value) = item?;
        records += 1;
        bytes += value.len() as u64;
        let ts = u64::from_be_bytes(
            key.as_ref()
                .try_into()
                .map_err(|_| StorageError::corrupt("commit log key", "not 8 bytes"))?,
        );
        let mut entries = decode_record(&value)?.into_iter().peekable();
        while let Some(entry) = entries.next() {
            match entry {
                LogEntry::Truncate { table_id } => {
                    if let Some(table) = tables.get(&table_id) {
                        for (key, _) in table.hot.visible_keys(ts) {
                            table.hot.apply(&key, None, ts, ts);
                        }
                    }
                }
                LogEntry::Rows { table_id, ipc } => {
                    // A table dropped later has no definition: its records are history.
                    if let Some(table) = tables.get(&table_id) {
                        let mut changes = table.codec.decode_changes(&ipc)?;
                        // A bulk load logs its rows as several entries: applied at once, they
                        // fill an empty table bottom-up in one build.
                        while let Some(LogEntry::Rows { table_id: next, .. }) = entries.peek() {
                            if *next != table_id {
                                break;
                            }
                            if let Some(LogEntry::Rows { ipc, .. }) = entries.next() {
                                changes.extend(table.codec.decode_changes(&ipc)?);
                            }
                        }
                        table.hot.apply_all(
                            changes.iter().map(|(k, r)| (k, r)),
                            ts,
                            ts,
                            |key, _, _| table.saw_rowid(key),
                        );
                    }
                }
            }
        }
        last_ts = ts;
    }
    Ok((last_ts, records, bytes))
}

impl Inner {
    /// The newest commit timestamp visible to new snapshots.
    pub(crate) fn visible_ts(&self) -> u64 {
        self.visible_ts.load(Ordering::Acquire)
    }

    /// Registers a snapshot of everything committed so far.
    pub(crate) fn snapshot(self: &Arc<Self>) -> Arc<Snapshot> {
        let mut active = self.snapshots.lock();
        let ts = self.visible_ts.load(Ordering::Acquire);
        *active.entry(ts).or_insert(0) += 1;
        Arc::new(Snapshot {
            ts,
            inner: self.clone(),
        })
    }

    /// The oldest snapshot still registered (or the visible ts when none is).
    fn horizon(&self) -> u64 {
        let active = self.snapshots.lock();
        active
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.visible_ts.load(Ordering::Acquire))
    }

    fn run_committer(self: Arc<Self>, receiver: mpsc::Receiver<CommitRequest>, mut next_ts: u64) {
        let mut commits_since_vacuum = 0usize;
        while let Ok(first) = receiver.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            // A commit that changes the catalog is written in a group of its own, so the
            // commits around it are validated against the catalog they will be applied to.
            let mut pending = Vec::new();
            for request in group {
                if request.body.catalog.is_empty() {
                    pending.push(request);
                } else {
                    next_ts = self.write_group(std::mem::take(&mut pending), next_ts);
                    next_ts = self.write_group(vec![request], next_ts);
                }
            }
            commits_since_vacuum += pending.len() + 1;
            next_ts = self.write_group(pending, next_ts);
            if commits_since_vacuum >= 4096 {
                commits_since_vacuum = 0;
                let horizon = self.horizon();
                let tables: Vec<_> = self.tables.read().values().cloned().collect();
                for table in tables {
                    for index in &table.indexes {
                        index.vacuum(horizon);
                    }
                    let before = table.hot.bytes() as i64;
                    table.hot.vacuum(horizon);
                    self.hot_bytes
                        .fetch_add(table.hot.bytes() as i64 - before, Ordering::Relaxed);
                }
            }
        }
    }

    /// Validates, writes (one fsync), applies and acknowledges a group; returns the next ts.
    fn write_group(&self, group: Vec<CommitRequest>, mut next_ts: u64) -> u64 {
        if group.is_empty() {
            return next_ts;
        }
        let mut accepted = Vec::with_capacity(group.len());
        let mut log_bytes = 0u64;
        let mut batch = WriteBatch::default();
        let (log_cf, catalog_cf) = match (cf(&self.rocks, CF_LOG), cf(&self.rocks, CF_CATALOG)) {
            (Ok(l), Ok(c)) => (l, c),
            _ => {
                for request in group {
                    let _ = request.reply.send(Err(StorageError::Internal(
                        "column families missing".into(),
                    )));
                }
                return next_ts;
            }
        };
        let mut durable_commits = 0usize;
        for mut request in group {
            let catalog_writes = self
                .validate(&request.body)
                .and_then(|()| self.durable_catalog_writes(&request.body.catalog));
            let catalog_writes: Vec<CatalogWrite> = match catalog_writes {
                Ok(writes) => writes,
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                    continue;
                }
            };
            if let Some(txn) = request.body.serializable {
                // Last check before the timestamp: a serializable commit that would complete
                // a dangerous structure fails here (and takes no timestamp).
                if let Err(e) =
                    self.predicate
                        .precommit(txn, next_ts, &request.body.tables, self.visible_ts())
                {
                    let _ = request.reply.send(Err(e));
                    continue;
                }
            }
            let ts = next_ts;
            next_ts += 1;
            // The batch holds its own copy: drop the record now, not after the apply.
            let record = std::mem::take(&mut request.record);
            // A commit that only touches temporary relations writes nothing at all: it gets
            // its timestamp and is applied in memory.
            let durable = !catalog_writes.is_empty()
                || request
                    .body
                    .tables
                    .iter()
                    .any(|t| t.persistence.is_permanent());
            if durable {
                durable_commits += 1;
                let record_bytes = &record[request.record_start.min(record.len())..];
                batch.put_cf(log_cf, ts.to_be_bytes(), record_bytes);
                log_bytes += record_bytes.len() as u64;
            }
            drop(record);
            for (key, value) in &catalog_writes {
                match value {
                    Some(value) => batch.put_cf(catalog_cf, key, value),
                    None => batch.delete_cf(catalog_cf, key),
                }
            }
            if !catalog_writes.is_empty() {
                let next_oid = self.catalog.read().next_oid;
                batch.put_cf(
                    catalog_cf,
                    crate::catalog::keys::NEXT_OID,
                    next_oid.to_string().into_bytes(),
                );
            }
            accepted.push((ts, request));
        }
        if accepted.is_empty() {
            return next_ts;
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let written = match durable_commits {
            0 => Ok(()),
            _ => self.rocks.write_opt(batch, &sync),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "commit log write failed; refusing further commits");
            self.poisoned.store(true, Ordering::Release);
            for (_, request) in accepted {
                let _ = request.reply.send(Err(StorageError::Poisoned));
            }
            return next_ts;
        }
        let horizon = self.horizon();
        // Serializable commits are acknowledged once their now-visible registrations that
        // nobody overlaps any more are forgotten (so a finished workload leaves none).
        let mut serializable_replies = Vec::new();
        for (ts, request) in accepted {
            let serializable = request.body.serializable.is_some();
            self.apply(ts, request.body, horizon);
            self.visible_ts.store(ts, Ordering::Release);
            if serializable {
                serializable_replies.push((request.reply, ts));
            } else {
                let _ = request.reply.send(Ok(ts));
            }
        }
        if !serializable_replies.is_empty() {
            self.predicate.forget_finished(self.visible_ts());
            for (reply, ts) in serializable_replies {
                let _ = reply.send(Ok(ts));
            }
        }
        self.note_log_bytes(log_bytes);
        next_ts
    }

    /// Checks that every table a commit writes still has the layout its rows were encoded for.
    fn validate(&self, body: &CommitBody) -> StorageResult<()> {
        if !body.catalog.is_empty() {
            self.validate_names(&body.catalog)?;
        }
        let tables = self.tables.read();
        self.pending_indexes.lock().clear();
        for change in &body.catalog {
            let CatalogChange::PutRelation(def) = change else {
                continue;
            };
            let Some(table) = tables.get(&def.id) else {
                continue;
            };
            if !def.is_table() || !TableCodec::new(def)?.same_layout(&table.codec) {
                continue;
            }
            for index_def in &def.indexes {
                if table.indexes.iter().any(|i| i.same_shape(index_def, def)) {
                    continue;
                }
                let index = HotIndex::new(index_def, def)?;
                index.build(&index_def.name, def, &table.codec, &table.hot)?;
                self.pending_indexes
                    .lock()
                    .insert(index_def.oid, Arc::new(index));
            }
        }
        for table in &body.tables {
            let redefined = body.catalog.iter().rev().find_map(|c| match c {
                CatalogChange::PutRelation(def) if def.id == table.table_id => Some(def.clone()),
                _ => None,
            });
            let same = match redefined {
                Some(def) => TableCodec::new(&def)?.same_layout(&table.codec),
                None => {
                    let Some(live) = tables.get(&table.table_id) else {
                        return Err(StorageError::SerializationFailure);
                    };
                    let unchecked = table.unique_checked.as_ref().is_some_and(|checked| {
                        live.indexes
                            .iter()
                            .any(|i| i.unique && !checked.contains(&i.oid))
                    });
                    live.codec.same_layout(&table.codec) && !unchecked
                }
            };
            if !same {
                return Err(StorageError::SerializationFailure);
            }
        }
        Ok(())
    }

    /// Checks that the changes leave every relation name unique in its schema. Transactions
    /// serialise DDL on a name with name locks; this is the last line of defence. Also checks
    /// that temporary relations go into temporary schemas and permanent ones into permanent
    /// schemas (so a permanent relation can never hide in a schema that is not persisted).
    fn validate_names(&self, changes: &[CatalogChange]) -> StorageResult<()> {
        let mut scratch = (**self.catalog.read()).clone();
        for change in changes {
            if let CatalogChange::PutRelation(def) = change {
                if let Some(other) = scratch.relation_by_name(&def.database, &def.schema, &def.name)
                {
                    if other.id != def.id {
                        return Err(StorageError::DuplicateTable(def.name.clone()));
                    }
                }
                if let Some(schema) = scratch.schema(&def.database, &def.schema) {
                    if schema.temporary != def.is_temporary() {
                        return Err(StorageError::Internal(format!(
                            "relation \"{}\" and its schema \"{}\" differ in persistence",
                            def.name, def.schema
                        )));
                    }
                }
            }
            scratch.apply(change);
        }
        Ok(())
    }

    /// The catalog keys a commit's changes write or delete: none for temporary schemas and
    /// relations, which live in memory only.
    fn durable_catalog_writes(
        &self,
        changes: &[CatalogChange],
    ) -> StorageResult<Vec<CatalogWrite>> {
        let mut writes = Vec::with_capacity(changes.len());
        let mut scratch: Option<Catalog> = None;
        for (i, change) in changes.iter().enumerate() {
            let in_memory_only = match change {
                CatalogChange::PutDatabase(_) | CatalogChange::DropDatabase(_) => false,
                CatalogChange::PutSchema(schema) => schema.temporary,
                CatalogChange::PutRelation(def) => def.is_temporary(),
                // A drop writes nothing when what it drops is temporary, or gone already
                // (then it is not on disk either), as of the changes before it.
                CatalogChange::DropSchema(..) | CatalogChange::DropRelation(_) => {
                    let catalog = scratch.get_or_insert_with(|| {
                        let mut catalog = (**self.catalog.read()).clone();
                        for earlier in &changes[..i] {
                            catalog.apply(earlier);
                        }
                        catalog
                    });
                    match change {
                        CatalogChange::DropSchema(database, name) => {
                            catalog.schema(database, name).is_none_or(|s| s.temporary)
                        }
                        CatalogChange::DropRelation(id) => {
                            catalog.relation(*id).is_none_or(|r| r.is_temporary())
                        }
                        _ => false,
                    }
                }
            };
            if let Some(catalog) = scratch.as_mut() {
                catalog.apply(change);
            }
            if !in_memory_only {
                writes.push(Catalog::persist(change)?);
            }
        }
        Ok(writes)
    }

    fn apply(&self, ts: u64, body: CommitBody, horizon: u64) {
        if !body.catalog.is_empty() {
            self.apply_catalog(&body.catalog);
        }
        // One change per written row at least (an update adds its retraction): reserved up
        // front, so a bulk load's million changes are not copied at every doubling.
        let mut changes = Vec::with_capacity(body.tables.iter().map(|t| t.rows.len()).sum());
        let tables = self.tables.read();
        for commit in body.tables {
            let Some(table) = tables.get(&commit.table_id) else {
                continue;
            };
            // A temporary table's changes stay in its session: nothing downstream (views,
            // SUBSCRIBE) may read them.
            let published = commit.persistence.is_permanent();
            let changes_before = changes.len();
            let mut delta = 0;
            let indexed = !table.indexes.is_empty();
            let mut index_rows: Vec<(Key, Option<RowBytes>, Option<RowBytes>)> = Vec::new();
            if commit.truncate {
                for (key, row) in table.hot.visible_keys(ts) {
                    delta += table.hot.apply(&key, None, ts, horizon).1;
                    if indexed {
                        index_rows.push((key.clone(), Some(row.clone()), None));
                    }
                    changes.push(RowChange {
                        table_id: commit.table_id,
                        row,
                        diff: -1,
                    });
                }
            }
            delta += table
                .hot
                .apply_pending(commit.rows, ts, horizon, |key, applied, new| {
                    table.saw_rowid(key);
                    if indexed {
                        index_rows.push((key.clone(), applied.old.clone(), new.clone()));
                    }
                    if let Some(old) = applied.old {
                        changes.push(RowChange {
                            table_id: commit.table_id,
                            row: old,
                            diff: -1,
                        });
                    }
                    if let Some(new) = new {
                        changes.push(RowChange {
                            table_id: commit.table_id,
                            row: new.clone(),
                            diff: 1,
                        });
                    }
                });
            if !published {
                changes.truncate(changes_before);
            }
            self.hot_bytes.fetch_add(delta as i64, Ordering::Relaxed);
            for index in &table.indexes {
                match index_changes(index, &table.codec, &index_rows) {
                    Ok(entries) => index.record(entries, ts),
                    // The rows were encoded by this codec; failing to decode them is our bug.
                    Err(e) => tracing::error!(error = %e, index = index.oid, "index update failed"),
                }
            }
        }
        drop(tables);
        self.changes.publish(CommitChanges {
            commit_ts: ts,
            changes,
        });
    }

    fn apply_catalog(&self, changes: &[CatalogChange]) {
        let mut catalog = self.catalog.write();
        let mut tables = self.tables.write();
        for change in changes {
            Arc::make_mut(&mut catalog).apply(change);
            match change {
                CatalogChange::PutRelation(def) if def.is_table() => {
                    let codec = match TableCodec::new(def) {
                        Ok(c) => Arc::new(c),
                        Err(e) => {
                            // Validated before the write; a failure here is our bug.
                            tracing::error!(error = %e, table = def.id, "table codec failed");
                            continue;
                        }
                    };
                    let data = match tables.get(&def.id) {
                        Some(old) if old.codec.same_layout(&codec) => TableData {
                            indexes: self.indexes_for(def, &codec, old),
                            def: def.clone(),
                            codec,
                            hot: old.hot.clone(),
                            next_rowid: old.next_rowid.clone(),
                        },
                        old => {
                            if let Some(old) = old {
                                self.hot_bytes
                                    .fetch_sub(old.hot.bytes() as i64, Ordering::Relaxed);
                            }
                            let indexes = def
                                .indexes
                                .iter()
                                .filter_map(|index| match HotIndex::new(index, def) {
                                    Ok(index) => Some(Arc::new(index)),
                                    Err(e) => {
                                        tracing::error!(error = %e, "index definition failed");
                                        None
                                    }
                                })
                                .collect();
                            TableData {
                                def: def.clone(),
                                codec,
                                hot: Arc::new(HotTable::default()),
                                indexes,
                                next_rowid: Arc::new(AtomicU64::new(1)),
                            }
                        }
                    };
                    tables.insert(def.id, Arc::new(data));
                }
                CatalogChange::DropRelation(id) => {
                    if let Some(old) = tables.remove(id) {
                        self.hot_bytes
                            .fetch_sub(old.hot.bytes() as i64, Ordering::Relaxed);
                    }
                    self.sequences.lock().remove(id);
                }
                _ => {}
            }
        }
        self.catalog_version.fetch_add(1, Ordering::AcqRel);
    }

    /// The indexes of `def` over the rows of `old` (same layout): kept ones as they are, new
    /// ones from `validate`'s builds.
    fn indexes_for(
        &self,
        def: &TableDef,
        codec: &TableCodec,
        old: &TableData,
    ) -> Vec<Arc<HotIndex>> {
        let mut pending = self.pending_indexes.lock();
        let mut out = Vec::with_capacity(def.indexes.len());
        for index_def in &def.indexes {
            if let Some(kept) = old.indexes.iter().find(|i| i.same_shape(index_def, def)) {
                out.push(kept.clone());
                continue;
            }
            if let Some(built) = pending.remove(&index_def.oid) {
                out.push(built);
                continue;
            }
            // Not built by validate (a bug if it happens): build it now.
            match HotIndex::new(index_def, def).and_then(|index| {
                index.build(&index_def.name, def, codec, &old.hot)?;
                Ok(index)
            }) {
                Ok(index) => out.push(Arc::new(index)),
                Err(e) => tracing::error!(error = %e, index = index_def.name, "index build failed"),
            }
        }
        out
    }

    fn sequence_state<'a>(
        &self,
        states: &'a mut HashMap<u32, SequenceState>,
        id: u32,
        params: &crate::catalog::SequenceDef,
        temporary: bool,
    ) -> StorageResult<&'a mut SequenceState> {
        let entry = match states.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => return Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => e,
        };
        // A temporary sequence is never stored.
        let stored = match temporary {
            true => None,
            false => self
                .rocks
                .get_cf(cf(&self.rocks, CF_SEQUENCES)?, id.to_be_bytes())?,
        };
        let state = match stored {
            // After a restart, continue past everything that may have been handed out.
            Some(bytes) => {
                let reserved = i64::from_be_bytes(
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| StorageError::corrupt("sequence", "not 8 bytes"))?,
                );
                SequenceState {
                    last: reserved,
                    called: true,
                    reserved: Some(reserved),
                }
            }
            None => SequenceState {
                last: params.start,
                called: false,
                reserved: None,
            },
        };
        Ok(entry.insert(state))
    }

    fn persist_sequence(&self, id: u32, reserved: i64) -> StorageResult<()> {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.rocks.put_cf_opt(
            cf(&self.rocks, CF_SEQUENCES)?,
            id.to_be_bytes(),
            reserved.to_be_bytes(),
            &sync,
        )?;
        Ok(())
    }
}

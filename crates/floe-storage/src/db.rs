//! The database: the one object sessions hold. It ties together the commit clock, the commit
//! log and catalog in RocksDB, the live tables, snapshots, row locks, sequences and the change
//! stream; each of those is owned by a sibling module:
//!
//! - `table` owns one table's live state (definition, codec, hot rows, indexes);
//! - `commit` owns the committer thread and group commit;
//! - `recovery` owns bootstrap of a new data directory, checkpoint load and log replay;
//! - `sequence` owns sequences;
//! - `checkpoint` owns checkpoints and log truncation.
//!
//! Invariants: every commit has a unique `u64` timestamp from one sequence, handed out by the
//! committer only; `visible_ts` only moves forward, and a snapshot at `ts` sees exactly the
//! commits up to `ts`; versions a registered [`Snapshot`] can see are kept until it is dropped
//! (the oldest registered snapshot is the *horizon*).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};
use rocksdb::DB;

use crate::advisory::AdvisoryLocks;
use crate::catalog::Catalog;
use crate::changes::{ChangeLog, ChangeReader};
use crate::checkpoint::{
    self, CheckpointFailpoint, CheckpointInfo, CheckpointState, CheckpointTrigger,
};
use crate::cold_run::RunMeta;
use crate::cold_tier::ColdTier;
use crate::commit::CommitRequest;
use crate::compaction::{self, CompactionInfo, Compactor};
use crate::error::{StorageError, StorageResult};
use crate::index::HotIndex;
use crate::lock::{LockManager, TxnId};
use crate::predicate::{PredicateLocks, SerialXact};
use crate::recovery::{self, Recovered};
use crate::sequence::SequenceState;
use crate::table::TableData;
use crate::txn::{Isolation, ReadView, Txn};

pub(crate) const CF_LOG: &str = "log";
pub(crate) const CF_CATALOG: &str = "catalog";

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
    /// Where the cold tier lives: `file:///dir` or `s3://bucket/prefix` (`None`:
    /// `file://<data dir>/cold`).
    pub storage: Option<String>,
    /// Whether to open the cold tier at all (its store, manifest writer and runs).
    pub cold_tier: bool,
    /// Checkpoints flush keys not written in this many commits into cold runs (every settled
    /// key when the hot tier holds more than half of `memory_limit`; [`FLUSH_BY_AGE_NEVER`]:
    /// only then). `None`: no flush.
    pub flush_age_commits: Option<u64>,
    /// Tests only: make checkpoints fail at this point.
    #[doc(hidden)]
    pub checkpoint_failpoint: Option<CheckpointFailpoint>,
    /// Tests only: the cold tier's store itself (a fault-injecting one), instead of
    /// [`DbOptions::storage`].
    #[doc(hidden)]
    pub cold_store: Option<Arc<crate::store::ColdStore>>,
}

/// The longest a writer waits for a flush under memory pressure ([`Db::wait_for_flush`]).
pub const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// [`DbOptions::flush_age_commits`]: rows go cold under memory pressure only.
pub const FLUSH_BY_AGE_NEVER: u64 = u64::MAX;

/// Default of [`DbOptions::flush_age_commits`]: under memory pressure only. Scans read cold
/// runs by batch now (`docs/design/0012-cold-scans.md`), but point reads and updates of a cold
/// key are several times slower than of a hot one (bloom filter, row-group read), so flushing
/// idle rows of a table that fits in memory would slow an update workload like pgbench's.
pub const DEFAULT_FLUSH_AGE_COMMITS: u64 = FLUSH_BY_AGE_NEVER;

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
            storage: None,
            cold_tier: true,
            flush_age_commits: Some(DEFAULT_FLUSH_AGE_COMMITS),
            checkpoint_failpoint: None,
            cold_store: None,
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

/// Everything the committer thread shares with the sessions.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) rocks: DB,
    pub(crate) catalog: RwLock<Arc<Catalog>>,
    pub(crate) tables: RwLock<HashMap<u32, Arc<TableData>>>,
    pub(crate) visible_ts: AtomicU64,
    pub(crate) snapshots: Mutex<BTreeMap<u64, usize>>,
    pub(crate) locks: LockManager,
    /// Serializable transactions' SIREAD marks and rw-conflicts.
    pub(crate) predicate: PredicateLocks,
    /// Relation locks held now by all transactions ([`crate::Txn::lock_relation`]): while it
    /// is zero, statements skip looking for them.
    pub(crate) relation_locks: AtomicUsize,
    pub(crate) changes: Arc<ChangeLog>,
    pub(crate) hot_bytes: AtomicI64,
    pub(crate) poisoned: AtomicBool,
    pub(crate) sequences: Mutex<HashMap<u32, SequenceState>>,
    pub(crate) catalog_version: AtomicU64,
    /// Indexes built by `validate` for the catalog commit being written, by OID.
    pub(crate) pending_indexes: Mutex<HashMap<u32, Arc<HotIndex>>>,
    pub(crate) options: DbOptions,
    /// The current checkpoint; held for the whole of a checkpoint, so one runs at a time.
    pub(crate) checkpoint_state: Mutex<CheckpointState>,
    /// Log bytes written since the current checkpoint's ts (approximate).
    pub(crate) log_bytes_since_checkpoint: AtomicU64,
    pub(crate) checkpoint_trigger: CheckpointTrigger,
    /// The cold tier: its store and this process's manifest writer (`None`: disabled).
    pub(crate) cold: Option<Arc<ColdTier>>,
    /// Compaction of the cold runs: its thread's wake-up and what it did.
    pub(crate) compactor: Compactor,
}

/// An open database. Cheap to share as `Arc<Db>`.
#[derive(Debug)]
pub struct Db {
    pub(crate) inner: Arc<Inner>,
    pub(crate) committer: Mutex<Option<mpsc::Sender<CommitRequest>>>,
    pub(crate) committer_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) checkpointer_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) compactor_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) closed: AtomicBool,
    pub(crate) next_txn_id: AtomicU64,
    pub(crate) advisory_locks: AdvisoryLocks,
}

impl Db {
    /// Opens (or creates) the database in `dir`, replaying the commit log.
    pub fn open(dir: &Path, options: DbOptions) -> StorageResult<Arc<Db>> {
        // The cold tier first: recovery attaches each table's runs before it loads the hot
        // tier, so tombstones that hide cold versions are kept from the start.
        let cold = match options.cold_tier {
            true => {
                let cold = match &options.cold_store {
                    Some(store) => ColdTier::with_store(store.clone())?,
                    None => ColdTier::open(options.storage.as_deref(), dir)?,
                };
                cold.set_memory_limit(options.memory_limit);
                Some(Arc::new(cold))
            }
            false => None,
        };
        let Recovered {
            rocks,
            catalog,
            tables,
            checkpoint_state,
            last_ts,
            log_bytes,
            hot_bytes,
        } = recovery::recover(dir, cold.as_deref(), options.memory_limit)?;
        if let Some(cold) = &cold {
            cold.sweep();
        }

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
                // The change stream's retention counts against the budget: an eighth at most.
                match options.memory_limit {
                    Some(limit) => options.change_retention_bytes.min(limit / 8),
                    None => options.change_retention_bytes,
                },
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
            cold,
            compactor: Compactor::default(),
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
        let compactor = match inner.cold {
            Some(_) => {
                let compactor_inner = inner.clone();
                Some(
                    std::thread::Builder::new()
                        .name("floe-compactor".into())
                        .spawn(move || compaction::run_compactor(compactor_inner))?,
                )
            }
            None => None,
        };
        // A long log replayed at startup is worth a checkpoint right away (so is a hot tier
        // replayed past half its budget: the flush makes room before the first write needs
        // it), and runs a crash left uncompacted a compaction.
        inner.maybe_trigger_checkpoint(log_bytes);
        inner.maybe_flush_for_memory();
        inner.request_compaction();
        Ok(Arc::new(Db {
            inner,
            committer: Mutex::new(Some(sender)),
            committer_thread: Mutex::new(Some(thread)),
            checkpointer_thread: Mutex::new(Some(checkpointer)),
            compactor_thread: Mutex::new(compactor),
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
        self.inner.compactor.stop();
        if let Some(thread) = self.compactor_thread.lock().take() {
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

    /// Compacts every table's cold runs now, merging any level-0 run (the background
    /// compactor waits for [`compaction::L0_TRIGGER`] of them), and drops runs of dropped
    /// tables from the manifest. Returns the number of tables compacted.
    pub fn compact(&self) -> StorageResult<usize> {
        self.inner.compact(true)
    }

    /// Compactions running now and the last ones finished, oldest first.
    pub fn compactions(&self) -> Vec<CompactionInfo> {
        self.inner.compactor.history()
    }

    /// The runs the newest manifest version lists (empty without a cold tier).
    pub fn cold_runs(&self) -> Vec<RunMeta> {
        self.inner
            .cold
            .as_ref()
            .map(|cold| cold.manifest.current().runs.clone())
            .unwrap_or_default()
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

    /// The oldest snapshot any reader still holds (the newest visible ts when none is held):
    /// no reader will ask for data as of an older ts.
    pub fn oldest_snapshot_ts(&self) -> u64 {
        self.inner.horizon()
    }

    /// A snapshot at the committed `ts`, taken while `holder` (a snapshot at or before `ts`)
    /// keeps every version `ts` needs (see [`Inner::snapshot_at`]).
    pub fn snapshot_at(&self, ts: u64, holder: &Snapshot) -> Option<Arc<Snapshot>> {
        self.inner.snapshot_at(ts, holder)
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

    /// Backpressure: while the hot tier is past half its budget and the flush asked for has
    /// not finished, a writer waits for it (up to [`FLUSH_WAIT`]) instead of running into the
    /// limit (53200) while memory is about to be freed (after a restart replayed a large log,
    /// or while a bulk load outruns the flushes).
    pub async fn wait_for_flush(&self) {
        let inner = &self.inner;
        if inner.cold.is_none() || !inner.under_memory_pressure() {
            return;
        }
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        // A flush that was already under way may have started before the rows now pressing
        // were written: once it is done and the pressure stays, one more is asked for and
        // waited on (not more: rows no flush can move must not hold a writer for the whole
        // wait on every statement).
        for round in 0..2 {
            if round > 0 {
                inner.maybe_flush_for_memory();
            }
            while inner.checkpoint_trigger.is_pending()
                && inner.under_memory_pressure()
                && std::time::Instant::now() < deadline
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            if !inner.under_memory_pressure() || std::time::Instant::now() >= deadline {
                return;
            }
        }
    }

    /// The cold tier's location and this process's writer epoch (`None`: disabled).
    pub fn cold_tier(&self) -> Option<(String, u64)> {
        let cold = self.inner.cold.as_ref()?;
        Some((cold.store.location().to_string(), cold.manifest.epoch()))
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

    /// Registers a snapshot at `ts` while `holder` (at or before `ts`) keeps its versions:
    /// a reader that follows commits moves its read point forward without jumping to the
    /// newest commit. `None` when `ts` is not committed yet or `holder` is newer.
    pub(crate) fn snapshot_at(
        self: &Arc<Self>,
        ts: u64,
        holder: &Snapshot,
    ) -> Option<Arc<Snapshot>> {
        let mut active = self.snapshots.lock();
        if holder.ts > ts || ts > self.visible_ts.load(Ordering::Acquire) {
            return None;
        }
        *active.entry(ts).or_insert(0) += 1;
        Some(Arc::new(Snapshot {
            ts,
            inner: self.clone(),
        }))
    }

    /// The oldest snapshot still registered (or the visible ts when none is).
    pub(crate) fn horizon(&self) -> u64 {
        let active = self.snapshots.lock();
        active
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| self.visible_ts.load(Ordering::Acquire))
    }
}

//! Checkpoints: the contents of every table as of one commit timestamp, written into RocksDB so
//! the commit log before it can be deleted. Restart time and disk then depend on the data, not
//! on the history that produced it.
//!
//! # Format
//!
//! Everything lives in the `checkpoint` column family:
//!
//! - `current` → `[version=1][generation: u64 BE][checkpoint_ts: u64 BE]`: the checkpoint in
//!   use. Absent until the first checkpoint completes.
//! - `r[generation: u64 BE][table_id: u32 BE][chunk: u32 BE]` → an Arrow IPC stream written by
//!   [`crate::TableCodec::encode_changes`]: up to [`CHUNK_BYTES`] of the table's live rows at
//!   `checkpoint_ts`, keys included. Columns are named by stable column id, exactly like commit
//!   log records, so a checkpoint written before an ALTER TABLE decodes afterwards (added
//!   columns read as NULL; a rewrite after the checkpoint is in the log and truncates first).
//!   Arrow's row format is not stable across versions, so it never reaches disk; IPC is.
//!
//! # Taking one (crash-safe at every step)
//!
//! 1. Register a snapshot at the newest visible ts (so the hot tier keeps those versions) and
//!    take the table list *after* it: a table rewritten later than the snapshot then shows as
//!    empty at the snapshot, and its rewrite (TRUNCATE + rows) is in the log after it.
//! 2. Scan each table at the snapshot in bounded chunks (the hot tier's read lock is held for
//!    one chunk of keys only, so commits continue) and write the rows under a **new
//!    generation** in WriteBatches of about [`BATCH_BYTES`], without the WAL, then flush the
//!    column family so the SST files are durable. Memory stays bounded by one batch.
//! 3. Switch `current` to the new generation in one synced write. Before this point a crash
//!    leaves the previous checkpoint and the whole log in charge; the partial generation is
//!    garbage that the next open deletes. Generations are never reused, so leftover chunks can
//!    never mix into a later checkpoint.
//! 4. Delete the old generation and the log records with `commit_ts <= checkpoint_ts`
//!    (`delete_range`; then memtables are flushed so RocksDB can drop its own WAL files, and a
//!    compaction of those ranges reclaims the space). A crash here is
//!    harmless: recovery reads only the current generation and only log records after
//!    `checkpoint_ts`, and the next open deletes again.
//!
//! # When
//!
//! A background thread checkpoints when the log has grown by more than
//! [`crate::DbOptions::checkpoint_log_bytes`] since the last checkpoint; `CHECKPOINT` in SQL
//! ([`crate::Db::checkpoint`]) and a clean [`crate::Db::close`] take one too. A checkpoint with
//! nothing new since the last one is skipped. Only one runs at a time.
//!
//! # Recovery
//!
//! Load `current`'s chunks into the hot tier as one version per row at `checkpoint_ts`
//! (chunks of tables the catalog no longer has are skipped: dropped tables stay dropped), then
//! replay the log records after `checkpoint_ts`. The clock resumes after the larger of the two,
//! so an empty log after a clean shutdown cannot rewind it. Secondary indexes are rebuilt from
//! the hot tier as before; sequences and the catalog are stored apart and are unaffected.
//!
//! The change stream is in memory only and starts at the recovered ts, so nothing reads the
//! log's history; deleting it loses nothing a reader could ask for.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rocksdb::{WriteBatch, WriteOptions, DB};

use crate::codec::{Key, RowBytes};
use crate::db::FLUSH_BY_AGE_NEVER;
use crate::db::{cf, Inner};
use crate::error::{StorageError, StorageResult};
use crate::hot::KeyRange;
use crate::source::Versioned;
use crate::table::TableData;

/// Column family of checkpoints.
pub(crate) const CF_CHECKPOINT: &str = "checkpoint";
const CURRENT_KEY: &[u8] = b"current";
const CURRENT_VERSION: u8 = 1;
const DATA_PREFIX: u8 = b'r';
const MARKER_PREFIX: u8 = b't';
/// Rows (bytes of keys and rows in memory) per IPC chunk.
pub const CHUNK_BYTES: usize = 4 << 20;
/// Bytes per RocksDB write while writing a checkpoint.
pub const BATCH_BYTES: usize = 16 << 20;
/// Keys read from the hot tier under one read lock.
const SCAN_ROWS: usize = 1024;
/// Pause before retrying after a failed automatic checkpoint.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Where a test makes a checkpoint fail, to check that a crash there loses nothing.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFailpoint {
    /// After writing a batch of rows of the new generation.
    AfterBatch,
    /// After the new generation is written and flushed, before `current` points at it.
    BeforeSwitch,
    /// After `current` points at it, before the old generation and log are deleted.
    AfterSwitch,
}

/// The checkpoint in use, and the generation the next one gets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CheckpointState {
    /// `(generation, checkpoint_ts)` of the current checkpoint.
    pub current: Option<(u64, u64)>,
    pub next_generation: u64,
}

impl CheckpointState {
    /// The commit ts the current checkpoint holds (0: none).
    pub fn ts(&self) -> u64 {
        self.current.map_or(0, |(_, ts)| ts)
    }
}

fn data_key(generation: u64, table_id: u32, chunk: u32) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = DATA_PREFIX;
    key[1..9].copy_from_slice(&generation.to_be_bytes());
    key[9..13].copy_from_slice(&table_id.to_be_bytes());
    key[13..17].copy_from_slice(&chunk.to_be_bytes());
    key
}

/// `t[generation][table_id]` → the table's truncation marker at the checkpoint ts, kept for
/// tables whose runs it may hide.
fn marker_key(generation: u64, table_id: u32) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[0] = MARKER_PREFIX;
    key[1..9].copy_from_slice(&generation.to_be_bytes());
    key[9..13].copy_from_slice(&table_id.to_be_bytes());
    key
}

fn marker_start(generation: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = MARKER_PREFIX;
    key[1..9].copy_from_slice(&generation.to_be_bytes());
    key
}

fn generation_start(generation: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = DATA_PREFIX;
    key[1..9].copy_from_slice(&generation.to_be_bytes());
    key
}

/// `(generation, table_id)` of a data key.
fn parse_data_key(key: &[u8]) -> StorageResult<(u64, u32)> {
    if key.len() != 17 || key[0] != DATA_PREFIX {
        return Err(StorageError::corrupt(
            "checkpoint key",
            "bad length or prefix",
        ));
    }
    let generation = u64::from_be_bytes(key[1..9].try_into().unwrap_or_default());
    let table_id = u32::from_be_bytes(key[9..13].try_into().unwrap_or_default());
    Ok((generation, table_id))
}

fn log_key(ts: u64) -> [u8; 8] {
    ts.to_be_bytes()
}

/// Reads which checkpoint is current and which generation comes next (past any partial one a
/// crash left behind).
pub(crate) fn read_state(rocks: &DB) -> StorageResult<CheckpointState> {
    let cp_cf = cf(rocks, CF_CHECKPOINT)?;
    let current = match rocks.get_cf(cp_cf, CURRENT_KEY)? {
        None => None,
        Some(bytes) => {
            if bytes.len() != 17 || bytes[0] != CURRENT_VERSION {
                return Err(StorageError::corrupt(
                    "checkpoint pointer",
                    "unknown version or length",
                ));
            }
            let generation = u64::from_be_bytes(bytes[1..9].try_into().unwrap_or_default());
            let ts = u64::from_be_bytes(bytes[9..17].try_into().unwrap_or_default());
            Some((generation, ts))
        }
    };
    // The newest generation present, complete or not.
    let mut newest = current.map_or(0, |(g, _)| g);
    let mut last = rocks.raw_iterator_cf(cp_cf);
    last.seek_for_prev([DATA_PREFIX + 1]);
    if last.valid() {
        if let Some(key) = last.key() {
            if key.first() == Some(&DATA_PREFIX) {
                newest = newest.max(parse_data_key(key)?.0);
            }
        }
    }
    last.status()?;
    Ok(CheckpointState {
        current,
        next_generation: newest + 1,
    })
}

/// Loads the current checkpoint's rows into the hot tiers of `tables` at the checkpoint ts.
/// Returns the number of rows loaded.
pub(crate) fn load(
    rocks: &DB,
    state: &CheckpointState,
    tables: &std::collections::HashMap<u32, Arc<TableData>>,
) -> StorageResult<usize> {
    let Some((generation, ts)) = state.current else {
        return Ok(0);
    };
    let cp_cf = cf(rocks, CF_CHECKPOINT)?;
    let mut marker_options = rocksdb::ReadOptions::default();
    marker_options.set_iterate_upper_bound(marker_start(generation + 1));
    let marker_from = marker_start(generation);
    for item in rocks.iterator_cf_opt(
        cp_cf,
        marker_options,
        rocksdb::IteratorMode::From(&marker_from, rocksdb::Direction::Forward),
    ) {
        let (key, value) = item?;
        let (Some(table_id), Ok(marker)) = (
            key.get(9..13)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes),
            <[u8; 8]>::try_from(value.as_ref()).map(u64::from_be_bytes),
        ) else {
            return Err(StorageError::corrupt("checkpoint marker", "bad length"));
        };
        if let Some(table) = tables.get(&table_id) {
            table.hot.truncate(marker);
        }
    }
    let start = generation_start(generation);
    let end = generation_start(generation + 1);
    let mut options = rocksdb::ReadOptions::default();
    options.set_iterate_upper_bound(end);
    let mut rows = 0;
    for item in rocks.iterator_cf_opt(
        cp_cf,
        options,
        rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
    ) {
        let (key, value) = item?;
        let (_, table_id) = parse_data_key(&key)?;
        // A table dropped after the checkpoint has no definition: its rows are gone.
        let Some(table) = tables.get(&table_id) else {
            continue;
        };
        let changes = table.codec.decode_changes(&value)?;
        rows += changes.len();
        table
            .hot
            .apply_all(changes.iter().map(|(k, r)| (k, r)), ts, ts, |key, _, _| {
                table.saw_rowid(key)
            });
    }
    Ok(rows)
}

/// Deletes every generation but the current one and the log records it covers, then asks
/// RocksDB to compact those ranges so the space comes back. Idempotent; failures only leave
/// garbage behind, so they are logged, not returned.
pub(crate) fn remove_garbage(
    rocks: &DB,
    state: &CheckpointState,
    log_cf_name: &str,
    compact: bool,
) {
    let result = (|| -> StorageResult<()> {
        let cp_cf = cf(rocks, CF_CHECKPOINT)?;
        let log_cf = cf(rocks, log_cf_name)?;
        let all_start = [DATA_PREFIX];
        let all_end = [DATA_PREFIX + 1];
        // Ranges of superseded data: every generation but the current one.
        let markers = ([MARKER_PREFIX], [MARKER_PREFIX + 1]);
        let garbage: Vec<(Vec<u8>, Vec<u8>)> = match state.current {
            Some((generation, _)) => vec![
                (all_start.to_vec(), generation_start(generation).to_vec()),
                (generation_start(generation + 1).to_vec(), all_end.to_vec()),
                (markers.0.to_vec(), marker_start(generation).to_vec()),
                (marker_start(generation + 1).to_vec(), markers.1.to_vec()),
            ],
            None => vec![
                (all_start.to_vec(), all_end.to_vec()),
                (markers.0.to_vec(), markers.1.to_vec()),
            ],
        };
        let mut batch = WriteBatch::default();
        for (start, end) in &garbage {
            batch.delete_range_cf(cp_cf, start, end);
        }
        if let Some((_, ts)) = state.current {
            batch.delete_range_cf(log_cf, log_key(0), log_key(ts.saturating_add(1)));
        }
        rocks.write(batch)?;
        if compact {
            // Memtables hold the WAL files alive; flushing them lets RocksDB drop the WAL, so
            // the next open does not replay the truncated log's history from it either.
            for name in [log_cf_name, CF_CHECKPOINT, crate::db::CF_CATALOG] {
                rocks.flush_cf(cf(rocks, name)?)?;
            }
            for (start, end) in &garbage {
                rocks.compact_range_cf(cp_cf, Some(start), Some(end));
            }
            if let Some((_, ts)) = state.current {
                rocks.compact_range_cf(
                    log_cf,
                    Some(log_key(0)),
                    Some(log_key(ts.saturating_add(1))),
                );
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not delete superseded checkpoint data and log records");
    }
}

/// What one checkpoint wrote.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointInfo {
    /// The commit ts it holds.
    pub checkpoint_ts: u64,
    /// Its generation.
    pub generation: u64,
    /// Rows written.
    pub rows: usize,
    /// IPC bytes written.
    pub bytes: usize,
}

impl Inner {
    /// Takes a checkpoint of everything visible now (see the module doc). `None`: nothing was
    /// committed since the last one.
    pub(crate) fn checkpoint(self: &Arc<Self>) -> StorageResult<Option<CheckpointInfo>> {
        let mut state = self.checkpoint_state.lock();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(StorageError::Poisoned);
        }
        // A flush rides on the checkpoint: tables keep their tombstones from before its
        // snapshot (they will hide versions that move to runs).
        let flush_age = match (&self.cold, self.options.flush_age_commits) {
            (Some(_), Some(_)) if self.under_memory_pressure() => Some(0),
            // By age only when asked for: until scans read runs at columnar speed, a run is
            // slower to read than the hot tier, so by default rows go cold under memory
            // pressure only.
            (Some(_), Some(age)) if age != FLUSH_BY_AGE_NEVER => Some(age),
            _ => None,
        };
        if flush_age.is_some() {
            for table in self.tables.read().values() {
                if table.def.persistence.is_permanent() {
                    table.hot.keep_tombstones_from_now();
                }
            }
        }
        let snapshot = self.snapshot();
        let checkpoint_ts = snapshot.ts;
        if checkpoint_ts == 0 || checkpoint_ts == state.ts() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let log_bytes = self.log_bytes_since_checkpoint.load(Ordering::Acquire);
        let generation = state.next_generation;
        state.next_generation += 1;
        // After the snapshot: see the module doc for why the order matters.
        // Temporary tables are never written to disk.
        let mut tables: Vec<Arc<TableData>> = self
            .tables
            .read()
            .values()
            .filter(|t| t.def.persistence.is_permanent())
            .cloned()
            .collect();
        tables.sort_by_key(|t| t.def.id);
        if let (Some(age), Some(cold)) = (flush_age, &self.cold) {
            let horizon = self.horizon();
            let mut flushed = 0;
            for table in &tables {
                // A table created after the tombstone switch above waits for the next one.
                if table.hot.keeps_tombstones() {
                    flushed += self.flush_table(cold, table, checkpoint_ts, horizon, age)?;
                }
                // Nothing older than the hot tier: its tombstones hide nothing (unless a
                // failed publish may have listed a run for it after all).
                if table.cold.is_empty()
                    && !cold.uncertain.load(Ordering::Acquire)
                    && cold
                        .manifest
                        .current()
                        .table_runs(table.def.id)
                        .next()
                        .is_none()
                {
                    table.hot.stop_keeping_tombstones();
                }
            }
            tracing::debug!(
                checkpoint_ts,
                flushed,
                age,
                "flushed settled keys to cold runs"
            );
        }
        // Also when nothing was flushed: a TRUNCATE or DROP may have left runs to drop.
        if let Some(cold) = &self.cold {
            if !cold.manifest.current().runs.is_empty() {
                self.request_compaction();
            }
        }
        let written = match self.write_generation(generation, checkpoint_ts, &tables) {
            Ok(written) => written,
            Err(e) => {
                // Best effort: the partial generation is never read and the next open deletes
                // it anyway.
                if let Ok(cp_cf) = cf(&self.rocks, CF_CHECKPOINT) {
                    let _ = self.rocks.delete_range_cf(
                        cp_cf,
                        generation_start(generation),
                        generation_start(generation + 1),
                    );
                }
                return Err(e);
            }
        };
        self.failpoint(CheckpointFailpoint::BeforeSwitch)?;

        let mut pointer = Vec::with_capacity(17);
        pointer.push(CURRENT_VERSION);
        pointer.extend_from_slice(&generation.to_be_bytes());
        pointer.extend_from_slice(&checkpoint_ts.to_be_bytes());
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.rocks
            .put_cf_opt(cf(&self.rocks, CF_CHECKPOINT)?, CURRENT_KEY, pointer, &sync)?;
        state.current = Some((generation, checkpoint_ts));
        drop(snapshot);
        let _ = self.log_bytes_since_checkpoint.fetch_update(
            Ordering::AcqRel,
            Ordering::Acquire,
            |bytes| Some(bytes.saturating_sub(log_bytes)),
        );
        self.failpoint(CheckpointFailpoint::AfterSwitch)?;
        remove_garbage(&self.rocks, &state, crate::db::CF_LOG, true);
        let info = CheckpointInfo {
            checkpoint_ts,
            generation,
            rows: written.0,
            bytes: written.1,
        };
        tracing::info!(
            checkpoint_ts,
            generation,
            rows = info.rows,
            bytes = info.bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "checkpoint written; commit log truncated"
        );
        Ok(Some(info))
    }

    /// Writes every table's rows at `ts` under `generation` and makes them durable. Returns
    /// (rows, bytes).
    fn write_generation(
        &self,
        generation: u64,
        ts: u64,
        tables: &[Arc<TableData>],
    ) -> StorageResult<(usize, usize)> {
        let cp_cf = cf(&self.rocks, CF_CHECKPOINT)?;
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        let mut batch = WriteBatch::default();
        let mut rows = 0usize;
        let mut bytes = 0usize;
        let mut scanned: Vec<(Key, RowBytes)> = Vec::with_capacity(SCAN_ROWS);
        let mut versions: Vec<Versioned> = Vec::with_capacity(SCAN_ROWS);
        let mut pending: Vec<(Key, Option<RowBytes>)> = Vec::new();
        for table in tables {
            // A table whose older versions may be cold keeps its tombstones (they hide cold
            // versions) and its truncation marker (it hides older runs) in the checkpoint.
            let with_tombstones = table.hot.keeps_tombstones();
            let truncated_at = table.hot.truncated_at(ts);
            if with_tombstones && truncated_at > 0 {
                batch.put_cf(
                    cp_cf,
                    marker_key(generation, table.def.id),
                    truncated_at.to_be_bytes(),
                );
            }
            let mut range: KeyRange = (Bound::Unbounded, Bound::Unbounded);
            let mut chunk = 0u32;
            let mut pending_bytes = 0usize;
            loop {
                let next = if with_tombstones {
                    versions.clear();
                    let next = table
                        .hot
                        .scan_versions(&range, ts, SCAN_ROWS, &mut versions);
                    for version in versions.drain(..) {
                        pending_bytes +=
                            version.key.len() + version.row.as_ref().map_or(0, |r| r.len());
                        pending.push((version.key, version.row));
                    }
                    next
                } else {
                    scanned.clear();
                    let next = table.hot.scan_chunk(&range, ts, SCAN_ROWS, &mut scanned);
                    for (key, row) in scanned.drain(..) {
                        pending_bytes += key.len() + row.len();
                        pending.push((key, Some(row)));
                    }
                    next
                };
                let done = next.is_none();
                if pending_bytes >= CHUNK_BYTES || (done && !pending.is_empty()) {
                    let ipc = table.codec.encode_changes(&pending)?;
                    rows += pending.len();
                    bytes += ipc.len();
                    batch.put_cf(cp_cf, data_key(generation, table.def.id, chunk), ipc);
                    chunk = chunk.checked_add(1).ok_or_else(|| {
                        StorageError::Internal("too many checkpoint chunks".into())
                    })?;
                    pending.clear();
                    pending_bytes = 0;
                    if batch.size_in_bytes() >= BATCH_BYTES {
                        self.rocks.write_opt(std::mem::take(&mut batch), &no_wal)?;
                        self.failpoint(CheckpointFailpoint::AfterBatch)?;
                    }
                }
                match next {
                    Some(last) => range.0 = Bound::Excluded(last),
                    None => break,
                }
            }
        }
        if !batch.is_empty() {
            self.rocks.write_opt(batch, &no_wal)?;
            self.failpoint(CheckpointFailpoint::AfterBatch)?;
        }
        // Written without the WAL: the flush is what makes them durable.
        self.rocks.flush_cf(cp_cf)?;
        Ok((rows, bytes))
    }

    fn failpoint(&self, at: CheckpointFailpoint) -> StorageResult<()> {
        if self.options.checkpoint_failpoint == Some(at) {
            return Err(StorageError::Internal(format!(
                "checkpoint failpoint {at:?} hit"
            )));
        }
        Ok(())
    }

    /// Counts bytes appended to the log; wakes the checkpointer when they pass the threshold.
    pub(crate) fn note_log_bytes(&self, bytes: u64) {
        let total = self
            .log_bytes_since_checkpoint
            .fetch_add(bytes, Ordering::AcqRel)
            + bytes;
        self.maybe_trigger_checkpoint(total);
    }

    /// Asks the background thread for a checkpoint (and so a flush) when the hot tier holds
    /// more than half its budget.
    pub(crate) fn maybe_flush_for_memory(&self) {
        if self.cold.is_none()
            || self.options.flush_age_commits.is_none()
            || !self.under_memory_pressure()
            || self.checkpoint_trigger.pending.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let mut signal = self.checkpoint_trigger.signal.lock();
        signal.requested = true;
        self.checkpoint_trigger.wake.notify_all();
    }

    pub(crate) fn maybe_trigger_checkpoint(&self, log_bytes: u64) {
        let Some(threshold) = self.options.checkpoint_log_bytes else {
            return;
        };
        if log_bytes < threshold || self.checkpoint_trigger.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut signal = self.checkpoint_trigger.signal.lock();
        signal.requested = true;
        self.checkpoint_trigger.wake.notify_all();
    }
}

/// How the committer (and close) talk to the checkpointer thread.
#[derive(Debug, Default)]
pub(crate) struct CheckpointTrigger {
    /// A checkpoint was asked for and has not finished yet (saves the committer the lock).
    pending: std::sync::atomic::AtomicBool,
    signal: parking_lot::Mutex<TriggerSignal>,
    wake: parking_lot::Condvar,
}

#[derive(Debug, Default)]
struct TriggerSignal {
    requested: bool,
    stop: bool,
}

impl CheckpointTrigger {
    /// Whether a checkpoint was asked for and has not finished.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Asks the checkpointer thread to finish (after a checkpoint in progress).
    pub(crate) fn stop(&self) {
        let mut signal = self.signal.lock();
        signal.stop = true;
        self.wake.notify_all();
    }
}

/// The checkpointer thread: waits for the log to grow past the threshold, checkpoints.
pub(crate) fn run_checkpointer(inner: Arc<Inner>) {
    let trigger = &inner.checkpoint_trigger;
    loop {
        {
            let mut signal = trigger.signal.lock();
            while !signal.requested && !signal.stop {
                trigger.wake.wait(&mut signal);
            }
            if signal.stop {
                return;
            }
            signal.requested = false;
        }
        let result = inner.checkpoint();
        trigger.pending.store(false, Ordering::Release);
        if let Err(e) = result {
            tracing::error!(error = %e, "automatic checkpoint failed; the commit log keeps growing");
            let mut signal = trigger.signal.lock();
            if !signal.stop {
                trigger.wake.wait_for(&mut signal, RETRY_AFTER);
            }
            if signal.stop {
                return;
            }
        }
        // Commits during the checkpoint may already have passed the threshold again.
        let bytes = inner.log_bytes_since_checkpoint.load(Ordering::Acquire);
        inner.maybe_trigger_checkpoint(bytes);
    }
}

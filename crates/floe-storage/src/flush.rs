//! Flush: a table's versions that stopped changing move from the hot tier into a new cold run.
//!
//! A flush runs inside a checkpoint ([`crate::checkpoint`]), at the checkpoint's snapshot `C`
//! with `H` the oldest registered snapshot. A key is flushed when its newest version `v` at
//! `C` has `v.commit_ts <= H` (every reader sees `v`, no older version is needed) and
//! `v.commit_ts <= C - age` (not written in the last `age` commits; `age` is 0 when the hot
//! tier passes half its memory budget), and no truncation marker hides it. Only `v` is
//! written, a row or a tombstone; so a run never straddles a TRUNCATE.
//!
//! Order (see `docs/design/0011-cold-tier-in-the-engine.md` for why each crash point is
//! safe): the table keeps tombstones from before the snapshot; the run is written
//! create-only; the manifest version listing it is published; the table's run list is
//! swapped; once no reader holds the old list, each flushed key whose newest version is still
//! `v` leaves the hot tier. The checkpoint written next (at `C`) then no longer holds those
//! keys, and the log before `C` is deleted.
//!
//! Invariant: a version leaves the hot tier only after a published manifest version lists a
//! run holding it and no reader can still be using a run list without that run.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cold_tier::ColdTier;
use crate::db::Inner;
use crate::error::StorageResult;
use crate::hot::KeyRange;
use crate::manifest::ManifestEdit;
use crate::source::Versioned;
use crate::table::TableData;

/// Keys read from the hot tier per chunk while choosing what to flush.
const SCAN_KEYS: usize = 4096;
/// How long a flush waits for readers of the old run list before it leaves the flushed
/// versions in the hot tier as well (correct, only wasteful).
const READER_WAIT: Duration = Duration::from_secs(30);

impl Inner {
    /// Whether flushes should take every settled key now: the hot tier holds more than half
    /// its budget.
    pub(crate) fn under_memory_pressure(&self) -> bool {
        self.options
            .memory_limit
            .is_some_and(|limit| self.hot_bytes.load(Ordering::Relaxed).max(0) as usize > limit / 2)
    }

    /// Flushes `table`'s settled keys at snapshot `snapshot_ts` (see the module doc); returns
    /// the keys that left the hot tier. The caller made the hot tier keep tombstones before it
    /// took the snapshot.
    pub(crate) fn flush_table(
        &self,
        cold: &ColdTier,
        table: &Arc<TableData>,
        snapshot_ts: u64,
        horizon: u64,
        age: u64,
    ) -> StorageResult<usize> {
        let settled_by = horizon.min(snapshot_ts.saturating_sub(age));
        let truncated_at = table.hot.truncated_at(snapshot_ts);
        let mut chosen: Vec<Versioned> = Vec::new();
        let mut scanned = Vec::with_capacity(SCAN_KEYS);
        let mut range: KeyRange = (Bound::Unbounded, Bound::Unbounded);
        loop {
            scanned.clear();
            let next = table
                .hot
                .scan_versions(&range, snapshot_ts, SCAN_KEYS, &mut scanned);
            chosen.extend(
                scanned
                    .drain(..)
                    .filter(|v| v.commit_ts <= settled_by && v.commit_ts >= truncated_at),
            );
            match next {
                Some(last) => range.0 = Bound::Excluded(last),
                None => break,
            }
        }
        if chosen.is_empty() {
            return Ok(0);
        }
        let flushed: Vec<(crate::codec::Key, u64)> = chosen
            .iter()
            .map(|v| (v.key.clone(), v.commit_ts))
            .collect();
        let versions = chosen.len();
        let written = cold.run_writer(table, 0)?.write_all(chosen)?;
        let edit = ManifestEdit {
            add: written.runs.clone(),
            remove: Vec::new(),
        };
        // Until the table lists the run, a compaction must not take it for a dropped table's.
        let lists = cold.lists.lock();
        // Under the lock: a sync meanwhile would forget the owner of an unlisted run.
        cold.own(
            written.runs.iter().map(|meta| meta.path.clone()),
            table.cold.id(),
        );
        let tables = self.tables.read().clone();
        let mut old_lists = cold.publish_and_sync(edit, &tables)?;
        // Listed now: the sweeper keeps them without the writer's pin.
        drop(written.pin);
        drop(lists);
        let Some(old) = old_lists.remove(&table.def.id) else {
            // The table was dropped or rewritten meanwhile: nothing to remove.
            return Ok(0);
        };
        drop(old_lists);
        let started = Instant::now();
        while Arc::strong_count(&old.sources) > 1 {
            if started.elapsed() > READER_WAIT {
                tracing::warn!(
                    table = table.def.id,
                    "readers held the old run list too long; flushed versions stay hot as well"
                );
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
        let (removed, freed) = table.hot.remove_flushed(&flushed);
        self.hot_bytes.fetch_sub(freed as i64, Ordering::Relaxed);
        tracing::info!(
            table = table.def.id,
            versions,
            removed,
            freed,
            "flushed settled rows into a cold run"
        );
        Ok(removed)
    }
}

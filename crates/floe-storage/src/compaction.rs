//! Compaction: a table's level-0 runs (one per flush, free to overlap) merge with the level-1
//! runs they overlap into new level-1 runs, which overlap nothing and hold one version per
//! key; runs of dropped tables leave the manifest. It runs on its own thread (woken after a
//! checkpoint that flushed, and at open), never under a lock a commit waits for.
//!
//! What a merge keeps, per key: the newest version among its inputs (a run holds only
//! versions every reader already sees: a flush writes a key's newest version once the
//! horizon passed it, so no reader needs an older one), unless it is
//! - a tombstone: the inputs are every run that may hold the key (all level-0 runs, and the
//!   level-1 runs overlapping them; level-1 runs do not overlap each other), so it hides
//!   nothing older and goes;
//! - older than the table's truncation marker at the horizon: every reader, present and
//!   future, sees a TRUNCATE after it. A run wholly older than that marker is dropped without
//!   being read.
//!
//! A level-0 run that overlaps no other run and holds one version per key is moved to level 1
//! by a manifest edit alone (bulk loads in key order are never rewritten).
//!
//! Order, crash-safe at every step: the new runs are written create-only (pinned); one
//! manifest version removes the inputs and lists the outputs; the table's run list is edited
//! (a flush may have added a run meanwhile: the edit keeps it); the sweeper deletes the inputs
//! once no reader holds them (each open run pins its file while any reader holds it). A crash
//! before the publish leaves orphans the sweeper deletes; after it, the outputs are the truth.
//!
//! Invariant: every version a reader can see through a table's runs reads the same before and
//! after a compaction, at every snapshot a reader holds or can take.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Condvar, Mutex};

use crate::cold_run::{ColdRun, RunMeta};
use crate::cold_tier::ColdTier;
use crate::db::Inner;
use crate::error::{ColdError, StorageResult};
use crate::hot::KeyRange;
use crate::manifest::ManifestEdit;
use crate::source::{Source, Versioned, LATEST};
use crate::table::TableData;

/// Level-0 runs that make a table worth compacting.
pub const L0_TRIGGER: usize = 4;
/// Keys read from an input per chunk.
const CHUNK_KEYS: usize = 4096;
/// Finished compactions remembered for `floe_catalog.compactions`.
const HISTORY: usize = 64;
/// Versions between two progress updates.
const PROGRESS_EVERY: u64 = 16 * 1024;

/// Where a compaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionState {
    /// Reading inputs and writing outputs.
    Running,
    /// Published: the outputs replaced the inputs.
    Done,
    /// Failed or interrupted: the manifest and the table's runs are as before.
    Failed,
}

impl CompactionState {
    /// The name the system view shows.
    pub fn name(self) -> &'static str {
        match self {
            CompactionState::Running => "running",
            CompactionState::Done => "done",
            CompactionState::Failed => "failed",
        }
    }
}

/// One compaction of one table, running or finished.
#[derive(Debug, Clone)]
pub struct CompactionInfo {
    /// Numbered from 1 in this process.
    pub id: u64,
    /// The table's OID.
    pub table_id: u32,
    /// Where it is.
    pub state: CompactionState,
    /// When it began.
    pub started: SystemTime,
    /// When it was published or failed.
    pub finished: Option<SystemTime>,
    /// Runs merged (read and rewritten).
    pub input_runs: usize,
    /// Versions the merged runs hold.
    pub input_rows: u64,
    /// Bytes the merged runs hold.
    pub input_bytes: u64,
    /// Versions read so far (progress: of `input_rows`).
    pub rows_read: u64,
    /// Runs written.
    pub output_runs: usize,
    /// Versions written (the newest of each key, without tombstones and truncated rows).
    pub output_rows: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Level-0 runs moved to level 1 without a rewrite.
    pub moved_runs: usize,
    /// Runs dropped unread (wholly older than a TRUNCATE every reader sees).
    pub dropped_runs: usize,
    /// Why it failed.
    pub error: Option<String>,
}

/// The compactor's state in an open database: one pass at a time, the history the system
/// view shows, and the wake-up of its thread.
#[derive(Debug, Default)]
pub(crate) struct Compactor {
    /// Held for a whole pass (background or [`crate::Db::compact`]).
    pass: Mutex<()>,
    history: Mutex<VecDeque<CompactionInfo>>,
    next_id: AtomicU64,
    signal: Mutex<Signal>,
    wake: Condvar,
    /// Set at close: a running merge stops at its next chunk.
    stopping: AtomicBool,
    /// A publish removed runs, and no sweep since found nothing left to delete.
    unswept: AtomicBool,
}

#[derive(Debug, Default)]
struct Signal {
    requested: bool,
    stop: bool,
}

impl Compactor {
    /// Asks the thread for a pass.
    pub(crate) fn request(&self) {
        let mut signal = self.signal.lock();
        signal.requested = true;
        self.wake.notify_all();
    }

    /// Makes the thread finish (a running merge is abandoned: its runs become orphans).
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let mut signal = self.signal.lock();
        signal.stop = true;
        self.wake.notify_all();
    }

    /// Waits for a request; `false` when asked to stop.
    fn wait(&self) -> bool {
        let mut signal = self.signal.lock();
        while !signal.requested && !signal.stop {
            self.wake.wait(&mut signal);
        }
        signal.requested = false;
        !signal.stop
    }

    /// Running compactions and the last finished ones, oldest first.
    pub(crate) fn history(&self) -> Vec<CompactionInfo> {
        self.history.lock().iter().cloned().collect()
    }

    fn begin(&self, info: CompactionInfo) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut history = self.history.lock();
        history.push_back(CompactionInfo { id, ..info });
        while history.len() > HISTORY {
            match history
                .iter()
                .position(|c| c.state != CompactionState::Running)
            {
                Some(oldest) => {
                    history.remove(oldest);
                }
                None => break,
            }
        }
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut CompactionInfo)) {
        if let Some(info) = self.history.lock().iter_mut().find(|c| c.id == id) {
            f(info);
        }
    }
}

/// The compactor thread: a pass whenever one is asked for.
pub(crate) fn run_compactor(inner: Arc<Inner>) {
    while inner.compactor.wait() {
        if let Err(error) = inner.compact(false) {
            if !inner.compactor.stopping.load(Ordering::Acquire) {
                tracing::error!(%error, "compaction failed; the runs stay as they were");
            }
        }
    }
}

/// What one table's compaction will do.
#[derive(Debug, Default)]
struct Plan {
    /// Groups of overlapping runs to merge into level-1 runs.
    merges: Vec<Vec<Arc<ColdRun>>>,
    /// Level-0 runs to relabel as level 1.
    moves: Vec<Arc<ColdRun>>,
    /// Runs to drop unread.
    drops: Vec<Arc<ColdRun>>,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.merges.is_empty() && self.moves.is_empty() && self.drops.is_empty()
    }
}

/// The plan for `runs` (a table's list), with `marker` the truncation marker every reader
/// honours. `force`: merge any level-0 run, not only once [`L0_TRIGGER`] of them pile up.
fn plan(runs: &[Arc<ColdRun>], marker: u64, force: bool) -> Plan {
    let mut plan = Plan::default();
    let mut live: Vec<Arc<ColdRun>> = Vec::new();
    for run in runs {
        if run.meta().max_ts < marker {
            plan.drops.push(run.clone());
        } else {
            live.push(run.clone());
        }
    }
    let level0: Vec<&Arc<ColdRun>> = live.iter().filter(|r| r.meta().level == 0).collect();
    let truncated = |run: &ColdRun| run.meta().min_ts < marker;
    // Every level-0 run takes part whenever one run is rewritten: a merge drops tombstones
    // and writes level 1, which is read after level 0, so no level-0 run may hold an older
    // version of a key the merge writes.
    let compact_level0 = !level0.is_empty()
        && (force || level0.len() >= L0_TRIGGER || live.iter().any(|r| truncated(r)));
    let mut inputs: Vec<Arc<ColdRun>> = Vec::new();
    if compact_level0 {
        let low = level0.iter().map(|r| &r.meta().min_key).min();
        let high = level0.iter().map(|r| &r.meta().max_key).max();
        if let (Some(low), Some(high)) = (low, high) {
            let span: KeyRange = (
                Bound::Included(low.as_slice().into()),
                Bound::Included(high.as_slice().into()),
            );
            inputs.extend(
                live.iter()
                    .filter(|r| r.meta().level == 0 || r.meta().overlaps(&span))
                    .cloned(),
            );
        }
    }
    // Runs partly older than the marker are rewritten without those versions.
    for run in &live {
        if truncated(run) && !inputs.iter().any(|i| i.meta().path == run.meta().path) {
            inputs.push(run.clone());
        }
    }
    // Groups of runs whose key ranges overlap (transitively).
    inputs.sort_by(|a, b| a.meta().min_key.cmp(&b.meta().min_key));
    let mut groups: Vec<Vec<Arc<ColdRun>>> = Vec::new();
    let mut group_max: Vec<u8> = Vec::new();
    for run in inputs {
        match groups.last_mut() {
            Some(group) if run.meta().min_key <= group_max => {
                if run.meta().max_key > group_max {
                    group_max = run.meta().max_key.clone();
                }
                group.push(run);
            }
            _ => {
                group_max = run.meta().max_key.clone();
                groups.push(vec![run]);
            }
        }
    }
    for group in groups {
        match group.as_slice() {
            [run] if !truncated(run) => {
                if run.meta().level == 0 && run.meta().unique_keys {
                    plan.moves.push(run.clone());
                } else if run.meta().level == 0 {
                    plan.merges.push(group);
                }
                // A level-1 run overlapping nothing stays as it is.
            }
            _ => plan.merges.push(group),
        }
    }
    plan
}

/// One input of a merge: its versions in key order, read a chunk at a time.
struct Cursor {
    run: Arc<ColdRun>,
    buffer: VecDeque<Versioned>,
    /// Where the next chunk starts (`None`: the run is exhausted).
    next: Option<KeyRange>,
}

impl Cursor {
    fn new(run: Arc<ColdRun>) -> Cursor {
        Cursor {
            run,
            buffer: VecDeque::new(),
            next: Some((Bound::Unbounded, Bound::Unbounded)),
        }
    }

    /// The next version, reading a chunk when the buffer is empty.
    fn head(&mut self) -> StorageResult<Option<&Versioned>> {
        while self.buffer.is_empty() {
            let Some(range) = self.next.take() else {
                return Ok(None);
            };
            let mut chunk = Vec::with_capacity(CHUNK_KEYS);
            let last = self
                .run
                .scan_versions(&range, LATEST, CHUNK_KEYS, &mut chunk)?;
            self.next = last.map(|key| (Bound::Excluded(key), Bound::Unbounded));
            self.buffer.extend(chunk);
        }
        Ok(self.buffer.front())
    }
}

/// What a merge wrote.
struct Merged {
    written: crate::cold_run::WrittenRuns,
    read: u64,
}

impl Inner {
    /// Asks the compactor thread for a pass.
    pub(crate) fn request_compaction(&self) {
        if self.cold.is_some() {
            self.compactor.request();
        }
    }

    /// One compaction pass over every table (see the module doc), then the manifest drops the
    /// runs of tables that no longer exist and the sweeper deletes what no one reads. Returns
    /// the number of tables compacted; the first failure is returned after the other tables
    /// had their turn.
    pub(crate) fn compact(&self, force: bool) -> StorageResult<usize> {
        let Some(cold) = &self.cold else {
            return Ok(0);
        };
        let _pass = self.compactor.pass.lock();
        {
            let _lists = cold.lists.lock();
            cold.resolve_uncertainty(&self.tables.read().clone())?;
        }
        let mut tables: Vec<Arc<TableData>> = self
            .tables
            .read()
            .values()
            .filter(|t| t.def.persistence.is_permanent() && !t.cold.is_empty())
            .cloned()
            .collect();
        tables.sort_by_key(|t| t.def.id);
        let mut compacted = 0;
        let mut first_error = None;
        for table in &tables {
            if self.compactor.stopping.load(Ordering::Acquire) {
                break;
            }
            match self.compact_table(cold, table, force) {
                Ok(true) => compacted += 1,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(table = table.def.id, %error, "compaction failed");
                    first_error.get_or_insert(error);
                }
            }
        }
        let dropped = self.drop_unread_runs(cold);
        if let Err(error) = &dropped {
            tracing::warn!(%error, "dropping runs of dropped tables failed");
        }
        if compacted > 0 || matches!(dropped, Ok(true)) {
            self.compactor.unswept.store(true, Ordering::Release);
        }
        // Runs readers pinned at the last sweep go once they are let go.
        if self.compactor.unswept.load(Ordering::Acquire) && cold.sweep() {
            self.compactor.unswept.store(false, Ordering::Release);
        }
        match (first_error, dropped) {
            (Some(error), _) | (None, Err(error)) => Err(error),
            _ => Ok(compacted),
        }
    }

    /// Compacts `table` if its runs call for it; `true` when a manifest version was published.
    fn compact_table(
        &self,
        cold: &ColdTier,
        table: &Arc<TableData>,
        force: bool,
    ) -> StorageResult<bool> {
        // Only the runs, not the sources list: a flush waits for readers of that.
        let runs: Vec<Arc<ColdRun>> = table.cold.current().runs.to_vec();
        let marker = table.hot.truncated_at(self.horizon());
        let plan = plan(&runs, marker, force);
        drop(runs);
        if plan.is_empty() {
            return Ok(false);
        }
        let merged_runs = plan.merges.iter().flatten();
        let id = self.compactor.begin(CompactionInfo {
            id: 0,
            table_id: table.def.id,
            state: CompactionState::Running,
            started: SystemTime::now(),
            finished: None,
            input_runs: merged_runs.clone().count(),
            input_rows: merged_runs.clone().map(|r| r.meta().rows).sum(),
            input_bytes: merged_runs.map(|r| r.meta().bytes).sum(),
            rows_read: 0,
            output_runs: 0,
            output_rows: 0,
            output_bytes: 0,
            moved_runs: plan.moves.len(),
            dropped_runs: plan.drops.len(),
            error: None,
        });
        tracing::info!(
            table = table.def.id,
            compaction = id,
            merges = plan.merges.len(),
            moves = plan.moves.len(),
            drops = plan.drops.len(),
            "compaction started"
        );
        match self.run_plan(cold, table, plan, marker, id) {
            Ok(()) => {
                self.compactor.update(id, |info| {
                    info.state = CompactionState::Done;
                    info.finished = Some(SystemTime::now());
                });
                Ok(true)
            }
            Err(error) => {
                self.compactor.update(id, |info| {
                    info.state = CompactionState::Failed;
                    info.finished = Some(SystemTime::now());
                    info.error = Some(error.to_string());
                });
                Err(error)
            }
        }
    }

    fn run_plan(
        &self,
        cold: &ColdTier,
        table: &Arc<TableData>,
        plan: Plan,
        marker: u64,
        id: u64,
    ) -> StorageResult<()> {
        let mut removed: Vec<String> = Vec::new();
        let mut added_metas: Vec<RunMeta> = Vec::new();
        let mut pins = Vec::new();
        let mut read = 0;
        for group in &plan.merges {
            let merged = self.merge(cold, table, group, marker, id, read)?;
            read += merged.read;
            removed.extend(group.iter().map(|r| r.meta().path.clone()));
            added_metas.extend(merged.written.runs.iter().cloned());
            pins.push(merged.written.pin);
        }
        let written = added_metas.len();
        for run in &plan.moves {
            removed.push(run.meta().path.clone());
            added_metas.push(RunMeta {
                level: 1,
                ..run.meta().clone()
            });
        }
        removed.extend(plan.drops.iter().map(|r| r.meta().path.clone()));
        self.compactor.update(id, |info| {
            info.output_runs = written;
            info.output_rows = added_metas[..written].iter().map(|m| m.rows).sum();
            info.output_bytes = added_metas[..written].iter().map(|m| m.bytes).sum();
        });
        let edit = ManifestEdit {
            add: added_metas,
            remove: removed,
        };
        let lists = cold.lists.lock();
        // Under the lock: a sync meanwhile would forget the owner of an unlisted run.
        cold.own(
            edit.add.iter().map(|meta| meta.path.clone()),
            table.cold.id(),
        );
        let tables = self.tables.read().clone();
        // Readers of the old lists keep their runs pinned until they finish.
        drop(cold.publish_and_sync(edit, &tables)?);
        drop(pins);
        drop(lists);
        tracing::info!(
            table = table.def.id,
            compaction = id,
            read,
            written,
            moved = plan.moves.len(),
            dropped = plan.drops.len(),
            "compaction published"
        );
        Ok(())
    }

    /// Merges `group` (runs of `table` whose key ranges overlap) into new level-1 runs.
    fn merge(
        &self,
        cold: &ColdTier,
        table: &Arc<TableData>,
        group: &[Arc<ColdRun>],
        marker: u64,
        id: u64,
        read_before: u64,
    ) -> StorageResult<Merged> {
        let mut writer = cold.run_writer(table, 1)?;
        let mut cursors: Vec<Cursor> = group.iter().cloned().map(Cursor::new).collect();
        let mut read = 0u64;
        let mut reported = 0u64;
        loop {
            // The smallest key at the head of any input.
            let mut smallest: Option<crate::codec::Key> = None;
            for cursor in &mut cursors {
                if let Some(head) = cursor.head()? {
                    if smallest
                        .as_ref()
                        .is_none_or(|s| head.key.as_ref() < s.as_ref())
                    {
                        smallest = Some(head.key.clone());
                    }
                }
            }
            let Some(key) = smallest else {
                break;
            };
            // The newest version of it among the inputs.
            let mut newest: Option<Versioned> = None;
            for cursor in &mut cursors {
                if cursor
                    .buffer
                    .front()
                    .is_some_and(|v| v.key.as_ref() == key.as_ref())
                {
                    let version = cursor.buffer.pop_front().expect("front checked");
                    read += 1;
                    if newest
                        .as_ref()
                        .is_none_or(|n| version.commit_ts > n.commit_ts)
                    {
                        newest = Some(version);
                    }
                }
            }
            let version = newest.expect("a cursor held the smallest key");
            if version.row.is_some() && version.commit_ts >= marker {
                writer.push(version)?;
            }
            if read - reported >= PROGRESS_EVERY {
                reported = read;
                if self.compactor.stopping.load(Ordering::Acquire) {
                    return Err(
                        ColdError::Internal("compaction interrupted by shutdown".into()).into(),
                    );
                }
                self.compactor
                    .update(id, |info| info.rows_read = read_before + read);
            }
        }
        let written = writer.finish()?;
        self.compactor
            .update(id, |info| info.rows_read = read_before + read);
        Ok(Merged { written, read })
    }

    /// Publishes a manifest version without the runs no reader can need: those of tables
    /// that no longer exist, and runs of a table it does not read that are wholly older than
    /// a TRUNCATE every reader sees (the layout before a rewrite). Runs of a live table it
    /// does not read yet (a publish that landed after reporting failure, a run that failed
    /// to open) are synced into its list instead. `true` when a version was published.
    fn drop_unread_runs(&self, cold: &ColdTier) -> StorageResult<bool> {
        let lists = cold.lists.lock();
        let tables = self.tables.read().clone();
        let manifest = cold.manifest.current();
        cold.sync_lists(&manifest, &tables)?;
        let horizon = self.horizon();
        let read: std::collections::HashSet<String> = tables
            .values()
            .flat_map(|t| {
                t.cold
                    .current()
                    .runs
                    .iter()
                    .map(|r| r.meta().path.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        let remove: Vec<String> = manifest
            .runs
            .iter()
            .filter(|run| match tables.get(&run.table_id) {
                None => true,
                Some(table) => {
                    run.max_ts < table.hot.truncated_at(horizon) && !read.contains(&run.path)
                }
            })
            .map(|run| run.path.clone())
            .collect();
        if remove.is_empty() {
            return Ok(false);
        }
        let count = remove.len();
        let edit = ManifestEdit {
            add: Vec::new(),
            remove,
        };
        drop(cold.publish_and_sync(edit, &tables)?);
        drop(lists);
        tracing::info!(
            runs = count,
            "runs of dropped or rewritten tables left the manifest"
        );
        Ok(true)
    }
}

//! Serializable snapshot isolation (SSI): SIREAD marks, rw-conflicts and dangerous structures,
//! after Cahill, Röhm and Fekete and PostgreSQL's `predicate.c` (Ports and Grittner).
//!
//! A SERIALIZABLE transaction runs on one snapshot, like REPEATABLE READ, and in addition:
//! - every read leaves a SIREAD mark: the key of a point read, the key range of a range scan,
//!   the whole table for a full scan or an index lookup (coarser is allowed: it only adds false
//!   positives). A transaction holding many marks on one table has them promoted to the table;
//! - its writes become write marks when it commits (the keys of its write set; the table for a
//!   TRUNCATE or a large write set);
//! - a read of keys a concurrent serializable transaction wrote (committed after the reader's
//!   snapshot), or a commit writing keys a concurrent serializable transaction has marked, is an
//!   rw-conflict `reader -rw-> writer`: the reader did not see the write;
//! - a *dangerous structure* `T_in -rw-> T_pivot -rw-> T_out` where `T_out` committed before
//!   both others (and, if `T_in` is read-only, before `T_in`'s snapshot) may be part of a cycle:
//!   one transaction aborts with `40001` ([`StorageError::SerializationConflict`]).
//!
//! Writes are registered at commit (in the committer, under this module's one lock, just as
//! the commit gets its timestamp), not while the transaction runs: Floe's uncommitted writes
//! live in private write sets that no reader can see. So a transaction gains rw-conflicts *in*
//! only when it commits, and every dangerous structure is found either when its pivot commits
//! (the pivot aborts) or when a read of the committed pivot's write completes it (the reader
//! aborts). The transaction aborted is always the one asking, so no transaction is ever
//! "doomed" by another and nothing needs to be cancelled from outside.
//!
//! Committed transactions keep their marks until no running serializable transaction overlaps
//! them; a committed transaction also keeps the commit timestamp of the earliest transaction it
//! had an rw-conflict out to that committed before it (PostgreSQL's `earliestOutConflictCommit`),
//! so that transaction may be forgotten earlier.
//!
//! Only serializable transactions take part, as in PostgreSQL: READ COMMITTED and REPEATABLE
//! READ transactions neither leave marks nor conflict, and never touch this module's lock.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::codec::Key;
use crate::commit::TableCommit;
use crate::db::{Inner, Snapshot};
use crate::error::{StorageError, StorageResult};
use crate::hot::KeyRange;
use crate::lock::TxnId;

/// Point marks one transaction keeps per table before they become one table mark.
const MAX_POINT_MARKS: usize = 1024;
/// Range marks one transaction keeps per table before they become one table mark.
const MAX_RANGE_MARKS: usize = 64;
/// Written keys one commit registers per table before it registers the table instead.
const MAX_WRITE_MARKS: usize = 4096;

/// What a read covered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Predicate<'a> {
    /// One key (a primary-key lookup).
    Key(&'a [u8]),
    /// A key range (a range scan).
    Range(&'a KeyRange),
    /// The whole table (a full scan, an index lookup).
    Table,
}

/// A transaction's SIREAD marks on one table.
#[derive(Debug, Default)]
struct ReadMarks {
    table: bool,
    points: HashSet<Key>,
    ranges: Vec<KeyRange>,
}

impl ReadMarks {
    fn add(&mut self, predicate: Predicate<'_>) {
        if self.table {
            return;
        }
        match predicate {
            Predicate::Key(key) => {
                if !self.points.contains(key) {
                    self.points.insert(Key::from(key));
                }
            }
            Predicate::Range(range) => self.ranges.push(range.clone()),
            Predicate::Table => self.table = true,
        }
        if self.table || self.points.len() > MAX_POINT_MARKS || self.ranges.len() > MAX_RANGE_MARKS
        {
            self.table = true;
            self.points = HashSet::new();
            self.ranges = Vec::new();
        }
    }

    /// Whether a write of `writes` touches anything these marks cover.
    fn overlaps(&self, writes: &WriteMarks) -> bool {
        if writes.table || self.table {
            return writes.table || !writes.keys.is_empty();
        }
        self.points.iter().any(|p| writes.has_key(p))
            || self.ranges.iter().any(|r| writes.has_key_in(r))
    }
}

/// The keys a committed transaction wrote to one table (sorted), or the whole table.
#[derive(Debug, Default)]
struct WriteMarks {
    table: bool,
    keys: Vec<Key>,
}

impl WriteMarks {
    fn has_key(&self, key: &[u8]) -> bool {
        self.keys.binary_search_by(|k| k.as_ref().cmp(key)).is_ok()
    }

    fn has_key_in(&self, range: &KeyRange) -> bool {
        let start = match &range.0 {
            Bound::Unbounded => 0,
            Bound::Included(lo) => self.keys.partition_point(|k| k < lo),
            Bound::Excluded(lo) => self.keys.partition_point(|k| k <= lo),
        };
        self.keys.get(start).is_some_and(|k| match &range.1 {
            Bound::Unbounded => true,
            Bound::Included(hi) => k <= hi,
            Bound::Excluded(hi) => k < hi,
        })
    }

    fn covers(&self, predicate: Predicate<'_>) -> bool {
        if self.table {
            return true;
        }
        match predicate {
            Predicate::Key(key) => self.has_key(key),
            Predicate::Range(range) => self.has_key_in(range),
            Predicate::Table => !self.keys.is_empty(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Committed {
        /// Position in the order of serializable commits (read-only ones included).
        seq: u64,
        /// The commit timestamp; `None` when the transaction wrote nothing.
        ts: Option<u64>,
        /// The commit timestamp of the earliest transaction this one had an rw-conflict out
        /// to and that committed before it.
        earliest_out: Option<u64>,
    },
}

/// One serializable transaction's state.
#[derive(Debug)]
struct Sxact {
    snapshot_ts: u64,
    /// Serializable commits counted when the snapshot was taken.
    start_seq: u64,
    /// `READ ONLY` (or a statement outside a block that only reads).
    declared_read_only: bool,
    status: Status,
    /// Failed a check: may neither read on nor commit.
    failed: bool,
    reads: HashMap<u32, ReadMarks>,
    writes: HashMap<u32, WriteMarks>,
    /// rw-conflicts out: transactions that wrote something this one read without seeing it.
    outs: HashSet<TxnId>,
}

impl Sxact {
    fn new(snapshot_ts: u64, start_seq: u64, declared_read_only: bool) -> Sxact {
        Sxact {
            snapshot_ts,
            start_seq,
            declared_read_only,
            status: Status::Active,
            failed: false,
            reads: HashMap::new(),
            writes: HashMap::new(),
            outs: HashSet::new(),
        }
    }

    /// Read only as the checks count it: declared so, or committed without writing.
    fn read_only(&self) -> bool {
        self.declared_read_only || matches!(self.status, Status::Committed { ts: None, .. })
    }

    /// Whether this transaction committed before `other` took its snapshot (then the two do
    /// not overlap, and no rw-conflict between them matters).
    fn committed_before(&self, other: &Sxact) -> bool {
        match self.status {
            Status::Active => false,
            Status::Committed { ts: Some(ts), .. } => ts <= other.snapshot_ts,
            Status::Committed { ts: None, seq, .. } => seq <= other.start_seq,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    xacts: HashMap<TxnId, Sxact>,
    /// Tables → transactions holding SIREAD marks on them.
    readers: HashMap<u32, HashSet<TxnId>>,
    /// Tables → committed transactions holding write marks on them.
    writers: HashMap<u32, HashSet<TxnId>>,
    /// Serializable commits so far.
    commit_seq: u64,
}

/// The SSI state of a database: every serializable transaction still relevant, its marks and
/// its rw-conflicts, behind one lock that only serializable transactions take.
#[derive(Debug, Default)]
pub(crate) struct PredicateLocks {
    state: Mutex<State>,
}

fn conflict(detail: String) -> StorageError {
    StorageError::SerializationConflict { detail }
}

impl PredicateLocks {
    /// Registers serializable transaction `id` and takes its snapshot, atomically with respect
    /// to commits' checks and the cleanup (a snapshot taken apart could be older than what the
    /// cleanup already forgot).
    pub(crate) fn register(&self, inner: &Arc<Inner>, id: TxnId, read_only: bool) -> Arc<Snapshot> {
        let mut state = self.state.lock();
        let snapshot = inner.snapshot();
        let sxact = Sxact::new(snapshot.ts, state.commit_seq, read_only);
        state.xacts.insert(id, sxact);
        snapshot
    }

    /// Records that `id` read `predicate` of `table`, and finds the rw-conflicts to concurrent
    /// committed writers that the read reveals. Fails (40001) when one completes a dangerous
    /// structure with this reader as `T_in`.
    pub(crate) fn read(
        &self,
        id: TxnId,
        table: u32,
        predicate: Predicate<'_>,
    ) -> StorageResult<()> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let Some(reader) = state.xacts.get(&id) else {
            return Ok(());
        };
        if reader.status != Status::Active {
            return Ok(());
        }
        if reader.failed {
            return Err(conflict(
                "Reason code: Canceled on identification as a pivot, during conflict out \
                 checking."
                    .into(),
            ));
        }
        let (snapshot_ts, read_only) = (reader.snapshot_ts, reader.declared_read_only);
        let mut outs = Vec::new();
        let mut pivot = None;
        if let Some(writers) = state.writers.get(&table) {
            for &writer_id in writers {
                let Some(writer) = state.xacts.get(&writer_id) else {
                    continue;
                };
                let Status::Committed {
                    ts: Some(commit_ts),
                    earliest_out,
                    ..
                } = writer.status
                else {
                    continue;
                };
                if writer_id == id || commit_ts <= snapshot_ts {
                    continue;
                }
                if !writer
                    .writes
                    .get(&table)
                    .is_some_and(|w| w.covers(predicate))
                {
                    continue;
                }
                outs.push(writer_id);
                // reader -rw-> writer -rw-> T_out, T_out committed before the writer: an
                // anomaly unless the reader only reads and took its snapshot before T_out
                // committed.
                if let Some(out_ts) = earliest_out {
                    if !read_only || snapshot_ts >= out_ts {
                        pivot = Some(writer_id);
                    }
                }
            }
        }
        let Some(reader) = state.xacts.get_mut(&id) else {
            return Ok(());
        };
        reader.reads.entry(table).or_default().add(predicate);
        reader.outs.extend(outs);
        state.readers.entry(table).or_default().insert(id);
        if let Some(pivot) = pivot {
            reader.failed = true;
            tracing::debug!(
                txn = id,
                pivot,
                "serializable read completes a dangerous structure"
            );
            return Err(conflict(format!(
                "Reason code: Canceled on conflict out to pivot {pivot}, during read."
            )));
        }
        Ok(())
    }

    /// The serializable part of committing `id` at `commit_ts` with `tables`' writes, run by
    /// the committer as the commit gets its timestamp: registers the writes, finds the
    /// rw-conflicts from transactions that read them, and fails (40001) if `id` is the pivot
    /// of a dangerous structure. A transaction that never registered (it wrote without reading)
    /// is registered now, as overlapping every other. A failed commit is forgotten at once.
    pub(crate) fn precommit(
        &self,
        id: TxnId,
        commit_ts: u64,
        tables: &[TableCommit],
        visible_ts: u64,
    ) -> StorageResult<()> {
        let mut guard = self.state.lock();
        let result = guard.precommit(id, commit_ts, tables);
        if result.is_err() {
            guard.remove(&[id]);
        }
        guard.cleanup(visible_ts);
        result
    }

    /// Commits `id` without writes (a read-only transaction, or one whose writes were all
    /// rolled back). Fails if an earlier check failed it.
    pub(crate) fn commit_read_only(&self, id: TxnId, visible_ts: u64) -> StorageResult<()> {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let Some(sxact) = state.xacts.get_mut(&id) else {
            return Ok(());
        };
        if sxact.status != Status::Active {
            return Ok(());
        }
        if sxact.failed {
            state.remove(&[id]);
            return Err(conflict(
                "Reason code: Canceled on identification as a pivot, during commit attempt.".into(),
            ));
        }
        state.commit_seq += 1;
        sxact.status = Status::Committed {
            seq: state.commit_seq,
            ts: None,
            earliest_out: None,
        };
        state.cleanup(visible_ts);
        Ok(())
    }

    /// Forgets `id` if it is still running (rolled back): its marks and conflicts go at once.
    pub(crate) fn abort(&self, id: TxnId, visible_ts: u64) {
        let mut guard = self.state.lock();
        let state = &mut *guard;
        if state
            .xacts
            .get(&id)
            .is_some_and(|s| s.status == Status::Active)
        {
            state.remove(&[id]);
            state.cleanup(visible_ts);
        }
    }

    /// Forgets committed transactions no running or future serializable transaction overlaps
    /// (the committer calls it once serializable commits became visible).
    pub(crate) fn forget_finished(&self, visible_ts: u64) {
        self.state.lock().cleanup(visible_ts);
    }

    /// Serializable transactions tracked now (running, or committed and still overlapping a
    /// running one).
    pub(crate) fn tracked(&self) -> usize {
        self.state.lock().xacts.len()
    }
}

impl State {
    /// See [`PredicateLocks::precommit`].
    fn precommit(
        &mut self,
        id: TxnId,
        commit_ts: u64,
        tables: &[TableCommit],
    ) -> StorageResult<()> {
        let state = self;
        let writer = state
            .xacts
            .entry(id)
            .or_insert_with(|| Sxact::new(0, 0, false));
        if writer.failed {
            return Err(conflict(
                "Reason code: Canceled on identification as a pivot, during commit attempt.".into(),
            ));
        }
        if writer.status != Status::Active {
            return Err(StorageError::Internal(format!(
                "serializable transaction {id} committed twice"
            )));
        }
        let mut writes: HashMap<u32, WriteMarks> = HashMap::new();
        for table in tables {
            if !table.truncate && table.rows.is_empty() {
                continue;
            }
            let marks = if table.truncate || table.rows.len() > MAX_WRITE_MARKS {
                WriteMarks {
                    table: true,
                    keys: Vec::new(),
                }
            } else {
                let mut keys: Vec<Key> = table.rows.iter().map(|(k, _)| k.clone()).collect();
                keys.sort_unstable();
                keys.dedup();
                WriteMarks { table: false, keys }
            };
            writes.insert(table.table_id, marks);
        }
        // Readers of what this commit writes that overlap it: rw-conflicts into it.
        let Some(writer) = state.xacts.get(&id) else {
            return Err(StorageError::Internal(
                "serializable transaction vanished".into(),
            ));
        };
        let mut ins: Vec<TxnId> = Vec::new();
        for (table, marks) in &writes {
            let Some(readers) = state.readers.get(table) else {
                continue;
            };
            for &reader_id in readers {
                if reader_id == id {
                    continue;
                }
                let Some(reader) = state.xacts.get(&reader_id) else {
                    continue;
                };
                if reader.failed || reader.committed_before(writer) {
                    continue;
                }
                if reader.reads.get(table).is_some_and(|r| r.overlaps(marks)) {
                    ins.push(reader_id);
                }
            }
        }
        ins.sort_unstable();
        ins.dedup();
        // T_in -rw-> this -rw-> T_out with T_out committed before both: this is the pivot.
        let mut dangerous = None;
        'outs: for &out_id in &writer.outs {
            let Some(out) = state.xacts.get(&out_id) else {
                continue;
            };
            let Status::Committed {
                seq: out_seq,
                ts: Some(out_ts),
                ..
            } = out.status
            else {
                continue;
            };
            for &in_id in &ins {
                let Some(reader) = state.xacts.get(&in_id) else {
                    continue;
                };
                let reader_after_out = match reader.status {
                    Status::Active => true,
                    Status::Committed { seq, .. } => seq > out_seq,
                };
                // A read-only T_in is harmless if its snapshot predates T_out's commit.
                if in_id == out_id
                    || (reader_after_out && (!reader.read_only() || reader.snapshot_ts >= out_ts))
                {
                    dangerous = Some((in_id, out_id));
                    break 'outs;
                }
            }
        }
        if let Some((t_in, t_out)) = dangerous {
            tracing::debug!(
                txn = id,
                t_in,
                t_out,
                "serializable commit is the pivot of a dangerous structure"
            );
            return Err(conflict(
                "Reason code: Canceled on identification as a pivot, during commit attempt.".into(),
            ));
        }
        let earliest_out = writer
            .outs
            .iter()
            .filter_map(|out| match state.xacts.get(out)?.status {
                Status::Committed { ts, .. } => ts,
                Status::Active => None,
            })
            .min();
        for &in_id in &ins {
            if let Some(reader) = state.xacts.get_mut(&in_id) {
                reader.outs.insert(id);
            }
        }
        state.commit_seq += 1;
        let seq = state.commit_seq;
        for table in writes.keys() {
            state.writers.entry(*table).or_default().insert(id);
        }
        if let Some(writer) = state.xacts.get_mut(&id) {
            writer.status = Status::Committed {
                seq,
                ts: Some(commit_ts),
                earliest_out,
            };
            writer.writes = writes;
        }
        Ok(())
    }

    /// Forgets committed transactions no running or future serializable transaction overlaps:
    /// a future one's snapshot is at least `visible_ts`.
    fn cleanup(&mut self, visible_ts: u64) {
        let mut oldest_snapshot = visible_ts;
        let mut oldest_start = u64::MAX;
        for sxact in self.xacts.values() {
            if sxact.status == Status::Active {
                oldest_snapshot = oldest_snapshot.min(sxact.snapshot_ts);
                oldest_start = oldest_start.min(sxact.start_seq);
            }
        }
        let done: Vec<TxnId> = self
            .xacts
            .iter()
            .filter(|(_, s)| match s.status {
                Status::Active => false,
                Status::Committed { ts: Some(ts), .. } => ts <= oldest_snapshot,
                Status::Committed { ts: None, seq, .. } => seq <= oldest_start,
            })
            .map(|(id, _)| *id)
            .collect();
        if !done.is_empty() {
            self.remove(&done);
        }
    }

    fn remove(&mut self, ids: &[TxnId]) {
        for id in ids {
            let Some(sxact) = self.xacts.remove(id) else {
                continue;
            };
            for table in sxact.reads.keys() {
                if let Some(readers) = self.readers.get_mut(table) {
                    readers.remove(id);
                    if readers.is_empty() {
                        self.readers.remove(table);
                    }
                }
            }
            for table in sxact.writes.keys() {
                if let Some(writers) = self.writers.get_mut(table) {
                    writers.remove(id);
                    if writers.is_empty() {
                        self.writers.remove(table);
                    }
                }
            }
        }
        for sxact in self.xacts.values_mut() {
            if !sxact.outs.is_empty() {
                sxact.outs.retain(|out| !ids.contains(out));
            }
        }
    }
}

/// A serializable transaction's registration, shared by its transaction and the read views of
/// its statements. A statement outside a transaction block that only reads owns one alone
/// ([`crate::Db::serializable_view`]): it commits when the statement's last view is dropped.
#[derive(Debug)]
pub(crate) struct SerialXact {
    pub(crate) inner: Arc<Inner>,
    pub(crate) id: TxnId,
    /// Commit (read only) when dropped: a statement's own registration. Otherwise the
    /// transaction finishes it.
    pub(crate) commit_on_drop: bool,
}

impl SerialXact {
    /// Records a read of `predicate` of `table` (see [`PredicateLocks::read`]).
    pub(crate) fn read(&self, table: u32, predicate: Predicate<'_>) -> StorageResult<()> {
        self.inner.predicate.read(self.id, table, predicate)
    }
}

impl Drop for SerialXact {
    fn drop(&mut self) {
        // A transaction's registration is finished by the transaction (commit, or rollback in
        // its `Drop`), never here: a view may be dropped while its commit is still queued.
        if !self.commit_on_drop {
            return;
        }
        let visible_ts = self.inner.visible_ts();
        if self
            .inner
            .predicate
            .commit_read_only(self.id, visible_ts)
            .is_err()
        {
            self.inner.predicate.abort(self.id, visible_ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Key::from(s.as_bytes())
    }

    #[test]
    fn write_marks_find_keys_and_ranges() {
        let writes = WriteMarks {
            table: false,
            keys: vec![k("b"), k("d"), k("f")],
        };
        assert!(writes.covers(Predicate::Key(b"d")));
        assert!(!writes.covers(Predicate::Key(b"c")));
        let range = |lo: Bound<Key>, hi: Bound<Key>| (lo, hi);
        assert!(writes.covers(Predicate::Range(&range(
            Bound::Included(k("c")),
            Bound::Included(k("d"))
        ))));
        assert!(!writes.covers(Predicate::Range(&range(
            Bound::Excluded(k("d")),
            Bound::Excluded(k("f"))
        ))));
        assert!(writes.covers(Predicate::Range(&range(
            Bound::Excluded(k("d")),
            Bound::Unbounded
        ))));
        assert!(!writes.covers(Predicate::Range(&range(
            Bound::Unbounded,
            Bound::Excluded(k("b"))
        ))));
        assert!(writes.covers(Predicate::Table));
        assert!(!WriteMarks::default().covers(Predicate::Table));
    }

    #[test]
    fn many_marks_become_a_table_mark() {
        let mut marks = ReadMarks::default();
        for i in 0..=MAX_POINT_MARKS {
            marks.add(Predicate::Key(&(i as u32).to_be_bytes()));
        }
        assert!(marks.table);
        assert!(marks.points.is_empty());
        let far = WriteMarks {
            table: false,
            keys: vec![k("zzzz")],
        };
        assert!(marks.overlaps(&far));
    }
}

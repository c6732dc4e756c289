//! Transactions: a private write set, row locks, snapshots per statement or per transaction.
//!
//! - READ COMMITTED takes a new snapshot for every statement; REPEATABLE READ and SERIALIZABLE
//!   keep the first statement's snapshot for the whole transaction.
//! - Writes stay in the write set (visible to the transaction's own later statements through
//!   [`ReadView`]) until commit hands them to the committer. A writer locks each row first;
//!   [`Txn::check_row`] then tells whether someone committed a newer version after the
//!   statement's snapshot: an error under REPEATABLE READ (40001), a re-check under READ
//!   COMMITTED (PostgreSQL's EvalPlanQual, done by the SQL layer).
//! - Locks are released after the commit is applied (or on rollback), never before.
//! - Savepoints mark a position in the undo log; rolling back to one restores the write set.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::catalog::CatalogChange;
use crate::codec::{Key, RowBytes};
use crate::db::{CommitBody, Db, Snapshot, TableCommit, TableData};
use crate::error::{StorageError, StorageResult};
use crate::hot::KeyRange;
use crate::lock::TxnId;

/// Transaction isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Each statement sees everything committed before it started.
    #[default]
    ReadCommitted,
    /// The whole transaction sees one snapshot; write conflicts fail with 40001.
    RepeatableRead,
    /// Treated as REPEATABLE READ (snapshot isolation) for now.
    Serializable,
}

#[derive(Debug)]
struct TableWrites {
    data: Arc<TableData>,
    truncated: bool,
    rows: BTreeMap<Key, Option<RowBytes>>,
}

#[derive(Debug)]
enum Undo {
    Row {
        table_id: u32,
        key: Key,
        previous: Option<Option<RowBytes>>,
    },
    Truncate {
        table_id: u32,
        rows: BTreeMap<Key, Option<RowBytes>>,
        was_truncated: bool,
    },
}

/// A transaction's uncommitted changes.
#[derive(Debug, Default)]
pub struct WriteSet {
    tables: BTreeMap<u32, TableWrites>,
    undo: Vec<Undo>,
    bytes: usize,
}

/// A transaction's own changes to one table within a key range, for a scan to merge.
#[derive(Debug, Default)]
pub struct OwnWrites {
    /// The transaction truncated the table: committed rows are all gone for it.
    pub truncated: bool,
    /// Changed keys in order; `None` is a delete.
    pub rows: Vec<(Key, Option<RowBytes>)>,
}

/// What one statement reads: a snapshot plus the transaction's own earlier writes.
#[derive(Debug)]
pub struct ReadView {
    snapshot: Arc<Snapshot>,
    writes: Option<Arc<Mutex<WriteSet>>>,
}

impl ReadView {
    /// A view of committed data only.
    pub fn committed(snapshot: Arc<Snapshot>) -> ReadView {
        ReadView {
            snapshot,
            writes: None,
        }
    }

    /// The snapshot's timestamp.
    pub fn snapshot_ts(&self) -> u64 {
        self.snapshot.ts
    }

    /// The transaction's writes to `table_id` within `range`.
    pub fn own_writes(&self, table_id: u32, range: &KeyRange) -> OwnWrites {
        let Some(writes) = &self.writes else {
            return OwnWrites::default();
        };
        let writes = writes.lock();
        match writes.tables.get(&table_id) {
            Some(t) => OwnWrites {
                truncated: t.truncated,
                rows: t
                    .rows
                    .range::<Key, _>((range.0.as_ref(), range.1.as_ref()))
                    .map(|(k, r)| (k.clone(), r.clone()))
                    .collect(),
            },
            None => OwnWrites::default(),
        }
    }
}

/// What a locked row looks like now compared with the statement's snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum RowCheck {
    /// Unchanged since the snapshot (or written by this transaction): the row as it is now.
    Current(Option<RowBytes>),
    /// READ COMMITTED only: another transaction committed a newer version after the snapshot.
    /// The statement must re-check its condition against it (`None`: it was deleted).
    Changed(Option<RowBytes>),
}

/// A savepoint's position.
#[derive(Debug, Clone, Copy)]
pub struct SavepointMark(usize);

/// A transaction. Dropping it without commit rolls it back.
#[derive(Debug)]
pub struct Txn {
    db: Arc<Db>,
    id: TxnId,
    isolation: Isolation,
    fixed_snapshot: Option<Arc<Snapshot>>,
    writes: Arc<Mutex<WriteSet>>,
    locked: Vec<(u32, Key)>,
    catalog: Vec<CatalogChange>,
}

impl Txn {
    pub(crate) fn new(db: Arc<Db>, id: TxnId, isolation: Isolation) -> Txn {
        Txn {
            db,
            id,
            isolation,
            fixed_snapshot: None,
            writes: Arc::new(Mutex::new(WriteSet::default())),
            locked: Vec::new(),
            catalog: Vec::new(),
        }
    }

    /// The transaction's id (for locks and diagnostics).
    pub fn id(&self) -> TxnId {
        self.id
    }

    /// The isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// Changes the isolation level (`SET TRANSACTION` before the first statement).
    pub fn set_isolation(&mut self, isolation: Isolation) {
        self.isolation = isolation;
    }

    /// Whether the transaction has taken its snapshot (REPEATABLE READ fixes it at the first
    /// statement).
    pub fn has_snapshot(&self) -> bool {
        self.fixed_snapshot.is_some()
    }

    /// The view the next statement reads.
    pub fn statement_view(&mut self) -> Arc<ReadView> {
        let snapshot = match self.isolation {
            Isolation::ReadCommitted => self.db.snapshot(),
            Isolation::RepeatableRead | Isolation::Serializable => self
                .fixed_snapshot
                .get_or_insert_with(|| self.db.snapshot())
                .clone(),
        };
        Arc::new(ReadView {
            snapshot,
            writes: Some(self.writes.clone()),
        })
    }

    /// A view at the newest committed state plus own writes (READ COMMITTED re-checks).
    pub fn latest_view(&self) -> Arc<ReadView> {
        Arc::new(ReadView {
            snapshot: self.db.snapshot(),
            writes: Some(self.writes.clone()),
        })
    }

    /// Locks a row for writing, waiting for another writer to finish.
    pub async fn lock_row(&mut self, table: &TableData, key: &Key) -> StorageResult<()> {
        if self.db.locks().lock(self.id, table.def.id, key).await? {
            self.locked.push((table.def.id, key.clone()));
        }
        Ok(())
    }

    /// Locks a row only if no other transaction holds it; `false` if one does.
    pub fn try_lock_row(&mut self, table: &TableData, key: &Key) -> bool {
        match self.db.locks().try_lock(self.id, table.def.id, key) {
            Some(true) => {
                self.locked.push((table.def.id, key.clone()));
                true
            }
            Some(false) => true,
            None => false,
        }
    }

    /// For a row this transaction has locked: how it looks now relative to `view`.
    pub fn check_row(
        &self,
        table: &TableData,
        key: &Key,
        view: &ReadView,
    ) -> StorageResult<RowCheck> {
        if let Some(own) = self.own_row(table.def.id, key) {
            return Ok(RowCheck::Current(own));
        }
        let latest = table.hot.latest(key);
        match latest {
            Some((commit_ts, row)) if commit_ts > view.snapshot_ts() => match self.isolation {
                Isolation::ReadCommitted => Ok(RowCheck::Changed(row)),
                _ => Err(StorageError::SerializationFailure),
            },
            Some((_, row)) => Ok(RowCheck::Current(row)),
            None => Ok(RowCheck::Current(None)),
        }
    }

    /// Whether a row exists for `key` now, counting this transaction's own writes and every
    /// committed version (for uniqueness; the caller holds the key's lock).
    pub fn key_exists(&self, table: &TableData, key: &Key) -> bool {
        if let Some(own) = self.own_row(table.def.id, key) {
            return own.is_some();
        }
        if self
            .writes
            .lock()
            .tables
            .get(&table.def.id)
            .is_some_and(|t| t.truncated)
        {
            return false;
        }
        table.hot.latest(key).is_some_and(|(_, row)| row.is_some())
    }

    /// The transaction's own version of a row: `Some(None)` if it deleted it.
    pub fn own_row(&self, table_id: u32, key: &Key) -> Option<Option<RowBytes>> {
        self.writes
            .lock()
            .tables
            .get(&table_id)
            .and_then(|t| t.rows.get(key).cloned())
    }

    /// Writes a row (`None` deletes it). The caller has locked the key.
    pub fn write(
        &mut self,
        table: &Arc<TableData>,
        key: Key,
        row: Option<RowBytes>,
    ) -> StorageResult<()> {
        let mut writes = self.writes.lock();
        let added = key.len() + row.as_ref().map_or(0, |r| r.len()) + 64;
        if let Some(limit) = self.db.memory_limit() {
            if self.db.hot_bytes() + writes.bytes + added > limit {
                return Err(StorageError::MemoryLimit {
                    detail: format!(
                        "The hot tier holds {} bytes and this transaction {} more; the limit \
                         is {limit} bytes (--memory-limit).",
                        self.db.hot_bytes(),
                        writes.bytes
                    ),
                });
            }
        }
        writes.bytes += added;
        let entry = writes
            .tables
            .entry(table.def.id)
            .or_insert_with(|| TableWrites {
                data: table.clone(),
                truncated: false,
                rows: BTreeMap::new(),
            });
        let previous = entry.rows.insert(key.clone(), row);
        writes.undo.push(Undo::Row {
            table_id: table.def.id,
            key,
            previous,
        });
        Ok(())
    }

    /// Removes every row of `table` (TRUNCATE), transactionally.
    pub fn truncate(&mut self, table: &Arc<TableData>) {
        let mut writes = self.writes.lock();
        let entry = writes
            .tables
            .entry(table.def.id)
            .or_insert_with(|| TableWrites {
                data: table.clone(),
                truncated: false,
                rows: BTreeMap::new(),
            });
        let rows = std::mem::take(&mut entry.rows);
        let was_truncated = std::mem::replace(&mut entry.truncated, true);
        writes.undo.push(Undo::Truncate {
            table_id: table.def.id,
            rows,
            was_truncated,
        });
    }

    /// Adds a catalog change to commit with the transaction's data (table rewrites).
    pub fn change_catalog(&mut self, change: CatalogChange) {
        self.catalog.push(change);
    }

    /// Whether the transaction has anything to commit.
    pub fn has_writes(&self) -> bool {
        !self.catalog.is_empty() || !self.writes.lock().tables.is_empty()
    }

    /// Marks the current state for `ROLLBACK TO SAVEPOINT`.
    pub fn savepoint(&self) -> SavepointMark {
        SavepointMark(self.writes.lock().undo.len())
    }

    /// Undoes every write made after `mark`.
    pub fn rollback_to(&mut self, mark: SavepointMark) {
        let mut writes = self.writes.lock();
        while writes.undo.len() > mark.0 {
            let Some(undo) = writes.undo.pop() else {
                break;
            };
            match undo {
                Undo::Row {
                    table_id,
                    key,
                    previous,
                } => {
                    if let Some(t) = writes.tables.get_mut(&table_id) {
                        match previous {
                            Some(row) => {
                                t.rows.insert(key, row);
                            }
                            None => {
                                t.rows.remove(&key);
                            }
                        }
                    }
                }
                Undo::Truncate {
                    table_id,
                    rows,
                    was_truncated,
                } => {
                    if let Some(t) = writes.tables.get_mut(&table_id) {
                        t.rows = rows;
                        t.truncated = was_truncated;
                    }
                }
            }
        }
        writes
            .tables
            .retain(|_, t| t.truncated || !t.rows.is_empty());
    }

    /// Commits: durable and visible when this returns `Ok(Some(commit_ts))`; `Ok(None)` when
    /// there was nothing to write. Finishes even if the caller stops waiting.
    pub async fn commit(mut self) -> StorageResult<Option<u64>> {
        let locked = std::mem::take(&mut self.locked);
        let catalog = std::mem::take(&mut self.catalog);
        let writes = std::mem::take(&mut *self.writes.lock());
        let db = self.db.clone();
        let txn_id = self.id;
        if catalog.is_empty() && writes.tables.is_empty() {
            db.locks().release(txn_id, locked);
            return Ok(None);
        }
        let body = CommitBody {
            catalog,
            tables: writes
                .tables
                .into_iter()
                .map(|(table_id, t)| TableCommit {
                    table_id,
                    codec: t.data.codec.clone(),
                    truncate: t.truncated,
                    rows: t.rows.into_iter().collect(),
                })
                .collect(),
        };
        // The commit runs on its own task: a cancelled client cannot leave it half done, and
        // the locks are released only once it is applied.
        let task = tokio::spawn(async move {
            let result = db.submit(body).await;
            db.locks().release(txn_id, locked);
            result
        });
        match task.await {
            Ok(result) => result.map(Some),
            Err(e) => Err(StorageError::Internal(format!("commit task failed: {e}"))),
        }
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if !self.locked.is_empty() {
            self.db
                .locks()
                .release(self.id, std::mem::take(&mut self.locked));
        }
    }
}

/// A key range covering exactly one key.
pub fn point_range(key: &Key) -> KeyRange {
    (Bound::Included(key.clone()), Bound::Included(key.clone()))
}

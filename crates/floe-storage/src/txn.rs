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
//! - DDL inside the transaction goes into its [`PendingCatalog`] ([`Txn::change_catalog`]) and
//!   is committed with the rows in one commit record; [`Txn::lock_name`] takes the DDL name
//!   locks that serialise DDL on the same name across transactions (see [`crate::pending`]).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use parking_lot::Mutex;

use crate::catalog::CatalogChange;
use crate::codec::{Key, RowBytes, RECORD_PREFIX};
use crate::commit::{CommitBody, TableCommit};
use crate::db::{Db, Snapshot};
use crate::error::{StorageError, StorageResult};
use crate::hot::{into_pending_row, pending, pending_row, KeyRange, PendingRows};
use crate::index::HotIndex;
use crate::keymap::Slot;
use crate::lock::TxnId;
use crate::pending::PendingCatalog;
use crate::predicate::{Predicate, SerialXact};
use crate::table::TableData;

/// The lock "table" of DDL name locks (no relation or index has this OID).
const NAME_LOCK_SPACE: u32 = u32::MAX;
/// The lock "table" of relation locks, keyed by the relation's OID.
pub(crate) const RELATION_LOCK_SPACE: u32 = u32::MAX - 1;

/// The relation lock key of table `id`.
pub(crate) fn relation_lock_key(id: u32) -> Key {
    Arc::from(id.to_be_bytes().as_slice())
}

/// Releases `txn`'s locks, keeping the count of relation locks held in step.
fn release_locks(db: &Db, txn: TxnId, locked: Vec<(u32, Key)>) {
    let relations = locked
        .iter()
        .filter(|(space, _)| *space == RELATION_LOCK_SPACE)
        .count();
    db.locks().release(txn, locked);
    if relations > 0 {
        db.inner
            .relation_locks
            .fetch_sub(relations, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Transaction isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Each statement sees everything committed before it started.
    #[default]
    ReadCommitted,
    /// The whole transaction sees one snapshot; write conflicts fail with 40001.
    RepeatableRead,
    /// REPEATABLE READ plus serializable snapshot isolation: reads leave SIREAD marks, and a
    /// dangerous structure of rw-conflicts among serializable transactions fails one of them
    /// with 40001 ([`crate::predicate`]).
    Serializable,
}

#[derive(Debug)]
struct TableWrites {
    data: Arc<TableData>,
    truncated: bool,
    rows: PendingRows,
    /// Unique indexes (OIDs) every new row was checked against; `None` before the first row.
    unique_checked: Option<Vec<u32>>,
    /// The log-record entries of `rows`, encoded as bulk inserts wrote them; `None` once any
    /// other write (or an undo) touched the table, and then the commit encodes `rows`.
    log: Option<EncodedLog>,
}

impl TableWrites {
    fn new(data: Arc<TableData>) -> TableWrites {
        TableWrites {
            data,
            truncated: false,
            rows: PendingRows::new(),
            unique_checked: None,
            log: Some(EncodedLog::default()),
        }
    }

    /// Whether `log` holds exactly `rows`.
    fn log_complete(&self) -> bool {
        self.log.as_ref().is_some_and(|l| l.rows == self.rows.len())
    }
}

/// Log-record entries encoded ahead of the commit
/// ([`crate::codec::TableCodec::encode_insert_entry`]).
#[derive(Debug, Default)]
pub(crate) struct EncodedLog {
    /// Empty, or [`RECORD_PREFIX`] bytes of room for the record's header, then the entries.
    pub(crate) bytes: Vec<u8>,
    pub(crate) entries: u32,
    /// Rows the entries hold.
    pub(crate) rows: usize,
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
        rows: PendingRows,
        was_truncated: bool,
        /// The live state the rows were written for (a rewrite replaces it).
        data: Arc<TableData>,
    },
    /// Keys a bulk insert added that the write set did not hold before.
    Inserted { table_id: u32, keys: Vec<Key> },
}

/// Bytes a pending write is charged on top of its key and row.
const WRITE_OVERHEAD: usize = 64;

/// A transaction's uncommitted changes.
#[derive(Debug, Default)]
pub struct WriteSet {
    tables: BTreeMap<u32, TableWrites>,
    /// Rows this transaction gave each (unique index oid, index key): candidates for its own
    /// uniqueness checks, rechecked against the row's current version (so never undone).
    index_writes: HashMap<(u32, Key), Vec<Key>>,
    undo: Vec<Undo>,
    /// Whether a savepoint was taken: only writes after one can be rolled back alone (an
    /// error without one ends the whole transaction), so bulk inserts keep no undo before.
    savepoint_taken: bool,
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
    /// A SERIALIZABLE transaction's registration: reads through this view leave SIREAD marks.
    serial: Option<Arc<SerialXact>>,
}

impl ReadView {
    /// A view of committed data only.
    pub fn committed(snapshot: Arc<Snapshot>) -> ReadView {
        ReadView {
            snapshot,
            writes: None,
            serial: None,
        }
    }

    pub(crate) fn serializable(
        snapshot: Arc<Snapshot>,
        writes: Option<Arc<Mutex<WriteSet>>>,
        serial: Arc<SerialXact>,
    ) -> Arc<ReadView> {
        Arc::new(ReadView {
            snapshot,
            writes,
            serial: Some(serial),
        })
    }

    /// Whether reads through this view are a SERIALIZABLE transaction's (and leave marks).
    pub fn is_serializable(&self) -> bool {
        self.serial.is_some()
    }

    /// Records that a scan of `table_id` reads `range` (the whole table when `whole_table`):
    /// a SIREAD mark for a serializable transaction, nothing otherwise. Fails with 40001 when
    /// the read completes a dangerous structure.
    pub fn note_scan(
        &self,
        table_id: u32,
        range: &KeyRange,
        whole_table: bool,
    ) -> StorageResult<()> {
        let Some(serial) = &self.serial else {
            return Ok(());
        };
        let predicate = match range {
            _ if whole_table => Predicate::Table,
            (Bound::Unbounded, Bound::Unbounded) => Predicate::Table,
            (Bound::Included(a), Bound::Included(b)) if a == b => Predicate::Key(a),
            range => Predicate::Range(range),
        };
        serial.read(table_id, predicate)
    }

    /// The snapshot's timestamp.
    pub fn snapshot_ts(&self) -> u64 {
        self.snapshot.ts
    }

    /// The row stored under `key` as this view sees it: the transaction's own version if it
    /// wrote one, else the committed version visible at the snapshot. A point lookup without a
    /// scan (the fast path for primary-key reads). A serializable transaction's read leaves a
    /// SIREAD mark on the key, and fails with 40001 when it completes a dangerous structure.
    pub fn get(&self, table: &TableData, key: &[u8]) -> StorageResult<Option<RowBytes>> {
        if let Some(serial) = &self.serial {
            serial.read(table.def.id, Predicate::Key(key))?;
        }
        if let Some(writes) = &self.writes {
            let writes = writes.lock();
            if let Some(t) = writes.tables.get(&table.def.id) {
                if let Some(own) = t.rows.get(key) {
                    return Ok(pending_row(own).clone());
                }
                if t.truncated {
                    return Ok(None);
                }
            }
        }
        table.sources(self.snapshot.ts).try_get(key)
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
                rows: {
                    let mut rows = Vec::new();
                    t.rows
                        .for_range(range, |k, r| rows.push((k.clone(), pending_row(r).clone())));
                    rows
                },
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

/// A savepoint's position: in the undo log and in the pending catalog.
#[derive(Debug, Clone, Copy)]
pub struct SavepointMark {
    undo: usize,
    catalog: usize,
}

/// A transaction. Dropping it without commit rolls it back.
#[derive(Debug)]
pub struct Txn {
    db: Arc<Db>,
    id: TxnId,
    isolation: Isolation,
    /// `READ ONLY` (a serializable transaction that only reads conflicts less).
    read_only: bool,
    fixed_snapshot: Option<Arc<Snapshot>>,
    /// SERIALIZABLE: the registration taken with the snapshot.
    serial: Option<Arc<SerialXact>>,
    /// `commit` has taken over finishing the serializable registration.
    serial_handed_over: bool,
    writes: Arc<Mutex<WriteSet>>,
    locked: Vec<(u32, Key)>,
    pending: Arc<PendingCatalog>,
    /// How long one row or relation lock wait may last (`lock_timeout`); `None`: no limit.
    lock_timeout: Option<std::time::Duration>,
}

impl Txn {
    pub(crate) fn new(db: Arc<Db>, id: TxnId, isolation: Isolation) -> Txn {
        Txn {
            db,
            id,
            isolation,
            read_only: false,
            fixed_snapshot: None,
            serial: None,
            serial_handed_over: false,
            writes: Arc::new(Mutex::new(WriteSet::default())),
            locked: Vec::new(),
            pending: Arc::new(PendingCatalog::default()),
            lock_timeout: None,
        }
    }

    /// Limits each lock wait of this transaction (`lock_timeout`; `None` or zero: no limit).
    pub fn set_lock_timeout(&mut self, timeout: Option<std::time::Duration>) {
        self.lock_timeout = timeout.filter(|t| !t.is_zero());
    }

    /// The transaction's pending catalog, for the session to put in scope
    /// ([`crate::with_pending_catalog`]).
    pub fn pending_catalog(&self) -> Arc<PendingCatalog> {
        self.pending.clone()
    }

    /// Table `id`'s live state for this transaction: its pending one if its DDL changed the
    /// table, else the committed one.
    fn live_table(&self, id: u32) -> Option<Arc<TableData>> {
        match self.pending.table(id) {
            Some(data) => data,
            None => self.db.committed_table(id),
        }
    }

    /// Takes the relation lock of table `id` (PostgreSQL's AccessExclusiveLock, in part): DDL
    /// inside a block takes it on every existing relation it changes, and statements of other
    /// sessions that read or write the relation wait for this transaction to end
    /// ([`Db::wait_for_relation`]). Held until this transaction ends.
    pub async fn lock_relation(&mut self, id: u32) -> StorageResult<()> {
        let key = relation_lock_key(id);
        if self
            .db
            .locks()
            .lock(self.id, RELATION_LOCK_SPACE, &key, self.lock_timeout)
            .await?
        {
            self.db
                .inner
                .relation_locks
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            self.locked.push((RELATION_LOCK_SPACE, key));
        }
        Ok(())
    }

    /// Takes the DDL lock on `name` (the caller's canonical name of a relation or schema),
    /// waiting while another transaction holds it; held until this transaction ends. Two
    /// transactions changing the same name thus run one after the other, as PostgreSQL's
    /// AccessExclusiveLock makes them.
    pub async fn lock_name(&mut self, name: &str) -> StorageResult<()> {
        let key: Key = Arc::from(name.as_bytes());
        if self
            .db
            .locks()
            .lock(self.id, NAME_LOCK_SPACE, &key, self.lock_timeout)
            .await?
        {
            self.locked.push((NAME_LOCK_SPACE, key));
        }
        Ok(())
    }

    /// Counts `added` bytes of pending writes against the memory budget (53200 beyond it).
    fn charge(&self, writes: &mut WriteSet, added: usize) -> StorageResult<()> {
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
        Ok(())
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

    /// Declares the transaction `READ ONLY` (before its first statement): a serializable
    /// transaction that only reads is aborted in fewer cases.
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
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
            Isolation::RepeatableRead => self
                .fixed_snapshot
                .get_or_insert_with(|| self.db.snapshot())
                .clone(),
            Isolation::Serializable => {
                if self.fixed_snapshot.is_none() {
                    // Registered together with its snapshot (see `PredicateLocks::register`).
                    let snapshot =
                        self.db
                            .inner
                            .predicate
                            .register(&self.db.inner, self.id, self.read_only);
                    self.serial = Some(Arc::new(SerialXact {
                        inner: self.db.inner.clone(),
                        id: self.id,
                        commit_on_drop: false,
                    }));
                    self.fixed_snapshot = Some(snapshot);
                }
                self.fixed_snapshot
                    .clone()
                    .unwrap_or_else(|| self.db.snapshot())
            }
        };
        Arc::new(ReadView {
            snapshot,
            writes: Some(self.writes.clone()),
            serial: self.serial.clone(),
        })
    }

    /// A view at the newest committed state plus own writes (READ COMMITTED re-checks).
    pub fn latest_view(&self) -> Arc<ReadView> {
        Arc::new(ReadView {
            snapshot: self.db.snapshot(),
            writes: Some(self.writes.clone()),
            serial: None,
        })
    }

    /// Locks a row for writing, waiting for another writer to finish.
    pub async fn lock_row(&mut self, table: &TableData, key: &Key) -> StorageResult<()> {
        if self
            .db
            .locks()
            .lock(self.id, table.def.id, key, self.lock_timeout)
            .await?
        {
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
        let latest = table.latest().try_lookup(key)?;
        match latest.commit_ts() {
            Some(commit_ts) if commit_ts > view.snapshot_ts() => match self.isolation {
                Isolation::ReadCommitted => Ok(RowCheck::Changed(latest.into_row())),
                _ => Err(StorageError::SerializationFailure),
            },
            _ => Ok(RowCheck::Current(latest.into_row())),
        }
    }

    /// Whether a row exists for `key` now, counting this transaction's own writes and every
    /// committed version (for uniqueness; the caller holds the key's lock). Fails when a cold
    /// run cannot be read.
    pub fn key_exists(&self, table: &TableData, key: &Key) -> StorageResult<bool> {
        if let Some(own) = self.own_row(table.def.id, key) {
            return Ok(own.is_some());
        }
        if self
            .writes
            .lock()
            .tables
            .get(&table.def.id)
            .is_some_and(|t| t.truncated)
        {
            return Ok(false);
        }
        Ok(table.latest().try_lookup(key)?.is_live())
    }

    /// The transaction's own version of a row: `Some(None)` if it deleted it.
    pub fn own_row(&self, table_id: u32, key: &Key) -> Option<Option<RowBytes>> {
        self.writes
            .lock()
            .tables
            .get(&table_id)
            .and_then(|t| t.rows.get(key).map(|own| pending_row(own).clone()))
    }

    /// The unique indexes a write to `table` must respect: the newest definition's when
    /// `table` is the live table (a plan may predate a CREATE INDEX), else `table`'s own (a
    /// table being rewritten).
    fn unique_indexes(&self, table: &Arc<TableData>) -> Vec<Arc<HotIndex>> {
        let current = self
            .live_table(table.def.id)
            .filter(|live| Arc::ptr_eq(&live.hot, &table.hot));
        let source = current.as_ref().unwrap_or(table);
        source
            .indexes
            .iter()
            .filter(|i| i.unique)
            .cloned()
            .collect()
    }

    /// The row `key` holds now for this transaction: its own write, else the newest committed
    /// version (none after its own TRUNCATE).
    fn current_row(&self, table: &TableData, key: &Key) -> StorageResult<Option<RowBytes>> {
        if let Some(own) = self.own_row(table.def.id, key) {
            return Ok(own);
        }
        if self
            .writes
            .lock()
            .tables
            .get(&table.def.id)
            .is_some_and(|t| t.truncated)
        {
            return Ok(None);
        }
        table.latest().try_get(key)
    }

    /// Locks the unique-index keys that writing `row` at `key` adds or removes, and returns
    /// the first unique index (by OID) with another row holding the new key, and that row's
    /// key. Holding the locks, the answer stays true until this transaction ends.
    pub async fn unique_conflict(
        &mut self,
        table: &Arc<TableData>,
        key: &Key,
        row: Option<&RowBytes>,
    ) -> StorageResult<Option<(u32, Key)>> {
        let indexes = self.unique_indexes(table);
        Ok(self.check_unique(table, &indexes, key, row).await?.0)
    }

    /// [`Txn::unique_conflict`] against `indexes`; also returns the index keys the write
    /// introduces (to register once it is made).
    async fn check_unique(
        &mut self,
        table: &Arc<TableData>,
        indexes: &[Arc<HotIndex>],
        key: &Key,
        row: Option<&RowBytes>,
    ) -> StorageResult<(Option<(u32, Key)>, Vec<(u32, Key)>)> {
        let mut introduced = Vec::new();
        if indexes.is_empty() {
            return Ok((None, introduced));
        }
        // Decode each row once for all indexes.
        let new_columns = match row {
            Some(row) => Some(table.codec.decode_rows([row.as_ref()])?),
            None => None,
        };
        let old_columns = match self.current_row(table, key)? {
            Some(old) => Some(table.codec.decode_rows([old.as_ref()])?),
            None => None,
        };
        for index in indexes {
            let new_key = match &new_columns {
                Some(batch) => index.keys_of_columns(batch.columns())?.pop().flatten(),
                None => None,
            };
            let old_key = match &old_columns {
                Some(batch) => index.keys_of_columns(batch.columns())?.pop().flatten(),
                None => None,
            };
            if new_key == old_key {
                continue;
            }
            // Lock the key being vacated too, so an insert of it waits for this transaction
            // (and succeeds if it commits), as in PostgreSQL.
            if let Some(old_key) = &old_key {
                self.lock_index_key(index.oid, old_key).await?;
            }
            let Some(new_key) = new_key else {
                continue;
            };
            self.lock_index_key(index.oid, &new_key).await?;
            if let Some(other) = self.holder_of(table, index, &new_key, key)? {
                return Ok((Some((index.oid, other)), introduced));
            }
            introduced.push((index.oid, new_key));
        }
        Ok((None, introduced))
    }

    async fn lock_index_key(&mut self, index_oid: u32, index_key: &Key) -> StorageResult<()> {
        if self
            .db
            .locks()
            .lock(self.id, index_oid, index_key, self.lock_timeout)
            .await?
        {
            self.locked.push((index_oid, index_key.clone()));
        }
        Ok(())
    }

    /// A row other than `except` that holds `index_key` now (own writes and the newest
    /// committed versions, each rechecked).
    fn holder_of(
        &self,
        table: &TableData,
        index: &HotIndex,
        index_key: &Key,
        except: &Key,
    ) -> StorageResult<Option<Key>> {
        let mut candidates = index.candidates(index_key);
        if let Some(own) = self
            .writes
            .lock()
            .index_writes
            .get(&(index.oid, index_key.clone()))
        {
            candidates.extend(own.iter().cloned());
        }
        for candidate in candidates {
            if candidate == *except {
                continue;
            }
            let Some(row) = self.current_row(table, &candidate)? else {
                continue;
            };
            if index.key_of(&table.codec, &row)?.as_ref() == Some(index_key) {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// Writes a row (`None` deletes it), enforcing the table's unique indexes: a duplicate
    /// non-NULL index key fails with [`StorageError::UniqueViolation`]. The caller has locked
    /// the row's key.
    pub async fn write(
        &mut self,
        table: &Arc<TableData>,
        key: Key,
        row: Option<RowBytes>,
    ) -> StorageResult<()> {
        self.db.wait_for_flush().await;
        let indexes = self.unique_indexes(table);
        let (conflict, introduced) = self
            .check_unique(table, &indexes, &key, row.as_ref())
            .await?;
        if let Some((oid, _)) = conflict {
            return Err(self.unique_violation(table, oid, row.as_ref()));
        }
        let checked = row
            .as_ref()
            .map(|_| indexes.iter().map(|i| i.oid).collect::<Vec<_>>());
        if !introduced.is_empty() {
            let mut writes = self.writes.lock();
            for index_key in introduced {
                writes
                    .index_writes
                    .entry(index_key)
                    .or_default()
                    .push(key.clone());
            }
        }
        self.write_unchecked(table, key, row)?;
        if let Some(checked) = checked {
            // The commit is refused if a unique index appears that some row was not checked
            // against (a CREATE UNIQUE INDEX committed meanwhile).
            let mut writes = self.writes.lock();
            if let Some(entry) = writes.tables.get_mut(&table.def.id) {
                entry.unique_checked = Some(match entry.unique_checked.take() {
                    None => checked,
                    Some(before) => before.into_iter().filter(|o| checked.contains(o)).collect(),
                });
            }
        }
        Ok(())
    }

    /// The 23505 error for writing `row` to `table` against unique index `oid`.
    pub fn unique_violation(
        &self,
        table: &Arc<TableData>,
        oid: u32,
        row: Option<&RowBytes>,
    ) -> StorageError {
        let live = self
            .live_table(table.def.id)
            .filter(|live| live.index(oid).is_some());
        let source = live.as_ref().unwrap_or(table);
        let Some((def, index)) = source.index(oid) else {
            return StorageError::Internal(format!("unique index {oid} vanished"));
        };
        let index_key = row.and_then(|r| index.key_of(&source.codec, r).ok().flatten());
        StorageError::UniqueViolation {
            constraint: def.name.clone(),
            detail: format!(
                "Key {} already exists.",
                index_key
                    .map(|k| index.describe(&source.def, &k))
                    .unwrap_or_default()
            ),
        }
    }

    /// Writes a row without checking unique indexes (the caller has, or the table has none).
    fn write_unchecked(
        &mut self,
        table: &Arc<TableData>,
        key: Key,
        row: Option<RowBytes>,
    ) -> StorageResult<()> {
        let mut writes = self.writes.lock();
        let added = key.len() + row.as_ref().map_or(0, |r| r.len()) + WRITE_OVERHEAD;
        self.charge(&mut writes, added)?;
        let entry = writes
            .tables
            .entry(table.def.id)
            .or_insert_with(|| TableWrites::new(table.clone()));
        entry.log = None;
        let previous = entry
            .rows
            .insert(key.clone(), pending(row))
            .map(into_pending_row);
        writes.undo.push(Undo::Row {
            table_id: table.def.id,
            key,
            previous,
        });
        Ok(())
    }

    /// Inserts new rows in bulk (COPY FROM): locks their keys, checks that no row holds any of
    /// them (in this transaction's writes or committed) and adds them to the write set, taking
    /// the lock table, the hot tier and the write set once per call instead of once per row.
    /// Rows of a table without a primary key come with fresh row-id keys and need neither.
    ///
    /// Returns the position of the first row whose key exists (the rows before it are
    /// written, the rest not), or `None` when all were written. A table with unique indexes
    /// goes row by row through [`Txn::write`], which enforces them (a duplicate there fails
    /// with [`StorageError::UniqueViolation`]).
    ///
    /// `columns`, when given, are the table's columns the rows were encoded from: the
    /// commit's log record is then encoded from them now, not from the rows at commit.
    pub async fn insert_new(
        &mut self,
        table: &Arc<TableData>,
        rows: Vec<(Key, RowBytes)>,
        columns: Option<&[ArrayRef]>,
    ) -> StorageResult<Option<usize>> {
        self.insert_rows(table, rows, columns, true).await
    }

    /// [`Txn::insert_new`] for a table being rewritten (ALTER TABLE): `table` is the new,
    /// not yet committed state that this transaction truncated, so no other transaction can
    /// hold or take its keys and no row locks are taken. A key given twice returns its
    /// second position.
    pub async fn insert_rewritten(
        &mut self,
        table: &Arc<TableData>,
        rows: Vec<(Key, RowBytes)>,
        columns: Option<&[ArrayRef]>,
    ) -> StorageResult<Option<usize>> {
        self.insert_rows(table, rows, columns, false).await
    }

    async fn insert_rows(
        &mut self,
        table: &Arc<TableData>,
        rows: Vec<(Key, RowBytes)>,
        columns: Option<&[ArrayRef]>,
        lock: bool,
    ) -> StorageResult<Option<usize>> {
        self.db.wait_for_flush().await;
        let keyed = table.codec.has_primary_key();
        if !self.unique_indexes(table).is_empty() {
            for (i, (key, row)) in rows.into_iter().enumerate() {
                if keyed {
                    if lock {
                        self.lock_row(table, &key).await?;
                    }
                    if self.key_exists(table, &key)? {
                        return Ok(Some(i));
                    }
                }
                self.write(table, key, Some(row)).await?;
            }
            return Ok(None);
        }
        if keyed && lock {
            let busy = self.db.locks().try_lock_many(
                self.id,
                table.def.id,
                rows.iter().map(|(k, _)| k),
                &mut self.locked,
            );
            // Held by another writer: wait for each (rare; deadlocks are detected there).
            for key in busy {
                self.lock_row(table, &key).await?;
            }
        }
        let truncated = self
            .writes
            .lock()
            .tables
            .get(&table.def.id)
            .is_some_and(|t| t.truncated);
        // Committed rows: newest versions, checked under one read lock. Keys now locked by
        // this transaction cannot gain a committed version until it ends.
        let committed = if keyed && !truncated {
            table.latest().try_live_many(rows.iter().map(|(k, _)| k))?
        } else {
            Vec::new()
        };
        let added: usize = rows
            .iter()
            .map(|(k, r)| k.len() + r.len() + WRITE_OVERHEAD)
            .sum();
        let table_id = table.def.id;
        // The rows' log entry, encoded outside the write set's lock, while the log of the
        // table's earlier writes is complete.
        let log_wanted = table.def.persistence.is_permanent()
            && self
                .writes
                .lock()
                .tables
                .get(&table_id)
                .is_none_or(|t| t.log_complete());
        let encoded = match columns {
            Some(columns) if log_wanted && !rows.is_empty() => {
                let mut bytes = Vec::new();
                table
                    .codec
                    .encode_insert_entry(
                        table_id,
                        rows.iter().map(|(k, _)| k.as_ref()),
                        columns,
                        &mut bytes,
                    )
                    .ok()
                    .map(|()| bytes)
            }
            _ => None,
        };
        let count = rows.len();
        // The encoded entry stays in memory until the commit: it counts against the budget.
        let added = added + encoded.as_ref().map_or(0, Vec::len);
        let mut writes = self.writes.lock();
        self.charge(&mut writes, added)?;
        let keep_undo = writes.savepoint_taken;
        let entry = writes
            .tables
            .entry(table_id)
            .or_insert_with(|| TableWrites::new(table.clone()));
        let log_was_complete = entry.log_complete();
        // No unique index to check against: a CREATE UNIQUE INDEX committed meanwhile makes
        // the commit fail (see `write`).
        entry.unique_checked = Some(Vec::new());
        let mut inserted = Vec::with_capacity(if keep_undo { rows.len() } else { 0 });
        let mut replaced = Vec::new();
        let mut duplicate = None;
        for (i, (key, row)) in rows.into_iter().enumerate() {
            match entry.rows.slot(key) {
                Slot::Occupied { key, value: own } => {
                    if pending_row(own).is_some() {
                        duplicate = Some(i);
                        break;
                    }
                    // Deleted earlier in this transaction: the insert takes its place.
                    replaced.push(key);
                    *own = pending(Some(row));
                }
                Slot::Vacant(slot) => {
                    if committed.get(i).copied().unwrap_or(false) {
                        duplicate = Some(i);
                        break;
                    }
                    if keep_undo {
                        inserted.push(slot.key().clone());
                    }
                    slot.insert(pending(Some(row)));
                }
            }
        }
        match (duplicate, encoded, entry.log.as_mut()) {
            (None, Some(encoded), Some(log)) if log_was_complete && replaced.is_empty() => {
                if log.bytes.is_empty() {
                    // Room for the record's header before the table's first entry.
                    log.bytes.resize(RECORD_PREFIX, 0);
                }
                log.bytes.extend_from_slice(&encoded);
                log.entries += 1;
                log.rows += count;
            }
            _ => entry.log = None,
        }
        for key in replaced {
            writes.undo.push(Undo::Row {
                table_id,
                key,
                previous: Some(None),
            });
        }
        if !inserted.is_empty() {
            writes.undo.push(Undo::Inserted {
                table_id,
                keys: inserted,
            });
        }
        Ok(duplicate)
    }

    /// Removes every row of `table` (TRUNCATE), transactionally.
    pub fn truncate(&mut self, table: &Arc<TableData>) {
        let mut writes = self.writes.lock();
        let entry = writes
            .tables
            .entry(table.def.id)
            .or_insert_with(|| TableWrites::new(table.clone()));
        let rows = std::mem::take(&mut entry.rows);
        // The truncation is recorded apart; rows written after it start a new log.
        entry.log = Some(EncodedLog::default());
        let was_truncated = std::mem::replace(&mut entry.truncated, true);
        // A rewrite truncates the table's new live state: later rows use its layout.
        let data = std::mem::replace(&mut entry.data, table.clone());
        writes.undo.push(Undo::Truncate {
            table_id: table.def.id,
            rows,
            was_truncated,
            data,
        });
    }

    /// Adds a catalog change to the transaction's pending catalog: visible to the session at
    /// once (see [`crate::pending`]), to others when the transaction commits, with its rows.
    /// A table's definition gets its constraint indexes here, and the session's live state
    /// of the table follows: the same rows for a definition with the same row layout (new
    /// indexes built over them; a unique one over duplicates fails with 23505), no rows for a
    /// new table or a new layout (a rewrite writes them).
    pub fn change_catalog(&mut self, change: CatalogChange) -> StorageResult<()> {
        let (change, table) = match change {
            CatalogChange::PutRelation(def) if def.is_table() => {
                let def = Arc::new(def.with_constraint_indexes(|| self.db.allocate_oid()));
                let current = self.live_table(def.id);
                let codec = crate::codec::TableCodec::new(&def)?;
                let data = match current {
                    Some(old) if old.codec.same_layout(&codec) => {
                        TableData::redefined(def.clone(), &old)?
                    }
                    _ => {
                        let data = TableData::new(def.clone())?;
                        // A rewrite wrote the table's rows already, under rowids it chose:
                        // the transaction's later inserts take rowids after them (they
                        // replaced rewritten rows in the write set).
                        if let Some(rewritten) = self.writes.lock().tables.get(&def.id) {
                            for (key, _) in rewritten.rows.iter() {
                                data.saw_rowid(key);
                            }
                        }
                        data
                    }
                };
                let id = def.id;
                (
                    CatalogChange::PutRelation(def),
                    Some((id, Some(Arc::new(data)))),
                )
            }
            CatalogChange::DropRelation(id) => (CatalogChange::DropRelation(id), Some((id, None))),
            other => (other, None),
        };
        self.pending.push(change, table);
        self.db.bump_catalog_version();
        Ok(())
    }

    /// Whether the transaction has anything to commit.
    pub fn has_writes(&self) -> bool {
        !self.pending.is_empty() || !self.writes.lock().tables.is_empty()
    }

    /// Marks the current state for `ROLLBACK TO SAVEPOINT`.
    pub fn savepoint(&self) -> SavepointMark {
        let mut writes = self.writes.lock();
        writes.savepoint_taken = true;
        SavepointMark {
            undo: writes.undo.len(),
            catalog: self.pending.mark(),
        }
    }

    /// Undoes every write and catalog change made after `mark`.
    pub fn rollback_to(&mut self, mark: SavepointMark) {
        if self.pending.rollback_to(mark.catalog) {
            self.db.bump_catalog_version();
        }
        let mut writes = self.writes.lock();
        while writes.undo.len() > mark.undo {
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
                        t.log = None;
                        match previous {
                            Some(row) => {
                                t.rows.insert(key, pending(row));
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
                    data,
                } => {
                    if let Some(t) = writes.tables.get_mut(&table_id) {
                        t.rows = rows;
                        t.truncated = was_truncated;
                        t.data = data;
                        t.log = None;
                    }
                }
                Undo::Inserted { table_id, keys } => {
                    if let Some(t) = writes.tables.get_mut(&table_id) {
                        t.log = None;
                        for key in keys {
                            t.rows.remove(&key);
                        }
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
        let (catalog, dropped) = self.pending.take();
        let mut writes = std::mem::take(&mut *self.writes.lock());
        // Rows of a table the transaction dropped die with it.
        for id in dropped {
            writes.tables.remove(&id);
        }
        let db = self.db.clone();
        let txn_id = self.id;
        let serializable = self.isolation == Isolation::Serializable;
        // From here the commit (or the committer, for one with writes) finishes with the
        // serializable registration, not `Drop`: a commit still queued must keep it.
        self.serial_handed_over = true;
        if catalog.is_empty() && writes.tables.is_empty() {
            let committed = match serializable {
                true => db
                    .inner
                    .predicate
                    .commit_read_only(txn_id, db.inner.visible_ts()),
                false => Ok(()),
            };
            release_locks(&db, txn_id, locked);
            return committed.map(|()| None);
        }
        let body = CommitBody {
            serializable: serializable.then_some(txn_id),
            catalog,
            tables: writes
                .tables
                .into_iter()
                .map(|(table_id, t)| {
                    let log_complete = t.log_complete();
                    TableCommit {
                        table_id,
                        persistence: t.data.def.persistence,
                        codec: t.data.codec.clone(),
                        truncate: t.truncated,
                        log: t.log.filter(|l| log_complete && l.entries > 0),
                        rows: t.rows,
                        unique_checked: t.unique_checked,
                    }
                })
                .collect(),
        };
        // The commit runs on its own task: a cancelled client cannot leave it half done, and
        // the locks are released only once it is applied.
        let changes_catalog = !body.catalog.is_empty();
        let task = tokio::spawn(async move {
            let result = db.submit(body).await;
            if result.is_err() && changes_catalog {
                // Plans made against the refused catalog changes are stale.
                db.bump_catalog_version();
            }
            if result.is_err() && serializable {
                // Refused before its serializable check, or by it: forget its marks.
                db.inner.predicate.abort(txn_id, db.inner.visible_ts());
            }
            release_locks(&db, txn_id, locked);
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
        // Rolled back with catalog changes: plans made against them are stale.
        if !self.pending.is_empty() {
            self.pending.take();
            self.db.bump_catalog_version();
        }
        if !self.locked.is_empty() {
            release_locks(&self.db, self.id, std::mem::take(&mut self.locked));
        }
        if self.isolation == Isolation::Serializable && !self.serial_handed_over {
            // Rolled back: its marks go now.
            self.db
                .inner
                .predicate
                .abort(self.id, self.db.inner.visible_ts());
        }
    }
}

/// A key range covering exactly one key.
pub fn point_range(key: &Key) -> KeyRange {
    (Bound::Included(key.clone()), Bound::Included(key.clone()))
}

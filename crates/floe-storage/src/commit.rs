//! The commit path: a transaction's changes on their way to the log and the hot tier.
//!
//! A transaction buffers its changes ([`crate::Txn`]) and hands them to the one committer
//! thread. The committer takes every commit waiting, validates each against the catalog it
//! will be applied to, gives each the next timestamp, writes all their log records in one
//! RocksDB batch with one fsync (group commit), then applies them to the catalog and hot tier
//! and publishes them on the change stream, in timestamp order, and only then acknowledges.
//!
//! Invariants: only the committer assigns timestamps and writes the hot tier, in timestamp
//! order; an acknowledged commit is on disk (synced) and applied, and `visible_ts` moves past
//! it only after it is applied; a commit that fails validation takes no timestamp and writes
//! nothing; a failed log write poisons the database (no later commit is accepted).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rocksdb::{WriteBatch, WriteOptions};
use tokio::sync::oneshot;

use crate::catalog::{Catalog, CatalogChange, OnCommit, Persistence, RelationKind, TableDef};
use crate::changes::{CommitChanges, RowChange};
use crate::codec::{Key, RecordBuilder, RowBytes, TableCodec, RECORD_PREFIX};
use crate::db::{cf, Db, Inner, CF_CATALOG, CF_LOG};
use crate::error::{StorageError, StorageResult};
use crate::hot::{pending_row, HotTable, PendingRows};
use crate::index::{index_changes, HotIndex};
use crate::lock::TxnId;
use crate::table::TableData;
use crate::txn::EncodedLog;

/// Commits written in one group at most.
const MAX_GROUP: usize = 512;

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

pub(crate) struct CommitRequest {
    body: CommitBody,
    /// The log record is `record[record_start..]` (see [`RecordBuilder::around`]).
    record: Vec<u8>,
    record_start: usize,
    reply: oneshot::Sender<StorageResult<u64>>,
}

impl Db {
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
                    RelationKind::View { .. } | RelationKind::MaterializedView { .. } => {
                        def.kind.depends_on().iter().any(|d| dropped.contains(d))
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

impl Inner {
    pub(crate) fn run_committer(
        self: Arc<Self>,
        receiver: mpsc::Receiver<CommitRequest>,
        mut next_ts: u64,
    ) {
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
                index.build(&index_def.name, def, &table.codec, &table.hot, &table.cold)?;
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
                // A table-level marker hides every older version (vacuum frees them); the
                // rows it hides are still retracted one by one downstream and in the indexes.
                let hidden = visible_rows(table, ts);
                table.hot.truncate(ts);
                for (key, row) in hidden {
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
            // The rows this commit replaces that only the cold runs hold (the hot tier has no
            // version of their keys): retracted downstream and in the indexes like hot ones.
            let cold_old = cold_rows_replaced(table, &commit.rows, commit.truncate);
            delta += table
                .hot
                .apply_pending(commit.rows, ts, horizon, |key, mut applied, new| {
                    table.saw_rowid(key);
                    if applied.old.is_none() {
                        if let Some(old) = cold_old.get(key) {
                            applied.old = Some(old.clone());
                        }
                    }
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
            if delta > 0 {
                self.maybe_flush_for_memory();
            }
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
                            cold: old.cold.clone(),
                            next_rowid: old.next_rowid.clone(),
                        },
                        old => {
                            if let Some(old) = old {
                                self.hot_bytes
                                    .fetch_sub(old.hot.bytes() as i64, Ordering::Relaxed);
                                // A rewrite: the old layout's runs are read no more.
                                if !old.cold.is_empty() {
                                    self.request_compaction();
                                }
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
                                cold: Default::default(),
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
                        // Its runs leave the manifest at the compactor's next pass.
                        if !old.cold.is_empty() {
                            self.request_compaction();
                        }
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
                index.build(&index_def.name, def, codec, &old.hot, &old.cold)?;
                Ok(index)
            }) {
                Ok(index) => out.push(Arc::new(index)),
                Err(e) => tracing::error!(error = %e, index = index_def.name, "index build failed"),
            }
        }
        out
    }
}

/// The rows `rows`' keys hold only in `table`'s cold runs now (keys the hot tier has no
/// version of), read before the commit applies. Nothing for a table without runs or a
/// truncating commit (the marker hides them). A failed cold read cannot fail the commit (its
/// log record is durable): it is logged, and the change stream and indexes then miss that
/// retraction.
fn cold_rows_replaced(
    table: &TableData,
    rows: &crate::hot::PendingRows,
    truncating: bool,
) -> HashMap<Key, RowBytes> {
    let mut found = HashMap::new();
    if truncating || table.cold.is_empty() {
        return found;
    }
    let sources = table.latest();
    for (key, _) in rows.iter() {
        if table.hot.latest(key).is_some() {
            continue;
        }
        match sources.try_get(key) {
            Ok(Some(row)) => {
                found.insert(key.clone(), row);
            }
            Ok(None) => {}
            Err(error) => tracing::error!(
                %error,
                table = table.def.id,
                "could not read the cold row a commit replaces; its retraction is lost"
            ),
        }
    }
    found
}

/// Every row of `table` visible at `ts` (before a TRUNCATE at `ts` hides them), cold rows
/// included. A failed cold read is logged (the commit is durable already): the change stream
/// and indexes then miss those retractions.
fn visible_rows(table: &TableData, ts: u64) -> Vec<(Key, RowBytes)> {
    if table.cold.is_empty() {
        return table.hot.visible_keys(ts);
    }
    let sources = table.sources(ts);
    let mut rows = Vec::new();
    let mut range: crate::hot::KeyRange = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    loop {
        match sources.try_scan_chunk(&range, 4096, &mut rows) {
            Ok(Some(last)) => range.0 = std::ops::Bound::Excluded(last),
            Ok(None) => break,
            Err(error) => {
                tracing::error!(
                    %error,
                    table = table.def.id,
                    "could not read the cold rows a TRUNCATE hides; their retractions are lost"
                );
                break;
            }
        }
    }
    rows
}

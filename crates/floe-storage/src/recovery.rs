//! Recovery: turning the files of a data directory back into a running database's state.
//!
//! Opens RocksDB, loads the catalog (bootstrapping the `postgres` database in a new directory),
//! loads the current checkpoint ([`crate::checkpoint`]) and replays the log records after it.
//! RocksDB's write-ahead log is checksummed and recovers to the last whole batch, so a torn
//! tail is dropped, never applied. Checkpoints delete the log records they cover, so restart
//! time follows the data and the log written since the last checkpoint, not the whole history.
//!
//! Invariants: replay applies each log record at its own commit ts, in ts order, exactly once
//! (records at or before the checkpoint's ts are skipped); recovered state equals the state the
//! acknowledged commits left, and the clock resumes after the newest of them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::catalog::{Catalog, CatalogChange, DatabaseDef, SchemaDef};
use crate::checkpoint::{self, CheckpointState, CF_CHECKPOINT};
use crate::codec::{decode_record, LogEntry};
use crate::cold_tier::ColdTier;
use crate::db::{cf, CF_CATALOG, CF_LOG};
use crate::error::{StorageError, StorageResult};
use crate::sequence::CF_SEQUENCES;
use crate::table::TableData;

/// What recovery hands to [`crate::Db::open`].
pub(crate) struct Recovered {
    pub rocks: DB,
    pub catalog: Catalog,
    pub tables: HashMap<u32, Arc<TableData>>,
    pub checkpoint_state: CheckpointState,
    /// The newest commit ts recovered (0: none); the clock resumes after it.
    pub last_ts: u64,
    /// Log bytes written since the checkpoint (replayed).
    pub log_bytes: u64,
    /// Bytes the recovered hot tier holds.
    pub hot_bytes: usize,
}

/// Opens (or creates) the RocksDB files in `dir` and rebuilds every table from the checkpoint
/// and the commit log.
pub(crate) fn recover(
    dir: &Path,
    cold: Option<&ColdTier>,
    memory_limit: Option<usize>,
) -> StorageResult<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut db_options = Options::default();
    db_options.create_if_missing(true);
    db_options.create_missing_column_families(true);
    db_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    db_options.set_keep_log_file_num(4);
    // Bounds RocksDB's own WAL (replayed on open): past it, RocksDB flushes the column
    // families that keep old WAL files alive.
    db_options.set_max_total_wal_size(128 << 20);
    // RocksDB's memtables (64 MB per column family by default) follow the memory budget: at
    // most an eighth of the hot tier's share across all column families, 4 MB at least.
    if let Some(limit) = memory_limit {
        db_options.set_db_write_buffer_size((limit / 8).clamp(4 << 20, 256 << 20));
    }
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
    // Runs before rows: a table with runs keeps its tombstones from the first replayed one.
    if let Some(cold) = cold {
        cold.attach(&tables)?;
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
            if let Err(e) =
                index.build(&def.name, &table.def, &table.codec, &table.hot, &table.cold)
            {
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
    Ok(Recovered {
        rocks,
        catalog,
        tables,
        checkpoint_state,
        last_ts,
        log_bytes,
        hot_bytes,
    })
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
                        // No snapshot is older than the record being replayed: what the
                        // marker hides is freed at once.
                        table.hot.truncate(ts);
                        table.hot.vacuum(ts);
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

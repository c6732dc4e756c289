//! One table's live state: its definition, the codec its rows are encoded with, its hot rows
//! and the secondary indexes over them.
//!
//! Invariants: `codec` encodes rows of `def`'s layout, and every row in `hot` was encoded by a
//! codec of the same layout; every index in `indexes` covers columns `def` has and holds an
//! entry for every row version `hot` keeps; a table without a primary key hands out hidden row
//! ids above every one it holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::catalog::{IndexDef, TableDef};
use crate::codec::TableCodec;
use crate::error::StorageResult;
use crate::hot::HotTable;
use crate::index::HotIndex;
use crate::source::{Sources, LATEST};

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
    pub(crate) next_rowid: Arc<AtomicU64>,
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
    /// fails a new unique index with [`crate::StorageError::DuplicateInIndex`]).
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

    /// The table's rows at `snapshot_ts`: every committed read of them goes through here
    /// ([`crate::source`]).
    pub fn sources(&self, snapshot_ts: u64) -> Sources<'_> {
        Sources::new(
            &self.hot,
            &[],
            self.hot.truncated_at(snapshot_ts),
            snapshot_ts,
        )
    }

    /// The table's newest committed rows (for a writer holding the key's lock).
    pub fn latest(&self) -> Sources<'_> {
        self.sources(LATEST)
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

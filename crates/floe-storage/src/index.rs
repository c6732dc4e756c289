//! Secondary indexes of the hot tier: per index, an ordered map from (index key, row key) to
//! the commit timestamp at which that pairing stopped being current.
//!
//! - An *index key* is the indexed columns in Arrow's row format (memcomparable, like primary
//!   keys). A row with a NULL in any indexed column has no index key: it is not indexed, so
//!   NULLs never conflict (PostgreSQL's `NULLS DISTINCT`).
//! - Entries are maintained by the committer as versions are applied: a version with a new
//!   index key adds `(key, row) → live`; when a row's index key changes or the row is deleted,
//!   the old entry is stamped with the commit ts and removed once no snapshot can see the
//!   version it came from (the same horizon that prunes version chains).
//! - Entries are candidates, never the answer: a lookup re-reads the row's version and compares
//!   its index key (PostgreSQL's index recheck). So an entry that is stale or missing a stamp
//!   costs time, never correctness; a *missing* entry for a live version would be a bug.
//!
//! Uniqueness is enforced by writers ([`crate::Txn::write`]): a transaction locks the index key
//! it introduces (a row lock on `(index oid, index key)`), then looks for another row with it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::row::{RowConverter, SortField};
use parking_lot::RwLock;

use crate::catalog::{IndexDef, TableDef};
use crate::codec::{Key, RowBytes, TableCodec};
use crate::error::{StorageError, StorageResult};
use crate::hot::{HotTable, KeyRange};
use crate::source::{Sources, LATEST};
use crate::table::ColdRuns;

/// Stamp of an entry whose row version is the newest.
const LIVE: u64 = u64::MAX;
/// Rows converted per batch when building an index.
const BUILD_CHUNK: usize = 4096;

/// One index's entries.
#[derive(Debug)]
pub struct HotIndex {
    /// The index's OID (stable; also the lock namespace of its keys).
    pub oid: u32,
    /// Whether equal non-NULL keys are rejected.
    pub unique: bool,
    /// Positions of the indexed columns in the table's columns.
    positions: Vec<usize>,
    converter: RowConverter,
    entries: RwLock<BTreeMap<(Key, Key), u64>>,
    /// Stamped entries waiting for the horizon to pass.
    stamped: AtomicUsize,
}

impl HotIndex {
    /// An empty index for `index` of `table`.
    pub fn new(index: &IndexDef, table: &TableDef) -> StorageResult<HotIndex> {
        let mut positions = Vec::with_capacity(index.columns.len());
        for id in &index.columns {
            let position = table
                .columns
                .iter()
                .position(|c| c.id == *id)
                .ok_or_else(|| {
                    StorageError::Internal(format!(
                        "index \"{}\" names column {id} that \"{}\" does not have",
                        index.name, table.name
                    ))
                })?;
            positions.push(position);
        }
        let converter = RowConverter::new(
            positions
                .iter()
                .map(|&p| SortField::new(table.columns[p].field.data_type().clone()))
                .collect(),
        )?;
        Ok(HotIndex {
            oid: index.oid,
            unique: index.unique,
            positions,
            converter,
            entries: RwLock::new(BTreeMap::new()),
            stamped: AtomicUsize::new(0),
        })
    }

    /// Whether this index covers the same columns as `other` would for `table` (so its
    /// entries can be kept across a definition change).
    pub(crate) fn same_shape(&self, other: &IndexDef, table: &TableDef) -> bool {
        let positions: Vec<Option<usize>> = other
            .columns
            .iter()
            .map(|id| table.columns.iter().position(|c| c.id == *id))
            .collect();
        self.oid == other.oid
            && self.unique == other.unique
            && positions.len() == self.positions.len()
            && positions
                .iter()
                .zip(&self.positions)
                .all(|(a, b)| *a == Some(*b))
    }

    /// Positions of the indexed columns in the table's columns.
    pub fn positions(&self) -> &[usize] {
        &self.positions
    }

    /// Index keys of rows given as the table's columns (`None` where a column is NULL).
    pub fn keys_of_columns(&self, columns: &[ArrayRef]) -> StorageResult<Vec<Option<Key>>> {
        let indexed: Vec<ArrayRef> = self
            .positions
            .iter()
            .map(|&p| crate::numeric_key::canonical_column(&columns[p]))
            .collect();
        let rows = self.converter.convert_columns(&indexed)?;
        let len = indexed.first().map_or(0, |c| c.len());
        Ok((0..len)
            .map(|i| {
                if indexed.iter().any(|c| c.is_null(i)) {
                    None
                } else {
                    Some(Arc::from(rows.row(i).data()))
                }
            })
            .collect())
    }

    /// Index keys of encoded rows.
    pub fn keys_of(&self, codec: &TableCodec, rows: &[&[u8]]) -> StorageResult<Vec<Option<Key>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = codec.decode_rows(rows.iter().copied())?;
        self.keys_of_columns(batch.columns())
    }

    /// The index key of one encoded row.
    pub fn key_of(&self, codec: &TableCodec, row: &[u8]) -> StorageResult<Option<Key>> {
        Ok(self.keys_of(codec, &[row])?.pop().flatten())
    }

    /// Index keys for lookup values given as arrays of the indexed columns' types.
    pub fn encode_values(&self, values: &[ArrayRef]) -> StorageResult<Vec<Key>> {
        let values: Vec<ArrayRef> = values
            .iter()
            .map(crate::numeric_key::canonical_column)
            .collect();
        let rows = self.converter.convert_columns(&values)?;
        Ok(rows.iter().map(|r| Arc::from(r.data())).collect())
    }

    /// Row keys that had `index_key` in some version still kept (candidates: recheck them).
    pub fn candidates(&self, index_key: &[u8]) -> Vec<Key> {
        let start: Key = Arc::from(index_key);
        let empty: Key = Arc::from(&[][..]);
        let entries = self.entries.read();
        entries
            .range((Bound::Included((start, empty)), Bound::Unbounded))
            .take_while(|((k, _), _)| k.as_ref() == index_key)
            .map(|((_, row_key), _)| row_key.clone())
            .collect()
    }

    /// Number of entries (live and stamped).
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }

    /// Records committed changes `(row key, old index key, new index key)` at `commit_ts`.
    pub(crate) fn record(&self, changes: impl IntoIterator<Item = IndexChange>, commit_ts: u64) {
        let mut entries = self.entries.write();
        let mut stamped = 0;
        for (row_key, old, new) in changes {
            if old == new {
                if let Some(new) = new {
                    entries.insert((new, row_key), LIVE);
                }
                continue;
            }
            if let Some(old) = old {
                if let Some(stamp) = entries.get_mut(&(old, row_key.clone())) {
                    *stamp = commit_ts;
                    stamped += 1;
                }
            }
            if let Some(new) = new {
                entries.insert((new, row_key), LIVE);
            }
        }
        if stamped > 0 {
            self.stamped.fetch_add(stamped, Ordering::Relaxed);
        }
    }

    /// Drops entries whose versions no snapshot at or after `horizon` can see.
    pub fn vacuum(&self, horizon: u64) {
        if self.stamped.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut entries = self.entries.write();
        entries.retain(|_, stamp| *stamp == LIVE || *stamp > horizon);
        let left = entries.values().filter(|s| **s != LIVE).count();
        self.stamped.store(left, Ordering::Relaxed);
    }

    /// Fills the index from every version `hot` keeps and the newest rows of `cold`'s runs
    /// whose keys the hot tier holds no version of (the index covers cold rows too: entries
    /// are candidates, rechecked through the sources). For a unique index, two rows whose
    /// newest versions share a key fail with PostgreSQL's "could not create unique index".
    pub(crate) fn build(
        &self,
        name: &str,
        table: &TableDef,
        codec: &TableCodec,
        hot: &HotTable,
        cold: &ColdRuns,
    ) -> StorageResult<()> {
        let mut versions = hot.versions();
        if !cold.is_empty() {
            let sources = Sources::new(
                hot,
                cold.current().sources,
                hot.truncated_at(LATEST),
                LATEST,
            );
            let mut range: KeyRange = (Bound::Unbounded, Bound::Unbounded);
            loop {
                let mut rows = Vec::new();
                let last = sources.try_scan_chunk(&range, BUILD_CHUNK, &mut rows)?;
                for (key, row) in rows {
                    if hot.latest(&key).is_none() {
                        versions.push((key, row, LIVE));
                    }
                }
                match last {
                    Some(last) => range.0 = Bound::Excluded(last),
                    None => break,
                }
            }
        }
        let mut entries = BTreeMap::new();
        for chunk in versions.chunks(BUILD_CHUNK) {
            let rows: Vec<&[u8]> = chunk.iter().map(|(_, row, _)| row.as_ref()).collect();
            let keys = self.keys_of(codec, &rows)?;
            for ((row_key, _, ended), index_key) in chunk.iter().zip(keys) {
                if let Some(index_key) = index_key {
                    entries.insert((index_key, row_key.clone()), *ended);
                }
            }
        }
        if self.unique {
            let mut previous: Option<&Key> = None;
            for ((index_key, _), stamp) in &entries {
                if *stamp != LIVE {
                    continue;
                }
                if previous == Some(index_key) {
                    return Err(StorageError::DuplicateInIndex {
                        index: name.to_string(),
                        detail: format!("Key {} is duplicated.", self.describe(table, index_key)),
                    });
                }
                previous = Some(index_key);
            }
        }
        let stamped = entries.values().filter(|s| **s != LIVE).count();
        *self.entries.write() = entries;
        self.stamped.store(stamped, Ordering::Relaxed);
        Ok(())
    }

    /// `(a, b)=(1, x)`: an index key as PostgreSQL prints it in DETAIL.
    pub fn describe(&self, table: &TableDef, index_key: &[u8]) -> String {
        let names: Vec<&str> = self
            .positions
            .iter()
            .map(|&p| table.columns.get(p).map_or("?", |c| c.name.as_str()))
            .collect();
        let parser = self.converter.parser();
        let values = match self.converter.convert_rows([parser.parse(index_key)]) {
            Ok(columns) => columns
                .iter()
                .map(crate::codec::describe_value)
                .collect::<Vec<_>>(),
            Err(_) => vec![],
        };
        format!("({})=({})", names.join(", "), values.join(", "))
    }
}

/// One committed change as the index sees it: (row key, old index key, new index key).
pub(crate) type IndexChange = (Key, Option<Key>, Option<Key>);

/// Index keys for a batch of committed changes `(row key, old row, new row)`.
pub(crate) fn index_changes(
    index: &HotIndex,
    codec: &TableCodec,
    changes: &[(Key, Option<RowBytes>, Option<RowBytes>)],
) -> StorageResult<Vec<IndexChange>> {
    let old_rows: Vec<&[u8]> = changes
        .iter()
        .filter_map(|(_, old, _)| old.as_deref())
        .collect();
    let new_rows: Vec<&[u8]> = changes
        .iter()
        .filter_map(|(_, _, new)| new.as_deref())
        .collect();
    let mut old_keys = index.keys_of(codec, &old_rows)?.into_iter();
    let mut new_keys = index.keys_of(codec, &new_rows)?.into_iter();
    Ok(changes
        .iter()
        .map(|(row_key, old, new)| {
            let old = old.as_ref().and_then(|_| old_keys.next().flatten());
            let new = new.as_ref().and_then(|_| new_keys.next().flatten());
            (row_key.clone(), old, new)
        })
        .collect())
}

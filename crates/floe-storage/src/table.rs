//! One table's live state: its definition, the codec its rows are encoded with, its hot rows,
//! its cold runs and the secondary indexes over the hot rows.
//!
//! The cold runs ([`ColdRuns`]) are those of the manifest version the engine reads, newest
//! first; they are the older sources of every read ([`TableData::sources`]). A reader holds
//! the list it took for its whole read; a flush publishes a new list and removes versions from
//! the hot tier only once no reader holds the old one, so no read ever misses a version that
//! moved between tiers.
//!
//! Invariants: `codec` encodes rows of `def`'s layout, and every row in `hot` was encoded by a
//! codec of the same layout; every index in `indexes` covers columns `def` has and holds an
//! entry for every row version `hot` keeps; a table without a primary key hands out hidden row
//! ids above every one it holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::catalog::{IndexDef, TableDef};
use crate::codec::TableCodec;
use crate::cold_run::{ColdRun, RunMeta};
use crate::error::StorageResult;
use crate::hot::HotTable;
use crate::index::HotIndex;
use crate::source::{OlderSources, Source, Sources, LATEST};

/// The cold runs of one table, newest first: each run as a [`Source`] and as the manifest
/// describes it. Shared by every definition of the table with the same row layout (like the
/// hot tier); a new layout (a rewrite) starts with none.
#[derive(Debug)]
pub struct ColdRuns {
    current: RwLock<RunSet>,
    /// Unique in this process: which list (which row layout of which table) a run was
    /// written for.
    id: u64,
}

/// One list of a table's runs, newest first.
#[derive(Debug, Clone)]
pub struct RunSet {
    /// The runs as sources, for reads.
    pub sources: OlderSources,
    /// The runs themselves, in the same order.
    pub runs: Arc<[Arc<ColdRun>]>,
}

impl Default for ColdRuns {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        ColdRuns {
            current: RwLock::new(RunSet {
                sources: Arc::from(Vec::new()),
                runs: Arc::from(Vec::new()),
            }),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl ColdRuns {
    /// This list's identity in this process ([`crate::cold_tier::ColdTier`] records which
    /// list each run it writes is for).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The current list (readers hold it for their whole read).
    pub fn current(&self) -> RunSet {
        self.current.read().clone()
    }

    /// Whether the table has runs.
    pub fn is_empty(&self) -> bool {
        self.current.read().runs.is_empty()
    }

    /// The manifest entries of the current runs, newest first.
    pub fn metas(&self) -> Vec<RunMeta> {
        self.current
            .read()
            .runs
            .iter()
            .map(|r| r.meta().clone())
            .collect()
    }

    /// Replaces the list with `runs` (newest first); returns the old one, which readers may
    /// still hold.
    pub fn replace(&self, runs: Vec<Arc<ColdRun>>) -> RunSet {
        std::mem::replace(&mut *self.current.write(), RunSet::of(runs))
    }
}

/// Where a run goes in a table's list: level ascending (lower levels hold newer versions),
/// then newest first. For two runs holding the same key, the one written later holds the
/// newer version and has the greater `max_ts` (a flush at `C` writes only versions newer
/// than every version an earlier flush wrote of the same key, and those are above its `C`).
pub fn read_order(meta: &RunMeta) -> (u32, std::cmp::Reverse<u64>, &str) {
    (
        meta.level,
        std::cmp::Reverse(meta.max_ts),
        meta.path.as_str(),
    )
}

impl RunSet {
    fn of(runs: Vec<Arc<ColdRun>>) -> RunSet {
        let sources: OlderSources = runs
            .iter()
            .map(|run| run.clone() as Arc<dyn Source>)
            .collect();
        RunSet {
            sources,
            runs: Arc::from(runs),
        }
    }
}

/// One table's live state: definition, codec and hot rows.
#[derive(Debug)]
pub struct TableData {
    /// The definition the rows are encoded for.
    pub def: Arc<TableDef>,
    /// Key and row encoding.
    pub codec: Arc<TableCodec>,
    /// The in-memory rows.
    pub hot: Arc<HotTable>,
    /// The cold runs, older than every hot version of the same key.
    pub cold: Arc<ColdRuns>,
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
            cold: Arc::new(ColdRuns::default()),
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
            index.build(&index_def.name, &def, &codec, &old.hot, &old.cold)?;
            indexes.push(Arc::new(index));
        }
        Ok(TableData {
            def,
            codec,
            hot: old.hot.clone(),
            cold: old.cold.clone(),
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
        // The marker first, then the runs: a run published later holds no version the
        // marker must hide that an older list did not.
        let truncated_at = self.hot.truncated_at(snapshot_ts);
        Sources::new(
            &self.hot,
            self.cold.current().sources,
            truncated_at,
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

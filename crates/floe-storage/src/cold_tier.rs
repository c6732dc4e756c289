//! The cold tier as the engine holds it: the object store (`--storage`), this process's
//! manifest writer (its epoch fences any older process) and the runs each table reads.
//!
//! At open, the writer claims a new epoch ([`ManifestWriter::open`]), and recovery attaches
//! to each table the runs the newest manifest version lists for it, newest first (level
//! ascending, then newest commit ts first), before the hot tier is loaded: a table with runs
//! keeps its tombstones ([`crate::hot::HotTable::keep_tombstones_from_now`]), since they hide
//! the runs' older versions. Runs of tables the catalog no longer has are left out; the next
//! manifest version drops them and the sweeper deletes them. Cold rows are never loaded into
//! memory at open: only each run's footer and page index.
//!
//! Invariant: a table's attached runs are exactly what the newest manifest version lists for
//! it (until flush and compaction publish new versions).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::codec::TableCodec;
use crate::cold_run::{ColdRun, RunMeta};
use crate::error::StorageResult;
use crate::manifest::{ManifestWriter, RunPins};
use crate::store::ColdStore;
use crate::table::TableData;

/// The cold tier of an open database.
#[derive(Debug)]
pub(crate) struct ColdTier {
    /// Where runs and manifest versions live.
    pub store: Arc<ColdStore>,
    /// This process's writer (its epoch is in every run it names).
    pub manifest: Arc<ManifestWriter>,
    /// Held from a manifest publish until the tables' run lists show it (flush, compaction):
    /// so a publish that drops runs no table lists never races a flush whose run is listed
    /// by the manifest but not yet by its table.
    pub lists: Mutex<()>,
}

impl ColdTier {
    /// Opens the store at `location` (`None`: `file://<dir>/cold`) and claims the next
    /// writer epoch.
    pub fn open(location: Option<&str>, dir: &Path) -> StorageResult<ColdTier> {
        let store = Arc::new(ColdStore::open(location, dir)?);
        let manifest = Arc::new(
            store
                .io()
                .block_on(ManifestWriter::open(store.clone(), RunPins::new()))??,
        );
        tracing::info!(
            location = store.location(),
            epoch = manifest.epoch(),
            runs = manifest.current().runs.len(),
            "opened the cold tier"
        );
        Ok(ColdTier {
            store,
            manifest,
            lists: Mutex::new(()),
        })
    }

    /// Opens the run `meta` of a table encoded by `codec`, pinned for as long as it is held
    /// ([`ColdRun::pin_in`]).
    pub fn open_run(&self, meta: RunMeta, codec: Arc<TableCodec>) -> StorageResult<Arc<ColdRun>> {
        let run = ColdRun::open_blocking(self.store.clone(), meta, codec)?;
        run.pin_in(self.manifest.pins());
        Ok(Arc::new(run))
    }

    /// Attaches to each table of `tables` the runs the newest manifest version lists for it,
    /// newest first, and makes its hot tier keep tombstones. Reads each run's footer and page
    /// index, no rows.
    pub fn attach(&self, tables: &HashMap<u32, Arc<TableData>>) -> StorageResult<()> {
        let manifest = self.manifest.current();
        let mut by_table: HashMap<u32, Vec<RunMeta>> = HashMap::new();
        for meta in &manifest.runs {
            if tables.contains_key(&meta.table_id) {
                by_table
                    .entry(meta.table_id)
                    .or_default()
                    .push(meta.clone());
            } else {
                tracing::debug!(run = %meta.path, "run of a dropped table left out");
            }
        }
        for (table_id, mut metas) in by_table {
            let Some(table) = tables.get(&table_id) else {
                continue;
            };
            // Newest first: lower levels hold newer versions; within a level, newer runs.
            metas.sort_by(|a, b| crate::table::read_order(a).cmp(&crate::table::read_order(b)));
            let mut runs = Vec::with_capacity(metas.len());
            for meta in metas {
                runs.push(self.open_run(meta, table.codec.clone())?);
            }
            table.hot.keep_tombstones_from_now();
            tracing::info!(table = table_id, runs = runs.len(), "attached cold runs");
            table.cold.replace(runs);
        }
        Ok(())
    }

    /// Deletes run files no manifest version lists (left by a crash mid-flush, compacted
    /// away, of dropped tables) that no reader pins. Failures only leave garbage behind:
    /// logged, not returned. Returns whether nothing unlisted is left (`false`: a reader
    /// pinned some, or the sweep failed; sweep again later).
    pub fn sweep(&self) -> bool {
        let manifest = self.manifest.clone();
        match self
            .store
            .io()
            .block_on(async move { manifest.sweep().await })
        {
            Ok(Ok(report)) => {
                if !report.runs_deleted.is_empty() {
                    tracing::info!(runs = report.runs_deleted.len(), "swept unlisted cold runs");
                }
                report.runs_pinned.is_empty()
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cold-tier sweep failed");
                false
            }
            Err(error) => {
                tracing::warn!(%error, "cold-tier sweep failed");
                false
            }
        }
    }
}

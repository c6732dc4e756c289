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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::codec::TableCodec;
use crate::cold_run::{ColdRun, RunMeta, RunOptions, RunWriter};
use crate::error::StorageResult;
use crate::manifest::{Manifest, ManifestEdit, ManifestWriter, RunPins};
use crate::store::ColdStore;
use crate::table::{RunSet, TableData};

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
    /// A publish failed, and none succeeded since: it may have landed anyway (a timeout
    /// after the store applied it), so the manifest may list runs no table reads yet. While
    /// set, tables keep their tombstones whatever their run lists say.
    pub uncertain: AtomicBool,
    /// For each run this process wrote or attached: the table list it is for
    /// ([`crate::table::ColdRuns::id`]). A sync adds a run to a table only if it is for that
    /// table's list: the runs of a layout before a rewrite never reach the new layout.
    owners: Mutex<HashMap<String, u64>>,
    /// Size at which a run being written is closed (it is built in memory before its upload).
    target_run_bytes: AtomicUsize,
}

impl ColdTier {
    /// Opens the store at `location` (`None`: `file://<dir>/cold`) and claims the next
    /// writer epoch.
    pub fn open(location: Option<&str>, dir: &Path) -> StorageResult<ColdTier> {
        ColdTier::with_store(Arc::new(ColdStore::open(location, dir)?))
    }

    /// The cold tier over `store`; claims the next writer epoch.
    pub fn with_store(store: Arc<ColdStore>) -> StorageResult<ColdTier> {
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
            uncertain: AtomicBool::new(false),
            owners: Mutex::new(HashMap::new()),
            target_run_bytes: AtomicUsize::new(RunOptions::default().target_run_bytes),
        })
    }

    /// Records that the runs `paths` were written for the table list `list`
    /// ([`crate::table::ColdRuns::id`]).
    pub fn own(&self, paths: impl IntoIterator<Item = String>, list: u64) {
        let mut owners = self.owners.lock();
        for path in paths {
            owners.insert(path, list);
        }
    }

    /// A writer of `table`'s runs at `level`, named by this process's writer and pinned
    /// until listed.
    pub fn run_writer(&self, table: &TableData, level: u32) -> StorageResult<RunWriter> {
        Ok(RunWriter::new(
            self.store.clone(),
            table.codec.clone(),
            table.def.id,
            level,
            self.manifest.namer().clone(),
            self.manifest.pins(),
            RunOptions {
                target_run_bytes: self.target_run_bytes.load(Ordering::Relaxed),
                ..RunOptions::default()
            },
        )?)
    }

    /// Follows the memory budget: a run is built in memory before its upload, so runs are
    /// closed at an eighth of the hot tier's share (8 MB to 128 MB).
    pub fn set_memory_limit(&self, limit: Option<usize>) {
        if let Some(limit) = limit {
            let bytes = (limit / 8).clamp(8 << 20, RunOptions::default().target_run_bytes);
            self.target_run_bytes.store(bytes, Ordering::Relaxed);
        }
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
            self.own(
                runs.iter().map(|run| run.meta().path.clone()),
                table.cold.id(),
            );
            tracing::info!(table = table_id, runs = runs.len(), "attached cold runs");
            table.cold.replace(runs);
        }
        Ok(())
    }

    /// Publishes `edit` (the caller holds [`ColdTier::lists`]), then makes every table in
    /// `tables` read exactly the runs the new version lists for it. A publish that reported
    /// failure but landed is adopted by the next one (see `ManifestWriter::publish`), so the
    /// version published may hold more than `edit`: a compaction's outputs in place of inputs
    /// a table still reads, a flush's run its table never added. Returns the tables' old
    /// lists (readers may still hold them), by table.
    pub fn publish_and_sync(
        &self,
        edit: ManifestEdit,
        tables: &HashMap<u32, Arc<TableData>>,
    ) -> StorageResult<HashMap<u32, RunSet>> {
        let manifest = self.manifest.clone();
        let published = self
            .store
            .io()
            .block_on(async move { manifest.publish(edit).await })?;
        let published = match published {
            Ok(published) => published,
            Err(error) => {
                self.uncertain.store(true, Ordering::Release);
                return Err(error.into());
            }
        };
        self.uncertain.store(false, Ordering::Release);
        // The version just published is the whole truth (it adopted any earlier publish that
        // landed after reporting failure): owners of runs it does not list are stale.
        self.owners.lock().retain(|path, _| published.lists(path));
        self.sync_lists(&published, tables)
    }

    /// After a failed publish: learns from the store whether it landed after all, and makes
    /// every table in `tables` read what the newest version lists. The caller holds
    /// [`ColdTier::lists`].
    pub fn resolve_uncertainty(&self, tables: &HashMap<u32, Arc<TableData>>) -> StorageResult<()> {
        if !self.uncertain.load(Ordering::Acquire) {
            return Ok(());
        }
        let manifest = self.manifest.clone();
        let newest = self
            .store
            .io()
            .block_on(async move { manifest.refresh().await })??;
        self.uncertain.store(false, Ordering::Release);
        self.sync_lists(&newest, tables)?;
        Ok(())
    }

    /// Makes every table in `tables` read exactly the runs `manifest` lists for it (see
    /// [`ColdTier::publish_and_sync`]); returns the old lists of the tables it changed. A run
    /// that fails to open leaves its table's list as it was (the next sync tries again).
    pub fn sync_lists(
        &self,
        published: &Manifest,
        tables: &HashMap<u32, Arc<TableData>>,
    ) -> StorageResult<HashMap<u32, RunSet>> {
        let mut old_lists = HashMap::new();
        for (id, table) in tables {
            let current = table.cold.current().runs;
            // A run the table does not read yet is added only if it was written for this
            // table's list (not for the layout before a rewrite).
            let list = table.cold.id();
            let mut listed: Vec<&RunMeta> = {
                let owners = self.owners.lock();
                published
                    .table_runs(*id)
                    .filter(|meta| {
                        current.iter().any(|run| run.meta().path == meta.path)
                            || owners.get(&meta.path) == Some(&list)
                    })
                    .collect()
            };
            listed.sort_by(|a, b| crate::table::read_order(a).cmp(&crate::table::read_order(b)));
            let same = current.len() == listed.len()
                && current.iter().zip(&listed).all(|(run, meta)| {
                    run.meta().path == meta.path && run.meta().level == meta.level
                });
            if same {
                continue;
            }
            let mut runs = Vec::with_capacity(listed.len());
            for meta in listed {
                match current
                    .iter()
                    .find(|run| run.meta().path == meta.path && run.meta().level == meta.level)
                {
                    Some(run) => runs.push(run.clone()),
                    None => runs.push(self.open_run(meta.clone(), table.codec.clone())?),
                }
            }
            if !runs.is_empty() {
                table.hot.keep_tombstones_from_now();
            }
            old_lists.insert(*id, table.cold.replace(runs));
        }
        Ok(old_lists)
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

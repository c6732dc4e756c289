//! The manifest: the truth for cold data.
//!
//! A manifest version is one JSON object, `manifest/<version, 20 digits>.json`, listing every
//! live run of every table ([`RunMeta`]: table, path, key range, ts range, rows, bytes, level)
//! and the epoch of the writer that wrote it. The newest version is the truth; older ones are
//! kept for a while ([`KEEP_VERSIONS`]) and then deleted.
//!
//! One process writes at a time, fenced by its epoch. Opening a [`ManifestWriter`] takes
//! `epoch = newest epoch + 1` and publishes a version claiming it; from then on an older
//! writer's next create-only put collides with a version it did not write (or finds a newer
//! epoch), and it gets [`ColdError::Fenced`] and must stop writing.
//!
//! Invariants:
//! - a run is live iff the newest version lists it; a version is written create-only, and
//!   only after every run it lists is durable (runs are uploaded before `publish`);
//! - versions are numbered without gaps; a version number is written once;
//! - a run file is deleted only by the live writer's sweeper, only when the newest version
//!   (read from the store) does not list it and no reader of this process pins it
//!   ([`RunPins`]); new pins are taken only on runs of the newest version this writer knows
//!   ([`ManifestWriter::pin_current`]), so a run leaving the manifest gains no new pins;
//! - after a failed `publish` the caller never deletes its runs itself (the put may have
//!   landed); it drops their pin and the sweeper decides from the store.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::cold_run::{run_epoch, RunMeta, RunNamer, RUNS_DIR};
use crate::error::{ColdError, ColdResult};
use crate::store::{ColdStore, Created};

/// The folder below the store's prefix that holds manifest versions.
pub const MANIFEST_DIR: &str = "manifest";
/// Manifest versions kept behind the newest one (for inspection and slow readers).
pub const KEEP_VERSIONS: u64 = 8;
const FORMAT: u32 = 1;

/// One manifest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The file format.
    pub format: u32,
    /// The version number (1, 2, …; 0 is the empty manifest before any was written).
    pub version: u64,
    /// The epoch of the writer that wrote it.
    pub epoch: u64,
    /// Every live run, by table, level, then newest first.
    pub runs: Vec<RunMeta>,
}

impl Manifest {
    /// The manifest before any version exists.
    pub fn empty() -> Manifest {
        Manifest {
            format: FORMAT,
            version: 0,
            epoch: 0,
            runs: Vec::new(),
        }
    }

    /// `table_id`'s live runs in read order: level 0 first, newest run first within a level.
    pub fn table_runs(&self, table_id: u32) -> impl Iterator<Item = &RunMeta> {
        self.runs.iter().filter(move |run| run.table_id == table_id)
    }

    /// Whether the run named `path` is live in this version.
    pub fn lists(&self, path: &str) -> bool {
        self.runs.iter().any(|run| run.path == path)
    }

    /// The next version with `edit` applied, written by `epoch`.
    fn next(&self, epoch: u64, edit: &ManifestEdit) -> ColdResult<Manifest> {
        let removed: HashSet<&str> = edit.remove.iter().map(String::as_str).collect();
        for path in &removed {
            if !self.lists(path) {
                return Err(ColdError::Internal(format!(
                    "manifest edit removes run {path}, which version {} does not list",
                    self.version
                )));
            }
        }
        let mut runs: Vec<RunMeta> = self
            .runs
            .iter()
            .filter(|run| !removed.contains(run.path.as_str()))
            .cloned()
            .collect();
        for run in &edit.add {
            // A run both removed and added is moved (a compaction relabels its level).
            if self.lists(&run.path) && !removed.contains(run.path.as_str()) {
                return Err(ColdError::Internal(format!(
                    "manifest edit adds run {}, which version {} lists already",
                    run.path, self.version
                )));
            }
            runs.push(run.clone());
        }
        runs.sort_by(|a, b| {
            (a.table_id, a.level, std::cmp::Reverse(a.max_ts), &a.path).cmp(&(
                b.table_id,
                b.level,
                std::cmp::Reverse(b.max_ts),
                &b.path,
            ))
        });
        Ok(Manifest {
            format: FORMAT,
            version: self.version + 1,
            epoch,
            runs,
        })
    }

    fn to_bytes(&self) -> ColdResult<Bytes> {
        serde_json::to_vec_pretty(self)
            .map(Bytes::from)
            .map_err(|e| ColdError::Internal(format!("manifest does not serialize: {e}")))
    }

    fn from_bytes(name: &str, bytes: &[u8]) -> ColdResult<Manifest> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ColdError::corrupt(name, e))?;
        if manifest.format != FORMAT {
            return Err(ColdError::corrupt(
                name,
                format!("unknown manifest format {}", manifest.format),
            ));
        }
        if version_of(name) != Some(manifest.version) {
            return Err(ColdError::corrupt(name, "version differs from its name"));
        }
        Ok(manifest)
    }
}

/// A change to the live runs: runs added (durable already) and runs removed (by path).
#[derive(Debug, Clone, Default)]
pub struct ManifestEdit {
    /// Runs to list.
    pub add: Vec<RunMeta>,
    /// Paths of runs to drop from the list.
    pub remove: Vec<String>,
}

/// The object name of manifest `version`.
pub fn manifest_name(version: u64) -> String {
    format!("{MANIFEST_DIR}/{version:020}.json")
}

fn version_of(name: &str) -> Option<u64> {
    name.strip_prefix(MANIFEST_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The version numbers present in the store, ascending.
async fn list_versions(store: &ColdStore) -> ColdResult<Vec<u64>> {
    let mut versions: Vec<u64> = store
        .list(MANIFEST_DIR)
        .await?
        .iter()
        .filter_map(|listed| version_of(&listed.name))
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// Reads manifest `version`.
async fn read_version(store: &ColdStore, version: u64) -> ColdResult<Manifest> {
    let name = manifest_name(version);
    let bytes = store.get(&name).await?;
    Manifest::from_bytes(&name, &bytes)
}

/// The newest manifest version in `store` ([`Manifest::empty`] if none was written).
pub async fn load_newest(store: &ColdStore) -> ColdResult<Manifest> {
    // A version can vanish between the listing and the read only when many newer ones were
    // published meanwhile (old versions are deleted KEEP_VERSIONS behind): list again.
    for _ in 0..8 {
        let Some(&newest) = list_versions(store).await?.last() else {
            return Ok(Manifest::empty());
        };
        match read_version(store, newest).await {
            Err(e) if e.is_not_found() => continue,
            other => return other,
        }
    }
    Err(ColdError::Internal(
        "the newest manifest version kept vanishing while being read".into(),
    ))
}

/// Runs that readers of this process use: the sweeper leaves them alone. A reader pins the
/// runs of the manifest version it reads for as long as it reads them; a run writer pins its
/// runs from before their upload until the version listing them is published.
#[derive(Debug, Default)]
pub struct RunPins {
    counts: Mutex<HashMap<String, usize>>,
}

impl RunPins {
    /// A new, empty pin set (share it as `Arc<RunPins>`).
    pub fn new() -> Arc<RunPins> {
        Arc::new(RunPins::default())
    }

    /// Pins `names` until the guard drops.
    pub fn pin(self: &Arc<Self>, names: Vec<String>) -> PinGuard {
        {
            let mut counts = self.counts.lock();
            for name in &names {
                *counts.entry(name.clone()).or_default() += 1;
            }
        }
        PinGuard {
            pins: Some(self.clone()),
            names,
        }
    }

    /// Whether `name` is pinned.
    pub fn is_pinned(&self, name: &str) -> bool {
        self.counts.lock().contains_key(name)
    }

    fn unpin(&self, names: &[String]) {
        let mut counts = self.counts.lock();
        for name in names {
            if let Some(count) = counts.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(name);
                }
            }
        }
    }
}

/// Pins on runs, released when dropped.
#[derive(Debug)]
pub struct PinGuard {
    pins: Option<Arc<RunPins>>,
    names: Vec<String>,
}

impl PinGuard {
    /// A guard that pins nothing.
    pub fn empty() -> PinGuard {
        PinGuard {
            pins: None,
            names: Vec::new(),
        }
    }

    /// Pins one more run with this guard.
    pub fn add(&mut self, name: String) {
        if let Some(pins) = &self.pins {
            *pins.counts.lock().entry(name.clone()).or_default() += 1;
            self.names.push(name);
        }
    }

    /// The runs pinned.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(pins) = &self.pins {
            pins.unpin(&self.names);
        }
    }
}

/// What a sweep deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Run files deleted (not listed by the newest version, not pinned).
    pub runs_deleted: Vec<String>,
    /// Old manifest versions deleted.
    pub manifests_deleted: Vec<u64>,
    /// Run files not listed but left because a reader still pins them (a later sweep
    /// deletes them).
    pub runs_pinned: Vec<String>,
}

/// The one process allowed to change the manifest: it holds the newest epoch.
#[derive(Debug)]
pub struct ManifestWriter {
    store: Arc<ColdStore>,
    epoch: u64,
    namer: Arc<RunNamer>,
    pins: Arc<RunPins>,
    /// The newest version this writer published (or adopted).
    current: RwLock<Arc<Manifest>>,
    /// Serialises publishes and sweeps.
    writing: tokio::sync::Mutex<()>,
}

impl ManifestWriter {
    /// Takes over the manifest: claims `epoch = newest epoch + 1` by publishing a version
    /// with it (the same runs). Every older writer is fenced from then on.
    pub async fn open(store: Arc<ColdStore>, pins: Arc<RunPins>) -> ColdResult<ManifestWriter> {
        for _ in 0..16 {
            let newest = load_newest(&store).await?;
            let epoch = newest.epoch + 1;
            let claim = newest.next(epoch, &ManifestEdit::default())?;
            match put_version(&store, &claim).await {
                Ok(()) => {
                    tracing::info!(
                        epoch,
                        version = claim.version,
                        runs = claim.runs.len(),
                        location = store.location(),
                        "took over the cold-tier manifest"
                    );
                    return Ok(ManifestWriter {
                        store,
                        epoch,
                        namer: Arc::new(RunNamer::new(epoch)),
                        pins,
                        current: RwLock::new(Arc::new(claim)),
                        writing: tokio::sync::Mutex::new(()),
                    });
                }
                // Another process published meanwhile: claim after its version.
                Err(PutVersionError::Taken) => continue,
                Err(PutVersionError::Cold(e)) => return Err(e),
            }
        }
        Err(ColdError::Internal(
            "could not claim a manifest epoch: versions kept appearing".into(),
        ))
    }

    /// This writer's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Names runs for this writer (its epoch in every name).
    pub fn namer(&self) -> &Arc<RunNamer> {
        &self.namer
    }

    /// The pins the sweeper honours.
    pub fn pins(&self) -> &Arc<RunPins> {
        &self.pins
    }

    /// The store.
    pub fn store(&self) -> &Arc<ColdStore> {
        &self.store
    }

    /// The newest version this writer knows.
    pub fn current(&self) -> Arc<Manifest> {
        self.current.read().clone()
    }

    /// The newest version with all its runs pinned: what a reader reads from.
    pub fn pin_current(&self) -> (Arc<Manifest>, PinGuard) {
        // Under the lock: a publish cannot drop a run between the read and the pin.
        let current = self.current.read();
        let names = current.runs.iter().map(|run| run.path.clone()).collect();
        (current.clone(), self.pins.pin(names))
    }

    /// Publishes the next version: the current runs with `edit` applied. The added runs must
    /// be durable already. Fails with [`ColdError::Fenced`] when a newer writer took over.
    pub async fn publish(&self, edit: ManifestEdit) -> ColdResult<Arc<Manifest>> {
        let _writing = self.writing.lock().await;
        let mut adopted = 0;
        let next = loop {
            let next = self.current().next(self.epoch, &edit)?;
            match put_version(&self.store, &next).await {
                Ok(()) => break next,
                Err(PutVersionError::Taken) => {}
                Err(PutVersionError::Cold(e)) => return Err(e),
            }
            let found = read_version(&self.store, next.version).await?;
            if found.epoch != self.epoch || adopted > 0 {
                return Err(self.fenced(format!(
                    "manifest version {} was written by epoch {}",
                    next.version, found.epoch
                )));
            }
            // Only this writer writes its epoch: an earlier publish that reported failure
            // landed after all. Adopt that version and apply this edit on top of it.
            tracing::warn!(
                version = found.version,
                "an earlier manifest publish landed after reporting failure"
            );
            *self.current.write() = Arc::new(found);
            adopted += 1;
        };
        // A deleted old version number can be written again: make sure nothing is newer.
        let versions = list_versions(&self.store).await?;
        if let Some(&newest) = versions.last() {
            if newest > next.version {
                return Err(self.fenced(format!(
                    "version {newest} exists beyond the published {}",
                    next.version
                )));
            }
        }
        let next = Arc::new(next);
        *self.current.write() = next.clone();
        tracing::debug!(
            version = next.version,
            added = edit.add.len(),
            removed = edit.remove.len(),
            "published a manifest version"
        );
        Ok(next)
    }

    /// Reads the newest version from the store and adopts it when it is newer than the one
    /// this writer knows (only an earlier publish of its own that reported failure can be).
    /// Fails with [`ColdError::Fenced`] when a newer writer took over.
    pub async fn refresh(&self) -> ColdResult<Arc<Manifest>> {
        let _writing = self.writing.lock().await;
        self.adopt_newest().await
    }

    /// [`ManifestWriter::refresh`] for a caller holding `writing`.
    async fn adopt_newest(&self) -> ColdResult<Arc<Manifest>> {
        let newest = load_newest(&self.store).await?;
        if newest.epoch > self.epoch {
            return Err(self.fenced(format!(
                "manifest version {} has epoch {}",
                newest.version, newest.epoch
            )));
        }
        if newest.version > self.current().version {
            tracing::warn!(
                version = newest.version,
                "an earlier manifest publish landed after reporting failure"
            );
            *self.current.write() = Arc::new(newest);
        }
        Ok(self.current())
    }

    fn fenced(&self, detail: String) -> ColdError {
        tracing::error!(epoch = self.epoch, %detail, "cold-tier writer fenced");
        ColdError::Fenced {
            epoch: self.epoch,
            detail,
        }
    }

    /// Deletes run files the newest version does not list and no reader pins (orphans of
    /// failed or crashed writes, runs compacted away), and manifest versions more than
    /// [`KEEP_VERSIONS`] behind the newest. Fails with [`ColdError::Fenced`] (deleting
    /// nothing) when a newer writer took over.
    pub async fn sweep(&self) -> ColdResult<SweepReport> {
        let _writing = self.writing.lock().await;
        // Only an earlier publish of ours that reported failure can be newer than `current`.
        let newest = self.adopt_newest().await?;
        let listed: HashSet<&str> = newest.runs.iter().map(|run| run.path.as_str()).collect();
        let mut report = SweepReport::default();
        for object in self.store.list(RUNS_DIR).await? {
            if listed.contains(object.name.as_str()) {
                continue;
            }
            if self.pins.is_pinned(&object.name) {
                report.runs_pinned.push(object.name);
                continue;
            }
            match run_epoch(&object.name) {
                Some(epoch) if epoch > self.epoch => {
                    return Err(
                        self.fenced(format!("run {} was written by epoch {epoch}", object.name))
                    );
                }
                Some(_) => {}
                None => {
                    tracing::warn!(object = %object.name, "unexpected object among runs; left");
                    continue;
                }
            }
            self.store.delete(&object.name).await?;
            tracing::info!(run = %object.name, "swept an unlisted cold run");
            report.runs_deleted.push(object.name);
        }
        for version in list_versions(&self.store).await? {
            if version + KEEP_VERSIONS < newest.version {
                self.store.delete(&manifest_name(version)).await?;
                report.manifests_deleted.push(version);
            }
        }
        Ok(report)
    }
}

/// How a create-only put of a manifest version failed.
enum PutVersionError {
    /// The version exists and is not this one.
    Taken,
    Cold(ColdError),
}

/// Writes `manifest` as its version, create-only. A retried put that finds the version
/// compares it with `manifest`: the same bytes mean an earlier attempt landed.
async fn put_version(store: &ColdStore, manifest: &Manifest) -> Result<(), PutVersionError> {
    let name = manifest_name(manifest.version);
    let bytes = manifest.to_bytes().map_err(PutVersionError::Cold)?;
    match store.put_create(&name, bytes.clone()).await {
        Ok(Created::New) => Ok(()),
        Ok(Created::FoundOnRetry) => {
            let found = store.get(&name).await.map_err(PutVersionError::Cold)?;
            if found == bytes {
                Ok(())
            } else {
                Err(PutVersionError::Taken)
            }
        }
        Err(ColdError::AlreadyExists { .. }) => Err(PutVersionError::Taken),
        Err(e) => Err(PutVersionError::Cold(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold_run::tests::{
        codec, random_history, run_order, small_options, write_run, Rng, TABLE,
    };
    use crate::cold_run::ColdRun;
    use crate::fault::{FaultyStore, Op};
    use crate::source::{Lookup, Source, LATEST};
    use crate::store::RetryPolicy;
    use object_store::memory::InMemory;
    use std::time::Duration;

    fn block<F>(store: &Arc<ColdStore>, future: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        store.io().block_on(future).unwrap()
    }

    fn open_writer(store: &Arc<ColdStore>) -> ColdResult<Arc<ManifestWriter>> {
        let s = store.clone();
        block(store, async move {
            ManifestWriter::open(s, RunPins::new()).await
        })
        .map(Arc::new)
    }

    fn publish(writer: &Arc<ManifestWriter>, edit: ManifestEdit) -> ColdResult<Arc<Manifest>> {
        let w = writer.clone();
        block(writer.store(), async move { w.publish(edit).await })
    }

    fn sweep(writer: &Arc<ManifestWriter>) -> ColdResult<SweepReport> {
        let w = writer.clone();
        block(writer.store(), async move { w.sweep().await })
    }

    fn newest(store: &Arc<ColdStore>) -> Manifest {
        let s = store.clone();
        block(store, async move { load_newest(&s).await }).unwrap()
    }

    fn run_files(store: &Arc<ColdStore>) -> Vec<String> {
        let s = store.clone();
        block(store, async move { s.list(RUNS_DIR).await })
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect()
    }

    /// Writes one small run with `writer`'s names; returns it pinned.
    fn one_run(writer: &ManifestWriter, seed: u64) -> ColdResult<crate::cold_run::WrittenRuns> {
        let codec = codec();
        let mut rng = Rng::new(seed);
        let history = random_history(&mut rng, &codec, 20, 10);
        write_run(
            writer.store(),
            &codec,
            writer.namer(),
            writer.pins(),
            small_options(),
            run_order(history.iter().flatten()),
        )
    }

    #[test]
    fn versions_are_numbered_and_the_newest_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = Arc::new(ColdStore::open(Some(&url), dir.path()).unwrap());
        assert_eq!(newest(&store), Manifest::empty());
        let writer = open_writer(&store).unwrap();
        assert_eq!((writer.epoch(), writer.current().version), (1, 1));
        let first = one_run(&writer, 1).unwrap();
        let v2 = publish(
            &writer,
            ManifestEdit {
                add: first.runs.clone(),
                remove: vec![],
            },
        )
        .unwrap();
        assert_eq!((v2.version, v2.epoch, v2.runs.len()), (2, 1, 1));
        let second = one_run(&writer, 2).unwrap();
        let v3 = publish(
            &writer,
            ManifestEdit {
                add: second.runs.clone(),
                remove: vec![first.runs[0].path.clone()],
            },
        )
        .unwrap();
        assert_eq!(v3.runs, second.runs);
        // A new process reloads the newest version from the store.
        let reopened = Arc::new(ColdStore::open(Some(&url), dir.path()).unwrap());
        let loaded = newest(&reopened);
        assert_eq!(loaded, *v3);
        assert!(
            std::fs::read_to_string(dir.path().join("manifest/00000000000000000003.json"))
                .unwrap()
                .contains(&second.runs[0].path)
        );
        // Its run is readable there.
        let run = ColdRun::open_blocking(reopened, loaded.runs[0].clone(), codec()).unwrap();
        assert!(run.meta().rows > 0);
        // Removing a run the manifest does not list is a bug, refused.
        let bad = publish(
            &writer,
            ManifestEdit {
                add: vec![],
                remove: vec!["runs/1/nothing.parquet".into()],
            },
        );
        assert!(matches!(bad, Err(ColdError::Internal(_))));
        assert_eq!(newest(&store).version, 3);
    }

    #[test]
    fn a_new_writer_fences_the_old_one() {
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let old = open_writer(&store).unwrap();
        let runs = one_run(&old, 1).unwrap();
        publish(
            &old,
            ManifestEdit {
                add: runs.runs.clone(),
                remove: vec![],
            },
        )
        .unwrap();
        let new = open_writer(&store).unwrap();
        assert_eq!(new.epoch(), 2);
        assert_eq!(new.current().runs, runs.runs);
        // The old writer's next publish collides with the new writer's claim.
        let more = one_run(&old, 2).unwrap();
        let err = publish(
            &old,
            ManifestEdit {
                add: more.runs.clone(),
                remove: vec![],
            },
        )
        .unwrap_err();
        assert!(err.is_fenced(), "{err}");
        assert!(err.to_string().contains("epoch 2"), "{err}");
        // Its sweeper refuses too (it sees the newer epoch) and deletes nothing.
        drop(more);
        let files = run_files(&store);
        assert!(sweep(&old).unwrap_err().is_fenced());
        assert_eq!(run_files(&store), files);
        // The new writer goes on; the fenced writer's unlisted run is an orphan it sweeps.
        let report = sweep(&new).unwrap();
        assert_eq!(report.runs_deleted.len(), 1);
        assert_eq!(run_files(&store), vec![runs.runs[0].path.clone()]);
        assert_eq!(newest(&store).epoch, 2);
        // An old writer that missed many versions (its next number deleted) is fenced too.
        for _ in 0..KEEP_VERSIONS + 3 {
            publish(&new, ManifestEdit::default()).unwrap();
        }
        assert!(!sweep(&new).unwrap().manifests_deleted.is_empty());
        let stale = publish(&old, ManifestEdit::default()).unwrap_err();
        assert!(stale.is_fenced(), "{stale}");
        // The new writer's names carry its epoch: the old one's can never collide with them.
        assert!(new
            .namer()
            .next_name(TABLE)
            .contains("/00000000000000000002-"));
    }

    #[test]
    fn sweeper_deletes_orphans_but_not_listed_or_pinned_runs() {
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let writer = open_writer(&store).unwrap();
        let listed = one_run(&writer, 1).unwrap();
        publish(
            &writer,
            ManifestEdit {
                add: listed.runs.clone(),
                remove: vec![],
            },
        )
        .unwrap();
        drop(listed);
        // In flight: written, not yet published (pinned by its writer).
        let in_flight = one_run(&writer, 2).unwrap();
        // Abandoned: a failed flush dropped it.
        let abandoned = one_run(&writer, 3).unwrap();
        let abandoned_path = abandoned.runs[0].path.clone();
        drop(abandoned);
        // Read by a query, then compacted away.
        let (snapshot, reader_pin) = writer.pin_current();
        let compacted = snapshot.runs[0].path.clone();
        let replacement = one_run(&writer, 4).unwrap();
        publish(
            &writer,
            ManifestEdit {
                add: replacement.runs.clone(),
                remove: vec![compacted.clone()],
            },
        )
        .unwrap();
        drop(replacement);
        let report = sweep(&writer).unwrap();
        assert_eq!(report.runs_deleted, vec![abandoned_path.clone()]);
        let files = run_files(&store);
        assert!(files.contains(&compacted), "pinned by a reader");
        assert!(
            files.contains(&in_flight.runs[0].path),
            "pinned by its writer"
        );
        // The reader finishes: the compacted run goes; the in-flight one is published.
        drop(reader_pin);
        publish(
            &writer,
            ManifestEdit {
                add: in_flight.runs.clone(),
                remove: vec![],
            },
        )
        .unwrap();
        drop(in_flight);
        assert_eq!(sweep(&writer).unwrap().runs_deleted, vec![compacted]);
        let mut live: Vec<String> = newest(&store).runs.into_iter().map(|r| r.path).collect();
        live.sort();
        assert_eq!(run_files(&store), live);
    }

    /// With a share of every object-store call failing (some puts landing before they fail),
    /// flushes and manifest swaps either land whole or leave the previous manifest intact;
    /// every listed run stays readable and right, and once faults stop the sweeper leaves
    /// exactly the listed runs. `FLOE_FAULT_SEED` replays one seed.
    #[test]
    fn faults_never_lose_the_manifest_and_the_sweeper_cleans_up() {
        let seeds: Vec<u64> = match std::env::var("FLOE_FAULT_SEED") {
            Ok(seed) => vec![seed.parse().expect("FLOE_FAULT_SEED is a number")],
            Err(_) => (1..=4).collect(),
        };
        for seed in seeds {
            println!("FLOE_FAULT_SEED={seed}");
            check_faults(seed);
        }
    }

    fn check_faults(seed: u64) {
        let faulty = FaultyStore::new(Arc::new(InMemory::new()), seed);
        let store = Arc::new(
            ColdStore::with_object_store(faulty.clone(), "cold")
                .unwrap()
                .with_retry(RetryPolicy {
                    attempts: 2,
                    first_backoff: Duration::from_millis(1),
                    max_backoff: Duration::from_millis(2),
                }),
        );
        let writer = open_writer(&store).unwrap();
        let codec = codec();
        faulty.fail(&[Op::Put, Op::Get, Op::List, Op::Delete], 150);
        let mut rng = Rng::new(seed);
        let (mut published, mut failed) = (0, 0);
        for round in 0..24u64 {
            let before = newest_retrying(&store);
            let history = random_history(&mut rng, &codec, 15, 6);
            let attempt = write_run(
                &store,
                &codec,
                writer.namer(),
                writer.pins(),
                small_options(),
                run_order(history.iter().flatten()),
            )
            .and_then(|written| {
                // Replace the oldest run now and then, as compaction would.
                let remove: Vec<String> = writer
                    .current()
                    .runs
                    .first()
                    .filter(|_| round % 3 == 2)
                    .map(|run| run.path.clone())
                    .into_iter()
                    .collect();
                let edit = ManifestEdit {
                    add: written.runs.clone(),
                    remove,
                };
                publish(&writer, edit).map(|m| (m, written))
            });
            match attempt {
                Ok((manifest, _pin)) => {
                    published += 1;
                    assert_eq!(manifest.version, before.version + 1);
                }
                Err(e) => {
                    assert!(!e.is_fenced(), "seed {seed}: {e}");
                    failed += 1;
                    // The manifest is the previous one or (a put that landed before failing)
                    // the next one, whole.
                    let after = newest_retrying(&store);
                    assert!(
                        after == before || after.version == before.version + 1,
                        "seed {seed}, round {round}"
                    );
                }
            }
            let _ = sweep(&writer);
        }
        faulty.fail(&[], 0);
        println!(
            "seed {seed}: {published} published, {failed} failed, {} faults injected",
            faulty.injected()
        );
        assert!(faulty.injected() > 0);
        assert!(
            published > 0,
            "seed {seed}: nothing published ({failed} failed)"
        );
        let report = sweep(&writer).unwrap();
        let manifest = newest(&store);
        let mut live: Vec<String> = manifest.runs.iter().map(|r| r.path.clone()).collect();
        live.sort();
        assert_eq!(run_files(&store), live, "seed {seed}: {report:?}");
        // Every listed run is whole and reads its newest version of some key.
        for meta in &manifest.runs {
            let run = ColdRun::open_blocking(store.clone(), meta.clone(), codec.clone()).unwrap();
            let key = meta.min_key.clone();
            assert!(!matches!(
                Source::lookup(&run, &key, LATEST).unwrap(),
                Lookup::Absent
            ));
        }
    }

    /// The newest manifest, read through faults (a failed read is retried here).
    fn newest_retrying(store: &Arc<ColdStore>) -> Manifest {
        for _ in 0..100 {
            let s = store.clone();
            if let Ok(manifest) = block(store, async move { load_newest(&s).await }) {
                return manifest;
            }
        }
        panic!("the manifest never read");
    }
}

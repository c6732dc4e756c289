//! The hot tier of one table: an ordered map from key to a short MVCC version chain.
//!
//! Each chain holds `(commit_ts, row or tombstone)` oldest first. A reader at snapshot `s` sees
//! the newest version with `commit_ts <= s`; a tombstone there means "no row". Versions that no
//! live snapshot can see are pruned when the key is written again and by [`HotTable::vacuum`].
//!
//! Only the committer thread writes (in commit order); readers take the read lock for a bounded
//! chunk of keys at a time and never hold it across an `await`.
//!
//! Structure choice: a `BTreeMap` behind a `parking_lot::RwLock`. Writers are serialized by the
//! committer anyway, and a read lock costs one atomic; a concurrent skip list would save the
//! lock but costs more per lookup and per byte. Revisit with the micro benches.
//!
//! A commit into an empty map (a bulk load into a new or truncated table) builds the B-tree
//! bottom-up from the write set's sorted keys instead of inserting key by key.
//!
//! A key's version chain is held inline in the map while it has one version (almost every
//! key): no allocation of its own per row.
//!
//! TRUNCATE is a table-level marker, not a tombstone per key: a marker at `T` hides every
//! version older than `T` from snapshots at or after `T` ("nothing older than T"; rows the
//! truncating commit writes are at `T` and stay). Vacuum frees the hidden versions once no
//! snapshot needs them, then forgets the marker (kept while older sources may hold keys it
//! hides, see [`HotTable::keeping_tombstones`]). Every read of the map honours the markers; the
//! marker of a snapshot is loaded before the map is read.
//!
//! Map keys carry their first eight bytes inline ([`MapKey`]): a lookup's comparisons stay
//! inside the B-tree node and follow a key's pointer only when the prefixes tie (for integer
//! keys, only at the match), instead of one cache miss per key compared.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use smallvec::{smallvec, SmallVec};

use crate::codec::{Key, RowBytes};
use crate::keymap::{probe_bound, range_is_empty, view_bound, KeyMap, KeyView, MapKey, Probe};
use crate::source::{Lookup, Versioned};

/// Bytes charged per version on top of key and row (chain slot, map node share).
const VERSION_OVERHEAD: usize = 48;

#[derive(Debug, Clone)]
pub(crate) struct Version {
    commit_ts: u64,
    row: Option<RowBytes>,
}

/// A key range of a scan.
pub type KeyRange = (Bound<Key>, Bound<Key>);

/// A key's versions, oldest first. Almost every key has one version: it is kept inline (no
/// allocation of its own per row); keys being updated spill to the heap.
pub(crate) type Chain = SmallVec<[Version; 1]>;

type Map = BTreeMap<MapKey, Chain>;

/// The rows a commit writes to one table, in key order (`None`: delete), as a transaction's
/// write set holds them: each key's chain is the one version it gets at commit, its commit
/// ts set then. A commit into an empty table adopts this B-tree as the hot tier's map, so a
/// bulk load's map is built once, while its rows arrive, not again after the log write.
pub(crate) type PendingRows = KeyMap<Chain>;

/// The chain a pending write of `row` becomes at commit.
pub(crate) fn pending(row: Option<RowBytes>) -> Chain {
    smallvec![Version { commit_ts: 0, row }]
}

/// The row of a pending write (see [`pending`]).
pub(crate) fn pending_row(chain: &Chain) -> &Option<RowBytes> {
    &chain[0].row
}

/// The row of a pending write, taken out of it.
pub(crate) fn into_pending_row(chain: Chain) -> Option<RowBytes> {
    chain.into_iter().next().and_then(|v| v.row)
}

/// One table's in-memory rows.
#[derive(Debug, Default)]
pub struct HotTable {
    map: RwLock<Map>,
    bytes: AtomicUsize,
    /// Keys whose chains may hold prunable versions or tombstones (repeats possible): vacuum
    /// visits these instead of the whole map, so its cost follows the writes since the last
    /// one, not the table's size.
    dirty: Mutex<Vec<Key>>,
    /// Whether a key's tombstone stays after no snapshot needs it any more: when older sources
    /// (cold runs) may hold the key, the tombstone is what hides their versions
    /// ([`crate::source`]), so only the flush that writes it to a run may drop it. Off while the
    /// hot tier is the table's only source: a tombstone nobody can see past is dropped.
    keep_tombstones: AtomicBool,
    /// TRUNCATE markers, ascending commit ts (see the module doc).
    truncations: RwLock<Vec<u64>>,
    /// The newest marker (0: none), read without a lock by every read.
    newest_truncation: AtomicU64,
    /// Markers remain whose hidden versions may still be in the map: vacuum visits every key.
    truncation_garbage: AtomicBool,
}

/// What applying a change did to a key, for the change stream.
pub struct Applied {
    /// The row that was visible before (to retract).
    pub old: Option<RowBytes>,
}

impl HotTable {
    /// An empty hot tier that keeps every key's newest tombstone (see
    /// [`HotTable::keeps_tombstones`]): for a table whose older versions may live in other
    /// sources.
    pub fn keeping_tombstones() -> HotTable {
        HotTable {
            keep_tombstones: AtomicBool::new(true),
            ..HotTable::default()
        }
    }

    /// From now on keep every key's newest tombstone (the table got older sources). Taken
    /// under the map's write lock, so no apply or vacuum that started before drops one after.
    pub fn keep_tombstones_from_now(&self) {
        let _map = self.map.write();
        self.keep_tombstones.store(true, Ordering::Release);
    }

    /// Whether a key's newest tombstone is kept even when no snapshot needs it (it hides the
    /// key's versions in older sources).
    pub fn keeps_tombstones(&self) -> bool {
        self.keep_tombstones.load(Ordering::Acquire)
    }

    /// The truncation marker a reader at `snapshot_ts` honours: versions older than it are
    /// hidden (0: none).
    pub fn truncated_at(&self, snapshot_ts: u64) -> u64 {
        let newest = self.newest_truncation.load(Ordering::Acquire);
        if newest <= snapshot_ts {
            return newest;
        }
        let truncations = self.truncations.read();
        truncations
            .iter()
            .rev()
            .find(|t| **t <= snapshot_ts)
            .copied()
            .unwrap_or(0)
    }

    /// TRUNCATE at `commit_ts`: every version older than it is hidden from snapshots at or
    /// after it. Called by the committer before the commit's own rows are applied.
    pub fn truncate(&self, commit_ts: u64) {
        let mut truncations = self.truncations.write();
        if truncations.last().is_some_and(|t| *t >= commit_ts) {
            return;
        }
        truncations.push(commit_ts);
        self.newest_truncation.store(commit_ts, Ordering::Release);
        self.truncation_garbage.store(true, Ordering::Release);
    }

    /// Memory held, in bytes (approximate).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of keys (live or tombstoned) in the map.
    pub fn key_count(&self) -> usize {
        self.map.read().len()
    }

    /// Applies one committed change at `commit_ts`. `horizon` is the oldest snapshot still
    /// readable: versions only older snapshots could see are dropped. Returns the row that was
    /// current before. Returns the change in held bytes.
    pub fn apply(
        &self,
        key: &Key,
        row: Option<RowBytes>,
        commit_ts: u64,
        horizon: u64,
    ) -> (Applied, isize) {
        let mut map = self.map.write();
        self.apply_locked(&mut map, key, row, commit_ts, horizon)
    }

    /// Applies many changes under one lock acquisition; calls `each` with the old row.
    pub fn apply_all<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a Key, &'a Option<RowBytes>)>,
        commit_ts: u64,
        horizon: u64,
        mut each: impl FnMut(&Key, Applied, &Option<RowBytes>),
    ) -> isize {
        let mut map = self.map.write();
        let mut changes = changes.into_iter().peekable();
        if map.is_empty() && changes.peek().is_some() {
            return self.build_locked(&mut map, changes, commit_ts, horizon, &mut each);
        }
        let mut delta = 0;
        for (key, row) in changes {
            let (applied, d) = self.apply_locked(&mut map, key, row.clone(), commit_ts, horizon);
            delta += d;
            each(key, applied, row);
        }
        delta
    }

    /// [`HotTable::apply_all`] of a transaction's pending rows, which it takes over: into an
    /// empty map (a bulk load into a new or emptied table) their B-tree becomes the map as it
    /// is, each version given `commit_ts` and deletes dropped, with no new allocation.
    pub(crate) fn apply_pending(
        &self,
        rows: PendingRows,
        commit_ts: u64,
        horizon: u64,
        mut each: impl FnMut(&Key, Applied, &Option<RowBytes>),
    ) -> isize {
        let mut map = self.map.write();
        if !map.is_empty() {
            // Only the committer writes: the map stays non-empty between the two locks.
            drop(map);
            return self.apply_all(
                rows.iter().map(|(key, chain)| (key, pending_row(chain))),
                commit_ts,
                horizon,
                each,
            );
        }
        let mut delta: isize = 0;
        let keep_tombstones = self.keeps_tombstones();
        let adopted = rows.into_map_retaining(|key, chain| {
            chain.truncate(1);
            let version = &mut chain[0];
            version.commit_ts = commit_ts;
            each(&key.key, Applied { old: None }, &version.row);
            match &version.row {
                Some(row) => {
                    delta += (key.key.len() + row.len() + 2 * VERSION_OVERHEAD) as isize;
                    true
                }
                None if keep_tombstones => {
                    delta += (key.key.len() + 2 * VERSION_OVERHEAD) as isize;
                    true
                }
                // Deleting a key that has no versions: nothing to record.
                None => false,
            }
        });
        *map = adopted;
        self.add_bytes(delta);
        delta
    }

    /// [`HotTable::apply_all`] into an empty map (a bulk load into a new or emptied table):
    /// the map is built bottom-up from the changes, which callers give in key order (a
    /// write set's order), instead of one root-to-leaf search and node split per key. Changes
    /// out of order or repeated fall back to inserting the rest one by one.
    fn build_locked<'a>(
        &self,
        map: &mut Map,
        changes: impl Iterator<Item = (&'a Key, &'a Option<RowBytes>)>,
        commit_ts: u64,
        horizon: u64,
        each: &mut impl FnMut(&Key, Applied, &Option<RowBytes>),
    ) -> isize {
        let mut delta: isize = 0;
        let mut sorted: Vec<(MapKey, Chain)> = Vec::with_capacity(changes.size_hint().0);
        let mut rest: Vec<(&'a Key, &'a Option<RowBytes>)> = Vec::new();
        let mut last: Option<&Key> = None;
        for (key, row) in changes {
            let in_order = rest.is_empty() && last.is_none_or(|last| last.as_ref() < key.as_ref());
            if !in_order {
                rest.push((key, row));
                continue;
            }
            last = Some(key);
            if row.is_none() && !self.keeps_tombstones() {
                // Deleting a key that has no versions: nothing to record.
                each(key, Applied { old: None }, row);
                continue;
            }
            delta +=
                (key.len() + row.as_ref().map_or(0, |r| r.len()) + 2 * VERSION_OVERHEAD) as isize;
            sorted.push((
                MapKey::new(key),
                smallvec![Version {
                    commit_ts,
                    row: row.clone(),
                }],
            ));
            each(key, Applied { old: None }, row);
        }
        // Keys are strictly increasing: the collect builds the tree without comparisons
        // beyond checking the order.
        *map = sorted.into_iter().collect();
        self.add_bytes(delta);
        for (key, row) in rest {
            let (applied, d) = self.apply_locked(map, key, row.clone(), commit_ts, horizon);
            delta += d;
            each(key, applied, row);
        }
        delta
    }

    fn apply_locked(
        &self,
        map: &mut Map,
        key: &Key,
        row: Option<RowBytes>,
        commit_ts: u64,
        horizon: u64,
    ) -> (Applied, isize) {
        let mut delta: isize = 0;
        let row_len = row.as_ref().map_or(0, |r| r.len());
        let probe = Probe::new(key);
        // One search per key: a new key (the common case in bulk loads) is inserted where the
        // search ended.
        let chain = match map.entry(MapKey::new(key)) {
            std::collections::btree_map::Entry::Occupied(chain) => chain.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                if row.is_none() && !self.keeps_tombstones() {
                    // Deleting a key that has no versions: nothing to record (unless an older
                    // source may hold it: then the tombstone hides it there).
                    return (Applied { old: None }, 0);
                }
                delta += (key.len() + VERSION_OVERHEAD) as isize;
                slot.insert(Chain::new())
            }
        };
        // Only the committer writes: the newest marker is the one this commit sees.
        let truncated_at = self.newest_truncation.load(Ordering::Relaxed);
        let old = chain
            .last()
            .filter(|v| v.commit_ts >= truncated_at)
            .and_then(|v| v.row.clone());
        chain.push(Version { commit_ts, row });
        delta += (row_len + VERSION_OVERHEAD) as isize;
        delta -= prune(chain, horizon, self.truncated_at(horizon)) as isize;
        if chain.len() == 1 && chain[0].row.is_none() {
            if chain[0].commit_ts <= horizon && !self.keeps_tombstones() {
                map.remove(&probe as &dyn KeyView);
                delta -= (key.len() + 2 * VERSION_OVERHEAD) as isize;
            } else if !self.keeps_tombstones() {
                self.dirty.lock().push(key.clone());
            }
        } else if chain.len() > 1 {
            self.dirty.lock().push(key.clone());
        }
        self.add_bytes(delta);
        (Applied { old }, delta)
    }

    fn add_bytes(&self, delta: isize) {
        if delta >= 0 {
            self.bytes.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub((-delta) as usize, Ordering::Relaxed);
        }
    }

    /// The row visible at `snapshot_ts`.
    pub fn get(&self, key: &[u8], snapshot_ts: u64) -> Option<RowBytes> {
        let probe = Probe::new(key);
        let truncated_at = self.truncated_at(snapshot_ts);
        let map = self.map.read();
        map.get(&probe as &dyn KeyView)
            .and_then(|chain| visible(chain, snapshot_ts, truncated_at))
    }

    /// The newest version of `key` at `snapshot_ts`: a row, a tombstone, or nothing (this
    /// source holds no version of the key that the snapshot can see).
    pub fn lookup(&self, key: &[u8], snapshot_ts: u64) -> Lookup {
        let probe = Probe::new(key);
        let truncated_at = self.truncated_at(snapshot_ts);
        let map = self.map.read();
        match map
            .get(&probe as &dyn KeyView)
            .and_then(|chain| newest_at(chain, snapshot_ts, truncated_at))
        {
            Some(Version {
                commit_ts,
                row: Some(row),
            }) => Lookup::Live {
                commit_ts: *commit_ts,
                row: row.clone(),
            },
            Some(Version {
                commit_ts,
                row: None,
            }) => Lookup::Deleted {
                commit_ts: *commit_ts,
            },
            None => Lookup::Absent,
        }
    }

    /// Up to `max` keys of `range` in key order, each with its newest version at
    /// `snapshot_ts` (tombstones included), appended to `out`. Returns the last key looked at
    /// when the chunk is full (continue after it), or `None` when the range is exhausted.
    pub fn scan_versions(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
        out: &mut Vec<Versioned>,
    ) -> Option<Key> {
        if range_is_empty(range) {
            return None;
        }
        let (lo, hi) = (probe_bound(&range.0), probe_bound(&range.1));
        let truncated_at = self.truncated_at(snapshot_ts);
        let map = self.map.read();
        let mut taken = 0;
        for (key, chain) in map.range::<dyn KeyView, _>((view_bound(&lo), view_bound(&hi))) {
            if let Some(version) = newest_at(chain, snapshot_ts, truncated_at) {
                out.push(Versioned {
                    key: key.key.clone(),
                    commit_ts: version.commit_ts,
                    row: version.row.clone(),
                });
                taken += 1;
                if taken >= max {
                    return Some(key.key.clone());
                }
            }
        }
        None
    }

    /// The newest committed version of `key`: its commit ts and row (`None`: deleted).
    pub fn latest(&self, key: &[u8]) -> Option<(u64, Option<RowBytes>)> {
        let probe = Probe::new(key);
        let truncated_at = self.truncated_at(u64::MAX);
        let map = self.map.read();
        map.get(&probe as &dyn KeyView)
            .and_then(|chain| chain.last())
            .filter(|v| v.commit_ts >= truncated_at)
            .map(|v| (v.commit_ts, v.row.clone()))
    }

    /// For each of `keys`: whether its newest committed version is a row (not deleted), under
    /// one read lock (bulk inserts check many keys at once).
    pub fn latest_live_many<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) -> Vec<bool> {
        let truncated_at = self.truncated_at(u64::MAX);
        let map = self.map.read();
        keys.into_iter()
            .map(|key| {
                map.get(&Probe::new(key) as &dyn KeyView)
                    .and_then(|chain| chain.last())
                    .is_some_and(|v| v.row.is_some() && v.commit_ts >= truncated_at)
            })
            .collect()
    }

    /// Up to `max` visible rows at `snapshot_ts` in `range`, in key order, appended to `out`.
    /// Returns the last key looked at when the chunk is full (continue after it), or `None`
    /// when the range is exhausted.
    pub fn scan_chunk(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
        out: &mut Vec<(Key, RowBytes)>,
    ) -> Option<Key> {
        if range_is_empty(range) {
            return None;
        }
        let (lo, hi) = (probe_bound(&range.0), probe_bound(&range.1));
        let truncated_at = self.truncated_at(snapshot_ts);
        let map = self.map.read();
        let mut taken = 0;
        for (key, chain) in map.range::<dyn KeyView, _>((view_bound(&lo), view_bound(&hi))) {
            if let Some(row) = visible(chain, snapshot_ts, truncated_at) {
                out.push((key.key.clone(), row));
                taken += 1;
                if taken >= max {
                    return Some(key.key.clone());
                }
            }
        }
        None
    }

    /// Every row visible at `snapshot_ts` (for TRUNCATE and table rewrites).
    pub fn visible_keys(&self, snapshot_ts: u64) -> Vec<(Key, RowBytes)> {
        let truncated_at = self.truncated_at(snapshot_ts);
        let map = self.map.read();
        map.iter()
            .filter_map(|(k, chain)| {
                visible(chain, snapshot_ts, truncated_at).map(|r| (k.key.clone(), r))
            })
            .collect()
    }

    /// Every kept version that is a row: `(key, row, ended)` where `ended` is the commit ts of
    /// the next version of the key or of the first TRUNCATE after it (`u64::MAX` for the
    /// newest). For building indexes.
    pub fn versions(&self) -> Vec<(Key, RowBytes, u64)> {
        let truncations = self.truncations.read().clone();
        let map = self.map.read();
        let mut out = Vec::with_capacity(map.len());
        for (key, chain) in map.iter() {
            for (i, version) in chain.iter().enumerate() {
                if let Some(row) = &version.row {
                    let truncated = truncations
                        .get(truncations.partition_point(|t| *t <= version.commit_ts))
                        .copied()
                        .unwrap_or(u64::MAX);
                    let ended = chain
                        .get(i + 1)
                        .map_or(u64::MAX, |next| next.commit_ts)
                        .min(truncated);
                    out.push((key.key.clone(), row.clone(), ended));
                }
            }
        }
        out
    }

    /// Stop keeping tombstones no snapshot needs (the table has no older source again).
    pub fn stop_keeping_tombstones(&self) {
        let _map = self.map.write();
        self.keep_tombstones.store(false, Ordering::Release);
    }

    /// Removes each `(key, commit_ts)` whose newest version is still the one at `commit_ts`: a
    /// flush wrote it into a run that a published manifest lists, and took only keys no
    /// snapshot needs an older version of, so the whole chain goes. A key written since stays.
    /// Returns (keys removed, bytes freed).
    pub fn remove_flushed(&self, flushed: &[(Key, u64)]) -> (usize, usize) {
        let mut removed = 0;
        let mut freed = 0usize;
        for batch in flushed.chunks(VACUUM_BATCH) {
            let mut map = self.map.write();
            for (key, commit_ts) in batch {
                let probe = Probe::new(key);
                let newest = map
                    .get(&probe as &dyn KeyView)
                    .and_then(|chain| chain.last())
                    .map(|v| v.commit_ts);
                if newest != Some(*commit_ts) {
                    continue;
                }
                if let Some(chain) = map.remove(&probe as &dyn KeyView) {
                    freed += key.len()
                        + VERSION_OVERHEAD
                        + chain
                            .iter()
                            .map(|v| v.row.as_ref().map_or(0, |r| r.len()) + VERSION_OVERHEAD)
                            .sum::<usize>();
                    removed += 1;
                }
            }
        }
        self.add_bytes(-(freed as isize));
        (removed, freed)
    }

    /// Drops versions no snapshot at or after `horizon` can see, visiting the keys written
    /// since the last vacuum (the whole map when most keys were). Holds the write lock for a
    /// bounded batch of keys at a time, so readers and commits get in between.
    pub fn vacuum(&self, horizon: u64) {
        let truncated = self.truncation_garbage.swap(false, Ordering::AcqRel);
        let mut keys = std::mem::take(&mut *self.dirty.lock());
        if keys.is_empty() && !truncated {
            return;
        }
        keys.sort_unstable();
        keys.dedup();
        let truncated_at = self.truncated_at(horizon);
        let mut freed = 0usize;
        let mut remaining = Vec::new();
        // A TRUNCATE hid every key: only a visit of the whole map frees them.
        if truncated || keys.len() > self.key_count() / 4 {
            let mut map = self.map.write();
            map.retain(|key, chain| {
                match vacuum_chain(
                    chain,
                    horizon,
                    truncated_at,
                    &key.key,
                    self.keeps_tombstones(),
                ) {
                    Pruned::Removed(bytes) => {
                        freed += bytes;
                        false
                    }
                    Pruned::Kept { bytes, garbage } => {
                        freed += bytes;
                        if garbage {
                            remaining.push(key.key.clone());
                        }
                        true
                    }
                }
            });
        } else {
            for batch in keys.chunks(VACUUM_BATCH) {
                let mut map = self.map.write();
                for key in batch {
                    let probe = Probe::new(key);
                    let Some(chain) = map.get_mut(&probe as &dyn KeyView) else {
                        continue;
                    };
                    match vacuum_chain(chain, horizon, truncated_at, key, self.keeps_tombstones()) {
                        Pruned::Removed(bytes) => {
                            freed += bytes;
                            map.remove(&probe as &dyn KeyView);
                        }
                        Pruned::Kept { bytes, garbage } => {
                            freed += bytes;
                            if garbage {
                                remaining.push(key.clone());
                            }
                        }
                    }
                }
            }
        }
        self.dirty.lock().extend(remaining);
        self.add_bytes(-(freed as isize));
        if truncated {
            self.forget_truncations(truncated_at);
        }
    }

    /// After a vacuum of the whole map at a horizon whose marker is `truncated_at`: no version
    /// older than it is left, so the markers up to it hide nothing here. They are forgotten
    /// unless older sources may hold versions they hide; markers newer than the horizon wait
    /// for a later vacuum.
    fn forget_truncations(&self, truncated_at: u64) {
        let mut truncations = self.truncations.write();
        if !self.keeps_tombstones() {
            truncations.retain(|t| *t > truncated_at);
            self.newest_truncation
                .store(truncations.last().copied().unwrap_or(0), Ordering::Release);
        }
        if truncations.last().is_some_and(|t| *t > truncated_at) {
            self.truncation_garbage.store(true, Ordering::Release);
        }
    }
}

/// Keys a vacuum handles per write-lock acquisition.
const VACUUM_BATCH: usize = 1024;

/// What vacuuming one chain did.
enum Pruned {
    /// Only an old tombstone was left: remove the key (bytes freed, key included).
    Removed(usize),
    /// The key stays; `garbage` when it still holds versions a later vacuum may drop.
    Kept { bytes: usize, garbage: bool },
}

fn vacuum_chain(
    chain: &mut Chain,
    horizon: u64,
    truncated_at: u64,
    key: &[u8],
    keep_tombstones: bool,
) -> Pruned {
    let bytes = prune(chain, horizon, truncated_at);
    if chain.is_empty() {
        // Every version was hidden by a TRUNCATE no snapshot is older than.
        return Pruned::Removed(bytes + key.len() + VERSION_OVERHEAD);
    }
    let tombstone = chain.len() == 1 && chain[0].row.is_none();
    if tombstone && keep_tombstones {
        // The tombstone hides older sources' versions: it stays until a flush writes it.
        return Pruned::Kept {
            bytes,
            garbage: false,
        };
    }
    if tombstone && chain[0].commit_ts <= horizon {
        return Pruned::Removed(bytes + key.len() + 2 * VERSION_OVERHEAD);
    }
    Pruned::Kept {
        bytes,
        garbage: chain.len() > 1 || tombstone,
    }
}

/// The newest version at or before `snapshot_ts`, unless a TRUNCATE at `truncated_at` hides
/// it.
fn newest_at(chain: &[Version], snapshot_ts: u64, truncated_at: u64) -> Option<&Version> {
    chain
        .iter()
        .rev()
        .find(|v| v.commit_ts <= snapshot_ts)
        .filter(|v| v.commit_ts >= truncated_at)
}

/// The row [`newest_at`] finds, if it is a row.
fn visible(chain: &[Version], snapshot_ts: u64, truncated_at: u64) -> Option<RowBytes> {
    newest_at(chain, snapshot_ts, truncated_at).and_then(|v| v.row.clone())
}

/// Removes versions older than the newest one at or before `horizon`, and those older than
/// `truncated_at` (the marker at `horizon`: hidden from every snapshot); returns bytes freed.
fn prune(chain: &mut Chain, horizon: u64, truncated_at: u64) -> usize {
    let hidden = chain.partition_point(|v| v.commit_ts < truncated_at);
    let newest_needed = chain
        .iter()
        .rposition(|v| v.commit_ts <= horizon)
        .unwrap_or(0);
    let keep_from = hidden.max(newest_needed);
    if keep_from == 0 {
        return 0;
    }
    let freed = chain[..keep_from]
        .iter()
        .map(|v| v.row.as_ref().map_or(0, |r| r.len()) + VERSION_OVERHEAD)
        .sum();
    chain.drain(..keep_from);
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keymap::compare;
    use std::sync::Arc;

    fn k(s: &str) -> Key {
        Arc::from(s.as_bytes())
    }
    fn r(s: &str) -> Option<RowBytes> {
        Some(Arc::from(s.as_bytes()))
    }

    #[test]
    fn map_keys_order_like_their_bytes() {
        // Lengths around the 8-byte inline prefix, zero bytes (the padding value) included.
        let mut keys: Vec<Vec<u8>> = vec![vec![]];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..20 {
            for _ in 0..40 {
                let key = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        [0u8, 1, 0x7f, 0xff][(seed % 4) as usize]
                    })
                    .collect();
                keys.push(key);
            }
        }
        for a in &keys {
            for b in keys.iter().step_by(7) {
                let (ma, mb) = (
                    MapKey::new(&Key::from(&a[..])),
                    MapKey::new(&Key::from(&b[..])),
                );
                assert_eq!(ma.cmp(&mb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(compare(&Probe::new(a), &mb), a.cmp(b));
            }
        }
        let t = HotTable::default();
        for key in &keys {
            t.apply(&Key::from(&key[..]), r("v"), 1, 0);
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        let mut out = Vec::new();
        let all = (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(t.scan_chunk(&all, 1, usize::MAX, &mut out), None);
        let got: Vec<Vec<u8>> = out.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(got, sorted);
        for key in &sorted {
            assert!(t.get(key, 1).is_some());
            let mut out = Vec::new();
            let range = (Bound::Excluded(Key::from(&key[..])), Bound::Unbounded);
            t.scan_chunk(&range, 1, usize::MAX, &mut out);
            assert!(out.iter().all(|(k, _)| k.as_ref() > key.as_slice()));
            assert_eq!(out.len(), sorted.iter().filter(|k| *k > key).count());
        }
    }

    /// A batch into an empty table (built bottom-up) ends like the same batch applied key by
    /// key: same rows, bytes, old rows reported; keys out of order and deletes included.
    #[test]
    fn bulk_build_into_an_empty_table_matches_applying_one_by_one() {
        let mut changes: Vec<(Key, Option<RowBytes>)> = (0..5000u32)
            .map(|i| (Key::from(&i.to_be_bytes()[..]), r(&format!("row{i}"))))
            .collect();
        changes.push((k("\u{0}"), r("out of order")));
        changes.push((Key::from(&7u32.to_be_bytes()[..]), None));
        changes.push((k("zz"), None));
        changes.push((k("zzz"), r("last")));
        let bulk = HotTable::default();
        let one = HotTable::default();
        let mut seen_bulk = Vec::new();
        let delta_bulk = bulk.apply_all(changes.iter().map(|(k, r)| (k, r)), 3, 0, |k, a, _| {
            seen_bulk.push((k.clone(), a.old))
        });
        let mut seen_one = Vec::new();
        let mut delta_one = 0;
        for (key, row) in &changes {
            let (applied, d) = one.apply(key, row.clone(), 3, 0);
            delta_one += d;
            seen_one.push((key.clone(), applied.old));
        }
        assert_eq!(delta_bulk, delta_one);
        assert_eq!(bulk.bytes(), one.bytes());
        assert_eq!(bulk.key_count(), one.key_count());
        assert_eq!(seen_bulk.len(), seen_one.len());
        let all = (Bound::Unbounded, Bound::Unbounded);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        bulk.scan_chunk(&all, 3, usize::MAX, &mut a);
        one.scan_chunk(&all, 3, usize::MAX, &mut b);
        assert_eq!(a, b);
        assert_eq!(bulk.get(&7u32.to_be_bytes(), 3), None);
        assert_eq!(bulk.get(b"zzz", 3), r("last"));
        assert_eq!(bulk.get(&9u32.to_be_bytes(), 2), None);
    }

    /// A write set's rows committed into an empty table (its map adopted) and into a table
    /// with rows (applied key by key) end like the same changes applied one by one: rows,
    /// bytes, commit ts and the old rows reported; deletes of absent keys leave nothing.
    #[test]
    fn pending_rows_adopted_or_applied_match_applying_one_by_one() {
        let mut changes: Vec<(Key, Option<RowBytes>)> = (0..3000u32)
            .map(|i| (Key::from(&(i * 2).to_be_bytes()[..]), r(&format!("row{i}"))))
            .collect();
        changes.push((Key::from(&7u32.to_be_bytes()[..]), None));
        changes.push((k("zz"), None));
        let pending_rows = || {
            let mut rows = PendingRows::new();
            for (key, row) in &changes {
                rows.insert(key.clone(), pending(row.clone()));
            }
            rows
        };
        for existing in [false, true] {
            let adopted = HotTable::default();
            let one = HotTable::default();
            if existing {
                for t in [&adopted, &one] {
                    t.apply(&Key::from(&4u32.to_be_bytes()[..]), r("old"), 2, 0);
                    t.apply(&k("zz"), r("old zz"), 2, 0);
                }
            }
            let mut seen_adopted = Vec::new();
            let delta_adopted = adopted.apply_pending(pending_rows(), 3, 0, |k, a, new| {
                seen_adopted.push((k.clone(), a.old, new.clone()))
            });
            let mut seen_one = Vec::new();
            let mut delta_one = 0;
            let mut sorted = changes.clone();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, row) in &sorted {
                let (applied, d) = one.apply(key, row.clone(), 3, 0);
                delta_one += d;
                seen_one.push((key.clone(), applied.old, row.clone()));
            }
            assert_eq!(delta_adopted, delta_one);
            assert_eq!(adopted.bytes(), one.bytes());
            assert_eq!(adopted.key_count(), one.key_count());
            assert_eq!(seen_adopted, seen_one);
            let all = (Bound::Unbounded, Bound::Unbounded);
            for ts in [2, 3] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                adopted.scan_chunk(&all, ts, usize::MAX, &mut a);
                one.scan_chunk(&all, ts, usize::MAX, &mut b);
                assert_eq!(a, b);
            }
            assert_eq!(adopted.latest(&4u32.to_be_bytes()).map(|v| v.0), Some(3));
            assert_eq!(adopted.get(&7u32.to_be_bytes(), 3), None);
            assert_eq!(adopted.get(b"zz", 3), None);
        }
    }

    /// A hot tier in front of older sources keeps each key's newest tombstone on every write
    /// path (one by one, bulk build, adopted write set) and through vacuum; old versions
    /// behind it still go.
    #[test]
    fn keeping_tombstones_keeps_the_newest_tombstone() {
        let one = HotTable::keeping_tombstones();
        one.apply(&k("gone"), None, 1, 10);
        one.apply(&k("a"), r("a1"), 2, 0);
        one.apply(&k("a"), None, 3, 10);
        one.vacuum(100);
        assert_eq!(one.lookup(b"gone", 5), Lookup::Deleted { commit_ts: 1 });
        assert_eq!(one.lookup(b"a", 5), Lookup::Deleted { commit_ts: 3 });
        assert_eq!(one.lookup(b"a", 2), Lookup::Absent, "a1 was pruned");
        assert_eq!(one.key_count(), 2);
        let changes = [(k("b"), None), (k("c"), r("c1"))];
        let bulk = HotTable::keeping_tombstones();
        bulk.apply_all(changes.iter().map(|(k, r)| (k, r)), 4, 4, |_, _, _| {});
        let adopted = HotTable::keeping_tombstones();
        let mut rows = PendingRows::new();
        for (key, row) in &changes {
            rows.insert(key.clone(), pending(row.clone()));
        }
        adopted.apply_pending(rows, 4, 4, |_, _, _| {});
        for t in [&bulk, &adopted] {
            assert_eq!(t.lookup(b"b", 4), Lookup::Deleted { commit_ts: 4 });
            assert_eq!(t.lookup(b"c", 4).into_row(), r("c1"));
            assert_eq!(t.bytes(), 1 + 1 + "c1".len() + 4 * VERSION_OVERHEAD);
            t.vacuum(100);
            assert_eq!(t.key_count(), 2);
        }
        // Without older sources the same tombstones are dropped, as before.
        let plain = HotTable::default();
        plain.apply(&k("gone"), None, 1, 10);
        plain.apply(&k("a"), r("a1"), 2, 0);
        plain.apply(&k("a"), None, 3, 10);
        assert_eq!(plain.key_count(), 0);
        assert_eq!(plain.bytes(), 0);
    }

    /// TRUNCATE at 5 (with a row written by the same commit) hides older versions from
    /// snapshots at or after 5 on every read path, not from older ones; a vacuum past it frees
    /// them and forgets the marker.
    #[test]
    fn truncation_hides_older_versions_until_vacuum_frees_them() {
        let t = HotTable::default();
        t.apply(&k("a"), r("a1"), 1, 0);
        t.apply(&k("b"), r("b2"), 2, 0);
        t.truncate(5);
        t.apply(&k("c"), r("c5"), 5, 0);
        assert_eq!((t.truncated_at(4), t.truncated_at(5)), (0, 5));
        assert_eq!(t.get(b"a", 4), r("a1"));
        assert_eq!(t.get(b"a", 5), None);
        assert_eq!(t.get(b"c", 5), r("c5"));
        assert_eq!(t.lookup(b"b", 6), Lookup::Absent);
        assert_eq!(t.latest(b"b"), None);
        assert_eq!(t.latest_live_many([&k("a"), &k("c")]), vec![false, true]);
        let keys = |ts| -> Vec<Key> { t.visible_keys(ts).into_iter().map(|(k, _)| k).collect() };
        assert_eq!(keys(4), vec![k("a"), k("b")]);
        assert_eq!(keys(5), vec![k("c")]);
        let mut versions = Vec::new();
        t.scan_versions(&(Bound::Unbounded, Bound::Unbounded), 9, 10, &mut versions);
        assert_eq!(versions.len(), 1);
        // A write after the TRUNCATE replaces nothing.
        let (applied, _) = t.apply(&k("a"), r("a6"), 6, 0);
        assert_eq!(applied.old, None);
        let ended: Vec<(Key, u64)> = t.versions().into_iter().map(|(k, _, e)| (k, e)).collect();
        assert_eq!(
            ended,
            vec![
                (k("a"), 5),
                (k("a"), u64::MAX),
                (k("b"), 5),
                (k("c"), u64::MAX)
            ]
        );
        // A snapshot at 4 still needs everything.
        t.vacuum(4);
        assert_eq!(t.key_count(), 3);
        assert_eq!(t.get(b"b", 4), r("b2"));
        t.vacuum(10);
        assert_eq!(t.key_count(), 2);
        assert_eq!(t.truncated_at(u64::MAX), 0);
        assert_eq!(t.get(b"a", 10), r("a6"));
        assert_eq!(t.bytes(), 2 * (1 + 2 + 2 * VERSION_OVERHEAD));
        t.vacuum(10);
        assert_eq!(t.key_count(), 2);
    }

    #[test]
    fn snapshots_see_their_version() {
        let t = HotTable::default();
        t.apply(&k("a"), r("1"), 10, 0);
        t.apply(&k("a"), r("2"), 20, 0);
        t.apply(&k("a"), None, 30, 0);
        assert_eq!(t.get(b"a", 5), None);
        assert_eq!(t.get(b"a", 10), r("1"));
        assert_eq!(t.get(b"a", 25), r("2"));
        assert_eq!(t.get(b"a", 30), None);
        assert_eq!(t.latest(b"a").map(|v| v.0), Some(30));
    }

    #[test]
    fn pruning_keeps_what_live_snapshots_need() {
        let t = HotTable::default();
        for ts in 1..=10u64 {
            t.apply(&k("a"), r(&ts.to_string()), ts, 5);
        }
        assert_eq!(t.get(b"a", 5), r("5"));
        assert_eq!(t.get(b"a", 10), r("10"));
        t.apply(&k("a"), None, 11, 11);
        assert_eq!(t.key_count(), 0);
        assert_eq!(t.bytes(), 0);
    }

    #[test]
    fn chunks_resume_after_the_last_key() {
        let t = HotTable::default();
        for (i, key) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            t.apply(&k(key), r(key), i as u64 + 1, 0);
        }
        t.apply(&k("c"), None, 6, 0);
        let mut out = Vec::new();
        let mut range: KeyRange = (Bound::Unbounded, Bound::Unbounded);
        while let Some(last) = t.scan_chunk(&range, 10, 2, &mut out) {
            range.0 = Bound::Excluded(last);
        }
        let keys: Vec<&[u8]> = out.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, vec![b"a", b"b", b"d", b"e"]);
        t.vacuum(10);
        assert_eq!(t.key_count(), 4);
    }

    #[test]
    fn vacuum_visits_only_written_keys_and_frees_everything_old() {
        let t = HotTable::default();
        for i in 0..1000u32 {
            t.apply(&Key::from(&i.to_be_bytes()[..]), r("v0"), 1, 0);
        }
        let base = t.bytes();
        // A few hot keys rewritten many times while an old snapshot (horizon 1) holds them.
        for ts in 2..50u64 {
            for i in [3u32, 7, 11] {
                t.apply(&Key::from(&i.to_be_bytes()[..]), r("v1"), ts, 1);
            }
        }
        t.apply(&Key::from(&500u32.to_be_bytes()[..]), None, 50, 1);
        assert_eq!(t.versions().len(), 1000 + 3 * 48);
        // Still needed by the snapshot at 1: nothing old may go.
        t.vacuum(1);
        assert_eq!(t.get(&7u32.to_be_bytes(), 1).as_deref(), Some(&b"v0"[..]));
        assert_eq!(t.key_count(), 1000);
        // The snapshot ended: one version per key, the deleted key gone, bytes back to the
        // table's size minus that row.
        t.vacuum(100);
        assert_eq!(t.versions().len(), 999);
        assert_eq!(t.key_count(), 999);
        assert_eq!(t.get(&7u32.to_be_bytes(), 100).as_deref(), Some(&b"v1"[..]));
        assert!(t.get(&500u32.to_be_bytes(), 100).is_none());
        assert!(t.bytes() < base);
        assert!(t.dirty.lock().is_empty());
    }
}

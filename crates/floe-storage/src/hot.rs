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

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use crate::codec::{Key, RowBytes};

/// Bytes charged per version on top of key and row (chain slot, map node share).
const VERSION_OVERHEAD: usize = 48;

#[derive(Debug, Clone)]
struct Version {
    commit_ts: u64,
    row: Option<RowBytes>,
}

/// A key range of a scan.
pub type KeyRange = (Bound<Key>, Bound<Key>);

/// One table's in-memory rows.
#[derive(Debug, Default)]
pub struct HotTable {
    map: RwLock<BTreeMap<Key, Vec<Version>>>,
    bytes: AtomicUsize,
    /// Versions and tombstones that may be prunable: when high, vacuum is worth running.
    garbage: AtomicUsize,
}

/// What applying a change did to a key, for the change stream.
pub struct Applied {
    /// The row that was visible before (to retract).
    pub old: Option<RowBytes>,
}

impl HotTable {
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
        let mut delta = 0;
        for (key, row) in changes {
            let (applied, d) = self.apply_locked(&mut map, key, row.clone(), commit_ts, horizon);
            delta += d;
            each(key, applied, row);
        }
        delta
    }

    fn apply_locked(
        &self,
        map: &mut BTreeMap<Key, Vec<Version>>,
        key: &Key,
        row: Option<RowBytes>,
        commit_ts: u64,
        horizon: u64,
    ) -> (Applied, isize) {
        let mut delta: isize = 0;
        let row_len = row.as_ref().map_or(0, |r| r.len());
        // One search per key: a new key (the common case in bulk loads) is inserted where the
        // search ended.
        let chain = match map.entry(key.clone()) {
            std::collections::btree_map::Entry::Occupied(chain) => chain.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                if row.is_none() {
                    // Deleting a key that has no versions: nothing to record.
                    return (Applied { old: None }, 0);
                }
                delta += (key.len() + VERSION_OVERHEAD) as isize;
                slot.insert(Vec::with_capacity(1))
            }
        };
        let old = chain.last().and_then(|v| v.row.clone());
        chain.push(Version { commit_ts, row });
        delta += (row_len + VERSION_OVERHEAD) as isize;
        delta -= prune(chain, horizon) as isize;
        if chain.len() == 1 && chain[0].row.is_none() && chain[0].commit_ts <= horizon {
            map.remove(key);
            delta -= (key.len() + 2 * VERSION_OVERHEAD) as isize;
        } else if chain.len() > 1 || chain[0].row.is_none() {
            self.garbage.fetch_add(1, Ordering::Relaxed);
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
        let map = self.map.read();
        map.get(key).and_then(|chain| visible(chain, snapshot_ts))
    }

    /// The newest committed version of `key`: its commit ts and row (`None`: deleted).
    pub fn latest(&self, key: &[u8]) -> Option<(u64, Option<RowBytes>)> {
        let map = self.map.read();
        map.get(key)
            .and_then(|chain| chain.last())
            .map(|v| (v.commit_ts, v.row.clone()))
    }

    /// For each of `keys`: whether its newest committed version is a row (not deleted), under
    /// one read lock (bulk inserts check many keys at once).
    pub fn latest_live_many<'a>(&self, keys: impl IntoIterator<Item = &'a Key>) -> Vec<bool> {
        let map = self.map.read();
        keys.into_iter()
            .map(|key| {
                map.get(key)
                    .and_then(|chain| chain.last())
                    .is_some_and(|v| v.row.is_some())
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
        let map = self.map.read();
        let mut taken = 0;
        for (key, chain) in map.range::<Key, _>((range.0.as_ref(), range.1.as_ref())) {
            if let Some(row) = visible(chain, snapshot_ts) {
                out.push((key.clone(), row));
                taken += 1;
                if taken >= max {
                    return Some(key.clone());
                }
            }
        }
        None
    }

    /// Every row visible at `snapshot_ts` (for TRUNCATE and table rewrites).
    pub fn visible_keys(&self, snapshot_ts: u64) -> Vec<(Key, RowBytes)> {
        let map = self.map.read();
        map.iter()
            .filter_map(|(k, chain)| visible(chain, snapshot_ts).map(|r| (k.clone(), r)))
            .collect()
    }

    /// Every kept version that is a row: `(key, row, ended)` where `ended` is the commit ts of
    /// the next version of the key (`u64::MAX` for the newest). For building indexes.
    pub fn versions(&self) -> Vec<(Key, RowBytes, u64)> {
        let map = self.map.read();
        let mut out = Vec::with_capacity(map.len());
        for (key, chain) in map.iter() {
            for (i, version) in chain.iter().enumerate() {
                if let Some(row) = &version.row {
                    let ended = chain.get(i + 1).map_or(u64::MAX, |next| next.commit_ts);
                    out.push((key.clone(), row.clone(), ended));
                }
            }
        }
        out
    }

    /// Drops versions no snapshot at or after `horizon` can see. Cheap to call when there is
    /// little garbage.
    pub fn vacuum(&self, horizon: u64) {
        if self.garbage.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.garbage.store(0, Ordering::Relaxed);
        let mut map = self.map.write();
        let mut freed = 0usize;
        let mut remaining = 0usize;
        map.retain(|key, chain| {
            freed += prune(chain, horizon);
            if chain.len() == 1 && chain[0].row.is_none() && chain[0].commit_ts <= horizon {
                freed += key.len() + 2 * VERSION_OVERHEAD;
                return false;
            }
            if chain.len() > 1 || chain[0].row.is_none() {
                remaining += 1;
            }
            true
        });
        self.garbage.fetch_add(remaining, Ordering::Relaxed);
        self.add_bytes(-(freed as isize));
    }
}

/// The newest version at or before `snapshot_ts`, if it is a row.
fn visible(chain: &[Version], snapshot_ts: u64) -> Option<RowBytes> {
    chain
        .iter()
        .rev()
        .find(|v| v.commit_ts <= snapshot_ts)
        .and_then(|v| v.row.clone())
}

/// Removes versions older than the newest one at or before `horizon`; returns bytes freed.
fn prune(chain: &mut Vec<Version>, horizon: u64) -> usize {
    let Some(keep_from) = chain.iter().rposition(|v| v.commit_ts <= horizon) else {
        return 0;
    };
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
    use std::sync::Arc;

    fn k(s: &str) -> Key {
        Arc::from(s.as_bytes())
    }
    fn r(s: &str) -> Option<RowBytes> {
        Some(Arc::from(s.as_bytes()))
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
}

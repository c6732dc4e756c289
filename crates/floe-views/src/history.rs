//! A view's output with its recent history, so a reader at an older snapshot sees the view as
//! of that snapshot (DESIGN.md idea 2: one clock; a REPEATABLE READ block reads the view as
//! of its snapshot).
//!
//! Invariant: `base` is the multiset of the collection at `since` (every update at a time
//! `<= since` folded in); `recent` holds the updates after `since` by time. The contents at
//! any `ts >= since` are `base` plus the recent updates at times `<= ts`. Compaction to `ts`
//! (no reader needs a time before it any more) folds those updates into `base`.

use std::collections::BTreeMap;

/// The memory an entry holds, for accounting (an estimate: its bytes plus the map's overhead).
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// A map entry's overhead beyond its key's bytes (node share, count, vector slot).
const ENTRY_OVERHEAD: usize = 48;

impl Weigh for crate::Row {
    fn weight(&self) -> usize {
        self.0.capacity() + ENTRY_OVERHEAD
    }
}

impl Weigh for (crate::Row, crate::Row) {
    fn weight(&self) -> usize {
        self.0 .0.capacity() + self.1 .0.capacity() + ENTRY_OVERHEAD
    }
}

impl Weigh for String {
    fn weight(&self) -> usize {
        self.capacity() + ENTRY_OVERHEAD
    }
}

impl Weigh for &str {
    fn weight(&self) -> usize {
        self.len() + ENTRY_OVERHEAD
    }
}

#[derive(Debug)]
pub struct History<K: Ord + Clone + Weigh> {
    since: u64,
    base: BTreeMap<K, isize>,
    recent: BTreeMap<u64, Vec<(K, isize)>>,
    /// Weight of every entry of `base` and `recent`.
    bytes: usize,
    /// Rows in `base` (multiplicities summed).
    base_rows: isize,
}

impl<K: Ord + Clone + Weigh> History<K> {
    pub fn new(since: u64) -> History<K> {
        History {
            since,
            base: BTreeMap::new(),
            recent: BTreeMap::new(),
            bytes: 0,
            base_rows: 0,
        }
    }

    /// The memory held (estimated).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The number of rows at `since` (the recent updates not counted).
    pub fn base_rows(&self) -> isize {
        self.base_rows
    }

    fn add_to_base(&mut self, key: &K, diff: isize) {
        self.base_rows += diff;
        match self.base.get_mut(key) {
            Some(count) => {
                *count += diff;
                if *count == 0 {
                    self.base.remove(key);
                    self.bytes -= key.weight();
                }
            }
            None => {
                if diff != 0 {
                    self.base.insert(key.clone(), diff);
                    self.bytes += key.weight();
                }
            }
        }
    }

    /// The oldest time the contents can be read at.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// Records `diff` copies of `key` at `time` (a time at or before `since` folds in at once).
    pub fn update(&mut self, time: u64, key: &K, diff: isize) {
        if time <= self.since {
            self.add_to_base(key, diff);
        } else {
            self.bytes += key.weight();
            self.recent
                .entry(time)
                .or_default()
                .push((key.clone(), diff));
        }
    }

    /// The contents at `ts` (`None` when `ts` is before `since`: compacted away).
    pub fn at(&self, ts: u64) -> Option<BTreeMap<K, isize>> {
        if ts < self.since {
            return None;
        }
        let mut out = self.base.clone();
        for (_, updates) in self.recent.range(..=ts) {
            for (key, diff) in updates {
                add(&mut out, key, *diff);
            }
        }
        Some(out)
    }

    /// The entries at `ts` from `from` on while `within` holds (keys in order: `within` must
    /// hold for a prefix of the keys from `from` on), or `None` before `since`.
    pub fn range_at(
        &self,
        ts: u64,
        from: &K,
        within: impl Fn(&K) -> bool,
    ) -> Option<BTreeMap<K, isize>> {
        if ts < self.since {
            return None;
        }
        let mut out: BTreeMap<K, isize> = self
            .base
            .range(from..)
            .take_while(|(key, _)| within(key))
            .map(|(key, count)| (key.clone(), *count))
            .collect();
        for (_, updates) in self.recent.range(..=ts) {
            for (key, diff) in updates {
                if key >= from && within(key) {
                    add(&mut out, key, *diff);
                }
            }
        }
        Some(out)
    }

    /// Every entry: the base's at `since`, then the recent updates at their times.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &K, isize)> {
        let base = self
            .base
            .iter()
            .map(|(key, count)| (self.since, key, *count));
        let recent = self
            .recent
            .iter()
            .flat_map(|(time, updates)| updates.iter().map(move |(key, diff)| (*time, key, *diff)));
        base.chain(recent)
    }

    /// Whether the contents at `ts` are empty (cheaper than `at` when they are not).
    pub fn is_empty_at(&self, ts: u64) -> bool {
        if self.recent.range(..=ts).next().is_none() {
            return self.base.is_empty();
        }
        self.at(ts).is_none_or(|m| m.is_empty())
    }

    /// Folds every update at or before `ts` into the base.
    pub fn compact(&mut self, ts: u64) {
        if ts <= self.since {
            return;
        }
        let later = self.recent.split_off(&(ts + 1));
        for (_, updates) in std::mem::replace(&mut self.recent, later) {
            for (key, diff) in updates {
                self.bytes -= key.weight();
                self.add_to_base(&key, diff);
            }
        }
        self.since = ts;
    }

    /// Updates kept for older readers.
    pub fn recent_updates(&self) -> usize {
        self.recent.values().map(Vec::len).sum()
    }
}

fn add<K: Ord + Clone>(map: &mut BTreeMap<K, isize>, key: &K, diff: isize) {
    let count = map.entry(key.clone()).or_default();
    *count += diff;
    if *count == 0 {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_at_any_time_since_the_compaction() {
        let mut h: History<&'static str> = History::new(0);
        h.update(1, &"a", 1);
        h.update(2, &"b", 1);
        h.update(3, &"a", -1);
        fn keys(m: BTreeMap<&'static str, isize>) -> Vec<&'static str> {
            m.into_keys().collect()
        }
        assert_eq!(keys(h.at(1).unwrap()), ["a"]);
        assert_eq!(keys(h.at(2).unwrap()), ["a", "b"]);
        assert_eq!(keys(h.at(3).unwrap()), ["b"]);
        h.compact(2);
        assert!(h.at(1).is_none());
        assert_eq!(keys(h.at(2).unwrap()), ["a", "b"]);
        assert_eq!(keys(h.at(9).unwrap()), ["b"]);
        assert_eq!(h.recent_updates(), 1);
        assert!(!h.is_empty_at(2));
        let from_b = h.range_at(9, &"b", |k| k.starts_with('b')).unwrap();
        assert_eq!(keys(from_b), ["b"]);
        assert_eq!(h.entries().count(), 3);
        h.update(4, &"b", -1);
        assert!(h.is_empty_at(4));
        h.compact(4);
        assert_eq!(h.base_rows(), 0);
        assert_eq!(h.bytes(), 0);
    }
}

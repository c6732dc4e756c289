//! Byte-string keys ordered with their first eight bytes inline, and an ordered map over
//! them.
//!
//! A [`MapKey`] keeps the key's first eight bytes (zero-padded, big-endian) beside the shared
//! bytes, so comparisons inside a B-tree node are integer compares that follow the key's
//! pointer only when the prefixes tie (for integer keys, only at the match). Plain
//! `Arc<[u8]>` keys cost a `memcmp` call and a likely cache miss per comparison: a million-row
//! bulk load into a transaction's write set spent ~6% of its time there.
//!
//! [`KeyMap`] is a `BTreeMap` keyed that way, looked up by borrowed bytes ([`Probe`]): the
//! hot tier's map and a transaction's write set use it.

use std::borrow::Borrow;
use std::cmp::Ordering as CmpOrdering;
use std::collections::btree_map::{self, BTreeMap};
use std::ops::Bound;

use crate::codec::Key;
use crate::hot::KeyRange;

/// A key in the map: the bytes, with their first eight bytes (zero-padded, big-endian) kept
/// inline. Ordered like the bytes: the padded prefix orders keys as the bytes do, and ties
/// are broken by the bytes themselves.
#[derive(Debug, Clone)]
pub(crate) struct MapKey {
    pub(crate) prefix: u64,
    pub(crate) key: Key,
}

impl MapKey {
    pub(crate) fn new(key: &Key) -> MapKey {
        MapKey::owned(key.clone())
    }

    pub(crate) fn owned(key: Key) -> MapKey {
        MapKey {
            prefix: prefix_of(&key),
            key,
        }
    }
}

fn prefix_of(bytes: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let n = bytes.len().min(8);
    head[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(head)
}

/// What the map is searched by: a stored [`MapKey`] or a borrowed [`Probe`].
pub(crate) trait KeyView {
    fn prefix(&self) -> u64;
    fn bytes(&self) -> &[u8];
}

impl KeyView for MapKey {
    fn prefix(&self) -> u64 {
        self.prefix
    }
    fn bytes(&self) -> &[u8] {
        &self.key
    }
}

/// A lookup key that borrows its bytes (no allocation per lookup).
pub(crate) struct Probe<'a> {
    prefix: u64,
    bytes: &'a [u8],
}

impl<'a> Probe<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Probe<'a> {
        Probe {
            prefix: prefix_of(bytes),
            bytes,
        }
    }
}

impl KeyView for Probe<'_> {
    fn prefix(&self) -> u64 {
        self.prefix
    }
    fn bytes(&self) -> &[u8] {
        self.bytes
    }
}

pub(crate) fn probe_bound(bound: &Bound<Key>) -> Bound<Probe<'_>> {
    match bound {
        Bound::Included(k) => Bound::Included(Probe::new(k)),
        Bound::Excluded(k) => Bound::Excluded(Probe::new(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether `range` holds no key: its start lies after its end, or on it with either end
/// excluded. `BTreeMap::range` panics on such a range, and a user writes one easily
/// (`WHERE k BETWEEN 5 AND 1`), so every range walk asks this first.
pub(crate) fn range_is_empty(range: &KeyRange) -> bool {
    let (lo, hi) = match (&range.0, &range.1) {
        (Bound::Included(lo) | Bound::Excluded(lo), Bound::Included(hi) | Bound::Excluded(hi)) => {
            (lo, hi)
        }
        _ => return false,
    };
    match compare(&Probe::new(lo), &Probe::new(hi)) {
        CmpOrdering::Less => false,
        CmpOrdering::Greater => true,
        CmpOrdering::Equal => !matches!(
            (&range.0, &range.1),
            (Bound::Included(_), Bound::Included(_))
        ),
    }
}

pub(crate) fn view_bound<'a>(bound: &'a Bound<Probe<'a>>) -> Bound<&'a (dyn KeyView + 'a)> {
    match bound {
        Bound::Included(p) => Bound::Included(p),
        Bound::Excluded(p) => Bound::Excluded(p),
        Bound::Unbounded => Bound::Unbounded,
    }
}

pub(crate) fn compare(a: &dyn KeyView, b: &dyn KeyView) -> CmpOrdering {
    a.prefix()
        .cmp(&b.prefix())
        .then_with(|| a.bytes().cmp(b.bytes()))
}

impl<'a> Borrow<dyn KeyView + 'a> for MapKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == CmpOrdering::Equal
    }
}
impl Eq for dyn KeyView + '_ {}
impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        compare(self, other)
    }
}

impl PartialEq for MapKey {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == CmpOrdering::Equal
    }
}
impl Eq for MapKey {}
impl PartialOrd for MapKey {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for MapKey {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        compare(self, other)
    }
}

/// An ordered map from keys to `V`, ordered like the keys' bytes.
///
/// Keys that arrive in ascending order (hidden row ids, serial keys, a sorted COPY, a table
/// rewrite) are appended to a sorted run instead of being inserted into the B-tree: no
/// search from the root per key, and no half-full nodes (std's `BTreeMap` splits a full node
/// in the middle, so ascending inserts leave every leaf half empty). The run becomes part of
/// the tree only when a key lands inside its span ([`KeyMap::settle`]) or when the map is
/// handed over ([`KeyMap::into_map_retaining`]); then it is built bottom-up, with full
/// nodes.
///
/// Every key of the run is greater than every key of the tree, so walking the tree and then
/// the run walks the map in order.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap<V> {
    map: BTreeMap<MapKey, V>,
    run: Vec<(MapKey, V)>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            map: BTreeMap::new(),
            run: Vec::new(),
        }
    }
}

/// Where a key is, or would go, in a [`KeyMap`] (see [`KeyMap::slot`]).
pub(crate) enum Slot<'a, V> {
    /// The key is present: the key as stored and its value.
    Occupied { key: Key, value: &'a mut V },
    /// The key is absent.
    Vacant(Vacant<'a, V>),
}

/// An absent key of a [`KeyMap`], ready to be inserted where it belongs.
pub(crate) struct Vacant<'a, V>(VacantAt<'a, V>);

enum VacantAt<'a, V> {
    /// After every key: appended to the run.
    End(&'a mut Vec<(MapKey, V)>, MapKey),
    Tree(btree_map::VacantEntry<'a, MapKey, V>),
}

impl<V> Vacant<'_, V> {
    pub(crate) fn key(&self) -> &Key {
        match &self.0 {
            VacantAt::End(_, key) => &key.key,
            VacantAt::Tree(slot) => &slot.key().key,
        }
    }

    pub(crate) fn insert(self, value: V) {
        match self.0 {
            VacantAt::End(run, key) => run.push((key, value)),
            VacantAt::Tree(slot) => {
                slot.insert(value);
            }
        }
    }
}

impl<V> KeyMap<V> {
    pub(crate) fn new() -> KeyMap<V> {
        KeyMap::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len() + self.run.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty() && self.run.is_empty()
    }

    /// Where `probe` is in the run: `None` when it sorts before the run (or the run is
    /// empty), so that it belongs to the tree.
    fn in_run(&self, probe: &dyn KeyView) -> Option<Result<usize, usize>> {
        let (first, _) = self.run.first()?;
        if compare(probe, first) == CmpOrdering::Less {
            return None;
        }
        Some(self.run.binary_search_by(|(k, _)| compare(k, probe)))
    }

    /// Moves the run into the tree. A run that is small next to the tree is inserted key by
    /// key; a bigger one is built into nodes and merged, so a run is never re-merged at a
    /// cost out of proportion to the appends that made it.
    fn settle(&mut self) {
        let run = std::mem::take(&mut self.run);
        if run.len().saturating_mul(8) < self.map.len() {
            for (key, value) in run {
                self.map.insert(key, value);
            }
        } else {
            // Strictly ascending: the collect builds the nodes without re-sorting.
            let mut built: BTreeMap<MapKey, V> = run.into_iter().collect();
            self.map.append(&mut built);
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        let probe = Probe::new(key);
        match self.in_run(&probe) {
            Some(at) => at.ok().map(|i| &self.run[i].1),
            None => self.map.get(&probe as &dyn KeyView),
        }
    }

    /// The slot of `key`: its value if present, else the place it goes (one search).
    pub(crate) fn slot(&mut self, key: Key) -> Slot<'_, V> {
        let key = MapKey::owned(key);
        let after_all = match self.run.last() {
            Some((last, _)) => key > *last,
            None => self
                .map
                .last_key_value()
                .is_none_or(|(last, _)| key > *last),
        };
        if after_all {
            return Slot::Vacant(Vacant(VacantAt::End(&mut self.run, key)));
        }
        match self.in_run(&key) {
            Some(Ok(i)) => {
                let (stored, value) = &mut self.run[i];
                return Slot::Occupied {
                    key: stored.key.clone(),
                    value,
                };
            }
            // Inside the run's span: it can no longer stay a run.
            Some(Err(_)) => self.settle(),
            None => {}
        }
        match self.map.entry(key) {
            btree_map::Entry::Occupied(slot) => Slot::Occupied {
                key: slot.key().key.clone(),
                value: slot.into_mut(),
            },
            btree_map::Entry::Vacant(slot) => Slot::Vacant(Vacant(VacantAt::Tree(slot))),
        }
    }

    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> {
        match self.slot(key) {
            Slot::Occupied { value: old, .. } => Some(std::mem::replace(old, value)),
            Slot::Vacant(slot) => {
                slot.insert(value);
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        let probe = Probe::new(key);
        match self.in_run(&probe) {
            Some(Ok(i)) if i + 1 == self.run.len() => return self.run.pop().map(|(_, v)| v),
            Some(Ok(_)) => self.settle(),
            Some(Err(_)) => return None,
            None => {}
        }
        self.map.remove(&probe as &dyn KeyView)
    }

    /// Calls `each` with the entries within `range`, in key order.
    pub(crate) fn for_range(&self, range: &KeyRange, mut each: impl FnMut(&Key, &V)) {
        if range_is_empty(range) {
            return;
        }
        let (lo, hi) = (probe_bound(&range.0), probe_bound(&range.1));
        for (k, v) in self
            .map
            .range::<dyn KeyView, _>((view_bound(&lo), view_bound(&hi)))
        {
            each(&k.key, v);
        }
        let below = |p: &Probe<'_>, inclusive: bool| {
            self.run.partition_point(|(k, _)| match compare(k, p) {
                CmpOrdering::Less => true,
                CmpOrdering::Equal => inclusive,
                CmpOrdering::Greater => false,
            })
        };
        let start = match &lo {
            Bound::Included(p) => below(p, false),
            Bound::Excluded(p) => below(p, true),
            Bound::Unbounded => 0,
        };
        let end = match &hi {
            Bound::Included(p) => below(p, true),
            Bound::Excluded(p) => below(p, false),
            Bound::Unbounded => self.run.len(),
        };
        if start < end {
            for (k, v) in &self.run[start..end] {
                each(&k.key, v);
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.map
            .iter()
            .chain(self.run.iter().map(|(k, v)| (k, v)))
            .map(|(k, v)| (&k.key, v))
    }

    /// The map as one B-tree (the hot tier adopts a write set's map), after `keep` has seen
    /// (and may have changed) every entry in key order; entries it returns `false` for are
    /// dropped. The run is built into full nodes.
    pub(crate) fn into_map_retaining(
        self,
        mut keep: impl FnMut(&MapKey, &mut V) -> bool,
    ) -> BTreeMap<MapKey, V> {
        let KeyMap { mut map, mut run } = self;
        map.retain(|k, v| keep(k, v));
        run.retain_mut(|(k, v)| keep(k, v));
        // Strictly ascending: the collect builds the nodes without re-sorting.
        let mut built: BTreeMap<MapKey, V> = run.into_iter().collect();
        map.append(&mut built);
        map
    }
}

type IntoIterFn<V> = fn((MapKey, V)) -> (Key, V);

impl<V> IntoIterator for KeyMap<V> {
    type Item = (Key, V);
    type IntoIter = std::iter::Map<
        std::iter::Chain<btree_map::IntoIter<MapKey, V>, std::vec::IntoIter<(MapKey, V)>>,
        IntoIterFn<V>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        let f: IntoIterFn<V> = |(k, v)| (k.key, v);
        self.map.into_iter().chain(self.run).map(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The map orders keys exactly as their bytes, whatever their lengths and prefixes.
    #[test]
    fn orders_like_the_bytes() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\x00",
            b"abcdefghi",
            b"abcdefgi",
            b"b",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        ];
        let mut map = KeyMap::new();
        for (i, k) in keys.iter().enumerate().rev() {
            assert!(map.insert(Arc::from(*k), i).is_none());
        }
        let mut sorted = keys.clone();
        sorted.sort();
        let got: Vec<&[u8]> = map.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(got, sorted);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(k), Some(&i));
        }
        let range: KeyRange = (
            Bound::Included(Arc::from(&b"ab"[..])),
            Bound::Excluded(Arc::from(&b"abcdefgi"[..])),
        );
        let mut got: Vec<Vec<u8>> = Vec::new();
        map.for_range(&range, |k, _| got.push(k.to_vec()));
        assert_eq!(
            got,
            vec![&b"ab"[..], b"abcdefgh", b"abcdefgh\x00", b"abcdefghi"]
        );
        assert_eq!(map.remove(b"ab"), Some(4));
        assert_eq!(map.get(b"ab"), None);
        assert_eq!(map.len(), keys.len() - 1);
    }

    /// A reversed range (`k BETWEEN 5 AND 1`) or an empty one at a single key holds nothing;
    /// `BTreeMap::range` would panic on either.
    #[test]
    fn empty_ranges_hold_nothing() {
        let mut map = KeyMap::new();
        for k in [&b"a"[..], b"b", b"c"] {
            map.insert(Arc::from(k), ());
        }
        let key = |k: &[u8]| -> Key { Arc::from(k) };
        let ranges: [KeyRange; 4] = [
            (Bound::Included(key(b"c")), Bound::Included(key(b"a"))),
            (Bound::Excluded(key(b"b")), Bound::Excluded(key(b"b"))),
            (Bound::Included(key(b"b")), Bound::Excluded(key(b"b"))),
            (Bound::Excluded(key(b"b")), Bound::Included(key(b"b"))),
        ];
        for range in &ranges {
            assert!(range_is_empty(range));
            let mut got = 0;
            map.for_range(range, |_, _| got += 1);
            assert_eq!(got, 0, "{range:?}");
        }
        let point: KeyRange = (Bound::Included(key(b"b")), Bound::Included(key(b"b")));
        assert!(!range_is_empty(&point));
    }

    /// The run of ascending keys and the tree together behave like one ordered map, under
    /// ascending appends, keys landing inside the run, removals (last and inner), ranges and
    /// the hand-over as one tree.
    #[test]
    fn run_and_tree_behave_like_one_map() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let key = |i: u64| -> Key { Arc::from(&i.to_be_bytes()[..]) };
        for round in 0..40 {
            let mut map: KeyMap<u64> = KeyMap::new();
            let mut model: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            let mut top = next(50);
            for step in 0..600u64 {
                let k = match next(10) {
                    // Mostly ascending, as a bulk load writes.
                    0..=5 => {
                        top += 1 + next(3);
                        top
                    }
                    _ => next(top + 2),
                };
                match next(8) {
                    0 => assert_eq!(
                        map.remove(&k.to_be_bytes()),
                        model.remove(&k.to_be_bytes()[..])
                    ),
                    1 => {
                        // Removing the newest key keeps the run.
                        let last = model.keys().next_back().cloned();
                        if let Some(last) = last {
                            assert_eq!(map.remove(&last), model.remove(&last));
                        }
                    }
                    _ => match map.slot(key(k)) {
                        Slot::Occupied { key: stored, value } => {
                            assert_eq!(&stored[..], &k.to_be_bytes());
                            assert_eq!(Some(&*value), model.get(&k.to_be_bytes()[..]));
                            *value = step;
                            model.insert(k.to_be_bytes().to_vec(), step);
                        }
                        Slot::Vacant(slot) => {
                            assert_eq!(&slot.key()[..], &k.to_be_bytes());
                            assert!(model.insert(k.to_be_bytes().to_vec(), step).is_none());
                            slot.insert(step);
                        }
                    },
                }
                assert_eq!(map.len(), model.len());
                let probe = next(top + 2);
                assert_eq!(
                    map.get(&probe.to_be_bytes()),
                    model.get(&probe.to_be_bytes()[..])
                );
            }
            let got: Vec<(Vec<u8>, u64)> = map.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            let want: Vec<(Vec<u8>, u64)> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
            assert_eq!(got, want);
            for _ in 0..50 {
                let (a, b) = (next(top + 2), next(top + 2));
                let (a, b) = (a.min(b), a.max(b));
                let bound = |i: u64, kind: u64| match kind {
                    0 => Bound::Included(key(i)),
                    1 => Bound::Excluded(key(i)),
                    _ => Bound::Unbounded,
                };
                let (lo, hi) = (bound(a, next(3)), bound(b, next(3)));
                if a == b && matches!((&lo, &hi), (Bound::Excluded(_), Bound::Excluded(_))) {
                    continue;
                }
                let mut got = Vec::new();
                map.for_range(&(lo.clone(), hi.clone()), |k, v| got.push((k.to_vec(), *v)));
                let in_range = |k: &[u8]| {
                    let after_lo = match &lo {
                        Bound::Included(l) => k >= &l[..],
                        Bound::Excluded(l) => k > &l[..],
                        Bound::Unbounded => true,
                    };
                    let before_hi = match &hi {
                        Bound::Included(h) => k <= &h[..],
                        Bound::Excluded(h) => k < &h[..],
                        Bound::Unbounded => true,
                    };
                    after_lo && before_hi
                };
                let want: Vec<(Vec<u8>, u64)> = model
                    .iter()
                    .filter(|(k, _)| in_range(k))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                assert_eq!(got, want, "round {round}");
            }
            let owned: Vec<(Vec<u8>, u64)> = map
                .clone()
                .into_iter()
                .map(|(k, v)| (k.to_vec(), v))
                .collect();
            assert_eq!(owned, want);
            // The hand-over sees every entry in order and keeps those asked for.
            let mut seen = Vec::new();
            let tree = map.into_map_retaining(|k, v| {
                seen.push(k.key.to_vec());
                *v += 1;
                *v % 2 == 0
            });
            assert_eq!(
                seen,
                want.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
            );
            let kept: Vec<(Vec<u8>, u64)> = want
                .iter()
                .filter(|(_, v)| (v + 1) % 2 == 0)
                .map(|(k, v)| (k.clone(), v + 1))
                .collect();
            let tree: Vec<(Vec<u8>, u64)> =
                tree.iter().map(|(k, v)| (k.key.to_vec(), *v)).collect();
            assert_eq!(tree, kept);
        }
    }
}

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
#[derive(Debug, Clone)]
pub(crate) struct KeyMap<V> {
    map: BTreeMap<MapKey, V>,
}

impl<V> Default for KeyMap<V> {
    fn default() -> Self {
        KeyMap {
            map: BTreeMap::new(),
        }
    }
}

impl<V> KeyMap<V> {
    pub(crate) fn new() -> KeyMap<V> {
        KeyMap::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        self.map.get(&Probe::new(key) as &dyn KeyView)
    }

    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> {
        self.map.insert(MapKey::owned(key), value)
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.map.remove(&Probe::new(key) as &dyn KeyView)
    }

    /// The entry of `key` (taken: no reference count traffic on it).
    pub(crate) fn entry_owned(&mut self, key: Key) -> btree_map::Entry<'_, MapKey, V> {
        self.map.entry(MapKey::owned(key))
    }

    /// Calls `each` with the entries within `range`, in key order.
    pub(crate) fn for_range(&self, range: &KeyRange, mut each: impl FnMut(&Key, &V)) {
        let (lo, hi) = (probe_bound(&range.0), probe_bound(&range.1));
        for (k, v) in self
            .map
            .range::<dyn KeyView, _>((view_bound(&lo), view_bound(&hi)))
        {
            each(&k.key, v);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &V)> {
        self.map.iter().map(|(k, v)| (&k.key, v))
    }

    /// The map itself (the hot tier adopts a write set's map).
    pub(crate) fn into_map(self) -> BTreeMap<MapKey, V> {
        self.map
    }
}

impl<V> IntoIterator for KeyMap<V> {
    type Item = (Key, V);
    type IntoIter = std::iter::Map<btree_map::IntoIter<MapKey, V>, fn((MapKey, V)) -> (Key, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.into_iter().map(|(k, v)| (k.key, v))
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
}

//! The read seam: a table at a snapshot is a set of sources, combined by one newest-wins merge.
//!
//! A [`Source`] holds versions of a table's rows by primary key: the hot tier
//! ([`crate::hot::HotTable`]) today, the cold runs of each level later. Every source answers
//! point lookups ([`Lookup`]: live / deleted / absent, with the version's commit ts) and
//! ordered key-range scans of versions, tombstones included ([`Versioned`]). [`Sources`] is a
//! table's sources at one snapshot plus its truncation marker; every committed read of a
//! table's rows (the `TableProvider` scan, point lookups, uniqueness checks, secondary-index
//! rechecks, UPDATE/DELETE's row checks) goes through it. See
//! `docs/design/0009-storage-read-seam.md`.
//!
//! The merge rule, for one key at snapshot `s`: among the sources' newest versions with
//! `commit_ts <= s`, the one with the greatest commit ts wins; a winning tombstone means "no
//! row" and hides every older version in every source; a version older than the truncation
//! marker (`commit_ts < truncated_at`, the newest TRUNCATE at or before `s`) is hidden as if
//! deleted.
//!
//! Invariants:
//! - sources are listed newest first, and for any key every version a newer source holds is
//!   newer than every version an older source holds (a flush moves a key's oldest versions
//!   down, never the newest alone). So a point lookup stops at the first source that knows
//!   the key, and at most one source per level is read.
//! - a source that is not the oldest keeps a key's tombstone as long as an older source may
//!   hold a version of the key ([`crate::hot::HotTable::keeping_tombstones`]).
//!
//! The truncation markers are the hot tier's ([`HotTable::truncate`]): it honours them in its
//! own reads, and [`Sources`] applies the one of its snapshot to the older sources.
//!
//! Hot path: with the hot tier as the only source, every read is the hot tier's own (no
//! merge, no extra allocation, no dynamic dispatch); the merge runs only when older sources
//! exist.

use std::ops::Bound;
use std::sync::Arc;

use crate::codec::{Key, RowBytes};
use crate::error::StorageResult;
use crate::hot::{HotTable, KeyRange};

/// A snapshot that sees every committed version: a writer holding a key's lock reads the
/// newest committed version with it.
pub const LATEST: u64 = u64::MAX;

/// What a source (or the merge of all of them) holds for one key at a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The newest version is a row, written at `commit_ts`.
    Live {
        /// The version's commit ts.
        commit_ts: u64,
        /// The encoded row.
        row: RowBytes,
    },
    /// The newest version is a tombstone written at `commit_ts`: older versions in this and
    /// every older source are hidden.
    Deleted {
        /// The tombstone's commit ts.
        commit_ts: u64,
    },
    /// No version of the key visible at the snapshot: ask an older source.
    Absent,
}

impl Lookup {
    /// The row, if the version is live.
    pub fn into_row(self) -> Option<RowBytes> {
        match self {
            Lookup::Live { row, .. } => Some(row),
            _ => None,
        }
    }

    /// The commit ts of the version (`None`: absent).
    pub fn commit_ts(&self) -> Option<u64> {
        match self {
            Lookup::Live { commit_ts, .. } | Lookup::Deleted { commit_ts } => Some(*commit_ts),
            Lookup::Absent => None,
        }
    }

    /// Whether the version is a row.
    pub fn is_live(&self) -> bool {
        matches!(self, Lookup::Live { .. })
    }

    /// This answer as seen through a truncation marker: a version older than `truncated_at`
    /// is hidden (a TRUNCATE at `truncated_at` deleted it).
    fn after_truncation(self, truncated_at: u64) -> Lookup {
        match self.commit_ts() {
            Some(ts) if ts < truncated_at => Lookup::Absent,
            _ => self,
        }
    }
}

/// One key's newest version at a snapshot, as a source's range scan yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The primary key.
    pub key: Key,
    /// The version's commit ts.
    pub commit_ts: u64,
    /// The row (`None`: a tombstone).
    pub row: Option<RowBytes>,
}

/// Versions of one table's rows by primary key: the hot tier, or a cold run
/// ([`crate::cold_run::ColdRun`]). Reads may fail (a cold run's object store); the hot tier's
/// never do.
pub trait Source: std::fmt::Debug + Send + Sync {
    /// The newest version of `key` with `commit_ts <= snapshot_ts`.
    fn lookup(&self, key: &[u8], snapshot_ts: u64) -> StorageResult<Lookup>;

    /// Up to `max` keys of `range` in key order, each with its newest version at
    /// `snapshot_ts` (tombstones included), appended to `out`. Returns the last key looked at
    /// when `max` keys were taken (continue after it), `None` when the range is exhausted.
    fn scan_versions(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
        out: &mut Vec<Versioned>,
    ) -> StorageResult<Option<Key>>;
}

impl Source for HotTable {
    fn lookup(&self, key: &[u8], snapshot_ts: u64) -> StorageResult<Lookup> {
        Ok(HotTable::lookup(self, key, snapshot_ts))
    }

    fn scan_versions(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
        out: &mut Vec<Versioned>,
    ) -> StorageResult<Option<Key>> {
        Ok(HotTable::scan_versions(self, range, snapshot_ts, max, out))
    }
}

/// Older sources, newest first, shared by the readers that took them: a flush publishes a
/// new list and waits until no reader holds the old one before it drops versions from the
/// hot tier ([`crate::table::ColdRuns`]).
pub type OlderSources = Arc<[Arc<dyn Source>]>;

/// A table's sources at one snapshot: the hot tier, then older sources newest first, and the
/// truncation marker. Cheap to make (a borrow and a reference count); make one per read.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    hot: &'a HotTable,
    older: OlderSources,
    truncated_at: u64,
    snapshot_ts: u64,
}

impl<'a> Sources<'a> {
    /// The sources `hot` then `older` (newest first) at `snapshot_ts`; versions older than
    /// `truncated_at` (0: none) are hidden.
    pub fn new(
        hot: &'a HotTable,
        older: OlderSources,
        truncated_at: u64,
        snapshot_ts: u64,
    ) -> Sources<'a> {
        Sources {
            hot,
            older,
            truncated_at,
            snapshot_ts,
        }
    }

    /// The snapshot read at.
    pub fn snapshot_ts(&self) -> u64 {
        self.snapshot_ts
    }

    /// Whether the hot tier answers every read alone (no older source; the hot tier honours
    /// the truncation markers itself).
    fn hot_only(&self) -> bool {
        self.older.is_empty()
    }

    /// The merged newest version of `key`: the first source that knows the key answers
    /// (newer sources hold newer versions), seen through the truncation marker. Fails when an
    /// older source's read fails.
    pub fn try_lookup(&self, key: &[u8]) -> StorageResult<Lookup> {
        let mut found = self.hot.lookup(key, self.snapshot_ts);
        if matches!(found, Lookup::Absent) {
            for source in self.older.iter() {
                found = source.lookup(key, self.snapshot_ts)?;
                if !matches!(found, Lookup::Absent) {
                    break;
                }
            }
        }
        Ok(found.after_truncation(self.truncated_at))
    }

    /// The row `key` holds at the snapshot.
    pub fn try_get(&self, key: &[u8]) -> StorageResult<Option<RowBytes>> {
        Ok(self.try_lookup(key)?.into_row())
    }

    /// For each of `keys`: whether a row is live for it (bulk inserts check many keys at
    /// once; the hot tier answers them under one read lock).
    pub fn try_live_many<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k Key>,
    ) -> StorageResult<Vec<bool>> {
        if self.hot_only() && self.snapshot_ts == LATEST {
            return Ok(self.hot.latest_live_many(keys));
        }
        keys.into_iter()
            .map(|key| Ok(self.try_lookup(key)?.is_live()))
            .collect()
    }

    /// Up to `max` live rows of `range` at the snapshot in key order, appended to `out`: the
    /// sources' versions merged, newest wins, tombstones and truncated versions dropped.
    /// Returns the last key covered when the chunk ended early (continue after it), `None`
    /// when the range is exhausted.
    pub fn try_scan_chunk(
        &self,
        range: &KeyRange,
        max: usize,
        out: &mut Vec<(Key, RowBytes)>,
    ) -> StorageResult<Option<Key>> {
        if self.hot_only() {
            return Ok(self.hot.scan_chunk(range, self.snapshot_ts, max, out));
        }
        let mut range = range.clone();
        loop {
            let mut chunks = Vec::with_capacity(1 + self.older.len());
            let mut versions = Vec::new();
            let last = self
                .hot
                .scan_versions(&range, self.snapshot_ts, max, &mut versions);
            chunks.push((versions, last));
            for source in self.older.iter() {
                let mut versions = Vec::new();
                let last = source.scan_versions(&range, self.snapshot_ts, max, &mut versions)?;
                chunks.push((versions, last));
            }
            let before = out.len();
            let covered = merge_chunks(chunks, self.truncated_at, out);
            match covered {
                // Every version in the chunk may have been hidden: go on until a row is
                // found or the range ends, so an empty answer always means "exhausted".
                Some(last) if out.len() == before => range.0 = Bound::Excluded(last),
                other => return Ok(other),
            }
        }
    }
}

/// Merges one chunk of each source's range scan (`(versions, last key)`, newest source first)
/// into `out`'s live rows. Keys up to the smallest `last` of the sources that stopped early are
/// complete in every chunk and are merged; later keys are left for the next chunk. Returns
/// that smallest `last` (`None`: every source is exhausted, all keys merged).
pub fn merge_chunks(
    chunks: Vec<(Vec<Versioned>, Option<Key>)>,
    truncated_at: u64,
    out: &mut Vec<(Key, RowBytes)>,
) -> Option<Key> {
    let covered = chunks
        .iter()
        .filter_map(|(_, last)| last.clone())
        .min_by(|a, b| a.as_ref().cmp(b.as_ref()));
    let mut streams: Vec<std::iter::Peekable<std::vec::IntoIter<Versioned>>> = chunks
        .into_iter()
        .map(|(versions, _)| versions.into_iter().peekable())
        .collect();
    loop {
        // The smallest next key over all sources.
        let next = streams
            .iter_mut()
            .filter_map(|s| s.peek().map(|v| v.key.clone()))
            .min_by(|a, b| a.as_ref().cmp(b.as_ref()));
        let Some(key) = next else {
            break;
        };
        if covered
            .as_ref()
            .is_some_and(|covered| key.as_ref() > covered.as_ref())
        {
            break;
        }
        // Newest wins: the greatest commit ts (on a tie, the newer source).
        let mut winner: Option<Versioned> = None;
        for stream in &mut streams {
            if stream.peek().is_some_and(|v| v.key == key) {
                if let Some(version) = stream.next() {
                    if winner
                        .as_ref()
                        .is_none_or(|w| version.commit_ts > w.commit_ts)
                    {
                        winner = Some(version);
                    }
                }
            }
        }
        if let Some(Versioned {
            key,
            commit_ts,
            row: Some(row),
        }) = winner
        {
            if commit_ts >= truncated_at {
                out.push((key, row));
            }
        }
    }
    covered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Key {
        Arc::from(s.as_bytes())
    }
    fn r(s: &str) -> Option<RowBytes> {
        Some(Arc::from(s.as_bytes()))
    }
    const ALL: KeyRange = (Bound::Unbounded, Bound::Unbounded);

    fn rows(sources: &Sources, max: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut range = ALL;
        while let Some(last) = sources.try_scan_chunk(&range, max, &mut out).unwrap() {
            range.0 = Bound::Excluded(last);
        }
        out.iter()
            .map(|(k, r)| {
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(r).into(),
                )
            })
            .collect()
    }

    #[test]
    fn newest_source_wins_and_tombstones_hide_older_versions() {
        let cold = HotTable::default();
        cold.apply(&k("a"), r("a1"), 1, 0);
        cold.apply(&k("b"), r("b1"), 1, 0);
        cold.apply(&k("c"), r("c1"), 1, 0);
        let hot = HotTable::keeping_tombstones();
        hot.apply(&k("a"), r("a2"), 5, 10);
        hot.apply(&k("b"), None, 6, 10);
        hot.apply(&k("d"), r("d1"), 7, 10);
        // The tombstone stays though no snapshot needs it: it hides "b" in the cold source.
        hot.vacuum(100);
        assert_eq!(hot.key_count(), 3);
        let older: OlderSources = Arc::from(vec![Arc::new(cold) as Arc<dyn Source>]);
        let now = Sources::new(&hot, older.clone(), 0, 10);
        assert_eq!(now.try_get(b"a").unwrap(), r("a2"));
        assert_eq!(
            now.try_lookup(b"b").unwrap(),
            Lookup::Deleted { commit_ts: 6 }
        );
        assert_eq!(now.try_get(b"c").unwrap(), r("c1"));
        assert_eq!(now.try_get(b"e").unwrap(), None);
        let expect = vec![
            ("a".to_string(), "a2".to_string()),
            ("c".into(), "c1".into()),
            ("d".into(), "d1".into()),
        ];
        for max in [1, 2, 100] {
            assert_eq!(rows(&now, max), expect, "chunks of {max}");
        }
        // An old snapshot sees the cold versions.
        let before = Sources::new(&hot, older.clone(), 0, 4);
        assert_eq!(before.try_get(b"b").unwrap(), r("b1"));
        assert_eq!(rows(&before, 2).len(), 3);
        assert_eq!(
            before.try_live_many([&k("a"), &k("d")]).unwrap(),
            vec![true, false]
        );
    }

    #[test]
    fn truncation_marker_hides_everything_older() {
        let cold = HotTable::default();
        cold.apply(&k("a"), r("a1"), 1, 0);
        cold.apply(&k("b"), r("b1"), 1, 0);
        let hot = HotTable::keeping_tombstones();
        hot.apply(&k("b"), r("b2"), 3, 0);
        // TRUNCATE at 5 and, in the same commit, a new row.
        hot.truncate(5);
        hot.apply(&k("c"), r("c5"), 5, 0);
        hot.apply(&k("d"), r("d6"), 6, 0);
        let older: OlderSources = Arc::from(vec![Arc::new(cold) as Arc<dyn Source>]);
        let after = Sources::new(&hot, older.clone(), 5, 10);
        assert_eq!(after.try_get(b"a").unwrap(), None);
        assert_eq!(after.try_lookup(b"b").unwrap(), Lookup::Absent);
        assert_eq!(after.try_get(b"c").unwrap(), r("c5"));
        assert_eq!(
            rows(&after, 1),
            vec![("c".into(), "c5".into()), ("d".into(), "d6".into())]
        );
        // The marker with the hot tier alone.
        let none: OlderSources = Arc::from(Vec::new());
        let hot_only = Sources::new(&hot, none, 5, 10);
        assert_eq!(hot_only.try_get(b"b").unwrap(), None);
        assert_eq!(rows(&hot_only, 100).len(), 2);
        assert_eq!(
            hot_only.try_live_many([&k("b"), &k("c")]).unwrap(),
            vec![false, true]
        );
    }

    /// A deterministic xorshift generator: failures replay from the printed seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random histories spread over layered sources (each key's versions moved down to older
    /// sources oldest first, as a flush does) read the same as one model map, at every
    /// snapshot, through lookups and chunked scans of any size. `FLOE_MERGE_SEED` replays one.
    #[test]
    fn layered_sources_read_like_one_history() {
        let seeds: Vec<u64> = match std::env::var("FLOE_MERGE_SEED") {
            Ok(seed) => vec![seed.parse().expect("FLOE_MERGE_SEED is a number")],
            Err(_) => (1..=60).collect(),
        };
        for seed in seeds {
            println!("FLOE_MERGE_SEED={seed}");
            check_history(seed);
        }
    }

    fn check_history(seed: u64) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let keys = 1 + rng.below(12);
        let commits = 1 + rng.below(40);
        let layers = 1 + rng.below(4) as usize;
        // The history: per key, versions (ts, row) oldest first; truncations by ts.
        let mut history: Vec<Vec<(u64, Option<RowBytes>)>> = vec![Vec::new(); keys as usize];
        let mut truncations = Vec::new();
        for ts in 1..=commits {
            if rng.below(10) == 0 {
                truncations.push(ts);
            }
            for _ in 0..1 + rng.below(3) {
                let key = rng.below(keys) as usize;
                if history[key].last().is_some_and(|(t, _)| *t == ts) {
                    continue;
                }
                let row = match rng.below(3) {
                    0 => None,
                    _ => r(&format!("{key}@{ts}")),
                };
                history[key].push((ts, row));
            }
        }
        // Each key's versions split into layers: a prefix (oldest) goes to the oldest layer.
        let tables: Vec<HotTable> = (0..layers)
            .map(|i| match i {
                0 => HotTable::default(),
                _ => HotTable::keeping_tombstones(),
            })
            .collect();
        for (key, versions) in history.iter().enumerate() {
            let mut cuts: Vec<usize> = (0..layers - 1)
                .map(|_| rng.below(versions.len() as u64 + 1) as usize)
                .collect();
            cuts.sort_unstable();
            cuts.push(versions.len());
            let mut from = 0;
            for (layer, cut) in cuts.into_iter().enumerate() {
                for (ts, row) in &versions[from..cut] {
                    // Horizon 0 keeps every version.
                    tables[layer].apply(&k(&format!("k{key:02}")), row.clone(), *ts, 0);
                }
                from = cut;
            }
        }
        let mut layered = tables.into_iter().rev();
        let hot = layered.next().expect("one layer at least");
        for ts in &truncations {
            hot.truncate(*ts);
        }
        let older: OlderSources = layered.map(|t| Arc::new(t) as Arc<dyn Source>).collect();
        for snapshot in 0..=commits + 1 {
            let truncated_at = truncations
                .iter()
                .rev()
                .find(|t| **t <= snapshot)
                .copied()
                .unwrap_or(0);
            let model: Vec<(String, String)> = history
                .iter()
                .enumerate()
                .filter_map(|(key, versions)| {
                    let (ts, row) = versions.iter().rev().find(|(ts, _)| *ts <= snapshot)?;
                    let row = row.as_ref().filter(|_| *ts >= truncated_at)?;
                    Some((
                        format!("k{key:02}"),
                        String::from_utf8_lossy(row).into_owned(),
                    ))
                })
                .collect();
            assert_eq!(hot.truncated_at(snapshot), truncated_at);
            let sources = Sources::new(&hot, older.clone(), truncated_at, snapshot);
            for max in [1, 2, 3, 1000] {
                assert_eq!(
                    rows(&sources, max),
                    model,
                    "seed {seed}, snapshot {snapshot}, chunks of {max}"
                );
            }
            for key in 0..keys {
                let name = format!("k{key:02}");
                let expect = model.iter().find(|(k, _)| *k == name).map(|(_, r)| r);
                let got = sources
                    .try_get(name.as_bytes())
                    .unwrap()
                    .map(|r| String::from_utf8_lossy(&r).into_owned());
                assert_eq!(
                    got.as_ref(),
                    expect,
                    "seed {seed}, snapshot {snapshot}, {name}"
                );
            }
        }
    }
}

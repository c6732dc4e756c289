//! Batch scans of cold key ranges: where a run's key range holds no version of another
//! visible run, the run is read batch by batch with Parquet's async reader (projection,
//! row-group and page pruning by key range, a row filter for visibility, one row group per
//! unit of work so units run in parallel) instead of row by row through the newest-wins
//! merge; row groups are also pruned by the statistics of the columns the scan's filters
//! test (DataFusion's `PruningPredicate`), and the filters run in the reader after the
//! visibility filter ([`Visibility::filter`]). See `docs/design/0012-cold-scans.md`.
//!
//! A scan at snapshot `s` with truncation marker `T` ([`plan`]):
//! - a run is *relevant* unless it is wholly invisible (`min_ts > s`) or wholly hidden
//!   (`max_ts < T`): an irrelevant run neither holds a visible version nor hides one;
//! - a relevant run is read *by batch* when no other relevant run's key range overlaps its
//!   own and the hot tier holds at most [`MAX_HIDDEN_KEYS`] keys with a version at `s` in its
//!   range. Then, for a key in its range, the run's own versions are the only cold ones, and a
//!   hot version at `s` (newer than every run's, by the sources' invariant) wins. So the visible
//!   rows of the range are: the hot tier's rows there, plus the run's rows that are the first
//!   of their key with `commit_ts <= s` (every row when the run holds one version per key),
//!   not tombstones, not older than `T`, and of keys the hot tier has no version of at `s`
//!   ([`Visibility`]);
//! - the rest of the scan's key range (gaps between batch runs) is read through the merge.
//!
//! Invariants: the plan holds the run list it was made from until the scan ends, so a flush
//! waits before it removes the hot versions the plan counted on (as for every reader of a run
//! list, [`crate::table::ColdRuns`]); batch units and merge units cover disjoint key ranges.
//! A unit may return rows outside the scan's key range (whole row groups and pages): the
//! provider's filters stay `Inexact`, so DataFusion re-applies them.

use std::ops::Bound;
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicate;

use crate::codec::{Key, RowBytes};
use crate::cold_run::{ColdRun, Visibility};
use crate::hot::KeyRange;
use crate::keymap::range_is_empty;
use crate::provider::{tighten_lower, tighten_upper};
use crate::table::{RunSet, TableData};

/// Hot keys in a run's range above which the run is read through the merge instead (the
/// batch scan's row filter holds them in a hash set).
pub const MAX_HIDDEN_KEYS: usize = 100_000;

/// One piece of a scan; pieces cover disjoint key ranges and may run in any order, in
/// parallel.
#[derive(Debug)]
pub(crate) enum ScanUnit {
    /// The live rows of a key range, through the newest-wins merge of every source.
    Merge(KeyRange),
    /// The hot tier's live rows inside the range of a run read by batch.
    Rows(Vec<(Key, RowBytes)>),
    /// One row group of a run read by batch.
    RowGroup {
        run: Arc<ColdRun>,
        group: usize,
        visibility: Arc<Visibility>,
    },
}

/// A run read by batch, its visibility filter and the hot tier's live rows in its range.
type BatchRun<'a> = (&'a Arc<ColdRun>, Visibility, Vec<(Key, RowBytes)>);

/// A scan's pieces and the run list they were planned from.
#[derive(Debug)]
pub(crate) struct ColdScanPlan {
    /// The pieces, in key order.
    pub units: Vec<ScanUnit>,
    /// Held until the scan ends (see the module doc).
    pub runs: RunSet,
    /// The truncation marker at the snapshot.
    pub truncated_at: u64,
}

/// The plan for reading `range` of `table` at `snapshot_ts` with batch scans where they are
/// exact; `None` when no run can be read by batch (read everything through the merge).
pub(crate) fn plan(
    table: &TableData,
    snapshot_ts: u64,
    range: &KeyRange,
    pruning: Option<&PruningPredicate>,
    filter: Option<&Arc<dyn PhysicalExpr>>,
) -> Option<ColdScanPlan> {
    // The marker first, then the runs (as `TableData::sources`).
    let truncated_at = table.hot.truncated_at(snapshot_ts);
    let runs = table.cold.current();
    if runs.runs.is_empty() {
        return None;
    }
    let mut relevant: Vec<&Arc<ColdRun>> = runs
        .runs
        .iter()
        .filter(|run| run.meta().min_ts <= snapshot_ts && run.meta().max_ts >= truncated_at)
        .collect();
    relevant.sort_by(|a, b| a.meta().min_key.cmp(&b.meta().min_key));
    // Each run read by batch, with its visibility filter and the hot rows of its range.
    let mut batch_runs: Vec<BatchRun<'_>> = Vec::new();
    let mut widest_max: Option<&[u8]> = None;
    for (i, run) in relevant.iter().enumerate() {
        let meta = run.meta();
        let overlaps_earlier = widest_max.is_some_and(|max| max >= meta.min_key.as_slice());
        let overlaps_later = relevant
            .get(i + 1)
            .is_some_and(|next| next.meta().min_key <= meta.max_key);
        if widest_max.is_none_or(|max| max < meta.max_key.as_slice()) {
            widest_max = Some(meta.max_key.as_slice());
        }
        if overlaps_earlier || overlaps_later || !meta.overlaps(range) {
            continue;
        }
        // The hot keys of the run's range that the scan reads: rows outside the scan's
        // range are dropped by the filters DataFusion re-applies, hidden or not.
        let mut run_range: KeyRange = range.clone();
        tighten_lower(
            &mut run_range.0,
            Bound::Included(Key::from(meta.min_key.as_slice())),
        );
        tighten_upper(
            &mut run_range.1,
            Bound::Included(Key::from(meta.max_key.as_slice())),
        );
        let mut hot = Vec::new();
        let more = table
            .hot
            .scan_versions(&run_range, snapshot_ts, MAX_HIDDEN_KEYS, &mut hot);
        if more.is_some() {
            continue; // too many hot keys: the merge reads this range
        }
        let mut visibility = Visibility {
            snapshot_ts: (snapshot_ts < meta.max_ts).then_some(snapshot_ts),
            truncated_at: (truncated_at > meta.min_ts).then_some(truncated_at),
            tombstones: run.may_hold_tombstones(),
            first_per_key: !meta.unique_keys,
            hidden: Default::default(),
            filter: filter.cloned(),
        };
        let mut rows = Vec::new();
        for version in hot {
            if let Some(row) = version.row {
                rows.push((version.key.clone(), row));
            }
            visibility.hidden.insert(version.key);
        }
        batch_runs.push((run, visibility, rows));
    }
    if batch_runs.is_empty() {
        return None;
    }
    let mut units = Vec::new();
    let mut lower = range.0.clone();
    for (run, visibility, rows) in batch_runs {
        let meta = run.meta();
        let mut upper = range.1.clone();
        tighten_upper(
            &mut upper,
            Bound::Excluded(Key::from(meta.min_key.as_slice())),
        );
        let gap = (lower.clone(), upper);
        if !range_is_empty(&gap) {
            units.push(ScanUnit::Merge(gap));
        }
        tighten_lower(
            &mut lower,
            Bound::Excluded(Key::from(meta.max_key.as_slice())),
        );
        if !rows.is_empty() {
            units.push(ScanUnit::Rows(rows));
        }
        let visibility = Arc::new(visibility);
        let mut groups = run.row_groups_in(range);
        if let Some(pruning) = pruning {
            // A pruned row group has no row the filters accept, so none of its visible ones.
            groups = run.prune_groups(groups, pruning);
        }
        for group in groups {
            units.push(ScanUnit::RowGroup {
                run: (*run).clone(),
                group,
                visibility: visibility.clone(),
            });
        }
    }
    let tail = (lower, range.1.clone());
    if !range_is_empty(&tail) {
        units.push(ScanUnit::Merge(tail));
    }
    Some(ColdScanPlan {
        units,
        runs,
        truncated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cold_run::tests::{
        all_types, random_history, run_order, sample_row, small_options, write_run, Rng,
    };
    use crate::cold_run::{RunNamer, RunOptions};
    use crate::error::ColdError;
    use crate::manifest::RunPins;
    use crate::source::{Sources, Versioned, LATEST};
    use crate::store::ColdStore;
    use futures::TryStreamExt;

    /// Every piece of `plan` read synchronously, as `(key, row)` in key order.
    fn read_plan(table: &TableData, plan: ColdScanPlan, snapshot_ts: u64) -> Vec<(Key, RowBytes)> {
        try_read_plan(table, plan, snapshot_ts).unwrap()
    }

    fn try_read_plan(
        table: &TableData,
        plan: ColdScanPlan,
        snapshot_ts: u64,
    ) -> crate::error::StorageResult<Vec<(Key, RowBytes)>> {
        let columns: Vec<usize> = (0..table.codec.schema().fields().len()).collect();
        let mut out = Vec::new();
        for unit in plan.units {
            match unit {
                ScanUnit::Merge(range) => {
                    let sources = Sources::new(
                        &table.hot,
                        plan.runs.sources.clone(),
                        plan.truncated_at,
                        snapshot_ts,
                    );
                    let mut range = range;
                    while let Some(last) = sources.try_scan_chunk(&range, 7, &mut out)? {
                        range.0 = Bound::Excluded(last);
                    }
                }
                ScanUnit::Rows(rows) => out.extend(rows),
                ScanUnit::RowGroup {
                    run,
                    group,
                    visibility,
                } => {
                    let stream = run.scan_group(
                        group,
                        &(Bound::Unbounded, Bound::Unbounded),
                        visibility,
                        &columns,
                        table.codec.schema().clone(),
                        5,
                    )?;
                    let batches: Vec<_> =
                        futures::executor::block_on(stream.try_collect::<Vec<_>>())?;
                    for batch in batches {
                        let keys = table.codec.encode_keys(batch.columns()).unwrap().unwrap();
                        let rows = table.codec.encode_rows(batch.columns()).unwrap();
                        for i in 0..batch.num_rows() {
                            out.push((
                                Key::from(keys.row(i).data()),
                                Arc::from(rows.row(i).data()),
                            ));
                        }
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Batch reads retry transient object-store faults and fail on persistent ones: never
    /// fewer rows.
    #[test]
    fn batch_reads_retry_faults_and_surface_persistent_ones() {
        use crate::fault::{FaultyStore, Op};
        use crate::store::RetryPolicy;
        let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()), 5);
        let store = Arc::new(
            ColdStore::with_object_store(faulty.clone(), "")
                .unwrap()
                .with_retry(RetryPolicy {
                    attempts: 10,
                    first_backoff: std::time::Duration::from_millis(1),
                    max_backoff: std::time::Duration::from_millis(2),
                }),
        );
        let table = TableData::new(Arc::new(all_types())).unwrap();
        table.hot.keep_tombstones_from_now();
        let codec = table.codec.clone();
        let versions: Vec<Versioned> = (0..500)
            .map(|id| {
                let (key, row) = sample_row(&codec, id, 1);
                Versioned {
                    key,
                    commit_ts: 1,
                    row: Some(row),
                }
            })
            .collect();
        let written = write_run(
            &store,
            &codec,
            &Arc::new(RunNamer::new(1)),
            &RunPins::new(),
            small_options(),
            run_order(&versions),
        )
        .unwrap();
        let runs: Vec<Arc<ColdRun>> = written
            .runs
            .into_iter()
            .map(|meta| {
                Arc::new(ColdRun::open_blocking(store.clone(), meta, codec.clone()).unwrap())
            })
            .collect();
        table.cold.replace(runs);
        let everything: KeyRange = (Bound::Unbounded, Bound::Unbounded);
        let expect: Vec<(Key, RowBytes)> = versions
            .iter()
            .map(|v| (v.key.clone(), v.row.clone().unwrap()))
            .collect();
        faulty.fail(&[Op::Get], 300);
        let first = plan(&table, LATEST, &everything, None, None).expect("a batch plan");
        assert_eq!(read_plan(&table, first, LATEST), expect);
        assert!(faulty.injected() > 0);
        faulty.fail(&[Op::Get], 1000);
        let second = plan(&table, LATEST, &everything, None, None).expect("a batch plan");
        let error = try_read_plan(&table, second, LATEST).unwrap_err();
        assert!(
            matches!(&error, crate::StorageError::Cold(cold)
                if matches!(**cold, ColdError::ObjectStore { op: "read", .. })),
            "{error}"
        );
    }

    /// Random histories split between the hot tier and runs (one or several per layer,
    /// disjoint within a layer, layers overlapping; several versions per key; tombstones;
    /// truncations): every plan reads what the merge reads, at every snapshot, over the whole
    /// table and a random key range. `FLOE_COLD_SCAN_SEED=<n>` replays one,
    /// `FLOE_COLD_SCAN_SEEDS=<n>` runs n.
    #[test]
    fn plans_read_like_the_merge() {
        let seeds: Vec<u64> = match (
            std::env::var("FLOE_COLD_SCAN_SEED"),
            std::env::var("FLOE_COLD_SCAN_SEEDS"),
        ) {
            (Ok(seed), _) => vec![seed.parse().expect("FLOE_COLD_SCAN_SEED is a number")],
            (_, Ok(n)) => (1..=n.parse().expect("FLOE_COLD_SCAN_SEEDS is a number")).collect(),
            _ => (1..=24).collect(),
        };
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let mut batch_groups = 0;
        // (A run needing no test at all is the SQL tests' settled table.)
        let mut tests_used = [false; 5];
        for seed in seeds {
            println!("FLOE_COLD_SCAN_SEED={seed}");
            let mut rng = Rng::new(seed);
            let table = TableData::new(Arc::new(all_types())).unwrap();
            table.hot.keep_tombstones_from_now();
            let codec = table.codec.clone();
            let keys = 1 + rng.below(40);
            let commits = 1 + rng.below(40);
            let history = random_history(&mut rng, &codec, keys, commits);
            let truncations: Vec<u64> = (1..=commits).filter(|_| rng.below(15) == 0).collect();
            let cold_layers = 1 + rng.below(2) as usize;
            // Layer 0 is the oldest; the last one is the hot tier, often nearly empty.
            let mut layers: Vec<Vec<Versioned>> = vec![Vec::new(); cold_layers + 1];
            for versions in &history {
                let mut cuts: Vec<usize> = (0..cold_layers)
                    .map(|_| rng.below(versions.len() as u64 + 1) as usize)
                    .collect();
                if rng.below(2) == 0 {
                    cuts.push(versions.len()); // nothing hot for this key
                } else {
                    cuts.push(rng.below(versions.len() as u64 + 1) as usize);
                }
                cuts.sort_unstable();
                cuts.push(versions.len());
                let mut from = 0;
                for (layer, cut) in cuts.into_iter().take(cold_layers + 1).enumerate() {
                    layers[layer].extend(versions[from..cut.max(from)].iter().cloned());
                    from = cut.max(from);
                }
                layers[cold_layers].extend(versions[from..].iter().cloned());
            }
            let mut hot_versions = layers.pop().unwrap_or_default();
            hot_versions.sort_by_key(|v| v.commit_ts);
            for v in &hot_versions {
                table.hot.apply(&v.key, v.row.clone(), v.commit_ts, 0);
            }
            for t in &truncations {
                table.hot.truncate(*t);
            }
            let namer = Arc::new(RunNamer::new(seed));
            let pins = RunPins::new();
            let mut runs = Vec::new();
            for layer in layers.into_iter().rev() {
                let ordered = run_order(&layer);
                // Split the layer by key into disjoint runs.
                let pieces = 1 + rng.below(3) as usize;
                let per_piece = ordered.len().div_ceil(pieces).max(1);
                let mut piece: Vec<Versioned> = Vec::new();
                let mut all_pieces = Vec::new();
                for v in ordered {
                    let at_boundary = piece.last().is_some_and(|last| last.key != v.key);
                    if piece.len() >= per_piece && at_boundary {
                        all_pieces.push(std::mem::take(&mut piece));
                    }
                    piece.push(v);
                }
                all_pieces.push(piece);
                for versions in all_pieces.into_iter().filter(|p| !p.is_empty()) {
                    let options = RunOptions {
                        row_group_rows: 1 + rng.below(20) as usize,
                        page_rows: 1 + rng.below(6) as usize,
                        ..small_options()
                    };
                    let written =
                        write_run(&store, &codec, &namer, &pins, options, versions).unwrap();
                    for meta in written.runs {
                        let run = ColdRun::open_blocking(store.clone(), meta, codec.clone());
                        runs.push(Arc::new(run.unwrap()));
                    }
                }
            }
            table.cold.replace(runs);
            let bound = |rng: &mut Rng| {
                let key = sample_row(&codec, rng.below(keys + 1) as i64 * 3, 0).0;
                match rng.below(3) {
                    0 => Bound::Unbounded,
                    1 => Bound::Included(key),
                    _ => Bound::Excluded(key),
                }
            };
            for snapshot in (0..=commits + 1).chain([LATEST]) {
                let ranges: [KeyRange; 2] = [
                    (Bound::Unbounded, Bound::Unbounded),
                    (bound(&mut rng), bound(&mut rng)),
                ];
                for range in ranges {
                    let sources = table.sources(snapshot);
                    let mut expect = Vec::new();
                    let mut rest = range.clone();
                    while let Some(last) = sources.try_scan_chunk(&rest, 5, &mut expect).unwrap() {
                        rest.0 = Bound::Excluded(last);
                    }
                    let Some(plan) = plan(&table, snapshot, &range, None, None) else {
                        continue;
                    };
                    for unit in &plan.units {
                        if let ScanUnit::RowGroup { visibility: v, .. } = unit {
                            batch_groups += 1;
                            // Which tests the row filters needed, over all seeds.
                            tests_used[0] |= v.first_per_key;
                            tests_used[1] |= !v.hidden.is_empty();
                            tests_used[2] |= v.truncated_at.is_some();
                            tests_used[3] |= v.snapshot_ts.is_some();
                            tests_used[4] |= v.tombstones;
                        }
                    }
                    let in_range = |key: &Key| {
                        let above = match &range.0 {
                            Bound::Included(k) => key >= k,
                            Bound::Excluded(k) => key > k,
                            Bound::Unbounded => true,
                        };
                        let below = match &range.1 {
                            Bound::Included(k) => key <= k,
                            Bound::Excluded(k) => key < k,
                            Bound::Unbounded => true,
                        };
                        above && below
                    };
                    // Pieces may return rows outside the range (DataFusion filters them).
                    let got: Vec<(Key, RowBytes)> = read_plan(&table, plan, snapshot)
                        .into_iter()
                        .filter(|(k, _)| in_range(k))
                        .collect();
                    assert_eq!(
                        got, expect,
                        "seed {seed}, snapshot {snapshot}, range {range:?}"
                    );
                }
            }
        }
        assert!(batch_groups > 0, "some plan read a run by batch");
        if std::env::var("FLOE_COLD_SCAN_SEED").is_err() {
            assert_eq!(tests_used, [true; 5], "every row-filter test was exercised");
        }
    }
}

//! Batch scans of cold key ranges: where a run's key range holds no version of another
//! visible run, the run is read batch by batch with Parquet's async reader (projection,
//! row-group and page pruning by key range, a row filter for visibility, one row group per
//! unit of work so units run in parallel) instead of row by row through the newest-wins
//! merge; row groups are also pruned by the statistics of the columns the scan's filters
//! test (DataFusion's `PruningPredicate`). See `docs/design/0012-cold-scans.md`.
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

//! Indexes of a view's output (`CREATE INDEX` on a materialized view): the view's rows
//! ordered by some of their columns, with the same history as the rows themselves, so a read
//! of the rows whose leading index columns equal given values (`WHERE customer_id = 42`) at
//! any readable snapshot touches those rows only.
//!
//! Invariant: an index's entries are (key, row) for every update of the view's rows
//! ([`crate::history::History`] of the rows), the key being the row's index columns in
//! Arrow's row format. Arrow's row format concatenates the columns' encodings and no
//! column's encoding is a prefix of another value's, so the rows whose first `k` index columns
//! equal some values are exactly the entries whose key starts with those values' encoding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result as DfResult, ScalarValue};

use crate::history::History;
use crate::row::{Row, RowCodec};

/// The error text of a unique index's violation, from the repeated key (a one-row batch of
/// the index's columns).
pub type UniqueText = Arc<dyn Fn(&RecordBatch) -> String + Send + Sync>;

/// What an index of a view's output is on.
#[derive(Clone)]
pub struct IndexSpec {
    /// The indexed columns (positions in the view's output).
    pub columns: Vec<usize>,
    /// For a unique index: its violation's error, which reads at a snapshot where two rows
    /// share a key without NULLs get.
    pub unique: Option<UniqueText>,
}

/// One index of a view's output.
pub(crate) struct OutputIndex {
    /// The indexed columns (positions in the view's output).
    pub(crate) columns: Vec<usize>,
    keys: RowCodec,
    entries: History<(Row, Row)>,
    unique: Option<UniqueText>,
    /// Keys (without NULLs) of a unique index updated at a time, not yet checked.
    touched: BTreeSet<(Row, u64)>,
    /// A unique index's violations: its error text from each time a key is repeated.
    violations: History<String>,
}

impl OutputIndex {
    /// An empty index on `columns` of rows of `schema`, readable from `since`.
    pub(crate) fn new(spec: IndexSpec, schema: &SchemaRef, since: u64) -> DfResult<Self> {
        let keys = RowCodec::new(Arc::new(schema.project(&spec.columns)?))?;
        Ok(OutputIndex {
            columns: spec.columns,
            keys,
            entries: History::new(since),
            unique: spec.unique,
            touched: BTreeSet::new(),
            violations: History::new(since),
        })
    }

    pub(crate) fn is_unique(&self) -> bool {
        self.unique.is_some()
    }

    /// Records updates of the view's rows: `updates[i]` is row `i` of `batch` (the rows
    /// decoded), at a time, `diff` copies.
    pub(crate) fn update(
        &mut self,
        batch: &RecordBatch,
        updates: &[(u64, &Row, isize)],
    ) -> DfResult<()> {
        let columns: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| Arc::clone(batch.column(*c)))
            .collect();
        let keys = self.keys.encode(&columns, batch.num_rows())?;
        for (i, ((time, row, diff), key)) in updates.iter().zip(keys).enumerate() {
            if self.unique.is_some() && columns.iter().all(|c| c.is_valid(i)) {
                self.touched.insert((key.clone(), *time));
            }
            self.entries.update(*time, &(key, (*row).clone()), *diff);
        }
        Ok(())
    }

    /// For a unique index, records the violations of the keys updated before `below` since
    /// the last call: an error from each time a key becomes repeated until the time it no
    /// longer is. Every update before `below` must have been recorded (the view's frontier
    /// is at least `below`).
    pub(crate) fn check_unique(&mut self, below: u64) -> DfResult<()> {
        let Some(text) = self.unique.clone() else {
            return Ok(());
        };
        let (touched, later): (BTreeSet<_>, BTreeSet<_>) = std::mem::take(&mut self.touched)
            .into_iter()
            .partition(|(_, time)| *time < below);
        self.touched = later;
        let mut keys = touched.iter().peekable();
        while let Some((key, first)) = keys.next() {
            let mut times = vec![*first];
            while let Some((_, time)) = keys.next_if(|(next, _)| next == key) {
                times.push(*time);
            }
            let repeated = |ts: u64| -> bool {
                let from = (key.clone(), Row(Vec::new()));
                self.entries
                    .range_at(ts, &from, |(k, _)| k == key)
                    .is_some_and(|rows| rows.values().sum::<isize>() > 1)
            };
            let mut before = first.checked_sub(1).is_some_and(&repeated);
            let mut message = None;
            for time in times {
                let now = repeated(time);
                if now != before {
                    let message = match &message {
                        Some(m) => m,
                        None => message.insert(text(&self.keys.decode([key])?)),
                    };
                    self.violations
                        .update(time, message, if now { 1 } else { -1 });
                }
                before = now;
            }
        }
        Ok(())
    }

    /// The view's rows at `ts` whose first `values.len()` index columns equal `values` (of
    /// those columns' types), with their multiplicities; `None` before the oldest readable
    /// time.
    pub(crate) fn lookup(
        &self,
        ts: u64,
        values: &[ScalarValue],
    ) -> DfResult<Option<BTreeMap<Row, isize>>> {
        let fields = self
            .keys
            .schema()
            .project(&(0..values.len()).collect::<Vec<_>>())?;
        let prefix = RowCodec::new(Arc::new(fields))?;
        let arrays = values
            .iter()
            .map(|v| v.to_array_of_size(1))
            .collect::<DfResult<Vec<_>>>()?;
        let Some(start) = prefix.encode(&arrays, 1)?.pop() else {
            return Ok(None);
        };
        let from = (start.clone(), Row(Vec::new()));
        let found = self
            .entries
            .range_at(ts, &from, |(key, _)| key.0.starts_with(&start.0));
        Ok(found.map(|entries| {
            entries
                .into_iter()
                .map(|((_, row), count)| (row, count))
                .collect()
        }))
    }

    /// The violation of a unique index at `ts`, if its rows repeat a key there.
    pub(crate) fn violation(&self, ts: u64) -> Option<String> {
        if self.violations.is_empty_at(ts) {
            return None;
        }
        self.violations.at(ts).and_then(|v| v.into_keys().next())
    }

    /// Forgets how the index looked before `ts`.
    pub(crate) fn compact(&mut self, ts: u64) {
        self.entries.compact(ts);
        self.violations.compact(ts);
    }

    /// The memory the index holds (estimated).
    pub(crate) fn bytes(&self) -> usize {
        self.entries.bytes() + self.violations.bytes()
    }
}

/// Builds the index `spec` over the rows recorded in `rows` (with their history); a unique
/// index's keys are all to be checked.
pub(crate) fn build(
    spec: IndexSpec,
    codec: &RowCodec,
    rows: &History<Row>,
) -> DfResult<OutputIndex> {
    let mut index = OutputIndex::new(spec, codec.schema(), rows.since())?;
    let entries: Vec<(u64, &Row, isize)> = rows.entries().collect();
    for chunk in entries.chunks(4096) {
        let batch = codec.decode(chunk.iter().map(|(_, row, _)| *row))?;
        index.update(&batch, chunk)?;
    }
    Ok(index)
}

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

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result as DfResult, ScalarValue};

use crate::history::History;
use crate::row::{Row, RowCodec};

/// One index of a view's output.
pub(crate) struct OutputIndex {
    /// The indexed columns (positions in the view's output).
    pub(crate) columns: Vec<usize>,
    keys: RowCodec,
    entries: History<(Row, Row)>,
}

impl OutputIndex {
    /// An empty index on `columns` of rows of `schema`, readable from `since`.
    pub(crate) fn new(columns: Vec<usize>, schema: &SchemaRef, since: u64) -> DfResult<Self> {
        let keys = RowCodec::new(Arc::new(schema.project(&columns)?))?;
        Ok(OutputIndex {
            columns,
            keys,
            entries: History::new(since),
        })
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
        for ((time, row, diff), key) in updates.iter().zip(keys) {
            self.entries.update(*time, &(key, (*row).clone()), *diff);
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

    /// Forgets how the index looked before `ts`.
    pub(crate) fn compact(&mut self, ts: u64) {
        self.entries.compact(ts);
    }

    /// The memory the index holds (estimated).
    pub(crate) fn bytes(&self) -> usize {
        self.entries.bytes()
    }
}

/// Builds an index on `columns` over the rows recorded in `rows` (with their history).
pub(crate) fn build(
    columns: Vec<usize>,
    codec: &RowCodec,
    rows: &History<Row>,
) -> DfResult<OutputIndex> {
    let mut index = OutputIndex::new(columns, codec.schema(), rows.since())?;
    let entries: Vec<(u64, &Row, isize)> = rows.entries().collect();
    for chunk in entries.chunks(4096) {
        let batch = codec.decode(chunk.iter().map(|(_, row, _)| *row))?;
        index.update(&batch, chunk)?;
    }
    Ok(index)
}

//! The one runtime row type every dataflow carries: a row of Arrow values in Arrow's row format
//! (`arrow::row`), which is ordered, hashable and cheap to compare as bytes, as differential
//! dataflow needs its data to be. Operators that compute (filters, projections, aggregates)
//! decode a timely batch of rows into a `RecordBatch`, evaluate DataFusion's physical
//! expressions over it (so a view computes exactly what the same query computes, PostgreSQL's
//! semantics from Floe's functions included) and encode the results again.
//!
//! Invariant: a [`Row`] is only ever read with a [`RowCodec`] for the schema it was written
//! with; which schema that is follows from the plan node that produced it.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::Result as DfResult;
use serde::{Deserialize, Serialize};

/// One row, in Arrow's row format for some schema.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Row(pub Vec<u8>);

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Row({} bytes)", self.0.len())
    }
}

/// Converts between rows and record batches of one schema.
pub struct RowCodec {
    schema: SchemaRef,
    converter: RowConverter,
}

impl RowCodec {
    pub fn new(schema: SchemaRef) -> DfResult<RowCodec> {
        let fields = schema
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(RowCodec {
            converter: RowConverter::new(fields)?,
            schema,
        })
    }

    /// A codec whose rows order as `ORDER BY` with `options` (one per field) orders them.
    pub fn ordered(schema: SchemaRef, options: &[SortOptions]) -> DfResult<RowCodec> {
        let fields = schema
            .fields()
            .iter()
            .zip(options)
            .map(|(f, o)| SortField::new_with_options(f.data_type().clone(), *o))
            .collect();
        Ok(RowCodec {
            converter: RowConverter::new(fields)?,
            schema,
        })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The `count` rows of `columns` (one array per field of the schema; a schema without
    /// fields has rows too, all empty).
    pub fn encode(&self, columns: &[ArrayRef], count: usize) -> DfResult<Vec<Row>> {
        if self.schema.fields().is_empty() {
            return Ok(vec![Row(Vec::new()); count]);
        }
        let rows = self.converter.convert_columns(columns)?;
        Ok(rows.iter().map(|r| Row(r.as_ref().to_vec())).collect())
    }

    /// A batch of `rows`, in order.
    pub fn decode<'a>(&self, rows: impl IntoIterator<Item = &'a Row>) -> DfResult<RecordBatch> {
        if self.schema.fields().is_empty() {
            let options = RecordBatchOptions::new().with_row_count(Some(rows.into_iter().count()));
            return Ok(RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                Vec::new(),
                &options,
            )?);
        }
        let parser = self.converter.parser();
        let parsed: Vec<_> = rows.into_iter().map(|r| parser.parse(&r.0)).collect();
        let count = parsed.len();
        let columns = self.converter.convert_rows(parsed)?;
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn rows_round_trip_and_order_like_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let codec = RowCodec::new(schema).unwrap();
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(-5), None, Some(7)]));
        let b: ArrayRef = Arc::new(StringArray::from(vec![Some("über"), Some(""), None]));
        let rows = codec.encode(&[a.clone(), b.clone()], 3).unwrap();
        assert!(rows[0] < rows[2], "-5 sorts before 7");
        let batch = codec.decode(&rows).unwrap();
        assert_eq!(batch.column(0), &a);
        assert_eq!(batch.column(1), &b);
        let empty = codec.decode([]).unwrap();
        assert_eq!(empty.num_rows(), 0);
        // Rows without columns (a projection of none, `SELECT count(*) FROM (SELECT …)`).
        let none = RowCodec::new(Arc::new(Schema::empty())).unwrap();
        let rows = none.encode(&[], 2).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(none.decode(&rows).unwrap().num_rows(), 2);
    }
}

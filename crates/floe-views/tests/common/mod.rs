//! Helpers shared by the view tests.

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::array_value_to_string;

/// The rows of `batches` as sorted `a|b|NULL` lines (a view's rows have no order).
pub fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let values: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| match c.is_null(row) {
                    true => "NULL".into(),
                    false => array_value_to_string(c, row).unwrap(),
                })
                .collect();
            out.push(values.join("|"));
        }
    }
    out.sort();
    out
}

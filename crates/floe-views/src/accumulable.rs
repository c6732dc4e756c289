//! GROUP BY whose aggregates are all accumulable — count, sum and avg without DISTINCT or
//! ORDER BY, whose partial states are additive integers (counts, integer and `Decimal128`
//! sums) — in O(1) per change, instead of the hierarchical reduction (`render.rs`).
//!
//! Each input row becomes its aggregates' partial states (DataFusion's
//! `GroupsAccumulator::convert_to_state`, the FILTER applied) as a difference ([`Sums`]),
//! differential dataflow adds up a group's differences, and the group's row is what the
//! aggregates' own accumulators make of the summed state (`merge_batch`, then `evaluate`): the
//! result types, scales and errors are the accumulators', as in the query.
//!
//! Invariant: a group's [`Sums`] is the sum of its rows' states, slot 0 the number of rows;
//! for each aggregate, the number of rows whose state is not NULL (a sum over no non-NULL
//! value is NULL, not 0), then each state column's value. Sums are 256-bit (wrapping, so a
//! retraction undoes an insertion exactly); a total outside the state column's type is an
//! error of the group.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, UInt64Array,
};
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type, Int64Type, UInt64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use serde::{Deserialize, Serialize};

use crate::plan::Aggregate;
use crate::row::{Row, RowCodec};

/// Summed partial states of one group (see the module invariant): 256-bit values as
/// (low, high) halves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Sums(Vec<(u128, i128)>);

fn wide(value: &(u128, i128)) -> i256 {
    i256::from_parts(value.0, value.1)
}

impl IsZero for Sums {
    fn is_zero(&self) -> bool {
        self.0.iter().all(|v| *v == (0, 0))
    }
}

impl Semigroup for Sums {
    fn plus_equals(&mut self, rhs: &Self) {
        if self.0.len() < rhs.0.len() {
            self.0.resize(rhs.0.len(), (0, 0));
        }
        for (mine, theirs) in self.0.iter_mut().zip(&rhs.0) {
            *mine = wide(mine).wrapping_add(wide(theirs)).to_parts();
        }
    }
}

impl Monoid for Sums {
    fn zero() -> Self {
        Sums(Vec::new())
    }
}

impl Abelian for Sums {
    fn negate(&mut self) {
        for v in &mut self.0 {
            *v = wide(v).wrapping_neg().to_parts();
        }
    }
}

impl Multiply<isize> for Sums {
    type Output = Sums;
    fn multiply(mut self, rhs: &isize) -> Sums {
        let by = i256::from_i128(*rhs as i128);
        for v in &mut self.0 {
            *v = wide(v).wrapping_mul(by).to_parts();
        }
        self
    }
}

/// The accumulable aggregates of a GROUP BY and their state columns' types.
pub(crate) struct Accumulable {
    aggregates: Vec<Aggregate>,
    states: Vec<Vec<DataType>>,
}

impl Accumulable {
    /// The plan for `aggregates`, if every one is accumulable (see the module doc).
    pub(crate) fn new(aggregates: &[Aggregate]) -> DfResult<Option<Accumulable>> {
        let mut states = Vec::with_capacity(aggregates.len());
        for aggregate in aggregates {
            let function = &aggregate.function;
            if function.is_distinct()
                || !function.order_bys().is_empty()
                || !matches!(function.fun().name(), "count" | "sum" | "avg")
                || !function.groups_accumulator_supported()
            {
                return Ok(None);
            }
            let types: Vec<DataType> = function
                .state_fields()?
                .iter()
                .map(|f| f.data_type().clone())
                .collect();
            let additive = |t: &DataType| {
                matches!(
                    t,
                    DataType::Int64 | DataType::UInt64 | DataType::Decimal128(..)
                )
            };
            if types.is_empty() || !types.iter().all(additive) {
                return Ok(None);
            }
            states.push(types);
        }
        Ok(Some(Accumulable {
            aggregates: aggregates.to_vec(),
            states,
        }))
    }

    /// Each row's differences: its aggregates' partial states (see the module invariant).
    pub(crate) fn row_sums(&self, batch: &RecordBatch) -> DfResult<Vec<Sums>> {
        let rows = batch.num_rows();
        let mut sums: Vec<Sums> = (0..rows).map(|_| Sums(vec![(1, 0)])).collect();
        for aggregate in &self.aggregates {
            let arguments = aggregate
                .function
                .expressions()
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(rows))
                .collect::<DfResult<Vec<_>>>()?;
            let filter = match &aggregate.filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            let states = aggregate
                .function
                .create_groups_accumulator()?
                .convert_to_state(&arguments, filter.as_ref().map(|f| f.as_boolean()))?;
            let first = states
                .first()
                .ok_or_else(|| DataFusionError::Internal("an aggregate without state".into()))?;
            for (row, out) in sums.iter_mut().enumerate() {
                out.0.push((first.is_valid(row) as u128, 0));
            }
            for state in &states {
                for (row, out) in sums.iter_mut().enumerate() {
                    out.0.push(i256::from_i128(value(state, row)?).to_parts());
                }
            }
        }
        Ok(sums)
    }

    /// A group's output row: the group values, then each aggregate's accumulator over the
    /// group's summed states.
    pub(crate) fn output(
        &self,
        group: &Row,
        sums: &Sums,
        group_codec: &RowCodec,
        out: &RowCodec,
    ) -> DfResult<Row> {
        let mut columns: Vec<ArrayRef> = group_codec.decode([group])?.columns().to_vec();
        let mut at = 1;
        let slot = |at: usize| sums.0.get(at).map(wide).unwrap_or(i256::ZERO);
        for (aggregate, types) in self.aggregates.iter().zip(&self.states) {
            let present = slot(at) != i256::ZERO;
            at += 1;
            let mut states: Vec<ArrayRef> = Vec::with_capacity(types.len());
            for data_type in types {
                let total = slot(at);
                at += 1;
                states.push(if present {
                    state_array(data_type, total)?
                } else {
                    new_null_array(data_type, 1)
                });
            }
            let mut accumulator = aggregate.function.create_accumulator()?;
            accumulator.merge_batch(&states)?;
            let value = accumulator.evaluate()?;
            let field = &out.schema().fields()[columns.len()];
            columns.push(value.cast_to(field.data_type())?.to_array()?);
        }
        Ok(out.encode(&columns, 1)?.remove(0))
    }
}

/// Row `row` of a state column as an integer (NULL: 0).
fn value(state: &ArrayRef, row: usize) -> DfResult<i128> {
    if state.is_null(row) {
        return Ok(0);
    }
    Ok(match state.data_type() {
        DataType::Int64 => state.as_primitive::<Int64Type>().value(row) as i128,
        DataType::UInt64 => state.as_primitive::<UInt64Type>().value(row) as i128,
        DataType::Decimal128(..) => state.as_primitive::<Decimal128Type>().value(row),
        other => {
            return Err(DataFusionError::Internal(format!(
                "an accumulable state of type {other}"
            )))
        }
    })
}

/// A one-row state column of `data_type` holding `total`.
fn state_array(data_type: &DataType, total: i256) -> DfResult<ArrayRef> {
    let overflow = || DataFusionError::Execution(format!("value out of range: {data_type}"));
    let total = total.to_i128().ok_or_else(overflow)?;
    Ok(match data_type {
        DataType::Int64 => Arc::new(Int64Array::from(vec![
            i64::try_from(total).map_err(|_| overflow())?
        ])),
        DataType::UInt64 => Arc::new(UInt64Array::from(vec![
            u64::try_from(total).map_err(|_| overflow())?
        ])),
        DataType::Decimal128(precision, scale) => Arc::new(
            Decimal128Array::from(vec![total]).with_precision_and_scale(*precision, *scale)?,
        ),
        other => {
            return Err(DataFusionError::Internal(format!(
                "an accumulable state of type {other}"
            )))
        }
    })
}

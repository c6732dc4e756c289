//! Renders an incremental [`Plan`] onto differential dataflow.
//!
//! Every collection holds [`Row`]s with `isize` multiplicities at commit timestamps (`u64`, the
//! one clock). Filters and projections are timely operators over whole batches: a batch of
//! rows is decoded into a `RecordBatch`, DataFusion evaluates the physical expressions, the
//! results are encoded again, each keeping its input's time and diff. GROUP BY is a
//! differential `reduce` keyed by the group's values whose logic runs DataFusion
//! accumulators over the group's rows.
//!
//! Errors are data: a row whose expression fails (division by zero, a failed cast) produces an
//! error message in a second collection with that row's time and diff, so deleting the row
//! retracts the error again. A view is in error while its error collection is not empty, as
//! the defining query would fail at that snapshot.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::ToStream;

use crate::plan::Plan;
use crate::row::{Row, RowCodec};

/// A collection of rows at commit timestamps.
pub type Rows<'scope> = VecCollection<'scope, u64, Row, isize>;
/// Error messages at commit timestamps (see the module doc).
pub type Errors<'scope> = VecCollection<'scope, u64, String, isize>;
/// Rows paired with a key computed from them.
type Keyed<'scope> = VecCollection<'scope, u64, (Row, Row), isize>;

/// Renders `plan`; `source` gives the collection of a base table by its position in
/// [`Plan::sources`].
pub fn render<'scope>(
    plan: &Plan,
    source: &dyn Fn(&datafusion::common::TableReference) -> (Rows<'scope>, Errors<'scope>),
) -> DfResult<(Rows<'scope>, Errors<'scope>)> {
    match plan {
        Plan::Source { table, .. } => Ok(source(table)),
        Plan::Filter { input, predicate } => {
            let schema = input.schema();
            let (rows, errors) = render(input, source)?;
            let predicate = Arc::clone(predicate);
            let (kept, failed) = map_batches(rows, "Filter", schema, move |batch| {
                let keep = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
                let keep = keep.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal("a filter that is not boolean".into())
                })?;
                Ok((0..batch.num_rows())
                    .map(|i| keep.is_valid(i) && keep.value(i))
                    .collect::<Vec<_>>())
            })?;
            // The filter's own output is the input row where the predicate held.
            Ok((kept, errors.concat(failed)))
        }
        Plan::Map {
            input,
            exprs,
            schema,
        } => {
            let in_schema = input.schema();
            let (rows, errors) = render(input, source)?;
            let exprs = exprs.clone();
            let out = RowCodec::new(Arc::clone(schema))?;
            let (mapped, failed) = map_rows(rows, "Map", in_schema, move |batch| {
                let columns = evaluate(&exprs, batch)?;
                out.encode(&columns)
            })?;
            Ok((mapped, errors.concat(failed)))
        }
        Plan::Reduce {
            input,
            group,
            aggregates,
            schema,
        } => {
            let in_schema = input.schema();
            let (rows, errors) = render(input, source)?;
            let group_schema = Arc::new(Schema::new(
                schema.fields()[..group.len()]
                    .iter()
                    .map(|f| Field::new(f.name(), f.data_type().clone(), true))
                    .collect::<Vec<_>>(),
            ));
            let global = group.is_empty();
            let scope = rows.inner.scope();
            let group = group.clone();
            let keys = RowCodec::new(Arc::clone(&group_schema))?;
            // (group values, whole input row)
            let (keyed, failed) = map_batches_to(rows, "GroupKey", Arc::clone(&in_schema), {
                move |batch| {
                    if global {
                        return Ok(vec![Row(Vec::new()); batch.num_rows()]);
                    }
                    let columns = evaluate(&group, batch)?;
                    keys.encode(&columns)
                }
            })?;
            let inputs = RowCodec::new(in_schema)?;
            let group_codec = RowCodec::new(group_schema)?;
            let out = RowCodec::new(Arc::clone(schema))?;
            // Without GROUP BY: the aggregates of an empty input, the one row over no rows.
            let default = global.then(|| {
                aggregate(
                    &Row(Vec::new()),
                    &[],
                    &inputs,
                    &group_codec,
                    aggregates,
                    &out,
                )
                .map_or_else(|e| Outcome::Error(e.to_string()), Outcome::Row)
            });
            let aggregates = aggregates.clone();
            let reduced = keyed.reduce_named(
                "Aggregate",
                move |key: &Row, vals: &[(&Row, isize)], output: &mut Vec<(Outcome, isize)>| {
                    let outcome = aggregate(key, vals, &inputs, &group_codec, &aggregates, &out)
                        .map_or_else(|e| Outcome::Error(e.to_string()), Outcome::Row);
                    output.push((outcome, 1));
                },
            );
            let outcomes = reduced.map(|(_key, outcome)| outcome);
            let outcomes = match default {
                None => outcomes,
                Some(default) => {
                    // The default row is present exactly while the reduce has no row (the
                    // one group's row replaces it).
                    let always = vec![(default.clone(), 0u64, 1isize)]
                        .to_stream(scope)
                        .as_collection();
                    let replaced = outcomes.clone().map(move |_| default.clone()).negate();
                    outcomes.concat(always).concat(replaced)
                }
            };
            let (rows, failed_groups) = split(outcomes);
            Ok((rows, errors.concat(failed).concat(failed_groups)))
        }
    }
}

/// A reduce's result for one group: its row, or why it could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Outcome {
    Row(Row),
    Error(String),
}

fn split<'scope>(
    outcomes: VecCollection<'scope, u64, Outcome, isize>,
) -> (Rows<'scope>, Errors<'scope>) {
    let rows = outcomes.clone().flat_map(|o| match o {
        Outcome::Row(row) => Some(row),
        Outcome::Error(_) => None,
    });
    let errors = outcomes.flat_map(|o| match o {
        Outcome::Error(message) => Some(message),
        Outcome::Row(_) => None,
    });
    (rows, errors)
}

/// One group's output row: the group values, then each aggregate over the group's rows
/// (`vals`: distinct input rows with their multiplicities).
fn aggregate(
    key: &Row,
    vals: &[(&Row, isize)],
    inputs: &RowCodec,
    group_codec: &RowCodec,
    aggregates: &[Arc<AggregateFunctionExpr>],
    out: &RowCodec,
) -> DfResult<Row> {
    let mut repeated = Vec::new();
    for (row, count) in vals {
        if *count < 0 {
            return Err(DataFusionError::Internal(
                "a group holds a row a negative number of times".into(),
            ));
        }
        repeated.extend(std::iter::repeat_n(*row, *count as usize));
    }
    let batch = inputs.decode(repeated)?;
    let mut columns: Vec<ArrayRef> = match group_codec.schema().fields().is_empty() {
        true => Vec::new(),
        false => group_codec.decode([key])?.columns().to_vec(),
    };
    for function in aggregates {
        let arguments = evaluate(&function.expressions(), &batch)?;
        let mut accumulator = function.create_accumulator()?;
        accumulator.update_batch(&arguments)?;
        let value: ScalarValue = accumulator.evaluate()?;
        let field = &out.schema().fields()[columns.len()];
        columns.push(value.cast_to(field.data_type())?.to_array()?);
    }
    Ok(out.encode(&columns)?.remove(0))
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> DfResult<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

/// Keeps the rows for which `logic` (over a batch of them) says true.
fn map_batches<'scope>(
    rows: Rows<'scope>,
    name: &str,
    schema: SchemaRef,
    logic: impl FnMut(&RecordBatch) -> DfResult<Vec<bool>> + 'static,
) -> DfResult<(Rows<'scope>, Errors<'scope>)> {
    let mut logic = logic;
    let (kept, errors) = per_batch(rows, name, schema, move |batch, rows: &[Row]| {
        let keep = logic(batch)?;
        Ok(rows
            .iter()
            .zip(keep)
            .map(|(r, k)| k.then(|| r.clone()))
            .collect())
    })?;
    Ok((kept, errors))
}

/// Replaces every row with what `logic` (over a batch of them) computes for it.
fn map_rows<'scope>(
    rows: Rows<'scope>,
    name: &str,
    schema: SchemaRef,
    logic: impl FnMut(&RecordBatch) -> DfResult<Vec<Row>> + 'static,
) -> DfResult<(Rows<'scope>, Errors<'scope>)> {
    let mut logic = logic;
    per_batch(rows, name, schema, move |batch, _rows: &[Row]| {
        Ok(logic(batch)?.into_iter().map(Some).collect())
    })
}

/// Pairs every row with the key `logic` (over a batch of them) computes for it.
fn map_batches_to<'scope>(
    rows: Rows<'scope>,
    name: &str,
    schema: SchemaRef,
    logic: impl FnMut(&RecordBatch) -> DfResult<Vec<Row>> + 'static,
) -> DfResult<(Keyed<'scope>, Errors<'scope>)> {
    let mut logic = logic;
    per_batch(rows, name, schema, move |batch, rows: &[Row]| {
        Ok(logic(batch)?
            .into_iter()
            .zip(rows)
            .map(|(key, row)| Some((key, row.clone())))
            .collect())
    })
}

/// The batch operator behind the maps: decodes each timely batch of rows, runs `logic`, and
/// emits its results with each input row's time and diff. Where `logic` fails on a batch, it
/// runs again row by row, so only the failing rows become errors.
fn per_batch<'scope, D: Clone + Ord + std::fmt::Debug + 'static>(
    rows: Rows<'scope>,
    name: &str,
    schema: SchemaRef,
    logic: impl FnMut(&RecordBatch, &[Row]) -> DfResult<Vec<Option<D>>> + 'static,
) -> DfResult<(VecCollection<'scope, u64, D, isize>, Errors<'scope>)> {
    let codec = RowCodec::new(schema)?;
    let mut logic = logic;
    type Out<D> = Vec<(Result<D, String>, u64, isize)>;
    let results = rows
        .inner
        .unary::<CapacityContainerBuilder<Out<D>>, _, _, _>(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let rows: Vec<Row> = data.iter().map(|(r, _, _)| r.clone()).collect();
                    let outcomes = match codec.decode(&rows).and_then(|b| logic(&b, &rows)) {
                        Ok(results) => results.into_iter().map(Ok).collect(),
                        Err(_) => rows
                            .iter()
                            .map(|row| {
                                let one = std::slice::from_ref(row);
                                codec
                                    .decode(one)
                                    .and_then(|b| logic(&b, one))
                                    .map(|mut r| r.pop().flatten())
                                    .map_err(|e| e.to_string())
                            })
                            .collect::<Vec<_>>(),
                    };
                    let mut session = output.session(&time);
                    for ((_, t, d), outcome) in data.drain(..).zip(outcomes) {
                        match outcome {
                            Ok(Some(value)) => session.give((Ok(value), t, d)),
                            Ok(None) => {}
                            Err(message) => session.give((Err(message), t, d)),
                        }
                    }
                });
            }
        })
        .as_collection();
    let values = results.clone().flat_map(|r: Result<D, String>| r.ok());
    let errors = results.flat_map(|r: Result<D, String>| r.err());
    Ok((values, errors))
}

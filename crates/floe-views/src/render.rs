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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::physical_expr::PhysicalExpr;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::operators::iterate::Variable;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::operators::ToStream;
use timely::dataflow::Scope;
use timely::order::Product;
use timely::progress::Timestamp;

use crate::accumulable::{Accumulable, Sums};
use crate::plan::{Aggregate, JoinKind, Plan};
use crate::row::{Row, RowCodec};

/// A collection of rows at commit timestamps.
pub type Rows<'scope, T = u64> = VecCollection<'scope, T, Row, isize>;
/// Error messages at commit timestamps (see the module doc).
pub type Errors<'scope, T = u64> = VecCollection<'scope, T, String, isize>;
/// Rows paired with a key computed from them.
type Keyed<'scope, T> = VecCollection<'scope, T, (Row, Row), isize>;
/// Each group's output row (or error), keyed by the group, and the errors of its input rows.
type Reduced<'scope, T> = (
    VecCollection<'scope, T, (Row, Outcome), isize>,
    Errors<'scope, T>,
);
/// The collection of a base table, by name.
pub type Source<'a, 'scope, T = u64> =
    dyn Fn(&datafusion::common::TableReference) -> (Rows<'scope, T>, Errors<'scope, T>) + 'a;

/// The timestamps a plan is rendered at: commit timestamps (`u64`), and inside a recursive
/// query's loop (commit ts, iteration).
pub trait Time: Timestamp + Lattice {
    /// Renders a [`Plan::Recursive`] at this timestamp.
    fn recursive<'scope>(
        plan: &Plan,
        scope: Scope<'scope, Self>,
        source: &Source<'_, 'scope, Self>,
    ) -> DfResult<(Rows<'scope, Self>, Errors<'scope, Self>)>;
}

impl Time for u64 {
    fn recursive<'scope>(
        plan: &Plan,
        scope: Scope<'scope, u64>,
        source: &Source<'_, 'scope, u64>,
    ) -> DfResult<(Rows<'scope>, Errors<'scope>)> {
        recursive(plan, scope, source)
    }
}

impl Time for Product<u64, u64> {
    /// A recursive query inside another's recursive term (`compile` refuses it).
    fn recursive<'scope>(
        _plan: &Plan,
        _scope: Scope<'scope, Self>,
        _source: &Source<'_, 'scope, Self>,
    ) -> DfResult<(Rows<'scope, Self>, Errors<'scope, Self>)> {
        Err(DataFusionError::NotImplemented(
            "WITH RECURSIVE inside a recursive term".into(),
        ))
    }
}

/// Renders `plan`; `source` gives the collection of a base table by its position in
/// [`Plan::sources`].
pub fn render<'scope>(
    plan: &Plan,
    scope: Scope<'scope, u64>,
    source: &Source<'_, 'scope>,
) -> DfResult<(Rows<'scope>, Errors<'scope>)> {
    render_node(plan, scope, source, None)
}

/// [`render`] at any [`Time`]; `work` is the recursive relation when rendering a recursive
/// query's recursive term.
fn render_node<'scope, T: Time>(
    plan: &Plan,
    scope: Scope<'scope, T>,
    source: &Source<'_, 'scope, T>,
    work: Option<&Rows<'scope, T>>,
) -> DfResult<(Rows<'scope, T>, Errors<'scope, T>)> {
    let render = |plan: &Plan| render_node(plan, scope, source, work);
    match plan {
        Plan::Source { table, .. } => Ok(source(table)),
        Plan::WorkTable { .. } => {
            let rows = work.cloned().ok_or_else(|| {
                DataFusionError::Internal("a recursive reference outside its query".into())
            })?;
            Ok((rows, empty(scope)))
        }
        Plan::Recursive { .. } => T::recursive(plan, scope, source),
        Plan::Constant { rows, schema } => {
            let codec = RowCodec::new(Arc::clone(schema))?;
            let no_columns = RecordBatch::try_new_with_options(
                Arc::new(Schema::empty()),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(1)),
            )?;
            let mut outcomes = Vec::with_capacity(rows.len());
            for exprs in rows {
                let row = exprs
                    .iter()
                    .zip(schema.fields())
                    .map(|(e, field)| {
                        let value = e.evaluate(&no_columns)?.into_array(1)?;
                        if value.data_type() == field.data_type() {
                            Ok(value)
                        } else {
                            Ok(datafusion::arrow::compute::cast(&value, field.data_type())?)
                        }
                    })
                    .collect::<DfResult<Vec<ArrayRef>>>()
                    .and_then(|columns| codec.encode(&columns, 1));
                outcomes.push(match row {
                    Ok(mut encoded) => (Outcome::Row(encoded.remove(0)), T::minimum(), 1isize),
                    Err(e) => (Outcome::Error(crate::error_text(&e)), T::minimum(), 1isize),
                });
            }
            Ok(split(outcomes.to_stream(scope).as_collection()))
        }
        Plan::Filter { input, predicate } => {
            let schema = input.schema();
            let (rows, errors) = render(input)?;
            let predicate = Arc::clone(predicate);
            let (kept, failed) = map_decoded(rows, "Filter", schema, move |batch, rows| {
                let keep = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
                let keep = keep.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal("a filter that is not boolean".into())
                })?;
                Ok(rows
                    .iter()
                    .enumerate()
                    .map(|(i, row)| (keep.is_valid(i) && keep.value(i)).then(|| row.clone()))
                    .collect())
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
            let (rows, errors) = render(input)?;
            let exprs = exprs.clone();
            let out = RowCodec::new(Arc::clone(schema))?;
            let (mapped, failed) = map_decoded(rows, "Map", in_schema, move |batch, _| {
                let columns = evaluate(&exprs, batch)?;
                Ok(out
                    .encode(&columns, batch.num_rows())?
                    .into_iter()
                    .map(Some)
                    .collect())
            })?;
            Ok((mapped, errors.concat(failed)))
        }
        Plan::TopK {
            input,
            keys,
            offset,
            limit,
        } => {
            let schema = input.schema();
            let (rows, errors) = render(input)?;
            let (rows, failed) = top_k(rows, schema, keys, *offset, *limit)?;
            Ok((rows, errors.concat(failed)))
        }
        Plan::Window {
            input,
            partition,
            functions,
            schema,
        } => {
            let in_schema = input.schema();
            let (rows, errors) = render(input)?;
            let (rows, failed) = window(rows, in_schema, partition, functions, schema)?;
            Ok((rows, errors.concat(failed)))
        }
        Plan::Distinct { input } => {
            let (rows, errors) = render(input)?;
            Ok((rows.distinct(), errors))
        }
        Plan::Union { inputs, .. } => {
            let mut out: Option<(Rows<'scope, T>, Errors<'scope, T>)> = None;
            for input in inputs {
                let (rows, errors) = render(input)?;
                out = Some(match out {
                    None => (rows, errors),
                    Some((r, e)) => (r.concat(rows), e.concat(errors)),
                });
            }
            out.ok_or_else(|| DataFusionError::Internal("a union without inputs".into()))
        }
        Plan::Join { left, right, .. } => {
            let (left_rows, left_errors) = render(left)?;
            let (right_rows, right_errors) = render(right)?;
            let (rows, errors) = join(left_rows, right_rows, plan)?;
            Ok((rows, left_errors.concat(right_errors).concat(errors)))
        }
        Plan::Reduce {
            input,
            group,
            aggregates,
            schema,
        } => {
            let in_schema = input.schema();
            let (rows, errors) = render(input)?;
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
            let inputs = RowCodec::new(Arc::clone(&in_schema))?;
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
                .map_or_else(|e| Outcome::Error(crate::error_text(&e)), Outcome::Row)
            });
            let (reduced, failed) = match Accumulable::new(aggregates)? {
                Some(accumulable) => {
                    accumulate(rows, in_schema, group, keys, accumulable, group_codec, out)?
                }
                None => {
                    // (group values, whole input row)
                    let (keyed, failed) =
                        keyed_by(rows, "GroupKey", in_schema, group, keys, false)?;
                    let reduced = hierarchical_aggregate(
                        keyed,
                        aggregates,
                        inputs,
                        group_codec,
                        out,
                        if global { 16 } else { 8 },
                    )?;
                    (reduced, failed)
                }
            };
            let outcomes = reduced.map(|(_key, outcome)| outcome);
            let outcomes = match default {
                None => outcomes,
                Some(default) => {
                    // The default row is present exactly while the reduce has no row (the
                    // one group's row replaces it).
                    let always = vec![(default.clone(), T::minimum(), 1isize)]
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

/// Rounds a recursive query may take; a query still producing rows after that many (a
/// UNION ALL over a cycle, which PostgreSQL runs until it is cancelled) puts the view in
/// error instead of running forever. Read when a view's dataflow is built.
static MAX_ITERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100_000);

/// Sets the rounds a recursive query may take in views started from now on (default 100,000).
pub fn set_max_iterations(rounds: u64) {
    MAX_ITERATIONS.store(rounds.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// `WITH RECURSIVE name AS (base UNION [ALL] step)`: the least fixpoint of
/// `R = base + step(R)` (`distinct` for UNION), by differential's iteration. PostgreSQL
/// evaluates the step over the rows the previous round added only; for a step linear in the
/// recursive relation (joins, filters, projections, UNION ALL: what `compile` admits) both
/// give the same rows, counting duplicates under UNION ALL.
fn recursive<'scope>(
    plan: &Plan,
    scope: Scope<'scope, u64>,
    source: &Source<'_, 'scope>,
) -> DfResult<(Rows<'scope>, Errors<'scope>)> {
    let Plan::Recursive {
        base,
        step,
        distinct,
        ..
    } = plan
    else {
        return Err(DataFusionError::Internal("not a recursive query".into()));
    };
    let (base_rows, base_errors) = render_node(base, scope, source, None)?;
    let distinct = *distinct;
    let rounds = MAX_ITERATIONS.load(std::sync::atomic::Ordering::Relaxed);
    let (rows, errors) = scope.iterative::<u64, _, _>(|inner| {
        let entered = |table: &datafusion::common::TableReference| {
            let (rows, errors) = source(table);
            (rows.enter(inner), errors.enter(inner))
        };
        let start = base_rows.clone().enter(inner);
        let (variable, current) = Variable::new_from(start.clone(), Product::new(0, 1));
        let (stepped, step_errors) = render_node(step, inner, &entered, Some(&current))?;
        // Rows past the last round stop circulating and become an error.
        let (stepped, runaway) = (
            stepped
                .inner
                .clone()
                .filter(move |(_, t, _)| t.inner < rounds)
                .as_collection(),
            stepped
                .inner
                .filter(move |(_, t, _)| t.inner >= rounds)
                .as_collection()
                .map(move |_| format!("recursive query did not finish after {rounds} iterations")),
        );
        let next = start.concat(stepped);
        let next = if distinct {
            next.distinct()
        } else {
            next.consolidate()
        };
        variable.set(next.clone());
        Ok::<_, DataFusionError>((next.leave(scope), step_errors.concat(runaway).leave(scope)))
    })?;
    Ok((rows, base_errors.concat(errors)))
}

/// No errors.
fn empty<'scope, T: Time>(scope: Scope<'scope, T>) -> Errors<'scope, T> {
    Vec::<(String, T, isize)>::new()
        .to_stream(scope)
        .as_collection()
}

/// A reduce's result for one group: its row, or why it could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Outcome {
    Row(Row),
    Error(String),
}

fn split<'scope, T: Time>(
    outcomes: VecCollection<'scope, T, Outcome, isize>,
) -> (Rows<'scope, T>, Errors<'scope, T>) {
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
    aggregates: &[Aggregate],
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
    let mut columns: Vec<ArrayRef> = group_codec.decode([key])?.columns().to_vec();
    for aggregate in aggregates {
        let arguments = aggregate.arguments(&batch)?;
        let mut accumulator = aggregate.function.create_accumulator()?;
        accumulator.update_batch(&arguments)?;
        let value: ScalarValue = accumulator.evaluate()?;
        let field = &out.schema().fields()[columns.len()];
        columns.push(value.cast_to(field.data_type())?.to_array()?);
    }
    Ok(out.encode(&columns, 1)?.remove(0))
}

/// GROUP BY with accumulable aggregates (`accumulable.rs`): each row's partial states are its
/// difference, differential sums a group's, the accumulators evaluate the sum.
fn accumulate<'scope, T: Time>(
    rows: Rows<'scope, T>,
    in_schema: SchemaRef,
    group: Vec<Arc<dyn PhysicalExpr>>,
    keys: RowCodec,
    accumulable: Accumulable,
    group_codec: RowCodec,
    out: RowCodec,
) -> DfResult<Reduced<'scope, T>> {
    let accumulable = Arc::new(accumulable);
    let states = Arc::clone(&accumulable);
    let (summed, failed) = map_decoded(rows, "AggregateStates", in_schema, move |batch, _| {
        let columns = evaluate(&group, batch)?;
        let encoded = keys.encode(&columns, batch.num_rows())?;
        let sums = states.row_sums(batch)?;
        Ok(encoded.into_iter().zip(sums).map(Some).collect())
    })?;
    let reduced = summed
        .explode(|(group, sums)| Some(((group, ()), sums)))
        .reduce_named(
            "Aggregate",
            move |group: &Row, vals: &[(&(), Sums)], output: &mut Vec<(Outcome, isize)>| {
                let outcome = match vals {
                    [(_, sums)] => accumulable
                        .output(group, sums, &group_codec, &out)
                        .map_or_else(|e| Outcome::Error(crate::error_text(&e)), Outcome::Row),
                    _ => Outcome::Error("internal error: a group's sums are not one".into()),
                };
                output.push((outcome, 1));
            },
        );
    Ok((reduced, failed))
}

/// GROUP BY in levels (Materialize's hierarchical reduction, generalised through DataFusion's
/// two-phase aggregation): each group's rows are bucketed by a hash of the row; a bucket's
/// rows become the aggregates' partial states (`Accumulator::state`), buckets are merged into
/// fewer buckets 8 bits at a time (`merge_batch`), and the last level merges a group's
/// buckets and evaluates. A change recomputes one bucket per level — a bounded number of rows
/// or states — instead of the whole group, and min/max stay correct when the extreme is
/// deleted (each level is a reduce over what is there now). `bits`: the first level's bucket
/// bits (16: a group may be the whole input; 8: most groups are small).
fn hierarchical_aggregate<'scope, T: Time>(
    keyed: Keyed<'scope, T>,
    aggregates: &[Aggregate],
    inputs: RowCodec,
    group_codec: RowCodec,
    out: RowCodec,
    bits: u32,
) -> DfResult<VecCollection<'scope, T, (Row, Outcome), isize>> {
    let mut state_fields = Vec::new();
    let mut widths = Vec::with_capacity(aggregates.len());
    for aggregate in aggregates {
        let fields = aggregate.function.state_fields()?;
        widths.push(fields.len());
        for field in fields {
            let name = format!("s{}", state_fields.len());
            state_fields.push(Field::new(name, field.data_type().clone(), true));
        }
    }
    let states = Arc::new(RowCodec::new(Arc::new(Schema::new(state_fields)))?);
    let aggregates: Arc<[Aggregate]> = aggregates.into();
    let widths: Arc<[usize]> = widths.into();
    let partial = {
        let (aggregates, states) = (Arc::clone(&aggregates), Arc::clone(&states));
        keyed
            .map(move |(group, row)| ((group, bucket(&row) >> (64 - bits)), row))
            .reduce_named(
                "AggregatePartial",
                move |_key, vals: &[(&Row, isize)], output: &mut Vec<(Outcome, isize)>| {
                    let outcome = partial_states(vals, &inputs, &aggregates, &states)
                        .map_or_else(|e| Outcome::Error(crate::error_text(&e)), Outcome::Row);
                    output.push((outcome, 1));
                },
            )
    };
    let mut level = partial;
    let mut remaining = bits;
    while remaining > 8 {
        remaining -= 8;
        let (aggregates, widths, states) = (
            Arc::clone(&aggregates),
            Arc::clone(&widths),
            Arc::clone(&states),
        );
        level = level
            .map(|((group, b), outcome)| ((group, b >> 8), outcome))
            .reduce_named(
                "AggregateMerge",
                move |_key, vals: &[(&Outcome, isize)], output: &mut Vec<(Outcome, isize)>| {
                    let outcome = merge_states(vals, &aggregates, &widths, &states, None);
                    output.push((outcome, 1));
                },
            );
    }
    Ok(level
        .map(|((group, _b), outcome)| (group, outcome))
        .reduce_named(
            "Aggregate",
            move |group: &Row, vals: &[(&Outcome, isize)], output: &mut Vec<(Outcome, isize)>| {
                let outcome = merge_states(
                    vals,
                    &aggregates,
                    &widths,
                    &states,
                    Some((group, &group_codec, &out)),
                );
                output.push((outcome, 1));
            },
        ))
}

/// The aggregates' partial states over a bucket's rows, as one row of `states`.
fn partial_states(
    vals: &[(&Row, isize)],
    inputs: &RowCodec,
    aggregates: &[Aggregate],
    states: &RowCodec,
) -> DfResult<Row> {
    let batch = inputs.decode(repeated(vals)?)?;
    let mut columns: Vec<ArrayRef> = Vec::new();
    for aggregate in aggregates {
        let arguments = aggregate.arguments(&batch)?;
        let mut accumulator = aggregate.function.create_accumulator()?;
        accumulator.update_batch(&arguments)?;
        for value in accumulator.state()? {
            columns.push(value.to_array()?);
        }
    }
    encode_cast(states, columns)
}

/// Merges partial states: into one state row, or (`last`: the group, its codec and the
/// output's) into the group's output row. Any input error is the result.
fn merge_states(
    vals: &[(&Outcome, isize)],
    aggregates: &[Aggregate],
    widths: &[usize],
    states: &RowCodec,
    last: Option<(&Row, &RowCodec, &RowCodec)>,
) -> Outcome {
    let mut rows = Vec::with_capacity(vals.len());
    for (outcome, count) in vals {
        match outcome {
            Outcome::Error(e) => return Outcome::Error(e.clone()),
            Outcome::Row(row) => rows.push((row, *count)),
        }
    }
    let merged = (|| -> DfResult<Row> {
        let batch = states.decode(repeated(&rows)?)?;
        let mut columns: Vec<ArrayRef> = match last {
            Some((group, group_codec, _)) => group_codec.decode([group])?.columns().to_vec(),
            None => Vec::new(),
        };
        let mut at = 0;
        for (aggregate, width) in aggregates.iter().zip(widths) {
            let mut accumulator = aggregate.function.create_accumulator()?;
            accumulator.merge_batch(&batch.columns()[at..at + width])?;
            at += width;
            match last {
                Some(_) => columns.push(accumulator.evaluate()?.to_array()?),
                None => {
                    for value in accumulator.state()? {
                        columns.push(value.to_array()?);
                    }
                }
            }
        }
        match last {
            Some((_, _, out)) => encode_cast(out, columns),
            None => encode_cast(states, columns),
        }
    })();
    merged.map_or_else(|e| Outcome::Error(crate::error_text(&e)), Outcome::Row)
}

/// Each value repeated by its (positive) count.
fn repeated<'a>(vals: &[(&'a Row, isize)]) -> DfResult<Vec<&'a Row>> {
    let mut out = Vec::with_capacity(vals.len());
    for (row, count) in vals {
        if *count < 0 {
            return Err(DataFusionError::Internal(
                "a group holds a row a negative number of times".into(),
            ));
        }
        out.extend(std::iter::repeat_n(*row, *count as usize));
    }
    Ok(out)
}

/// One row of `codec`'s schema from one-value columns, cast to its types.
fn encode_cast(codec: &RowCodec, columns: Vec<ArrayRef>) -> DfResult<Row> {
    let fields = codec.schema().fields();
    if columns.len() != fields.len() {
        return Err(DataFusionError::Internal(format!(
            "{} aggregate values for {} columns",
            columns.len(),
            fields.len()
        )));
    }
    let columns = columns
        .into_iter()
        .zip(fields)
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                Ok(datafusion::arrow::compute::cast(&c, f.data_type())?)
            }
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(codec.encode(&columns, 1)?.remove(0))
}

fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> DfResult<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
        .collect()
}

/// Runs `logic` over each batch of rows decoded with `schema`; it returns, per row, the
/// output (or `None` to drop the row) given the batch and the rows as they came.
fn map_decoded<'scope, T: Time, D>(
    rows: Rows<'scope, T>,
    name: &str,
    schema: SchemaRef,
    logic: impl FnMut(&RecordBatch, &[Row]) -> DfResult<Vec<Option<D>>> + 'static,
) -> DfResult<(VecCollection<'scope, T, D, isize>, Errors<'scope, T>)>
where
    D: Clone + Ord + std::fmt::Debug + 'static,
{
    let codec = RowCodec::new(schema)?;
    let mut logic = logic;
    Ok(per_batch(rows, name, move |rows: &[Row]| {
        logic(&codec.decode(rows)?, rows)
    }))
}

/// The batch operator behind the maps: runs `logic` over each timely batch of records and
/// emits its results with each input record's time and diff. Where `logic` fails on a batch,
/// it runs again record by record, so only the failing records become errors.
fn per_batch<'scope, T: Time, I, D>(
    input: VecCollection<'scope, T, I, isize>,
    name: &str,
    logic: impl FnMut(&[I]) -> DfResult<Vec<Option<D>>> + 'static,
) -> (VecCollection<'scope, T, D, isize>, Errors<'scope, T>)
where
    I: Clone + 'static,
    D: Clone + Ord + std::fmt::Debug + 'static,
{
    let mut logic = logic;
    type Out<D, T> = Vec<(Result<D, String>, T, isize)>;
    let results = input
        .inner
        .unary::<CapacityContainerBuilder<Out<D, T>>, _, _, _>(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|time, data| {
                    let records: Vec<I> = data.iter().map(|(r, _, _)| r.clone()).collect();
                    let outcomes = match logic(&records) {
                        Ok(results) => results.into_iter().map(Ok).collect(),
                        Err(_) => records
                            .iter()
                            .map(|record| {
                                logic(std::slice::from_ref(record))
                                    .map(|mut r| r.pop().flatten())
                                    .map_err(|e| crate::error_text(&e))
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
    (values, errors)
}

/// The Arrow schema of the values of `exprs` over rows of `schema`.
fn key_schema(exprs: &[Arc<dyn PhysicalExpr>], schema: &SchemaRef) -> DfResult<SchemaRef> {
    Ok(Arc::new(Schema::new(
        exprs
            .iter()
            .enumerate()
            .map(|(i, k)| Ok(Field::new(format!("k{i}"), k.data_type(schema)?, true)))
            .collect::<DfResult<Vec<_>>>()?,
    )))
}

/// Rows paired with the key `exprs` compute from them, encoded by `codec`; a row with a NULL
/// in its key is dropped when `drop_null` (SQL's `=` matches no NULL).
fn keyed_by<'scope, T: Time>(
    rows: Rows<'scope, T>,
    name: &str,
    schema: SchemaRef,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    codec: RowCodec,
    drop_null: bool,
) -> DfResult<(Keyed<'scope, T>, Errors<'scope, T>)> {
    map_decoded(rows, name, schema, move |batch, rows| {
        let columns = evaluate(&exprs, batch)?;
        let encoded = codec.encode(&columns, batch.num_rows())?;
        Ok(encoded
            .into_iter()
            .zip(rows)
            .enumerate()
            .map(|(i, (key, row))| {
                let null = drop_null && columns.iter().any(|c| c.is_null(i));
                (!null).then(|| (key, row.clone()))
            })
            .collect())
    })
}

/// Rows keyed by the join keys `keys` over them.
fn keyed<'scope, T: Time>(
    rows: Rows<'scope, T>,
    schema: SchemaRef,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    nulls_equal: bool,
) -> DfResult<(Keyed<'scope, T>, Errors<'scope, T>)> {
    let codec = RowCodec::new(key_schema(&keys, &schema)?)?;
    keyed_by(rows, "JoinKey", schema, keys, codec, !nulls_equal)
}

/// The rows and errors of `plan`, a [`Plan::Join`] (see [`JoinKind`]), over its inputs' rows.
fn join<'scope, T: Time>(
    left: Rows<'scope, T>,
    right: Rows<'scope, T>,
    plan: &Plan,
) -> DfResult<(Rows<'scope, T>, Errors<'scope, T>)> {
    let Plan::Join {
        left: left_plan,
        right: right_plan,
        left_keys,
        right_keys,
        nulls_equal,
        filter,
        kind,
        schema,
    } = plan
    else {
        return Err(DataFusionError::Internal("not a join".into()));
    };
    let (left_schema, right_schema) = (left_plan.schema(), right_plan.schema());
    let (nulls_equal, filter, kind) = (*nulls_equal, filter.clone(), *kind);
    let (left_keys, right_keys) = (left_keys.clone(), right_keys.clone());
    let (left_keyed, left_failed) = keyed(
        left.clone(),
        Arc::clone(&left_schema),
        left_keys,
        nulls_equal,
    )?;
    let (right_keyed, right_failed) = keyed(
        right.clone(),
        Arc::clone(&right_schema),
        right_keys,
        nulls_equal,
    )?;
    let pairs = left_keyed.join(right_keyed).map(|(_key, (l, r))| (l, r));
    // The matching pairs that pass the residual condition, with their joined row (left
    // columns, then right ones).
    let joined_schema = Arc::new(Schema::new(
        left_schema
            .fields()
            .iter()
            .chain(right_schema.fields().iter())
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let (lcodec, rcodec) = (
        RowCodec::new(Arc::clone(&left_schema))?,
        RowCodec::new(Arc::clone(&right_schema))?,
    );
    let jcodec = RowCodec::new(Arc::clone(&joined_schema))?;
    let (matched, filter_failed) = per_batch(pairs, "JoinPairs", move |pairs: &[(Row, Row)]| {
        let lefts = lcodec.decode(pairs.iter().map(|(l, _)| l))?;
        let rights = rcodec.decode(pairs.iter().map(|(_, r)| r))?;
        let mut columns = lefts.columns().to_vec();
        columns.extend(rights.columns().iter().cloned());
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&joined_schema),
            columns.clone(),
            &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(pairs.len())),
        )?;
        let keep: Vec<bool> = match &filter {
            None => vec![true; pairs.len()],
            Some(f) => {
                let mask = f.evaluate(&batch)?.into_array(batch.num_rows())?;
                let mask = mask.as_boolean_opt().ok_or_else(|| {
                    DataFusionError::Internal("a join condition that is not boolean".into())
                })?;
                (0..pairs.len())
                    .map(|i| mask.is_valid(i) && mask.value(i))
                    .collect()
            }
        };
        let rows = jcodec.encode(&columns, pairs.len())?;
        Ok(pairs
            .iter()
            .zip(rows)
            .zip(keep)
            .map(|(((l, r), joined), k)| k.then(|| (l.clone(), r.clone(), joined)))
            .collect())
    });
    let errors = left_failed.concat(right_failed).concat(filter_failed);
    let inner = || matched.clone().map(|(_, _, joined)| joined);
    // Each row of `side` (with its multiplicity) that has / has no matching pair.
    let with_match = |side: Rows<'scope, T>, matched_side: Rows<'scope, T>, want: bool| {
        let side = side.map(|row| (row, ()));
        let matched_side = matched_side.distinct();
        match want {
            true => side.semijoin(matched_side),
            false => side.antijoin(matched_side),
        }
        .map(|(row, ())| row)
    };
    let matched_left = || matched.clone().map(|(l, _, _)| l);
    let matched_right = || matched.clone().map(|(_, r, _)| r);
    let rows = match kind {
        JoinKind::Inner => inner(),
        JoinKind::LeftSemi => with_match(left, matched_left(), true),
        JoinKind::LeftAnti => with_match(left, matched_left(), false),
        JoinKind::RightSemi => with_match(right, matched_right(), true),
        JoinKind::RightAnti => with_match(right, matched_right(), false),
        JoinKind::Left | JoinKind::Right | JoinKind::Full => {
            let mut rows = inner();
            let mut errors = errors.clone();
            if matches!(kind, JoinKind::Left | JoinKind::Full) {
                let unmatched = with_match(left, matched_left(), false);
                let (pad, failed) = padded(unmatched, &left_schema, schema, true)?;
                rows = rows.concat(pad);
                errors = errors.concat(failed);
            }
            if matches!(kind, JoinKind::Right | JoinKind::Full) {
                let unmatched = with_match(right, matched_right(), false);
                let (pad, failed) = padded(unmatched, &right_schema, schema, false)?;
                rows = rows.concat(pad);
                errors = errors.concat(failed);
            }
            return Ok((rows, errors));
        }
    };
    Ok((rows, errors))
}

/// Rows of one side of an outer join completed with NULLs for the other side's columns
/// (`left`: the rows are the left side's, NULLs follow them).
fn padded<'scope, T: Time>(
    rows: Rows<'scope, T>,
    side: &SchemaRef,
    schema: &SchemaRef,
    left: bool,
) -> DfResult<(Rows<'scope, T>, Errors<'scope, T>)> {
    let out = RowCodec::new(Arc::clone(schema))?;
    let width = side.fields().len();
    let others: Vec<_> = match left {
        true => schema.fields()[width..].to_vec(),
        false => schema.fields()[..schema.fields().len() - width].to_vec(),
    };
    map_decoded(rows, "Pad", Arc::clone(side), move |batch, _| {
        let nulls = others
            .iter()
            .map(|f| datafusion::arrow::array::new_null_array(f.data_type(), batch.num_rows()));
        let columns: Vec<ArrayRef> = match left {
            true => batch.columns().iter().cloned().chain(nulls).collect(),
            false => nulls.chain(batch.columns().iter().cloned()).collect(),
        };
        Ok(out
            .encode(&columns, batch.num_rows())?
            .into_iter()
            .map(Some)
            .collect())
    })
}

/// The rows ranked `offset .. offset + limit` by `keys` (then by the whole row). Hierarchical:
/// rows are bucketed by a hash of the row, each bucket keeps its first `offset + limit`, in
/// levels of fewer and fewer buckets down to one, so a change re-ranks a bucket of bounded
/// size at each level instead of the whole input.
fn top_k<'scope, T: Time>(
    rows: Rows<'scope, T>,
    schema: SchemaRef,
    keys: &[(
        Arc<dyn PhysicalExpr>,
        datafusion::arrow::compute::SortOptions,
    )],
    offset: usize,
    limit: Option<usize>,
) -> DfResult<(Rows<'scope, T>, Errors<'scope, T>)> {
    let exprs: Vec<_> = keys.iter().map(|(k, _)| Arc::clone(k)).collect();
    let options: Vec<_> = keys.iter().map(|(_, o)| *o).collect();
    let codec = RowCodec::ordered(key_schema(&exprs, &schema)?, &options)?;
    let (ranked, errors) = keyed_by(rows, "SortKey", schema, exprs, codec, false)?;
    let keep = limit.map_or(usize::MAX, |l| l.saturating_add(offset));
    let mut level = ranked;
    // Buckets of the 64-bit hash: 2^16, then 2^8, then one.
    for shift in [48u32, 56] {
        level = level
            .map(move |(key, row)| (bucket(&row) >> shift, (key, row)))
            .reduce_named("TopK", move |_bucket, input, output| {
                first(input, 0, keep, output)
            })
            .map(|(_bucket, ranked)| ranked);
    }
    let top = level
        .map(|ranked| ((), ranked))
        .reduce_named("TopK", move |_, input, output| {
            first(input, offset, keep.saturating_sub(offset), output)
        })
        .map(|((), (_key, row))| row);
    Ok((top, errors))
}

/// The values of a reduce's (sorted) input ranked `skip .. skip + take`, with their counts.
fn first(
    input: &[(&(Row, Row), isize)],
    skip: usize,
    take: usize,
    output: &mut Vec<((Row, Row), isize)>,
) {
    let (mut skip, mut take) = (skip as isize, take.min(isize::MAX as usize) as isize);
    for (value, count) in input {
        let mut count = *count;
        let skipped = count.min(skip);
        skip -= skipped;
        count -= skipped;
        let taken = count.min(take);
        if taken > 0 {
            output.push(((*value).clone(), taken));
            take -= taken;
        }
        if take == 0 {
            break;
        }
    }
}

fn bucket(row: &Row) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    row.hash(&mut hasher);
    hasher.finish()
}

/// Window functions: rows keyed by their partition; a changed partition is computed again
/// (its rows decoded, sorted by each function's ORDER BY, the function evaluated by
/// DataFusion, the values put back in row order).
fn window<'scope, T: Time>(
    rows: Rows<'scope, T>,
    in_schema: SchemaRef,
    partition: &[Arc<dyn PhysicalExpr>],
    functions: &[Arc<dyn datafusion::physical_expr::window::WindowExpr>],
    schema: &SchemaRef,
) -> DfResult<(Rows<'scope, T>, Errors<'scope, T>)> {
    let keys = RowCodec::new(key_schema(partition, &in_schema)?)?;
    let (keyed, failed) = keyed_by(
        rows,
        "PartitionKey",
        Arc::clone(&in_schema),
        partition.to_vec(),
        keys,
        false,
    )?;
    let inputs = RowCodec::new(in_schema)?;
    let out = RowCodec::new(Arc::clone(schema))?;
    let functions = functions.to_vec();
    let computed = keyed.reduce_named(
        "Window",
        move |_key: &Row, vals: &[(&Row, isize)], output: &mut Vec<(Outcome, isize)>| {
            match window_partition(vals, &inputs, &functions, &out) {
                Ok(rows) => output.extend(rows.into_iter().map(|r| (Outcome::Row(r), 1))),
                Err(e) => output.push((Outcome::Error(crate::error_text(&e)), 1)),
            }
        },
    );
    let (rows, failed_partitions) = split(computed.map(|(_key, outcome)| outcome));
    Ok((rows, failed.concat(failed_partitions)))
}

fn window_partition(
    vals: &[(&Row, isize)],
    inputs: &RowCodec,
    functions: &[Arc<dyn datafusion::physical_expr::window::WindowExpr>],
    out: &RowCodec,
) -> DfResult<Vec<Row>> {
    use datafusion::arrow::array::UInt32Array;
    use datafusion::arrow::compute::{lexsort_to_indices, take};
    let mut repeated = Vec::new();
    for (row, count) in vals {
        repeated.extend(std::iter::repeat_n(*row, (*count).max(0) as usize));
    }
    let batch = inputs.decode(repeated)?;
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for function in functions {
        let order = function.order_by_columns(&batch)?;
        let values = if order.is_empty() {
            function.evaluate(&batch)?
        } else {
            let indices = lexsort_to_indices(&order, None)?;
            let sorted = RecordBatch::try_new_with_options(
                batch.schema(),
                batch
                    .columns()
                    .iter()
                    .map(|c| take(c.as_ref(), &indices, None))
                    .collect::<Result<Vec<_>, _>>()?,
                &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            let values = function.evaluate(&sorted)?;
            // Back to the batch's order: the value of sorted row i belongs to row indices[i].
            let mut inverse = vec![0u32; n];
            for (i, &row) in indices.values().iter().enumerate() {
                inverse[row as usize] = i as u32;
            }
            take(values.as_ref(), &UInt32Array::from(inverse), None)?
        };
        columns.push(values);
    }
    out.encode(&columns, n)
}

//! `sum`, `avg`, `variance`/`var_samp`, `var_pop`, `stddev`/`stddev_samp` and `stddev_pop` of
//! `real` and `double precision` as PostgreSQL computes them.
//!
//! PostgreSQL's `sum(float8)` adds with `float8pl` and `sum(float4)` with `float4pl` (in single
//! precision: `sum` of `real` is `real`); the others keep N, Σx and Σ(x − x̄)² by the
//! Youngs-Cramer algorithm (`float8_accum`, in double precision also for `real`), and partial
//! states combine with `float8_combine`. Either way an infinite result from finite values is an
//! error, `value out of range: overflow` (22003), where DataFusion's functions returned
//! `Infinity` or `NaN`: `sum` of `1e308` twice, or `avg` of `1e200` and `-1e200` (its Σx² is
//! infinite). Infinite or NaN inputs give PostgreSQL's NaN and infinities without an error.
//!
//! `sum`/`avg` (`numeric::aggregate`) and the statistics (`numeric::variance`) hand float
//! arguments here; `DISTINCT` calls stay DataFusion's. Moving window frames keep the frame's
//! values and run the aggregate over them again for each row, as PostgreSQL does for these
//! aggregates (they have no inverse transition).

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

use crate::error::{sqlstate, SqlError};

/// Which aggregate of floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatAggregate {
    Sum,
    Avg,
    Variance { sample: bool },
    Stddev { sample: bool },
}

/// Whether this module computes an aggregate of `data_type`.
pub(crate) fn takes(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
}

impl FloatAggregate {
    /// `sum` of `real` sums in single precision; the rest in double precision.
    fn single(self, input: &DataType) -> bool {
        self == FloatAggregate::Sum && *input == DataType::Float32
    }

    /// The argument type the aggregate reads `input` as.
    pub(crate) fn coerce(self, input: &DataType) -> DataType {
        if self.single(input) {
            DataType::Float32
        } else {
            DataType::Float64
        }
    }

    /// The result type (the argument's type for `sum`, else `double precision`).
    pub(crate) fn return_type(self, input: &DataType) -> DataType {
        self.coerce(input)
    }

    /// N and Σx (`sum`), or N, Σx and Σ(x − x̄)².
    pub(crate) fn state_fields(self, name: &str, input: &DataType) -> Vec<FieldRef> {
        let field = |suffix: &str, data_type: DataType| {
            Arc::new(Field::new(format_state_name(name, suffix), data_type, true))
        };
        let mut fields = vec![
            field("count", DataType::Float64),
            field("sum", self.coerce(input)),
        ];
        if self != FloatAggregate::Sum {
            fields.push(field("sum_squares", DataType::Float64));
        }
        fields
    }

    pub(crate) fn accumulator(self, input: &DataType) -> Box<dyn Accumulator> {
        Box::new(FloatAccumulator {
            kind: self,
            single: self.single(input),
            state: State::default(),
        })
    }

    pub(crate) fn groups_accumulator(self, input: &DataType) -> Box<dyn GroupsAccumulator> {
        Box::new(FloatGroups {
            kind: self,
            single: self.single(input),
            states: Vec::new(),
        })
    }

    /// `DISTINCT`: one state field, the list of values.
    pub(crate) fn distinct_state_fields(self, name: &str) -> Vec<FieldRef> {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        vec![Arc::new(Field::new(
            format_state_name(name, "distinct"),
            DataType::List(item),
            true,
        ))]
    }

    pub(crate) fn distinct_accumulator(self, input: &DataType) -> Box<dyn Accumulator> {
        Box::new(FloatDistinct {
            kind: self,
            single: self.single(input),
            values: Vec::new(),
        })
    }

    pub(crate) fn sliding_accumulator(self, input: &DataType) -> Box<dyn Accumulator> {
        Box::new(FloatFrame {
            kind: self,
            single: self.single(input),
            values: VecDeque::new(),
        })
    }

    /// The result of a group's state.
    fn finish(self, state: &State) -> Option<f64> {
        let n = state.n;
        let variance = |sample: bool| match sample {
            true if n > 1.0 => Some(state.sxx / (n - 1.0)),
            false if n > 0.0 => Some(state.sxx / n),
            _ => None,
        };
        match self {
            FloatAggregate::Sum => (n > 0.0).then_some(state.sx),
            FloatAggregate::Avg => (n > 0.0).then(|| state.sx / n),
            FloatAggregate::Variance { sample } => variance(sample),
            FloatAggregate::Stddev { sample } => variance(sample).map(f64::sqrt),
        }
    }
}

fn overflow() -> DataFusionError {
    SqlError::new(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        "value out of range: overflow",
    )
    .into()
}

/// `a + b` as `float8pl` (or `float4pl`, `single`) computes it.
fn add(a: f64, b: f64, single: bool) -> DfResult<f64> {
    let sum = if single {
        f64::from(a as f32 + b as f32)
    } else {
        a + b
    };
    if sum.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(overflow());
    }
    Ok(sum)
}

/// One group: N, Σx and (not for `sum`) Σ(x − x̄)².
#[derive(Debug, Clone, Copy, Default)]
struct State {
    n: f64,
    sx: f64,
    sxx: f64,
}

impl State {
    fn update(&mut self, kind: FloatAggregate, single: bool, x: f64) -> DfResult<()> {
        if kind == FloatAggregate::Sum {
            self.sx = if self.n == 0.0 {
                x
            } else {
                add(self.sx, x, single)?
            };
            self.n += 1.0;
            return Ok(());
        }
        // float8_accum.
        let (old_n, old_sx) = (self.n, self.sx);
        self.n += 1.0;
        self.sx += x;
        if old_n > 0.0 {
            let tmp = x * self.n - self.sx;
            self.sxx += tmp * tmp / (self.n * old_n);
            if self.sx.is_infinite() || self.sxx.is_infinite() {
                if !old_sx.is_infinite() && !x.is_infinite() {
                    return Err(overflow());
                }
                self.sxx = f64::NAN;
            }
        } else if !x.is_finite() {
            self.sxx = f64::NAN;
        }
        Ok(())
    }

    /// The state of `values` aggregated in order.
    fn of(
        kind: FloatAggregate,
        single: bool,
        values: impl IntoIterator<Item = f64>,
    ) -> DfResult<State> {
        let mut state = State::default();
        for x in values {
            state.update(kind, single, x)?;
        }
        Ok(state)
    }

    /// float8_combine (and `float8pl` of two partial sums).
    fn combine(&mut self, kind: FloatAggregate, single: bool, other: State) -> DfResult<()> {
        if other.n == 0.0 {
            return Ok(());
        }
        if self.n == 0.0 {
            *self = other;
            return Ok(());
        }
        let n = self.n + other.n;
        let sx = add(self.sx, other.sx, single)?;
        let sxx = if kind == FloatAggregate::Sum {
            0.0
        } else {
            let tmp = self.sx / self.n - other.sx / other.n;
            let sxx = self.sxx + other.sxx + self.n * other.n * tmp * tmp / n;
            if sxx.is_infinite() && !self.sxx.is_infinite() && !other.sxx.is_infinite() {
                return Err(overflow());
            }
            sxx
        };
        *self = State { n, sx, sxx };
        Ok(())
    }
}

/// The values of `array` as `f64` (a `real` is exact in double precision).
fn values_of(array: &ArrayRef) -> DfResult<Float64Array> {
    Ok(cast(array, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// The states of partial aggregates (`count`, `sum`, and `sum_squares` but for `sum`).
fn states_of(states: &[ArrayRef]) -> DfResult<Vec<Option<State>>> {
    let (Some(n), Some(sx)) = (states.first(), states.get(1)) else {
        return Ok(Vec::new());
    };
    let n = values_of(n)?;
    let sx = values_of(sx)?;
    let sxx = states.get(2).map(values_of).transpose()?;
    Ok((0..n.len())
        .map(|row| {
            n.is_valid(row).then(|| State {
                n: n.value(row),
                sx: sx.value(row),
                sxx: sxx.as_ref().map_or(0.0, |s| s.value(row)),
            })
        })
        .collect())
}

fn result_scalar(value: Option<f64>, single: bool) -> ScalarValue {
    if single {
        ScalarValue::Float32(value.map(|v| v as f32))
    } else {
        ScalarValue::Float64(value)
    }
}

fn state_scalars(kind: FloatAggregate, single: bool, state: &State) -> Vec<ScalarValue> {
    let mut scalars = vec![
        ScalarValue::Float64(Some(state.n)),
        result_scalar(Some(state.sx), single),
    ];
    if kind != FloatAggregate::Sum {
        scalars.push(ScalarValue::Float64(Some(state.sxx)));
    }
    scalars
}

/// One group (ungrouped aggregates, growing window frames).
#[derive(Debug)]
struct FloatAccumulator {
    kind: FloatAggregate,
    single: bool,
    state: State,
}

impl Accumulator for FloatAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let Some(values) = values.first() else {
            return Ok(());
        };
        for x in values_of(values)?.iter().flatten() {
            self.state.update(self.kind, self.single, x)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(result_scalar(self.kind.finish(&self.state), self.single))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(state_scalars(self.kind, self.single, &self.state))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        for state in states_of(states)?.into_iter().flatten() {
            self.state.combine(self.kind, self.single, state)?;
        }
        Ok(())
    }
}

/// A moving window frame: its values, aggregated again for each row.
#[derive(Debug)]
struct FloatFrame {
    kind: FloatAggregate,
    single: bool,
    values: VecDeque<f64>,
}

impl Accumulator for FloatFrame {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(values) = values.first() {
            self.values.extend(values_of(values)?.iter().flatten());
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(values) = values.first() {
            let leaving = values_of(values)?.iter().flatten().count();
            self.values.drain(..leaving.min(self.values.len()));
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let state = State::of(self.kind, self.single, self.values.iter().copied())?;
        Ok(result_scalar(self.kind.finish(&state), self.single))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * 8
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let state = State::of(self.kind, self.single, self.values.iter().copied())?;
        Ok(state_scalars(self.kind, self.single, &state))
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> DfResult<()> {
        Err(DataFusionError::Internal(
            "a window frame's aggregate is not merged".into(),
        ))
    }
}

/// Grouped aggregates: a state per group.
#[derive(Debug)]
struct FloatGroups {
    kind: FloatAggregate,
    single: bool,
    states: Vec<State>,
}

impl FloatGroups {
    fn array(&self, values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
        if self.single {
            Arc::new(
                values
                    .map(|v| v.map(|v| v as f32))
                    .collect::<Float32Array>(),
            )
        } else {
            Arc::new(values.collect::<Float64Array>())
        }
    }
}

impl FloatGroups {
    /// The state fields' arrays of `states`.
    fn state_arrays(&self, states: &[State]) -> Vec<ArrayRef> {
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(states.iter().map(|s| Some(s.n)).collect::<Float64Array>()),
            self.array(states.iter().map(|s| Some(s.sx))),
        ];
        if self.kind != FloatAggregate::Sum {
            arrays.push(Arc::new(
                states.iter().map(|s| Some(s.sxx)).collect::<Float64Array>(),
            ));
        }
        arrays
    }
}

impl GroupsAccumulator for FloatGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.states.resize(total_num_groups, State::default());
        let Some(values) = values.first() else {
            return Ok(());
        };
        let values = values_of(values)?;
        for (row, &group) in group_indices.iter().enumerate() {
            if values.is_valid(row) && passes(opt_filter, row) {
                self.states[group].update(self.kind, self.single, values.value(row))?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let states = emit_to.take_needed(&mut self.states);
        Ok(self.array(states.iter().map(|s| self.kind.finish(s))))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let states = emit_to.take_needed(&mut self.states);
        Ok(self.state_arrays(&states))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.states.resize(total_num_groups, State::default());
        for (state, &group) in states_of(values)?.into_iter().zip(group_indices) {
            if let Some(state) = state {
                self.states[group].combine(self.kind, self.single, state)?;
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let Some(values) = values.first() else {
            return Ok(Vec::new());
        };
        let values = values_of(values)?;
        let mut states = Vec::with_capacity(values.len());
        for row in 0..values.len() {
            let mut state = State::default();
            if values.is_valid(row) && passes(opt_filter, row) {
                state.update(self.kind, self.single, values.value(row))?;
            }
            states.push(state);
        }
        Ok(self.state_arrays(&states))
    }

    fn size(&self) -> usize {
        self.states.capacity() * size_of::<State>()
    }
}

/// `DISTINCT`: the values, aggregated once sorted and deduplicated, in PostgreSQL's order of
/// floats (`-0` equals `0`, `NaN` is one value, above every number).
#[derive(Debug)]
struct FloatDistinct {
    kind: FloatAggregate,
    single: bool,
    values: Vec<f64>,
}

impl FloatDistinct {
    fn distinct(&self) -> Vec<f64> {
        let key = |x: f64| {
            if x == 0.0 {
                0.0
            } else if x.is_nan() {
                f64::NAN
            } else {
                x
            }
        };
        let mut values: Vec<f64> = self.values.iter().map(|&x| key(x)).collect();
        values.sort_by(f64::total_cmp);
        values.dedup_by(|a, b| a.total_cmp(b).is_eq());
        values
    }
}

impl Accumulator for FloatDistinct {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(values) = values.first() {
            self.values.extend(values_of(values)?.iter().flatten());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let state = State::of(self.kind, self.single, self.distinct())?;
        Ok(result_scalar(self.kind.finish(&state), self.single))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * 8
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values = Float64Array::from(self.distinct());
        Ok(vec![ScalarValue::List(Arc::new(
            datafusion::common::utils::SingleRowListArrayBuilder::new(Arc::new(values))
                .build_list_array(),
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(lists) = states.first() else {
            return Ok(());
        };
        for list in lists.as_list::<i32>().iter().flatten() {
            self.values.extend(values_of(&list)?.iter().flatten());
        }
        Ok(())
    }
}

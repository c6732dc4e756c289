//! `sum` and `avg` with PostgreSQL's numeric results.
//!
//! Both replace DataFusion's functions of the same name and hand every input they do not
//! treat to them unchanged:
//! - `sum(numeric)` of wide numerics is exact, its scale the largest input scale;
//! - `avg` of integers, `numeric(p, s)` (`Decimal128`) and wide numerics is `numeric`: the
//!   exact sum divided by the count with PostgreSQL's division scale (`avg` of
//!   `numeric(15,2)` values prints `25.5220058532573370`, of integers `2.5000000000000000`).
//!   Integer and `Decimal128` inputs sum in an `i128` per group ([`FixedAvgGroups`]), so
//!   TPC-H's grouped averages stay vectorised; only the final division per group is exact
//!   arithmetic.
//!
//! - `sum` of `bigint` is `numeric` (it cannot wrap around past 2^63), and `sum` of
//!   `smallint`/`integer` is `bigint`, as in PostgreSQL; both sum in an `i128` per group.
//!   Small integers are kept at their own type through coercion (DataFusion's `sum` widens
//!   them to `bigint` first, after which they could not be told apart from `bigint` inputs).
//!
//! `sum` and `avg` of floats are `functions::float_aggregates`' (PostgreSQL's overflow errors,
//! `sum` of `real` is `real`).
//!
//! `DISTINCT` keeps the distinct values by value (`1.5` and `1.50` count once).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, LargeBinaryArray,
    ListArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef, Int64Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, Aggregate, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, ExprSchemable,
    GroupsAccumulator, LogicalPlan, ReversedUDAF, Signature, Volatility,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use num_bigint::BigInt;

use super::functions::{keys_array, scalar_key, value_at};
use super::value::{fixed_from_key, Numeric, NumericError, SCALE_BYTES};
use super::{is_numeric_field_type, numeric_field};
use crate::functions::float_aggregates::{self, FloatAggregate};

/// `sum` and `avg` wrapping DataFusion's `inner` of the same name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericAggregate {
    inner: Arc<AggregateUDF>,
    avg: bool,
    signature: Signature,
}

/// The replacements of `sum` and `avg` (`sum`, `avg`: DataFusion's functions).
pub(crate) fn udafs(sum: Arc<AggregateUDF>, avg: Arc<AggregateUDF>) -> Vec<AggregateUDF> {
    [(sum, false), (avg, true)]
        .into_iter()
        .map(|(inner, avg)| {
            AggregateUDF::new_from_impl(NumericAggregate {
                inner,
                avg,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

/// How an input type is summed, if this module treats it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    /// Integers and `Decimal128(_, scale)`: an `i128` at `scale`.
    Fixed(i8),
    /// Wide numerics.
    Wide,
}

/// What a group's sum and count become.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    /// `avg`: the sum divided by the count, a numeric.
    Average,
    /// `sum`: the sum as a numeric.
    Sum,
    /// `sum` of small integers: the sum as a `bigint`.
    BigintSum,
}

fn is_small_int(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32
    )
}

impl NumericAggregate {
    fn input(&self, data_type: &DataType) -> Option<Input> {
        if is_numeric_field_type(data_type) {
            return Some(Input::Wide);
        }
        match data_type {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                Some(Input::Fixed(0))
            }
            DataType::Decimal128(_, scale) if *scale >= 0 && self.avg => Some(Input::Fixed(*scale)),
            _ => None,
        }
    }

    fn output(&self, data_type: &DataType) -> Output {
        if self.avg {
            Output::Average
        } else if is_small_int(data_type) {
            Output::BigintSum
        } else {
            Output::Sum
        }
    }

    /// The float aggregate computing a call over `data_type`, if it is a float.
    fn float(&self, data_type: Option<&DataType>) -> Option<FloatAggregate> {
        let data_type = data_type?;
        float_aggregates::takes(data_type).then_some(if self.avg {
            FloatAggregate::Avg
        } else {
            FloatAggregate::Sum
        })
    }

    /// The input and output of a call over `field`, if this module treats it.
    fn treats(&self, field: Option<&FieldRef>) -> Option<(Input, Output)> {
        let data_type = field?.data_type();
        Some((self.input(data_type)?, self.output(data_type)))
    }
}

impl AggregateUDFImpl for NumericAggregate {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] if self.float(Some(t)).is_some() => {
                Ok(vec![self.float(Some(t)).unwrap().coerce(t)])
            }
            // Small integers too keep their type: widened, they would read as `bigint`.
            [t] if self.input(t).is_some() => Ok(arg_types.to_vec()),
            _ => super::coerce_like(arg_types, self.inner.as_ref()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if let ([t], Some(float)) = (arg_types, self.float(arg_types.first())) {
            return Ok(float.return_type(t));
        }
        match arg_types {
            [t] if self.input(t).is_some() => Ok(match self.output(t) {
                Output::BigintSum => DataType::Int64,
                Output::Average | Output::Sum => DataType::LargeBinary,
            }),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        if let ([f], Some(float)) = (
            arg_fields,
            self.float(arg_fields.first().map(|f| f.data_type())),
        ) {
            return Ok(Arc::new(Field::new(
                self.name(),
                float.return_type(f.data_type()),
                true,
            )));
        }
        match self.treats(arg_fields.first()) {
            Some((_, Output::BigintSum)) if arg_fields.len() == 1 => {
                Ok(Arc::new(Field::new(self.name(), DataType::Int64, true)))
            }
            Some(_) if arg_fields.len() == 1 => Ok(Arc::new(numeric_field(self.name(), None))),
            _ => self.inner.inner().return_field(arg_fields),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let input = args.expr_fields.first().map(|f| f.data_type());
        if let (Some(float), Some(t)) = (self.float(input), input) {
            return Ok(match args.is_distinct {
                true => float.distinct_accumulator(t),
                false => float.accumulator(t),
            });
        }
        match self.treats(args.expr_fields.first()) {
            Some((input, output)) => Ok(Box::new(NumericAccumulator::new(
                output,
                input,
                args.is_distinct,
            ))),
            None => self.inner.inner().accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let float_input = args.input_fields.first().map(|f| f.data_type());
        if let (Some(float), Some(t)) = (self.float(float_input), float_input) {
            return Ok(match args.is_distinct {
                true => float.distinct_state_fields(args.name),
                false => float.state_fields(args.name, t),
            });
        }
        let Some(input) = args
            .input_fields
            .first()
            .and_then(|f| self.input(f.data_type()))
        else {
            return self.inner.inner().state_fields(args);
        };
        let field = |suffix: &str, data_type: DataType| {
            Arc::new(Field::new(
                format_state_name(args.name, suffix),
                data_type,
                true,
            ))
        };
        if args.is_distinct {
            let item = Arc::new(Field::new_list_field(DataType::LargeBinary, true));
            return Ok(vec![field("distinct", DataType::List(item))]);
        }
        Ok(vec![
            field("sum", sum_state_type(input)),
            field("count", DataType::Int64),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if self
            .float(args.expr_fields.first().map(|f| f.data_type()))
            .is_some()
        {
            return !args.is_distinct;
        }
        match self.treats(args.expr_fields.first()) {
            Some((Input::Fixed(_), _)) => !args.is_distinct,
            Some((Input::Wide, _)) => false,
            None => self.inner.inner().groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        let input = args.expr_fields.first().map(|f| f.data_type());
        if let (Some(float), Some(t)) = (self.float(input), input) {
            return Ok(float.groups_accumulator(t));
        }
        match self.treats(args.expr_fields.first()) {
            Some((Input::Fixed(scale), output)) => Ok(Box::new(FixedGroups {
                scale,
                output,
                sums: Vec::new(),
                counts: Vec::new(),
            })),
            _ => self.inner.inner().create_groups_accumulator(args),
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let input = args.expr_fields.first().map(|f| f.data_type());
        if let (Some(float), Some(t)) = (self.float(input), input) {
            return Ok(float.sliding_accumulator(t));
        }
        match self.treats(args.expr_fields.first()) {
            Some(_) => self.accumulator(args),
            None => self.inner.inner().create_sliding_accumulator(args),
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        if *data_type == DataType::Int64 && !self.avg {
            return Ok(ScalarValue::Int64(None));
        }
        if is_numeric_field_type(data_type) {
            return Ok(ScalarValue::LargeBinary(None));
        }
        self.inner.inner().default_value(data_type)
    }
}

impl Output {
    /// The result of a group with `sum` over `count` values (`None`: no values).
    fn finish(self, sum: Option<(Numeric, i64)>) -> DfResult<ScalarValue> {
        Ok(match (self, sum) {
            (Output::BigintSum, None) => ScalarValue::Int64(None),
            (Output::BigintSum, Some((sum, _))) => ScalarValue::Int64(Some(bigint(&sum)?)),
            (_, None) => scalar_key(None),
            (Output::Average, Some((sum, count))) => {
                scalar_key(Some(&sum.div(&Numeric::from_i64(count))?))
            }
            (Output::Sum, Some((sum, _))) => scalar_key(Some(&sum)),
        })
    }
}

/// A sum of small integers as a `bigint` (22003 past its range).
fn bigint(sum: &Numeric) -> DfResult<i64> {
    Ok(sum.to_i64("bigint")?)
}

fn bigint_overflow() -> datafusion::error::DataFusionError {
    NumericError::OutOfRange("bigint").into()
}

fn sum_state_type(input: Input) -> DataType {
    match input {
        Input::Fixed(scale) => DataType::Decimal128(38, scale),
        Input::Wide => DataType::LargeBinary,
    }
}

/// The running sum of one group.
#[derive(Debug, Clone)]
enum Sum {
    Fixed(i128),
    Wide(WideSum),
}

/// A sum of wide numerics that values can also leave (moving window frames), as PostgreSQL's
/// `NumericSumAccum`: NaN and the infinities are counted, not added (so `NaN` leaves again),
/// and the scales of the values in the sum are counted, so the result has the largest scale
/// of the values present now.
#[derive(Debug, Clone)]
struct WideSum {
    finite: Numeric,
    nan: i64,
    infinities: i64,
    negative_infinities: i64,
    scales: BTreeMap<u32, i64>,
    /// Values of one scale that fit an `i128` (the common case: a column, or fixed-point
    /// arithmetic planned as numeric) are summed here without big numbers: the sum, its
    /// scale, and how many values it holds (for `scales`).
    fast: i128,
    fast_scale: Option<u32>,
    fast_count: i64,
}

impl WideSum {
    fn new() -> WideSum {
        WideSum {
            finite: Numeric::zero(),
            nan: 0,
            infinities: 0,
            negative_infinities: 0,
            scales: BTreeMap::new(),
            fast: 0,
            fast_scale: None,
            fast_count: 0,
        }
    }

    /// Adds (`sign` 1) or takes out (-1) the value of key `key`.
    fn add_key(&mut self, key: &[u8], sign: i64) -> DfResult<()> {
        if let Some((mantissa, scale)) = fixed_from_key(key) {
            if self.fast_scale.is_none_or(|s| s == scale) {
                let next = if sign > 0 {
                    self.fast.checked_add(mantissa)
                } else {
                    self.fast.checked_sub(mantissa)
                };
                if let Some(next) = next {
                    self.fast = next;
                    self.fast_scale = Some(scale);
                    self.fast_count += sign;
                    return Ok(());
                }
            }
        }
        self.add(&Numeric::from_key(key)?, sign)
    }

    /// The sum with its `i128` part folded into the big-number part.
    fn settled(&self) -> DfResult<WideSum> {
        let mut sum = self.clone();
        if let Some(scale) = sum.fast_scale.take() {
            let part = Numeric::from_decimal(BigInt::from(sum.fast), scale as i32)?;
            sum.finite = sum.finite.add(&part)?;
            let count = sum.scales.entry(scale).or_insert(0);
            *count += sum.fast_count;
            if *count == 0 {
                sum.scales.remove(&scale);
            }
            (sum.fast, sum.fast_count) = (0, 0);
        }
        Ok(sum)
    }

    /// Adds `value` (`sign` 1) or takes it out again (`sign` -1).
    fn add(&mut self, value: &Numeric, sign: i64) -> DfResult<()> {
        match value {
            Numeric::NaN => self.nan += sign,
            Numeric::Infinity => self.infinities += sign,
            Numeric::NegInfinity => self.negative_infinities += sign,
            Numeric::Finite { scale, .. } => {
                self.finite = if sign > 0 {
                    self.finite.add(value)?
                } else {
                    self.finite.sub(value)?
                };
                let count = self.scales.entry(*scale).or_insert(0);
                *count += sign;
                if *count == 0 {
                    self.scales.remove(scale);
                }
            }
        }
        Ok(())
    }

    fn value(&self) -> DfResult<Numeric> {
        if self.fast_scale.is_some() {
            return self.settled()?.value();
        }
        if self.nan > 0 || (self.infinities > 0 && self.negative_infinities > 0) {
            return Ok(Numeric::NaN);
        }
        if self.infinities > 0 {
            return Ok(Numeric::Infinity);
        }
        if self.negative_infinities > 0 {
            return Ok(Numeric::NegInfinity);
        }
        let scale = self.scales.keys().next_back().copied().unwrap_or(0);
        if self.finite.scale() > scale {
            // Values with more decimals left the sum: those digits are zeros now.
            return Ok(self.finite.round(scale as i64)?);
        }
        Ok(self.finite.clone())
    }
}

fn overflow() -> datafusion::error::DataFusionError {
    NumericError::Overflow.into()
}

/// The distinct values of a `sum(DISTINCT …)`/`avg(DISTINCT …)`: their value parts (keys
/// without the scale), and the first key seen of each.
type Distinct = (HashSet<Vec<u8>>, Vec<Vec<u8>>);

/// `sum`/`avg` of one group (or of all rows): a running sum and count, or the distinct values.
#[derive(Debug)]
struct NumericAccumulator {
    output: Output,
    input: Input,
    sum: Sum,
    count: i64,
    /// With DISTINCT: the values seen (see [`Distinct`]).
    distinct: Option<Distinct>,
}

impl NumericAccumulator {
    fn new(output: Output, input: Input, distinct: bool) -> NumericAccumulator {
        NumericAccumulator {
            output,
            input,
            sum: match input {
                Input::Fixed(_) => Sum::Fixed(0),
                Input::Wide => Sum::Wide(WideSum::new()),
            },
            count: 0,
            distinct: distinct.then(|| (HashSet::new(), Vec::new())),
        }
    }

    fn add_fixed(&mut self, value: i128, sign: i128) -> DfResult<()> {
        if let Sum::Fixed(sum) = &mut self.sum {
            *sum = sum.checked_add(value * sign).ok_or_else(overflow)?;
        }
        Ok(())
    }

    fn add_numeric(&mut self, value: &Numeric, retract: bool) -> DfResult<()> {
        if let Sum::Wide(sum) = &mut self.sum {
            sum.add(value, if retract { -1 } else { 1 })?;
        }
        Ok(())
    }

    fn add_values(&mut self, values: &ArrayRef, retract: bool) -> DfResult<()> {
        if let Some((seen, keys)) = &mut self.distinct {
            for row in 0..values.len() {
                let Some(value) = value_at(values.as_ref(), row)? else {
                    continue;
                };
                let key = value.to_key();
                if seen.insert(key[..key.len() - SCALE_BYTES].to_vec()) {
                    keys.push(key);
                }
            }
            return Ok(());
        }
        let sign = if retract { -1 } else { 1 };
        match self.input {
            Input::Fixed(_) => {
                let fixed = fixed_values(values)?;
                for value in fixed.into_iter().flatten() {
                    self.add_fixed(value, sign)?;
                    self.count += sign as i64;
                }
            }
            Input::Wide => {
                let keys = values.as_binary_opt::<i64>();
                for row in 0..values.len() {
                    match (keys, &mut self.sum) {
                        (Some(keys), Sum::Wide(sum)) => {
                            if keys.is_null(row) {
                                continue;
                            }
                            sum.add_key(keys.value(row), sign as i64)?;
                        }
                        _ => match value_at(values.as_ref(), row)? {
                            Some(value) => self.add_numeric(&value, retract)?,
                            None => continue,
                        },
                    }
                    self.count += sign as i64;
                }
            }
        }
        Ok(())
    }

    fn sum_value(&self) -> DfResult<Numeric> {
        match (&self.sum, self.input) {
            (Sum::Fixed(v), Input::Fixed(scale)) => {
                Ok(Numeric::from_decimal(BigInt::from(*v), scale as i32)?)
            }
            (Sum::Wide(v), _) => v.value(),
            _ => Err(NumericError::Corrupt.into()),
        }
    }
}

/// Integer or `Decimal128` values as `i128` mantissas.
fn fixed_values(values: &ArrayRef) -> DfResult<Vec<Option<i128>>> {
    Ok(match values.data_type() {
        DataType::Decimal128(..) => values.as_primitive::<Decimal128Type>().iter().collect(),
        _ => cast(values, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(i128::from))
            .collect(),
    })
}

impl Accumulator for NumericAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match values.first() {
            Some(v) => self.add_values(v, false),
            None => Ok(()),
        }
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match values.first() {
            Some(v) => self.add_values(v, true),
            None => Ok(()),
        }
    }

    fn supports_retract_batch(&self) -> bool {
        self.distinct.is_none()
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if let Some((_, keys)) = &self.distinct {
            let mut sum = Numeric::zero();
            for key in keys {
                sum = sum.add(&Numeric::from_key(key)?)?;
            }
            if keys.is_empty() {
                return self.output.finish(None);
            }
            return self.output.finish(Some((sum, keys.len() as i64)));
        }
        if self.count == 0 {
            return self.output.finish(None);
        }
        self.output.finish(Some((self.sum_value()?, self.count)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .distinct
                .as_ref()
                .map_or(0, |(seen, keys)| seen.len() * 48 + keys.len() * 48)
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        if let Some((_, keys)) = &self.distinct {
            let values = LargeBinaryArray::from_iter_values(keys.iter());
            let list = ListArray::new(
                Arc::new(Field::new_list_field(DataType::LargeBinary, true)),
                OffsetBuffer::from_lengths([values.len()]),
                Arc::new(values),
                None,
            );
            return Ok(vec![ScalarValue::List(Arc::new(list))]);
        }
        let sum = match (&self.sum, self.input) {
            (Sum::Fixed(v), Input::Fixed(scale)) => ScalarValue::Decimal128(Some(*v), 38, scale),
            (Sum::Wide(v), _) => scalar_key(Some(&v.value()?)),
            _ => return Err(NumericError::Corrupt.into()),
        };
        Ok(vec![sum, ScalarValue::Int64(Some(self.count))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        if let Some((seen, keys)) = &mut self.distinct {
            let Some(lists) = states.first() else {
                return Ok(());
            };
            for list in lists.as_list::<i32>().iter().flatten() {
                let list = list.as_binary::<i64>();
                for key in list.iter().flatten() {
                    if seen.insert(key[..key.len().saturating_sub(SCALE_BYTES)].to_vec()) {
                        keys.push(key.to_vec());
                    }
                }
            }
            return Ok(());
        }
        let (Some(sums), Some(counts)) = (states.first(), states.get(1)) else {
            return Ok(());
        };
        let counts = counts.as_primitive::<Int64Type>();
        for row in 0..sums.len() {
            if sums.is_null(row) {
                continue;
            }
            match self.input {
                Input::Fixed(_) => {
                    let v = sums.as_primitive::<Decimal128Type>().value(row);
                    self.add_fixed(v, 1)?;
                }
                Input::Wide => {
                    if let Some(v) = value_at(sums.as_ref(), row)? {
                        self.add_numeric(&v, false)?;
                    }
                }
            }
            self.count += counts.value(row);
        }
        Ok(())
    }
}

/// `avg` of integers or `Decimal128(_, scale)`, `sum` of integers, per group: `i128` sums
/// and counts.
#[derive(Debug)]
struct FixedGroups {
    scale: i8,
    output: Output,
    sums: Vec<i128>,
    counts: Vec<i64>,
}

impl FixedGroups {
    fn grow(&mut self, total_num_groups: usize) {
        self.sums.resize(total_num_groups, 0);
        self.counts.resize(total_num_groups, 0);
    }

    fn add(&mut self, group: usize, value: i128, count: i64) -> DfResult<()> {
        self.sums[group] = self.sums[group].checked_add(value).ok_or_else(overflow)?;
        self.counts[group] += count;
        Ok(())
    }
}

impl GroupsAccumulator for FixedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let Some(values) = values.first() else {
            return Ok(());
        };
        let passes = |row: usize| opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
        if let DataType::Decimal128(..) = values.data_type() {
            let values = values.as_primitive::<Decimal128Type>();
            for (row, &group) in group_indices.iter().enumerate() {
                if values.is_valid(row) && passes(row) {
                    self.add(group, values.value(row), 1)?;
                }
            }
        } else {
            let values = cast(values, &DataType::Int64)?;
            let values = values.as_primitive::<Int64Type>();
            for (row, &group) in group_indices.iter().enumerate() {
                if values.is_valid(row) && passes(row) {
                    self.add(group, values.value(row).into(), 1)?;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let scale = self.scale as i32;
        match self.output {
            Output::BigintSum => {
                let values = sums
                    .iter()
                    .zip(&counts)
                    .map(|(&sum, &count)| {
                        if count == 0 {
                            return Ok(None);
                        }
                        i64::try_from(sum).map(Some).map_err(|_| bigint_overflow())
                    })
                    .collect::<DfResult<Int64Array>>()?;
                Ok(Arc::new(values))
            }
            Output::Sum => keys_array(sums.len(), |group| {
                if counts[group] == 0 {
                    return Ok(None);
                }
                Ok(Some(Numeric::from_decimal(
                    BigInt::from(sums[group]),
                    scale,
                )?))
            }),
            Output::Average => keys_array(sums.len(), |group| {
                if counts[group] == 0 {
                    return Ok(None);
                }
                let sum = Numeric::from_decimal(BigInt::from(sums[group]), scale)?;
                Ok(Some(sum.div(&Numeric::from_i64(counts[group]))?))
            }),
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let sums = Decimal128Array::from(sums).with_precision_and_scale(38, self.scale)?;
        Ok(vec![Arc::new(sums), Arc::new(Int64Array::from(counts))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let (Some(sums), Some(counts)) = (values.first(), values.get(1)) else {
            return Ok(());
        };
        let sums = sums.as_primitive::<Decimal128Type>();
        let counts = counts.as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if sums.is_valid(row) {
                self.add(group, sums.value(row), counts.value(row))?;
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
        let fixed = fixed_values(values)?;
        let mut sums = Vec::with_capacity(fixed.len());
        let mut counts = Vec::with_capacity(fixed.len());
        for (row, value) in fixed.into_iter().enumerate() {
            let passes = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            match value.filter(|_| passes) {
                Some(v) => {
                    sums.push(Some(v));
                    counts.push(1i64);
                }
                None => {
                    sums.push(None);
                    counts.push(0);
                }
            }
        }
        let sums = Decimal128Array::from(sums).with_precision_and_scale(38, self.scale)?;
        Ok(vec![Arc::new(sums), Arc::new(Int64Array::from(counts))])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.counts.capacity() * 8
    }
}

/// DataFusion's `single_distinct_aggregation_to_group_by`, except over a plain `sum` of small
/// integers.
///
/// The rule splits `sum(DISTINCT a), sum(b)` into an inner aggregate grouped by `a` and an
/// outer one summing the inner sums. A `sum` of small integers is a `bigint`, and the `sum` of
/// those `bigint`s would be a `numeric`: the plan's type would change, so such aggregates keep
/// their one-step plan.
#[derive(Debug, Default)]
pub(crate) struct SingleDistinctSums {
    inner: datafusion::optimizer::single_distinct_to_groupby::SingleDistinctToGroupBy,
}

impl SingleDistinctSums {
    /// Whether `aggregate` sums small integers without DISTINCT.
    fn sums_small_integers(aggregate: &datafusion::logical_expr::Aggregate) -> bool {
        use datafusion::logical_expr::expr::AggregateFunction as Call;
        use datafusion::logical_expr::ExprSchemable;
        aggregate.aggr_expr.iter().any(|expr| match expr {
            datafusion::logical_expr::Expr::AggregateFunction(Call { func, params }) => {
                func.name() == "sum"
                    && !params.distinct
                    && params.args.first().is_some_and(|arg| {
                        arg.get_type(aggregate.input.schema())
                            .is_ok_and(|t| is_small_int(&t))
                    })
            }
            _ => false,
        })
    }
}

impl datafusion::optimizer::OptimizerRule for SingleDistinctSums {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::ApplyOrder> {
        self.inner.apply_order()
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: datafusion::logical_expr::LogicalPlan,
        config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> DfResult<datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>>
    {
        match &plan {
            datafusion::logical_expr::LogicalPlan::Aggregate(aggregate)
                if Self::sums_small_integers(aggregate) =>
            {
                Ok(datafusion::common::tree_node::Transformed::no(plan))
            }
            _ => self.inner.rewrite(plan, config),
        }
    }
}

// ---- sum of fixed-point products ----

/// `floe_sum_product(x, y)`: `sum(x * y)` of integers or `Decimal128`s whose product is
/// planned as numeric (its digits could pass 38, see `numeric::plan_binary_op`), without
/// building a numeric per row: each product and the per-group sums are `i128`s at the
/// product's scale, a group whose sum leaves `i128` goes on in big numbers. The result is
/// the same numeric `sum` gives (TPC-H Q1's `sum(l_extendedprice * (1 - l_discount) *
/// (1 + l_tax))`). [`SumOfProducts`] puts it in place of such sums.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SumProduct {
    signature: Signature,
}

const SUM_PRODUCT: &str = "floe_sum_product";

fn sum_product_udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(SumProduct {
        signature: Signature::any(2, Volatility::Immutable),
    }))
}

/// The scale of a fixed-point operand (integers: 0), `None` for other types.
fn fixed_scale(data_type: &DataType) -> Option<u32> {
    match data_type {
        DataType::Decimal128(_, s) if *s >= 0 => Some(*s as u32),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Some(0),
        _ => None,
    }
}

/// Operands as `i128` mantissas (integers cast to `Decimal128(38, 0)`).
fn fixed_operand(array: &ArrayRef) -> DfResult<ArrayRef> {
    Ok(match array.data_type() {
        DataType::Decimal128(..) => array.clone(),
        _ => cast(array, &DataType::Decimal128(38, 0))?,
    })
}

impl AggregateUDFImpl for SumProduct {
    fn name(&self) -> &str {
        SUM_PRODUCT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::LargeBinary)
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        Ok(Arc::new(numeric_field(SUM_PRODUCT, None)))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(SingleGroup(self.groups(args.expr_fields)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "sum"),
                DataType::LargeBinary,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "count"),
                DataType::Int64,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(self.groups(args.expr_fields)?))
    }

    fn default_value(&self, _data_type: &DataType) -> DfResult<ScalarValue> {
        Ok(ScalarValue::LargeBinary(None))
    }
}

impl SumProduct {
    fn groups(&self, fields: &[FieldRef]) -> DfResult<ProductGroups> {
        let scale = |i: usize| fields.get(i).and_then(|f| fixed_scale(f.data_type()));
        match (scale(0), scale(1)) {
            (Some(x), Some(y)) => Ok(ProductGroups {
                scale: x + y,
                sums: Vec::new(),
                big: Vec::new(),
                counts: Vec::new(),
            }),
            _ => Err(
                crate::SqlError::internal(format!("{SUM_PRODUCT}: operands not fixed-point"))
                    .into(),
            ),
        }
    }
}

/// Per group: the `i128` sum of products at `scale`, the part that left `i128` (if any),
/// and the count of products summed.
#[derive(Debug)]
struct ProductGroups {
    scale: u32,
    sums: Vec<i128>,
    big: Vec<Option<Numeric>>,
    counts: Vec<i64>,
}

impl ProductGroups {
    fn grow(&mut self, total: usize) {
        self.sums.resize(total, 0);
        self.big.resize(total, None);
        self.counts.resize(total, 0);
    }

    /// Adds `value` (a mantissa at `scale`) to `group`, or its exact value when `value`
    /// is `None` (the product left `i128`).
    fn add(
        &mut self,
        group: usize,
        value: Option<i128>,
        exact: impl FnOnce() -> DfResult<Numeric>,
    ) -> DfResult<()> {
        if let Some(v) = value {
            if let Some(sum) = self.sums[group].checked_add(v) {
                self.sums[group] = sum;
                return Ok(());
            }
        }
        let exact = match value {
            Some(v) => Numeric::from_decimal(BigInt::from(v), self.scale as i32)?,
            None => exact()?,
        };
        let big = match self.big[group].take() {
            Some(b) => b.add(&exact)?,
            None => exact,
        };
        self.big[group] = Some(big);
        Ok(())
    }

    /// The group's sum (`None` with no products).
    fn value(&self, group: usize) -> DfResult<Option<Numeric>> {
        if self.counts[group] == 0 {
            return Ok(None);
        }
        let fixed = Numeric::from_decimal(BigInt::from(self.sums[group]), self.scale as i32)?;
        Ok(Some(match &self.big[group] {
            Some(big) => big.add(&fixed)?,
            None => fixed,
        }))
    }

    /// The sums of the groups `emit_to` emits.
    fn values(&self, emit_to: EmitTo) -> DfResult<Vec<Option<Numeric>>> {
        let n = match emit_to {
            EmitTo::All => self.counts.len(),
            EmitTo::First(n) => n.min(self.counts.len()),
        };
        (0..n).map(|g| self.value(g)).collect()
    }

    fn emit(&mut self, emit_to: EmitTo) -> (Vec<i128>, Vec<Option<Numeric>>, Vec<i64>) {
        (
            emit_to.take_needed(&mut self.sums),
            emit_to.take_needed(&mut self.big),
            emit_to.take_needed(&mut self.counts),
        )
    }
}

impl GroupsAccumulator for ProductGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let (Some(x), Some(y)) = (values.first(), values.get(1)) else {
            return Ok(());
        };
        let (x, y) = (fixed_operand(x)?, fixed_operand(y)?);
        let (xs, ys) = (
            x.as_primitive::<Decimal128Type>(),
            y.as_primitive::<Decimal128Type>(),
        );
        for (row, &group) in group_indices.iter().enumerate() {
            if xs.is_null(row)
                || ys.is_null(row)
                || opt_filter.is_some_and(|f| !f.is_valid(row) || !f.value(row))
            {
                continue;
            }
            let (m, n) = (xs.value(row), ys.value(row));
            self.add(group, m.checked_mul(n), || {
                let p = value_at(&x, row)?.ok_or_else(overflow)?;
                let q = value_at(&y, row)?.ok_or_else(overflow)?;
                Ok(p.mul(&q)?)
            })?;
            self.counts[group] += 1;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> DfResult<ArrayRef> {
        let values = self.values(emit_to)?;
        let n = values.len();
        self.emit(emit_to);
        keys_array(n, |g| Ok(values[g].clone()))
    }

    fn state(&mut self, emit_to: EmitTo) -> DfResult<Vec<ArrayRef>> {
        let values = self.values(emit_to)?;
        let n = values.len();
        let (_, _, counts) = self.emit(emit_to);
        Ok(vec![
            keys_array(n, |g| Ok(values[g].clone()))?,
            Arc::new(Int64Array::from(counts)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> DfResult<()> {
        self.grow(total_num_groups);
        let (Some(sums), Some(counts)) = (values.first(), values.get(1)) else {
            return Ok(());
        };
        let keys = sums.as_binary::<i64>();
        let counts = counts.as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            if counts.is_null(row) || keys.is_null(row) {
                continue;
            }
            let key = keys.value(row);
            let fast = fixed_from_key(key)
                .filter(|(_, scale)| *scale == self.scale)
                .map(|(m, _)| m);
            self.add(group, fast, || Ok(Numeric::from_key(key)?))?;
            self.counts[group] += counts.value(row);
        }
        Ok(())
    }

    /// Each row as a state of its own: its product and a count of 1 (0 when filtered out
    /// or NULL).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> DfResult<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut single = ProductGroups {
            scale: self.scale,
            sums: Vec::new(),
            big: Vec::new(),
            counts: Vec::new(),
        };
        let groups: Vec<usize> = (0..rows).collect();
        single.update_batch(values, &groups, opt_filter, rows)?;
        let values = single.values(EmitTo::All)?;
        Ok(vec![
            keys_array(rows, |g| Ok(values[g].clone()))?,
            Arc::new(Int64Array::from(single.counts)),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16 + self.big.capacity() * 48 + self.counts.capacity() * 8
    }
}

/// [`ProductGroups`] as a one-group [`Accumulator`] (no GROUP BY).
#[derive(Debug)]
struct SingleGroup(ProductGroups);

impl Accumulator for SingleGroup {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = values.first().map_or(0, |v| v.len());
        self.0.update_batch(values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        self.0.grow(1);
        Ok(scalar_key(self.0.value(0)?.as_ref()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.0.size()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.0.grow(1);
        Ok(vec![
            scalar_key(self.0.value(0)?.as_ref()),
            ScalarValue::Int64(Some(self.0.counts[0])),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let rows = states.first().map_or(0, |v| v.len());
        self.0.merge_batch(states, &vec![0; rows], 1)
    }
}

/// An optimizer rule: `sum(x * y)` where the product of fixed-point `x` and `y` is planned
/// as numeric becomes [`SumProduct`] (same result, no numeric per row). Aggregates only
/// (not window functions), without DISTINCT, FILTER or ORDER BY.
#[derive(Debug, Default)]
pub struct SumOfProducts;

impl OptimizerRule for SumOfProducts {
    fn name(&self) -> &str {
        "floe_sum_of_products"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        let schema = aggregate.input.schema().clone();
        let mut changed = false;
        let mut aggr_expr = Vec::with_capacity(aggregate.aggr_expr.len());
        for expr in aggregate.aggr_expr.iter() {
            match product_sum(expr, &schema) {
                Some(rewritten) => {
                    changed = true;
                    let name = expr.schema_name().to_string();
                    aggr_expr.push(rewritten.alias(name));
                }
                None => aggr_expr.push(expr.clone()),
            }
        }
        if !changed {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        let rewritten = Aggregate::try_new(
            aggregate.input.clone(),
            aggregate.group_expr.clone(),
            aggr_expr,
        )?;
        Ok(Transformed::yes(LogicalPlan::Aggregate(rewritten)))
    }
}

/// `floe_sum_product(x, y)` for `sum(floe_numeric_mul(x, y))` of fixed-point `x`, `y`.
fn product_sum(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    if let Expr::Alias(alias) = expr {
        return product_sum(&alias.expr, schema);
    }
    let Expr::AggregateFunction(AggregateFunction { func, params }) = expr else {
        return None;
    };
    if func.name() != "sum"
        || params.distinct
        || params.filter.is_some()
        || !params.order_by.is_empty()
        || params.args.len() != 1
    {
        return None;
    }
    let Expr::ScalarFunction(product) = &params.args[0] else {
        return None;
    };
    if product.name() != "floe_numeric_mul" || product.args.len() != 2 {
        return None;
    }
    let fixed = |e: &Expr| {
        e.get_type(schema)
            .ok()
            .is_some_and(|t| fixed_scale(&t).is_some())
    };
    if !product.args.iter().all(fixed) {
        return None;
    }
    Some(Expr::AggregateFunction(AggregateFunction::new_udf(
        sum_product_udaf(),
        product.args.clone(),
        false,
        None,
        vec![],
        None,
    )))
}

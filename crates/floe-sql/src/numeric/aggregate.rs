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
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility,
};
use num_bigint::BigInt;

use super::functions::{keys_array, scalar_key, value_at};
use super::value::{Numeric, NumericError, SCALE_BYTES};
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
}

impl WideSum {
    fn new() -> WideSum {
        WideSum {
            finite: Numeric::zero(),
            nan: 0,
            infinities: 0,
            negative_infinities: 0,
            scales: BTreeMap::new(),
        }
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
                for row in 0..values.len() {
                    if let Some(value) = value_at(values.as_ref(), row)? {
                        self.add_numeric(&value, retract)?;
                        self.count += sign as i64;
                    }
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

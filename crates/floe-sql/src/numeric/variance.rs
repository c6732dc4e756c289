//! `stddev`, `stddev_pop`, `variance`/`var_samp` and `var_pop` of integers and numerics, as
//! PostgreSQL computes them: exact sums of the values and of their squares, then
//! `(N·Σx² − (Σx)²) / (N·(N−1))` (or `N²`) with PostgreSQL's division scale, and for the
//! standard deviations the square root at that scale (`numeric_stddev_internal`). The result
//! is `numeric`. Float arguments are `functions::float_aggregates`' (PostgreSQL's
//! Youngs-Cramer sums and overflow errors).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ReversedUDAF, Signature, Volatility,
};

use super::functions::{scalar_key, value_at};
use super::value::Numeric;
use super::{is_numeric_field_type, numeric_field};
use crate::functions::float_aggregates::{self, FloatAggregate};

/// One of the four statistics over DataFusion's function (`inner`) of the same name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Statistic {
    inner: Arc<AggregateUDF>,
    /// `variance`, not the standard deviation.
    variance: bool,
    /// Sample (N − 1), not population.
    sample: bool,
    aliases: Vec<String>,
    signature: Signature,
}

/// The replacements of DataFusion's `var`, `var_pop`, `stddev` and `stddev_pop` among
/// `functions` (`var` also answers to PostgreSQL's `variance`).
pub(crate) fn udafs(functions: impl IntoIterator<Item = Arc<AggregateUDF>>) -> Vec<AggregateUDF> {
    functions
        .into_iter()
        .filter_map(|inner| {
            let (variance, sample) = match inner.name() {
                "var" => (true, true),
                "var_pop" => (true, false),
                "stddev" => (false, true),
                "stddev_pop" => (false, false),
                _ => return None,
            };
            let mut aliases = inner.aliases().to_vec();
            if inner.name() == "var" {
                aliases.push("variance".into());
            }
            Some(AggregateUDF::new_from_impl(Statistic {
                inner,
                variance,
                sample,
                aliases,
                signature: Signature::user_defined(Volatility::Immutable),
            }))
        })
        .collect()
}

/// Whether PostgreSQL computes the statistic of `data_type` in numeric.
fn takes(data_type: &DataType) -> bool {
    is_numeric_field_type(data_type)
        || matches!(
            data_type,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        )
}

impl Statistic {
    /// The float aggregate computing a call over `data_type`, if it is a float.
    fn float(&self, data_type: Option<&DataType>) -> Option<(FloatAggregate, DataType)> {
        let data_type = data_type?;
        let sample = self.sample;
        let kind = match self.variance {
            true => FloatAggregate::Variance { sample },
            false => FloatAggregate::Stddev { sample },
        };
        float_aggregates::takes(data_type).then(|| (kind, data_type.clone()))
    }
}

impl AggregateUDFImpl for Statistic {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if let ([_], Some((float, t))) = (arg_types, self.float(arg_types.first())) {
            return Ok(vec![float.coerce(&t)]);
        }
        match arg_types {
            [t] if takes(t) => Ok(arg_types.to_vec()),
            _ => super::coerce_like(arg_types, self.inner.as_ref()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if let ([_], Some((float, t))) = (arg_types, self.float(arg_types.first())) {
            return Ok(float.return_type(&t));
        }
        match arg_types {
            [t] if takes(t) => Ok(DataType::LargeBinary),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        let input = arg_fields.first().map(|f| f.data_type());
        if let ([_], Some((float, t))) = (arg_fields, self.float(input)) {
            return Ok(Arc::new(Field::new(
                self.name(),
                float.return_type(&t),
                true,
            )));
        }
        match arg_fields {
            [f] if takes(f.data_type()) => Ok(Arc::new(numeric_field(self.name(), None))),
            _ => self.inner.inner().return_field(arg_fields),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if let Some((float, t)) = self.float(args.expr_fields.first().map(|f| f.data_type())) {
            return Ok(match args.is_distinct {
                true => float.distinct_accumulator(&t),
                false => float.accumulator(&t),
            });
        }
        match args.expr_fields.first() {
            Some(f) if takes(f.data_type()) && !args.is_distinct => Ok(Box::new(
                StatisticAccumulator::new(self.variance, self.sample),
            )),
            _ => self.inner.inner().accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        if let Some((float, t)) = self.float(args.input_fields.first().map(|f| f.data_type())) {
            return Ok(match args.is_distinct {
                true => float.distinct_state_fields(args.name),
                false => float.state_fields(args.name, &t),
            });
        }
        match args.input_fields.first() {
            Some(f) if takes(f.data_type()) && !args.is_distinct => {
                let field = |suffix: &str, data_type: DataType| {
                    Arc::new(Field::new(
                        format_state_name(args.name, suffix),
                        data_type,
                        true,
                    ))
                };
                Ok(vec![
                    field("count", DataType::Int64),
                    field("sum", DataType::LargeBinary),
                    field("sum_squares", DataType::LargeBinary),
                ])
            }
            _ => self.inner.inner().state_fields(args),
        }
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if self
            .float(args.expr_fields.first().map(|f| f.data_type()))
            .is_some()
        {
            return !args.is_distinct;
        }
        match args.expr_fields.first() {
            Some(f) if takes(f.data_type()) => false,
            _ => self.inner.inner().groups_accumulator_supported(args),
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        if let Some((float, t)) = self.float(args.expr_fields.first().map(|f| f.data_type())) {
            return Ok(float.groups_accumulator(&t));
        }
        self.inner.inner().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if let Some((float, t)) = self.float(args.expr_fields.first().map(|f| f.data_type())) {
            return Ok(float.sliding_accumulator(&t));
        }
        match args.expr_fields.first() {
            Some(f) if takes(f.data_type()) => self.accumulator(args),
            _ => self.inner.inner().create_sliding_accumulator(args),
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        if is_numeric_field_type(data_type) {
            return Ok(ScalarValue::LargeBinary(None));
        }
        self.inner.inner().default_value(data_type)
    }
}

/// N, Σx and Σx² of one group, exact; NaN and infinities make the result NaN.
#[derive(Debug)]
struct StatisticAccumulator {
    variance: bool,
    sample: bool,
    count: i64,
    sum: Numeric,
    sum_squares: Numeric,
}

impl StatisticAccumulator {
    fn new(variance: bool, sample: bool) -> StatisticAccumulator {
        StatisticAccumulator {
            variance,
            sample,
            count: 0,
            sum: Numeric::zero(),
            sum_squares: Numeric::zero(),
        }
    }

    fn add(&mut self, values: &ArrayRef, retract: bool) -> DfResult<()> {
        for row in 0..values.len() {
            let Some(x) = value_at(values.as_ref(), row)? else {
                continue;
            };
            let square = x.mul(&x)?;
            if retract {
                self.count -= 1;
                self.sum = self.sum.sub(&x)?;
                self.sum_squares = self.sum_squares.sub(&square)?;
            } else {
                self.count += 1;
                self.sum = self.sum.add(&x)?;
                self.sum_squares = self.sum_squares.add(&square)?;
            }
        }
        Ok(())
    }

    /// `numeric_stddev_internal`.
    fn result(&self) -> DfResult<Option<Numeric>> {
        if self.count == 0 || (self.sample && self.count <= 1) {
            return Ok(None);
        }
        if !self.sum.is_finite() || !self.sum_squares.is_finite() {
            return Ok(Some(Numeric::NaN));
        }
        let n = Numeric::from_i64(self.count);
        let numerator = n.mul(&self.sum_squares)?.sub(&self.sum.mul(&self.sum)?)?;
        if numerator.cmp_value(&Numeric::zero()).is_le() {
            // Round-off cannot happen in exact arithmetic, but PostgreSQL's answer is `0`.
            return Ok(Some(Numeric::zero()));
        }
        let other = if self.sample {
            Numeric::from_i64(self.count - 1)
        } else {
            n.clone()
        };
        let variance = numerator.div(&n.mul(&other)?)?;
        if self.variance {
            return Ok(Some(variance));
        }
        Ok(Some(variance.sqrt_at(variance.scale())?))
    }
}

impl Accumulator for StatisticAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match values.first() {
            Some(v) => self.add(v, false),
            None => Ok(()),
        }
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        match values.first() {
            Some(v) => self.add(v, true),
            None => Ok(()),
        }
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(scalar_key(self.result()?.as_ref()))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 64
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.count)),
            scalar_key(Some(&self.sum)),
            scalar_key(Some(&self.sum_squares)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [counts, sums, squares] = states else {
            return Ok(());
        };
        let counts = counts.as_primitive::<Int64Type>();
        for row in 0..counts.len() {
            if counts.is_null(row) {
                continue;
            }
            self.count += counts.value(row);
            if let Some(sum) = value_at(sums.as_ref(), row)? {
                self.sum = self.sum.add(&sum)?;
            }
            if let Some(square) = value_at(squares.as_ref(), row)? {
                self.sum_squares = self.sum_squares.add(&square)?;
            }
        }
        Ok(())
    }
}

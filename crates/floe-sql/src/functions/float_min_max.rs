//! `min`/`max` of `real` and `double precision` in PostgreSQL's order: `NaN` above every
//! number, `±Infinity` as values.
//!
//! DataFusion's grouped `min`/`max` of floats start each group at the largest (smallest)
//! finite value and let a `NaN` replace whatever came before: `min('Infinity')` of a group
//! was `1.7976931348623157e+308` and `min` of `-Infinity` and `NaN` was `NaN`. Its
//! ungrouped accumulator (Arrow's kernels, `NaN` greatest) answers as PostgreSQL, so for
//! float arguments these wrappers leave the grouped form out and DataFusion runs that one per
//! group; every other type and every other property (statistics, ordering, window frames) is
//! DataFusion's own `min`/`max`.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::AggregateFunctionParams;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, GroupsAccumulator, ReversedUDAF, SetMonotonicity,
    Signature, StatisticsArgs,
};

/// DataFusion's `min` or `max` (`inner`), without its grouped accumulator for floats.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FloatMinMax {
    inner: Arc<AggregateUDF>,
}

/// The wrappers of `min` and `max`.
pub(crate) fn udafs(min: Arc<AggregateUDF>, max: Arc<AggregateUDF>) -> Vec<AggregateUDF> {
    [min, max]
        .into_iter()
        .map(|inner| AggregateUDF::new_from_impl(FloatMinMax { inner }))
        .collect()
}

fn is_float(args: &AccumulatorArgs) -> bool {
    args.expr_fields.first().is_some_and(|f| {
        matches!(
            f.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64
        )
    })
}

impl AggregateUDFImpl for FloatMinMax {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> DfResult<String> {
        self.inner.inner().schema_name(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> DfResult<String> {
        self.inner.inner().display_name(params)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        self.inner.inner().return_field(arg_fields)
    }

    fn is_nullable(&self) -> bool {
        self.inner.inner().is_nullable()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        self.inner.inner().accumulator(args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.inner().state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !is_float(&args) && self.inner.inner().groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        self.inner.inner().create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        self.inner.inner().create_sliding_accumulator(args)
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.inner().order_sensitivity()
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        self.inner.inner().reverse_expr()
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.inner().is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.inner().value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        self.inner.inner().default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.inner().supports_null_handling_clause()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.inner().set_monotonicity(data_type)
    }
}

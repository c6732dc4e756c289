//! `array_agg` whose array keeps its elements' PostgreSQL type.
//!
//! DataFusion's `array_agg` makes its list's item field from the input's Arrow type alone, so
//! the type tag of `uuid`, `jsonb`, `varchar`, `oid`, … (see [`crate::types::PG_TYPE_KEY`]) was
//! lost: `array_agg(atttypid)` was described as `int4[]` (PostgreSQL: `oid[]`), which sent
//! asyncpg's type introspection into endless recursion, and `array_agg(u)` over `uuid` was
//! `text[]`. [`TaggedArrayAgg`] is DataFusion's function with one change: its result field is
//! tagged as an array of the argument's type (`uuid[]`). The tag is on the list's own field,
//! not its item field, so the Arrow type (and every array DataFusion builds) stays as it was.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{
    AggregateFunction, AggregateFunctionParams, WindowFunctionParams,
};
use datafusion::logical_expr::function::{
    AccumulatorArgs, AggregateFunctionSimplification, StateFieldsArgs,
};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Expr, GroupsAccumulator, Operator,
    ReversedUDAF, SetMonotonicity, Signature, StatisticsArgs,
};

use crate::types::PG_TYPE_KEY;

/// `array_agg` keeping the argument's type tag on its item field.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TaggedArrayAgg {
    inner: UdfEq<Arc<dyn AggregateUDFImpl>>,
}

impl TaggedArrayAgg {
    fn wrap(inner: Arc<dyn AggregateUDFImpl>) -> TaggedArrayAgg {
        TaggedArrayAgg {
            inner: inner.into(),
        }
    }

    /// The function to register in place of DataFusion's `array_agg`.
    pub(crate) fn udaf() -> AggregateUDF {
        let inner = datafusion::functions_aggregate::array_agg::array_agg_udaf();
        AggregateUDF::new_from_shared_impl(Arc::new(TaggedArrayAgg::wrap(Arc::clone(
            inner.inner(),
        ))))
    }
}

/// `field` (the list) tagged as an array of `argument`'s tagged type (`uuid[]`, `oid[]`, …).
fn tag_array(field: FieldRef, argument: &Field) -> FieldRef {
    let Some(tag) = argument.metadata().get(PG_TYPE_KEY) else {
        return field;
    };
    if tag.ends_with("[]") {
        return field;
    }
    let mut metadata = field.metadata().clone();
    metadata.insert(PG_TYPE_KEY.to_string(), format!("{tag}[]"));
    Arc::new(field.as_ref().clone().with_metadata(metadata))
}

impl AggregateUDFImpl for TaggedArrayAgg {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field(&self, arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        let field = self.inner.return_field(arg_fields)?;
        Ok(match arg_fields.first() {
            Some(argument) => tag_array(field, argument),
            None => field,
        })
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        self.inner.accumulator(acc_args)
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, params: &AggregateFunctionParams) -> DfResult<String> {
        self.inner.schema_name(params)
    }

    fn human_display(&self, params: &AggregateFunctionParams) -> DfResult<String> {
        self.inner.human_display(params)
    }

    fn window_function_schema_name(&self, params: &WindowFunctionParams) -> DfResult<String> {
        self.inner.window_function_schema_name(params)
    }

    fn display_name(&self, params: &AggregateFunctionParams) -> DfResult<String> {
        self.inner.display_name(params)
    }

    fn window_function_display_name(&self, params: &WindowFunctionParams) -> DfResult<String> {
        self.inner.window_function_display_name(params)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> DfResult<Box<dyn GroupsAccumulator>> {
        self.inner.create_groups_accumulator(args)
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn with_beneficial_ordering(
        self: Arc<Self>,
        beneficial_ordering: bool,
    ) -> DfResult<Option<Arc<dyn AggregateUDFImpl>>> {
        Ok(Arc::clone(&self.inner)
            .with_beneficial_ordering(beneficial_ordering)?
            .map(|inner| Arc::new(TaggedArrayAgg::wrap(inner)) as Arc<dyn AggregateUDFImpl>))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        self.inner.order_sensitivity()
    }

    fn simplify(&self) -> Option<AggregateFunctionSimplification> {
        self.inner.simplify()
    }

    fn simplify_expr_op_literal(
        &self,
        agg_function: &AggregateFunction,
        arg: &Expr,
        op: Operator,
        lit: &Expr,
        arg_is_left: bool,
    ) -> DfResult<Option<Expr>> {
        self.inner
            .simplify_expr_op_literal(agg_function, arg, op, lit, arg_is_left)
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        match self.inner.reverse_expr() {
            ReversedUDAF::Reversed(reversed) => {
                ReversedUDAF::Reversed(Arc::new(AggregateUDF::new_from_shared_impl(Arc::new(
                    TaggedArrayAgg::wrap(Arc::clone(reversed.inner())),
                ))))
            }
            other => other,
        }
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn is_nullable(&self) -> bool {
        self.inner.is_nullable()
    }

    fn is_descending(&self) -> Option<bool> {
        self.inner.is_descending()
    }

    fn value_from_stats(&self, statistics_args: &StatisticsArgs) -> Option<ScalarValue> {
        self.inner.value_from_stats(statistics_args)
    }

    fn default_value(&self, data_type: &DataType) -> DfResult<ScalarValue> {
        self.inner.default_value(data_type)
    }

    fn supports_null_handling_clause(&self) -> bool {
        self.inner.supports_null_handling_clause()
    }

    fn supports_within_group_clause(&self) -> bool {
        self.inner.supports_within_group_clause()
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        self.inner.set_monotonicity(data_type)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

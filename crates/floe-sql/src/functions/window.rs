//! Window functions typed as PostgreSQL types them: `row_number`, `rank` and `dense_rank` are
//! `bigint` and `ntile` is `integer`, where DataFusion's are unsigned 64-bit integers (which
//! Floe could only describe as `numeric`). [`Narrowed`] wraps the built-in under its own name
//! and casts what its evaluator computes; every value fits (a rank never exceeds a row count).

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::function::{
    ExpressionArgs, PartitionEvaluatorArgs, WindowUDFFieldArgs,
};
use datafusion::logical_expr::window_state::WindowAggState;
use datafusion::logical_expr::{
    Documentation, LimitEffect, PartitionEvaluator, ReversedUDWF, Signature, WindowUDF,
    WindowUDFImpl,
};
use datafusion::physical_expr::PhysicalExpr;

/// The window functions PostgreSQL types differently, with their PostgreSQL result type.
const NARROWED: [(&str, DataType); 4] = [
    ("row_number", DataType::Int64),
    ("rank", DataType::Int64),
    ("dense_rank", DataType::Int64),
    ("ntile", DataType::Int32),
];

/// The retyped versions of the built-ins `state` has (each replaces the built-in when
/// registered).
pub(crate) fn udwfs(state: &SessionState) -> Vec<WindowUDF> {
    NARROWED
        .iter()
        .filter_map(|(name, to)| {
            let inner = state.window_functions().get(*name)?.clone();
            Some(WindowUDF::new_from_impl(Narrowed {
                inner,
                to: to.clone(),
            }))
        })
        .collect()
}

/// A built-in window function whose results are cast to `to`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Narrowed {
    inner: Arc<WindowUDF>,
    to: DataType,
}

impl WindowUDFImpl for Narrowed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn expressions(&self, expr_args: ExpressionArgs) -> Vec<Arc<dyn PhysicalExpr>> {
        self.inner.expressions(expr_args)
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> DfResult<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(NarrowedEvaluator {
            inner: self.inner.partition_evaluator_factory(args)?,
            to: self.to.clone(),
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> DfResult<FieldRef> {
        let field = self.inner.field(field_args)?;
        Ok(Arc::new(
            field.as_ref().clone().with_data_type(self.to.clone()),
        ))
    }

    fn sort_options(&self) -> Option<datafusion::arrow::compute::SortOptions> {
        self.inner.sort_options()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn reverse_expr(&self) -> ReversedUDWF {
        match self.inner.reverse_expr() {
            ReversedUDWF::Reversed(reversed) => {
                ReversedUDWF::Reversed(Arc::new(WindowUDF::new_from_impl(Narrowed {
                    inner: reversed,
                    to: self.to.clone(),
                })))
            }
            other => other,
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn limit_effect(&self, args: &[Arc<dyn PhysicalExpr>]) -> LimitEffect {
        self.inner.inner().limit_effect(args)
    }
}

/// The built-in's evaluator, its results cast.
#[derive(Debug)]
struct NarrowedEvaluator {
    inner: Box<dyn PartitionEvaluator>,
    to: DataType,
}

impl PartitionEvaluator for NarrowedEvaluator {
    fn memoize(&mut self, state: &mut WindowAggState) -> DfResult<()> {
        self.inner.memoize(state)
    }

    fn get_range(&self, idx: usize, n_rows: usize) -> DfResult<Range<usize>> {
        self.inner.get_range(idx, n_rows)
    }

    fn is_causal(&self) -> bool {
        self.inner.is_causal()
    }

    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> DfResult<ArrayRef> {
        Ok(cast(&self.inner.evaluate_all(values, num_rows)?, &self.to)?)
    }

    fn evaluate(&mut self, values: &[ArrayRef], range: &Range<usize>) -> DfResult<ScalarValue> {
        self.inner.evaluate(values, range)?.cast_to(&self.to)
    }

    fn evaluate_all_with_rank(
        &self,
        num_rows: usize,
        ranks_in_partition: &[Range<usize>],
    ) -> DfResult<ArrayRef> {
        Ok(cast(
            &self
                .inner
                .evaluate_all_with_rank(num_rows, ranks_in_partition)?,
            &self.to,
        )?)
    }

    fn supports_bounded_execution(&self) -> bool {
        self.inner.supports_bounded_execution()
    }

    fn uses_window_frame(&self) -> bool {
        self.inner.uses_window_frame()
    }

    fn include_rank(&self) -> bool {
        self.inner.include_rank()
    }
}

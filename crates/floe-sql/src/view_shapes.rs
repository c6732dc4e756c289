//! Shapes of an optimised plan the view engine (`floe-views`) cannot maintain as they are,
//! rewritten into equivalent shapes it can, before the plan is compiled for a materialized
//! view (issue 17):
//! - an uncorrelated scalar subquery (an [`crate::apply`] node, which runs it per row) becomes
//!   a join with the subquery's first value and row count (aggregates the view maintains like
//!   any other); each row's answer is the value, NULL without rows, 21000 with more than one
//!   ([`SingleValue`], [`OneRow`]);
//! - an uncorrelated EXISTS in an expression becomes a join with `count(*) > 0`;
//! - `x NOT IN (subquery)` (DataFusion's null-aware anti join) becomes the anti join on
//!   equality plus PostgreSQL's NULL rule, read from the subquery's row and NULL counts: when
//!   the subquery has rows, a NULL `x` or a NULL among them keeps no row.
//!
//! Invariant: a rewritten plan returns exactly the rows (and the errors) of the plan it
//! replaces, with the same schema.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, JoinType, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    lit, Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, ExprFunctionExt,
    LogicalPlan, LogicalPlanBuilder, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

use crate::apply::{uncorrelated, UncorrelatedKind};
use crate::error::{sqlstate, SqlError};

/// `plan` with the shapes of the module doc rewritten (in subqueries too).
pub(crate) fn for_views(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let rewritten = plan.transform_up(|node| match node {
        LogicalPlan::Extension(extension) => match uncorrelated(extension.node.as_ref())? {
            Some(apply) => {
                let subquery = for_views(apply.subquery)?;
                let mut columns = columns_of(&apply.input);
                let rows = named("__floe_rows");
                let (aggregates, answer) = match apply.kind {
                    // The 21000 of more than one row is raised per input row, as the
                    // subquery is run per row: without input rows, no error.
                    UncorrelatedKind::Scalar => {
                        let value = named("__floe_value");
                        (
                            vec![
                                single_value(first_column(&subquery)).alias("__floe_value"),
                                count_rows().alias("__floe_rows"),
                            ],
                            one_row(value, rows),
                        )
                    }
                    UncorrelatedKind::Exists { negated: false } => {
                        (vec![count_rows().alias("__floe_rows")], rows.gt(lit(0i64)))
                    }
                    UncorrelatedKind::Exists { negated: true } => {
                        (vec![count_rows().alias("__floe_rows")], rows.eq(lit(0i64)))
                    }
                };
                columns.push(answer.alias(apply.answer));
                let right = LogicalPlanBuilder::from(subquery)
                    .aggregate(Vec::<Expr>::new(), aggregates)?
                    .build()?;
                let joined = LogicalPlanBuilder::from(apply.input)
                    .cross_join(right)?
                    .project(columns)?
                    .build()?;
                Ok(Transformed::yes(joined))
            }
            None => Ok(Transformed::no(LogicalPlan::Extension(extension))),
        },
        LogicalPlan::Join(join)
            if join.null_aware
                && join.join_type == JoinType::LeftAnti
                && join.on.len() == 1
                && join.filter.is_none() =>
        {
            let (probe, value) = join.on[0].clone();
            let stats = LogicalPlanBuilder::from(join.right.as_ref().clone())
                .aggregate(
                    Vec::<Expr>::new(),
                    vec![
                        count_rows().alias("__floe_rows"),
                        count_rows()
                            .filter(value.is_null())
                            .build()?
                            .alias("__floe_nulls"),
                    ],
                )?
                .build()?;
            let mut anti = join;
            anti.null_aware = false;
            let anti = LogicalPlan::Join(anti);
            let columns = columns_of(&anti);
            let (rows, nulls) = (named("__floe_rows"), named("__floe_nulls"));
            let keep = rows
                .eq(lit(0i64))
                .or(probe.is_not_null().and(nulls.eq(lit(0i64))));
            let plan = LogicalPlanBuilder::from(anti)
                .cross_join(stats)?
                .filter(keep)?
                .project(columns)?
                .build()?;
            Ok(Transformed::yes(plan))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(rewritten.data)
}

/// Every column of `plan`'s output.
fn columns_of(plan: &LogicalPlan) -> Vec<Expr> {
    plan.schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect()
}

/// A column the rewrite added (unqualified).
fn named(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn first_column(plan: &LogicalPlan) -> Expr {
    let (qualifier, field) = plan.schema().qualified_field(0);
    Expr::Column(Column::new(qualifier.cloned(), field.name()))
}

fn count_rows() -> Expr {
    datafusion::functions_aggregate::expr_fn::count(lit(1i64))
}

fn single_value(value: Expr) -> Expr {
    AggregateUDF::new_from_impl(SingleValue {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![value])
}

/// The first value of a scalar subquery's rows (NULL without rows); [`OneRow`] refuses more
/// than one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleValue {
    signature: Signature,
}

const SINGLE_VALUE: &str = "floe_scalar_subquery";

impl AggregateUDFImpl for SingleValue {
    fn name(&self) -> &str {
        SINGLE_VALUE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }

    /// The subquery's column as it is (its type tags too), always nullable.
    fn return_field(&self, arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        let field = arg_fields
            .first()
            .ok_or_else(|| SqlError::internal(format!("{SINGLE_VALUE} without an argument")))?;
        Ok(Arc::new(
            Field::new(self.name(), field.data_type().clone(), true)
                .with_metadata(field.metadata().clone()),
        ))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let data_type = args.return_field.data_type();
        Ok(Box::new(SingleValueAccumulator {
            rows: 0,
            value: ScalarValue::try_from(data_type)?,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "rows"),
                DataType::Int64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "value"),
                args.return_field.data_type().clone(),
                true,
            )),
        ])
    }
}

#[derive(Debug)]
struct SingleValueAccumulator {
    rows: i64,
    /// The first row's value (NULL until there is one).
    value: ScalarValue,
}

impl SingleValueAccumulator {
    fn take(&mut self, rows: i64, values: &ArrayRef, at: usize) -> DfResult<()> {
        if self.rows == 0 && rows > 0 {
            self.value = ScalarValue::try_from_array(values, at)?;
        }
        self.rows = self.rows.saturating_add(rows);
        Ok(())
    }
}

impl Accumulator for SingleValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let Some(values) = values.first() else {
            return Ok(());
        };
        if !values.is_empty() {
            self.take(values.len() as i64, values, 0)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let [rows, values] = states else {
            return Err(SqlError::internal(format!("{SINGLE_VALUE}: bad state")).into());
        };
        let rows = rows
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| SqlError::internal(format!("{SINGLE_VALUE}: bad state")))?;
        for at in 0..rows.len() {
            if rows.is_valid(at) {
                self.take(rows.value(at), values, at)?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.rows)),
            self.value.clone(),
        ])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        Ok(self.value.clone())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}

fn one_row(value: Expr, rows: Expr) -> Expr {
    ScalarUDF::new_from_impl(OneRow {
        signature: Signature::any(2, Volatility::Immutable),
    })
    .call(vec![value, rows])
}

/// `floe_one_row(value, rows)`: a scalar subquery's answer from its first value and its row
/// count: the value, or 21000 when the subquery returned more than one row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OneRow {
    signature: Signature,
}

impl ScalarUDFImpl for OneRow {
    fn name(&self) -> &str {
        "floe_one_row"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let field = args
            .arg_fields
            .first()
            .ok_or_else(|| SqlError::internal("floe_one_row without arguments"))?;
        Ok(Arc::new(field.as_ref().clone().with_name(self.name())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value, rows] = args.args.as_slice() else {
            return Err(SqlError::internal("floe_one_row takes two arguments").into());
        };
        let rows = rows.to_array(args.number_rows)?;
        let rows = datafusion::common::cast::as_int64_array(&rows)?;
        if rows.iter().any(|n| n.is_some_and(|n| n > 1)) {
            return Err(SqlError::new(
                sqlstate::CARDINALITY_VIOLATION,
                "more than one row returned by a subquery used as an expression",
            )
            .into());
        }
        Ok(value.clone())
    }
}

//! A condition that is NULL keeps no row, as false does.
//!
//! PostgreSQL folds a `WHERE`, `HAVING` or `JOIN … ON` condition with a constant NULL or false
//! part (`x AND NULL::bool`) into a one-time filter and never reads the rows below it, so `x`
//! is never evaluated (nor are its errors raised). DataFusion folds `x AND false` to false and
//! drops the input, but keeps `x AND NULL` (right in a select list, where its value may be
//! false or NULL) and evaluates `x` for every row. [`NullConditions`], right after DataFusion's
//! first constant folding, makes such a condition false; DataFusion's later rules then drop
//! the filter's input (and an inner join's).
//!
//! PostgreSQL's strict operators are NULL when an operand is a NULL constant, and its planner
//! folds them so (`x < NULL::numeric`, `NULL::date - k`). DataFusion does that for its own
//! operators; Floe's (numeric comparisons, checked integer and float arithmetic, date ± days)
//! call [`strict`] from their `simplify`, so such a condition folds to NULL too.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::simplify::ExprSimplifyResult;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{lit, Expr, Filter, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Makes a filter or join condition with a NULL conjunct false (see the module doc).
#[derive(Debug, Default)]
pub struct NullConditions;

impl OptimizerRule for NullConditions {
    fn name(&self) -> &str {
        "floe_null_conditions"
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
        match plan {
            LogicalPlan::Filter(filter) if has_null_conjunct(&filter.predicate) => {
                let filter = Filter::try_new(lit(false), filter.input)?;
                Ok(Transformed::yes(LogicalPlan::Filter(filter)))
            }
            LogicalPlan::Join(mut join) if join.filter.as_ref().is_some_and(has_null_conjunct) => {
                join.filter = Some(lit(false));
                Ok(Transformed::yes(LogicalPlan::Join(join)))
            }
            plan => Ok(Transformed::no(plan)),
        }
    }
}

/// A strict function's simplification: a NULL of `return_type` when an argument is a NULL
/// constant, else the call as it is.
pub(crate) fn strict(
    args: Vec<Expr>,
    return_type: DfResult<DataType>,
) -> DfResult<ExprSimplifyResult> {
    let null_argument = args
        .iter()
        .any(|a| matches!(a, Expr::Literal(value, _) if value.is_null()));
    match return_type {
        Ok(t) if null_argument => match ScalarValue::try_from(&t) {
            Ok(null) => Ok(ExprSimplifyResult::Simplified(Expr::Literal(null, None))),
            Err(_) => Ok(ExprSimplifyResult::Original(args)),
        },
        _ => Ok(ExprSimplifyResult::Original(args)),
    }
}

/// [`strict`] for a function whose result field carries metadata (a type tag): the NULL
/// keeps it, so the plan's schema does not change.
pub(crate) fn strict_field(
    args: Vec<Expr>,
    field: &datafusion::arrow::datatypes::Field,
) -> DfResult<ExprSimplifyResult> {
    let null_argument = args
        .iter()
        .any(|a| matches!(a, Expr::Literal(value, _) if value.is_null()));
    if !null_argument {
        return Ok(ExprSimplifyResult::Original(args));
    }
    let Ok(null) = ScalarValue::try_from(field.data_type()) else {
        return Ok(ExprSimplifyResult::Original(args));
    };
    let metadata = (!field.metadata().is_empty())
        .then(|| datafusion::common::metadata::FieldMetadata::from(field));
    Ok(ExprSimplifyResult::Simplified(Expr::Literal(
        null, metadata,
    )))
}

/// Whether one of `predicate`'s AND-ed parts is a NULL constant.
fn has_null_conjunct(predicate: &Expr) -> bool {
    let null = |e: &Expr| matches!(e, Expr::Literal(value, _) if value.is_null());
    split_conjunction(predicate).iter().any(|part| match part {
        // `nullif(NULL, x)` is NULL whatever `x` is.
        Expr::ScalarFunction(f) if f.name() == "nullif" => f.args.first().is_some_and(null),
        other => null(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{col, LogicalPlanBuilder};
    use datafusion::optimizer::OptimizerContext;

    fn scan() -> LogicalPlanBuilder {
        let schema = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
        datafusion::logical_expr::table_scan(Some("t"), &schema, None).unwrap()
    }

    #[test]
    fn a_null_conjunct_makes_the_filter_false() {
        let null = Expr::Literal(ScalarValue::Boolean(None), None);
        let plan = scan()
            .filter(col("x").gt(lit(0)).and(null.clone()))
            .unwrap()
            .build()
            .unwrap();
        let out = NullConditions
            .rewrite(plan, &OptimizerContext::new())
            .unwrap();
        assert!(out.transformed);
        let LogicalPlan::Filter(filter) = out.data else {
            panic!("a filter")
        };
        assert_eq!(filter.predicate, lit(false));
        // NULL inside an OR is not a conjunct: `x > 0 OR NULL` keeps the rows where x > 0.
        let plan = scan()
            .filter(col("x").gt(lit(0)).or(null))
            .unwrap()
            .build()
            .unwrap();
        let out = NullConditions
            .rewrite(plan, &OptimizerContext::new())
            .unwrap();
        assert!(!out.transformed);
    }
}

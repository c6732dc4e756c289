//! `INTERSECT ALL` and `EXCEPT ALL` with PostgreSQL's multiplicities.
//!
//! A row that appears `m` times on the left and `n` times on the right appears `min(m, n)`
//! times in `INTERSECT ALL` and `max(m - n, 0)` times in `EXCEPT ALL`. DataFusion plans both
//! as a semi or anti join of the two sides on all columns (NULLs equal), which keeps all `m`
//! copies for INTERSECT ALL and none for EXCEPT ALL whenever `n > 0`. [`AllSetOperations`]
//! numbers the copies of each row on both sides (`row_number() OVER (PARTITION BY` every
//! column`)`) and joins on the number too: the `k`-th copy on the left meets the `k`-th on the
//! right, so exactly the counts above survive. Keys pairing a wide `numeric` with an integer
//! or decimal column compare as numerics (in both the ALL and the distinct forms).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, NullEquality, Result as DfResult};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, ExprSchemable, Join, JoinConstraint, JoinType, LogicalPlan,
    LogicalPlanBuilder, Union,
};
use datafusion::optimizer::AnalyzerRule;

use crate::numeric::functions::{converts_to_numeric, udf, Kind};
use crate::numeric::is_numeric_field_type;

/// See the module doc.
#[derive(Debug, Default)]
pub struct AllSetOperations;

impl AnalyzerRule for AllSetOperations {
    fn name(&self) -> &str {
        "floe_all_set_operations"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Join(join) if is_set_operation(&join) => rewrite(join),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }
}

/// The join DataFusion's `LogicalPlanBuilder::intersect_or_except` builds: a semi or anti
/// join on every column with NULLs equal (its left side made distinct unless ALL).
fn is_set_operation(join: &Join) -> bool {
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && join.on.len() == join.left.schema().fields().len()
        && join.on.len() == join.right.schema().fields().len()
        && join
            .on
            .iter()
            .all(|(l, r)| matches!((l, r), (Expr::Column(_), Expr::Column(_))))
}

const LEFT_NUMBER: &str = "__floe_copy_l";
const RIGHT_NUMBER: &str = "__floe_copy_r";

fn rewrite(join: Join) -> DfResult<Transformed<LogicalPlan>> {
    let all = !matches!(join.left.as_ref(), LogicalPlan::Distinct(_));
    let numbered = |plan: &LogicalPlan, name: &str| -> DfResult<LogicalPlan> {
        let columns: Vec<Expr> = plan
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let number = row_number().partition_by(columns).build()?.alias(name);
        LogicalPlanBuilder::from(plan.clone())
            .window(vec![number])?
            .build()
    };
    let output: Vec<Expr> = join
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let (left, right, mut on) = if all {
        let mut on = join.on.clone();
        on.push((
            Expr::Column(Column::from_name(LEFT_NUMBER)),
            Expr::Column(Column::from_name(RIGHT_NUMBER)),
        ));
        (
            Arc::new(numbered(&join.left, LEFT_NUMBER)?),
            Arc::new(numbered(&join.right, RIGHT_NUMBER)?),
            on,
        )
    } else {
        (join.left.clone(), join.right.clone(), join.on.clone())
    };
    let widened = widen_numeric_keys(&mut on, left.schema(), right.schema());
    if !all && !widened {
        return Ok(Transformed::no(LogicalPlan::Join(join)));
    }
    let joined = LogicalPlan::Join(Join::try_new(
        left,
        right,
        on,
        None,
        join.join_type,
        JoinConstraint::On,
        NullEquality::NullEqualsNull,
        false,
    )?);
    if !all {
        return Ok(Transformed::yes(joined));
    }
    let plan = LogicalPlanBuilder::from(joined).project(output)?.build()?;
    Ok(Transformed::yes(plan))
}

/// A wide `numeric` column matched with an integer or `Decimal128` one (`SELECT 1.5::numeric
/// INTERSECT SELECT 1.5`): the other side is converted to numeric, so the key compares values
/// (DataFusion's coercion refused the pair).
fn widen_numeric_keys(on: &mut [(Expr, Expr)], left: &DFSchema, right: &DFSchema) -> bool {
    let mut changed = false;
    for (l, r) in on.iter_mut() {
        let (Ok(lt), Ok(rt)) = (l.get_type(left), r.get_type(right)) else {
            continue;
        };
        let (lw, rw) = (is_numeric_field_type(&lt), is_numeric_field_type(&rt));
        if lw && !rw && converts_to_numeric(&rt) {
            *r = udf(Kind::ToNumeric(None)).call(vec![std::mem::take(r)]);
            changed = true;
        } else if rw && !lw && converts_to_numeric(&lt) {
            *l = udf(Kind::ToNumeric(None)).call(vec![std::mem::take(l)]);
            changed = true;
        }
    }
    changed
}

/// Union inputs named like the union (an optimizer rule, before `propagate_empty_relation`).
///
/// A union takes its column names from its first input. When DataFusion drops the inputs
/// known to be empty and one is left, it projects that input's columns by the union's names
/// (`(SELECT 1 AS a WHERE false) UNION (SELECT DISTINCT 1 AS b)` failed: "No field named
/// a"). Each input whose columns are named otherwise is given a projection renaming them.
#[derive(Debug, Default)]
pub struct UnionInputNames;

impl datafusion::optimizer::OptimizerRule for UnionInputNames {
    fn name(&self) -> &str {
        "floe_union_input_names"
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::optimizer::ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Union(mut union) = plan else {
            return Ok(Transformed::no(plan));
        };
        let names: Vec<String> = union
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut changed = false;
        for input in union.inputs.iter_mut() {
            let same = input
                .schema()
                .fields()
                .iter()
                .map(|f| f.name())
                .eq(names.iter());
            if same {
                continue;
            }
            let renamed: Vec<Expr> = input
                .schema()
                .columns()
                .into_iter()
                .zip(&names)
                .map(|(column, name)| Expr::Column(column).alias(name))
                .collect();
            let projected = LogicalPlanBuilder::from(input.as_ref().clone())
                .project(renamed)?
                .build()?;
            *input = Arc::new(projected);
            changed = true;
        }
        Ok(Transformed::new_transformed(
            LogicalPlan::Union(union),
            changed,
        ))
    }
}

/// A union's columns are nullable when a column of one of its inputs is.
///
/// DataFusion derives a union's schema when it is built and keeps it while later rules
/// rewrite its inputs: `coalesce(x, false)` is NOT NULL when planned, but simplified to
/// `x IS NOT NULL AND x` it is nullable, and the physical plan of `SELECT coalesce(x, false)
/// FROM t UNION SELECT false` failed ("Physical input schema should be the same as the one
/// converted from logical input schema"). The last rule, this one gives each union the
/// nullability of its inputs and recomputes the schemas of the nodes above a union it changed.
#[derive(Debug, Default)]
pub struct UnionNullability;

impl datafusion::optimizer::OptimizerRule for UnionNullability {
    fn name(&self) -> &str {
        "floe_union_nullability"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        union_nullability(plan)
    }
}

fn union_nullability(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let plan = plan
        .map_subqueries(union_nullability)?
        .transform_sibling(|p| p.map_children(union_nullability))?;
    let changed = plan.transformed;
    match plan.data {
        LogicalPlan::Union(union) => {
            let fixed = with_inputs_nullability(union)?;
            let changed = changed || fixed.transformed;
            Ok(Transformed::new_transformed(
                LogicalPlan::Union(fixed.data),
                changed,
            ))
        }
        other if changed => Ok(Transformed::yes(other.recompute_schema()?)),
        other => Ok(Transformed::no(other)),
    }
}

/// `union` with each column nullable when the column of one of its inputs is (names and types
/// as planned); transformed when that changed its schema.
pub(crate) fn with_inputs_nullability(mut union: Union) -> DfResult<Transformed<Union>> {
    let nullable: Vec<bool> = (0..union.schema.fields().len())
        .map(|i| {
            union.inputs.iter().any(|input| {
                input
                    .schema()
                    .fields()
                    .get(i)
                    .is_some_and(|f| f.is_nullable())
            })
        })
        .collect();
    let stale = union
        .schema
        .fields()
        .iter()
        .zip(&nullable)
        .any(|(f, n)| f.is_nullable() != *n);
    if !stale {
        return Ok(Transformed::no(union));
    }
    let qualified: Vec<_> = union
        .schema
        .iter()
        .zip(&nullable)
        .map(|((qualifier, field), n)| {
            (
                qualifier.cloned(),
                Arc::new(field.as_ref().clone().with_nullable(*n)),
            )
        })
        .collect();
    let schema = DFSchema::new_with_metadata(qualified, union.schema.metadata().clone())?;
    union.schema = Arc::new(schema);
    Ok(Transformed::yes(union))
}

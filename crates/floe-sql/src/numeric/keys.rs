//! Equal numerics are one key: `1.5` and `1.50` form one group, one DISTINCT row, one join
//! match, one window partition.
//!
//! A wide numeric's bytes end in its display scale, and DataFusion groups, deduplicates and
//! hash-joins on bytes. [`NumericKeys`] runs last among the optimizer rules (after DISTINCT,
//! UNION, INTERSECT/EXCEPT and IN-subqueries have become aggregates and joins) and keys those
//! operators by the value alone (`Kind::Identity`, a `Binary` without the scale):
//! - an aggregate groups by the identity and returns, for each group, the first value it saw
//!   (`first_value`), as PostgreSQL's hash aggregate returns the group's first row; a
//!   projection above gives the node its old column names back;
//! - `count(DISTINCT x)` counts distinct identities;
//! - equi-join keys, window partitions and orderings and ORDER BY compare identities (equal
//!   values of different scales tie, and the next sort key decides);
//! - comparisons that DataFusion's rules write between wide numerics (a decorrelated
//!   IN-subquery's join filter, inferred predicates) compare values, and Floe's `=` in a join
//!   condition becomes an equality of identities, so the join can hash.
//!
//! The rule is idempotent: identities are `Binary`, never wide numerics, so a second pass
//! finds nothing to change.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, ScalarFunction, WindowFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    lit, Aggregate, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator, Projection, Window,
};

/// The name of Floe's numeric `=` (`functions::udf(Kind::Compare(CmpOp::Eq))`).
const EQ_NAME: &str = "floe_numeric_eq";
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

use super::functions::{udf, CmpOp, Kind};
use super::is_numeric_field_type;

/// Keys grouping, DISTINCT, joins and window partitions by numeric value (see the module doc).
#[derive(Debug, Default)]
pub struct NumericKeys;

impl OptimizerRule for NumericKeys {
    fn name(&self) -> &str {
        "floe_numeric_keys"
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Aggregate(aggregate) => rewrite_aggregate(aggregate),
            LogicalPlan::Join(mut join) => {
                let (left, right) = (join.left.schema().clone(), join.right.schema().clone());
                let mut changed = false;
                for (l, r) in &mut join.on {
                    if is_wide(l, &left) || is_wide(r, &right) {
                        *l = identity(std::mem::take(l));
                        *r = identity(std::mem::take(r));
                        changed = true;
                    }
                }
                if let Some(filter) = join.filter.take() {
                    let schema = join.schema.clone();
                    let fixed = filter.transform_up(|e| comparison(e, &schema, true))?;
                    changed |= fixed.transformed;
                    join.filter = Some(fixed.data);
                }
                Ok(Transformed::new_transformed(
                    LogicalPlan::Join(join),
                    changed,
                ))
            }
            LogicalPlan::Filter(mut filter) => {
                let schema = filter.input.schema().clone();
                let fixed = filter
                    .predicate
                    .transform_up(|e| comparison(e, &schema, false))?;
                filter.predicate = fixed.data;
                Ok(Transformed::new_transformed(
                    LogicalPlan::Filter(filter),
                    fixed.transformed,
                ))
            }
            LogicalPlan::Window(window) => rewrite_window(window),
            // ORDER BY compares values: `0` and `0.00` tie, and the next key decides.
            LogicalPlan::Sort(mut sort) => {
                let schema = sort.input.schema().clone();
                let mut changed = false;
                for key in &mut sort.expr {
                    if is_wide(&key.expr, &schema) {
                        key.expr = identity(std::mem::take(&mut key.expr));
                        changed = true;
                    }
                }
                Ok(Transformed::new_transformed(
                    LogicalPlan::Sort(sort),
                    changed,
                ))
            }
            other => Ok(Transformed::no(other)),
        })
    }
}

/// Comparisons of numerics in predicates by value. DataFusion's rules write plain `=` (and
/// others) between wide numerics when they turn IN-subqueries into joins or infer
/// predicates: those compare bytes, display scale included. In a join condition, Floe's own
/// `=` becomes an equality of identities, which DataFusion can hash-join on.
fn comparison(expr: Expr, schema: &DFSchema, in_join: bool) -> DfResult<Transformed<Expr>> {
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if (is_wide(&left, schema) || is_wide(&right, schema))
                && matches!(
                    op,
                    Operator::Eq
                        | Operator::NotEq
                        | Operator::IsDistinctFrom
                        | Operator::IsNotDistinctFrom
                        | Operator::Lt
                        | Operator::LtEq
                        | Operator::Gt
                        | Operator::GtEq
                ) =>
        {
            let cmp = match op {
                Operator::Lt => Some(CmpOp::Lt),
                Operator::LtEq => Some(CmpOp::LtEq),
                Operator::Gt => Some(CmpOp::Gt),
                Operator::GtEq => Some(CmpOp::GtEq),
                _ => None,
            };
            Transformed::yes(match cmp {
                Some(cmp) => udf(Kind::Compare(cmp)).call(vec![*left, *right]),
                None => Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(identity(*left)),
                    op,
                    Box::new(identity(*right)),
                )),
            })
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if in_join && func.name() == EQ_NAME =>
        {
            match <[Expr; 2]>::try_from(args) {
                Ok([left, right]) => Transformed::yes(identity(left).eq(identity(right))),
                Err(args) => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        other => Transformed::no(other),
    })
}

pub(crate) fn identity(expr: Expr) -> Expr {
    udf(Kind::Identity).call(vec![expr])
}

fn is_wide(expr: &Expr, schema: &DFSchema) -> bool {
    expr.get_type(schema)
        .is_ok_and(|t| is_numeric_field_type(&t))
}

fn rewrite_aggregate(aggregate: Aggregate) -> DfResult<Transformed<LogicalPlan>> {
    let input_schema = aggregate.input.schema().clone();
    let grouping_sets = aggregate
        .group_expr
        .iter()
        .any(|e| matches!(e, Expr::GroupingSet(_)));
    let wide_groups: Vec<bool> = aggregate
        .group_expr
        .iter()
        .map(|e| !grouping_sets && is_wide(e, &input_schema))
        .collect();
    // count(DISTINCT x): distinct by value.
    let mut aggr_changed = false;
    let aggr_expr: Vec<Expr> = aggregate
        .aggr_expr
        .iter()
        .map(|e| {
            let names = NamePreserver::new_for_projection();
            let saved = names.save(e);
            let rewritten = e.clone().transform_up(|e| match e {
                Expr::AggregateFunction(mut f)
                    if f.params.distinct
                        && f.func.name() == "count"
                        && f.params.args.iter().any(|a| is_wide(a, &input_schema)) =>
                {
                    f.params.args = f
                        .params
                        .args
                        .into_iter()
                        .map(|a| {
                            if is_wide(&a, &input_schema) {
                                identity(a)
                            } else {
                                a
                            }
                        })
                        .collect();
                    Ok(Transformed::yes(Expr::AggregateFunction(f)))
                }
                other => Ok(Transformed::no(other)),
            })?;
            aggr_changed |= rewritten.transformed;
            Ok(saved.restore(rewritten.data))
        })
        .collect::<DfResult<_>>()?;
    if !wide_groups.contains(&true) {
        if !aggr_changed {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        let rebuilt = Aggregate::try_new(aggregate.input, aggregate.group_expr, aggr_expr)?;
        return Ok(Transformed::yes(LogicalPlan::Aggregate(rebuilt)));
    }
    let old_schema = aggregate.schema.clone();
    let group_count = aggregate.group_expr.len();
    let mut group_expr = Vec::with_capacity(group_count);
    let mut representatives = Vec::new();
    for (i, (expr, wide)) in aggregate
        .group_expr
        .into_iter()
        .zip(&wide_groups)
        .enumerate()
    {
        if *wide {
            representatives.push(
                Expr::AggregateFunction(AggregateFunction::new_udf(
                    first_value_udaf(),
                    vec![expr.clone()],
                    false,
                    None,
                    vec![],
                    None,
                ))
                .alias(format!("__floe_numeric_group_{i}")),
            );
            group_expr.push(identity(expr).alias(format!("__floe_numeric_key_{i}")));
        } else {
            group_expr.push(expr);
        }
    }
    let aggr_count = aggr_expr.len();
    let all_aggr: Vec<Expr> = aggr_expr.into_iter().chain(representatives).collect();
    let rebuilt = Aggregate::try_new(aggregate.input, group_expr, all_aggr)?;
    let new_schema = rebuilt.schema.clone();
    // The old columns, in the old order: groups (a wide one from its representative), then
    // the aggregates.
    let column = |i: usize| Expr::Column(Column::from(new_schema.qualified_field(i)));
    let mut representative = group_count + aggr_count;
    let mut exprs = Vec::with_capacity(old_schema.fields().len());
    for (i, wide) in wide_groups.iter().enumerate() {
        let source = if *wide {
            representative += 1;
            column(representative - 1)
        } else {
            column(i)
        };
        exprs.push(source);
    }
    exprs.extend((0..aggr_count).map(|i| column(group_count + i)));
    let exprs = exprs
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let (qualifier, field) = old_schema.qualified_field(i);
            e.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(rebuilt)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

fn rewrite_window(window: Window) -> DfResult<Transformed<LogicalPlan>> {
    rewrite_window_functions(window, |mut f, schema| {
        let float = |p: &Expr| {
            matches!(
                p.get_type(schema),
                Ok(DataType::Float64 | DataType::Float32)
            )
        };
        let zero = |p: &Expr| match p.get_type(schema) {
            Ok(DataType::Float32) => lit(0.0f32),
            _ => lit(0.0f64),
        };
        if !f
            .params
            .partition_by
            .iter()
            .any(|p| is_wide(p, schema) || float(p))
            && !f
                .params
                .order_by
                .iter()
                .any(|s| float(&s.expr) || is_wide(&s.expr, schema))
        {
            return Ok(Transformed::no(Expr::WindowFunction(f)));
        }
        let WindowFunction { params, .. } = f.as_mut();
        // -0 and 0 are peers in PostgreSQL too (DataFusion's peers compare bit patterns).
        for sort in params.order_by.iter_mut() {
            // Equal numerics of different scales are peers.
            if is_wide(&sort.expr, schema) {
                sort.expr = identity(std::mem::take(&mut sort.expr));
            } else if float(&sort.expr) {
                let z = zero(&sort.expr);
                sort.expr = sort.expr.clone() + z;
            }
        }
        params.partition_by = std::mem::take(&mut params.partition_by)
            .into_iter()
            .map(|p| {
                if is_wide(&p, schema) {
                    identity(p)
                } else if float(&p) {
                    // -0 and 0 are one partition in PostgreSQL; adding +0 turns -0 into 0.
                    let z = zero(&p);
                    p + z
                } else {
                    p
                }
            })
            .collect();
        Ok(Transformed::yes(Expr::WindowFunction(f)))
    })
}

/// The window functions of `window` rewritten by `rewrite` (given the input's schema), each
/// output keeping its name; the node is rebuilt only when one changed.
pub(crate) fn rewrite_window_functions(
    window: Window,
    mut rewrite: impl FnMut(Box<WindowFunction>, &DFSchema) -> DfResult<Transformed<Expr>>,
) -> DfResult<Transformed<LogicalPlan>> {
    let schema = window.input.schema().clone();
    let names = NamePreserver::new_for_projection();
    let mut changed = false;
    let window_expr: Vec<Expr> = window
        .window_expr
        .iter()
        .map(|e| {
            let saved = names.save(e);
            let rewritten = e.clone().transform_up(|e| match e {
                Expr::WindowFunction(f) => rewrite(f, &schema),
                other => Ok(Transformed::no(other)),
            })?;
            changed |= rewritten.transformed;
            Ok(saved.restore(rewritten.data))
        })
        .collect::<DfResult<_>>()?;
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Window(window)));
    }
    Ok(Transformed::yes(LogicalPlan::Window(Window::try_new(
        window_expr,
        window.input,
    )?)))
}

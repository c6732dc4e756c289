//! Errors of constant expressions are raised when the statement is planned, as PostgreSQL
//! does.
//!
//! PostgreSQL folds every constant subexpression of immutable functions and operators while it
//! plans a statement (`eval_const_expressions`), so `SELECT make_date(0, 1, 1) FROM t` fails
//! even when `t` is empty, and `CASE WHEN x > 0 THEN 1 ELSE 1/0 END` fails whatever `x` holds.
//! DataFusion folds constants too but keeps an expression whose evaluation fails, so the error
//! came only from rows (never, for an empty input). [`PlanTimeErrors`], the last analyzer rule
//! (operand types are final), evaluates each constant subexpression once and returns its error.
//!
//! It follows PostgreSQL's order and short cuts, so nothing PostgreSQL skips is evaluated: a
//! `CASE` branch whose constant condition is false (or after one that is true), the operands of
//! `AND`/`OR` after a constant that decides it, `coalesce` arguments after a constant that is
//! not NULL. Only immutable functions are evaluated (PostgreSQL folds no stable ones), and
//! nothing whose value is an array (no work is spent on a constant `generate_series`).
//! String literals read as another type come first, as PostgreSQL reads them while parsing;
//! a subquery column that nothing reads is not evaluated (PostgreSQL pulls the subquery up),
//! and the constant columns of a derived table PostgreSQL pulls up are seen where they are
//! read. Folding is bottom-up: an operator over a `coalesce` or `CASE` that folds to a
//! constant is evaluated with it. Last come the `WHERE` conditions that read no row but call stable functions: PostgreSQL's
//! executor evaluates them once before the first row (a one-time filter), so Floe does too.
//! The checks skip what PostgreSQL folds away before planning it: subqueries beside a NULL
//! operand of a strict operator, after a decisive `coalesce` constant or AND/OR operand, and
//! in a CASE branch a constant decides away, and under a WHERE with a constant NULL or false
//! condition. DataFusion's simplifier still does the folding; the changes to the plan are
//! that a failing cast of a constant PostgreSQL never evaluates (a skipped branch, or over a
//! stable function) gets its operand wrapped in the volatile `floe_deferred`, as DataFusion
//! raises such casts wherever they are, that a subquery column nobody reads is pruned before
//! DataFusion's simplifier could fold it, and that `nullif` with a NULL argument is folded as
//! PostgreSQL folds it (without evaluating the other argument).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::expr::{Case, Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, JoinType, LogicalPlan, Operator, Volatility,
};
use datafusion::optimizer::optimize_projections::OptimizeProjections;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::optimizer::{AnalyzerRule, OptimizerContext, OptimizerRule};
use datafusion::physical_expr::create_physical_expr;

/// Raises the errors of constant subexpressions at planning (see the module doc).
#[derive(Debug, Default)]
pub struct PlanTimeErrors;

impl AnalyzerRule for PlanTimeErrors {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        // The parser's work first: string literals read as their types.
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|expr| {
                expr.apply(|e| {
                    if is_literal_coercion(e) {
                        evaluate(e)?;
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        // Most statements of a running application hold nothing to fold: no copy for them.
        if !has_constant_part(&plan) {
            return Ok(plan);
        }
        let plan = fold_nullif(plan)?;
        // Then the planner's folding, of what the statement uses: a subquery column nobody
        // reads is gone before PostgreSQL folds (its subquery was pulled up).
        let original = plan.clone();
        let pruned = OptimizeProjections::new()
            .rewrite(plan, &OptimizerContext::new())
            .map(|t| t.data)
            .unwrap_or_else(|_| original.clone());
        let used = without_skipped_subqueries(pruned.clone())?;
        let (constants, pushed) = pulled_up_constants(&used);
        let in_filters: Constants = constants.clone().into_iter().chain(pushed).collect();
        used.apply_with_subqueries(|node| {
            let constants = match node {
                LogicalPlan::Filter(_) => &in_filters,
                _ => &constants,
            };
            node.apply_expressions(|expr| {
                if constants.is_empty() {
                    check(expr)?;
                } else {
                    check(&with_constants(expr, constants))?;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        // Last, what PostgreSQL's executor evaluates once before reading any row.
        used.apply(|node| {
            if let LogicalPlan::Filter(filter) = node {
                one_time_filter(&filter.predicate)?;
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        // The pruned plan goes on: DataFusion's simplifier would fold (and fail on) the
        // columns nobody reads before its own pruning drops them.
        // PostgreSQL keeps every column of a UNION ALL it pulls up: no pruning then.
        let has_union = pruned
            .exists(|node| Ok(matches!(node, LogicalPlan::Union(_))))
            .unwrap_or(true);
        defer_failing_casts(if has_union { original } else { pruned })
    }

    fn name(&self) -> &str {
        "floe_plan_time_errors"
    }
}

/// The constant columns of the derived tables PostgreSQL pulls up into the query above them
/// (`FROM (SELECT '-1'::int2 AS c WHERE …) AS d`: `d.c` is `'-1'::int2` there, so
/// `d.c / 0` is folded and fails), by (alias, column). Not pulled up: a subquery with
/// grouping, aggregates, windows, DISTINCT, ORDER BY, LIMIT or a set operation, and one on
/// the nullable side of an outer join (its columns may be NULL-extended); an alias used
/// twice in the statement is left out. Second, those of subqueries with DISTINCT, which
/// PostgreSQL does not pull up but pushes the conditions of a WHERE on them into (where they
/// are folded the same way).
fn pulled_up_constants(plan: &LogicalPlan) -> (Constants, Constants) {
    fn visit(
        plan: &LogicalPlan,
        nullable: bool,
        seen: &mut HashMap<String, usize>,
        out: &mut (Constants, Constants),
    ) {
        if let LogicalPlan::SubqueryAlias(alias) = plan {
            let name = alias.alias.table().to_string();
            *seen.entry(name.clone()).or_default() += 1;
            let (target, input) = match alias.input.as_ref() {
                LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
                    (&mut out.1, input.as_ref())
                }
                input => (&mut out.0, input),
            };
            if let (false, LogicalPlan::Projection(projection)) = (nullable, input) {
                let mut input = projection.input.as_ref();
                while let LogicalPlan::Filter(filter) = input {
                    input = filter.input.as_ref();
                }
                let simple = !matches!(
                    input,
                    LogicalPlan::Aggregate(_)
                        | LogicalPlan::Window(_)
                        | LogicalPlan::Distinct(_)
                        | LogicalPlan::Sort(_)
                        | LogicalPlan::Limit(_)
                        | LogicalPlan::Union(_)
                        | LogicalPlan::Unnest(_)
                );
                if simple {
                    for (expr, field) in projection.expr.iter().zip(alias.schema.fields()) {
                        let expr = expr.clone().unalias_nested().data;
                        if is_constant(&expr) && !is_array(&expr) {
                            target.insert((name.clone(), field.name().clone()), expr);
                        }
                    }
                }
            }
        }
        let sides = match plan {
            LogicalPlan::Join(join) => Some(match join.join_type {
                JoinType::Left => (false, true),
                JoinType::Right => (true, false),
                JoinType::Full => (true, true),
                _ => (false, false),
            }),
            _ => None,
        };
        for (i, child) in plan.inputs().into_iter().enumerate() {
            let side = sides
                .map(|(l, r)| if i == 0 { l } else { r })
                .unwrap_or(false);
            visit(child, nullable || side, seen, out);
        }
        let _ = plan.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarSubquery(q) | Expr::Exists(Exists { subquery: q, .. }) = e {
                    visit(&q.subquery, false, seen, out);
                }
                if let Expr::InSubquery(InSubquery { subquery, .. }) = e {
                    visit(&subquery.subquery, false, seen, out);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
    }
    let (mut seen, mut out) = (HashMap::new(), (HashMap::new(), HashMap::new()));
    visit(plan, false, &mut seen, &mut out);
    out.0.retain(|(alias, _), _| seen.get(alias) == Some(&1));
    out.1.retain(|(alias, _), _| seen.get(alias) == Some(&1));
    out
}

/// Constant columns by (alias, column).
type Constants = HashMap<(String, String), Expr>;

/// `expr` with the columns of `constants` replaced by their expressions.
fn with_constants(expr: &Expr, constants: &Constants) -> Expr {
    let lookup = |column: &datafusion::common::Column| {
        let alias = column.relation.as_ref()?.table().to_string();
        constants.get(&(alias, column.name.clone())).cloned()
    };
    expr.clone()
        .transform_up(|e| {
            let replaced = match &e {
                Expr::Column(column) | Expr::OuterReferenceColumn(_, column) => lookup(column),
                _ => None,
            };
            Ok(match replaced {
                Some(constant) => Transformed::yes(constant),
                None => Transformed::no(e),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| expr.clone())
}

/// `plan` with `nullif(x, NULL)` as `x` and `nullif(NULL, x)` as NULL, as PostgreSQL folds
/// them ("if either argument is NULL they can't be equal") whatever the other argument is:
/// `nullif(NULL::timestamp, s::timestamp)` never reads `s` as a timestamp there.
fn fold_nullif(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let is_null = |e: &Expr| match e {
        Expr::Literal(value, _) => value.is_null(),
        Expr::Cast(cast) => matches!(cast.expr.as_ref(), Expr::Literal(v, _) if v.is_null()),
        _ => false,
    };
    let names =
        |node: &LogicalPlan| datafusion::logical_expr::expr_rewriter::NamePreserver::new(node);
    plan.transform_up_with_subqueries(|node| {
        let preserver = names(&node);
        node.map_expressions(|expr| {
            let saved = preserver.save(&expr);
            expr.transform_up(|e| match e {
                Expr::ScalarFunction(f) if f.name() == "nullif" && f.args.len() == 2 => {
                    // Either way the answer is the first argument (NULL when it is).
                    if is_null(&f.args[1]) || is_null(&f.args[0]) {
                        Ok(Transformed::yes(f.args[0].clone()))
                    } else {
                        Ok(Transformed::no(Expr::ScalarFunction(f)))
                    }
                }
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.update_data(|e| saved.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// Whether some expression of `plan` or its subqueries has a part that reads nothing and is
/// not a literal: an operator, cast or call whose operands are all literals (a function
/// without arguments too), or a derived table with a literal column. Every constant
/// expression that is not a literal holds one, so without one there is nothing to fold or to
/// evaluate once.
fn has_constant_part(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        // A derived table's literal column (`FROM (SELECT '\x'::bytea AS c) AS d`) is a
        // constant where the query above reads it.
        if let LogicalPlan::SubqueryAlias(alias) = node {
            if let LogicalPlan::Projection(projection) = alias.input.as_ref() {
                found = projection
                    .expr
                    .iter()
                    .any(|e| matches!(e.clone().unalias_nested().data, Expr::Literal(..)));
                if found {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                found = is_constant_leaf(e);
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    });
    found
}

/// Whether `expr` is a non-literal node whose operands are all literals (see
/// [`has_constant_part`]).
fn is_constant_leaf(expr: &Expr) -> bool {
    let literal = |e: &Expr| matches!(e, Expr::Literal(..));
    match expr {
        // `nullif(NULL, x)` and `nullif(x, NULL)` fold (see `fold_nullif`).
        Expr::ScalarFunction(f) if f.name() == "nullif" => f.args.iter().any(literal),
        // `coalesce(<literal>, x)` folds to the literal unless it is NULL.
        Expr::ScalarFunction(f) if f.name() == "coalesce" => f.args.first().is_some_and(literal),
        // `CASE WHEN <literal> …` may fold to one of its branches.
        Expr::Case(case) => case.when_then_expr.iter().any(|(when, _)| literal(when)),
        Expr::ScalarFunction(f) => f.args.iter().all(literal),
        Expr::Literal(..)
        | Expr::Alias(_)
        | Expr::AggregateFunction(_)
        | Expr::WindowFunction(_) => false,
        _ => {
            let (mut operands, mut literals) = (0, 0);
            let _ = expr.apply_children(|child| {
                operands += 1;
                literals += usize::from(literal(child));
                Ok(TreeNodeRecursion::Continue)
            });
            operands > 0 && operands == literals
        }
    }
}

/// Evaluates the constant parts of `expr` in PostgreSQL's order, returning the first error.
fn check(expr: &Expr) -> DfResult<()> {
    match expr {
        Expr::Literal(..) => Ok(()),
        Expr::BinaryExpr(BinaryExpr {
            op: op @ (Operator::And | Operator::Or),
            ..
        }) => {
            // PostgreSQL flattens nested ANDs (ORs) and stops at a constant that decides.
            let decides = *op == Operator::Or;
            let mut operands = Vec::new();
            flatten(expr, *op, &mut operands);
            for operand in operands {
                if fold(operand)? == Some(ScalarValue::Boolean(Some(decides))) {
                    return Ok(());
                }
            }
            Ok(())
        }
        Expr::Case(case) => check_case(case),
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == "coalesce" => {
            for arg in args {
                if fold(arg)?.is_some_and(|value| !value.is_null()) {
                    return Ok(());
                }
            }
            Ok(())
        }
        _ if is_constant(expr) && !is_array(expr) => fold(expr).map(|_| ()),
        _ => {
            check_children(expr)?;
            with_folded_operands(expr).map(|_| ())
        }
    }
}

/// [`check`] of `expr` as a tree of parts: short-cut nodes by their rules, anything else by
/// its children.
fn check_parts(expr: &Expr) -> DfResult<()> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::And | Operator::Or,
            ..
        })
        | Expr::Case(_) => check(expr),
        Expr::ScalarFunction(ScalarFunction { func, .. }) if func.name() == "coalesce" => {
            check(expr)
        }
        _ => check_children(expr),
    }
}

fn check_children(expr: &Expr) -> DfResult<()> {
    let mut result = Ok(());
    expr.apply_children(|child| {
        result = check(child);
        Ok(if result.is_ok() {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })?;
    result
}

fn check_case(case: &Case) -> DfResult<()> {
    let base = match &case.expr {
        Some(base) => Some(fold(base)?),
        None => None,
    };
    for (when, then) in &case.when_then_expr {
        let taken = match (&base, fold(when)?) {
            // A condition or operand whose value is known only when run.
            (Some(None), _) | (_, None) => None,
            (Some(Some(base)), Some(value)) => {
                Some(!base.is_null() && !value.is_null() && *base == value)
            }
            (None, Some(value)) => Some(value == ScalarValue::Boolean(Some(true))),
        };
        match taken {
            // Every later branch and ELSE are dropped.
            Some(true) => return check(then),
            // A branch that can't be taken is dropped unevaluated.
            Some(false) => {}
            None => check(then)?,
        }
    }
    match &case.else_expr {
        Some(otherwise) => check(otherwise),
        None => Ok(()),
    }
}

/// Checks `expr` and returns its value if it is constant (what PostgreSQL's folding makes of
/// it), `None` if it is known only when the statement runs.
fn fold(expr: &Expr) -> DfResult<Option<ScalarValue>> {
    if !is_constant(expr) || is_array(expr) {
        // PostgreSQL folds the operands first (`abs(-32768::int2) + x >= NULL` fails).
        check(expr)?;
        // A strict operator with a constant NULL operand is NULL, whatever its other
        // operands read (`CASE WHEN i4 = NULL::numeric THEN log(0, 1) END` drops the branch).
        if null_strict_call(expr)? {
            return Ok(Some(ScalarValue::Null));
        }
        // A CASE whose branch is decided by constants is that branch's value
        // (`CAST(CASE WHEN false THEN s ELSE 'x y' END AS numeric)` fails).
        if let Expr::Case(case) = expr {
            return fold_case(case);
        }
        // `coalesce` whose first argument that is not a NULL constant is a constant is that
        // constant (`CAST(coalesce(2147483647 * 6::int8, x) AS int4)` fails).
        if let Expr::ScalarFunction(f) = expr {
            if f.name() == "coalesce" {
                for arg in &f.args {
                    match fold(arg)? {
                        Some(value) if value.is_null() => continue,
                        Some(value) => return Ok(Some(value)),
                        None => break,
                    }
                }
            }
        }
        // AND/OR: a folded operand that decides it decides it; all folded, they combine
        // (Floe's `timestamp + interval` guards infinities with such a CASE condition).
        if let Expr::BinaryExpr(BinaryExpr {
            op: op @ (Operator::And | Operator::Or),
            ..
        }) = expr
        {
            let decides = *op == Operator::Or;
            let mut operands = Vec::new();
            flatten(expr, *op, &mut operands);
            let (mut known, mut null) = (true, false);
            for operand in operands {
                match fold(operand)? {
                    Some(ScalarValue::Boolean(Some(b))) if b == decides => {
                        return Ok(Some(ScalarValue::Boolean(Some(decides))))
                    }
                    Some(ScalarValue::Boolean(Some(_))) => {}
                    Some(value) if value.is_null() => null = true,
                    _ => known = false,
                }
            }
            return Ok(known.then(|| ScalarValue::Boolean((!null).then_some(!decides))));
        }
        // An operator, cast or function whose operands all fold (through `coalesce`, `CASE`,
        // …) is evaluated with their values, as PostgreSQL folds bottom-up.
        if let Some(value) = with_folded_operands(expr)? {
            return Ok(Some(value));
        }
        // A test of an operand that folds to a constant folds too (`(NULL % k) IS NOT NULL`
        // is false, so a CASE branch under it is dropped).
        return Ok(match test_of(expr) {
            Some((operand, test)) => fold(operand)?.and_then(test),
            None => None,
        });
    }
    if !has_short_cuts(expr) {
        return evaluate(expr).map(Some);
    }
    // Checked part by part; then DataFusion's simplifier (which knows `coalesce`, `CASE`, …)
    // gives the value, or what is left once the short cuts are taken, which is evaluated
    // (`'-infinity'::date - CASE WHEN true THEN … END` fails).
    check_parts(expr)?;
    // The casts in skipped parts deferred, DataFusion's folding fails only on a cast it
    // reaches (as PostgreSQL's would).
    let simplifier = ExprSimplifier::new(SimplifyContext::default());
    match simplifier.simplify(defer_casts(expr.clone(), false)?.data) {
        Ok(Expr::Literal(value, _)) => Ok(Some(value)),
        Ok(rest) if is_constant(&rest) && !has_short_cuts(&rest) && !is_array(&rest) => {
            evaluate(&rest).map(Some)
        }
        Err(e) => Err(e),
        _ => Ok(None),
    }
}

/// The value of a searched CASE whose conditions up to the branch taken fold to constants
/// (`None` where one is known only when the statement runs, or for `CASE x WHEN …`).
fn fold_case(case: &Case) -> DfResult<Option<ScalarValue>> {
    if case.expr.is_some() {
        return Ok(None);
    }
    for (when, then) in &case.when_then_expr {
        match fold(when)? {
            Some(ScalarValue::Boolean(Some(true))) => return fold(then),
            Some(_) => continue,
            None => return Ok(None),
        }
    }
    match &case.else_expr {
        Some(otherwise) => fold(otherwise),
        None => Ok(None),
    }
}

/// The value of `expr`, an operator, cast or immutable function call that reads a row but
/// whose operands all fold to values (`CAST(coalesce(2147483647 * 6::int8, x) AS int4)`):
/// the call evaluated on those values. `None` where an operand does not fold, or is an
/// untyped NULL; only data errors (SQLSTATE class 22) of the evaluation are raised.
fn with_folded_operands(expr: &Expr) -> DfResult<Option<ScalarValue>> {
    let evaluated = match expr {
        Expr::Cast(_) | Expr::TryCast(_) | Expr::Negative(_) => true,
        Expr::BinaryExpr(b) => !matches!(b.op, Operator::And | Operator::Or),
        Expr::ScalarFunction(f) => f.name() != "coalesce" && folds(f),
        _ => false,
    };
    // Only an operand with a short cut in it can fold while reading a row.
    if !evaluated || !has_short_cuts(expr) {
        return Ok(None);
    }
    let mut values = Vec::new();
    let mut folded = true;
    expr.apply_children(|child| {
        match fold(child)? {
            Some(value) if value != ScalarValue::Null && !is_list(&value.data_type()) => {
                values.push(value)
            }
            _ => folded = false,
        }
        Ok(if folded {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    })?;
    if !folded {
        return Ok(None);
    }
    let mut values = values.into_iter();
    let substituted = expr
        .clone()
        .map_children(|_| {
            Ok(Transformed::yes(Expr::Literal(
                values.next().unwrap_or(ScalarValue::Null),
                None,
            )))
        })?
        .data;
    match evaluate(&substituted) {
        Ok(value) => Ok(Some(value)),
        Err(e) if crate::error::from_datafusion(&e).code.starts_with("22") => Err(e),
        Err(_) => Ok(None),
    }
}

/// A NULL test, boolean test or NOT: its operand and what it makes of the operand's value
/// (`None` where that is not a boolean or NULL).
#[allow(clippy::type_complexity)]
fn test_of(expr: &Expr) -> Option<(&Expr, fn(ScalarValue) -> Option<ScalarValue>)> {
    fn of(v: &ScalarValue) -> Option<Option<bool>> {
        match v {
            ScalarValue::Boolean(b) => Some(*b),
            v if v.is_null() => Some(None),
            _ => None,
        }
    }
    Some(match expr {
        Expr::IsNull(e) => (e.as_ref(), |v| {
            Some(ScalarValue::Boolean(Some(v.is_null())))
        }),
        Expr::IsNotNull(e) => (e.as_ref(), |v| {
            Some(ScalarValue::Boolean(Some(!v.is_null())))
        }),
        Expr::IsTrue(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(Some(b == Some(true))))
        }),
        Expr::IsFalse(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(Some(b == Some(false))))
        }),
        Expr::IsNotTrue(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(Some(b != Some(true))))
        }),
        Expr::IsNotFalse(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(Some(b != Some(false))))
        }),
        Expr::IsUnknown(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(Some(b.is_none())))
        }),
        Expr::IsNotUnknown(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(Some(b.is_some())))
        }),
        Expr::Not(e) => (e.as_ref(), |v| {
            of(&v).map(|b| ScalarValue::Boolean(b.map(|b| !b)))
        }),
        _ => return None,
    })
}

fn flatten<'a>(expr: &'a Expr, op: Operator, out: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(binary) if binary.op == op => {
            flatten(&binary.left, op, out);
            flatten(&binary.right, op, out);
        }
        Expr::Alias(alias) => flatten(&alias.expr, op, out),
        _ => out.push(expr),
    }
}

/// Whether `expr` is a string literal read as another type (`'2020-01-01'::date`, a literal
/// coerced to a column's type), which PostgreSQL does while parsing.
fn is_literal_coercion(expr: &Expr) -> bool {
    let operand = match expr {
        Expr::Cast(cast) => cast.expr.as_ref(),
        Expr::ScalarFunction(f) if f.name().starts_with("floe_") && f.args.len() == 1 => &f.args[0],
        _ => return false,
    };
    matches!(
        operand,
        Expr::Literal(
            ScalarValue::Utf8(Some(_))
                | ScalarValue::Utf8View(Some(_))
                | ScalarValue::LargeUtf8(Some(_)),
            _
        )
    ) && is_constant(expr)
}

/// Whether PostgreSQL folds a call of `f` with constant arguments: an immutable function
/// (Floe's and every built-in of that name). Date/time conversions that depend on the
/// session's `TimeZone` or `DateStyle` are stable there; text read as a date/time is folded
/// only as a literal.
fn folds(f: &ScalarFunction) -> bool {
    // `quote_literal(anyelement)` is stable, but an SQL function PostgreSQL inlines into the
    // immutable `quote_literal(text)` of its argument cast to text.
    if f.name() == "quote_literal" {
        return true;
    }
    // Floe's `to_timestamp` is stable for its `(text, text)` form; the one of a number is not.
    let immutable = f.func.signature().volatility == Volatility::Immutable
        || (f.name() == "to_timestamp" && f.args.len() == 1);
    if !immutable || !crate::pg_catalog::procs().immutable(f.name(), f.args.len()) {
        return false;
    }
    match f.name() {
        "floe_retime" | "floe_datetime_to_text" => false,
        "floe_text_to_datetime" => matches!(f.args.first(), Some(Expr::Literal(..))),
        "floe_date_to_timestamp" | "floe_timestamp_to_date" => {
            let call = Expr::ScalarFunction(f.clone());
            !f.args.iter().any(zoned) && !zoned(&call)
        }
        _ => true,
    }
}

/// `plan` without the subqueries PostgreSQL folds away before planning them: the operands of
/// a strict operator or function that has a constant NULL operand (`NULL::numeric * (SELECT
/// log(-1))` is NULL; constant operands are folded first: `NULL * log(-1)` fails), the
/// `coalesce` arguments after a constant that is not NULL, and an AND (OR) with a constant
/// false (true) operand. Their constants are then never evaluated.
/// `expr` with each subquery in it replaced by a NULL of its type (the rest stays: its
/// constants are PostgreSQL's to fold even in a branch it drops).
fn drop_subquery_anywhere(expr: Expr) -> Expr {
    expr.transform_up(
        |e| match subquery_type(&e).and_then(|t| ScalarValue::try_from(t).ok()) {
            Some(null) => Ok(Transformed::yes(Expr::Literal(null, None))),
            None => Ok(Transformed::no(e)),
        },
    )
    .map(|t| t.data)
    .unwrap_or(Expr::Literal(ScalarValue::Null, None))
}

fn without_skipped_subqueries(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let null_operand = |args: &[&Expr]| {
        args.iter()
            .any(|a| is_constant(a) && !is_array(a) && evaluate(a).is_ok_and(|v| v.is_null()))
    };
    let subquery = |e: &Expr| subquery_type(e).is_some();
    // A NULL of the subquery's type, so the operator still evaluates.
    let drop_subquery =
        |e: Expr| match subquery_type(&e).and_then(|t| ScalarValue::try_from(t).ok()) {
            Some(null) => Expr::Literal(null, None),
            None => e,
        };
    // A WHERE with a constant NULL or false condition reads nothing: nothing else in it is
    // planned (PostgreSQL's one-time filter).
    let never = |predicate: &Expr| {
        datafusion::logical_expr::utils::split_conjunction(predicate)
            .iter()
            .any(|c| {
                is_constant(c)
                    && evaluate(c)
                        .is_ok_and(|v| v.is_null() || v == ScalarValue::Boolean(Some(false)))
            })
    };
    let plan = plan
        .transform_up_with_subqueries(|node| match node {
            LogicalPlan::Filter(filter)
                if has_subquery(&filter.predicate) && never(&filter.predicate) =>
            {
                let filter = datafusion::logical_expr::Filter::try_new(
                    Expr::Literal(ScalarValue::Boolean(Some(false)), None),
                    filter.input,
                )?;
                Ok(Transformed::yes(LogicalPlan::Filter(filter)))
            }
            node => Ok(Transformed::no(node)),
        })?
        .data;
    plan.transform_up_with_subqueries(|node| {
        node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::ScalarFunction(mut f)
                    if f.func.is_strict()
                        && f.args.iter().any(subquery)
                        && null_operand(&f.args.iter().collect::<Vec<_>>()) =>
                {
                    f.args = f.args.into_iter().map(drop_subquery).collect();
                    Ok(Transformed::yes(Expr::ScalarFunction(f)))
                }
                Expr::BinaryExpr(mut b)
                    if b.op.returns_null_on_null()
                        && (subquery(&b.left) || subquery(&b.right))
                        && null_operand(&[&b.left, &b.right]) =>
                {
                    b.left = Box::new(drop_subquery(*b.left));
                    b.right = Box::new(drop_subquery(*b.right));
                    Ok(Transformed::yes(Expr::BinaryExpr(b)))
                }
                // `coalesce(true, (x IN (SELECT …)))`: nothing after a constant that is not
                // NULL is planned (PostgreSQL folds the call to that constant).
                Expr::ScalarFunction(mut f)
                    if f.name() == "coalesce" && f.args.iter().any(has_subquery) =>
                {
                    // (Its own errors are the checks' to raise, in PostgreSQL's order.)
                    let decided = f.args.iter().position(|a| {
                        is_constant(a)
                            && !is_array(a)
                            && fold(a).is_ok_and(|v| v.is_some_and(|v| !v.is_null()))
                    });
                    match decided {
                        Some(at) if f.args[at + 1..].iter().any(has_subquery) => {
                            for arg in f.args[at + 1..].iter_mut() {
                                if has_subquery(arg) {
                                    *arg = Expr::Literal(ScalarValue::Null, None);
                                }
                            }
                            Ok(Transformed::yes(Expr::ScalarFunction(f)))
                        }
                        _ => Ok(Transformed::no(Expr::ScalarFunction(f))),
                    }
                }
                // `CASE WHEN true THEN 'a' ELSE (SELECT …) END`: branches a constant condition
                // decides away are dropped unplanned (a branch after a true condition, ELSE
                // included, and the result of a false one).
                Expr::Case(mut case)
                    if case.expr.is_none() && has_subquery(&Expr::Case(case.clone())) =>
                {
                    let value = |e: &Expr| {
                        if is_constant(e) && !is_array(e) {
                            fold(e).ok().flatten()
                        } else {
                            None
                        }
                    };
                    let mut changed = false;
                    let mut taken = false;
                    for (when, then) in case.when_then_expr.iter_mut() {
                        let skip = taken || {
                            let v = value(when);
                            taken = v == Some(ScalarValue::Boolean(Some(true)));
                            v.is_some() && !taken
                        };
                        if skip {
                            if has_subquery(when) {
                                **when = Expr::Literal(ScalarValue::Boolean(Some(false)), None);
                                changed = true;
                            }
                            if has_subquery(then) {
                                **then = drop_subquery_anywhere(std::mem::replace(
                                    then.as_mut(),
                                    Expr::Literal(ScalarValue::Null, None),
                                ));
                                changed = true;
                            }
                        }
                    }
                    if let (true, Some(otherwise)) = (taken, case.else_expr.as_mut()) {
                        if has_subquery(otherwise) {
                            **otherwise = drop_subquery_anywhere(std::mem::replace(
                                otherwise.as_mut(),
                                Expr::Literal(ScalarValue::Null, None),
                            ));
                            changed = true;
                        }
                    }
                    Ok(Transformed::new_transformed(Expr::Case(case), changed))
                }
                // `false AND (x IN (SELECT …))`, `true OR …`: folded to the constant.
                Expr::BinaryExpr(b)
                    if matches!(b.op, Operator::And | Operator::Or)
                        && (has_subquery(&b.left) || has_subquery(&b.right)) =>
                {
                    let decides = ScalarValue::Boolean(Some(b.op == Operator::Or));
                    let decided =
                        |e: &Expr| is_constant(e) && evaluate(e).is_ok_and(|v| v == decides);
                    if decided(&b.left) || decided(&b.right) {
                        Ok(Transformed::yes(Expr::Literal(decides, None)))
                    } else {
                        Ok(Transformed::no(Expr::BinaryExpr(b)))
                    }
                }
                e => Ok(Transformed::no(e)),
            })
        })
    })
    .map(|t| t.data)
}

/// Whether `expr` is a strict operator or function with an operand that folds to NULL (its
/// constant operands folded, as PostgreSQL does first).
fn null_strict_call(expr: &Expr) -> DfResult<bool> {
    let operands: Vec<&Expr> = match expr {
        Expr::BinaryExpr(b) if b.op.returns_null_on_null() => vec![&b.left, &b.right],
        Expr::ScalarFunction(f) if f.func.is_strict() => f.args.iter().collect(),
        // `NULL IN (…)` is NULL whatever the list holds (each comparison with it is).
        Expr::InList(list) => vec![list.expr.as_ref()],
        _ => return Ok(false),
    };
    for operand in operands {
        if is_constant(operand) && !is_array(operand) && fold(operand)?.is_some_and(|v| v.is_null())
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `expr` holds a subquery.
fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::SetComparison(_)
        ))
    })
    .unwrap_or(false)
}

/// `plan` with the operand of every failing cast of a constant (to DataFusion, which folds
/// stable functions too) wrapped in `floe_deferred` where PostgreSQL does not fold it: under a
/// CASE, `coalesce`, AND or OR (the checks above found no error where PostgreSQL evaluates, so
/// it is in a part PostgreSQL skips: `CASE WHEN false THEN CAST(right('日本語', 3) AS int4)
/// END`), or of a stable function (`CAST('infinity'::date::text AS int4)`). DataFusion's
/// constant folding raises the error of a failing cast of a literal wherever it is; only rows
/// that reach it raise it now.
fn defer_failing_casts(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let names =
        |node: &LogicalPlan| datafusion::logical_expr::expr_rewriter::NamePreserver::new(node);
    plan.transform_up_with_subqueries(|node| {
        let preserver = names(&node);
        node.map_expressions(|expr| {
            let saved = preserver.save(&expr);
            defer_casts(expr, false).map(|t| t.update_data(|e| saved.restore(e)))
        })
    })
    .map(|t| t.data)
}

fn defer_casts(expr: Expr, under_short_cut: bool) -> DfResult<Transformed<Expr>> {
    match expr {
        // Innermost first: DataFusion folds the constant inside a deferred operand too.
        Expr::Cast(mut cast) => {
            let operand = defer_casts(*cast.expr, under_short_cut)?;
            let changed = operand.transformed;
            cast.expr = Box::new(operand.data);
            let fails = (under_short_cut || !is_constant(&cast.expr))
                && reads_nothing(&cast.expr, |f| {
                    f.func.signature().volatility != Volatility::Volatile
                })
                && !is_array(&cast.expr)
                && evaluate(&Expr::Cast(cast.clone())).is_err();
            if fails {
                cast.expr = Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
                    deferred_udf(),
                    vec![*cast.expr],
                )));
            }
            Ok(if fails || changed {
                Transformed::yes(Expr::Cast(cast))
            } else {
                Transformed::no(Expr::Cast(cast))
            })
        }
        Expr::Case(_)
        | Expr::BinaryExpr(BinaryExpr {
            op: Operator::And | Operator::Or,
            ..
        }) => expr.map_children(|c| defer_casts(c, true)),
        Expr::ScalarFunction(ref f) if f.name() == "coalesce" => {
            expr.map_children(|c| defer_casts(c, true))
        }
        // A subquery's plan is visited on its own.
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
            Ok(Transformed::no(expr))
        }
        _ => expr.map_children(|c| defer_casts(c, under_short_cut)),
    }
}

/// `floe_deferred(x)`: `x`, as a volatile function (never folded while planning).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Deferred {
    signature: datafusion::logical_expr::Signature,
}

impl datafusion::logical_expr::ScalarUDFImpl for Deferred {
    fn name(&self) -> &str {
        "floe_deferred"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(
            args.arg_fields[0].as_ref().clone().with_name(self.name()),
        ))
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> DfResult<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

fn deferred_udf() -> Arc<datafusion::logical_expr::ScalarUDF> {
    static DEFERRED: LazyLock<Arc<datafusion::logical_expr::ScalarUDF>> = LazyLock::new(|| {
        Arc::new(datafusion::logical_expr::ScalarUDF::new_from_impl(
            Deferred {
                signature: datafusion::logical_expr::Signature::any(1, Volatility::Volatile),
            },
        ))
    });
    DEFERRED.clone()
}

/// The type of `expr` if it is a scalar subquery (under casts and Floe's wrappers).
fn subquery_type(expr: &Expr) -> Option<DataType> {
    match expr {
        Expr::ScalarSubquery(s) => s
            .subquery
            .schema()
            .fields()
            .first()
            .map(|f| f.data_type().clone()),
        Expr::Cast(cast) => subquery_type(&cast.expr).map(|_| cast.field.data_type().clone()),
        Expr::ScalarFunction(f) if f.name() == crate::subquery::NULLABLE && f.args.len() == 1 => {
            subquery_type(&f.args[0])
        }
        _ => None,
    }
}

/// Whether `expr` is a `timestamptz` (or of a type not known without a schema).
fn zoned(expr: &Expr) -> bool {
    expr.get_type(&DFSchema::empty())
        .map_or(true, |t| matches!(t, DataType::Timestamp(_, Some(_))))
}

/// Whether `expr` reads no row, no parameter and no subquery, and calls only functions
/// PostgreSQL folds ([`folds`]).
fn is_constant(expr: &Expr) -> bool {
    reads_nothing(expr, folds)
}

/// Whether `expr` reads no row, no parameter and no subquery, and calls only functions
/// `allowed` accepts.
fn reads_nothing(expr: &Expr, allowed: fn(&ScalarFunction) -> bool) -> bool {
    !expr
        .exists(|e| {
            Ok(match e {
                #[allow(deprecated)]
                Expr::AggregateFunction(_)
                | Expr::ScalarVariable(..)
                | Expr::Column(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
                | Expr::ScalarSubquery(_)
                | Expr::WindowFunction(_)
                | Expr::GroupingSet(_)
                | Expr::Wildcard { .. }
                | Expr::Placeholder(_)
                | Expr::Unnest(_)
                | Expr::HigherOrderFunction(_)
                | Expr::Lambda(_)
                | Expr::LambdaVariable(_) => true,
                Expr::ScalarFunction(f) => !allowed(f),
                _ => false,
            })
        })
        .unwrap_or(true)
}

/// Evaluates the conditions of a `WHERE` that read no row (a stable function of constants,
/// such as text read as a timestamp): PostgreSQL's planner makes them a one-time filter that
/// its executor evaluates before the first row, so their errors come even from an empty
/// table. In order, up to the first that is not true; none if a constant condition is false
/// (PostgreSQL then plans no scan at all).
fn one_time_filter(predicate: &Expr) -> DfResult<()> {
    let mut conditions = Vec::new();
    flatten(predicate, Operator::And, &mut conditions);
    let pseudo_constant = |e: &Expr| {
        !is_constant(e)
            && reads_nothing(e, |f| {
                f.func.signature().volatility == Volatility::Immutable
                    || crate::datetime_udf::is_stable_call(&f.func)
            })
            && !has_short_cuts(e)
            && !is_array(e)
    };
    for condition in &conditions {
        if is_constant(condition) && fold(condition)?.is_some_and(|v| !is_true(&v)) {
            return Ok(());
        }
    }
    for condition in conditions.iter().filter(|c| pseudo_constant(c)) {
        if !is_true(&evaluate(condition)?) {
            return Ok(());
        }
    }
    // Then PostgreSQL estimates the selectivity of each comparison of one relation's columns
    // with a constant, evaluating that constant (stable functions included) while planning:
    // `WHERE octet_length(s) < '2000-02-29'::date - '-infinity'::timestamptz::date` fails
    // even on an empty table.
    for condition in &conditions {
        // `a IS DISTINCT FROM b` is planned as `NOT (a IS NOT DISTINCT FROM b)`.
        let condition = match condition {
            Expr::Not(inner) => inner.as_ref(),
            other => other,
        };
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = condition else {
            continue;
        };
        if !crate::datetime_udf::is_comparison(*op) {
            continue;
        }
        let one_relation = |e: &Expr| {
            let columns = e.column_refs();
            let mut relations = columns.iter().map(|c| &c.relation);
            match relations.next() {
                Some(first) => relations.all(|r| r == first) && reads_nothing_but_columns(e),
                None => false,
            }
        };
        for (variable, other) in [(left, right), (right, left)] {
            if one_relation(variable) && pseudo_constant(other) {
                evaluate(other)?;
            }
        }
    }
    Ok(())
}

/// Whether `expr` reads nothing but columns of the row (no subquery, parameter or aggregate).
fn reads_nothing_but_columns(expr: &Expr) -> bool {
    !expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::AggregateFunction(_)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::WindowFunction(_)
                    | Expr::Placeholder(_)
            ))
        })
        .unwrap_or(true)
}

fn is_true(value: &ScalarValue) -> bool {
    *value == ScalarValue::Boolean(Some(true))
}

/// Whether `expr` holds a node whose operands PostgreSQL may leave unevaluated.
fn has_short_cuts(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(match e {
            Expr::Case(_) => true,
            Expr::BinaryExpr(b) => matches!(b.op, Operator::And | Operator::Or),
            Expr::ScalarFunction(f) => f.func.name() == "coalesce",
            _ => false,
        })
    })
    .unwrap_or(true)
}

fn is_array(expr: &Expr) -> bool {
    expr.get_type(&DFSchema::empty())
        .map_or(true, |data_type| is_list(&data_type))
}

fn is_list(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    )
}

/// One row with no columns: a constant's value is its one value.
static ONE_ROW: LazyLock<RecordBatch> = LazyLock::new(|| {
    RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .expect("a batch of one row and no columns")
});

/// The value of a constant expression, or the error evaluating it raises.
fn evaluate(expr: &Expr) -> DfResult<ScalarValue> {
    if let Expr::Literal(value, _) = expr {
        return Ok(value.clone());
    }
    let physical = create_physical_expr(
        expr,
        &DFSchema::empty(),
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )?;
    match physical.evaluate(&ONE_ROW)? {
        ColumnarValue::Scalar(value) => Ok(value),
        ColumnarValue::Array(array) if array.len() == 1 => ScalarValue::try_from_array(&array, 0),
        // Not a single value (not expected of a constant): nothing to say at planning.
        ColumnarValue::Array(_) => Ok(ScalarValue::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::functions::expr_fn::coalesce;
    use datafusion::logical_expr::{col, lit, when};

    fn div_by_zero() -> Expr {
        lit(1i64) / lit(0i64)
    }

    #[test]
    fn constants_are_evaluated_where_postgres_folds_them() {
        // DataFusion's own integer division by zero raises.
        assert!(check(&div_by_zero()).is_err());
        assert!(check(&(col("x").gt(lit(0)).and(div_by_zero().eq(lit(1i64))))).is_err());
        let case = when(col("x").gt(lit(0)), lit(1i64))
            .otherwise(div_by_zero())
            .unwrap();
        assert!(check(&case).is_err());
    }

    #[test]
    fn short_cuts_are_honoured() {
        let dropped = when(lit(false), div_by_zero())
            .otherwise(lit(1i64))
            .unwrap();
        assert!(check(&dropped).is_ok());
        let after_true = when(lit(true), lit(1i64)).otherwise(div_by_zero()).unwrap();
        assert!(check(&after_true).is_ok());
        assert!(check(&lit(false).and(div_by_zero().eq(lit(1i64)))).is_ok());
        assert!(check(&lit(true).or(div_by_zero().eq(lit(1i64)))).is_ok());
        assert!(check(&div_by_zero().eq(lit(1i64)).and(lit(false))).is_err());
        assert!(check(&col("x").eq(lit(1))).is_ok());
        // DataFusion cannot run `coalesce` itself; its value decides the branch.
        let decided = when(
            coalesce(vec![lit(ScalarValue::Boolean(None)), lit(true)]),
            lit(1i64),
        )
        .otherwise(div_by_zero())
        .unwrap();
        assert!(check(&decided).is_ok());
    }

    /// Only an expression with a non-literal part that reads nothing needs the check.
    #[test]
    fn constant_parts_are_found() {
        assert!(is_constant_leaf(&div_by_zero()));
        assert!(!is_constant_leaf(&lit(1i64)));
        assert!(!is_constant_leaf(&(col("x") + lit(1i64))));
        assert!(!is_constant_leaf(&lit(1i64).alias("a")));
        assert!(is_constant_leaf(&datafusion::functions::expr_fn::now()));
        assert!(is_constant_leaf(&Expr::Not(Box::new(lit(true)))));
    }
}

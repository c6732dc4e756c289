//! The types of the parameters a client left open, from where they stand, as PostgreSQL infers
//! them.
//!
//! DataFusion types an untyped `$n` only from the other side of an operator, from a BETWEEN's
//! tested value, an IN list's, a LIKE's, and does so while the statement is planned: before
//! [`crate::rewrite::postgres_literal_types`] gives integer literals PostgreSQL's `integer`, so
//! `$1 + 1` took `bigint`. PostgreSQL also types a parameter from the function it is passed to
//! (`coalesce($1, 5::int4)` is `integer`, `length($1)` is `text`), from the other values of a
//! CASE, from an IN list's values and from the tested value of BETWEEN's bounds. [`infer`]
//! runs once the literals have their types and gives each open parameter the type of the first
//! place that decides it (a parameter has one type in the whole statement):
//!
//! - the other operand of an operator, a comparison, LIKE; the tested value of BETWEEN and IN
//!   for their bounds and list, and the bounds or list for the tested value;
//! - the other results of a CASE for a result, the tested value for a WHEN value and back;
//! - the function's signature for an argument: DataFusion's own coercion of the call with the
//!   parameter as NULL, which takes the type the function's other arguments decide; where the
//!   signature refuses NULL or keeps it, the first of text, numeric, float8 it takes.
//!
//! LIMIT and OFFSET make a parameter `bigint`. A parameter typed by the client or by a cast
//! (`$1::int4`) keeps its type. One that stays open is `text` (see `describe_plan`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Between, Case, InList, Like, Placeholder, ScalarFunction};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan};

use crate::types::SqlType;

/// How many rounds of inference a statement gets: a parameter decided in one round can decide
/// another in the next (`$1 = $2 + 1`).
const ROUNDS: usize = 4;

/// `plan` with its open parameters typed where their place decides it. `declared` are the
/// types the client and the statement's casts gave (`Unknown` where open).
pub fn infer(plan: LogicalPlan, declared: &[SqlType]) -> DfResult<LogicalPlan> {
    let mut open = open_parameters(&plan, declared)?;
    let mut plan = plan;
    // Last: a function whose signature decides nothing by itself (see `function_arguments`).
    let mut fallback = false;
    for _ in 0..ROUNDS {
        if open.is_empty() {
            break;
        }
        let decided = decide(&plan, &open, fallback)?;
        if decided.is_empty() && !fallback {
            fallback = true;
            continue;
        }
        if decided.is_empty() {
            break;
        }
        for id in decided.keys() {
            open.remove(id);
        }
        plan = apply(plan, &decided)?;
    }
    Ok(plan)
}

/// The parameters whose type is still open: untyped, or typed `bigint` by DataFusion from an
/// integer literal (which may now be an `integer`), and not declared.
fn open_parameters(plan: &LogicalPlan, declared: &[SqlType]) -> DfResult<HashSet<String>> {
    let is_declared = |id: &str| {
        id.strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| declared.get(i))
            .is_some_and(|t| *t != SqlType::Unknown)
    };
    let mut open = HashSet::new();
    let mut fixed = HashSet::new();
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::Placeholder(Placeholder { id, field }) = e {
                    let inferred = match field {
                        None => true,
                        Some(f) => f.data_type() == &DataType::Int64 && f.metadata().is_empty(),
                    };
                    if is_declared(id) || !inferred {
                        fixed.insert(id.clone());
                    } else {
                        open.insert(id.clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    open.retain(|id| !fixed.contains(id));
    Ok(open)
}

/// The id of `expr` when it is an open parameter.
fn open_id<'a>(expr: &'a Expr, open: &HashSet<String>) -> Option<&'a str> {
    match expr {
        Expr::Placeholder(Placeholder { id, .. }) if open.contains(id) => Some(id),
        _ => None,
    }
}

/// The field of `expr` when it decides a parameter's type: no open parameter inside, a type
/// other than NULL.
fn deciding_field(expr: &Expr, schema: &DFSchema, open: &HashSet<String>) -> Option<FieldRef> {
    if mentions_open(expr, open) {
        return None;
    }
    let (_, field) = expr.to_field(schema).ok()?;
    if field.data_type().is_null() {
        return None;
    }
    Some(Arc::new(
        field.as_ref().clone().with_name("").with_nullable(true),
    ))
}

fn mentions_open(expr: &Expr, open: &HashSet<String>) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found = open_id(e, open).is_some();
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    found
}

/// The types the places of the open parameters decide (the first place for each).
fn decide(
    plan: &LogicalPlan,
    open: &HashSet<String>,
    fallback: bool,
) -> DfResult<HashMap<String, FieldRef>> {
    let mut decided: HashMap<String, FieldRef> = HashMap::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(limit) = node {
            // LIMIT and OFFSET are bigint.
            for count in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let Some(id) = open_id(count, open) {
                    let bigint = Arc::new(Field::new("", DataType::Int64, true));
                    decided.entry(id.to_string()).or_insert(bigint);
                }
            }
        }
        let schema = merge_schema(&node.inputs());
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                for (id, field) in places(e, &schema, open, fallback) {
                    decided.entry(id.to_string()).or_insert(field);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(decided)
}

/// The open parameters directly under `expr` whose type `expr` decides.
fn places<'a>(
    expr: &'a Expr,
    schema: &DFSchema,
    open: &HashSet<String>,
    fallback: bool,
) -> Vec<(&'a str, FieldRef)> {
    let mut found = Vec::new();
    // `target` takes the type of the first of `sources` that has one.
    let mut pair = |target: &'a Expr, sources: &[&Expr]| {
        if let Some(id) = open_id(target, open) {
            if let Some(field) = sources.iter().find_map(|s| deciding_field(s, schema, open)) {
                found.push((id, field));
            }
        }
    };
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, right, .. }) => {
            pair(left, &[right]);
            pair(right, &[left]);
        }
        Expr::Like(Like { expr, pattern, .. }) | Expr::SimilarTo(Like { expr, pattern, .. }) => {
            pair(pattern, &[expr]);
            pair(expr, &[pattern]);
        }
        Expr::Between(Between {
            expr, low, high, ..
        }) => {
            pair(low, &[expr]);
            pair(high, &[expr]);
            pair(expr, &[low, high]);
        }
        Expr::InList(InList { expr, list, .. }) => {
            for item in list {
                pair(item, &[expr]);
            }
            let items: Vec<&Expr> = list.iter().collect();
            pair(expr, &items);
        }
        Expr::Case(Case {
            expr: operand,
            when_then_expr,
            else_expr,
        }) => {
            let results: Vec<&Expr> = when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(else_expr.as_deref())
                .collect();
            for result in &results {
                pair(result, &results);
            }
            if let Some(operand) = operand {
                let whens: Vec<&Expr> = when_then_expr.iter().map(|(w, _)| w.as_ref()).collect();
                for when in &whens {
                    pair(when, &[operand]);
                }
                pair(operand, &whens);
            }
        }
        Expr::ScalarFunction(ScalarFunction { func, args })
            if args.iter().any(|a| open_id(a, open).is_some()) =>
        {
            found.extend(function_arguments(func, args, schema, open, fallback));
        }
        _ => {}
    }
    found
}

/// The types a function's signature gives its open parameter arguments: DataFusion's coercion
/// of the call with each as NULL. Nothing when another argument's type is not known yet or the
/// signature refuses the call.
fn function_arguments<'a>(
    func: &datafusion::logical_expr::ScalarUDF,
    args: &'a [Expr],
    schema: &DFSchema,
    open: &HashSet<String>,
    fallback: bool,
) -> Vec<(&'a str, FieldRef)> {
    let mut fields = Vec::with_capacity(args.len());
    for arg in args {
        if open_id(arg, open).is_some() {
            fields.push(Arc::new(Field::new("", DataType::Null, true)));
        } else if mentions_open(arg, open) {
            return vec![];
        } else {
            match arg.to_field(schema) {
                Ok((_, field)) => fields.push(field),
                Err(_) => return vec![],
            }
        }
    }
    if let Ok(coerced) = fields_with_udf(&fields, func) {
        let decided: Vec<(&str, FieldRef)> = args
            .iter()
            .zip(coerced)
            .filter_map(|(arg, field)| {
                let id = open_id(arg, open)?;
                if field.data_type().is_null() {
                    return None;
                }
                Some((
                    id,
                    Arc::new(Field::new("", field.data_type().clone(), true)),
                ))
            })
            .collect();
        if !decided.is_empty() {
            return decided;
        }
    }
    // A signature that refuses NULL or keeps it: the first of text, numeric, float8 it takes
    // (`round($1, 2)` is numeric, PostgreSQL's only two-argument round), once nothing else in
    // the statement decides the parameter (`pg_typeof($1)` takes anything).
    if !fallback {
        return vec![];
    }
    let candidates = [
        Field::new("", DataType::Utf8, true),
        crate::numeric::numeric_field("", None),
        Field::new("", DataType::Float64, true),
    ];
    for candidate in candidates {
        let candidate = Arc::new(candidate);
        let trial: Vec<FieldRef> = args
            .iter()
            .zip(&fields)
            .map(|(arg, field)| match open_id(arg, open) {
                Some(_) => Arc::clone(&candidate),
                None => Arc::clone(field),
            })
            .collect();
        if fields_with_udf(&trial, func).is_ok() {
            return args
                .iter()
                .filter_map(|arg| Some((open_id(arg, open)?, Arc::clone(&candidate))))
                .collect();
        }
    }
    vec![]
}

/// `plan` with every occurrence of the decided parameters typed, its schemas refreshed.
fn apply(plan: LogicalPlan, decided: &HashMap<String, FieldRef>) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let node = node.map_expressions(|expr| {
            expr.transform_up(|e| match e {
                Expr::Placeholder(Placeholder { id, field }) => match decided.get(&id) {
                    Some(decided) if field.as_ref() != Some(decided) => {
                        Ok(Transformed::yes(Expr::Placeholder(Placeholder {
                            id,
                            field: Some(Arc::clone(decided)),
                        })))
                    }
                    _ => Ok(Transformed::no(Expr::Placeholder(Placeholder {
                        id,
                        field,
                    }))),
                },
                other => Ok(Transformed::no(other)),
            })
        })?;
        crate::rewrite::refresh_schema(node)
    })
    .map(|t| t.data)
}

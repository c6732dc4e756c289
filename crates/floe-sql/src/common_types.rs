//! The type of a `CASE`, `coalesce`, `greatest` or `least` whose branches differ in type, and
//! of a comparison between `numeric` and a float, as PostgreSQL resolves them.
//!
//! PostgreSQL gives such an expression the common type of its branches (`select_common_type`):
//! in the numeric category the one every other converts to implicitly, int2 → int4 → int8 →
//! numeric → float4 → float8. DataFusion took a `CASE`'s type from its first branch when the
//! statement was planned, so `CASE WHEN c THEN 1 ELSE 2.5 END` was described to clients as
//! `int4` and sent as a decimal (garbage for binary clients), and it resolves numeric with a
//! float to a decimal, where PostgreSQL computes in float: `1.5 = 1e20::float8` overflowed
//! `Decimal128(30, 15)` (22003). Right after planning (where the statement's result types
//! are decided), [`resolve`] casts the branches to the common type: explicit, so what is
//! described is what is sent; an operator over a branch that became a wide numeric is planned
//! again as Floe's numeric operator. Decimals of one scale (integers with decimals of scale 0)
//! keep DataFusion's decimal; decimals of different scales, integers among them, become wide
//! numerics, whose values keep their own scales as in PostgreSQL (TPC-H's `CASE … THEN
//! price ELSE 0 END` too: measured in `docs/design/0007-numeric.md`). An IN list holding
//! more than literals becomes its comparisons (see [`resolve`]).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{Between, Case, Cast, InList, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, Operator};

use crate::numeric::{from_numeric, is_numeric_field_type, widened};

/// Where a type stands in PostgreSQL's implicit casts of the numeric category; `None` for
/// other types (left to DataFusion) and NULL (which takes any type).
fn rank(data_type: &DataType) -> Option<u8> {
    Some(match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => 1,
        DataType::Int32 | DataType::UInt16 => 2,
        DataType::Int64 | DataType::UInt32 => 3,
        DataType::Decimal128(..) | DataType::Decimal256(..) => 4,
        t if is_numeric_field_type(t) => 4,
        DataType::Float16 | DataType::Float32 => 5,
        DataType::Float64 => 6,
        _ => return None,
    })
}

/// The common type of `types` (NULLs ignored) when all are of the numeric category and not
/// all alike; `None` otherwise.
fn common_type(types: &[DataType]) -> Option<DataType> {
    let typed: Vec<&DataType> = types.iter().filter(|t| !t.is_null()).collect();
    let first = typed.first()?;
    if typed.iter().all(|t| t == first) {
        return None;
    }
    let ranks = typed.iter().map(|t| rank(t)).collect::<Option<Vec<u8>>>()?;
    let top = *ranks.iter().max()?;
    let highest = typed[ranks.iter().position(|r| *r == top)?];
    Some(match top {
        4 => match typed.iter().find(|t| is_numeric_field_type(t)) {
            Some(wide) => (*wide).clone(),
            // Decimals of different scales (integers are of scale 0): `numeric`, each value
            // keeping its scale (`coalesce(price, 0)` is `0`, not `0.00`).
            None if crate::numeric::mixes_scales(typed.iter().copied()) => DataType::LargeBinary,
            // Integers and decimals of one scale: DataFusion's decimal, which holds them all.
            None => type_union_resolution(&typed.into_iter().cloned().collect::<Vec<_>>())?,
        },
        _ => highest.clone(),
    })
}

/// `expr` as `target` (a wide numeric through Floe's conversion, a float from a wide
/// numeric likewise).
fn convert(expr: Expr, target: &DataType, schema: &DFSchema) -> DfResult<Expr> {
    let from = expr.get_type(schema)?;
    if &from == target || from.is_null() {
        return Ok(expr);
    }
    if is_numeric_field_type(target) {
        return Ok(widened(expr, schema));
    }
    if is_numeric_field_type(&from) {
        return Ok(from_numeric(expr, target.clone()));
    }
    expr.cast_to(target, schema)
}

/// Converts `exprs` to their common type, if they need it. `floats_only`: only when that type
/// is a float over a numeric (a comparison: numeric with a float is compared as floats;
/// integers with decimals DataFusion compares exactly already).
fn unify(
    exprs: Vec<Expr>,
    schema: &DFSchema,
    floats_only: bool,
) -> DfResult<Transformed<Vec<Expr>>> {
    let types = exprs
        .iter()
        .map(|e| e.get_type(schema))
        .collect::<DfResult<Vec<_>>>()?;
    let target = match common_type(&types) {
        Some(target) if !floats_only => target,
        Some(target @ (DataType::Float32 | DataType::Float64))
            if types.iter().any(|t| rank(t) == Some(4)) =>
        {
            target
        }
        _ => return Ok(Transformed::no(exprs)),
    };
    let converted = exprs
        .into_iter()
        .map(|e| convert(e, &target, schema))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Transformed::yes(converted))
}

/// Whether `expr` is a string literal: PostgreSQL's `unknown`, which takes the type of the
/// other branches.
fn is_unknown(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Literal(
            ScalarValue::Utf8(Some(_))
                | ScalarValue::Utf8View(Some(_))
                | ScalarValue::LargeUtf8(Some(_)),
            _
        )
    )
}

/// Branches `exprs` with their string literals cast to the type of the others, when those are
/// of the numeric category (`CASE … THEN '12' ELSE int_col END` is an integer, where DataFusion
/// made it text; likewise booleans, dates and times): PostgreSQL's `select_common_type` skips `unknown` inputs and then reads each
/// literal as that type. A literal read as a numeric keeps its written scale (`numeric`, not
/// the other branches' `numeric(p, s)`).
fn type_unknown_literals(exprs: Vec<Expr>, schema: &DFSchema) -> DfResult<Transformed<Vec<Expr>>> {
    if !exprs.iter().any(is_unknown) {
        return Ok(Transformed::no(exprs));
    }
    let mut typed = Vec::new();
    for expr in exprs.iter().filter(|e| !is_unknown(e)) {
        let data_type = expr.get_type(schema)?;
        if !data_type.is_null() {
            typed.push(data_type);
        }
    }
    let Some(first) = typed.first() else {
        return Ok(Transformed::no(exprs));
    };
    // Besides the numeric category: booleans, dates and times of one type (text-like types,
    // bytea and the rest keep DataFusion's coercion).
    let temporal = |t: &DataType| {
        matches!(
            t,
            DataType::Boolean
                | DataType::Date32
                | DataType::Timestamp(..)
                | DataType::Time64(_)
                | DataType::Interval(_)
        )
    };
    let numeric = typed.iter().all(|t| rank(t).is_some());
    let one_temporal = temporal(first) && typed.iter().all(|t| t == first);
    if !(numeric || one_temporal) {
        return Ok(Transformed::no(exprs));
    }
    let target = match common_type(&typed).unwrap_or_else(|| first.clone()) {
        DataType::Decimal128(..) | DataType::Decimal256(..) => DataType::LargeBinary,
        other => other,
    };
    let converted = exprs
        .into_iter()
        .map(|e| {
            if is_unknown(&e) {
                Expr::Cast(Cast::new(Box::new(e), target.clone()))
            } else {
                e
            }
        })
        .collect();
    Ok(Transformed::yes(converted))
}

/// `expr` with its string-literal branches typed (see [`type_unknown_literals`]) when it is a
/// CASE, `coalesce`, `greatest` or `least` that has them: for an operator planned over it,
/// which DataFusion would type from the literal (`CASE … THEN '12' ELSE i END + 1` would be
/// text + integer).
pub(crate) fn typed_branches(expr: Expr, schema: &DFSchema) -> DfResult<Expr> {
    let has_unknown = match &expr {
        Expr::Case(case) => case
            .when_then_expr
            .iter()
            .map(|(_, then)| then)
            .chain(case.else_expr.iter())
            .any(|e| is_unknown(e)),
        Expr::ScalarFunction(f) if matches!(f.name(), "coalesce" | "greatest" | "least") => {
            f.args.iter().any(is_unknown)
        }
        _ => false,
    };
    if !has_unknown {
        return Ok(expr);
    }
    Ok(resolve(expr, schema)?.data)
}

/// Resolves one expression node (see the module doc); applied bottom-up.
pub(crate) fn resolve(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match expr {
        Expr::Case(case) => {
            let Case {
                expr: operand,
                when_then_expr,
                else_expr,
            } = case;
            let (whens, thens): (Vec<Box<Expr>>, Vec<Expr>) =
                when_then_expr.into_iter().map(|(w, t)| (w, *t)).unzip();
            let has_else = else_expr.is_some();
            let results: Vec<Expr> = thens.into_iter().chain(else_expr.map(|e| *e)).collect();
            let typed = type_unknown_literals(results, schema)?;
            let unified = unify(typed.data, schema, false)?;
            let transformed = typed.transformed || unified.transformed;
            let mut results = unified.data;
            let else_expr = if has_else {
                results.pop().map(Box::new)
            } else {
                None
            };
            let when_then_expr = whens
                .into_iter()
                .zip(results.into_iter().map(Box::new))
                .collect();
            let case = Case {
                expr: operand,
                when_then_expr,
                else_expr,
            };
            Ok(Transformed::new_transformed(Expr::Case(case), transformed))
        }
        Expr::ScalarFunction(f) if matches!(f.name(), "coalesce" | "greatest" | "least") => {
            let ScalarFunction { func, args } = f;
            let typed = type_unknown_literals(args, schema)?;
            let unified = unify(typed.data, schema, false)?;
            let transformed = typed.transformed || unified.transformed;
            Ok(Transformed::new_transformed(
                Expr::ScalarFunction(ScalarFunction {
                    func,
                    args: unified.data,
                }),
                transformed,
            ))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if crate::numeric::wide_operator(&left, op, &right, schema).is_some() =>
        {
            let planned = crate::numeric::wide_operator(&left, op, &right, schema);
            Ok(Transformed::yes(planned.unwrap_or(Expr::BinaryExpr(
                BinaryExpr::new(left, op, right),
            ))))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
            ) =>
        {
            let unified = unify(vec![*left, *right], schema, true)?;
            let transformed = unified.transformed;
            let [left, right]: [Expr; 2] = unified
                .data
                .try_into()
                .map_err(|_| datafusion::error::DataFusionError::Internal("comparison".into()))?;
            Ok(Transformed::new_transformed(
                Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right))),
                transformed,
            ))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) => {
            let unified = unify(std::iter::once(*expr).chain(list).collect(), schema, true)?;
            let transformed = unified.transformed;
            let mut all = unified.data.into_iter();
            let expr = all
                .next()
                .ok_or_else(|| datafusion::error::DataFusionError::Internal("IN list".into()))?;
            let list: Vec<Expr> = all.collect();
            // A list with more than literals is the comparisons it stands for (PostgreSQL's
            // semantics, NULLs included): DataFusion takes any list it can evaluate on an empty
            // batch for a constant one, and `btrim(s) IN (CASE … s …, 'a')` then compared
            // with 'a' only.
            let literal = |e: &Expr| matches!(e, Expr::Literal(..));
            // Where `=` is Arrow's equality (not numerics' or jsonb's own, planned with the
            // SQL); NumericSemantics expands lists of wide numerics itself.
            let plain = |e: &Expr| {
                e.to_field(schema).is_ok_and(|(_, f)| {
                    !is_numeric_field_type(f.data_type())
                        && !matches!(
                            f.metadata()
                                .get(crate::types::PG_TYPE_KEY)
                                .map(String::as_str),
                            Some("jsonb" | "json")
                        )
                })
            };
            if !list.iter().all(literal)
                && !expr.is_volatile()
                && plain(&expr)
                && list.iter().all(plain)
            {
                let compare = |item: Expr| {
                    if negated {
                        expr.clone().not_eq(item)
                    } else {
                        expr.clone().eq(item)
                    }
                };
                let expanded =
                    list.into_iter()
                        .map(compare)
                        .reduce(|a, b| if negated { a.and(b) } else { a.or(b) });
                if let Some(expanded) = expanded {
                    return Ok(Transformed::yes(expanded));
                }
                return Ok(Transformed::new_transformed(
                    Expr::InList(InList::new(Box::new(expr), Vec::new(), negated)),
                    transformed,
                ));
            }
            Ok(Transformed::new_transformed(
                Expr::InList(InList {
                    expr: Box::new(expr),
                    list,
                    negated,
                }),
                transformed,
            ))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) => {
            let unified = unify(vec![*expr, *low, *high], schema, true)?;
            let transformed = unified.transformed;
            let [expr, low, high]: [Expr; 3] = unified
                .data
                .try_into()
                .map_err(|_| datafusion::error::DataFusionError::Internal("BETWEEN".into()))?;
            Ok(Transformed::new_transformed(
                Expr::Between(Between::new(
                    Box::new(expr),
                    negated,
                    Box::new(low),
                    Box::new(high),
                )),
                transformed,
            ))
        }
        other => Ok(Transformed::no(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType as D;

    #[test]
    fn common_types_follow_postgres() {
        assert_eq!(common_type(&[D::Int16, D::Int32]), Some(D::Int32));
        assert_eq!(common_type(&[D::Int32, D::Null, D::Int64]), Some(D::Int64));
        assert_eq!(
            common_type(&[D::Decimal128(2, 1), D::Float64]),
            Some(D::Float64)
        );
        assert_eq!(common_type(&[D::Float32, D::Int64]), Some(D::Float32));
        assert_eq!(common_type(&[D::Float32, D::Float64]), Some(D::Float64));
        assert_eq!(
            common_type(&[D::Int32, D::Decimal128(2, 1)]),
            Some(D::LargeBinary)
        );
        assert_eq!(
            common_type(&[D::Decimal128(12, 2), D::Decimal128(3, 2)]),
            Some(D::Decimal128(12, 2))
        );
        assert_eq!(
            common_type(&[D::Int64, D::Decimal128(5, 0)]),
            Some(D::Decimal128(20, 0))
        );
        assert_eq!(
            common_type(&[D::Int32, D::LargeBinary]),
            Some(D::LargeBinary)
        );
        assert_eq!(common_type(&[D::Int32, D::Int32]), None);
        assert_eq!(common_type(&[D::Int32, D::Utf8]), None);
    }
}

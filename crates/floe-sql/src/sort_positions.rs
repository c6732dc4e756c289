//! Constants in `ORDER BY`, `GROUP BY` and `DISTINCT ON`, checked as PostgreSQL's
//! `findTargetlistEntrySQL92` does before the statement is planned.
//!
//! An integer literal there is a position in the select list (1-based); any other literal
//! (a string, a non-integer or out-of-range number, `NULL`, `true`) is refused with 42601
//! `non-integer constant in ORDER BY`, and a position outside the select list with 42P10. Left
//! to DataFusion, `ORDER BY 'x'` and `ORDER BY -1` sorted by a constant, and an out-of-range
//! position failed with DataFusion's message.

use datafusion::sql::sqlparser::ast::{
    Distinct, Expr, GroupByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, UnaryOperator,
    Value,
};

use crate::error::{sqlstate, SqlError, SqlResult};

/// Checks the constants of `query`'s ORDER BY and of its SELECTs' GROUP BY and DISTINCT ON
/// (not of nested queries: the AST visitor calls this for each).
pub(crate) fn check(query: &Query) -> SqlResult<()> {
    if let Some(order_by) = &query.order_by {
        if let OrderByKind::Expressions(exprs) = &order_by.kind {
            let width = output_width(&query.body);
            for item in exprs {
                check_entry(&item.expr, "ORDER BY", width)?;
            }
        }
    }
    check_selects(&query.body)
}

fn check_selects(body: &SetExpr) -> SqlResult<()> {
    match body {
        SetExpr::Select(select) => check_select(select),
        SetExpr::SetOperation { left, right, .. } => {
            check_selects(left)?;
            check_selects(right)
        }
        _ => Ok(()),
    }
}

fn check_select(select: &Select) -> SqlResult<()> {
    let width = select_width(select);
    if let GroupByExpr::Expressions(exprs, _) = &select.group_by {
        for expr in exprs {
            check_entry(expr, "GROUP BY", width)?;
        }
    }
    if let Some(Distinct::On(exprs)) = &select.distinct {
        for expr in exprs {
            check_entry(expr, "DISTINCT ON", width)?;
        }
    }
    Ok(())
}

/// The number of columns `body` returns, when known without resolving a `*`.
fn output_width(body: &SetExpr) -> Option<usize> {
    match body {
        SetExpr::Select(select) => select_width(select),
        SetExpr::SetOperation { left, .. } => output_width(left),
        SetExpr::Query(query) => output_width(&query.body),
        SetExpr::Values(values) => values.rows.first().map(|row| row.len()),
        _ => None,
    }
}

fn select_width(select: &Select) -> Option<usize> {
    let star = select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    (!star).then_some(select.projection.len())
}

/// `expr` without its parentheses (PostgreSQL's raw parse tree has none).
fn unparenthesized(expr: &Expr) -> &Expr {
    match expr {
        Expr::Nested(inner) => unparenthesized(inner),
        other => other,
    }
}

/// A constant entry of `clause`: an integer (a position, negated by a minus sign in front),
/// another constant, or `None` for an expression.
enum Constant {
    Position(i64),
    Other,
}

fn constant(expr: &Expr) -> Option<Constant> {
    match unparenthesized(expr) {
        Expr::Value(value) => match &value.value {
            // An integer that fits PostgreSQL's int4; a longer one is a float constant.
            Value::Number(digits, _) => Some(match digits.parse::<i32>() {
                Ok(position) => Constant::Position(i64::from(position)),
                Err(_) => Constant::Other,
            }),
            Value::Placeholder(_) => None,
            _ => Some(Constant::Other),
        },
        // The grammar folds a minus sign into a number constant (not into a string), also
        // one already negated (`- (-1)`).
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } if is_number(expr) => match constant(expr)? {
            Constant::Position(position) => Some(Constant::Position(-position)),
            Constant::Other => Some(Constant::Other),
        },
        _ => None,
    }
}

/// Whether `expr` is a number constant, negated or not.
fn is_number(expr: &Expr) -> bool {
    match unparenthesized(expr) {
        Expr::Value(v) => matches!(v.value, Value::Number(..)),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => is_number(expr),
        _ => false,
    }
}

fn check_entry(expr: &Expr, clause: &str, width: Option<usize>) -> SqlResult<()> {
    match constant(expr) {
        Some(Constant::Other) => Err(SqlError::new(
            sqlstate::SYNTAX_ERROR,
            format!("non-integer constant in {clause}"),
        )),
        Some(Constant::Position(position))
            if position < 1 || width.is_some_and(|w| position > w as i64) =>
        {
            Err(SqlError::new(
                sqlstate::INVALID_COLUMN_REFERENCE,
                format!("{clause} position {position} is not in select list"),
            ))
        }
        _ => Ok(()),
    }
}

//! Parameters in the arguments of a table function in FROM (`generate_series(1, $1)`).
//!
//! DataFusion calls a table function while it plans the statement, with its arguments folded
//! to constants, so a parameter there has no value yet. Such a statement is planned for its
//! Describe with each of those parameters as a NULL of its type ([`with_nulls`]: a table
//! function of NULL arguments has no rows and the same columns), and planned again at each
//! execution with the parameters' values in their place ([`with_values`]).
//!
//! A parameter there takes the type the client or a cast gave it, else the type of the
//! function's other arguments (`generate_series(1, $1)`: `integer`, as PostgreSQL resolves it),
//! else `bigint`.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, Statement, TableFactor, Value, VisitMut, VisitorMut,
};

use crate::error::SqlResult;
use crate::types::SqlType;

/// The number of `$n`.
fn parameter(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$')?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Calls `each` with every table function argument of `statement` (mutably).
fn for_each_argument(statement: &mut Statement, each: impl FnMut(&mut Expr)) {
    struct Arguments<F>(F);
    impl<F: FnMut(&mut Expr)> VisitorMut for Arguments<F> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                args: Some(args), ..
            } = factor
            {
                for arg in &mut args.args {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = arg {
                        (self.0)(expr);
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Arguments(each));
}

/// The type a table function argument gives its siblings: integer literals (`integer` when
/// they fit, as PostgreSQL reads them), casts and typed literals.
fn argument_type(expr: &Expr) -> Option<SqlType> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) if text.parse::<i32>().is_ok() => Some(SqlType::Int4),
            Value::Number(text, _) if text.parse::<i64>().is_ok() => Some(SqlType::Int8),
            Value::Number(..) => Some(SqlType::Numeric),
            _ => None,
        },
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        }
        | Expr::Nested(expr) => argument_type(expr),
        Expr::Cast { data_type, .. } => SqlType::from_sql(data_type),
        Expr::TypedString(typed) => SqlType::from_sql(&typed.data_type),
        _ => None,
    }
}

/// The parameters standing alone as table function arguments (`$n` or `$n::type`), with the
/// type each takes ([`declared`] where known). Empty for most statements.
pub fn parameters(statement: &Statement, declared: &[SqlType]) -> Vec<(usize, SqlType)> {
    struct Calls(Vec<Vec<Expr>>);
    impl ast::Visitor for Calls {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                args: Some(args), ..
            } = factor
            {
                self.0.push(
                    args.args
                        .iter()
                        .filter_map(|a| match a {
                            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                            _ => None,
                        })
                        .collect(),
                );
            }
            ControlFlow::Continue(())
        }
    }
    let mut calls = Calls(Vec::new());
    let _ = ast::Visit::visit(statement, &mut calls);
    let mut found: Vec<(usize, SqlType)> = Vec::new();
    for args in calls.0 {
        let sibling = args.iter().find_map(argument_type).unwrap_or(SqlType::Int8);
        for arg in &args {
            let _ = ast::visit_expressions(arg, |e| {
                if let Some(n) = parameter(e).filter(|n| *n > 0) {
                    let known = declared
                        .get(n - 1)
                        .filter(|t| **t != SqlType::Unknown)
                        .cloned();
                    if !found.iter().any(|(m, _)| *m == n) {
                        found.push((n, known.unwrap_or_else(|| sibling.clone())));
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
    found
}

/// `statement` with the table function parameters as NULLs of their types.
pub fn with_nulls(statement: &Statement, parameters: &[(usize, SqlType)]) -> Statement {
    let mut statement = statement.clone();
    for_each_argument(&mut statement, |arg| {
        let _ = ast::visit_expressions_mut(arg, |e| {
            if let Some((_, t)) = parameter(e).and_then(|n| parameters.iter().find(|p| p.0 == n)) {
                *e = cast(Expr::value(Value::Null), t);
            }
            ControlFlow::<()>::Continue(())
        });
    });
    statement
}

/// `statement` with the table function parameters replaced by their values (`params[n - 1]`,
/// of type `types[n - 1]`).
pub fn with_values(
    statement: &Statement,
    types: &[SqlType],
    params: &[ScalarValue],
) -> SqlResult<Statement> {
    let mut statement = statement.clone();
    let mut failed = None;
    for_each_argument(&mut statement, |arg| {
        let _ = ast::visit_expressions_mut(arg, |e| {
            let Some(n) = parameter(e).filter(|n| *n > 0) else {
                return ControlFlow::Continue(());
            };
            let (Some(value), Some(t)) = (params.get(n - 1), types.get(n - 1)) else {
                return ControlFlow::Continue(());
            };
            match literal(value) {
                Ok(text) => *e = cast(text, t),
                Err(error) => failed = Some(error),
            }
            ControlFlow::<()>::Continue(())
        });
    });
    match failed {
        Some(error) => Err(error),
        None => Ok(statement),
    }
}

/// `CAST(expr AS t)`.
fn cast(expr: Expr, t: &SqlType) -> Expr {
    Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(expr),
        data_type: crate::session::sql_data_type(t),
        array: false,
        format: None,
    }
}

/// A parameter's value as a literal: a number for integers, else its text (cast to the
/// parameter's type around it).
fn literal(value: &ScalarValue) -> SqlResult<Expr> {
    if value.is_null() {
        return Ok(Expr::value(Value::Null));
    }
    if value.data_type().is_integer() {
        return Ok(Expr::value(Value::Number(value.to_string(), false)));
    }
    let text = match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s.clone(),
        ScalarValue::IntervalMonthDayNano(Some(v)) => format!(
            "{} mons {} days {} microseconds",
            v.months,
            v.days,
            v.nanoseconds / 1000
        ),
        other => other.cast_to(&DataType::Utf8)?.to_string(),
    };
    Ok(Expr::value(Value::SingleQuotedString(text)))
}

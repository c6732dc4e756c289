//! Calls that differ only in their casts (or scalar subqueries) keep apart in DataFusion's plan.
//!
//! DataFusion names an expression by its text with every cast left out (`sum(x::int2)` is
//! `sum(v.x)`), and an aggregate or window node must not compute two expressions of one name.
//! So `SELECT sum(x), sum(x::int2)` failed to plan ("specified more than once") where
//! PostgreSQL answers. Before planning, when two different calls of one statement read alike
//! once their casts are left out, every cast in their arguments is wrapped in
//! [`CAST_NAMED`]`(cast, 'type')`, a function that passes its first argument through (its
//! field too, so the result type a client sees is the cast's) and whose name shows the type.
//! Scalar subqueries likewise: DataFusion names one by its column, so `min((SELECT max(1))),
//! min((SELECT max(2)))` clashed too (42712); each is wrapped with its text as the name.
//! Statements without such calls are left alone.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::{
    self, Expr, Statement, Value, VisitMut, Visitor, VisitorMut,
};

/// The pass-through function's name.
pub(crate) const CAST_NAMED: &str = "floe_cast_named";

/// Wraps the casts in the arguments of calls that would share a name in DataFusion's plan.
pub(crate) fn distinguish(statement: &mut Statement) {
    let mut calls = Calls::default();
    let _ = ast::Visit::visit(&*statement, &mut calls);
    let mut texts_by_key: HashMap<String, Vec<String>> = HashMap::new();
    for (key, text) in calls.seen {
        let texts = texts_by_key.entry(key).or_default();
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    let clashing: Vec<String> = texts_by_key
        .into_values()
        .filter(|texts| texts.len() > 1)
        .flatten()
        .collect();
    if clashing.is_empty() {
        return;
    }
    let _ = statement.visit(&mut Wrapper { clashing });
}

/// The text of a call with its casts left out (the name DataFusion gives it).
fn stripped_key(function: &ast::Function) -> String {
    let mut stripped = function.clone();
    let _ = VisitMut::visit(&mut stripped.args, &mut Strip);
    stripped.to_string()
}

#[derive(Default)]
struct Calls {
    /// (text without casts, text) of every call.
    seen: Vec<(String, String)>,
}

impl Visitor for Calls {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            self.seen
                .push((stripped_key(function), function.to_string()));
        }
        ControlFlow::Continue(())
    }
}

struct Strip;

impl VisitorMut for Strip {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Cast { expr: inner, .. } => {
                *expr = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            }
            // DataFusion names a scalar subquery by its column (`min((SELECT max(1)))` is
            // `min(max)`): subqueries read alike.
            Expr::Subquery(_) => *expr = Expr::Identifier(ast::Ident::new("subquery")),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

struct Wrapper {
    clashing: Vec<String>,
}

impl VisitorMut for Wrapper {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(function) = expr {
            if self.clashing.contains(&function.to_string()) {
                let _ = VisitMut::visit(&mut function.args, &mut NameCasts);
            }
        }
        ControlFlow::Continue(())
    }
}

struct NameCasts;

impl VisitorMut for NameCasts {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let name = match expr {
            Expr::Cast { data_type, .. } => data_type.to_string(),
            Expr::Subquery(query) => query.to_string(),
            _ => return ControlFlow::Continue(()),
        };
        let name = Expr::value(Value::SingleQuotedString(name));
        let named = std::mem::replace(expr, Expr::value(Value::Null));
        *expr = crate::rewrite::call(CAST_NAMED, vec![named, name]);
        ControlFlow::Continue(())
    }
}

/// `floe_cast_named(value, type_name)`: `value`, with its field.
pub(crate) fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CastNamed {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CastNamed {
    signature: Signature,
}

impl ScalarUDFImpl for CastNamed {
    fn name(&self) -> &str {
        CAST_NAMED
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(match args.arg_fields.first() {
            Some(field) => Arc::new(field.as_ref().clone().with_name(CAST_NAMED)),
            None => Arc::new(datafusion::arrow::datatypes::Field::new(
                CAST_NAMED,
                DataType::Null,
                true,
            )),
        })
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args.swap_remove(0))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        distinguish(&mut statement);
        statement.to_string()
    }

    #[test]
    fn calls_apart_only_by_casts_get_named_casts() {
        assert_eq!(
            rewritten("SELECT sum(x), sum(x::int2) FROM t"),
            "SELECT sum(x), sum(floe_cast_named(x::INT2, 'INT2')) FROM t"
        );
        assert_eq!(
            rewritten("SELECT sum(x::int4), sum(x::int2) FROM t"),
            "SELECT sum(floe_cast_named(x::INT4, 'INT4')), \
             sum(floe_cast_named(x::INT2, 'INT2')) FROM t"
        );
    }

    #[test]
    fn calls_apart_only_by_subqueries_get_named_subqueries() {
        assert_eq!(
            rewritten("SELECT min((SELECT max(1))), min((SELECT max(2)))"),
            "SELECT min(floe_cast_named((SELECT max(1)), 'SELECT max(1)')), \
             min(floe_cast_named((SELECT max(2)), 'SELECT max(2)'))"
        );
    }

    #[test]
    fn other_statements_are_left_alone() {
        for sql in [
            "SELECT sum(x::int2), sum(x::int2) FROM t",
            "SELECT sum(x), avg(x::int2) FROM t",
            "SELECT sum(x), sum(y) FROM t",
            "SELECT sum(x::numeric) FROM t",
        ] {
            assert_eq!(
                rewritten(sql),
                Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap()[0].to_string()
            );
        }
    }
}

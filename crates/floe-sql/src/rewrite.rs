//! Rewrites that make DataFusion answer the way PostgreSQL does.
//!
//! Two kinds: on the SQL AST before planning (session functions such as `current_user` or
//! `current_setting()` become constants of this session), and on the logical plan after
//! planning (integer literals that fit in 32 bits are `integer`, as in PostgreSQL, not
//! DataFusion's `bigint`).

use std::ops::ControlFlow;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr as PlanExpr, LogicalPlan, LogicalPlanBuilder, Volatility};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value, VisitMut,
    VisitorMut,
};

use crate::error::{sqlstate, SqlError, SqlResult};
use crate::literals;
use crate::session::Session;
use crate::vars::SERVER_VERSION;

/// Replaces calls of session functions with this session's values.
pub fn rewrite_statement(statement: &mut Statement, session: &Session) -> SqlResult<()> {
    set_returning_functions(statement)?;
    let mut visitor = SessionFunctions {
        session,
        error: None,
    };
    let _ = statement.visit(&mut visitor);
    match visitor.error {
        Some(err) => Err(err),
        None => crate::pg_catalog::rewrite_statement(statement, session),
    }
}

struct SessionFunctions<'a> {
    session: &'a Session,
    error: Option<SqlError>,
}

impl VisitorMut for SessionFunctions<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<Self::Break> {
        if let Err(err) = crate::sort_positions::check(query) {
            self.error = Some(err);
            return ControlFlow::Break(());
        }
        // Before the literal casts in the rows are folded (`literal_cast`).
        if let ast::SetExpr::Values(values) = query.body.as_mut() {
            type_values_literals(&mut values.rows);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut ast::Query) -> ControlFlow<Self::Break> {
        if let ast::SetExpr::Values(values) = query.body.as_mut() {
            crate::numeric::widen_values_literals(&mut values.rows);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut ast::TableFactor) -> ControlFlow<()> {
        if let Some(replacement) = int4_series(factor) {
            *factor = replacement;
        } else if let Some(replacement) = crate::functions::jsonb::operators::table_function(factor)
        {
            *factor = replacement;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Some(replacement) = number_literal(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = at_time_zone(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = distinct_from(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = negation(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = not_exists_test(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = time_precision(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = datetime_fields(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = any_array(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        match interval_literal(expr) {
            Ok(Some(replacement)) => {
                *expr = replacement;
                return ControlFlow::Continue(());
            }
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        if crate::numeric::nan_literal_cast(expr) || crate::numeric::typmod_cast(expr) {
            return ControlFlow::Continue(());
        }
        match literal_cast(expr) {
            Ok(Some(replacement)) => {
                *expr = replacement;
                return ControlFlow::Continue(());
            }
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        if let Some(replacement) = bounded_text_cast(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        if let Some(replacement) = crate::functions::jsonb::operators::cast_input(expr) {
            *expr = replacement;
            return ControlFlow::Continue(());
        }
        let Expr::Function(function) = expr else {
            return ControlFlow::Continue(());
        };
        constant_aggregate_order(function);
        if function.name.0.len() > 2 {
            return ControlFlow::Continue(());
        }
        let name = match function.name.0.last().and_then(|p| p.as_ident()) {
            Some(ident) => ident.value.to_ascii_lowercase(),
            None => return ControlFlow::Continue(()),
        };
        if function.name.0.len() == 2 {
            let schema = function.name.0[0]
                .as_ident()
                .map(|i| i.value.to_ascii_lowercase())
                .unwrap_or_default();
            if schema != "pg_catalog" {
                return ControlFlow::Continue(());
            }
        }
        if name == "make_interval" {
            if let Some(replacement) = make_interval(function) {
                *expr = replacement;
            }
            return ControlFlow::Continue(());
        }
        // `sum(1)`, `sum(CASE WHEN … THEN 1 ELSE 0 END)`: PostgreSQL's `1` is an integer,
        // whose sum is a bigint (DataFusion plans the literal as a bigint, whose sum is a
        // numeric: `sum(1) + 1` was numeric).
        if matches!(name.as_str(), "sum" | "min" | "max") {
            if let FunctionArguments::List(list) = &mut function.args {
                if let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))) =
                    list.args.first_mut()
                {
                    int4_results(arg);
                }
            }
            return ControlFlow::Continue(());
        }
        // DataFusion's `string_agg` is a large string, whose functions answer `bigint`
        // (`octet_length(string_agg(…))`): PostgreSQL's is `text`.
        if name == "string_agg" {
            let aggregate = std::mem::replace(expr, Expr::value(Value::Null));
            *expr = Expr::Cast {
                kind: ast::CastKind::Cast,
                expr: Box::new(aggregate),
                data_type: ast::DataType::Text,
                array: false,
                format: None,
            };
            return ControlFlow::Continue(());
        }
        let args = match &function.args {
            FunctionArguments::None => Vec::new(),
            FunctionArguments::List(list) => list.args.clone(),
            FunctionArguments::Subquery(_) => return ControlFlow::Continue(()),
        };
        let replacement = match (name.as_str(), args.len()) {
            ("version", 0) => Some(text(&format!(
                "PostgreSQL {SERVER_VERSION} (Floe {}) on {}-linux, compiled by rustc, 64-bit",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::ARCH
            ))),
            ("current_database", 0) | ("current_catalog", 0) => Some(text(self.session.database())),
            // The first schema of search_path that exists (NULL if none does).
            ("current_schema", 0) => Some(match self.session.search_path().first() {
                Some(schema) => text(schema),
                None => Expr::Cast {
                    kind: ast::CastKind::DoubleColon,
                    expr: Box::new(Expr::value(Value::Null)),
                    data_type: ast::DataType::Text,
                    array: false,
                    format: None,
                },
            }),
            ("current_user", 0) | ("session_user", 0) | ("user", 0) | ("current_role", 0) => {
                Some(text(self.session.user()))
            }
            ("nextval", 1) => {
                let name = match sequence_name_arg(&args[0]) {
                    Some(name) => name,
                    None => {
                        self.error = Some(SqlError::not_supported(
                            "nextval() needs a constant sequence name",
                        ));
                        return ControlFlow::Break(());
                    }
                };
                match self.session.sequence_oid(&name) {
                    Ok(oid) => {
                        let oid_arg = Expr::Cast {
                            kind: ast::CastKind::Cast,
                            expr: Box::new(Expr::value(Value::Number(oid.to_string(), false))),
                            data_type: ast::DataType::BigInt(None),
                            array: false,
                            format: None,
                        };
                        let mut call = function.clone();
                        call.name =
                            ast::ObjectName::from(vec![ast::Ident::new(crate::functions::NEXTVAL)]);
                        call.args = FunctionArguments::List(ast::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(oid_arg))],
                            clauses: vec![],
                        });
                        Some(Expr::Function(call))
                    }
                    Err(err) => {
                        self.error = Some(err);
                        return ControlFlow::Break(());
                    }
                }
            }
            ("pg_backend_pid", 0) => Some(Expr::value(Value::Number(
                self.session.backend_pid().to_string(),
                false,
            ))),
            ("current_setting", 1 | 2) => {
                let name = match string_arg(&args[0]) {
                    Some(name) => name,
                    None => {
                        self.error = Some(SqlError::not_supported(
                            "current_setting() needs a constant parameter name",
                        ));
                        return ControlFlow::Break(());
                    }
                };
                let missing_ok = args.get(1).map(bool_arg).unwrap_or(Some(false));
                match (self.session.setting(&name), missing_ok) {
                    (Ok(value), _) => Some(text(&value)),
                    (Err(_), Some(true)) => Some(Expr::value(Value::Null)),
                    (Err(err), _) => {
                        self.error = Some(err);
                        return ControlFlow::Break(());
                    }
                }
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// `x::varchar(n)` and `x::char(n)` cut the value to `n` characters (see
/// [`crate::bounded_text`]): the cast to the unbounded type, then the length rule.
/// `-x` of anything but a number literal as a call of [`crate::numeric::functions::NEGATE`]:
/// DataFusion refuses unary minus on a numeric while planning, before any rewrite could
/// help. The function negates every type DataFusion's minus does, overflow checked.
/// The string literals of a VALUES column where another row casts explicitly (`VALUES
/// (1.5::numeric), ('NaN')`, `VALUES ('2020-01-01'::date), ('2021-01-01')`) take that cast's type, as
/// PostgreSQL resolves `unknown` literals to the column's type; DataFusion refused the mix
/// ("Inconsistent data type across values list"). Length and precision modifiers are dropped
/// (PostgreSQL's common type of differing modifiers has none); `char(n)` columns are left alone.
fn type_values_literals(rows: &mut [ast::Parens<Vec<Expr>>]) {
    let columns = rows.first().map_or(0, |r| r.content.len());
    for column in 0..columns {
        let target = rows.iter().find_map(|row| match row.content.get(column) {
            Some(Expr::Cast { data_type, .. }) => literal_target(data_type),
            _ => None,
        });
        let Some(target) = target else {
            continue;
        };
        for row in rows.iter_mut() {
            let Some(expr) = row.content.get_mut(column) else {
                continue;
            };
            let is_string = matches!(expr, Expr::Value(v) if matches!(
                v.value,
                Value::SingleQuotedString(_) | Value::EscapedStringLiteral(_)
            ));
            if is_string {
                *expr = Expr::Cast {
                    kind: ast::CastKind::DoubleColon,
                    expr: Box::new(std::mem::replace(expr, Expr::value(Value::Null))),
                    data_type: target.clone(),
                    array: false,
                    format: None,
                };
            }
        }
    }
}

/// The type a VALUES column's string literals take from an explicit cast to `data_type`.
fn literal_target(data_type: &ast::DataType) -> Option<ast::DataType> {
    use ast::DataType as D;
    Some(match data_type {
        D::Text | D::String(_) => return None,
        D::Char(_) | D::Character(_) => return None,
        D::Varchar(_) | D::CharacterVarying(_) | D::CharVarying(_) => D::Varchar(None),
        D::Numeric(_) | D::Decimal(_) | D::Dec(_) => D::Numeric(ast::ExactNumberInfo::None),
        D::Timestamp(_, zone) => D::Timestamp(None, *zone),
        D::Time(_, zone) => D::Time(None, *zone),
        other => other.clone(),
    })
}

/// Number literals read from their text where DataFusion's decimal literals would not hold
/// them: a literal cast to a float (`1e100::float8` went through a decimal and came out as
/// 1.0000000000000002e+100) is the float parsed from its text, and a literal with more than
/// 76 digits or an exponent beyond ±38 (`1.5e300`, refused before) is `'…'::numeric`.
fn number_literal(expr: &Expr) -> Option<Expr> {
    use ast::DataType as D;
    let cast = |text: &str, data_type: ast::DataType| Expr::Cast {
        kind: ast::CastKind::DoubleColon,
        expr: Box::new(Expr::value(Value::SingleQuotedString(text.to_owned()))),
        data_type,
        array: false,
        format: None,
    };
    match expr {
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } if matches!(
            data_type,
            D::Float(_)
                | D::Real
                | D::Double(_)
                | D::DoublePrecision
                | D::Float4
                | D::Float8
                | D::Float32
                | D::Float64
        ) =>
        {
            match inner.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::Number(text, _) => Some(cast(text, data_type.clone())),
                    _ => None,
                },
                _ => None,
            }
        }
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => {
                let (mantissa, exponent) = match text.find(['e', 'E']) {
                    Some(at) => (
                        &text[..at],
                        text[at + 1..].parse::<i64>().unwrap_or(i64::MAX),
                    ),
                    None => (text.as_str(), 0),
                };
                let digits = mantissa.chars().filter(char::is_ascii_digit).count();
                (digits > 76 || exponent.unsigned_abs() > 38)
                    .then(|| cast(text, D::Numeric(ast::ExactNumberInfo::None)))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `a IS [NOT] DISTINCT FROM b` as `[NOT] (a <=> b)`: DataFusion plans `<=>` (its spelling of
/// IS NOT DISTINCT FROM) through the expression planners, which see the operand types
/// (`crate::numeric::NumericExprPlanner` compares numerics by value); the `IS DISTINCT FROM`
/// syntax goes straight to a `BinaryExpr` whose type DataFusion cannot compute for a numeric
/// beside an integer. The simplifier folds `NOT (a <=> b)` back into `a IS DISTINCT FROM b`.
fn at_time_zone(expr: &Expr) -> Option<Expr> {
    let Expr::AtTimeZone {
        timestamp,
        time_zone,
    } = expr
    else {
        return None;
    };
    let arg = |e: &Expr| FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e.clone()));
    Some(Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new("timezone")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![arg(time_zone), arg(timestamp)],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

fn distinct_from(expr: &Expr) -> Option<Expr> {
    let (a, b, negate) = match expr {
        Expr::IsDistinctFrom(a, b) => (a, b, true),
        Expr::IsNotDistinctFrom(a, b) => (a, b, false),
        _ => return None,
    };
    let same = Expr::Nested(Box::new(Expr::BinaryOp {
        left: a.clone(),
        op: ast::BinaryOperator::Spaceship,
        right: b.clone(),
    }));
    Some(if negate {
        Expr::UnaryOp {
            op: ast::UnaryOperator::Not,
            expr: Box::new(same),
        }
    } else {
        same
    })
}

/// The integer literals `expr` evaluates to (itself, or a CASE's results) that fit an
/// `integer` cast to one, as PostgreSQL types them.
fn int4_results(expr: &mut Expr) {
    let fits = |e: &Expr| match e {
        Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if n.parse::<i32>().is_ok()),
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr: inner,
        } => matches!(inner.as_ref(), Expr::Value(v)
            if matches!(&v.value, Value::Number(n, _) if format!("-{n}").parse::<i32>().is_ok())),
        _ => false,
    };
    if fits(expr) {
        let literal = std::mem::replace(expr, Expr::value(Value::Null));
        *expr = Expr::Cast {
            kind: ast::CastKind::DoubleColon,
            expr: Box::new(literal),
            data_type: ast::DataType::Int4(None),
            array: false,
            format: None,
        };
        return;
    }
    match expr {
        Expr::Nested(inner) => int4_results(inner),
        Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            for when in conditions {
                int4_results(&mut when.result);
            }
            if let Some(otherwise) = else_result {
                int4_results(otherwise);
            }
        }
        // Integer operators and the functions that return their argument's type keep
        // PostgreSQL's `integer` (`sum(1 | 12)`, `sum(nullif(1, 1))` are sums of integers).
        Expr::BinaryOp {
            left,
            op:
                ast::BinaryOperator::Plus
                | ast::BinaryOperator::Minus
                | ast::BinaryOperator::Multiply
                | ast::BinaryOperator::Divide
                | ast::BinaryOperator::Modulo
                | ast::BinaryOperator::BitwiseAnd
                | ast::BinaryOperator::BitwiseOr
                | ast::BinaryOperator::PGBitwiseXor,
            right,
        } => {
            int4_results(left);
            int4_results(right);
        }
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus | ast::UnaryOperator::Plus,
            expr: inner,
        } => int4_results(inner),
        Expr::Function(f)
            if matches!(
                f.name.to_string().to_ascii_lowercase().as_str(),
                "nullif" | "coalesce" | "abs" | "greatest" | "least"
            ) =>
        {
            if let FunctionArguments::List(list) = &mut f.args {
                for arg in list.args.iter_mut() {
                    if let FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = arg {
                        int4_results(e);
                    }
                }
            }
        }
        _ => {}
    }
}

fn negation(expr: &Expr) -> Option<Expr> {
    let Expr::UnaryOp {
        op: ast::UnaryOperator::Minus,
        expr: operand,
    } = expr
    else {
        return None;
    };
    if matches!(operand.as_ref(), Expr::Value(_) | Expr::Interval(_)) {
        return None;
    }
    // PostgreSQL's grammar folds a minus into the number it stands before, parentheses
    // between them or not: `- (-2147483648)` is the constant 2147483648 (a bigint).
    let mut negative = true;
    let mut inner = operand.as_ref();
    loop {
        match inner {
            Expr::Nested(e) => inner = e,
            Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr: e,
            } => {
                negative = !negative;
                inner = e;
            }
            _ => break,
        }
    }
    if let Expr::Value(v) = inner {
        if matches!(v.value, Value::Number(..)) {
            let number = Expr::Value(v.clone());
            return Some(if negative {
                Expr::UnaryOp {
                    op: ast::UnaryOperator::Minus,
                    expr: Box::new(number),
                }
            } else {
                number
            });
        }
    }
    Some(call(
        crate::numeric::functions::NEGATE,
        vec![operand.as_ref().clone()],
    ))
}

/// `agg(x ORDER BY 1)` orders by the constant 1 in PostgreSQL (no order at all); DataFusion
/// reads the 1 as a position and refused it. Constant number keys are dropped.
fn constant_aggregate_order(function: &mut ast::Function) {
    let FunctionArguments::List(list) = &mut function.args else {
        return;
    };
    for clause in list.clauses.iter_mut() {
        if let ast::FunctionArgumentClause::OrderBy(keys) = clause {
            keys.retain(
                |key| !matches!(&key.expr, Expr::Value(v) if matches!(v.value, Value::Number(..))),
            );
        }
    }
    list.clauses
        .retain(|c| !matches!(c, ast::FunctionArgumentClause::OrderBy(keys) if keys.is_empty()));
}

/// A call of the function `name` (Floe's own, unquoted) with `args`.
pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `extract(field FROM x)` is `numeric` and `date_part('field', x)` is `double precision` in
/// PostgreSQL, with the seconds' fraction (`extract(second FROM …01.5)` is `1.500000`);
/// DataFusion's `date_part` is an integer for most fields and drops the fraction of seconds.
/// Both become DataFusion's `date_part` of whole fields and of the microseconds of the minute,
/// combined as PostgreSQL combines them. `extract(epoch …)` is Floe's exact function; the
/// `epoch` of `date_part` and fields DataFusion lacks are left alone.
fn datetime_fields(expr: &Expr) -> Option<Expr> {
    let number = |n: i64| Expr::value(Value::Number(n.to_string(), false));
    let cast = |e: Expr, data_type: ast::DataType| Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(e),
        data_type,
        array: false,
        format: None,
    };
    let part = |field: &str, value: &Expr| {
        call(
            crate::functions::datetime::DATE_PART,
            vec![text(field), value.clone()],
        )
    };
    let binary = |left: Expr, op: ast::BinaryOperator, right: Expr| Expr::BinaryOp {
        left: Box::new(left),
        op,
        right: Box::new(right),
    };
    const WHOLE_FIELDS: &[&str] = &[
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "dow",
        "doy",
        "isodow",
        "quarter",
        "week",
        "decade",
        "century",
        "millennium",
        "isoyear",
    ];
    match expr {
        Expr::Extract { field, expr, .. } => {
            let field = field.to_string().to_ascii_lowercase();
            let numeric = ast::DataType::Numeric(ast::ExactNumberInfo::None);
            let micros = || cast(part("microsecond", expr), numeric.clone());
            let scaled = |divisor: i64, scale: i64| {
                call(
                    "round",
                    vec![
                        binary(micros(), ast::BinaryOperator::Divide, number(divisor)),
                        number(scale),
                    ],
                )
            };
            match field.trim_end_matches('s') {
                "epoch" => Some(call(
                    crate::functions::datetime::EXTRACT_EPOCH,
                    vec![(**expr).clone()],
                )),
                "second" => Some(scaled(1_000_000, 6)),
                "millisecond" => Some(scaled(1_000, 3)),
                "microsecond" => Some(micros()),
                f if WHOLE_FIELDS.contains(&f) => Some(cast(part(f, expr), numeric)),
                _ => None,
            }
        }
        Expr::Function(function) if function.name.to_string().eq_ignore_ascii_case("date_part") => {
            let FunctionArguments::List(list) = &function.args else {
                return None;
            };
            let [field, value] = list.args.as_slice() else {
                return None;
            };
            let field = string_arg(field)?.to_ascii_lowercase();
            let value = arg_expr(value)?;
            let float = || ast::DataType::DoublePrecision;
            let seconds = || cast(part("second", value), float());
            // The microseconds of the second: microseconds of the minute less whole seconds.
            let fraction = || {
                cast(
                    binary(
                        part("microsecond", value),
                        ast::BinaryOperator::Minus,
                        binary(
                            part("second", value),
                            ast::BinaryOperator::Multiply,
                            number(1_000_000),
                        ),
                    ),
                    float(),
                )
            };
            match field.trim_end_matches('s') {
                // tm_sec + fsec / 1e6, tm_sec * 1000 + fsec / 1000, as PostgreSQL computes them.
                "second" => Some(binary(
                    seconds(),
                    ast::BinaryOperator::Plus,
                    binary(fraction(), ast::BinaryOperator::Divide, number(1_000_000)),
                )),
                "millisecond" => Some(binary(
                    binary(seconds(), ast::BinaryOperator::Multiply, number(1_000)),
                    ast::BinaryOperator::Plus,
                    binary(fraction(), ast::BinaryOperator::Divide, number(1_000)),
                )),
                "microsecond" => Some(cast(part("microsecond", value), float())),
                f if WHOLE_FIELDS.contains(&f) || f == "epoch" => {
                    Some(cast(part(f, value), float()))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `generate_series(a, b [, step])` in FROM whose arguments are all `integer` (literals that
/// fit in 32 bits, or casts to int4/int2) yields `integer` in PostgreSQL; DataFusion's table
/// function always yields `bigint`. Such a call becomes `(SELECT CAST(col AS INT4) AS col FROM
/// generate_series(…) AS alias (col)) AS alias (col)` (colnames has named its column).
fn int4_series(factor: &ast::TableFactor) -> Option<ast::TableFactor> {
    use ast::DataType as D;
    let ast::TableFactor::Table {
        name,
        alias: Some(alias),
        args: Some(args),
        with_ordinality: false,
        ..
    } = factor
    else {
        return None;
    };
    let function = name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    if function != "generate_series" || !(2..=3).contains(&args.args.len()) {
        return None;
    }
    let [column] = alias.columns.as_slice() else {
        return None;
    };
    fn int4(expr: &Expr) -> bool {
        match expr {
            Expr::Value(v) => match &v.value {
                Value::Number(text, _) => text.parse::<i32>().is_ok(),
                _ => false,
            },
            Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => matches!(expr.as_ref(), Expr::Value(v) if matches!(&v.value,
                Value::Number(text, _) if format!("-{text}").parse::<i32>().is_ok())),
            Expr::Nested(inner) => int4(inner),
            Expr::Cast { data_type, .. } => matches!(
                data_type,
                D::Int(_) | D::Integer(_) | D::Int4(_) | D::SmallInt(_) | D::Int2(_)
            ),
            _ => false,
        }
    }
    let all_int4 = args
        .args
        .iter()
        .all(|arg| matches!(arg, FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if int4(e)));
    if !all_int4 {
        return None;
    }
    let mut query = crate::sqlbuild::template_query("SELECT 1").ok()?;
    let select = crate::sqlbuild::select_mut(&mut query).ok()?;
    select.projection = vec![ast::SelectItem::ExprWithAlias {
        expr: Expr::Cast {
            kind: ast::CastKind::Cast,
            expr: Box::new(Expr::Identifier(column.name.clone())),
            data_type: D::Int4(None),
            array: false,
            format: None,
        },
        alias: column.name.clone(),
    }];
    select.from = vec![ast::TableWithJoins {
        relation: factor.clone(),
        joins: vec![],
    }];
    Some(ast::TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias: Some(alias.clone()),
        sample: None,
    })
}

/// `CAST(x AS timestamp(p))` (also `timestamptz(p)`, `time(p)`) with `p < 6`: the cast to
/// the unconstrained type, rounded to `p` digits (`floe_time_precision`). DataFusion ignores
/// the precision.
/// `x = ANY(array)` → `floe_any_eq(x, array)`, `x <> ALL(array)` → its negation, with
/// PostgreSQL's NULLs and numerics by value (`functions/any.rs`). Subqueries stay.
fn any_array(expr: &Expr) -> Option<Expr> {
    let (left, right, negated) = match expr {
        Expr::AnyOp {
            left,
            compare_op: ast::BinaryOperator::Eq,
            right,
            ..
        } => (left, right, false),
        Expr::AllOp {
            left,
            compare_op: ast::BinaryOperator::NotEq,
            right,
        } => (left, right, true),
        _ => return None,
    };
    if matches!(right.as_ref(), Expr::Subquery(_)) {
        return None;
    }
    let call = call(
        crate::functions::any::ANY_EQ,
        vec![left.as_ref().clone(), right.as_ref().clone()],
    );
    Some(if negated {
        Expr::UnaryOp {
            op: ast::UnaryOperator::Not,
            expr: Box::new(Expr::Nested(Box::new(call))),
        }
    } else {
        call
    })
}

fn time_precision(expr: &Expr) -> Option<Expr> {
    use ast::DataType as D;
    let Expr::Cast {
        kind,
        expr: inner,
        data_type,
        format: None,
        array,
    } = expr
    else {
        return None;
    };
    let (precision, unconstrained) = match data_type {
        D::Timestamp(Some(p), zone) if *p < 6 => (*p, D::Timestamp(None, *zone)),
        D::Time(Some(p), zone) if *p < 6 => (*p, D::Time(None, *zone)),
        _ => return None,
    };
    let cast = Expr::Cast {
        kind: kind.clone(),
        expr: inner.clone(),
        data_type: unconstrained,
        format: None,
        array: *array,
    };
    Some(call(
        crate::datetime_udf::TIME_PRECISION,
        vec![
            cast,
            Expr::value(Value::Number(precision.to_string(), false)),
        ],
    ))
}

fn bounded_text_cast(expr: &Expr) -> Option<Expr> {
    use ast::{CharacterLength, DataType as D};
    let Expr::Cast {
        kind,
        expr: inner,
        data_type,
        format: None,
        array,
    } = expr
    else {
        return None;
    };
    let (unbounded, length) = match data_type {
        D::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
        | D::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. })) => {
            (D::Varchar(None), *length)
        }
        D::Char(Some(CharacterLength::IntegerLength { length, .. }))
        | D::Character(Some(CharacterLength::IntegerLength { length, .. })) => (
            D::Custom(
                ast::ObjectName::from(vec![ast::Ident::new("bpchar")]),
                vec![],
            ),
            *length,
        ),
        // `char` alone is `char(1)`.
        D::Char(None) | D::Character(None) => (
            D::Custom(
                ast::ObjectName::from(vec![ast::Ident::new("bpchar")]),
                vec![],
            ),
            1,
        ),
        _ => return None,
    };
    let cast = Expr::Cast {
        kind: kind.clone(),
        expr: inner.clone(),
        data_type: unbounded,
        format: None,
        array: *array,
    };
    let args = vec![
        FunctionArg::Unnamed(FunctionArgExpr::Expr(cast)),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(Value::Number(
            length.to_string(),
            false,
        )))),
    ];
    Some(Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(crate::bounded_text::CAST)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

/// Set-returning functions that DataFusion implements as functions returning a list (and
/// the JSON ones, [`crate::functions::jsonb::SET_RETURNING`]).
const LIST_RETURNING_SRFS: [&str; 2] = ["generate_series", "regexp_split_to_table"];

pub(crate) fn is_list_returning(name: &str) -> bool {
    LIST_RETURNING_SRFS.contains(&name) || crate::functions::jsonb::SET_RETURNING.contains(&name)
}

/// Set-returning functions in a select list return rows, one per element, as in PostgreSQL:
/// `SELECT generate_series(1, 3)` is three rows (DataFusion's `generate_series` returns a
/// list, so the call is unnested). Several in one select list run in lockstep, the shorter
/// padded with NULLs (PostgreSQL 10's rule, which DataFusion's unnest follows). Inside CASE
/// or COALESCE they are refused, as PostgreSQL does (0A000).
fn set_returning_functions(statement: &mut Statement) -> SqlResult<()> {
    struct Unnester {
        /// How many `unnest(…)` calls enclose the expression being visited.
        inside_unnest: usize,
        /// The CASE or COALESCE expressions enclosing the expression being visited.
        conditionals: Vec<&'static str>,
    }
    fn conditional(expr: &Expr) -> Option<&'static str> {
        match expr {
            Expr::Case { .. } => Some("CASE"),
            _ if function_name(expr).as_deref() == Some("coalesce") => Some("COALESCE"),
            _ => None,
        }
    }
    fn function_name(expr: &Expr) -> Option<String> {
        let Expr::Function(function) = expr else {
            return None;
        };
        let parts = &function.name.0;
        let schema_ok = match parts.len() {
            1 => true,
            2 => parts[0]
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case("pg_catalog")),
            _ => false,
        };
        if !schema_ok || function.over.is_some() {
            return None;
        }
        parts
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
    }
    impl VisitorMut for Unnester {
        type Break = SqlError;
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
            if function_name(expr).as_deref() == Some("unnest") {
                self.inside_unnest += 1;
            }
            if let Some(kind) = conditional(expr) {
                self.conditionals.push(kind);
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<SqlError> {
            if conditional(expr).is_some() {
                self.conditionals.pop();
            }
            let name = function_name(expr);
            let is_srf = name
                .as_deref()
                .is_some_and(|n| n == "unnest" && self.inside_unnest == 1 || is_list_returning(n));
            if let (true, Some(kind)) = (is_srf, self.conditionals.last()) {
                return ControlFlow::Break(SqlError::not_supported(format!(
                    "set-returning functions are not allowed in {kind}"
                )));
            }
            match name {
                Some(name) if name == "unnest" => self.inside_unnest -= 1,
                Some(name) if self.inside_unnest == 0 && is_list_returning(&name) => {
                    let tag = crate::functions::jsonb::element_tag(&name);
                    let call = std::mem::replace(expr, Expr::value(Value::Null));
                    *expr = Expr::Function(ast::Function {
                        name: ast::ObjectName::from(vec![ast::Ident::new("unnest")]),
                        uses_odbc_syntax: false,
                        parameters: FunctionArguments::None,
                        args: FunctionArguments::List(ast::FunctionArgumentList {
                            duplicate_treatment: None,
                            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(call))],
                            clauses: vec![],
                        }),
                        filter: None,
                        null_treatment: None,
                        over: None,
                        within_group: vec![],
                    });
                    if let Some(tag) = tag {
                        let unnested = std::mem::replace(expr, Expr::value(Value::Null));
                        *expr = self::call(tag, vec![unnested]);
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut unnester = Unnester {
        inside_unnest: 0,
        conditionals: Vec::new(),
    };
    match statement.visit(&mut unnester) {
        ControlFlow::Break(err) => Err(err),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn text(value: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(value.to_string()))
}

fn arg_expr(arg: &FunctionArg) -> Option<&Expr> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    }
}

fn string_arg(arg: &FunctionArg) -> Option<String> {
    match arg_expr(arg)? {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// The sequence name of `nextval('name')` or `nextval('name'::regclass)`.
fn sequence_name_arg(arg: &FunctionArg) -> Option<String> {
    let mut expr = arg_expr(arg)?;
    while let Expr::Cast { expr: inner, .. } = expr {
        expr = inner;
    }
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn bool_arg(arg: &FunctionArg) -> Option<bool> {
    match arg_expr(arg)? {
        Expr::Value(v) => match &v.value {
            Value::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

/// String literals cast to bytea or to an array type, which DataFusion would read as raw bytes
/// or not at all: `'\\x0102'::bytea` becomes a binary literal, `'{1,2}'::int[]` an `ARRAY[…]`
/// cast to the element type.
/// `make_interval(years, months, weeks, days, hours, mins, secs)`, each argument optional
/// (default 0) and nameable (`make_interval(days => 2)`), as a positional call of all seven.
/// `None` (left as is, so an unknown function) for an unknown, repeated or misplaced name.
fn make_interval(function: &ast::Function) -> Option<Expr> {
    use crate::interval::{MAKE_INTERVAL, MAKE_INTERVAL_PARAMS};
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    if list.args.len() > MAKE_INTERVAL_PARAMS.len() || !list.clauses.is_empty() {
        return None;
    }
    let mut values: [Option<Expr>; 7] = Default::default();
    let mut named = false;
    for (position, arg) in list.args.iter().enumerate() {
        let (slot, value) = match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if !named => (position, e),
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            }
            | FunctionArg::ExprNamed {
                name: Expr::Identifier(name),
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                named = true;
                let wanted = name.value.to_ascii_lowercase();
                let slot = MAKE_INTERVAL_PARAMS.iter().position(|p| *p == wanted)?;
                (slot, e)
            }
            _ => return None,
        };
        if values[slot].is_some() {
            return None;
        }
        values[slot] = Some(value.clone());
    }
    let args = values
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Expr::value(Value::Number("0".into(), false))))
        .collect();
    Some(call(MAKE_INTERVAL, args))
}

/// `INTERVAL '…'` is read with PostgreSQL's interval input ([`crate::interval`]), not
/// DataFusion's: the literal is restated as months, days and microseconds, which DataFusion's
/// parser reads to the same value (and which stays a literal, as window frames need).
fn interval_literal(expr: &Expr) -> SqlResult<Option<Expr>> {
    // DataFusion reads `- INTERVAL '…'` by putting a `-` before the text, which would negate
    // only the restatement's first number: the negation is done here instead.
    let (interval, negative) = match expr {
        Expr::Interval(interval) => (interval, false),
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            Expr::Interval(interval) => (interval, true),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let qualified = interval.leading_field.is_some()
        || interval.last_field.is_some()
        || interval.leading_precision.is_some()
        || interval.fractional_seconds_precision.is_some();
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => s,
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    if qualified {
        return Ok(None);
    }
    let mut value = crate::interval::parse_interval(text)?;
    if negative {
        value = value.negated()?;
    }
    let restated = format!(
        "{} months {} days {} microseconds",
        value.months, value.days, value.micros
    );
    Ok(Some(Expr::Interval(ast::Interval {
        value: Box::new(Expr::value(Value::SingleQuotedString(restated))),
        leading_field: None,
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })))
}

fn literal_cast(expr: &Expr) -> SqlResult<Option<Expr>> {
    let (text, data_type) = match expr {
        Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => match inner.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => (s, data_type),
                _ => return Ok(None),
            },
            _ => return Ok(None),
        },
        Expr::TypedString(typed) => match &typed.value.value {
            Value::SingleQuotedString(s) => (s, &typed.data_type),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    let is_uuid = match data_type {
        ast::DataType::Uuid => true,
        ast::DataType::Custom(name, _) => name.to_string().eq_ignore_ascii_case("uuid"),
        _ => false,
    };
    let json_kind = match data_type {
        ast::DataType::JSON => Some(false),
        ast::DataType::JSONB => Some(true),
        ast::DataType::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
            "json" => Some(false),
            "jsonb" => Some(true),
            _ => None,
        },
        _ => None,
    };
    if let Some(binary) = json_kind {
        let value = crate::functions::jsonb::read_literal(text, binary)?;
        return Ok(Some(Expr::Cast {
            kind: ast::CastKind::DoubleColon,
            expr: Box::new(Expr::value(Value::SingleQuotedString(value))),
            data_type: data_type.clone(),
            array: false,
            format: None,
        }));
    }
    if is_uuid {
        // uuid input accepts upper case, braces and missing hyphens; output is canonical.
        let uuid = literals::canonical_uuid(text).ok_or_else(|| {
            SqlError::new(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                format!("invalid input syntax for type uuid: \"{text}\""),
            )
        })?;
        return Ok(Some(Expr::Cast {
            kind: ast::CastKind::DoubleColon,
            expr: Box::new(Expr::value(Value::SingleQuotedString(uuid))),
            data_type: data_type.clone(),
            array: false,
            format: None,
        }));
    }
    match data_type {
        ast::DataType::Bytea => {
            let bytes =
                literals::parse_bytea(text).ok_or_else(|| literals::bytea_input_error(text))?;
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            Ok(Some(Expr::value(Value::HexStringLiteral(hex))))
        }
        ast::DataType::Array(_) => {
            let elements = literals::parse_array(text).ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("malformed array literal: \"{text}\""),
                )
            })?;
            let elem = elements
                .into_iter()
                .map(|e| match e {
                    Some(t) => Expr::value(Value::SingleQuotedString(t)),
                    None => Expr::value(Value::Null),
                })
                .collect();
            Ok(Some(Expr::Cast {
                kind: ast::CastKind::DoubleColon,
                expr: Box::new(Expr::Array(ast::Array { elem, named: true })),
                data_type: data_type.clone(),
                array: false,
                format: None,
            }))
        }
        _ => Ok(None),
    }
}

/// The parameter types of functions whose placeholder arguments nothing else types (DataFusion
/// infers placeholder types from comparisons, not from function signatures): name, arity, the
/// type of each argument.
const TYPED_ARGUMENTS: &[(&str, usize, &[ast::DataType])] = {
    use ast::DataType as D;
    const INT8: &[D] = &[D::BigInt(None)];
    const INT4_PAIR: &[D] = &[D::Integer(None), D::Integer(None)];
    const TEXT: &[D] = &[D::Text];
    &[
        ("pg_advisory_lock", 1, INT8),
        ("pg_advisory_lock", 2, INT4_PAIR),
        ("pg_advisory_lock_shared", 1, INT8),
        ("pg_advisory_lock_shared", 2, INT4_PAIR),
        ("pg_advisory_xact_lock", 1, INT8),
        ("pg_advisory_xact_lock", 2, INT4_PAIR),
        ("pg_advisory_xact_lock_shared", 1, INT8),
        ("pg_advisory_xact_lock_shared", 2, INT4_PAIR),
        ("pg_try_advisory_lock", 1, INT8),
        ("pg_try_advisory_lock", 2, INT4_PAIR),
        ("pg_try_advisory_lock_shared", 1, INT8),
        ("pg_try_advisory_lock_shared", 2, INT4_PAIR),
        ("pg_try_advisory_xact_lock", 1, INT8),
        ("pg_try_advisory_xact_lock", 2, INT4_PAIR),
        ("pg_try_advisory_xact_lock_shared", 1, INT8),
        ("pg_try_advisory_xact_lock_shared", 2, INT4_PAIR),
        ("pg_advisory_unlock", 1, INT8),
        ("pg_advisory_unlock", 2, INT4_PAIR),
        ("pg_advisory_unlock_shared", 1, INT8),
        ("pg_advisory_unlock_shared", 2, INT4_PAIR),
        ("pg_sleep", 1, &[D::DoublePrecision]),
        ("set_config", 3, &[D::Text, D::Text, D::Boolean]),
        ("to_regclass", 1, TEXT),
        ("to_regtype", 1, TEXT),
        ("to_regproc", 1, TEXT),
        ("to_regnamespace", 1, TEXT),
        ("to_regrole", 1, TEXT),
    ]
};

/// The placeholder number of `$n`.
fn placeholder_number(expr: &Expr) -> Option<usize> {
    let mut inner = expr;
    while let Expr::Nested(e) = inner {
        inner = e;
    }
    match inner {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse().ok()),
            _ => None,
        },
        _ => None,
    }
}

/// The types a statement gives its placeholders: `$n::type` casts, and placeholders passed
/// straight to functions with fixed parameter types ([`TYPED_ARGUMENTS`]): (n, type).
pub fn placeholder_casts(statement: &Statement) -> Vec<(usize, ast::DataType)> {
    struct Casts(Vec<(usize, ast::DataType)>);
    impl ast::Visitor for Casts {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Function(function) = expr {
                let name = function
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.to_ascii_lowercase())
                    .unwrap_or_default();
                if let FunctionArguments::List(list) = &function.args {
                    let typed = TYPED_ARGUMENTS
                        .iter()
                        .find(|(n, arity, _)| *n == name && *arity == list.args.len());
                    if let Some((_, _, types)) = typed {
                        for (arg, data_type) in list.args.iter().zip(types.iter()) {
                            if let Some(n) = arg_expr(arg).and_then(placeholder_number) {
                                self.0.push((n, data_type.clone()));
                            }
                        }
                    }
                }
            }
            if let Expr::Cast {
                expr: inner,
                data_type,
                ..
            } = expr
            {
                let mut inner = inner.as_ref();
                while let Expr::Nested(e) = inner {
                    inner = e;
                }
                if let Expr::Value(v) = inner {
                    if let Value::Placeholder(p) = &v.value {
                        if let Some(n) = p.strip_prefix('$').and_then(|n| n.parse().ok()) {
                            self.0.push((n, data_type.clone()));
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut casts = Casts(Vec::new());
    let _ = ast::Visit::visit(statement, &mut casts);
    casts.0
}

/// Whether a plan calls a function whose value is the statement's start time.
pub fn uses_clock(plan: &LogicalPlan) -> bool {
    const CLOCK: [&str; 6] = [
        "now",
        "current_timestamp",
        "current_date",
        "current_time",
        "localtimestamp",
        "localtime",
    ];
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                if let PlanExpr::ScalarFunction(f) = e {
                    if CLOCK.contains(&f.name()) {
                        found = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Whether a plan's result depends only on its inputs: no volatile or clock functions.
pub fn is_deterministic(plan: &LogicalPlan) -> bool {
    if uses_clock(plan) {
        return false;
    }
    let mut volatile = false;
    let _ = plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                if let PlanExpr::ScalarFunction(f) = e {
                    if f.func.signature().volatility != Volatility::Immutable {
                        volatile = true;
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(if volatile {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    !volatile
}

/// Types integer literals as PostgreSQL does: `integer` when they fit, else `bigint`.
///
/// DataFusion plans every integer literal as `Int64`; clients that read `SELECT 1` as an
/// `int4` (every typed driver) would otherwise get `int8`. LIMIT/OFFSET keep their literals.
pub fn postgres_literal_types(plan: LogicalPlan) -> SqlResult<LogicalPlan> {
    let transformed = plan.transform_up_with_subqueries(|node| {
        if matches!(node, LogicalPlan::Limit(_)) {
            return Ok(Transformed::no(node));
        }
        let names = NamePreserver::new(&node);
        let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
        let node = node.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| match e {
                PlanExpr::Literal(ScalarValue::Int64(Some(v)), meta)
                    if i32::try_from(v).is_ok() =>
                {
                    Ok(Transformed::yes(PlanExpr::Literal(
                        ScalarValue::Int32(Some(v as i32)),
                        meta,
                    )))
                }
                other => Ok(Transformed::no(other)),
            })?;
            // Then the common type of CASE branches & co. (with the literals' final types).
            let rewritten = rewritten
                .transform_data(|e| e.transform_up(|e| crate::common_types::resolve(e, &schema)))?;
            // Keep the expression's output name, which parent nodes refer to.
            Ok(rewritten.update_data(|e| saved.restore(e)))
        })?;
        refresh_schema(node)
    });
    match transformed {
        Ok(t) => Ok(t.data),
        Err(e) => Err(SqlError::new(sqlstate::INTERNAL_ERROR, e.to_string())),
    }
}

/// A plan node's schema recomputed after its expressions (`transformed`) or its children's
/// types changed, in a bottom-up rewrite of the plan.
pub(crate) fn refresh_schema(
    node: Transformed<LogicalPlan>,
) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    if !node.transformed {
        // Children may have changed type; refresh this node's schema.
        return node.map_data(|n| match n {
            LogicalPlan::Values(_) => Ok(n),
            LogicalPlan::Union(union) => union_input_types(union),
            LogicalPlan::RecursiveQuery(query) => recursive_static_types(query),
            other => other.recompute_schema(),
        });
    }
    node.map_data(|n| match n {
        LogicalPlan::Values(values) => LogicalPlanBuilder::values(values.values)?.build(),
        other => other.recompute_schema(),
    })
}

/// A recursive CTE whose terms produce the types its recursive term reads. DataFusion fixes
/// the work table's types when it plans the SQL (`bigint` for `SELECT 0` or `id % 9`); once
/// Floe's rules narrow literals to PostgreSQL's `integer`, the rows the terms produce no
/// longer match what the recursive term reads
/// (`WITH RECURSIVE t(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM t …)`). Both terms are cast
/// to the work table's types, and the result back to the first term's types (PostgreSQL
/// takes a recursive CTE's column types from its non-recursive term).
fn recursive_static_types(
    query: datafusion::logical_expr::RecursiveQuery,
) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::arrow::datatypes::DataType;
    let first = std::sync::Arc::clone(query.static_term.schema());
    let work: Vec<DataType> = match work_table_types(&query.recursive_term, &query.name) {
        Some(types) => types,
        // No scan of the work table left: the recursive term's own types.
        None => query
            .recursive_term
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect(),
    };
    let types_of = |schema: &datafusion::common::DFSchema| -> Vec<DataType> {
        schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    };
    if work.len() != first.fields().len()
        || (types_of(&first) == work && types_of(query.recursive_term.schema()) == work)
    {
        return Ok(LogicalPlan::RecursiveQuery(query));
    }
    let static_term = cast_columns(query.static_term.as_ref().clone(), &work)?;
    let recursive_term = cast_columns(query.recursive_term.as_ref().clone(), &work)?;
    let recursive = LogicalPlan::RecursiveQuery(datafusion::logical_expr::RecursiveQuery::try_new(
        query.name,
        std::sync::Arc::new(static_term),
        std::sync::Arc::new(recursive_term),
        query.is_distinct,
    )?);
    cast_columns(recursive, &types_of(&first))
}

/// The column types of the work table `name` as `plan` reads it.
fn work_table_types(
    plan: &LogicalPlan,
    name: &str,
) -> Option<Vec<datafusion::arrow::datatypes::DataType>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::cte_worktable::CteWorkTable;
    let mut found = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = datafusion::datasource::source_as_provider(&scan.source).ok();
            if let Some(table) = provider
                .as_ref()
                .and_then(|p| p.downcast_ref::<CteWorkTable>())
                .filter(|t| t.name() == name)
            {
                found = Some(
                    table
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.data_type().clone())
                        .collect(),
                );
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// `plan` with its columns cast to `types` where they differ, keeping names and qualifiers.
fn cast_columns(
    plan: LogicalPlan,
    types: &[datafusion::arrow::datatypes::DataType],
) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::logical_expr::{Expr as PlanExpr, ExprSchemable};
    let schema = std::sync::Arc::clone(plan.schema());
    if schema
        .fields()
        .iter()
        .zip(types)
        .all(|(f, t)| f.data_type() == t)
    {
        return Ok(plan);
    }
    let columns = schema
        .iter()
        .zip(types)
        .map(|((qualifier, field), target)| {
            let column = PlanExpr::Column(datafusion::common::Column::new(
                qualifier.cloned(),
                field.name(),
            ));
            if field.data_type() == target {
                Ok(column)
            } else {
                Ok(column
                    .cast_to(target, &schema)?
                    .alias_qualified(qualifier.cloned(), field.name()))
            }
        })
        .collect::<datafusion::common::Result<Vec<_>>>()?;
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}

/// A UNION whose inputs now agree on a column's type (`SELECT 1 UNION SELECT 2`: both
/// `integer` once the literals are narrowed) takes that type; DataFusion keeps the type it
/// chose while planning. Columns whose inputs differ keep the union's (common) type.
fn union_input_types(
    union: datafusion::logical_expr::Union,
) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::common::DFSchema;
    let width = union.schema.fields().len();
    if union
        .inputs
        .iter()
        .any(|i| i.schema().fields().len() != width)
    {
        return Ok(LogicalPlan::Union(union));
    }
    // Where the inputs differ, the type DataFusion's coercion will give the column (the union
    // was planned with its first input's types: `SELECT int4_col UNION ALL SELECT 2147483648`
    // was described as integer while its rows were bigint).
    let coerced =
        datafusion::optimizer::analyzer::type_coercion::coerce_union_schema(&union.inputs).ok();
    let mut changed = false;
    let fields: Vec<Field> = union
        .schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let first = union.inputs[0].schema().field(i).data_type();
            let agree = union
                .inputs
                .iter()
                .all(|input| input.schema().field(i).data_type() == first);
            let target = if agree {
                first
            } else {
                match &coerced {
                    Some(schema) if schema.fields().len() == width => schema.field(i).data_type(),
                    _ => field.data_type(),
                }
            };
            if target != field.data_type() {
                changed = true;
                field.as_ref().clone().with_data_type(target.clone())
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    if !changed {
        return Ok(LogicalPlan::Union(union));
    }
    let qualifiers: Vec<_> = union
        .schema
        .iter()
        .map(|(qualifier, _)| qualifier.cloned())
        .collect();
    let schema = DFSchema::from_field_specific_qualified_schema(
        qualifiers,
        &std::sync::Arc::new(Schema::new_with_metadata(
            fields,
            union.schema.inner().metadata().clone(),
        )),
    )?;
    Ok(LogicalPlan::Union(datafusion::logical_expr::Union {
        inputs: union.inputs,
        schema: std::sync::Arc::new(schema),
    }))
}

/// Rewrites every expression of `plan` (subqueries included) bottom-up with `rewrite`, which
/// sees the schema the expression is evaluated against (a scan's filters: the table's own
/// columns); each expression keeps its output name. The traversal of Floe's expression-level
/// analyzer rules.
pub(crate) fn rewrite_plan_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(
        datafusion::logical_expr::Expr,
        &datafusion::common::DFSchema,
    ) -> datafusion::common::Result<Transformed<datafusion::logical_expr::Expr>>,
) -> datafusion::common::Result<LogicalPlan> {
    use datafusion::logical_expr::expr_rewriter::NamePreserver;
    use datafusion::logical_expr::utils::merge_schema;
    plan.transform_up_with_subqueries(|node| {
        let mut schema = merge_schema(&node.inputs());
        if let LogicalPlan::TableScan(scan) = &node {
            schema.merge(scan.projected_schema.as_ref());
        }
        let names = NamePreserver::new(&node);
        node.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
            Ok(rewritten.update_data(|e| saved.restore(e)))
        })
    })
    .map(|t| t.data)
}

/// `NOT EXISTS (…) IS NULL` (and the other IS tests) as PostgreSQL reads it: `NOT` binds more
/// loosely than `IS`, so it is `NOT (EXISTS (…) IS NULL)`, true; the parser read `NOT EXISTS`
/// as one operand, `(NOT EXISTS (…)) IS NULL`, false.
fn not_exists_test(expr: &Expr) -> Option<Expr> {
    let exists = |e: &Expr| match e {
        Expr::Exists {
            subquery,
            negated: true,
        } => Some(Box::new(Expr::Exists {
            subquery: subquery.clone(),
            negated: false,
        })),
        _ => None,
    };
    let test = match expr {
        Expr::IsNull(e) => Expr::IsNull(exists(e)?),
        Expr::IsNotNull(e) => Expr::IsNotNull(exists(e)?),
        Expr::IsTrue(e) => Expr::IsTrue(exists(e)?),
        Expr::IsNotTrue(e) => Expr::IsNotTrue(exists(e)?),
        Expr::IsFalse(e) => Expr::IsFalse(exists(e)?),
        Expr::IsNotFalse(e) => Expr::IsNotFalse(exists(e)?),
        Expr::IsUnknown(e) => Expr::IsUnknown(exists(e)?),
        Expr::IsNotUnknown(e) => Expr::IsNotUnknown(exists(e)?),
        Expr::IsDistinctFrom(l, r) => Expr::IsDistinctFrom(exists(l)?, r.clone()),
        Expr::IsNotDistinctFrom(l, r) => Expr::IsNotDistinctFrom(exists(l)?, r.clone()),
        _ => return None,
    };
    Some(Expr::UnaryOp {
        op: ast::UnaryOperator::Not,
        expr: Box::new(Expr::Nested(Box::new(test))),
    })
}

//! PostgreSQL's `numeric`: arbitrary precision, the written scale kept per value, NaN and
//! ±Infinity, PostgreSQL's result scales (see `docs/design/0007-numeric.md`).
//!
//! Two representations:
//! - `numeric(p, s)` with `p ≤ 38` stays Arrow's `Decimal128(p, s)`: every value of such a
//!   column has scale `s`, so DataFusion's `+`, `-`, `*`, `sum`, comparisons and sorts already
//!   give PostgreSQL's answers, vectorised (TPC-H's `decimal(15,2)`). Only what DataFusion
//!   computes differently leaves it: division, `avg`, `round` & co. and casts (rounding and
//!   22003 as PostgreSQL), all of which return wide numerics.
//! - Everything else — unconstrained `numeric`, `numeric(p, s)` with `p > 38`, and the
//!   results of the operations above — is a *wide numeric*: an Arrow `LargeBinary` holding
//!   the value's key ([`value`]), whose bytes sort like the values. Nothing else in Floe uses
//!   `LargeBinary` (bytea is `Binary`), so the Arrow type alone says "numeric" through every
//!   plan, view and storage round trip. Sorting, `min`/`max` and storage work on the bytes.
//!   A VALUES column mixing scales, integers or strings with decimals becomes wide too, as
//!   PostgreSQL resolves it to `numeric` and keeps each value's scale.
//!
//! DataFusion must never compute on the bytes themselves, which would be wrong answers:
//! - [`NumericExprPlanner`] plans every binary operator with a wide operand (arithmetic and
//!   comparisons, which ignore the display scale) as a [`functions`] call, when the SQL is
//!   planned (DataFusion would refuse `LargeBinary + Int64` before any analyzer runs);
//! - [`NumericSemantics`], an analyzer rule that runs before type coercion, rewrites casts
//!   from and to numerics, unary minus, BETWEEN, IN lists and CASE branches;
//! - [`functions::overloads`] replace `round`, `trunc`, `abs`, `ceil`, `floor` and `signum`
//!   for numeric arguments (their result type must be known when the SQL is planned);
//! - [`aggregate`] replaces `sum` and `avg`, [`variance`] the standard deviations and
//!   variances;
//! - [`keys::NumericKeys`], the last optimizer rule, keys grouping, DISTINCT, set operations,
//!   joins and window partitions by value, so `1.5` and `1.50` are one key (storage does the
//!   same for primary and index keys: `floe_storage::numeric_key`).

pub mod aggregate;
pub mod functions;
pub mod keys;
pub mod value;
pub mod variance;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{
    Between, BinaryExpr, Case, Cast, InList, InSubquery, Placeholder, ScalarFunction, TryCast,
};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::type_coercion::functions::{fields_with_udf, UDFCoercionExt};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    lit, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator, Subquery, Union, Values,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator};

use functions::{udf, ArithOp, CmpOp, Kind, UnaryOp};
pub use value::{Numeric, NumericError};

use crate::types::PG_TYPMOD_KEY;

/// Whether values of `data_type` are wide numerics.
pub fn is_numeric_field_type(data_type: &DataType) -> bool {
    matches!(data_type, DataType::LargeBinary)
}

/// A wide numeric field, with its typmod (`numeric(p, s)`) if it has one.
///
/// Only the typmod is metadata: DataFusion refuses to mix fields of differing metadata (a
/// VALUES list of a numeric and a NULL), and the Arrow type alone says "numeric".
pub fn numeric_field(name: &str, typmod: Option<(u32, u32)>) -> Field {
    let field = Field::new(name, DataType::LargeBinary, true);
    match typmod {
        Some((p, s)) => field.with_metadata(HashMap::from([(
            PG_TYPMOD_KEY.to_string(),
            format!("({p},{s})"),
        )])),
        None => field,
    }
}

/// The `(precision, scale)` a field's typmod metadata names, if any.
pub fn field_typmod(field: &Field) -> Option<(u32, u32)> {
    let text = field.metadata().get(PG_TYPMOD_KEY)?;
    let (p, s) = text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// The SQL name of a wide `numeric(p, s)` with `p ≤ 38` (`floe_wide_numeric(10, 2)`), as
/// columns that hold NaN are ([`crate::session`] widens them): `numeric(10, 2)` itself plans
/// as `Decimal128`. Only Floe's generated casts spell it.
pub const WIDE_TYPMOD_NAME: &str = "floe_wide_numeric";

/// The SQL name of `numeric(p, s)`, `p ≤ 38`, as a `Decimal128(p, s)` whatever is cast
/// (`floe_fixed_numeric(10, 2)`): Floe's own casts to a column's type (an INSERT's values,
/// whose NaN widens the column instead) spell it, so [`typmod_cast`] leaves them alone.
pub const FIXED_TYPMOD_NAME: &str = "floe_fixed_numeric";

/// The `(p, s)` of `numeric(p, s)`, `numeric(p)` or [`FIXED_TYPMOD_NAME`] with `p ≤ 38`.
fn fixed_typmod(sql_type: &ast::DataType) -> Option<(u64, u64)> {
    use ast::{DataType as D, ExactNumberInfo as I};
    let (p, s) = match sql_type {
        D::Numeric(info) | D::Decimal(info) | D::Dec(info) => match info {
            I::Precision(p) => (*p, 0),
            I::PrecisionAndScale(p, s) => (*p, u64::try_from(*s).ok()?),
            I::None => return None,
        },
        D::Custom(name, modifiers) if name.to_string() == FIXED_TYPMOD_NAME => {
            let [p, s] = modifiers.as_slice() else {
                return None;
            };
            (p.parse().ok()?, s.parse().ok()?)
        }
        _ => return None,
    };
    ((1..=38).contains(&p) && s <= p).then_some((p, s))
}

/// The `Decimal128` field [`FIXED_TYPMOD_NAME`] plans as.
pub fn plan_fixed_type(sql_type: &ast::DataType) -> Option<Field> {
    match sql_type {
        ast::DataType::Custom(..) => {
            let (p, s) = fixed_typmod(sql_type)?;
            Some(Field::new("", DataType::Decimal128(p as u8, s as i8), true))
        }
        _ => None,
    }
}

/// A statement's `CAST(x AS numeric(p, s))`, `p ≤ 38`, of a column or an expression (not a
/// literal, not a parameter, whose types the cast gives) becomes
/// [`functions::TYPMOD_CAST`]`(x, p, s)`: fixed-point when `x` is an exact number, a wide
/// numeric holding the typmod when `x` may be NaN (float, text, numeric), as PostgreSQL's
/// `numeric(p, s)` holds NaN.
pub(crate) fn typmod_cast(expr: &mut ast::Expr) -> bool {
    let ast::Expr::Cast {
        kind: ast::CastKind::Cast | ast::CastKind::DoubleColon,
        expr: operand,
        data_type,
        array: false,
        format: None,
    } = expr
    else {
        return false;
    };
    if matches!(data_type, ast::DataType::Custom(..)) {
        return false;
    }
    let Some((p, s)) = fixed_typmod(data_type) else {
        return false;
    };
    let literal = |e: &ast::Expr| matches!(e, ast::Expr::Value(_) | ast::Expr::TypedString(_));
    let plain_literal = literal(operand)
        || matches!(operand.as_ref(), ast::Expr::UnaryOp { expr: inner, .. } if literal(inner))
        || matches!(operand.as_ref(), ast::Expr::Nested(inner) if literal(inner));
    let mut parameter = false;
    let _ = ast::visit_expressions(operand.as_ref(), |e| {
        if matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::Placeholder(_))) {
            parameter = true;
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    // A parameter alone (`$1::numeric(10,2)`) is typed numeric by a cast inside, as
    // PostgreSQL types it; one inside an expression keeps the plain cast.
    let lone_parameter = matches!(operand.as_ref(),
        ast::Expr::Value(v) if matches!(v.value, ast::Value::Placeholder(_)));
    if (plain_literal || parameter) && !lone_parameter {
        return false;
    }
    let slot = match lone_parameter {
        true => format!("CAST({} AS numeric)", crate::sqlbuild::SLOT),
        false => crate::sqlbuild::SLOT.to_string(),
    };
    let Ok(template) =
        crate::sqlbuild::template_expr(&format!("{}({slot}, {p}, {s})", functions::TYPMOD_CAST))
    else {
        return false;
    };
    let operand = std::mem::replace(operand.as_mut(), ast::Expr::value(ast::Value::Null));
    *expr = crate::sqlbuild::fill(template, operand);
    true
}

/// The field a SQL numeric type name is planned as, when it is a wide numeric (`numeric`,
/// `numeric(50, 5)`); `None` for `numeric(p, s)` with `p ≤ 38` (a `Decimal128`).
pub fn plan_numeric_type(sql_type: &ast::DataType) -> Option<Field> {
    use ast::{DataType as D, ExactNumberInfo as I};
    let info = match sql_type {
        D::Numeric(info) | D::Decimal(info) | D::Dec(info) => info,
        D::Custom(name, modifiers) if name.to_string() == WIDE_TYPMOD_NAME => {
            let [p, s] = modifiers.as_slice() else {
                return None;
            };
            return Some(numeric_field("", Some((p.parse().ok()?, s.parse().ok()?))));
        }
        _ => return None,
    };
    match info {
        I::None => Some(numeric_field("", None)),
        I::Precision(p) if *p > 38 => Some(numeric_field("", Some((*p as u32, 0)))),
        I::PrecisionAndScale(p, s) if *p > 38 && *s >= 0 && *s as u64 <= *p => {
            Some(numeric_field("", Some((*p as u32, *s as u32))))
        }
        _ => None,
    }
}

/// A VALUES column with a value cast to a wide numeric (`VALUES (1::numeric), (2)`): PostgreSQL
/// resolves the column to `numeric` and reads the other rows' number literals as numerics,
/// each keeping its scale; DataFusion refuses to mix the types while planning, so the
/// literals are cast in the SQL first.
pub(crate) fn widen_values_literals(rows: &mut [ast::Parens<Vec<ast::Expr>>]) {
    let columns = rows.first().map_or(0, |r| r.content.len());
    for column in 0..columns {
        let wide = rows.iter().any(|row| {
            matches!(row.content.get(column), Some(ast::Expr::Cast { data_type, .. })
                if plan_numeric_type(data_type).is_some())
        });
        if !wide {
            continue;
        }
        // With a float among them the column is that float type (PostgreSQL converts numeric
        // to floats implicitly, not back): the numerics are cast to it.
        let float = rows
            .iter()
            .filter_map(|row| match row.content.get(column) {
                Some(ast::Expr::Cast { data_type, .. }) => float_type(data_type),
                _ => None,
            })
            .max();
        if let Some(double) = float {
            let target = if double {
                ast::DataType::DoublePrecision
            } else {
                ast::DataType::Real
            };
            for row in rows.iter_mut() {
                let Some(expr) = row.content.get_mut(column) else {
                    continue;
                };
                if matches!(&*expr, ast::Expr::Cast { data_type, .. } if plan_numeric_type(data_type).is_some())
                {
                    cast_in_place(expr, target.clone());
                }
            }
            continue;
        }
        for row in rows.iter_mut() {
            let Some(expr) = row.content.get_mut(column) else {
                continue;
            };
            let number = match &*expr {
                ast::Expr::Value(v) => matches!(v.value, ast::Value::Number(..)),
                // A fixed-point `numeric(p, s)` (an INSERT's assignment cast of another row):
                // its value, now wide.
                ast::Expr::Cast { data_type, .. } => fixed_typmod(data_type).is_some(),
                ast::Expr::UnaryOp { op, expr: inner } => {
                    matches!(op, ast::UnaryOperator::Minus | ast::UnaryOperator::Plus)
                        && matches!(inner.as_ref(), ast::Expr::Value(v) if matches!(v.value, ast::Value::Number(..)))
                }
                _ => false,
            };
            if number {
                cast_in_place(expr, ast::DataType::Numeric(ast::ExactNumberInfo::None));
            }
        }
    }
}

/// Replaces `expr` by `(expr)::data_type`.
fn cast_in_place(expr: &mut ast::Expr, data_type: ast::DataType) {
    let operand = std::mem::replace(expr, ast::Expr::value(ast::Value::Null));
    *expr = ast::Expr::Cast {
        kind: ast::CastKind::DoubleColon,
        expr: Box::new(ast::Expr::Nested(Box::new(operand))),
        data_type,
        array: false,
        format: None,
    };
}

/// For a float type: whether it is `double precision` (`false`: `real`).
fn float_type(data_type: &ast::DataType) -> Option<bool> {
    match data_type {
        ast::DataType::Real | ast::DataType::Float4 => Some(false),
        ast::DataType::DoublePrecision
        | ast::DataType::Float8
        | ast::DataType::Double(_)
        | ast::DataType::Float64 => Some(true),
        ast::DataType::Float(info) => {
            Some(!matches!(info, ast::ExactNumberInfo::Precision(p) if *p <= 24))
        }
        _ => None,
    }
}

fn is_decimal(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Decimal128(..) | DataType::Decimal256(..)
    )
}

/// Whether values of `types` (the branches of a CASE, the arguments of `coalesce`, a UNION's
/// column) mix decimals of different scales, integers with decimals of a scale above 0, or
/// string literals (PostgreSQL's `unknown`, read at the scale written) with decimals. PostgreSQL
/// resolves them to `numeric` and every value keeps its own scale (`coalesce(price, 0)` is `0`,
/// not `0.00`), where DataFusion's common `Decimal128` would rescale them all: such a mix is
/// computed as wide numerics. Floats and wide numerics among them are resolved elsewhere.
pub(crate) fn mixes_scales<'a>(types: impl IntoIterator<Item = &'a DataType>) -> bool {
    let mut scales = std::collections::BTreeSet::new();
    let mut decimal = false;
    let mut text = false;
    for data_type in types {
        match data_type {
            DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => {
                decimal = true;
                scales.insert(i16::from(*s));
            }
            DataType::Null => {}
            t if is_text(t) => text = true,
            t if functions::converts_to_numeric(t) && !is_numeric_field_type(t) => {
                scales.insert(0);
            }
            _ => return false,
        }
    }
    decimal && (scales.len() > 1 || text)
}

fn is_float(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The argument types DataFusion's `func` coerces `types` to (for the functions that wrap
/// DataFusion's and pass other arguments on).
pub(crate) fn coerce_like<F: UDFCoercionExt>(
    types: &[DataType],
    func: &F,
) -> DfResult<Vec<DataType>> {
    let fields: Vec<FieldRef> = types
        .iter()
        .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
        .collect();
    Ok(fields_with_udf(&fields, func)?
        .iter()
        .map(|f| f.data_type().clone())
        .collect())
}

/// `expr` cast from numeric to `target` (integers, floats, text).
pub(crate) fn from_numeric(expr: Expr, target: DataType) -> Expr {
    let field = Arc::new(Field::new("", target, true));
    call(Kind::FromNumeric(field), vec![expr])
}

fn call(kind: Kind, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf(kind), args))
}

/// An arithmetic or comparison operator over a wide numeric (an operand whose type became
/// numeric after it was planned, such as a `CASE` given its branches' common type), as
/// [`NumericExprPlanner`] would have planned it; `None` for other operators and operands.
pub(crate) fn wide_operator(
    left: &Expr,
    op: Operator,
    right: &Expr,
    schema: &DFSchema,
) -> Option<Expr> {
    let kind = match op {
        Operator::Plus => Kind::Arith(ArithOp::Add),
        Operator::Minus => Kind::Arith(ArithOp::Sub),
        Operator::Multiply => Kind::Arith(ArithOp::Mul),
        Operator::Divide => Kind::Arith(ArithOp::Div),
        Operator::Modulo => Kind::Arith(ArithOp::Mod),
        Operator::Eq => Kind::Compare(CmpOp::Eq),
        Operator::NotEq => Kind::Compare(CmpOp::NotEq),
        Operator::Lt => Kind::Compare(CmpOp::Lt),
        Operator::LtEq => Kind::Compare(CmpOp::LtEq),
        Operator::Gt => Kind::Compare(CmpOp::Gt),
        Operator::GtEq => Kind::Compare(CmpOp::GtEq),
        _ => return None,
    };
    let (lt, rt) = (type_of(left, schema)?, type_of(right, schema)?);
    let (lw, rw) = (is_numeric_field_type(&lt), is_numeric_field_type(&rt));
    if !lw && !rw {
        return None;
    }
    let other = if lw { &rt } else { &lt };
    if is_float(other) {
        // numeric op float8 is float8 arithmetic in PostgreSQL.
        let (left, right) = if lw {
            (from_numeric(left.clone(), DataType::Float64), right.clone())
        } else {
            (left.clone(), from_numeric(right.clone(), DataType::Float64))
        };
        return Some(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(left),
            op,
            Box::new(right),
        )));
    }
    if !(functions::converts_to_numeric(other) || is_text(other)) {
        return None;
    }
    Some(call(kind, vec![left.clone(), right.clone()]))
}

/// An untyped placeholder given the numeric type (so clients are told `numeric`).
fn typed_placeholder(expr: Expr) -> Expr {
    match expr {
        Expr::Placeholder(Placeholder { id, field: None }) => Expr::Placeholder(Placeholder {
            id,
            field: Some(Arc::new(numeric_field("", None))),
        }),
        other => other,
    }
}

fn type_of(expr: &Expr, schema: &DFSchema) -> Option<DataType> {
    match expr {
        Expr::Placeholder(Placeholder { field: None, .. }) => None,
        _ => expr.get_type(schema).ok(),
    }
}

/// Plans binary operators with a wide numeric operand (and decimal division) as numeric
/// functions (see the module doc).
#[derive(Debug, Default)]
pub struct NumericExprPlanner;

impl ExprPlanner for NumericExprPlanner {
    /// `ARRAY[1.5, 2.25]` is `numeric[]` keeping each element's scale, as a VALUES column:
    /// DataFusion would make the elements one `Decimal128` of the widest scale (`{1.50,2.25}`).
    fn plan_array_literal(
        &self,
        exprs: Vec<Expr>,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<Vec<Expr>>> {
        let numeric = exprs.iter().any(|e| {
            type_of(e, schema).is_some_and(|t| is_numeric_field_type(&t) || is_decimal(&t))
        });
        if !numeric {
            return Ok(PlannerResult::Original(exprs));
        }
        let widened = exprs
            .into_iter()
            .map(|e| match type_of(&e, schema) {
                Some(DataType::Null) => e.cast_to(&DataType::LargeBinary, schema),
                _ => Ok(widened(e, schema)),
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(PlannerResult::Planned(
            datafusion::functions_nested::expr_fn::make_array(widened),
        ))
    }

    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        let left = crate::common_types::typed_branches(left, schema)?;
        let right = crate::common_types::typed_branches(right, schema)?;
        let (lt, rt) = (type_of(&left, schema), type_of(&right, schema));
        let wide = |t: &Option<DataType>| t.as_ref().is_some_and(is_numeric_field_type);
        let arith = match op {
            BinaryOperator::Plus => Some(ArithOp::Add),
            BinaryOperator::Minus => Some(ArithOp::Sub),
            BinaryOperator::Multiply => Some(ArithOp::Mul),
            BinaryOperator::Divide => Some(ArithOp::Div),
            BinaryOperator::Modulo => Some(ArithOp::Mod),
            _ => None,
        };
        let compare = match op {
            BinaryOperator::Eq => Some(CmpOp::Eq),
            BinaryOperator::NotEq => Some(CmpOp::NotEq),
            BinaryOperator::Lt => Some(CmpOp::Lt),
            BinaryOperator::LtEq => Some(CmpOp::LtEq),
            BinaryOperator::Gt => Some(CmpOp::Gt),
            BinaryOperator::GtEq => Some(CmpOp::GtEq),
            _ => None,
        };
        let kind = arith.map(Kind::Arith).or(compare.map(Kind::Compare));
        // numeric[] || 3.25, 3.25 || numeric[]: the element becomes a wide numeric too.
        let wide_list = |t: &Option<DataType>| matches!(t, Some(DataType::List(item)) if is_numeric_field_type(item.data_type()));
        if op == BinaryOperator::StringConcat && (wide_list(&lt) || wide_list(&rt)) {
            let (left, right) = match (wide_list(&lt), wide_list(&rt)) {
                (true, false) => (left, widened(right, schema)),
                (false, true) => (widened(left, schema), right),
                _ => (left, right),
            };
            return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
        }
        if op == BinaryOperator::Spaceship && (wide(&lt) || wide(&rt)) {
            let other = if wide(&lt) { &rt } else { &lt };
            if other.as_ref().is_some_and(is_float) {
                let (left, right) = if wide(&lt) {
                    (from_numeric(left, DataType::Float64), right)
                } else {
                    (left, from_numeric(right, DataType::Float64))
                };
                return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
            }
            let args = (typed_placeholder(left), typed_placeholder(right));
            return Ok(PlannerResult::Planned(Expr::Not(Box::new(
                distinct_by_value(args.0, args.1),
            ))));
        }
        if wide(&lt) || wide(&rt) {
            let other = if wide(&lt) { &rt } else { &lt };
            // numeric op float8 is float8 arithmetic in PostgreSQL.
            if other.as_ref().is_some_and(is_float) && kind.is_some() {
                let (left, right) = if wide(&lt) {
                    (from_numeric(left, DataType::Float64), right)
                } else {
                    (left, from_numeric(right, DataType::Float64))
                };
                return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
            }
            let numeric_operand = other
                .as_ref()
                .is_none_or(|t| functions::converts_to_numeric(t) || is_text(t));
            if let (Some(kind), true) = (kind, numeric_operand) {
                let args = vec![typed_placeholder(left), typed_placeholder(right)];
                return Ok(PlannerResult::Planned(call(kind, args)));
            }
            if op == BinaryOperator::StringConcat {
                let (left, right) = if wide(&lt) {
                    (from_numeric(left, DataType::Utf8), right)
                } else {
                    (left, from_numeric(right, DataType::Utf8))
                };
                return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
            }
            return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }));
        }
        let exact = |t: &Option<DataType>| t.as_ref().is_some_and(functions::converts_to_numeric);
        let decimal = |t: &Option<DataType>| t.as_ref().is_some_and(is_decimal);
        // Fixed-point `+ - *` whose result could need more than `Decimal128`'s 38 digits
        // (`numeric(38,18) * numeric(38,18)`, three `numeric(15,2)` multiplied): PostgreSQL's
        // result is an unconstrained numeric, so it is computed as one, exactly, where
        // DataFusion would cap the precision at 38 and fail once a value does not fit.
        if let Some(op @ (ArithOp::Add | ArithOp::Sub | ArithOp::Mul)) = arith {
            if (decimal(&lt) || decimal(&rt)) && exact(&lt) && exact(&rt) {
                let bounds = (exact_bound(&left, schema), exact_bound(&right, schema));
                if let (Some(l), Some(r)) = bounds {
                    if result_bound(op, l, r).0 > 38 {
                        return Ok(PlannerResult::Planned(call(
                            Kind::Arith(op),
                            vec![left, right],
                        )));
                    }
                }
            }
        }
        // Decimal division: PostgreSQL's result scale, not DataFusion's.
        if arith == Some(ArithOp::Div) && (decimal(&lt) || decimal(&rt)) && exact(&lt) && exact(&rt)
        {
            return Ok(PlannerResult::Planned(call(
                Kind::Arith(ArithOp::Div),
                vec![left, right],
            )));
        }
        Ok(PlannerResult::Original(RawBinaryExpr { op, left, right }))
    }
}

/// Bounds on the digits of an exact number's values: (precision, scale).
type Bound = (u32, u32);

/// The digits `x op y` can need, as PostgreSQL computes it (exactly), for operands within
/// `l` and `r`.
fn result_bound(op: ArithOp, l: Bound, r: Bound) -> Bound {
    match op {
        ArithOp::Mul => (l.0 + r.0, l.1 + r.1),
        _ => {
            let scale = l.1.max(r.1);
            ((l.0 - l.1).max(r.0 - r.1) + scale + 1, scale)
        }
    }
}

/// A bound on the digits of an exact-number expression's values: its type's, but an integer
/// or decimal literal counts its own digits (DataFusion types `1` in `1 - l_discount` as a
/// 20-digit decimal), and fixed-point `+ - *` combine their operands' bounds. `None` for
/// other types.
fn exact_bound(expr: &Expr, schema: &DFSchema) -> Option<Bound> {
    use datafusion::common::ScalarValue as S;
    let digits = |magnitude: u128| magnitude.checked_ilog10().map_or(1, |d| d + 1);
    match expr {
        Expr::Alias(alias) => exact_bound(&alias.expr, schema),
        Expr::Negative(inner) => exact_bound(inner, schema),
        Expr::Literal(value, _) => match value {
            S::Int8(Some(v)) => Some((digits(v.unsigned_abs() as u128), 0)),
            S::Int16(Some(v)) => Some((digits(v.unsigned_abs() as u128), 0)),
            S::Int32(Some(v)) => Some((digits(v.unsigned_abs() as u128), 0)),
            S::Int64(Some(v)) => Some((digits(v.unsigned_abs() as u128), 0)),
            S::Decimal128(Some(m), _, s) if *s >= 0 => {
                let scale = *s as u32;
                Some((digits(m.unsigned_abs()).max(scale).max(1), scale))
            }
            other => type_bound(&other.data_type()),
        },
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let op = match op {
                Operator::Plus => ArithOp::Add,
                Operator::Minus => ArithOp::Sub,
                Operator::Multiply => ArithOp::Mul,
                _ => return type_bound(&type_of(expr, schema)?),
            };
            let (l, r) = (exact_bound(left, schema)?, exact_bound(right, schema)?);
            Some(result_bound(op, l, r))
        }
        _ => type_bound(&type_of(expr, schema)?),
    }
}

fn type_bound(data_type: &DataType) -> Option<Bound> {
    Some(match data_type {
        DataType::Decimal128(p, s) if *s >= 0 => (*p as u32, *s as u32),
        DataType::Int8 | DataType::UInt8 => (3, 0),
        DataType::Int16 | DataType::UInt16 => (5, 0),
        DataType::Int32 | DataType::UInt32 => (10, 0),
        DataType::Int64 => (19, 0),
        DataType::UInt64 => (20, 0),
        _ => return None,
    })
}

/// Rewrites what DataFusion would compute on a wide numeric's bytes, or round differently
/// from PostgreSQL (see the module doc). Runs before type coercion.
#[derive(Debug, Default)]
pub struct NumericSemantics;

impl AnalyzerRule for NumericSemantics {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        // Once a VALUES list changed type, every node above it needs its schema recomputed
        // (nodes are visited children first).
        let mut widened_values = false;
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::Values(values) => {
                    let widened = widen_values(values)?;
                    widened_values |= widened.transformed;
                    widened.data
                }
                LogicalPlan::Union(union) => {
                    let widened = widen_union(union)?;
                    widened_values |= widened.transformed;
                    widened.data
                }
                other => other,
            };
            let mut schema = merge_schema(&node.inputs());
            if let LogicalPlan::TableScan(scan) = &node {
                schema.merge(scan.projected_schema.as_ref());
            }
            let names = NamePreserver::new(&node);
            let rewritten = node.map_expressions(|expr| {
                let saved = names.save(&expr);
                let rewritten = expr.transform_up(|e| rewrite(e, &schema))?;
                Ok(rewritten.update_data(|e| saved.restore(e)))
            })?;
            // A CASE widened to numeric, or a VALUES list below, changes the node's type.
            if rewritten.transformed || widened_values {
                rewritten.map_data(|plan| match plan {
                    LogicalPlan::Values(_) => Ok(plan),
                    // A union's recompute_schema keeps its old column types.
                    LogicalPlan::Union(union) => Ok(LogicalPlan::Union(
                        Union::try_new_with_loose_types(union.inputs)?,
                    )),
                    other => other.recompute_schema(),
                })
            } else {
                Ok(rewritten)
            }
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_numeric_semantics"
    }
}

/// Casts that type coercion inserted to or from wide numerics (`concat('a', 1.5::numeric)`
/// casts its numeric argument to text): Arrow would cast the key bytes themselves, which is
/// an error or, worse, text made of them. Runs after type coercion, as the numeric casts.
#[derive(Debug, Default)]
pub struct NumericCoercedCasts;

impl AnalyzerRule for NumericCoercedCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::rewrite::rewrite_plan_expressions(plan, |expr, schema| match expr {
            Expr::Cast(Cast { expr, field })
                if is_wide(&expr, schema) != is_numeric_field_type(field.data_type())
                    || (type_of(&expr, schema).is_some_and(|t| is_float(&t))
                        && is_text(field.data_type())) =>
            {
                Ok(match rewrite_cast(*expr, &field, schema) {
                    Ok(rewritten) => Transformed::yes(rewritten),
                    Err(original) => Transformed::no(Expr::Cast(Cast {
                        expr: Box::new(original),
                        field,
                    })),
                })
            }
            other => Ok(Transformed::no(other)),
        })
    }

    fn name(&self) -> &str {
        "floe_numeric_coerced_casts"
    }
}

/// `expr` without the cast DataFusion wrapped it in (and the aliases that keep a
/// rewritten literal's name).
fn uncast(expr: Expr) -> Expr {
    fn unalias(expr: Expr) -> Expr {
        match expr {
            Expr::Alias(alias) => unalias(*alias.expr),
            other => other,
        }
    }
    // One cast only: the value's own casts stay (`CAST(CAST(-0.5 AS int2) AS numeric)` is -1).
    match unalias(expr) {
        Expr::Cast(Cast { expr, .. }) => unalias(*expr),
        other => other,
    }
}

/// A VALUES list whose column mixes numerics of different scales, integers or strings with
/// decimals: PostgreSQL resolves such a column to `numeric`, every value keeping its own
/// scale (`VALUES (1.5), (12.25), ('NaN')`), where DataFusion would rescale them all to one
/// `Decimal128` (and refuse `NaN`). Such a column becomes a wide numeric.
fn widen_values(values: Values) -> DfResult<Transformed<LogicalPlan>> {
    let Values {
        schema,
        values: mut rows,
    } = values;
    let empty = DFSchema::empty();
    let mut changed = false;
    for (column, field) in schema.fields().iter().enumerate() {
        if !is_decimal(field.data_type()) {
            continue;
        }
        // With a float among them, the column is that float type (double precision if one is),
        // as PostgreSQL resolves it (DataFusion picked the decimal).
        let mut float: Option<DataType> = None;
        for row in &rows {
            // The row's own type: under the cast to the column's type DataFusion added, if any.
            let own = match &row[column] {
                Expr::Cast(Cast { expr, .. }) | Expr::TryCast(TryCast { expr, .. }) => expr,
                other => other,
            };
            for t in [
                own.get_type(&empty),
                uncast(row[column].clone()).get_type(&empty),
            ]
            .into_iter()
            .flatten()
            .filter(is_float)
            {
                if float.as_ref() != Some(&DataType::Float64) {
                    float = Some(if t == DataType::Float64 {
                        DataType::Float64
                    } else {
                        DataType::Float32
                    });
                }
            }
        }
        if let Some(float) = float {
            for row in &mut rows {
                let inner = uncast(std::mem::take(&mut row[column]));
                row[column] = float_cast(inner, &float, &empty);
            }
            changed = true;
            continue;
        }
        let mut seen: Option<DataType> = None;
        let mut mixed = false;
        for row in &rows {
            let inner = uncast(row[column].clone());
            if matches!(&inner, Expr::Literal(v, _) if v.is_null()) {
                continue;
            }
            let Ok(data_type) = inner.get_type(&empty) else {
                continue;
            };
            mixed |= is_text(&data_type) || seen.as_ref().is_some_and(|s| *s != data_type);
            seen.get_or_insert(data_type);
        }
        if mixed {
            for row in &mut rows {
                let inner = uncast(std::mem::take(&mut row[column]));
                row[column] = call(Kind::ToNumeric(None), vec![inner]);
            }
            changed = true;
        }
    }
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Values(Values {
            schema,
            values: rows,
        })));
    }
    Ok(Transformed::yes(LogicalPlanBuilder::values(rows)?.build()?))
}

fn is_wide(expr: &Expr, schema: &DFSchema) -> bool {
    type_of(expr, schema).is_some_and(|t| is_numeric_field_type(&t))
}

/// `expr` as a wide numeric, when it converts to one.
pub(crate) fn widened(expr: Expr, schema: &DFSchema) -> Expr {
    match type_of(&expr, schema) {
        Some(t) if is_numeric_field_type(&t) => expr,
        Some(t) if functions::converts_to_numeric(&t) && t != DataType::Null => {
            call(Kind::ToNumeric(None), vec![expr])
        }
        _ => expr,
    }
}

fn compare(op: CmpOp, left: Expr, right: Expr) -> Expr {
    call(Kind::Compare(op), vec![left, right])
}

fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    Ok(match expr {
        Expr::Cast(Cast { expr, field }) | Expr::TryCast(TryCast { expr, field }) => {
            match rewrite_cast(*expr, &field, schema) {
                Ok(rewritten) => Transformed::yes(rewritten),
                Err(original) => Transformed::no(Expr::Cast(Cast {
                    expr: Box::new(original),
                    field,
                })),
            }
        }
        Expr::Negative(inner) if is_wide(&inner, schema) => {
            Transformed::yes(call(Kind::Unary(UnaryOp::Neg), vec![*inner]))
        }
        // round(double precision) rounds half to even in PostgreSQL (rint).
        Expr::ScalarFunction(f)
            if f.name() == "round"
                && f.args.len() == 1
                && type_of(&f.args[0], schema).is_some_and(|t| is_float(&t)) =>
        {
            let args = f
                .args
                .into_iter()
                .map(|a| a.cast_to(&DataType::Float64, schema))
                .collect::<DfResult<Vec<_>>>()?;
            Transformed::yes(crate::functions::math::rint().call(args))
        }
        Expr::Between(Between {
            expr,
            negated,
            low,
            high,
        }) if is_wide(&expr, schema) || is_wide(&low, schema) || is_wide(&high, schema) => {
            let expr = *expr;
            Transformed::yes(if negated {
                compare(CmpOp::Lt, expr.clone(), *low).or(compare(CmpOp::Gt, expr, *high))
            } else {
                compare(CmpOp::GtEq, expr.clone(), *low).and(compare(CmpOp::LtEq, expr, *high))
            })
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if is_wide(&expr, schema) || list.iter().any(|e| is_wide(e, schema)) => {
            let expr = *expr;
            let op = if negated { CmpOp::NotEq } else { CmpOp::Eq };
            let mut terms = list.into_iter().map(|item| compare(op, expr.clone(), item));
            let Some(first) = terms.next() else {
                return Ok(Transformed::no(Expr::InList(InList {
                    expr: Box::new(expr),
                    list: Vec::new(),
                    negated,
                })));
            };
            Transformed::yes(terms.fold(
                first,
                |acc, term| {
                    if negated {
                        acc.and(term)
                    } else {
                        acc.or(term)
                    }
                },
            ))
        }
        Expr::Case(case) if case_involves_numeric(&case, schema) => {
            Transformed::yes(Expr::Case(rewrite_case(case, schema)))
        }
        // `x = ANY(numeric[])` compares values (`2.5` equals `2.50`), not keys.
        Expr::ScalarFunction(f)
            if f.name() == "array_has"
                && f.args.len() == 2
                && (is_wide(&f.args[1], schema)
                    || type_of(&f.args[0], schema).is_some_and(|t| {
                        matches!(&t, DataType::List(item) if is_numeric_field_type(item.data_type()))
                    })) =>
        {
            let ScalarFunction { func, args } = f;
            match <[Expr; 2]>::try_from(args) {
                Ok([array, element]) => {
                    let identities = call(
                        Kind::Elements(
                            Box::new(Kind::Identity),
                            Arc::new(Field::new("item", DataType::Binary, true)),
                        ),
                        vec![array],
                    );
                    let element = call(Kind::Identity, vec![element]);
                    Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                        func,
                        vec![identities, element],
                    )))
                }
                Err(args) => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        // Floats: -0 equals 0 in PostgreSQL, but DataFusion's IN-list sets and nullif
        // compare bit patterns. Adding +0 turns -0 into 0 (and keeps NaN, which PostgreSQL
        // also holds equal to itself).
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if type_of(&expr, schema).is_some_and(|t| is_float(&t)) => {
            let zero = |e: Expr| match type_of(&e, schema) {
                Some(DataType::Float32) => e + lit(0.0f32),
                Some(t) if is_float(&t) => e + lit(0.0f64),
                _ => e,
            };
            Transformed::yes(Expr::InList(InList {
                expr: Box::new(zero(*expr)),
                list: list.into_iter().map(zero).collect(),
                negated,
            }))
        }
        Expr::ScalarFunction(f)
            if f.name() == "nullif"
                && f.args.len() == 2
                && f.args
                    .iter()
                    .all(|a| type_of(a, schema).is_some_and(|t| is_float(&t))) =>
        {
            let [a, b]: [Expr; 2] = f
                .args
                .try_into()
                .map_err(|_| datafusion::error::DataFusionError::Internal("nullif arity".into()))?;
            let null = Expr::Literal(datafusion::common::ScalarValue::Null, None)
                .cast_to(&a.get_type(schema)?, schema)?;
            Transformed::yes(Expr::Case(Case {
                expr: None,
                when_then_expr: vec![(Box::new(a.clone().eq(b)), Box::new(null))],
                else_expr: Some(Box::new(a)),
            }))
        }
        // `price = 'NaN'` with a `numeric(p, s)` column held as `Decimal128` (which never
        // holds NaN): the literal cannot become the column's type, so both sides compare
        // as numerics, as in PostgreSQL (false, or true for `<>`).
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if crate::datetime_udf::is_comparison(op)
                && !matches!(op, Operator::IsDistinctFrom | Operator::IsNotDistinctFrom)
                && ((is_nan_literal(&left) && is_decimal_typed(&right, schema))
                    || (is_nan_literal(&right) && is_decimal_typed(&left, schema))) =>
        {
            let (left, right) = (widened_nan(*left, schema), widened_nan(*right, schema));
            match wide_operator(&left, op, &right, schema) {
                Some(compared) => Transformed::yes(compared),
                None => Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(left),
                    op,
                    Box::new(right),
                ))),
            }
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::IsDistinctFrom | Operator::IsNotDistinctFrom)
                && (is_wide(&left, schema) || is_wide(&right, schema)) =>
        {
            let distinct = distinct_by_value(*left, *right);
            Transformed::yes(if op == Operator::IsDistinctFrom {
                distinct
            } else {
                Expr::Not(Box::new(distinct))
            })
        }
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => {
            let sub_type = subquery
                .subquery
                .schema()
                .fields()
                .first()
                .map(|f| f.data_type().clone());
            let expr_type = type_of(&expr, schema);
            let wide = |t: &Option<DataType>| t.as_ref().is_some_and(is_numeric_field_type);
            let convertible = |t: &Option<DataType>| {
                t.as_ref()
                    .is_some_and(|t| functions::converts_to_numeric(t) && !is_numeric_field_type(t))
            };
            if wide(&expr_type) && convertible(&sub_type) {
                let plan = widen_columns(subquery.subquery.as_ref().clone(), &[0])?;
                Transformed::yes(Expr::InSubquery(InSubquery {
                    expr,
                    subquery: Subquery {
                        subquery: Arc::new(plan),
                        ..subquery
                    },
                    negated,
                }))
            } else if wide(&sub_type) && convertible(&expr_type) {
                Transformed::yes(Expr::InSubquery(InSubquery {
                    expr: Box::new(call(Kind::ToNumeric(None), vec![*expr])),
                    subquery,
                    negated,
                }))
            } else {
                Transformed::no(Expr::InSubquery(InSubquery {
                    expr,
                    subquery,
                    negated,
                }))
            }
        }
        other => Transformed::no(other),
    })
}

/// A string literal reading as numeric NaN (`'NaN'`, `' nan '`).
fn is_nan_literal(expr: &Expr) -> bool {
    use datafusion::common::ScalarValue as S;
    matches!(expr, Expr::Literal(S::Utf8(Some(t)) | S::Utf8View(Some(t)) | S::LargeUtf8(Some(t)), _)
        if t.trim().eq_ignore_ascii_case("nan"))
}

fn is_decimal_typed(expr: &Expr, schema: &DFSchema) -> bool {
    type_of(expr, schema).is_some_and(|t| matches!(t, DataType::Decimal128(..)))
}

/// A side of a comparison with a NaN literal as a wide numeric.
fn widened_nan(expr: Expr, schema: &DFSchema) -> Expr {
    if is_nan_literal(&expr) {
        call(Kind::ToNumeric(None), vec![expr])
    } else {
        widened(expr, schema)
    }
}

/// `'NaN'::numeric(p, s)` with `p ≤ 38` (also `numeric(p, s) 'NaN'`): PostgreSQL's value is
/// NaN, which the `Decimal128` that `numeric(p, s)` plans as cannot hold, so the literal is
/// cast to (wide) `numeric` instead.
pub(crate) fn nan_literal_cast(expr: &mut ast::Expr) -> bool {
    use ast::{DataType as D, ExactNumberInfo as I};
    let (text, data_type) = match expr {
        ast::Expr::Cast {
            expr: inner,
            data_type,
            ..
        } => match inner.as_ref() {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(t) | ast::Value::EscapedStringLiteral(t) => {
                    (t.clone(), data_type)
                }
                _ => return false,
            },
            _ => return false,
        },
        ast::Expr::TypedString(typed) => match &typed.value.value {
            ast::Value::SingleQuotedString(t) => (t.clone(), &mut typed.data_type),
            _ => return false,
        },
        _ => return false,
    };
    if !text.trim().eq_ignore_ascii_case("nan") {
        return false;
    }
    let (precision, scale) = match data_type {
        D::Numeric(info) | D::Decimal(info) | D::Dec(info) => match info {
            I::Precision(p) => (*p, 0),
            I::PrecisionAndScale(p, s) => (*p, *s),
            _ => return false,
        },
        _ => return false,
    };
    // Out-of-range typmods keep their own errors.
    if precision == 0 || precision > 38 || scale < 0 || scale as u64 > precision {
        return false;
    }
    // NaN is NaN at any typmod; without one, the cast mixes with others in a VALUES list.
    *data_type = D::Numeric(I::None);
    true
}

/// Whether a CASE compares or returns wide numerics (which DataFusion cannot coerce).
fn case_involves_numeric(case: &Case, schema: &DFSchema) -> bool {
    let compares = case.expr.as_ref().is_some_and(|e| {
        is_wide(e, schema) || case.when_then_expr.iter().any(|(w, _)| is_wide(w, schema))
    });
    compares
        || returns_numeric(
            case.when_then_expr.iter().map(|(_, then)| then.as_ref()),
            case.else_expr.as_deref(),
            schema,
        )
}

/// Whether a CASE with these THEN and ELSE branches is a wide numeric: one branch is, or they
/// mix scales ([`mixes_scales`]).
fn returns_numeric<'a>(
    thens: impl Iterator<Item = &'a Expr>,
    else_expr: Option<&'a Expr>,
    schema: &DFSchema,
) -> bool {
    let branches: Vec<&Expr> = thens.chain(else_expr).collect();
    let types: Vec<DataType> = branches.iter().filter_map(|e| type_of(e, schema)).collect();
    if types.iter().any(is_numeric_field_type) {
        return true;
    }
    // Text that is not a literal does not convert implicitly (PostgreSQL: 42804).
    let text_expr = branches.iter().any(|e| {
        !matches!(e, Expr::Literal(..)) && type_of(e, schema).is_some_and(|t| is_text(&t))
    });
    !text_expr && mixes_scales(&types)
}

/// `CASE x WHEN v …` with numerics as `CASE WHEN x = v …` (comparing values), and every
/// branch as a wide numeric when one is.
fn rewrite_case(case: Case, schema: &DFSchema) -> Case {
    let Case {
        expr,
        when_then_expr,
        else_expr,
    } = case;
    let when_then_expr: Vec<(Box<Expr>, Box<Expr>)> = match expr {
        Some(operand) => when_then_expr
            .into_iter()
            .map(|(when, then)| {
                (
                    Box::new(compare(CmpOp::Eq, (*operand).clone(), *when)),
                    then,
                )
            })
            .collect(),
        None => when_then_expr,
    };
    if !returns_numeric(
        when_then_expr.iter().map(|(_, then)| then.as_ref()),
        else_expr.as_deref(),
        schema,
    ) {
        return Case {
            expr: None,
            when_then_expr,
            else_expr,
        };
    }
    // A string literal is PostgreSQL's `unknown`: it takes the branches' type, numeric.
    let branch = |e: Box<Expr>| {
        Box::new(match *e {
            literal @ Expr::Literal(..)
                if type_of(&literal, schema).is_some_and(|t| is_text(&t)) =>
            {
                call(Kind::ToNumeric(None), vec![literal])
            }
            other => widened(other, schema),
        })
    };
    Case {
        expr: None,
        when_then_expr: when_then_expr
            .into_iter()
            .map(|(when, then)| (when, branch(then)))
            .collect(),
        else_expr: else_expr.map(branch),
    }
}

/// `plan` with its columns at `positions` converted to wide numerics (names kept).
fn widen_columns(plan: LogicalPlan, positions: &[usize]) -> DfResult<LogicalPlan> {
    convert_columns(plan, |i, column, data_type, _| {
        (positions.contains(&i) && !is_numeric_field_type(data_type))
            .then(|| call(Kind::ToNumeric(None), vec![column]))
    })
}

/// `plan` projected with each column `convert` gives a new expression for (given its position,
/// the column, its type and the schema) converted, its name kept.
fn convert_columns(
    plan: LogicalPlan,
    convert: impl Fn(usize, Expr, &DataType, &DFSchema) -> Option<Expr>,
) -> DfResult<LogicalPlan> {
    let schema = plan.schema().clone();
    let exprs: Vec<Expr> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            match convert(i, column.clone(), field.data_type(), &schema) {
                Some(converted) => converted.alias_qualified(qualifier.cloned(), field.name()),
                None => column,
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// `expr` (of the numeric category) as the float type `target`.
fn float_cast(expr: Expr, target: &DataType, schema: &DFSchema) -> Expr {
    match type_of(&expr, schema) {
        Some(t) if t == *target => expr,
        Some(t) if is_numeric_field_type(&t) => from_numeric(expr, target.clone()),
        _ => Expr::Cast(Cast::new(Box::new(expr), target.clone())),
    }
}

/// The float type PostgreSQL gives a column of `types` of the numeric category holding a float
/// (`real` unless one is `double precision`), when they are not all alike.
fn float_column(types: &[&DataType]) -> Option<DataType> {
    let float = types
        .iter()
        .filter(|t| is_float(t))
        .max_by_key(|t| **t == &DataType::Float64)?;
    let float = if **float == DataType::Float64 {
        DataType::Float64
    } else {
        DataType::Float32
    };
    let numeric = |t: &DataType| is_float(t) || functions::converts_to_numeric(t);
    (types.iter().all(|t| numeric(t)) && types.iter().any(|t| **t != float)).then_some(float)
}

/// `plan` with its columns at `positions` converted to the float types given (names kept).
fn float_columns(plan: LogicalPlan, positions: &[(usize, DataType)]) -> DfResult<LogicalPlan> {
    convert_columns(plan, |i, column, data_type, schema| {
        let (_, target) = positions.iter().find(|(p, _)| *p == i)?;
        (data_type != target).then(|| float_cast(column, target, schema))
    })
}

/// A UNION whose column is a wide numeric in one branch and an integer or decimal in another:
/// PostgreSQL resolves the column to `numeric` (DataFusion refuses), so the other branches
/// convert theirs. With a float among them the column is that float type (PostgreSQL converts
/// integers and numerics to floats implicitly, not back).
fn widen_union(union: Union) -> DfResult<Transformed<LogicalPlan>> {
    let columns = union.schema.fields().len();
    // The types of a column across the union's inputs.
    let types_of = |union: &Union, column: usize| -> Vec<DataType> {
        union
            .inputs
            .iter()
            .filter_map(|input| {
                let field = input.schema().fields().get(column)?;
                Some(field.data_type().clone())
            })
            .collect()
    };
    let mut floats = Vec::new();
    for column in 0..columns {
        let types = types_of(&union, column);
        let types: Vec<&DataType> = types.iter().collect();
        if let Some(float) = float_column(&types) {
            floats.push((column, float));
        }
    }
    let union = if floats.is_empty() {
        union
    } else {
        let inputs = union
            .inputs
            .into_iter()
            .map(|input| float_columns(Arc::unwrap_or_clone(input), &floats).map(Arc::new))
            .collect::<DfResult<Vec<_>>>()?;
        Union::try_new_with_loose_types(inputs)?
    };
    let mut positions = Vec::new();
    for column in 0..columns {
        let types = types_of(&union, column);
        let any_wide = types.iter().any(is_numeric_field_type);
        let all_wide = types.iter().all(is_numeric_field_type);
        let convertible = types.iter().all(functions::converts_to_numeric);
        if (any_wide && !all_wide && convertible) || mixes_scales(&types) {
            positions.push(column);
        }
    }
    if positions.is_empty() {
        return Ok(Transformed::new_transformed(
            LogicalPlan::Union(union),
            !floats.is_empty(),
        ));
    }
    let inputs = union
        .inputs
        .into_iter()
        .map(|input| widen_columns(Arc::unwrap_or_clone(input), &positions).map(Arc::new))
        .collect::<DfResult<Vec<_>>>()?;
    Ok(Transformed::yes(LogicalPlan::Union(
        Union::try_new_with_loose_types(inputs)?,
    )))
}

/// A cast that involves a numeric as a numeric function; `Err` gives back the operand of a
/// cast DataFusion does right.
fn rewrite_cast(expr: Expr, field: &FieldRef, schema: &DFSchema) -> Result<Expr, Expr> {
    let Some(source) = type_of(&expr, schema) else {
        return Err(expr);
    };
    let target = field.data_type();
    if matches!(source, DataType::List(_) | DataType::LargeList(_)) && is_text(target) {
        // PostgreSQL's `{1.5,NULL}`, not Arrow's `[1.5, ]` (nor a numeric's key bytes).
        return Ok(Expr::Cast(Cast {
            expr: Box::new(crate::array_text::array_text_udf().call(vec![expr])),
            field: field.clone(),
        }));
    }
    if let (DataType::List(target_item), DataType::List(source_item)) = (target, &source) {
        return match element_cast(source_item, target_item) {
            Some(kind) => Ok(call(
                Kind::Elements(Box::new(kind), target_item.clone()),
                vec![expr],
            )),
            None if is_numeric_field_type(source_item.data_type())
                && is_numeric_field_type(target_item.data_type()) =>
            {
                Ok(expr)
            }
            None => Err(expr),
        };
    }
    if is_numeric_field_type(target) {
        let typmod = field_typmod(field);
        if is_numeric_field_type(&source) && typmod.is_none() {
            return Ok(expr);
        }
        return Ok(call(Kind::ToNumeric(typmod), vec![expr]));
    }
    if let DataType::Decimal128(p, s) = target {
        if source == *target && field_typmod(field).is_none() {
            return Err(expr);
        }
        let numeric_source =
            functions::converts_to_numeric(&source) || is_text(&source) || is_float(&source);
        if numeric_source && source != DataType::Null {
            return Ok(call(Kind::ToDecimal(*p, *s), vec![expr]));
        }
        return Err(expr);
    }
    if is_text(target) && matches!(source, DataType::Binary | DataType::BinaryView) {
        return Ok(Expr::Cast(Cast {
            expr: Box::new(
                crate::functions::text::text_cast(crate::functions::text::TextCast::ByteaToText)
                    .call(vec![expr]),
            ),
            field: field.clone(),
        }));
    }
    let tag = |f: &Field| f.metadata().get(crate::types::PG_TYPE_KEY).cloned();
    if is_text(&source)
        && tag(field).as_deref() == Some("uuid")
        && expr
            .to_field(schema)
            .is_ok_and(|(_, f)| tag(&f).as_deref() != Some("uuid"))
    {
        return Ok(Expr::Cast(Cast {
            expr: Box::new(
                crate::functions::text::text_cast(crate::functions::text::TextCast::ToUuid)
                    .call(vec![expr]),
            ),
            field: field.clone(),
        }));
    }
    if is_float(&source) && is_text(target) {
        // PostgreSQL's float output (`3`, `1e+20`), not Arrow's (`3.0`, `1e20`).
        return Ok(Expr::Cast(Cast {
            expr: Box::new(crate::functions::math::float_text().call(vec![expr])),
            field: field.clone(),
        }));
    }
    let integer_target = matches!(target, DataType::Int16 | DataType::Int32 | DataType::Int64);
    if is_float(&source) && integer_target {
        // PostgreSQL rounds half to even (rint); Arrow's cast truncates.
        return Ok(Expr::Cast(Cast {
            expr: Box::new(crate::functions::math::rint().call(vec![expr])),
            field: field.clone(),
        }));
    }
    let rounds_to_integer = is_decimal(&source) && integer_target;
    if is_numeric_field_type(&source) || rounds_to_integer {
        return Ok(call(Kind::FromNumeric(field.clone()), vec![expr]));
    }
    Err(expr)
}

/// How the elements of an array cast from `source` to `target` elements convert, where a
/// numeric is involved (`None`: DataFusion's cast, or nothing to do between wide numerics).
fn element_cast(source: &FieldRef, target: &FieldRef) -> Option<Kind> {
    let (from, to) = (source.data_type(), target.data_type());
    if is_numeric_field_type(to) {
        let typmod = field_typmod(target);
        return (!is_numeric_field_type(from) || typmod.is_some())
            .then_some(Kind::ToNumeric(typmod));
    }
    if let DataType::Decimal128(p, s) = to {
        let numeric_source =
            functions::converts_to_numeric(from) || is_text(from) || is_float(from);
        return (from != to && numeric_source && *from != DataType::Null)
            .then_some(Kind::ToDecimal(*p, *s));
    }
    is_numeric_field_type(from).then(|| Kind::FromNumeric(target.clone()))
}

/// `left IS DISTINCT FROM right` for numerics: NULL-aware inequality on values.
fn distinct_by_value(left: Expr, right: Expr) -> Expr {
    Expr::Case(Case {
        expr: None,
        when_then_expr: vec![
            (
                Box::new(left.clone().is_null()),
                Box::new(right.clone().is_not_null()),
            ),
            (Box::new(right.clone().is_null()), Box::new(lit(true))),
        ],
        else_expr: Some(Box::new(compare(CmpOp::NotEq, left, right))),
    })
}

//! PostgreSQL's integer arithmetic: an overflow is an error (22003, `integer out of range`),
//! never a silent wrap.
//!
//! DataFusion's `+`, `-`, `*`, `/` and unary minus wrap on integer overflow
//! (`2147483647::int4 + 1` is `-2147483648`). [`CheckedIntegerArithmetic`] is an analyzer
//! rule that runs after type coercion and replaces each such operation on `smallint`,
//! `integer` or `bigint` operands by a call of a checked function ([`checked_udfs`]), which
//! computes with Arrow's checked kernels (vectorised like the wrapping ones) and names the
//! type that overflowed as PostgreSQL does. The result type is unchanged, so the plan's
//! schema (and what clients were told in RowDescription) stays as planned. `%` keeps
//! DataFusion's operator: its only overflow, `MIN % -1`, is 0 in PostgreSQL too.
//!
//! `smallint` shifts stay `smallint` and `date - date` is an `integer`, the types PostgreSQL
//! gives them (DataFusion widens both).
//!
//! Float arithmetic (`real`, `double precision`) follows PostgreSQL's `float8pl` & co. the same
//! way: an infinite result from finite operands is `value out of range: overflow`, a zero
//! product or quotient of non-zero operands `… underflow` (22003), and division by zero is
//! 22012 (IEEE's `Infinity`/`NaN` otherwise).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int16Array, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{
    DataType, FieldRef, Float64Type, Int16Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::BinaryOperator as SqlOperator;

use crate::error::{sqlstate, SqlError};

/// The checked operations, by the function name the plan calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Neg,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "floe_int_add",
            Op::Sub => "floe_int_sub",
            Op::Mul => "floe_int_mul",
            Op::Div => "floe_int_div",
            Op::Neg => "floe_int_neg",
        }
    }

    fn of(op: Operator) -> Option<Op> {
        match op {
            Operator::Plus => Some(Op::Add),
            Operator::Minus => Some(Op::Sub),
            Operator::Multiply => Some(Op::Mul),
            Operator::Divide => Some(Op::Div),
            _ => None,
        }
    }

    fn arity(self) -> usize {
        if self == Op::Neg {
            1
        } else {
            2
        }
    }
}

const OPS: [Op; 5] = [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Neg];

/// The float operations with PostgreSQL's range checks.
const FLOAT_OPS: [Op; 4] = [Op::Add, Op::Sub, Op::Mul, Op::Div];

impl Op {
    fn float_name(self) -> &'static str {
        match self {
            Op::Add => "floe_float_add",
            Op::Sub => "floe_float_sub",
            Op::Mul => "floe_float_mul",
            _ => "floe_float_div",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedFloat {
    op: Op,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedFloat {
    /// NULL when an operand is NULL: an outer join under a filter on it can be an inner one.
    fn is_strict(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        self.op.float_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    /// Strict: NULL with a NULL constant operand (folded, as PostgreSQL).
    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> DfResult<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_operator(args, info)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (lhs, rhs) = (&arrays[0], &arrays[1]);
        let (x, y) = (
            cast(lhs, &DataType::Float64)?,
            cast(rhs, &DataType::Float64)?,
        );
        let (x, y) = (
            x.as_primitive::<Float64Type>(),
            y.as_primitive::<Float64Type>(),
        );
        if self.op == Op::Div {
            let zero_divisor = (0..y.len()).any(|i| {
                y.is_valid(i) && x.is_valid(i) && y.value(i) == 0.0 && !x.value(i).is_nan()
            });
            if zero_divisor {
                return Err(SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero").into());
            }
        }
        let array = match self.op {
            Op::Add => numeric::add(lhs, rhs),
            Op::Sub => numeric::sub(lhs, rhs),
            Op::Mul => numeric::mul(lhs, rhs),
            _ => numeric::div(lhs, rhs),
        }
        .map_err(SqlError::from)?;
        let results = cast(&array, &DataType::Float64)?;
        let results = results.as_primitive::<Float64Type>();
        for i in 0..results.len() {
            if results.is_null(i) {
                continue;
            }
            let (a, b, r) = (x.value(i), y.value(i), results.value(i));
            let overflow = r.is_infinite()
                && match self.op {
                    Op::Div => !a.is_infinite(),
                    _ => !a.is_infinite() && !b.is_infinite(),
                };
            let underflow = r == 0.0
                && match self.op {
                    Op::Mul => a != 0.0 && b != 0.0,
                    Op::Div => a != 0.0 && !b.is_infinite(),
                    _ => false,
                };
            if overflow || underflow {
                let which = if overflow { "overflow" } else { "underflow" };
                return Err(SqlError::new(
                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("value out of range: {which}"),
                )
                .into());
            }
        }
        let array = canonical_nan(array);
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// `smallint << n` / `smallint >> n`: PostgreSQL's `int2shl`/`int2shr`, a `smallint` computed
/// in 32 bits and truncated (`1::int2 << 16` is 0); DataFusion coerces the operand to the
/// shift count's `integer` and answers an `integer`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Int2Shift {
    left: bool,
    signature: Signature,
}

impl ScalarUDFImpl for Int2Shift {
    /// NULL when an operand is NULL: an outer join under a filter on it can be an inner one.
    fn is_strict(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        if self.left {
            "floe_int2_shl"
        } else {
            "floe_int2_shr"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int16)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let values = cast(&arrays[0], &DataType::Int16)?;
        let counts = cast(&arrays[1], &DataType::Int64)?;
        let (values, counts) = (
            values.as_primitive::<Int16Type>(),
            counts.as_primitive::<Int64Type>(),
        );
        let shifted: Int16Array = values
            .iter()
            .zip(counts.iter())
            .map(|(v, n)| {
                let (v, n) = (i32::from(v?), n? as u32);
                let wide = if self.left {
                    v.wrapping_shl(n)
                } else {
                    v.wrapping_shr(n)
                };
                Some(wide as i16)
            })
            .collect();
        let array: ArrayRef = Arc::new(shifted);
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// Plans the operators whose result type PostgreSQL decides differently from DataFusion, while
/// the SQL is planned (an analyzer rule may not change a plan's types): `smallint` shifts stay
/// `smallint` ([`Int2Shift`]), and `date - date` is an `integer` number of days.
#[derive(Debug)]
pub(crate) struct PostgresOperators {
    /// `<<` and `>>` of a `smallint`.
    int2_shift: [Arc<ScalarUDF>; 2],
    xor: Arc<ScalarUDF>,
    /// `interval * number` and `interval / number`.
    interval_scale: [Arc<ScalarUDF>; 2],
}

/// `interval * float8` or `interval / float8` (the interval first), PostgreSQL's
/// `interval_mul`/`interval_div`: fractions of months and days cascade down.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalScale {
    divide: bool,
    signature: Signature,
}

impl ScalarUDFImpl for IntervalScale {
    /// NULL when an operand is NULL: an outer join under a filter on it can be an inner one.
    fn is_strict(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        if self.divide {
            "floe_interval_div"
        } else {
            "floe_interval_mul"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use crate::interval::{scale, PgInterval};
        let rows = crate::functions::rows_of(&args);
        let span = args.args[0].to_array(rows)?;
        let span = cast(&span, &DataType::Interval(IntervalUnit::MonthDayNano))?;
        let factor = cast(&args.args[1].to_array(rows)?, &DataType::Float64)?;
        let span = span.as_primitive::<IntervalMonthDayNanoType>();
        let factor = factor.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(span.len());
        for (span, factor) in span.iter().zip(factor.iter()) {
            out.push(match (span, factor) {
                (Some(span), Some(factor)) => {
                    Some(scale(PgInterval::from_arrow(span), factor, self.divide)?.to_arrow()?)
                }
                _ => None,
            });
        }
        let result: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(out));
        crate::functions::finish(&args.args, result)
    }
}

/// `a # b` of integers (the wider of the two types), NULL when either is.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntXor {
    signature: Signature,
}

impl ScalarUDFImpl for IntXor {
    /// NULL when an operand is NULL: an outer join under a filter on it can be an inner one.
    fn is_strict(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "floe_int_xor"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let wider = if arg_types.contains(&DataType::Int64) {
            DataType::Int64
        } else if arg_types.contains(&DataType::Int32) {
            DataType::Int32
        } else {
            DataType::Int16
        };
        Ok(vec![wider; arg_types.len()])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::compute::kernels::bitwise::bitwise_xor;
        use datafusion::arrow::datatypes::Int32Type;
        let rows = crate::functions::rows_of(&args);
        let (a, b) = (args.args[0].to_array(rows)?, args.args[1].to_array(rows)?);
        let result: ArrayRef = match a.data_type() {
            DataType::Int16 => Arc::new(bitwise_xor(
                a.as_primitive::<Int16Type>(),
                b.as_primitive::<Int16Type>(),
            )?),
            DataType::Int32 => Arc::new(bitwise_xor(
                a.as_primitive::<Int32Type>(),
                b.as_primitive::<Int32Type>(),
            )?),
            _ => {
                let (a, b) = (cast(&a, &DataType::Int64)?, cast(&b, &DataType::Int64)?);
                Arc::new(bitwise_xor(
                    a.as_primitive::<Int64Type>(),
                    b.as_primitive::<Int64Type>(),
                )?)
            }
        };
        crate::functions::finish(&args.args, result)
    }
}

impl PostgresOperators {
    pub(crate) fn new() -> PostgresOperators {
        let shift = |left| {
            Arc::new(ScalarUDF::new_from_impl(Int2Shift {
                left,
                signature: Signature::any(2, Volatility::Immutable),
            }))
        };
        PostgresOperators {
            int2_shift: [shift(true), shift(false)],
            xor: Arc::new(ScalarUDF::new_from_impl(IntXor {
                signature: Signature::user_defined(Volatility::Immutable),
            })),
            interval_scale: [false, true].map(|divide| {
                Arc::new(ScalarUDF::new_from_impl(IntervalScale {
                    divide,
                    signature: Signature::any(2, Volatility::Immutable),
                }))
            }),
        }
    }
}

impl ExprPlanner for PostgresOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let left_type = expr.left.get_type(schema).ok();
        let right_type = expr.right.get_type(schema).ok();
        let shift = match expr.op {
            SqlOperator::PGBitwiseShiftLeft => Some(0),
            SqlOperator::PGBitwiseShiftRight => Some(1),
            _ => None,
        };
        if let (Some(side), Some(DataType::Int16)) = (shift, &left_type) {
            if right_type.as_ref().is_some_and(DataType::is_integer) {
                return Ok(PlannerResult::Planned(Expr::ScalarFunction(
                    ScalarFunction::new_udf(
                        self.int2_shift[side].clone(),
                        vec![expr.left, expr.right],
                    ),
                )));
            }
        }
        // timestamp - timestamp is an interval of days and time in PostgreSQL (timestamp_mi:
        // `1 day 02:00:00`), not Arrow's duration (`26:00:00`).
        if expr.op == SqlOperator::Minus
            && matches!(left_type, Some(DataType::Timestamp(..)))
            && matches!(right_type, Some(DataType::Timestamp(..)))
        {
            let interval =
                DataType::Interval(datafusion::arrow::datatypes::IntervalUnit::MonthDayNano);
            let difference = Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                Box::new(crate::date_days::finite_timestamp(expr.left)),
                datafusion::logical_expr::Operator::Minus,
                Box::new(crate::date_days::finite_timestamp(expr.right)),
            ))
            .cast_to(&interval, schema)?;
            return Ok(PlannerResult::Planned(
                crate::interval::justify_hours_udf().call(vec![difference]),
            ));
        }
        // date ± interval is a timestamp in PostgreSQL (DataFusion keeps a date and drops the
        // time of day: '2009-06-03'::date + interval '1 hour' was 2009-06-03).
        let is_interval = |t: &Option<DataType>| matches!(t, Some(DataType::Interval(_)));
        let date = Some(DataType::Date32);
        let timestamp =
            || DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
        if matches!(expr.op, SqlOperator::Plus | SqlOperator::Minus)
            && left_type == date
            && is_interval(&right_type)
        {
            let left = Expr::Cast(datafusion::logical_expr::expr::Cast::new(
                Box::new(expr.left),
                timestamp(),
            ));
            return Ok(PlannerResult::Original(RawBinaryExpr {
                op: expr.op,
                left,
                right: expr.right,
            }));
        }
        if expr.op == SqlOperator::Plus && is_interval(&left_type) && right_type == date {
            let right = Expr::Cast(datafusion::logical_expr::expr::Cast::new(
                Box::new(expr.right),
                timestamp(),
            ));
            return Ok(PlannerResult::Original(RawBinaryExpr {
                op: expr.op,
                left: expr.left,
                right,
            }));
        }
        // interval * number, number * interval and interval / number (DataFusion has none).
        // (LargeBinary is Floe's numeric, read as float8 as PostgreSQL does here.)
        let is_number = |t: &Option<DataType>| {
            t.as_ref().is_some_and(|t| {
                t.is_numeric() || t.is_null() || crate::numeric::is_numeric_field_type(t)
            })
        };
        let scaled = match expr.op {
            SqlOperator::Multiply if is_interval(&left_type) && is_number(&right_type) => {
                Some((0, expr.left.clone(), expr.right.clone()))
            }
            SqlOperator::Multiply if is_number(&left_type) && is_interval(&right_type) => {
                Some((0, expr.right.clone(), expr.left.clone()))
            }
            SqlOperator::Divide if is_interval(&left_type) && is_number(&right_type) => {
                Some((1, expr.left.clone(), expr.right.clone()))
            }
            _ => None,
        };
        if let Some((divide, span, factor)) = scaled {
            let factor = Expr::Cast(datafusion::logical_expr::expr::Cast::new(
                Box::new(factor),
                DataType::Float64,
            ));
            return Ok(PlannerResult::Planned(Expr::ScalarFunction(
                ScalarFunction::new_udf(self.interval_scale[divide].clone(), vec![span, factor]),
            )));
        }
        // `#` on integers: DataFusion's simplifier folds `a # a` to 0 even when `a` is NULL.
        if expr.op == SqlOperator::PGBitwiseXor
            && left_type.as_ref().is_some_and(DataType::is_integer)
            && right_type.as_ref().is_some_and(DataType::is_integer)
        {
            return Ok(PlannerResult::Planned(Expr::ScalarFunction(
                ScalarFunction::new_udf(self.xor.clone(), vec![expr.left, expr.right]),
            )));
        }
        // array || unknown: the unknown side is an array of the same type, as PostgreSQL
        // resolves it (`text[] || $1` concatenates two arrays; `|| NULL` adds nothing).
        if expr.op == SqlOperator::StringConcat {
            if let Some(expr) = untyped_array_operand(&expr, schema) {
                return Ok(PlannerResult::Original(expr));
            }
        }
        // date - date, date ± integer: PostgreSQL's range and infinities (`crate::date_days`).
        let date = Some(DataType::Date32);
        let integer = |t: &Option<DataType>| t.as_ref().is_some_and(DataType::is_integer);
        match expr.op {
            SqlOperator::Minus if left_type == date && right_type == date => {
                return Ok(PlannerResult::Planned(crate::date_days::days_between(
                    expr.left, expr.right,
                )));
            }
            SqlOperator::Minus if left_type == date && integer(&right_type) => {
                return Ok(PlannerResult::Planned(crate::date_days::sub_days(
                    expr.left, expr.right,
                )));
            }
            SqlOperator::Plus if left_type == date && integer(&right_type) => {
                return Ok(PlannerResult::Planned(crate::date_days::add_days(
                    expr.left, expr.right,
                )));
            }
            SqlOperator::Plus if integer(&left_type) && right_type == date => {
                return Ok(PlannerResult::Planned(crate::date_days::add_days(
                    expr.right, expr.left,
                )));
            }
            _ => {}
        }
        Ok(PlannerResult::Original(expr))
    }
}

/// `array || x` (or `x || array`) with `x` an untyped parameter or NULL given the array's
/// type; `None` when neither side is such a pair.
fn untyped_array_operand(expr: &RawBinaryExpr, schema: &DFSchema) -> Option<RawBinaryExpr> {
    use datafusion::logical_expr::expr::Placeholder;
    let list_field = |e: &Expr| {
        e.to_field(schema)
            .ok()
            .map(|(_, f)| f)
            .filter(|f| matches!(f.data_type(), DataType::List(_) | DataType::LargeList(_)))
    };
    let typed = |e: &Expr, field: FieldRef| match e {
        Expr::Placeholder(Placeholder { id, field: None }) => {
            Some(Expr::Placeholder(Placeholder {
                id: id.clone(),
                field: Some(Arc::new(
                    field.as_ref().clone().with_name("").with_nullable(true),
                )),
            }))
        }
        Expr::Literal(ScalarValue::Null, _) => ScalarValue::try_from(field.data_type())
            .ok()
            .map(|null| Expr::Literal(null, None)),
        _ => None,
    };
    if let Some(field) = list_field(&expr.left) {
        let right = typed(&expr.right, field)?;
        return Some(RawBinaryExpr {
            op: expr.op.clone(),
            left: expr.left.clone(),
            right,
        });
    }
    let field = list_field(&expr.right)?;
    let left = typed(&expr.left, field)?;
    Some(RawBinaryExpr {
        op: expr.op.clone(),
        left,
        right: expr.right.clone(),
    })
}

fn is_checked_float(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedInt {
    op: Op,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedInt {
    /// NULL when an operand is NULL: an outer join under a filter on it can be an inner one.
    fn is_strict(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    /// Strict: NULL with a NULL constant operand (folded, as PostgreSQL).
    fn simplify(
        &self,
        args: Vec<Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> DfResult<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        strict_operator(args, info)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let data_type = arrays[0].data_type().clone();
        let result = match self.op {
            Op::Neg => numeric::neg(arrays[0].as_ref()),
            op => {
                let (lhs, rhs) = (&arrays[0], &arrays[1]);
                match op {
                    Op::Add => numeric::add(lhs, rhs),
                    Op::Sub => numeric::sub(lhs, rhs),
                    Op::Mul => numeric::mul(lhs, rhs),
                    _ => numeric::div(lhs, rhs),
                }
            }
        };
        let array: ArrayRef = result.map_err(|e| overflow_error(e, &data_type))?;
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// PostgreSQL's words for an integer overflow (and division by zero, which the checked
/// division reports too).
pub(crate) fn overflow_error(
    err: ArrowError,
    data_type: &DataType,
) -> datafusion::error::DataFusionError {
    let sql = match err {
        ArrowError::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::ArithmeticOverflow(_) => SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{} out of range", integer_name(data_type)),
        ),
        other => SqlError::from(other),
    };
    sql.into()
}

fn integer_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    }
}

fn is_checked_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// A checked operator with a NULL constant operand is a NULL of its first operand's type.
fn strict_operator(
    args: Vec<Expr>,
    info: &datafusion::logical_expr::simplify::SimplifyContext,
) -> DfResult<datafusion::logical_expr::simplify::ExprSimplifyResult> {
    let return_type = match args.first() {
        Some(first) => info.get_data_type(first),
        None => Ok(DataType::Null),
    };
    crate::null_conditions::strict(args, return_type)
}

/// NaN without its sign: x86 makes `∞ - ∞` and `∞ × 0` a NaN with the sign bit set, which
/// Arrow's sort (IEEE total order) puts before every number; PostgreSQL's NaN is above every
/// number, as a positive NaN sorts.
pub(crate) fn canonical_nan(array: ArrayRef) -> ArrayRef {
    use datafusion::arrow::datatypes::{ArrowPrimitiveType, Float32Type};
    use num_traits::Float;
    fn positive<T: ArrowPrimitiveType>(array: ArrayRef) -> ArrayRef
    where
        T::Native: Float,
    {
        let values = array.as_primitive::<T>();
        let negative_nan = |v: &T::Native| v.is_nan() && v.is_sign_negative();
        if !values.values().iter().any(negative_nan) {
            return array;
        }
        Arc::new(values.unary::<_, T>(|v| if v.is_nan() { T::Native::nan() } else { v }))
    }
    match array.data_type() {
        DataType::Float64 => positive::<Float64Type>(array),
        DataType::Float32 => positive::<Float32Type>(array),
        _ => array,
    }
}

/// Replaces wrapping integer arithmetic by the checked functions (see the module doc).
#[derive(Debug)]
pub(crate) struct CheckedIntegerArithmetic {
    /// One function per entry of [`OPS`].
    udfs: Vec<Arc<ScalarUDF>>,
    /// One function per entry of [`FLOAT_OPS`].
    float_udfs: Vec<Arc<ScalarUDF>>,
}

impl CheckedIntegerArithmetic {
    pub(crate) fn new() -> CheckedIntegerArithmetic {
        let udfs = OPS
            .into_iter()
            .map(|op| {
                Arc::new(ScalarUDF::new_from_impl(CheckedInt {
                    op,
                    signature: Signature::any(op.arity(), Volatility::Immutable),
                }))
            })
            .collect();
        let float_udfs = FLOAT_OPS
            .into_iter()
            .map(|op| {
                Arc::new(ScalarUDF::new_from_impl(CheckedFloat {
                    op,
                    signature: Signature::any(2, Volatility::Immutable),
                }))
            })
            .collect();
        CheckedIntegerArithmetic { udfs, float_udfs }
    }

    fn float_udf(&self, op: Op) -> Arc<ScalarUDF> {
        let at = FLOAT_OPS.iter().position(|o| *o == op).unwrap_or_default();
        self.float_udfs[at].clone()
    }

    fn udf(&self, op: Op) -> Arc<ScalarUDF> {
        let at = OPS.iter().position(|o| *o == op).unwrap_or_default();
        self.udfs[at].clone()
    }

    /// `expr` with its own operation made checked, if it is integer arithmetic.
    fn checked(&self, expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
        let (op, args) = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match Op::of(op) {
                Some(checked_op) if same_integer_type(&left, &right, schema) => {
                    (checked_op, vec![*left, *right])
                }
                Some(float_op) if same_type(&left, &right, schema, is_checked_float) => {
                    return Ok(Transformed::yes(Expr::ScalarFunction(
                        ScalarFunction::new_udf(self.float_udf(float_op), vec![*left, *right]),
                    )));
                }
                _ => {
                    return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                        left, op, right,
                    ))))
                }
            },
            Expr::Negative(inner) => match inner.get_type(schema) {
                Ok(t) if is_checked_integer(&t) => (Op::Neg, vec![*inner]),
                _ => return Ok(Transformed::no(Expr::Negative(inner))),
            },
            // A narrowing integer cast of a column is a function: DataFusion's simplifier
            // unwraps `CAST(CAST(i8 AS int4) AS int8) < 1` into `i8 < 1`, dropping the
            // overflow error PostgreSQL raises (`CAST(i8 AS int4) < 1::int8` was false).
            Expr::Cast(datafusion::logical_expr::expr::Cast { expr, field })
                if narrows(&expr.get_type(schema)?, field.data_type())
                    && expr.any_column_refs() =>
            {
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(
                        Arc::new(ScalarUDF::new_from_impl(NarrowInt {
                            to: field.data_type().clone(),
                            signature: Signature::any(1, Volatility::Immutable),
                        })),
                        vec![*expr],
                    ),
                )));
            }
            // `int::bool` is `int <> 0`, as PostgreSQL's int4_bool. DataFusion's own cast is
            // right too, but its planner takes a row filter on it (`WHERE i::bool`) for one
            // that makes `i` a constant, and drops an `ORDER BY i` above it.
            Expr::Cast(datafusion::logical_expr::expr::Cast { expr, field })
                if field.data_type() == &DataType::Boolean
                    && expr.get_type(schema).is_ok_and(|t| is_checked_integer(&t)) =>
            {
                let zero =
                    datafusion::logical_expr::lit(0i64).cast_to(&expr.get_type(schema)?, schema)?;
                return Ok(Transformed::yes(expr.not_eq(zero)));
            }
            other => return Ok(Transformed::no(other)),
        };
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.udf(op), args),
        )))
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::rewrite::rewrite_plan_expressions(plan, |e, schema| self.checked(e, schema))
    }

    fn name(&self) -> &str {
        "floe_checked_integer_arithmetic"
    }
}

/// Whether a cast `from` → `to` is one of an integer to a narrower integer.
fn narrows(from: &DataType, to: &DataType) -> bool {
    matches!(
        (from, to),
        (DataType::Int64, DataType::Int32 | DataType::Int16) | (DataType::Int32, DataType::Int16)
    )
}

/// `floe_int_narrow(x)`: `x` cast to the narrower integer type `to`, failing (22003) where a
/// value does not fit.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NarrowInt {
    to: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for NarrowInt {
    fn name(&self) -> &str {
        "floe_int_narrow"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.to.clone())
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let options = datafusion::arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        match &args.args[0] {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(
                datafusion::arrow::compute::cast_with_options(array, &self.to, &options)?,
            )),
            ColumnarValue::Scalar(value) => Ok(ColumnarValue::Scalar(
                value.cast_to_with_options(&self.to, &options)?,
            )),
        }
    }
}

fn same_integer_type(left: &Expr, right: &Expr, schema: &DFSchema) -> bool {
    same_type(left, right, schema, is_checked_integer)
}

fn same_type(
    left: &Expr,
    right: &Expr,
    schema: &DFSchema,
    checked: impl Fn(&DataType) -> bool,
) -> bool {
    match (left.get_type(schema), right.get_type(schema)) {
        (Ok(l), Ok(r)) => l == r && checked(&l),
        _ => false,
    }
}

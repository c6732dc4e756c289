//! The scalar functions that compute on wide numerics: arithmetic, comparisons, casts and
//! `round`/`trunc`/`abs`/`ceil`/`floor`/`sign`.
//!
//! Every function accepts any numeric-like operand (a wide numeric's key bytes, `Decimal128`,
//! `Decimal256`, integers, floats, and text, which is read as numeric input) and converts it
//! value by value. A function's identity is its [`Kind`], so two plans of one expression
//! compare equal (GROUP BY and ORDER BY match select items structurally).

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, LargeBinaryBuilder,
    LargeStringBuilder, ListArray, StringBuilder, StringViewBuilder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Decimal256Type, Field, FieldRef, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use num_bigint::BigInt;

use super::value::{compare_keys, value_part, write_finite_key, Numeric, NumericError};
use super::{is_numeric_field_type, numeric_field};
use crate::error::{sqlstate, SqlError};

/// Binary arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// One-argument functions (`round` and `trunc` take an optional scale too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum UnaryOp {
    Neg,
    Abs,
    Ceil,
    Floor,
    Sign,
    Round,
    Trunc,
    Sqrt,
    Ln,
    Exp,
    /// `log(x)` and `log10(x)` (base 10), `log(b, x)`.
    Log,
    /// `power(x, y)` (and `x ^ y`): takes two arguments.
    Power,
}

/// What a function computes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Arith(ArithOp),
    Compare(CmpOp),
    Unary(UnaryOp),
    /// A cast to `numeric` or `numeric(p, s)` (wide).
    ToNumeric(Option<(u32, u32)>),
    /// A cast to `numeric(p, s)` held as `Decimal128(p, s)`.
    ToDecimal(u8, i8),
    /// A cast of a numeric to another type (integers, floats, text).
    FromNumeric(FieldRef),
    /// `div(a, b)`: the truncated quotient.
    DivTrunc,
    /// `scale(x)` (`min_scale(x)` when true): an `integer`.
    Scale(bool),
    /// `trim_scale(x)`.
    TrimScale,
    /// The value's identity for grouping and join keys: the key without its display scale
    /// (`Binary`, so `1.5` and `1.50` are one group; see `numeric/keys.rs`).
    Identity,
    /// A cast of an array's elements (to or from numeric) by the inner kind, into arrays of
    /// the element field.
    Elements(Box<Kind>, FieldRef),
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericFunction {
    kind: Kind,
    name: String,
    signature: Signature,
}

/// The function computing `kind`.
pub(crate) fn udf(kind: Kind) -> Arc<ScalarUDF> {
    let name = match &kind {
        Kind::Arith(op) => format!("floe_numeric_{op:?}").to_lowercase(),
        Kind::Compare(op) => format!("floe_numeric_{op:?}").to_lowercase(),
        Kind::Unary(op) => format!("floe_numeric_{op:?}").to_lowercase(),
        Kind::ToNumeric(_) => "floe_to_numeric".into(),
        Kind::ToDecimal(..) => "floe_to_decimal".into(),
        Kind::FromNumeric(_) => "floe_from_numeric".into(),
        Kind::Identity => "floe_numeric_identity".into(),
        Kind::Elements(..) => "floe_numeric_elements".into(),
        Kind::DivTrunc => "div".into(),
        Kind::Scale(false) => "scale".into(),
        Kind::Scale(true) => "min_scale".into(),
        Kind::TrimScale => "trim_scale".into(),
    };
    Arc::new(ScalarUDF::new_from_impl(NumericFunction {
        kind,
        name,
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

/// The values of `array` (wide numerics, decimals, integers) as identities: keys without the
/// display scale, equal exactly when the values are (see [`Kind::Identity`]).
pub(crate) fn identities(array: &ArrayRef) -> DfResult<ArrayRef> {
    let rows = array.len();
    NumericFunction {
        kind: Kind::Identity,
        name: "floe_numeric_identity".into(),
        signature: Signature::any(1, Volatility::Immutable),
    }
    .compute(std::slice::from_ref(array), rows)
}

/// The numeric value of row `row` of `array` (`None` for NULL).
pub fn value_at(array: &dyn Array, row: usize) -> DfResult<Option<Numeric>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let value = match array.data_type() {
        DataType::LargeBinary => Numeric::from_key(array.as_binary::<i64>().value(row))?,
        DataType::Decimal128(_, scale) => Numeric::from_decimal(
            BigInt::from(array.as_primitive::<Decimal128Type>().value(row)),
            *scale as i32,
        )?,
        DataType::Decimal256(_, scale) => {
            let text = array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string();
            let mantissa = BigInt::parse_bytes(text.as_bytes(), 10).ok_or(NumericError::Corrupt)?;
            Numeric::from_decimal(mantissa, *scale as i32)?
        }
        DataType::Int8 => Numeric::from_i64(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Numeric::from_i64(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Numeric::from_i64(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Numeric::from_i64(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Numeric::from_i64(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => Numeric::from_i64(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => Numeric::from_i64(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => Numeric::from_decimal(
            BigInt::from(array.as_primitive::<UInt64Type>().value(row)),
            0,
        )?,
        DataType::Float32 => {
            Numeric::from_f64(array.as_primitive::<Float32Type>().value(row).into(), 6)?
        }
        DataType::Float64 => Numeric::from_f64(array.as_primitive::<Float64Type>().value(row), 15)?,
        DataType::Utf8 => Numeric::parse(array.as_string::<i32>().value(row))?,
        DataType::LargeUtf8 => Numeric::parse(array.as_string::<i64>().value(row))?,
        DataType::Utf8View => Numeric::parse(array.as_string_view().value(row))?,
        DataType::Null => return Ok(None),
        other => return Err(cannot_cast(other, "numeric").into()),
    };
    Ok(Some(value))
}

/// 42846, as PostgreSQL refuses a cast it has no function for.
fn cannot_cast(from: &DataType, to: &str) -> SqlError {
    SqlError::new(
        "42846",
        format!(
            "cannot cast type {} to {to}",
            crate::types::SqlType::from_arrow(from).name()
        ),
    )
}

/// The key bytes of row `row` (borrowed when the array already holds keys).
fn key_at(array: &dyn Array, row: usize) -> DfResult<Option<Cow<'_, [u8]>>> {
    if array.is_null(row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::LargeBinary => {
            return Ok(Some(Cow::Borrowed(array.as_binary::<i64>().value(row))));
        }
        // numeric(p, s) columns compared with wide numerics: no big-number detour.
        DataType::Decimal128(_, scale) if *scale >= 0 => {
            let value = array.as_primitive::<Decimal128Type>().value(row);
            let mut key = Vec::with_capacity(24);
            write_finite_key(
                value < 0,
                &value.unsigned_abs().to_string(),
                *scale as u32,
                &mut key,
            );
            return Ok(Some(Cow::Owned(key)));
        }
        _ => {}
    }
    Ok(value_at(array, row)?.map(|v| Cow::Owned(v.to_key())))
}

/// An array of numeric keys from per-row values.
pub(crate) fn keys_array(
    rows: usize,
    mut value: impl FnMut(usize) -> DfResult<Option<Numeric>>,
) -> DfResult<ArrayRef> {
    let mut builder = LargeBinaryBuilder::with_capacity(rows, rows * 12);
    let mut key = Vec::with_capacity(16);
    for row in 0..rows {
        match value(row)? {
            Some(v) => {
                key.clear();
                v.write_key(&mut key);
                builder.append_value(&key);
            }
            None => builder.append_null(),
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// `+ - *` of integers and `Decimal128`s (fixed-point arithmetic whose result may need more
/// than 38 digits, planned as numeric) without big numbers: each row's exact result from
/// `i128` mantissas, written as a key directly; a row whose result does not fit an `i128`
/// goes the general way. `None` for other operators and operand types.
fn fixed_arith(op: ArithOp, a: &ArrayRef, b: &ArrayRef, rows: usize) -> DfResult<Option<ArrayRef>> {
    let fixed = |array: &ArrayRef| -> DfResult<Option<(ArrayRef, u32)>> {
        Ok(match array.data_type() {
            DataType::Decimal128(_, s) if *s >= 0 => Some((array.clone(), *s as u32)),
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Some((
                datafusion::arrow::compute::cast(array, &DataType::Decimal128(38, 0))?,
                0,
            )),
            _ => None,
        })
    };
    if matches!(op, ArithOp::Div | ArithOp::Mod) {
        return Ok(None);
    }
    let (Some((x, sx)), Some((y, sy))) = (fixed(a)?, fixed(b)?) else {
        return Ok(None);
    };
    let scale = match op {
        ArithOp::Mul => sx + sy,
        _ => sx.max(sy),
    };
    let (xs, ys) = (
        x.as_primitive::<Decimal128Type>(),
        y.as_primitive::<Decimal128Type>(),
    );
    let rescale = |m: i128, from: u32| 10i128.checked_pow(scale - from)?.checked_mul(m);
    let mut builder = LargeBinaryBuilder::with_capacity(rows, rows * 12);
    let mut key = Vec::with_capacity(24);
    let mut text = DigitBuffer::default();
    for row in 0..rows {
        if xs.is_null(row) || ys.is_null(row) {
            builder.append_null();
            continue;
        }
        let (m, n) = (xs.value(row), ys.value(row));
        let exact = match op {
            ArithOp::Mul => m.checked_mul(n),
            ArithOp::Add => rescale(m, sx)
                .zip(rescale(n, sy))
                .and_then(|(m, n)| m.checked_add(n)),
            _ => rescale(m, sx)
                .zip(rescale(n, sy))
                .and_then(|(m, n)| m.checked_sub(n)),
        };
        key.clear();
        match exact {
            Some(v) => write_finite_key(v < 0, text.digits(v.unsigned_abs()), scale, &mut key),
            None => {
                let (Some(p), Some(q)) = (value_at(&x, row)?, value_at(&y, row)?) else {
                    builder.append_null();
                    continue;
                };
                let result = match op {
                    ArithOp::Mul => p.mul(&q),
                    ArithOp::Add => p.add(&q),
                    _ => p.sub(&q),
                }?;
                result.write_key(&mut key);
            }
        }
        builder.append_value(&key);
    }
    Ok(Some(Arc::new(builder.finish())))
}

/// Room for the decimal digits of a `u128`, written without allocating.
struct DigitBuffer([u8; 40]);

impl Default for DigitBuffer {
    fn default() -> Self {
        DigitBuffer([0; 40])
    }
}

impl DigitBuffer {
    /// The decimal digits of `v`.
    fn digits(&mut self, v: u128) -> &str {
        // u128 division is slow: split into u64 parts of 19 digits.
        const TEN19: u128 = 10_000_000_000_000_000_000;
        let mut at = self.0.len();
        if v <= u64::MAX as u128 {
            self.push(&mut at, v as u64, 1);
        } else {
            let high = v / TEN19;
            self.push(&mut at, (v % TEN19) as u64, 19);
            if high <= u64::MAX as u128 {
                self.push(&mut at, high as u64, 1);
            } else {
                self.push(&mut at, (high % TEN19) as u64, 19);
                self.push(&mut at, (high / TEN19) as u64, 1);
            }
        }
        // Only ASCII digits were written.
        std::str::from_utf8(&self.0[at..]).unwrap_or("0")
    }

    /// Writes `x`'s digits, at least `min` of them (zero-padded), before position `at`.
    fn push(&mut self, at: &mut usize, mut x: u64, min: usize) {
        let end = *at;
        loop {
            *at -= 1;
            self.0[*at] = b'0' + (x % 10) as u8;
            x /= 10;
            if x == 0 && end - *at >= min {
                break;
            }
        }
    }
}

/// Values of any numeric-like type (integers, decimals, numerics) as wide numerics.
pub(crate) fn to_wide(array: &ArrayRef) -> DfResult<ArrayRef> {
    keys_array(array.len(), |row| value_at(array, row))
}

/// A scalar numeric value as its key (a `LargeBinary` scalar).
pub(crate) fn scalar_key(value: Option<&Numeric>) -> ScalarValue {
    ScalarValue::LargeBinary(value.map(Numeric::to_key))
}

impl NumericFunction {
    fn return_field_of(&self) -> FieldRef {
        match &self.kind {
            Kind::Arith(_) | Kind::Unary(_) | Kind::ToNumeric(None) => {
                Arc::new(numeric_field("", None))
            }
            Kind::ToNumeric(Some(typmod)) => Arc::new(numeric_field("", Some(*typmod))),
            Kind::Compare(_) => Arc::new(Field::new("", DataType::Boolean, true)),
            Kind::ToDecimal(p, s) => Arc::new(Field::new("", DataType::Decimal128(*p, *s), true)),
            Kind::FromNumeric(field) => field.clone(),
            Kind::Identity => Arc::new(Field::new("", DataType::Binary, true)),
            Kind::DivTrunc | Kind::TrimScale => Arc::new(numeric_field("", None)),
            Kind::Scale(_) => Arc::new(Field::new("", DataType::Int32, true)),
            Kind::Elements(_, element) => {
                Arc::new(Field::new("", DataType::List(element.clone()), true))
            }
        }
    }

    fn compute(&self, args: &[ArrayRef], rows: usize) -> DfResult<ArrayRef> {
        let arg = |i: usize| -> DfResult<&ArrayRef> {
            args.get(i).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_FUNCTION,
                    format!("{}: missing argument", self.name),
                )
                .into()
            })
        };
        match &self.kind {
            Kind::Elements(kind, element) => {
                let a = arg(0)?;
                let (offsets, values, nulls) = match a.data_type() {
                    DataType::List(_) => {
                        let list = a.as_list::<i32>();
                        (list.offsets().clone(), list.values(), list.nulls())
                    }
                    DataType::Null => {
                        return Ok(datafusion::arrow::array::new_null_array(
                            &DataType::List(element.clone()),
                            rows,
                        ))
                    }
                    other => return Err(cannot_cast(other, "numeric[]").into()),
                };
                let inner = NumericFunction {
                    kind: (**kind).clone(),
                    name: self.name.clone(),
                    signature: self.signature.clone(),
                };
                // Only the elements the offsets reach (a sliced list holds more).
                let first = offsets.first().copied().unwrap_or(0) as usize;
                let last = offsets.last().copied().unwrap_or(0) as usize;
                let reached = values.slice(first, last - first);
                let converted = inner.compute(&[reached], last - first)?;
                let offsets = OffsetBuffer::new(
                    offsets
                        .iter()
                        .map(|o| o - first as i32)
                        .collect::<Vec<_>>()
                        .into(),
                );
                Ok(Arc::new(ListArray::try_new(
                    element.clone(),
                    offsets,
                    converted,
                    nulls.cloned(),
                )?))
            }
            Kind::Arith(op) => {
                let (a, b) = (arg(0)?, arg(1)?);
                if let Some(keys) = fixed_arith(*op, a, b, rows)? {
                    return Ok(keys);
                }
                keys_array(rows, |row| {
                    let (Some(x), Some(y)) = (value_at(a, row)?, value_at(b, row)?) else {
                        return Ok(None);
                    };
                    let result = match op {
                        ArithOp::Add => x.add(&y),
                        ArithOp::Sub => x.sub(&y),
                        ArithOp::Mul => x.mul(&y),
                        ArithOp::Div => x.div(&y),
                        ArithOp::Mod => x.rem(&y),
                    };
                    Ok(Some(result?))
                })
            }
            Kind::Compare(op) => {
                let (a, b) = (arg(0)?, arg(1)?);
                let mut builder = BooleanBuilder::with_capacity(rows);
                for row in 0..rows {
                    match (key_at(a, row)?, key_at(b, row)?) {
                        (Some(x), Some(y)) => {
                            let ordering = compare_keys(&x, &y);
                            builder.append_value(match op {
                                CmpOp::Eq => ordering.is_eq(),
                                CmpOp::NotEq => ordering.is_ne(),
                                CmpOp::Lt => ordering.is_lt(),
                                CmpOp::LtEq => ordering.is_le(),
                                CmpOp::Gt => ordering.is_gt(),
                                CmpOp::GtEq => ordering.is_ge(),
                            });
                        }
                        _ => builder.append_null(),
                    }
                }
                Ok(Arc::new(builder.finish()))
            }
            Kind::Unary(op) => {
                let a = arg(0)?;
                let scale_arg = args.get(1);
                keys_array(rows, |row| {
                    let Some(x) = value_at(a, row)? else {
                        return Ok(None);
                    };
                    // The second argument: round's and trunc's scale, power's exponent.
                    let second = match scale_arg {
                        None => None,
                        Some(s) => match value_at(s, row)? {
                            None => return Ok(None),
                            Some(s) => Some(s),
                        },
                    };
                    let scale = match (&second, op) {
                        (Some(s), UnaryOp::Round | UnaryOp::Trunc) => s.to_i64("integer")?,
                        _ => 0,
                    };
                    let result = match op {
                        UnaryOp::Neg => x.neg(),
                        UnaryOp::Abs => x.abs(),
                        UnaryOp::Ceil => x.ceil()?,
                        UnaryOp::Floor => x.floor()?,
                        UnaryOp::Sign => x.sign(),
                        UnaryOp::Round => x.round(scale)?,
                        UnaryOp::Trunc => x.trunc(scale)?,
                        UnaryOp::Sqrt => x.sqrt()?,
                        UnaryOp::Ln => x.ln()?,
                        UnaryOp::Exp => x.exp()?,
                        // log(b, x): the first argument is the base.
                        UnaryOp::Log => match &second {
                            Some(y) => Numeric::log(&x, y)?,
                            None => Numeric::log(&Numeric::from_i64(10), &x)?,
                        },
                        UnaryOp::Power => match &second {
                            Some(e) => x.pow(e)?,
                            None => return Ok(None),
                        },
                    };
                    Ok(Some(result))
                })
            }
            Kind::ToNumeric(typmod) => {
                let a = arg(0)?;
                keys_array(rows, |row| {
                    let Some(x) = value_at(a, row)? else {
                        return Ok(None);
                    };
                    Ok(Some(match typmod {
                        Some((p, s)) => x.apply_typmod(*p, *s)?,
                        None => x,
                    }))
                })
            }
            Kind::ToDecimal(p, s) => to_decimal(arg(0)?, *p, *s, rows),
            Kind::FromNumeric(target) => from_numeric(arg(0)?, target.data_type(), rows),
            Kind::DivTrunc => {
                let (a, b) = (arg(0)?, arg(1)?);
                keys_array(rows, |row| {
                    let (Some(x), Some(y)) = (value_at(a, row)?, value_at(b, row)?) else {
                        return Ok(None);
                    };
                    Ok(Some(x.div_trunc(&y)?))
                })
            }
            Kind::TrimScale => {
                let a = arg(0)?;
                keys_array(rows, |row| {
                    value_at(a, row)?
                        .map(|x| x.trim_scale())
                        .transpose()
                        .map_err(Into::into)
                })
            }
            Kind::Scale(minimal) => {
                let a = arg(0)?;
                let mut builder = Int32Builder::with_capacity(rows);
                for row in 0..rows {
                    let scale = value_at(a, row)?.and_then(|x| match (minimal, &x) {
                        (true, _) => x.min_scale(),
                        (false, Numeric::Finite { scale, .. }) => Some(*scale),
                        (false, _) => None,
                    });
                    builder.append_option(scale.map(|s| s as i32));
                }
                Ok(Arc::new(builder.finish()))
            }
            Kind::Identity => {
                let a = arg(0)?;
                let mut builder = BinaryBuilder::with_capacity(rows, rows * 8);
                for row in 0..rows {
                    match key_at(a, row)? {
                        Some(key) => builder.append_value(value_part(&key)),
                        None => builder.append_null(),
                    }
                }
                Ok(Arc::new(builder.finish()))
            }
        }
    }
}

/// Values of any numeric-like type as `Decimal128(p, s)`, rounded and checked like a
/// `numeric(p, s)` typmod.
fn to_decimal(array: &ArrayRef, p: u8, s: i8, rows: usize) -> DfResult<ArrayRef> {
    let mut builder = Decimal128Builder::with_capacity(rows).with_precision_and_scale(p, s)?;
    let scale = s.max(0) as u32;
    for row in 0..rows {
        match value_at(array, row)? {
            None => builder.append_null(),
            Some(x) => {
                let fitted = x.apply_typmod(p as u32, scale)?;
                builder.append_value(fitted.to_i128_at(p as u32, scale)?);
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// `array` converted to `target` when a numeric is on either side (wide numerics, `Decimal128`
/// targets), as the casts of SQL do; for values that reach storage outside a plan (parameters).
pub fn convert(array: &ArrayRef, target: &DataType) -> DfResult<ArrayRef> {
    match target {
        DataType::Decimal128(p, s) => to_decimal(array, *p, *s, array.len()),
        other => from_numeric(array, other, array.len()),
    }
}

/// A numeric array converted to `target` as PostgreSQL's casts do.
fn from_numeric(array: &ArrayRef, target: &DataType, rows: usize) -> DfResult<ArrayRef> {
    macro_rules! integers {
        ($builder:ty, $native:ty, $name:literal) => {{
            let mut builder = <$builder>::with_capacity(rows);
            for row in 0..rows {
                match value_at(array, row)? {
                    None => builder.append_null(),
                    Some(v) => builder.append_value(
                        <$native>::try_from(v.to_i64($name)?)
                            .map_err(|_| NumericError::OutOfRange($name))?,
                    ),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    macro_rules! texts {
        ($builder:ty) => {{
            let mut builder = <$builder>::new();
            for row in 0..rows {
                match value_at(array, row)? {
                    None => builder.append_null(),
                    Some(v) => builder.append_value(v.to_text()),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match target {
        DataType::Int16 => integers!(Int16Builder, i16, "smallint"),
        DataType::Int32 => integers!(Int32Builder, i32, "integer"),
        DataType::Int64 => integers!(Int64Builder, i64, "bigint"),
        DataType::Float64 => {
            let mut builder = Float64Builder::with_capacity(rows);
            for row in 0..rows {
                match value_at(array, row)? {
                    None => builder.append_null(),
                    Some(v) => builder.append_value(v.to_f64()?),
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Float32 => {
            let mut builder = Float32Builder::with_capacity(rows);
            for row in 0..rows {
                match value_at(array, row)? {
                    None => builder.append_null(),
                    Some(v) => {
                        let f = v.to_f64()?;
                        if f.is_finite() && (f as f32).is_infinite() {
                            return Err(
                                NumericError::OutOfRange("value out of range: overflow").into()
                            );
                        }
                        builder.append_value(f as f32)
                    }
                }
            }
            Arc::new(builder.finish())
        }
        DataType::Utf8 => texts!(StringBuilder),
        DataType::LargeUtf8 => texts!(LargeStringBuilder),
        DataType::Utf8View => texts!(StringViewBuilder),
        DataType::LargeBinary => keys_array(rows, |row| value_at(array, row))?,
        other => {
            return Err(SqlError::new(
                "42846",
                format!(
                    "cannot cast type numeric to {}",
                    crate::types::SqlType::from_arrow(other).name()
                ),
            )
            .into())
        }
    })
}

impl ScalarUDFImpl for NumericFunction {
    /// PostgreSQL's numeric operators and casts are strict.
    fn is_strict(&self) -> bool {
        !matches!(self.kind, Kind::Elements(..))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.return_field_of().data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(self.return_field_of())
    }

    /// Strict: NULL with a NULL constant operand (folded, as PostgreSQL).
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        match self.kind {
            Kind::Compare(_) => crate::null_conditions::strict(args, Ok(DataType::Boolean)),
            // PostgreSQL folds `NULL::numeric * x` to NULL without evaluating `x`.
            Kind::Elements(..) | Kind::Identity => Ok(ExprSimplifyResult::Original(args)),
            _ => crate::null_conditions::strict_field(args, &self.return_field_of()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let result = self.compute(&arrays, rows)?;
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// PostgreSQL's numeric-only functions `div`, `scale`, `min_scale` and `trim_scale` (integers
/// and decimals convert to numeric, as in PostgreSQL).
pub(crate) fn numeric_only() -> Vec<ScalarUDF> {
    [
        Kind::DivTrunc,
        Kind::Scale(false),
        Kind::Scale(true),
        Kind::TrimScale,
    ]
    .into_iter()
    .map(|kind| Arc::unwrap_or_clone(udf(kind)))
    .chain([ScalarUDF::new_from_impl(TypmodCast {
        signature: Signature::any(3, Volatility::Immutable),
    })])
    .collect()
}

/// The name of [`TypmodCast`], which statements' `CAST(x AS numeric(p, s))` become.
pub const TYPMOD_CAST: &str = "floe_numeric_typmod";

/// `floe_numeric_typmod(x, p, s)`: a statement's `CAST(x AS numeric(p, s))` with `p ≤ 38`
/// of a column or expression. An exact number (integers, decimals: never NaN) becomes a
/// `Decimal128(p, s)`, as the cast always did; a float, text or numeric, which may be NaN
/// (which PostgreSQL's `numeric(p, s)` holds), becomes a wide numeric with the typmod. Both
/// round and check like PostgreSQL's typmod.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TypmodCast {
    signature: Signature,
}

impl TypmodCast {
    fn fixed(source: &DataType) -> bool {
        source == &DataType::Null || (converts_to_numeric(source) && !is_numeric_field_type(source))
    }

    /// `(p, s)` from the literal arguments.
    fn typmod(args: &[Option<&ScalarValue>]) -> DfResult<(u8, i8)> {
        let number = |i: usize| match args.get(i).copied().flatten() {
            Some(ScalarValue::Int64(Some(v))) => Some(*v),
            Some(ScalarValue::Int32(Some(v))) => Some(i64::from(*v)),
            _ => None,
        };
        match (number(1), number(2)) {
            (Some(p), Some(s)) if (1..=38).contains(&p) && (0..=p).contains(&s) => {
                Ok((p as u8, s as i8))
            }
            _ => Err(SqlError::internal(format!("{TYPMOD_CAST}: bad typmod arguments")).into()),
        }
    }
}

impl ScalarUDFImpl for TypmodCast {
    fn name(&self) -> &str {
        TYPMOD_CAST
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(SqlError::internal(format!("{TYPMOD_CAST}: return_field_from_args")).into())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let (p, s) = Self::typmod(args.scalar_arguments)?;
        let source = args.arg_fields.first().map(|f| f.data_type().clone());
        // Without typmod metadata: DataFusion refuses a VALUES list whose rows' fields differ
        // in metadata (a cast row next to a literal row).
        Ok(Arc::new(match source {
            Some(source) if !Self::fixed(&source) => numeric_field("", None),
            _ => Field::new("", DataType::Decimal128(p, s), true),
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let target = args.return_field.data_type().clone();
        let value = args
            .args
            .first()
            .ok_or_else(|| SqlError::internal(format!("{TYPMOD_CAST}: no argument")))?;
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let array = value.to_array(if scalar { 1 } else { rows })?;
        let scalars: Vec<Option<&ScalarValue>> = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(v) => Some(v),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let (p, s) = Self::typmod(&scalars)?;
        let result = match &target {
            DataType::Decimal128(..) => to_decimal(&array, p, s, array.len())?,
            _ => keys_array(array.len(), |row| {
                value_at(&array, row)?
                    .map(|x| x.apply_typmod(p as u32, s as u32))
                    .transpose()
                    .map_err(Into::into)
            })?,
        };
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        })
    }
}

/// Whether values of `data_type` convert to numeric implicitly in PostgreSQL (integers and
/// numerics; text literals are `unknown` and convert too).
pub(crate) fn converts_to_numeric(data_type: &DataType) -> bool {
    is_numeric_field_type(data_type)
        || matches!(
            data_type,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::Null
        )
}

/// The name unary minus is planned as (see `crate::rewrite`).
pub(crate) const NEGATE: &str = "floe_negate";

/// `floe_negate(x)`: `-x` for numerics, and for every other type DataFusion's unary minus
/// takes (integers overflow-checked like [`crate::arithmetic`], floats, intervals).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Negate {
    signature: Signature,
}

/// The unary minus function.
pub(crate) fn negate_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Negate {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for Negate {
    fn name(&self) -> &str {
        NEGATE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types.first() {
            Some(DataType::Null) | None => Ok(DataType::Null),
            Some(t) if t.is_signed_integer() || t.is_floating() => Ok(t.clone()),
            Some(
                t @ (DataType::Decimal128(..)
                | DataType::Decimal256(..)
                | DataType::LargeBinary
                | DataType::Interval(_)
                | DataType::Duration(_)),
            ) => Ok(t.clone()),
            Some(other) => Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "operator does not exist: - {}",
                    crate::types::SqlType::from_arrow(other).name()
                ),
            )
            .into()),
        }
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let data_type = self.return_type(&types)?;
        Ok(match args.arg_fields.first() {
            Some(field) if field.data_type() == &data_type => {
                Arc::new(field.as_ref().clone().with_name(""))
            }
            _ => Arc::new(Field::new("", data_type, true)),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let Some(arg) = args.args.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Null));
        };
        let array = arg.to_array(rows)?;
        let result = match array.data_type() {
            DataType::Null => array,
            DataType::LargeBinary => {
                keys_array(rows, |row| Ok(value_at(&array, row)?.map(|v| v.neg())))?
            }
            // A negated NaN keeps no sign: PostgreSQL's NaN is above every number.
            data_type => crate::arithmetic::canonical_nan(
                datafusion::arrow::compute::kernels::numeric::neg(array.as_ref())
                    .map_err(|e| crate::arithmetic::overflow_error(e, data_type))?,
            ),
        };
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// The scale of a value of an integer or decimal type (text, read at its written scale, below
/// all).
fn scale_of(data_type: &DataType) -> i16 {
    match data_type {
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => i16::from(*s),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => -1,
        _ => 0,
    }
}

/// A DataFusion function (`inner`) overloaded for numeric arguments: calls that
/// [`Overload::takes`] are computed by Floe, every other call goes to `inner` unchanged.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Overload {
    inner: Arc<ScalarUDF>,
    numeric: Numerics,
    signature: Signature,
}

/// What an [`Overload`] computes for numeric arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Numerics {
    /// `round`, `trunc`, `abs`, `ceil`, `floor`, `signum`/`sign`, `sqrt`: numeric arguments (wide,
    /// or `Decimal128` but for `abs`, which DataFusion gets right).
    Unary(UnaryOp, NumericFunction),
    /// `coalesce`, `nullif`, `greatest`, `least` with a wide numeric argument and the others
    /// numeric-like (integers, decimals, text literals, NULL): PostgreSQL resolves them all to
    /// `numeric`, which DataFusion's coercion cannot. Computed on values, so
    /// `nullif(1.5, 1.50)` is NULL.
    Conditional,
}

fn overload(inner: Arc<ScalarUDF>, numeric: Numerics) -> ScalarUDF {
    ScalarUDF::new_from_impl(Overload {
        inner,
        numeric,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// The overloads of DataFusion's math functions `functions` (by name) for numeric arguments.
pub(crate) fn overloads(functions: impl IntoIterator<Item = Arc<ScalarUDF>>) -> Vec<ScalarUDF> {
    functions
        .into_iter()
        .filter_map(|inner| {
            let op = match inner.name() {
                "round" => UnaryOp::Round,
                "trunc" => UnaryOp::Trunc,
                "abs" => UnaryOp::Abs,
                "ceil" => UnaryOp::Ceil,
                "floor" => UnaryOp::Floor,
                "signum" | "sign" => UnaryOp::Sign,
                "sqrt" => UnaryOp::Sqrt,
                "ln" => UnaryOp::Ln,
                "exp" => UnaryOp::Exp,
                "log" | "log10" => UnaryOp::Log,
                "power" => UnaryOp::Power,
                _ => return None,
            };
            let function = NumericFunction {
                kind: Kind::Unary(op),
                name: inner.name().to_string(),
                signature: Signature::variadic_any(Volatility::Immutable),
            };
            Some(overload(inner, Numerics::Unary(op, function)))
        })
        .collect()
}

/// The type tag (`floe.pg_type`, with a typmod only where all agree) the non-NULL arguments
/// of a conditional share, if they all carry the same one.
/// String literals are PostgreSQL's `unknown`, which takes the other arguments' type.
pub(crate) fn shared_type_tag(
    fields: &[FieldRef],
    literals: &[Option<&ScalarValue>],
) -> Option<std::collections::HashMap<String, String>> {
    use crate::types::{PG_TYPE_KEY, PG_TYPMOD_KEY};
    let typed: Vec<&FieldRef> = fields
        .iter()
        .enumerate()
        .filter(|(i, f)| {
            let unknown = match literals.get(*i) {
                Some(Some(ScalarValue::Utf8(_) | ScalarValue::Utf8View(_))) => true,
                Some(Some(value)) => value.is_null(),
                _ => false,
            };
            f.data_type() != &DataType::Null && !unknown
        })
        .map(|(_, f)| f)
        .collect();
    let first = typed.first()?;
    let tag = first.metadata().get(PG_TYPE_KEY)?;
    let string_tag = |f: &&FieldRef| {
        f.metadata()
            .get(PG_TYPE_KEY)
            .is_none_or(|t| t == "varchar" || t == "bpchar")
    };
    let all_strings = fields.iter().all(|f| {
        matches!(
            f.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
        )
    });
    // `array_agg` of a tagged type is a list whose field says `uuid[]`.
    let all_lists = tag.ends_with("[]")
        && fields.iter().all(|f| {
            matches!(
                f.data_type(),
                DataType::List(_) | DataType::LargeList(_) | DataType::Null
            )
        });
    // Of text, varchar and bpchar (each implicitly castable to the others) PostgreSQL's
    // common type is the first one's: `coalesce(varchar_col, text_col)` is varchar.
    let first_string_wins = all_strings && string_tag(first) && typed.iter().all(string_tag);
    if !(all_strings || all_lists)
        || !(first_string_wins
            || typed
                .iter()
                .all(|f| f.metadata().get(PG_TYPE_KEY) == Some(tag)))
    {
        return None;
    }
    let mut metadata = std::collections::HashMap::from([(PG_TYPE_KEY.to_string(), tag.clone())]);
    if let Some(typmod) = first.metadata().get(PG_TYPMOD_KEY) {
        if typed
            .iter()
            .all(|f| f.metadata().get(PG_TYPMOD_KEY) == Some(typmod))
        {
            metadata.insert(PG_TYPMOD_KEY.to_string(), typmod.clone());
        }
    }
    Some(metadata)
}

/// The numeric-aware versions of `functions` (by name: `coalesce`, `nullif`, `greatest`,
/// `least`).
pub(crate) fn conditionals(functions: impl IntoIterator<Item = Arc<ScalarUDF>>) -> Vec<ScalarUDF> {
    functions
        .into_iter()
        .filter(|f| matches!(f.name(), "coalesce" | "nullif" | "greatest" | "least"))
        .map(|inner| overload(inner, Numerics::Conditional))
        .collect()
}

impl Overload {
    fn takes(&self, arg_types: &[DataType]) -> bool {
        match &self.numeric {
            Numerics::Unary(op, _) => {
                if *op == UnaryOp::Power || (*op == UnaryOp::Log && arg_types.len() == 2) {
                    // power(numeric, numeric) and log(numeric, numeric) when a numeric meets
                    // integers or numerics (with a float, PostgreSQL picks double precision).
                    return arg_types.len() == 2
                        && arg_types.iter().all(|t| {
                            converts_to_numeric(t)
                                || matches!(t, DataType::Utf8 | DataType::Utf8View)
                        })
                        && arg_types.iter().any(|t| {
                            is_numeric_field_type(t)
                                || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
                        });
                }
                let Some(first) = arg_types.first() else {
                    return false;
                };
                let arity = match op {
                    UnaryOp::Round | UnaryOp::Trunc => (1..=2).contains(&arg_types.len()),
                    _ => arg_types.len() == 1,
                };
                let numeric = is_numeric_field_type(first)
                    || (matches!(first, DataType::Decimal128(..) | DataType::Decimal256(..))
                        && *op != UnaryOp::Abs);
                arity && numeric
            }
            // `nullif` is its first argument, which DataFusion would rescale to the larger
            // scale of the two (`nullif(1.5, numeric(20,6))` printed `1.500000`).
            Numerics::Conditional if super::mixes_scales(arg_types) => {
                self.inner.name() != "nullif"
                    || arg_types.first().map(scale_of) < arg_types.iter().map(scale_of).max()
            }
            Numerics::Conditional => {
                arg_types.iter().any(is_numeric_field_type)
                    && arg_types.iter().all(|t| {
                        converts_to_numeric(t)
                            || t.is_floating()
                            || matches!(t, DataType::Utf8 | DataType::Utf8View)
                    })
            }
        }
    }

    /// The result type of a call this overload takes: `double precision` when a `numeric`
    /// meets a float (as PostgreSQL resolves them), else `numeric`.
    fn result_type(&self, arg_types: &[DataType]) -> DataType {
        match self.numeric {
            Numerics::Conditional if arg_types.iter().any(DataType::is_floating) => {
                DataType::Float64
            }
            _ => DataType::LargeBinary,
        }
    }

    fn arg_types(fields: &[FieldRef]) -> Vec<DataType> {
        fields.iter().map(|f| f.data_type().clone()).collect()
    }

    /// `coalesce`, `nullif`, `greatest` or `least` of numeric-like arguments.
    fn conditional(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        if self.result_type(&Self::arg_types(&args.arg_fields)) == DataType::Float64 {
            let floats = arrays
                .iter()
                .map(|a| {
                    if a.data_type().is_floating() {
                        Ok(datafusion::arrow::compute::cast(a, &DataType::Float64)?)
                    } else {
                        from_numeric(a, &DataType::Float64, rows)
                    }
                })
                .collect::<DfResult<Vec<_>>>()?;
            let mut builder = Float64Builder::with_capacity(rows);
            for row in 0..rows {
                let values: Vec<Option<f64>> = floats
                    .iter()
                    .map(|a| {
                        let a = a.as_primitive::<Float64Type>();
                        a.is_valid(row).then(|| a.value(row))
                    })
                    .collect();
                let chosen = match self.inner.name() {
                    "coalesce" => values.into_iter().flatten().next(),
                    "nullif" => match values.as_slice() {
                        [Some(a), Some(b)] if a == b => None,
                        [a, _] => *a,
                        _ => None,
                    },
                    "greatest" => values.into_iter().flatten().reduce(|a, b| {
                        if b.total_cmp(&a).is_gt() {
                            b
                        } else {
                            a
                        }
                    }),
                    _ => values.into_iter().flatten().reduce(|a, b| {
                        if b.total_cmp(&a).is_lt() {
                            b
                        } else {
                            a
                        }
                    }),
                };
                builder.append_option(chosen);
            }
            let result: ArrayRef = Arc::new(builder.finish());
            if all_scalar {
                return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &result, 0,
                )?));
            }
            return Ok(ColumnarValue::Array(result));
        }
        let mut builder = LargeBinaryBuilder::with_capacity(rows, rows * 12);
        for row in 0..rows {
            let keys = arrays
                .iter()
                .map(|a| key_at(a, row))
                .collect::<DfResult<Vec<_>>>()?;
            let chosen = match self.inner.name() {
                "coalesce" => keys.into_iter().flatten().next(),
                "nullif" => match keys.as_slice() {
                    [Some(a), Some(b)] if compare_keys(a, b).is_eq() => None,
                    [a, _] => a.clone(),
                    _ => None,
                },
                "greatest" => keys.into_iter().flatten().reduce(|a, b| {
                    if compare_keys(&b, &a).is_gt() {
                        b
                    } else {
                        a
                    }
                }),
                _ => keys.into_iter().flatten().reduce(|a, b| {
                    if compare_keys(&b, &a).is_lt() {
                        b
                    } else {
                        a
                    }
                }),
            };
            match chosen {
                Some(key) => builder.append_value(key),
                None => builder.append_null(),
            }
        }
        let result: ArrayRef = Arc::new(builder.finish());
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

impl ScalarUDFImpl for Overload {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if self.takes(arg_types) {
            return Ok(arg_types.to_vec());
        }
        super::coerce_like(arg_types, self.inner.as_ref())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if self.takes(arg_types) {
            return Ok(self.result_type(arg_types));
        }
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types = Self::arg_types(args.arg_fields);
        if self.takes(&types) {
            return Ok(match self.result_type(&types) {
                DataType::LargeBinary => Arc::new(numeric_field("", None)),
                other => Arc::new(Field::new("", other, true)),
            });
        }
        let shared = match self.numeric {
            // `nullif(a, b)` is of the type `a` is compared as: its own (uuid, bpchar, …), text
            // for varchar (which compares as text) and a string literal.
            Numerics::Conditional if self.inner.name() == "nullif" => {
                let literal = matches!(args.scalar_arguments.first(), Some(Some(_)));
                args.arg_fields
                    .first()
                    .filter(|f| {
                        let tag = f.metadata().get(crate::types::PG_TYPE_KEY);
                        !literal && tag.is_some_and(|t| t != "varchar")
                    })
                    .map(|f| f.metadata().clone())
            }
            Numerics::Conditional => shared_type_tag(args.arg_fields, args.scalar_arguments),
            Numerics::Unary(..) => None,
        };
        let field = self.inner.return_field_from_args(args)?;
        Ok(match shared {
            // uuid, jsonb, varchar, … are tagged Utf8 fields: the result is of their type
            // when every argument is (DataFusion's functions return a plain field).
            Some(tag) if field.metadata().is_empty() => {
                Arc::new(field.as_ref().clone().with_metadata(tag))
            }
            _ => field,
        })
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let types = args
            .iter()
            .map(|a| info.get_data_type(a))
            .collect::<DfResult<Vec<_>>>();
        match types {
            Ok(types) if self.takes(&types) => {
                // `coalesce(1.5, x)` is its first argument that is a constant other than
                // NULL (the rest is never evaluated, as in PostgreSQL: this overload
                // evaluates its arguments before it is called).
                let result = self.result_type(&types);
                if self.inner.name() == "coalesce" {
                    let first = args
                        .iter()
                        .zip(&types)
                        .find(|(a, _)| !matches!(a, Expr::Literal(v, _) if v.is_null()));
                    if let Some((Expr::Literal(..), t)) = first {
                        if *t == result {
                            let literal = first.map(|(a, _)| a.clone()).expect("found");
                            return Ok(ExprSimplifyResult::Simplified(literal));
                        }
                    }
                }
                Ok(ExprSimplifyResult::Original(args))
            }
            _ => self.inner.simplify(args, info),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if !self.takes(&Self::arg_types(&args.arg_fields)) {
            return self.inner.invoke_with_args(args);
        }
        match &self.numeric {
            Numerics::Unary(_, function) => function.invoke_with_args(args),
            Numerics::Conditional => self.conditional(args),
        }
    }
}

//! One PostgreSQL `numeric` value and its three byte forms.
//!
//! A [`Numeric`] is NaN, ±Infinity or a finite `mantissa × 10^-scale`, where `scale` is the
//! value's *display scale* (PostgreSQL's `dscale`: `1.50` has scale 2, `1.5` scale 1). The
//! arithmetic follows `numeric.c`: the result scale of each operation is PostgreSQL's, and
//! rounding is half away from zero.
//!
//! Forms:
//! - text (`numeric_in` / `numeric_out`);
//! - the *key*: how Floe holds a value in an Arrow `LargeBinary` array. Its bytes sort like the
//!   values (-Infinity < finite < +Infinity < NaN), so Arrow's sort, min and max need no
//!   decoding; the display scale comes last, after a prefix that is already unique per value,
//!   so two keys of equal values differ only in their last [`SCALE_BYTES`] bytes
//!   ([`compare_keys`] ignores them);
//! - PostgreSQL's binary form (`numeric_send` / `numeric_recv`, base-10000 digits).
//!
//! Storage reads the key form too (`floe_storage::numeric_key`): primary and index keys hold
//! each value with its smallest display scale, so equal values are one key.

use std::cmp::Ordering;

use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};
use thiserror::Error;

use crate::error::{sqlstate, SqlError};

/// Decimal digits before the point PostgreSQL can hold.
pub const MAX_INTEGER_DIGITS: i64 = 131_072;
/// Decimal digits after the point PostgreSQL can hold (`NUMERIC_DSCALE_MAX`).
pub const MAX_SCALE: u32 = 16_383;
/// Largest result scale division picks by itself (`NUMERIC_MAX_DISPLAY_SCALE`).
const MAX_DISPLAY_SCALE: i64 = 1000;
/// Significant digits division keeps at least (`NUMERIC_MIN_SIG_DIGITS`).
const MIN_SIG_DIGITS: i64 = 16;
/// Largest scale `round`/`trunc` accept (`NUMERIC_MAX_RESULT_SCALE`).
const MAX_RESULT_SCALE: i64 = 2000;
/// Trailing bytes of a key that hold the display scale.
pub const SCALE_BYTES: usize = 2;

const TAG_NEG_INF: u8 = 0x01;
const TAG_NEG: u8 = 0x02;
const TAG_ZERO: u8 = 0x03;
const TAG_POS: u8 = 0x04;
const TAG_POS_INF: u8 = 0x05;
const TAG_NAN: u8 = 0x06;

/// What can go wrong with a numeric value, each with PostgreSQL's SQLSTATE and words.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NumericError {
    #[error("invalid input syntax for type numeric: \"{0}\"")]
    InvalidText(String),
    #[error("value overflows numeric format")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
    /// A value too wide for a `numeric(p, s)`; the DETAIL says why.
    #[error("numeric field overflow")]
    FieldOverflow(String),
    /// NaN converted to a `Decimal128(precision, scale)`, which cannot hold it. A statement
    /// that writes it into a `numeric(p, s)` column makes that column a wide numeric and runs
    /// again ([`nan_in_fixed`]); anywhere else this is 22003.
    #[error("numeric field overflow")]
    NaNInFixed { precision: u32, scale: u32 },
    /// A conversion to a narrower type (`integer`, `bigint`, …) out of its range.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    #[error("cannot convert {what} to {target}")]
    CannotConvert {
        what: &'static str,
        target: &'static str,
    },
    #[error("invalid binary numeric: {0}")]
    InvalidBinary(&'static str),
    #[error("cannot take square root of a negative number")]
    NegativeSqrt,
    #[error("zero raised to a negative power is undefined")]
    ZeroToNegativePower,
    #[error("a negative number raised to a non-integer power yields a complex result")]
    ComplexPower,
    #[error("cannot take logarithm of zero")]
    LogOfZero,
    #[error("cannot take logarithm of a negative number")]
    LogOfNegative,
    /// Key bytes that no value encodes to: a bug, never user input.
    #[error("corrupt numeric value")]
    Corrupt,
}

impl From<NumericError> for SqlError {
    fn from(err: NumericError) -> SqlError {
        let code = match &err {
            NumericError::InvalidText(_) => sqlstate::INVALID_TEXT_REPRESENTATION,
            NumericError::Overflow
            | NumericError::FieldOverflow(_)
            | NumericError::NaNInFixed { .. }
            | NumericError::OutOfRange(_) => sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            NumericError::DivisionByZero => sqlstate::DIVISION_BY_ZERO,
            NumericError::CannotConvert { .. } => sqlstate::FEATURE_NOT_SUPPORTED,
            NumericError::InvalidBinary(_) => sqlstate::INVALID_BINARY_REPRESENTATION,
            NumericError::NegativeSqrt
            | NumericError::ZeroToNegativePower
            | NumericError::ComplexPower => "2201F",
            NumericError::LogOfZero | NumericError::LogOfNegative => "2201E",
            NumericError::Corrupt => sqlstate::INTERNAL_ERROR,
        };
        let sql = SqlError::new(code, err.to_string());
        match err {
            NumericError::FieldOverflow(detail) => sql.with_detail(detail),
            NumericError::NaNInFixed { precision, scale } => {
                let mut sql = sql.with_detail(format!(
                    "A field with precision {precision}, scale {scale} cannot hold NaN in \
                     Floe's fixed-point form."
                ));
                // Decimal128 typmods: precision and scale at most 38.
                sql.nan_in_fixed = u8::try_from(precision).ok().zip(u8::try_from(scale).ok());
                sql
            }
            _ => sql,
        }
    }
}

/// The `(precision, scale)` of a [`NumericError::NaNInFixed`] that reached the client side
/// of DataFusion as a [`SqlError`].
pub fn nan_in_fixed(err: &SqlError) -> Option<(u32, u32)> {
    err.nan_in_fixed.map(|(p, s)| (p.into(), s.into()))
}

impl From<NumericError> for datafusion::error::DataFusionError {
    fn from(err: NumericError) -> Self {
        SqlError::from(err).into()
    }
}

/// Result of numeric operations.
pub type NumericResult<T> = Result<T, NumericError>;

/// A PostgreSQL `numeric` value. `PartialEq` compares representations (`1.5` ≠ `1.50`);
/// [`Numeric::cmp_value`] compares values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Numeric {
    NaN,
    Infinity,
    NegInfinity,
    /// `mantissa × 10^-scale`, `scale` being the display scale.
    Finite {
        mantissa: BigInt,
        scale: u32,
    },
}

fn pow10(n: u32) -> BigInt {
    BigInt::from(10u8).pow(n)
}

/// The number of decimal digits of `|m|` (1 for zero).
fn digit_count(m: &BigInt) -> i64 {
    if m.is_zero() {
        return 1;
    }
    // bits × log10(2) is within one of the answer; check near the boundary exactly.
    let estimate = (m.bits() as f64 * std::f64::consts::LOG10_2) as i64;
    let mut count = estimate.max(1);
    let magnitude = m.magnitude();
    while count > 1 && *magnitude < num_bigint::BigUint::from(10u8).pow((count - 1) as u32) {
        count -= 1;
    }
    while *magnitude >= num_bigint::BigUint::from(10u8).pow(count as u32) {
        count += 1;
    }
    count
}

impl Numeric {
    /// A finite value, checked against PostgreSQL's limits (22003 beyond them).
    pub fn finite(mantissa: BigInt, scale: u32) -> NumericResult<Numeric> {
        if scale > MAX_SCALE {
            return Err(NumericError::Overflow);
        }
        if !mantissa.is_zero() {
            // Cheap bound first: bits say how many digits there can be at most.
            let most = (mantissa.bits() as f64 * std::f64::consts::LOG10_2) as i64 + 1;
            if most - scale as i64 > MAX_INTEGER_DIGITS
                && digit_count(&mantissa) - scale as i64 > MAX_INTEGER_DIGITS
            {
                return Err(NumericError::Overflow);
            }
        }
        Ok(Numeric::Finite { mantissa, scale })
    }

    /// Zero with display scale 0.
    pub fn zero() -> Numeric {
        Numeric::Finite {
            mantissa: BigInt::zero(),
            scale: 0,
        }
    }

    /// An integer.
    pub fn from_i64(value: i64) -> Numeric {
        Numeric::Finite {
            mantissa: BigInt::from(value),
            scale: 0,
        }
    }

    /// A fixed-point decimal `value × 10^-scale` (Arrow's Decimal128; a negative scale means
    /// trailing zeros, which become integer digits).
    pub fn from_decimal(value: BigInt, scale: i32) -> NumericResult<Numeric> {
        if scale >= 0 {
            Numeric::finite(value, scale as u32)
        } else {
            Numeric::finite(value * pow10(scale.unsigned_abs()), 0)
        }
    }

    /// A float as PostgreSQL converts it (`float8_numeric`): rounded to `digits` significant
    /// digits (15 for float8, 6 for float4), trailing zeros dropped.
    pub fn from_f64(value: f64, digits: usize) -> NumericResult<Numeric> {
        if value.is_nan() {
            return Ok(Numeric::NaN);
        }
        if value.is_infinite() {
            return Ok(if value > 0.0 {
                Numeric::Infinity
            } else {
                Numeric::NegInfinity
            });
        }
        // `d.ddddde±x` with `digits` significant digits.
        let text = format!("{:.*e}", digits.saturating_sub(1), value);
        let (mantissa_text, exponent) = text.split_once('e').ok_or(NumericError::Corrupt)?;
        let exponent: i64 = exponent.parse().map_err(|_| NumericError::Corrupt)?;
        let negative = mantissa_text.starts_with('-');
        let significant: String = mantissa_text.chars().filter(char::is_ascii_digit).collect();
        let significant = significant.trim_end_matches('0');
        if significant.is_empty() {
            return Ok(Numeric::zero());
        }
        // value = 0.d1d2… × 10^(exponent + 1)
        let n = significant.len() as i64;
        let scale = (n - 1 - exponent).max(0);
        let mut mantissa =
            BigInt::parse_bytes(significant.as_bytes(), 10).ok_or(NumericError::Corrupt)?;
        let shift = scale - (n - 1 - exponent);
        mantissa *= pow10(shift as u32);
        if negative {
            mantissa = -mantissa;
        }
        Numeric::finite(mantissa, scale as u32)
    }

    /// PostgreSQL's text input: `-12.50`, `.5`, `1e-3`, `NaN`, `Infinity`, `-inf`, with
    /// surrounding spaces.
    pub fn parse(text: &str) -> NumericResult<Numeric> {
        let invalid = || NumericError::InvalidText(text.to_string());
        let trimmed = text.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "nan" => return Ok(Numeric::NaN),
            "infinity" | "+infinity" | "inf" | "+inf" => return Ok(Numeric::Infinity),
            "-infinity" | "-inf" => return Ok(Numeric::NegInfinity),
            _ => {}
        }
        let bytes = trimmed.as_bytes();
        let (negative, rest) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            Some(b'+') => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let mut digits = Vec::with_capacity(rest.len());
        let mut fraction_digits: i64 = 0;
        let mut seen_point = false;
        let mut at = 0;
        while at < rest.len() {
            match rest[at] {
                c @ b'0'..=b'9' => {
                    digits.push(c);
                    if seen_point {
                        fraction_digits += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                _ => break,
            }
            at += 1;
        }
        if digits.is_empty() {
            return Err(invalid());
        }
        let mut exponent: i64 = 0;
        if at < rest.len() {
            if !matches!(rest[at], b'e' | b'E') {
                return Err(invalid());
            }
            let exp_text = std::str::from_utf8(&rest[at + 1..]).map_err(|_| invalid())?;
            let exp_digits = exp_text.trim_start_matches(['+', '-']);
            if exp_digits.is_empty()
                || exp_text.len() - exp_digits.len() > 1
                || !exp_digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid());
            }
            // Anything longer than a few digits is out of range anyway.
            if exp_digits.len() > 9 {
                return Err(NumericError::Overflow);
            }
            exponent = exp_text.parse().map_err(|_| invalid())?;
            // Beyond the limits whatever the digits (checked before scaling by 10^exponent).
            if exponent > MAX_INTEGER_DIGITS + 1 || fraction_digits - exponent > MAX_SCALE as i64 {
                if digits.iter().all(|d| *d == b'0') && exponent > 0 {
                    exponent = 0;
                } else {
                    return Err(NumericError::Overflow);
                }
            }
        }
        let mut mantissa = BigInt::parse_bytes(&digits, 10).ok_or_else(invalid)?;
        let mut scale = fraction_digits - exponent;
        if scale < 0 {
            mantissa *= pow10(scale.unsigned_abs() as u32);
            scale = 0;
        }
        if negative {
            mantissa = -mantissa;
        }
        let scale = u32::try_from(scale).map_err(|_| NumericError::Overflow)?;
        Numeric::finite(mantissa, scale)
    }

    /// PostgreSQL's text output: every digit of the display scale.
    pub fn to_text(&self) -> String {
        match self {
            Numeric::NaN => "NaN".into(),
            Numeric::Infinity => "Infinity".into(),
            Numeric::NegInfinity => "-Infinity".into(),
            Numeric::Finite { mantissa, scale } => {
                let scale = *scale as usize;
                let digits = mantissa.magnitude().to_string();
                let digits = format!("{digits:0>width$}", width = scale + 1);
                let (whole, fraction) = digits.split_at(digits.len() - scale);
                let mut out = String::with_capacity(digits.len() + 2);
                if mantissa.sign() == Sign::Minus {
                    out.push('-');
                }
                out.push_str(whole);
                if scale > 0 {
                    out.push('.');
                    out.push_str(fraction);
                }
                out
            }
        }
    }

    /// Whether the value is NaN.
    pub fn is_nan(&self) -> bool {
        matches!(self, Numeric::NaN)
    }

    /// Whether the value is neither NaN nor infinite.
    pub fn is_finite(&self) -> bool {
        matches!(self, Numeric::Finite { .. })
    }

    /// -1, 0 or 1 for finite values and infinities (NaN: 0).
    fn signum(&self) -> i32 {
        match self {
            Numeric::NaN => 0,
            Numeric::Infinity => 1,
            Numeric::NegInfinity => -1,
            Numeric::Finite { mantissa, .. } => match mantissa.sign() {
                Sign::Minus => -1,
                Sign::NoSign => 0,
                Sign::Plus => 1,
            },
        }
    }

    /// The display scale (0 for NaN and infinities).
    pub fn scale(&self) -> u32 {
        match self {
            Numeric::Finite { scale, .. } => *scale,
            _ => 0,
        }
    }

    // ---- the key form ----

    /// Appends the key bytes of the value (see the module doc).
    pub fn write_key(&self, out: &mut Vec<u8>) {
        match self {
            Numeric::NaN => {
                out.push(TAG_NAN);
                out.extend(0u16.to_be_bytes());
            }
            Numeric::Infinity => {
                out.push(TAG_POS_INF);
                out.extend(0u16.to_be_bytes());
            }
            Numeric::NegInfinity => {
                out.push(TAG_NEG_INF);
                out.extend(0u16.to_be_bytes());
            }
            Numeric::Finite { mantissa, scale } => write_finite_key(
                mantissa.sign() == Sign::Minus,
                &mantissa.magnitude().to_string(),
                *scale,
                out,
            ),
        }
    }

    /// The key bytes of the value.
    pub fn to_key(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        self.write_key(&mut out);
        out
    }

    /// The value whose key is `key`.
    pub fn from_key(key: &[u8]) -> NumericResult<Numeric> {
        if key.len() < 1 + SCALE_BYTES {
            return Err(NumericError::Corrupt);
        }
        let (body, scale_bytes) = key.split_at(key.len() - SCALE_BYTES);
        let scale = u16::from_be_bytes([scale_bytes[0], scale_bytes[1]]) as u32;
        let (tag, body) = (body[0], &body[1..]);
        let negative = match tag {
            TAG_NAN if body.is_empty() => return Ok(Numeric::NaN),
            TAG_POS_INF if body.is_empty() => return Ok(Numeric::Infinity),
            TAG_NEG_INF if body.is_empty() => return Ok(Numeric::NegInfinity),
            TAG_ZERO if body.is_empty() => {
                return Ok(Numeric::Finite {
                    mantissa: BigInt::zero(),
                    scale,
                })
            }
            TAG_POS => false,
            TAG_NEG => true,
            _ => return Err(NumericError::Corrupt),
        };
        let byte = |b: u8| if negative { !b } else { b };
        if body.len() < 5 || byte(body[body.len() - 1]) != 0 {
            return Err(NumericError::Corrupt);
        }
        let exponent =
            (u32::from_be_bytes([byte(body[0]), byte(body[1]), byte(body[2]), byte(body[3])])
                ^ 0x8000_0000) as i32 as i64;
        let pairs = &body[4..body.len() - 1];
        let mut digits = Vec::with_capacity(pairs.len() * 2);
        for &b in pairs {
            let pair = byte(b).checked_sub(1).ok_or(NumericError::Corrupt)?;
            if pair > 99 {
                return Err(NumericError::Corrupt);
            }
            digits.push(b'0' + pair / 10);
            digits.push(b'0' + pair % 10);
        }
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.is_empty() {
            return Err(NumericError::Corrupt);
        }
        let shift = exponent - digits.len() as i64 + scale as i64;
        if shift < 0 {
            return Err(NumericError::Corrupt);
        }
        let mut mantissa = BigInt::parse_bytes(&digits, 10).ok_or(NumericError::Corrupt)?;
        mantissa *= pow10(u32::try_from(shift).map_err(|_| NumericError::Corrupt)?);
        if negative {
            mantissa = -mantissa;
        }
        Ok(Numeric::Finite { mantissa, scale })
    }

    // ---- PostgreSQL's binary form ----

    /// `numeric_send`: ndigits, weight, sign, dscale (int16 each), then base-10000 digits.
    pub fn to_pg_binary(&self) -> Vec<u8> {
        let header = |ndigits: i16, weight: i16, sign: u16, dscale: i16| {
            let mut out = Vec::with_capacity(8);
            out.extend(ndigits.to_be_bytes());
            out.extend(weight.to_be_bytes());
            out.extend(sign.to_be_bytes());
            out.extend(dscale.to_be_bytes());
            out
        };
        let (mantissa, scale) = match self {
            Numeric::NaN => return header(0, 0, 0xC000, 0),
            Numeric::Infinity => return header(0, 0, 0xD000, 0),
            Numeric::NegInfinity => return header(0, 0, 0xF000, 0),
            Numeric::Finite { mantissa, scale } => (mantissa, *scale as usize),
        };
        let digits = mantissa.magnitude().to_string();
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        // Pad the integer part on the left and the fraction on the right to groups of four.
        let whole = format!("{}{whole}", "0".repeat((4 - whole.len() % 4) % 4));
        let fraction = format!("{fraction}{}", "0".repeat((4 - fraction.len() % 4) % 4));
        let group = |chunk: &[u8]| {
            chunk
                .iter()
                .fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16)
        };
        let mut groups: Vec<i16> = whole.as_bytes().chunks(4).map(group).collect();
        let mut weight = groups.len() as i64 - 1;
        groups.extend(fraction.as_bytes().chunks(4).map(group));
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= leading as i64;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        let sign = if mantissa.sign() == Sign::Minus {
            0x4000
        } else {
            0
        };
        let mut out = header(groups.len() as i16, weight as i16, sign, scale as i16);
        for g in groups {
            out.extend(g.to_be_bytes());
        }
        out
    }

    /// `numeric_recv`.
    pub fn from_pg_binary(raw: &[u8]) -> NumericResult<Numeric> {
        let word = |i: usize| -> NumericResult<i16> {
            raw.get(i * 2..i * 2 + 2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .ok_or(NumericError::InvalidBinary("numeric data too short"))
        };
        let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
        if ndigits < 0 || raw.len() != 8 + 2 * ndigits as usize {
            return Err(NumericError::InvalidBinary(
                "invalid length in external numeric",
            ));
        }
        let negative = match sign {
            0x0000 => false,
            0x4000 => true,
            0xC000 => return Ok(Numeric::NaN),
            0xD000 => return Ok(Numeric::Infinity),
            0xF000 => return Ok(Numeric::NegInfinity),
            _ => {
                return Err(NumericError::InvalidBinary(
                    "invalid sign in external numeric",
                ))
            }
        };
        if dscale < 0 || dscale as u32 > MAX_SCALE {
            return Err(NumericError::InvalidBinary(
                "invalid scale in external numeric",
            ));
        }
        let mut groups = BigInt::zero();
        for i in 0..ndigits as usize {
            let digit = word(4 + i)?;
            if !(0..10_000).contains(&digit) {
                return Err(NumericError::InvalidBinary(
                    "invalid digit in external numeric",
                ));
            }
            groups = groups * 10_000 + digit;
        }
        // groups × 10000^(weight - ndigits + 1), then rounded to dscale as numeric_recv does.
        let exponent = 4 * (weight as i64 - ndigits as i64 + 1);
        let exact = if exponent >= 0 {
            Numeric::finite(groups * pow10(exponent as u32), 0)?
        } else {
            Numeric::finite(groups, exponent.unsigned_abs() as u32)?
        };
        let rounded = exact.round(dscale as i64)?;
        Ok(if negative { rounded.neg() } else { rounded })
    }

    // ---- arithmetic ----

    /// Both mantissas at the larger scale.
    fn aligned(a: (&BigInt, u32), b: (&BigInt, u32)) -> (BigInt, BigInt, u32) {
        let scale = a.1.max(b.1);
        (a.0 * pow10(scale - a.1), b.0 * pow10(scale - b.1), scale)
    }

    /// `self + other`: scale is the larger input scale.
    pub fn add(&self, other: &Numeric) -> NumericResult<Numeric> {
        use Numeric::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => Ok(NaN),
            (Infinity, NegInfinity) | (NegInfinity, Infinity) => Ok(NaN),
            (Infinity, _) | (_, Infinity) => Ok(Infinity),
            (NegInfinity, _) | (_, NegInfinity) => Ok(NegInfinity),
            (
                Finite {
                    mantissa: a,
                    scale: sa,
                },
                Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) => {
                let (a, b, scale) = Numeric::aligned((a, *sa), (b, *sb));
                Numeric::finite(a + b, scale)
            }
        }
    }

    /// `self - other`.
    pub fn sub(&self, other: &Numeric) -> NumericResult<Numeric> {
        self.add(&other.neg())
    }

    /// `-self`.
    pub fn neg(&self) -> Numeric {
        match self {
            Numeric::NaN => Numeric::NaN,
            Numeric::Infinity => Numeric::NegInfinity,
            Numeric::NegInfinity => Numeric::Infinity,
            Numeric::Finite { mantissa, scale } => Numeric::Finite {
                mantissa: -mantissa,
                scale: *scale,
            },
        }
    }

    /// `abs(self)`.
    pub fn abs(&self) -> Numeric {
        match self {
            Numeric::NegInfinity => Numeric::Infinity,
            Numeric::Finite { mantissa, scale } => Numeric::Finite {
                mantissa: mantissa.abs(),
                scale: *scale,
            },
            other => other.clone(),
        }
    }

    /// `self * other`: scale is the sum of the input scales.
    pub fn mul(&self, other: &Numeric) -> NumericResult<Numeric> {
        use Numeric::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => Ok(NaN),
            (
                Finite {
                    mantissa: a,
                    scale: sa,
                },
                Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) => {
                let scale = sa + sb;
                if scale > MAX_SCALE {
                    // PostgreSQL rounds the product to the largest scale it can hold.
                    let exact = Numeric::Finite {
                        mantissa: a * b,
                        scale,
                    };
                    return exact.round(MAX_SCALE as i64);
                }
                Numeric::finite(a * b, scale)
            }
            _ => match self.signum() * other.signum() {
                0 => Ok(NaN),
                s if s > 0 => Ok(Infinity),
                _ => Ok(NegInfinity),
            },
        }
    }

    /// PostgreSQL's `select_div_scale`: at least 16 significant digits, and no less than
    /// either input's display scale.
    fn division_scale(a: &BigInt, sa: u32, b: &BigInt, sb: u32) -> u32 {
        let (wa, fa) = weight_and_first_group(a, sa);
        let (wb, fb) = weight_and_first_group(b, sb);
        let mut qweight = wa - wb;
        if fa <= fb {
            qweight -= 1;
        }
        let scale = (MIN_SIG_DIGITS - qweight * 4)
            .max(sa as i64)
            .max(sb as i64)
            .clamp(0, MAX_DISPLAY_SCALE);
        scale as u32
    }

    /// `self / other` with PostgreSQL's result scale; 22012 for a zero divisor.
    pub fn div(&self, other: &Numeric) -> NumericResult<Numeric> {
        use Numeric::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => Ok(NaN),
            (_, Finite { mantissa, .. }) if mantissa.is_zero() => Err(NumericError::DivisionByZero),
            (Infinity | NegInfinity, Infinity | NegInfinity) => Ok(NaN),
            (Infinity | NegInfinity, _) => Ok(if self.signum() * other.signum() > 0 {
                Infinity
            } else {
                NegInfinity
            }),
            (Finite { .. }, Infinity | NegInfinity) => Ok(Numeric::zero()),
            (
                Finite {
                    mantissa: a,
                    scale: sa,
                },
                Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) => {
                let scale = Numeric::division_scale(a, *sa, b, *sb);
                Numeric::finite(divide_rounded(a, *sa, b, *sb, scale), scale)
            }
        }
    }

    /// `div(self, other)`: the quotient truncated toward zero, scale 0.
    pub fn div_trunc(&self, other: &Numeric) -> NumericResult<Numeric> {
        match (self, other) {
            (
                Numeric::Finite {
                    mantissa: a,
                    scale: sa,
                },
                Numeric::Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) if !b.is_zero() => {
                // a·10^-sa / b·10^-sb = a·10^sb / b·10^sa
                Numeric::finite((a * pow10(*sb)) / (b * pow10(*sa)), 0)
            }
            // NaN, infinities and division by zero as `/` has them; a finite result truncated.
            _ => self.div(other)?.trunc(0),
        }
    }

    /// `min_scale(self)`: the fewest decimals that write the value exactly (`None` for NaN and
    /// the infinities).
    pub fn min_scale(&self) -> Option<u32> {
        let Numeric::Finite { mantissa, scale } = self else {
            return None;
        };
        if mantissa.is_zero() {
            return Some(0);
        }
        let digits = mantissa.magnitude().to_string();
        let zeros = digits.len() - digits.trim_end_matches('0').len();
        Some(scale.saturating_sub(zeros as u32))
    }

    /// `trim_scale(self)`: the value with [`Numeric::min_scale`] decimals.
    pub fn trim_scale(&self) -> NumericResult<Numeric> {
        match self.min_scale() {
            Some(scale) => self.trunc(scale as i64),
            None => Ok(self.clone()),
        }
    }

    /// `self % other` (the sign of the dividend); scale is the larger input scale.
    pub fn rem(&self, other: &Numeric) -> NumericResult<Numeric> {
        use Numeric::*;
        match (self, other) {
            (NaN, _) | (_, NaN) => Ok(NaN),
            (_, Finite { mantissa, .. }) if mantissa.is_zero() => Err(NumericError::DivisionByZero),
            (Infinity | NegInfinity, _) => Ok(NaN),
            (Finite { .. }, _) => match (self, other) {
                (
                    Finite {
                        mantissa: a,
                        scale: sa,
                    },
                    Finite {
                        mantissa: b,
                        scale: sb,
                    },
                ) => {
                    let (a, b, scale) = Numeric::aligned((a, *sa), (b, *sb));
                    Numeric::finite(a % b, scale)
                }
                _ => Ok(self.clone()),
            },
        }
    }

    /// `round(self, scale)`: half away from zero; a negative scale rounds left of the point.
    pub fn round(&self, scale: i64) -> NumericResult<Numeric> {
        self.rescale(scale, Rounding::HalfAway)
    }

    /// `trunc(self, scale)`.
    pub fn trunc(&self, scale: i64) -> NumericResult<Numeric> {
        self.rescale(scale, Rounding::TowardZero)
    }

    /// `ceil(self)`.
    pub fn ceil(&self) -> NumericResult<Numeric> {
        self.rescale(0, Rounding::Up)
    }

    /// `floor(self)`.
    pub fn floor(&self) -> NumericResult<Numeric> {
        self.rescale(0, Rounding::Down)
    }

    /// `sqrt(self)` as PostgreSQL's `numeric_sqrt`: at least 16 significant digits, never
    /// fewer decimals than the input's.
    pub fn sqrt(&self) -> NumericResult<Numeric> {
        let Numeric::Finite { mantissa, scale } = self else {
            return match self {
                Numeric::NegInfinity => Err(NumericError::NegativeSqrt),
                other => Ok(other.clone()),
            };
        };
        let (weight, _) = weight_and_first_group(mantissa, *scale);
        // sweight = (weight + 1) * DEC_DIGITS / 2 - 1
        let sweight = (weight + 1) * 4 / 2 - 1;
        let rscale = (MIN_SIG_DIGITS - sweight)
            .max(*scale as i64)
            .clamp(0, MAX_DISPLAY_SCALE);
        self.sqrt_at(rscale as u32)
    }

    /// The square root rounded half away from zero to `rscale` decimals (`sqrt_var`).
    pub fn sqrt_at(&self, rscale: u32) -> NumericResult<Numeric> {
        let Numeric::Finite { mantissa, scale } = self else {
            return match self {
                Numeric::NegInfinity => Err(NumericError::NegativeSqrt),
                other => Ok(other.clone()),
            };
        };
        if mantissa.sign() == Sign::Minus {
            return Err(NumericError::NegativeSqrt);
        }
        // floor(sqrt(m × 10^-s) × 10^k) = isqrt(m × 10^(2k - s)), one digit past rscale
        // (more when the input has more decimals than 2k), then rounded.
        let k = (rscale as i64 + 1).max((*scale as i64 + 1) / 2);
        let radicand = mantissa * pow10((2 * k - *scale as i64) as u32);
        let root = radicand.sqrt();
        let extra = pow10((k - rscale as i64) as u32);
        let (mut quotient, remainder) = root.div_rem(&extra);
        // The discarded digits are exact floor digits: at least half means round up.
        if remainder * 2u8 >= extra {
            quotient += BigInt::one();
        }
        Numeric::finite(quotient, rscale)
    }

    /// `sign(self)`: -1, 0 or 1 (NaN for NaN).
    pub fn sign(&self) -> Numeric {
        match self {
            Numeric::NaN => Numeric::NaN,
            other => Numeric::from_i64(other.signum() as i64),
        }
    }

    fn rescale(&self, scale: i64, rounding: Rounding) -> NumericResult<Numeric> {
        let Numeric::Finite {
            mantissa,
            scale: current,
        } = self
        else {
            return Ok(self.clone());
        };
        let target = scale.clamp(-MAX_RESULT_SCALE, MAX_RESULT_SCALE);
        let current_i = *current as i64;
        if target >= current_i {
            return Numeric::finite(mantissa * pow10((target - current_i) as u32), target as u32);
        }
        let divisor = pow10((current_i - target) as u32);
        let (mut quotient, remainder) = mantissa.div_rem(&divisor);
        if !remainder.is_zero() {
            let away = match rounding {
                Rounding::HalfAway => remainder.abs() * 2u8 >= divisor,
                Rounding::TowardZero => false,
                Rounding::Up => remainder.sign() == Sign::Plus,
                Rounding::Down => remainder.sign() == Sign::Minus,
            };
            if away {
                if remainder.sign() == Sign::Minus {
                    quotient -= 1;
                } else {
                    quotient += 1;
                }
            }
        }
        if target < 0 {
            Numeric::finite(quotient * pow10(target.unsigned_abs() as u32), 0)
        } else {
            Numeric::finite(quotient, target as u32)
        }
    }

    /// Value order: -Infinity < finite < +Infinity < NaN, NaN equal to NaN.
    pub fn cmp_value(&self, other: &Numeric) -> Ordering {
        fn rank(n: &Numeric) -> u8 {
            match n {
                Numeric::NegInfinity => 0,
                Numeric::Finite { .. } => 1,
                Numeric::Infinity => 2,
                Numeric::NaN => 3,
            }
        }
        match (self, other) {
            (
                Numeric::Finite {
                    mantissa: a,
                    scale: sa,
                },
                Numeric::Finite {
                    mantissa: b,
                    scale: sb,
                },
            ) => {
                let (a, b, _) = Numeric::aligned((a, *sa), (b, *sb));
                a.cmp(&b)
            }
            _ => rank(self).cmp(&rank(other)),
        }
    }

    // ---- conversions out ----

    /// The value rounded to an integer, if it fits `i64` (integer casts).
    pub fn to_i64(&self, target: &'static str) -> NumericResult<i64> {
        match self {
            Numeric::NaN => Err(NumericError::CannotConvert {
                what: "NaN",
                target,
            }),
            Numeric::Infinity | Numeric::NegInfinity => Err(NumericError::CannotConvert {
                what: "infinity",
                target,
            }),
            Numeric::Finite { .. } => match self.round(0)? {
                Numeric::Finite { mantissa, .. } => {
                    mantissa.to_i64().ok_or(NumericError::OutOfRange(target))
                }
                _ => Err(NumericError::Corrupt),
            },
        }
    }

    /// The nearest float (`numeric::float8`).
    pub fn to_f64(&self) -> NumericResult<f64> {
        match self {
            Numeric::NaN => Ok(f64::NAN),
            Numeric::Infinity => Ok(f64::INFINITY),
            Numeric::NegInfinity => Ok(f64::NEG_INFINITY),
            Numeric::Finite { .. } => {
                let value: f64 = self.to_text().parse().map_err(|_| NumericError::Corrupt)?;
                if value.is_infinite() {
                    return Err(NumericError::OutOfRange("value out of range: overflow"));
                }
                Ok(value)
            }
        }
    }

    /// The value rounded to `scale` digits and checked against `numeric(precision, scale)`
    /// (PostgreSQL's `apply_typmod`): 22003 "numeric field overflow" if it does not fit.
    pub fn apply_typmod(&self, precision: u32, scale: u32) -> NumericResult<Numeric> {
        match self {
            Numeric::NaN => Ok(Numeric::NaN),
            Numeric::Infinity | Numeric::NegInfinity => Err(NumericError::FieldOverflow(format!(
                "A field with precision {precision}, scale {scale} cannot hold an infinite value."
            ))),
            Numeric::Finite { .. } => {
                let rounded = self.round(scale as i64)?;
                if let Numeric::Finite { mantissa, .. } = &rounded {
                    let max_digits = precision as i64 - scale as i64;
                    if !mantissa.is_zero() && digit_count(mantissa) - scale as i64 > max_digits {
                        let limit = if max_digits > 0 {
                            format!("10^{max_digits}")
                        } else {
                            "1".into()
                        };
                        return Err(NumericError::FieldOverflow(format!(
                            "A field with precision {precision}, scale {scale} must round to an \
                             absolute value less than {limit}."
                        )));
                    }
                }
                Ok(rounded)
            }
        }
    }

    /// The mantissa at exactly `scale` digits, for a `Decimal128(p, scale)` after
    /// [`Numeric::apply_typmod`]; NaN does not fit a fixed-point decimal.
    pub fn to_i128_at(&self, precision: u32, scale: u32) -> NumericResult<i128> {
        match self {
            Numeric::Finite {
                mantissa,
                scale: current,
            } if *current == scale => mantissa
                .to_i128()
                .ok_or_else(|| NumericError::FieldOverflow(String::new())),
            Numeric::Finite { .. } => self.round(scale as i64)?.to_i128_at(precision, scale),
            _ => Err(NumericError::NaNInFixed { precision, scale }),
        }
    }
}

#[derive(Clone, Copy)]
enum Rounding {
    HalfAway,
    TowardZero,
    Up,
    Down,
}

/// The base-10000 weight and first (most significant) base-10000 digit of `m × 10^-scale`
/// as PostgreSQL's NumericVar holds it; (0, 0) for zero.
fn weight_and_first_group(m: &BigInt, scale: u32) -> (i64, i64) {
    if m.is_zero() {
        return (0, 0);
    }
    let digits = m.magnitude().to_string();
    // Power of ten of the leading digit.
    let lead = digits.len() as i64 - 1 - scale as i64;
    let weight = lead.div_euclid(4);
    let group_len = (lead - 4 * weight + 1) as usize;
    let taken = group_len.min(digits.len());
    let mut first: i64 = digits[..taken].parse().unwrap_or(0);
    for _ in taken..group_len {
        first *= 10;
    }
    (weight, first)
}

/// `(a × 10^-sa) / (b × 10^-sb)` rounded half away from zero to `scale` digits, as a mantissa.
fn divide_rounded(a: &BigInt, sa: u32, b: &BigInt, sb: u32, scale: u32) -> BigInt {
    // a/b × 10^scale = a × 10^(sb - sa + scale) / b
    let shift = sb as i64 - sa as i64 + scale as i64;
    let (numerator, denominator) = if shift >= 0 {
        (a * pow10(shift as u32), b.clone())
    } else {
        (a.clone(), b * pow10(shift.unsigned_abs() as u32))
    };
    let (mut quotient, remainder) = numerator.div_rem(&denominator);
    if remainder.abs() * 2u8 >= denominator.abs() {
        if (numerator.sign() == Sign::Minus) != (denominator.sign() == Sign::Minus) {
            quotient -= BigInt::one();
        } else {
            quotient += BigInt::one();
        }
    }
    quotient
}

/// Appends the key of the finite value `±digits × 10^-scale` (`digits`: the decimal digits of
/// the magnitude, no sign, leading zeros allowed).
pub fn write_finite_key(negative: bool, digits: &str, scale: u32, out: &mut Vec<u8>) {
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        out.push(TAG_ZERO);
        out.extend((scale as u16).to_be_bytes());
        return;
    }
    out.push(if negative { TAG_NEG } else { TAG_POS });
    let start = out.len();
    // value = 0.d1d2… × 10^exponent
    let exponent = digits.len() as i64 - scale as i64;
    let significant = digits.trim_end_matches('0').as_bytes();
    out.extend(((exponent as i32 as u32) ^ 0x8000_0000).to_be_bytes());
    for pair in significant.chunks(2) {
        let high = pair[0] - b'0';
        let low = pair.get(1).map_or(0, |d| d - b'0');
        out.push(high * 10 + low + 1);
    }
    out.push(0);
    if negative {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
    out.extend((scale as u16).to_be_bytes());
}

/// The mantissa and display scale of a finite key whose value fits an `i128` (a fast path
/// for sums of keys from fixed-point arithmetic); `None` for NaN, the infinities, values
/// beyond `i128` and malformed keys ([`Numeric::from_key`] reads those).
pub fn fixed_from_key(key: &[u8]) -> Option<(i128, u32)> {
    if key.len() < 1 + SCALE_BYTES {
        return None;
    }
    let (body, scale_bytes) = key.split_at(key.len() - SCALE_BYTES);
    let scale = u16::from_be_bytes([scale_bytes[0], scale_bytes[1]]) as u32;
    let (tag, body) = (body[0], &body[1..]);
    let negative = match tag {
        TAG_ZERO if body.is_empty() => return Some((0, scale)),
        TAG_POS => false,
        TAG_NEG => true,
        _ => return None,
    };
    let mask = if negative { 0xFF } else { 0 };
    if body.len() < 5 || body[body.len() - 1] ^ mask != 0 {
        return None;
    }
    let exponent = (u32::from_be_bytes([
        body[0] ^ mask,
        body[1] ^ mask,
        body[2] ^ mask,
        body[3] ^ mask,
    ]) ^ 0x8000_0000) as i32 as i64;
    let pairs = &body[4..body.len() - 1];
    if pairs.len() > 20 {
        return None;
    }
    let mut digits: u128 = 0;
    let mut count = 0i64;
    for (i, &b) in pairs.iter().enumerate() {
        let pair = (b ^ mask).checked_sub(1).filter(|p| *p <= 99)?;
        if i + 1 == pairs.len() && pair % 10 == 0 {
            // An odd number of digits: the last pair's second digit is padding.
            digits = digits.checked_mul(10)?.checked_add((pair / 10) as u128)?;
            count += 1;
        } else {
            digits = digits.checked_mul(100)?.checked_add(pair as u128)?;
            count += 2;
        }
    }
    // value = 0.d1d2… × 10^exponent: the mantissa at `scale` is the digits × 10^shift.
    let mut shift = exponent - count + scale as i64;
    while shift < 0 {
        if !digits.is_multiple_of(10) {
            return None;
        }
        digits /= 10;
        shift += 1;
    }
    let magnitude = digits.checked_mul(10u128.checked_pow(u32::try_from(shift).ok()?)?)?;
    let magnitude = i128::try_from(magnitude).ok()?;
    Some((if negative { -magnitude } else { magnitude }, scale))
}

/// Orders two keys by value, ignoring their display scales.
pub fn compare_keys(a: &[u8], b: &[u8]) -> Ordering {
    value_part(a).cmp(value_part(b))
}

/// The part of a key that is unique per value (without the display scale).
pub fn value_part(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(SCALE_BYTES)]
}

mod transcendental;

#[cfg(test)]
mod tests;

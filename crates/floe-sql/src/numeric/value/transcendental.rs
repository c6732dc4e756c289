//! `ln`, `exp`, `log` and `power`, with the result scales PostgreSQL's `numeric.c` picks
//! (`numeric_ln`, `numeric_exp`, `log_var`, `power_var`, `power_var_int`).
//!
//! The scales are PostgreSQL's; the digits are computed in fixed point (a `BigInt` mantissa at
//! a working scale [`GUARD`] digits finer than the result's) and rounded once, half away from
//! zero. PostgreSQL also computes with guard digits, so both give the correctly rounded value
//! except when the exact value lies within ~10^-12 of a rounding boundary at the last digit.
//!
//! - `ln(x)`: `x = y·10^d` with `y` in [1, 10); square roots bring `y` within 1% of 1, then
//!   `ln y = 2·atanh((y-1)/(y+1))`, a fast series there.
//! - `exp(t)`: `t = q·ln 10 + f` with `f` in [0, ln 10); `exp f` by Taylor's series on `f/256`,
//!   squared eight times; the result is `exp(f)·10^q`.

use std::cell::RefCell;

use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::{
    digit_count, pow10, Numeric, NumericError, NumericResult, MAX_DISPLAY_SCALE,
    MAX_INTEGER_DIGITS, MIN_SIG_DIGITS,
};

/// Digits computed beyond the result's last one.
const GUARD: i64 = 12;
/// PostgreSQL's `NUMERIC_MAX_RESULT_SCALE`: `exp` overflows (or underflows to zero) at
/// `|t| >= 3 ×` this.
const MAX_RESULT_SCALE: f64 = 2000.0;
/// log10(e) with PostgreSQL's digits (its scale choices depend on them at the boundaries).
#[allow(clippy::approx_constant)]
const LOG10_E: f64 = 0.434294481903252;
/// ln(10) with PostgreSQL's digits (in `estimate_ln_dweight`).
#[allow(clippy::approx_constant)]
const LN_10: f64 = 2.302585092994046;
/// Halvings before `exp`'s Taylor series (so its argument is below 0.01).
const EXP_HALVINGS: u32 = 8;

/// `m × 10^by` (`by` may be negative: truncated toward zero).
fn shift(m: &BigInt, by: i64) -> BigInt {
    if by >= 0 {
        m * pow10(by as u32)
    } else {
        m / pow10(by.unsigned_abs() as u32)
    }
}

/// `m × 10^by`, rounded half away from zero when `by` is negative.
fn shift_rounded(m: &BigInt, by: i64) -> BigInt {
    if by >= 0 {
        return m * pow10(by as u32);
    }
    let divisor = pow10(by.unsigned_abs() as u32);
    let (mut quotient, remainder) = m.div_rem(&divisor);
    if remainder.abs() * 2u8 >= divisor {
        if remainder.is_negative() {
            quotient -= 1;
        } else {
            quotient += 1;
        }
    }
    quotient
}

/// `a / b` rounded half away from zero.
fn divide_rounded(a: &BigInt, b: &BigInt) -> BigInt {
    let (mut quotient, remainder) = a.div_rem(b);
    if remainder.abs() * 2u8 >= b.abs() {
        if remainder.is_negative() != b.is_negative() {
            quotient -= 1;
        } else {
            quotient += 1;
        }
    }
    quotient
}

/// Decimal digits of `n`.
fn decimal_len(n: u64) -> i64 {
    n.checked_ilog10().map_or(1, |d| d as i64 + 1)
}

/// `m × 10^-s` as a double (within a few ulps; 0 or ±inf beyond the double range).
fn approx_f64(m: &BigInt, s: u32) -> f64 {
    if m.is_zero() {
        return 0.0;
    }
    let digits = digit_count(m);
    let lead = shift(m, 17 - digits).to_f64().unwrap_or(0.0);
    let exponent = digits - 17 - s as i64;
    lead * 10f64.powi(exponent.clamp(-1000, 1000) as i32)
}

/// `ln(y)` at scale `w`, for `y` (at scale `w`) in [1, 10]. Error: well under 10^(GUARD-2)
/// units of the last place.
fn ln_reduced(mut y: BigInt, w: u32) -> BigInt {
    let one = pow10(w);
    let near = &one + &one / 100u32;
    let mut halvings = 0u32;
    while y > near {
        y = (&y * &one).sqrt();
        halvings += 1;
    }
    // ln y = 2 atanh(z), z = (y - 1) / (y + 1), |z| < 0.005.
    let z = (&y - &one) * &one / (&y + &one);
    let z2 = &z * &z / &one;
    let mut term = z;
    let mut sum = BigInt::zero();
    let mut k = 1u32;
    while !term.is_zero() {
        sum += &term / k;
        term = term * &z2 / &one;
        k += 2;
    }
    (sum * 2u8) << halvings
}

thread_local! {
    /// ln 10 at the finest scale computed so far in this thread.
    static LN10: RefCell<(u32, BigInt)> = RefCell::new((0, BigInt::zero()));
}

/// ln 10 at scale `w`.
fn ln10(w: u32) -> BigInt {
    LN10.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 < w || cache.1.is_zero() {
            let fine = w + GUARD as u32;
            *cache = (fine, ln_reduced(pow10(fine) * 10u8, fine));
        }
        shift(&cache.1, w as i64 - cache.0 as i64)
    })
}

/// `ln(m × 10^-s)` at scale `w` (`m > 0`), a few units of its last place off at most.
fn ln_fixed(m: &BigInt, s: u32, w: u32) -> BigInt {
    let digits = digit_count(m);
    // x = y × 10^d with y in [1, 10).
    let d = digits - 1 - s as i64;
    let extra = GUARD + decimal_len(d.unsigned_abs());
    let wp = w as i64 + extra;
    let y = shift(m, wp - (digits - 1));
    let mut ln = ln_reduced(y, wp as u32);
    if d != 0 {
        ln += ln10(wp as u32) * d;
    }
    shift(&ln, -extra)
}

/// `exp(t)` for `t = tm × 10^-ts`, rounded to `rscale` decimals: the mantissa.
fn exp_mantissa(tm: &BigInt, ts: u32, rscale: u32) -> BigInt {
    let t = approx_f64(tm, ts);
    // floor(log10(result)), give or take one.
    let weight = (t * LOG10_E).floor() as i64;
    let significant = weight + 1 + rscale as i64;
    if significant < -1 {
        // Below half a unit of the last place.
        return BigInt::zero();
    }
    let w = (significant.max(0) + GUARD + decimal_len(weight.unsigned_abs()) + 3) as u32;
    let x = shift(tm, w as i64 - ts as i64);
    let l10 = ln10(w);
    let (q, f) = x.div_mod_floor(&l10);
    let one = pow10(w);
    let f = f >> EXP_HALVINGS;
    let mut sum = one.clone();
    let mut term = one.clone();
    let mut k = 1u32;
    loop {
        term = term * &f / &one / k;
        if term.is_zero() {
            break;
        }
        sum += &term;
        k += 1;
    }
    for _ in 0..EXP_HALVINGS {
        sum = &sum * &sum / &one;
    }
    let q = q.to_i64().unwrap_or(0);
    shift_rounded(&sum, q + rscale as i64 - w as i64)
}

/// `exp(t)` at `rscale` (PostgreSQL's `exp_var`): 22003 for `t >= 6000`, zero below -6000.
fn exp_at(tm: &BigInt, ts: u32, rscale: u32) -> NumericResult<Numeric> {
    let t = approx_f64(tm, ts);
    if t.abs() >= MAX_RESULT_SCALE * 3.0 {
        if t > 0.0 {
            return Err(NumericError::Overflow);
        }
        return Numeric::finite(BigInt::zero(), rscale);
    }
    Numeric::finite(exp_mantissa(tm, ts, rscale), rscale)
}

/// PostgreSQL's `estimate_ln_dweight`: roughly the decimal weight of `ln(m × 10^-s)`.
fn estimate_ln_dweight(m: &BigInt, s: u32) -> i64 {
    if !m.is_positive() {
        return 0;
    }
    let one = pow10(s);
    let tenth = shift(&one, -1);
    // 0.9 <= x <= 1.1: ln(1 + x) ~ x.
    if *m >= &one - &tenth && *m <= &one + &tenth {
        let x = m - &one;
        if x.is_zero() {
            return 0;
        }
        return digit_count(&x) - 1 - s as i64;
    }
    // The first one or two base-10000 digits, as PostgreSQL's NumericVar holds them.
    let fraction_groups = (s as i64 + 3) / 4;
    let aligned = shift(m, 4 * fraction_groups - s as i64);
    let text = aligned.magnitude().to_string();
    let pad = (4 - text.len() % 4) % 4;
    let text = format!("{}{text}", "0".repeat(pad));
    let groups: Vec<i64> = text
        .as_bytes()
        .chunks(4)
        .map(|g| {
            std::str::from_utf8(g)
                .ok()
                .and_then(|g| g.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let weight = groups.len() as i64 - 1 - fraction_groups;
    let more = groups[1..].iter().any(|g| *g != 0);
    let mut digits = groups[0];
    let mut dweight = weight * 4;
    if more {
        digits = digits * 10_000 + groups.get(1).copied().unwrap_or(0);
        dweight -= 4;
    }
    let ln = (digits as f64).ln() + dweight as f64 * LN_10;
    ln.abs().log10() as i64
}

/// A scale PostgreSQL picks: at least `floor`, within [0, NUMERIC_MAX_DISPLAY_SCALE].
fn clamp_scale(scale: i64) -> u32 {
    scale.clamp(0, MAX_DISPLAY_SCALE) as u32
}

/// The mantissa and scale of a finite value.
fn parts(x: &Numeric) -> Option<(&BigInt, u32)> {
    match x {
        Numeric::Finite { mantissa, scale } => Some((mantissa, *scale)),
        _ => None,
    }
}

/// Whether a finite `m × 10^-s` is an integer; its value when it fits an `i64`.
fn integral(m: &BigInt, s: u32) -> (bool, Option<i64>) {
    let (quotient, remainder) = m.div_rem(&pow10(s));
    (remainder.is_zero(), quotient.to_i64())
}

/// Whether an integral `m × 10^-s` is odd.
fn is_odd(m: &BigInt, s: u32) -> bool {
    (m / pow10(s)).is_odd()
}

impl Numeric {
    /// `ln(self)` as PostgreSQL's `numeric_ln`.
    pub fn ln(&self) -> NumericResult<Numeric> {
        let (m, s) = match self {
            Numeric::NegInfinity => return Err(NumericError::LogOfNegative),
            Numeric::NaN | Numeric::Infinity => return Ok(self.clone()),
            Numeric::Finite { mantissa, scale } => (mantissa, *scale),
        };
        check_log_argument(m)?;
        let rscale = clamp_scale((MIN_SIG_DIGITS - estimate_ln_dweight(m, s)).max(s as i64));
        let ln = ln_fixed(m, s, rscale + GUARD as u32);
        Numeric::finite(shift_rounded(&ln, -GUARD), rscale)
    }

    /// `exp(self)` as PostgreSQL's `numeric_exp`.
    pub fn exp(&self) -> NumericResult<Numeric> {
        let (m, s) = match self {
            Numeric::NegInfinity => return Ok(Numeric::zero()),
            Numeric::NaN | Numeric::Infinity => return Ok(self.clone()),
            Numeric::Finite { mantissa, scale } => (mantissa, *scale),
        };
        let weight = (approx_f64(m, s) * LOG10_E).clamp(-MAX_RESULT_SCALE, MAX_RESULT_SCALE);
        let rscale = clamp_scale((MIN_SIG_DIGITS - weight as i64).max(s as i64));
        exp_at(m, s, rscale)
    }

    /// `log(base, x)` as PostgreSQL's `numeric_log` (`log(x)` is `log(10, x)`).
    pub fn log(base: &Numeric, x: &Numeric) -> NumericResult<Numeric> {
        let (Some((bm, bs)), Some((xm, xs))) = (parts(base), parts(x)) else {
            if base.is_nan() || x.is_nan() {
                return Ok(Numeric::NaN);
            }
            let (sb, sx) = (base.signum(), x.signum());
            if sb < 0 || sx < 0 {
                return Err(NumericError::LogOfNegative);
            }
            if sb == 0 || sx == 0 {
                return Err(NumericError::LogOfZero);
            }
            return Ok(match (base, x) {
                (Numeric::Infinity, Numeric::Infinity) => Numeric::NaN,
                (Numeric::Infinity, _) => Numeric::zero(),
                _ => Numeric::Infinity,
            });
        };
        check_log_argument(bm)?;
        check_log_argument(xm)?;
        if *bm == pow10(bs) {
            // ln(1) is zero.
            return Err(NumericError::DivisionByZero);
        }
        let base_weight = estimate_ln_dweight(bm, bs);
        let result_weight = estimate_ln_dweight(xm, xs) - base_weight;
        let rscale = clamp_scale(
            (MIN_SIG_DIGITS - result_weight)
                .max(bs as i64)
                .max(xs as i64),
        );
        // ln(x)/ln(base) to rscale: both logarithms carry the result's digits plus the
        // quotient's magnification.
        let w = rscale as i64 + GUARD + (-base_weight).max(0) + result_weight.max(0) + 2;
        let w = w as u32;
        let ln_x = ln_fixed(xm, xs, w);
        let ln_base = ln_fixed(bm, bs, w);
        Numeric::finite(
            divide_rounded(&shift(&ln_x, rscale as i64), &ln_base),
            rscale,
        )
    }

    /// `power(self, exponent)` (and `self ^ exponent`) as PostgreSQL's `numeric_power`.
    pub fn pow(&self, exponent: &Numeric) -> NumericResult<Numeric> {
        let (Some((bm, bs)), Some((em, es))) = (parts(self), parts(exponent)) else {
            return special_power(self, exponent);
        };
        if bm.is_zero() && em.is_negative() {
            return Err(NumericError::ZeroToNegativePower);
        }
        let (is_integer, value) = integral(em, es);
        if let Some(n) = value.filter(|n| is_integer && i32::try_from(*n).is_ok()) {
            let rscale = clamp_scale(MIN_SIG_DIGITS.max(bs as i64));
            return power_int(bm, bs, n, rscale);
        }
        if bm.is_zero() {
            return Numeric::finite(BigInt::zero(), MIN_SIG_DIGITS as u32);
        }
        if bm.is_negative() && !is_integer {
            return Err(NumericError::ComplexPower);
        }
        let negative = bm.is_negative() && is_odd(em, es);
        let base = bm.abs();
        // PostgreSQL's estimate of exponent × ln(base), for its overflow test and scale.
        let ln_base = approx_ln(&base, bs);
        let val = approx_f64(em, es) * ln_base;
        if val.is_nan() || val.abs() > MAX_RESULT_SCALE * 3.01 {
            if val > 0.0 || val.is_nan() {
                return Err(NumericError::Overflow);
            }
            return Numeric::finite(BigInt::zero(), MAX_DISPLAY_SCALE as u32);
        }
        let val = val * LOG10_E;
        let rscale = clamp_scale((MIN_SIG_DIGITS - val as i64).max(bs as i64).max(es as i64));
        let result = power_general(&base, bs, em, es, rscale, false)?;
        Ok(if negative { result.neg() } else { result })
    }
}

/// 2201E for a zero or negative logarithm argument.
fn check_log_argument(m: &BigInt) -> NumericResult<()> {
    if m.is_zero() {
        return Err(NumericError::LogOfZero);
    }
    if m.is_negative() {
        return Err(NumericError::LogOfNegative);
    }
    Ok(())
}

/// `ln(m × 10^-s)` as a double, for `m > 0` of any size.
fn approx_ln(m: &BigInt, s: u32) -> f64 {
    let digits = digit_count(m);
    let lead = shift(m, 17 - digits).to_f64().unwrap_or(1.0);
    lead.ln() + (digits - 17 - s as i64) as f64 * std::f64::consts::LN_10
}

/// `exp(e × ln(base))` at `rscale`, for `base > 0`: `e` exactly times a logarithm precise to
/// the result's digits. Through `exp`'s own limit (PostgreSQL's `power_var` calls `exp_var`)
/// unless `integer_power` (its `power_var_int` multiplies, so only numeric's range limits it:
/// `power(1.01, 1000000)` has 4,339 digits).
fn power_general(
    base: &BigInt,
    bs: u32,
    em: &BigInt,
    es: u32,
    rscale: u32,
    integer_power: bool,
) -> NumericResult<Numeric> {
    let val = approx_f64(em, es) * approx_ln(base, bs) * LOG10_E;
    let significant = (rscale as i64 + val.floor() as i64 + 1).max(0);
    let integer_digits = (digit_count(em) - es as i64).max(0);
    let w = (significant + GUARD + integer_digits + 2) as u32;
    let ln = ln_fixed(base, bs, w);
    if integer_power {
        return Numeric::finite(exp_mantissa(&(ln * em), w + es, rscale), rscale);
    }
    exp_at(&(ln * em), w + es, rscale)
}

/// `base^n` for an integer `n` (PostgreSQL's `power_var_int`): exact, then rounded to `rscale`;
/// through logarithms when the exact power would be huge.
fn power_int(m: &BigInt, s: u32, n: i64, rscale: u32) -> NumericResult<Numeric> {
    if m.is_zero() || n == 0 {
        let value = if n == 0 {
            BigInt::one()
        } else {
            BigInt::zero()
        };
        return Numeric::finite(value * pow10(rscale), rscale);
    }
    let magnitude = n.unsigned_abs();
    // log10 of the result, roughly: beyond numeric's range, or below half the last place.
    let weight = n as f64 * approx_ln(&m.abs(), s) * LOG10_E;
    if weight > (MAX_INTEGER_DIGITS + 1) as f64 {
        return Err(NumericError::Overflow);
    }
    if weight + 1.0 < -(rscale as f64) {
        return Numeric::finite(BigInt::zero(), rscale);
    }
    // Digits of the exact power `m^|n|` (a base of 1 with a scale stays one digit long:
    // `power(0.001, -32768)` is 10^98304, computed exactly at once; through logarithms its
    // 98,304 digits took minutes). Beyond the cap, logarithms at the result's precision.
    let exact_digits = magnitude as f64 * (approx_ln(&m.abs(), 0) * LOG10_E).max(0.0) + 1.0;
    let cap = (4 * (rscale as u64 + 4000)).max(2 * MAX_INTEGER_DIGITS as u64);
    if exact_digits > cap as f64 {
        let negative = m.is_negative() && magnitude % 2 == 1;
        let result = power_general(&m.abs(), s, &BigInt::from(n), 0, rscale, true)?;
        return Ok(if negative { result.neg() } else { result });
    }
    let power = num_traits::pow::Pow::pow(m, magnitude);
    let power_scale = u32::try_from(s as u64 * magnitude).map_err(|_| NumericError::Overflow)?;
    if n > 0 {
        let mantissa = shift_rounded(&power, rscale as i64 - power_scale as i64);
        return Numeric::finite(mantissa, rscale);
    }
    // 1 / base^|n| at rscale: 10^(power_scale + rscale) / power.
    let numerator = pow10(power_scale + rscale);
    Numeric::finite(divide_rounded(&numerator, &power), rscale)
}

/// `power` with NaN or an infinite argument (PostgreSQL follows POSIX `pow`).
fn special_power(x: &Numeric, y: &Numeric) -> NumericResult<Numeric> {
    let one = Numeric::from_i64(1);
    let is_one = |v: &Numeric| v.is_finite() && v.cmp_value(&one).is_eq();
    if x.is_nan() {
        return Ok(if y.is_finite() && y.signum() == 0 {
            one
        } else {
            Numeric::NaN
        });
    }
    if y.is_nan() {
        return Ok(if is_one(x) { one } else { Numeric::NaN });
    }
    let (sx, sy) = (x.signum(), y.signum());
    if sx == 0 && sy < 0 {
        return Err(NumericError::ZeroToNegativePower);
    }
    let y_integral = match y {
        Numeric::Finite { mantissa, scale } => integral(mantissa, *scale).0,
        _ => true,
    };
    if sx < 0 && !y_integral {
        return Err(NumericError::ComplexPower);
    }
    if is_one(x) || sy == 0 {
        return Ok(one);
    }
    if sx == 0 && sy > 0 {
        return Ok(Numeric::zero());
    }
    if !y.is_finite() {
        let abs_x_above_one = match x {
            Numeric::Finite { .. } => {
                if x.cmp_value(&Numeric::from_i64(-1)).is_eq() {
                    return Ok(one);
                }
                x.abs().cmp_value(&one).is_gt()
            }
            _ => true,
        };
        return Ok(if abs_x_above_one == (sy > 0) {
            Numeric::Infinity
        } else {
            Numeric::zero()
        });
    }
    if matches!(x, Numeric::Infinity) {
        return Ok(if sy > 0 {
            Numeric::Infinity
        } else {
            Numeric::zero()
        });
    }
    // x is -Infinity, y finite and integral.
    if sy < 0 {
        return Ok(Numeric::zero());
    }
    Ok(match y {
        Numeric::Finite { mantissa, scale } if is_odd(mantissa, *scale) => Numeric::NegInfinity,
        _ => Numeric::Infinity,
    })
}

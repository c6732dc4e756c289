//! PostgreSQL 15's `interval`: its text input (`interval_in`: `DecodeInterval` and
//! `DecodeISO8601Interval`) and its multiplication and division by a number (`interval_mul`,
//! `interval_div`), with PostgreSQL's cascade of fractions from months to days to time.
//!
//! A value is [`PgInterval`]: months, days and microseconds, as PostgreSQL stores it. Arrow's
//! `Interval(MonthDayNano)` holds nanoseconds in an `i64`, so a time part beyond about
//! 106,751 days (2,562,047 hours) cannot be represented and is `interval out of range` here,
//! where PostgreSQL allows microseconds up to `i64::MAX`. Only the `postgres` IntervalStyle
//! is read (no SQL-standard sign propagation), and a unitless value is seconds (no
//! `INTERVAL '1' DAY` field qualifiers).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Int64Type, IntervalMonthDayNano, IntervalUnit,
};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{sqlstate, SqlError};

const USECS_PER_SEC: i64 = 1_000_000;
const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
const SECS_PER_DAY: f64 = 86_400.0;
const DAYS_PER_MONTH: f64 = 30.0;

/// An interval as PostgreSQL stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PgInterval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl PgInterval {
    /// The Arrow value, or 22008 when the time part does not fit in nanoseconds.
    pub(crate) fn to_arrow(self) -> Result<IntervalMonthDayNano, SqlError> {
        let nanos = self.micros.checked_mul(1000).ok_or_else(out_of_range)?;
        Ok(IntervalMonthDayNano::new(self.months, self.days, nanos))
    }

    /// `-interval` (22008 for the one value without a negation).
    pub(crate) fn negated(self) -> Result<PgInterval, SqlError> {
        Ok(PgInterval {
            months: self.months.checked_neg().ok_or_else(out_of_range)?,
            days: self.days.checked_neg().ok_or_else(out_of_range)?,
            micros: self.micros.checked_neg().ok_or_else(out_of_range)?,
        })
    }

    /// From Arrow's value (nanoseconds below a microsecond are dropped, as in the output).
    pub(crate) fn from_arrow(value: IntervalMonthDayNano) -> PgInterval {
        PgInterval {
            months: value.months,
            days: value.days,
            micros: value.nanoseconds / 1000,
        }
    }
}

impl PgInterval {
    /// PostgreSQL's output (`EncodeInterval`, IntervalStyle `postgres`):
    /// `-1 years -2 mons +3 days 04:05:06.5`; the seconds' fraction has no trailing zeros.
    pub(crate) fn to_text(self) -> String {
        let mut out = String::new();
        let mut is_zero = true;
        let mut is_before = false;
        let months = i64::from(self.months);
        for (value, unit) in [
            (months / 12, "year"),
            (months % 12, "mon"),
            (i64::from(self.days), "day"),
        ] {
            if value == 0 {
                continue;
            }
            let space = if is_zero { "" } else { " " };
            let plus = if is_before && value > 0 { "+" } else { "" };
            let plural = if value != 1 { "s" } else { "" };
            out.push_str(&format!("{space}{plus}{value} {unit}{plural}"));
            is_before = value < 0;
            is_zero = false;
        }
        if is_zero || self.micros != 0 {
            let hours = self.micros / USECS_PER_HOUR;
            let minutes = (self.micros / USECS_PER_MINUTE) % 60;
            let seconds = (self.micros / USECS_PER_SEC) % 60;
            let fraction = self.micros % USECS_PER_SEC;
            let sign = if self.micros < 0 {
                "-"
            } else if is_before {
                "+"
            } else {
                ""
            };
            let space = if is_zero { "" } else { " " };
            out.push_str(&format!(
                "{space}{sign}{:02}:{:02}:{:02}",
                hours.unsigned_abs(),
                minutes.unsigned_abs(),
                seconds.unsigned_abs()
            ));
            if fraction != 0 {
                let digits = format!("{:06}", fraction.unsigned_abs());
                out.push('.');
                out.push_str(digits.trim_end_matches('0'));
            }
        }
        out
    }
}

fn out_of_range() -> SqlError {
    SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "interval out of range")
}

/// Why a text is not an interval (PostgreSQL's `DTERR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    Format,
    Overflow,
}

type Decoded<T> = Result<T, Invalid>;

/// The fields being accumulated (PostgreSQL's `pg_itm_in`).
#[derive(Debug, Default)]
struct Fields {
    years: i32,
    months: i32,
    days: i32,
    micros: i64,
}

impl Fields {
    fn add_micros(&mut self, val: i64, fval: f64, scale: i64) -> Decoded<()> {
        let whole = val.checked_mul(scale).ok_or(Invalid::Overflow)?;
        self.micros = self.micros.checked_add(whole).ok_or(Invalid::Overflow)?;
        self.add_fract_micros(fval, scale)
    }

    fn add_fract_micros(&mut self, frac: f64, scale: i64) -> Decoded<()> {
        if frac == 0.0 {
            return Ok(());
        }
        let frac = frac * scale as f64;
        let whole = frac as i64;
        let usec = whole + (frac - whole as f64).round_ties_even() as i64;
        self.micros = self.micros.checked_add(usec).ok_or(Invalid::Overflow)?;
        Ok(())
    }

    fn add_fract_days(&mut self, frac: f64, scale: i32) -> Decoded<()> {
        if frac == 0.0 {
            return Ok(());
        }
        let frac = frac * f64::from(scale);
        let extra = frac as i32;
        self.days = self.days.checked_add(extra).ok_or(Invalid::Overflow)?;
        self.add_fract_micros(frac - f64::from(extra), USECS_PER_DAY)
    }

    fn add_days(&mut self, val: i64, scale: i32) -> Decoded<()> {
        let val = i32::try_from(val).map_err(|_| Invalid::Overflow)?;
        let days = val.checked_mul(scale).ok_or(Invalid::Overflow)?;
        self.days = self.days.checked_add(days).ok_or(Invalid::Overflow)?;
        Ok(())
    }

    fn add_months(&mut self, val: i64) -> Decoded<()> {
        let val = i32::try_from(val).map_err(|_| Invalid::Overflow)?;
        self.months = self.months.checked_add(val).ok_or(Invalid::Overflow)?;
        Ok(())
    }

    fn add_years(&mut self, val: i64, fval: f64, scale: i32) -> Decoded<()> {
        let val = i32::try_from(val).map_err(|_| Invalid::Overflow)?;
        let years = val.checked_mul(scale).ok_or(Invalid::Overflow)?;
        self.years = self.years.checked_add(years).ok_or(Invalid::Overflow)?;
        let extra = (fval * f64::from(scale) * 12.0).round_ties_even();
        let extra = i32::try_from(extra as i64).map_err(|_| Invalid::Overflow)?;
        self.months = self.months.checked_add(extra).ok_or(Invalid::Overflow)?;
        Ok(())
    }

    fn negate(&mut self) -> Decoded<()> {
        self.years = self.years.checked_neg().ok_or(Invalid::Overflow)?;
        self.months = self.months.checked_neg().ok_or(Invalid::Overflow)?;
        self.days = self.days.checked_neg().ok_or(Invalid::Overflow)?;
        self.micros = self.micros.checked_neg().ok_or(Invalid::Overflow)?;
        Ok(())
    }
}

/// Reads PostgreSQL's interval input: `1 day 02:03:04.5`, `-1 day +02:00`, `1.5 months`,
/// `@ 1 hour ago`, `1-2` (years-months), `P1Y2M3DT4H5M6S`, `P0001-02-03T04:05:06`.
pub(crate) fn parse_interval(text: &str) -> Result<PgInterval, SqlError> {
    let decoded = match tokenize(text).and_then(|fields| decode(&fields)) {
        Err(Invalid::Format) => decode_iso8601(text),
        other => other,
    };
    match decoded {
        Ok(fields) => {
            let months = i64::from(fields.years) * 12 + i64::from(fields.months);
            let months = i32::try_from(months).map_err(|_| out_of_range())?;
            let interval = PgInterval {
                months,
                days: fields.days,
                micros: fields.micros,
            };
            interval.to_arrow()?;
            Ok(interval)
        }
        Err(Invalid::Format) => Err(SqlError::new(
            sqlstate::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type interval: \"{text}\""),
        )),
        Err(Invalid::Overflow) => Err(SqlError::new(
            sqlstate::INTERVAL_FIELD_OVERFLOW,
            format!("interval field value out of range: \"{text}\""),
        )),
    }
}

/// The kinds of field `ParseDateTime` splits an interval's text into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// Digits, perhaps with one `.` fraction.
    Number,
    /// `h:m[:s[.f]]`.
    Time,
    /// A number with `-`, `/` or several `.` inside (only `years-months` is an interval).
    Date,
    /// A sign followed by digits, `:`, `.` or `-`.
    Signed,
    /// Letters (lower case).
    Word,
}

fn tokenize(text: &str) -> Decoded<Vec<(FieldKind, String)>> {
    let bytes = text.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    let take = |i: &mut usize, pred: &dyn Fn(u8) -> bool| {
        let start = *i;
        while *i < bytes.len() && pred(bytes[*i]) {
            *i += 1;
        }
        start
    };
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            let start = take(&mut i, &|b| b.is_ascii_digit());
            let mut kind = FieldKind::Number;
            if i < bytes.len() && bytes[i] == b':' {
                kind = FieldKind::Time;
                take(&mut i, &|b| b.is_ascii_digit() || b == b':' || b == b'.');
            } else if i < bytes.len() && matches!(bytes[i], b'-' | b'/' | b'.') {
                let delim = bytes[i];
                i += 1;
                if i < bytes.len() && bytes[i].is_ascii_digit() {
                    kind = if delim == b'.' {
                        FieldKind::Number
                    } else {
                        FieldKind::Date
                    };
                    take(&mut i, &|b| b.is_ascii_digit());
                    if i < bytes.len() && bytes[i] == delim {
                        kind = FieldKind::Date;
                        take(&mut i, &|b| b.is_ascii_digit() || b == delim);
                    }
                } else if delim == b'.' && !(i < bytes.len() && bytes[i].is_ascii_alphanumeric()) {
                    // `5.`: a number with an empty fraction.
                    kind = FieldKind::Number;
                } else {
                    kind = FieldKind::Date;
                    take(&mut i, &|b| b.is_ascii_alphanumeric() || b == delim);
                }
            }
            fields.push((kind, text[start..i].to_string()));
        } else if c == b'.' {
            let start = i;
            i += 1;
            take(&mut i, &|b| b.is_ascii_digit());
            fields.push((FieldKind::Number, text[start..i].to_string()));
        } else if c.is_ascii_alphabetic() {
            let start = take(&mut i, &|b| b.is_ascii_alphabetic());
            // A word run into digits or punctuation is a date-like field, never an interval.
            if i < bytes.len() && matches!(bytes[i], b'-' | b'/' | b'.' | b'+' | b'0'..=b'9') {
                return Err(Invalid::Format);
            }
            fields.push((FieldKind::Word, text[start..i].to_ascii_lowercase()));
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'+' || c == b'-' {
            let sign = c as char;
            i += 1;
            take(&mut i, &|b| b.is_ascii_whitespace());
            if i < bytes.len() && bytes[i].is_ascii_digit() {
                let start = take(&mut i, &|b| {
                    b.is_ascii_digit() || b == b':' || b == b'.' || b == b'-'
                });
                fields.push((FieldKind::Signed, format!("{sign}{}", &text[start..i])));
            } else {
                return Err(Invalid::Format);
            }
        } else if c.is_ascii_punctuation() {
            i += 1;
        } else {
            return Err(Invalid::Format);
        }
    }
    Ok(fields)
}

/// The units an interval's words name (PostgreSQL's `deltatktbl`, first ten letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Decade,
    Century,
    Millennium,
}

impl Unit {
    fn mask(self) -> u32 {
        1 << (self as u32)
    }
}

const ALL_SECONDS: u32 =
    (1 << Unit::Second as u32) | (1 << Unit::Millisecond as u32) | (1 << Unit::Microsecond as u32);
const TIME_MASK: u32 = ALL_SECONDS | (1 << Unit::Hour as u32) | (1 << Unit::Minute as u32);

enum Word {
    Unit(Unit),
    Ago,
    Ignore,
}

fn word(text: &str) -> Option<Word> {
    let key = text.get(..text.len().min(10)).unwrap_or(text);
    Some(match key {
        "@" => Word::Ignore,
        "ago" => Word::Ago,
        "c" | "cent" | "centuries" | "century" => Word::Unit(Unit::Century),
        "d" | "day" | "days" => Word::Unit(Unit::Day),
        "dec" | "decade" | "decades" | "decs" => Word::Unit(Unit::Decade),
        "h" | "hour" | "hours" | "hr" | "hrs" => Word::Unit(Unit::Hour),
        "m" | "min" | "mins" | "minute" | "minutes" => Word::Unit(Unit::Minute),
        "microsecon" | "us" | "usec" | "usecond" | "useconds" | "usecs" => {
            Word::Unit(Unit::Microsecond)
        }
        "mil" | "millennia" | "millennium" | "mils" => Word::Unit(Unit::Millennium),
        "millisecon" | "ms" | "msec" | "msecond" | "mseconds" | "msecs" => {
            Word::Unit(Unit::Millisecond)
        }
        "mon" | "mons" | "month" | "months" => Word::Unit(Unit::Month),
        "s" | "sec" | "second" | "seconds" | "secs" => Word::Unit(Unit::Second),
        "w" | "week" | "weeks" => Word::Unit(Unit::Week),
        "y" | "year" | "years" | "yr" | "yrs" => Word::Unit(Unit::Year),
        _ => return None,
    })
}

/// `DecodeInterval`: the fields right to left, so a unit is known before its number.
fn decode(fields: &[(FieldKind, String)]) -> Decoded<Fields> {
    let mut out = Fields::default();
    let mut mask: u32 = 0;
    let mut unit: Option<Unit> = None;
    let mut ago = false;
    for (kind, text) in fields.iter().rev() {
        let field_mask = match kind {
            FieldKind::Time => {
                decode_time(text, &mut out, false)?;
                unit = Some(Unit::Day);
                TIME_MASK
            }
            FieldKind::Signed if text[1..].contains(':') => {
                // A signed time that is not a valid time is a bad format, as in PostgreSQL.
                decode_time(&text[1..], &mut out, text.starts_with('-'))
                    .map_err(|_| Invalid::Format)?;
                unit = Some(Unit::Day);
                TIME_MASK
            }
            FieldKind::Signed | FieldKind::Number | FieldKind::Date => {
                let current = *unit.get_or_insert(Unit::Second);
                let (current, val, fval) = number(text, current)?;
                apply(&mut out, current, val, fval)?;
                if current == Unit::Hour {
                    unit = Some(Unit::Day);
                }
                match current {
                    Unit::Second if fval != 0.0 => ALL_SECONDS,
                    other => other.mask(),
                }
            }
            FieldKind::Word => match word(text).ok_or(Invalid::Format)? {
                Word::Ignore => continue,
                Word::Ago => {
                    ago = true;
                    0
                }
                Word::Unit(u) => {
                    unit = Some(u);
                    0
                }
            },
        };
        if field_mask & mask != 0 {
            return Err(Invalid::Format);
        }
        mask |= field_mask;
    }
    if mask == 0 {
        return Err(Invalid::Format);
    }
    if ago {
        out.negate()?;
    }
    Ok(out)
}

/// A number field: its whole part and fraction, or a `years-months` pair (as months).
fn number(text: &str, unit: Unit) -> Decoded<(Unit, i64, f64)> {
    let negative = text.starts_with('-');
    let digits_end = text
        .char_indices()
        .skip(usize::from(text.starts_with(['-', '+'])))
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(text.len(), |(i, _)| i);
    let whole_text = &text[..digits_end];
    let rest = &text[digits_end..];
    let val = parse_i64(whole_text)?;
    if let Some(months) = rest.strip_prefix('-') {
        if months.is_empty() || !months.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::Format);
        }
        let months = parse_i64(months)?;
        let months = if negative { -months } else { months };
        let total = val
            .checked_mul(12)
            .and_then(|v| v.checked_add(months))
            .ok_or(Invalid::Overflow)?;
        return Ok((Unit::Month, total, 0.0));
    }
    let fval = if rest.is_empty() {
        0.0
    } else if let Some(frac) = rest.strip_prefix('.') {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::Format);
        }
        let f: f64 = format!("0.{frac}").parse().map_err(|_| Invalid::Format)?;
        if negative {
            -f
        } else {
            f
        }
    } else {
        return Err(Invalid::Format);
    };
    Ok((unit, val, fval))
}

fn parse_i64(text: &str) -> Decoded<i64> {
    let digits = text.trim_start_matches(['-', '+']);
    if digits.is_empty() {
        // `.5`: no whole part.
        return Ok(0);
    }
    text.parse().map_err(|_| Invalid::Overflow)
}

fn apply(out: &mut Fields, unit: Unit, val: i64, fval: f64) -> Decoded<()> {
    match unit {
        Unit::Microsecond => out.add_micros(val, fval, 1),
        Unit::Millisecond => out.add_micros(val, fval, 1000),
        Unit::Second => out.add_micros(val, fval, USECS_PER_SEC),
        Unit::Minute => out.add_micros(val, fval, USECS_PER_MINUTE),
        Unit::Hour => out.add_micros(val, fval, USECS_PER_HOUR),
        Unit::Day => {
            out.add_days(val, 1)?;
            out.add_fract_micros(fval, USECS_PER_DAY)
        }
        Unit::Week => {
            out.add_days(val, 7)?;
            out.add_fract_days(fval, 7)
        }
        Unit::Month => {
            out.add_months(val)?;
            out.add_fract_days(fval, 30)
        }
        Unit::Year => out.add_years(val, fval, 1),
        Unit::Decade => out.add_years(val, fval, 10),
        Unit::Century => out.add_years(val, fval, 100),
        Unit::Millennium => out.add_years(val, fval, 1000),
    }
}

/// `DecodeTime` for an interval: `h:m`, `h:m:s[.f]` or `m:s.f`; minutes and seconds below 60.
fn decode_time(text: &str, out: &mut Fields, negative: bool) -> Decoded<()> {
    let parts: Vec<&str> = text.split(':').collect();
    let int = |s: &str| -> Decoded<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::Format);
        }
        s.parse().map_err(|_| Invalid::Overflow)
    };
    let seconds = |s: &str| -> Decoded<(i64, i64)> {
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (s, None),
        };
        let whole = int(whole)?;
        let micros = match frac {
            None => 0,
            Some(f) if f.bytes().all(|b| b.is_ascii_digit()) => {
                let f: f64 = format!("0.{f}").parse().map_err(|_| Invalid::Format)?;
                (f * 1e6).round_ties_even() as i64
            }
            Some(_) => return Err(Invalid::Format),
        };
        Ok((whole, micros))
    };
    let (hours, minutes, (secs, micros)) = match parts.as_slice() {
        [h, m] if m.contains('.') => (0, int(h)?, seconds(m)?),
        [h, m] => (int(h)?, int(m)?, (0, 0)),
        [h, m, s] => (int(h)?, int(m)?, seconds(s)?),
        _ => return Err(Invalid::Format),
    };
    if minutes > 59 || secs > 59 || micros > USECS_PER_SEC {
        return Err(Invalid::Overflow);
    }
    let total = hours
        .checked_mul(USECS_PER_HOUR)
        .and_then(|t| t.checked_add(minutes * USECS_PER_MINUTE + secs * USECS_PER_SEC + micros))
        .ok_or(Invalid::Overflow)?;
    let total = if negative { -total } else { total };
    out.micros = out.micros.checked_add(total).ok_or(Invalid::Overflow)?;
    Ok(())
}

/// `ParseISO8601Number`: a decimal (perhaps signed `-`, with fraction or exponent) as its whole
/// part and fraction, and the rest of the text.
fn iso_number(text: &str) -> Decoded<(i64, f64, &str)> {
    let first = text.bytes().next().ok_or(Invalid::Format)?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'.') {
        return Err(Invalid::Format);
    }
    let bytes = text.as_bytes();
    let mut end = usize::from(first == b'-');
    while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
        end += 1;
    }
    if end < bytes.len() && matches!(bytes[end], b'e' | b'E') {
        let mut e = end + 1;
        if e < bytes.len() && matches!(bytes[e], b'+' | b'-') {
            e += 1;
        }
        if e < bytes.len() && bytes[e].is_ascii_digit() {
            while e < bytes.len() && bytes[e].is_ascii_digit() {
                e += 1;
            }
            end = e;
        }
    }
    let value: f64 = text[..end].parse().map_err(|_| Invalid::Format)?;
    if !(-9.223_372_036_854_775e18..=9.223_372_036_854_775e18).contains(&value) {
        return Err(Invalid::Overflow);
    }
    let whole = value as i64;
    Ok((whole, value - whole as f64, &text[end..]))
}

fn digits_width(text: &str) -> usize {
    let text = text.strip_prefix('-').unwrap_or(text);
    text.bytes().take_while(u8::is_ascii_digit).count()
}

/// `DecodeISO8601Interval`: `P[nY][nM][nW][nD][T[nH][nM][nS]]` and the alternative forms
/// `PYYYY-MM-DDTHH:MM:SS` and `PYYYYMMDDTHHMMSS`.
fn decode_iso8601(text: &str) -> Decoded<Fields> {
    let mut out = Fields::default();
    if text.len() < 2 || !text.starts_with('P') {
        return Err(Invalid::Format);
    }
    let mut rest = &text[1..];
    let mut date_part = true;
    let mut have_field = false;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('T') {
            date_part = false;
            have_field = false;
            rest = after;
            continue;
        }
        let field_start = rest;
        let (val, fval, after) = iso_number(rest)?;
        let unit = after.bytes().next();
        rest = after.get(1..).unwrap_or("");
        if date_part {
            match unit {
                Some(b'Y') => out.add_years(val, fval, 1)?,
                Some(b'M') => {
                    out.add_months(val)?;
                    out.add_fract_days(fval, 30)?;
                }
                Some(b'W') => {
                    out.add_days(val, 7)?;
                    out.add_fract_days(fval, 7)?;
                }
                Some(b'D') => {
                    out.add_days(val, 1)?;
                    out.add_fract_micros(fval, USECS_PER_DAY)?;
                }
                Some(b'T') | None if digits_width(field_start) == 8 && !have_field => {
                    out.add_years(val / 10000, 0.0, 1)?;
                    out.add_months((val / 100) % 100)?;
                    out.add_days(val % 100, 1)?;
                    out.add_fract_micros(fval, USECS_PER_DAY)?;
                    if unit.is_none() {
                        return Ok(out);
                    }
                    date_part = false;
                    have_field = false;
                    continue;
                }
                Some(b'T' | b'-') | None => {
                    if have_field {
                        return Err(Invalid::Format);
                    }
                    out.add_years(val, fval, 1)?;
                    match unit {
                        None => return Ok(out),
                        Some(b'T') => {
                            date_part = false;
                            have_field = false;
                            continue;
                        }
                        _ => {}
                    }
                    let (val, fval, after) = iso_number(rest)?;
                    out.add_months(val)?;
                    out.add_fract_days(fval, 30)?;
                    rest = after;
                    if rest.is_empty() {
                        return Ok(out);
                    }
                    if let Some(after) = rest.strip_prefix('T') {
                        rest = after;
                        date_part = false;
                        have_field = false;
                        continue;
                    }
                    rest = rest.strip_prefix('-').ok_or(Invalid::Format)?;
                    let (val, fval, after) = iso_number(rest)?;
                    out.add_days(val, 1)?;
                    out.add_fract_micros(fval, USECS_PER_DAY)?;
                    rest = after;
                    if rest.is_empty() {
                        return Ok(out);
                    }
                    rest = rest.strip_prefix('T').ok_or(Invalid::Format)?;
                    date_part = false;
                    have_field = false;
                    continue;
                }
                _ => return Err(Invalid::Format),
            }
        } else {
            match unit {
                Some(b'H') => out.add_micros(val, fval, USECS_PER_HOUR)?,
                Some(b'M') => out.add_micros(val, fval, USECS_PER_MINUTE)?,
                Some(b'S') => out.add_micros(val, fval, USECS_PER_SEC)?,
                None if digits_width(field_start) == 6 && !have_field => {
                    out.add_micros(val / 10000, 0.0, USECS_PER_HOUR)?;
                    out.add_micros((val / 100) % 100, 0.0, USECS_PER_MINUTE)?;
                    out.add_micros(val % 100, fval, USECS_PER_SEC)?;
                    return Ok(out);
                }
                Some(b':') | None => {
                    if have_field {
                        return Err(Invalid::Format);
                    }
                    out.add_micros(val, fval, USECS_PER_HOUR)?;
                    if unit.is_none() {
                        return Ok(out);
                    }
                    let (val, fval, after) = iso_number(rest)?;
                    out.add_micros(val, fval, USECS_PER_MINUTE)?;
                    rest = after;
                    if rest.is_empty() {
                        return Ok(out);
                    }
                    rest = rest.strip_prefix(':').ok_or(Invalid::Format)?;
                    let (val, fval, after) = iso_number(rest)?;
                    out.add_micros(val, fval, USECS_PER_SEC)?;
                    if after.is_empty() {
                        return Ok(out);
                    }
                    return Err(Invalid::Format);
                }
                _ => return Err(Invalid::Format),
            }
        }
        have_field = true;
    }
    Ok(out)
}

/// The parameters of `make_interval`, in order; the statement rewrite turns named and
/// missing arguments into a positional call of all seven (missing ones 0).
pub(crate) const MAKE_INTERVAL_PARAMS: [&str; 7] =
    ["years", "months", "weeks", "days", "hours", "mins", "secs"];

/// The function a `make_interval(…)` call becomes.
pub(crate) const MAKE_INTERVAL: &str = "floe_make_interval";

#[derive(Debug, PartialEq, Eq, Hash)]
struct MakeInterval {
    signature: Signature,
}

/// `floe_make_interval(years, months, weeks, days, hours, mins, secs)`.
pub(crate) fn make_interval_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(MakeInterval {
        signature: Signature::any(7, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for MakeInterval {
    fn name(&self) -> &str {
        MAKE_INTERVAL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = crate::functions::rows_of(&args);
        let mut ints = Vec::with_capacity(6);
        for arg in &args.args[..6] {
            ints.push(cast(&arg.to_array(rows)?, &DataType::Int64)?);
        }
        let secs = cast(&args.args[6].to_array(rows)?, &DataType::Float64)?;
        let ints: Vec<_> = ints.iter().map(|a| a.as_primitive::<Int64Type>()).collect();
        let secs = secs.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut values = [0i64; 6];
            let mut null = secs.is_null(row);
            for (value, array) in values.iter_mut().zip(&ints) {
                null |= array.is_null(row);
                *value = array.value(row);
            }
            out.push(if null {
                None
            } else {
                Some(make_interval(values, secs.value(row))?.to_arrow()?)
            });
        }
        let result: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(out));
        crate::functions::finish(&args.args, result)
    }
}

/// PostgreSQL's `make_interval`: years and months to months, weeks and days to days, the rest
/// to microseconds (seconds rounded to a microsecond).
fn make_interval(
    [years, months, weeks, days, hours, mins]: [i64; 6],
    secs: f64,
) -> Result<PgInterval, SqlError> {
    let to_i32 = |v: Option<i64>| {
        v.and_then(|v| i32::try_from(v).ok())
            .ok_or_else(out_of_range)
    };
    let months = to_i32(years.checked_mul(12).and_then(|y| y.checked_add(months)))?;
    let days = to_i32(weeks.checked_mul(7).and_then(|w| w.checked_add(days)))?;
    let secs = (secs * 1e6).round_ties_even();
    if !secs.is_finite() || !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&secs) {
        return Err(out_of_range());
    }
    let micros = hours
        .checked_mul(USECS_PER_HOUR)
        .and_then(|h| h.checked_add(mins.checked_mul(USECS_PER_MINUTE)?))
        .and_then(|t| t.checked_add(secs as i64))
        .ok_or_else(out_of_range)?;
    Ok(PgInterval {
        months,
        days,
        micros,
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalKey {
    signature: Signature,
}

/// `floe_interval_key(interval)`: the value PostgreSQL compares intervals by
/// (`interval_cmp_value`: a month is 30 days, a day 24 hours), as microseconds in a
/// `Decimal128(38, 0)`, so `'1 day' = '24 hours'` as in PostgreSQL (Arrow compares the
/// months, days and nanoseconds one after another).
pub(crate) fn interval_key_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(IntervalKey {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for IntervalKey {
    fn name(&self) -> &str {
        "floe_interval_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Decimal128(38, 0))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::Decimal128Array;
        use datafusion::arrow::datatypes::IntervalMonthDayNanoType;
        let rows = crate::functions::rows_of(&args);
        let input = args.args[0].to_array(rows)?;
        let keys: Decimal128Array = input
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| {
                v.map(|v| {
                    let v = PgInterval::from_arrow(v);
                    let days = i128::from(v.months) * 30 + i128::from(v.days);
                    days * i128::from(USECS_PER_DAY) + i128::from(v.micros)
                })
            })
            .collect();
        let result: ArrayRef = Arc::new(keys.with_precision_and_scale(38, 0)?);
        crate::functions::finish(&args.args, result)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalMicrosecond {
    signature: Signature,
}

/// `floe_interval_microsecond(interval)`: PostgreSQL's `microsecond` field of an interval, the
/// seconds of the minute with their fraction, in microseconds (DataFusion's `date_part` drops
/// the fraction, so `extract(second from '00:00:04.5')` was 4).
pub(crate) fn interval_microsecond_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(IntervalMicrosecond {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for IntervalMicrosecond {
    fn name(&self) -> &str {
        "floe_interval_microsecond"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::Float64Array;
        use datafusion::arrow::datatypes::IntervalMonthDayNanoType;
        let rows = crate::functions::rows_of(&args);
        let input = args.args[0].to_array(rows)?;
        let values: Float64Array = input
            .as_primitive::<IntervalMonthDayNanoType>()
            .iter()
            .map(|v| v.map(|v| (PgInterval::from_arrow(v).micros % USECS_PER_MINUTE) as f64))
            .collect();
        let result: ArrayRef = Arc::new(values);
        crate::functions::finish(&args.args, result)
    }
}

/// `justify_hours`, `justify_days` and `justify_interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Justify {
    Hours,
    Days,
    Interval,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JustifyUdf {
    kind: Justify,
    signature: Signature,
}

/// `justify_hours` alone (a timestamp difference is justified so, as in PostgreSQL).
pub(crate) fn justify_hours_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| Arc::new(justify_udfs().swap_remove(0)))
        .clone()
}

/// PostgreSQL's `justify_hours`, `justify_days` and `justify_interval`.
pub(crate) fn justify_udfs() -> Vec<ScalarUDF> {
    [Justify::Hours, Justify::Days, Justify::Interval]
        .into_iter()
        .map(|kind| {
            ScalarUDF::new_from_impl(JustifyUdf {
                kind,
                signature: Signature::exact(
                    vec![DataType::Interval(IntervalUnit::MonthDayNano)],
                    Volatility::Immutable,
                ),
            })
        })
        .collect()
}

impl ScalarUDFImpl for JustifyUdf {
    fn name(&self) -> &str {
        match self.kind {
            Justify::Hours => "justify_hours",
            Justify::Days => "justify_days",
            Justify::Interval => "justify_interval",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::datatypes::IntervalMonthDayNanoType;
        let rows = crate::functions::rows_of(&args);
        let input = args.args[0].to_array(rows)?;
        let mut out = Vec::with_capacity(rows);
        for value in input.as_primitive::<IntervalMonthDayNanoType>().iter() {
            out.push(match value {
                Some(v) => Some(justify(PgInterval::from_arrow(v), self.kind)?.to_arrow()?),
                None => None,
            });
        }
        let result: ArrayRef = Arc::new(IntervalMonthDayNanoArray::from(out));
        crate::functions::finish(&args.args, result)
    }
}

/// PostgreSQL's `interval_justify_*`: 24-hour days into days, 30-day months into months, and
/// the signs of the fields made to agree.
fn justify(span: PgInterval, kind: Justify) -> Result<PgInterval, SqlError> {
    let PgInterval {
        mut months,
        mut days,
        mut micros,
    } = span;
    let whole_months = |days: &mut i32, months: &mut i32| -> Result<(), SqlError> {
        let whole = *days / 30;
        *days -= whole * 30;
        *months = months.checked_add(whole).ok_or_else(out_of_range)?;
        Ok(())
    };
    let whole_days = |micros: &mut i64, days: &mut i32| -> Result<(), SqlError> {
        let whole = *micros / USECS_PER_DAY;
        *micros -= whole * USECS_PER_DAY;
        let whole = i32::try_from(whole).map_err(|_| out_of_range())?;
        *days = days.checked_add(whole).ok_or_else(out_of_range)?;
        Ok(())
    };
    let days_and_time = |days: &mut i32, micros: &mut i64| {
        if *days > 0 && *micros < 0 {
            *micros += USECS_PER_DAY;
            *days -= 1;
        } else if *days < 0 && *micros > 0 {
            *micros -= USECS_PER_DAY;
            *days += 1;
        }
    };
    match kind {
        Justify::Hours => {
            whole_days(&mut micros, &mut days)?;
            days_and_time(&mut days, &mut micros);
        }
        Justify::Days => {
            whole_months(&mut days, &mut months)?;
            if months > 0 && days < 0 {
                days += 30;
                months -= 1;
            } else if months < 0 && days > 0 {
                days -= 30;
                months += 1;
            }
        }
        Justify::Interval => {
            if (days > 0 && micros > 0) || (days < 0 && micros < 0) {
                whole_months(&mut days, &mut months)?;
            }
            whole_days(&mut micros, &mut days)?;
            whole_months(&mut days, &mut months)?;
            if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
                days += 30;
                months -= 1;
            } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
                days -= 30;
                months += 1;
            }
            days_and_time(&mut days, &mut micros);
        }
    }
    Ok(PgInterval {
        months,
        days,
        micros,
    })
}

/// PostgreSQL's `TSROUND`: to microsecond precision.
fn ts_round(value: f64) -> f64 {
    (value * 1e6).round_ties_even() / 1e6
}

/// `interval * float8` (`interval_mul`); `divide` is `interval / float8` (`interval_div`,
/// 22012 for zero). A fraction of a month cascades into days (30 a month) and of a day into
/// time (24 hours a day).
pub(crate) fn scale(span: PgInterval, factor: f64, divide: bool) -> Result<PgInterval, SqlError> {
    if divide && factor == 0.0 {
        return Err(SqlError::new(
            sqlstate::DIVISION_BY_ZERO,
            "division by zero",
        ));
    }
    let apply = |v: f64| if divide { v / factor } else { v * factor };
    let to_i32 = |v: f64| {
        if v.is_nan() || v > f64::from(i32::MAX) || v < f64::from(i32::MIN) {
            Err(out_of_range())
        } else {
            Ok(v as i32)
        }
    };
    let month_value = apply(f64::from(span.months));
    let day_value = apply(f64::from(span.days));
    let months = to_i32(month_value)?;
    let mut days = to_i32(day_value)?;
    let month_remainder_days = ts_round((month_value - f64::from(months)) * DAYS_PER_MONTH);
    let mut sec_remainder = ts_round(
        (day_value - f64::from(days) + month_remainder_days
            - f64::from(month_remainder_days as i32))
            * SECS_PER_DAY,
    );
    if sec_remainder.abs() >= SECS_PER_DAY {
        let whole_days = (sec_remainder / SECS_PER_DAY) as i32;
        days = days.checked_add(whole_days).ok_or_else(out_of_range)?;
        sec_remainder -= f64::from(whole_days) * SECS_PER_DAY;
    }
    days = days
        .checked_add(month_remainder_days as i32)
        .ok_or_else(out_of_range)?;
    let micros = (apply(span.micros as f64) + sec_remainder * 1e6).round_ties_even();
    if micros.is_nan() || !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&micros) {
        return Err(out_of_range());
    }
    Ok(PgInterval {
        months,
        days,
        micros: micros as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interval's PostgreSQL output text (via the same printer the wire uses).
    fn text(input: &str) -> String {
        match parse_interval(input) {
            Ok(v) => v.to_text(),
            Err(e) => format!("{}: {}", e.code, e.message),
        }
    }

    #[test]
    fn postgres_inputs() {
        // Each expectation is PostgreSQL 15's output for the same input.
        let cases = [
            ("1 day 02:03:04.5", "1 day 02:03:04.5"),
            ("02:03:04", "02:03:04"),
            ("-1 day +02:00", "-1 days +02:00:00"),
            ("P1Y2M3DT4H5M6S", "1 year 2 mons 3 days 04:05:06"),
            ("@ 1 hour ago", "-01:00:00"),
            ("1.5 days", "1 day 12:00:00"),
            ("1.5 months", "1 mon 15 days"),
            ("1.5 weeks", "10 days 12:00:00"),
            ("1.7 years", "1 year 8 mons"),
            ("1 02:03", "1 day 02:03:00"),
            ("02:03", "02:03:00"),
            ("1:2:3.5", "01:02:03.5"),
            ("-02:03:04.5", "-02:03:04.5"),
            ("P1.5Y", "1 year 6 mons"),
            ("PT1.5M", "00:01:30"),
            ("P1W", "7 days"),
            ("P0001-02-03T04:05:06", "1 year 2 mons 3 days 04:05:06"),
            ("P0001-02", "1 year 2 mons"),
            ("1-2", "1 year 2 mons"),
            ("-1-2 3 4:05:06", "-1 years -2 mons +3 days 04:05:06"),
            ("1 day ago", "-1 days"),
            ("2147483647 days", "2147483647 days"),
            ("1 microseconds", "00:00:00.000001"),
            ("1 milliseconds", "00:00:00.001"),
            ("3 millennia", "3000 years"),
            ("1 dec", "10 years"),
            ("10s", "00:00:10"),
            ("1.5", "00:00:01.5"),
            ("-1.5", "-00:00:01.5"),
            ("   5 min  ", "00:05:00"),
            ("25:59:59.9999995", "26:00:00"),
            (".5 sec", "00:00:00.5"),
            ("5.", "00:00:05"),
            ("1 d 2 h 3 m 4 s", "1 day 02:03:04"),
            ("0.0000001 sec", "00:00:00"),
            ("1.0000005 sec", "00:00:01"),
            ("-0.5 days", "-12:00:00"),
            ("1 day ago ago", "-1 days"),
            ("1 year 2 months 3 weeks", "1 year 2 mons 21 days"),
            ("2 centuries", "200 years"),
            ("1 hour 30 minutes", "01:30:00"),
            ("1 day 2", "1 day 00:00:02"),
            ("P1Y2M3DT4H5M6.5S", "1 year 2 mons 3 days 04:05:06.5"),
            ("PT36H", "36:00:00"),
            ("P1DT", "1 day"),
            ("P00010203T040506", "1 year 2 mons 3 days 04:05:06"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn postgres_errors() {
        for bad in [
            "p1y",
            "1 2",
            "1 hour 2 hours",
            "1 day 1 day",
            "1day2hours",
            "",
            "abc",
            "1 fortnight",
            "1 hour 02:00",
            "1e2 days",
            "+1 -2 mon",
            "infinity",
            "1 日",
            "P",
            "P1X",
        ] {
            assert!(
                text(bad).starts_with("22007: invalid input syntax"),
                "{bad:?}: {}",
                text(bad)
            );
        }
        for overflow in [
            "2147483648 days",
            "100:70",
            "1:60",
            "99999999999999999999 s",
        ] {
            assert!(
                text(overflow).starts_with("22015: "),
                "{overflow:?}: {}",
                text(overflow)
            );
        }
    }

    #[test]
    fn multiply_and_divide() {
        let iv = |s: &str| parse_interval(s).unwrap();
        let show = |v: PgInterval| v.to_text();
        assert_eq!(show(scale(iv("1 mon"), 3.0, true).unwrap()), "10 days");
        assert_eq!(show(scale(iv("1 day"), 3.0, true).unwrap()), "08:00:00");
        assert_eq!(show(scale(iv("1 hour"), 2.5, false).unwrap()), "02:30:00");
        assert_eq!(
            show(scale(iv("1 mon 1 day"), 1.5, false).unwrap()),
            "1 mon 16 days 12:00:00"
        );
        assert_eq!(scale(iv("1 day"), 0.0, true).unwrap_err().code, "22012");
        assert_eq!(scale(iv("1 year"), 1e10, false).unwrap_err().code, "22008");
    }
}

//! PostgreSQL's `to_timestamp(text, template)`, `to_date(text, template)` and
//! `to_timestamp(double precision)`, replacing DataFusion's (chrono patterns, nanoseconds that
//! end in 2262).
//!
//! The template is read as `formatting.c` reads it: the patterns of `to_char`, `FM` (a number
//! takes as many digits as there are), `FX` (fixed format from there on), `TH` suffixes,
//! quoted text and backslash escapes. Outside FX mode, spaces before a field are skipped, a
//! separator in the template matches one separator in the input (or none), and any other
//! template character skips one input character. A number followed by a digit pattern takes
//! exactly its pattern's width (`YYYYMMDD`), otherwise all its digits. Two-digit years are
//! adjusted toward 2020, `CC` with `YY` picks the century, `J` is a Julian day, `DDD` a day of
//! the year; the date and time are then range-checked (22008). Errors in the input are 22007.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Date32Array, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, rows_of};
use crate::datetime::{
    days_from_civil, Zone, DAY_NAMES, MAX_DATE_DAYS, MIN_DAYS, MONTH_NAMES, TIMESTAMP_INFINITY,
    TIMESTAMP_NEG_INFINITY,
};
use crate::error::{sqlstate, SqlError};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// The functions of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ToTimestamp {
            date: false,
            signature: Signature::user_defined(Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(ToTimestamp {
            date: true,
            signature: Signature::user_defined(Volatility::Stable),
        }),
    ]
}

fn format_error(message: String) -> SqlError {
    SqlError::new(sqlstate::INVALID_DATETIME_FORMAT, message)
}

/// One element of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A pattern (upper-cased), with `FM` before it and `TH` after it.
    Field {
        pattern: &'static str,
        written: String,
        fill: bool,
        th: bool,
    },
    /// `FX`: fixed format from here on.
    Fixed,
    /// A space or separator (`-`, `/`, `:`, …).
    Separator,
    /// Any other character (letters, digits, quoted text): skips one input character.
    Text,
}

/// Patterns `to_timestamp` reads, longest first.
const PATTERNS: [&str; 49] = [
    "Y,YYY", "A.M.", "P.M.", "B.C.", "A.D.", "IDDD", "HH24", "HH12", "SSSS", "YYYY", "IYYY",
    "MONTH", "DAY", "YYY", "IYY", "MON", "DDD", "TZH", "TZM", "FF1", "FF2", "FF3", "FF4", "FF5",
    "FF6", "HH", "MI", "SS", "MS", "US", "AM", "PM", "YY", "IY", "BC", "AD", "MM", "DY", "DD",
    "ID", "WW", "IW", "CC", "RM", "TZ", "OF", "Y", "J", "Q",
];

/// Patterns whose value is a number (a number before one takes exactly its width).
fn is_digit_pattern(pattern: &str) -> bool {
    !matches!(
        pattern,
        "A.M."
            | "P.M."
            | "B.C."
            | "A.D."
            | "MONTH"
            | "DAY"
            | "MON"
            | "AM"
            | "PM"
            | "BC"
            | "AD"
            | "DY"
            | "RM"
            | "TZ"
            | "OF"
            | "TZH"
    )
}

fn parse_template(template: &str) -> Vec<Node> {
    let chars: Vec<char> = template.chars().collect();
    let mut nodes = Vec::new();
    let mut i = 0;
    let mut fill = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                nodes.push(Node::Text);
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '\\' && i + 1 < chars.len() {
            nodes.push(Node::Text);
            i += 2;
            continue;
        }
        let rest: String = chars[i..].iter().collect::<String>().to_ascii_uppercase();
        if rest.starts_with("FM") {
            fill = true;
            i += 2;
            continue;
        }
        if rest.starts_with("FX") {
            nodes.push(Node::Fixed);
            i += 2;
            continue;
        }
        if let Some(pattern) = PATTERNS.iter().find(|p| rest.starts_with(**p)) {
            let len = pattern.chars().count();
            let written: String = chars[i..i + len].iter().collect();
            i += len;
            let th = chars.len() >= i + 2
                && matches!(
                    chars[i..i + 2].iter().collect::<String>().as_str(),
                    "TH" | "th"
                );
            if th {
                i += 2;
            }
            nodes.push(Node::Field {
                pattern,
                written,
                fill,
                th,
            });
            fill = false;
            continue;
        }
        nodes.push(if c.is_whitespace() || is_separator(c) {
            Node::Separator
        } else {
            Node::Text
        });
        i += 1;
    }
    nodes
}

/// PostgreSQL's `is_separator_char`: printable ASCII other than letters and digits.
fn is_separator(c: char) -> bool {
    c.is_ascii() && (c as u32) > 0x20 && (c as u32) < 0x7f && !c.is_ascii_alphanumeric()
}

/// What the input said, field by field.
#[derive(Debug, Default)]
struct Fields {
    year: Option<i64>,
    year_digits: u32,
    century: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    julian: Option<i64>,
    hour: Option<i64>,
    twelve_hour: bool,
    pm: bool,
    minute: Option<i64>,
    second: Option<i64>,
    seconds_of_day: Option<i64>,
    micros: i64,
    tz_sign: i64,
    tz_hour: Option<i64>,
    tz_minute: Option<i64>,
}

/// Reads `input` by `template` (see the module doc).
fn read_fields(input: &str, template: &str) -> Result<Fields, SqlError> {
    let nodes = parse_template(template);
    let s: Vec<char> = input.chars().collect();
    let mut at = 0usize;
    let mut fields = Fields::default();
    let mut fixed = false;
    let mut extra_skip: i64 = 0;
    for (index, node) in nodes.iter().enumerate() {
        if at >= s.len() {
            break;
        }
        if *node == Node::Fixed {
            fixed = true;
            continue;
        }
        let is_field = matches!(node, Node::Field { .. });
        if !fixed && (is_field || index == 0) {
            while at < s.len() && s[at].is_whitespace() {
                at += 1;
                extra_skip += 1;
            }
        }
        match node {
            Node::Separator => {
                if fixed {
                    at += 1;
                } else {
                    extra_skip -= 1;
                    if at < s.len() && (s[at].is_whitespace() || is_separator(s[at])) {
                        at += 1;
                        extra_skip += 1;
                    }
                }
                continue;
            }
            Node::Text => {
                if !fixed && extra_skip > 0 {
                    extra_skip -= 1;
                } else {
                    at += 1;
                }
                continue;
            }
            Node::Fixed => continue,
            Node::Field {
                pattern,
                written,
                fill,
                th,
            } => {
                // A number takes all its digits when FM, TH or a non-digit follows.
                let slurp = *fill
                    || *th
                    || match nodes.get(index + 1) {
                        None => true,
                        Some(Node::Field { pattern, .. }) => !is_digit_pattern(pattern),
                        Some(Node::Separator) => true,
                        Some(Node::Text) | Some(Node::Fixed) => true,
                    };
                let mut reader = Reader {
                    s: &s,
                    at: &mut at,
                    slurp,
                    written,
                };
                read_field(pattern, &mut reader, &mut fields, extra_skip)?;
                if *th {
                    let skip = s[at..].iter().take(2).filter(|c| c.is_alphabetic()).count();
                    at += skip;
                }
            }
        }
        if !fixed {
            extra_skip = 0;
            while at < s.len() && s[at].is_whitespace() {
                at += 1;
                extra_skip += 1;
            }
        }
    }
    Ok(fields)
}

struct Reader<'a> {
    s: &'a [char],
    at: &'a mut usize,
    slurp: bool,
    written: &'a str,
}

impl Reader<'_> {
    fn rest(&self) -> String {
        self.s[*self.at..].iter().collect()
    }

    /// An integer of `width` characters (all its digits when slurping); returns the value and
    /// how many characters it took (PostgreSQL's `from_char_parse_int_len`).
    fn int(&mut self, width: usize) -> Result<(i64, usize), SqlError> {
        while *self.at < self.s.len() && self.s[*self.at].is_whitespace() {
            *self.at += 1;
        }
        let start = *self.at;
        let limit = if self.slurp {
            self.s.len()
        } else {
            if self.s.len() - start < width {
                return Err(format_error(format!(
                    "source string too short for \"{}\" formatting field",
                    self.written
                ))
                .with_detail(format!(
                    "Field requires {width} characters, but only {} remain.",
                    self.s.len() - start
                ))
                .with_hint(
                    "If your source string is not fixed-width, try using the \"FM\" modifier.",
                ));
            }
            start + width
        };
        let mut end = start;
        if end < limit && matches!(self.s[end], '+' | '-') {
            end += 1;
        }
        let digits_start = end;
        while end < limit && self.s[end].is_ascii_digit() {
            end += 1;
        }
        if end == digits_start {
            return Err(format_error(format!(
                "invalid value \"{}\" for \"{}\"",
                self.rest().chars().take(width.max(1)).collect::<String>(),
                self.written
            ))
            .with_detail("Value must be an integer."));
        }
        let used = end - start;
        if !self.slurp && used < width {
            return Err(format_error(format!(
                "invalid value \"{}\" for \"{}\"",
                self.s[start..start + width].iter().collect::<String>(),
                self.written
            ))
            .with_detail(format!(
                "Field requires {width} characters, but only {used} could be parsed."
            ))
            .with_hint(
                "If your source string is not fixed-width, try using the \"FM\" modifier.",
            ));
        }
        let text: String = self.s[start..end].iter().collect();
        let value: i64 = text
            .parse()
            .ok()
            .filter(|v: &i64| i32::try_from(*v).is_ok())
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    format!(
                        "value for \"{}\" in source string is out of range",
                        self.written
                    ),
                )
                .with_detail("Value must be in the range -2147483648 to 2147483647.")
            })?;
        *self.at = end;
        Ok((value, used))
    }

    /// Which of `words` the input starts with (any case); the index.
    fn word(&mut self, words: &[&str]) -> Result<usize, SqlError> {
        let rest = self.rest().to_lowercase();
        for (i, word) in words.iter().enumerate() {
            if rest.starts_with(&word.to_lowercase()) {
                *self.at += word.chars().count();
                return Ok(i);
            }
        }
        Err(format_error(format!(
            "invalid value \"{}\" for \"{}\"",
            self.rest()
                .chars()
                .take_while(|c| c.is_alphabetic() || *c == '.')
                .collect::<String>(),
            self.written
        ))
        .with_detail("The given value did not match any of the allowed values for this field."))
    }
}

const ROMAN: [&str; 12] = [
    "XII", "XI", "X", "IX", "VIII", "VII", "VI", "V", "IV", "III", "II", "I",
];

/// PostgreSQL's `adjust_partial_year_to_2020`.
fn adjust_year(year: i64) -> i64 {
    match year {
        y if y < 70 => y + 2000,
        y if y < 100 => y + 1900,
        y if y < 520 => y + 2000,
        y if y < 1000 => y + 1000,
        y => y,
    }
}

fn read_field(
    pattern: &str,
    r: &mut Reader<'_>,
    f: &mut Fields,
    extra_skip: i64,
) -> Result<(), SqlError> {
    match pattern {
        "YYYY" | "IYYY" => {
            f.year = Some(r.int(4)?.0);
            f.year_digits = 4;
        }
        "YYY" | "IYY" | "YY" | "IY" | "Y" => {
            let width = match pattern {
                "YYY" | "IYY" => 3,
                "YY" | "IY" => 2,
                _ => 1,
            };
            let (year, used) = r.int(width)?;
            f.year = Some(if used < 4 { adjust_year(year) } else { year });
            f.year_digits = width as u32;
        }
        "Y,YYY" => {
            let (millennia, _) = r.int(1)?;
            if *r.at < r.s.len() && r.s[*r.at] == ',' {
                *r.at += 1;
            } else {
                return Err(format_error(
                    "invalid input string for \"Y,YYY\"".to_string(),
                ));
            }
            let saved = r.slurp;
            r.slurp = false;
            let (years, _) = r.int(3)?;
            r.slurp = saved;
            f.year = Some(millennia * 1000 + years);
            f.year_digits = 4;
        }
        "CC" => f.century = Some(r.int(2)?.0),
        "MM" => f.month = Some(r.int(2)?.0),
        "MONTH" => f.month = Some(r.word(&MONTH_NAMES)? as i64 + 1),
        "MON" => {
            let abbreviations: Vec<&str> = MONTH_NAMES.iter().map(|m| &m[..3]).collect();
            f.month = Some(r.word(&abbreviations)? as i64 + 1);
        }
        "RM" => f.month = Some(12 - r.word(&ROMAN)? as i64),
        "DAY" => {
            r.word(&DAY_NAMES)?;
        }
        "DY" => {
            let abbreviations: Vec<&str> = DAY_NAMES.iter().map(|d| &d[..3]).collect();
            r.word(&abbreviations)?;
        }
        "DD" => f.day = Some(r.int(2)?.0),
        "DDD" | "IDDD" => f.day_of_year = Some(r.int(3)?.0),
        "D" | "ID" | "Q" => {
            // Day of the week and quarter are read and ignored, as in PostgreSQL.
            r.int(1)?;
        }
        "WW" | "IW" => {
            return Err(SqlError::not_supported(format!(
                "to_timestamp with the week field \"{}\"",
                r.written
            )))
        }
        "J" => f.julian = Some(r.int(1)?.0),
        "HH" | "HH12" => {
            f.hour = Some(r.int(2)?.0);
            f.twelve_hour = true;
        }
        "HH24" => f.hour = Some(r.int(2)?.0),
        "MI" => f.minute = Some(r.int(2)?.0),
        "SS" => f.second = Some(r.int(2)?.0),
        "SSSS" => f.seconds_of_day = Some(r.int(5)?.0),
        "MS" => {
            let (ms, used) = r.int(3)?;
            let scale = match used {
                1 => 100,
                2 => 10,
                _ => 1,
            };
            f.micros += ms * scale * 1000;
        }
        "US" | "FF1" | "FF2" | "FF3" | "FF4" | "FF5" | "FF6" => {
            let width = match pattern {
                "US" => 6,
                other => other[2..].parse().unwrap_or(6),
            };
            let (us, used) = r.int(width)?;
            let scale = 10i64.pow(6u32.saturating_sub(used as u32));
            f.micros += us * scale;
        }
        "AM" | "PM" | "A.M." | "P.M." => {
            let words: &[&str] = if pattern.contains('.') {
                &["A.M.", "P.M."]
            } else {
                &["AM", "PM"]
            };
            f.pm = r.word(words)? == 1;
            f.twelve_hour = true;
        }
        "BC" | "AD" | "B.C." | "A.D." => {
            let words: &[&str] = if pattern.contains('.') {
                &["A.D.", "B.C."]
            } else {
                &["AD", "BC"]
            };
            f.bc = r.word(words)? == 1;
        }
        "TZH" => {
            let at = *r.at;
            match r.s.get(at) {
                Some('+') | Some('-') | Some(' ') => {
                    f.tz_sign = if r.s[at] == '-' { -1 } else { 1 };
                    *r.at += 1;
                }
                _ => {
                    f.tz_sign = if extra_skip > 0 && at > 0 && r.s[at - 1] == '-' {
                        -1
                    } else {
                        1
                    };
                }
            }
            f.tz_hour = Some(r.int(2)?.0);
        }
        "TZM" => {
            if f.tz_sign == 0 {
                f.tz_sign = 1;
            }
            f.tz_minute = Some(r.int(2)?.0);
        }
        other => {
            return Err(SqlError::not_supported(format!(
                "formatting field \"{other}\" is only supported in to_char"
            )))
        }
    }
    Ok(())
}

/// The local date and time (microseconds since 1970 as if UTC) and the zone offset (seconds
/// east) the input gave, if any.
fn to_local(input: &str, template: &str) -> Result<(i64, Option<i64>), SqlError> {
    let f = read_fields(input, template)?;
    let out_of_range = || {
        SqlError::new(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{input}\""),
        )
    };
    // Year in PostgreSQL's astronomical numbering (0 is 1 BC), as `do_to_timestamp`.
    let mut year: i64 = 0;
    let mut year_given = false;
    if let Some(y) = f.year {
        year_given = true;
        match f.century {
            Some(cc) if f.year_digits <= 2 => {
                let cc = if f.bc { -cc } else { cc };
                let low = y % 100;
                year = if low != 0 {
                    if cc >= 0 {
                        low + (cc - 1) * 100
                    } else {
                        (cc + 1) * 100 - low + 1
                    }
                } else {
                    cc * 100 + if cc >= 0 { 0 } else { 1 }
                };
            }
            _ => {
                year = if f.bc { -y } else { y };
            }
        }
        if year < 0 {
            year += 1;
        }
    } else if let Some(cc) = f.century {
        year_given = true;
        let cc = if f.bc { -cc } else { cc };
        year = if cc >= 0 {
            (cc - 1) * 100 + 1
        } else {
            cc * 100 + 1
        };
        if year < 0 {
            year += 1;
        }
    }
    let (mut month, mut day) = (f.month.unwrap_or(1), f.day.unwrap_or(1));
    let mut days: Option<i64> = None;
    if let Some(j) = f.julian {
        days = Some(j - 2_440_588);
    }
    if let Some(doy) = f.day_of_year {
        if f.month.unwrap_or(1) <= 1 || f.day.unwrap_or(1) <= 1 {
            if !year_given && !f.bc {
                return Err(format_error(
                    "cannot calculate day of year without year information".into(),
                ));
            }
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let year_days = if leap { 366 } else { 365 };
            if !(1..=year_days).contains(&doy) {
                return Err(out_of_range());
            }
            let first = days_from_civil(year, 1, 1);
            let date = crate::datetime::civil_from_days(first + doy - 1);
            month = i64::from(date.1);
            day = i64::from(date.2);
        }
    }
    let days = match days {
        Some(d) => d,
        None => {
            if !(1..=12).contains(&month) {
                return Err(out_of_range());
            }
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let month_days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            if day < 1 || day > month_days[month as usize - 1] {
                return Err(out_of_range());
            }
            days_from_civil(year, month as u32, day as u32)
        }
    };
    let (mut hour, mut minute, mut second) = (0, 0, 0);
    if let Some(ssss) = f.seconds_of_day {
        hour = ssss / 3600;
        minute = (ssss % 3600) / 60;
        second = ssss % 60;
    }
    if let Some(s) = f.second {
        second = s;
    }
    if let Some(m) = f.minute {
        minute = m;
    }
    if let Some(h) = f.hour {
        hour = h;
    }
    if f.twelve_hour {
        if !(1..=12).contains(&hour) {
            return Err(SqlError::new(
                sqlstate::INVALID_DATETIME_FORMAT,
                format!("hour \"{hour}\" is invalid for the 12-hour clock"),
            )
            .with_hint("Use the 24-hour clock, or give an hour between 1 and 12."));
        }
        if f.pm && hour < 12 {
            hour += 12;
        } else if !f.pm && hour == 12 {
            hour = 0;
        }
    }
    if !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
        || !(0..MICROS_PER_SECOND).contains(&f.micros)
    {
        return Err(out_of_range());
    }
    let local = days
        .checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(((hour * 60 + minute) * 60 + second) * MICROS_PER_SECOND))
        .and_then(|d| d.checked_add(f.micros))
        .ok_or_else(|| {
            SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
        })?;
    let offset = f
        .tz_hour
        .map(|h| f.tz_sign.signum().max(-1) * (h.abs() * 3600 + f.tz_minute.unwrap_or(0) * 60));
    let offset = match (offset, f.tz_minute) {
        (None, Some(m)) => Some(m * 60),
        (o, _) => o,
    };
    Ok((local, offset))
}

/// `to_timestamp(text, template)` as UTC microseconds, the local time read in `zone` unless
/// the input gave an offset.
pub(crate) fn to_timestamp(input: &str, template: &str, zone: Zone) -> Result<i64, SqlError> {
    let (local, offset) = to_local(input, template)?;
    let offset = offset.unwrap_or_else(|| i64::from(zone.offset_for_local(local)));
    let utc = local
        .checked_sub(offset * MICROS_PER_SECOND)
        .filter(|t| timestamp_in_range(*t))
        .ok_or_else(|| {
            SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
        })?;
    Ok(utc)
}

/// `to_date(text, template)` as days since 1970.
pub(crate) fn to_date(input: &str, template: &str) -> Result<i32, SqlError> {
    let (local, _) = to_local(input, template)?;
    let days = local.div_euclid(MICROS_PER_DAY);
    if !(MIN_DAYS..=MAX_DATE_DAYS).contains(&days) {
        return Err(SqlError::new(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("date out of range: \"{input}\""),
        ));
    }
    Ok(days as i32)
}

/// Whether `micros` lies in PostgreSQL's timestamp range (4714-11-24 BC to 294276 AD).
fn timestamp_in_range(micros: i64) -> bool {
    const MIN: i64 = -211_813_488_000_000_000;
    const MAX: i64 = 9_223_371_331_200_000_000;
    (MIN..MAX).contains(&micros)
}

/// `to_timestamp(double precision)`: seconds since 1970 as a `timestamptz`, rounded to
/// microseconds; ±Infinity are ±infinity, NaN and values out of range are errors.
pub(crate) fn from_epoch(seconds: f64) -> Result<i64, SqlError> {
    if seconds.is_nan() {
        return Err(SqlError::new(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            "timestamp cannot be NaN",
        ));
    }
    if seconds == f64::INFINITY {
        return Ok(TIMESTAMP_INFINITY);
    }
    if seconds == f64::NEG_INFINITY {
        return Ok(TIMESTAMP_NEG_INFINITY);
    }
    // As PostgreSQL computes it: moved to its epoch (2000) first, then scaled and rounded
    // half to even, so the last microsecond is the one PostgreSQL gives.
    const PG_EPOCH_SECONDS: f64 = 946_684_800.0;
    let since_2000 = ((seconds - PG_EPOCH_SECONDS) * 1_000_000.0).round_ties_even();
    let micros = since_2000 + PG_EPOCH_SECONDS * 1_000_000.0;
    if !(-211_813_488_000_000_000.0..9_223_371_331_200_000_000.0).contains(&micros) {
        return Err(SqlError::new(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!(
                "timestamp out of range: \"{}\"",
                crate::types::float8_text(seconds)
            ),
        ));
    }
    Ok(since_2000 as i64 + 946_684_800_000_000)
}

/// `to_timestamp` (`date: false`) or `to_date` (`date: true`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    date: bool,
    signature: Signature,
}

impl ScalarUDFImpl for ToTimestamp {
    fn name(&self) -> &str {
        if self.date {
            "to_date"
        } else {
            "to_timestamp"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let text = |t: &DataType| {
            matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            )
        };
        match arg_types {
            [a, b] if text(a) && text(b) => Ok(vec![DataType::Utf8, DataType::Utf8]),
            // to_timestamp(double precision); a text argument is read as a number.
            [a] if !self.date && (a.is_numeric() || text(a)) => Ok(vec![DataType::Float64]),
            _ => Err(super::datetime::no_function(self.name(), arg_types)),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.date {
            DataType::Date32
        } else {
            crate::datetime_udf::timestamptz_type()
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        if args.args.len() == 1 {
            let seconds = cast(&args.args[0].to_array(rows)?, &DataType::Float64)?;
            let seconds = seconds.as_primitive::<Float64Type>();
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                out.push(match seconds.is_null(row) {
                    true => None,
                    false => Some(from_epoch(seconds.value(row))?),
                });
            }
            let array = TimestampMicrosecondArray::from(out).with_timezone("+00:00");
            return finish(&args.args, Arc::new(array));
        }
        let inputs = cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let templates = cast(&args.args[1].to_array(rows)?, &DataType::Utf8)?;
        let (inputs, templates) = (inputs.as_string::<i32>(), templates.as_string::<i32>());
        let zone = crate::datetime_udf::session_zone(&args.config_options);
        if self.date {
            let mut out = Vec::with_capacity(rows);
            for row in 0..rows {
                out.push(if inputs.is_null(row) || templates.is_null(row) {
                    None
                } else {
                    Some(to_date(inputs.value(row), templates.value(row))?)
                });
            }
            return finish(&args.args, Arc::new(Date32Array::from(out)));
        }
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            out.push(if inputs.is_null(row) || templates.is_null(row) {
                None
            } else {
                Some(to_timestamp(inputs.value(row), templates.value(row), zone)?)
            });
        }
        let array = TimestampMicrosecondArray::from(out).with_timezone("+00:00");
        finish(&args.args, Arc::new(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(input: &str, template: &str) -> String {
        match to_timestamp(input, template, Zone::Fixed(0)) {
            Ok(micros) => crate::datetime::timestamp_text(micros, None),
            Err(e) => format!("{} {}", e.code, e.message),
        }
    }

    #[test]
    fn reads_like_postgres() {
        assert_eq!(ts("2020-01-01", "YYYY-MM-DD"), "2020-01-01 00:00:00");
        assert_eq!(ts("20200102", "YYYYMMDD"), "2020-01-02 00:00:00");
        assert_eq!(
            ts("05 Dec 2000 10:04:07.25 PM", "DD Mon YYYY HH:MI:SS.MS AM"),
            "2000-12-05 22:04:07.25"
        );
        assert_eq!(
            ts("2011-12-18 11:38 +05", "YYYY-MM-DD HH12:MI TZH"),
            "2011-12-18 06:38:00"
        );
        assert_eq!(ts("97", "YY"), "1997-01-01 00:00:00");
        assert_eq!(ts("2000   JUN", "YYYY MON"), "2000-06-01 00:00:00");
        assert_eq!(ts("10:30", "HH24:MI"), "0001-01-01 10:30:00 BC");
        assert_eq!(
            ts("2020-02-30", "YYYY-MM-DD"),
            "22008 date/time field value out of range: \"2020-02-30\""
        );
        assert_eq!(
            ts("13:00", "HH:MI"),
            "22007 hour \"13\" is invalid for the 12-hour clock"
        );
        assert_eq!(ts("x", "YYYY"), "22007 invalid value \"x\" for \"YYYY\"");
        assert_eq!(ts("2020-060", "YYYY-DDD"), "2020-02-29 00:00:00");
    }
}

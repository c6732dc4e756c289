//! PostgreSQL's `date` and `timestamp [with time zone]` values: input, output and range.
//!
//! Arrow and DataFusion parse timestamp text through nanoseconds (years 1677 to 2262 only),
//! know neither `infinity` nor `BC` nor PostgreSQL's other input forms, and print timestamps
//! in ISO form with a `T`. Floe holds dates as `Date32` (days since 1970-01-01) and
//! timestamps as `Timestamp(µs)` (microseconds since 1970-01-01, UTC for `timestamptz`), like
//! PostgreSQL's microsecond resolution, with `infinity` / `-infinity` as the extreme values of
//! the integer (which sort after and before every finite value, as PostgreSQL's do).
//!
//! This module is the one place that reads and writes their text:
//! - [`parse_date`] and [`parse_timestamp`] accept what PostgreSQL 15 accepts with
//!   `DateStyle = ISO, MDY` (ISO dates, `Mon DD YYYY`, `DD-Mon-YYYY`, `MM/DD/YYYY`,
//!   `YYYYMMDD`, `T` or space before the time, `am`/`pm`, `BC`/`AD`, numeric offsets, `Z`,
//!   IANA names and common abbreviations, `epoch`, `infinity`, `now`, `today`, …), with
//!   PostgreSQL's errors: 22007 for text that is not a date, 22008 for a field or a result out
//!   of range, 22023 for an unknown time zone;
//! - [`date_text`] and [`timestamp_text`] print as PostgreSQL does with `DateStyle = ISO`.
//!
//! Calendar arithmetic is the proleptic Gregorian calendar with astronomical years (year 0 is
//! 1 BC), done here on plain integers so that the whole of PostgreSQL's range (4714 BC to
//! 5874897 AD for dates) works, beyond chrono's ±262143 years.

use chrono::{Offset, TimeZone};

use crate::error::{sqlstate, SqlError};

/// `timestamp 'infinity'` and `'-infinity'`.
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;
/// `date 'infinity'` and `'-infinity'`.
pub const DATE_INFINITY: i32 = i32::MAX;
pub const DATE_NEG_INFINITY: i32 = i32::MIN;

const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_SECOND: i64 = 1_000_000;

/// The first day PostgreSQL can hold: 4714-11-24 BC (Julian day 0), as days since 1970.
pub const MIN_DAYS: i64 = -2_440_588;
/// The last date PostgreSQL can hold: 5874897-12-31.
pub const MAX_DATE_DAYS: i64 = 2_145_042_905;

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date (astronomical year, month, day) of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Which type a text is read as (for the error messages and what a zone means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Date,
    Timestamp,
    Timestamptz,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::Timestamp => "timestamp",
            Kind::Timestamptz => "timestamp with time zone",
        }
    }
}

/// A time zone: a fixed offset east of UTC in seconds, or a named zone with its rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Fixed(i32),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// The session's zone from DataFusion's `execution.time_zone` (`+00:00`, `Europe/Paris`).
    pub fn from_setting(setting: Option<&str>) -> Zone {
        let Some(s) = setting else {
            return Zone::Fixed(0);
        };
        if let Some(seconds) = offset_seconds(s) {
            return Zone::Fixed(seconds);
        }
        match named_zone(s) {
            Ok(tz) => Zone::Named(tz),
            Err(_) => Zone::Fixed(0),
        }
    }

    /// The zone's offset east of UTC (seconds) at the UTC instant `micros`.
    pub fn offset_at_utc(self, micros: i64) -> i32 {
        match self {
            Zone::Fixed(s) => s,
            Zone::Named(tz) => match chrono::DateTime::from_timestamp_micros(micros) {
                Some(utc) => tz
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc(),
                None => 0,
            },
        }
    }

    /// The zone's offset (seconds) for local wall-clock time `local` (microseconds since
    /// 1970 as if UTC). A time skipped by a daylight-saving jump is read with the offset in
    /// force before the jump, an ambiguous one as standard time, as PostgreSQL does.
    pub fn offset_for_local(self, local: i64) -> i32 {
        let Zone::Named(tz) = self else {
            return self.offset_at_utc(local);
        };
        let Some(naive) = chrono::DateTime::from_timestamp_micros(local).map(|d| d.naive_utc())
        else {
            return 0;
        };
        match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => t.offset().fix().local_minus_utc(),
            chrono::LocalResult::Ambiguous(a, b) => a
                .offset()
                .fix()
                .local_minus_utc()
                .min(b.offset().fix().local_minus_utc()),
            chrono::LocalResult::None => {
                self.offset_at_utc(local.saturating_sub(MICROS_PER_DAY / 4))
            }
        }
    }
}

/// The zone of `AT TIME ZONE` and `timezone(zone, …)`: an IANA name (any case), `UTC`/`GMT`/`Z`,
/// or a POSIX-style offset, positive *west* of Greenwich as in PostgreSQL (`'+05:30'`,
/// `'UTC+5'` and `'-8'` are 5:30 and 5 hours behind UTC and 8 ahead); `None` if unknown.
pub fn posix_zone(text: &str) -> Option<Zone> {
    let t = text.trim();
    if ["utc", "gmt", "z", "zulu", "ut"]
        .iter()
        .any(|u| t.eq_ignore_ascii_case(u))
    {
        return Some(Zone::Fixed(0));
    }
    if let Ok(tz) = named_zone(t) {
        return Some(Zone::Named(tz));
    }
    let rest = ["utc", "gmt"]
        .iter()
        .find_map(|p| {
            t.get(..3)
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &t[3..])
        })
        .unwrap_or(t);
    let signed = if rest.starts_with(['+', '-']) {
        rest.to_string()
    } else {
        format!("+{rest}")
    };
    offset_seconds(&signed).map(|east| Zone::Fixed(-east))
}

/// An IANA zone by name, ignoring case (`europe/paris`).
fn named_zone(name: &str) -> Result<chrono_tz::Tz, ()> {
    if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
        return Ok(tz);
    }
    chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name))
        .copied()
        .ok_or(())
}

/// `+HH`, `+HH:MM`, `+HHMM`, `+HH:MM:SS` (and `-…`): seconds east of UTC.
fn offset_seconds(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    let parts: Vec<&str> = if rest.contains(':') {
        rest.split(':').collect()
    } else if rest.len() <= 2 {
        vec![rest]
    } else if rest.len() == 4 {
        vec![&rest[..2], &rest[2..]]
    } else if rest.len() == 6 {
        vec![&rest[..2], &rest[2..4], &rest[4..]]
    } else {
        return None;
    };
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    let mut seconds = 0i32;
    for (i, p) in parts.iter().enumerate() {
        let v: i32 = p.parse().ok()?;
        if (i > 0 && v > 59) || (i == 0 && v > 15) {
            return None;
        }
        seconds += v * [3600, 60, 1][i];
    }
    Some(sign * seconds)
}

/// Time zone abbreviations PostgreSQL's default `timezone_abbreviations` set knows and people
/// write (hours east of UTC times 60).
const ABBREVIATIONS: [(&str, i32); 24] = [
    ("utc", 0),
    ("gmt", 0),
    ("z", 0),
    ("zulu", 0),
    ("ut", 0),
    ("est", -300),
    ("edt", -240),
    ("cst", -360),
    ("cdt", -300),
    ("mst", -420),
    ("mdt", -360),
    ("pst", -480),
    ("pdt", -420),
    ("akst", -540),
    ("hst", -600),
    ("bst", 60),
    ("wet", 0),
    ("cet", 60),
    ("cest", 120),
    ("eet", 120),
    ("eest", 180),
    ("msk", 180),
    ("jst", 540),
    ("aest", 600),
];

fn zone_word(word: &str) -> Option<Zone> {
    if let Some((_, minutes)) = ABBREVIATIONS.iter().find(|(name, _)| *name == word) {
        return Some(Zone::Fixed(minutes * 60));
    }
    if word.contains('/') || word.len() > 4 {
        return named_zone(word).ok().map(Zone::Named);
    }
    None
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_word(word: &str) -> Option<u32> {
    let word = word.trim_end_matches('.');
    if word.len() < 3 {
        return None;
    }
    let full = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    (0..12)
        .find(|&i| word == MONTHS[i] || word == full[i] || (i == 8 && word == "sept"))
        .map(|i| i as u32 + 1)
}

const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn weekday_word(word: &str) -> bool {
    let word = word.trim_end_matches([',', '.']);
    WEEKDAYS
        .iter()
        .any(|d| word.starts_with(d) && word.len() <= 9)
}

/// Why a text was refused; turned into PostgreSQL's message for the type being read.
#[derive(Debug, PartialEq)]
enum Refusal {
    Syntax,
    FieldRange,
    Zone(String),
}

/// The fields of a date/time text as written.
#[derive(Debug, Default)]
struct Fields {
    year: Option<(i64, usize)>,
    month: Option<u32>,
    day: Option<u32>,
    /// The day of the year (`1999.008`, `1999 008`), instead of a month and day.
    doy: Option<u32>,
    /// Hour, minute, second and microseconds, as written (before am/pm).
    time: Option<(u32, u32, u32, i64)>,
    meridiem: Option<bool>,
    bc: bool,
    zone: Option<Zone>,
}

impl Fields {
    fn date_complete(&self) -> bool {
        self.year.is_some() && (self.month.is_some() && self.day.is_some() || self.doy.is_some())
    }
}

/// A value read from text: finite microseconds (local or UTC) or a special value.
#[derive(Debug, PartialEq)]
enum Reading {
    Finite { days: i64, micros_of_day: i64 },
    Infinity,
    NegInfinity,
}

fn number(s: &str) -> Result<i64, Refusal> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Syntax);
    }
    s.parse().map_err(|_| Refusal::Syntax)
}

/// A year as written (its digit count decides two-digit year handling).
fn year_field(s: &str) -> Result<(i64, usize), Refusal> {
    Ok((number(s)?, s.len()))
}

/// Reads a date word: `2001-01-05`, `2001-Jan-05`, `05-Jan-2001`, `1/5/2001`, `2001/01/05`,
/// `20010105`, `2001.01.05`.
fn read_date_word(word: &str, f: &mut Fields) -> Result<(), Refusal> {
    if f.year.is_some() || f.month.is_some() || f.day.is_some() {
        return Err(Refusal::Syntax);
    }
    let separator = word.chars().find(|c| matches!(c, '-' | '/' | '.'));
    let Some(sep) = separator else {
        // All digits: YYYYMMDD (or a longer or shorter year before MMDD: seven digits are
        // YYYMMDD; six, YYMMDD, are read elsewhere).
        if word.len() >= 7 && word.bytes().all(|b| b.is_ascii_digit()) {
            let (y, md) = word.split_at(word.len() - 4);
            if y.len() > 9 {
                // PostgreSQL reads the digits as fields and finds the year out of range.
                return Err(Refusal::FieldRange);
            }
            f.year = Some(year_field(y)?);
            f.month = Some(number(&md[..2])? as u32);
            f.day = Some(number(&md[2..])? as u32);
            return Ok(());
        }
        return Err(Refusal::Syntax);
    };
    let parts: Vec<&str> = word.split(sep).collect();
    if let [year, doy] = parts[..] {
        // `1999.008`: the year and the day of the year.
        if sep == '.' && year.len() >= 3 && doy.len() == 3 {
            f.year = Some(year_field(year)?);
            f.doy = Some(day_of_year(doy)?);
            return Ok(());
        }
    }
    if parts.len() != 3 {
        return Err(Refusal::Syntax);
    }
    let (a, b, c) = (parts[0], parts[1], parts[2]);
    if let Some(m) = month_word(b) {
        // 2001-Jan-05 or 05-Jan-2001.
        f.month = Some(m);
        if a.len() >= 3 {
            f.year = Some(year_field(a)?);
            f.day = Some(number(c)? as u32);
        } else {
            f.day = Some(number(a)? as u32);
            f.year = Some(year_field(c)?);
        }
        return Ok(());
    }
    if let Some(m) = month_word(a) {
        // Jan-05-2001.
        f.month = Some(m);
        f.day = Some(number(b)? as u32);
        f.year = Some(year_field(c)?);
        return Ok(());
    }
    if a.len() >= 3 {
        f.year = Some(year_field(a)?);
        f.month = Some(number(b)? as u32);
        f.day = Some(number(c)? as u32);
    } else {
        // Month first (DateStyle MDY).
        f.month = Some(number(a)? as u32);
        f.day = Some(number(b)? as u32);
        f.year = Some(year_field(c)?);
    }
    Ok(())
}

/// A day of the year, 1 to 366.
fn day_of_year(s: &str) -> Result<u32, Refusal> {
    match number(s)? {
        n @ 1..=366 => Ok(n as u32),
        _ => Err(Refusal::FieldRange),
    }
}

/// Reads `HH:MM[:SS[.ffffff]]` (hours and minutes at most two digits each).
fn read_time(text: &str) -> Result<(u32, u32, u32, i64), Refusal> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return Err(Refusal::Syntax);
    }
    let hour = number(parts[0])?;
    let minute = number(parts[1])?;
    if parts[0].len() > 2 || parts[1].len() > 2 {
        return Err(Refusal::Syntax);
    }
    let (second, micros) = match parts.get(2) {
        None => (0, 0),
        Some(s) => {
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            if whole.len() > 2 {
                return Err(Refusal::Syntax);
            }
            (number(whole)?, fraction_micros(frac)?)
        }
    };
    Ok((hour as u32, minute as u32, second as u32, micros))
}

/// Microseconds of a fraction's digits, rounded as PostgreSQL rounds them: the fraction read
/// as a double, times a million, to the nearest integer (ties to even), so `.1234565` is
/// 123456 µs.
fn fraction_micros(digits: &str) -> Result<i64, Refusal> {
    if digits.is_empty() {
        return Ok(0);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Syntax);
    }
    let fraction: f64 = format!("0.{digits}").parse().map_err(|_| Refusal::Syntax)?;
    Ok((fraction * 1_000_000.0).round_ties_even() as i64)
}

/// Splits a time word from a zone written right after it (`10:00:00+02`, `10:00Z`).
fn split_time_zone(word: &str) -> (&str, Option<&str>) {
    if let Some(at) = word.find(['+', '-']) {
        return (&word[..at], Some(&word[at..]));
    }
    if let Some(t) = word.strip_suffix('z') {
        return (t, Some("z"));
    }
    (word, None)
}

fn special(word: &str) -> Option<&'static str> {
    [
        "infinity",
        "+infinity",
        "-infinity",
        "epoch",
        "now",
        "today",
        "tomorrow",
        "yesterday",
    ]
    .into_iter()
    .find(|s| *s == word)
}

/// The lower-cased words of date/time text, split at ISO 8601's `T` between a date and a
/// time.
fn split_words(text: &str) -> Vec<String> {
    // Other punctuation only separates fields (`"2026-08-09"`, `(2026-08-09)`, `2026_08_09`),
    // as in PostgreSQL's lexer; `_` inside a word stays (`america/new_york`).
    let mut previous = ' ';
    let lower: String = text
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            let keep = !c.is_ascii_punctuation()
                || matches!(c, '-' | '+' | '/' | '.' | ':' | ',')
                || (c == '_' && previous.is_ascii_alphabetic());
            previous = c;
            if keep {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut words: Vec<String> = Vec::new();
    for w in lower.split_ascii_whitespace() {
        match w.find('t') {
            Some(at)
                if at > 0
                    && w.as_bytes()[at - 1].is_ascii_digit()
                    && w.as_bytes().get(at + 1).is_some_and(u8::is_ascii_digit) =>
            {
                words.push(w[..at].to_string());
                words.push(w[at + 1..].to_string());
            }
            _ => words.push(w.to_string()),
        }
    }
    words
}

/// Reads date/time text into fields (see the module doc for the forms).
fn read_fields(text: &str) -> Result<Fields, Refusal> {
    let words = split_words(text);
    let mut f = Fields::default();
    let mut i = 0;
    while i < words.len() {
        let word = words[i].trim_end_matches(',');
        i += 1;
        if word.is_empty() {
            continue;
        }
        let first = word.as_bytes()[0];
        if (first == b'+' || first == b'-') && f.time.is_some() {
            f.zone = Some(read_zone(word)?);
            continue;
        }
        if word.contains(':') {
            if f.time.is_some() || !f.date_complete() {
                return Err(Refusal::Syntax);
            }
            let (time, zone) = split_time_zone(word);
            f.time = Some(read_time(time)?);
            if let Some(zone) = zone {
                f.zone = Some(read_zone(zone)?);
            }
            continue;
        }
        match word {
            "am" | "a.m." => {
                f.meridiem = Some(false);
                continue;
            }
            "pm" | "p.m." => {
                f.meridiem = Some(true);
                continue;
            }
            "bc" | "b.c." => {
                f.bc = true;
                continue;
            }
            "ad" | "a.d." => continue,
            _ => {}
        }
        if first.is_ascii_digit() {
            let bare = word.bytes().all(|b| b.is_ascii_digit());
            if bare && word.len() < 8 && (f.month.is_some() || f.day.is_some()) {
                // `Jan 5 2001`, `5 Jan 2001`: the day, then the year.
                if f.month.is_some() && f.day.is_none() {
                    f.day = Some(number(word)? as u32);
                } else if f.year.is_none() {
                    f.year = Some(year_field(word)?);
                } else {
                    return Err(Refusal::Syntax);
                }
                continue;
            }
            if bare
                && (3..=4).contains(&word.len())
                && f.year.is_none()
                && f.month.is_none()
                && f.day.is_none()
            {
                // A number of three or four digits first is the year (`2001 jan 5`).
                f.year = Some(year_field(word)?);
                continue;
            }
            if bare
                && word.len() == 3
                && f.year.is_some()
                && f.month.is_none()
                && f.day.is_none()
                && f.doy.is_none()
            {
                // `1999 008`: three digits after the year are the day of the year.
                f.doy = Some(day_of_year(word)?);
                continue;
            }
            if bare && word.len() <= 2 && f.year.is_some() && f.month.is_none() && f.day.is_none() {
                // `2026 08 09`: year, month, day.
                f.month = Some(number(word)? as u32);
                continue;
            }
            if bare && word.len() <= 2 && f.year.is_none() && f.month.is_none() {
                // `5 Jan 2001`.
                f.day = Some(number(word)? as u32);
                continue;
            }
            read_date_word(word, &mut f)?;
            continue;
        }
        if let Some(m) = month_word(word) {
            if f.month.is_some() {
                return Err(Refusal::Syntax);
            }
            f.month = Some(m);
            continue;
        }
        if weekday_word(word) && !f.date_complete() {
            continue;
        }
        if f.date_complete() {
            f.zone = Some(read_zone(word)?);
            continue;
        }
        return Err(Refusal::Syntax);
    }
    Ok(f)
}

/// Why text without a whole date is refused. PostgreSQL checks the fields it has read before
/// it asks for the missing ones, reads bare numbers month first (`DateStyle` MDY) and six
/// digits as YYMMDD: `'31'`, `'jan 32'` and `'0 0'` are a field out of range (22008), `'12'`
/// is not a date (22007).
fn incomplete_date(text: &str) -> Refusal {
    let words = split_words(text);
    let (mut month, mut day): (Option<i64>, Option<i64>) = (None, None);
    let mut numeric_month = false;
    for word in &words {
        let bare = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
        if let Some(named) = month_word(word) {
            match month {
                None => {}
                // A number read as the month was the day (`5 jan`).
                Some(first) if numeric_month && day.is_none() && (1..=31).contains(&first) => {
                    day = Some(first)
                }
                Some(_) => return Refusal::Syntax,
            }
            month = Some(i64::from(named));
            numeric_month = false;
        } else if bare && word.len() == 6 && words.len() == 1 {
            month = word[2..4].parse().ok();
            day = word[4..].parse().ok();
        } else if bare && word.len() <= 2 {
            let value = word.parse().ok();
            if month.is_none() {
                month = value;
                numeric_month = true;
            } else if day.is_none() {
                day = value;
            } else {
                return Refusal::Syntax;
            }
        } else {
            return Refusal::Syntax;
        }
    }
    let month_ok = month.is_none_or(|m| (1..=12).contains(&m));
    let day_ok = day.is_none_or(|d| (1..=31).contains(&d));
    if words.is_empty() || (month_ok && day_ok) {
        Refusal::Syntax
    } else {
        Refusal::FieldRange
    }
}

fn read_zone(word: &str) -> Result<Zone, Refusal> {
    if let Some(seconds) = offset_seconds(word) {
        return Ok(Zone::Fixed(seconds));
    }
    if word.starts_with(['+', '-']) {
        return Err(Refusal::Syntax);
    }
    zone_word(word).ok_or_else(|| Refusal::Zone(word.to_string()))
}

/// Reads `text` into days and microseconds of day (local time unless a zone was written,
/// which is returned), or a special value.
fn read(text: &str, now_micros: i64, session: Zone) -> Result<(Reading, Option<Zone>), Refusal> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(word) = special(&lower) {
        let today = || {
            let local = now_micros + i64::from(session.offset_at_utc(now_micros)) * 1_000_000;
            local.div_euclid(MICROS_PER_DAY)
        };
        let reading = match word {
            "infinity" | "+infinity" => Reading::Infinity,
            "-infinity" => Reading::NegInfinity,
            "epoch" => {
                return Ok((
                    Reading::Finite {
                        days: 0,
                        micros_of_day: 0,
                    },
                    Some(Zone::Fixed(0)),
                ))
            }
            "now" => {
                return Ok((
                    Reading::Finite {
                        days: now_micros.div_euclid(MICROS_PER_DAY),
                        micros_of_day: now_micros.rem_euclid(MICROS_PER_DAY),
                    },
                    Some(Zone::Fixed(0)),
                ))
            }
            other => {
                let shift = match other {
                    "tomorrow" => 1,
                    "yesterday" => -1,
                    _ => 0,
                };
                Reading::Finite {
                    days: today() + shift,
                    micros_of_day: 0,
                }
            }
        };
        return Ok((reading, None));
    }
    let f = read_fields(text).map_err(|refusal| match refusal {
        Refusal::Syntax => incomplete_date(text),
        other => other,
    })?;
    let Some((year, digits)) = f.year else {
        return Err(incomplete_date(text));
    };
    let mut year = year;
    if digits <= 2 && !f.bc {
        year += if year < 70 { 2000 } else { 1900 };
    }
    if f.bc {
        if year == 0 {
            return Err(Refusal::FieldRange);
        }
        year = 1 - year;
    } else if year == 0 {
        return Err(Refusal::FieldRange);
    }
    let days = match (f.month, f.day, f.doy) {
        // PostgreSQL counts the day from January 1st, so day 366 of a common year is January
        // 1st of the next.
        (_, _, Some(doy)) => days_from_civil(year, 1, 1) + i64::from(doy) - 1,
        (Some(month), Some(day), None) => {
            if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
                return Err(Refusal::FieldRange);
            }
            days_from_civil(year, month, day)
        }
        _ => return Err(incomplete_date(text)),
    };
    let (mut hour, minute, second, micros) = f.time.unwrap_or((0, 0, 0, 0));
    if let Some(pm) = f.meridiem {
        hour = with_meridiem(hour, pm)?;
    }
    let exact = minute == 0 && second == 0 && micros == 0;
    if hour > 24 || (hour == 24 && !exact) || minute > 59 || second > 60 {
        return Err(Refusal::FieldRange);
    }
    if second == 60 && micros != 0 {
        return Err(Refusal::FieldRange);
    }
    let micros_of_day = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second))
        * MICROS_PER_SECOND
        + micros;
    Ok((
        Reading::Finite {
            days,
            micros_of_day,
        },
        f.zone,
    ))
}

fn refusal_error(refusal: Refusal, kind: Kind, text: &str) -> SqlError {
    match refusal {
        Refusal::Syntax => SqlError::new(
            sqlstate::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type {}: \"{text}\"", kind.name()),
        ),
        Refusal::FieldRange => SqlError::new(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{text}\""),
        ),
        Refusal::Zone(zone) => SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("time zone \"{zone}\" not recognized"),
        ),
    }
}

fn out_of_range(kind: Kind, text: &str) -> SqlError {
    let what = if kind == Kind::Date {
        "date"
    } else {
        "timestamp"
    };
    SqlError::new(
        sqlstate::DATETIME_FIELD_OVERFLOW,
        format!("{what} out of range: \"{text}\""),
    )
}

/// An hour written with `am` (`pm`: true) as an hour of the day: 12 am is 0, 0 to 12 only.
fn with_meridiem(hour: u32, pm: bool) -> Result<u32, Refusal> {
    Ok(match (pm, hour) {
        (_, h) if h > 12 => return Err(Refusal::FieldRange),
        (false, 12) => 0,
        (true, 12) => 12,
        (true, h) => h + 12,
        (false, h) => h,
    })
}

/// Reads a `time` as PostgreSQL's `time_in` does, as microseconds since midnight (up to
/// `24:00:00` included): `HH:MM[:SS[.ffffff]]`, `HHMM` and `HHMMSS[.ffffff]`, `am`/`pm`, a
/// leading `T`; a date before the time and a zone offset or abbreviation after it are read
/// and ignored; `allballs` is midnight and `now` the session's wall-clock time. 22007 for
/// text that is not a time (a bare number, a date alone, a zone name, which needs a date),
/// 22008 for a field out of range.
pub fn parse_time(text: &str, now_micros: i64, session: Zone) -> Result<i64, SqlError> {
    read_time_of_day(text, now_micros, session).map_err(|refusal| match refusal {
        Refusal::FieldRange => SqlError::new(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{text}\""),
        ),
        Refusal::Syntax | Refusal::Zone(_) => SqlError::new(
            sqlstate::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type time: \"{text}\""),
        ),
    })
}

fn read_time_of_day(text: &str, now_micros: i64, session: Zone) -> Result<i64, Refusal> {
    let words = split_words(text);
    match words.as_slice() {
        [only] if only == "now" => {
            let local =
                now_micros + i64::from(session.offset_at_utc(now_micros)) * MICROS_PER_SECOND;
            return Ok(local.rem_euclid(MICROS_PER_DAY));
        }
        [only] if only == "allballs" => return Ok(0),
        _ => {}
    }
    let mut time: Option<(u32, u32, u32, i64)> = None;
    let mut meridiem = None;
    let mut date = Fields::default();
    let mut bad_date = false;
    for word in &words {
        let word = word.trim_end_matches(',');
        let word = match word.strip_prefix('t') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => word,
        };
        if word.is_empty() {
            continue;
        }
        let first = word.as_bytes()[0];
        if word.contains(':') {
            if time.is_some() {
                return Err(Refusal::Syntax);
            }
            let (clock, zone) = split_time_zone(word);
            time = Some(read_clock(clock)?);
            if let Some(zone) = zone {
                read_zone(zone)?;
            }
            continue;
        }
        if (first == b'+' || first == b'-') && time.is_some() {
            read_zone(word)?;
            continue;
        }
        match word {
            "am" | "a.m." => meridiem = Some(false),
            "pm" | "p.m." => meridiem = Some(true),
            "bc" | "b.c." | "ad" | "a.d." => {}
            _ if first.is_ascii_digit() => {
                let (whole, fraction) = word.split_once('.').unwrap_or((word, ""));
                let digits = whole.bytes().all(|b| b.is_ascii_digit());
                if digits && fraction.is_empty() && date.month.is_some() && whole.len() <= 4 {
                    // The day or year of `Jan 5 2020`.
                } else if digits && time.is_none() && (whole.len() == 4 || whole.len() == 6) {
                    // HHMM or HHMMSS.
                    let field = |at: usize| whole[at..at + 2].parse::<u32>().unwrap_or(0);
                    let (hour, minute) = (field(0), field(2));
                    let (second, micros) = match whole.len() {
                        6 => (field(4), fraction_micros(fraction)?),
                        _ if fraction.is_empty() => (0, 0),
                        _ => return Err(Refusal::Syntax),
                    };
                    time = Some((hour, minute, second, micros));
                } else if time.is_some() {
                    // A date comes before the time.
                    return Err(Refusal::Syntax);
                } else {
                    read_date_word(word, &mut date)?;
                    let (Some(month), Some(day)) = (date.month, date.day) else {
                        return Err(Refusal::Syntax);
                    };
                    // Refused only once a time was found (a date alone is not a time).
                    bad_date |= !(1..=12).contains(&month) || !(1..=31).contains(&day);
                }
            }
            _ if month_word(word).is_some() => date.month = month_word(word),
            _ if ABBREVIATIONS.iter().any(|(name, _)| *name == word) => {}
            _ => return Err(Refusal::Syntax),
        }
    }
    let (mut hour, minute, second, micros) = time.ok_or(Refusal::Syntax)?;
    if bad_date {
        return Err(Refusal::FieldRange);
    }
    if let Some(pm) = meridiem {
        hour = with_meridiem(hour, pm)?;
    }
    if hour > 24 || minute > 59 || second > 60 {
        return Err(Refusal::FieldRange);
    }
    let total = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second))
        * MICROS_PER_SECOND
        + micros;
    if total > MICROS_PER_DAY {
        return Err(Refusal::FieldRange);
    }
    Ok(total)
}

/// Reads the `HH:MM[:SS[.ffffff]]` of a time (`12:` is noon).
fn read_clock(text: &str) -> Result<(u32, u32, u32, i64), Refusal> {
    let parts: Vec<&str> = text.split(':').collect();
    let field = |s: &str| -> Result<u32, Refusal> {
        if s.len() > 2 {
            return Err(Refusal::FieldRange);
        }
        Ok(number(s)? as u32)
    };
    match parts.as_slice() {
        [hour, ""] => Ok((number(hour)?.min(99) as u32, 0, 0, 0)),
        [hour, minute] => Ok((number(hour)?.min(99) as u32, field(minute)?, 0, 0)),
        [hour, minute, second] => {
            let (whole, fraction) = second.split_once('.').unwrap_or((second, ""));
            Ok((
                number(hour)?.min(99) as u32,
                field(minute)?,
                field(whole)?,
                fraction_micros(fraction)?,
            ))
        }
        _ => Err(Refusal::Syntax),
    }
}

/// Reads a `date` (days since 1970-01-01; `infinity` is [`DATE_INFINITY`]). `now_micros` is
/// the statement's time for `now`/`today`, `session` the session's time zone.
pub fn parse_date(text: &str, now_micros: i64, session: Zone) -> Result<i32, SqlError> {
    let (reading, zone) =
        read(text, now_micros, session).map_err(|r| refusal_error(r, Kind::Date, text))?;
    match reading {
        Reading::Infinity => Ok(DATE_INFINITY),
        Reading::NegInfinity => Ok(DATE_NEG_INFINITY),
        Reading::Finite {
            days,
            micros_of_day,
        } => {
            // `now` is a UTC instant: its date is the session's local date.
            let days = match zone {
                Some(Zone::Fixed(0)) if text.trim().eq_ignore_ascii_case("now") => {
                    let utc = days * MICROS_PER_DAY + micros_of_day;
                    (utc + i64::from(session.offset_at_utc(utc)) * MICROS_PER_SECOND)
                        .div_euclid(MICROS_PER_DAY)
                }
                _ => days,
            };
            if !(MIN_DAYS..=MAX_DATE_DAYS).contains(&days) {
                return Err(out_of_range(Kind::Date, text));
            }
            Ok(days as i32)
        }
    }
}

/// Reads a `timestamp` (`kind` [`Kind::Timestamp`]: local time, a written zone is ignored as
/// PostgreSQL ignores it) or `timestamptz` (a written zone, else `session`, gives the UTC
/// instant) as microseconds since 1970-01-01.
pub fn parse_timestamp(
    text: &str,
    kind: Kind,
    now_micros: i64,
    session: Zone,
) -> Result<i64, SqlError> {
    let (reading, zone) =
        read(text, now_micros, session).map_err(|r| refusal_error(r, kind, text))?;
    let (days, micros_of_day) = match reading {
        Reading::Infinity => return Ok(TIMESTAMP_INFINITY),
        Reading::NegInfinity => return Ok(TIMESTAMP_NEG_INFINITY),
        Reading::Finite {
            days,
            micros_of_day,
        } => (days, micros_of_day),
    };
    if days < MIN_DAYS {
        return Err(out_of_range(kind, text));
    }
    let local = days
        .checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(micros_of_day))
        .filter(|m| *m < TIMESTAMP_INFINITY)
        .ok_or_else(|| out_of_range(kind, text))?;
    let is_now = zone == Some(Zone::Fixed(0)) && text.trim().eq_ignore_ascii_case("now");
    let micros = match (kind, zone) {
        // `now` is an instant; as a timestamp without zone it is the session's wall clock.
        (Kind::Timestamp, Some(_)) if is_now => {
            local + i64::from(session.offset_at_utc(local)) * MICROS_PER_SECOND
        }
        (Kind::Timestamp, _) | (Kind::Date, _) => local,
        (Kind::Timestamptz, Some(zone)) => {
            local - i64::from(zone.offset_for_local(local)) * MICROS_PER_SECOND
        }
        (Kind::Timestamptz, None) => {
            local - i64::from(session.offset_for_local(local)) * MICROS_PER_SECOND
        }
    };
    Ok(micros)
}

/// A date as PostgreSQL prints it (`2001-01-05`, `0044-03-15 BC`, `infinity`).
pub fn date_text(days: i32) -> String {
    match days {
        DATE_INFINITY => "infinity".into(),
        DATE_NEG_INFINITY => "-infinity".into(),
        _ => {
            let (year, month, day) = civil_from_days(i64::from(days));
            let (year, bc) = era(year);
            format!("{year:04}-{month:02}-{day:02}{bc}")
        }
    }
}

fn era(year: i64) -> (i64, &'static str) {
    if year <= 0 {
        (1 - year, " BC")
    } else {
        (year, "")
    }
}

/// A timestamp as PostgreSQL prints it: `micros` is local time for `timestamp`; for
/// `timestamptz` pass the UTC instant and the session zone to print it in with its offset.
pub fn timestamp_text(micros: i64, zone: Option<Zone>) -> String {
    match micros {
        TIMESTAMP_INFINITY => return "infinity".into(),
        TIMESTAMP_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let offset = zone.map(|z| z.offset_at_utc(micros));
    let local = micros.saturating_add(i64::from(offset.unwrap_or(0)) * MICROS_PER_SECOND);
    let (year, month, day) = civil_from_days(local.div_euclid(MICROS_PER_DAY));
    let (year, bc) = era(year);
    let in_day = local.rem_euclid(MICROS_PER_DAY);
    let secs = in_day / MICROS_PER_SECOND;
    let mut out = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    push_fraction(&mut out, in_day % MICROS_PER_SECOND);
    if let Some(offset) = offset {
        out.push_str(&offset_text(offset));
    }
    out.push_str(bc);
    out
}

/// `.ffffff` with trailing zeros dropped (nothing for a whole second), as PostgreSQL prints.
pub fn push_fraction(out: &mut String, micros: i64) {
    if micros != 0 {
        let digits = format!("{micros:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// `+HH`, `-HH:MM`, `+HH:MM:SS` as PostgreSQL prints a UTC offset.
pub fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    match (m, sec) {
        (0, 0) => format!("{sign}{h:02}"),
        (_, 0) => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}:{sec:02}"),
    }
}

/// The patterns of PostgreSQL's `to_char` for dates and times, longest first (so `HH24` is
/// taken before `HH`), matched in any case; the case written shapes names (`Month`, `MONTH`,
/// `month`). `TH`/`th` after a number is its ordinal suffix.
const CHAR_PATTERNS: [&str; 48] = [
    "Y,YYY", "A.M.", "P.M.", "B.C.", "A.D.", "IDDD", "HH24", "HH12", "SSSS", "YYYY", "IYYY",
    "MONTH", "DAY", "YYY", "IYY", "MON", "DDD", "TZH", "TZM", "HH", "MI", "SS", "MS", "US", "AM",
    "PM", "YY", "IY", "BC", "AD", "MM", "DY", "DD", "ID", "WW", "IW", "CC", "RM", "TZ", "OF", "Y",
    "I", "D", "W", "J", "Q", "FM", "FX",
];

pub(crate) const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const ROMAN_MONTHS: [&str; 12] = [
    "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII",
];

/// `n` with PostgreSQL's `th`/`st`/`nd`/`rd` suffix.
fn ordinal(n: i64) -> &'static str {
    match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

/// A name in the case the pattern was written in (`MONTH`, `Month`, `month`), padded to 9
/// characters unless in fill mode.
fn cased_name(name: &str, pattern: &str, fill: bool, abbreviate: bool) -> String {
    let name = if abbreviate { &name[..3] } else { name };
    let first = pattern.chars().next().unwrap_or('M');
    let second = pattern.chars().nth(1).unwrap_or('o');
    let text = if first.is_ascii_lowercase() {
        name.to_ascii_lowercase()
    } else if second.is_ascii_uppercase() {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    };
    if abbreviate || fill {
        text
    } else {
        format!("{text:<9}")
    }
}

/// PostgreSQL's `to_char(timestamp[tz] | date, template)`: `micros` is the instant (UTC for
/// `timestamptz`, with the session's `zone` to print it in), `None` for infinite values (which
/// PostgreSQL answers with NULL).
pub fn to_char(micros: i64, zone: Option<Zone>, template: &str) -> Option<String> {
    if micros == TIMESTAMP_INFINITY || micros == TIMESTAMP_NEG_INFINITY {
        return None;
    }
    let offset = zone.map(|z| z.offset_at_utc(micros)).unwrap_or(0);
    let local = micros.saturating_add(i64::from(offset) * MICROS_PER_SECOND);
    let days = local.div_euclid(MICROS_PER_DAY);
    let in_day = local.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 4).rem_euclid(7) as usize; // 0 = Sunday; 1970-01-01 was a Thursday.
    let day_of_year = days - days_from_civil(year, 1, 1) + 1;
    let monday_based = (weekday as i64 + 6) % 7;
    let thursday = days - monday_based + 3;
    let iso_year = civil_from_days(thursday).0;
    let iso_week = (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1;
    let iso_day_of_year = days
        - (days_from_civil(iso_year, 1, 4) - (days_from_civil(iso_year, 1, 4) + 3).rem_euclid(7))
        + 1;
    let seconds = in_day / MICROS_PER_SECOND;
    let (hour, minute, second) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    let micro = in_day % MICROS_PER_SECOND;
    let (shown_year, bc) = era(year);
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
    let zone_name = match zone {
        None => String::new(),
        Some(Zone::Named(tz)) => match chrono::DateTime::from_timestamp_micros(micros) {
            Some(utc) => {
                use chrono_tz::OffsetName;
                let o = tz.offset_from_utc_datetime(&utc.naive_utc());
                o.abbreviation()
                    .map(str::to_string)
                    .unwrap_or_else(|| offset_text(offset))
            }
            None => offset_text(offset),
        },
        Some(Zone::Fixed(0)) => "UTC".into(),
        Some(Zone::Fixed(s)) => offset_text(s),
    };

    let mut out = String::new();
    let chars: Vec<char> = template.chars().collect();
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
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '\\' && i + 1 < chars.len() {
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        let rest: String = chars[i..].iter().collect();
        let upper = rest.to_ascii_uppercase();
        let Some(pattern) = CHAR_PATTERNS.iter().find(|p| upper.starts_with(*p)) else {
            out.push(c);
            i += 1;
            continue;
        };
        let written: String = chars[i..i + pattern.chars().count()].iter().collect();
        i += pattern.chars().count();
        let key = written.to_ascii_uppercase();
        let number = |value: i64, width: usize| -> String {
            if fill {
                value.to_string()
            } else {
                format!("{value:0width$}")
            }
        };
        let (text, value): (String, Option<i64>) = match key.as_str() {
            "FM" => {
                fill = true;
                continue;
            }
            "FX" => continue,
            "HH" | "HH12" => (number(hour12, 2), Some(hour12)),
            "HH24" => (number(hour, 2), Some(hour)),
            "MI" => (number(minute, 2), Some(minute)),
            "SS" => (number(second, 2), Some(second)),
            "SSSS" => (seconds.to_string(), Some(seconds)),
            "MS" => (number(micro / 1000, 3), Some(micro / 1000)),
            "US" => (number(micro, 6), Some(micro)),
            "AM" | "PM" | "A.M." | "P.M." => {
                let pm = hour >= 12;
                let dotted = written.contains('.');
                let word = match (pm, dotted) {
                    (false, false) => "AM",
                    (true, false) => "PM",
                    (false, true) => "A.M.",
                    (true, true) => "P.M.",
                };
                let word = if written.starts_with(|c: char| c.is_ascii_lowercase()) {
                    word.to_ascii_lowercase()
                } else {
                    word.to_string()
                };
                (word, None)
            }
            "BC" | "AD" | "B.C." | "A.D." => {
                let dotted = written.contains('.');
                let word = match (bc.is_empty(), dotted) {
                    (true, false) => "AD",
                    (false, false) => "BC",
                    (true, true) => "A.D.",
                    (false, true) => "B.C.",
                };
                let word = if written.starts_with(|c: char| c.is_ascii_lowercase()) {
                    word.to_ascii_lowercase()
                } else {
                    word.to_string()
                };
                (word, None)
            }
            "Y,YYY" => (
                format!("{},{:03}", shown_year / 1000, shown_year % 1000),
                Some(shown_year),
            ),
            "YYYY" => (number(shown_year, 4), Some(shown_year)),
            "YYY" => (number(shown_year % 1000, 3), Some(shown_year % 1000)),
            "YY" => (number(shown_year % 100, 2), Some(shown_year % 100)),
            "Y" => (number(shown_year % 10, 1), Some(shown_year % 10)),
            "IYYY" => (number(iso_year, 4), Some(iso_year)),
            "IYY" => (number(iso_year % 1000, 3), Some(iso_year % 1000)),
            "IY" => (number(iso_year % 100, 2), Some(iso_year % 100)),
            "I" => (number(iso_year % 10, 1), Some(iso_year % 10)),
            "MONTH" => (
                cased_name(MONTH_NAMES[month as usize - 1], &written, fill, false),
                None,
            ),
            "MON" => (
                cased_name(MONTH_NAMES[month as usize - 1], &written, fill, true),
                None,
            ),
            "MM" => (number(i64::from(month), 2), Some(i64::from(month))),
            "DAY" => (cased_name(DAY_NAMES[weekday], &written, fill, false), None),
            "DY" => (cased_name(DAY_NAMES[weekday], &written, fill, true), None),
            "DDD" => (number(day_of_year, 3), Some(day_of_year)),
            "IDDD" => (number(iso_day_of_year, 3), Some(iso_day_of_year)),
            "DD" => (number(i64::from(day), 2), Some(i64::from(day))),
            "D" => (((weekday + 1) as i64).to_string(), Some(weekday as i64 + 1)),
            "ID" => ((monday_based + 1).to_string(), Some(monday_based + 1)),
            "W" => {
                let w = (i64::from(day) - 1) / 7 + 1;
                (w.to_string(), Some(w))
            }
            "WW" => {
                let w = (day_of_year - 1) / 7 + 1;
                (number(w, 2), Some(w))
            }
            "IW" => (number(iso_week, 2), Some(iso_week)),
            "CC" => {
                let cc = if year > 0 {
                    (year + 99) / 100
                } else {
                    -((shown_year + 99) / 100)
                };
                (number(cc, 2), Some(cc))
            }
            "J" => {
                let j = days + 2_440_588;
                (j.to_string(), Some(j))
            }
            "Q" => {
                let q = (i64::from(month) - 1) / 3 + 1;
                (q.to_string(), Some(q))
            }
            "RM" => {
                let rm = ROMAN_MONTHS[month as usize - 1];
                let rm = if written == "rm" {
                    rm.to_ascii_lowercase()
                } else {
                    rm.to_string()
                };
                (if fill { rm } else { format!("{rm:<4}") }, None)
            }
            "TZ" => (
                if written == "tz" {
                    zone_name.to_ascii_lowercase()
                } else {
                    zone_name.clone()
                },
                None,
            ),
            "TZH" => {
                let sign = if offset < 0 { '-' } else { '+' };
                (format!("{sign}{:02}", offset.abs() / 3600), None)
            }
            "TZM" => (format!("{:02}", (offset.abs() / 60) % 60), None),
            "OF" => (
                if zone.is_some() {
                    offset_text(offset)
                } else {
                    String::new()
                },
                None,
            ),
            _ => (written.clone(), None),
        };
        fill = false;
        out.push_str(&text);
        // A `TH`/`th` suffix: the ordinal ending of the number just written.
        if let Some(v) = value {
            let next: String = chars[i..].iter().take(2).collect();
            if next == "TH" || next == "th" {
                let suffix = ordinal(v.abs());
                out.push_str(&if next == "TH" {
                    suffix.to_ascii_uppercase()
                } else {
                    suffix.to_string()
                });
                i += 2;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTC: Zone = Zone::Fixed(0);

    fn ts(text: &str) -> Result<String, String> {
        parse_timestamp(text, Kind::Timestamp, 0, UTC)
            .map(|m| timestamp_text(m, None))
            .map_err(|e| format!("{} {}", e.code, e.message))
    }

    fn tstz(text: &str, session: Zone) -> Result<String, String> {
        parse_timestamp(text, Kind::Timestamptz, 0, session)
            .map(|m| timestamp_text(m, Some(UTC)))
            .map_err(|e| format!("{} {}", e.code, e.message))
    }

    fn date(text: &str) -> Result<String, String> {
        parse_date(text, 0, UTC)
            .map(date_text)
            .map_err(|e| format!("{} {}", e.code, e.message))
    }

    #[test]
    fn civil_round_trip() {
        for days in (MIN_DAYS..MAX_DATE_DAYS).step_by(7919) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(MIN_DAYS), (-4713, 11, 24));
        assert_eq!(civil_from_days(MAX_DATE_DAYS), (5_874_897, 12, 31));
    }

    #[test]
    fn timestamps_as_postgres_reads_them() {
        assert_eq!(ts("3000-01-01").unwrap(), "3000-01-01 00:00:00");
        assert_eq!(ts("1500-01-01 10:00").unwrap(), "1500-01-01 10:00:00");
        assert_eq!(
            ts("2000-01-01T10:00:00.1234567").unwrap(),
            "2000-01-01 10:00:00.123457"
        );
        assert_eq!(ts("2000-01-01 24:00").unwrap(), "2000-01-02 00:00:00");
        assert_eq!(ts("2000-01-01 23:59:60").unwrap(), "2000-01-02 00:00:00");
        assert_eq!(
            ts("2000-01-01 10:00:00 +0200").unwrap(),
            "2000-01-01 10:00:00"
        );
        assert_eq!(ts("2000-01-01 10:00 pm").unwrap(), "2000-01-01 22:00:00");
        assert_eq!(ts("2000-01-01 12:00 am").unwrap(), "2000-01-01 00:00:00");
        assert_eq!(ts("0044-03-15 12:00 BC").unwrap(), "0044-03-15 12:00:00 BC");
        assert_eq!(ts("infinity").unwrap(), "infinity");
        assert_eq!(ts(" -Infinity ").unwrap(), "-infinity");
        assert_eq!(ts("epoch").unwrap(), "1970-01-01 00:00:00");
        assert_eq!(ts("Jan 5 2001 10:00").unwrap(), "2001-01-05 10:00:00");
        assert!(ts("10:00 2000-01-01").unwrap_err().starts_with("22007"));
        assert!(ts("2000-01-01 10").unwrap_err().starts_with("22007"));
        assert!(ts("2000-02-30")
            .unwrap_err()
            .starts_with("22008 date/time field"));
        assert!(ts("300000-01-01")
            .unwrap_err()
            .starts_with("22008 timestamp out of range"));
        assert!(ts("").unwrap_err().starts_with("22007"));
        assert!(ts("2000-01-01 10:00 Mars/Olympus")
            .unwrap_err()
            .starts_with("22023"));
    }

    #[test]
    fn zones() {
        assert_eq!(
            tstz("2000-01-01 10:00 +05:30", UTC).unwrap(),
            "2000-01-01 04:30:00+00"
        );
        assert_eq!(
            tstz("2000-01-01 10:00 Europe/Paris", UTC).unwrap(),
            "2000-01-01 09:00:00+00"
        );
        assert_eq!(
            tstz("2000-01-01 10:00 PST", UTC).unwrap(),
            "2000-01-01 18:00:00+00"
        );
        assert_eq!(
            tstz("2000-01-01T10:00:00Z", Zone::Fixed(3600)).unwrap(),
            "2000-01-01 10:00:00+00"
        );
        let paris = Zone::Named(chrono_tz::Europe::Paris);
        assert_eq!(
            tstz("2000-07-01 10:00", paris).unwrap(),
            "2000-07-01 08:00:00+00"
        );
        assert_eq!(
            timestamp_text(0, Some(Zone::Fixed(-(5 * 3600 + 30 * 60)))),
            "1969-12-31 18:30:00-05:30"
        );
    }

    #[test]
    fn dates_as_postgres_reads_them() {
        for text in [
            "Jan 5 2001",
            "05-Jan-2001",
            "1/5/2001",
            "20010105",
            "2001-Jan-05",
            " 2001-01-05 ",
            "January 5, 2001",
            "2001-01-05 10:00",
            "1/5/01",
        ] {
            assert_eq!(date(text).unwrap(), "2001-01-05", "{text}");
        }
        assert_eq!(date("5874897-12-31").unwrap(), "5874897-12-31");
        assert_eq!(date("4714-11-24 BC").unwrap(), "4714-11-24 BC");
        assert!(date("4714-11-23 BC")
            .unwrap_err()
            .starts_with("22008 date out of range"));
        assert!(date("2000-13-01").unwrap_err().starts_with("22008"));
        assert!(date("0000-01-01").unwrap_err().starts_with("22008"));
        assert!(date("garbage")
            .unwrap_err()
            .starts_with("22007 invalid input syntax for type date"));
        assert_eq!(date("infinity").unwrap(), "infinity");
        // The year and the day of the year.
        assert_eq!(date("1999.008").unwrap(), "1999-01-08");
        assert_eq!(date("1999 366").unwrap(), "2000-01-01");
        assert_eq!(date("2000.366").unwrap(), "2000-12-31");
        assert_eq!(date("\\204\\225").unwrap(), "0204-08-12");
        assert_eq!(date("1999 008 bc").unwrap(), "1999-01-08 BC");
        assert!(date("1999 367").unwrap_err().starts_with("22008"));
        assert!(date("1999 000").unwrap_err().starts_with("22008"));
        assert!(date("1999.08").unwrap_err().starts_with("22007"));
        assert_eq!(ts("204 225 10:30").unwrap(), "0204-08-12 10:30:00");
        assert!(ts("8000000000000000").unwrap_err().starts_with("22008"));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let samples = [
            "",
            " ",
            "t",
            "1t2",
            "-",
            "+",
            "::",
            "1:",
            "99999999999999999999-01-01",
            "é",
            "2000-é-01",
            "2000-01-01 1:2:3:4",
            "2000-01-01 10:00 +99",
            "jan",
            "2000-01-01 10:00:00.",
            "1/2",
            "2000-01-01 bc bc",
            "24:00",
            "2000-01-01 10:00 ++1",
        ];
        for s in samples {
            let _ = parse_timestamp(s, Kind::Timestamptz, 0, UTC);
            let _ = parse_date(s, 0, UTC);
            let _ = parse_time(s, 0, UTC);
        }
    }

    fn time(text: &str) -> Result<String, String> {
        parse_time(text, 0, UTC)
            .map(crate::array_text::time_text)
            .map_err(|e| e.code.to_string())
    }

    /// What PostgreSQL 15's `time_in` makes of these (checked against it).
    #[test]
    fn times_as_postgres_reads_them() {
        for (text, expected) in [
            ("1234", "12:34:00"),
            ("123456.5", "12:34:56.5"),
            ("1:2", "01:02:00"),
            ("12:", "12:00:00"),
            ("12:59:60", "13:00:00"),
            ("24:00", "24:00:00"),
            ("12:30 am", "00:30:00"),
            ("0:30 am", "00:30:00"),
            ("04:05 PM", "16:05:00"),
            ("allballs", "00:00:00"),
            ("2020-01-01 12:00", "12:00:00"),
            ("2020-01-01T12:00:01", "12:00:01"),
            ("t12:30", "12:30:00"),
            ("12:00-02", "12:00:00"),
            ("12:00 PST", "12:00:00"),
            ("12:30:15 bc", "12:30:15"),
            ("12:30:15.1234565", "12:30:15.123456"),
        ] {
            assert_eq!(time(text).as_deref(), Ok(expected), "{text}");
        }
        for (text, code) in [
            ("0", "22007"),
            ("202012x", "22007"),
            ("12345", "22007"),
            ("12 am", "22007"),
            ("2020-01-01", "22007"),
            ("2020-13-01", "22007"),
            ("12:00 2020-01-01", "22007"),
            ("12:00 europe/paris", "22007"),
            ("Jan 5 2020", "22007"),
            ("epoch", "22007"),
            ("12:60", "22008"),
            ("12:59:61", "22008"),
            ("23:59:60.5", "22008"),
            ("24:00:00.1", "22008"),
            ("13:30 am", "22008"),
            ("2020-13-01 12:00", "22008"),
        ] {
            assert_eq!(time(text), Err(code.to_string()), "{text}");
        }
    }

    /// Text without a whole date: PostgreSQL checks the fields it read first.
    #[test]
    fn incomplete_dates_are_classified_like_postgres() {
        for text in ["0", "00", "31", "13", "202012", "0 0", "1 32", "jan 32"] {
            assert!(date(text).unwrap_err().starts_with("22008"), "{text}");
        }
        for text in [
            "1", "12", "2020", "99999", "12 13", "32 jan", "5 jan", "jan",
        ] {
            assert!(date(text).unwrap_err().starts_with("22007"), "{text}");
        }
    }
}

//! JSON values: the parser both `json` and `jsonb` read with, and `jsonb`'s value model.
//!
//! [`Raw`] is JSON text as written (`json` keeps it: duplicate keys, member order, number
//! spellings and white space survive, and its operators return sub-texts verbatim). [`Jsonb`]
//! is PostgreSQL's `jsonb`: object keys ordered by length then bytes with duplicates collapsed
//! (the last wins), numbers normalized as `numeric` input does (`1e2` is `100`), `\u0000`
//! refused. [`Jsonb::to_text`] prints PostgreSQL's canonical form, which is what a `jsonb`
//! value holds in Arrow (a tagged `Utf8`), so equal values have equal text.

use std::cmp::Ordering;

use crate::error::{sqlstate, SqlError};
use crate::numeric::Numeric;

/// How deep arrays and objects may nest. PostgreSQL stops at its stack depth limit (between
/// 10,000 and 20,000 levels). Values nested deeper than [`SHALLOW`] are worked on a thread
/// with a stack big enough for them ([`on_deep_stack`]).
const MAX_DEPTH: usize = 10_000;

/// Nesting that the functions here handle on any thread's stack.
const SHALLOW: usize = 64;

/// How deep the arrays and objects of JSON text nest (brackets outside strings; the text
/// need not be valid).
pub(crate) fn nesting(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Runs `work` on JSON nested `depth` deep: here when that is shallow, else on a thread whose
/// stack holds the recursion (parsing, printing and comparing recurse once per level).
pub(crate) fn on_deep_stack<T: Send>(depth: usize, work: impl FnOnce() -> T + Send) -> T {
    if depth <= SHALLOW {
        return work();
    }
    let levels = depth.min(MAX_DEPTH + 1);
    let stack = (levels * 16 * 1024).saturating_add(4 << 20);
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("floe-json".into())
            .stack_size(stack)
            .spawn_scoped(scope, work)
        {
            Ok(handle) => match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(e) => panic!("could not start a thread for deeply nested JSON: {e}"),
        }
    })
}

/// The reason [`parse`] gives for nesting deeper than [`MAX_DEPTH`].
const TOO_DEEP: &str = "stack depth limit exceeded";

/// JSON text as written.
#[derive(Debug, Clone)]
pub(crate) enum Raw<'a> {
    Null,
    Bool(bool),
    /// A number as written.
    Number(&'a str),
    /// A string: its decoded value (`None` if it holds `\u0000`) and its text with quotes.
    String(Option<String>, &'a str),
    /// Elements and the array's text.
    Array(Vec<Raw<'a>>, &'a str),
    /// Members in input order (duplicates kept) and the object's text.
    Object(Vec<(Option<String>, Raw<'a>)>, &'a str),
}

impl<'a> Raw<'a> {
    /// The value's text as written.
    pub(crate) fn text(&self) -> &'a str {
        match self {
            Raw::Null => "null",
            Raw::Bool(true) => "true",
            Raw::Bool(false) => "false",
            Raw::Number(t) => t,
            Raw::String(_, t) | Raw::Array(_, t) | Raw::Object(_, t) => t,
        }
    }

    /// The `jsonb` value of this text.
    pub(crate) fn to_jsonb(&self) -> Result<Jsonb, SqlError> {
        Ok(match self {
            Raw::Null => Jsonb::Null,
            Raw::Bool(b) => Jsonb::Bool(*b),
            Raw::Number(t) => Jsonb::Number(normalize_number(t)?),
            Raw::String(s, _) => Jsonb::String(s.clone().ok_or_else(nul_escape)?),
            Raw::Array(items, _) => {
                Jsonb::Array(items.iter().map(Raw::to_jsonb).collect::<Result<_, _>>()?)
            }
            Raw::Object(members, _) => {
                let mut out = Vec::with_capacity(members.len());
                for (key, value) in members {
                    out.push((key.clone().ok_or_else(nul_escape)?, value.to_jsonb()?));
                }
                Jsonb::object(out)
            }
        })
    }
}

fn nul_escape() -> SqlError {
    SqlError::new(
        sqlstate::UNTRANSLATABLE_CHARACTER,
        "unsupported Unicode escape sequence",
    )
    .with_detail("\\u0000 cannot be converted to text.")
}

/// A `jsonb` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Jsonb {
    Null,
    Bool(bool),
    /// A number in `numeric`'s output form.
    Number(String),
    String(String),
    Array(Vec<Jsonb>),
    /// Members ordered by key length, then key bytes; keys unique.
    Object(Vec<(String, Jsonb)>),
}

/// `jsonb`'s order of object keys: shorter first, then by bytes.
pub(crate) fn key_order(a: &str, b: &str) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl Jsonb {
    /// Parses JSON text into a `jsonb` value (22P02 for invalid JSON).
    pub(crate) fn parse(text: &str) -> Result<Jsonb, SqlError> {
        parse(text)?.to_jsonb()
    }

    /// An object of `members` in any order; of repeated keys the last wins.
    pub(crate) fn object(members: Vec<(String, Jsonb)>) -> Jsonb {
        let mut members: Vec<(usize, (String, Jsonb))> = members.into_iter().enumerate().collect();
        // Later duplicates first, so dedup keeps the last one written.
        members.sort_by(|(ia, (a, _)), (ib, (b, _))| key_order(a, b).then(ib.cmp(ia)));
        members.dedup_by(|later, earlier| later.1 .0 == earlier.1 .0);
        Jsonb::Object(members.into_iter().map(|(_, m)| m).collect())
    }

    /// PostgreSQL's name of the value's type (`jsonb_typeof`).
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Jsonb::Null => "null",
            Jsonb::Bool(_) => "boolean",
            Jsonb::Number(_) => "number",
            Jsonb::String(_) => "string",
            Jsonb::Array(_) => "array",
            Jsonb::Object(_) => "object",
        }
    }

    /// Whether the value is a scalar (not an array or object).
    pub(crate) fn is_scalar(&self) -> bool {
        !matches!(self, Jsonb::Array(_) | Jsonb::Object(_))
    }

    /// The canonical text (`{"a": 1, "b": [1, 2]}`).
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Appends the canonical text to `out`.
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Jsonb::Null => out.push_str("null"),
            Jsonb::Bool(true) => out.push_str("true"),
            Jsonb::Bool(false) => out.push_str("false"),
            Jsonb::Number(n) => out.push_str(n),
            Jsonb::String(s) => write_string(s, out),
            Jsonb::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Jsonb::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_string(key, out);
                    out.push_str(": ");
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// `jsonb_pretty`: four spaces of indent per level, one member or element per line.
    pub(crate) fn pretty(&self) -> String {
        fn write(v: &Jsonb, level: usize, out: &mut String) {
            let indent = |out: &mut String, level: usize| {
                for _ in 0..level {
                    out.push_str("    ");
                }
            };
            match v {
                Jsonb::Array(items) => {
                    out.push_str("[\n");
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(",\n");
                        }
                        indent(out, level + 1);
                        write(item, level + 1, out);
                    }
                    if !items.is_empty() {
                        out.push('\n');
                    }
                    indent(out, level);
                    out.push(']');
                }
                Jsonb::Object(members) => {
                    out.push_str("{\n");
                    for (i, (key, value)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push_str(",\n");
                        }
                        indent(out, level + 1);
                        write_string(key, out);
                        out.push_str(": ");
                        write(value, level + 1, out);
                    }
                    if !members.is_empty() {
                        out.push('\n');
                    }
                    indent(out, level);
                    out.push('}');
                }
                scalar => scalar.write(out),
            }
        }
        let mut out = String::new();
        write(self, 0, &mut out);
        out
    }

    /// PostgreSQL's `jsonb` order (`jsonb_cmp`): by type (null < string < number < boolean <
    /// array < object), arrays and objects first by size, then element by element (objects
    /// key, value, key, … in their stored order). A top-level scalar sorts as a one-element
    /// array that is less than any real array of one element, so an empty top-level array
    /// sorts before every scalar.
    pub(crate) fn compare(&self, other: &Jsonb) -> Ordering {
        // A scalar against an array of `len` elements.
        let scalar_vs_array = |len: usize| {
            if len == 0 {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        };
        match (self, other) {
            (Jsonb::Array(a), s) if s.is_scalar() => scalar_vs_array(a.len()).reverse(),
            (s, Jsonb::Array(b)) if s.is_scalar() => scalar_vs_array(b.len()),
            _ => self.compare_nested(other),
        }
    }

    /// Bytes that sort as [`Jsonb::compare`] orders values (equal values, `1` and `1.0`
    /// among them, have equal keys): what `ORDER BY` of a `jsonb` sorts by.
    pub(crate) fn sort_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            // A top-level scalar sorts as a one-element array, before a real one.
            scalar if scalar.is_scalar() => {
                out.push(self.rank_of_array());
                out.extend(1u64.to_be_bytes());
                out.push(0);
                scalar.write_key(&mut out);
            }
            Jsonb::Array(items) => {
                out.push(self.rank_of_array());
                out.extend((items.len() as u64).to_be_bytes());
                out.push(1);
                for item in items {
                    item.write_key(&mut out);
                }
            }
            object => object.write_key(&mut out),
        }
        out
    }

    fn rank_of_array(&self) -> u8 {
        Jsonb::Array(Vec::new()).rank()
    }

    /// The key of a value below the top level (prefix-free, so keys concatenate).
    fn write_key(&self, out: &mut Vec<u8>) {
        out.push(self.rank());
        match self {
            Jsonb::Null => {}
            Jsonb::Bool(b) => out.push(u8::from(*b)),
            Jsonb::String(s) => write_string_key(s, out),
            Jsonb::Number(n) => match Numeric::parse(n) {
                Ok(value) => out.extend(crate::numeric::value::value_part(&value.to_key())),
                Err(_) => write_string_key(n, out),
            },
            Jsonb::Array(items) => {
                out.extend((items.len() as u64).to_be_bytes());
                for item in items {
                    item.write_key(out);
                }
            }
            Jsonb::Object(members) => {
                out.extend((members.len() as u64).to_be_bytes());
                for (key, value) in members {
                    write_string_key(key, out);
                    value.write_key(out);
                }
            }
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Jsonb::Null => 0,
            Jsonb::String(_) => 1,
            Jsonb::Number(_) => 2,
            Jsonb::Bool(_) => 3,
            Jsonb::Array(_) => 4,
            Jsonb::Object(_) => 5,
        }
    }

    fn compare_nested(&self, other: &Jsonb) -> Ordering {
        match (self, other) {
            (Jsonb::String(a), Jsonb::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Jsonb::Number(a), Jsonb::Number(b)) => compare_numbers(a, b),
            (Jsonb::Bool(a), Jsonb::Bool(b)) => a.cmp(b),
            (Jsonb::Null, Jsonb::Null) => Ordering::Equal,
            (Jsonb::Array(a), Jsonb::Array(b)) => a.len().cmp(&b.len()).then_with(|| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| x.compare_nested(y))
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            }),
            (Jsonb::Object(a), Jsonb::Object(b)) => a.len().cmp(&b.len()).then_with(|| {
                a.iter()
                    .zip(b)
                    .map(|((ka, va), (kb, vb))| {
                        ka.as_bytes()
                            .cmp(kb.as_bytes())
                            .then_with(|| va.compare_nested(vb))
                    })
                    .find(|o| o.is_ne())
                    .unwrap_or(Ordering::Equal)
            }),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// Scalar equality as `jsonb` defines it (numbers by value).
    fn scalar_equals(&self, other: &Jsonb) -> bool {
        match (self, other) {
            (Jsonb::Number(a), Jsonb::Number(b)) => compare_numbers(a, b).is_eq(),
            (a, b) => a == b,
        }
    }

    /// `self @> other`: PostgreSQL's `JsonbDeepContains` (a top-level scalar counts as a
    /// one-element array on the right, `'[1]' @> '1'`, but a scalar contains no array:
    /// `'1' @> '[1]'` and `'1' @> '[]'` are false).
    pub(crate) fn contains(&self, other: &Jsonb) -> bool {
        if self.is_scalar() && matches!(other, Jsonb::Array(_)) {
            return false;
        }
        fn as_array(v: &Jsonb) -> Option<std::borrow::Cow<'_, [Jsonb]>> {
            match v {
                Jsonb::Object(_) => None,
                Jsonb::Array(items) => Some(std::borrow::Cow::Borrowed(items)),
                scalar => Some(std::borrow::Cow::Owned(vec![scalar.clone()])),
            }
        }
        match (as_array(self), as_array(other)) {
            (Some(a), Some(b)) => array_contains(&a, &b),
            (None, None) => deep_contains(self, other),
            _ => false,
        }
    }
}

fn array_contains(left: &[Jsonb], right: &[Jsonb]) -> bool {
    right.iter().all(|r| {
        if r.is_scalar() {
            left.iter().any(|l| l.is_scalar() && l.scalar_equals(r))
        } else {
            left.iter().any(|l| deep_contains(l, r))
        }
    })
}

fn deep_contains(left: &Jsonb, right: &Jsonb) -> bool {
    match (left, right) {
        (Jsonb::Object(l), Jsonb::Object(r)) => r.iter().all(|(key, rv)| {
            let Some((_, lv)) = l.iter().find(|(k, _)| k == key) else {
                return false;
            };
            if rv.is_scalar() {
                lv.is_scalar() && lv.scalar_equals(rv)
            } else {
                deep_contains(lv, rv)
            }
        }),
        (Jsonb::Array(l), Jsonb::Array(r)) => array_contains(l, r),
        (l, r) if l.is_scalar() && r.is_scalar() => l.scalar_equals(r),
        _ => false,
    }
}

/// A string's bytes with 0 escaped as 0 1, ended by 0 0: byte order, prefix-free.
fn write_string_key(s: &str, out: &mut Vec<u8>) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(1);
        }
    }
    out.extend([0, 0]);
}

/// Compares two numbers in `numeric` text form by value.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    match (Numeric::parse(a), Numeric::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp_value(&y),
        _ => a.cmp(b),
    }
}

/// A JSON number as `numeric` input normalizes it (`1e2` → `100`, `-0` → `0`).
fn normalize_number(text: &str) -> Result<String, SqlError> {
    Numeric::parse(text).map(|n| n.to_text()).map_err(|_| {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type numeric: \"{text}\""),
        )
    })
}

/// Appends `s` as a JSON string literal, escaped as PostgreSQL escapes it.
pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(s, &mut out);
    out
}

/// Parses JSON text (22P02 "invalid input syntax for type json" when it is not JSON).
pub(crate) fn parse(text: &str) -> Result<Raw<'_>, SqlError> {
    let mut parser = Parser { text, pos: 0 };
    let value = parser.value(0).map_err(|detail| {
        if detail == TOO_DEEP {
            SqlError::new(sqlstate::STATEMENT_TOO_COMPLEX, TOO_DEEP)
        } else {
            invalid_json(text, detail)
        }
    })?;
    parser.ws();
    if parser.pos != text.len() {
        let token = parser.token();
        return Err(invalid_json(
            text,
            format!("Expected end of input, but found \"{token}\"."),
        ));
    }
    Ok(value)
}

fn invalid_json(_text: &str, detail: String) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        "invalid input syntax for type json",
    )
    .with_detail(detail)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

const ENDED: &str = "The input string ended unexpectedly.";

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        let rest = &self.text[self.pos..];
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// The token at the current position, for error details.
    fn token(&self) -> &'a str {
        let rest = &self.text[self.pos..];
        let first = rest.chars().next().map_or(0, char::len_utf8);
        let len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphanumeric() && *c != '_')
            .map_or(rest.len(), |(i, _)| i);
        &rest[..len.max(first)]
    }

    fn unexpected(&self, expected: &str) -> String {
        if self.pos >= self.text.len() {
            return ENDED.into();
        }
        format!("Expected {expected}, but found \"{}\".", self.token())
    }

    fn string(&mut self) -> Result<(Option<String>, &'a str), String> {
        let start = self.pos;
        self.pos += 1;
        let bytes = self.text.as_bytes();
        let mut decoded = String::new();
        let mut nul = false;
        loop {
            match bytes.get(self.pos) {
                None => return Err(ENDED.into()),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let Some(esc) = bytes.get(self.pos + 1) else {
                        return Err(ENDED.into());
                    };
                    self.pos += 2;
                    match esc {
                        b'"' => decoded.push('"'),
                        b'\\' => decoded.push('\\'),
                        b'/' => decoded.push('/'),
                        b'b' => decoded.push('\u{8}'),
                        b'f' => decoded.push('\u{c}'),
                        b'n' => decoded.push('\n'),
                        b'r' => decoded.push('\r'),
                        b't' => decoded.push('\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&unit) {
                                if self.text[self.pos..].starts_with("\\u") {
                                    self.pos += 2;
                                    let low = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&low) {
                                        return Err(
                                            "Unicode low surrogate must follow a high surrogate."
                                                .into(),
                                        );
                                    }
                                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                    char::from_u32(code)
                                } else {
                                    return Err(
                                        "Unicode low surrogate must follow a high surrogate."
                                            .into(),
                                    );
                                }
                            } else if (0xDC00..0xE000).contains(&unit) {
                                return Err(
                                    "Unicode low surrogate must follow a high surrogate.".into()
                                );
                            } else {
                                char::from_u32(unit)
                            };
                            match c {
                                Some('\0') => nul = true,
                                Some(c) => decoded.push(c),
                                None => return Err("Invalid Unicode escape.".into()),
                            }
                        }
                        _ => {
                            let rest = &self.text[self.pos - 1..];
                            let c = rest.chars().next().unwrap_or(' ');
                            return Err(format!("Escape sequence \"\\{c}\" is invalid."));
                        }
                    }
                }
                Some(c) if *c < 0x20 => {
                    return Err(format!("Character with value 0x{c:02x} must be escaped."))
                }
                Some(_) => {
                    let rest = &self.text[self.pos..];
                    let run = rest
                        .find(|c: char| c == '"' || c == '\\' || (c as u32) < 0x20)
                        .unwrap_or(rest.len());
                    decoded.push_str(&rest[..run]);
                    self.pos += run;
                }
            }
        }
        let value = if nul { None } else { Some(decoded) };
        Ok((value, &self.text[start..self.pos]))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| "\"\\u\" must be followed by four hexadecimal digits.".to_string())?;
        self.pos += 4;
        u32::from_str_radix(hex, 16).map_err(|e| e.to_string())
    }

    fn number(&mut self) -> Result<&'a str, String> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let from = *i;
            while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        let ok = digits(&mut i) && !(bytes[int_start] == b'0' && i - int_start > 1);
        let mut ok = ok;
        if ok && bytes.get(i) == Some(&b'.') {
            i += 1;
            ok = digits(&mut i);
        }
        if ok && matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            ok = digits(&mut i);
        }
        // A number runs into letters or digits: the whole word is the bad token.
        if !ok
            || bytes
                .get(i)
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'.')
        {
            return Err(format!("Token \"{}\" is invalid.", self.token_from(start)));
        }
        self.pos = i;
        Ok(&self.text[start..i])
    }

    fn token_from(&self, start: usize) -> &'a str {
        let rest = &self.text[start..];
        let len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || "+-.".contains(*c)))
            .map_or(rest.len(), |(i, _)| i);
        &rest[..len.max(1).min(rest.len())]
    }

    fn value(&mut self, depth: usize) -> Result<Raw<'a>, String> {
        if depth > MAX_DEPTH {
            return Err(TOO_DEEP.into());
        }
        self.ws();
        let start = self.pos;
        match self.peek() {
            None => Err(ENDED.into()),
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Raw::Object(members, &self.text[start..self.pos]));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.unexpected("string or \"}\""));
                    }
                    let (key, _) = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(self.unexpected("\":\""));
                    }
                    self.pos += 1;
                    let value = self.value(depth + 1)?;
                    members.push((key, value));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Raw::Object(members, &self.text[start..self.pos]));
                        }
                        _ => return Err(self.unexpected("\",\" or \"}\"")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Raw::Array(items, &self.text[start..self.pos]));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Raw::Array(items, &self.text[start..self.pos]));
                        }
                        _ => return Err(self.unexpected("\",\" or \"]\"")),
                    }
                }
            }
            Some(b'"') => {
                let (value, raw) = self.string()?;
                Ok(Raw::String(value, raw))
            }
            Some(b'-' | b'0'..=b'9') => Ok(Raw::Number(self.number()?)),
            Some(_) => {
                let token = self.token();
                let value = match token {
                    "true" => Raw::Bool(true),
                    "false" => Raw::Bool(false),
                    "null" => Raw::Null,
                    _ if token.starts_with(|c: char| c.is_alphanumeric()) => {
                        return Err(format!("Token \"{token}\" is invalid."))
                    }
                    _ => return Err(self.unexpected("JSON value")),
                };
                self.pos += token.len();
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        Jsonb::parse(text)
            .map(|v| v.to_text())
            .unwrap_or_else(|e| e.code.to_string())
    }

    #[test]
    fn jsonb_text_is_canonical() {
        assert_eq!(
            canon(r#"{"bb":1,"a":[1,2.50,"x"],"bb":{"z":null,"y":true}}"#),
            r#"{"a": [1, 2.50, "x"], "bb": {"y": true, "z": null}}"#
        );
        assert_eq!(canon("1e2"), "100");
        assert_eq!(canon("1.50e1"), "15.0");
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon(r#""\u00e9\n\u0001\/""#), "\"é\\n\\u0001/\"");
        assert_eq!(canon(r#""\ud83d\ude00""#), "\"😀\"");
        assert_eq!(canon(r#""\u0000""#), "22P05");
        for bad in [
            "{bad", "[1,]", "01", ".5", "1.", "+1", "nul", "[1", "\"a", "1 2", "{\"a\"}",
        ] {
            assert_eq!(canon(bad), "22P02", "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let deep = "[".repeat(100_000);
        let refused = on_deep_stack(nesting(&deep), || parse(&deep).map(|_| ()));
        assert_eq!(refused.unwrap_err().code, "54001");
        // Every recursive walk copes with the deepest value allowed, on a small stack.
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(nesting(&ok), MAX_DEPTH);
        let walk = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                on_deep_stack(nesting(&ok), || {
                    let value = Jsonb::parse(&ok).unwrap();
                    let text = value.to_text();
                    let _ = value.pretty();
                    let _ = value.compare(&value);
                    let _ = value.contains(&value);
                    text.len()
                })
            })
            .unwrap();
        assert_eq!(walk.join().unwrap(), 2 * MAX_DEPTH);
        assert_eq!(nesting(r#"{"a": "[[[", "b": [{"c": "\\"}]}"#), 3);
    }

    #[test]
    fn order_and_containment_follow_postgres() {
        let j = |t: &str| Jsonb::parse(t).unwrap();
        let lt = |a: &str, b: &str| j(a).compare(&j(b)) == Ordering::Less;
        assert!(lt("[]", "null"));
        assert!(lt("1", "[1]"));
        assert!(lt("\"a\"", "1"));
        assert!(lt("{\"a\":2}", "{\"b\":1}"));
        assert!(lt("[3]", "[1,2]"));
        assert_eq!(j("1.0").compare(&j("1")), Ordering::Equal);
        assert!(lt("{\"aa\":1}", "{\"b\":1}"));
        assert!(lt("[1]", "[[]]"));
        assert!(j(r#"{"a":1,"b":{"c":[1,2]}}"#).contains(&j(r#"{"b":{"c":[2]}}"#)));
        assert!(!j("[1,2,[3]]").contains(&j("[3]")));
        assert!(j("[1,2,[3]]").contains(&j("[[3]]")));
        assert!(j("[1]").contains(&j("1")));
        let values = [
            "[]",
            "null",
            "\"\"",
            "\"a\"",
            "\"ab\"",
            "\"b\"",
            "-1",
            "0",
            "1",
            "1.0",
            "2.5",
            "10",
            "false",
            "true",
            "[null]",
            "[1]",
            "[\"a\"]",
            "[[]]",
            "[1, 2]",
            "{}",
            "{\"a\": 1}",
            "{\"a\": 2}",
            "{\"b\": 1}",
            "{\"aa\": 1}",
            "{\"a\": 1, \"b\": 1}",
            "[1, [2]]",
            "[1, {}]",
            "{\"a\": [1]}",
            "{\"a\": {}}",
        ];
        for a in values {
            for b in values {
                assert_eq!(
                    j(a).sort_key().cmp(&j(b).sort_key()),
                    j(a).compare(&j(b)),
                    "{a} vs {b}"
                );
            }
        }
    }
}

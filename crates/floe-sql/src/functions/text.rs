//! PostgreSQL's string functions DataFusion lacks or answers differently: `quote_literal`,
//! `quote_ident`, `format`, `regexp_split_to_table`, the `escape` format of `encode`/`decode`
//! and PostgreSQL's reading (and errors) of `decode(…, 'hex')`, and `substr` of `bytea`.
//!
//! `regexp_split_to_table` is a set-returning function: like `generate_series` it returns a
//! list here, which the statement rewrite unnests into rows (`crate::rewrite`). Patterns are
//! Rust's `regex`, which agrees with PostgreSQL's regular expressions on the common syntax;
//! as in PostgreSQL, `.` matches a newline unless the `n` flag is given.

use std::fmt::Write;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, rows_of};
use crate::error::{sqlstate, SqlError};
use crate::pg_catalog::oids::quote_ident;

/// The functions of this module; `state` has the built-ins some of them extend.
pub(crate) fn udfs(state: &SessionState) -> Vec<ScalarUDF> {
    let signature = || Signature::user_defined(Volatility::Immutable);
    let mut udfs = vec![
        ScalarUDF::new_from_impl(Quote {
            ident: false,
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(Quote {
            ident: true,
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(Format {
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(SplitToTable {
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(ToHex {
            signature: signature(),
        }),
    ];
    for (name, kind) in [("encode", Extended::Encode), ("decode", Extended::Decode)] {
        if let Some(inner) = state.scalar_functions().get(name) {
            udfs.push(ScalarUDF::new_from_impl(Extends {
                inner: inner.clone(),
                kind,
                signature: signature(),
            }));
        }
    }
    udfs.push(substr());
    for name in ["length", "octet_length", "bit_length"] {
        if let Some(inner) = state.scalar_functions().get(name) {
            udfs.push(ScalarUDF::new_from_impl(ByteLength {
                inner: inner.clone(),
                signature: signature(),
            }));
        }
    }
    udfs
}

/// `length`, `octet_length` and `bit_length` of `bytea` (bytes, bits), around DataFusion's
/// functions of text, which refuse binary arguments.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ByteLength {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl ByteLength {
    fn is_own(arg_types: &[DataType]) -> bool {
        matches!(arg_types, [DataType::Binary])
    }
}

impl ScalarUDFImpl for ByteLength {
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
        if Self::is_own(arg_types) {
            return Ok(vec![DataType::Binary]);
        }
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
            .collect();
        Ok(fields_with_udf(&fields, self.inner.as_ref())?
            .iter()
            .map(|f| f.data_type().clone())
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if Self::is_own(arg_types) {
            return Ok(DataType::Int32);
        }
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if Self::is_own(&types) {
            return Ok(Arc::new(Field::new(self.name(), DataType::Int32, true)));
        }
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
        if !Self::is_own(&types) {
            return self.inner.invoke_with_args(args);
        }
        let bits = if self.inner.name() == "bit_length" {
            8
        } else {
            1
        };
        let rows = rows_of(&args);
        let values = args.args[0].to_array(rows)?;
        let lengths: datafusion::arrow::array::Int32Array = values
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(|v| v.len() as i32 * bits))
            .collect();
        finish(&args.args, Arc::new(lengths))
    }
}

/// `substr` with `bytea` and PostgreSQL's negative count check, around DataFusion's.
fn substr() -> ScalarUDF {
    ScalarUDF::new_from_impl(Extends {
        inner: datafusion::functions::unicode::substr(),
        kind: Extended::Substr,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// Plans `SUBSTRING(x FROM a FOR b)` and `SUBSTR(x, a, b)` (which sqlparser reads as the same
/// expression) with Floe's `substr`: DataFusion's planner would call its own, bypassing the
/// function registry.
pub(crate) fn substring_planner() -> Arc<dyn ExprPlanner> {
    Arc::new(SubstringPlanner {
        substr: Arc::new(substr()),
    })
}

#[derive(Debug)]
struct SubstringPlanner {
    substr: Arc<ScalarUDF>,
}

impl ExprPlanner for SubstringPlanner {
    fn plan_substring(&self, args: Vec<Expr>) -> DfResult<PlannerResult<Vec<Expr>>> {
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.substr.clone(), args),
        )))
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

fn error(code: &'static str, message: impl Into<String>) -> datafusion::error::DataFusionError {
    SqlError::new(code, message.into()).into()
}

/// The text values of `value` (cast to text), `rows` long.
fn texts(value: &ColumnarValue, rows: usize) -> DfResult<StringArray> {
    let array = value.to_array(rows)?;
    Ok(cast(&array, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// A string as an SQL literal, as PostgreSQL's `quote_literal` writes it: quotes doubled, and
/// with a backslash the `E'…'` form with backslashes doubled.
pub(crate) fn quote_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 3);
    if text.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `quote_literal(x)` and `quote_ident(x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Quote {
    ident: bool,
    signature: Signature,
}

impl ScalarUDFImpl for Quote {
    fn name(&self) -> &str {
        if self.ident {
            "quote_ident"
        } else {
            "quote_literal"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] if self.ident && !(is_text(t) || t.is_null()) => Err(error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "function quote_ident({}) does not exist",
                    crate::error::arrow_name_to_pg(&t.to_string())
                ),
            )),
            [_] => Ok(vec![DataType::Utf8]),
            _ => Err(error(
                sqlstate::UNDEFINED_FUNCTION,
                format!("function {} takes one argument", self.name()),
            )),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let values = texts(&args.args[0], rows_of(&args))?;
        let quoted: StringArray = values
            .iter()
            .map(|v| {
                v.map(|v| {
                    if self.ident {
                        quote_ident(v)
                    } else {
                        quote_literal(v)
                    }
                })
            })
            .collect();
        finish(&args.args, Arc::new(quoted))
    }
}

/// `to_hex(integer | bigint)`: the two's complement digits of the argument's own width
/// (`to_hex(-1)` is `ffffffff`; DataFusion's widened an `integer` to 64 bits).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToHex {
    signature: Signature,
}

impl ScalarUDFImpl for ToHex {
    fn name(&self) -> &str {
        "to_hex"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [DataType::Int64 | DataType::UInt32 | DataType::UInt64] => Ok(vec![DataType::Int64]),
            [t] if t.is_integer() || t.is_null() => Ok(vec![DataType::Int32]),
            [t] => Err(error(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "function to_hex({}) does not exist",
                    crate::error::arrow_name_to_pg(&t.to_string())
                ),
            )),
            _ => Err(error(
                sqlstate::UNDEFINED_FUNCTION,
                "function to_hex takes one argument".to_string(),
            )),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let values = args.args[0].to_array(rows_of(&args))?;
        let hex: StringArray = match values.data_type() {
            DataType::Int64 => values
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|v| format!("{:x}", v as u64)))
                .collect(),
            _ => cast(&values, &DataType::Int32)?
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .iter()
                .map(|v| v.map(|v| format!("{:x}", v as u32)))
                .collect(),
        };
        finish(&args.args, Arc::new(hex))
    }
}

/// `format(formatstr, args…)`: `%s`, `%I`, `%L` and `%%`, with argument positions (`%2$s`),
/// the `-` flag and widths (`%-10s`, `%*s`), as PostgreSQL's `format`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

/// One formatted argument: its text (None for NULL).
type FormatArg<'a> = Option<std::borrow::Cow<'a, str>>;

fn format_error(message: impl Into<String>) -> datafusion::error::DataFusionError {
    error(sqlstate::INVALID_PARAMETER_VALUE, message)
}

/// Reads a decimal number at `chars[*at..]`, if there is one.
fn read_number(chars: &[char], at: &mut usize) -> DfResult<Option<usize>> {
    let start = *at;
    let mut value: usize = 0;
    while *at < chars.len() && chars[*at].is_ascii_digit() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(chars[*at] as usize - '0' as usize))
            .filter(|v| *v <= i32::MAX as usize)
            .ok_or_else(|| format_error("number is out of range"))?;
        *at += 1;
    }
    Ok((*at > start).then_some(value))
}

/// PostgreSQL's `format` of one row.
fn format_row(format: &str, args: &[FormatArg<'_>]) -> DfResult<String> {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::with_capacity(format.len());
    let mut next_arg = 0usize;
    let mut at = 0usize;
    let unterminated = || format_error("unterminated format() type specifier");
    let take = |position: Option<usize>, next_arg: &mut usize| -> DfResult<usize> {
        let index = match position {
            Some(0) => {
                return Err(format_error(
                    "format specifies argument 0, but arguments are numbered from 1",
                ))
            }
            Some(p) => p - 1,
            None => *next_arg,
        };
        if index >= args.len() {
            return Err(format_error("too few arguments for format()"));
        }
        *next_arg = index + 1;
        Ok(index)
    };
    while at < chars.len() {
        let c = chars[at];
        at += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        if at >= chars.len() {
            return Err(unterminated());
        }
        if chars[at] == '%' {
            out.push('%');
            at += 1;
            continue;
        }
        // %[position$][flags][width]type
        let mut position = None;
        let save = at;
        if let Some(n) = read_number(&chars, &mut at)? {
            if at < chars.len() && chars[at] == '$' {
                position = Some(n);
                at += 1;
            } else {
                at = save;
            }
        }
        let mut left = false;
        while at < chars.len() && chars[at] == '-' {
            left = true;
            at += 1;
        }
        let mut width: Option<i64> = None;
        if at < chars.len() && chars[at] == '*' {
            at += 1;
            let mut star_position = None;
            let save = at;
            if let Some(n) = read_number(&chars, &mut at)? {
                if at < chars.len() && chars[at] == '$' {
                    star_position = Some(n);
                    at += 1;
                } else {
                    at = save;
                }
            }
            let index = take(star_position, &mut next_arg)?;
            width = match &args[index] {
                None => None,
                Some(text) => Some(text.trim().parse::<i64>().map_err(|_| {
                    error(
                        sqlstate::INVALID_TEXT_REPRESENTATION,
                        format!("invalid input syntax for type integer: \"{text}\""),
                    )
                })?),
            };
        } else if let Some(n) = read_number(&chars, &mut at)? {
            width = Some(n as i64);
        }
        if at >= chars.len() {
            return Err(unterminated());
        }
        let kind = chars[at];
        at += 1;
        if !matches!(kind, 's' | 'I' | 'L') {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("unrecognized format() type specifier \"{kind}\""),
            )
            .with_hint("For a single \"%\" use \"%%\".")
            .into());
        }
        let index = take(position, &mut next_arg)?;
        let text = match (kind, &args[index]) {
            ('s', None) => String::new(),
            ('s', Some(t)) => t.to_string(),
            ('I', None) => {
                return Err(error(
                    "22004",
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            ('I', Some(t)) => quote_ident(t),
            (_, None) => "NULL".to_string(),
            (_, Some(t)) => quote_literal(t),
        };
        let (left, width) = match width {
            Some(w) if w < 0 => (true, w.unsigned_abs() as usize),
            Some(w) => (left, w as usize),
            None => (left, 0),
        };
        let pad = width.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.is_empty() {
            return Err(error(
                sqlstate::UNDEFINED_FUNCTION,
                "function format() does not exist",
            ));
        }
        Ok(arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                DataType::Boolean if i > 0 => DataType::Boolean,
                _ => DataType::Utf8,
            })
            .collect())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let formats = texts(&args.args[0], rows)?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(args.args.len() - 1);
        for arg in &args.args[1..] {
            columns.push(arg.to_array(rows)?);
        }
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        let mut row_args: Vec<FormatArg<'_>> = Vec::with_capacity(columns.len());
        for row in 0..rows {
            if formats.is_null(row) {
                out.append_null();
                continue;
            }
            row_args.clear();
            for column in &columns {
                row_args.push(if column.is_null(row) {
                    None
                } else if let Some(b) = column.as_boolean_opt() {
                    Some((if b.value(row) { "t" } else { "f" }).into())
                } else {
                    Some(column.as_string::<i32>().value(row).into())
                });
            }
            out.append_value(format_row(formats.value(row), &row_args)?);
        }
        finish(&args.args, Arc::new(out.finish()))
    }
}

/// `regexp_split_to_table(string, pattern [, flags])`, as a list (see the module doc).
#[derive(Debug, PartialEq, Eq, Hash)]
struct SplitToTable {
    signature: Signature,
}

/// A PostgreSQL regular expression with its flags, as Rust's `regex`.
fn compile(pattern: &str, flags: &str, function: &str) -> DfResult<regex::Regex> {
    let mut builder = regex::RegexBuilder::new(pattern);
    builder.dot_matches_new_line(true);
    for flag in flags.chars() {
        match flag {
            'i' => {
                builder.case_insensitive(true);
            }
            'c' => {
                builder.case_insensitive(false);
            }
            'n' | 'm' => {
                builder.dot_matches_new_line(false).multi_line(true);
            }
            's' => {
                builder.dot_matches_new_line(true).multi_line(false);
            }
            'x' => {
                builder.ignore_whitespace(true);
            }
            'g' => {
                return Err(error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("{function}() does not support the \"global\" option"),
                ))
            }
            other => {
                return Err(error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("invalid regular expression option: \"{other}\""),
                ))
            }
        }
    }
    builder.build().map_err(|e| {
        error(
            "2201B",
            format!(
                "invalid regular expression: {}",
                e.to_string().lines().last().unwrap_or("")
            ),
        )
    })
}

/// The pieces of `text` between the matches of `re`, as PostgreSQL splits: empty matches at
/// the start or end of the string, or right after a match, split nothing.
fn split(re: &regex::Regex, text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece_start = 0;
    let mut last_match_end: Option<usize> = None;
    for m in re.find_iter(text) {
        if m.start() == m.end()
            && (m.start() == 0 || m.start() == text.len() || Some(m.start()) == last_match_end)
        {
            continue;
        }
        pieces.push(text[piece_start..m.start()].to_string());
        piece_start = m.end();
        last_match_end = Some(m.end());
    }
    pieces.push(text[piece_start..].to_string());
    pieces
}

impl ScalarUDFImpl for SplitToTable {
    fn name(&self) -> &str {
        "regexp_split_to_table"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types.len() {
            2 | 3 => Ok(vec![DataType::Utf8; arg_types.len()]),
            _ => Err(error(
                sqlstate::UNDEFINED_FUNCTION,
                "function regexp_split_to_table takes two or three arguments",
            )),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Utf8,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let strings = texts(&args.args[0], rows)?;
        let patterns = texts(&args.args[1], rows)?;
        let flags = match args.args.get(2) {
            Some(f) => Some(texts(f, rows)?),
            None => None,
        };
        let mut out = ListBuilder::new(StringBuilder::new());
        let mut compiled: Option<(String, String, regex::Regex)> = None;
        for row in 0..rows {
            let flag = flags.as_ref().map(|f| (f.is_null(row), f.value(row)));
            if strings.is_null(row) || patterns.is_null(row) || flag.is_some_and(|(n, _)| n) {
                // A strict set-returning function: no rows for NULL arguments.
                out.append(true);
                continue;
            }
            let (pattern, flag) = (patterns.value(row), flag.map_or("", |(_, f)| f));
            let reuse = compiled
                .as_ref()
                .is_some_and(|(p, f, _)| p == pattern && f == flag);
            if !reuse {
                let re = compile(pattern, flag, self.name())?;
                compiled = Some((pattern.to_string(), flag.to_string(), re));
            }
            if let Some((_, _, re)) = &compiled {
                for piece in split(re, strings.value(row)) {
                    out.values().append_value(piece);
                }
            }
            out.append(true);
        }
        finish(&args.args, Arc::new(out.finish()))
    }
}

/// A built-in PostgreSQL gives more to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Extended {
    /// `encode(bytea, 'escape')`.
    Encode,
    /// `decode(text, 'escape')`.
    Decode,
    /// `substr(bytea, from [, count])`, and 22011 for a negative count.
    Substr,
}

/// A DataFusion built-in with what PostgreSQL adds to it (see [`Extended`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Extends {
    inner: Arc<ScalarUDF>,
    kind: Extended,
    signature: Signature,
}

impl Extends {
    fn is_own(&self, arg_types: &[DataType]) -> bool {
        self.kind == Extended::Substr && arg_types.first().is_some_and(is_binary)
    }

    /// Whether an `encode`/`decode` call names the constant format `name`.
    fn has_format(&self, args: &[ColumnarValue], name: &str) -> bool {
        self.kind != Extended::Substr
            && matches!(
                args.get(1),
                Some(ColumnarValue::Scalar(
                    ScalarValue::Utf8(Some(f)) | ScalarValue::Utf8View(Some(f)) | ScalarValue::LargeUtf8(Some(f))
                )) if f.eq_ignore_ascii_case(name)
            )
    }
}

impl ScalarUDFImpl for Extends {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if self.is_own(arg_types) {
            let mut types = vec![DataType::Binary];
            types.extend(std::iter::repeat_n(DataType::Int64, arg_types.len() - 1));
            if !(2..=3).contains(&types.len()) {
                return Err(error(
                    sqlstate::UNDEFINED_FUNCTION,
                    "function substr(bytea) does not exist",
                ));
            }
            return Ok(types);
        }
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
            .collect();
        Ok(fields_with_udf(&fields, self.inner.as_ref())?
            .iter()
            .map(|f| f.data_type().clone())
            .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if self.is_own(arg_types) {
            return Ok(DataType::Binary);
        }
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if self.is_own(&types) {
            return Ok(Arc::new(Field::new(self.name(), DataType::Binary, true)));
        }
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if self.kind == Extended::Substr && args.number_rows > 0 {
            if let Some(count) = args.args.get(2) {
                // Only where no argument is NULL: the function is strict, so a NULL string or
                // start gives NULL whatever the length (`substring('' FROM NULL FOR -1)`).
                let rows = args.number_rows;
                let counts = count.to_array(rows)?;
                if let Some(counts) = counts.as_primitive_opt::<Int64Type>() {
                    let others = args.args[..2]
                        .iter()
                        .map(|a| a.to_array(rows))
                        .collect::<DfResult<Vec<_>>>()?;
                    let negative = counts.iter().enumerate().any(|(row, c)| {
                        c.is_some_and(|c| c < 0)
                            && others.iter().all(|a| a.len() <= row || a.is_valid(row))
                    });
                    if negative {
                        return Err(error("22011", "negative substring length not allowed"));
                    }
                }
            }
        }
        if self.kind == Extended::Substr {
            let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
            if self.is_own(&types) {
                return substr_bytes(&args);
            }
        }
        if self.kind == Extended::Decode && self.has_format(&args.args, "hex") {
            let rows = rows_of(&args);
            let values = cast(&args.args[0].to_array(rows)?, &DataType::Binary)?;
            let mut out = BinaryBuilder::with_capacity(rows, rows * 8);
            for v in values.as_binary::<i32>().iter() {
                match v {
                    Some(v) => out.append_value(hex_decode(v)?),
                    None => out.append_null(),
                }
            }
            return finish(&args.args, Arc::new(out.finish()));
        }
        if self.has_format(&args.args, "base64") {
            let rows = rows_of(&args);
            let values = args.args[0].to_array(rows)?;
            let result: ArrayRef = if self.kind == Extended::Encode {
                let values = cast(&values, &DataType::Binary)?;
                let encoded: StringArray = values
                    .as_binary::<i32>()
                    .iter()
                    .map(|v| v.map(base64_encode))
                    .collect();
                Arc::new(encoded)
            } else {
                let values = cast(&values, &DataType::Utf8)?;
                let mut out = BinaryBuilder::with_capacity(rows, rows * 8);
                for v in values.as_string::<i32>().iter() {
                    match v {
                        Some(v) => out.append_value(base64_decode(v)?),
                        None => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            };
            return finish(&args.args, result);
        }
        if self.has_format(&args.args, "escape") {
            let rows = rows_of(&args);
            let values = args.args[0].to_array(rows)?;
            let values = cast(&values, &DataType::Binary)?;
            let values = values.as_binary::<i32>();
            let result: ArrayRef = if self.kind == Extended::Encode {
                let encoded: StringArray = values.iter().map(|v| v.map(escape_encode)).collect();
                Arc::new(encoded)
            } else {
                let mut out = BinaryBuilder::with_capacity(rows, rows * 8);
                for v in values.iter() {
                    match v {
                        Some(v) => out.append_value(escape_decode(v)?),
                        None => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            };
            return finish(&args.args, result);
        }
        self.inner.invoke_with_args(args)
    }
}

/// `encode(bytes, 'base64')` as PostgreSQL writes it: padded, a line break after every 76
/// characters.
fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76);
    for (i, chunk) in flat.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
    out
}

/// `decode(text, 'base64')`: whitespace is skipped and padding is optional, as in
/// PostgreSQL; anything else that is not base64 is 22023.
fn base64_decode(text: &str) -> DfResult<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(compact.as_bytes()).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, _) => error(
            "22023",
            format!(
                "invalid symbol \"{}\" found while decoding base64 sequence",
                compact
                    .get(at..)
                    .and_then(|rest| rest.chars().next())
                    .unwrap_or(' ')
            ),
        ),
        _ => error("22023", "invalid base64 end sequence"),
    })
}

/// `encode(bytes, 'escape')`: NUL and high bytes as `\ooo`, backslashes doubled.
fn escape_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b == 0 || b >= 0x80 {
            let _ = write!(out, "\\{b:03o}");
        } else if b == b'\\' {
            out.push_str("\\\\");
        } else {
            out.push(b as char);
        }
    }
    out
}

/// `decode(text, 'hex')` as PostgreSQL reads it: pairs of hex digits, whitespace between
/// pairs skipped; a bad digit or an odd count is 22023.
fn hex_decode(text: &[u8]) -> DfResult<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let digit = |b: u8| -> DfResult<u8> {
        (b as char).to_digit(16).map(|d| d as u8).ok_or_else(|| {
            error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!(
                    "invalid hexadecimal digit: \"{}\"",
                    String::from_utf8_lossy(&[b])
                ),
            )
        })
    };
    let mut at = 0;
    while at < text.len() {
        if matches!(text[at], b' ' | b'\n' | b'\t' | b'\r') {
            at += 1;
            continue;
        }
        let high = digit(text[at])?;
        let Some(&low) = text.get(at + 1) else {
            return Err(error(
                sqlstate::INVALID_PARAMETER_VALUE,
                "invalid hexadecimal data: odd number of digits",
            ));
        };
        out.push((high << 4) | digit(low)?);
        at += 2;
    }
    Ok(out)
}

/// `decode(text, 'escape')`: `\ooo` and `\\`; any other backslash is 22P02.
fn escape_decode(text: &[u8]) -> DfResult<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    let octal = |b: u8, max: u8| (b'0'..=max).contains(&b);
    while at < text.len() {
        if text[at] != b'\\' {
            out.push(text[at]);
            at += 1;
        } else if at + 3 < text.len()
            && octal(text[at + 1], b'3')
            && octal(text[at + 2], b'7')
            && octal(text[at + 3], b'7')
        {
            out.push(
                ((text[at + 1] - b'0') << 6) | ((text[at + 2] - b'0') << 3) | (text[at + 3] - b'0'),
            );
            at += 4;
        } else if at + 1 < text.len() && text[at + 1] == b'\\' {
            out.push(b'\\');
            at += 2;
        } else {
            return Err(error(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type bytea",
            ));
        }
    }
    Ok(out)
}

/// `substr(bytea, from [, count])` with PostgreSQL's bounds: positions count from 1, a start
/// before 1 shortens the count.
fn substr_bytes(args: &ScalarFunctionArgs) -> DfResult<ColumnarValue> {
    let rows = rows_of(args);
    let values = cast(&args.args[0].to_array(rows)?, &DataType::Binary)?;
    let values: &BinaryArray = values.as_binary::<i32>();
    let starts = cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
    let starts = starts.as_primitive::<Int64Type>();
    let counts = match args.args.get(2) {
        Some(c) => Some(cast(&c.to_array(rows)?, &DataType::Int64)?),
        None => None,
    };
    let counts = counts.as_ref().map(|c| c.as_primitive::<Int64Type>());
    let mut out = BinaryBuilder::with_capacity(rows, rows * 8);
    for row in 0..rows {
        if values.is_null(row) || starts.is_null(row) || counts.is_some_and(|c| c.is_null(row)) {
            out.append_null();
            continue;
        }
        let bytes = values.value(row);
        let start = starts.value(row);
        let end = match counts {
            Some(c) => start.saturating_add(c.value(row)),
            None => i64::MAX,
        };
        let from = (start.max(1) - 1).min(bytes.len() as i64) as usize;
        let to = (end.max(1) - 1).min(bytes.len() as i64).max(from as i64) as usize;
        out.append_value(&bytes[from..to]);
    }
    finish(&args.args, Arc::new(out.finish()))
}

/// Casts to and from text that Arrow's cast gets wrong for PostgreSQL: text to `uuid` (checked
/// and written canonically: `A0EEBC99…` and `{a0eebc99-9c0b4ef8-…}` are the same uuid,
/// anything else is 22P02) and `bytea` to text (PostgreSQL's hex form `\x0102`, not the raw
/// bytes).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) enum TextCast {
    ToUuid,
    ByteaToText,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextCastFunction {
    kind: TextCast,
    signature: Signature,
}

/// The function for `kind`.
pub(crate) fn text_cast(kind: TextCast) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(TextCastFunction {
        kind,
        signature: Signature::any(1, Volatility::Immutable),
    }))
}

impl ScalarUDFImpl for TextCastFunction {
    fn name(&self) -> &str {
        match self.kind {
            TextCast::ToUuid => "floe_text_to_uuid",
            TextCast::ByteaToText => "floe_bytea_to_text",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let values = args.args[0].to_array(rows)?;
        let result: StringArray = match self.kind {
            TextCast::ToUuid => {
                let values = cast(&values, &DataType::Utf8)?;
                values
                    .as_string::<i32>()
                    .iter()
                    .map(|v| {
                        v.map(|text| {
                            crate::literals::canonical_uuid(text).ok_or_else(|| {
                                error(
                                    "22P02",
                                    format!("invalid input syntax for type uuid: \"{text}\""),
                                )
                            })
                        })
                        .transpose()
                    })
                    .collect::<DfResult<_>>()?
            }
            TextCast::ByteaToText => {
                let values = cast(&values, &DataType::Binary)?;
                values
                    .as_binary::<i32>()
                    .iter()
                    .map(|v| {
                        v.map(|bytes| {
                            let mut out = String::with_capacity(2 + 2 * bytes.len());
                            out.push_str("\\x");
                            for b in bytes {
                                let _ = write!(out, "{b:02x}");
                            }
                            out
                        })
                    })
                    .collect()
            }
        };
        finish(&args.args, Arc::new(result))
    }
}

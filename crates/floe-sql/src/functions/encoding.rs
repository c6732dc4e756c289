//! `convert_to(text, encoding) → bytea`, `convert_from(bytea, encoding) → text` and
//! `convert(bytea, from, to) → bytea`. Floe's databases are UTF-8, as the reference
//! PostgreSQL's: the conversions Floe does are to and from UTF-8, SQL_ASCII and LATIN1 (ISO
//! 8859-1); other encodings PostgreSQL knows are refused (0A000), unknown names are 22023.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BinaryBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, rows_of};
use crate::error::{sqlstate, SqlError};

/// The functions of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    [Direction::To, Direction::From, Direction::Between]
        .into_iter()
        .map(|direction| {
            ScalarUDF::new_from_impl(Convert {
                direction,
                signature: Signature::user_defined(Volatility::Immutable),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Encoding {
    Utf8,
    SqlAscii,
    Latin1,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF8",
            Encoding::SqlAscii => "SQL_ASCII",
            Encoding::Latin1 => "LATIN1",
        }
    }
}

/// The encodings PostgreSQL knows, by their names cleaned as `clean_encoding_name` does.
const KNOWN_ENCODINGS: [&str; 43] = [
    "utf8",
    "unicode",
    "sqlascii",
    "latin1",
    "eucjp",
    "euccn",
    "euckr",
    "euctw",
    "eucjis2004",
    "muleinternal",
    "mulemc",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "latin9",
    "latin10",
    "win1256",
    "win1258",
    "win866",
    "win874",
    "koi8r",
    "win1251",
    "win1252",
    "win1250",
    "win1253",
    "win1254",
    "win1255",
    "win1257",
    "koi8u",
    "sjis",
    "big5",
    "gbk",
    "uhc",
    "gb18030",
    "johab",
    "shiftjis2004",
    "alt",
    "win",
    "tcvn",
];

/// An encoding name as PostgreSQL matches it (case and non-alphanumerics ignored), if
/// PostgreSQL knows the encoding.
pub(crate) fn known_encoding(name: &str) -> Option<String> {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (KNOWN_ENCODINGS.contains(&clean.as_str()) || clean.starts_with("iso8859")).then_some(clean)
}

/// The encoding `name` denotes, for a conversion (`role`: source or destination).
fn encoding(name: &str, role: &str) -> Result<Encoding, SqlError> {
    match known_encoding(name).as_deref() {
        Some("utf8" | "unicode") => Ok(Encoding::Utf8),
        Some("sqlascii") => Ok(Encoding::SqlAscii),
        Some("latin1" | "iso88591") => Ok(Encoding::Latin1),
        Some(_) => Err(SqlError::not_supported(format!(
            "conversion to or from encoding \"{name}\" is not supported"
        ))),
        None => Err(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("invalid {role} encoding name \"{name}\""),
        )),
    }
}

/// Bytes as PostgreSQL lists them in conversion errors (`0xe6 0x97`).
fn byte_list(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("0x{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `bytes` in `from` read as text (checked: the database encoding is UTF-8).
fn decode(bytes: &[u8], from: Encoding) -> Result<String, SqlError> {
    match from {
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        Encoding::Utf8 | Encoding::SqlAscii => match std::str::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => Ok(text.to_owned()),
            Ok(_) => Err(SqlError::new(
                sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "invalid byte sequence for encoding \"UTF8\": 0x00",
            )),
            Err(e) => {
                // As PostgreSQL's report_invalid_encoding: the bytes of the character the
                // first byte announces.
                let rest = &bytes[e.valid_up_to()..];
                let announced = match rest.first() {
                    Some(b) if b & 0xe0 == 0xc0 => 2,
                    Some(b) if b & 0xf0 == 0xe0 => 3,
                    Some(b) if b & 0xf8 == 0xf0 => 4,
                    _ => 1,
                };
                Err(SqlError::new(
                    sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                    format!(
                        "invalid byte sequence for encoding \"UTF8\": {}",
                        byte_list(&rest[..announced.min(rest.len())])
                    ),
                ))
            }
        },
    }
}

/// `text` written in `to`.
fn encode(text: &str, to: Encoding) -> Result<Vec<u8>, SqlError> {
    match to {
        Encoding::Utf8 | Encoding::SqlAscii => Ok(text.as_bytes().to_vec()),
        Encoding::Latin1 => text
            .chars()
            .map(|c| {
                u8::try_from(u32::from(c)).map_err(|_| {
                    let mut buf = [0u8; 4];
                    SqlError::new(
                        sqlstate::UNTRANSLATABLE_CHARACTER,
                        format!(
                            "character with byte sequence {} in encoding \"UTF8\" has no \
                             equivalent in encoding \"{}\"",
                            byte_list(c.encode_utf8(&mut buf).as_bytes()),
                            to.name()
                        ),
                    )
                })
            })
            .collect(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Direction {
    /// `convert_to(text, to)`.
    To,
    /// `convert_from(bytea, from)`.
    From,
    /// `convert(bytea, from, to)`.
    Between,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Convert {
    direction: Direction,
    signature: Signature,
}

impl ScalarUDFImpl for Convert {
    fn name(&self) -> &str {
        match self.direction {
            Direction::To => "convert_to",
            Direction::From => "convert_from",
            Direction::Between => "convert",
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
        let bytes = |t: &DataType| matches!(t, DataType::Binary | DataType::Null);
        match (self.direction, arg_types) {
            (Direction::To, [a, b]) if text(a) && text(b) => {
                Ok(vec![DataType::Utf8, DataType::Utf8])
            }
            (Direction::From, [a, b]) if bytes(a) && text(b) => {
                Ok(vec![DataType::Binary, DataType::Utf8])
            }
            (Direction::Between, [a, b, c]) if bytes(a) && text(b) && text(c) => {
                Ok(vec![DataType::Binary, DataType::Utf8, DataType::Utf8])
            }
            _ => Err(super::datetime::no_function(self.name(), arg_types)),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.direction {
            Direction::From => DataType::Utf8,
            _ => DataType::Binary,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let arrays = args
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let target = match (self.direction, i) {
                    (Direction::To, 0) => DataType::Utf8,
                    (_, 0) => DataType::Binary,
                    _ => DataType::Utf8,
                };
                Ok(cast(&a.to_array(rows)?, &target)?)
            })
            .collect::<DfResult<Vec<_>>>()?;
        let null = |row: usize| arrays.iter().any(|a| a.is_null(row));
        let name = |i: usize, row: usize| arrays[i].as_string::<i32>().value(row);
        match self.direction {
            Direction::To => {
                let texts = arrays[0].as_string::<i32>();
                let mut out = BinaryBuilder::new();
                for row in 0..rows {
                    if null(row) {
                        out.append_null();
                        continue;
                    }
                    let to = encoding(name(1, row), "destination")?;
                    out.append_value(encode(texts.value(row), to)?);
                }
                finish(&args.args, Arc::new(out.finish()))
            }
            Direction::From => {
                let bytes = arrays[0].as_binary::<i32>();
                let mut out = StringBuilder::new();
                for row in 0..rows {
                    if null(row) {
                        out.append_null();
                        continue;
                    }
                    let from = encoding(name(1, row), "source")?;
                    out.append_value(decode(bytes.value(row), from)?);
                }
                finish(&args.args, Arc::new(out.finish()))
            }
            Direction::Between => {
                let bytes = arrays[0].as_binary::<i32>();
                let mut out = BinaryBuilder::new();
                for row in 0..rows {
                    if null(row) {
                        out.append_null();
                        continue;
                    }
                    let from = encoding(name(1, row), "source")?;
                    let to = encoding(name(2, row), "destination")?;
                    let text = decode(bytes.value(row), from)?;
                    out.append_value(encode(&text, to)?);
                }
                finish(&args.args, Arc::new(out.finish()))
            }
        }
    }
}

/// A cast of text to `bytea` reads bytea's input forms (`\x0102` hex, or the escape format),
/// as PostgreSQL's `byteain`: DataFusion's cast took the text's bytes as they are, so
/// `CAST('\x01'::bytea::text AS bytea)` was `\x5c783031`. Casts of literals are read while
/// the statement is parsed (`crate::rewrite`); this is the rewrite of the others, after type
/// coercion.
pub(crate) fn text_to_bytea_casts(
    expr: datafusion::logical_expr::Expr,
    schema: &datafusion::common::DFSchema,
) -> DfResult<datafusion::common::tree_node::Transformed<datafusion::logical_expr::Expr>> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Expr, ExprSchemable};
    let Expr::Cast(cast) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let to_bytes = matches!(
        cast.field.data_type(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    ) && cast.field.metadata().is_empty();
    let from_text = cast
        .expr
        .get_type(schema)
        .is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View));
    if !to_bytes || !from_text || matches!(cast.expr.as_ref(), Expr::Literal(..)) {
        return Ok(Transformed::no(expr));
    }
    let Expr::Cast(cast) = expr else {
        unreachable!("matched above")
    };
    let read = Expr::ScalarFunction(datafusion::logical_expr::expr::ScalarFunction::new_udf(
        text_to_bytea_udf(),
        vec![*cast.expr],
    ));
    Ok(Transformed::yes(
        if cast.field.data_type() == &DataType::Binary {
            read
        } else {
            Expr::Cast(datafusion::logical_expr::expr::Cast::new(
                Box::new(read),
                cast.field.data_type().clone(),
            ))
        },
    ))
}

fn text_to_bytea_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> = std::sync::LazyLock::new(|| {
        Arc::new(ScalarUDF::new_from_impl(TextToBytea {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    });
    UDF.clone()
}

/// `floe_text_to_bytea(text) → bytea`: bytea's input function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TextToBytea {
    signature: Signature,
}

impl ScalarUDFImpl for TextToBytea {
    fn name(&self) -> &str {
        "floe_text_to_bytea"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Binary)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let texts = cast(&args.args[0].to_array(rows_of(&args))?, &DataType::Utf8)?;
        let mut out = BinaryBuilder::new();
        for text in texts.as_string::<i32>() {
            match text {
                None => out.append_null(),
                Some(t) => match crate::literals::parse_bytea(t) {
                    Some(bytes) => out.append_value(bytes),
                    None => return Err(crate::literals::bytea_input_error(t).into()),
                },
            }
        }
        finish(&args.args, Arc::new(out.finish()))
    }
}

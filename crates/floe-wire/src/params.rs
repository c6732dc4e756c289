//! Decoding bound parameter values (Bind) into DataFusion scalars.
//!
//! Text-format values become `Utf8` scalars that the session casts to the parameter's type, so
//! a bad value fails like PostgreSQL's type input functions (22P02). A few text forms Arrow's
//! casts don't read are handled here: bytea (`\x…` and escape form), arrays (`{…}`), uuid
//! spellings, intervals in PostgreSQL's output style and `+HH` time zone offsets.
//! Binary-format values are decoded by type, following PostgreSQL's send/recv formats.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{NaiveTime, Timelike};
use datafusion::arrow::array::{new_empty_array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, FieldRef, IntervalMonthDayNano};
use datafusion::scalar::ScalarValue;
use floe_sql::numeric::Numeric;
use floe_sql::{sqlstate, SqlError, SqlResult, SqlType};
use pgwire::api::portal::Format;
use postgres_types::FromSql;

use crate::encode::pg_type;
use floe_sql::literals::{parse_array, parse_bytea};

/// Days between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Decodes every parameter of a Bind message.
pub(crate) fn decode(
    values: &[Option<Bytes>],
    format: &Format,
    types: &[SqlType],
) -> SqlResult<Vec<ScalarValue>> {
    if values.len() != types.len() {
        return Err(SqlError::new(
            sqlstate::PROTOCOL_VIOLATION,
            format!(
                "bind message supplies {} parameters, but prepared statement requires {}",
                values.len(),
                types.len()
            ),
        ));
    }
    values
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (value, ty))| {
            let binary = match format {
                Format::UnifiedText => false,
                Format::UnifiedBinary => true,
                Format::Individual(codes) => match codes.len() {
                    0 => false,
                    1 => codes[0] == 1,
                    _ => codes.get(i).copied().unwrap_or(0) == 1,
                },
            };
            match value {
                None => null_of(ty),
                Some(bytes) if binary => decode_binary(ty, bytes).map_err(|e| {
                    SqlError::new(
                        sqlstate::INVALID_BINARY_REPRESENTATION,
                        format!("incorrect binary data format in bind parameter {}", i + 1),
                    )
                    .with_detail(e)
                }),
                Some(bytes) => {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        SqlError::new(
                            sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                            "invalid byte sequence for encoding \"UTF8\"",
                        )
                    })?;
                    decode_text(ty, text)
                }
            }
        })
        .collect()
}

fn null_of(ty: &SqlType) -> SqlResult<ScalarValue> {
    Ok(ScalarValue::try_from(&ty.to_arrow())?)
}

fn invalid_text(ty: &SqlType, text: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {}: \"{text}\"", ty.name()),
    )
}

/// An integer parameter in plain decimal (what drivers send), parsed without a string and a
/// cast per execution. Anything else (out of range, not a number, …) is left to the general
/// conversion, which reports PostgreSQL's error for it.
fn plain_integer(ty: &SqlType, text: &str) -> Option<ScalarValue> {
    let text = text.trim();
    match ty {
        SqlType::Int2 => text.parse().ok().map(|v| ScalarValue::Int16(Some(v))),
        SqlType::Int4 => text.parse().ok().map(|v| ScalarValue::Int32(Some(v))),
        SqlType::Int8 => text.parse().ok().map(|v| ScalarValue::Int64(Some(v))),
        _ => None,
    }
}

/// A text-format value of type `ty`.
pub(crate) fn decode_text(ty: &SqlType, text: &str) -> SqlResult<ScalarValue> {
    if let Some(value) = plain_integer(ty, text) {
        return Ok(value);
    }
    Ok(match ty {
        SqlType::Bytea => ScalarValue::Binary(Some(
            parse_bytea(text).ok_or_else(|| floe_sql::literals::bytea_input_error(text))?,
        )),
        SqlType::Uuid => {
            let uuid = uuid::Uuid::parse_str(text.trim()).map_err(|_| invalid_text(ty, text))?;
            ScalarValue::Utf8(Some(uuid.hyphenated().to_string()))
        }
        SqlType::Json | SqlType::Jsonb => ScalarValue::Utf8(Some(floe_sql::literals::read_json(
            text,
            *ty == SqlType::Jsonb,
        )?)),
        SqlType::Numeric => ScalarValue::LargeBinary(Some(Numeric::parse(text)?.to_key())),
        SqlType::Int2
        | SqlType::Int4
        | SqlType::Int8
        | SqlType::Oid
        | SqlType::Float4
        | SqlType::Float8
        | SqlType::Bool
        | SqlType::Date
        | SqlType::Time
        | SqlType::Timestamp => ScalarValue::Utf8(Some(text.trim().to_string())),
        SqlType::Timestamptz => ScalarValue::Utf8(Some(normalize_offset(text.trim()))),
        SqlType::Interval => match parse_interval(text) {
            Some(v) => ScalarValue::IntervalMonthDayNano(Some(v)),
            None => ScalarValue::Utf8(Some(text.to_string())),
        },
        SqlType::Array(inner) => {
            let elements = parse_array(text).ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("malformed array literal: \"{text}\""),
                )
            })?;
            let target = element_field(inner).data_type().clone();
            let scalars = elements
                .iter()
                .map(|e| match e {
                    None => Ok(ScalarValue::try_from(&target)?),
                    Some(t) => Ok(to_element(decode_text(inner, t)?, &target)?),
                })
                .collect::<SqlResult<Vec<_>>>()?;
            list_of(scalars, inner)?
        }
        _ => ScalarValue::Utf8(Some(text.to_string())),
    })
}

/// A one-dimensional array value whose item field is exactly the one of `inner[]`'s Arrow type
/// (tagged for uuid, varchar, json, …), so it binds to a parameter of that type as is.
fn list_of(scalars: Vec<ScalarValue>, inner: &SqlType) -> SqlResult<ScalarValue> {
    let item = element_field(inner);
    let values = if scalars.is_empty() {
        new_empty_array(item.data_type())
    } else {
        ScalarValue::iter_to_array(scalars)?
    };
    let list = ListArray::try_new(
        item,
        OffsetBuffer::from_lengths([values.len()]),
        values,
        None,
    )?;
    Ok(ScalarValue::List(Arc::new(list)))
}

/// The element field of arrays of `inner` (arrays of numeric hold `Decimal128`).
fn element_field(inner: &SqlType) -> FieldRef {
    match SqlType::Array(Box::new(inner.clone())).to_arrow() {
        DataType::List(item) => item,
        _ => Arc::new(inner.to_arrow_field("item")),
    }
}

/// An array element converted to the array's element type.
fn to_element(value: ScalarValue, target: &DataType) -> SqlResult<ScalarValue> {
    if value.data_type() == *target {
        return Ok(value);
    }
    if matches!(value.data_type(), DataType::LargeBinary) {
        let converted = floe_sql::numeric::functions::convert(&value.to_array()?, target)?;
        return Ok(ScalarValue::try_from_array(&converted, 0)?);
    }
    Ok(value.cast_to(target)?)
}

/// `+05` → `+05:00` (Arrow wants minutes in an offset).
fn normalize_offset(text: &str) -> String {
    let bytes = text.as_bytes();
    let n = bytes.len();
    if n >= 3
        && (bytes[n - 3] == b'+' || bytes[n - 3] == b'-')
        && bytes[n - 2].is_ascii_digit()
        && bytes[n - 1].is_ascii_digit()
        && n > 10
    {
        format!("{text}:00")
    } else {
        text.to_string()
    }
}

/// PostgreSQL-style interval text: `1 year 2 mons 3 days 04:05:06.5`, `-1 day`, `@ 1 hour ago`,
/// `3 days 7200.5 seconds`. `None` when the text is in a form this does not read.
pub(crate) fn parse_interval(text: &str) -> Option<IntervalMonthDayNano> {
    let mut months: i64 = 0;
    let mut days: i64 = 0;
    let mut nanos: i128 = 0;
    let cleaned = text.trim().trim_start_matches('@').to_ascii_lowercase();
    let mut tokens: Vec<&str> = cleaned.split_whitespace().collect();
    let ago = tokens.last() == Some(&"ago");
    if ago {
        tokens.pop();
    }
    if tokens.is_empty() {
        return None;
    }
    let mut i = 0;
    while i < tokens.len() {
        let tok = tokens[i];
        if tok.contains(':') {
            nanos += parse_clock(tok)?;
            i += 1;
            continue;
        }
        let number: f64 = tok.parse().ok()?;
        let unit = tokens.get(i + 1)?;
        let whole = number.trunc();
        let frac = number - whole;
        match unit.trim_end_matches(',') {
            "millennium" | "millennia" | "millenniums" => months += (number * 12000.0) as i64,
            "century" | "centuries" => months += (number * 1200.0) as i64,
            "decade" | "decades" => months += (number * 120.0) as i64,
            "year" | "years" | "y" | "yr" | "yrs" => months += (number * 12.0).round() as i64,
            "mon" | "mons" | "month" | "months" => {
                months += whole as i64;
                days += (frac * 30.0) as i64;
            }
            "week" | "weeks" | "w" => {
                days += (number * 7.0).trunc() as i64;
                nanos += ((number * 7.0).fract() * 86_400e9).round() as i128;
            }
            "day" | "days" | "d" => {
                days += whole as i64;
                nanos += (frac * 86_400e9).round() as i128;
            }
            "hour" | "hours" | "h" | "hr" | "hrs" => nanos += (number * 3_600e9).round() as i128,
            "minute" | "minutes" | "min" | "mins" | "m" => nanos += (number * 60e9).round() as i128,
            "second" | "seconds" | "sec" | "secs" | "s" => nanos += (number * 1e9).round() as i128,
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => {
                nanos += (number * 1e6).round() as i128
            }
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => {
                nanos += (number * 1e3).round() as i128
            }
            _ => return None,
        }
        i += 2;
    }
    let sign = if ago { -1 } else { 1 };
    Some(IntervalMonthDayNano::new(
        i32::try_from(months * sign).ok()?,
        i32::try_from(days * sign).ok()?,
        i64::try_from(nanos * sign as i128).ok()?,
    ))
}

/// `[-]HH:MM[:SS[.frac]]` in nanoseconds.
fn parse_clock(tok: &str) -> Option<i128> {
    let (negative, rest) = match tok.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, tok.strip_prefix('+').unwrap_or(tok)),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() < 2 || parts.len() > 3 {
        return None;
    }
    let hours: i128 = parts[0].parse().ok()?;
    let minutes: i128 = parts[1].parse().ok()?;
    let seconds: f64 = match parts.get(2) {
        Some(s) => s.parse().ok()?,
        None => 0.0,
    };
    let total =
        hours * 3_600_000_000_000 + minutes * 60_000_000_000 + (seconds * 1e9).round() as i128;
    Some(if negative { -total } else { total })
}

type DecodeError = String;

/// A binary-format value of type `ty` (PostgreSQL's `*_recv` formats).
fn decode_binary(ty: &SqlType, raw: &[u8]) -> Result<ScalarValue, DecodeError> {
    fn from_sql<'a, T: FromSql<'a>>(ty: &SqlType, raw: &'a [u8]) -> Result<T, DecodeError> {
        T::from_sql(&pg_type(ty), raw).map_err(|e| e.to_string())
    }
    Ok(match ty {
        SqlType::Bool => ScalarValue::Boolean(Some(from_sql::<bool>(ty, raw)?)),
        SqlType::Int2 => ScalarValue::Int16(Some(from_sql::<i16>(ty, raw)?)),
        SqlType::Int4 => ScalarValue::Int32(Some(from_sql::<i32>(ty, raw)?)),
        SqlType::Int8 => ScalarValue::Int64(Some(from_sql::<i64>(ty, raw)?)),
        SqlType::Oid => ScalarValue::Int64(Some(from_sql::<u32>(ty, raw)? as i64)),
        SqlType::Float4 => ScalarValue::Float32(Some(from_sql::<f32>(ty, raw)?)),
        SqlType::Float8 => ScalarValue::Float64(Some(from_sql::<f64>(ty, raw)?)),
        SqlType::Numeric => ScalarValue::LargeBinary(Some(
            Numeric::from_pg_binary(raw)
                .map_err(|e| e.to_string())?
                .to_key(),
        )),
        SqlType::Text
        | SqlType::Varchar
        | SqlType::Bpchar
        | SqlType::Name
        | SqlType::Unknown
        | SqlType::Void => ScalarValue::Utf8(Some(
            std::str::from_utf8(raw).map_err(|e| e.to_string())?.into(),
        )),
        SqlType::Json => ScalarValue::Utf8(Some(
            std::str::from_utf8(raw).map_err(|e| e.to_string())?.into(),
        )),
        SqlType::Jsonb => {
            let (version, body) = raw.split_first().ok_or("empty jsonb value")?;
            if *version != 1 {
                return Err(format!("unsupported jsonb version number {version}"));
            }
            let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
            ScalarValue::Utf8(Some(
                floe_sql::literals::read_json(text, true).map_err(|e| e.message)?,
            ))
        }
        SqlType::Uuid => {
            let uuid = uuid::Uuid::from_slice(raw).map_err(|e| e.to_string())?;
            ScalarValue::Utf8(Some(uuid.hyphenated().to_string()))
        }
        SqlType::Bytea => ScalarValue::Binary(Some(raw.to_vec())),
        SqlType::Date => {
            let days = from_sql::<i32>(&SqlType::Int4, raw)?;
            let days = match days {
                // Infinities are the extreme values on the wire and in Floe.
                i32::MAX | i32::MIN => days,
                _ => days.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?,
            };
            ScalarValue::Date32(Some(days))
        }
        SqlType::Time => {
            let t = from_sql::<NaiveTime>(ty, raw)?;
            let micros =
                t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64;
            ScalarValue::Time64Microsecond(Some(micros))
        }
        SqlType::Timestamp | SqlType::Timestamptz => {
            // Microseconds since 2000-01-01 (infinities: the extreme values, kept as such).
            let pg = from_sql::<i64>(&SqlType::Int8, raw)?;
            let micros = match pg {
                i64::MAX | i64::MIN => pg,
                _ => pg
                    .checked_add(i64::from(PG_EPOCH_DAYS) * 86_400_000_000)
                    .ok_or("timestamp out of range")?,
            };
            let zone = (*ty == SqlType::Timestamptz).then(|| Arc::from("+00:00"));
            ScalarValue::TimestampMicrosecond(Some(micros), zone)
        }
        SqlType::Interval => {
            if raw.len() != 16 {
                return Err("interval must be 16 bytes".into());
            }
            let micros = i64::from_be_bytes(raw[0..8].try_into().map_err(|_| "short interval")?);
            let days = i32::from_be_bytes(raw[8..12].try_into().map_err(|_| "short interval")?);
            let months = i32::from_be_bytes(raw[12..16].try_into().map_err(|_| "short interval")?);
            let nanos = micros.checked_mul(1000).ok_or("interval out of range")?;
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(months, days, nanos)))
        }
        SqlType::Array(inner) => decode_binary_array(inner, raw)?,
    })
}

/// A one-dimensional binary array: ndim, has-nulls flag, element OID, (length, lower bound)
/// per dimension, then each element as length + bytes (-1 for NULL).
fn decode_binary_array(inner: &SqlType, raw: &[u8]) -> Result<ScalarValue, DecodeError> {
    struct Reader<'a> {
        raw: &'a [u8],
        pos: usize,
    }
    impl<'a> Reader<'a> {
        fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
            let end = self.pos.checked_add(n).ok_or("array data too short")?;
            let out = self.raw.get(self.pos..end).ok_or("array data too short")?;
            self.pos = end;
            Ok(out)
        }
        fn i32(&mut self) -> Result<i32, DecodeError> {
            let b = self.bytes(4)?;
            Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }
    let mut reader = Reader { raw, pos: 0 };
    let ndim = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let _element_oid = reader.i32()?;
    if ndim == 0 {
        return list_of(vec![], inner).map_err(|e| e.to_string());
    }
    if ndim != 1 {
        return Err("multidimensional arrays are not supported".into());
    }
    let len = reader.i32()?;
    let _lower = reader.i32()?;
    if len < 0 {
        return Err("negative array length".into());
    }
    let mut scalars = Vec::with_capacity(len.min(1 << 16) as usize);
    for _ in 0..len {
        let elen = reader.i32()?;
        let target = element_field(inner).data_type().clone();
        if elen < 0 {
            scalars.push(ScalarValue::try_from(&target).map_err(|e| e.to_string())?);
            continue;
        }
        let bytes = reader.bytes(elen as usize)?;
        let v = decode_binary(inner, bytes)?;
        scalars.push(to_element(v, &target).map_err(|e| e.message)?);
    }
    list_of(scalars, inner).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_in_postgres_output_style() {
        let v = parse_interval("1 year 2 mons 3 days 04:05:06.5").unwrap();
        assert_eq!(v.months, 14);
        assert_eq!(v.days, 3);
        assert_eq!(
            v.nanoseconds,
            (4 * 3600 + 5 * 60 + 6) * 1_000_000_000 + 500_000_000
        );
        let v = parse_interval("-1 days -02:00:00").unwrap();
        assert_eq!((v.days, v.nanoseconds), (-1, -7_200_000_000_000));
        assert!(parse_interval("P1D").is_none());
        assert!(parse_interval("").is_none());
    }

    #[test]
    fn binary_values_follow_postgres_formats() {
        // date: days since 2000-01-01
        let v = decode_binary(&SqlType::Date, &1i32.to_be_bytes()).unwrap();
        assert_eq!(v, ScalarValue::Date32(Some(PG_EPOCH_DAYS + 1)));
        let mut raw = Vec::new();
        raw.extend(1i32.to_be_bytes()); // ndim
        raw.extend(1i32.to_be_bytes()); // has nulls
        raw.extend(23i32.to_be_bytes()); // int4
        raw.extend(2i32.to_be_bytes()); // len
        raw.extend(1i32.to_be_bytes()); // lower bound
        raw.extend(4i32.to_be_bytes());
        raw.extend(7i32.to_be_bytes());
        raw.extend((-1i32).to_be_bytes());
        let v = decode_binary(&SqlType::Array(Box::new(SqlType::Int4)), &raw).unwrap();
        assert_eq!(v.to_string(), "[7, ]");
        assert!(decode_binary(&SqlType::Int4, &[0, 1]).is_err());
        assert!(decode_binary(&SqlType::Array(Box::new(SqlType::Int4)), &raw[..10]).is_err());
    }

    #[test]
    fn plain_integers_are_parsed_and_the_rest_left_to_the_cast() {
        let d = |ty: SqlType, text: &str| decode_text(&ty, text).unwrap();
        assert_eq!(d(SqlType::Int4, " 42 "), ScalarValue::Int32(Some(42)));
        assert_eq!(d(SqlType::Int4, "+7"), ScalarValue::Int32(Some(7)));
        assert_eq!(d(SqlType::Int2, "-32768"), ScalarValue::Int16(Some(-32768)));
        assert_eq!(
            d(SqlType::Int8, "9223372036854775807"),
            ScalarValue::Int64(Some(i64::MAX))
        );
        // Out of range or not an integer: the conversion later reports PostgreSQL's error.
        assert_eq!(
            d(SqlType::Int4, "2147483648"),
            ScalarValue::Utf8(Some("2147483648".into()))
        );
        assert_eq!(
            d(SqlType::Int4, "4.0"),
            ScalarValue::Utf8(Some("4.0".into()))
        );
        assert_eq!(d(SqlType::Int2, ""), ScalarValue::Utf8(Some(String::new())));
    }

    fn numeric_text(value: ScalarValue) -> String {
        match value {
            ScalarValue::LargeBinary(Some(key)) => Numeric::from_key(&key).unwrap().to_text(),
            other => panic!("not a numeric: {other:?}"),
        }
    }

    #[test]
    fn numeric_text_keeps_its_scale() {
        let d = |text: &str| numeric_text(decode_text(&SqlType::Numeric, text).unwrap());
        assert_eq!(d("1.50"), "1.50");
        assert_eq!(d(" -3 "), "-3");
        assert_eq!(d("1E-9"), "0.000000001");
        assert_eq!(d("2.5e3"), "2500");
        assert_eq!(d(".5"), "0.5");
        assert_eq!(d("NaN"), "NaN");
        assert_eq!(d(&"9".repeat(60)), "9".repeat(60));
        let err = decode_text(&SqlType::Numeric, "1x").unwrap_err();
        assert_eq!(err.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        assert!(decode_text(&SqlType::Numeric, ".").is_err());
        // Arrays of numeric hold Decimal128 elements.
        let ty = SqlType::Array(Box::new(SqlType::Numeric));
        let v = decode_text(&ty, "{1.5,NULL}").unwrap();
        assert_eq!(v.data_type(), ty.to_arrow());
    }

    #[test]
    fn binary_numerics_keep_every_digit() {
        let words = |v: &[i16]| v.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        let d = |v: &[i16]| numeric_text(decode_binary(&SqlType::Numeric, &words(v)).unwrap());
        assert_eq!(d(&[2, 0, 0, 2, 1, 5000]), "1.50");
        assert_eq!(d(&[3, 1, 0x4000, 3, 1, 2345, 6780]), "-12345.678");
        assert_eq!(d(&[1, -3, 0, 9, 1000]), "0.000000001");
        assert_eq!(d(&[0, 0, 0, 2]), "0.00");
        // 36 nines, more than rust_decimal holds
        let nines: Vec<i16> = [9, 8, 0, 0].into_iter().chain([9999; 9]).collect();
        assert_eq!(d(&nines), "9".repeat(36));
        assert_eq!(d(&[0, 0, 0xC000u16 as i16, 0]), "NaN");
        assert_eq!(d(&[0, 0, 0xF000u16 as i16, 0]), "-Infinity");
        let bad = |v: &[i16]| decode_binary(&SqlType::Numeric, &words(v)).is_err();
        assert!(bad(&[2, 0, 0, 0, 1]));
        assert!(bad(&[1, 0, 0, 0, 10000]));
        assert!(bad(&[0, 0, 0x1234, 0]));
    }

    #[test]
    fn arrays_carry_the_element_tag() {
        let ty = SqlType::Array(Box::new(SqlType::Uuid));
        let v = decode_text(&ty, "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}").unwrap();
        assert_eq!(v.data_type(), ty.to_arrow());
        let v = decode_text(&ty, "{}").unwrap();
        assert_eq!(v.data_type(), ty.to_arrow());
    }

    #[test]
    fn offsets_get_minutes() {
        assert_eq!(
            normalize_offset("2024-01-01 10:00:00+02"),
            "2024-01-01 10:00:00+02:00"
        );
        assert_eq!(
            normalize_offset("2024-01-01 10:00:00+02:30"),
            "2024-01-01 10:00:00+02:30"
        );
    }
}

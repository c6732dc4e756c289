//! SQL values as JSON: what `to_json`, `to_jsonb`, the `*_build_*` functions and the
//! aggregates make of a value of any type Floe has.
//!
//! The JSON text of a value is PostgreSQL's `datum_to_json`: numbers as their output text
//! (`1e+20` for a double; non-finite ones become strings), booleans, strings escaped, dates and
//! times in ISO 8601 with a `T`, arrays as JSON arrays, `json` and `jsonb` values as they are.
//! `to_jsonb` parses that text as `jsonb`, which is what PostgreSQL's `datum_to_jsonb` does too
//! (a double's text read as `numeric`: `1e+20` becomes `100000000000000000000`).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, IntervalUnit, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::Result as DfResult;

use super::value::quoted;
use crate::datetime::{date_text, Zone, DATE_INFINITY, DATE_NEG_INFINITY};
use crate::types::{float4_text, float8_text, SqlType};

/// A value's PostgreSQL output text (`crate::array_text`), for the types it always has one.
fn output_text(array: &dyn Array, row: usize, zone: Zone) -> String {
    crate::array_text::value_text(array, row, zone).unwrap_or_default()
}

/// The JSON text of row `row` of `array` (a column of `field`'s type); `None` for SQL NULL.
pub(crate) fn json_text(
    array: &dyn Array,
    field: &Field,
    row: usize,
    zone: Zone,
) -> DfResult<Option<String>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let sql_type = SqlType::from_arrow_field(field);
    let number = |text: String| {
        if is_json_number(&text) {
            text
        } else {
            quoted(&text)
        }
    };
    Ok(Some(match array.data_type() {
        DataType::Null => return Ok(None),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        // Numbers as their output text, as PostgreSQL's datum_to_json.
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Decimal128(..) => output_text(array, row, zone),
        DataType::Float32 => number(float4_text(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => number(float8_text(array.as_primitive::<Float64Type>().value(row))),
        DataType::LargeBinary => {
            let value = crate::numeric::Numeric::from_key(array.as_binary::<i64>().value(row))?;
            number(value.to_text())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = super::string_at(array, row)?.unwrap_or_default();
            match sql_type {
                SqlType::Json | SqlType::Jsonb => text.to_string(),
                _ => quoted(text),
            }
        }
        // Strings of their output text.
        DataType::Binary | DataType::Time64(_) | DataType::Interval(IntervalUnit::MonthDayNano) => {
            quoted(&output_text(array, row, zone))
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            quoted(&match days {
                DATE_INFINITY => "infinity".to_string(),
                DATE_NEG_INFINITY => "-infinity".to_string(),
                _ => date_text(days),
            })
        }
        DataType::Timestamp(unit, with_zone) => {
            let session_zone = zone;
            let zone = with_zone;
            let micros = match unit {
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .saturating_mul(1000),
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1_000_000),
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1000
                }
            };
            quoted(&timestamp_iso(
                micros,
                zone.is_some().then_some(session_zone),
            ))
        }
        DataType::List(item) => {
            let list = array.as_list::<i32>();
            let values = list.value(row);
            let mut out = String::from("[");
            for i in 0..values.len() {
                if i > 0 {
                    out.push(',');
                }
                match json_text(values.as_ref(), item, i, zone)? {
                    Some(text) => out.push_str(&text),
                    None => out.push_str("null"),
                }
            }
            out.push(']');
            out
        }
        other => {
            return Err(crate::SqlError::not_supported(format!(
                "JSON conversion of values of type {other}"
            ))
            .into())
        }
    }))
}

/// Whether `text` is a JSON number (PostgreSQL's `IsValidJsonNumber`).
fn is_json_number(text: &str) -> bool {
    super::value::parse(text).is_ok_and(|v| matches!(v, super::value::Raw::Number(_)))
}

/// A timestamp as JSON prints it: `2020-01-01T10:00:00.5`; a `timestamptz` in the session's
/// zone with its offset (`+05:30`).
fn timestamp_iso(micros: i64, zone: Option<Zone>) -> String {
    use crate::datetime::{TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY};
    match micros {
        TIMESTAMP_INFINITY => return "infinity".into(),
        TIMESTAMP_NEG_INFINITY => return "-infinity".into(),
        _ => {}
    }
    let offset = zone.map(|z| z.offset_at_utc(micros));
    let local = micros.saturating_add(i64::from(offset.unwrap_or(0)) * 1_000_000);
    let text = crate::datetime::timestamp_text(local, None);
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t.to_string(), " BC"),
        None => (text, ""),
    };
    let mut out = text.replacen(' ', "T", 1);
    if let Some(offset) = offset {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, (abs / 60) % 60));
        if abs % 60 != 0 {
            out.push_str(&format!(":{:02}", abs % 60));
        }
    }
    out.push_str(bc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_postgres_json() {
        assert_eq!(
            timestamp_iso(500_000, Some(Zone::from_setting(None))),
            "1970-01-01T00:00:00.5+00:00"
        );
        assert!(is_json_number("1e+20"));
        assert!(!is_json_number("NaN"));
    }
}

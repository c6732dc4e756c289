//! PostgreSQL's text form of values Arrow prints differently, and of arrays (`array_out`).
//!
//! The wire layer writes result columns with it where `arrow-pg`'s text differs from
//! PostgreSQL's (numerics, floats, times, intervals, arrays of those), and a cast of an array
//! to text (`'{1,2}'::int[]::text` is `{1,2}`, Arrow's cast gives `[1, 2]`) goes through
//! [`array_text_udf`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::datetime::{self, Zone};
use crate::error::{sqlstate, SqlError};

/// Row `row` of `array` in PostgreSQL's text form, for the types whose form Arrow's printing
/// gets wrong (`None` for the others, and for NULL): numerics, floats, dates and times,
/// intervals, and arrays. `zone` is the session's, for `timestamptz`.
pub fn pg_text(array: &dyn Array, row: usize, zone: Zone) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::List(_) => array_out(array.as_list::<i32>().value(row).as_ref(), zone)?,
        DataType::LargeList(_) => array_out(array.as_list::<i64>().value(row).as_ref(), zone)?,
        DataType::Decimal128(_, scale) => {
            numeric_text(array.as_primitive::<Decimal128Type>().value(row), *scale)
        }
        DataType::LargeBinary | DataType::Decimal256(..) => {
            match crate::numeric::functions::value_at(array, row) {
                Ok(Some(value)) => value.to_text(),
                Ok(None) => return None,
                Err(e) => format!("<{e}>"),
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            crate::interval::PgInterval::from_arrow(v).to_text()
        }
        DataType::Float64 => {
            crate::types::float8_text(array.as_primitive::<Float64Type>().value(row))
        }
        DataType::Float32 => {
            crate::types::float4_text(array.as_primitive::<Float32Type>().value(row))
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            time_text(array.as_primitive::<Time64MicrosecondType>().value(row))
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            time_text(array.as_primitive::<Time64NanosecondType>().value(row) / 1000)
        }
        DataType::Timestamp(unit, tz) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .checked_mul(1_000_000)?,
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .checked_mul(1000)?,
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => {
                    match array.as_primitive::<TimestampNanosecondType>().value(row) {
                        // Infinities keep their value in every unit.
                        v @ (i64::MAX | i64::MIN) => v,
                        v => v / 1000,
                    }
                }
            };
            datetime::timestamp_text(micros, tz.as_ref().map(|_| zone))
        }
        DataType::Date32 => datetime::date_text(array.as_primitive::<Date32Type>().value(row)),
        _ => return None,
    })
}

/// Row `row` of `array` as PostgreSQL prints it, for every type Floe holds (`None` for NULL
/// and for a type with no text form here).
pub fn value_text(array: &dyn Array, row: usize, zone: Zone) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    if let Some(text) = pg_text(array, row, zone) {
        return Some(text);
    }
    Some(match array.data_type() {
        DataType::Boolean => {
            let value = array.as_boolean().value(row);
            if value { "t" } else { "f" }.to_string()
        }
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        DataType::Binary => hex_text(array.as_binary::<i32>().value(row)),
        DataType::BinaryView => hex_text(array.as_binary_view().value(row)),
        _ => return None,
    })
}

fn hex_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A one-dimensional array in PostgreSQL's text form (`array_out`): `{a,NULL,"b c"}`; an
/// array of arrays nests (`{{1,2},{3,4}}`).
pub fn array_out(values: &dyn Array, zone: Zone) -> Option<String> {
    let nested = matches!(
        values.data_type(),
        DataType::List(_) | DataType::LargeList(_)
    );
    let mut out = String::from("{");
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        if values.is_null(i) {
            out.push_str("NULL");
            continue;
        }
        let text = value_text(values, i, zone)?;
        let quote = !nested
            && (text.is_empty()
                || text.eq_ignore_ascii_case("NULL")
                || text.chars().any(|c| {
                    matches!(
                        c,
                        '{' | '}' | ',' | '"' | '\\' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'
                    )
                }));
        if quote {
            out.push('"');
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(&text);
        }
    }
    out.push('}');
    Some(out)
}

/// `HH:MM:SS[.ffffff]` with trailing zeros of the fraction dropped, like PostgreSQL.
pub fn time_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    datetime::push_fraction(&mut out, frac);
    out
}

/// The decimal digits of `mantissa` × 10^-`scale` without sign, and the display scale.
pub fn decimal_digits(mantissa: i128, scale: i8) -> (bool, String, usize) {
    let mut digits = mantissa.unsigned_abs().to_string();
    if scale < 0 {
        digits.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
    }
    (mantissa < 0, digits, scale.max(0) as usize)
}

/// A numeric's text form, with exactly `scale` digits after the point, like PostgreSQL.
pub fn numeric_text(mantissa: i128, scale: i8) -> String {
    let (negative, digits, scale) = decimal_digits(mantissa, scale);
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let mut out = String::with_capacity(digits.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(whole);
    if scale > 0 {
        out.push('.');
        out.push_str(fraction);
    }
    out
}

/// `floe_array_text(array)`: the array's text (a cast of an array to text).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayText {
    signature: Signature,
}

/// The cast function (shared: the analyzer calls it for every array cast to text).
pub(crate) fn array_text_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(ArrayText {
            signature: Signature::any(1, Volatility::Stable),
        }))
    })
    .clone()
}

impl ScalarUDFImpl for ArrayText {
    fn name(&self) -> &str {
        "floe_array_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let rows = if scalar { 1 } else { args.number_rows };
        let arrays = args.args[0].to_array(rows)?;
        let zone = Zone::from_setting(args.config_options.execution.time_zone.as_deref());
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        for row in 0..rows {
            if arrays.is_null(row) {
                out.append_null();
                continue;
            }
            match pg_text(arrays.as_ref(), row, zone) {
                Some(text) => out.append_value(text),
                None => {
                    return Err(SqlError::new(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        format!(
                            "cannot cast type {} to text",
                            crate::types::SqlType::from_arrow(arrays.data_type()).name()
                        ),
                    )
                    .into())
                }
            }
        }
        let out: datafusion::arrow::array::ArrayRef = Arc::new(out.finish());
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?));
        }
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_print_with_their_scale() {
        assert_eq!(numeric_text(150, 2), "1.50");
        assert_eq!(numeric_text(-5, 3), "-0.005");
        assert_eq!(numeric_text(12, -3), "12000");
    }
}

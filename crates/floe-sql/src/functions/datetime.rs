//! PostgreSQL's date/time functions DataFusion lacks or gets wrong: `make_timestamp`,
//! `make_date` (BC years), `isfinite` and `extract(epoch from …)` (a `numeric`, exact to the
//! microsecond, `±Infinity` for infinite values; `floe_extract_epoch`, which the SQL rewrite
//! calls).
//!
//! `isfinite` is false for `±infinity` (the extreme values of `date` and `timestamp[tz]`, see
//! [`crate::datetime`]); PostgreSQL 15's intervals are always finite.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, LargeBinaryBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, FieldRef, Float64Type, Int64Type, IntervalMonthDayNanoType, IntervalUnit,
    Time64MicrosecondType, TimeUnit,
};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::{finish, rows_of};
use crate::error::{sqlstate, SqlError};

/// The functions of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(MakeTimestamp {
            signature: Signature::user_defined(Volatility::Immutable),
            time: false,
        }),
        ScalarUDF::new_from_impl(MakeTimestamp {
            signature: Signature::user_defined(Volatility::Immutable),
            time: true,
        }),
        ScalarUDF::new_from_impl(IsFinite {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(MakeDate {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(ExtractEpoch {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
    ]
}

/// The name `extract` and `date_part` are planned as (see [`DatePart`]).
pub(crate) const DATE_PART: &str = "floe_date_part";

/// `floe_date_part(field, x)`: DataFusion's `date_part` as a `double precision`, with
/// PostgreSQL's answers where DataFusion's differ: of `±infinity`, `±Infinity` for the fields
/// that grow without end (`epoch`, `julian`, `year`, `isoyear`, `decade`, `century`,
/// `millennium`) and NULL for the others (DataFusion computed on the extreme integers); the
/// `year` of a BC date counts no year 0 (`0044-03-15 BC` is -44, DataFusion's -43).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DatePart {
    inner: Arc<ScalarUDF>,
}

/// [`DatePart`] over DataFusion's `date_part`.
pub(crate) fn date_part_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(DatePart {
        inner: datafusion::functions::datetime::date_part(),
    })
}

impl ScalarUDFImpl for DatePart {
    fn name(&self) -> &str {
        DATE_PART
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        // NULL of an infinite value for most fields, whatever the arguments.
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            self.name(),
            DataType::Float64,
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use crate::datetime::{
            DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY,
        };
        let rows = rows_of(&args);
        let field = match &args.args[0] {
            ColumnarValue::Scalar(value) => value.to_string().to_ascii_lowercase(),
            ColumnarValue::Array(_) => String::new(),
        };
        let values = args.args[1].to_array(rows)?;
        // +1 / -1 for an infinite value, 0 for a finite one, per row.
        let infinite: Vec<i8> = match values.data_type() {
            DataType::Date32 => values
                .as_primitive::<Date32Type>()
                .iter()
                .map(|v| match v {
                    Some(DATE_INFINITY) => 1,
                    Some(DATE_NEG_INFINITY) => -1,
                    _ => 0,
                })
                .collect(),
            DataType::Timestamp(..) => crate::datetime_udf::timestamp_micros(&values)?
                .into_iter()
                .map(|v| match v {
                    Some(TIMESTAMP_INFINITY) => 1,
                    Some(TIMESTAMP_NEG_INFINITY) => -1,
                    _ => 0,
                })
                .collect(),
            _ => vec![0; values.len()],
        };
        // Decades, centuries and millennia come from the year (astronomical), as PostgreSQL
        // computes them; DataFusion lacks some.
        let field = field.trim_end_matches('s').to_string();
        let from_year = matches!(field.as_str(), "decade" | "century" | "millennium");
        let mut inner_values = args.args.clone();
        if from_year {
            inner_values[0] =
                ColumnarValue::Scalar(datafusion::common::ScalarValue::Utf8(Some("year".into())));
        }
        let scalars: Vec<Option<&datafusion::common::ScalarValue>> = inner_values
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(value) => Some(value),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let return_field = self.inner.return_field_from_args(ReturnFieldArgs {
            arg_fields: &args.arg_fields,
            scalar_arguments: &scalars,
        })?;
        let inner_args = ScalarFunctionArgs {
            args: inner_values.clone(),
            arg_fields: args.arg_fields.clone(),
            number_rows: args.number_rows,
            return_field,
            config_options: args.config_options.clone(),
        };
        let computed = self.inner.invoke_with_args(inner_args)?.to_array(rows)?;
        let computed = cast(&computed, &DataType::Float64)?;
        let computed = computed.as_primitive::<Float64Type>();
        let unbounded = matches!(
            field.as_str(),
            "epoch" | "julian" | "year" | "isoyear" | "decade" | "century" | "millennium"
        );
        // PostgreSQL's fields of an astronomical year `a` (no year 0 before 1 AD).
        let of_year = |a: i64| -> i64 {
            match field.as_str() {
                "year" if a <= 0 => a - 1,
                "decade" if a > 0 => a / 10,
                "decade" => -((8 - (a - 1)) / 10),
                "century" if a > 0 => (a + 99) / 100,
                "century" => -((99 - (a - 1)) / 100),
                "millennium" if a > 0 => (a + 999) / 1000,
                "millennium" => -((999 - (a - 1)) / 1000),
                _ => a,
            }
        };
        let by_year = from_year || field == "year";
        let out: Float64Array = (0..computed.len())
            .map(|row| match infinite.get(row).copied().unwrap_or(0) {
                0 if computed.is_null(row) => None,
                0 if by_year => Some(of_year(computed.value(row) as i64) as f64),
                0 => Some(computed.value(row)),
                sign if unbounded => Some(f64::from(sign) * f64::INFINITY),
                _ => None,
            })
            .collect();
        finish(&args.args, Arc::new(out))
    }
}

/// The name `extract(epoch from x)` is planned as.
pub(crate) const EXTRACT_EPOCH: &str = "floe_extract_epoch";

/// `extract(epoch from x)`: seconds since 1970-01-01 00:00 UTC (of a `timestamp`, as if it
/// were UTC), or the seconds of a `time` or an `interval` (a year of 365.25 days, a month of
/// 30), as PostgreSQL's `numeric` with six decimals (a `date`: none).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExtractEpoch {
    signature: Signature,
}

impl ScalarUDFImpl for ExtractEpoch {
    fn name(&self) -> &str {
        EXTRACT_EPOCH
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t @ (DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Time64(_)
            | DataType::Interval(IntervalUnit::MonthDayNano))] => Ok(vec![t.clone()]),
            // Text is read as `timestamptz`, the form PostgreSQL picks for an unknown literal.
            [DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null] => {
                Ok(vec![crate::datetime_udf::timestamptz_type()])
            }
            _ => Err(no_function("extract", arg_types)),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(crate::numeric::numeric_field("", None).data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(crate::numeric::numeric_field(self.name(), None)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use crate::datetime::{
            DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY,
        };
        use crate::numeric::value::Numeric;
        let values = args.args[0].to_array(rows_of(&args))?;
        let infinite = |positive: bool| {
            Some(if positive {
                Numeric::Infinity
            } else {
                Numeric::NegInfinity
            })
        };
        let at = |mantissa: i64, scale: u32| Numeric::finite(mantissa.into(), scale).ok();
        let epochs: Vec<Option<Numeric>> = match values.data_type() {
            DataType::Date32 => values
                .as_primitive::<Date32Type>()
                .iter()
                .map(|v| {
                    v.and_then(|days| match days {
                        DATE_INFINITY => infinite(true),
                        DATE_NEG_INFINITY => infinite(false),
                        _ => at(i64::from(days) * 86_400, 0),
                    })
                })
                .collect(),
            DataType::Timestamp(..) => crate::datetime_udf::timestamp_micros(&values)?
                .into_iter()
                .map(|v| {
                    v.and_then(|micros| match micros {
                        TIMESTAMP_INFINITY => infinite(true),
                        TIMESTAMP_NEG_INFINITY => infinite(false),
                        _ => at(micros, 6),
                    })
                })
                .collect(),
            DataType::Time64(_) => cast(&values, &DataType::Time64(TimeUnit::Microsecond))?
                .as_primitive::<Time64MicrosecondType>()
                .iter()
                .map(|v| v.and_then(|micros| at(micros, 6)))
                .collect(),
            DataType::Interval(IntervalUnit::MonthDayNano) => values
                .as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| {
                    v.and_then(|v| {
                        let i = crate::interval::PgInterval::from_arrow(v);
                        // PostgreSQL's sum, in quarter days: 365.25 days a year, 30 a month.
                        let (months, days) = (i64::from(i.months), i64::from(i.days));
                        let quarter_days = 1461 * (months / 12) + 120 * (months % 12) + 4 * days;
                        let seconds = quarter_days * (86_400 / 4);
                        at(seconds * 1_000_000 + i.micros, 6)
                    })
                })
                .collect(),
            other => return Err(no_function("extract", std::slice::from_ref(other))),
        };
        let mut out = LargeBinaryBuilder::with_capacity(epochs.len(), epochs.len() * 12);
        for epoch in epochs {
            match epoch {
                Some(value) => out.append_value(value.to_key()),
                None => out.append_null(),
            }
        }
        finish(&args.args, Arc::new(out.finish()))
    }
}

pub(crate) fn no_function(
    name: &str,
    arg_types: &[DataType],
) -> datafusion::error::DataFusionError {
    let types: Vec<String> = arg_types
        .iter()
        .map(|t| crate::error::arrow_name_to_pg(&t.to_string()).to_owned())
        .collect();
    SqlError::new(
        sqlstate::UNDEFINED_FUNCTION,
        format!("function {name}({}) does not exist", types.join(", ")),
    )
    .into()
}

/// `make_timestamp(year, month, day, hour, min, sec) → timestamp` (`time: false`) and
/// `make_time(hour, min, sec) → time` (`time: true`; DataFusion's took integer seconds and
/// refused 24:00:00).
#[derive(Debug, PartialEq, Eq, Hash)]
struct MakeTimestamp {
    signature: Signature,
    time: bool,
}

fn field_overflow(message: String) -> datafusion::error::DataFusionError {
    SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, message).into()
}

/// Seconds as PostgreSQL's `%02g` prints them in its messages (six significant digits:
/// 59.999999 is `60`, 5 is `05`).
fn seconds_text(seconds: f64) -> String {
    let text = if seconds == 0.0 || !seconds.is_finite() {
        format!("{seconds}")
    } else {
        let exponent = seconds.abs().log10().floor() as i32;
        if (-5..6).contains(&exponent) {
            let decimals = (5 - exponent).max(0) as usize;
            let fixed = format!("{seconds:.decimals$}");
            let trimmed = if fixed.contains('.') {
                fixed.trim_end_matches('0').trim_end_matches('.')
            } else {
                &fixed
            };
            trimmed.to_string()
        } else {
            let scientific = format!("{seconds:.5e}");
            let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
            let mantissa = if mantissa.contains('.') {
                mantissa.trim_end_matches('0').trim_end_matches('.')
            } else {
                mantissa
            };
            let exp: i32 = exp.parse().unwrap_or(0);
            format!(
                "{mantissa}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            )
        }
    };
    if text.len() < 2 {
        format!("0{text}")
    } else {
        text
    }
}

/// Microseconds since midnight of `hour:minute:seconds` as PostgreSQL's `make_time` and
/// `make_timestamp` accept them (24:00:00 included), or 22008.
fn time_micros(hour: i64, minute: i64, seconds: f64) -> DfResult<i64> {
    let time_ok = (0..=24).contains(&hour)
        && (0..=59).contains(&minute)
        && (0.0..=60.0).contains(&seconds)
        && !(hour == 24 && (minute > 0 || seconds > 0.0));
    if !time_ok {
        return Err(field_overflow(format!(
            "time field value out of range: {hour}:{minute:02}:{}",
            seconds_text(seconds)
        )));
    }
    Ok((hour * 60 + minute) * 60_000_000 + (seconds * 1_000_000.0).round() as i64)
}

/// Microseconds since 1970 of the timestamp PostgreSQL's `make_timestamp` builds, or its
/// error (22008).
fn make_timestamp(fields: [i64; 5], seconds: f64) -> DfResult<i64> {
    let [year, month, day, hour, minute] = fields;
    let date_error = || {
        field_overflow(format!(
            "date field value out of range: {year}-{month:02}-{day:02}"
        ))
    };
    // Year -1 is 1 BC, PostgreSQL's astronomical year 0; there is no year 0.
    let astronomical = match year {
        0 => return Err(date_error()),
        y if y < 0 => y + 1,
        y => y,
    };
    let date = i32::try_from(astronomical)
        .ok()
        .zip(u32::try_from(month).ok())
        .zip(u32::try_from(day).ok())
        .and_then(|((y, m), d)| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(date_error)?;
    let time = time_micros(hour, minute, seconds)?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = date.signed_duration_since(epoch).num_days();
    let out_of_range = || field_overflow("timestamp out of range".to_string());
    days.checked_mul(86_400_000_000)
        .and_then(|d| d.checked_add(time))
        .ok_or_else(out_of_range)
}

impl ScalarUDFImpl for MakeTimestamp {
    fn name(&self) -> &str {
        if self.time {
            "make_time"
        } else {
            "make_timestamp"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let numeric = |t: &DataType| t.is_numeric() || t.is_null();
        let integers = if self.time { 2 } else { 5 };
        if arg_types.len() != integers + 1 || !arg_types.iter().all(numeric) {
            return Err(no_function(self.name(), arg_types));
        }
        let mut types = vec![DataType::Int64; integers];
        types.push(DataType::Float64);
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.time {
            DataType::Time64(TimeUnit::Microsecond)
        } else {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let integers = args.args.len() - 1;
        let mut ints = Vec::with_capacity(integers);
        for arg in &args.args[..integers] {
            ints.push(cast(&arg.to_array(rows)?, &DataType::Int64)?);
        }
        let seconds = cast(&args.args[integers].to_array(rows)?, &DataType::Float64)?;
        let seconds = seconds.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if seconds.is_null(row) || ints.iter().any(|a| a.is_null(row)) {
                out.push(None);
                continue;
            }
            let field = |i: usize| ints[i].as_primitive::<Int64Type>().value(row);
            out.push(Some(if self.time {
                time_micros(field(0), field(1), seconds.value(row))?
            } else {
                let fields = [field(0), field(1), field(2), field(3), field(4)];
                make_timestamp(fields, seconds.value(row))?
            }));
        }
        let array: datafusion::arrow::array::ArrayRef = if self.time {
            Arc::new(datafusion::arrow::array::Time64MicrosecondArray::from(out))
        } else {
            Arc::new(TimestampMicrosecondArray::from(out))
        };
        finish(&args.args, array)
    }
}

/// `make_date(year, month, day) → date`, with PostgreSQL's years: a negative year is BC
/// (`make_date(-44, 3, 15)` is 44 BC, DataFusion's made it 45 BC) and year 0 is 22008.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MakeDate {
    signature: Signature,
}

impl ScalarUDFImpl for MakeDate {
    fn name(&self) -> &str {
        "make_date"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let integer = |t: &DataType| t.is_integer() || t.is_null();
        if arg_types.len() != 3 || !arg_types.iter().all(integer) {
            return Err(no_function(self.name(), arg_types));
        }
        Ok(vec![DataType::Int64; 3])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let mut ints = Vec::with_capacity(3);
        for arg in &args.args {
            ints.push(cast(&arg.to_array(rows)?, &DataType::Int64)?);
        }
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if ints.iter().any(|a| a.is_null(row)) {
                out.push(None);
                continue;
            }
            let field = |i: usize| ints[i].as_primitive::<Int64Type>().value(row);
            let micros = make_timestamp([field(0), field(1), field(2), 0, 0], 0.0)?;
            let days = i32::try_from(micros.div_euclid(86_400_000_000))
                .map_err(|_| field_overflow("date out of range".to_string()))?;
            out.push(Some(days));
        }
        finish(
            &args.args,
            Arc::new(datafusion::arrow::array::Date32Array::from(out)),
        )
    }
}

/// `isfinite(date | timestamp | timestamptz | interval) → boolean` (see the module doc).
#[derive(Debug, PartialEq, Eq, Hash)]
struct IsFinite {
    signature: Signature,
}

impl ScalarUDFImpl for IsFinite {
    fn name(&self) -> &str {
        "isfinite"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t @ (DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(..)
            | DataType::Interval(_))] => Ok(vec![t.clone()]),
            _ => Err(no_function(self.name(), arg_types)),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let values = args.args[0].to_array(rows_of(&args))?;
        let finite: BooleanArray = match values.data_type() {
            DataType::Date32 => values
                .as_primitive::<datafusion::arrow::datatypes::Date32Type>()
                .iter()
                .map(|v| {
                    v.map(|d| {
                        d != crate::datetime::DATE_INFINITY
                            && d != crate::datetime::DATE_NEG_INFINITY
                    })
                })
                .collect(),
            DataType::Timestamp(..) => {
                // The infinities are the extreme integers in every unit.
                let raw = cast(&values, &DataType::Int64)?;
                raw.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| {
                        v.map(|m| {
                            m != crate::datetime::TIMESTAMP_INFINITY
                                && m != crate::datetime::TIMESTAMP_NEG_INFINITY
                        })
                    })
                    .collect()
            }
            _ => (0..values.len())
                .map(|i| values.is_valid(i).then_some(true))
                .collect(),
        };
        finish(&args.args, Arc::new(finite))
    }
}

#[cfg(test)]
mod tests {
    use super::seconds_text;

    #[test]
    fn seconds_print_as_postgres_percent_02g() {
        for (seconds, text) in [
            (0.0, "00"),
            (5.0, "05"),
            (0.5, "0.5"),
            (59.999999, "60"),
            (61.25, "61.25"),
            (1e-7, "1e-07"),
        ] {
            assert_eq!(seconds_text(seconds), text, "{seconds}");
        }
    }
}

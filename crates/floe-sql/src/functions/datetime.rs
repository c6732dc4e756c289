//! PostgreSQL's date/time functions DataFusion lacks or gets wrong: `make_timestamp`,
//! `make_date` (BC years) and `isfinite`.
//!
//! `isfinite` is false for `±infinity` (the extreme values of `date` and `timestamp[tz]`, see
//! [`crate::datetime`]); PostgreSQL 15's intervals are always finite.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, rows_of};
use crate::error::{sqlstate, SqlError};

/// The functions of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(MakeTimestamp {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(IsFinite {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(MakeDate {
            signature: Signature::user_defined(Volatility::Immutable),
        }),
    ]
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

/// `make_timestamp(year, month, day, hour, min, sec) → timestamp`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MakeTimestamp {
    signature: Signature,
}

fn field_overflow(message: String) -> datafusion::error::DataFusionError {
    SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, message).into()
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
    let time_ok = (0..=24).contains(&hour)
        && (0..=59).contains(&minute)
        && (0.0..=60.0).contains(&seconds)
        && !(hour == 24 && (minute > 0 || seconds > 0.0));
    if !time_ok {
        return Err(field_overflow(format!(
            "time field value out of range: {hour}:{minute:02}:{seconds:02}"
        )));
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = date.signed_duration_since(epoch).num_days();
    let micros = (seconds * 1_000_000.0).round() as i64;
    let out_of_range = || field_overflow("timestamp out of range".to_string());
    days.checked_mul(86_400_000_000)
        .and_then(|d| d.checked_add((hour * 60 + minute) * 60_000_000))
        .and_then(|d| d.checked_add(micros))
        .ok_or_else(out_of_range)
}

impl ScalarUDFImpl for MakeTimestamp {
    fn name(&self) -> &str {
        "make_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let numeric = |t: &DataType| t.is_numeric() || t.is_null();
        if arg_types.len() != 6 || !arg_types.iter().all(numeric) {
            return Err(no_function(self.name(), arg_types));
        }
        let mut types = vec![DataType::Int64; 5];
        types.push(DataType::Float64);
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = rows_of(&args);
        let mut ints = Vec::with_capacity(5);
        for arg in &args.args[..5] {
            ints.push(cast(&arg.to_array(rows)?, &DataType::Int64)?);
        }
        let seconds = cast(&args.args[5].to_array(rows)?, &DataType::Float64)?;
        let seconds = seconds.as_primitive::<Float64Type>();
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if seconds.is_null(row) || ints.iter().any(|a| a.is_null(row)) {
                out.push(None);
                continue;
            }
            let field = |i: usize| ints[i].as_primitive::<Int64Type>().value(row);
            let fields = [field(0), field(1), field(2), field(3), field(4)];
            out.push(Some(make_timestamp(fields, seconds.value(row))?));
        }
        finish(&args.args, Arc::new(TimestampMicrosecondArray::from(out)))
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

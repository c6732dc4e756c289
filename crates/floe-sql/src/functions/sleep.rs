//! `pg_sleep(seconds)`, `pg_sleep_for(interval)` and `pg_sleep_until(timestamptz)`.
//!
//! They are async functions: the sleep is part of the statement's row stream and ends early
//! when the statement is cancelled (CancelRequest) or times out (`statement_timeout`), which
//! drop the stream — 57014, as in PostgreSQL. They return `void` (an empty string), NULL for a
//! NULL argument.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, FieldRef, Float64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};

use crate::error::SqlError;
use crate::types::SqlType;

/// Longest single sleep: longer requests (and infinity) sleep this long, i.e. until cancelled.
const MAX_SLEEP: Duration = Duration::from_secs(100 * 365 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Until {
    /// `pg_sleep(double precision)`: seconds from now.
    Seconds,
    /// `pg_sleep_for(interval)`: an interval from now.
    Interval,
    /// `pg_sleep_until(timestamptz)`: a point in time.
    Time,
}

/// The three sleep functions.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    [
        ("pg_sleep", Until::Seconds, DataType::Float64),
        (
            "pg_sleep_for",
            Until::Interval,
            DataType::Interval(IntervalUnit::MonthDayNano),
        ),
        (
            "pg_sleep_until",
            Until::Time,
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        ),
    ]
    .into_iter()
    .map(|(name, until, arg)| {
        let signature = Signature::one_of(
            vec![
                TypeSignature::Exact(vec![arg.clone()]),
                TypeSignature::Any(1),
            ],
            Volatility::Volatile,
        );
        AsyncScalarUDF::new(Arc::new(Sleep {
            name,
            until,
            arg,
            signature,
        }))
        .into_scalar_udf()
    })
    .collect()
}

#[derive(Debug)]
struct Sleep {
    name: &'static str,
    until: Until,
    /// The argument's type (other types are cast to it).
    arg: DataType,
    signature: Signature,
}

impl PartialEq for Sleep {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Sleep {}

impl Hash for Sleep {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl Sleep {
    /// How long row `row` of `array` (already of [`Sleep::arg`]'s type) asks to sleep.
    fn duration(&self, array: &dyn Array, row: usize) -> Duration {
        let seconds = match self.until {
            Until::Seconds => array.as_primitive::<Float64Type>().value(row),
            Until::Interval => {
                let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
                // As PostgreSQL adds it to now(): a month of 30 days.
                (v.months as f64 * 30.0 + v.days as f64) * 86_400.0 + v.nanoseconds as f64 / 1e9
            }
            Until::Time => {
                let target = array.as_primitive::<TimestampMicrosecondType>().value(row);
                let now = chrono::Utc::now().timestamp_micros();
                (target - now) as f64 / 1e6
            }
        };
        if seconds.is_nan() || seconds <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP)
    }
}

impl ScalarUDFImpl for Sleep {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(SqlType::Void.to_arrow_field(self.name)))
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(SqlError::internal(format!("{} evaluated inline", self.name)).into())
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for Sleep {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let [arg] = args.args.as_slice() else {
            return Err(SqlError::internal(format!("{} takes one argument", self.name)).into());
        };
        let array = cast(&arg.to_array(rows)?, &self.arg)?;
        let mut out = StringBuilder::with_capacity(rows, 0);
        for row in 0..rows {
            if array.is_null(row) {
                out.append_null();
                continue;
            }
            let duration = self.duration(array.as_ref(), row);
            if !duration.is_zero() {
                tokio::time::sleep(duration).await;
            }
            out.append_value("");
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

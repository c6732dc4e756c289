//! Where DataFusion's date/time casts differ from PostgreSQL's, the plan calls Floe's own
//! functions instead (see [`crate::datetime`] for the semantics).
//!
//! [`PgDateTimeCasts`] is an analyzer rule that runs after type coercion and replaces casts
//! from text to `date`/`timestamp[tz]` (PostgreSQL's input forms, `infinity`, `BC`, the whole
//! range), between `date` and `timestamp` (infinities kept, range checked) and from
//! `date`/`timestamp[tz]`/`interval` to text (PostgreSQL's output form, not ISO 8601's `T` nor
//! Arrow's `secs`), and from text to `interval` (PostgreSQL's input, see [`crate::interval`]). The result
//! type of each replaced cast is unchanged. The same rule reads `extract`/`date_part` of a
//! `timestamptz` in the session's zone and keeps `infinity` ± an interval infinite.
//! [`PgTemporalOperands`] runs before type coercion, so a `date` or text compared with a
//! timestamp is read as a microsecond timestamp (DataFusion would pick nanoseconds).
//! [`now_udf`] replaces DataFusion's `now()` (and `current_timestamp`), whose nanosecond
//! result would make every comparison with a microsecond column cast that column to
//! nanoseconds (and fail beyond the year 2262); [`date_trunc_udf`] and [`to_char_udf`] replace
//! DataFusion's (nanoseconds; chrono patterns) with PostgreSQL's.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, IntervalMonthDayNanoArray, StringBuilder,
    Time64MicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, IntervalMonthDayNanoType, IntervalUnit,
    Time64MicrosecondType, TimeUnit,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::datetime::{
    self, Kind, Zone, DATE_INFINITY, DATE_NEG_INFINITY, TIMESTAMP_INFINITY, TIMESTAMP_NEG_INFINITY,
};
use crate::error::{sqlstate, SqlError};
use crate::functions::number_format;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The conversions the rule puts in place of casts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Conversion {
    /// Text to `date` or `timestamp[tz]`.
    FromText,
    /// `date` to `timestamp[tz]`.
    DateToTimestamp,
    /// `timestamp[tz]` to `date`.
    TimestampToDate,
    /// `date` or `timestamp[tz]` to text.
    ToText,
    /// Between `timestamp` and `timestamptz` (the session's zone, as PostgreSQL) or units.
    Retime,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateTimeCast {
    conversion: Conversion,
    target: DataType,
    signature: Signature,
}

impl DateTimeCast {
    fn udf(conversion: Conversion, target: DataType) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(DateTimeCast {
            conversion,
            target,
            // Immutable, so a constant is converted (and refused) while planning, as
            // PostgreSQL does; the session's zone is part of the planning context.
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

/// The session's `TimeZone` as the functions of a statement see it.
pub(crate) fn session_zone(config: &ConfigOptions) -> Zone {
    Zone::from_setting(config.execution.time_zone.as_deref())
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Microseconds as a value of `unit` (infinities stay the extreme values).
fn from_micros(micros: i64, unit: TimeUnit) -> Result<i64, SqlError> {
    if micros == TIMESTAMP_INFINITY || micros == TIMESTAMP_NEG_INFINITY {
        return Ok(micros);
    }
    Ok(match unit {
        TimeUnit::Second => micros.div_euclid(1_000_000),
        TimeUnit::Millisecond => micros.div_euclid(1000),
        TimeUnit::Microsecond => micros,
        TimeUnit::Nanosecond => micros.checked_mul(1000).ok_or_else(|| {
            SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
        })?,
    })
}

/// A value of `unit` as microseconds.
fn to_micros(value: i64, unit: TimeUnit) -> i64 {
    if value == TIMESTAMP_INFINITY || value == TIMESTAMP_NEG_INFINITY {
        return value;
    }
    match unit {
        TimeUnit::Second => value.saturating_mul(1_000_000),
        TimeUnit::Millisecond => value.saturating_mul(1000),
        TimeUnit::Microsecond => value,
        TimeUnit::Nanosecond => value.div_euclid(1000),
    }
}

/// A timestamp array of `target`'s unit and zone from values already in that unit.
fn timestamp_array(values: Vec<Option<i64>>, target: &DataType) -> DfResult<ArrayRef> {
    use datafusion::arrow::array::PrimitiveArray;
    use datafusion::arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    let DataType::Timestamp(unit, tz) = target else {
        return Err(SqlError::internal("not a timestamp target").into());
    };
    let tz = tz.clone();
    Ok(match unit {
        TimeUnit::Second => {
            Arc::new(PrimitiveArray::<TimestampSecondType>::from(values).with_timezone_opt(tz))
        }
        TimeUnit::Millisecond => {
            Arc::new(PrimitiveArray::<TimestampMillisecondType>::from(values).with_timezone_opt(tz))
        }
        TimeUnit::Microsecond => {
            Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(values).with_timezone_opt(tz))
        }
        TimeUnit::Nanosecond => {
            Arc::new(PrimitiveArray::<TimestampNanosecondType>::from(values).with_timezone_opt(tz))
        }
    })
}

/// The timestamps of `array` (any unit) as microseconds, with nulls.
pub(crate) fn timestamp_micros(array: &ArrayRef) -> DfResult<Vec<Option<i64>>> {
    let DataType::Timestamp(unit, _) = array.data_type() else {
        return Err(SqlError::internal("not a timestamp").into());
    };
    let unit = *unit;
    let values = cast(array, &DataType::Timestamp(unit, None))?;
    let values = cast(&values, &DataType::Int64)?;
    let values = values.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    Ok(values
        .iter()
        .map(|v| v.map(|v| to_micros(v, unit)))
        .collect())
}

impl ScalarUDFImpl for DateTimeCast {
    fn name(&self) -> &str {
        match self.conversion {
            Conversion::FromText => "floe_text_to_datetime",
            Conversion::DateToTimestamp => "floe_date_to_timestamp",
            Conversion::TimestampToDate => "floe_timestamp_to_date",
            Conversion::ToText => "floe_datetime_to_text",
            Conversion::Retime => "floe_retime",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.target.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(args.number_rows.max(1))?;
        let zone = session_zone(&args.config_options);
        let output = match self.conversion {
            Conversion::FromText => from_text(&input, &self.target, zone)?,
            Conversion::DateToTimestamp => date_to_timestamp(&input, &self.target, zone)?,
            Conversion::TimestampToDate => timestamp_to_date(&input, zone)?,
            Conversion::ToText => to_text(&input, zone)?,
            Conversion::Retime => retime(&input, &self.target, zone)?,
        };
        let output = if output.data_type() == &self.target {
            output
        } else {
            cast(&output, &self.target)?
        };
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &output, 0,
            )?));
        }
        Ok(ColumnarValue::Array(output))
    }
}

pub(crate) fn from_text(input: &ArrayRef, target: &DataType, zone: Zone) -> DfResult<ArrayRef> {
    let text = cast(input, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let now = now_micros();
    match target {
        DataType::Date32 => {
            let mut out = Vec::with_capacity(text.len());
            for value in text.iter() {
                out.push(match value {
                    Some(s) => Some(datetime::parse_date(s, now, zone)?),
                    None => None,
                });
            }
            Ok(Arc::new(Date32Array::from(out)))
        }
        DataType::Timestamp(unit, tz) => {
            let kind = if tz.is_some() {
                Kind::Timestamptz
            } else {
                Kind::Timestamp
            };
            let mut out = Vec::with_capacity(text.len());
            for value in text.iter() {
                out.push(match value {
                    Some(s) => Some(from_micros(
                        datetime::parse_timestamp(s, kind, now, zone)?,
                        *unit,
                    )?),
                    None => None,
                });
            }
            timestamp_array(out, target)
        }
        // In microseconds; the caller casts to the target's unit.
        DataType::Time64(_) => {
            let mut out = Vec::with_capacity(text.len());
            for value in text.iter() {
                out.push(match value {
                    Some(s) => Some(datetime::parse_time(s, now, zone)?),
                    None => None,
                });
            }
            Ok(Arc::new(Time64MicrosecondArray::from(out)))
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let mut out = Vec::with_capacity(text.len());
            for value in text.iter() {
                out.push(match value {
                    Some(s) => Some(crate::interval::parse_interval(s)?.to_arrow()?),
                    None => None,
                });
            }
            Ok(Arc::new(IntervalMonthDayNanoArray::from(out)))
        }
        other => Err(SqlError::internal(format!("no text input for {other}")).into()),
    }
}

fn date_to_timestamp(input: &ArrayRef, target: &DataType, zone: Zone) -> DfResult<ArrayRef> {
    let DataType::Timestamp(unit, tz) = target else {
        return Err(SqlError::internal("not a timestamp target").into());
    };
    let dates = input.as_primitive::<Date32Type>();
    let mut out = Vec::with_capacity(dates.len());
    for value in dates.iter() {
        let Some(days) = value else {
            out.push(None);
            continue;
        };
        let micros = match days {
            DATE_INFINITY => TIMESTAMP_INFINITY,
            DATE_NEG_INFINITY => TIMESTAMP_NEG_INFINITY,
            _ => {
                let local = i64::from(days)
                    .checked_mul(MICROS_PER_DAY)
                    .filter(|m| *m < TIMESTAMP_INFINITY)
                    .ok_or_else(|| {
                        SqlError::new(
                            sqlstate::DATETIME_FIELD_OVERFLOW,
                            "date out of range for timestamp",
                        )
                    })?;
                match tz {
                    // Midnight of that date in the session's time zone.
                    Some(_) => local - i64::from(zone.offset_at_utc(local)) * 1_000_000,
                    None => local,
                }
            }
        };
        out.push(Some(from_micros(micros, *unit)?));
    }
    timestamp_array(out, target)
}

fn retime(input: &ArrayRef, target: &DataType, zone: Zone) -> DfResult<ArrayRef> {
    let (DataType::Timestamp(_, from_tz), DataType::Timestamp(unit, to_tz)) =
        (input.data_type(), target)
    else {
        return Err(SqlError::internal("not a timestamp conversion").into());
    };
    let shift: Option<bool> = match (from_tz.is_some(), to_tz.is_some()) {
        (false, true) => Some(true),
        (true, false) => Some(false),
        _ => None,
    };
    let mut out = Vec::with_capacity(input.len());
    for value in timestamp_micros(input)? {
        out.push(match value {
            None => None,
            Some(m) if m == TIMESTAMP_INFINITY || m == TIMESTAMP_NEG_INFINITY => Some(m),
            Some(m) => {
                let m = match shift {
                    // Local wall-clock time in the session's zone to a UTC instant.
                    Some(true) => m - i64::from(zone.offset_for_local(m)) * 1_000_000,
                    // A UTC instant to the session's wall-clock time.
                    Some(false) => m + i64::from(zone.offset_at_utc(m)) * 1_000_000,
                    None => m,
                };
                Some(from_micros(m, *unit)?)
            }
        });
    }
    timestamp_array(out, target)
}

fn timestamp_to_date(input: &ArrayRef, zone: Zone) -> DfResult<ArrayRef> {
    let with_zone = matches!(input.data_type(), DataType::Timestamp(_, Some(_)));
    let micros = timestamp_micros(input)?;
    let mut out = Vec::with_capacity(micros.len());
    for value in micros {
        out.push(value.map(|m| match m {
            TIMESTAMP_INFINITY => DATE_INFINITY,
            TIMESTAMP_NEG_INFINITY => DATE_NEG_INFINITY,
            _ => {
                let local = if with_zone {
                    m.saturating_add(i64::from(zone.offset_at_utc(m)) * 1_000_000)
                } else {
                    m
                };
                local.div_euclid(MICROS_PER_DAY) as i32
            }
        }));
    }
    Ok(Arc::new(Date32Array::from(out)))
}

fn to_text(input: &ArrayRef, zone: Zone) -> DfResult<ArrayRef> {
    let mut out = StringBuilder::new();
    match input.data_type() {
        DataType::Date32 => {
            for value in input.as_primitive::<Date32Type>().iter() {
                out.append_option(value.map(datetime::date_text));
            }
        }
        DataType::Timestamp(_, tz) => {
            let zone = tz.as_ref().map(|_| zone);
            for value in timestamp_micros(input)? {
                out.append_option(value.map(|m| datetime::timestamp_text(m, zone)));
            }
        }
        DataType::Time64(_) => {
            let micros = cast(input, &DataType::Time64(TimeUnit::Microsecond))?;
            for value in micros.as_primitive::<Time64MicrosecondType>().iter() {
                out.append_option(value.map(crate::array_text::time_text));
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            for value in input.as_primitive::<IntervalMonthDayNanoType>().iter() {
                out.append_option(
                    value.map(|v| crate::interval::PgInterval::from_arrow(v).to_text()),
                );
            }
        }
        other => return Err(SqlError::internal(format!("no text output for {other}")).into()),
    }
    Ok(Arc::new(out.finish()))
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The conversion that replaces a cast from `from` to `to`, if DataFusion's differs.
fn conversion(from: &DataType, to: &DataType) -> Option<Conversion> {
    match (from, to) {
        (f, DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_)) if is_text(f) => {
            Some(Conversion::FromText)
        }
        (f, DataType::Interval(IntervalUnit::MonthDayNano)) if is_text(f) => {
            Some(Conversion::FromText)
        }
        (DataType::Date32, DataType::Timestamp(..)) => Some(Conversion::DateToTimestamp),
        (DataType::Timestamp(..), DataType::Date32) => Some(Conversion::TimestampToDate),
        (
            DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Time64(_)
            | DataType::Interval(IntervalUnit::MonthDayNano),
            t,
        ) if is_text(t) => Some(Conversion::ToText),
        (DataType::Timestamp(..), DataType::Timestamp(..)) if from != to => {
            Some(Conversion::Retime)
        }
        _ => None,
    }
}

/// Replaces date/time casts whose DataFusion semantics differ from PostgreSQL's.
#[derive(Debug, Default)]
pub(crate) struct PgDateTimeCasts;

impl PgDateTimeCasts {
    fn rewrite(&self, expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
        let expr = match expr {
            Expr::ScalarFunction(f) => return Ok(Self::local_fields(f, schema)),
            Expr::BinaryExpr(b) => {
                return Ok(match Self::interval_comparison(b, schema) {
                    Ok(compared) => compared,
                    Err(b) => Self::infinite_operand(b, schema),
                })
            }
            other => other,
        };
        let Expr::Cast(Cast { expr: inner, field }) = expr else {
            return Ok(Transformed::no(expr));
        };
        let from = match inner.get_type(schema) {
            Ok(t) => t,
            Err(_) => return Ok(Transformed::no(Expr::Cast(Cast { expr: inner, field }))),
        };
        let to = field.data_type().clone();
        match conversion(&from, &to) {
            Some(c) => Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(DateTimeCast::udf(c, to), vec![*inner]),
            ))),
            None => Ok(Transformed::no(Expr::Cast(Cast { expr: inner, field }))),
        }
    }
}

impl PgDateTimeCasts {
    /// `extract`/`date_part` and `to_char` of a `timestamptz` read its fields in the session's
    /// time zone, as PostgreSQL does (DataFusion reads them in the value's zone, UTC): the
    /// argument becomes the session's wall-clock time. An epoch or zone field keeps the instant.
    fn local_fields(f: ScalarFunction, schema: &DFSchema) -> Transformed<Expr> {
        let name = f.name().to_ascii_lowercase();
        let at = match name.as_str() {
            "date_part" | "datepart" | crate::functions::datetime::DATE_PART => {
                let field = match f.args.first() {
                    Some(Expr::Literal(ScalarValue::Utf8(Some(v)), _))
                    | Some(Expr::Literal(ScalarValue::Utf8View(Some(v)), _))
                    | Some(Expr::Literal(ScalarValue::LargeUtf8(Some(v)), _)) => {
                        v.to_ascii_lowercase()
                    }
                    _ => return Transformed::no(Expr::ScalarFunction(f)),
                };
                if field == "epoch" || field.starts_with("timezone") {
                    return Transformed::no(Expr::ScalarFunction(f));
                }
                if matches!(field.as_str(), "microsecond" | "microseconds")
                    && f.args.get(1).is_some_and(|a| {
                        matches!(
                            a.get_type(schema),
                            Ok(DataType::Interval(IntervalUnit::MonthDayNano))
                        )
                    })
                {
                    return Self::interval_microsecond(f, schema);
                }
                1
            }
            _ => return Transformed::no(Expr::ScalarFunction(f)),
        };
        let zoned = f
            .args
            .get(at)
            .and_then(|a| a.get_type(schema).ok())
            .is_some_and(|t| matches!(t, DataType::Timestamp(_, Some(_))));
        if !zoned {
            return Transformed::no(Expr::ScalarFunction(f));
        }
        let ScalarFunction { func, mut args } = f;
        let arg = std::mem::replace(&mut args[at], Expr::Literal(ScalarValue::Null, None));
        args[at] = Expr::ScalarFunction(ScalarFunction::new_udf(
            DateTimeCast::udf(
                Conversion::Retime,
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
            vec![arg],
        ));
        Transformed::yes(Expr::ScalarFunction(ScalarFunction { func, args }))
    }
}

impl PgDateTimeCasts {
    /// `date_part('microsecond', interval)` keeps the seconds' fraction (the `second` and
    /// `millisecond` fields are computed from it by the statement rewrite); the result keeps
    /// the type DataFusion's `date_part` had.
    fn interval_microsecond(f: ScalarFunction, schema: &DFSchema) -> Transformed<Expr> {
        let planned = Expr::ScalarFunction(f);
        let Ok(result_type) = planned.get_type(schema) else {
            return Transformed::no(planned);
        };
        let Expr::ScalarFunction(ScalarFunction { mut args, .. }) = planned else {
            return Transformed::no(planned);
        };
        let interval = args.swap_remove(1);
        let micros = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(crate::interval::interval_microsecond_udf()),
            vec![interval],
        ));
        Transformed::yes(Expr::Cast(Cast::new(Box::new(micros), result_type)))
    }
}

impl PgDateTimeCasts {
    /// Intervals compare as PostgreSQL's `interval_cmp_value` (30-day months, 24-hour days):
    /// both sides become [`crate::interval::interval_key_udf`]. `Err` gives back anything else.
    fn interval_comparison(
        b: datafusion::logical_expr::BinaryExpr,
        schema: &DFSchema,
    ) -> Result<Transformed<Expr>, datafusion::logical_expr::BinaryExpr> {
        use datafusion::logical_expr::BinaryExpr;
        let compares = is_comparison(b.op);
        let interval = |e: &Expr| {
            matches!(
                e.get_type(schema),
                Ok(DataType::Interval(IntervalUnit::MonthDayNano))
            )
        };
        if !(compares && interval(&b.left) && interval(&b.right)) {
            return Err(b);
        }
        let key = Arc::new(crate::interval::interval_key_udf());
        let BinaryExpr { left, op, right } = b;
        let keyed = |e: Box<Expr>| {
            Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
                key.clone(),
                vec![*e],
            )))
        };
        Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
            left: keyed(left),
            op,
            right: keyed(right),
        })))
    }
}

impl PgDateTimeCasts {
    /// `infinity` plus or minus an interval (or days, for a date) stays `infinity`, as in
    /// PostgreSQL; Arrow's kernels would overflow on the extreme value that stands for it.
    fn infinite_operand(
        b: datafusion::logical_expr::BinaryExpr,
        schema: &DFSchema,
    ) -> Transformed<Expr> {
        use datafusion::logical_expr::{BinaryExpr, Operator};
        let BinaryExpr { left, op, right } = b;
        let keep = |left, right| Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }));
        if !matches!(op, Operator::Plus | Operator::Minus) {
            return keep(left, right);
        }
        let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
            return keep(left, right);
        };
        let shift = |t: &DataType| {
            matches!(
                t,
                DataType::Interval(_)
                    | DataType::Duration(_)
                    | DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
            )
        };
        // The temporal operand (on either side of `+`; on the left of `-`).
        let temporal_left = is_temporal(&l) && shift(&r);
        let temporal_right = op == Operator::Plus && shift(&l) && is_temporal(&r);
        if !(temporal_left || temporal_right) {
            return keep(left, right);
        }
        let (value, value_type, shift_by) = if temporal_left {
            (left.as_ref().clone(), l, right.as_ref().clone())
        } else {
            (right.as_ref().clone(), r, left.as_ref().clone())
        };
        let extremes = match &value_type {
            DataType::Date32 => (
                ScalarValue::Date32(Some(DATE_INFINITY)),
                ScalarValue::Date32(Some(DATE_NEG_INFINITY)),
            ),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => (
                ScalarValue::TimestampMicrosecond(Some(TIMESTAMP_INFINITY), tz.clone()),
                ScalarValue::TimestampMicrosecond(Some(TIMESTAMP_NEG_INFINITY), tz.clone()),
            ),
            _ => return keep(left, right),
        };
        // `infinity + NULL` is NULL.
        let infinite = value
            .clone()
            .eq(Expr::Literal(extremes.0, None))
            .or(value.clone().eq(Expr::Literal(extremes.1, None)))
            .and(shift_by.is_not_null());
        let sum = Expr::BinaryExpr(BinaryExpr { left, op, right });
        let result_type = match sum.get_type(schema) {
            Ok(t) => t,
            Err(_) => return Transformed::no(sum),
        };
        // Only where the result has the operand's type (date + days, timestamp ± interval).
        if result_type != value_type {
            return Transformed::no(sum);
        }
        match datafusion::logical_expr::when(infinite, value).otherwise(sum.clone()) {
            Ok(case) => Transformed::yes(case),
            Err(_) => Transformed::no(sum),
        }
    }
}

fn is_temporal(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Timestamp(..))
}

impl AnalyzerRule for PgDateTimeCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let plan =
            crate::rewrite::rewrite_plan_expressions(plan, |e, schema| self.rewrite(e, schema))?;
        let plan = crate::rewrite::rewrite_plan_expressions(plan, zoned_calls_stable)?;
        crate::rewrite::rewrite_plan_expressions(
            plan,
            crate::functions::encoding::text_to_bytea_casts,
        )
    }

    fn name(&self) -> &str {
        "floe_pg_datetime_casts"
    }
}

/// Functions that read the session's TimeZone when given a `timestamptz` (`extract`,
/// `date_part`, `date_trunc`, `to_char`) are stable there, as in PostgreSQL, and immutable
/// otherwise: such a call of constants is made a [`StableCall`], so neither DataFusion's
/// constant folding (which folds stable functions too: it is called volatile) nor
/// `crate::const_errors` evaluates it while planning (`CAST(extract(epoch FROM
/// '0001-01-01+00'::timestamptz) AS int2) FROM empty_table` failed; PostgreSQL reads no row).
/// `crate::const_errors` still evaluates it in a WHERE that reads no row (a one-time filter).
fn zoned_calls_stable(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::ScalarFunction(call) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let reads_zone = matches!(
        call.name(),
        "floe_date_part" | "floe_extract_epoch" | "date_part" | "date_trunc" | "to_char"
    ) && call.func.signature().volatility == Volatility::Immutable
        && !call.args.iter().any(|a| a.any_column_refs())
        && call.args.iter().any(|a| {
            a.get_type(schema)
                .is_ok_and(|t| matches!(t, DataType::Timestamp(_, Some(_))))
        });
    if !reads_zone {
        return Ok(Transformed::no(expr));
    }
    let Expr::ScalarFunction(call) = expr else {
        unreachable!("matched above")
    };
    let mut signature = call.func.signature().clone();
    signature.volatility = Volatility::Volatile;
    let stable = ScalarUDF::new_from_impl(StableCall {
        inner: call.func,
        signature,
    });
    Ok(Transformed::yes(Expr::ScalarFunction(
        datafusion::logical_expr::expr::ScalarFunction::new_udf(Arc::new(stable), call.args),
    )))
}

/// Whether `f` is a [`StableCall`].
pub(crate) fn is_stable_call(f: &ScalarUDF) -> bool {
    let inner: &dyn std::any::Any = f.inner().as_ref();
    inner.is::<StableCall>()
}

/// A function called as a stable one (see [`zoned_calls_stable`]): everything else is
/// `inner`'s.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StableCall {
    inner: Arc<ScalarUDF>,
    signature: Signature,
}

impl ScalarUDFImpl for StableCall {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }
}

/// `now()` / `current_timestamp`: the statement's start time as `timestamptz` in microseconds.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Now {
    signature: Signature,
    aliases: Vec<String>,
}

/// `timezone(zone, ts)`, which `ts AT TIME ZONE zone` is rewritten to (`crate::rewrite`): a
/// `timestamptz` becomes the `timestamp` a wall clock in `zone` shows at that instant, and a
/// `timestamp` is read as wall-clock time in `zone`, giving the `timestamptz` instant (a time
/// skipped by a daylight-saving jump reads with the offset before it, an ambiguous one as
/// standard time). DataFusion only relabelled the value's zone, so `AT TIME ZONE` changed
/// nothing. Infinities stay infinite.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AtTimeZone {
    signature: Signature,
}

pub(crate) fn timezone_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(AtTimeZone {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

impl ScalarUDFImpl for AtTimeZone {
    fn name(&self) -> &str {
        "timezone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [_, value] = arg_types else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                "function timezone() takes a zone and a timestamp",
            )
            .into());
        };
        let value = match value {
            DataType::Timestamp(_, Some(_)) => timestamptz_type(),
            DataType::Timestamp(_, None) | DataType::Null => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            // A date is read as a timestamptz (midnight in the session's zone), as PostgreSQL
            // resolves `date AT TIME ZONE`: the result is a timestamp.
            DataType::Date32 | DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                timestamptz_type()
            }
            other => {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_FUNCTION,
                    format!(
                        "function timezone(text, {}) does not exist",
                        crate::types::SqlType::from_arrow(other).name()
                    ),
                )
                .into())
            }
        };
        Ok(vec![DataType::Utf8, value])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match arg_types.get(1) {
            Some(DataType::Timestamp(_, Some(_))) => {
                DataType::Timestamp(TimeUnit::Microsecond, None)
            }
            _ => timestamptz_type(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::TimestampMicrosecondArray;
        use datafusion::arrow::datatypes::TimestampMicrosecondType;
        let rows = crate::functions::rows_of(&args);
        let zones = cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let zones = zones.as_string::<i32>();
        let values = args.args[1].to_array(rows)?;
        let to_local = matches!(values.data_type(), DataType::Timestamp(_, Some(_)));
        let values = values.as_primitive::<TimestampMicrosecondType>();
        let mut parsed: Option<(String, Zone)> = None;
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if zones.is_null(row) || values.is_null(row) {
                out.push(None);
                continue;
            }
            let name = zones.value(row);
            let zone = match &parsed {
                Some((seen, zone)) if seen == name => *zone,
                _ => {
                    let zone = crate::datetime::posix_zone(name).ok_or_else(|| {
                        SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            format!("time zone \"{name}\" not recognized"),
                        )
                    })?;
                    parsed = Some((name.to_string(), zone));
                    zone
                }
            };
            let micros = values.value(row);
            if micros == TIMESTAMP_INFINITY || micros == TIMESTAMP_NEG_INFINITY {
                out.push(Some(micros));
                continue;
            }
            let shifted = if to_local {
                micros.checked_add(zone.offset_at_utc(micros) as i64 * 1_000_000)
            } else {
                micros.checked_sub(zone.offset_for_local(micros) as i64 * 1_000_000)
            };
            out.push(Some(shifted.ok_or_else(|| {
                SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
            })?));
        }
        let array = TimestampMicrosecondArray::from(out);
        let result: ArrayRef = if to_local {
            Arc::new(array)
        } else {
            Arc::new(array.with_timezone("+00:00"))
        };
        crate::functions::finish(&args.args, result)
    }
}

/// The type of `timestamptz` values (UTC instants, printed in the session's zone).
pub(crate) fn timestamptz_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

impl ScalarUDFImpl for Now {
    fn name(&self) -> &str {
        "now"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), timestamptz_type(), false)))
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(timestamptz_type())
    }

    /// Never called for a planned statement: [`Now::simplify`] replaces the call by the
    /// statement's (or transaction's) start time. Failing here also keeps constant folding,
    /// which would call this, from stamping the time of planning instead.
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(
            SqlError::internal("now() is replaced by the statement's start time when planned")
                .into(),
        )
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let Some(start) = info.query_execution_start_time() else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        Ok(ExprSimplifyResult::Simplified(Expr::Literal(
            ScalarValue::TimestampMicrosecond(
                Some(start.timestamp_micros()),
                Some("+00:00".into()),
            ),
            None,
        )))
    }
}

/// Floe's `now()` (see the module doc).
pub(crate) fn now_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Now {
        signature: Signature::nullary(Volatility::Stable),
        aliases: vec!["current_timestamp".into()],
    })
}

/// Before type coercion: a `date` compared with (or subtracted from) a timestamp becomes a
/// timestamp of the same kind in microseconds. DataFusion would cast both to a nanosecond
/// `timestamp` without zone, failing beyond 2262 and dropping `timestamptz`'s zone, where
/// PostgreSQL reads the date as midnight (in the session's zone for `timestamptz`). Also
/// refused here as in PostgreSQL (DataFusion accepts them): `date ± bigint` (42883; integer
/// literals are `integer` by now) and casts of `bigint` or `smallint` to boolean (42846).
#[derive(Debug, Default)]
pub(crate) struct PgTemporalOperands;

impl PgTemporalOperands {
    fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
        use datafusion::logical_expr::expr::{Between, InList};
        use datafusion::logical_expr::BinaryExpr;
        // `ts BETWEEN 'a' AND 'b'`, `ts IN ('a', 'b')`: the text read as the timestamp's type.
        let as_timestamp = |e: Expr, subject: &DataType| -> Expr {
            match (e.get_type(schema), subject) {
                (Ok(t), DataType::Timestamp(_, tz)) if is_text(&t) => Expr::Cast(Cast::new(
                    Box::new(e),
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                )),
                _ => e,
            }
        };
        let expr = match expr {
            // PostgreSQL has casts to boolean from integer only (`1::bool`), none from
            // smallint or bigint.
            Expr::Cast(Cast { expr, field }) if field.data_type() == &DataType::Boolean => {
                let from = match expr.get_type(schema) {
                    Ok(DataType::Int64) => Some("bigint"),
                    Ok(DataType::Int16) => Some("smallint"),
                    _ => None,
                };
                if let Some(from) = from {
                    return Err(crate::SqlError::new(
                        crate::sqlstate::CANNOT_COERCE,
                        format!("cannot cast type {from} to boolean"),
                    )
                    .into());
                }
                return Ok(Transformed::no(Expr::Cast(Cast { expr, field })));
            }
            // date ± integer is PostgreSQL's `date ± integer` only: no bigint operator (Floe's
            // planner made it a function before integer literals got their types).
            Expr::ScalarFunction(f)
                if matches!(f.name(), "floe_date_add_days" | "floe_date_sub_days")
                    && f.args.get(1).and_then(|a| a.get_type(schema).ok())
                        == Some(DataType::Int64) =>
            {
                let op = if f.name() == "floe_date_add_days" {
                    "+"
                } else {
                    "-"
                };
                return Err(crate::SqlError::new(
                    crate::sqlstate::UNDEFINED_FUNCTION,
                    format!("operator does not exist: date {op} bigint"),
                )
                .into());
            }
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let subject = expr.get_type(schema);
                return Ok(match subject {
                    Ok(t @ DataType::Timestamp(TimeUnit::Microsecond, _)) => {
                        Transformed::yes(Expr::Between(Between {
                            expr,
                            negated,
                            low: Box::new(as_timestamp(*low, &t)),
                            high: Box::new(as_timestamp(*high, &t)),
                        }))
                    }
                    _ => Transformed::no(Expr::Between(Between {
                        expr,
                        negated,
                        low,
                        high,
                    })),
                });
            }
            Expr::InList(InList {
                expr,
                list,
                negated,
            }) => {
                let subject = expr.get_type(schema);
                return Ok(match subject {
                    Ok(t @ DataType::Timestamp(TimeUnit::Microsecond, _)) => {
                        Transformed::yes(Expr::InList(InList {
                            expr,
                            list: list.into_iter().map(|e| as_timestamp(e, &t)).collect(),
                            negated,
                        }))
                    }
                    _ => Transformed::no(Expr::InList(InList {
                        expr,
                        list,
                        negated,
                    })),
                });
            }
            other => other,
        };
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
            return Ok(Transformed::no(expr));
        };
        let types = (left.get_type(schema), right.get_type(schema));
        let (Ok(l), Ok(r)) = types else {
            return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                left,
                op,
                right,
            })));
        };
        let micros = |tz: &Option<Arc<str>>| DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
        let (left, right) = match (&l, &r) {
            // Text read as the timestamp's type (DataFusion reads it as nanoseconds).
            (DataType::Timestamp(_, tz), t) if is_text(t) && is_comparison(op) => (
                Box::new(Expr::Cast(Cast::new(left, micros(tz)))),
                Box::new(Expr::Cast(Cast::new(right, micros(tz)))),
            ),
            (t, DataType::Timestamp(_, tz)) if is_text(t) && is_comparison(op) => (
                Box::new(Expr::Cast(Cast::new(left, micros(tz)))),
                Box::new(Expr::Cast(Cast::new(right, micros(tz)))),
            ),
            (DataType::Date32, DataType::Timestamp(_, tz)) => (
                Box::new(Expr::Cast(Cast::new(left, micros(tz)))),
                Box::new(Expr::Cast(Cast::new(right, micros(tz)))),
            ),
            (DataType::Timestamp(_, tz), DataType::Date32) => (
                Box::new(Expr::Cast(Cast::new(left, micros(tz)))),
                Box::new(Expr::Cast(Cast::new(right, micros(tz)))),
            ),
            _ => {
                return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                })))
            }
        };
        Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        })))
    }
}

impl AnalyzerRule for PgTemporalOperands {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::rewrite::rewrite_plan_expressions(plan, Self::rewrite)
    }

    fn name(&self) -> &str {
        "floe_pg_temporal_operands"
    }
}

/// `date_trunc(field, timestamp[tz] | date)` over PostgreSQL's whole range (DataFusion's goes
/// through nanoseconds), `timestamptz` truncated in the session's zone as PostgreSQL does.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateTrunc {
    signature: Signature,
    aliases: Vec<String>,
}

/// Floe's `date_trunc`.
pub(crate) fn date_trunc_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(DateTrunc {
        signature: Signature::user_defined(Volatility::Stable),
        aliases: vec!["datetrunc".into()],
    })
}

impl ScalarUDFImpl for DateTrunc {
    fn name(&self) -> &str {
        "date_trunc"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [field, value] = arg_types else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                "function date_trunc does not exist",
            )
            .into());
        };
        let value = match value {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Date32 | DataType::Null => timestamptz_type(),
            t if is_text(t) => timestamptz_type(),
            other => {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_FUNCTION,
                    format!(
                        "function date_trunc(unknown, {}) does not exist",
                        crate::SqlType::from_arrow(other).name()
                    ),
                )
                .into())
            }
        };
        let _ = field;
        Ok(vec![DataType::Utf8, value])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows.max(1);
        let fields = args.args[0].to_array(rows)?;
        let fields = cast(&fields, &DataType::Utf8)?;
        let fields = fields.as_string::<i32>();
        let values = args.args[1].to_array(rows)?;
        let target = values.data_type().clone();
        let zone = match &target {
            DataType::Timestamp(_, Some(_)) => Some(session_zone(&args.config_options)),
            _ => None,
        };
        let mut out = Vec::with_capacity(values.len());
        for (i, value) in timestamp_micros(&values)?.into_iter().enumerate() {
            let (Some(m), true) = (value, fields.is_valid(i)) else {
                out.push(None);
                continue;
            };
            out.push(Some(truncate(fields.value(i), m, zone)?));
        }
        let output = timestamp_array(out, &target)?;
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &output, 0,
            )?));
        }
        Ok(ColumnarValue::Array(output))
    }
}

/// `micros` truncated to `field` (local time; for a zone, in that zone).
fn truncate(field: &str, micros: i64, zone: Option<Zone>) -> Result<i64, SqlError> {
    if micros == TIMESTAMP_INFINITY || micros == TIMESTAMP_NEG_INFINITY {
        return Ok(micros);
    }
    let local = match zone {
        Some(z) => micros + i64::from(z.offset_at_utc(micros)) * 1_000_000,
        None => micros,
    };
    let days = local.div_euclid(MICROS_PER_DAY);
    let (year, month, _) = datetime::civil_from_days(days);
    let start_of_year = |y: i64| datetime::days_from_civil(y, 1, 1) * MICROS_PER_DAY;
    let truncated = match field.to_ascii_lowercase().as_str() {
        "microseconds" | "microsecond" => local,
        "milliseconds" | "millisecond" => local.div_euclid(1000) * 1000,
        "second" | "seconds" => local.div_euclid(1_000_000) * 1_000_000,
        "minute" | "minutes" => local.div_euclid(60_000_000) * 60_000_000,
        "hour" | "hours" => local.div_euclid(3_600_000_000) * 3_600_000_000,
        "day" | "days" => days * MICROS_PER_DAY,
        "week" | "weeks" => {
            // ISO weeks start on Monday; 1970-01-01 was a Thursday.
            let monday = days - (days + 3).rem_euclid(7);
            monday * MICROS_PER_DAY
        }
        "month" | "months" => datetime::days_from_civil(year, month, 1) * MICROS_PER_DAY,
        "quarter" => datetime::days_from_civil(year, (month - 1) / 3 * 3 + 1, 1) * MICROS_PER_DAY,
        "year" | "years" => start_of_year(year),
        "decade" | "decades" => start_of_year(year.div_euclid(10) * 10),
        "century" | "centuries" => start_of_year((year - 1).div_euclid(100) * 100 + 1),
        "millennium" | "millennia" => start_of_year((year - 1).div_euclid(1000) * 1000 + 1),
        _ => {
            let kind = if zone.is_some() {
                "timestamp with time zone"
            } else {
                "timestamp without time zone"
            };
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("unit \"{field}\" not recognized for type {kind}"),
            ));
        }
    };
    Ok(match zone {
        Some(z) => truncated - i64::from(z.offset_for_local(truncated)) * 1_000_000,
        None => truncated,
    })
}

/// Whether `op` compares its operands (`=`, `<>`, `<`, `<=`, `>`, `>=`, IS [NOT] DISTINCT FROM).
pub(crate) fn is_comparison(op: datafusion::logical_expr::Operator) -> bool {
    use datafusion::logical_expr::Operator::*;
    matches!(
        op,
        Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom
    )
}

/// `to_char(timestamp[tz] | date, template)` with PostgreSQL's template patterns
/// ([`datetime::to_char`]); a `timestamptz` is printed in the session's time zone. DataFusion's
/// `to_char` reads chrono patterns (`%Y`) and would print `YYYY` as is.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
}

/// Whether `to_char` formats values of `data_type` as numbers.
fn is_number(data_type: &DataType) -> bool {
    data_type.is_integer()
        || data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..) | DataType::LargeBinary
        )
}

/// Row `row` of a number array rounded to `fraction` decimals, as its sign, integer digits
/// (no leading zeros; empty for zero) and exactly `fraction` decimal digits. Floats round as
/// C's `printf` does (PostgreSQL formats them so); NaN and infinities print as `#`s, having
/// more digits than any template.
fn number_parts(
    values: &ArrayRef,
    row: usize,
    fraction: usize,
) -> DfResult<Option<(bool, String, String)>> {
    if values.is_null(row) {
        return Ok(None);
    }
    let text = if values.data_type().is_floating() {
        let value = cast(values, &DataType::Float64)?
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .value(row);
        if !value.is_finite() {
            return Ok(Some((false, "9".repeat(1000), "0".repeat(fraction))));
        }
        format!("{value:.fraction$}")
    } else {
        let Some(value) = crate::numeric::functions::value_at(values.as_ref(), row)? else {
            return Ok(None);
        };
        if !value.is_finite() {
            return Ok(Some((false, "9".repeat(1000), "0".repeat(fraction))));
        }
        value.round(fraction as i64)?.to_text()
    };
    let negative = text.starts_with('-');
    let digits = text.trim_start_matches('-');
    let (integer, decimals) = digits.split_once('.').unwrap_or((digits, ""));
    let integer = integer.trim_start_matches('0').to_string();
    let mut decimals = decimals.to_string();
    decimals.truncate(fraction);
    while decimals.len() < fraction {
        decimals.push('0');
    }
    // `-0.00` is zero: no minus sign.
    let negative = negative && (!integer.is_empty() || decimals.chars().any(|c| c != '0'));
    Ok(Some((negative, integer, decimals)))
}

/// Floe's `to_char`.
pub(crate) fn to_char_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ToChar {
        signature: Signature::user_defined(Volatility::Stable),
    })
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let [value, _] = arg_types else {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                "function to_char does not exist",
            )
            .into());
        };
        let value = match value {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            DataType::Date32 | DataType::Null => DataType::Timestamp(TimeUnit::Microsecond, None),
            number if is_number(number) => number.clone(),
            other => {
                return Err(SqlError::new(
                    sqlstate::FEATURE_NOT_SUPPORTED,
                    format!(
                        "to_char of {} is not supported yet",
                        crate::SqlType::from_arrow(other).name()
                    ),
                )
                .into())
            }
        };
        Ok(vec![value, DataType::Utf8])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = args.number_rows.max(1);
        let values = args.args[0].to_array(rows)?;
        let templates = args.args[1].to_array(rows)?;
        let templates = cast(&templates, &DataType::Utf8)?;
        let templates = templates.as_string::<i32>();
        let zone = match values.data_type() {
            DataType::Timestamp(_, Some(_)) => Some(session_zone(&args.config_options)),
            _ => None,
        };
        let mut out = StringBuilder::new();
        if is_number(values.data_type()) {
            // The template is parsed once per distinct text (usually once per batch).
            let mut parsed: Option<(&str, number_format::Template)> = None;
            for i in 0..values.len() {
                if !templates.is_valid(i) {
                    out.append_null();
                    continue;
                }
                let text = templates.value(i);
                if parsed.as_ref().is_none_or(|(t, _)| *t != text) {
                    let template = number_format::Template::parse(text).map_err(|p| {
                        SqlError::new(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            format!("the to_char pattern \"{p}\" is not supported yet for numbers"),
                        )
                    })?;
                    parsed = Some((text, template));
                }
                let Some((_, template)) = &parsed else {
                    continue;
                };
                match number_parts(&values, i, template.fraction_digits())? {
                    Some((negative, integer, fraction)) => {
                        out.append_value(template.format(negative, &integer, &fraction))
                    }
                    None => out.append_null(),
                }
            }
        } else {
            for (i, value) in timestamp_micros(&values)?.into_iter().enumerate() {
                match (value, templates.is_valid(i)) {
                    (Some(m), true) => {
                        out.append_option(datetime::to_char(m, zone, templates.value(i)))
                    }
                    _ => out.append_null(),
                }
            }
        }
        let output: ArrayRef = Arc::new(out.finish());
        if scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &output, 0,
            )?));
        }
        Ok(ColumnarValue::Array(output))
    }
}

/// `floe_time_precision(value, p)`: what a cast to `timestamp(p)`, `timestamptz(p)` or
/// `time(p)` does after the cast to the unconstrained type (`crate::rewrite` wraps such
/// casts, including the assignment casts into such columns): the microseconds rounded to `p`
/// fractional digits, half away from zero, as PostgreSQL's `AdjustTimestampForTypmod`.
/// Infinities stay.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TimePrecision {
    signature: Signature,
}

/// The name [`time_precision_udf`] is registered under.
pub(crate) const TIME_PRECISION: &str = "floe_time_precision";

pub(crate) fn time_precision_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TimePrecision {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// `micros` rounded to `precision` (0..=5) fractional digits of a second.
pub(crate) fn round_micros(micros: i64, precision: u32) -> i64 {
    if precision >= 6 || micros == TIMESTAMP_INFINITY || micros == TIMESTAMP_NEG_INFINITY {
        return micros;
    }
    let scale = 10i64.pow(6 - precision);
    let offset = scale / 2;
    if micros >= 0 {
        (micros.saturating_add(offset) / scale) * scale
    } else {
        -((micros.saturating_neg().saturating_add(offset) / scale) * scale)
    }
}

impl ScalarUDFImpl for TimePrecision {
    fn name(&self) -> &str {
        TIME_PRECISION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [DataType::Timestamp(_, zone), _] => Ok(vec![
                DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
                DataType::Int32,
            ]),
            [DataType::Time64(_) | DataType::Time32(_), _] => Ok(vec![
                DataType::Time64(TimeUnit::Microsecond),
                DataType::Int32,
            ]),
            _ => Err(SqlError::internal(format!("{TIME_PRECISION} of {arg_types:?}")).into()),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::datatypes::{Time64MicrosecondType, TimestampMicrosecondType};
        let rows = crate::functions::rows_of(&args);
        let precision = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Int32(Some(p))) => (*p).clamp(0, 6) as u32,
            _ => {
                return Err(SqlError::internal(format!(
                    "{TIME_PRECISION} needs a constant precision"
                ))
                .into())
            }
        };
        let values = args.args[0].to_array(rows)?;
        let result: ArrayRef = match values.data_type() {
            DataType::Timestamp(_, zone) => {
                let rounded = values
                    .as_primitive::<TimestampMicrosecondType>()
                    .unary::<_, TimestampMicrosecondType>(|v| round_micros(v, precision));
                Arc::new(rounded.with_timezone_opt(zone.clone()))
            }
            _ => Arc::new(
                values
                    .as_primitive::<Time64MicrosecondType>()
                    .unary::<_, Time64MicrosecondType>(|v| round_micros(v, precision)),
            ),
        };
        crate::functions::finish(&args.args, result)
    }
}

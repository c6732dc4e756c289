//! `date ± integer` and `date - date`, as PostgreSQL's `date_pli`, `date_mii` and `date_mi`.
//!
//! DataFusion adds days to a date through an interval of nanoseconds, so a shift past a few
//! hundred thousand years failed with 22003 `Cannot cast to Interval` (PostgreSQL: 22008 `date
//! out of range`), and it subtracted `infinity` (held as `i32::MAX`) like any date. Here an
//! infinite date plus or minus days stays infinite, a result outside PostgreSQL's dates (4714 BC
//! to 5874897 AD) is 22008, and subtracting an infinite date is 22008 `cannot subtract infinite
//! dates`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Date32Array, Int32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::datetime::{DATE_INFINITY, DATE_NEG_INFINITY, MAX_DATE_DAYS, MIN_DAYS};
use crate::error::{sqlstate, SqlError};

/// What the function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `date + integer` (also `integer + date`, with the operands swapped).
    AddDays,
    /// `date - integer`.
    SubDays,
    /// `date - date`: the days between, `integer`.
    Between,
    /// An operand of `timestamp - timestamp`, which must be finite.
    FiniteTimestamp,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DateDays {
    op: Op,
    signature: Signature,
}

impl DateDays {
    fn udf(op: Op) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(DateDays {
            op,
            signature: Signature::user_defined(Volatility::Immutable),
        }))
    }
}

/// `date + days` (`days` any integer expression).
pub(crate) fn add_days(date: Expr, days: Expr) -> Expr {
    DateDays::udf(Op::AddDays).call(vec![date, days])
}

/// `date - days`.
pub(crate) fn sub_days(date: Expr, days: Expr) -> Expr {
    DateDays::udf(Op::SubDays).call(vec![date, days])
}

/// `date - date`.
pub(crate) fn days_between(left: Expr, right: Expr) -> Expr {
    DateDays::udf(Op::Between).call(vec![left, right])
}

/// `timestamp`, an operand of `timestamp - timestamp`: an infinite one is 22008 `cannot
/// subtract infinite timestamps`, as PostgreSQL's `timestamp_mi`.
pub(crate) fn finite_timestamp(timestamp: Expr) -> Expr {
    DateDays::udf(Op::FiniteTimestamp).call(vec![timestamp])
}

fn out_of_range() -> SqlError {
    SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "date out of range")
}

fn is_infinite(days: i32) -> bool {
    days == DATE_INFINITY || days == DATE_NEG_INFINITY
}

impl ScalarUDFImpl for DateDays {
    fn is_strict(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        match self.op {
            Op::AddDays => "floe_date_add_days",
            Op::SubDays => "floe_date_sub_days",
            Op::Between => "floe_date_days_between",
            Op::FiniteTimestamp => "floe_finite_timestamp",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        Ok(match self.op {
            Op::Between => vec![DataType::Date32, DataType::Date32],
            Op::AddDays | Op::SubDays => vec![DataType::Date32, DataType::Int64],
            Op::FiniteTimestamp => arg_types.to_vec(),
        }
        .into_iter()
        .take(arg_types.len())
        .collect())
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.op {
            Op::Between => DataType::Int32,
            Op::AddDays | Op::SubDays => DataType::Date32,
            Op::FiniteTimestamp => arg_types.first().cloned().unwrap_or(DataType::Null),
        })
    }

    /// Strict: NULL with a NULL constant operand (folded, as PostgreSQL).
    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> DfResult<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        let types = args
            .iter()
            .map(|a| info.get_data_type(a))
            .collect::<DfResult<Vec<_>>>();
        let return_type = types.and_then(|t| self.return_type(&t));
        crate::null_conditions::strict(args, return_type)
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        if self.op == Op::FiniteTimestamp {
            let value = args.args.swap_remove(0);
            let array = value.to_array(1)?;
            let micros = cast(&array, &DataType::Int64)?;
            let infinite = micros
                .as_primitive::<Int64Type>()
                .iter()
                .flatten()
                .any(|m| {
                    m == crate::datetime::TIMESTAMP_INFINITY
                        || m == crate::datetime::TIMESTAMP_NEG_INFINITY
                });
            if infinite {
                return Err(SqlError::new(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    "cannot subtract infinite timestamps",
                )
                .into());
            }
            return Ok(value);
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [date, other] = &arrays[..] else {
            return Err(SqlError::internal("date arithmetic takes two operands").into());
        };
        let dates = cast(date, &DataType::Date32)?;
        let dates = dates.as_primitive::<Date32Type>();
        let out: ArrayRef = match self.op {
            Op::Between => {
                let others = cast(other, &DataType::Date32)?;
                let others = others.as_primitive::<Date32Type>();
                let mut out = Vec::with_capacity(dates.len());
                for (a, b) in dates.iter().zip(others.iter()) {
                    out.push(match (a, b) {
                        (Some(a), Some(b)) => {
                            if is_infinite(a) || is_infinite(b) {
                                return Err(SqlError::new(
                                    sqlstate::DATETIME_FIELD_OVERFLOW,
                                    "cannot subtract infinite dates",
                                )
                                .into());
                            }
                            // Both within PostgreSQL's range, so the difference fits.
                            Some((i64::from(a) - i64::from(b)) as i32)
                        }
                        _ => None,
                    });
                }
                Arc::new(Int32Array::from(out))
            }
            Op::FiniteTimestamp => {
                return Err(SqlError::internal("a timestamp operand has one argument").into())
            }
            Op::AddDays | Op::SubDays => {
                let days = cast(other, &DataType::Int64)?;
                let days = days.as_primitive::<Int64Type>();
                let mut out = Vec::with_capacity(dates.len());
                for (date, days) in dates.iter().zip(days.iter()) {
                    out.push(match (date, days) {
                        (Some(date), Some(_)) if is_infinite(date) => Some(date),
                        (Some(date), Some(days)) => {
                            let days = if self.op == Op::SubDays {
                                days.checked_neg().ok_or_else(out_of_range)?
                            } else {
                                days
                            };
                            let result = i64::from(date)
                                .checked_add(days)
                                .filter(|d| (MIN_DAYS..=MAX_DATE_DAYS).contains(d))
                                .ok_or_else(out_of_range)?;
                            Some(result as i32)
                        }
                        _ => None,
                    });
                }
                Arc::new(Date32Array::from(out))
            }
        };
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&out, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::ScalarValue;

    fn run(op: Op, a: ScalarValue, b: ScalarValue) -> DfResult<ScalarValue> {
        let udf = DateDays {
            op,
            signature: Signature::user_defined(Volatility::Immutable),
        };
        let fields = vec![
            Arc::new(Field::new("a", a.data_type(), true)),
            Arc::new(Field::new("b", b.data_type(), true)),
        ];
        let result = udf.invoke_with_args(ScalarFunctionArgs {
            args: vec![ColumnarValue::Scalar(a), ColumnarValue::Scalar(b)],
            arg_fields: fields,
            number_rows: 1,
            return_field: Arc::new(Field::new("r", udf.return_type(&[])?, true)),
            config_options: Arc::new(ConfigOptions::default()),
        })?;
        match result {
            ColumnarValue::Scalar(v) => Ok(v),
            ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
        }
    }

    fn code(r: DfResult<ScalarValue>) -> &'static str {
        SqlError::from(r.unwrap_err()).code
    }

    #[test]
    fn days_shift_dates_within_postgres_range() {
        let d = |v| ScalarValue::Date32(Some(v));
        let n = |v| ScalarValue::Int64(Some(v));
        assert_eq!(run(Op::AddDays, d(0), n(31)).unwrap(), d(31));
        assert_eq!(run(Op::SubDays, d(0), n(1)).unwrap(), d(-1));
        assert_eq!(
            run(Op::AddDays, d(DATE_INFINITY), n(-5)).unwrap(),
            d(DATE_INFINITY)
        );
        assert_eq!(code(run(Op::SubDays, d(0), n(-2147483648))), "22008");
        assert_eq!(code(run(Op::AddDays, d(0), n(i64::MAX))), "22008");
        assert_eq!(code(run(Op::SubDays, d(0), n(i64::MIN))), "22008");
        assert_eq!(
            run(Op::AddDays, d(0), ScalarValue::Int64(None)).unwrap(),
            ScalarValue::Date32(None)
        );
    }

    #[test]
    fn infinite_dates_do_not_subtract() {
        let d = |v| ScalarValue::Date32(Some(v));
        assert_eq!(
            run(Op::Between, d(10), d(3)).unwrap(),
            ScalarValue::Int32(Some(7))
        );
        assert_eq!(
            code(run(Op::Between, d(DATE_NEG_INFINITY), d(DATE_INFINITY))),
            "22008"
        );
    }
}

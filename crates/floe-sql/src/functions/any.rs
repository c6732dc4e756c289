//! `x = ANY(array)` and `x <> ALL(array)` with PostgreSQL's answers.
//!
//! DataFusion plans `x = ANY(a)` as `array_has(a, x)`, which is false where PostgreSQL says
//! NULL (`2 = ANY('{1,NULL}')`: no element equals, but the NULL one might), and which cannot
//! compare a `numeric` with the elements of a `numeric[]` (wide numerics are keys whose bytes
//! hold the display scale: `2.5` and `2.50` are equal in PostgreSQL). The statement rewrite
//! (`rewrite.rs`) makes `x = ANY(a)` a call of `floe_any_eq(x, a)` and `x <> ALL(a)` its
//! negation:
//! - true if an element equals `x`;
//! - NULL if none does but `x` or an element is NULL (a NULL array is NULL too);
//! - false otherwise, and always for an empty array.
//!
//! Numerics (wide, `numeric(p, s)`, integers against them) compare by value; other types by
//! Arrow's equality once `x` has the elements' type.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Scalar};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::{sqlstate, SqlError};
use crate::numeric::is_numeric_field_type;

/// The function's name, for the statement rewrite.
pub(crate) const ANY_EQ: &str = "floe_any_eq";

#[derive(Debug, PartialEq, Eq, Hash)]
struct AnyEq {
    signature: Signature,
}

pub(crate) fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(AnyEq {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

fn is_decimal(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Decimal128(..) | DataType::Decimal256(..)
    )
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// Whether `x` and the elements compare as numerics, by value.
fn by_value(x: &DataType, element: &DataType) -> bool {
    let numeric = |t: &DataType| is_numeric_field_type(t) || is_decimal(t);
    (numeric(x) || numeric(element))
        && (numeric(x) || is_integer(x))
        && (numeric(element) || is_integer(element))
}

impl ScalarUDFImpl for AnyEq {
    fn name(&self) -> &str {
        ANY_EQ
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let [x, arrays] = [&args.args[0], &args.args[1]].map(|a| a.to_array(rows));
        let (x, arrays) = (x?, arrays?);
        let result = any_eq(&x, &arrays, rows)?;
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

fn any_eq(x: &ArrayRef, arrays: &ArrayRef, rows: usize) -> DfResult<ArrayRef> {
    let mut out = BooleanBuilder::with_capacity(rows);
    if matches!(arrays.data_type(), DataType::Null) {
        out.append_nulls(rows);
        return Ok(Arc::new(out.finish()));
    }
    let (offsets, elements): (Vec<usize>, ArrayRef) = match arrays.data_type() {
        DataType::List(_) => {
            let list = arrays.as_list::<i32>();
            (
                list.offsets().iter().map(|o| *o as usize).collect(),
                Arc::clone(list.values()),
            )
        }
        DataType::LargeList(_) => {
            let list = arrays.as_list::<i64>();
            (
                list.offsets().iter().map(|o| *o as usize).collect(),
                Arc::clone(list.values()),
            )
        }
        other => {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "op ANY/ALL (array) requires array on right side, not {}",
                    crate::types::SqlType::from_arrow(other).name()
                ),
            )
            .into())
        }
    };
    let (x, elements) = if by_value(x.data_type(), elements.data_type()) {
        (
            crate::numeric::functions::identities(x)?,
            crate::numeric::functions::identities(&elements)?,
        )
    } else if x.data_type() == elements.data_type() || x.data_type() == &DataType::Null {
        (Arc::clone(x), elements)
    } else {
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        (
            cast_with_options(x, elements.data_type(), &options)?,
            elements,
        )
    };
    for row in 0..rows {
        if arrays.is_null(row) {
            out.append_null();
            continue;
        }
        let (start, end) = (offsets[row], offsets[row + 1]);
        if start == end {
            out.append_value(false);
            continue;
        }
        if x.is_null(row) {
            out.append_null();
            continue;
        }
        let candidates = elements.slice(start, end - start);
        let equal = eq(&candidates, &Scalar::new(x.slice(row, 1)))?;
        if equal.true_count() > 0 {
            out.append_value(true);
        } else if candidates.null_count() > 0 {
            out.append_null();
        } else {
            out.append_value(false);
        }
    }
    Ok(Arc::new(out.finish()))
}

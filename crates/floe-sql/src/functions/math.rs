//! PostgreSQL's math functions DataFusion lacks or types differently: `sign`, `mod`, `gcd` and
//! `lcm`.
//!
//! - `sign(x)` is `double precision` for integer and float arguments and `numeric` for
//!   `numeric` ones, as PostgreSQL resolves it; NaN and ±0 have sign 0.
//! - `mod(a, b)` is `a % b` of the wider integer type (or numeric): the call is simplified to
//!   the operator, so division by zero and numeric scales are the operator's. PostgreSQL has
//!   no `mod` of floats, and neither has Floe.
//! - `gcd`/`lcm` of `integer`s are `integer`s (DataFusion's are `bigint`s), and a result that
//!   does not fit is 22003, as in PostgreSQL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{plan_err, Result as DfResult};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

use super::finish;
use crate::error::{sqlstate, SqlError};

/// The functions of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    let signature = || Signature::user_defined(Volatility::Immutable);
    vec![
        ScalarUDF::new_from_impl(Sign {
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(Mod {
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(GcdLcm {
            lcm: false,
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(GcdLcm {
            lcm: true,
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(Angle {
            to_degrees: true,
            signature: signature(),
        }),
        ScalarUDF::new_from_impl(Angle {
            to_degrees: false,
            signature: signature(),
        }),
    ]
}

/// `degrees(x)` and `radians(x)` of double precision as PostgreSQL computes them (dividing
/// or multiplying by its `RADIANS_PER_DEGREE`, so the last digit agrees) with its overflow and
/// underflow errors (22003); DataFusion's returned ±Infinity.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Angle {
    to_degrees: bool,
    signature: Signature,
}

const RADIANS_PER_DEGREE: f64 = 0.017_453_292_519_943_295;

impl ScalarUDFImpl for Angle {
    fn name(&self) -> &str {
        if self.to_degrees {
            "degrees"
        } else {
            "radians"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] if t.is_numeric() || t.is_null() || is_decimal(t) => Ok(vec![DataType::Float64]),
            [DataType::LargeBinary] => Ok(vec![DataType::Float64]),
            _ => Err(no_function(self.name(), arg_types)),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let values = cast(
            &args.args[0].to_array(args.number_rows.max(1))?,
            &DataType::Float64,
        )?;
        let mut out = Vec::with_capacity(values.len());
        for v in values.as_primitive::<Float64Type>().iter() {
            out.push(match v {
                None => None,
                Some(x) => {
                    let r = if self.to_degrees {
                        x / RADIANS_PER_DEGREE
                    } else {
                        x * RADIANS_PER_DEGREE
                    };
                    if r.is_infinite() && !x.is_infinite() {
                        return Err(SqlError::new(
                            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                            "value out of range: overflow",
                        )
                        .into());
                    }
                    if r == 0.0 && x != 0.0 {
                        return Err(SqlError::new(
                            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                            "value out of range: underflow",
                        )
                        .into());
                    }
                    Some(r)
                }
            });
        }
        finish(
            &args.args,
            Arc::new(datafusion::arrow::array::Float64Array::from(out)),
        )
    }
}

fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

fn no_function(name: &str, arg_types: &[DataType]) -> datafusion::error::DataFusionError {
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

/// `sign(x)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Sign {
    signature: Signature,
}

impl ScalarUDFImpl for Sign {
    fn name(&self) -> &str {
        "sign"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] if is_decimal(t) => Ok(vec![t.clone()]),
            [t] if is_integer(t) || t.is_floating() || t.is_null() => Ok(vec![DataType::Float64]),
            _ => Err(no_function("sign", arg_types)),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match &arg_types[0] {
            DataType::Decimal128(..) | DataType::Decimal256(..) => DataType::Decimal128(1, 0),
            _ => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows.max(1))?;
        let floats = cast(&values, &DataType::Float64)?;
        let signs: Float64Array = floats
            .as_primitive::<Float64Type>()
            .iter()
            .map(|x| {
                x.map(|x| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let result: ArrayRef = cast(&(Arc::new(signs) as ArrayRef), args.return_type())?;
        finish(&args.args, result)
    }
}

/// `mod(a, b)`, simplified to `a % b` (see the module doc).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Mod {
    signature: Signature,
}

impl Mod {
    fn common_type(arg_types: &[DataType]) -> DfResult<DataType> {
        let [a, b] = arg_types else {
            return Err(no_function("mod", arg_types));
        };
        let numeric = |t: &DataType| is_integer(t) || is_decimal(t) || t.is_null();
        if !numeric(a) || !numeric(b) {
            return Err(no_function("mod", arg_types));
        }
        if is_integer(a) && is_integer(b) {
            let width = |t: &DataType| t.primitive_width().unwrap_or(8);
            return Ok(if width(a) >= width(b) {
                a.clone()
            } else {
                b.clone()
            });
        }
        let (a, b) = (
            if a.is_null() { b } else { a },
            if b.is_null() { a } else { b },
        );
        if a.is_null() {
            return Ok(DataType::Int32);
        }
        BinaryTypeCoercer::new(a, &Operator::Modulo, b)
            .get_input_types()
            .map(|(l, _)| l)
    }
}

impl ScalarUDFImpl for Mod {
    fn name(&self) -> &str {
        "mod"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let common = Self::common_type(arg_types)?;
        Ok(vec![common.clone(), common])
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types {
            [a, b] => BinaryTypeCoercer::new(a, &Operator::Modulo, b).get_result_type(),
            _ => Err(no_function("mod", arg_types)),
        }
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let [a, b]: [Expr; 2] = match args.try_into() {
            Ok(pair) => pair,
            Err(args) => return Ok(ExprSimplifyResult::Original(args)),
        };
        Ok(ExprSimplifyResult::Simplified(Expr::BinaryExpr(
            BinaryExpr::new(Box::new(a), Operator::Modulo, Box::new(b)),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // Only reached if the call was not simplified; the operator's kernel does the work.
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let result = datafusion::arrow::compute::kernels::numeric::rem(&arrays[0], &arrays[1])
            .map_err(SqlError::from)?;
        Ok(ColumnarValue::Array(result))
    }
}

/// `gcd(a, b)` and `lcm(a, b)` of integers.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GcdLcm {
    lcm: bool,
    signature: Signature,
}

fn gcd(a: i128, b: i128) -> i128 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl ScalarUDFImpl for GcdLcm {
    fn name(&self) -> &str {
        if self.lcm {
            "lcm"
        } else {
            "gcd"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [a, b] if [a, b].iter().all(|t| is_integer(t) || t.is_null()) => {
                let small = |t: &DataType| !matches!(t, DataType::Int64);
                let common = if small(a) && small(b) {
                    DataType::Int32
                } else {
                    DataType::Int64
                };
                Ok(vec![common.clone(), common])
            }
            _ => Err(no_function(self.name(), arg_types)),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types.first() {
            Some(t @ (DataType::Int32 | DataType::Int64)) => Ok(t.clone()),
            _ => plan_err!("{} expects integers", self.name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let return_type = args.return_type().clone();
        let (max, type_name) = match return_type {
            DataType::Int32 => (i32::MAX as i128, "integer"),
            _ => (i64::MAX as i128, "bigint"),
        };
        let (a, b) = (
            cast(&arrays[0], &DataType::Int64)?,
            cast(&arrays[1], &DataType::Int64)?,
        );
        let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
        let mut out: Vec<Option<i128>> = Vec::with_capacity(a.len());
        for i in 0..a.len() {
            if a.is_null(i) || b.is_null(i) {
                out.push(None);
                continue;
            }
            let (x, y) = (a.value(i) as i128, b.value(i) as i128);
            let divisor = gcd(x, y);
            let value = if !self.lcm {
                divisor
            } else if x == 0 || y == 0 {
                0
            } else {
                if divisor > max {
                    return Err(out_of_range(type_name));
                }
                (x / divisor * y).abs()
            };
            if value > max {
                return Err(out_of_range(type_name));
            }
            out.push(Some(value));
        }
        let result: ArrayRef = match return_type {
            DataType::Int32 => Arc::new(
                out.into_iter()
                    .map(|v| v.map(|v| v as i32))
                    .collect::<Int32Array>(),
            ),
            _ => Arc::new(
                out.into_iter()
                    .map(|v| v.map(|v| v as i64))
                    .collect::<Int64Array>(),
            ),
        };
        finish(&args.args, result)
    }
}

fn out_of_range(type_name: &str) -> datafusion::error::DataFusionError {
    SqlError::new(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("{type_name} out of range"),
    )
    .into()
}

/// Two functions of one float argument (Float32 stays Float32, anything else is read as
/// Float64) that PostgreSQL's casts need:
/// - `floe_rint(x)`: rounded to the nearest integer, ties to even (C's `rint`), as PostgreSQL
///   rounds `round(double precision)` and casts of floats to integers (`2.5::float8::int4` is
///   2, `3.5` is 4); DataFusion truncates casts and rounds ties away;
/// - `floe_float_text(x)`: the float as text the way PostgreSQL writes it (`3`, `1e+20`,
///   `1.5e-07`), for casts of floats to text; Arrow's cast writes `3.0` and `1e20`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatFunction {
    text: bool,
    signature: Signature,
}

/// `floe_rint` (see [`FloatFunction`]).
pub(crate) fn rint() -> Arc<ScalarUDF> {
    static RINT: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    RINT.get_or_init(|| float_function(false)).clone()
}

/// `floe_float_text` (see [`FloatFunction`]).
pub(crate) fn float_text() -> Arc<ScalarUDF> {
    static FLOAT_TEXT: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    FLOAT_TEXT.get_or_init(|| float_function(true)).clone()
}

fn float_function(text: bool) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(FloatFunction {
        text,
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

impl ScalarUDFImpl for FloatFunction {
    fn name(&self) -> &str {
        if self.text {
            "floe_float_text"
        } else {
            "floe_rint"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        match arg_types {
            [t] if t.is_floating() => Ok(vec![t.clone()]),
            _ => Ok(vec![DataType::Float64]),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.text {
            DataType::Utf8
        } else {
            arg_types[0].clone()
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::Float32Type;
        let values = args.args[0].to_array(args.number_rows.max(1))?;
        let result: ArrayRef = if values.data_type() == &DataType::Float32 {
            let values = values.as_primitive::<Float32Type>();
            if self.text {
                Arc::new(
                    values
                        .iter()
                        .map(|v| v.map(crate::types::float4_text))
                        .collect::<StringArray>(),
                )
            } else {
                Arc::new(values.unary::<_, Float32Type>(f32::round_ties_even))
            }
        } else {
            let values = cast(&values, &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            if self.text {
                Arc::new(
                    values
                        .iter()
                        .map(|v| v.map(crate::types::float8_text))
                        .collect::<StringArray>(),
                )
            } else {
                Arc::new(values.unary::<_, Float64Type>(f64::round_ties_even))
            }
        };
        finish(&args.args, result)
    }
}

//! PostgreSQL's domain checks around DataFusion's built-in functions.
//!
//! DataFusion's math and string functions compute what IEEE arithmetic or Rust gives for
//! arguments outside a function's domain (`ln(0)` is `-Infinity`, `sin('infinity')` is `NaN`,
//! `lpad(s, -1)` panics on a negative capacity), where PostgreSQL raises an error with a
//! specific SQLSTATE or answers differently. [`Checked`] wraps one built-in under its own
//! name (so it replaces it in the function registry): it checks the arguments before the
//! built-in runs and, for functions that can overflow, the result after it. The built-in's
//! signature, coercions and return type are kept, so plans and RowDescriptions do not change,
//! except for `generate_series` of `integer`s, which yields `integer`s as in PostgreSQL
//! (DataFusion's yields `bigint`s).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::{cast, kernels::cast::cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};

use crate::error::{sqlstate, SqlError};

/// What PostgreSQL checks for one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Rule {
    /// `lpad`/`rpad`: a negative length is an empty result (DataFusion panics).
    PadLength,
    /// `ln`, `log`, `log10`: zero and negative arguments are 2201E.
    Logarithm,
    /// `sqrt`: a negative argument is 2201F.
    SquareRoot,
    /// `sin`, `cos`, `tan`, `cot`: an infinite argument is 22003.
    Periodic,
    /// `asin`, `acos`: an argument outside [-1, 1] is 22003.
    UnitInterval,
    /// `exp`: an overflowing or underflowing result is 22003.
    Exponential,
    /// `power`: PostgreSQL's undefined cases (2201F) and overflow (22003).
    Power,
    /// `chr`: 0 and code points no encoding has are errors, as in PostgreSQL.
    CodePoint,
    /// `generate_series`: a zero step is 22023.
    SeriesStep,
}

/// The built-ins PostgreSQL checks, by the name they are registered under.
const CHECKED: [(&str, Rule); 16] = [
    ("lpad", Rule::PadLength),
    ("rpad", Rule::PadLength),
    ("ln", Rule::Logarithm),
    ("log", Rule::Logarithm),
    ("log10", Rule::Logarithm),
    ("sqrt", Rule::SquareRoot),
    ("sin", Rule::Periodic),
    ("cos", Rule::Periodic),
    ("tan", Rule::Periodic),
    ("cot", Rule::Periodic),
    ("asin", Rule::UnitInterval),
    ("acos", Rule::UnitInterval),
    ("exp", Rule::Exponential),
    ("power", Rule::Power),
    ("chr", Rule::CodePoint),
    ("generate_series", Rule::SeriesStep),
];

/// The checked versions of the built-ins `state` has (each replaces the built-in when
/// registered).
pub(crate) fn udfs(state: &SessionState) -> Vec<ScalarUDF> {
    CHECKED
        .iter()
        .filter_map(|(name, rule)| {
            let inner = state.scalar_functions().get(*name)?.clone();
            Some(ScalarUDF::new_from_impl(Checked {
                inner,
                rule: *rule,
                series_signature: Signature::user_defined(Volatility::Immutable),
            }))
        })
        .collect()
}

/// A built-in with PostgreSQL's checks (see the module doc).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Checked {
    inner: Arc<ScalarUDF>,
    rule: Rule,
    /// `generate_series`'s own signature: it coerces `smallint`/`integer` arguments to
    /// `integer` (not `bigint`), so the series keeps PostgreSQL's element type.
    series_signature: Signature,
}

impl Checked {
    /// Whether this is `generate_series` over `integer`s (coerced so by [`Self::coerce_types`]).
    fn is_int4_series(&self, arg_types: &[DataType]) -> bool {
        self.rule == Rule::SeriesStep
            && !arg_types.is_empty()
            && arg_types.iter().all(|t| *t == DataType::Int32)
    }
}

fn int4_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)))
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        if self.rule == Rule::SeriesStep {
            return &self.series_signature;
        }
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        if self.is_int4_series(arg_types) {
            return Ok(int4_list());
        }
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if self.is_int4_series(&types) {
            return Ok(Arc::new(Field::new(self.name(), int4_list(), true)));
        }
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if self.rule != Rule::SeriesStep {
            return self.inner.coerce_types(arg_types);
        }
        let small = |t: &DataType| matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32);
        if !arg_types.is_empty() && arg_types.iter().all(small) {
            return Ok(vec![DataType::Int32; arg_types.len()]);
        }
        let fields: Vec<FieldRef> = arg_types
            .iter()
            .map(|t| Arc::new(Field::new("arg", t.clone(), true)))
            .collect();
        Ok(fields_with_udf(&fields, self.inner.as_ref())?
            .iter()
            .map(|f| f.data_type().clone())
            .collect())
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        match self.rule {
            Rule::PadLength => {
                if let Some(length) = args.args.get_mut(1) {
                    *length = non_negative(length)?;
                }
            }
            Rule::Logarithm => check_logarithm(&args.args, args.number_rows)?,
            Rule::SquareRoot => each_float(&args.args[0], |x| {
                if x < 0.0 {
                    Err(error(
                        "2201F",
                        "cannot take square root of a negative number",
                    ))
                } else {
                    Ok(())
                }
            })?,
            Rule::Periodic => each_float(&args.args[0], |x| {
                if x.is_infinite() {
                    Err(out_of_range())
                } else {
                    Ok(())
                }
            })?,
            Rule::UnitInterval => each_float(&args.args[0], |x| {
                if !(-1.0..=1.0).contains(&x) {
                    Err(out_of_range())
                } else {
                    Ok(())
                }
            })?,
            Rule::Power => check_power(&args.args, args.number_rows)?,
            Rule::CodePoint => each_int(&args.args[0], |c| match c {
                0 => Err(error(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    "null character not permitted",
                )),
                c if c < 0 => Err(error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "character number must be positive",
                )),
                c if c > 0x10FFFF => Err(error(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!("requested character too large for encoding: {c}"),
                )),
                c if (0xD800..=0xDFFF).contains(&c) => Err(error(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    format!("requested character not valid for encoding: {c}"),
                )),
                _ => Ok(()),
            })?,
            Rule::SeriesStep => {
                if let Some(step) = args.args.get(2) {
                    if is_integer(&step.data_type()) {
                        each_int(step, |s| {
                            if s == 0 {
                                Err(error(
                                    sqlstate::INVALID_PARAMETER_VALUE,
                                    "step size cannot equal zero",
                                ))
                            } else {
                                Ok(())
                            }
                        })?;
                    }
                }
            }
            Rule::Exponential => {}
        }
        let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
        if self.is_int4_series(&types) {
            return self.int4_series(args);
        }
        // `log(x)` of a float is C's log10, as PostgreSQL's dlog10 (DataFusion divides
        // logarithms: log(0.1) was -0.9999999999999998).
        if matches!(self.rule, Rule::Logarithm)
            && matches!(types[..], [DataType::Float64])
            && matches!(self.inner.name(), "log" | "log10")
        {
            return match &args.args[0] {
                ColumnarValue::Array(array) => {
                    let values: datafusion::arrow::array::Float64Array = array
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .unary(f64::log10);
                    Ok(ColumnarValue::Array(Arc::new(values)))
                }
                ColumnarValue::Scalar(ScalarValue::Float64(v)) => Ok(ColumnarValue::Scalar(
                    ScalarValue::Float64(v.map(f64::log10)),
                )),
                _ => self.inner.invoke_with_args(args),
            };
        }
        let inputs =
            matches!(self.rule, Rule::Exponential | Rule::Power).then(|| args.args.clone());
        let result = self.inner.invoke_with_args(args)?;
        if let Some(inputs) = inputs {
            check_float_result(self.rule, &inputs, &result)?;
        }
        Ok(result)
    }
}

impl Checked {
    /// `generate_series` of `integer`s: DataFusion's series of `bigint`s, narrowed (every
    /// element lies between two `integer`s).
    fn int4_series(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        for arg in args.args.iter_mut() {
            *arg = arg.cast_to(&DataType::Int64, None)?;
        }
        args.arg_fields = args
            .arg_fields
            .iter()
            .map(|f| Arc::new(f.as_ref().clone().with_data_type(DataType::Int64)))
            .collect();
        let int8_list = DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)));
        args.return_field = Arc::new(Field::new(self.name(), int8_list, true));
        self.inner
            .invoke_with_args(args)?
            .cast_to(&int4_list(), None)
    }
}

fn error(code: &'static str, message: impl Into<String>) -> datafusion::error::DataFusionError {
    SqlError::new(code, message.into()).into()
}

fn out_of_range() -> datafusion::error::DataFusionError {
    error(
        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        "input is out of range",
    )
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

fn as_array(value: &ColumnarValue) -> DfResult<ArrayRef> {
    value.to_array(1)
}

/// Calls `check` with every non-NULL value of `value` as a float (numeric and integer
/// arguments are checked through their float value, which keeps zero, the sign and
/// infinities).
fn each_float(value: &ColumnarValue, mut check: impl FnMut(f64) -> DfResult<()>) -> DfResult<()> {
    let array = as_array(value)?;
    if !array.data_type().is_numeric() {
        return Ok(());
    }
    let floats = cast(&array, &DataType::Float64)?;
    for x in floats.as_primitive::<Float64Type>().iter().flatten() {
        check(x)?;
    }
    Ok(())
}

/// Calls `check` with every non-NULL value of the integer argument `value`.
fn each_int(value: &ColumnarValue, mut check: impl FnMut(i64) -> DfResult<()>) -> DfResult<()> {
    let array = as_array(value)?;
    if !is_integer(array.data_type()) {
        return Ok(());
    }
    let ints = cast(&array, &DataType::Int64)?;
    for x in ints.as_primitive::<Int64Type>().iter().flatten() {
        check(x)?;
    }
    Ok(())
}

/// `value` (an integer length) with negative values raised to 0.
fn non_negative(value: &ColumnarValue) -> DfResult<ColumnarValue> {
    Ok(match value {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(n))) if *n < 0 => {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(0)))
        }
        ColumnarValue::Scalar(_) => value.clone(),
        ColumnarValue::Array(array) => match array.as_any().downcast_ref::<Int64Array>() {
            Some(lengths) if lengths.iter().flatten().any(|n| n < 0) => {
                let clamped: Int64Array = lengths.iter().map(|n| n.map(|n| n.max(0))).collect();
                ColumnarValue::Array(Arc::new(clamped))
            }
            _ => value.clone(),
        },
    })
}

/// The float values of `value`, `rows` long (a scalar repeated).
fn floats(value: &ColumnarValue, rows: usize) -> DfResult<Option<ArrayRef>> {
    let array = value.to_array(rows)?;
    if !array.data_type().is_numeric() {
        return Ok(None);
    }
    let options = CastOptions::default();
    Ok(Some(cast_with_options(
        &array,
        &DataType::Float64,
        &options,
    )?))
}

/// PostgreSQL's logarithm refusals (zero, negative) for the rows whose arguments are all
/// non-NULL: the functions are strict, so `log(-1, NULL)` is NULL.
fn check_logarithm(args: &[ColumnarValue], rows: usize) -> DfResult<()> {
    let rows = rows.max(1);
    let columns = args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<DfResult<Vec<_>>>()?;
    let nulls: Vec<_> = columns.iter().map(|c| c.logical_nulls()).collect();
    let any_null = |row: usize| nulls.iter().flatten().any(|n| n.is_null(row));
    for column in &columns {
        let Some(values) = floats(&ColumnarValue::Array(column.clone()), rows)? else {
            continue;
        };
        for (row, x) in values.as_primitive::<Float64Type>().iter().enumerate() {
            let Some(x) = x else { continue };
            if any_null(row) {
                continue;
            }
            if x == 0.0 {
                return Err(error("2201E", "cannot take logarithm of zero"));
            }
            if x < 0.0 {
                return Err(error("2201E", "cannot take logarithm of a negative number"));
            }
        }
    }
    Ok(())
}

/// PostgreSQL's `dpow` refusals: zero to a negative power, a negative number to a fractional
/// power.
fn check_power(args: &[ColumnarValue], rows: usize) -> DfResult<()> {
    let rows = rows.max(1);
    let (Some(bases), Some(exponents)) = (floats(&args[0], rows)?, floats(&args[1], rows)?) else {
        return Ok(());
    };
    let (bases, exponents) = (
        bases.as_primitive::<Float64Type>(),
        exponents.as_primitive::<Float64Type>(),
    );
    for (x, y) in bases.iter().zip(exponents.iter()) {
        let (Some(x), Some(y)) = (x, y) else { continue };
        if x == 0.0 && y < 0.0 {
            return Err(error(
                "2201F",
                "zero raised to a negative power is undefined",
            ));
        }
        if x < 0.0 && y.is_finite() && y.floor() != y {
            return Err(error(
                "2201F",
                "a negative number raised to a non-integer power yields a complex result",
            ));
        }
    }
    Ok(())
}

/// PostgreSQL's overflow and underflow checks of a float result: infinite from finite
/// inputs, or zero from inputs that cannot give zero.
fn check_float_result(
    rule: Rule,
    inputs: &[ColumnarValue],
    result: &ColumnarValue,
) -> DfResult<()> {
    let results = result.to_array(1)?;
    if !matches!(results.data_type(), DataType::Float64 | DataType::Float32) {
        return Ok(());
    }
    let rows = results.len();
    let mut columns = Vec::with_capacity(inputs.len());
    for input in inputs {
        match floats(input, rows)? {
            Some(column) => columns.push(column),
            None => return Ok(()),
        }
    }
    let results = cast(&results, &DataType::Float64)?;
    let results = results.as_primitive::<Float64Type>();
    for row in 0..rows {
        if results.is_null(row) {
            continue;
        }
        let value = results.value(row);
        let arg = |i: usize| columns[i].as_primitive::<Float64Type>().value(row);
        let (overflow, underflow) = match rule {
            Rule::Exponential => {
                let x = arg(0);
                (
                    value.is_infinite() && !x.is_infinite(),
                    value == 0.0 && !x.is_infinite(),
                )
            }
            _ => {
                let (x, y) = (arg(0), arg(1));
                let finite = x.is_finite() && y.is_finite();
                (
                    value.is_infinite() && finite,
                    value == 0.0 && x != 0.0 && finite,
                )
            }
        };
        if overflow {
            return Err(error(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: overflow",
            ));
        }
        if underflow {
            return Err(error(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: underflow",
            ));
        }
    }
    Ok(())
}

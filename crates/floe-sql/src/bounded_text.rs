//! The length of `varchar(n)` and `char(n)` values, by PostgreSQL's rules.
//!
//! Arrow strings have no length limit, so Floe applies `n` where PostgreSQL does:
//! - storing a value in a column (INSERT, UPDATE, COPY, ON CONFLICT): a value longer than `n`
//!   characters is an error (22001, `value too long for type character varying(5)`), unless
//!   the characters past `n` are all spaces, which are cut off ([`ASSIGN`]);
//! - an explicit cast (`'abcdef'::varchar(5)`): the value is cut to `n` characters ([`CAST`]).
//!
//! Both functions return their first argument's field, so the value keeps its type tag
//! (`character varying`, `character`). Lengths count characters, not bytes.
//!
//! `char(n)` values are held without trailing spaces, which PostgreSQL's `bpchar` treats as
//! insignificant everywhere but in output: comparisons, grouping, joins, keys, `length`, `||`
//! and casts to text then need nothing special, and the wire layer pads a `character(n)`
//! column's values back to `n` characters (`floe_wire::encode`, from the field's typmod).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder, StringViewBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::tree_node::Transformed;
use datafusion::common::DFSchema;
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::{BinaryExpr, InList};
use datafusion::logical_expr::{
    lit, ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{sqlstate, SqlError};
use crate::types::{SqlType, PG_TYPMOD_KEY};

/// `floe_assign_bounded_text(value, n, type_name)`: the assignment rule.
pub(crate) const ASSIGN: &str = "floe_assign_bounded_text";
/// `floe_cast_bounded_text(value, n)`: the explicit cast rule.
pub(crate) const CAST: &str = "floe_cast_bounded_text";

/// Both functions, to register with the session state.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(BoundedText {
            assignment: true,
            signature: Signature::any(3, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(BoundedText {
            assignment: false,
            signature: Signature::any(2, Volatility::Immutable),
        }),
    ]
}

/// SQL calling the assignment rule on `value` for a column of type `type_name` (`character
/// varying` or `character`) and length `n`.
pub(crate) fn assign_sql(value: &str, n: u64, type_name: &str) -> String {
    format!("{ASSIGN}({value}, {n}, '{type_name}')")
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BoundedText {
    assignment: bool,
    signature: Signature,
}

impl ScalarUDFImpl for BoundedText {
    fn name(&self) -> &str {
        if self.assignment {
            ASSIGN
        } else {
            CAST
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let field = args.arg_fields[0].clone();
        // `'ab'::char(5)` is a `character(5)`: its length pads the output.
        let length = args.scalar_arguments.get(1).copied().flatten();
        match length {
            Some(n) if SqlType::from_arrow_field(&field) == SqlType::Bpchar => {
                let mut metadata = field.metadata().clone();
                metadata.insert(PG_TYPMOD_KEY.into(), format!("({n})"));
                Ok(Arc::new(field.as_ref().clone().with_metadata(metadata)))
            }
            _ => Ok(field),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let limit = match &args.args[1] {
            ColumnarValue::Scalar(n) => match n.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) if n >= 0 => n as usize,
                _ => {
                    return exec_err!(
                        "{}: the length must be a non-negative constant",
                        self.name()
                    )
                }
            },
            ColumnarValue::Array(_) => {
                return exec_err!("{}: the length must be a constant", self.name())
            }
        };
        let type_name = match args.args.get(2) {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))) => name.as_str(),
            _ => "character varying",
        };
        let bpchar = type_name == "character"
            || args
                .arg_fields
                .first()
                .is_some_and(|f| SqlType::from_arrow_field(f) == SqlType::Bpchar);
        let bound = |value: &str| -> DfResult<Option<usize>> {
            // The byte length of the first `limit` characters, if the value is longer.
            let end = match value.char_indices().nth(limit) {
                Some((cut, _)) => {
                    if self.assignment && !value[cut..].chars().all(|c| c == ' ') {
                        return Err(SqlError::new(
                            sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                            format!("value too long for type {type_name}({limit})"),
                        )
                        .into());
                    }
                    cut
                }
                None => value.len(),
            };
            // char(n) is held without its padding (see the module doc).
            let end = if bpchar {
                value[..end].trim_end_matches(' ').len()
            } else {
                end
            };
            Ok((end < value.len()).then_some(end))
        };
        match &args.args[0] {
            ColumnarValue::Scalar(scalar) => {
                let out = match scalar {
                    ScalarValue::Utf8(Some(s)) => {
                        ScalarValue::Utf8(Some(cut_to(s, bound(s)?).to_string()))
                    }
                    ScalarValue::Utf8View(Some(s)) => {
                        ScalarValue::Utf8View(Some(cut_to(s, bound(s)?).to_string()))
                    }
                    ScalarValue::LargeUtf8(Some(s)) => {
                        ScalarValue::LargeUtf8(Some(cut_to(s, bound(s)?).to_string()))
                    }
                    other => other.clone(),
                };
                Ok(ColumnarValue::Scalar(out))
            }
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(bound_array(array, bound)?)),
        }
    }
}

fn cut_to(value: &str, cut: Option<usize>) -> &str {
    match cut {
        Some(at) => &value[..at],
        None => value,
    }
}

/// Applies `bound` to every string of `array`; copies only when some value is cut.
fn bound_array(
    array: &ArrayRef,
    bound: impl Fn(&str) -> DfResult<Option<usize>>,
) -> DfResult<ArrayRef> {
    match array.data_type() {
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            let mut cuts = Vec::new();
            for (i, value) in strings.iter().enumerate() {
                if let Some(cut) = value.map(&bound).transpose()?.flatten() {
                    cuts.push((i, cut));
                }
            }
            if cuts.is_empty() {
                return Ok(array.clone());
            }
            let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
            let mut next = cuts.into_iter().peekable();
            for (i, value) in strings.iter().enumerate() {
                let cut = next.next_if(|(at, _)| *at == i).map(|(_, cut)| cut);
                out.append_option(value.map(|v| cut_to(v, cut)));
            }
            Ok(Arc::new(out.finish()))
        }
        DataType::Utf8View => {
            let strings = array.as_string_view();
            let mut out = StringViewBuilder::with_capacity(strings.len());
            for value in strings.iter() {
                match value {
                    Some(v) => out.append_value(cut_to(v, bound(v)?)),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()))
        }
        DataType::LargeUtf8 => {
            let strings = array.as_string::<i64>();
            let values: Vec<Option<String>> = strings
                .iter()
                .map(|v| {
                    v.map(|v| bound(v).map(|cut| cut_to(v, cut).to_string()))
                        .transpose()
                })
                .collect::<DfResult<_>>()?;
            Ok(Arc::new(datafusion::arrow::array::LargeStringArray::from(
                values,
            )))
        }
        _ => Ok(array.clone()),
    }
}

/// Comparisons of a `char(n)` value with a string literal, a `varchar` or another `char(n)`
/// ignore the other side's trailing spaces, as PostgreSQL compares them as `bpchar`
/// (`c = 'ab   '` finds `ab`). A `text` operand compares as text: the `char(n)` value,
/// held unpadded, is what PostgreSQL's cast to text gives. Runs after type coercion.
#[derive(Debug, Default)]
pub struct BpcharComparisons;

impl AnalyzerRule for BpcharComparisons {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::rewrite::rewrite_plan_expressions(plan, bpchar_comparison)
    }

    fn name(&self) -> &str {
        "floe_bpchar_comparisons"
    }
}

fn sql_type(expr: &Expr, schema: &DFSchema) -> Option<SqlType> {
    expr.to_field(schema)
        .ok()
        .map(|(_, field)| SqlType::from_arrow_field(&field))
}

/// Whether `expr` is a string literal (PostgreSQL's `unknown`; an explicit `::text` is a
/// cast, which compares as text), a `varchar` or a `char(n)` value.
fn compares_as_bpchar(expr: &Expr, schema: &DFSchema) -> bool {
    if let Expr::Literal(value, _) = expr {
        return matches!(
            value,
            ScalarValue::Utf8(Some(_))
                | ScalarValue::Utf8View(Some(_))
                | ScalarValue::LargeUtf8(Some(_))
        );
    }
    matches!(
        sql_type(expr, schema),
        Some(SqlType::Varchar | SqlType::Bpchar)
    )
}

fn without_trailing_spaces(expr: Expr) -> Expr {
    datafusion::functions::string::expr_fn::rtrim(vec![expr, lit(" ")])
}

fn bpchar_comparison(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let is_bpchar = |e: &Expr| sql_type(e, schema) == Some(SqlType::Bpchar);
    Ok(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if crate::datetime_udf::is_comparison(op)
                && (is_bpchar(&left) || is_bpchar(&right)) =>
        {
            let (left, right) = (*left, *right);
            let trim = |e: Expr, other_is_bpchar: bool| {
                if other_is_bpchar && !is_bpchar(&e) && compares_as_bpchar(&e, schema) {
                    (without_trailing_spaces(e), true)
                } else {
                    (e, false)
                }
            };
            let (right, right_changed) = trim(right, is_bpchar(&left));
            let (left, left_changed) = trim(left, is_bpchar(&right));
            Transformed::new_transformed(
                Expr::BinaryExpr(BinaryExpr::new(Box::new(left), op, Box::new(right))),
                left_changed || right_changed,
            )
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if is_bpchar(&expr) && list.iter().any(|e| compares_as_bpchar(e, schema)) => {
            let list = list
                .into_iter()
                .map(|e| {
                    if !is_bpchar(&e) && compares_as_bpchar(&e, schema) {
                        without_trailing_spaces(e)
                    } else {
                        e
                    }
                })
                .collect();
            Transformed::yes(Expr::InList(InList {
                expr,
                list,
                negated,
            }))
        }
        // `c LIKE …`, `octet_length(c)` and `concat(c, …)` see the padded value in PostgreSQL
        // (LIKE and octet_length have bpchar versions; concat uses the output text).
        Expr::Like(mut like) if padded_length(&like.expr, schema).is_some() => {
            like.expr = Box::new(padded(*like.expr, schema));
            Transformed::yes(Expr::Like(like))
        }
        Expr::ScalarFunction(mut call)
            if matches!(call.name(), "octet_length" | "concat" | "concat_ws")
                && call.args.iter().any(|a| padded_length(a, schema).is_some()) =>
        {
            call.args = call.args.into_iter().map(|a| padded(a, schema)).collect();
            Transformed::yes(Expr::ScalarFunction(call))
        }
        other => Transformed::no(other),
    })
}

/// `n` of a `char(n)` value.
fn padded_length(expr: &Expr, schema: &DFSchema) -> Option<usize> {
    let (_, field) = expr.to_field(schema).ok()?;
    crate::types::char_length(&field)
}

/// A `char(n)` value padded with spaces to `n` characters, as PostgreSQL holds it; other
/// values unchanged.
fn padded(expr: Expr, schema: &DFSchema) -> Expr {
    match padded_length(&expr, schema) {
        Some(n) => datafusion::functions::unicode::expr_fn::rpad(vec![expr, lit(n as i64)]),
        None => expr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::datatypes::Field;
    use datafusion::config::ConfigOptions;

    fn run(assignment: bool, values: Vec<Option<&str>>, n: i64) -> DfResult<Vec<Option<String>>> {
        let udf = BoundedText {
            assignment,
            signature: Signature::any(3, Volatility::Immutable),
        };
        let array: ArrayRef = Arc::new(StringArray::from(values));
        let rows = array.len();
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(array),
                ColumnarValue::Scalar(ScalarValue::Int64(Some(n))),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some("character varying".into()))),
            ],
            arg_fields: vec![
                Arc::new(Field::new("v", DataType::Utf8, true)),
                Arc::new(Field::new("n", DataType::Int64, false)),
                Arc::new(Field::new("t", DataType::Utf8, false)),
            ],
            number_rows: rows,
            return_field: Arc::new(Field::new("v", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        let ColumnarValue::Array(out) = udf.invoke_with_args(args)? else {
            panic!("array in, array out");
        };
        Ok(out
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    }

    #[test]
    fn assignment_refuses_long_values_but_trims_spaces() {
        let ok = run(
            true,
            vec![Some("abc"), None, Some("übe"), Some("ab    ")],
            3,
        )
        .unwrap();
        assert_eq!(
            ok,
            vec![
                Some("abc".into()),
                None,
                Some("übe".into()),
                Some("ab ".into())
            ]
        );
        let err = run(true, vec![Some("abcd")], 3).unwrap_err();
        assert!(err
            .to_string()
            .contains("value too long for type character varying(3)"));
        assert!(run(true, vec![Some("über")], 3).is_err());
    }

    #[test]
    fn explicit_cast_cuts_by_characters() {
        let out = run(
            false,
            vec![Some("abcdef"), Some("日本語です"), Some("ab"), None],
            3,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Some("abc".into()),
                Some("日本語".into()),
                Some("ab".into()),
                None
            ]
        );
    }
}

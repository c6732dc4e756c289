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

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder, StringViewBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::error::{sqlstate, SqlError};

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
        Ok(args.arg_fields[0].clone())
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
        let bound = |value: &str| -> DfResult<Option<usize>> {
            // The byte length of the first `limit` characters, if the value is longer.
            let Some((cut, _)) = value.char_indices().nth(limit) else {
                return Ok(None);
            };
            if self.assignment && !value[cut..].chars().all(|c| c == ' ') {
                return Err(SqlError::new(
                    sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                    format!("value too long for type {type_name}({limit})"),
                )
                .into());
            }
            Ok(Some(cut))
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

//! `json_agg`, `jsonb_agg`, `json_object_agg` and `jsonb_object_agg`.
//!
//! Each accumulator keeps the JSON text of its inputs in arrival order (an `ORDER BY` in the
//! call makes DataFusion sort the input first) and builds the value at the end: `NULL` when no
//! row came, PostgreSQL's layout otherwise (`[1, 2]` for `json_agg`, `{ "k" : 1 }` for
//! `json_object_agg`, canonical text for the `jsonb` ones).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use super::value::{quoted, Jsonb};
use super::{convert, invalid, key_text, string_at};
use crate::types::SqlType;

/// The aggregates of this module.
pub(crate) fn udafs() -> Vec<AggregateUDF> {
    [
        ("json_agg", false, false),
        ("jsonb_agg", true, false),
        ("json_object_agg", false, true),
        ("jsonb_object_agg", true, true),
    ]
    .into_iter()
    .map(|(name, binary, object)| {
        AggregateUDF::new_from_impl(JsonAgg {
            name,
            binary,
            object,
            signature: Signature::any(if object { 2 } else { 1 }, Volatility::Immutable),
        })
    })
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAgg {
    name: &'static str,
    /// `jsonb` (else `json`).
    binary: bool,
    /// An object of key/value pairs (else an array).
    object: bool,
    signature: Signature,
}

impl JsonAgg {
    fn result_field(&self) -> Field {
        let sql_type = if self.binary {
            SqlType::Jsonb
        } else {
            SqlType::Json
        };
        let mut field = sql_type.to_arrow_field(self.name);
        field.set_name(self.name);
        field
    }
}

fn text_list(name: &str) -> FieldRef {
    Arc::new(Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        true,
    ))
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _arg_fields: &[FieldRef]) -> DfResult<FieldRef> {
        Ok(Arc::new(self.result_field()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![
            text_list(&format!("{}_keys", args.name)),
            text_list(&format!("{}_values", args.name)),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(JsonAccumulator {
            binary: self.binary,
            object: self.object,
            fields: args.expr_fields.to_vec(),
            keys: Vec::new(),
            values: Vec::new(),
            rows: 0,
        }))
    }
}

#[derive(Debug)]
struct JsonAccumulator {
    binary: bool,
    object: bool,
    /// The argument fields (their tags say whether text is `json`).
    fields: Vec<FieldRef>,
    keys: Vec<String>,
    /// JSON text of each value; `None` for SQL NULL.
    values: Vec<Option<String>>,
    /// Rows seen (a `json_agg` of only NULLs is `[null]`, of no rows NULL).
    rows: usize,
}

impl JsonAccumulator {
    /// `json_agg` puts a line break before each SQL array it aggregates, as PostgreSQL does.
    fn array_input(&self) -> bool {
        !self.object
            && self
                .fields
                .first()
                .is_some_and(|f| matches!(f.data_type(), DataType::List(_)))
    }
}

impl Accumulator for JsonAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let value_index = usize::from(self.object);
        let Some(field) = self.fields.get(value_index).cloned() else {
            return exec_err!("JSON aggregate without its argument field");
        };
        let rows = values.first().map_or(0, |v| v.len());
        for row in 0..rows {
            if self.object {
                let key_field = self.fields[0].clone();
                let Some(key) = key_text(values[0].as_ref(), &key_field, row)? else {
                    return Err(invalid("field name must not be null"));
                };
                self.keys.push(key);
            }
            self.values.push(convert::json_text(
                values[value_index].as_ref(),
                &field,
                row,
            )?);
            self.rows += 1;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.rows == 0 {
            return Ok(ScalarValue::Utf8(None));
        }
        let depth = self
            .values
            .iter()
            .flatten()
            .map(|v| super::value::nesting(v))
            .max()
            .unwrap_or(0);
        let this = &*self;
        super::value::on_deep_stack(depth, || this.result().map(|t| ScalarValue::Utf8(Some(t))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.keys.iter().map(|k| k.capacity()).sum::<usize>()
            + self
                .values
                .iter()
                .map(|v| v.as_ref().map_or(0, |s| s.capacity()) + 24)
                .sum::<usize>()
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        self.state_values()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        self.merge(states)
    }
}

impl JsonAccumulator {
    /// The aggregate's text.
    fn result(&self) -> DfResult<String> {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
        let out = match (self.binary, self.object) {
            (true, false) => {
                let items = self
                    .values
                    .iter()
                    .map(|v| v.as_deref().map_or(Ok(Jsonb::Null), Jsonb::parse))
                    .collect::<Result<Vec<_>, _>>()?;
                Jsonb::Array(items).to_text()
            }
            (true, true) => {
                let mut members = Vec::with_capacity(self.values.len());
                for (key, value) in self.keys.iter().zip(&self.values) {
                    let value = value.as_deref().map_or(Ok(Jsonb::Null), Jsonb::parse)?;
                    members.push((key.clone(), value));
                }
                Jsonb::object(members).to_text()
            }
            (false, false) => {
                let mut out = String::from("[");
                for (i, value) in self.values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    if value.is_some() && self.array_input() {
                        out.push_str("\n ");
                    }
                    out.push_str(&text(value));
                }
                out.push(']');
                out
            }
            (false, true) => {
                let parts: Vec<String> = self
                    .keys
                    .iter()
                    .zip(&self.values)
                    .map(|(k, v)| format!("{} : {}", quoted(k), text(v)))
                    .collect();
                format!("{{ {} }}", parts.join(", "))
            }
        };
        Ok(out)
    }

    fn state_values(&self) -> DfResult<Vec<ScalarValue>> {
        let keys = ScalarValue::new_list_nullable(
            &self
                .keys
                .iter()
                .map(|k| ScalarValue::Utf8(Some(k.clone())))
                .collect::<Vec<_>>(),
            &DataType::Utf8,
        );
        // A value list's own NULL marks "no rows" apart from "rows of NULL".
        let mut builder = ListBuilder::new(StringBuilder::new());
        for v in &self.values {
            builder.values().append_option(v.as_deref());
        }
        builder.append(true);
        let values = ScalarValue::List(Arc::new(builder.finish()));
        Ok(vec![ScalarValue::List(keys), values])
    }

    fn merge(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let (keys, values) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..values.len() {
            if !keys.is_null(row) {
                let k = keys.value(row);
                for i in 0..k.len() {
                    self.keys
                        .push(string_at(k.as_ref(), i)?.unwrap_or_default().to_string());
                }
            }
            if !values.is_null(row) {
                let v = values.value(row);
                for i in 0..v.len() {
                    self.values
                        .push(string_at(v.as_ref(), i)?.map(str::to_string));
                    self.rows += 1;
                }
            }
        }
        Ok(())
    }
}

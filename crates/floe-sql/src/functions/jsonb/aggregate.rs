//! `json_agg`, `jsonb_agg`, `json_object_agg` and `jsonb_object_agg`.
//!
//! Each accumulator keeps the JSON text of its inputs in arrival order (an `ORDER BY` in the
//! call makes DataFusion sort the input first) and builds the value at the end: `NULL` when no
//! row came, PostgreSQL's layout otherwise (`[1, 2]` for `json_agg`, `{ "k" : 1 }` for
//! `json_object_agg`, canonical text for the `jsonb` ones).

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListBuilder, StringBuilder};
use datafusion::arrow::compute::SortOptions;
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

/// The zone aggregates print `timestamptz` values in: UTC (an accumulator does not see the
/// session's TimeZone).
fn utc() -> crate::datetime::Zone {
    crate::datetime::Zone::from_setting(None)
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
        let mut fields = vec![
            text_list(&format!("{}_keys", args.name)),
            text_list(&format!("{}_values", args.name)),
        ];
        for (i, order) in args.ordering_fields.iter().enumerate() {
            let item = Field::new("item", order.data_type().clone(), true);
            fields.push(Arc::new(Field::new(
                format!("{}_order{i}", args.name),
                DataType::List(Arc::new(item)),
                true,
            )));
        }
        Ok(fields)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let order_types = args
            .order_bys
            .iter()
            .map(|o| o.expr.data_type(args.schema))
            .collect::<DfResult<_>>()?;
        Ok(Box::new(JsonAccumulator {
            binary: self.binary,
            object: self.object,
            fields: args.expr_fields.to_vec(),
            order_options: args.order_bys.iter().map(|o| o.options).collect(),
            order_types,
            keys: Vec::new(),
            values: Vec::new(),
            orders: Vec::new(),
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
    /// How the call's `ORDER BY` keys sort (DataFusion sorts the input by at most one
    /// aggregate's keys, so each accumulator orders its own rows).
    order_options: Vec<SortOptions>,
    order_types: Vec<DataType>,
    /// The `ORDER BY` keys of each value.
    orders: Vec<Vec<ScalarValue>>,
    /// Rows seen (a `json_agg` of only NULLs is `[null]`, of no rows NULL).
    rows: usize,
}

impl JsonAccumulator {
    /// The positions of the values in `ORDER BY` order (arrival order for equal keys).
    fn order(&self) -> Vec<usize> {
        let mut positions: Vec<usize> = (0..self.values.len()).collect();
        if self.order_options.is_empty() || self.orders.len() != self.values.len() {
            return positions;
        }
        positions.sort_by(|&a, &b| {
            for ((x, y), options) in self.orders[a]
                .iter()
                .zip(&self.orders[b])
                .zip(&self.order_options)
            {
                let ordering = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) if options.nulls_first => Ordering::Less,
                    (true, false) => Ordering::Greater,
                    (false, true) if options.nulls_first => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => {
                        let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
                        if options.descending {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            Ordering::Equal
        });
        positions
    }

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
                let Some(key) = key_text(values[0].as_ref(), &key_field, row, utc())? else {
                    return Err(invalid("field name must not be null"));
                };
                self.keys.push(key);
            }
            let keys = values[value_index + 1..]
                .iter()
                .map(|a| ScalarValue::try_from_array(a.as_ref(), row))
                .collect::<DfResult<Vec<_>>>()?;
            self.orders.push(keys);
            self.values.push(convert::json_text(
                values[value_index].as_ref(),
                &field,
                row,
                utc(),
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
        let order = self.order();
        let values: Vec<&Option<String>> = order.iter().map(|&i| &self.values[i]).collect();
        let keys: Vec<&String> = order.iter().filter_map(|&i| self.keys.get(i)).collect();
        let out = match (self.binary, self.object) {
            (true, false) => {
                let items = values
                    .iter()
                    .map(|v| v.as_deref().map_or(Ok(Jsonb::Null), Jsonb::parse))
                    .collect::<Result<Vec<_>, _>>()?;
                Jsonb::Array(items).to_text()
            }
            (true, true) => {
                let mut members = Vec::with_capacity(values.len());
                for (key, value) in keys.iter().zip(&values) {
                    let value = value.as_deref().map_or(Ok(Jsonb::Null), Jsonb::parse)?;
                    members.push((key.to_string(), value));
                }
                Jsonb::object(members).to_text()
            }
            (false, false) => {
                let mut out = String::from("[");
                for (i, value) in values.iter().enumerate() {
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
                let parts: Vec<String> = keys
                    .iter()
                    .zip(&values)
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
        let mut state = vec![ScalarValue::List(keys), values];
        for (i, data_type) in self.order_types.iter().enumerate() {
            let column: Vec<ScalarValue> = self
                .orders
                .iter()
                .map(|keys| keys.get(i).cloned())
                .collect::<Option<_>>()
                .unwrap_or_default();
            state.push(ScalarValue::List(ScalarValue::new_list_nullable(
                &column, data_type,
            )));
        }
        Ok(state)
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
                let orders: Vec<ArrayRef> = states[2..]
                    .iter()
                    .map(|s| s.as_list::<i32>().value(row))
                    .collect();
                for i in 0..v.len() {
                    self.values
                        .push(string_at(v.as_ref(), i)?.map(str::to_string));
                    let keys = orders
                        .iter()
                        .map(|o| ScalarValue::try_from_array(o.as_ref(), i))
                        .collect::<DfResult<Vec<_>>>()?;
                    self.orders.push(keys);
                    self.rows += 1;
                }
            }
        }
        Ok(())
    }
}

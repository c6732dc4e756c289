//! PostgreSQL's `json` and `jsonb` functions and operators.
//!
//! Values of both types are Arrow strings tagged with their type ([`crate::types`]): a `json`
//! value holds its text as written, a `jsonb` value its canonical text ([`value::Jsonb`]). The
//! functions here read that text, compute, and return text tagged again, so clients see `json`
//! (OID 114) or `jsonb` (3802) results. Each function is one [`JsonFunction`]; the work of a
//! row is [`JsonFunction::row`].
//!
//! - Operators (`->`, `->>`, `#>`, `#>>`, `?`, `?|`, `?&`, `@>`, `<@`, `||`, `-`, `#-`, and
//!   comparisons of `jsonb` values) are planned as calls of `floe_json_*` functions by
//!   [`operators::JsonOperators`], which sees the operands' types.
//! - Set-returning functions (`jsonb_array_elements`, `jsonb_each`, `jsonb_object_keys`, …)
//!   return a list that the select list unnests ([`SET_RETURNING`], `crate::rewrite`); in
//!   FROM they become `unnest(…)` of such lists ([`operators::table_function`]), so their
//!   arguments must not refer to other tables of the FROM clause (no LATERAL yet).
//! - Aggregates (`json_agg`, `jsonb_agg`, `json_object_agg`, `jsonb_object_agg`) are in
//!   [`aggregate`].
//!
//! - `ORDER BY` a `jsonb` sorts in `jsonb`'s order and casts of `jsonb` to numbers and
//!   booleans follow PostgreSQL's rules ([`operators::JsonbOrder`], [`operators::JsonbCasts`]).
//!
//! Errors are PostgreSQL's (22023 "cannot extract elements from an object", 22P02 for bad
//! JSON text, …), raised as [`SqlError`]s so they reach the client with their SQLSTATE.
//!
//! Not yet: `jsonb_each` and `json_each` in a select list (PostgreSQL returns a record),
//! `WITH ORDINALITY`, set-returning functions over other FROM items (LATERAL), GROUP BY and
//! DISTINCT by `jsonb` value (they group by text, so `1` and `1.0` stay apart), `to_json` of a
//! row, the `jsonpath` functions, `jsonb_to_record` and friends. Aggregates print
//! `timestamptz` values in UTC (an accumulator does not see the session's TimeZone).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::datetime::Zone;
use crate::error::{sqlstate, SqlError};
use crate::types::SqlType;
use value::{Jsonb, Raw};

pub(crate) mod aggregate;
mod convert;
pub(crate) mod operators;
mod value;

/// Set-returning functions of this module: in a select list their lists are unnested.
pub(crate) const SET_RETURNING: [&str; 6] = [
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "json_array_elements",
    "json_array_elements_text",
    "jsonb_object_keys",
    "json_object_keys",
];

/// The function that tags `json` text as `json` again.
const JSON_TAG: &str = "floe_json_tag";
/// The function that tags `jsonb` text as `jsonb` again.
const JSONB_TAG: &str = "floe_jsonb_tag";

/// The function that gives the elements of a set-returning function's list their type back
/// after `unnest` (which drops the element type's tag): `None` when they are text.
pub(crate) fn element_tag(function: &str) -> Option<&'static str> {
    match function {
        "jsonb_array_elements" | "jsonb_each" => Some(JSONB_TAG),
        "json_array_elements" | "json_each" => Some(JSON_TAG),
        _ => None,
    }
}

/// A `json` (`binary` false) or `jsonb` literal's value: the text as written once checked, or
/// `jsonb`'s canonical text (22P02 for text that is not JSON).
pub(crate) fn read_literal(text: &str, binary: bool) -> Result<String, SqlError> {
    value::on_deep_stack(value::nesting(text), || {
        let raw = value::parse(text)?;
        Ok(if binary {
            raw.to_jsonb()?.to_text()
        } else {
            text.to_string()
        })
    })
}

/// What a function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `->`: a member by key or an element by index.
    Field,
    /// `->>`.
    FieldText,
    /// `#>`: the value at a path.
    Path,
    /// `#>>`.
    PathText,
    /// `?`.
    Exists,
    /// `?|`.
    ExistsAny,
    /// `?&`.
    ExistsAll,
    /// `@>`.
    Contains,
    /// `<@`.
    ContainedBy,
    /// `||`.
    Concat,
    /// `-` of a key, an index or keys.
    Delete,
    /// `#-`.
    DeletePath,
    /// `jsonb_cmp`: -1, 0 or 1 (comparison operators compare it with 0).
    Compare,
    ToJson,
    BuildObject,
    BuildArray,
    ArrayElements,
    ArrayElementsText,
    /// The keys of `jsonb_each` in FROM.
    EachKeys,
    /// The values of `jsonb_each` in FROM.
    EachValues,
    EachValuesText,
    ObjectKeys,
    TypeOf,
    ArrayLength,
    StripNulls,
    Set,
    Insert,
    Pretty,
    ExtractPath,
    ExtractPathText,
    /// Text read as `json`/`jsonb` (casts of anything but a literal).
    Input,
    /// JSON text as it is, tagged with its type again (after `unnest` dropped the tag).
    Tag,
    /// The bytes `ORDER BY` sorts a `jsonb` value by ([`Jsonb::sort_key`]).
    SortKey,
    /// The text of a JSON number or boolean a cast to a SQL type reads
    /// ([`operators::JsonbCasts`]).
    ScalarText,
}

/// Which of the two JSON types a function reads and returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flavour {
    Json,
    Jsonb,
    /// The type of the first operand (operators that both types have).
    OfOperand,
}

/// One function of this module.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct JsonFunction {
    /// The name it is called by.
    name: String,
    /// The name errors speak of (`jsonb_each` for the key list of `jsonb_each` in FROM).
    display: &'static str,
    op: Op,
    flavour: Flavour,
    signature: Signature,
}

/// The name of the operator function for `op` (see [`operators`]).
fn operator_name(op: Op) -> &'static str {
    match op {
        Op::Field => "floe_json_field",
        Op::FieldText => "floe_json_field_text",
        Op::Path => "floe_json_path",
        Op::PathText => "floe_json_path_text",
        Op::Exists => "floe_jsonb_exists",
        Op::ExistsAny => "floe_jsonb_exists_any",
        Op::ExistsAll => "floe_jsonb_exists_all",
        Op::Contains => "floe_jsonb_contains",
        Op::ContainedBy => "floe_jsonb_contained",
        Op::Concat => "floe_jsonb_concat",
        Op::Delete => "floe_jsonb_delete",
        Op::DeletePath => "floe_jsonb_delete_path",
        Op::Compare => "floe_jsonb_cmp",
        Op::SortKey => "floe_jsonb_sort_key",
        Op::ScalarText => "floe_jsonb_scalar_text",
        _ => "floe_json_unknown",
    }
}

/// The functions of this module.
pub(crate) fn udfs() -> Vec<ScalarUDF> {
    let function = |name: &str, display: &'static str, op: Op, flavour: Flavour| {
        ScalarUDF::new_from_impl(JsonFunction {
            name: name.to_string(),
            display,
            op,
            flavour,
            signature: Signature::user_defined(Volatility::Immutable),
        })
    };
    let mut out = Vec::new();
    for op in [
        Op::Field,
        Op::FieldText,
        Op::Path,
        Op::PathText,
        Op::Exists,
        Op::ExistsAny,
        Op::ExistsAll,
        Op::Contains,
        Op::ContainedBy,
        Op::Concat,
        Op::Delete,
        Op::DeletePath,
        Op::Compare,
        Op::SortKey,
        Op::ScalarText,
    ] {
        let name = operator_name(op);
        out.push(function(name, name, op, Flavour::OfOperand));
    }
    out.push(function(
        "floe_json_in",
        "json_in",
        Op::Input,
        Flavour::Json,
    ));
    out.push(function(
        "floe_jsonb_in",
        "jsonb_in",
        Op::Input,
        Flavour::Jsonb,
    ));
    out.push(function(JSON_TAG, JSON_TAG, Op::Tag, Flavour::Json));
    out.push(function(JSONB_TAG, JSONB_TAG, Op::Tag, Flavour::Jsonb));
    let named: [(&'static str, Op); 14] = [
        ("to_%", Op::ToJson),
        ("%_build_object", Op::BuildObject),
        ("%_build_array", Op::BuildArray),
        ("%_array_elements", Op::ArrayElements),
        ("%_array_elements_text", Op::ArrayElementsText),
        ("%_object_keys", Op::ObjectKeys),
        ("%_typeof", Op::TypeOf),
        ("%_array_length", Op::ArrayLength),
        ("%_strip_nulls", Op::StripNulls),
        ("%_extract_path", Op::ExtractPath),
        ("%_extract_path_text", Op::ExtractPathText),
        ("%_set", Op::Set),
        ("%_insert", Op::Insert),
        ("%_pretty", Op::Pretty),
    ];
    for (pattern, op) in named {
        for (flavour, kind) in [(Flavour::Json, "json"), (Flavour::Jsonb, "jsonb")] {
            if flavour == Flavour::Json && matches!(op, Op::Set | Op::Insert | Op::Pretty) {
                continue;
            }
            let name: &'static str = Box::leak(pattern.replace('%', kind).into_boxed_str());
            out.push(function(name, name, op, flavour));
        }
    }
    // `jsonb_each` in FROM: `unnest(keys, values)` (see `operators::table_function`).
    for (flavour, kind) in [(Flavour::Json, "json"), (Flavour::Jsonb, "jsonb")] {
        for (suffix, values) in [("each", Op::EachValues), ("each_text", Op::EachValuesText)] {
            let display: &'static str = Box::leak(format!("{kind}_{suffix}").into_boxed_str());
            out.push(function(
                &format!("floe_{display}_keys"),
                display,
                Op::EachKeys,
                flavour,
            ));
            out.push(function(
                &format!("floe_{display}_values"),
                display,
                values,
                flavour,
            ));
        }
    }
    out
}

/// A row's result.
enum Out {
    Null,
    Text(String),
    Bool(bool),
    Int(i32),
    Bytes(Vec<u8>),
    List(Vec<Option<String>>),
}

/// The result's Arrow shape.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Json,
    Jsonb,
    Text,
    Bool,
    Int,
    Bytes,
    ListOf(Element),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Element {
    Json,
    Jsonb,
    Text,
}

fn tagged(name: &str, sql_type: SqlType) -> Field {
    let mut field = sql_type.to_arrow_field(name);
    field.set_name(name);
    field
}

impl Shape {
    fn field(self, name: &str) -> Field {
        let element = |e: Element| match e {
            Element::Json => tagged("item", SqlType::Json),
            Element::Jsonb => tagged("item", SqlType::Jsonb),
            Element::Text => Field::new("item", DataType::Utf8, true),
        };
        match self {
            Shape::Json => tagged(name, SqlType::Json),
            Shape::Jsonb => tagged(name, SqlType::Jsonb),
            Shape::Text => Field::new(name, DataType::Utf8, true),
            Shape::Bool => Field::new(name, DataType::Boolean, true),
            Shape::Int => Field::new(name, DataType::Int32, true),
            Shape::Bytes => Field::new(name, DataType::Binary, true),
            Shape::ListOf(e) => Field::new(name, DataType::List(Arc::new(element(e))), true),
        }
    }
}

/// Whether a field holds `json` (as opposed to `jsonb` or text read as `jsonb`).
fn is_json_field(field: &Field) -> bool {
    SqlType::from_arrow_field(field) == SqlType::Json
}

impl JsonFunction {
    /// Whether this call reads and returns `json` (else `jsonb`).
    fn is_json(&self, fields: &[FieldRef]) -> bool {
        match self.flavour {
            Flavour::Json => true,
            Flavour::Jsonb => false,
            Flavour::OfOperand => fields.first().is_some_and(|f| is_json_field(f)),
        }
    }

    fn shape(&self, json: bool) -> Shape {
        let same = if json { Shape::Json } else { Shape::Jsonb };
        let same_element = if json { Element::Json } else { Element::Jsonb };
        match self.op {
            Op::Field | Op::Path | Op::ExtractPath | Op::StripNulls | Op::ToJson => same,
            Op::BuildObject | Op::BuildArray | Op::Input | Op::Tag => same,
            Op::FieldText | Op::PathText | Op::ExtractPathText | Op::TypeOf | Op::Pretty => {
                Shape::Text
            }
            Op::Exists | Op::ExistsAny | Op::ExistsAll | Op::Contains | Op::ContainedBy => {
                Shape::Bool
            }
            Op::Concat | Op::Delete | Op::DeletePath | Op::Set | Op::Insert => Shape::Jsonb,
            Op::Compare | Op::ArrayLength => Shape::Int,
            Op::SortKey => Shape::Bytes,
            Op::ScalarText => Shape::Text,
            Op::ArrayElements | Op::EachValues => Shape::ListOf(same_element),
            Op::ArrayElementsText | Op::EachKeys | Op::EachValuesText | Op::ObjectKeys => {
                Shape::ListOf(Element::Text)
            }
        }
    }

    /// The argument counts the function takes.
    fn arity_ok(&self, n: usize) -> bool {
        match self.op {
            Op::Field
            | Op::FieldText
            | Op::Path
            | Op::PathText
            | Op::Exists
            | Op::ExistsAny
            | Op::ExistsAll
            | Op::Contains
            | Op::ContainedBy
            | Op::Concat
            | Op::Delete
            | Op::DeletePath
            | Op::Compare => n == 2,
            Op::SortKey => n == 1,
            Op::ScalarText => n == 2,
            Op::BuildObject | Op::BuildArray => true,
            Op::ExtractPath | Op::ExtractPathText => n >= 1,
            Op::Set => n == 3 || n == 4,
            Op::Insert => n == 3 || n == 4,
            _ => n == 1,
        }
    }
}

impl ScalarUDFImpl for JsonFunction {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if !self.arity_ok(arg_types.len()) {
            let types: Vec<String> = arg_types
                .iter()
                .map(|t| SqlType::from_arrow(t).name())
                .collect();
            return Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "function {}({}) does not exist",
                    self.display,
                    types.join(", ")
                ),
            )
            .into());
        }
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self
            .shape(self.flavour == Flavour::Json)
            .field("")
            .data_type()
            .clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let json = self.is_json(args.arg_fields);
        Ok(Arc::new(self.shape(json).field(self.display)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let json = self.is_json(&args.arg_fields);
        let shape = self.shape(json);
        // A list is returned as a column even for constant arguments: DataFusion's one-value
        // form of a list drops its element field's type tag.
        let list = matches!(shape, Shape::ListOf(_));
        let rows = if list {
            args.number_rows
        } else {
            super::rows_of(&args)
        };
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let depth = arrays
            .iter()
            .map(|a| deepest(a.as_ref()))
            .max()
            .unwrap_or(0);
        let fields = &args.arg_fields;
        let zone = crate::datetime_udf::session_zone(&args.config_options);
        let results = value::on_deep_stack(depth, || {
            (0..rows)
                .map(|row| self.row(&arrays, fields, row, json, zone))
                .collect::<DfResult<Vec<Out>>>()
        })?;
        let array = build(shape, results)?;
        if list {
            return Ok(ColumnarValue::Array(array));
        }
        super::finish(&args.args, array)
    }
}

/// The Arrow array of `results`.
fn build(shape: Shape, results: Vec<Out>) -> DfResult<ArrayRef> {
    Ok(match shape {
        Shape::Json | Shape::Jsonb | Shape::Text => {
            let mut b = StringBuilder::new();
            for r in results {
                match r {
                    Out::Text(t) => b.append_value(t),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Shape::Bool => {
            let mut b = BooleanBuilder::new();
            for r in results {
                match r {
                    Out::Bool(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Shape::Int => {
            let mut b = Int32Builder::new();
            for r in results {
                match r {
                    Out::Int(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Shape::Bytes => {
            let mut b = datafusion::arrow::array::BinaryBuilder::new();
            for r in results {
                match r {
                    Out::Bytes(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Shape::ListOf(_) => {
            let DataType::List(item) = shape.field("").data_type().clone() else {
                return exec_err!("list shape without a list type");
            };
            let mut b = ListBuilder::new(StringBuilder::new()).with_field(item);
            for r in results {
                match r {
                    Out::List(items) => {
                        for item in items {
                            b.values().append_option(item);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// The string at `row` of a string column (`None` for NULL).
pub(crate) fn string_at(array: &dyn Array, row: usize) -> DfResult<Option<&str>> {
    if array.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row),
        DataType::Utf8View => array.as_string_view().value(row),
        DataType::Null => return Ok(None),
        DataType::Dictionary(..) => {
            return exec_err!("dictionary-encoded JSON operand");
        }
        other => {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!(
                    "operator does not exist: jsonb and {}",
                    SqlType::from_arrow(other).name()
                ),
            )
            .into())
        }
    }))
}

/// How deep the JSON texts of a string column nest (0 for other columns).
fn deepest(array: &dyn Array) -> usize {
    (0..array.len())
        .filter_map(|row| string_at(array, row).ok().flatten())
        .map(value::nesting)
        .max()
        .unwrap_or(0)
}

/// An integer operand at `row`.
fn int_at(array: &dyn Array, row: usize) -> Option<i64> {
    use datafusion::arrow::datatypes::{Int16Type, Int32Type, Int64Type, Int8Type};
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Int8 => Some(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => Some(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => Some(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => Some(array.as_primitive::<Int64Type>().value(row)),
        _ => None,
    }
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// A `text[]` operand at `row`: a list of strings, or an array literal's text.
fn text_array_at(array: &dyn Array, row: usize) -> DfResult<Option<Vec<Option<String>>>> {
    if array.is_null(row) {
        return Ok(None);
    }
    match array.data_type() {
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            let mut out = Vec::with_capacity(values.len());
            for i in 0..values.len() {
                out.push(string_at(values.as_ref(), i)?.map(str::to_string));
            }
            Ok(Some(out))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = string_at(array, row)?.unwrap_or_default();
            crate::literals::parse_array(text).map(Some).ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                    format!("malformed array literal: \"{text}\""),
                )
                .into()
            })
        }
        DataType::Null => Ok(None),
        other => exec_err!("expected text[], got {other}"),
    }
}

/// A JSON operand parsed the way its type reads it.
enum Doc<'a> {
    Json(Raw<'a>),
    Jsonb(Jsonb),
}

impl<'a> Doc<'a> {
    fn node(&self) -> Node<'_, 'a> {
        match self {
            Doc::Json(raw) => Node::Json(raw),
            Doc::Jsonb(value) => Node::Jsonb(value),
        }
    }
}

/// The JSON operand at `row` (`json` when `json`, else `jsonb`).
fn doc_at(array: &dyn Array, row: usize, json: bool) -> DfResult<Option<Doc<'_>>> {
    let Some(text) = string_at(array, row)? else {
        return Ok(None);
    };
    let raw = value::parse(text)?;
    Ok(Some(if json {
        Doc::Json(raw)
    } else {
        Doc::Jsonb(raw.to_jsonb()?)
    }))
}

/// The `jsonb` operand at `row`.
fn jsonb_at(array: &dyn Array, row: usize) -> DfResult<Option<Jsonb>> {
    match string_at(array, row)? {
        Some(text) => Ok(Some(Jsonb::parse(text)?)),
        None => Ok(None),
    }
}

/// A value inside a `json` or `jsonb` operand.
#[derive(Clone, Copy)]
enum Node<'v, 'a> {
    Json(&'v Raw<'a>),
    Jsonb(&'v Jsonb),
}

impl<'v, 'a> Node<'v, 'a> {
    fn key(self, key: &str) -> Option<Node<'v, 'a>> {
        match self {
            // Of repeated keys in `json`, the last counts.
            Node::Json(Raw::Object(members, _)) => members
                .iter()
                .rev()
                .find(|(k, _)| k.as_deref() == Some(key))
                .map(|(_, v)| Node::Json(v)),
            Node::Jsonb(Jsonb::Object(members)) => members
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| Node::Jsonb(v)),
            _ => None,
        }
    }

    fn index(self, index: i64) -> Option<Node<'v, 'a>> {
        let pick = |len: usize| {
            let i = if index < 0 { len as i64 + index } else { index };
            (0..len as i64).contains(&i).then_some(i as usize)
        };
        match self {
            Node::Json(Raw::Array(items, _)) => pick(items.len()).map(|i| Node::Json(&items[i])),
            Node::Jsonb(Jsonb::Array(items)) => pick(items.len()).map(|i| Node::Jsonb(&items[i])),
            _ => None,
        }
    }

    /// One step of a path: a key of an object, an integer index of an array.
    fn step(self, step: &str) -> Option<Node<'v, 'a>> {
        match self {
            Node::Json(Raw::Object(..)) | Node::Jsonb(Jsonb::Object(_)) => self.key(step),
            Node::Json(Raw::Array(..)) | Node::Jsonb(Jsonb::Array(_)) => {
                step.trim().parse::<i64>().ok().and_then(|i| self.index(i))
            }
            _ => None,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Node::Json(raw) => match raw {
                Raw::Null => "null",
                Raw::Bool(_) => "boolean",
                Raw::Number(_) => "number",
                Raw::String(..) => "string",
                Raw::Array(..) => "array",
                Raw::Object(..) => "object",
            },
            Node::Jsonb(v) => v.type_name(),
        }
    }

    fn elements(self) -> Option<Vec<Node<'v, 'a>>> {
        match self {
            Node::Json(Raw::Array(items, _)) => Some(items.iter().map(Node::Json).collect()),
            Node::Jsonb(Jsonb::Array(items)) => Some(items.iter().map(Node::Jsonb).collect()),
            _ => None,
        }
    }

    fn members(self) -> DfResult<Option<Vec<(String, Node<'v, 'a>)>>> {
        Ok(match self {
            Node::Json(Raw::Object(members, _)) => Some(
                members
                    .iter()
                    .map(|(k, v)| Ok((k.clone().ok_or_else(nul_text)?, Node::Json(v))))
                    .collect::<Result<_, SqlError>>()?,
            ),
            Node::Jsonb(Jsonb::Object(members)) => Some(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), Node::Jsonb(v)))
                    .collect(),
            ),
            _ => None,
        })
    }

    /// The value's text (`json`: as written; `jsonb`: canonical).
    fn text(self) -> String {
        match self {
            Node::Json(raw) => raw.text().to_string(),
            Node::Jsonb(v) => v.to_text(),
        }
    }

    /// The value as text operators return it: strings unquoted, `null` as SQL NULL.
    fn unquoted(self) -> DfResult<Option<String>> {
        Ok(match self {
            Node::Json(Raw::Null) | Node::Jsonb(Jsonb::Null) => None,
            Node::Json(Raw::String(s, _)) => Some(s.clone().ok_or_else(nul_text)?),
            Node::Jsonb(Jsonb::String(s)) => Some(s.clone()),
            other => Some(other.text()),
        })
    }

    fn is_kind(self, kind: &str) -> bool {
        self.type_name() == kind
    }
}

fn nul_text() -> SqlError {
    SqlError::new(
        sqlstate::UNTRANSLATABLE_CHARACTER,
        "unsupported Unicode escape sequence",
    )
    .with_detail("\\u0000 cannot be converted to text.")
}

fn invalid(message: impl Into<String>) -> datafusion::error::DataFusionError {
    SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, message).into()
}

/// A path's steps; an error for NULL steps when `null_is_error`, else `None`.
fn path_steps(path: Vec<Option<String>>, null_is_error: bool) -> DfResult<Option<Vec<String>>> {
    let mut steps = Vec::with_capacity(path.len());
    for (i, step) in path.into_iter().enumerate() {
        match step {
            Some(s) => steps.push(s),
            None if null_is_error => {
                return Err(SqlError::new(
                    "22004",
                    format!("path element at position {} is null", i + 1),
                )
                .into())
            }
            None => return Ok(None),
        }
    }
    Ok(Some(steps))
}

/// Follows `steps` from `node`.
fn follow<'v, 'a>(node: Node<'v, 'a>, steps: &[String]) -> Option<Node<'v, 'a>> {
    steps.iter().try_fold(node, |n, s| n.step(s))
}

fn text_out(text: Option<String>) -> Out {
    text.map_or(Out::Null, Out::Text)
}

impl JsonFunction {
    /// The result of row `row`.
    fn row(
        &self,
        arrays: &[ArrayRef],
        fields: &[FieldRef],
        row: usize,
        json: bool,
        zone: Zone,
    ) -> DfResult<Out> {
        let arg = |i: usize| arrays[i].as_ref();
        match self.op {
            Op::ToJson => {
                let Some(text) = convert::json_text(arg(0), &fields[0], row, zone)? else {
                    return Ok(Out::Null);
                };
                if json {
                    return Ok(Out::Text(text));
                }
                Ok(Out::Text(Jsonb::parse(&text)?.to_text()))
            }
            Op::Tag => Ok(text_out(string_at(arg(0), row)?.map(str::to_string))),
            Op::ScalarText => {
                let (Some(value), Some(target)) = (jsonb_at(arg(0), row)?, string_at(arg(1), row)?)
                else {
                    return Ok(Out::Null);
                };
                scalar_text(&value, target).map(Out::Text)
            }
            Op::SortKey => Ok(match jsonb_at(arg(0), row)? {
                Some(value) => Out::Bytes(value.sort_key()),
                None => Out::Null,
            }),
            Op::Input => {
                let Some(text) = string_at(arg(0), row)? else {
                    return Ok(Out::Null);
                };
                let raw = value::parse(text)?;
                Ok(Out::Text(if json {
                    text.to_string()
                } else {
                    raw.to_jsonb()?.to_text()
                }))
            }
            Op::BuildObject => self.build_object(arrays, fields, row, json, zone),
            Op::BuildArray => {
                let mut items = Vec::with_capacity(arrays.len());
                for (array, field) in arrays.iter().zip(fields) {
                    items.push(convert::json_text(array.as_ref(), field, row, zone)?);
                }
                if json {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|i| i.unwrap_or_else(|| "null".into()))
                        .collect();
                    return Ok(Out::Text(format!("[{}]", items.join(", "))));
                }
                let values = items
                    .into_iter()
                    .map(|i| i.map_or(Ok(Jsonb::Null), |t| Jsonb::parse(&t)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Out::Text(Jsonb::Array(values).to_text()))
            }
            Op::Compare => {
                let (Some(a), Some(b)) = (jsonb_at(arg(0), row)?, jsonb_at(arg(1), row)?) else {
                    return Ok(Out::Null);
                };
                Ok(Out::Int(a.compare(&b) as i32))
            }
            Op::Contains | Op::ContainedBy => {
                let (Some(a), Some(b)) = (jsonb_at(arg(0), row)?, jsonb_at(arg(1), row)?) else {
                    return Ok(Out::Null);
                };
                Ok(Out::Bool(if self.op == Op::Contains {
                    a.contains(&b)
                } else {
                    b.contains(&a)
                }))
            }
            Op::Exists | Op::ExistsAny | Op::ExistsAll => {
                let Some(value) = jsonb_at(arg(0), row)? else {
                    return Ok(Out::Null);
                };
                let keys = if self.op == Op::Exists {
                    match string_at(arg(1), row)? {
                        Some(k) => vec![Some(k.to_string())],
                        None => return Ok(Out::Null),
                    }
                } else {
                    match text_array_at(arg(1), row)? {
                        Some(keys) => keys,
                        None => return Ok(Out::Null),
                    }
                };
                let has = |key: &str| match &value {
                    Jsonb::Object(members) => members.iter().any(|(k, _)| k == key),
                    Jsonb::Array(items) => items
                        .iter()
                        .any(|i| matches!(i, Jsonb::String(s) if s == key)),
                    Jsonb::String(s) => s == key,
                    _ => false,
                };
                let keys = keys.iter().flatten();
                Ok(Out::Bool(match self.op {
                    Op::ExistsAll => keys.into_iter().all(|k| has(k)),
                    _ => keys.into_iter().any(|k| has(k)),
                }))
            }
            Op::Concat => {
                let (Some(a), Some(b)) = (jsonb_at(arg(0), row)?, jsonb_at(arg(1), row)?) else {
                    return Ok(Out::Null);
                };
                Ok(Out::Text(edit::concat(a, b).to_text()))
            }
            Op::Delete => {
                let Some(value) = jsonb_at(arg(0), row)? else {
                    return Ok(Out::Null);
                };
                let result = if is_integer(arg(1).data_type()) {
                    let Some(index) = int_at(arg(1), row) else {
                        return Ok(Out::Null);
                    };
                    edit::delete_index(value, index)?
                } else if matches!(arg(1).data_type(), DataType::List(_)) {
                    let Some(keys) = text_array_at(arg(1), row)? else {
                        return Ok(Out::Null);
                    };
                    edit::delete_keys(value, &keys.into_iter().flatten().collect::<Vec<_>>())?
                } else {
                    let Some(key) = string_at(arg(1), row)? else {
                        return Ok(Out::Null);
                    };
                    edit::delete_keys(value, &[key.to_string()])?
                };
                Ok(Out::Text(result.to_text()))
            }
            Op::DeletePath => {
                let (Some(value), Some(path)) =
                    (jsonb_at(arg(0), row)?, text_array_at(arg(1), row)?)
                else {
                    return Ok(Out::Null);
                };
                let steps = path_steps(path, true)?.unwrap_or_default();
                Ok(Out::Text(edit::delete_path(value, &steps)?.to_text()))
            }
            Op::Set | Op::Insert => {
                let flag = match arrays.get(3) {
                    Some(a) if a.is_null(row) || a.data_type() == &DataType::Null => {
                        return Ok(Out::Null)
                    }
                    Some(a) => match a.data_type() {
                        DataType::Boolean => a.as_boolean().value(row),
                        _ => return exec_err!("{} expects a boolean", self.display),
                    },
                    None => self.op == Op::Set,
                };
                let (Some(target), Some(path), Some(new)) = (
                    jsonb_at(arg(0), row)?,
                    text_array_at(arg(1), row)?,
                    jsonb_at(arg(2), row)?,
                ) else {
                    return Ok(Out::Null);
                };
                let steps = path_steps(path, true)?.unwrap_or_default();
                let result = if self.op == Op::Set {
                    edit::set(target, &steps, new, flag)?
                } else {
                    edit::insert(target, &steps, new, flag)?
                };
                Ok(Out::Text(result.to_text()))
            }
            Op::Pretty => Ok(text_out(jsonb_at(arg(0), row)?.map(|v| v.pretty()))),
            Op::StripNulls => {
                let Some(doc) = doc_at(arg(0), row, json)? else {
                    return Ok(Out::Null);
                };
                Ok(Out::Text(match doc {
                    Doc::Json(raw) => edit::strip_json_nulls(&raw),
                    Doc::Jsonb(v) => edit::strip_nulls(v).to_text(),
                }))
            }
            _ => self.navigate(arrays, row, json),
        }
    }

    /// The functions that read a value without changing it.
    fn navigate(&self, arrays: &[ArrayRef], row: usize, json: bool) -> DfResult<Out> {
        let arg = |i: usize| arrays[i].as_ref();
        let Some(doc) = doc_at(arg(0), row, json)? else {
            return Ok(Out::Null);
        };
        let node = doc.node();
        let as_text = matches!(self.op, Op::FieldText | Op::PathText | Op::ExtractPathText);
        let found = match self.op {
            Op::Field | Op::FieldText => {
                if is_integer(arg(1).data_type()) {
                    match (int_at(arg(1), row), node) {
                        // A `jsonb` scalar is a one-element array to `->` and `->>`.
                        (Some(0 | -1), Node::Jsonb(v)) if v.is_scalar() => Some(node),
                        (index, _) => index.and_then(|i| node.index(i)),
                    }
                } else {
                    match string_at(arg(1), row)? {
                        Some(key) => node.key(key),
                        None => None,
                    }
                }
            }
            Op::Path | Op::PathText => {
                let Some(path) = text_array_at(arg(1), row)? else {
                    return Ok(Out::Null);
                };
                let Some(steps) = path_steps(path, false)? else {
                    return Ok(Out::Null);
                };
                follow(node, &steps)
            }
            Op::ExtractPath | Op::ExtractPathText => {
                let mut steps = Vec::with_capacity(arrays.len() - 1);
                for array in &arrays[1..] {
                    match string_at(array.as_ref(), row)? {
                        Some(s) => steps.push(s.to_string()),
                        None => return Ok(Out::Null),
                    }
                }
                follow(node, &steps)
            }
            Op::TypeOf => return Ok(Out::Text(node.type_name().into())),
            Op::ArrayLength => {
                return match node.elements() {
                    Some(items) => Ok(Out::Int(items.len() as i32)),
                    None if node.is_kind("object") => {
                        Err(invalid("cannot get array length of a non-array"))
                    }
                    None => Err(invalid("cannot get array length of a scalar")),
                }
            }
            Op::ArrayElements | Op::ArrayElementsText => {
                let Some(items) = node.elements() else {
                    return Err(invalid(if node.is_kind("object") {
                        "cannot extract elements from an object"
                    } else {
                        "cannot extract elements from a scalar"
                    }));
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(if self.op == Op::ArrayElements {
                        Some(item.text())
                    } else {
                        item.unquoted()?
                    });
                }
                return Ok(Out::List(out));
            }
            Op::ObjectKeys => {
                let Some(members) = node.members()? else {
                    return Err(invalid(format!(
                        "cannot call {} on {}",
                        self.display,
                        if node.is_kind("array") {
                            "an array"
                        } else {
                            "a scalar"
                        }
                    )));
                };
                return Ok(Out::List(
                    members.into_iter().map(|(k, _)| Some(k)).collect(),
                ));
            }
            Op::EachKeys | Op::EachValues | Op::EachValuesText => {
                let Some(members) = node.members()? else {
                    return Err(invalid(format!(
                        "cannot call {} on a non-object",
                        self.display
                    )));
                };
                let mut out = Vec::with_capacity(members.len());
                for (key, value) in members {
                    out.push(match self.op {
                        Op::EachKeys => Some(key),
                        Op::EachValues => Some(value.text()),
                        _ => value.unquoted()?,
                    });
                }
                return Ok(Out::List(out));
            }
            _ => return exec_err!("{} is not a navigation", self.name),
        };
        let Some(found) = found else {
            return Ok(Out::Null);
        };
        Ok(text_out(if as_text {
            found.unquoted()?
        } else {
            Some(found.text())
        }))
    }

    fn build_object(
        &self,
        arrays: &[ArrayRef],
        fields: &[FieldRef],
        row: usize,
        json: bool,
        zone: Zone,
    ) -> DfResult<Out> {
        if !arrays.len().is_multiple_of(2) {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "argument list must have even number of elements",
            )
            .with_hint(format!(
                "The arguments of {}() must consist of alternating keys and values.",
                self.display
            ))
            .into());
        }
        let mut members = Vec::with_capacity(arrays.len() / 2);
        for pair in 0..arrays.len() / 2 {
            let (k, v) = (2 * pair, 2 * pair + 1);
            let key = key_text(arrays[k].as_ref(), &fields[k], row, zone)?
                .ok_or_else(|| invalid(format!("argument {}: key must not be null", k + 1)))?;
            let value = convert::json_text(arrays[v].as_ref(), &fields[v], row, zone)?;
            members.push((key, value));
        }
        if json {
            let parts: Vec<String> = members
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{} : {}",
                        value::quoted(&k),
                        v.unwrap_or_else(|| "null".into())
                    )
                })
                .collect();
            return Ok(Out::Text(format!("{{{}}}", parts.join(", "))));
        }
        let members = members
            .into_iter()
            .map(|(k, v)| Ok((k, v.map_or(Ok(Jsonb::Null), |t| Jsonb::parse(&t))?)))
            .collect::<Result<Vec<_>, SqlError>>()?;
        Ok(Out::Text(Jsonb::object(members).to_text()))
    }
}

/// The text a cast of `value` to the SQL type `target` reads (see
/// [`operators::JsonbCasts`]).
fn scalar_text(value: &Jsonb, target: &str) -> DfResult<String> {
    let kind = match value {
        Jsonb::Number(n) if target != "boolean" => {
            if matches!(target, "smallint" | "integer" | "bigint") {
                let rounded = crate::numeric::Numeric::parse(n)
                    .and_then(|v| v.round(0))
                    .map_err(|_| invalid(format!("invalid number {n}")))?;
                let target: &'static str = match target {
                    "smallint" => "smallint",
                    "integer" => "integer",
                    _ => "bigint",
                };
                let fits = match (rounded.to_i64(target), target) {
                    (Ok(v), "smallint") => i16::try_from(v).is_ok(),
                    (Ok(v), "integer") => i32::try_from(v).is_ok(),
                    (Ok(_), _) => true,
                    (Err(_), _) => false,
                };
                if !fits {
                    return Err(SqlError::new(
                        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                        format!("{target} out of range"),
                    )
                    .into());
                }
                return Ok(rounded.to_text());
            }
            return Ok(n.clone());
        }
        Jsonb::Bool(b) if target == "boolean" => return Ok(b.to_string()),
        Jsonb::Number(_) => "numeric",
        other => other.type_name(),
    };
    Err(invalid(format!(
        "cannot cast jsonb {kind} to type {target}"
    )))
}

/// An object key from a value of any scalar type: its text, as PostgreSQL's output function
/// prints it (numbers as digits, strings as they are).
fn key_text(array: &dyn Array, field: &Field, row: usize, zone: Zone) -> DfResult<Option<String>> {
    if matches!(
        array.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Ok(string_at(array, row)?.map(str::to_string));
    }
    let Some(text) = convert::json_text(array, field, row, zone)? else {
        return Ok(None);
    };
    if matches!(array.data_type(), DataType::List(_) | DataType::Struct(_)) {
        return Err(invalid(
            "key value must be scalar, not array, composite, or json",
        ));
    }
    // Quoted texts (dates, …) lose their quotes; numbers and booleans are as printed.
    Ok(Some(match value::parse(&text)? {
        Raw::String(Some(s), _) => s,
        _ => text,
    }))
}

mod edit;

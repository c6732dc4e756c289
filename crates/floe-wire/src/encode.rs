//! Result encoding: Arrow schemas to RowDescription fields, record batches to DataRows.
//!
//! Values go through `arrow-pg`'s encoder, except where the PostgreSQL type is carried in
//! field metadata rather than the Arrow type (uuid and jsonb, whose binary forms differ from
//! text) and NULLs, which are written here for every type.

use std::error::Error;
use std::sync::Arc;

use arrow_pg::encoder::encode_value;
use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Int32Type, Int64Type, IntervalUnit, Schema,
    TimestampMicrosecondType,
};
use floe_sql::array_text::{self, decimal_digits};
use floe_sql::datetime;
use floe_sql::vars::SessionVars;
use floe_sql::SqlType;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::format::FormatOptions;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};

/// Text output options for a session (DateStyle, IntervalStyle, TimeZone, …).
pub(crate) fn format_options(vars: &SessionVars) -> Arc<FormatOptions> {
    let get = |name: &str| vars.get(name).unwrap_or_default();
    let mut options = FormatOptions::default();
    options.date_style = get("DateStyle");
    options.interval_style = get("IntervalStyle");
    options.bytea_output = get("bytea_output");
    options.time_zone = get("TimeZone");
    options.extra_float_digits = get("extra_float_digits").parse().unwrap_or(1);
    Arc::new(options)
}

/// The format of result column `idx`: a single code applies to all columns.
pub(crate) fn format_for(format: &Format, idx: usize) -> FieldFormat {
    match format {
        Format::UnifiedText => FieldFormat::Text,
        Format::UnifiedBinary => FieldFormat::Binary,
        Format::Individual(codes) => match codes.len() {
            0 => FieldFormat::Text,
            1 => FieldFormat::from(codes[0]),
            _ => codes
                .get(idx)
                .map(|c| FieldFormat::from(*c))
                .unwrap_or(FieldFormat::Text),
        },
    }
}

/// The pgwire type for a Floe SQL type.
pub(crate) fn pg_type(sql_type: &SqlType) -> Type {
    Type::from_oid(sql_type.oid()).unwrap_or(Type::TEXT)
}

/// `pg_type.typlen` for the RowDescription.
fn type_size(sql_type: &SqlType) -> i16 {
    match sql_type {
        SqlType::Bool => 1,
        SqlType::Int2 => 2,
        SqlType::Int4 | SqlType::Float4 | SqlType::Date | SqlType::Oid | SqlType::Void => 4,
        SqlType::Int8
        | SqlType::Float8
        | SqlType::Time
        | SqlType::Timestamp
        | SqlType::Timestamptz => 8,
        SqlType::Interval | SqlType::Uuid => 16,
        SqlType::Name => 64,
        _ => -1,
    }
}

/// RowDescription fields for a result schema.
pub(crate) fn field_infos(
    schema: &Schema,
    format: &Format,
    options: &Arc<FormatOptions>,
) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(idx, field)| {
            let sql_type = SqlType::from_arrow_field(field);
            FieldInfo::new(
                field.name().clone(),
                None,
                None,
                pg_type(&sql_type),
                format_for(format, idx),
            )
            .with_format_options(options.clone())
            .with_type_size(type_size(&sql_type))
        })
        .collect()
}

/// Encodes record batches of one result into DataRows.
pub(crate) struct RowEncoder {
    fields: Arc<Vec<FieldInfo>>,
    types: Vec<SqlType>,
    /// `n` of `character(n)` columns, whose values are held unpadded.
    char_lengths: Vec<Option<usize>>,
    encoder: DataRowEncoder,
    /// The session's TimeZone, for timestamptz text.
    time_zone: Option<chrono_tz::Tz>,
}

impl RowEncoder {
    pub(crate) fn new(schema: &Schema, fields: Arc<Vec<FieldInfo>>) -> RowEncoder {
        let types = schema
            .fields()
            .iter()
            .map(|f| SqlType::from_arrow_field(f))
            .collect();
        let time_zone = fields
            .first()
            .and_then(|f| f.format_options().time_zone.parse::<chrono_tz::Tz>().ok());
        let char_lengths = schema
            .fields()
            .iter()
            .map(|f| floe_sql::types::char_length(f))
            .collect();
        RowEncoder {
            encoder: DataRowEncoder::new(fields.clone()),
            fields,
            types,
            char_lengths,
            time_zone,
        }
    }

    /// Encodes every row of `batch`, appending to `out`.
    pub(crate) fn encode(
        &mut self,
        batch: &RecordBatch,
        out: &mut Vec<DataRow>,
    ) -> PgWireResult<()> {
        let schema = batch.schema();
        out.reserve(batch.num_rows());
        for row in 0..batch.num_rows() {
            for col in 0..batch.num_columns() {
                let array = batch.column(col);
                let pg_field = &self.fields[col];
                if array.is_null(row) {
                    self.encoder.encode_field_with_type_and_format(
                        &None::<i32>,
                        pg_field.datatype(),
                        pg_field.format(),
                        pg_field.format_options(),
                    )?;
                    continue;
                }
                if let Some(length) = self.char_lengths[col] {
                    if let Some(text) = padded(array.as_ref(), row, length) {
                        self.encoder.encode_field_with_type_and_format(
                            &Preencoded {
                                text: &text,
                                binary: text.as_bytes(),
                                prefix: None,
                            },
                            pg_field.datatype(),
                            pg_field.format(),
                            pg_field.format_options(),
                        )?;
                        continue;
                    }
                }
                if pg_field.format() == FieldFormat::Text {
                    if let Some(text) = pg_text(array.as_ref(), row, &self.time_zone) {
                        // Written as is: a `&str` of an array type would be quoted as an element.
                        self.encoder.encode_field_with_type_and_format(
                            &Preencoded {
                                text: &text,
                                binary: &[],
                                prefix: None,
                            },
                            pg_field.datatype(),
                            FieldFormat::Text,
                            pg_field.format_options(),
                        )?;
                        continue;
                    }
                }
                if pg_field.format() == FieldFormat::Binary {
                    if let Some(binary) = pg_binary(array.as_ref(), row, &self.types[col]) {
                        let binary = binary.map_err(|e| PgWireError::ApiError(e.into()))?;
                        self.encoder.encode_field_with_type_and_format(
                            &Preencoded {
                                text: "",
                                binary: &binary,
                                prefix: None,
                            },
                            pg_field.datatype(),
                            FieldFormat::Binary,
                            pg_field.format_options(),
                        )?;
                        continue;
                    }
                }
                match (&self.types[col], array.data_type()) {
                    (SqlType::Uuid, DataType::Utf8) if pg_field.format() == FieldFormat::Binary => {
                        let text = array.as_string::<i32>().value(row);
                        let uuid = uuid::Uuid::parse_str(text).map_err(|e| {
                            PgWireError::ApiError(format!("invalid uuid {text:?}: {e}").into())
                        })?;
                        self.encoder.encode_field_with_type_and_format(
                            &Preencoded {
                                text,
                                binary: uuid.as_bytes(),
                                prefix: None,
                            },
                            pg_field.datatype(),
                            FieldFormat::Binary,
                            pg_field.format_options(),
                        )?;
                    }
                    (SqlType::Jsonb, DataType::Utf8) => {
                        let text = array.as_string::<i32>().value(row);
                        self.encoder.encode_field_with_type_and_format(
                            &Preencoded {
                                text,
                                binary: text.as_bytes(),
                                prefix: Some(1),
                            },
                            pg_field.datatype(),
                            pg_field.format(),
                            pg_field.format_options(),
                        )?;
                    }
                    _ => encode_value(&mut self.encoder, array, row, schema.field(col), pg_field)?,
                }
            }
            out.push(self.encoder.take_row());
        }
        Ok(())
    }
}

/// A `character(n)` value padded with spaces to `n` characters, as PostgreSQL outputs it
/// (`None` when the array holds no strings).
fn padded(array: &dyn Array, row: usize, length: usize) -> Option<String> {
    let value = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(row),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row),
        DataType::Utf8View => array.as_string_view().value(row),
        _ => return None,
    };
    let chars = value.chars().count();
    let mut text = String::with_capacity(value.len() + length.saturating_sub(chars));
    text.push_str(value);
    text.extend(std::iter::repeat_n(' ', length.saturating_sub(chars)));
    Some(text)
}

/// A value whose text and binary forms are already known (uuid, jsonb, Floe's text forms).
#[derive(Debug)]
struct Preencoded<'a> {
    text: &'a str,
    binary: &'a [u8],
    /// A leading byte of the binary form (jsonb's version number).
    prefix: Option<u8>,
}

impl ToSql for Preencoded<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if let Some(prefix) = self.prefix {
            out.put_u8(prefix);
        }
        out.put_slice(self.binary);
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for Preencoded<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.put_slice(self.text.as_bytes());
        Ok(IsNull::No)
    }
}

/// PostgreSQL's text form for the types whose output differs from `arrow-pg`'s (floats and
/// date/time values, and arrays of them); `None` for every other type.
fn pg_text(array: &dyn Array, row: usize, tz: &Option<chrono_tz::Tz>) -> Option<String> {
    let zone = match tz {
        Some(tz) => datetime::Zone::Named(*tz),
        None => datetime::Zone::Fixed(0),
    };
    match array.data_type() {
        DataType::List(item) if !array_needs_pg_text(item.data_type()) => None,
        DataType::List(_)
        | DataType::Decimal128(..)
        | DataType::LargeBinary
        | DataType::Decimal256(..)
        | DataType::Interval(IntervalUnit::MonthDayNano)
        | DataType::Float64
        | DataType::Float32
        | DataType::Time64(_)
        | DataType::Timestamp(..)
        | DataType::Date32 => array_text::pg_text(array, row, zone),
        _ => None,
    }
}

/// PostgreSQL's binary form where `arrow-pg`'s is missing or limited: numeric (arrow-pg goes
/// through `rust_decimal`, which holds 28 digits, not Decimal128's 38) and arrays of numeric,
/// uuid and jsonb (whose elements arrow-pg writes as text). `None` for every other type.
/// 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

fn pg_binary(array: &dyn Array, row: usize, ty: &SqlType) -> Option<Result<Vec<u8>, String>> {
    match (ty, array.data_type()) {
        // Days and microseconds since 2000-01-01; infinities are the extreme values in both.
        (_, DataType::Date32) => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let pg = match days {
                datetime::DATE_INFINITY | datetime::DATE_NEG_INFINITY => days,
                _ => days - PG_EPOCH_DAYS,
            };
            Some(Ok(pg.to_be_bytes().to_vec()))
        }
        (_, DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, _)) => {
            let micros = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let pg = match micros {
                datetime::TIMESTAMP_INFINITY | datetime::TIMESTAMP_NEG_INFINITY => micros,
                _ => micros - i64::from(PG_EPOCH_DAYS) * 86_400_000_000,
            };
            Some(Ok(pg.to_be_bytes().to_vec()))
        }
        (_, DataType::Decimal128(_, scale)) => Some(Ok(numeric_binary(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale,
        ))),
        (_, DataType::LargeBinary | DataType::Decimal256(..)) => Some(
            wide_numeric(array, row)
                .map(|v| v.to_pg_binary())
                .map_err(|e| e.to_string()),
        ),
        // `oid` is unsigned and 4 bytes, whichever integer holds it.
        (SqlType::Oid, DataType::Int32 | DataType::Int64) => {
            Some(Ok(oid_value(array, row).to_be_bytes().to_vec()))
        }
        (SqlType::Array(item), DataType::List(_))
            if matches!(
                **item,
                SqlType::Numeric | SqlType::Uuid | SqlType::Jsonb | SqlType::Oid
            ) =>
        {
            let values = array.as_list::<i32>().value(row);
            if !matches!(
                (&**item, values.data_type()),
                (
                    SqlType::Numeric,
                    DataType::Decimal128(..) | DataType::LargeBinary
                ) | (SqlType::Uuid | SqlType::Jsonb, DataType::Utf8)
                    | (SqlType::Oid, DataType::Int32 | DataType::Int64)
            ) {
                return None;
            }
            Some(array_binary(values.as_ref(), item))
        }
        _ => None,
    }
}

/// An `oid` held in an Int32 (catalog columns) or Int64 (`::oid` casts) array.
fn oid_value(array: &dyn Array, row: usize) -> u32 {
    match array.data_type() {
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row) as u32,
        _ => array.as_primitive::<Int64Type>().value(row) as u32,
    }
}

/// A one-dimensional array in PostgreSQL's binary form (`array_send`).
fn array_binary(values: &dyn Array, item: &SqlType) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let ndim: i32 = if values.is_empty() { 0 } else { 1 };
    out.extend(ndim.to_be_bytes());
    out.extend(((values.null_count() > 0) as i32).to_be_bytes());
    out.extend((item.oid() as i32).to_be_bytes());
    if ndim == 1 {
        out.extend((values.len() as i32).to_be_bytes());
        out.extend(1i32.to_be_bytes());
    }
    for i in 0..values.len() {
        if values.is_null(i) {
            out.extend((-1i32).to_be_bytes());
            continue;
        }
        let element = match (item, values.data_type()) {
            (_, DataType::Decimal128(_, scale)) => {
                numeric_binary(values.as_primitive::<Decimal128Type>().value(i), *scale)
            }
            (_, DataType::LargeBinary) => wide_numeric(values, i)
                .map_err(|e| e.to_string())?
                .to_pg_binary(),
            (SqlType::Oid, _) => oid_value(values, i).to_be_bytes().to_vec(),
            (SqlType::Uuid, _) => {
                let text = values.as_string::<i32>().value(i);
                uuid::Uuid::parse_str(text)
                    .map_err(|e| format!("invalid uuid {text:?}: {e}"))?
                    .as_bytes()
                    .to_vec()
            }
            _ => {
                let mut jsonb = vec![1u8];
                jsonb.extend(values.as_string::<i32>().value(i).as_bytes());
                jsonb
            }
        };
        out.extend((element.len() as i32).to_be_bytes());
        out.extend(element);
    }
    Ok(out)
}

/// Row `row` of a wide numeric (`LargeBinary` key) or `Decimal256` array.
fn wide_numeric(
    array: &dyn Array,
    row: usize,
) -> Result<floe_sql::numeric::Numeric, datafusion::error::DataFusionError> {
    floe_sql::numeric::functions::value_at(array, row)?
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("NULL numeric".into()))
}

/// A numeric's binary form (`numeric_send`): ndigits, weight, sign, dscale, then base-10000
/// digits, the first of which is the 10000^weight place.
fn numeric_binary(mantissa: i128, scale: i8) -> Vec<u8> {
    let (negative, digits, dscale) = decimal_digits(mantissa, scale);
    let digits = format!("{digits:0>width$}", width = dscale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - dscale);
    // Pad the integer part on the left and the fraction on the right to groups of four.
    let whole = format!("{}{whole}", "0".repeat((4 - whole.len() % 4) % 4));
    let fraction = format!("{fraction}{}", "0".repeat((4 - fraction.len() % 4) % 4));
    let group = |chunk: &[u8]| {
        chunk
            .iter()
            .fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16)
    };
    let mut groups: Vec<i16> = whole.as_bytes().chunks(4).map(group).collect();
    let mut weight = groups.len() as i16 - 1;
    groups.extend(fraction.as_bytes().chunks(4).map(group));
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend((groups.len() as i16).to_be_bytes());
    out.extend(weight.to_be_bytes());
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend(sign.to_be_bytes());
    out.extend((dscale as i16).to_be_bytes());
    for g in groups {
        out.extend(g.to_be_bytes());
    }
    out
}

/// Whether arrays of this element type need Floe's text form: arrow-pg prints their elements
/// differently from PostgreSQL (`-0`, fraction digits) and leaves elements with spaces unquoted.
fn array_needs_pg_text(item: &DataType) -> bool {
    matches!(
        item,
        DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::LargeBinary
            | DataType::Time64(_)
            | DataType::Timestamp(..)
            | DataType::Interval(IntervalUnit::MonthDayNano)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_print_like_postgres() {
        use datafusion::arrow::array::{
            Float64Builder, IntervalMonthDayNanoBuilder, ListBuilder, TimestampMicrosecondBuilder,
        };
        use datafusion::arrow::datatypes::IntervalMonthDayNano;

        let mut floats = ListBuilder::new(Float64Builder::new());
        floats.values().append_value(1.5);
        floats.values().append_value(-0.0);
        floats.values().append_null();
        floats.values().append_value(f64::INFINITY);
        floats.append(true);
        floats.append(true);
        let floats = floats.finish();
        assert_eq!(
            pg_text(&floats, 0, &None).unwrap(),
            "{1.5,-0,NULL,Infinity}"
        );
        assert_eq!(pg_text(&floats, 1, &None).unwrap(), "{}");

        let mut stamps = ListBuilder::new(TimestampMicrosecondBuilder::new());
        stamps.values().append_value(1_709_210_096_789_000);
        stamps.append(true);
        let stamps = stamps.finish();
        assert_eq!(
            pg_text(&stamps, 0, &None).unwrap(),
            "{\"2024-02-29 12:34:56.789\"}"
        );

        let mut intervals = ListBuilder::new(IntervalMonthDayNanoBuilder::new());
        intervals
            .values()
            .append_value(IntervalMonthDayNano::new(0, 1, 1_000_000_000));
        intervals.append(true);
        let intervals = intervals.finish();
        assert_eq!(
            pg_text(&intervals, 0, &None).unwrap(),
            "{\"1 day 00:00:01\"}"
        );
    }

    #[test]
    fn numerics_keep_every_digit() {
        assert_eq!(array_text::numeric_text(150, 2), "1.50");
        assert_eq!(array_text::numeric_text(-5, 3), "-0.005");
        assert_eq!(array_text::numeric_text(0, 2), "0.00");
        assert_eq!(array_text::numeric_text(42, 0), "42");
        assert_eq!(array_text::numeric_text(12, -3), "12000");
        let max = 10i128.pow(38) - 1;
        assert_eq!(
            array_text::numeric_text(max, 10),
            format!("{}.{}", "9".repeat(28), "9".repeat(10))
        );

        // numeric_send of 1.50: 1 digit group after weight 0, then 5000; dscale 2
        let words = |v: &[i16]| v.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        assert_eq!(numeric_binary(150, 2), words(&[2, 0, 0, 2, 1, 5000]));
        // -12345.678: groups 1|2345|6780, weight 1
        assert_eq!(
            numeric_binary(-12345678, 3),
            words(&[3, 1, 0x4000, 3, 1, 2345, 6780])
        );
        // 0.000000001: the first group is 10000^-3
        assert_eq!(numeric_binary(1, 9), words(&[1, -3, 0, 9, 1000]));
        // zero: no digits, weight 0, the scale kept
        assert_eq!(numeric_binary(0, 2), words(&[0, 0, 0, 2]));
        // 10000000: 1000|0000 -> one group 1000 at weight 1
        assert_eq!(numeric_binary(10_000_000, 0), words(&[1, 1, 0, 0, 1000]));
    }

    #[test]
    fn times_print_like_postgres() {
        assert_eq!(array_text::time_text(36_672_000_000), "10:11:12");
        assert_eq!(array_text::time_text(36_672_500_000), "10:11:12.5");
        assert_eq!(datetime::offset_text(0), "+00");
        assert_eq!(datetime::offset_text(-(5 * 3600 + 30 * 60)), "-05:30");
    }
}

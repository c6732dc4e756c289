//! PostgreSQL types as Floe knows them, and how each is held in Arrow.
//!
//! Most PostgreSQL types have an exact Arrow counterpart (`int4` = `Int32`, `timestamptz` =
//! `Timestamp(µs, tz)`). A few do not: `uuid`, `json`, `jsonb`, `varchar` and `char(n)` are held
//! as Arrow `Utf8` with the field metadata [`PG_TYPE_KEY`] naming the PostgreSQL type, so the
//! wire layer can report the right type OID and encode the value the way clients expect.
//! The type planner ([`FloeTypePlanner`]) attaches that metadata when SQL names such a type.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, IntervalUnit, TimeUnit};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::sql::sqlparser::ast;

/// Field metadata key naming the PostgreSQL type of a `Utf8` field that Arrow can't tell apart.
pub const PG_TYPE_KEY: &str = "floe.pg_type";

/// The PostgreSQL types Floe speaks, with their fixed catalog OIDs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Varchar,
    Bpchar,
    Name,
    Bytea,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Oid,
    Array(Box<SqlType>),
    /// What a function returning nothing returns (`pg_sleep`): prints as an empty string.
    Void,
    /// A parameter whose type nothing determines yet (PostgreSQL's `unknown`).
    Unknown,
}

impl SqlType {
    /// The type's OID in `pg_type`.
    pub fn oid(&self) -> u32 {
        match self {
            SqlType::Bool => 16,
            SqlType::Bytea => 17,
            SqlType::Name => 19,
            SqlType::Int8 => 20,
            SqlType::Int2 => 21,
            SqlType::Int4 => 23,
            SqlType::Text => 25,
            SqlType::Oid => 26,
            SqlType::Json => 114,
            SqlType::Float4 => 700,
            SqlType::Float8 => 701,
            SqlType::Unknown => 705,
            SqlType::Void => 2278,
            SqlType::Bpchar => 1042,
            SqlType::Varchar => 1043,
            SqlType::Date => 1082,
            SqlType::Time => 1083,
            SqlType::Timestamp => 1114,
            SqlType::Timestamptz => 1184,
            SqlType::Interval => 1186,
            SqlType::Numeric => 1700,
            SqlType::Uuid => 2950,
            SqlType::Jsonb => 3802,
            SqlType::Array(inner) => inner.array_oid(),
        }
    }

    /// The OID of the array type whose elements are `self` (0 if there is none).
    pub fn array_oid(&self) -> u32 {
        match self {
            SqlType::Bool => 1000,
            SqlType::Bytea => 1001,
            SqlType::Name => 1003,
            SqlType::Int2 => 1005,
            SqlType::Int4 => 1007,
            SqlType::Text => 1009,
            SqlType::Bpchar => 1014,
            SqlType::Varchar => 1015,
            SqlType::Int8 => 1016,
            SqlType::Float4 => 1021,
            SqlType::Float8 => 1022,
            SqlType::Oid => 1028,
            SqlType::Timestamp => 1115,
            SqlType::Date => 1182,
            SqlType::Time => 1183,
            SqlType::Timestamptz => 1185,
            SqlType::Interval => 1187,
            SqlType::Numeric => 1231,
            SqlType::Uuid => 2951,
            SqlType::Json => 199,
            SqlType::Jsonb => 3807,
            SqlType::Array(_) | SqlType::Unknown | SqlType::Void => 0,
        }
    }

    /// The type with OID `oid`, if Floe knows it.
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        const SCALARS: [SqlType; 22] = [
            SqlType::Bool,
            SqlType::Int2,
            SqlType::Int4,
            SqlType::Int8,
            SqlType::Float4,
            SqlType::Float8,
            SqlType::Numeric,
            SqlType::Text,
            SqlType::Varchar,
            SqlType::Bpchar,
            SqlType::Name,
            SqlType::Bytea,
            SqlType::Date,
            SqlType::Time,
            SqlType::Timestamp,
            SqlType::Timestamptz,
            SqlType::Interval,
            SqlType::Uuid,
            SqlType::Json,
            SqlType::Jsonb,
            SqlType::Oid,
            SqlType::Unknown,
        ];
        for t in SCALARS.iter() {
            if t.oid() == oid {
                return Some(t.clone());
            }
            if t.array_oid() == oid && oid != 0 {
                return Some(SqlType::Array(Box::new(t.clone())));
            }
        }
        None
    }

    /// PostgreSQL's name for the type, as `format_type` prints it.
    pub fn name(&self) -> String {
        match self {
            SqlType::Bool => "boolean".into(),
            SqlType::Int2 => "smallint".into(),
            SqlType::Int4 => "integer".into(),
            SqlType::Int8 => "bigint".into(),
            SqlType::Float4 => "real".into(),
            SqlType::Float8 => "double precision".into(),
            SqlType::Numeric => "numeric".into(),
            SqlType::Text => "text".into(),
            SqlType::Varchar => "character varying".into(),
            SqlType::Bpchar => "character".into(),
            SqlType::Name => "name".into(),
            SqlType::Bytea => "bytea".into(),
            SqlType::Date => "date".into(),
            SqlType::Time => "time without time zone".into(),
            SqlType::Timestamp => "timestamp without time zone".into(),
            SqlType::Timestamptz => "timestamp with time zone".into(),
            SqlType::Interval => "interval".into(),
            SqlType::Uuid => "uuid".into(),
            SqlType::Json => "json".into(),
            SqlType::Jsonb => "jsonb".into(),
            SqlType::Oid => "oid".into(),
            SqlType::Array(inner) => format!("{}[]", inner.name()),
            SqlType::Unknown => "unknown".into(),
            SqlType::Void => "void".into(),
        }
    }

    /// The metadata tag for types Arrow can't tell apart from `Utf8` (or, for `oid`, from
    /// the integers).
    fn tag(&self) -> Option<&'static str> {
        match self {
            SqlType::Uuid => Some("uuid"),
            SqlType::Json => Some("json"),
            SqlType::Jsonb => Some("jsonb"),
            SqlType::Varchar => Some("varchar"),
            SqlType::Bpchar => Some("bpchar"),
            SqlType::Name => Some("name"),
            SqlType::Void => Some("void"),
            SqlType::Oid => Some("oid"),
            _ => None,
        }
    }

    /// The Arrow type values of this type are held in.
    pub fn to_arrow(&self) -> DataType {
        match self {
            SqlType::Bool => DataType::Boolean,
            SqlType::Int2 => DataType::Int16,
            SqlType::Int4 => DataType::Int32,
            SqlType::Oid => DataType::Int64,
            SqlType::Int8 => DataType::Int64,
            SqlType::Float4 => DataType::Float32,
            SqlType::Float8 => DataType::Float64,
            SqlType::Numeric => DataType::LargeBinary,
            SqlType::Text
            | SqlType::Varchar
            | SqlType::Bpchar
            | SqlType::Name
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb
            | SqlType::Unknown
            | SqlType::Void => DataType::Utf8,
            SqlType::Bytea => DataType::Binary,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::Timestamptz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
            }
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Array(inner) => DataType::List(Arc::new(inner.to_arrow_field("item"))),
        }
    }

    /// An Arrow field of this type (nullable), tagged when Arrow alone can't tell the type.
    pub fn to_arrow_field(&self, name: &str) -> Field {
        if *self == SqlType::Numeric {
            return crate::numeric::numeric_field(name, None);
        }
        let field = Field::new(name, self.to_arrow(), true);
        match self.tag() {
            Some(tag) => field.with_metadata(HashMap::from([(PG_TYPE_KEY.into(), tag.into())])),
            None => field,
        }
    }

    /// The PostgreSQL type of an Arrow field (its tag first, else its Arrow type).
    pub fn from_arrow_field(field: &Field) -> SqlType {
        if let Some(tag) = field.metadata().get(PG_TYPE_KEY) {
            // A list field may say its elements' type (`array_agg` of a tagged column).
            let (element, array) = match tag.strip_suffix("[]") {
                Some(element) => (element, true),
                None => (tag.as_str(), false),
            };
            if let Some(t) = SqlType::from_tag(element) {
                return if array {
                    SqlType::Array(Box::new(t))
                } else {
                    t
                };
            }
        }
        SqlType::from_arrow(field.data_type())
    }

    /// The type a metadata tag names (see [`SqlType::tag`]).
    fn from_tag(tag: &str) -> Option<SqlType> {
        Some(match tag {
            "uuid" => SqlType::Uuid,
            "json" => SqlType::Json,
            "jsonb" => SqlType::Jsonb,
            "varchar" => SqlType::Varchar,
            "bpchar" => SqlType::Bpchar,
            "name" => SqlType::Name,
            "void" => SqlType::Void,
            "oid" => SqlType::Oid,
            _ => return None,
        })
    }

    /// The PostgreSQL type of an untagged Arrow type.
    pub fn from_arrow(data_type: &DataType) -> SqlType {
        match data_type {
            DataType::Boolean => SqlType::Bool,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => SqlType::Int2,
            DataType::Int32 | DataType::UInt16 => SqlType::Int4,
            DataType::Int64 | DataType::UInt32 => SqlType::Int8,
            DataType::UInt64 | DataType::Decimal32(..) | DataType::Decimal64(..) => {
                SqlType::Numeric
            }
            DataType::Decimal128(..) | DataType::Decimal256(..) => SqlType::Numeric,
            DataType::Float16 | DataType::Float32 => SqlType::Float4,
            DataType::Float64 => SqlType::Float8,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => SqlType::Text,
            // Wide numerics (see `crate::numeric`); bytea is `Binary`.
            DataType::LargeBinary => SqlType::Numeric,
            DataType::Binary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
                SqlType::Bytea
            }
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
            DataType::Timestamp(_, None) => SqlType::Timestamp,
            DataType::Timestamp(_, Some(_)) => SqlType::Timestamptz,
            DataType::Interval(_) | DataType::Duration(_) => SqlType::Interval,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                match SqlType::from_arrow_field(f) {
                    SqlType::Unknown => SqlType::Array(Box::new(SqlType::Text)),
                    inner => SqlType::Array(Box::new(inner)),
                }
            }
            DataType::Dictionary(_, value) => SqlType::from_arrow(value),
            DataType::Null => SqlType::Text,
            _ => SqlType::Text,
        }
    }

    /// The type a SQL type name denotes, for the names Arrow can't represent by itself.
    fn from_sql_tagged(sql_type: &ast::DataType) -> Option<SqlType> {
        use ast::DataType as D;
        match sql_type {
            D::Uuid => Some(SqlType::Uuid),
            D::JSON => Some(SqlType::Json),
            D::JSONB => Some(SqlType::Jsonb),
            D::Varchar(_) | D::CharacterVarying(_) => Some(SqlType::Varchar),
            D::Char(_) | D::Character(_) => Some(SqlType::Bpchar),
            D::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
                "uuid" => Some(SqlType::Uuid),
                "json" => Some(SqlType::Json),
                "jsonb" => Some(SqlType::Jsonb),
                "name" => Some(SqlType::Name),
                "bpchar" => Some(SqlType::Bpchar),
                "oid" | "regclass" | "regtype" | "regproc" | "regnamespace" => Some(SqlType::Oid),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Field metadata key holding a column's declared length or precision (`varchar(20)`), as
/// PostgreSQL's typmod prints it.
pub const PG_TYPMOD_KEY: &str = "floe.typmod";

/// The Arrow field a table column of SQL type `data_type` is stored as. `numeric(p, s)` keeps
/// its precision and scale; `varchar(n)` and `char(n)` remember `n`.
pub fn column_field(name: &str, data_type: &ast::DataType) -> crate::SqlResult<Field> {
    use crate::error::{sqlstate, SqlError};
    use ast::{CharacterLength, DataType as D, ExactNumberInfo};
    let with_typmod = |field: Field, typmod: String| {
        let mut metadata = field.metadata().clone();
        metadata.insert(PG_TYPMOD_KEY.into(), typmod);
        field.with_metadata(metadata)
    };
    let field = match data_type {
        D::Numeric(info) | D::Decimal(info) | D::Dec(info) => match info {
            ExactNumberInfo::None => SqlType::Numeric.to_arrow_field(name),
            ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _)
                if *p == 0 || *p > 1000 =>
            {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("NUMERIC precision {p} must be between 1 and 1000"),
                ))
            }
            ExactNumberInfo::PrecisionAndScale(p, s) if *s < 0 || *s > *p as i64 => {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    format!("NUMERIC scale {s} must be between 0 and precision {p}"),
                ))
            }
            // Wider than Decimal128: a wide numeric that remembers its typmod.
            ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _) if *p > 38 => {
                let scale = match info {
                    ExactNumberInfo::PrecisionAndScale(_, s) => *s as u32,
                    _ => 0,
                };
                crate::numeric::numeric_field(name, Some((*p as u32, scale)))
            }
            ExactNumberInfo::Precision(p) => with_typmod(
                Field::new(name, DataType::Decimal128(*p as u8, 0), true),
                format!("({p},0)"),
            ),
            ExactNumberInfo::PrecisionAndScale(p, s) => {
                if *s < 0 || *s > *p as i64 {
                    return Err(SqlError::new(
                        sqlstate::INVALID_PARAMETER_VALUE,
                        format!("NUMERIC scale {s} must be between 0 and precision {p}"),
                    ));
                }
                with_typmod(
                    Field::new(name, DataType::Decimal128(*p as u8, *s as i8), true),
                    format!("({p},{s})"),
                )
            }
        },
        D::Varchar(Some(CharacterLength::IntegerLength { length, .. }))
        | D::CharacterVarying(Some(CharacterLength::IntegerLength { length, .. })) => {
            with_typmod(SqlType::Varchar.to_arrow_field(name), format!("({length})"))
        }
        D::Char(len) | D::Character(len) => {
            let length = match len {
                Some(CharacterLength::IntegerLength { length, .. }) => *length,
                _ => 1,
            };
            with_typmod(SqlType::Bpchar.to_arrow_field(name), format!("({length})"))
        }
        // timestamp(p), timestamptz(p), time(p): the typmod makes storing round (see
        // `crate::rewrite`'s time_precision); 6 is the unconstrained type.
        D::Timestamp(Some(p), _) | D::Time(Some(p), _) if *p < 6 => {
            let Some(ty) = SqlType::from_sql(data_type) else {
                return Err(SqlError::internal("time type without a SqlType"));
            };
            with_typmod(ty.to_arrow_field(name), format!("({p})"))
        }
        D::Float(ast::ExactNumberInfo::Precision(p)) if *p <= 24 => {
            SqlType::Float4.to_arrow_field(name)
        }
        D::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => {
            let element = column_field("item", inner)?;
            Field::new(name, DataType::List(Arc::new(element)), true)
        }
        other => match SqlType::from_sql(other) {
            Some(SqlType::Unknown) | None => {
                return Err(SqlError::new(
                    sqlstate::UNDEFINED_OBJECT,
                    format!(
                        "type \"{}\" does not exist",
                        other.to_string().to_lowercase()
                    ),
                ))
            }
            Some(t) => t.to_arrow_field(name),
        },
    };
    Ok(field)
}

/// `value` converted to a column's type as storing it does: a CAST to the column's type, plus
/// the length rule of `varchar(n)` and `char(n)` (see [`crate::bounded_text`]).
pub fn assignment_cast(value: ast::Expr, field: &Field) -> crate::SqlResult<ast::Expr> {
    let template = crate::sqlbuild::template_expr(&assignment_cast_template(field))?;
    Ok(crate::sqlbuild::fill(template, value))
}

/// [`assignment_cast`] of the slot [`crate::sqlbuild::SLOT`], as SQL text.
fn assignment_cast_template(field: &Field) -> String {
    let cast = format!("CAST({} AS {})", crate::sqlbuild::SLOT, cast_name(field));
    let type_name = match SqlType::from_arrow_field(field) {
        SqlType::Varchar => "character varying",
        SqlType::Bpchar => "character",
        // Stored JSON is read as JSON: checked, and jsonb in its canonical text.
        SqlType::Json => return format!("floe_json_in({cast})"),
        SqlType::Jsonb => return format!("floe_jsonb_in({cast})"),
        _ => return cast,
    };
    let length = field.metadata().get(PG_TYPMOD_KEY).and_then(|t| {
        t.trim_start_matches('(')
            .trim_end_matches(')')
            .parse::<u64>()
            .ok()
    });
    match length {
        Some(n) => crate::bounded_text::assign_sql(&cast, n, type_name),
        None => cast,
    }
}

/// `n` of a `character(n)` field (its output is padded to `n` characters; see
/// [`crate::bounded_text`]).
pub fn char_length(field: &Field) -> Option<usize> {
    if SqlType::from_arrow_field(field) != SqlType::Bpchar {
        return None;
    }
    let typmod = field.metadata().get(PG_TYPMOD_KEY)?;
    typmod
        .trim_start_matches('(')
        .trim_end_matches(')')
        .parse()
        .ok()
}

/// The SQL spelling of a column's exact type, for CASTs to it.
pub fn cast_name(field: &Field) -> String {
    match field.data_type() {
        DataType::Decimal128(p, s) => format!("{}({p}, {s})", crate::numeric::FIXED_TYPMOD_NAME),
        DataType::LargeBinary => match crate::numeric::field_typmod(field) {
            Some((p, s)) if p <= 38 => format!("{}({p}, {s})", crate::numeric::WIDE_TYPMOD_NAME),
            Some((p, s)) => format!("NUMERIC({p}, {s})"),
            None => "NUMERIC".into(),
        },
        DataType::List(inner) => format!("{}[]", cast_name(inner)),
        _ => match SqlType::from_arrow_field(field) {
            SqlType::Bpchar => "BPCHAR".into(),
            SqlType::Varchar => "VARCHAR".into(),
            SqlType::Timestamptz | SqlType::Timestamp | SqlType::Time => {
                let base = match SqlType::from_arrow_field(field) {
                    SqlType::Timestamptz => "TIMESTAMPTZ",
                    SqlType::Timestamp => "TIMESTAMP",
                    _ => "TIME",
                };
                match field.metadata().get(PG_TYPMOD_KEY) {
                    Some(typmod) => match base {
                        "TIMESTAMPTZ" => format!("TIMESTAMP{typmod} WITH TIME ZONE"),
                        _ => format!("{base}{typmod}"),
                    },
                    None => base.into(),
                }
            }
            SqlType::Oid => "BIGINT".into(),
            SqlType::Name => "NAME".into(),
            other => other.name().to_ascii_uppercase(),
        },
    }
}

/// PostgreSQL's `format_type` of a column: `numeric(10,2)`, `character varying(20)`, `integer[]`.
pub fn format_column_type(field: &Field) -> String {
    let typmod = field
        .metadata()
        .get(PG_TYPMOD_KEY)
        .cloned()
        .unwrap_or_default();
    match field.data_type() {
        DataType::List(inner) => format!("{}[]", format_column_type(inner)),
        _ => format!("{}{typmod}", SqlType::from_arrow_field(field).name()),
    }
}

impl SqlType {
    /// The type a SQL type name denotes (arrays included); `None` for types Floe does not know.
    pub fn from_sql(t: &ast::DataType) -> Option<SqlType> {
        if let Some(tagged) = SqlType::from_sql_tagged(t) {
            return Some(tagged);
        }
        if let ast::DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) = t
        {
            return SqlType::from_sql(inner).map(|i| SqlType::Array(Box::new(i)));
        }
        let text = t.to_string().to_ascii_lowercase();
        Some(match text.as_str() {
            "int" | "integer" | "int4" => SqlType::Int4,
            "smallint" | "int2" => SqlType::Int2,
            "bigint" | "int8" => SqlType::Int8,
            "real" | "float4" => SqlType::Float4,
            "double precision" | "float8" | "float" | "double" => SqlType::Float8,
            "text" | "string" => SqlType::Text,
            "boolean" | "bool" => SqlType::Bool,
            "date" => SqlType::Date,
            "bytea" => SqlType::Bytea,
            "interval" => SqlType::Interval,
            "timestamptz" | "timestamp with time zone" => SqlType::Timestamptz,
            s if s.starts_with("timestamptz")
                || s.starts_with("timestamp") && s.contains("with time zone") =>
            {
                SqlType::Timestamptz
            }
            s if s.starts_with("timestamp") => SqlType::Timestamp,
            s if s.starts_with("time") => SqlType::Time,
            s if s.starts_with("numeric") || s.starts_with("decimal") => SqlType::Numeric,
            s if s.starts_with("varchar") || s.starts_with("character varying") => SqlType::Varchar,
            s if s.starts_with("char") => SqlType::Bpchar,
            _ => return None,
        })
    }
}

/// Plans the SQL type names DataFusion has no Arrow type for (`uuid`, `json`, `jsonb`, …) as
/// tagged `Utf8` fields, and `numeric` without a typmod (or wider than 38 digits) as a wide
/// numeric ([`crate::numeric`]).
#[derive(Debug, Default)]
pub struct FloeTypePlanner;

impl TypePlanner for FloeTypePlanner {
    fn plan_type_field(&self, sql_type: &ast::DataType) -> DfResult<Option<FieldRef>> {
        // PostgreSQL's timestamps have microseconds (DataFusion plans nanoseconds, which end
        // in 2262); `timestamptz` values are UTC instants, printed in the session's zone.
        if let ast::DataType::Timestamp(_, zone) = sql_type {
            let t = match zone {
                ast::TimezoneInfo::Tz | ast::TimezoneInfo::WithTimeZone => SqlType::Timestamptz,
                _ => SqlType::Timestamp,
            };
            return Ok(Some(Arc::new(t.to_arrow_field(""))));
        }
        if let Some(field) = crate::numeric::plan_numeric_type(sql_type)
            .or_else(|| crate::numeric::plan_fixed_type(sql_type))
        {
            return Ok(Some(Arc::new(field)));
        }
        // A cast to text is text, whatever its operand was: DataFusion carries the operand's
        // type tag (`character(5)`, `uuid`, …) through a cast whose target field is nameless
        // and untagged, so this one has a name.
        if let ast::DataType::Text = sql_type {
            return Ok(Some(Arc::new(Field::new("text", DataType::Utf8View, true))));
        }
        if let Some(t) = SqlType::from_sql_tagged(sql_type) {
            return Ok(Some(Arc::new(t.to_arrow_field(""))));
        }
        if let ast::DataType::Array(ast::ArrayElemTypeDef::SquareBracket(inner, _))
        | ast::DataType::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) = sql_type
        {
            // Arrays of numeric keep fixed-point elements (see `SqlType::to_arrow`).
            if let ast::DataType::Numeric(ast::ExactNumberInfo::None)
            | ast::DataType::Decimal(ast::ExactNumberInfo::None)
            | ast::DataType::Dec(ast::ExactNumberInfo::None) = inner.as_ref()
            {
                let list = SqlType::Array(Box::new(SqlType::Numeric));
                return Ok(Some(Arc::new(Field::new("", list.to_arrow(), true))));
            }
            if let Some(t) = SqlType::from_sql_tagged(inner) {
                let list = SqlType::Array(Box::new(t));
                return Ok(Some(Arc::new(list.to_arrow_field(""))));
            }
        }
        Ok(None)
    }
}

/// A `double precision` as PostgreSQL 15 prints it (shortest exact form, `extra_float_digits` = 1):
/// exponent notation below 1e-4 or from 1e15 on, `Infinity`, `NaN`.
pub fn float8_text(v: f64) -> String {
    float_text(v, 15)
}

/// A float the way PostgreSQL 15 prints it (shortest exact form, `extra_float_digits` = 1):
/// exponent notation below 1e-4 or from 10^`digits` on, `Infinity`, `NaN`.
fn float_text(v: f64, digits: i32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    shortest_to_pg(&format!("{v:e}"), digits)
}

/// A `real` as PostgreSQL 15 prints it.
pub fn float4_text(v: f32) -> String {
    if v.is_nan() || v.is_infinite() || v == 0.0 {
        return float_text(v as f64, 6);
    }
    shortest_to_pg(&format!("{v:e}"), 6)
}

/// Rewrites Rust's shortest `1.2345e-5` form into PostgreSQL's layout.
fn shortest_to_pg(sci: &str, digits: i32) -> String {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let sig: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= digits {
        out.push_str(&sig[..1]);
        if sig.len() > 1 {
            out.push('.');
            out.push_str(&sig[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&sig);
    } else {
        let int_len = exp as usize + 1;
        if sig.len() <= int_len {
            out.push_str(&sig);
            for _ in sig.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&sig[..int_len]);
            out.push('.');
            out.push_str(&sig[int_len..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_postgres() {
        assert_eq!(float_text(1e10, 15), "10000000000");
        assert_eq!(float_text(1e15, 15), "1e+15");
        assert_eq!(float_text(0.0001, 15), "0.0001");
        assert_eq!(float_text(0.00001234, 15), "1.234e-05");
        assert_eq!(float_text(1.0 / 3.0, 15), "0.3333333333333333");
        assert_eq!(float_text(-2.5, 15), "-2.5");
        assert_eq!(float_text(f64::NEG_INFINITY, 15), "-Infinity");
        assert_eq!(float4_text(0.1), "0.1");
        assert_eq!(float4_text(2.0), "2");
        assert_eq!(float4_text(1234567.0), "1.234567e+06");
    }

    #[test]
    fn oids_round_trip() {
        for oid in [
            16, 17, 20, 21, 23, 25, 114, 700, 701, 1042, 1043, 1082, 1083, 1114, 1184, 1186, 1700,
            2950, 3802, 1007, 1009, 2951,
        ] {
            let t = SqlType::from_oid(oid).expect("known oid");
            assert_eq!(t.oid(), oid, "{t:?}");
        }
    }

    #[test]
    fn tagged_fields_keep_their_type() {
        for t in [
            SqlType::Uuid,
            SqlType::Json,
            SqlType::Jsonb,
            SqlType::Varchar,
        ] {
            assert_eq!(SqlType::from_arrow_field(&t.to_arrow_field("c")), t);
        }
        let arr = SqlType::Array(Box::new(SqlType::Uuid));
        assert_eq!(SqlType::from_arrow_field(&arr.to_arrow_field("c")), arr);
    }
}

//! Errors of the SQL layer, each carrying the SQLSTATE a PostgreSQL 15 client would get.
//!
//! A user's mistake (bad SQL, unknown table, bad cast) is an expected error with a specific
//! SQLSTATE; anything else is `XX000` (internal) and logged where it is handled, at the wire.
//! DataFusion reports errors as its own enum with free-text messages; [`SqlError::from`] maps
//! them to the code and, where we can, the wording PostgreSQL uses, so that tests written
//! against PostgreSQL hold for Floe too.

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// SQLSTATE codes used by Floe (see PostgreSQL's `errcodes.txt`).
pub mod sqlstate {
    pub const SUCCESSFUL_COMPLETION: &str = "00000";
    pub const WARNING: &str = "01000";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    pub const INVALID_TRANSACTION_STATE: &str = "25000";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_BINARY_REPRESENTATION: &str = "22P03";
    pub const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
    pub const UNTRANSLATABLE_CHARACTER: &str = "22P05";
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    pub const INVALID_DATETIME_FORMAT: &str = "22007";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const INTERVAL_FIELD_OVERFLOW: &str = "22015";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const DATA_EXCEPTION: &str = "22000";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const INVALID_ESCAPE_SEQUENCE: &str = "22025";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DUPLICATE_ALIAS: &str = "42712";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const CANNOT_COERCE: &str = "42846";
    pub const GROUPING_ERROR: &str = "42803";
    pub const INVALID_PARAMETER_OBJECT: &str = "42P02";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const INDETERMINATE_DATATYPE: &str = "42P18";
    pub const CANT_CHANGE_RUNTIME_PARAM: &str = "55P02";
    pub const QUERY_CANCELED: &str = "57014";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    pub const INVALID_CURSOR_NAME: &str = "34000";
    pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const INVALID_SAVEPOINT_SPECIFICATION: &str = "3B001";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    pub const DUPLICATE_DATABASE: &str = "42P04";
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const RESERVED_NAME: &str = "42939";
    pub const OBJECT_IN_USE: &str = "55006";
    pub const LOCK_NOT_AVAILABLE: &str = "55P03";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const INVALID_OBJECT_DEFINITION: &str = "42P17";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const FOREIGN_KEY_VIOLATION: &str = "23503";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const DEADLOCK_DETECTED: &str = "40P01";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const SEQUENCE_GENERATOR_LIMIT_EXCEEDED: &str = "2200H";
    pub const DATA_CORRUPTED: &str = "XX001";
    pub const GENERATED_ALWAYS: &str = "428C9";
    pub const BAD_COPY_FILE_FORMAT: &str = "22P04";
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    pub const INVALID_COLUMN_REFERENCE: &str = "42P10";
    pub const IO_ERROR: &str = "58030";
}

/// Result alias for the SQL layer.
pub type SqlResult<T> = Result<T, SqlError>;

/// An error with the SQLSTATE, message, and optional detail/hint PostgreSQL would send.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// Five-character SQLSTATE.
    pub code: &'static str,
    /// Primary human-readable message, PostgreSQL style (lower case, no trailing period).
    pub message: String,
    /// Optional DETAIL line.
    pub detail: Option<String>,
    /// Optional HINT line.
    pub hint: Option<String>,
    /// Optional 1-based character position in the query string.
    pub position: Option<u32>,
    /// Optional CONTEXT line (where it happened, e.g. `COPY t, line 3`); boxed to keep the
    /// error small.
    pub context: Option<Box<str>>,
    /// NaN was converted to a `numeric(p, s)` held as `Decimal128(p, s)`: `(p, s)` (a write
    /// into such a column widens it and runs again; see `crate::numeric::value`).
    pub nan_in_fixed: Option<(u8, u8)>,
}

impl SqlError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SqlError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            context: None,
            nan_in_fixed: None,
        }
    }

    /// Adds a DETAIL line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a CONTEXT line.
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into().into_boxed_str());
        self
    }

    /// Adds a HINT line.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// How a materialized view records an error its defining query raised (the view engine
    /// keeps errors as text): SQLSTATE, message, detail and hint, separated by U+001F.
    pub(crate) fn view_error_text(err: &DataFusionError) -> String {
        let e = from_datafusion(err);
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            e.code,
            e.message,
            e.detail.unwrap_or_default(),
            e.hint.unwrap_or_default()
        )
    }

    /// The error [`SqlError::view_error_text`] recorded (a text without the separators is a
    /// message of its own, XX000).
    pub(crate) fn from_view_message(text: &str) -> SqlError {
        let parts: Vec<&str> = text.split('\u{1f}').collect();
        let [code, message, detail, hint] = parts[..] else {
            return SqlError::internal(text.to_string());
        };
        let mut e = SqlError::new(static_code(code), message);
        if !detail.is_empty() {
            e = e.with_detail(detail);
        }
        if !hint.is_empty() {
            e = e.with_hint(hint);
        }
        e
    }

    /// `0A000`: valid SQL that Floe does not implement (yet).
    pub fn not_supported(what: impl Into<String>) -> Self {
        SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, what)
    }

    /// `42601`.
    pub fn syntax(message: impl Into<String>) -> Self {
        SqlError::new(sqlstate::SYNTAX_ERROR, message)
    }

    /// `XX000`: a bug or an invariant failure on our side.
    pub fn internal(message: impl Into<String>) -> Self {
        SqlError::new(sqlstate::INTERNAL_ERROR, message)
    }

    /// `25P02`, what every statement but ROLLBACK gets inside a failed transaction block.
    pub fn in_failed_transaction() -> Self {
        SqlError::new(
            sqlstate::IN_FAILED_SQL_TRANSACTION,
            "current transaction is aborted, commands ignored until end of transaction block",
        )
    }

    /// `57014`.
    pub fn query_canceled() -> Self {
        SqlError::new(
            sqlstate::QUERY_CANCELED,
            "canceling statement due to user request",
        )
    }

    /// Whether this is an internal error (a bug) rather than a user's mistake.
    pub fn is_internal(&self) -> bool {
        self.code == sqlstate::INTERNAL_ERROR
    }
}

impl From<ParserError> for SqlError {
    fn from(err: ParserError) -> Self {
        syntax_error_from_parser(&err)
    }
}

/// Turns a sqlparser error into PostgreSQL's `syntax error at or near "…"` where we can.
fn syntax_error_from_parser(err: &ParserError) -> SqlError {
    let text = match err {
        ParserError::ParserError(msg) | ParserError::TokenizerError(msg) => msg.clone(),
        ParserError::RecursionLimitExceeded => {
            return SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                "stack depth limit exceeded",
            )
            .with_hint("The statement nests expressions too deeply.");
        }
    };
    // sqlparser: "Expected: an expression, found: FROM at Line: 1, Column: 8"
    if let Some(found) = text.split(", found: ").nth(1) {
        let token = found.split(" at Line:").next().unwrap_or(found).trim();
        let message = if token.eq_ignore_ascii_case("EOF") {
            "syntax error at end of input".to_string()
        } else {
            format!("syntax error at or near \"{token}\"")
        };
        return SqlError::syntax(message).with_detail(text);
    }
    if text.starts_with("trailing junk after numeric literal") {
        return SqlError::syntax(text);
    }
    if text.contains("Unterminated string literal") {
        return SqlError::syntax(format!("unterminated quoted string: {text}"));
    }
    SqlError::syntax(format!("syntax error: {text}"))
}

impl From<ArrowError> for SqlError {
    fn from(err: ArrowError) -> Self {
        from_arrow(&err)
    }
}

fn from_arrow(err: &ArrowError) -> SqlError {
    match err {
        ArrowError::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::ArithmeticOverflow(msg) => SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            out_of_range_message(msg),
        ),
        ArrowError::CastError(msg) | ArrowError::ParseError(msg) => cast_error(msg),
        // Arrow's date/time arithmetic past its range.
        ArrowError::ComputeError(msg) if msg.contains("Timestamp out of range") => {
            SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "timestamp out of range")
        }
        ArrowError::ComputeError(msg) if msg.contains("Overflow") || msg.contains("overflow") => {
            SqlError::new(
                sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                out_of_range_message(msg),
            )
        }
        ArrowError::InvalidArgumentError(msg) => {
            SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, msg.clone())
        }
        ArrowError::ExternalError(inner) => {
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                return from_datafusion(df);
            }
            if let Some(sql) = inner.downcast_ref::<SqlError>() {
                return sql.clone();
            }
            SqlError::internal(inner.to_string())
        }
        other => SqlError::internal(other.to_string()),
    }
}

fn out_of_range_message(msg: &str) -> String {
    if msg.contains("Int16") {
        "smallint out of range".into()
    } else if msg.contains("Int32") {
        "integer out of range".into()
    } else if msg.contains("Int64") {
        "bigint out of range".into()
    } else {
        format!("value out of range: {msg}")
    }
}

/// Maps Arrow's cast failures to PostgreSQL's `invalid input syntax for type …` (22P02) or an
/// out-of-range error (22003).
fn cast_error(msg: &str) -> SqlError {
    // Arrow: "Cannot cast string 'abc' to value of Int32 type"
    if let Some(rest) = msg.strip_prefix("Cannot cast string '") {
        if let Some((value, ty)) = rest.rsplit_once("' to value of ") {
            let ty = ty.trim_end_matches(" type");
            let pg = arrow_name_to_pg(ty);
            // Integer syntax whose value does not fit is out of range, as PostgreSQL says.
            let digits = value.trim_matches([' ', '\t', '\n', '\r']);
            let digits = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            let integer_syntax = matches!(pg, "smallint" | "integer" | "bigint")
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit());
            if msg.contains("overflow") || integer_syntax {
                return SqlError::new(
                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                    format!("value \"{value}\" is out of range for type {pg}"),
                );
            }
            let code = if pg.starts_with("timestamp") || pg == "date" || pg == "time" {
                sqlstate::INVALID_DATETIME_FORMAT
            } else {
                sqlstate::INVALID_TEXT_REPRESENTATION
            };
            return SqlError::new(
                code,
                format!("invalid input syntax for type {pg}: \"{value}\""),
            );
        }
    }
    if msg.contains("Can't cast value") || msg.contains("too large to store") {
        // "Can't cast value 2147483648 to type Int32": PostgreSQL says "integer out of range".
        let target = msg.rsplit_once(" to type ").map(|(_, t)| t.trim());
        let message = match target {
            Some(t @ ("Int16" | "Int32" | "Int64")) => {
                format!("{} out of range", arrow_name_to_pg(t))
            }
            _ => msg.to_string(),
        };
        return SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, message);
    }
    if msg.contains("Cannot cast to") || msg.contains("overflow") {
        return SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, msg.to_string());
    }
    if msg.contains("Error parsing timestamp")
        || msg.contains("Error parsing")
        || msg.contains("date")
    {
        return SqlError::new(sqlstate::INVALID_DATETIME_FORMAT, msg.to_string());
    }
    SqlError::new(sqlstate::INVALID_TEXT_REPRESENTATION, msg.to_string())
}

/// PostgreSQL's name for an Arrow type, as used in error messages.
pub fn arrow_name_to_pg(arrow: &str) -> &str {
    match arrow {
        "Int16" => "smallint",
        "Int32" => "integer",
        "Int64" => "bigint",
        "Float32" => "real",
        "Float64" => "double precision",
        "Boolean" => "boolean",
        "Date32" => "date",
        "Utf8" | "Utf8View" | "LargeUtf8" => "text",
        a if a.starts_with("Decimal") => "numeric",
        a if a.starts_with("Timestamp") && a.contains("Some") => "timestamp with time zone",
        a if a.starts_with("Timestamp") => "timestamp without time zone",
        a if a.starts_with("Time64") => "time without time zone",
        a if a.starts_with("Interval") => "interval",
        other => other,
    }
}

impl From<SqlError> for DataFusionError {
    fn from(err: SqlError) -> Self {
        DataFusionError::External(Box::new(err))
    }
}

impl From<floe_storage::StorageError> for SqlError {
    fn from(err: floe_storage::StorageError) -> Self {
        use floe_storage::StorageError as E;
        match err {
            E::SerializationFailure => {
                SqlError::new(sqlstate::SERIALIZATION_FAILURE, err.to_string())
            }
            E::SerializationConflict { ref detail } => {
                let detail = detail.clone();
                SqlError::new(sqlstate::SERIALIZATION_FAILURE, err.to_string())
                    .with_detail(detail)
                    .with_hint("The transaction might succeed if retried.")
            }
            E::LockTimeout => SqlError::new(sqlstate::LOCK_NOT_AVAILABLE, err.to_string()),
            E::Deadlock { ref detail } => {
                let detail = detail.clone();
                SqlError::new(sqlstate::DEADLOCK_DETECTED, err.to_string())
                    .with_detail(detail)
                    .with_hint("See server log for query details.")
            }
            E::UniqueViolation { ref detail, .. } => {
                let detail = detail.clone();
                SqlError::new(sqlstate::UNIQUE_VIOLATION, err.to_string()).with_detail(detail)
            }
            E::DuplicateInIndex { ref detail, .. } => {
                let detail = detail.clone();
                SqlError::new(sqlstate::UNIQUE_VIOLATION, err.to_string()).with_detail(detail)
            }
            E::MemoryLimit { ref detail } => {
                let detail = detail.clone();
                SqlError::new(sqlstate::OUT_OF_MEMORY, err.to_string())
                    .with_detail(detail)
                    .with_hint("Raise --memory-limit, or write less in one transaction.")
            }
            E::UndefinedTable(_) => SqlError::new(sqlstate::UNDEFINED_TABLE, err.to_string()),
            E::DuplicateTable(_) => SqlError::new(sqlstate::DUPLICATE_TABLE, err.to_string()),
            E::Corrupt { .. } => SqlError::new(sqlstate::DATA_CORRUPTED, err.to_string()),
            E::Io(_) | E::Engine(_) | E::Poisoned | E::Cold(_) => {
                SqlError::new(sqlstate::IO_ERROR, err.to_string())
            }
            E::ShuttingDown => SqlError::new(sqlstate::ADMIN_SHUTDOWN, err.to_string()),
            E::Arrow(ref arrow) => from_arrow(arrow),
            E::Internal(_) => SqlError::internal(err.to_string()),
        }
    }
}

/// A SQLSTATE as the `'static` string errors carry: each distinct code is interned once.
fn static_code(code: &str) -> &'static str {
    static CODES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    if code.len() != 5 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return sqlstate::INTERNAL_ERROR;
    }
    let mut codes = CODES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = codes.iter().find(|c| **c == code) {
        return known;
    }
    let interned: &'static str = Box::leak(code.to_string().into_boxed_str());
    codes.push(interned);
    interned
}

impl From<DataFusionError> for SqlError {
    fn from(err: DataFusionError) -> Self {
        from_datafusion(&err)
    }
}

/// A storage error seen through a reference (inside a DataFusion error).
fn storage_error_ref(err: &floe_storage::StorageError) -> SqlError {
    use floe_storage::StorageError as E;
    let owned = match err {
        E::SerializationFailure => E::SerializationFailure,
        E::SerializationConflict { detail } => E::SerializationConflict {
            detail: detail.clone(),
        },
        E::LockTimeout => E::LockTimeout,
        E::Deadlock { detail } => E::Deadlock {
            detail: detail.clone(),
        },
        E::UniqueViolation { constraint, detail } => E::UniqueViolation {
            constraint: constraint.clone(),
            detail: detail.clone(),
        },
        E::MemoryLimit { detail } => E::MemoryLimit {
            detail: detail.clone(),
        },
        E::DuplicateInIndex { index, detail } => E::DuplicateInIndex {
            index: index.clone(),
            detail: detail.clone(),
        },
        E::Arrow(arrow) => return from_arrow(arrow),
        // A cold read that failed inside a scan: the same 58030 as outside one.
        E::Cold(_) | E::Io(_) | E::Engine(_) | E::Poisoned => {
            return SqlError::new(sqlstate::IO_ERROR, err.to_string())
        }
        other => return SqlError::internal(other.to_string()),
    };
    SqlError::from(owned)
}

pub(crate) fn from_datafusion(err: &DataFusionError) -> SqlError {
    match err {
        DataFusionError::SQL(parser, _) => syntax_error_from_parser(parser),
        DataFusionError::ArrowError(arrow, _) => from_arrow(arrow),
        DataFusionError::SchemaError(schema, _) => from_schema(schema),
        DataFusionError::NotImplemented(msg) => from_not_implemented(msg),
        DataFusionError::Plan(msg) => from_plan_message(msg),
        DataFusionError::Execution(msg) => from_execution_message(msg),
        DataFusionError::ExecutionJoin(e) => SqlError::internal(e.to_string()),
        DataFusionError::ResourcesExhausted(msg) => {
            SqlError::new(sqlstate::OUT_OF_MEMORY, format!("out of memory: {msg}"))
                .with_hint("Raise --memory-limit or make the query need less memory.")
        }
        DataFusionError::Context(_, inner) => from_datafusion(inner),
        DataFusionError::Diagnostic(_, inner) => from_datafusion(inner),
        DataFusionError::Shared(inner) => from_datafusion(inner),
        DataFusionError::Collection(errs) => match errs.first() {
            Some(first) => from_datafusion(first),
            None => SqlError::internal("empty error collection"),
        },
        DataFusionError::External(inner) => {
            if let Some(sql) = inner.downcast_ref::<SqlError>() {
                return sql.clone();
            }
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                return from_datafusion(df);
            }
            if let Some(arrow) = inner.downcast_ref::<ArrowError>() {
                return from_arrow(arrow);
            }
            if let Some(storage) = inner.downcast_ref::<floe_storage::StorageError>() {
                return storage_error_ref(storage);
            }
            SqlError::internal(inner.to_string())
        }
        DataFusionError::Configuration(msg) => {
            SqlError::new(sqlstate::INVALID_PARAMETER_VALUE, msg.clone())
        }
        other => {
            let msg = other.to_string();
            classify_message(&msg).unwrap_or_else(|| SqlError::internal(msg))
        }
    }
}

fn from_schema(err: &SchemaError) -> SqlError {
    match err {
        SchemaError::FieldNotFound { field, .. } => SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{}\" does not exist", field.name),
        ),
        SchemaError::AmbiguousReference { field } => SqlError::new(
            sqlstate::AMBIGUOUS_COLUMN,
            format!("column reference \"{}\" is ambiguous", field.name),
        ),
        SchemaError::DuplicateQualifiedField { name, .. }
        | SchemaError::DuplicateUnqualifiedField { name } => SqlError::new(
            sqlstate::DUPLICATE_ALIAS,
            format!("table name \"{name}\" specified more than once"),
        ),
    }
}

fn from_not_implemented(msg: &str) -> SqlError {
    if let Some(e) = classify_message(msg) {
        return e;
    }
    SqlError::not_supported(format!("not supported: {msg}"))
}

fn from_plan_message(msg: &str) -> SqlError {
    classify_message(msg).unwrap_or_else(|| SqlError::new(sqlstate::SYNTAX_ERROR, msg.to_string()))
}

fn from_execution_message(msg: &str) -> SqlError {
    classify_message(msg)
        .unwrap_or_else(|| SqlError::new(sqlstate::DATA_EXCEPTION, msg.to_string()))
}

/// Recognises DataFusion's free-text messages for the errors PostgreSQL has codes for.
fn classify_message(msg: &str) -> Option<SqlError> {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        return Some(SqlError::new(
            sqlstate::DIVISION_BY_ZERO,
            "division by zero",
        ));
    }
    // DataFusion's split_part.
    if lower.contains("field position must not be zero") {
        return Some(SqlError::new(
            sqlstate::INVALID_PARAMETER_VALUE,
            "field position must not be zero",
        ));
    }
    if let Some(name) = between(msg, "table '", "' not found") {
        let name = name.rsplit('.').next().unwrap_or(name);
        return Some(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        ));
    }
    if let Some(name) = between(msg, "Invalid function '", "'") {
        return Some(SqlError::new(
            sqlstate::UNDEFINED_FUNCTION,
            format!("function {name} does not exist"),
        ).with_hint("No function matches the given name and argument types. You might need to add explicit type casts."));
    }
    if lower.contains("no function matches")
        || lower.contains("failed to coerce arguments")
        || lower.contains("function '") && lower.contains("user-defined coercion failed")
    {
        return Some(
            SqlError::new(sqlstate::UNDEFINED_FUNCTION, format!("function does not exist: {msg}"))
                .with_hint("No function matches the given name and argument types. You might need to add explicit type casts."),
        );
    }
    if lower.contains("cannot infer common argument type")
        || lower.contains("cannot coerce")
        || lower.contains("there isn't a common type")
    {
        return Some(SqlError::new(sqlstate::DATATYPE_MISMATCH, msg.to_string()));
    }
    if lower.contains("unsupported sql type") || lower.contains("unsupported data type") {
        if let Some(name) = msg.rsplit(' ').next() {
            return Some(SqlError::new(
                sqlstate::UNDEFINED_OBJECT,
                format!("type \"{}\" does not exist", name.to_ascii_lowercase()),
            ));
        }
    }
    if lower.contains("overflow") {
        return Some(SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            out_of_range_message(msg),
        ));
    }
    if lower.contains("cannot cast string") {
        if let Some(start) = msg.find("Cannot cast string") {
            return Some(cast_error(msg[start..].trim_end()));
        }
    }
    if lower.contains("no field named") {
        let name = between(msg, "No field named ", ".")
            .or_else(|| msg.split("No field named ").nth(1))
            .unwrap_or(msg)
            .trim_matches(|c| c == '"' || c == '\'' || c == ' ');
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        return Some(SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist"),
        ));
    }
    if lower.contains("must appear in the group by clause")
        || lower.contains("projection references non-aggregate values")
    {
        return Some(SqlError::new(sqlstate::GROUPING_ERROR, msg.to_string()));
    }
    if lower.contains("scalar subquery") && lower.contains("more than one row") {
        return Some(SqlError::new(
            sqlstate::CARDINALITY_VIOLATION,
            "more than one row returned by a subquery used as an expression",
        ));
    }
    if lower.contains("resources exhausted") {
        return Some(SqlError::new(sqlstate::OUT_OF_MEMORY, msg.to_string()));
    }
    None
}

fn between<'a>(msg: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = msg.find(start)? + start.len();
    let rest = &msg[from..];
    let to = rest.find(end)?;
    Some(&rest[..to])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_errors_read_like_postgres() {
        let err = SqlError::from(ParserError::ParserError(
            "Expected: an expression, found: FROM at Line: 1, Column: 8".into(),
        ));
        assert_eq!(err.code, sqlstate::SYNTAX_ERROR);
        assert_eq!(err.message, "syntax error at or near \"FROM\"");
        let err = SqlError::from(ParserError::ParserError(
            "Expected: an expression, found: EOF".into(),
        ));
        assert_eq!(err.message, "syntax error at end of input");
    }

    #[test]
    fn casts_map_to_invalid_text_representation() {
        let err = SqlError::from(ArrowError::CastError(
            "Cannot cast string 'abc' to value of Int32 type".into(),
        ));
        assert_eq!(err.code, sqlstate::INVALID_TEXT_REPRESENTATION);
        assert_eq!(
            err.message,
            "invalid input syntax for type integer: \"abc\""
        );
    }

    #[test]
    fn integer_syntax_out_of_range_is_22003() {
        let err = SqlError::from(ArrowError::CastError(
            "Cannot cast string ' -8000000000000000' to value of Int32 type".into(),
        ));
        assert_eq!(err.code, sqlstate::NUMERIC_VALUE_OUT_OF_RANGE);
        assert_eq!(
            err.message,
            "value \" -8000000000000000\" is out of range for type integer"
        );
    }

    #[test]
    fn missing_table_is_42p01() {
        let err = SqlError::from(DataFusionError::Plan(
            "table 'datafusion.public.nope' not found".into(),
        ));
        assert_eq!(err.code, sqlstate::UNDEFINED_TABLE);
        assert_eq!(err.message, "relation \"nope\" does not exist");
    }

    #[test]
    fn divide_by_zero_is_22012() {
        let err = SqlError::from(DataFusionError::ArrowError(
            Box::new(ArrowError::DivideByZero),
            None,
        ));
        assert_eq!(err.code, sqlstate::DIVISION_BY_ZERO);
    }
}

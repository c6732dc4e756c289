//! Session configuration parameters: what `SET`, `SHOW`, `RESET` and `current_setting` see.
//!
//! Only parameters a client can rely on are listed; each has PostgreSQL 15's default and
//! spelling. Parameters marked `reported` are sent to the client as ParameterStatus at startup
//! and whenever they change, as PostgreSQL does for `GUC_REPORT` parameters. Names are
//! case-insensitive; custom parameters with a dot (`myapp.x`) are accepted like PostgreSQL's
//! placeholder variables.

use std::collections::BTreeMap;

use crate::error::{sqlstate, SqlError, SqlResult};

/// PostgreSQL version Floe reports, and speaks the wire protocol of.
pub const SERVER_VERSION: &str = "15.0";
/// `server_version_num` matching [`SERVER_VERSION`].
pub const SERVER_VERSION_NUM: &str = "150000";

/// One known parameter.
struct ParamSpec {
    /// Canonical spelling, as `SHOW ALL` prints it.
    name: &'static str,
    default: &'static str,
    /// Sent as ParameterStatus (PostgreSQL's `GUC_REPORT`).
    reported: bool,
    /// Read-only: `SET` fails with 55P02.
    read_only: bool,
    description: &'static str,
}

const fn p(
    name: &'static str,
    default: &'static str,
    reported: bool,
    read_only: bool,
    description: &'static str,
) -> ParamSpec {
    ParamSpec {
        name,
        default,
        reported,
        read_only,
        description,
    }
}

const PARAMS: &[ParamSpec] = &[
    p(
        "application_name",
        "",
        true,
        false,
        "Sets the application name to be reported in statistics and logs.",
    ),
    p(
        "bytea_output",
        "hex",
        false,
        false,
        "Sets the output format for bytea.",
    ),
    p(
        "client_encoding",
        "UTF8",
        true,
        false,
        "Sets the client's character set encoding.",
    ),
    p(
        "client_min_messages",
        "notice",
        false,
        false,
        "Sets the message levels that are sent to the client.",
    ),
    p(
        "DateStyle",
        "ISO, MDY",
        true,
        false,
        "Sets the display format for date and time values.",
    ),
    p(
        "default_transaction_isolation",
        "read committed",
        false,
        false,
        "Sets the transaction isolation level of each new transaction.",
    ),
    p(
        "default_transaction_read_only",
        "off",
        true,
        false,
        "Sets the default read-only status of new transactions.",
    ),
    p(
        "extra_float_digits",
        "1",
        false,
        false,
        "Sets the number of digits displayed for floating-point values.",
    ),
    p(
        "idle_in_transaction_session_timeout",
        "0",
        false,
        false,
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    p(
        "in_hot_standby",
        "off",
        true,
        true,
        "Shows whether hot standby is currently active.",
    ),
    p(
        "integer_datetimes",
        "on",
        true,
        true,
        "Shows whether datetimes are integer based.",
    ),
    p(
        "IntervalStyle",
        "postgres",
        true,
        false,
        "Sets the display format for interval values.",
    ),
    p(
        "is_superuser",
        "on",
        true,
        true,
        "Shows whether the current user is a superuser.",
    ),
    p(
        "lc_collate",
        "C.UTF-8",
        false,
        true,
        "Shows the collation order locale.",
    ),
    p(
        "lc_ctype",
        "C.UTF-8",
        false,
        true,
        "Shows the character classification and case conversion locale.",
    ),
    p(
        "lc_messages",
        "C",
        false,
        false,
        "Sets the language in which messages are displayed.",
    ),
    p(
        "lc_monetary",
        "C",
        false,
        false,
        "Sets the locale for formatting monetary amounts.",
    ),
    p(
        "lc_numeric",
        "C",
        false,
        false,
        "Sets the locale for formatting numbers.",
    ),
    p(
        "lc_time",
        "C",
        false,
        false,
        "Sets the locale for formatting date and time values.",
    ),
    p(
        "lock_timeout",
        "0",
        false,
        false,
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    p(
        "max_identifier_length",
        "63",
        false,
        true,
        "Shows the maximum identifier length.",
    ),
    p(
        "search_path",
        "\"$user\", public",
        false,
        false,
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    p(
        "server_encoding",
        "UTF8",
        true,
        true,
        "Shows the server (database) character set encoding.",
    ),
    p(
        "server_version",
        SERVER_VERSION,
        true,
        true,
        "Shows the server version.",
    ),
    p(
        "server_version_num",
        SERVER_VERSION_NUM,
        false,
        true,
        "Shows the server version as an integer.",
    ),
    p(
        "session_authorization",
        "postgres",
        true,
        true,
        "Sets the session user name.",
    ),
    p(
        "standard_conforming_strings",
        "on",
        true,
        false,
        "Causes '...' strings to treat backslashes literally.",
    ),
    p(
        "statement_timeout",
        "0",
        false,
        false,
        "Sets the maximum allowed duration of any statement.",
    ),
    p(
        "synchronous_commit",
        "on",
        false,
        false,
        "Sets the current transaction's synchronization level.",
    ),
    p(
        "TimeZone",
        "UTC",
        true,
        false,
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    p(
        "transaction_isolation",
        "read committed",
        false,
        false,
        "Sets the current transaction's isolation level.",
    ),
    p(
        "transaction_read_only",
        "off",
        false,
        false,
        "Sets the current transaction's read-only status.",
    ),
    p("row_security", "on", false, false, "Enable row security."),
    p("jit", "off", false, false, "Allow JIT compilation."),
    p(
        "max_connections",
        // The server's limit replaces this (`SessionVars::with_server_setting`).
        "100",
        false,
        true,
        "Sets the maximum number of concurrent connections.",
    ),
    p(
        "work_mem",
        "4MB",
        false,
        false,
        "Sets the maximum memory to be used for query workspaces.",
    ),
];

fn spec(name: &str) -> Option<&'static ParamSpec> {
    PARAMS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// A parameter whose value changed and must be reported to the client.
pub type ParameterChange = (String, String);

/// The session's parameter values. Unset parameters read as their default.
#[derive(Debug, Clone, Default)]
pub struct SessionVars {
    /// Lower-cased name to value, for parameters set away from their default.
    values: BTreeMap<String, String>,
    /// Values set at connection start (startup packet), which RESET returns to.
    startup: BTreeMap<String, String>,
    /// Changes on every SET/RESET to a number never used before, so two equal stamps mean
    /// equal values (a clone restored at ROLLBACK keeps its old stamp): lets callers cache
    /// what they derive from the settings.
    stamp: u64,
}

/// Source of [`SessionVars::stamp`] values.
static NEXT_STAMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl SessionVars {
    /// Parameters given in the startup packet (`options`, `application_name`, …). Unknown ones
    /// are ignored; invalid values are errors, as in PostgreSQL.
    pub fn from_startup<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> SqlResult<Self> {
        let mut vars = SessionVars::default();
        for (name, value) in params {
            if matches!(name, "user" | "database" | "replication" | "options") {
                continue;
            }
            if spec(name).is_some() || name.contains('.') {
                vars.set(name, value)?;
            }
        }
        vars.startup = vars.values.clone();
        Ok(vars)
    }

    /// Identifies this exact set of values (see the field's doc).
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    fn touch(&mut self) {
        self.stamp = NEXT_STAMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The current value of `name`, or 42704 if there is no such parameter.
    /// These settings with a read-only parameter the server decides (`max_connections`) set
    /// to the server's value; RESET keeps it.
    pub fn with_server_setting(mut self, name: &str, value: &str) -> Self {
        let key = name.to_ascii_lowercase();
        self.values.insert(key.clone(), value.to_string());
        self.startup.insert(key, value.to_string());
        self
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> SqlResult<String> {
        let key = name.to_ascii_lowercase();
        if let Some(v) = self.values.get(&key) {
            return Ok(v.clone());
        }
        match spec(name) {
            Some(spec) => Ok(spec.default.to_string()),
            None => Err(unrecognized(name)),
        }
    }

    /// Like [`get`](Self::get) but `None` for an unknown parameter (`current_setting(name, true)`).
    pub fn get_opt(&self, name: &str) -> Option<String> {
        self.get(name).ok()
    }

    /// Sets `name` to `value` after validating it; returns the change to report, if any.
    pub fn set(&mut self, name: &str, value: &str) -> SqlResult<Option<ParameterChange>> {
        self.touch();
        let spec = match spec(name) {
            Some(spec) => spec,
            None if name.contains('.') => {
                self.values
                    .insert(name.to_ascii_lowercase(), value.to_string());
                return Ok(None);
            }
            None => return Err(unrecognized(name)),
        };
        if spec.read_only {
            return Err(SqlError::new(
                sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                format!(
                    "parameter \"{}\" cannot be changed",
                    spec.name.to_ascii_lowercase()
                ),
            ));
        }
        let value = normalize(spec, value)?;
        self.values
            .insert(spec.name.to_ascii_lowercase(), value.clone());
        Ok(spec.reported.then(|| (spec.name.to_string(), value)))
    }

    /// Returns `name` to its connection-start value.
    pub fn reset(&mut self, name: &str) -> SqlResult<Option<ParameterChange>> {
        self.touch();
        let key = name.to_ascii_lowercase();
        let spec = match spec(name) {
            Some(spec) => spec,
            None if name.contains('.') => {
                self.values.remove(&key);
                return Ok(None);
            }
            None => return Err(unrecognized(name)),
        };
        match self.startup.get(&key) {
            Some(v) => {
                self.values.insert(key, v.clone());
            }
            None => {
                self.values.remove(&key);
            }
        }
        let value = self.get(spec.name)?;
        Ok(spec.reported.then(|| (spec.name.to_string(), value)))
    }

    /// `RESET ALL`: every parameter back to its connection-start value.
    pub fn reset_all(&mut self) -> Vec<ParameterChange> {
        self.touch();
        let changed: Vec<String> = self.values.keys().cloned().collect();
        self.values = self.startup.clone();
        changed
            .iter()
            .filter_map(|k| spec(k))
            .filter(|s| s.reported)
            .map(|s| (s.name.to_string(), self.get(s.name).unwrap_or_default()))
            .collect()
    }

    /// Every parameter's canonical name as `SHOW` prints it in its column header.
    pub fn canonical_name(name: &str) -> String {
        match spec(name) {
            Some(spec) => spec.name.to_string(),
            None => name.to_ascii_lowercase(),
        }
    }

    /// `SHOW ALL` rows: name, setting, description.
    pub fn show_all(&self) -> Vec<(String, String, String)> {
        PARAMS
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    self.get(s.name).unwrap_or_default(),
                    s.description.to_string(),
                )
            })
            .collect()
    }

    /// The parameters sent as ParameterStatus when the connection starts.
    pub fn reported(&self) -> Vec<ParameterChange> {
        PARAMS
            .iter()
            .filter(|s| s.reported)
            .map(|s| (s.name.to_string(), self.get(s.name).unwrap_or_default()))
            .collect()
    }

    /// `statement_timeout` in milliseconds (0 = none).
    pub fn statement_timeout_ms(&self) -> u64 {
        self.get("statement_timeout")
            .ok()
            .and_then(|v| parse_duration_ms(&v))
            .unwrap_or(0)
    }

    /// `idle_in_transaction_session_timeout`: how long a session may sit idle inside a
    /// transaction block before it is ended; `None` for no limit (0).
    pub fn idle_in_transaction_timeout(&self) -> Option<std::time::Duration> {
        self.get("idle_in_transaction_session_timeout")
            .ok()
            .and_then(|v| parse_duration_ms(&v))
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis)
    }

    /// `lock_timeout`: how long one lock wait may last; `None` for no limit (0).
    pub fn lock_timeout(&self) -> Option<std::time::Duration> {
        self.get("lock_timeout")
            .ok()
            .and_then(|v| parse_duration_ms(&v))
            .filter(|ms| *ms > 0)
            .map(std::time::Duration::from_millis)
    }
}

fn unrecognized(name: &str) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_OBJECT,
        format!(
            "unrecognized configuration parameter \"{}\"",
            name.to_ascii_lowercase()
        ),
    )
}

fn invalid_value(spec: &ParamSpec, value: &str) -> SqlError {
    SqlError::new(
        sqlstate::INVALID_PARAMETER_VALUE,
        format!(
            "invalid value for parameter \"{}\": \"{}\"",
            spec.name.to_ascii_lowercase(),
            value
        ),
    )
}

/// Validates and canonicalises a value the way PostgreSQL reports it back.
fn normalize(spec: &ParamSpec, value: &str) -> SqlResult<String> {
    let lower = value.trim().to_ascii_lowercase();
    match spec.name {
        // PostgreSQL ignores everything but letters and digits in encoding names
        // (asyncpg sends 'utf-8' with the quotes).
        "client_encoding" => match lower
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .as_str()
        {
            "utf8" | "unicode" => Ok("UTF8".into()),
            _ => Err(SqlError::not_supported(format!(
                "conversion between {value} and UTF8 is not supported"
            ))
            .with_hint("Floe speaks UTF8 only.")),
        },
        "DateStyle" => normalize_datestyle(spec, value),
        "IntervalStyle" => match lower.as_str() {
            "postgres" => Ok(lower),
            "iso_8601" | "sql_standard" | "postgres_verbose" => Err(SqlError::not_supported(
                format!("IntervalStyle {value} is not supported; only postgres is"),
            )),
            _ => Err(invalid_value(spec, value)),
        },
        "TimeZone" => normalize_timezone(spec, value),
        "standard_conforming_strings" => match parse_bool(&lower) {
            Some(true) => Ok("on".into()),
            Some(false) => Err(SqlError::not_supported(
                "standard_conforming_strings = off is not supported",
            )),
            None => Err(invalid_value(spec, value)),
        },
        "default_transaction_read_only" | "transaction_read_only" | "row_security" | "jit" => {
            parse_bool(&lower)
                .map(|b| if b { "on".into() } else { "off".into() })
                .ok_or_else(|| invalid_value(spec, value))
        }
        "default_transaction_isolation" | "transaction_isolation" => match lower.as_str() {
            "read uncommitted" | "read committed" | "repeatable read" | "serializable" => Ok(lower),
            _ => Err(invalid_value(spec, value)),
        },
        "extra_float_digits" => match lower.parse::<i32>() {
            Ok(n) if (-15..=3).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid_value(spec, value)),
        },
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            match parse_duration_ms(&lower) {
                Some(ms) => Ok(
                    if ms == 0 || value.trim().chars().all(|c| c.is_ascii_digit()) {
                        ms.to_string()
                    } else {
                        value.trim().to_string()
                    },
                ),
                None => Err(invalid_value(spec, value)),
            }
        }
        "bytea_output" => match lower.as_str() {
            "hex" => Ok(lower),
            "escape" => Err(SqlError::not_supported(
                "bytea_output = escape is not supported",
            )),
            _ => Err(invalid_value(spec, value)),
        },
        "client_min_messages" => match lower.as_str() {
            "debug5" | "debug4" | "debug3" | "debug2" | "debug1" | "debug" | "log" | "notice"
            | "warning" | "error" => Ok(lower),
            _ => Err(invalid_value(spec, value)),
        },
        _ => Ok(value.to_string()),
    }
}

fn normalize_datestyle(spec: &ParamSpec, value: &str) -> SqlResult<String> {
    let mut style = "ISO";
    let mut order = "MDY";
    for part in value.split(',').map(|s| s.trim().to_ascii_uppercase()) {
        match part.as_str() {
            "ISO" => style = "ISO",
            "MDY" | "US" | "NONEURO" | "NONEUROPEAN" => order = "MDY",
            "DMY" | "EURO" | "EUROPEAN" => order = "DMY",
            "YMD" => order = "YMD",
            "SQL" | "POSTGRES" | "GERMAN" => {
                return Err(SqlError::not_supported(format!(
                    "DateStyle {part} is not supported; only ISO output is"
                )))
            }
            "DEFAULT" => {}
            _ => return Err(invalid_value(spec, value)),
        }
    }
    Ok(format!("{style}, {order}"))
}

fn normalize_timezone(spec: &ParamSpec, value: &str) -> SqlResult<String> {
    let trimmed = value.trim();
    if trimmed.eq_ignore_ascii_case("utc") || trimmed.eq_ignore_ascii_case("gmt") {
        return Ok("UTC".into());
    }
    if trimmed.eq_ignore_ascii_case("default") || trimmed.eq_ignore_ascii_case("local") {
        return Ok("UTC".into());
    }
    if timezone_offset(trimmed).is_some() || trimmed.parse::<chrono_tz::Tz>().is_ok() {
        return Ok(trimmed.to_string());
    }
    Err(invalid_value(spec, value))
}

/// A fixed offset like `+05:30`, `-08`, or a plain number of hours (POSIX sign inverted, as in
/// PostgreSQL: `SET TIME ZONE -8` means UTC-8).
pub fn timezone_offset(value: &str) -> Option<String> {
    if let Ok(hours) = value.parse::<f64>() {
        if hours.abs() <= 15.0 {
            let total = (hours * 60.0).round() as i64;
            let sign = if total < 0 { '-' } else { '+' };
            let total = total.abs();
            return Some(format!("{sign}{:02}:{:02}", total / 60, total % 60));
        }
        return None;
    }
    let bytes = value.as_bytes();
    if bytes.len() >= 3 && (bytes[0] == b'+' || bytes[0] == b'-') {
        let rest = &value[1..];
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let h: u32 = h.parse().ok()?;
        let m: u32 = m.parse().ok()?;
        if h <= 15 && m < 60 {
            return Some(format!("{}{:02}:{:02}", &value[..1], h, m));
        }
    }
    None
}

/// The time zone name DataFusion/Arrow understand for a TimeZone setting.
pub fn arrow_timezone(setting: &str) -> String {
    if setting.eq_ignore_ascii_case("utc") {
        return "+00:00".into();
    }
    timezone_offset(setting).unwrap_or_else(|| setting.to_string())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some(true),
        "off" | "false" | "no" | "0" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Parses `500`, `500ms`, `2s`, `1min`, `1h` into milliseconds.
fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let num: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    num.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_set() {
        let mut vars = SessionVars::default();
        assert_eq!(vars.get("datestyle").unwrap(), "ISO, MDY");
        assert_eq!(vars.get("TIMEZONE").unwrap(), "UTC");
        let change = vars.set("application_name", "psql").unwrap();
        assert_eq!(change, Some(("application_name".into(), "psql".into())));
        assert_eq!(vars.get("application_name").unwrap(), "psql");
        assert_eq!(
            vars.get("nope").unwrap_err().code,
            sqlstate::UNDEFINED_OBJECT
        );
        assert_eq!(
            vars.set("server_version", "1").unwrap_err().code,
            sqlstate::CANT_CHANGE_RUNTIME_PARAM
        );
        vars.set("myapp.tenant", "7").unwrap();
        assert_eq!(vars.get("myapp.tenant").unwrap(), "7");
    }

    #[test]
    fn reset_returns_to_startup_value() {
        let mut vars = SessionVars::from_startup([("application_name", "app")]).unwrap();
        vars.set("application_name", "other").unwrap();
        vars.reset("application_name").unwrap();
        assert_eq!(vars.get("application_name").unwrap(), "app");
    }

    #[test]
    fn timezones() {
        let mut vars = SessionVars::default();
        vars.set("TimeZone", "Europe/Berlin").unwrap();
        assert!(vars.set("TimeZone", "Mars/Olympus").is_err());
        assert_eq!(timezone_offset("-8").as_deref(), Some("-08:00"));
        assert_eq!(arrow_timezone("UTC"), "+00:00");
    }

    #[test]
    fn statement_timeout_parses_units() {
        let mut vars = SessionVars::default();
        vars.set("statement_timeout", "2s").unwrap();
        assert_eq!(vars.statement_timeout_ms(), 2000);
        vars.set("statement_timeout", "150").unwrap();
        assert_eq!(vars.statement_timeout_ms(), 150);
    }
}

//! Rewrites that let DataFusion answer the catalog queries clients send (psql's `\d`, pgbench,
//! drivers' introspection), applied to the parsed statement before planning.
//!
//! Each rewrite keeps PostgreSQL's meaning:
//! - `pg_catalog.f(…)` calls `f`, and unqualified `pg_class` & co. read `pg_catalog` (it comes
//!   first on PostgreSQL's search path);
//! - `OPERATOR(pg_catalog.~)` is `~`; `COLLATE …` is dropped (Floe compares bytes);
//! - casts to `pg_catalog.text` & co. name the plain type;
//! - `'name'::regclass` (`regtype`, `regnamespace`, `regrole`) becomes the OID, resolved along
//!   the session's search path (an unknown name is PostgreSQL's error); `x::regclass` of a
//!   value prints the name (`floe_regclass(x)`), except where it is compared or cast back to
//!   an integer;
//! - `to_regclass(name)` (`to_regtype`, `to_regproc`, `to_regnamespace`, `to_regrole`) looks the
//!   name up when it runs (NULL if there is no such object) and prints like `x::regclass`;
//! - `current_schemas(b)`, `pg_table_is_visible(oid)`, `pg_get_serial_sequence(t, c)` and
//!   `pg_settings` see the session's search path, database and settings;
//! - `array_position`, `array_length`, `cardinality` and `array_ndims` are `integer`s, as in
//!   PostgreSQL;
//! - `ARRAY(subquery)` aggregates the subquery (`array_agg`), or maps the array for
//!   `ARRAY(SELECT f(x) FROM unnest(a) x)` (`array_transform`);
//! - a correlated scalar subquery in a select list that is not aggregated collects its rows
//!   (`array_agg`, or `first_value` in its order under `LIMIT 1`) and `floe_single_row` takes
//!   the one row, failing with 21000 on more as PostgreSQL does (see `crate::subquery`), and
//!   `EXISTS (…)` in a select list becomes a count, which DataFusion can decorrelate;
//! - a query that must return no rows because it inner-joins a catalog table Floe never fills
//!   (`pg_policy`, `pg_inherits`, `pg_publication`, …) is answered by an empty row set with the
//!   same column names, so constructs DataFusion cannot plan there do not matter.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, DataType, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, Ident, JoinOperator, LambdaFunction, LambdaFunctionParameter, LambdaSyntax,
    ObjectName, ObjectNamePart, OneOrManyWithParens, OrderByKind, Query, Select, SelectItem,
    SetExpr, SetOperator, Statement, TableFactor, TableWithJoins, Value, Visit, VisitMut, Visitor,
    VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use floe_storage::Db;

use super::oids;
use super::system::{self, PG_SETTINGS};
use super::table::{Kind, V};
use crate::colnames::HIDDEN_SUFFIX;
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::SqlType;
use crate::vars::SessionVars;

const PG_CATALOG: &str = "pg_catalog";

/// What the catalog rewrite reads of the session running the statement (implemented by
/// [`crate::session::Session`]; tests can supply their own).
pub(crate) trait CatalogContext {
    /// The storage holding the database's relations.
    fn db(&self) -> &Arc<Db>;
    /// The connected database's name.
    fn database(&self) -> &str;
    /// The schemas of `search_path` that exist, in order.
    fn search_path(&self) -> Vec<String>;
    /// Where relation names are looked up: the session's temporary schema first.
    fn relation_path(&self) -> Vec<String>;
    /// The session's settings (`pg_settings`).
    fn vars(&self) -> &SessionVars;
    /// The session's temporary schema, once it has one.
    fn temp_schema(&self) -> Option<String>;
}

/// Rewrites `statement` for the catalog, as seen by `session`.
pub(crate) fn rewrite_statement(
    statement: &mut Statement,
    session: &dyn CatalogContext,
) -> SqlResult<()> {
    let ctes = cte_names(statement);
    let mut expressions = Expressions {
        session,
        path: session.search_path(),
        relation_path: session.relation_path(),
        ctes: &ctes,
        error: None,
    };
    let _ = statement.visit(&mut expressions);
    if let Some(err) = expressions.error {
        return Err(err);
    }
    let _ = statement.visit(&mut Structure { ctes: &ctes });
    Ok(())
}

/// `a.b."C"` as its parts: unquoted parts lower-cased, quoted ones exact.
pub(crate) fn parse_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == '.' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            part = part.trim().to_string();
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

fn ident_key(ident: &Ident) -> String {
    crate::names::ident_name(ident)
}

fn cte_names(statement: &Statement) -> HashSet<String> {
    struct Ctes(HashSet<String>);
    impl Visitor for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.insert(ident_key(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut ctes = Ctes(HashSet::new());
    let _ = statement.visit(&mut ctes);
    ctes.0
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

fn parse_query(sql: &str) -> Option<Box<Query>> {
    match Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statement())
        .ok()?
    {
        Statement::Query(q) => Some(q),
        _ => None,
    }
}

fn string_literal(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn number(n: u32) -> Expr {
    Expr::value(Value::Number(n.to_string(), false))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(ast::Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn function_args(f: &ast::Function) -> Vec<&Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn push_arg(f: &mut ast::Function, e: Expr) {
    if let FunctionArguments::List(list) = &mut f.args {
        list.args
            .push(FunctionArg::Unnamed(FunctionArgExpr::Expr(e)));
    }
}

fn function_name(f: &ast::Function) -> Option<String> {
    f.name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
}

/// Drops a `pg_catalog.` qualifier from a function or table-function name.
fn strip_pg_catalog(name: &mut ObjectName) {
    if name.0.len() == 2
        && name.0[0]
            .as_ident()
            .is_some_and(|i| i.value.eq_ignore_ascii_case(PG_CATALOG))
    {
        name.0.remove(0);
    }
}

/// The OID-alias types a cast can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Class,
    Type,
    Namespace,
    Role,
    Proc,
}

impl Reg {
    fn of(data_type: &DataType) -> Option<Reg> {
        let name = match data_type {
            DataType::Regclass => return Some(Reg::Class),
            DataType::Custom(name, args) if args.is_empty() => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase())?,
            _ => return None,
        };
        Some(match name.as_str() {
            "regclass" => Reg::Class,
            "regtype" => Reg::Type,
            "regnamespace" => Reg::Namespace,
            "regrole" => Reg::Role,
            "regproc" | "regprocedure" | "regoper" | "regoperator" | "regconfig"
            | "regdictionary" | "regcollation" => Reg::Proc,
            _ => return None,
        })
    }

    /// The function that prints a value of this type.
    fn printer(self) -> &'static str {
        match self {
            Reg::Class => "floe_regclass",
            Reg::Type => "floe_regtype",
            Reg::Namespace => "floe_regnamespace",
            Reg::Role => "floe_regrole",
            Reg::Proc => "floe_regproc",
        }
    }
}

const PRINTERS: [&str; 5] = [
    "floe_regclass",
    "floe_regtype",
    "floe_regnamespace",
    "floe_regrole",
    "floe_regproc",
];

/// `floe_regclass(x)` → `x`: where an OID alias is compared, its number counts.
fn unwrap_printer(expr: &mut Expr) {
    if let Expr::Function(f) = expr {
        if function_name(f).is_some_and(|n| PRINTERS.contains(&n.as_str())) {
            // The printed value is the first argument; the others are the session's.
            if let Some(arg) = function_args(f).first() {
                *expr = (*arg).clone();
            }
        }
    }
}

/// `pg_catalog.text` → `text`, recursively through arrays.
fn plain_type(data_type: &mut DataType) {
    match data_type {
        DataType::Custom(name, args) if name.0.len() == 2 => {
            let qualified = name.0[0]
                .as_ident()
                .is_some_and(|i| i.value.eq_ignore_ascii_case(PG_CATALOG));
            if !qualified {
                return;
            }
            let Some(last) = name.0[1].as_ident() else {
                return;
            };
            let mut text = last.value.clone();
            if !args.is_empty() {
                text = format!("{text}({})", args.join(", "));
            }
            let parsed = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_data_type());
            match parsed {
                Ok(t) => *data_type = t,
                Err(_) => {
                    name.0.remove(0);
                }
            }
        }
        DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => plain_type(inner),
        _ => {}
    }
}

fn is_integer_type(data_type: &DataType) -> bool {
    let text = data_type.to_string().to_ascii_lowercase();
    matches!(
        text.as_str(),
        "oid" | "int" | "integer" | "int4" | "bigint" | "int8" | "smallint" | "int2"
    )
}

fn string_value(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => Some(s),
            _ => None,
        },
        Expr::Nested(inner) => string_value(inner),
        _ => None,
    }
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// `OPERATOR(pg_catalog.op)` as the plain operator.
fn plain_operator(parts: &[String]) -> Option<BinaryOperator> {
    if parts.len() != 2 || !parts[0].eq_ignore_ascii_case(PG_CATALOG) {
        return None;
    }
    Some(match parts[1].as_str() {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "%" => BinaryOperator::Modulo,
        "||" => BinaryOperator::StringConcat,
        _ => return None,
    })
}

/// First pass: names, operators, casts and session-dependent calls.
struct Expressions<'a> {
    session: &'a dyn CatalogContext,
    /// The schemas of `search_path` that exist.
    path: Vec<String>,
    /// Where relation names are looked up: the session's temporary schema first.
    relation_path: Vec<String>,
    ctes: &'a HashSet<String>,
    error: Option<SqlError>,
}

impl Expressions<'_> {
    fn database(&self) -> &str {
        self.session.database()
    }

    fn path_text(&self) -> String {
        self.relation_path.join(",")
    }

    /// The OID a `'text'::reg…` literal names.
    fn resolve(&self, reg: Reg, text: &str) -> SqlResult<u32> {
        if let Ok(oid) = text.trim().parse::<u32>() {
            return Ok(oid);
        }
        match reg {
            Reg::Class => resolve_class(
                self.session.db(),
                self.database(),
                &self.relation_path,
                text,
            ),
            Reg::Type => resolve_type(text),
            Reg::Namespace => resolve_namespace(self.session.db(), self.database(), text),
            Reg::Role => system::ROLES
                .iter()
                .find(|r| r.1 == text.trim().trim_matches('"'))
                .map(|r| r.0)
                .ok_or_else(|| {
                    SqlError::new(
                        sqlstate::UNDEFINED_OBJECT,
                        format!("role \"{text}\" does not exist"),
                    )
                }),
            Reg::Proc => Err(SqlError::new(
                sqlstate::UNDEFINED_FUNCTION,
                format!("function \"{text}\" does not exist"),
            )),
        }
    }

    fn fail(&mut self, err: SqlError) -> ControlFlow<()> {
        self.error = Some(err);
        ControlFlow::Break(())
    }

    /// `pg_settings` as the session's values.
    fn settings_table(&self, alias: Option<ast::TableAlias>) -> Option<TableFactor> {
        let rows = system::settings_rows(self.session.vars());
        let literal = |v: &V, kind: Kind| match (v, kind) {
            (V::Text(s), _) => format!("'{}'", s.replace('\'', "''")),
            (V::Bool(b), _) => b.to_string(),
            (V::Int(i), _) => i.to_string(),
            (_, Kind::TextArray) => "CAST(NULL AS TEXT[])".into(),
            (_, Kind::Int4) => "CAST(NULL AS INT)".into(),
            (_, Kind::Bool) => "CAST(NULL AS BOOLEAN)".into(),
            _ => "CAST(NULL AS TEXT)".into(),
        };
        let values: Vec<String> = rows
            .iter()
            .map(|row| {
                let items: Vec<String> = row
                    .iter()
                    .zip(PG_SETTINGS.iter())
                    .map(|(v, (_, kind))| literal(v, *kind))
                    .collect();
                format!("({})", items.join(", "))
            })
            .collect();
        let columns: Vec<&str> = PG_SETTINGS.iter().map(|(n, _)| *n).collect();
        let query = parse_query(&format!(
            "SELECT * FROM (VALUES {}) AS pg_settings({})",
            values.join(", "),
            columns.join(", ")
        ))?;
        let SetExpr::Select(select) = *query.body else {
            return None;
        };
        let mut factor = select.from.into_iter().next()?.relation;
        if let (TableFactor::Derived { alias: a, .. }, Some(alias)) = (&mut factor, alias) {
            let columns = a.as_ref().map(|a| a.columns.clone()).unwrap_or_default();
            *a = Some(ast::TableAlias {
                columns: if alias.columns.is_empty() {
                    columns
                } else {
                    alias.columns
                },
                ..alias
            });
        }
        Some(factor)
    }
}

/// The OID of the relation `text` names (`'t'::regclass`, `to_regclass('t')`): in its schema
/// if qualified, else in `pg_catalog` or the first schema of `path` (the session's relation
/// path, its temporary schema first) that has it.
pub(crate) fn resolve_class(
    db: &Db,
    database: &str,
    path: &[String],
    text: &str,
) -> SqlResult<u32> {
    let missing = || {
        SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{text}\" does not exist"),
        )
    };
    let parts = parse_qualified(text).ok_or_else(|| {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("invalid name syntax: \"{text}\""),
        )
    })?;
    let (schema, name) = match parts.as_slice() {
        [name] => (None, name.as_str()),
        [schema, name] => (Some(schema.as_str()), name.as_str()),
        [catalog_name, schema, name] if catalog_name == database => {
            (Some(schema.as_str()), name.as_str())
        }
        [_, _, _] => {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("cross-database references are not implemented: \"{text}\""),
            ))
        }
        _ => {
            return Err(SqlError::new(
                sqlstate::SYNTAX_ERROR,
                format!("improper relation name (too many dotted names): {text}"),
            ))
        }
    };
    let system = |schema: &str| match schema {
        PG_CATALOG => system::system_table(name).map(|t| t.oid),
        "information_schema" => super::information_schema::table(name).map(|t| t.oid),
        super::FLOE_CATALOG => super::floe_catalog::table(name).map(|t| t.oid),
        _ => None,
    };
    let catalog = db.catalog();
    let in_schema = |schema: &str| -> Option<u32> {
        if let Some(oid) = system(schema) {
            return Some(oid);
        }
        if let Some(def) = catalog.relation_by_name(database, schema, name) {
            return Some(def.id);
        }
        catalog.relations_in(database, schema).find_map(|def| {
            oids::indexes(def)
                .into_iter()
                .find(|k| k.name == name)
                .map(|k| k.index_oid(def.id))
        })
    };
    match schema {
        // `pg_temp` is the session's temporary schema: the one on its relation path.
        Some("pg_temp") => path
            .iter()
            .find(|s| s.starts_with("pg_temp_"))
            .and_then(|s| in_schema(s))
            .ok_or_else(missing),
        Some(schema) => in_schema(schema).ok_or_else(missing),
        None => system(PG_CATALOG)
            .or_else(|| path.iter().find_map(|s| in_schema(s)))
            .ok_or_else(missing),
    }
}

/// The OID of the schema `text` names (`'s'::regnamespace`, `to_regnamespace('s')`).
pub(crate) fn resolve_namespace(db: &Db, database: &str, text: &str) -> SqlResult<u32> {
    let name = parse_qualified(text)
        .filter(|p| p.len() == 1)
        .map(|mut p| p.remove(0))
        .unwrap_or_else(|| text.to_string());
    match name.as_str() {
        PG_CATALOG => Ok(oids::PG_CATALOG_OID),
        "information_schema" => Ok(oids::INFORMATION_SCHEMA_OID),
        super::FLOE_CATALOG => Ok(oids::FLOE_CATALOG_OID),
        _ => db
            .catalog()
            .schema(database, &name)
            .map(|s| s.oid)
            .ok_or_else(|| {
                SqlError::new(
                    sqlstate::INVALID_SCHEMA_NAME,
                    format!("schema \"{name}\" does not exist"),
                )
            }),
    }
}

/// The type OID a `'name'::regtype` literal names.
pub(crate) fn resolve_type(text: &str) -> SqlResult<u32> {
    let missing = || {
        SqlError::new(
            sqlstate::UNDEFINED_OBJECT,
            format!("type \"{text}\" does not exist"),
        )
    };
    let trimmed = text.trim();
    let bare = trimmed
        .strip_prefix("pg_catalog.")
        .unwrap_or(trimmed)
        .trim_matches('"');
    if let Some(oid) = oids::type_by_typname(bare) {
        return Ok(oid);
    }
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(bare)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|_| missing())?;
    match SqlType::from_sql(&parsed) {
        Some(SqlType::Unknown) | None => Err(missing()),
        Some(t) => Ok(t.oid()),
    }
}

impl VisitorMut for Expressions<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, args, alias, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if args.is_some() {
            strip_pg_catalog(name);
            return ControlFlow::Continue(());
        }
        if name.0.len() == 1 {
            if let Some(ident) = name.0[0].as_ident() {
                let key = ident_key(ident);
                if system::system_table(&key).is_some() && !self.ctes.contains(&key) {
                    name.0
                        .insert(0, ObjectNamePart::Identifier(Ident::new(PG_CATALOG)));
                }
            }
        }
        let is_settings = name.0.len() == 2
            && name.0[0]
                .as_ident()
                .is_some_and(|i| ident_key(i) == PG_CATALOG)
            && name.0[1]
                .as_ident()
                .is_some_and(|i| ident_key(i) == "pg_settings");
        if is_settings {
            let alias = alias.clone().or_else(|| {
                Some(ast::TableAlias {
                    explicit: true,
                    name: Ident::new("pg_settings"),
                    columns: vec![],
                    at: None,
                })
            });
            if let Some(replacement) = self.settings_table(alias) {
                *factor = replacement;
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::Collate { expr: inner, .. } => {
                *expr = (**inner).clone();
            }
            Expr::BinaryOp { left, op, right } => {
                if let BinaryOperator::PGCustomBinaryOperator(parts) = op {
                    if let Some(plain) = plain_operator(parts) {
                        *op = plain;
                    }
                }
                if is_comparison(op) {
                    unwrap_printer(left);
                    unwrap_printer(right);
                }
            }
            Expr::InList {
                expr: inner, list, ..
            } => {
                unwrap_printer(inner);
                list.iter_mut().for_each(unwrap_printer);
            }
            Expr::AnyOp { left, .. } | Expr::AllOp { left, .. } => unwrap_printer(left),
            Expr::Cast {
                expr: inner,
                data_type,
                ..
            } => {
                plain_type(data_type);
                if let Some(reg) = Reg::of(data_type) {
                    if let Some(text) = string_value(inner) {
                        match self.resolve(reg, text) {
                            Ok(oid) => *expr = number(oid),
                            Err(err) => return self.fail(err),
                        }
                    } else {
                        let mut args = vec![(**inner).clone()];
                        if reg == Reg::Class {
                            args.push(string_literal(&self.path_text()));
                        }
                        *expr = call(reg.printer(), args);
                    }
                } else if is_integer_type(data_type) {
                    unwrap_printer(inner);
                }
            }
            Expr::Function(f) => {
                strip_pg_catalog(&mut f.name);
                let name = function_name(f).unwrap_or_default();
                let args = function_args(f).len();
                match (name.as_str(), args) {
                    ("current_schemas", 1) => {
                        let implicit = match function_args(f)[0] {
                            Expr::Value(v) => match v.value {
                                Value::Boolean(b) => Some(b),
                                _ => None,
                            },
                            _ => None,
                        };
                        if let Some(implicit) = implicit {
                            let mut schemas = Vec::new();
                            if implicit {
                                // PostgreSQL lists the temporary schema, once it exists.
                                if let Some(temp) = self.session.temp_schema() {
                                    if !self.path.contains(&temp) {
                                        schemas.push(string_literal(&temp));
                                    }
                                }
                            }
                            if implicit && !self.path.iter().any(|s| s == PG_CATALOG) {
                                schemas.push(string_literal(PG_CATALOG));
                            }
                            schemas.extend(self.path.iter().map(|s| string_literal(s)));
                            *expr = if schemas.is_empty() {
                                parse_expr("CAST(make_array() AS TEXT[])")
                                    .unwrap_or(Expr::value(Value::Null))
                            } else {
                                Expr::Array(ast::Array {
                                    elem: schemas,
                                    named: true,
                                })
                            };
                        }
                    }
                    ("array_position", 2 | 3)
                    | ("array_length", 2)
                    | ("cardinality" | "array_ndims", 1) => {
                        // PostgreSQL's are integers (DataFusion's unsigned).
                        if let Some(cast) = fill(
                            "CAST(__floe_position AS INTEGER)",
                            vec![("__floe_position", Expr::Function(f.clone()))],
                        ) {
                            *expr = cast;
                        }
                    }
                    (
                        "to_regclass" | "to_regtype" | "to_regproc" | "to_regnamespace"
                        | "to_regrole",
                        1,
                    ) => {
                        let arg = function_args(f)[0].clone();
                        let (printer, lookup) = match name.as_str() {
                            "to_regclass" => (Reg::Class, "floe_to_regclass"),
                            "to_regtype" => (Reg::Type, "floe_to_regtype"),
                            "to_regproc" => (Reg::Proc, "floe_to_regproc"),
                            "to_regnamespace" => (Reg::Namespace, "floe_to_regnamespace"),
                            _ => (Reg::Role, "floe_to_regrole"),
                        };
                        let mut args = vec![arg];
                        if printer == Reg::Class {
                            args.push(string_literal(&self.path_text()));
                        }
                        if matches!(printer, Reg::Class | Reg::Namespace) {
                            args.push(string_literal(self.database()));
                        }
                        // Prints as a name; compared or cast to an integer, it is the OID.
                        let mut printed = vec![call(lookup, args)];
                        if printer == Reg::Class {
                            printed.push(string_literal(&self.path_text()));
                        }
                        *expr = call(printer.printer(), printed);
                    }
                    ("pg_table_is_visible", 1) => push_arg(f, string_literal(&self.path_text())),
                    ("pg_get_serial_sequence", 2) => {
                        let database = self.database().to_string();
                        push_arg(f, string_literal(&database));
                        push_arg(f, string_literal(&self.path_text()));
                    }
                    ("array", _) => {
                        if let FunctionArguments::Subquery(query) = &f.args {
                            if set_expr_is_empty(&query.body, self.ctes) {
                                // An array of no rows; a NULL array stands in for '{}'.
                                if let Some(null) = parse_expr("CAST(NULL AS TEXT[])") {
                                    *expr = null;
                                }
                            } else if let Some(rewritten) = array_of_subquery(query) {
                                *expr = rewritten;
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// `ARRAY(subquery)` as DataFusion can plan it.
fn array_of_subquery(query: &Query) -> Option<Expr> {
    if let Some(mapped) = array_of_unnest(query) {
        return Some(mapped);
    }
    if let Some(aggregated) = array_agg_in_place(query) {
        return Some(aggregated);
    }
    let descending = match &query.order_by {
        Some(order) => match &order.kind {
            OrderByKind::Expressions(exprs) => {
                exprs.first().and_then(|e| e.options.asc) == Some(false)
            }
            OrderByKind::All(_) => false,
        },
        None => false,
    };
    let order = match (&query.order_by, descending) {
        (None, _) => "",
        (Some(_), false) => " ORDER BY __floe_elem",
        (Some(_), true) => " ORDER BY __floe_elem DESC",
    };
    let mut template = parse_expr(&format!(
        "(SELECT array_agg(__floe_elem{order}) FROM (SELECT 1) AS __floe_array(__floe_elem))"
    ))?;
    let Expr::Subquery(outer) = &mut template else {
        return None;
    };
    let SetExpr::Select(select) = outer.body.as_mut() else {
        return None;
    };
    let TableFactor::Derived { subquery, .. } = &mut select.from.first_mut()?.relation else {
        return None;
    };
    **subquery = query.clone();
    Some(template)
}

/// `ARRAY(SELECT e FROM … WHERE … ORDER BY …)` → `(SELECT array_agg(e ORDER BY …) FROM …)`.
fn array_agg_in_place(query: &Query) -> Option<Expr> {
    if query.with.is_some() || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let mut query = query.clone();
    let order = match query.order_by.take() {
        Some(order) => match order.kind {
            OrderByKind::Expressions(exprs) => exprs,
            OrderByKind::All(_) => return None,
        },
        None => Vec::new(),
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if select.from.is_empty() || select.projection.len() != 1 || !is_plain_select(select) {
        return None;
    }
    let element = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    if outer_only(&element, select) {
        return None;
    }
    let order: Vec<ast::OrderByExpr> = order
        .into_iter()
        .map(|mut o| {
            if matches!(&o.expr, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "1"))
            {
                o.expr = element.clone();
            }
            o
        })
        .collect();
    let mut aggregate = call("array_agg", vec![element]);
    if let (Expr::Function(f), false) = (&mut aggregate, order.is_empty()) {
        if let FunctionArguments::List(list) = &mut f.args {
            list.clauses = vec![FunctionArgumentClause::OrderBy(order)];
        }
    }
    select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    let outer = separate_outer_predicates(select);
    let subquery = Expr::Subquery(Box::new(query));
    match outer {
        Some(condition) => fill(
            "CASE WHEN __floe_condition THEN __floe_value END",
            vec![("__floe_condition", condition), ("__floe_value", subquery)],
        ),
        None => Some(subquery),
    }
}

/// `ARRAY(SELECT f(x) FROM unnest(a) x)` → `array_transform(a, x -> f(x))` (or `a`).
fn array_of_unnest(query: &Query) -> Option<Expr> {
    if query.order_by.is_some() || query.limit_clause.is_some() || query.with.is_some() {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || select.selection.is_some()
        || select.distinct.is_some()
        || select.having.is_some()
        || select.projection.len() != 1
        || !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
    {
        return None;
    }
    let TableFactor::Table {
        name,
        args: Some(args),
        alias: Some(alias),
        ..
    } = &select.from[0].relation
    else {
        return None;
    };
    if !name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest"))
        || args.args.len() != 1
    {
        return None;
    }
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(array)) = &args.args[0] else {
        return None;
    };
    let element = match alias.columns.as_slice() {
        [] => alias.name.clone(),
        [column] => column.name.clone(),
        _ => return None,
    };
    let body = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    if matches!(&body, Expr::Identifier(i) if i.value == element.value) {
        return Some(array.clone());
    }
    let lambda = Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter {
            name: element,
            data_type: None,
        }),
        body: Box::new(body),
        syntax: LambdaSyntax::Arrow,
    });
    Some(call("array_transform", vec![array.clone(), lambda]))
}

// ---------------------------------------------------------------------------------------------
// Second pass: query structure.

struct Structure<'a> {
    ctes: &'a HashSet<String>,
}

impl VisitorMut for Structure<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        inline_lateral_values(query);
        if set_expr_is_empty(&query.body, self.ctes) {
            if let Some(names) = output_names(&query.body) {
                if let Some(select) = empty_select(&names) {
                    *query.body = SetExpr::Select(Box::new(select));
                    query.order_by = None;
                    query.limit_clause = None;
                    query.fetch = None;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            let expr = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => continue,
            };
            let _ = expr.visit(&mut ProjectionSubqueries {
                depth: 0,
                exists: true,
            });
        }
        for condition in [&mut select.selection, &mut select.having]
            .into_iter()
            .flatten()
        {
            let _ = condition.visit(&mut ProjectionSubqueries {
                depth: 0,
                exists: false,
            });
        }
        ControlFlow::Continue(())
    }
}

const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "first_value",
    "last_value",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bit_and",
    "bit_or",
    "bit_xor",
    "median",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "approx_distinct",
];

/// Whether `node` calls an aggregate or window function outside nested subqueries.
fn has_aggregate<T: Visit>(node: &T) -> bool {
    struct Finder {
        depth: usize,
        found: bool,
    }
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if self.depth == 0 {
                if let Expr::Function(f) = expr {
                    let aggregate =
                        function_name(f).is_some_and(|n| AGGREGATES.contains(&n.as_str()));
                    if aggregate || f.over.is_some() {
                        self.found = true;
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        depth: 0,
        found: false,
    };
    let _ = node.visit(&mut finder);
    finder.found
}

fn is_plain_select(select: &Select) -> bool {
    select.distinct.is_none()
        && select.having.is_none()
        && matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty())
        && !select.projection.iter().any(has_aggregate)
}

fn set_expr_is_empty(body: &SetExpr, ctes: &HashSet<String>) -> bool {
    match body {
        SetExpr::Select(select) => select_is_empty(select, ctes),
        SetExpr::Query(query) => query.with.is_none() && set_expr_is_empty(&query.body, ctes),
        SetExpr::SetOperation {
            op, left, right, ..
        } => match op {
            SetOperator::Union => set_expr_is_empty(left, ctes) && set_expr_is_empty(right, ctes),
            SetOperator::Intersect => {
                set_expr_is_empty(left, ctes) || set_expr_is_empty(right, ctes)
            }
            SetOperator::Except | SetOperator::Minus => set_expr_is_empty(left, ctes),
        },
        _ => false,
    }
}

fn select_is_empty(select: &Select, ctes: &HashSet<String>) -> bool {
    let grouped = !matches!(&select.group_by, ast::GroupByExpr::Expressions(g, _) if g.is_empty());
    if !grouped && (select.having.is_some() || select.projection.iter().any(has_aggregate)) {
        // An aggregate over no rows still returns one.
        return false;
    }
    select.from.iter().any(|from| from_is_empty(from, ctes))
}

fn from_is_empty(from: &TableWithJoins, ctes: &HashSet<String>) -> bool {
    let outer = |op: &JoinOperator| {
        matches!(
            op,
            JoinOperator::Right(_)
                | JoinOperator::RightOuter(_)
                | JoinOperator::FullOuter(_)
                | JoinOperator::RightSemi(_)
                | JoinOperator::RightAnti(_)
                | JoinOperator::OuterApply
        )
    };
    if from.joins.iter().any(|j| outer(&j.join_operator)) {
        return false;
    }
    let inner = |op: &JoinOperator| {
        matches!(
            op,
            JoinOperator::Join(_)
                | JoinOperator::Inner(_)
                | JoinOperator::CrossJoin(_)
                | JoinOperator::Semi(_)
                | JoinOperator::LeftSemi(_)
                | JoinOperator::CrossApply
                | JoinOperator::StraightJoin(_)
        )
    };
    factor_is_empty(&from.relation, ctes)
        || from
            .joins
            .iter()
            .any(|j| inner(&j.join_operator) && factor_is_empty(&j.relation, ctes))
}

fn factor_is_empty(factor: &TableFactor, ctes: &HashSet<String>) -> bool {
    match factor {
        TableFactor::Table {
            name, args: None, ..
        } => {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(ident_key))
                .collect();
            match parts.as_slice() {
                [schema, table] => schema == PG_CATALOG && system::is_empty_table(table),
                [table] => !ctes.contains(table) && system::is_empty_table(table),
                _ => false,
            }
        }
        TableFactor::Derived {
            subquery,
            lateral: false,
            ..
        } => subquery.with.is_none() && set_expr_is_empty(&subquery.body, ctes),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => from_is_empty(table_with_joins, ctes),
        _ => false,
    }
}

/// The column names a query body returns, if they can be told without planning.
fn output_names(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(select) => select
            .projection
            .iter()
            .map(|item| match item {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
                SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
                SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => {
                    parts.last().map(|i| i.value.clone())
                }
                SelectItem::UnnamedExpr(_) => Some("?column?".to_string()),
                _ => None,
            })
            .collect(),
        SetExpr::Query(query) => output_names(&query.body),
        SetExpr::SetOperation { left, .. } => output_names(left),
        _ => None,
    }
}

/// `SELECT NULL AS n1, … WHERE false`.
fn empty_select(names: &[String]) -> Option<Select> {
    let query = parse_query("SELECT NULL WHERE false")?;
    let SetExpr::Select(mut select) = *query.body else {
        return None;
    };
    let mut seen: HashSet<String> = HashSet::new();
    select.projection = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut unique = name.clone();
            if !seen.insert(unique.clone()) {
                unique = format!("{name}{HIDDEN_SUFFIX}{}", i + 1);
                seen.insert(unique.clone());
            }
            SelectItem::ExprWithAlias {
                expr: Expr::value(Value::Null),
                alias: Ident::with_quote('"', unique),
            }
        })
        .collect();
    Some(*select)
}

/// Rewrites the subqueries of one expression of a select (not those nested deeper):
/// correlated scalar subqueries, and `EXISTS` if `exists` (in a select list; DataFusion plans
/// `EXISTS` in WHERE itself).
struct ProjectionSubqueries {
    depth: usize,
    exists: bool,
}

impl VisitorMut for ProjectionSubqueries {
    type Break = ();

    fn pre_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        let replacement = match expr {
            Expr::Subquery(query) if is_correlated(query) => first_value_subquery(query),
            Expr::Exists { subquery, negated } if self.exists => {
                exists_as_count(subquery, *negated)
            }
            _ => None,
        };
        if let Some(replacement) = replacement {
            *expr = replacement;
        }
        ControlFlow::Continue(())
    }
}

/// Table names and aliases a FROM list defines.
fn defined_names(from: &[TableWithJoins]) -> HashSet<String> {
    fn factor(f: &TableFactor, out: &mut HashSet<String>) {
        match f {
            TableFactor::Table { name, alias, .. } => match alias {
                Some(a) => {
                    out.insert(ident_key(&a.name));
                }
                None => {
                    if let Some(last) = name.0.last().and_then(|p| p.as_ident()) {
                        out.insert(ident_key(last));
                    }
                }
            },
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                factor(&table_with_joins.relation, out);
                for j in &table_with_joins.joins {
                    factor(&j.relation, out);
                }
                if let Some(a) = alias {
                    out.insert(ident_key(&a.name));
                }
            }
            TableFactor::Derived { alias: Some(a), .. }
            | TableFactor::Function { alias: Some(a), .. }
            | TableFactor::UNNEST { alias: Some(a), .. } => {
                out.insert(ident_key(&a.name));
            }
            _ => {}
        }
    }
    let mut out = HashSet::new();
    for item in from {
        factor(&item.relation, &mut out);
        for j in &item.joins {
            factor(&j.relation, &mut out);
        }
    }
    out
}

/// The qualifiers of the column references in `expr` (outside nested subqueries), whether it
/// has unqualified ones, and whether it has subqueries.
/// Whether `expr` reads columns of outer queries only (qualified by names `select`'s FROM does
/// not define).
fn outer_only(expr: &Expr, select: &Select) -> bool {
    let defined = defined_names(&select.from);
    let (qualifiers, bare, subquery) = references(expr);
    !bare && !subquery && !qualifiers.is_empty() && qualifiers.iter().all(|q| !defined.contains(q))
}

fn references(expr: &Expr) -> (HashSet<String>, bool, bool) {
    struct Refs {
        qualifiers: HashSet<String>,
        bare: bool,
        subquery: bool,
    }
    impl Visitor for Refs {
        type Break = ();
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.subquery = true;
            ControlFlow::Break(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            match expr {
                Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                    self.qualifiers.insert(ident_key(&parts[parts.len() - 2]));
                }
                Expr::Identifier(_) => self.bare = true,
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut refs = Refs {
        qualifiers: HashSet::new(),
        bare: false,
        subquery: false,
    };
    let _ = expr.visit(&mut refs);
    (refs.qualifiers, refs.bare, refs.subquery)
}

fn split_conjuncts(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_conjuncts(*left, out);
            split_conjuncts(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                inner.as_ref(),
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_conjuncts(*inner, out)
        }
        other => out.push(other),
    }
}

fn conjunction(exprs: Vec<Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(|left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::And,
        right: Box::new(right),
    })
}

/// Prepares a correlated subquery's WHERE for DataFusion's decorrelation, keeping its meaning:
/// a predicate on outer columns only is taken out (and returned), and an outer column that
/// the WHERE equates with an inner expression is replaced by that expression elsewhere
/// (`c.oid = a.attcollation AND a.attcollation <> t.typcollation` →
/// `… AND c.oid <> t.typcollation`).
fn separate_outer_predicates(select: &mut Select) -> Option<Expr> {
    let selection = select.selection.take()?;
    let defined = defined_names(&select.from);
    let mut conjuncts = Vec::new();
    split_conjuncts(selection, &mut conjuncts);
    let outer_column = |e: &Expr| match e {
        Expr::CompoundIdentifier(parts)
            if parts.len() >= 2 && !defined.contains(&ident_key(&parts[parts.len() - 2])) =>
        {
            ref_key(e)
        }
        _ => None,
    };
    let inner_only = |e: &Expr| {
        let (qualifiers, _, subquery) = references(e);
        !subquery && qualifiers.iter().all(|q| defined.contains(q))
    };
    // Outer column → the inner expression it equals.
    let mut equal: Vec<(String, Expr)> = Vec::new();
    for c in &conjuncts {
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = c
        {
            if let (Some(outer), true) = (outer_column(left), inner_only(right)) {
                equal.push((outer, (**right).clone()));
            } else if let (Some(outer), true) = (outer_column(right), inner_only(left)) {
                equal.push((outer, (**left).clone()));
            }
        }
    }
    let mut inner = Vec::new();
    let mut outer = Vec::new();
    for mut c in conjuncts {
        let (qualifiers, bare, subquery) = references(&c);
        if subquery {
            inner.push(c);
            continue;
        }
        if !bare && !qualifiers.is_empty() && qualifiers.iter().all(|q| !defined.contains(q)) {
            outer.push(c);
            continue;
        }
        let is_equality = matches!(&c, Expr::BinaryOp { op: BinaryOperator::Eq, left, right }
            if outer_column(left).is_some() || outer_column(right).is_some());
        if !is_equality {
            let _ = VisitMut::visit(&mut c, &mut Substitute(&equal));
        }
        inner.push(c);
    }
    select.selection = conjunction(inner);
    conjunction(outer)
}

/// Replaces column references (by their SQL text) with expressions.
struct Substitute<'a>(&'a [(String, Expr)]);

impl VisitorMut for Substitute<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Some(key) = ref_key(expr) {
            if let Some((_, replacement)) = self.0.iter().find(|(k, _)| *k == key) {
                *expr = Expr::Nested(Box::new(replacement.clone()));
            }
        }
        ControlFlow::Continue(())
    }
}

/// A column reference as a comparable key: `o.n`, `"N"`.
fn ref_key(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(i) => Some(ident_key(i)),
        Expr::CompoundIdentifier(parts) => {
            Some(parts.iter().map(ident_key).collect::<Vec<_>>().join("."))
        }
        _ => None,
    }
}

/// `template` with each identifier `name` replaced by its expression.
fn fill(template: &str, holes: Vec<(&str, Expr)>) -> Option<Expr> {
    let mut expr = parse_expr(template)?;
    let holes: Vec<(String, Expr)> = holes.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let _ = VisitMut::visit(&mut expr, &mut Substitute(&holes));
    Some(expr)
}

/// Whether `query` refers to a table alias it does not define (an outer query's).
fn is_correlated(query: &Query) -> bool {
    struct Names {
        defined: HashSet<String>,
        used: HashSet<String>,
    }
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            let (name, alias) = match factor {
                TableFactor::Table { name, alias, .. } => (
                    name.0.last().and_then(|p| p.as_ident()).map(ident_key),
                    alias,
                ),
                TableFactor::Derived { alias, .. }
                | TableFactor::Function { alias, .. }
                | TableFactor::UNNEST { alias, .. }
                | TableFactor::NestedJoin { alias, .. } => (None, alias),
                _ => (None, &None),
            };
            self.defined.extend(name);
            if let Some(alias) = alias {
                self.defined.insert(ident_key(&alias.name));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.defined.insert(ident_key(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = expr {
                if parts.len() >= 2 {
                    self.used.insert(ident_key(&parts[parts.len() - 2]));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names {
        defined: HashSet::new(),
        used: HashSet::new(),
    };
    let _ = query.visit(&mut names);
    names.used.iter().any(|u| !names.defined.contains(u))
}

fn limit_is_at_most_one(query: &Query) -> Option<bool> {
    match &query.limit_clause {
        None => Some(false),
        Some(ast::LimitClause::LimitOffset {
            limit: Some(Expr::Value(v)),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() && matches!(&v.value, Value::Number(n, _) if n == "1") => {
            Some(true)
        }
        _ => None,
    }
}

/// `(SELECT e FROM … WHERE <correlated>)` → `floe_single_row((SELECT array_agg(e) FROM …))`
/// (`(SELECT first_value(e ORDER BY …) …)` under `LIMIT 1`), with predicates on outer columns
/// only moved out: `CASE WHEN <outer> THEN (SELECT …) END`.
fn first_value_subquery(query: &Query) -> Option<Expr> {
    if query.fetch.is_some() || query.with.is_some() {
        return None;
    }
    let limited = limit_is_at_most_one(query)?;
    let order = match (&query.order_by, limited) {
        (Some(order), true) => match &order.kind {
            OrderByKind::Expressions(exprs) => exprs.clone(),
            OrderByKind::All(_) => return None,
        },
        _ => Vec::new(),
    };
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if select.projection.len() != 1 || !is_plain_select(select) {
        return None;
    }
    if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } =
        &select.projection[0]
    {
        if outer_only(e, select) {
            // An aggregate of outer columns only belongs to the outer query in PostgreSQL (and
            // is refused, see `crate::subquery`): the subquery runs per outer row instead.
            return None;
        }
    }
    let outer = separate_outer_predicates(select);
    let item = &mut select.projection[0];
    let expr = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let aggregate = if limited { "first_value" } else { "array_agg" };
    let mut first = call(aggregate, vec![expr.clone()]);
    if let (Expr::Function(f), false) = (&mut first, order.is_empty()) {
        if let FunctionArguments::List(list) = &mut f.args {
            list.clauses = vec![FunctionArgumentClause::OrderBy(order)];
        }
    }
    *expr = first;
    query.order_by = None;
    query.limit_clause = None;
    let subquery = Expr::Subquery(Box::new(query));
    let subquery = if limited {
        subquery
    } else {
        call(crate::subquery::SINGLE_ROW, vec![subquery])
    };
    match outer {
        Some(condition) => fill(
            "CASE WHEN __floe_condition THEN __floe_value END",
            vec![("__floe_condition", condition), ("__floe_value", subquery)],
        ),
        None => Some(subquery),
    }
}

/// `EXISTS (SELECT … FROM … WHERE …)` → `(SELECT count(*) FROM … WHERE …) > 0`.
fn exists_as_count(query: &Query, negated: bool) -> Option<Expr> {
    if query.fetch.is_some() || query.with.is_some() {
        return None;
    }
    limit_is_at_most_one(query)?;
    let mut query = query.clone();
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if !is_plain_select(select) {
        return None;
    }
    let outer = separate_outer_predicates(select);
    select.projection = vec![SelectItem::UnnamedExpr(parse_expr("count(*)")?)];
    query.order_by = None;
    query.limit_clause = None;
    let count = Expr::Subquery(Box::new(query));
    let (test, otherwise) = if negated {
        ("__floe_count = 0", "true")
    } else {
        ("__floe_count > 0", "false")
    };
    match outer {
        Some(condition) => fill(
            &format!("CASE WHEN __floe_condition THEN {test} ELSE {otherwise} END"),
            vec![("__floe_condition", condition), ("__floe_count", count)],
        ),
        None => fill(&format!("({test})"), vec![("__floe_count", count)]),
    }
}

/// `… CROSS JOIN LATERAL (SELECT e AS x) AS o` → `…`, with `o.x` replaced by `(e)`: a lateral
/// subquery without FROM computes one row from the outer row, which DataFusion cannot
/// decorrelate but an expression says the same.
fn inline_lateral_values(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut substitutions: Vec<(String, Expr)> = Vec::new();
    for from in &mut select.from {
        let mut kept = Vec::new();
        for join in std::mem::take(&mut from.joins) {
            let cross = matches!(join.join_operator, JoinOperator::CrossJoin(_));
            match (cross, lateral_values(&join.relation)) {
                (true, Some(columns)) => substitutions.extend(columns),
                _ => kept.push(join),
            }
        }
        from.joins = kept;
    }
    if substitutions.is_empty() {
        return;
    }
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(e) = item {
            let key = ref_key(e);
            if let Some((_, replacement)) =
                substitutions.iter().find(|(k, _)| Some(k) == key.as_ref())
            {
                let name = match e {
                    Expr::CompoundIdentifier(parts) => parts.last().cloned(),
                    Expr::Identifier(i) => Some(i.clone()),
                    _ => None,
                };
                if let Some(name) = name {
                    *item = SelectItem::ExprWithAlias {
                        expr: Expr::Nested(Box::new(replacement.clone())),
                        alias: name,
                    };
                }
            }
        }
    }
    let mut substitute = Substitute(&substitutions);
    let _ = VisitMut::visit(select.as_mut(), &mut substitute);
    if let Some(order) = &mut query.order_by {
        let _ = VisitMut::visit(order, &mut substitute);
    }
}

/// The columns of `LATERAL (SELECT e1, …) AS o(x1, …)`: (`o.x1`, `x1`) → `e1`.
fn lateral_values(factor: &TableFactor) -> Option<Vec<(String, Expr)>> {
    let TableFactor::Derived {
        lateral: true,
        subquery,
        alias: Some(alias),
        ..
    } = factor
    else {
        return None;
    };
    if subquery.with.is_some()
        || subquery.order_by.is_some()
        || subquery.limit_clause.is_some()
        || subquery.fetch.is_some()
    {
        return None;
    }
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty() || select.selection.is_some() || !is_plain_select(select) {
        return None;
    }
    let mut out = Vec::new();
    for (i, item) in select.projection.iter().enumerate() {
        let (expr, own_name) = match item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => return None,
        };
        let name = match alias.columns.get(i) {
            Some(column) => column.name.clone(),
            None => own_name?,
        };
        out.push((
            format!("{}.{}", ident_key(&alias.name), ident_key(&name)),
            expr.clone(),
        ));
        out.push((ident_key(&name), expr.clone()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_parse_like_postgres() {
        assert_eq!(parse_qualified("t"), Some(vec!["t".to_string()]));
        assert_eq!(
            parse_qualified("Public.T"),
            Some(vec!["public".to_string(), "t".to_string()])
        );
        assert_eq!(
            parse_qualified("\"My\"\"T\".x"),
            Some(vec!["My\"T".to_string(), "x".to_string()])
        );
        assert_eq!(parse_qualified("a..b"), None);
    }

    #[test]
    fn types_resolve_by_any_name() {
        assert_eq!(resolve_type("int4").unwrap(), 23);
        assert_eq!(resolve_type("integer").unwrap(), 23);
        assert_eq!(resolve_type("pg_catalog.text").unwrap(), 25);
        assert_eq!(resolve_type("character varying").unwrap(), 1043);
        assert_eq!(resolve_type("regclass").unwrap(), 2205);
        assert!(resolve_type("nope").is_err());
    }

    fn query(sql: &str) -> Query {
        *parse_query(sql).unwrap()
    }

    #[test]
    fn queries_over_empty_catalogs_are_known_empty() {
        let ctes = HashSet::new();
        let empty = |sql: &str| set_expr_is_empty(&query(sql).body, &ctes);
        assert!(empty(
            "SELECT polname FROM pg_catalog.pg_policy p WHERE p.polrelid = 1"
        ));
        assert!(empty(
            "SELECT c.oid FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i WHERE c.oid = i.inhparent"
        ));
        assert!(empty(
            "SELECT a FROM pg_catalog.pg_publication UNION SELECT b FROM pg_catalog.pg_publication_rel"
        ));
        assert!(!empty(
            "SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_inherits i ON c.oid = i.inhparent"
        ));
        assert!(!empty("SELECT count(*) FROM pg_catalog.pg_inherits"));
        assert!(empty(
            "SELECT inhrelid, count(*) FROM pg_catalog.pg_inherits GROUP BY 1"
        ));
    }

    #[test]
    fn correlation_is_found_by_qualifier() {
        let outer = query(
            "SELECT (SELECT d.adbin FROM pg_attrdef d WHERE d.adrelid = a.attrelid) FROM pg_attribute a",
        );
        let SetExpr::Select(select) = outer.body.as_ref() else {
            panic!()
        };
        let SelectItem::UnnamedExpr(Expr::Subquery(inner)) = &select.projection[0] else {
            panic!()
        };
        assert!(is_correlated(inner));
        assert!(!is_correlated(&query("SELECT d.adbin FROM pg_attrdef d")));
    }
}

//! The catalog functions clients call (`format_type`, `pg_get_constraintdef`,
//! `pg_table_is_visible`, …), answered from Floe's catalog.
//!
//! Functions that depend on the session (the search path, the database) get it as extra
//! trailing arguments that the query rewriter adds ([`super::rewrite`]); called without them
//! they assume `public`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int64Array, Int64Builder, ListBuilder, StringArray,
    StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_pg_catalog::pg_catalog::{array_bounds_udf, quote_ident_udf};
use floe_storage::{ConstraintDef, Db, RelationKind, TableDef};

use super::oids::{self, Derived};
use super::system::{self, SYSTEM_TABLES};

/// A function body: arguments as arrays of the batch's row count → the result array.
type Body = Arc<dyn Fn(&[ArrayRef], usize) -> DfResult<ArrayRef> + Send + Sync>;

struct CatalogFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: Body,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogFunction")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFunction {}

impl Hash for CatalogFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        Ok(ColumnarValue::Array((self.body)(&arrays, rows)?))
    }
}

fn function(
    name: &'static str,
    signature: Signature,
    returns: DataType,
    body: impl Fn(&[ArrayRef], usize) -> DfResult<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    ScalarUDF::new_from_impl(CatalogFunction {
        name,
        signature,
        returns,
        body: Arc::new(body),
    })
}

/// Takes 1..=`max` arguments of any type.
fn up_to(min: usize, max: usize, volatility: Volatility) -> Signature {
    Signature::one_of((min..=max).map(TypeSignature::Any).collect(), volatility)
}

fn int_arg(args: &[ArrayRef], i: usize) -> DfResult<Option<Int64Array>> {
    match args.get(i) {
        Some(a) => Ok(Some(cast(a, &DataType::Int64)?.as_primitive().clone())),
        None => Ok(None),
    }
}

fn text_arg(args: &[ArrayRef], i: usize) -> DfResult<Option<StringArray>> {
    match args.get(i) {
        Some(a) => Ok(Some(cast(a, &DataType::Utf8)?.as_string::<i32>().clone())),
        None => Ok(None),
    }
}

fn int_at(a: &Option<Int64Array>, row: usize) -> Option<i64> {
    a.as_ref()
        .and_then(|a| (!a.is_null(row)).then(|| a.value(row)))
}

fn text_at(a: &Option<StringArray>, row: usize) -> Option<String> {
    a.as_ref()
        .and_then(|a| (!a.is_null(row)).then(|| a.value(row).to_string()))
}

/// A text function of the first argument as an OID (NULL in, NULL out).
fn oid_to_text(
    name: &'static str,
    min: usize,
    max: usize,
    volatility: Volatility,
    f: impl Fn(u32, &[Option<i64>]) -> Option<String> + Send + Sync + 'static,
) -> ScalarUDF {
    function(
        name,
        up_to(min, max, volatility),
        DataType::Utf8,
        move |args, rows| {
            let ints: Vec<Option<Int64Array>> = (0..args.len())
                .map(|i| int_arg(args, i).ok().flatten())
                .collect();
            let mut out = StringBuilder::new();
            for row in 0..rows {
                let values: Vec<Option<i64>> = ints.iter().map(|a| int_at(a, row)).collect();
                match values.first().copied().flatten() {
                    Some(oid) => out.append_option(f(oid as u32, &values)),
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()))
        },
    )
}

/// A function that is NULL for every row.
fn null_text(name: &'static str) -> ScalarUDF {
    function(
        name,
        Signature::variadic_any(Volatility::Stable),
        DataType::Utf8,
        |_, rows| {
            Ok(datafusion::arrow::array::new_null_array(
                &DataType::Utf8,
                rows,
            ))
        },
    )
}

/// A function that is true for every row (privileges: every user may do everything).
fn always_true(name: &'static str) -> ScalarUDF {
    function(
        name,
        Signature::variadic_any(Volatility::Stable),
        DataType::Boolean,
        |args, rows| {
            let mut out = BooleanBuilder::new();
            for row in 0..rows {
                let null = args.first().is_some_and(|a| a.is_null(row));
                out.append_option((!null).then_some(true));
            }
            Ok(Arc::new(out.finish()))
        },
    )
}

/// A bigint function of the first argument.
fn oid_to_int(
    name: &'static str,
    db: Arc<Db>,
    f: impl Fn(&Db, u32) -> i64 + Send + Sync + 'static,
) -> ScalarUDF {
    function(
        name,
        Signature::variadic_any(Volatility::Volatile),
        DataType::Int64,
        move |args, rows| {
            let oids = int_arg(args, 0)?;
            let mut out = Int64Builder::new();
            for row in 0..rows {
                out.append_option(int_at(&oids, row).map(|oid| f(&db, oid as u32)));
            }
            Ok(Arc::new(out.finish()))
        },
    )
}

/// The role named by OID `oid`.
pub(crate) fn role_name(oid: u32) -> Option<&'static str> {
    system::ROLES.iter().find(|r| r.0 == oid).map(|r| r.1)
}

/// The search path a rewritten call passes (comma-separated schema names).
fn search_path(arg: Option<String>) -> Vec<String> {
    match arg {
        Some(path) => path
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![crate::engine::DEFAULT_SCHEMA.to_string()],
    }
}

/// Whether relation `oid` is found by its bare name along `path`.
fn table_is_visible(db: &Db, oid: u32, path: &[String]) -> bool {
    if SYSTEM_TABLES.iter().any(|t| t.oid == oid) {
        return true;
    }
    if let Some((schema, _)) = super::information_schema::view_by_oid(oid) {
        return path.iter().any(|s| s == schema);
    }
    let catalog = db.catalog();
    let (def, name) = match catalog.relation(oid) {
        Some(def) => (def.clone(), def.name.clone()),
        None => match oids::decode_derived(oid) {
            Some((rel, Derived::Index, slot)) => match catalog.relation(rel) {
                Some(def) => match oids::indexes(def).into_iter().find(|k| k.slot == slot) {
                    Some(key) => (def.clone(), key.name),
                    None => return false,
                },
                None => return false,
            },
            _ => return false,
        },
    };
    for schema in path {
        if *schema == def.schema {
            return true;
        }
        if catalog
            .relation_by_name(&def.database, schema, &name)
            .is_some()
        {
            return false;
        }
    }
    false
}

/// A relation's name as `regclass` prints it: qualified unless the search path `path` finds
/// it by its bare name (without a path: unless in `public` or `pg_catalog`).
pub(crate) fn regclass_name(db: &Db, oid: u32, path: Option<&[String]>) -> String {
    if let Some(t) = SYSTEM_TABLES.iter().find(|t| t.oid == oid) {
        return t.name.to_string();
    }
    if let Some((schema, t)) = super::information_schema::view_by_oid(oid) {
        return format!("{schema}.{}", t.name);
    }
    let catalog = db.catalog();
    let visible = match path {
        Some(path) => table_is_visible(db, oid, path),
        None => false,
    };
    let named = |def: &TableDef, name: &str| {
        let bare = match path {
            Some(_) => visible,
            None => def.schema == crate::engine::DEFAULT_SCHEMA,
        };
        if bare {
            oids::quote_ident(name)
        } else {
            format!(
                "{}.{}",
                oids::quote_ident(&def.schema),
                oids::quote_ident(name)
            )
        }
    };
    if let Some(def) = catalog.relation(oid) {
        return named(def, &def.name);
    }
    if let Some((rel, Derived::Index, slot)) = oids::decode_derived(oid) {
        if let Some(def) = catalog.relation(rel) {
            if let Some(key) = oids::indexes(def).into_iter().find(|k| k.slot == slot) {
                return named(def, &key.name);
            }
        }
    }
    oid.to_string()
}

/// A schema's name by OID.
pub(crate) fn namespace_name(db: &Db, oid: u32) -> Option<String> {
    match oid {
        oids::PG_CATALOG_OID => Some("pg_catalog".into()),
        oids::INFORMATION_SCHEMA_OID => Some("information_schema".into()),
        oids::FLOE_CATALOG_OID => Some(super::FLOE_CATALOG.into()),
        _ => {
            let catalog = db.catalog();
            let name = catalog
                .databases()
                .flat_map(|d| catalog.schemas(&d.name))
                .find(|s| s.oid == oid)
                .map(|s| s.name.clone());
            name
        }
    }
}

/// `pg_get_constraintdef`.
fn constraint_definition(db: &Db, oid: u32) -> Option<String> {
    let (rel, Derived::Constraint, slot) = oids::decode_derived(oid)? else {
        return None;
    };
    let catalog = db.catalog();
    let def = catalog.relation(rel)?;
    let columns = |ids: &[i64]| {
        ids.iter()
            .filter_map(|id| oids::column_by_id(def, *id).map(|c| oids::quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(key) = oids::keys(def).into_iter().find(|k| k.slot == slot) {
        let kind = if key.primary { "PRIMARY KEY" } else { "UNIQUE" };
        return Some(format!("{kind} ({})", columns(&key.columns)));
    }
    match def.constraints.get(slot.checked_sub(1)? as usize)? {
        ConstraintDef::Check { expr, .. } => Some(format!("CHECK ({expr})")),
        ConstraintDef::Unique { .. } => None,
    }
}

/// `pg_get_indexdef(index, column)`: the whole definition, or one column's.
fn index_definition(db: &Db, oid: u32, column: i64) -> Option<String> {
    let (rel, Derived::Index, slot) = oids::decode_derived(oid)? else {
        return None;
    };
    let catalog = db.catalog();
    let def = catalog.relation(rel)?;
    let key = oids::indexes(def).into_iter().find(|k| k.slot == slot)?;
    if column > 0 {
        let id = key.columns.get(column as usize - 1)?;
        return oids::column_by_id(def, *id).map(|c| oids::quote_ident(&c.name));
    }
    Some(system::index_definition(def, &key))
}

/// `pg_get_viewdef`.
fn view_definition(db: &Db, oid: u32) -> Option<String> {
    match &db.catalog().relation(oid)?.kind {
        RelationKind::View { query, .. } | RelationKind::MaterializedView { query, .. } => {
            Some(system::view_definition(query))
        }
        _ => None,
    }
}

/// `pg_get_serial_sequence(table, column, database, search path)`.
fn serial_sequence(
    db: &Db,
    table: &str,
    column: &str,
    database: &str,
    path: &[String],
) -> Option<String> {
    let catalog = db.catalog();
    let parts = super::rewrite::parse_qualified(table)?;
    let def = match parts.as_slice() {
        [schema, name] => catalog.relation_by_name(database, schema, name),
        [name] => path
            .iter()
            .find_map(|s| catalog.relation_by_name(database, s, name)),
        _ => None,
    }?;
    let column = def.columns.iter().find(|c| c.name == column)?;
    let owned = Some((def.id, column.id));
    let name = catalog
        .relations_in(database, &def.schema)
        .find(|r| matches!(&r.kind, RelationKind::Sequence(s) if s.owned_by == owned))
        .map(|seq| {
            format!(
                "{}.{}",
                oids::quote_ident(&seq.schema),
                oids::quote_ident(&seq.name)
            )
        });
    name
}

/// PostgreSQL's `pg_size_pretty(bigint)`.
pub(crate) fn size_pretty(size: i64) -> String {
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let limit = 10 * 1024;
    let limit2 = limit * 2 - 1;
    if size.abs() < limit {
        return format!("{size} bytes");
    }
    let mut size = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < limit2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

fn table_bytes(db: &Db, oid: u32) -> i64 {
    db.table(oid).map(|t| t.hot.bytes() as i64).unwrap_or(0)
}

/// An OID function of a name (`to_regclass` & co.): NULL for a NULL name and where `lookup`
/// finds nothing. Arguments after the name are the session's, added by the rewriter.
fn name_to_oid(
    name: &'static str,
    args: usize,
    lookup: impl Fn(&str, &[Option<String>]) -> crate::SqlResult<Option<u32>> + Send + Sync + 'static,
) -> ScalarUDF {
    function(
        name,
        up_to(1, args, Volatility::Stable),
        DataType::Int64,
        move |arrays, rows| {
            let texts: Vec<Option<StringArray>> = (0..arrays.len())
                .map(|i| text_arg(arrays, i))
                .collect::<DfResult<_>>()?;
            let mut out = Int64Builder::new();
            for row in 0..rows {
                let values: Vec<Option<String>> = texts.iter().map(|a| text_at(a, row)).collect();
                match values.first().cloned().flatten() {
                    Some(text) => {
                        out.append_option(lookup(&text, &values[1..])?.map(i64::from));
                    }
                    None => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()))
        },
    )
}

/// What `to_regclass(name)` & co. call: the rewriter wraps each in its type's printer
/// (`floe_regclass(floe_to_regclass(name, path, database))`), so the result prints as a name
/// and compares as an OID, like `'name'::regclass`.
fn to_reg_functions(db: Arc<Db>) -> Vec<ScalarUDF> {
    use super::rewrite::{parse_qualified, resolve_class, resolve_namespace, resolve_type};
    use crate::error::sqlstate;
    let not_found = |codes: &'static [&'static str]| {
        move |e: crate::SqlError| {
            if codes.contains(&e.code) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    };
    let class_db = db.clone();
    vec![
        name_to_oid("floe_to_regclass", 3, move |text, session| {
            let path = search_path(session.first().cloned().flatten());
            let database = session.get(1).cloned().flatten().unwrap_or_default();
            resolve_class(&class_db, &database, &path, text)
                .map(Some)
                .or_else(not_found(&[
                    sqlstate::UNDEFINED_TABLE,
                    sqlstate::INVALID_TEXT_REPRESENTATION,
                ]))
        }),
        name_to_oid("floe_to_regtype", 1, move |text, _| {
            resolve_type(text)
                .map(Some)
                .or_else(not_found(&[sqlstate::UNDEFINED_OBJECT]))
        }),
        name_to_oid("floe_to_regnamespace", 2, move |text, session| {
            let database = session.first().cloned().flatten().unwrap_or_default();
            resolve_namespace(&db, &database, text)
                .map(Some)
                .or_else(not_found(&[sqlstate::INVALID_SCHEMA_NAME]))
        }),
        name_to_oid("floe_to_regproc", 1, |text, _| {
            Ok(match parse_qualified(text).as_deref() {
                Some([name]) => system::procs().unique(name),
                Some([schema, name]) if schema == "pg_catalog" => system::procs().unique(name),
                _ => None,
            })
        }),
        name_to_oid("floe_to_regrole", 1, |text, _| {
            Ok(match parse_qualified(text).as_deref() {
                Some([name]) => system::ROLES.iter().find(|r| r.1 == name).map(|r| r.0),
                _ => None,
            })
        }),
    ]
}

/// Every catalog function.
pub(crate) fn all(db: Arc<Db>) -> Vec<ScalarUDF> {
    let mut fns = vec![
        oid_to_text("pg_get_userbyid", 1, 1, Volatility::Stable, |oid, _| {
            Some(role_name(oid).map_or_else(|| format!("unknown (OID={oid})"), str::to_string))
        }),
        oid_to_text("format_type", 2, 2, Volatility::Stable, |oid, args| {
            let typmod = args.get(1).copied().flatten().unwrap_or(-1);
            Some(oids::format_type(oid, typmod as i32))
        }),
        oid_to_text("floe_regtype", 1, 1, Volatility::Stable, |oid, _| {
            Some(match oids::format_type(oid, -1).as_str() {
                "???" => oid.to_string(),
                name => name.to_string(),
            })
        }),
        oid_to_text("floe_regrole", 1, 1, Volatility::Stable, |oid, _| {
            Some(role_name(oid).map_or_else(|| oid.to_string(), str::to_string))
        }),
        oid_to_text("floe_regproc", 1, 1, Volatility::Stable, |oid, _| {
            Some(match (oid, system::procs().name(oid)) {
                (0, _) => "-".into(),
                (_, Some(name)) => name.to_string(),
                (_, None) => oid.to_string(),
            })
        }),
        oid_to_text(
            "pg_tablespace_location",
            1,
            1,
            Volatility::Stable,
            |_, _| Some(String::new()),
        ),
        oid_to_text("pg_encoding_to_char", 1, 1, Volatility::Stable, |enc, _| {
            Some(
                match enc {
                    0 => "SQL_ASCII",
                    6 => "UTF8",
                    _ => "",
                }
                .to_string(),
            )
        }),
        function(
            "pg_get_expr",
            up_to(2, 3, Volatility::Stable),
            DataType::Utf8,
            |args, _| Ok(cast(&args[0], &DataType::Utf8)?),
        ),
        function(
            "pg_size_pretty",
            Signature::any(1, Volatility::Immutable),
            DataType::Utf8,
            |args, rows| {
                let sizes = int_arg(args, 0)?;
                let mut out = StringBuilder::new();
                for row in 0..rows {
                    out.append_option(int_at(&sizes, row).map(size_pretty));
                }
                Ok(Arc::new(out.finish()))
            },
        ),
        function(
            "pg_is_in_recovery",
            Signature::nullary(Volatility::Stable),
            DataType::Boolean,
            |_, rows| {
                let mut out = BooleanBuilder::new();
                for _ in 0..rows.max(1) {
                    out.append_value(false);
                }
                Ok(Arc::new(out.finish()))
            },
        ),
        function(
            "current_schemas",
            Signature::any(1, Volatility::Stable),
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            |args, rows| {
                let implicit = cast(&args[0], &DataType::Boolean)?;
                let implicit = implicit.as_boolean();
                let mut out = ListBuilder::new(StringBuilder::new());
                for row in 0..rows {
                    if implicit.is_null(row) {
                        out.append(false);
                        continue;
                    }
                    if implicit.value(row) {
                        out.values().append_value("pg_catalog");
                    }
                    out.values().append_value(crate::engine::DEFAULT_SCHEMA);
                    out.append(true);
                }
                Ok(Arc::new(out.finish()))
            },
        ),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
    ];
    {
        let db = db.clone();
        fns.push(function(
            "pg_table_is_visible",
            up_to(1, 2, Volatility::Stable),
            DataType::Boolean,
            move |args, rows| {
                let oids = int_arg(args, 0)?;
                let paths = text_arg(args, 1)?;
                let mut out = BooleanBuilder::new();
                for row in 0..rows {
                    let path = search_path(text_at(&paths, row));
                    out.append_option(
                        int_at(&oids, row).map(|oid| table_is_visible(&db, oid as u32, &path)),
                    );
                }
                Ok(Arc::new(out.finish()))
            },
        ));
    }
    {
        let db = db.clone();
        fns.push(function(
            "pg_get_serial_sequence",
            up_to(2, 4, Volatility::Stable),
            DataType::Utf8,
            move |args, rows| {
                let tables = text_arg(args, 0)?;
                let columns = text_arg(args, 1)?;
                let databases = text_arg(args, 2)?;
                let paths = text_arg(args, 3)?;
                let mut out = StringBuilder::new();
                for row in 0..rows {
                    let database = text_at(&databases, row)
                        .unwrap_or_else(|| crate::engine::DEFAULT_DATABASE.to_string());
                    let path = search_path(text_at(&paths, row));
                    out.append_option(match (text_at(&tables, row), text_at(&columns, row)) {
                        (Some(t), Some(c)) => serial_sequence(&db, &t, &c, &database, &path),
                        _ => None,
                    });
                }
                Ok(Arc::new(out.finish()))
            },
        ));
    }
    let with_db = |name: &'static str,
                   min: usize,
                   max: usize,
                   f: fn(&Db, u32, &[Option<i64>]) -> Option<String>| {
        let db = db.clone();
        oid_to_text(name, min, max, Volatility::Stable, move |oid, args| {
            f(&db, oid, args)
        })
    };
    fns.push(with_db("pg_get_constraintdef", 1, 2, |db, oid, _| {
        constraint_definition(db, oid)
    }));
    fns.push(with_db("pg_get_indexdef", 1, 3, |db, oid, args| {
        index_definition(db, oid, args.get(1).copied().flatten().unwrap_or(0))
    }));
    fns.push(with_db("pg_get_viewdef", 1, 2, |db, oid, _| {
        view_definition(db, oid)
    }));
    {
        let db = db.clone();
        fns.push(function(
            "floe_regclass",
            up_to(1, 2, Volatility::Stable),
            DataType::Utf8,
            move |args, rows| {
                let oids = int_arg(args, 0)?;
                let paths = text_arg(args, 1)?;
                let mut out = StringBuilder::new();
                for row in 0..rows {
                    match int_at(&oids, row) {
                        Some(oid) => {
                            let path = paths.as_ref().map(|_| search_path(text_at(&paths, row)));
                            out.append_value(regclass_name(&db, oid as u32, path.as_deref()));
                        }
                        None => out.append_null(),
                    }
                }
                Ok(Arc::new(out.finish()))
            },
        ));
    }
    fns.push(with_db("floe_regnamespace", 1, 1, |db, oid, _| {
        Some(namespace_name(db, oid).unwrap_or_else(|| oid.to_string()))
    }));
    fns.extend(to_reg_functions(db.clone()));
    fns.push(oid_to_int("pg_relation_size", db.clone(), table_bytes));
    fns.push(oid_to_int("pg_table_size", db.clone(), table_bytes));
    fns.push(oid_to_int(
        "pg_total_relation_size",
        db.clone(),
        table_bytes,
    ));
    fns.push(oid_to_int("pg_indexes_size", db.clone(), |_, _| 0));
    fns.push(oid_to_int("pg_stat_get_numscans", db.clone(), |_, _| 0));
    fns.push(oid_to_int("pg_database_size", db.clone(), |db, _| {
        db.hot_bytes() as i64
    }));
    for name in [
        "pg_get_ruledef",
        "pg_get_triggerdef",
        "pg_get_functiondef",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
        "pg_get_function_result",
        "pg_get_function_sqlbody",
        "pg_get_partkeydef",
        "pg_get_partition_constraintdef",
        "pg_get_statisticsobjdef_columns",
        "obj_description",
        "col_description",
        "shobj_description",
    ] {
        fns.push(null_text(name));
    }
    for name in [
        "has_table_privilege",
        "has_any_column_privilege",
        "has_column_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_sequence_privilege",
        "has_function_privilege",
        "has_language_privilege",
        "has_tablespace_privilege",
        "has_type_privilege",
        "pg_has_role",
        "pg_type_is_visible",
        "pg_function_is_visible",
        "pg_operator_is_visible",
        "pg_opclass_is_visible",
        "pg_opfamily_is_visible",
        "pg_collation_is_visible",
        "pg_conversion_is_visible",
        "pg_statistics_obj_is_visible",
        "pg_ts_config_is_visible",
        "pg_ts_dict_is_visible",
        "pg_ts_parser_is_visible",
        "pg_ts_template_is_visible",
    ] {
        fns.push(always_true(name));
    }
    fns.push(function(
        "pg_relation_is_publishable",
        Signature::variadic_any(Volatility::Stable),
        DataType::Boolean,
        |_, rows| {
            let mut out = BooleanBuilder::new();
            for _ in 0..rows {
                out.append_value(false);
            }
            Ok(Arc::new(out.finish()))
        },
    ));
    fns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_postgres() {
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1024 * 1024 * 20), "20 MB");
    }
}

//! The fast path: primary-key point reads, point updates and deletes, and plain inserts
//! without DataFusion.
//!
//! pgbench's statements (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`,
//! `UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2`,
//! `INSERT INTO pgbench_history (…) VALUES ($1, …, CURRENT_TIMESTAMP)`) and the by-id reads
//! and writes ORMs send are recognised on the parsed statement when it is prepared, then run
//! straight against the hot tier: encode the key, one map lookup, decode one row. Planning
//! such a statement with DataFusion costs far more than executing it.
//!
//! The shapes are deliberately narrow, and everything outside them takes the general path:
//! - the statement names one table of the catalog (no CTE, join, subquery, RETURNING, ORDER
//!   BY, LIMIT, USING, locking clause, …);
//! - the WHERE clause (SELECT, UPDATE, DELETE) is exactly `key_column = value` for every
//!   primary-key column, ANDed;
//! - values are parameters, number or string constants, or (INSERT) `CURRENT_TIMESTAMP`/`now()`;
//!   UPDATE may also assign `column`, `column + value` or `column - value` (integers, floats,
//!   numerics: the exact result, then the column's rounding);
//! - every column a value goes into has a plain type (booleans, integers, floats, unconstrained
//!   text, timestamps) so no typmod, padding or rounding rule applies, or is a numeric, whose
//!   values are rounded and range-checked by the same conversion the general path's casts use
//!   (NaN into a `numeric(p, s)` column fails as there, so the statement widens the column);
//! - the table has no CHECK constraint and INSERT leaves out only columns without a default,
//!   so nothing is checked here but NOT NULL and the primary key (UNIQUE constraints and
//!   indexes are enforced by storage in `Txn::write`, on every path);
//! - INSERT's `ON CONFLICT` is `DO NOTHING`, without a target (a row taken on any unique key
//!   is skipped) or with the primary key as target;
//! - parameter types follow from the columns exactly as DataFusion would infer them; a client
//!   that declares another type gets the general path.
//!
//! Semantics follow the general path's: reads see the statement's view (own writes included);
//! UPDATE and DELETE lock the row, and under READ COMMITTED apply to the newest version when
//! another transaction changed it (the key predicate cannot stop matching, since the key
//! columns are never assigned), under REPEATABLE READ such a change is a serialization failure.

use std::sync::Arc;

use datafusion::arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, BinaryOperator, Expr, FunctionArguments, GroupByExpr, ObjectName,
    SelectItem, SetExpr, Statement, TableFactor, TableObject, UnaryOperator, Value,
};
use floe_storage::{Key, RelationKind, RowBytes, RowCheck, TableData, TableDef, Txn};

use super::ddl::ident_name;
use super::dml::{duplicate_key, failing_row};
use super::{RowStream, Session, StatementResult};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::{SqlType, PG_TYPMOD_KEY};

/// Where a value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    /// Parameter `$n + 1`, of the column's type.
    Param(usize),
    /// A constant, already of the column's type.
    Const(ScalarValue),
    /// The row's current value of a column (UPDATE).
    Column(usize),
    /// `CURRENT_TIMESTAMP`: the statement's (or transaction block's) start.
    Now,
}

/// A new column value in UPDATE.
#[derive(Debug, Clone)]
pub(crate) enum Assigned {
    Value(Operand),
    Add(Operand, Operand),
    Sub(Operand, Operand),
}

/// A statement the fast path runs.
#[derive(Debug)]
pub(crate) enum FastPlan {
    /// `SELECT columns FROM t WHERE key = …`.
    Get {
        table: Arc<TableData>,
        key: Vec<Operand>,
        projection: Vec<usize>,
        schema: SchemaRef,
    },
    /// `UPDATE t SET c = … WHERE key = …`.
    Update {
        table: Arc<TableData>,
        key: Vec<Operand>,
        sets: Vec<(usize, Assigned)>,
    },
    /// `DELETE FROM t WHERE key = …`.
    Delete {
        table: Arc<TableData>,
        key: Vec<Operand>,
    },
    /// `INSERT INTO t [(columns)] VALUES (…), … [ON CONFLICT … DO NOTHING]`: one operand per
    /// table column and row.
    Insert {
        table: Arc<TableData>,
        rows: Vec<Vec<Operand>>,
        on_conflict: Conflict,
    },
}

/// What INSERT does with a row whose key is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// No ON CONFLICT clause: 23505.
    Error,
    /// `ON CONFLICT DO NOTHING`: skip a row that conflicts on any unique key.
    SkipAny,
    /// `ON CONFLICT (primary key) DO NOTHING`: skip a row whose primary key is taken (a
    /// conflict on another unique index is still 23505).
    SkipPrimaryKey,
}

impl FastPlan {
    /// The table the statement reads or writes.
    pub(crate) fn table_id(&self) -> u32 {
        match self {
            FastPlan::Get { table, .. }
            | FastPlan::Update { table, .. }
            | FastPlan::Delete { table, .. }
            | FastPlan::Insert { table, .. } => table.def.id,
        }
    }

    /// The table the statement writes, if it writes.
    pub(crate) fn written_table(&self) -> Option<&TableDef> {
        match self {
            FastPlan::Get { .. } => None,
            FastPlan::Update { table, .. }
            | FastPlan::Delete { table, .. }
            | FastPlan::Insert { table, .. } => Some(&table.def),
        }
    }
}

/// A recognised statement with the types the client is told.
#[derive(Debug)]
pub(crate) struct FastMatch {
    pub plan: FastPlan,
    pub param_types: Vec<SqlType>,
    pub result_schema: Option<SchemaRef>,
}

/// Resolves column references and values against one table, collecting parameter types.
struct Binder<'a> {
    def: &'a TableDef,
    /// What a qualified column reference may be qualified with (the table's name or alias).
    qualifier: String,
    params: Vec<Option<SqlType>>,
}

impl Binder<'_> {
    fn column(&self, expr: &Expr) -> Option<usize> {
        let name = match expr {
            Expr::Identifier(ident) => ident_name(ident),
            Expr::CompoundIdentifier(parts)
                if parts.len() == 2 && ident_name(&parts[0]) == self.qualifier =>
            {
                ident_name(&parts[1])
            }
            Expr::Nested(inner) => return self.column(inner),
            _ => return None,
        };
        self.def.columns.iter().position(|c| c.name == name)
    }

    /// A parameter, constant or clock value standing for a value of column `target`.
    fn value(&mut self, expr: &Expr, target: usize, clock: bool) -> Option<Operand> {
        let field = &self.def.columns[target].field;
        let ty = value_type(field)?;
        match expr {
            Expr::Nested(inner) => self.value(inner, target, clock),
            Expr::Value(v) => match &v.value {
                Value::Placeholder(p) => {
                    let n: usize = p.strip_prefix('$')?.parse().ok()?;
                    if n == 0 || n > u16::MAX as usize {
                        return None;
                    }
                    if self.params.len() < n {
                        self.params.resize(n, None);
                    }
                    match &self.params[n - 1] {
                        Some(existing) if *existing != ty => return None,
                        _ => self.params[n - 1] = Some(ty),
                    }
                    Some(Operand::Param(n - 1))
                }
                Value::Number(text, false) => number(text, false, field),
                Value::SingleQuotedString(s) if matches!(ty, SqlType::Text | SqlType::Varchar) => {
                    Some(Operand::Const(ScalarValue::Utf8(Some(s.clone()))))
                }
                Value::Boolean(b) if ty == SqlType::Bool => {
                    Some(Operand::Const(ScalarValue::Boolean(Some(*b))))
                }
                _ => None,
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match expr.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::Number(text, false) => number(text, true, field),
                    _ => None,
                },
                _ => None,
            },
            Expr::Function(f)
                if clock && matches!(ty, SqlType::Timestamp | SqlType::Timestamptz) =>
            {
                let name = match f.name.0.as_slice() {
                    [part] => ident_name(part.as_ident()?),
                    _ => return None,
                };
                let plain_call = f.filter.is_none()
                    && f.over.is_none()
                    && f.null_treatment.is_none()
                    && f.within_group.is_empty()
                    && matches!(f.parameters, FunctionArguments::None);
                let no_args = match &f.args {
                    FunctionArguments::None => name == "current_timestamp",
                    FunctionArguments::List(list) => {
                        name == "now" && list.args.is_empty() && list.clauses.is_empty()
                    }
                    FunctionArguments::Subquery(_) => false,
                };
                (plain_call && no_args).then_some(Operand::Now)
            }
            _ => None,
        }
    }

    /// `key = value AND …` naming every primary-key column once: the values in key order.
    fn key_predicate(&mut self, selection: &Expr) -> Option<Vec<Operand>> {
        let key_columns = self.def.primary_key.as_ref()?.columns.clone();
        let mut terms = Vec::new();
        conjuncts(selection, &mut terms);
        if terms.len() != key_columns.len() {
            return None;
        }
        let mut values: Vec<Option<Operand>> = vec![None; key_columns.len()];
        for term in terms {
            let Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } = term
            else {
                return None;
            };
            let (column, value) = match (self.column(left), self.column(right)) {
                (Some(c), None) => (c, right.as_ref()),
                (None, Some(c)) => (c, left.as_ref()),
                _ => return None,
            };
            let slot = key_columns.iter().position(|&k| k == column)?;
            if values[slot].is_some() || !key_type(&self.def.columns[column].field) {
                return None;
            }
            values[slot] = Some(self.value(value, column, false)?);
        }
        values.into_iter().collect()
    }

    /// The parameter types, if every `$n` up to the highest was used: the declared type
    /// where the client gave one, else the column's. A declared integer type narrower than
    /// the column's is kept (drivers such as psycopg send small ints as `int2`/`int4` for a
    /// `bigint` key): every use of a parameter casts it to its column's type, which widens
    /// losslessly, as PostgreSQL's cross-type comparison and assignment do.
    fn param_types(self, declared: &[SqlType]) -> Option<Vec<SqlType>> {
        let mut types: Vec<SqlType> = self.params.into_iter().collect::<Option<_>>()?;
        if declared.len() > types.len() {
            return None;
        }
        for (declared, inferred) in declared.iter().zip(types.iter_mut()) {
            if *declared == SqlType::Unknown || declared == inferred {
                continue;
            }
            if integer_width(declared)? < integer_width(inferred)? {
                *inferred = declared.clone();
                continue;
            }
            return None;
        }
        Some(types)
    }
}

/// The byte width of an integer type (`None` for other types).
fn integer_width(ty: &SqlType) -> Option<u8> {
    match ty {
        SqlType::Int2 => Some(2),
        SqlType::Int4 => Some(4),
        SqlType::Int8 => Some(8),
        _ => None,
    }
}

fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Whether the table has CHECK constraints (evaluated by the general path only; UNIQUE
/// constraints and indexes are enforced by storage on every write).
fn has_checks(def: &TableDef) -> bool {
    def.constraints
        .iter()
        .any(|c| matches!(c, floe_storage::ConstraintDef::Check { .. }))
}

/// The column's type if values of it need no typmod, padding or rounding rule.
fn plain_type(field: &Field) -> Option<SqlType> {
    if field.metadata().contains_key(PG_TYPMOD_KEY) {
        return None;
    }
    let ty = SqlType::from_arrow_field(field);
    matches!(
        ty,
        SqlType::Bool
            | SqlType::Int2
            | SqlType::Int4
            | SqlType::Int8
            | SqlType::Float4
            | SqlType::Float8
            | SqlType::Text
            | SqlType::Varchar
            | SqlType::Timestamp
            | SqlType::Timestamptz
    )
    .then_some(ty)
}

/// The type of the values a column takes: a plain type, or a numeric (`numeric(p, s)` held as
/// `Decimal128`, or unconstrained `numeric`) whose values are rounded and range-checked as
/// PostgreSQL's assignment does ([`to_column`]).
fn value_type(field: &Field) -> Option<SqlType> {
    match field.data_type() {
        DataType::Decimal128(..) => Some(SqlType::Numeric),
        DataType::LargeBinary if crate::numeric::field_typmod(field).is_none() => {
            Some(SqlType::Numeric)
        }
        _ => plain_type(field),
    }
}

/// `array` as a value of a column of type `target`: numerics convert (rounding to the
/// column's scale, 22003 beyond its precision, NaN into a fixed-point column widens it as on
/// the general path), everything else casts.
fn to_column(array: ArrayRef, target: &DataType) -> SqlResult<ArrayRef> {
    if array.data_type() == target {
        return Ok(array);
    }
    if matches!(target, DataType::Decimal128(..) | DataType::LargeBinary)
        || crate::numeric::is_numeric_field_type(array.data_type())
    {
        return crate::numeric::functions::convert(&array, target).map_err(SqlError::from);
    }
    Ok(cast(&array, target)?)
}

/// `a + b` (or `a - b`) of one-row numeric-like arrays as a value of a numeric column of
/// type `target`.
fn numeric_arith(a: &ArrayRef, b: &ArrayRef, add: bool, target: &DataType) -> SqlResult<ArrayRef> {
    use crate::numeric::functions::{keys_array, value_at};
    let result = keys_array(a.len(), |row| {
        Ok(
            match (value_at(a.as_ref(), row)?, value_at(b.as_ref(), row)?) {
                (Some(x), Some(y)) if add => Some(x.add(&y)?),
                (Some(x), Some(y)) => Some(x.sub(&y)?),
                _ => None,
            },
        )
    })
    .map_err(SqlError::from)?;
    to_column(result, target)
}

/// Key columns the fast path looks up by: integers and text.
fn key_type(field: &Field) -> bool {
    matches!(
        plain_type(field),
        Some(SqlType::Int2 | SqlType::Int4 | SqlType::Int8 | SqlType::Text | SqlType::Varchar)
    )
}

fn is_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

fn is_float(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Float32 | DataType::Float64)
}

/// An integer constant for an integer or float column, or any number for a numeric column
/// (anything else, such as `1.5` for an integer column or a value out of the column's range,
/// is the general path's business).
fn number(text: &str, negative: bool, field: &Field) -> Option<Operand> {
    let data_type = field.data_type();
    if value_type(field) == Some(SqlType::Numeric) {
        // Any numeric constant: converted to the column's type when the statement runs.
        let value = crate::numeric::Numeric::parse(text).ok()?;
        let value = if negative { value.neg() } else { value };
        return Some(Operand::Const(ScalarValue::LargeBinary(Some(
            value.to_key(),
        ))));
    }
    if !(is_integer(data_type) || is_float(data_type)) {
        return None;
    }
    let value: i64 = text.parse().ok()?;
    let value = if negative {
        value.checked_neg()?
    } else {
        value
    };
    let scalar = ScalarValue::Int64(Some(value)).cast_to(data_type).ok()?;
    (!scalar.is_null()).then_some(Operand::Const(scalar))
}

/// The single table a FROM clause or DML target names, with its alias.
fn single_table(relation: &TableFactor) -> Option<(&ObjectName, Option<String>)> {
    match relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            with_ordinality: false,
            partitions,
            json_path: None,
            sample: None,
            index_hints,
        } if with_hints.is_empty() && partitions.is_empty() && index_hints.is_empty() => {
            let alias = match alias {
                Some(alias) if !alias.columns.is_empty() => return None,
                Some(alias) => Some(ident_name(&alias.name)),
                None => None,
            };
            Some((name, alias))
        }
        _ => None,
    }
}

/// The fast path's reading of an ON CONFLICT clause: DO NOTHING, without a target or with the
/// primary key as its target (anything else, including a target that names nothing, is the
/// general path's business).
fn conflict_action(def: &TableDef, on: &ast::OnInsert) -> Option<Conflict> {
    let ast::OnInsert::OnConflict(conflict) = on else {
        return None;
    };
    if !matches!(conflict.action, ast::OnConflictAction::DoNothing) {
        return None;
    }
    let pk = def.primary_key.as_ref()?;
    match &conflict.conflict_target {
        None => Some(Conflict::SkipAny),
        Some(ast::ConflictTarget::Columns(columns)) => {
            let mut named = Vec::with_capacity(columns.len());
            for column in columns {
                let position = def.column_index(&ident_name(column))?;
                if !named.contains(&position) {
                    named.push(position);
                }
            }
            let same =
                named.len() == pk.columns.len() && pk.columns.iter().all(|c| named.contains(c));
            same.then_some(Conflict::SkipPrimaryKey)
        }
        Some(ast::ConflictTarget::OnConstraint(name)) => {
            (name.to_string() == pk.name).then_some(Conflict::SkipPrimaryKey)
        }
    }
}

impl Session {
    /// The table `name` refers to, if it is one of Floe's tables and nothing else could be
    /// meant by it (PostgreSQL looks in pg_catalog first).
    fn fast_table(&self, name: &ObjectName) -> Option<Arc<TableData>> {
        let last = name.0.last()?.as_ident()?;
        let relation = ident_name(last);
        if relation.starts_with("pg_") || name.0.len() == 1 && relation == "information_schema" {
            return None;
        }
        let def = self.find_relation(name).ok()??;
        if !matches!(def.kind, RelationKind::Table) {
            return None;
        }
        let table = self.db().table(def.id)?;
        // The live table must be the one the catalog describes (not mid-ALTER).
        Arc::ptr_eq(&table.def, &def).then_some(table)
    }

    /// Recognises a statement the fast path runs (see the module doc).
    pub(super) fn fast_match(
        &self,
        statement: &Statement,
        declared: &[SqlType],
    ) -> Option<FastMatch> {
        match statement {
            Statement::Query(query) => self.fast_select(query, declared),
            Statement::Update(update) => self.fast_update_match(update, declared),
            Statement::Insert(insert) => self.fast_insert_match(insert, declared),
            Statement::Delete(delete) => self.fast_delete_match(delete, declared),
            _ => None,
        }
    }

    fn fast_select(&self, query: &ast::Query, declared: &[SqlType]) -> Option<FastMatch> {
        let ast::Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        if with.is_some()
            || order_by.is_some()
            || limit_clause.is_some()
            || fetch.is_some()
            || !locks.is_empty()
            || for_clause.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || !pipe_operators.is_empty()
        {
            return None;
        }
        let SetExpr::Select(select) = body.as_ref() else {
            return None;
        };
        let ast::Select {
            select_token: _,
            optimizer_hints,
            distinct,
            select_modifiers,
            top,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor,
        } = select.as_ref();
        let plain = optimizer_hints.is_empty()
            && distinct.is_none()
            && select_modifiers.is_none()
            && top.is_none()
            && exclude.is_none()
            && into.is_none()
            && lateral_views.is_empty()
            && prewhere.is_none()
            && connect_by.is_empty()
            && matches!(group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty())
            && cluster_by.is_empty()
            && distribute_by.is_empty()
            && sort_by.is_empty()
            && having.is_none()
            && named_window.is_empty()
            && qualify.is_none()
            && value_table_mode.is_none()
            && matches!(flavor, ast::SelectFlavor::Standard);
        if !plain || from.len() != 1 || !from[0].joins.is_empty() || projection.is_empty() {
            return None;
        }
        let (name, alias) = single_table(&from[0].relation)?;
        let table = self.fast_table(name)?;
        let def = &table.def;
        let mut binder = Binder {
            def,
            qualifier: alias.unwrap_or_else(|| def.name.clone()),
            params: Vec::new(),
        };
        let mut projected = Vec::new();
        let mut fields = Vec::new();
        for item in projection {
            let (column, alias) = match item {
                SelectItem::UnnamedExpr(expr) => (binder.column(expr)?, None),
                SelectItem::ExprWithAlias { expr, alias } => {
                    (binder.column(expr)?, Some(ident_name(alias)))
                }
                _ => return None,
            };
            let field = &def.columns[column].field;
            let name = alias.unwrap_or_else(|| def.columns[column].name.clone());
            projected.push(column);
            fields.push(field.clone().with_name(name).with_nullable(true));
        }
        let key = binder.key_predicate(selection.as_ref()?)?;
        let param_types = binder.param_types(declared)?;
        let schema = Arc::new(Schema::new(fields));
        Some(FastMatch {
            plan: FastPlan::Get {
                table,
                key,
                projection: projected,
                schema: schema.clone(),
            },
            param_types,
            result_schema: Some(schema),
        })
    }

    fn fast_update_match(&self, update: &ast::Update, declared: &[SqlType]) -> Option<FastMatch> {
        let ast::Update {
            update_token: _,
            optimizer_hints,
            table,
            assignments,
            from,
            selection,
            returning,
            output,
            or,
            order_by,
            limit,
        } = update;
        if !optimizer_hints.is_empty()
            || !table.joins.is_empty()
            || from.is_some()
            || returning.is_some()
            || output.is_some()
            || or.is_some()
            || !order_by.is_empty()
            || limit.is_some()
        {
            return None;
        }
        let (name, alias) = single_table(&table.relation)?;
        let table = self.fast_table(name)?;
        let def = &table.def;
        if has_checks(def) {
            return None;
        }
        let key_columns = def.primary_key.as_ref()?.columns.clone();
        let mut binder = Binder {
            def,
            qualifier: alias.unwrap_or_else(|| def.name.clone()),
            params: Vec::new(),
        };
        let mut sets: Vec<(usize, Assigned)> = Vec::new();
        for assignment in assignments {
            let AssignmentTarget::ColumnName(target) = &assignment.target else {
                return None;
            };
            let [target] = target.0.as_slice() else {
                return None;
            };
            let target_name = ident_name(target.as_ident()?);
            let column = def.columns.iter().position(|c| c.name == target_name)?;
            if key_columns.contains(&column)
                || def.columns[column].identity == Some(true)
                || sets.iter().any(|(c, _)| *c == column)
            {
                return None;
            }
            let field = &def.columns[column].field;
            let operand = |binder: &mut Binder, expr: &Expr| match binder.column(expr) {
                // Both plain or numerics of one type: a tagged target (jsonb, uuid,
                // varchar(n)) needs its cast.
                Some(source)
                    if def.columns[source].field.data_type() == field.data_type()
                        && value_type(field).is_some() =>
                {
                    value_type(&def.columns[source].field).map(|_| Operand::Column(source))
                }
                Some(_) => None,
                None => binder.value(expr, column, false),
            };
            let value = match &assignment.value {
                Expr::BinaryOp { left, op, right }
                    if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus) =>
                {
                    let data_type = field.data_type();
                    let numeric = value_type(field) == Some(SqlType::Numeric);
                    if !(is_integer(data_type) || is_float(data_type) || numeric) {
                        return None;
                    }
                    let left = operand(&mut binder, left)?;
                    let right = operand(&mut binder, right)?;
                    if *op == BinaryOperator::Plus {
                        Assigned::Add(left, right)
                    } else {
                        Assigned::Sub(left, right)
                    }
                }
                other => Assigned::Value(operand(&mut binder, other)?),
            };
            sets.push((column, value));
        }
        let key = binder.key_predicate(selection.as_ref()?)?;
        let param_types = binder.param_types(declared)?;
        Some(FastMatch {
            plan: FastPlan::Update { table, key, sets },
            param_types,
            result_schema: None,
        })
    }

    fn fast_insert_match(&self, insert: &ast::Insert, declared: &[SqlType]) -> Option<FastMatch> {
        let plain = insert.optimizer_hints.is_empty()
            && insert.or.is_none()
            && !insert.ignore
            && insert.into
            && insert.table_alias.is_none()
            && !insert.overwrite
            && insert.assignments.is_empty()
            && insert.partitioned.is_none()
            && insert.after_columns.is_empty()
            && !insert.has_table_keyword
            && insert.returning.is_none()
            && insert.output.is_none()
            && !insert.replace_into
            && insert.priority.is_none()
            && insert.insert_alias.is_none()
            && insert.settings.is_none()
            && insert.format_clause.is_none()
            && insert.multi_table_insert_type.is_none()
            && insert.multi_table_into_clauses.is_empty()
            && insert.multi_table_when_clauses.is_empty();
        if !plain {
            return None;
        }
        let TableObject::TableName(name) = &insert.table else {
            return None;
        };
        let source = insert.source.as_ref()?;
        if source.with.is_some()
            || source.order_by.is_some()
            || source.limit_clause.is_some()
            || source.fetch.is_some()
            || !source.locks.is_empty()
            || source.for_clause.is_some()
            || source.settings.is_some()
            || source.format_clause.is_some()
            || !source.pipe_operators.is_empty()
        {
            return None;
        }
        let SetExpr::Values(values) = source.body.as_ref() else {
            return None;
        };
        if values.explicit_row || values.value_keyword || values.rows.is_empty() {
            return None;
        }
        let table = self.fast_table(name)?;
        let def = &table.def;
        if has_checks(def) {
            return None;
        }
        let on_conflict = match &insert.on {
            None => Conflict::Error,
            Some(on) => conflict_action(def, on)?,
        };
        let targets: Vec<usize> = if insert.columns.is_empty() {
            (0..def.columns.len()).collect()
        } else {
            let mut targets = Vec::with_capacity(insert.columns.len());
            for column in &insert.columns {
                let [ident] = column.0.as_slice() else {
                    return None;
                };
                let name = ident_name(ident.as_ident()?);
                let position = def.columns.iter().position(|c| c.name == name)?;
                if targets.contains(&position) {
                    return None;
                }
                targets.push(position);
            }
            targets
        };
        // Left-out columns must be plain NULLs (no default, no identity).
        for (i, column) in def.columns.iter().enumerate() {
            if !targets.contains(&i) && (column.default.is_some() || column.identity.is_some()) {
                return None;
            }
            if targets.contains(&i) && column.identity == Some(true) {
                return None;
            }
        }
        let mut binder = Binder {
            def,
            qualifier: def.name.clone(),
            params: Vec::new(),
        };
        let mut rows = Vec::with_capacity(values.rows.len());
        for row in &values.rows {
            if row.content.len() != targets.len() {
                return None;
            }
            let mut operands: Vec<Operand> = def
                .columns
                .iter()
                .map(|c| {
                    Operand::Const(
                        ScalarValue::try_from(c.field.data_type()).unwrap_or(ScalarValue::Null),
                    )
                })
                .collect();
            for (expr, &target) in row.content.iter().zip(&targets) {
                operands[target] = binder.value(expr, target, true)?;
            }
            rows.push(operands);
        }
        let param_types = binder.param_types(declared)?;
        Some(FastMatch {
            plan: FastPlan::Insert {
                table,
                rows,
                on_conflict,
            },
            param_types,
            result_schema: None,
        })
    }

    fn fast_delete_match(&self, delete: &ast::Delete, declared: &[SqlType]) -> Option<FastMatch> {
        let ast::Delete {
            delete_token: _,
            optimizer_hints,
            tables,
            from,
            using,
            selection,
            returning,
            output,
            order_by,
            limit,
        } = delete;
        if !optimizer_hints.is_empty()
            || !tables.is_empty()
            || using.is_some()
            || returning.is_some()
            || output.is_some()
            || !order_by.is_empty()
            || limit.is_some()
        {
            return None;
        }
        let from = match from {
            ast::FromTable::WithFromKeyword(from) => from,
            ast::FromTable::WithoutKeyword(_) => return None,
        };
        let [from] = from.as_slice() else {
            return None;
        };
        if !from.joins.is_empty() {
            return None;
        }
        let (name, alias) = single_table(&from.relation)?;
        let table = self.fast_table(name)?;
        let def = &table.def;
        let mut binder = Binder {
            def,
            qualifier: alias.unwrap_or_else(|| def.name.clone()),
            params: Vec::new(),
        };
        let key = binder.key_predicate(selection.as_ref()?)?;
        let param_types = binder.param_types(declared)?;
        Some(FastMatch {
            plan: FastPlan::Delete { table, key },
            param_types,
            result_schema: None,
        })
    }

    /// Runs a fast-path statement.
    pub(super) async fn execute_fast(
        &mut self,
        plan: &FastPlan,
        param_types: &[SqlType],
        params: Vec<ScalarValue>,
    ) -> SqlResult<StatementResult> {
        if params.len() != param_types.len() {
            return Err(SqlError::new(
                sqlstate::PROTOCOL_VIOLATION,
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    params.len(),
                    param_types.len()
                ),
            ));
        }
        let params = params
            .into_iter()
            .zip(param_types)
            .map(|(value, ty)| {
                let target = ty.to_arrow();
                if value.data_type() == target {
                    Ok(value)
                } else {
                    value.cast_to(&target).map_err(SqlError::from)
                }
            })
            .collect::<SqlResult<Vec<_>>>()?;
        match plan {
            FastPlan::Get {
                table,
                key,
                projection,
                schema,
            } => {
                let view = self.read_view().await;
                let row = match self.fast_key(table, key, &params)? {
                    Some(key) => view.get(table, &key)?,
                    None => None,
                };
                let batch = match row {
                    Some(row) => {
                        let full = table.codec.decode_rows([row.as_ref()])?;
                        RecordBatch::try_new(
                            schema.clone(),
                            projection.iter().map(|&i| full.column(i).clone()).collect(),
                        )?
                    }
                    None => RecordBatch::new_empty(schema.clone()),
                };
                let stream = futures::stream::iter([Ok(batch)]);
                Ok(StatementResult::Rows {
                    rows: RowStream {
                        schema: schema.clone(),
                        stream: Box::pin(RecordBatchStreamAdapter::new(schema.clone(), stream)),
                    },
                    tag: "SELECT",
                })
            }
            FastPlan::Update { table, key, sets } => {
                self.check_writable("UPDATE")?;
                let mut txn = self.statement_txn().await?;
                let result = self.fast_update(table, key, sets, &params, &mut txn).await;
                let count = self.finish_statement_txn(txn, result).await?;
                Ok(StatementResult::Command(format!("UPDATE {count}")))
            }
            FastPlan::Delete { table, key } => {
                self.check_writable("DELETE")?;
                let mut txn = self.statement_txn().await?;
                let result = self.fast_delete(table, key, &params, &mut txn).await;
                let count = self.finish_statement_txn(txn, result).await?;
                Ok(StatementResult::Command(format!("DELETE {count}")))
            }
            FastPlan::Insert {
                table,
                rows,
                on_conflict,
            } => {
                self.check_writable("INSERT")?;
                let now = self.clock_value();
                let mut txn = self.statement_txn().await?;
                let result = self
                    .fast_insert(table, rows, *on_conflict, &params, &now, &mut txn)
                    .await;
                let count = self.finish_statement_txn(txn, result).await?;
                Ok(StatementResult::Command(format!("INSERT 0 {count}")))
            }
        }
    }

    /// `transaction_read_only` refuses writes (25006).
    pub(super) fn check_writable(&self, verb: &str) -> SqlResult<()> {
        if self.vars.get("transaction_read_only").unwrap_or_default() == "on" {
            return Err(SqlError::new(
                sqlstate::READ_ONLY_SQL_TRANSACTION,
                format!("cannot execute {verb} in a read-only transaction"),
            ));
        }
        Ok(())
    }

    /// `CURRENT_TIMESTAMP` as `now()` gives it: the statement's start, or the transaction
    /// block's, a UTC instant (`timestamptz`).
    fn clock_value(&self) -> ScalarValue {
        let start = self
            .txn
            .as_ref()
            .map(|block| block.started_at)
            .unwrap_or_else(chrono::Utc::now);
        ScalarValue::TimestampMicrosecond(Some(start.timestamp_micros()), Some("+00:00".into()))
    }

    /// The clock value `now` (a UTC instant) for a column of type `target`: a `timestamp`
    /// without zone gets the session's wall-clock time, as PostgreSQL's assignment cast gives.
    fn clock_for(&self, now: &ScalarValue, target: &DataType) -> ScalarValue {
        match (now, target) {
            (ScalarValue::TimestampMicrosecond(Some(utc), _), DataType::Timestamp(_, None)) => {
                let zone = crate::datetime::Zone::from_setting(
                    self.state.config().options().execution.time_zone.as_deref(),
                );
                let local = utc + i64::from(zone.offset_at_utc(*utc)) * 1_000_000;
                ScalarValue::TimestampMicrosecond(Some(local), None)
            }
            _ => now.clone(),
        }
    }

    /// The storage key for the key operands (`None`: a NULL key matches nothing).
    fn fast_key(
        &self,
        table: &TableData,
        key: &[Operand],
        params: &[ScalarValue],
    ) -> SqlResult<Option<Key>> {
        // One integer key column (pgbench's shape): its bytes directly.
        if let [operand] = key {
            let integer = match key_value(operand, params)? {
                ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
                ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
                ScalarValue::Int64(Some(v)) => Some(*v),
                _ => None,
            };
            if let Some(key) = integer.and_then(|v| table.codec.integer_key(v)) {
                return Ok(key);
            }
        }
        let key_columns = table.codec.key_columns();
        let mut arrays = Vec::with_capacity(key.len());
        for (operand, &column) in key.iter().zip(key_columns) {
            let value = key_value(operand, params)?.clone();
            if value.is_null() {
                return Ok(None);
            }
            let target = table.def.columns[column].field.data_type();
            let value = if value.data_type() == *target {
                value
            } else {
                match value.cast_to(target) {
                    Ok(v) => v,
                    // A value outside the key type's range equals no key.
                    Err(_) => return Ok(None),
                }
            };
            arrays.push(value.to_array()?);
        }
        let rows = table
            .codec
            .encode_key_values(&arrays)?
            .ok_or_else(|| SqlError::internal("fast path on a table without a primary key"))?;
        Ok(Some(Arc::from(rows.row(0).data())))
    }

    async fn fast_update(
        &self,
        table: &Arc<TableData>,
        key: &[Operand],
        sets: &[(usize, Assigned)],
        params: &[ScalarValue],
        txn: &mut Txn,
    ) -> SqlResult<usize> {
        let Some((key, row)) = self.fast_locked_row(table, key, params, txn).await? else {
            return Ok(0);
        };
        let old = table.codec.decode_rows([row.as_ref()])?;
        let mut columns = old.columns().to_vec();
        for (column, assigned) in sets {
            let target = table.def.columns[*column].field.data_type();
            let raw = |operand: &Operand| -> SqlResult<ArrayRef> {
                Ok(match operand {
                    Operand::Column(i) => old.column(*i).clone(),
                    Operand::Param(n) => params[*n].to_array()?,
                    Operand::Const(v) => v.to_array()?,
                    Operand::Now => self.clock_for(&self.clock_value(), target).to_array()?,
                })
            };
            let array = |operand: &Operand| to_column(raw(operand)?, target);
            let numeric = matches!(target, DataType::Decimal128(..) | DataType::LargeBinary);
            let value = match assigned {
                Assigned::Value(v) => array(v)?,
                // Numerics: the exact sum, then the column's rounding (as PostgreSQL assigns
                // `amount + $1`), never the operands rounded first.
                Assigned::Add(a, b) if numeric => numeric_arith(&raw(a)?, &raw(b)?, true, target)?,
                Assigned::Sub(a, b) if numeric => numeric_arith(&raw(a)?, &raw(b)?, false, target)?,
                Assigned::Add(a, b) => {
                    numeric::add(&array(a)?, &array(b)?).map_err(|e| out_of_range(e, target))?
                }
                Assigned::Sub(a, b) => {
                    numeric::sub(&array(a)?, &array(b)?).map_err(|e| out_of_range(e, target))?
                }
            };
            columns[*column] = value;
        }
        check_not_null(table, &columns)?;
        let rows = table.codec.encode_rows(&columns)?;
        let new_row: RowBytes = Arc::from(rows.row(0).data());
        txn.write(table, key, Some(new_row)).await?;
        Ok(1)
    }

    /// The row with key `key` the statement's snapshot sees, locked, in its newest version
    /// (READ COMMITTED; a changed row is a serialization failure under REPEATABLE READ), as
    /// UPDATE and DELETE find it; `None` when there is none (any more).
    async fn fast_locked_row(
        &self,
        table: &Arc<TableData>,
        key: &[Operand],
        params: &[ScalarValue],
        txn: &mut Txn,
    ) -> SqlResult<Option<(Key, RowBytes)>> {
        let view = txn.statement_view();
        let Some(key) = self.fast_key(table, key, params)? else {
            return Ok(None);
        };
        // Only a row the statement's snapshot sees is a candidate (as a scan would find it).
        if view.get(table, &key)?.is_none() {
            return Ok(None);
        }
        txn.lock_row(table, &key).await?;
        Ok(match txn.check_row(table, &key, &view)? {
            RowCheck::Current(Some(row)) | RowCheck::Changed(Some(row)) => Some((key, row)),
            RowCheck::Current(None) | RowCheck::Changed(None) => None,
        })
    }

    async fn fast_delete(
        &self,
        table: &Arc<TableData>,
        key: &[Operand],
        params: &[ScalarValue],
        txn: &mut Txn,
    ) -> SqlResult<usize> {
        let Some((key, _)) = self.fast_locked_row(table, key, params, txn).await? else {
            return Ok(0);
        };
        txn.write(table, key, None).await?;
        Ok(1)
    }

    async fn fast_insert(
        &self,
        table: &Arc<TableData>,
        rows: &[Vec<Operand>],
        on_conflict: Conflict,
        params: &[ScalarValue],
        now: &ScalarValue,
        txn: &mut Txn,
    ) -> SqlResult<usize> {
        let def = &table.def;
        let mut columns: Vec<Vec<ArrayRef>> =
            vec![Vec::with_capacity(rows.len()); def.columns.len()];
        for row in rows {
            for (i, operand) in row.iter().enumerate() {
                let target = def.columns[i].field.data_type();
                let array = match operand {
                    Operand::Param(n) => params[*n].to_array()?,
                    Operand::Const(v) if v.is_null() => new_null_array(target, 1),
                    Operand::Const(v) => v.to_array()?,
                    Operand::Now => self.clock_for(now, target).to_array()?,
                    Operand::Column(_) => {
                        return Err(SqlError::internal("fast path: column in VALUES"))
                    }
                };
                columns[i].push(to_column(array, target)?);
            }
        }
        let columns: Vec<ArrayRef> = columns
            .iter()
            .map(|parts| {
                let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                datafusion::arrow::compute::concat(&parts)
            })
            .collect::<Result<_, _>>()?;
        check_not_null(table, &columns)?;
        let encoded = table.codec.encode_rows(&columns)?;
        let keys = table.codec.encode_keys(&columns)?;
        // Only DO NOTHING without a target skips rows taken on another unique key.
        let other_keys =
            on_conflict == Conflict::SkipAny && table.def.indexes.iter().any(|i| i.unique);
        let mut inserted = 0;
        for i in 0..rows.len() {
            let row: RowBytes = Arc::from(encoded.row(i).data());
            let key: Key = match &keys {
                Some(keys) => {
                    let key: Key = Arc::from(keys.row(i).data());
                    txn.lock_row(table, &key).await?;
                    if txn.key_exists(table, &key)? {
                        if on_conflict == Conflict::Error {
                            return Err(duplicate_key(table, &key));
                        }
                        continue;
                    }
                    key
                }
                None => floe_storage::TableCodec::rowid_key(table.next_rowid()),
            };
            if other_keys
                && txn
                    .unique_conflict(table, &key, Some(&row))
                    .await?
                    .is_some()
            {
                continue;
            }
            txn.write(table, key, Some(row)).await?;
            inserted += 1;
        }
        Ok(inserted)
    }
}

/// A key operand's value: a parameter or a constant.
fn key_value<'a>(operand: &'a Operand, params: &'a [ScalarValue]) -> SqlResult<&'a ScalarValue> {
    match operand {
        Operand::Param(n) => Ok(&params[*n]),
        Operand::Const(v) => Ok(v),
        Operand::Column(_) | Operand::Now => Err(SqlError::internal("fast path: bad key operand")),
    }
}

/// Integer overflow as PostgreSQL words it (`integer out of range`, 22003).
fn out_of_range(err: ArrowError, data_type: &DataType) -> SqlError {
    let name = match data_type {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        _ => return SqlError::from(err),
    };
    match err {
        ArrowError::ArithmeticOverflow(_) => SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{name} out of range"),
        ),
        other => SqlError::from(other),
    }
}

/// NOT NULL, with PostgreSQL's message and the failing row as DETAIL.
fn check_not_null(table: &TableData, columns: &[ArrayRef]) -> SqlResult<()> {
    let def = &table.def;
    for (i, column) in def.columns.iter().enumerate() {
        if column.not_null() && columns[i].null_count() > 0 {
            let row = (0..columns[i].len())
                .find(|&r| columns[i].is_null(r))
                .unwrap_or(0);
            let nullable: Vec<Field> = table
                .codec
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect();
            let batch = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(nullable)),
                columns.to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(columns[i].len())),
            )?;
            return Err(SqlError::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    column.name, def.name
                ),
            )
            .with_detail(failing_row(&batch, def.columns.len(), row)));
        }
    }
    Ok(())
}

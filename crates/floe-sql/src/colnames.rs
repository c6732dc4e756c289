//! Result column names as PostgreSQL chooses them.
//!
//! DataFusion names an unaliased column after its whole expression (`Int64(1) + Int64(2)`);
//! PostgreSQL uses a short name (`?column?`, the function's name, the cast's type name, …, see
//! `FigureColname` in PostgreSQL's `parse_target.c`). Before planning, every unaliased select
//! item gets PostgreSQL's name as an alias. PostgreSQL allows two columns of one select list to
//! share a name and DataFusion does not, so repeats get an invisible suffix
//! ([`HIDDEN_SUFFIX`] + counter) that [`display_name`] strips from the result description.
//!
//! Table functions in FROM are named like PostgreSQL too: `generate_series(1, 3)` yields a
//! column `generate_series`, and `generate_series(1, 3) AS g` a column `g`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, DataType, Expr, Ident, ObjectName, OrderBy, OrderByKind, Query, SelectItem, SetExpr,
    Statement, TableAlias, TableAliasColumnDef, TableFactor, TimezoneInfo, Visit, VisitMut,
    Visitor, VisitorMut,
};

/// Separates a column's name from the counter that keeps repeated names apart.
pub const HIDDEN_SUFFIX: char = '\u{1}';

/// The name a client should see for an internally unique column name.
pub fn display_name(name: &str) -> &str {
    name.split(HIDDEN_SUFFIX).next().unwrap_or(name)
}

/// Aliases every unaliased select item of every SELECT in `statement` with PostgreSQL's name.
pub fn name_columns(statement: &mut Statement) {
    let _ = statement.visit(&mut Namer);
}

struct Namer;

impl VisitorMut for Namer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        name_set_expr(&mut query.body);
        unclash_aliases(query);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                restore_alias_names(&cte.query, &mut cte.alias);
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Derived {
            subquery,
            alias: Some(alias),
            ..
        } = factor
        {
            restore_alias_names(subquery, alias);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        // `unnest(array)` in FROM is one column named like its alias, or `unnest`
        // (DataFusion's name was the whole expression).
        if let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } = factor
        {
            if array_exprs.len() == 1 {
                name_single_column(alias, "unnest");
            }
            return ControlFlow::Continue(());
        }
        if let TableFactor::Table {
            name,
            alias,
            args: Some(_),
            ..
        } = factor
        {
            let function = object_last(name);
            if is_scalar_table_function(&function) {
                name_single_column(alias, &function);
            }
        }
        ControlFlow::Continue(())
    }
}

/// The one column of a table function in FROM is named after its alias, or `function` (as
/// is the alias then).
fn name_single_column(alias: &mut Option<TableAlias>, function: &str) {
    match alias {
        None => {
            *alias = Some(TableAlias {
                explicit: true,
                name: Ident::new(function),
                columns: vec![TableAliasColumnDef::from_name(function)],
                at: None,
            })
        }
        Some(a) if a.columns.is_empty() => {
            a.columns = vec![TableAliasColumnDef {
                name: a.name.clone(),
                data_type: None,
            }]
        }
        Some(_) => {}
    }
}

/// Table functions returning one unnamed column, named after the function or its alias.
fn is_scalar_table_function(name: &str) -> bool {
    matches!(name, "generate_series" | "range")
}

fn name_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => name_items(&mut select.projection),
        SetExpr::Query(query) => name_set_expr(&mut query.body),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left);
            name_set_expr(right);
        }
        _ => {}
    }
}

/// Select aliases DataFusion would find ambiguous get a hidden suffix:
/// - `SELECT lower(t.name) AS name FROM t ORDER BY t.name` sorts by the table's column in
///   PostgreSQL. DataFusion plans such an ORDER BY column as an extra column next to the select
///   list, where a column `name` beside `t.name` is ambiguous to it (42702).
/// - `SELECT unnest(tags), n + 1 AS n FROM t`: with a set-returning function DataFusion
///   projects the columns the select list reads next to its items before it unnests, so an
///   alias named like such a column is ambiguous too.
///
/// A bare `ORDER BY name` (PostgreSQL's output-column reference) follows the new alias.
fn unclash_aliases(query: &mut Query) {
    let SetExpr::Select(select) = query.body.as_mut() else {
        return;
    };
    let mut order = match &mut query.order_by {
        Some(OrderBy {
            kind: OrderByKind::Expressions(order),
            ..
        }) => Some(order),
        _ => None,
    };
    let mut in_order = References::default();
    for item in order.iter().flat_map(|o| o.iter()) {
        let _ = item.expr.visit(&mut in_order);
    }
    let mut in_select = References::default();
    for item in &select.projection {
        if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item {
            let _ = expr.visit(&mut in_select);
        }
    }
    if in_order.qualified.is_empty() && !in_select.set_returning {
        return;
    }
    for (position, item) in select.projection.iter_mut().enumerate() {
        let SelectItem::ExprWithAlias { expr, alias } = item else {
            continue;
        };
        let name = alias_name(alias);
        // `SELECT t.name AS name … ORDER BY t.name` is the same column: DataFusion sorts by
        // the select item.
        let same = folded_parts(expr);
        let order_clash = in_order
            .qualified
            .iter()
            .any(|parts| parts.last() == Some(&name) && Some(parts) != same.as_ref());
        let unnest_clash = in_select.set_returning && in_select.names.contains(&name);
        if !order_clash && !unnest_clash {
            continue;
        }
        let unique = Ident::with_quote('"', format!("{name}{RENAMED_MARK}{position}"));
        for item in order.iter_mut().flat_map(|o| o.iter_mut()) {
            if matches!(&item.expr, Expr::Identifier(ident) if ident_name(ident) == name) {
                item.expr = Expr::Identifier(unique.clone());
            }
        }
        *alias = unique;
    }
}

/// Marks an alias [`unclash_aliases`] renamed.
const RENAMED_MARK: &str = "\u{1}o";

/// A derived table or CTE whose select list [`unclash_aliases`] renamed keeps the names
/// PostgreSQL gives its columns, through the alias's column list (`AS x(name, …)`), when the
/// list is known (no `*`) and the names are distinct.
fn restore_alias_names(query: &Query, alias: &mut TableAlias) {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return;
    };
    if !alias.columns.is_empty() {
        return;
    }
    let renamed = select.projection.iter().any(
        |item| matches!(item, SelectItem::ExprWithAlias { alias, .. } if alias.value.contains(RENAMED_MARK)),
    );
    if !renamed {
        return;
    }
    let mut names = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        let name = match item {
            SelectItem::ExprWithAlias { alias, .. } if alias.value.contains(RENAMED_MARK) => {
                display_name(&alias.value).to_string()
            }
            SelectItem::ExprWithAlias { alias, .. } => alias_name(alias),
            SelectItem::UnnamedExpr(expr) => match figure_name(expr) {
                Some(name) => name,
                None => return,
            },
            _ => return,
        };
        if names.contains(&name) {
            return;
        }
        names.push(name);
    }
    alias.columns = names
        .into_iter()
        .map(|name| TableAliasColumnDef {
            name: Ident::with_quote('"', name),
            data_type: None,
        })
        .collect();
}

/// The parts of a qualified column reference, case-folded.
fn folded_parts(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::CompoundIdentifier(parts) if parts.len() > 1 => {
            Some(parts.iter().map(ident_name).collect())
        }
        _ => None,
    }
}

/// What an expression reads outside its subqueries: qualified column references (as
/// [`folded_parts`]), the names of all column references, and whether it calls a
/// set-returning function.
#[derive(Default)]
struct References {
    qualified: Vec<Vec<String>>,
    names: Vec<String>,
    set_returning: bool,
    depth: usize,
}

impl Visitor for References {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        match expr {
            Expr::Identifier(ident) => self.names.push(ident_name(ident)),
            Expr::CompoundIdentifier(parts) => {
                self.names.extend(parts.last().map(ident_name));
                self.qualified.extend(folded_parts(expr));
            }
            Expr::Function(function) => {
                let name = object_last(&function.name);
                if function.over.is_none()
                    && (name == "unnest" || crate::rewrite::is_list_returning(&name))
                {
                    self.set_returning = true;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn name_items(items: &mut [SelectItem]) {
    // The columns a `*` brings are not known here, so next to one every unaliased item gets
    // a hidden suffix: `SELECT *, x FROM t` has two columns named x.
    let wildcard = items.iter().any(|i| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (position, item) in items.iter_mut().enumerate() {
        let (expr, name, explicit) = match item {
            SelectItem::UnnamedExpr(expr) => {
                let name = figure_name(expr).unwrap_or_else(|| "?column?".into());
                // A plain column keeps DataFusion's own naming (qualifier handling included)
                // unless the name repeats.
                if matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                    let count = seen.entry(name.clone()).or_default();
                    *count += 1;
                    if *count == 1 && !wildcard {
                        continue;
                    }
                }
                (expr.clone(), name, false)
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let name = alias_name(alias);
                (expr.clone(), name, true)
            }
            _ => continue,
        };
        let plain = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
        let count = if plain && !explicit {
            seen.get(&name).copied().unwrap_or(1)
        } else {
            let count = seen.entry(name.clone()).or_default();
            *count += 1;
            *count
        };
        let unique = if wildcard && !explicit {
            format!("{name}{HIDDEN_SUFFIX}w{position}")
        } else if count == 1 {
            name
        } else {
            format!("{name}{HIDDEN_SUFFIX}{count}")
        };
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', unique),
        };
    }
}

use crate::names::ident_name;

fn alias_name(ident: &Ident) -> String {
    ident_name(ident)
}

fn object_last(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(ident_name)
        .unwrap_or_default()
}

/// PostgreSQL's `FigureColname`: `None` means `?column?`.
fn figure_name(expr: &Expr) -> Option<String> {
    figure(expr).map(|(name, _)| name)
}

/// How sure a name is, as in PostgreSQL's `FigureColnameInternal`: a type name or `case` is a
/// weak choice that an enclosing cast or CASE overrides; a column or function name is strong.
const WEAK: u8 = 1;
const STRONG: u8 = 2;

/// PostgreSQL's `FigureColnameInternal`: the name and its strength (`None`: no name).
fn figure(expr: &Expr) -> Option<(String, u8)> {
    let strong = |name: &str| Some((name.to_string(), STRONG));
    match expr {
        Expr::Identifier(ident) => Some((ident_name(ident), STRONG)),
        Expr::CompoundIdentifier(parts) => parts.last().map(|p| (ident_name(p), STRONG)),
        Expr::Nested(inner) => figure(inner),
        Expr::Collate { expr, .. } => figure(expr),
        Expr::CompoundFieldAccess { root, .. } => figure(root),
        Expr::Function(function) => Some((object_last(&function.name), STRONG)),
        // `x AT TIME ZONE z` is the function `timezone(z, x)`.
        Expr::AtTimeZone { .. } => strong("timezone"),
        Expr::Cast {
            expr, data_type, ..
        } => match figure(expr) {
            Some((name, STRONG)) => Some((name, STRONG)),
            _ => Some((type_name(data_type), WEAK)),
        },
        Expr::TypedString(typed) => Some((type_name(&typed.data_type), WEAK)),
        Expr::Interval(_) => Some(("interval".into(), WEAK)),
        Expr::Case { else_result, .. } => match else_result.as_deref().and_then(figure) {
            Some((name, STRONG)) => Some((name, STRONG)),
            _ => Some(("case".into(), WEAK)),
        },
        // `NOT EXISTS` is a NOT over the sublink: PostgreSQL has no name for it.
        Expr::Exists { negated: false, .. } => strong("exists"),
        Expr::Array(_) => strong("array"),
        Expr::Tuple(_) => strong("row"),
        Expr::Extract { .. } => strong("extract"),
        Expr::Substring { shorthand, .. } => {
            strong(if *shorthand { "substr" } else { "substring" })
        }
        Expr::Trim { .. } => strong("btrim"),
        Expr::Position { .. } => strong("position"),
        Expr::Overlay { .. } => strong("overlay"),
        Expr::Ceil { .. } => strong("ceil"),
        Expr::Floor { .. } => strong("floor"),
        // The subquery's column name, `?column?` included, is a strong one:
        // `CAST((SELECT 2) AS int2)` is `?column?`, not `int2`.
        Expr::Subquery(query) => Some((
            subquery_name(query).unwrap_or_else(|| "?column?".into()),
            STRONG,
        )),
        _ => None,
    }
}

/// A scalar subquery is named after its single column.
fn subquery_name(query: &Query) -> Option<String> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    match select.projection.first()? {
        SelectItem::UnnamedExpr(expr) => figure_name(expr),
        SelectItem::ExprWithAlias { alias, .. } => Some(display_name(&alias_name(alias)).into()),
        _ => None,
    }
}

/// PostgreSQL's internal name of a type, as a cast column is named (`int4`, `float8`, …).
pub fn type_name(data_type: &DataType) -> String {
    use DataType as D;
    match data_type {
        D::Int(_) | D::Integer(_) | D::Int4(_) => "int4".into(),
        D::BigInt(_) | D::Int8(_) => "int8".into(),
        D::SmallInt(_) | D::Int2(_) => "int2".into(),
        D::Real | D::Float4 => "float4".into(),
        D::Double(_) | D::DoublePrecision | D::Float8 => "float8".into(),
        D::Float(info) => match info {
            ast::ExactNumberInfo::Precision(p) | ast::ExactNumberInfo::PrecisionAndScale(p, _)
                if *p <= 24 =>
            {
                "float4".into()
            }
            _ => "float8".into(),
        },
        D::Numeric(_) | D::Decimal(_) | D::Dec(_) => "numeric".into(),
        D::Text => "text".into(),
        D::Varchar(_) | D::CharacterVarying(_) | D::CharVarying(_) => "varchar".into(),
        D::Char(_) | D::Character(_) => "bpchar".into(),
        D::Bool | D::Boolean => "bool".into(),
        D::Date => "date".into(),
        D::Time(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => "timetz".into(),
            _ => "time".into(),
        },
        D::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => "timestamptz".into(),
            _ => "timestamp".into(),
        },
        D::Interval { .. } => "interval".into(),
        D::Uuid => "uuid".into(),
        D::JSON => "json".into(),
        D::JSONB => "jsonb".into(),
        D::Bytea => "bytea".into(),
        D::Regclass => "regclass".into(),
        D::Array(elem) => match elem {
            ast::ArrayElemTypeDef::AngleBracket(t)
            | ast::ArrayElemTypeDef::SquareBracket(t, _)
            | ast::ArrayElemTypeDef::Parenthesis(t) => type_name(t),
            ast::ArrayElemTypeDef::None => "anyarray".into(),
        },
        D::Custom(name, _) => object_last(name),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn names(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        name_columns(&mut statement);
        statement.to_string().replace(HIDDEN_SUFFIX, "#")
    }

    #[test]
    fn names_follow_postgres() {
        assert_eq!(
            names("SELECT 1, 1 + 2, 'x'::text, NULL::int, count(*), a, t.b, (c)"),
            "SELECT 1 AS \"?column?\", 1 + 2 AS \"?column?#2\", 'x'::TEXT AS \"text\", \
             NULL::INT AS \"int4\", count(*) AS \"count\", a, t.b, (c) AS \"c\""
        );
        assert_eq!(
            names("SELECT CASE WHEN true THEN 1 END, ARRAY[1], x::int8 FROM t"),
            "SELECT CASE WHEN true THEN 1 END AS \"case\", ARRAY[1] AS \"array\", x::INT8 AS \"x\" FROM t"
        );
        assert_eq!(
            names("SELECT * FROM generate_series(1, 3)"),
            "SELECT * FROM generate_series(1, 3) AS generate_series (generate_series)"
        );
        assert_eq!(
            names("SELECT g FROM generate_series(1, 3) g"),
            "SELECT g FROM generate_series(1, 3) g (g)"
        );
        assert_eq!(display_name("?column?\u{1}2"), "?column?");
        assert_eq!(
            names("SELECT EXISTS (SELECT 1), NOT EXISTS (SELECT 1)"),
            "SELECT EXISTS (SELECT 1 AS \"?column?\") AS \"exists\", \
             NOT EXISTS (SELECT 1 AS \"?column?\") AS \"?column?\""
        );
    }

    /// A cast of a cast is named by the outer type, a cast of a column by the column; CASE
    /// takes its ELSE branch's name when that is a column or function name.
    #[test]
    fn weak_names_give_way() {
        assert_eq!(
            names("SELECT '2.25'::float8::int2, CAST(NULL::bool AS int4), CAST(x::int8 AS text) FROM t"),
            "SELECT '2.25'::FLOAT8::INT2 AS \"int2\", CAST(NULL::BOOL AS INT4) AS \"int4\", \
             CAST(x::INT8 AS TEXT) AS \"x\" FROM t"
        );
        assert_eq!(
            names("SELECT CASE WHEN a THEN 1 ELSE sum(b) END, CASE WHEN a THEN 1 ELSE c END, CASE WHEN a THEN 1 ELSE 2::int8 END FROM t"),
            "SELECT CASE WHEN a THEN 1 ELSE sum(b) END AS \"sum\", CASE WHEN a THEN 1 ELSE c END AS \"c\", \
             CASE WHEN a THEN 1 ELSE 2::INT8 END AS \"case\" FROM t"
        );
    }

    /// An alias named like a qualified ORDER BY column is renamed (DataFusion would see both
    /// side by side); bare ORDER BY names follow it, and a derived table keeps the name.
    #[test]
    fn order_by_columns_do_not_clash_with_aliases() {
        assert_eq!(
            names("SELECT lower(t.k) AS K, t.v AS v FROM t ORDER BY t.k, k, T.V"),
            "SELECT lower(t.k) AS \"k#o0\", t.v AS \"v\" FROM t ORDER BY t.k, \"k#o0\", T.V"
        );
        assert_eq!(
            names("SELECT x.k FROM (SELECT a.v AS k, a.w FROM a ORDER BY a.k) AS x"),
            "SELECT x.k FROM (SELECT a.v AS \"k#o0\", a.w FROM a ORDER BY a.k) AS x (\"k\", \"w\")"
        );
        assert_eq!(
            names("SELECT unnest(a) AS u, n + 1 AS n FROM t ORDER BY n"),
            "SELECT unnest(a) AS \"u\", n + 1 AS \"n#o1\" FROM t ORDER BY \"n#o1\""
        );
        assert_eq!(
            names("WITH c AS (SELECT a.v AS k FROM a ORDER BY a.k) SELECT k FROM c"),
            "WITH c (\"k\") AS (SELECT a.v AS \"k#o0\" FROM a ORDER BY a.k) SELECT k FROM c"
        );
    }
}

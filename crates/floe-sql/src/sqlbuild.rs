//! Building statements Floe plans on a user's behalf (DML's row queries, ALTER TABLE's
//! rewrites) as syntax trees.
//!
//! A generated statement starts from a *template*: constant SQL text naming only Floe's own
//! internal relations, slots and types, parsed once. The user's parsed expressions, table
//! references and names are then put into the tree, never printed back to SQL and re-read:
//! printing and re-parsing loses what the printer does not spell exactly as it was read
//! (and quoting names into text is a place for injection bugs).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, Ident, ObjectName, Query, Select, SelectItem, SetExpr, Statement,
    TableAlias, TableAliasColumnDef, TableFactor, TableWithJoins,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{SqlError, SqlResult};

/// The identifier a template marks a slot with: `__floe_slot`.
pub(crate) const SLOT: &str = "__floe_slot";

/// Parses a template query (Floe's own text; see the module doc).
pub(crate) fn template_query(sql: &str) -> SqlResult<Query> {
    let dialect = PostgreSqlDialect {};
    let mut statements = Parser::parse_sql(&dialect, sql)?;
    match statements.pop() {
        Some(Statement::Query(query)) if statements.is_empty() => Ok(*query),
        _ => Err(SqlError::internal(format!(
            "template is not one query: {sql}"
        ))),
    }
}

/// Parses a template expression (Floe's own text, or an expression stored in the catalog).
pub(crate) fn template_expr(sql: &str) -> SqlResult<Expr> {
    let dialect = PostgreSqlDialect {};
    Ok(Parser::new(&dialect).try_with_sql(sql)?.parse_expr()?)
}

/// Replaces every identifier [`SLOT`] in `template` with `value`.
pub(crate) fn fill(mut template: Expr, value: Expr) -> Expr {
    let mut value = Some(value);
    let _ = visit_expressions_mut(&mut template, |expr| {
        if matches!(expr, Expr::Identifier(i) if i.value == SLOT) {
            if let Some(v) = value.take() {
                *expr = v;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    template
}

/// The SELECT of a query built from a template (`SELECT … FROM …`).
pub(crate) fn select_mut(query: &mut Query) -> SqlResult<&mut Select> {
    match query.body.as_mut() {
        SetExpr::Select(select) => Ok(select),
        _ => Err(SqlError::internal("template query is not a SELECT")),
    }
}

/// A name as written in a quoted identifier: its case and characters kept.
pub(crate) fn name(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// `qualifier.column`.
pub(crate) fn column(qualifier: &str, column: &str) -> Expr {
    Expr::CompoundIdentifier(vec![name(qualifier), name(column)])
}

/// `expr AS alias`.
pub(crate) fn aliased(expr: Expr, alias: &str) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr,
        alias: name(alias),
    }
}

/// `(query) AS alias (columns…)`.
pub(crate) fn derived(query: Query, alias: &str, columns: &[String]) -> TableWithJoins {
    TableWithJoins {
        relation: TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(TableAlias {
                explicit: true,
                name: name(alias),
                columns: columns
                    .iter()
                    .map(|c| TableAliasColumnDef {
                        name: name(c),
                        data_type: None,
                    })
                    .collect(),
                at: None,
            }),
            sample: None,
        },
        joins: vec![],
    }
}

/// Sets the alias of the first table of a template's FROM (`FROM floe_internal.target AS x`).
pub(crate) fn set_first_alias(select: &mut Select, alias: &str) -> SqlResult<()> {
    match select.from.first_mut().map(|t| &mut t.relation) {
        Some(TableFactor::Table {
            alias: Some(table_alias),
            ..
        }) => {
            table_alias.name = name(alias);
            Ok(())
        }
        _ => Err(SqlError::internal(
            "template's first table has no alias to set",
        )),
    }
}

/// Names the first table of a template's FROM `schema.table` (both as written).
pub(crate) fn set_first_table(select: &mut Select, schema: &str, table: &str) -> SqlResult<()> {
    match select.from.first_mut().map(|t| &mut t.relation) {
        Some(TableFactor::Table {
            name: table_name, ..
        }) => {
            *table_name = ObjectName::from(vec![name(schema), name(table)]);
            Ok(())
        }
        _ => Err(SqlError::internal(
            "template's first FROM item is not a table",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_take_parsed_expressions_without_reparsing() {
        let user = template_expr("a || 'it''s \"x\"'").unwrap();
        let filled = fill(template_expr("CAST(__floe_slot AS TEXT)").unwrap(), user);
        assert_eq!(filled.to_string(), "CAST(a || 'it''s \"x\"' AS TEXT)");
        let mut query = template_query("SELECT 1 FROM floe_internal.target AS t").unwrap();
        let select = select_mut(&mut query).unwrap();
        set_first_alias(select, "we\"ird").unwrap();
        select.projection = vec![aliased(column("we\"ird", "Col"), "Col")];
        assert_eq!(
            query.to_string(),
            "SELECT \"we\"\"ird\".\"Col\" AS \"Col\" FROM floe_internal.target AS \"we\"\"ird\""
        );
    }
}

//! Subqueries with PostgreSQL's semantics where DataFusion's differ.
//!
//! - A correlated scalar subquery may return any number of rows in PostgreSQL: none is NULL,
//!   one is its value, more is an error (21000) for the outer row that asked. DataFusion only
//!   plans correlated scalar subqueries that are aggregated (it refuses the rest with "must be
//!   aggregated"), so [`PostgresSubqueries`] aggregates the subquery's rows into a list
//!   (`array_agg`) and wraps the subquery in `floe_single_row`, which picks the one element or
//!   raises 21000. The check runs per outer row, after decorrelation's join, so a key that no
//!   outer row asks for cannot raise it.
//! - `x NOT IN (SELECT y …)` is NULL, not true, when `x` is NULL or when no `y` equals `x` but
//!   some `y` is NULL. DataFusion's null-aware anti join gets this right only for an
//!   uncorrelated NOT IN that is a conjunct of WHERE; correlated, or under OR, it answers as if
//!   NULLs were unequal values. Where only truth matters (a filter, under AND and OR only, where
//!   NULL and false both drop the row) `x NOT IN (SELECT y FROM … WHERE c)` is
//!   `NOT EXISTS (SELECT … WHERE c AND (y = x OR y IS NULL OR x IS NULL))`, which DataFusion
//!   decorrelates exactly. The uncorrelated conjunct keeps DataFusion's hash anti join, unless
//!   `x` is a constant: DataFusion then pushes `y = x` into the subquery as a filter and joins
//!   without keys, which drops the NULL `y`s the answer depends on. Where the value of an IN
//!   or NOT IN in a filter matters (under CASE, NOT, IS NULL), DataFusion's mark join answers
//!   false for NULL; there it becomes a CASE of EXISTS with PostgreSQL's three values.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult, ScalarValue};
use datafusion::functions_aggregate::expr_fn::array_agg;
use datafusion::logical_expr::expr::{Exists, InSubquery, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Operator,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Subquery, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{sqlstate, SqlError};

/// The name of the function that takes a correlated scalar subquery's single row.
pub(crate) const SINGLE_ROW: &str = "floe_single_row";

/// The name of [`Nullable`].
pub(crate) const NULLABLE: &str = "floe_nullable";

/// `floe_single_row(list) → element`: NULL for no element, the element for one, 21000 for
/// more (see the module doc).
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleRow {
    signature: Signature,
}

impl ScalarUDFImpl for SingleRow {
    fn name(&self) -> &str {
        SINGLE_ROW
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match &arg_types[0] {
            DataType::List(field) | DataType::LargeList(field) => field.data_type().clone(),
            other => other.clone(),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let element_type = args.return_type().clone();
        let lists = args.args[0].to_array(args.number_rows)?;
        let mut values = Vec::with_capacity(lists.len());
        for row in 0..lists.len() {
            let elements = match lists.data_type() {
                DataType::List(_) if lists.is_valid(row) => Some(lists.as_list::<i32>().value(row)),
                DataType::LargeList(_) if lists.is_valid(row) => {
                    Some(lists.as_list::<i64>().value(row))
                }
                _ => None,
            };
            let value = match elements {
                Some(elements) if elements.len() > 1 => {
                    return Err(SqlError::new(
                        sqlstate::CARDINALITY_VIOLATION,
                        "more than one row returned by a subquery used as an expression",
                    )
                    .into())
                }
                Some(elements) if elements.len() == 1 => ScalarValue::try_from_array(&elements, 0)?,
                _ => ScalarValue::try_from(&element_type)?,
            };
            values.push(value);
        }
        if let ColumnarValue::Scalar(_) = &args.args[0] {
            if let Some(value) = values.into_iter().next() {
                return Ok(ColumnarValue::Scalar(value));
            }
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(&element_type)?));
        }
        if values.is_empty() {
            return Ok(ColumnarValue::Array(
                datafusion::arrow::array::new_empty_array(&element_type),
            ));
        }
        Ok(ColumnarValue::Array(ScalarValue::iter_to_array(values)?))
    }
}

/// The analyzer rule of the module doc.
#[derive(Debug)]
pub(crate) struct PostgresSubqueries {
    single_row: Arc<ScalarUDF>,
}

/// `floe_single_row`, registered so that rewrites of the parsed statement can call it.
/// `floe_nullable(x)`: `x`, typed as nullable (see [`PostgresSubqueries::single_row`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Nullable {
    signature: Signature,
}

impl ScalarUDFImpl for Nullable {
    fn name(&self) -> &str {
        NULLABLE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> DfResult<datafusion::arrow::datatypes::FieldRef> {
        Ok(Arc::new(
            args.arg_fields[0]
                .as_ref()
                .clone()
                .with_name(self.name())
                .with_nullable(true),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args[0].clone())
    }
}

fn nullable_udf() -> Arc<ScalarUDF> {
    static NULLABLE: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    NULLABLE
        .get_or_init(|| {
            Arc::new(ScalarUDF::new_from_impl(Nullable {
                signature: Signature::any(1, Volatility::Immutable),
            }))
        })
        .clone()
}

pub(crate) fn single_row_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(SingleRow {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl PostgresSubqueries {
    pub(crate) fn new() -> PostgresSubqueries {
        PostgresSubqueries {
            single_row: Arc::new(single_row_udf()),
        }
    }

    /// A correlated scalar subquery DataFusion would refuse, made to return one row per outer
    /// row (a list of the rows it found) and wrapped in `floe_single_row`.
    fn single_row(&self, expr: Expr) -> DfResult<Transformed<Expr>> {
        let Expr::ScalarSubquery(subquery) = expr else {
            return Ok(Transformed::no(expr));
        };
        if subquery.outer_ref_columns.is_empty() {
            // A subquery that finds no row is NULL, whatever its column's nullability:
            // DataFusion's simplifier would fold `(SELECT 'x' FROM t WHERE …) IS NULL` to false.
            let schema = subquery.subquery.schema();
            if schema.fields().len() == 1 && !schema.field(0).is_nullable() {
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(nullable_udf(), vec![Expr::ScalarSubquery(subquery)]),
                )));
            }
            return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
        }
        if is_aggregated(&subquery.subquery) {
            return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
        }
        let plan = subquery.subquery.as_ref();
        if plan.schema().fields().len() != 1 {
            return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
        }
        let (qualifier, field) = plan.schema().qualified_field(0);
        let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
        let rows = LogicalPlanBuilder::from(plan.clone())
            .aggregate(
                Vec::<Expr>::new(),
                vec![array_agg(column).alias(field.name())],
            )?
            .build()?;
        let listed = Expr::ScalarSubquery(Subquery {
            subquery: Arc::new(rows),
            outer_ref_columns: subquery.outer_ref_columns.clone(),
            spans: subquery.spans.clone(),
        });
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.single_row.clone(), vec![listed]),
        )))
    }
}

/// Refuses an aggregate of a subquery whose arguments are only outer columns
/// (`SELECT (SELECT sum(a.x)) FROM a`): PostgreSQL evaluates it in the outer query (one sum
/// over all of `a`), DataFusion would sum per outer row; a wrong answer is worse than none.
fn refuse_outer_aggregates(aggregates: &[Expr]) -> DfResult<()> {
    for aggregate in aggregates {
        let mut outer = false;
        let mut inner = false;
        aggregate.apply(|e| {
            match e {
                Expr::OuterReferenceColumn(..) => outer = true,
                Expr::Column(_) => inner = true,
                _ => {}
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        if outer && !inner {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "aggregate functions of only outer-level columns in a subquery are not supported",
            )
            .into());
        }
    }
    Ok(())
}

/// Whether DataFusion accepts `plan` as a correlated scalar subquery as it is (the cases of
/// its `check_subquery_expr`): aggregated, or at most one row.
fn is_aggregated(plan: &LogicalPlan) -> bool {
    let mut inner = plan;
    loop {
        match inner {
            LogicalPlan::Projection(p) => inner = p.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => inner = a.input.as_ref(),
            _ => break,
        }
    }
    match inner {
        LogicalPlan::Aggregate(_) => true,
        LogicalPlan::Filter(f) if matches!(f.input.as_ref(), LogicalPlan::Aggregate(_)) => true,
        _ => plan.max_rows().is_some_and(|rows| rows <= 1),
    }
}

/// `predicate` with each NOT IN subquery DataFusion would answer wrongly rewritten to NOT
/// EXISTS (see the module doc). `conjunct`: whether `predicate` is a conjunct of the filter
/// itself (not under OR).
fn not_in_to_not_exists(
    predicate: Expr,
    conjunct: bool,
    schema: &DFSchema,
) -> DfResult<Transformed<Expr>> {
    match predicate {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::And | Operator::Or) =>
        {
            let conjunct = conjunct && op == Operator::And;
            let left = not_in_to_not_exists(*left, conjunct, schema)?;
            let right = not_in_to_not_exists(*right, conjunct, schema)?;
            let changed = left.transformed || right.transformed;
            let expr = Expr::BinaryExpr(BinaryExpr::new(
                Box::new(left.data),
                op,
                Box::new(right.data),
            ));
            Ok(if changed {
                Transformed::yes(expr)
            } else {
                Transformed::no(expr)
            })
        }
        Expr::InSubquery(in_subquery)
            if in_subquery.negated
                && !(conjunct
                    && in_subquery.subquery.outer_ref_columns.is_empty()
                    && !in_subquery.expr.column_refs().is_empty()) =>
        {
            not_exists(in_subquery, schema)
        }
        // IN at a truth position is DataFusion's semi join, exact there.
        Expr::InSubquery(in_subquery) => Ok(Transformed::no(Expr::InSubquery(in_subquery))),
        // Anywhere else the membership's value matters.
        other => other.transform_down(|e| match e {
            Expr::InSubquery(in_subquery) => {
                let rewritten = three_valued_in(in_subquery, schema)?;
                // Its EXISTS are not to be visited again.
                Ok(Transformed::new(
                    rewritten.data,
                    rewritten.transformed,
                    datafusion::common::tree_node::TreeNodeRecursion::Jump,
                ))
            }
            Expr::ScalarSubquery(_) | Expr::Exists(_) => Ok(Transformed::new(
                e,
                false,
                datafusion::common::tree_node::TreeNodeRecursion::Jump,
            )),
            other => Ok(Transformed::no(other)),
        }),
    }
}

/// `x [NOT] IN (SELECT y …)` taken apart for EXISTS forms: the subquery, its column `y` and
/// `x` with its columns made outer references (and those references). `None` when `x` holds
/// a correlated subquery (or an IN/EXISTS one), which cannot move into another subquery, or
/// the subquery has more than one column.
struct Membership {
    subquery: Subquery,
    inner: Expr,
    outer: Expr,
    outer_ref_columns: Vec<Expr>,
}

impl Membership {
    fn of(in_subquery: &InSubquery, schema: &DFSchema) -> DfResult<Option<Membership>> {
        let InSubquery { expr, subquery, .. } = in_subquery;
        let plan = subquery.subquery.as_ref();
        // An uncorrelated scalar subquery (`(SELECT 1) NOT IN (…)`) can move into the EXISTS
        // as it is; a correlated one or another kind of subquery cannot.
        let mut has_subquery = false;
        expr.apply(|e| {
            has_subquery |= match e {
                Expr::ScalarSubquery(s) => !s.outer_ref_columns.is_empty(),
                Expr::InSubquery(_) | Expr::Exists(_) => true,
                _ => false,
            };
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        if has_subquery || plan.schema().fields().len() != 1 {
            return Ok(None);
        }
        let mut outer_columns = Vec::new();
        let outer = expr
            .as_ref()
            .clone()
            .transform(|e| match e {
                Expr::Column(column) => {
                    let (_, field) = schema.qualified_field_from_column(&column)?;
                    let outer = Expr::OuterReferenceColumn(Arc::clone(field), column);
                    outer_columns.push(outer.clone());
                    Ok(Transformed::yes(outer))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let (qualifier, field) = plan.schema().qualified_field(0);
        let inner = Expr::Column(Column::new(qualifier.cloned(), field.name()));
        let mut outer_ref_columns = subquery.outer_ref_columns.clone();
        for column in outer_columns {
            if !outer_ref_columns.contains(&column) {
                outer_ref_columns.push(column);
            }
        }
        Ok(Some(Membership {
            subquery: subquery.clone(),
            inner,
            outer,
            outer_ref_columns,
        }))
    }

    /// `[NOT] EXISTS (SELECT … WHERE condition(y, x))`.
    fn exists(&self, condition: Expr, negated: bool) -> DfResult<Expr> {
        let plan = self.subquery.subquery.as_ref().clone();
        let filtered = LogicalPlan::Filter(Filter::try_new(condition, Arc::new(plan))?);
        Ok(Expr::Exists(Exists::new(
            Subquery {
                subquery: Arc::new(filtered),
                outer_ref_columns: self.outer_ref_columns.clone(),
                spans: self.subquery.spans.clone(),
            },
            negated,
        )))
    }

    /// `y IS NULL OR x IS NULL`: the rows that make a membership unknown.
    fn unknown(&self) -> Expr {
        self.inner
            .clone()
            .is_null()
            .or(self.outer.clone().is_null())
    }
}

/// `x NOT IN (SELECT y …)` as `NOT EXISTS (SELECT … WHERE y = x OR y IS NULL OR x IS NULL)`,
/// for a filter's truth; unchanged when [`Membership::of`] cannot take it apart.
fn not_exists(in_subquery: InSubquery, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Some(m) = Membership::of(&in_subquery, schema)? else {
        return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
    };
    let matches = m.inner.clone().eq(m.outer.clone()).or(m.unknown());
    Ok(Transformed::yes(m.exists(matches, true)?))
}

/// `x [NOT] IN (SELECT y …)` where its value matters, not only its truth (under CASE, NOT,
/// IS NULL, a comparison): DataFusion's mark join answers false where PostgreSQL answers
/// NULL, so it becomes `CASE WHEN EXISTS (… WHERE y = x) THEN true WHEN EXISTS (… WHERE y IS
/// NULL OR x IS NULL) THEN NULL ELSE false END` (true and false swapped for NOT IN), whose
/// EXISTS DataFusion answers exactly.
fn three_valued_in(in_subquery: InSubquery, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Some(m) = Membership::of(&in_subquery, schema)? else {
        return Ok(Transformed::no(Expr::InSubquery(in_subquery)));
    };
    let found = m.exists(m.inner.clone().eq(m.outer.clone()), false)?;
    let unknown = m.exists(m.unknown(), false)?;
    let member = !in_subquery.negated;
    let case = Expr::Case(datafusion::logical_expr::expr::Case {
        expr: None,
        when_then_expr: vec![
            (
                Box::new(found),
                Box::new(Expr::Literal(ScalarValue::Boolean(Some(member)), None)),
            ),
            (
                Box::new(unknown),
                Box::new(Expr::Literal(ScalarValue::Boolean(None), None)),
            ),
        ],
        else_expr: Some(Box::new(Expr::Literal(
            ScalarValue::Boolean(Some(!member)),
            None,
        ))),
    });
    Ok(Transformed::yes(case))
}

impl AnalyzerRule for PostgresSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Aggregate(aggregate) = &node {
                refuse_outer_aggregates(&aggregate.aggr_expr)?;
            }
            let node = match node {
                LogicalPlan::Filter(filter) => {
                    let rewritten = not_in_to_not_exists(
                        filter.predicate.clone(),
                        true,
                        filter.input.schema(),
                    )?;
                    if rewritten.transformed {
                        let input = filter.input.clone();
                        LogicalPlan::Filter(Filter::try_new(rewritten.data, input)?)
                    } else {
                        LogicalPlan::Filter(filter)
                    }
                }
                other => other,
            };
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let saved = names.save(&expr);
                let rewritten = expr.transform_up(|e| self.single_row(e))?;
                Ok(rewritten.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_postgres_subqueries"
    }
}

/// Subqueries in ORDER BY: DataFusion plans subqueries in projections, filters and
/// aggregates only ("Correlated scalar subquery can only be used in Projection, Filter,
/// Aggregate plan nodes": `ORDER BY (SELECT max(c.at) FROM c WHERE c.post = p.id)`). Each
/// sort key holding one is computed by a projection below the sort, as a hidden column the
/// projection above drops.
#[derive(Debug, Default)]
pub(crate) struct SortSubqueries;

impl AnalyzerRule for SortSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Sort(sort) if sort.expr.iter().any(|k| holds_subquery(&k.expr)) => {
                let columns = columns_of(&sort.input);
                let mut below = columns.clone();
                let mut keys = Vec::with_capacity(sort.expr.len());
                for (i, key) in sort.expr.into_iter().enumerate() {
                    if holds_subquery(&key.expr) {
                        let name = format!("{}floe_sort_{i}", crate::colnames::HIDDEN_SUFFIX);
                        below.push(key.expr.clone().alias(&name));
                        keys.push(datafusion::logical_expr::SortExpr {
                            expr: Expr::Column(Column::from_name(name)),
                            ..key
                        });
                    } else {
                        keys.push(key);
                    }
                }
                // Below a projection (the select list), the subquery's outer columns are
                // those of the projection's input: the hidden columns join that projection.
                let base = match sort.input.as_ref() {
                    LogicalPlan::Projection(p) => {
                        let mut exprs = p.expr.clone();
                        exprs.extend(below.drain(columns.len()..));
                        LogicalPlanBuilder::from(p.input.as_ref().clone()).project(exprs)?
                    }
                    input => LogicalPlanBuilder::from(input.clone()).project(below)?,
                };
                let plan = base
                    .sort_with_limit(keys, sort.fetch)?
                    .project(columns)?
                    .build()?;
                Ok(Transformed::yes(plan))
            }
            node => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_sort_subqueries"
    }
}

/// A column reference for each output column of `plan`.
fn columns_of(plan: &LogicalPlan) -> Vec<Expr> {
    plan.schema()
        .iter()
        .map(|(qualifier, field)| Expr::Column(Column::new(qualifier.cloned(), field.name())))
        .collect()
}

fn holds_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })
    .unwrap_or(false)
}

/// A subquery as the left operand of IN/NOT IN a subquery (`(SELECT c.at FROM c WHERE c.k =
/// a.k) IN (SELECT …)`): DataFusion turns the IN into a join whose condition would hold the
/// scalar subquery, which it refuses (42601). The operand is computed by a projection below the
/// filter, as a hidden column the projection above drops.
#[derive(Debug, Default)]
pub(crate) struct InSubqueryOperands;

impl AnalyzerRule for InSubqueryOperands {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Filter(filter) = node else {
                return Ok(Transformed::no(node));
            };
            let mut hoisted: Vec<Expr> = Vec::new();
            let predicate = filter
                .predicate
                .clone()
                .transform_up(|e| match e {
                    Expr::InSubquery(mut in_subquery) if holds_subquery(&in_subquery.expr) => {
                        let name = format!(
                            "{}floe_in_operand_{}",
                            crate::colnames::HIDDEN_SUFFIX,
                            hoisted.len()
                        );
                        hoisted.push(in_subquery.expr.as_ref().clone().alias(&name));
                        in_subquery.expr = Box::new(Expr::Column(Column::from_name(name)));
                        Ok(Transformed::yes(Expr::InSubquery(in_subquery)))
                    }
                    e => Ok(Transformed::no(e)),
                })?
                .data;
            if hoisted.is_empty() {
                return Ok(Transformed::no(LogicalPlan::Filter(filter)));
            }
            let columns = columns_of(&filter.input);
            let below: Vec<Expr> = columns.iter().cloned().chain(hoisted).collect();
            let plan = LogicalPlanBuilder::from(filter.input.as_ref().clone())
                .project(below)?
                .filter(predicate)?
                .project(columns)?
                .build()?;
            Ok(Transformed::yes(plan))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_in_subquery_operands"
    }
}

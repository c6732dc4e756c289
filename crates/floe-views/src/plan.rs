//! The incremental plan: a view's optimised DataFusion `LogicalPlan` compiled into the few
//! shapes the dataflow renders (`render.rs`). Scalar work stays DataFusion's: every expression
//! becomes a `PhysicalExpr` evaluated over batches of rows, and every aggregate a DataFusion
//! accumulator, so a view computes exactly what its defining query computes.
//!
//! Invariant: `compile` either returns a plan that maintains the query exactly, or refuses with
//! [`ViewError::Unsupported`] naming the construct; it never approximates.

use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, TableReference};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use datafusion::physical_expr::window::WindowExpr;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_planner::create_window_expr;

use crate::ViewError;

/// One node of an incremental plan. Every node's output rows follow its [`Plan::schema`].
#[derive(Debug)]
pub enum Plan {
    /// Every row of a base table, all columns in the table's order.
    Source {
        table: TableReference,
        schema: SchemaRef,
    },
    /// The input rows for which `predicate` is true.
    Filter {
        input: Box<Plan>,
        predicate: Arc<dyn PhysicalExpr>,
    },
    /// Each input row mapped to `exprs` (a projection).
    Map {
        input: Box<Plan>,
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
    /// A join on `left_keys = right_keys` (NULL keys match nothing unless `nulls_equal`), then
    /// `filter` over the joined row (left columns, then right ones). `kind` says which rows
    /// come out: see [`JoinKind`].
    Join {
        left: Box<Plan>,
        right: Box<Plan>,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        nulls_equal: bool,
        filter: Option<Arc<dyn PhysicalExpr>>,
        kind: JoinKind,
        schema: SchemaRef,
    },
    /// ORDER BY `keys` then OFFSET `offset` LIMIT `limit`: the rows ranked `offset ..
    /// offset + limit` (ties broken by the whole row, so the set is deterministic).
    TopK {
        input: Box<Plan>,
        keys: Vec<(Arc<dyn PhysicalExpr>, SortOptions)>,
        offset: usize,
        limit: Option<usize>,
    },
    /// Window functions sharing `partition`: each input row with the functions' values
    /// appended (every function sorts the partition by its own ORDER BY).
    Window {
        input: Box<Plan>,
        partition: Vec<Arc<dyn PhysicalExpr>>,
        functions: Vec<Arc<dyn WindowExpr>>,
        schema: SchemaRef,
    },
    /// Constant rows (`VALUES`, or the one row of a query without FROM): each row's
    /// expressions, evaluated once.
    Constant {
        rows: Vec<Vec<Arc<dyn PhysicalExpr>>>,
        schema: SchemaRef,
    },
    /// Each distinct input row once.
    Distinct { input: Box<Plan> },
    /// `WITH RECURSIVE name AS (base UNION [ALL] step)`: `step` reads the recursive relation
    /// through [`Plan::WorkTable`]; the rows are the least fixpoint of `base + step(rows)`
    /// (distinct for UNION).
    Recursive {
        name: String,
        base: Box<Plan>,
        step: Box<Plan>,
        distinct: bool,
    },
    /// The recursive relation inside its query's recursive term.
    WorkTable { name: String, schema: SchemaRef },
    /// The rows of every input (UNION ALL); the inputs have the output's column types.
    Union {
        inputs: Vec<Plan>,
        schema: SchemaRef,
    },
    /// GROUP BY `group` with `aggregates` over each group's rows; output columns are the group
    /// values, then the aggregates. Without GROUP BY, one row even over no rows.
    Reduce {
        input: Box<Plan>,
        group: Vec<Arc<dyn PhysicalExpr>>,
        aggregates: Vec<Aggregate>,
        schema: SchemaRef,
    },
}

/// One aggregate of a [`Plan::Reduce`]: DataFusion's function (with its ORDER BY, which
/// order-sensitive accumulators apply themselves) and its FILTER.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub function: Arc<AggregateFunctionExpr>,
    /// `FILTER (WHERE …)`: only the rows for which it is true reach the accumulator.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

impl Aggregate {
    /// The accumulator's input over `batch`: the arguments, then the ORDER BY values (as
    /// DataFusion's aggregate passes them), of the rows the FILTER keeps.
    pub fn arguments(
        &self,
        batch: &datafusion::arrow::array::RecordBatch,
    ) -> datafusion::common::Result<Vec<datafusion::arrow::array::ArrayRef>> {
        let rows = batch.num_rows();
        let mut arguments = self
            .function
            .expressions()
            .iter()
            .chain(self.function.order_bys().iter().map(|sort| &sort.expr))
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        if let Some(filter) = &self.filter {
            let keep = filter.evaluate(batch)?.into_array(rows)?;
            let keep = datafusion::common::cast::as_boolean_array(&keep)?;
            for argument in &mut arguments {
                *argument = datafusion::arrow::compute::filter(argument, keep)?;
            }
        }
        Ok(arguments)
    }
}

/// Which rows a join returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Matching pairs.
    Inner,
    /// Matching pairs, and each left row without a match padded with NULLs.
    Left,
    /// Matching pairs, and each right row without a match padded with NULLs.
    Right,
    /// Both of the above.
    Full,
    /// Each left row that has a match (EXISTS, IN), once.
    LeftSemi,
    /// Each left row that has no match (NOT EXISTS).
    LeftAnti,
    /// Each right row that has a match.
    RightSemi,
    /// Each right row that has no match.
    RightAnti,
}

impl Plan {
    pub fn schema(&self) -> SchemaRef {
        match self {
            Plan::Source { schema, .. }
            | Plan::Map { schema, .. }
            | Plan::Reduce { schema, .. } => Arc::clone(schema),
            Plan::Filter { input, .. } => input.schema(),
            Plan::Join { schema, .. }
            | Plan::Union { schema, .. }
            | Plan::Window { schema, .. }
            | Plan::Constant { schema, .. } => Arc::clone(schema),
            Plan::Distinct { input } | Plan::TopK { input, .. } => input.schema(),
            Plan::Recursive { base, .. } => base.schema(),
            Plan::WorkTable { schema, .. } => Arc::clone(schema),
        }
    }

    /// The plan as indented lines, one per node (`EXPLAIN CREATE MATERIALIZED VIEW`).
    pub fn explain(&self) -> Vec<String> {
        let mut lines = Vec::new();
        self.explain_into(0, &mut lines);
        lines
    }

    fn explain_into(&self, depth: usize, lines: &mut Vec<String>) {
        let list = |exprs: &[Arc<dyn PhysicalExpr>]| {
            exprs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = match self {
            Plan::Source { table, .. } => format!("Source: {table}"),
            Plan::Constant { rows, .. } => format!("Constant: {} row(s)", rows.len()),
            Plan::Filter { predicate, .. } => format!("Filter: {predicate}"),
            Plan::Map { exprs, .. } => format!("Map: {}", list(exprs)),
            Plan::Join {
                left_keys,
                right_keys,
                nulls_equal,
                filter,
                kind,
                ..
            } => {
                let on: Vec<String> = left_keys
                    .iter()
                    .zip(right_keys)
                    .map(|(l, r)| format!("{l} = {r}"))
                    .collect();
                let mut text = format!("Join ({kind:?}): on [{}]", on.join(", "));
                if *nulls_equal {
                    text.push_str(" nulls equal");
                }
                if let Some(filter) = filter {
                    text.push_str(&format!(" filter {filter}"));
                }
                text
            }
            Plan::TopK {
                keys,
                offset,
                limit,
                ..
            } => {
                let keys: Vec<String> = keys
                    .iter()
                    .map(|(e, o)| {
                        format!(
                            "{e} {}{}",
                            if o.descending { "DESC" } else { "ASC" },
                            if o.nulls_first { " NULLS FIRST" } else { "" }
                        )
                    })
                    .collect();
                let limit = limit.map_or("ALL".to_string(), |l| l.to_string());
                format!(
                    "TopK (hierarchical): order by [{}] offset {offset} limit {limit}",
                    keys.join(", ")
                )
            }
            Plan::Window {
                partition,
                functions,
                ..
            } => {
                let names: Vec<String> = functions.iter().map(|f| f.name().to_string()).collect();
                format!(
                    "Window (partition recomputed): partition by [{}] functions [{}]",
                    list(partition),
                    names.join(", ")
                )
            }
            Plan::Distinct { .. } => "Distinct".to_string(),
            Plan::Recursive { name, distinct, .. } => format!(
                "Recursive (iterated to a fixpoint): {name} {}",
                if *distinct { "UNION" } else { "UNION ALL" }
            ),
            Plan::WorkTable { name, .. } => format!("Recursive reference: {name}"),
            Plan::Union { .. } => "Union All".to_string(),
            Plan::Reduce {
                group, aggregates, ..
            } => {
                let names: Vec<String> = aggregates
                    .iter()
                    .map(|a| a.function.name().to_string())
                    .collect();
                let how = match crate::accumulable::Accumulable::new(aggregates) {
                    Ok(Some(_)) => "accumulable",
                    _ => "hierarchical",
                };
                format!(
                    "Reduce ({how}): group by [{}] aggregates [{}]",
                    list(group),
                    names.join(", ")
                )
            }
        };
        lines.push(format!("{}{line}", "  ".repeat(depth)));
        match self {
            Plan::Source { .. } | Plan::Constant { .. } | Plan::WorkTable { .. } => {}
            Plan::Recursive { base, step, .. } => {
                base.explain_into(depth + 1, lines);
                step.explain_into(depth + 1, lines);
            }
            Plan::Filter { input, .. }
            | Plan::Map { input, .. }
            | Plan::TopK { input, .. }
            | Plan::Window { input, .. }
            | Plan::Distinct { input }
            | Plan::Reduce { input, .. } => input.explain_into(depth + 1, lines),
            Plan::Join { left, right, .. } => {
                left.explain_into(depth + 1, lines);
                right.explain_into(depth + 1, lines);
            }
            Plan::Union { inputs, .. } => {
                for input in inputs {
                    input.explain_into(depth + 1, lines);
                }
            }
        }
    }

    /// How often a recursive term reads its recursive relation, refusing a read under an
    /// operator that is not linear in it (an aggregate, TopK, a window, the inner side of
    /// an outer, semi or anti join, DISTINCT under UNION ALL): the fixpoint computed then
    /// would not be the rows PostgreSQL's round-by-round evaluation gives.
    fn recursive_uses(&self, distinct: bool) -> Result<usize, ViewError> {
        let uses = |plans: &[&Plan]| -> Result<usize, ViewError> {
            plans
                .iter()
                .map(|p| p.recursive_uses(distinct))
                .sum::<Result<usize, ViewError>>()
        };
        let refuse = |input: &Plan, what: &str| -> Result<usize, ViewError> {
            match input.recursive_uses(distinct)? {
                0 => Ok(0),
                _ => Err(unsupported(format!("{what} in a recursive term"))),
            }
        };
        match self {
            Plan::WorkTable { .. } => Ok(1),
            Plan::Source { .. } | Plan::Constant { .. } => Ok(0),
            Plan::Filter { input, .. } | Plan::Map { input, .. } => input.recursive_uses(distinct),
            Plan::Union { inputs, .. } => uses(&inputs.iter().collect::<Vec<_>>()),
            Plan::Distinct { input } if distinct => input.recursive_uses(distinct),
            Plan::Distinct { input } => refuse(input, "DISTINCT under UNION ALL"),
            // DISTINCT arrives as a GROUP BY without aggregates: a set, like UNION's.
            Plan::Reduce {
                input, aggregates, ..
            } if aggregates.is_empty() && distinct => input.recursive_uses(distinct),
            Plan::Reduce {
                input, aggregates, ..
            } if aggregates.is_empty() => refuse(input, "DISTINCT under UNION ALL"),
            Plan::Reduce { input, .. } => refuse(input, "an aggregate"),
            Plan::TopK { input, .. } => refuse(input, "ORDER BY with LIMIT"),
            Plan::Window { input, .. } => refuse(input, "a window function"),
            Plan::Recursive { base, step, .. } => uses(&[base, step]),
            Plan::Join {
                left, right, kind, ..
            } => {
                let (l, r) = (
                    left.recursive_uses(distinct)?,
                    right.recursive_uses(distinct)?,
                );
                let inner_side = match kind {
                    JoinKind::Inner => false,
                    JoinKind::Left | JoinKind::LeftSemi | JoinKind::LeftAnti => r > 0,
                    JoinKind::Right | JoinKind::RightSemi | JoinKind::RightAnti => l > 0,
                    JoinKind::Full => l + r > 0,
                };
                if inner_side {
                    return Err(unsupported(
                        "a recursive reference inside an outer join, EXISTS or IN",
                    ));
                }
                Ok(l + r)
            }
        }
    }

    /// The base tables the plan reads, each once.
    pub fn sources(&self) -> Vec<TableReference> {
        self.source_schemas().into_iter().map(|(t, _)| t).collect()
    }

    /// The base tables the plan reads, each once, with their full schemas.
    pub fn source_schemas(&self) -> Vec<(TableReference, SchemaRef)> {
        let mut out = Vec::new();
        self.collect_sources(&mut out);
        out
    }

    fn collect_sources(&self, out: &mut Vec<(TableReference, SchemaRef)>) {
        match self {
            Plan::Source { table, schema } => {
                if !out.iter().any(|(t, _)| t == table) {
                    out.push((table.clone(), Arc::clone(schema)));
                }
            }
            Plan::Constant { .. } | Plan::WorkTable { .. } => {}
            Plan::Recursive { base, step, .. } => {
                base.collect_sources(out);
                step.collect_sources(out);
            }
            Plan::Filter { input, .. } | Plan::Map { input, .. } | Plan::Reduce { input, .. } => {
                input.collect_sources(out)
            }
            Plan::Join { left, right, .. } => {
                left.collect_sources(out);
                right.collect_sources(out);
            }
            Plan::Distinct { input } | Plan::TopK { input, .. } | Plan::Window { input, .. } => {
                input.collect_sources(out)
            }
            Plan::Union { inputs, .. } => inputs.iter().for_each(|i| i.collect_sources(out)),
        }
    }
}

/// Compiles an optimised logical plan.
pub fn compile(plan: &LogicalPlan) -> Result<Plan, ViewError> {
    let props = Cx {
        props: ExecutionProps::new(),
        recursive: None,
    };
    compile_node(plan, &props)
}

/// What compiling a node needs: DataFusion's execution properties and, inside a recursive
/// query's recursive term, the recursive relation's name.
struct Cx {
    props: ExecutionProps,
    /// The recursive relation's name and the schema of its rows.
    recursive: Option<(String, SchemaRef)>,
}

impl std::ops::Deref for Cx {
    type Target = ExecutionProps;

    fn deref(&self) -> &ExecutionProps {
        &self.props
    }
}

fn unsupported(what: impl Into<String>) -> ViewError {
    ViewError::Unsupported(what.into())
}

fn compile_node(plan: &LogicalPlan, props: &Cx) -> Result<Plan, ViewError> {
    match plan {
        LogicalPlan::TableScan(scan) if work_table(scan).is_some() => {
            let name = work_table(scan).unwrap_or_default();
            let Some((_, rows)) = props.recursive.as_ref().filter(|(n, _)| *n == name) else {
                return Err(unsupported(
                    "a recursive reference outside its recursive term",
                ));
            };
            if scan.fetch.is_some() || !scan.filters.is_empty() {
                return Err(unsupported("LIMIT"));
            }
            // The recursive term was planned over the work table's schema, whose types may
            // differ from the rows' (the query's): the rows are cast to it.
            let schema = scan.source.schema();
            let node = Plan::WorkTable {
                name,
                schema: Arc::clone(rows),
            };
            let node = conform(node, &schema)?;
            Ok(projected(node, scan, &schema))
        }
        LogicalPlan::RecursiveQuery(query) => {
            if props.recursive.is_some() {
                return Err(unsupported("WITH RECURSIVE inside a recursive term"));
            }
            let base = compile_node(&query.static_term, props)?;
            let inner = Cx {
                props: props.props.clone(),
                recursive: Some((
                    query.name.clone(),
                    Arc::new(query.schema.as_arrow().clone()),
                )),
            };
            let step = compile_node(&query.recursive_term, &inner)?;
            // Both terms' rows in the query's column types.
            let rows = Arc::new(query.schema.as_arrow().clone());
            let base = conform(base, &rows)?;
            let step = conform(step, &rows)?;
            match step.recursive_uses(query.is_distinct)? {
                1 => {}
                0 => {
                    return Err(unsupported(
                        "WITH RECURSIVE whose recursive term does not read it",
                    ))
                }
                _ => {
                    return Err(unsupported(format!(
                        "a recursive reference to \"{}\" more than once",
                        query.name
                    )))
                }
            }
            Ok(Plan::Recursive {
                name: query.name.clone(),
                base: Box::new(base),
                step: Box::new(step),
                distinct: query.is_distinct,
            })
        }
        LogicalPlan::TableScan(scan) => {
            if scan.fetch.is_some() {
                return Err(unsupported("LIMIT"));
            }
            let schema = scan.source.schema();
            let qualified = DFSchema::try_from_qualified_schema(scan.table_name.clone(), &schema)?;
            let mut node = Plan::Source {
                table: scan.table_name.clone(),
                schema: Arc::clone(&schema),
            };
            for filter in &scan.filters {
                check_expr(filter)?;
                node = Plan::Filter {
                    input: Box::new(node),
                    predicate: create_physical_expr(
                        filter,
                        &qualified,
                        props,
                        &PhysicalPlanningContext::default(),
                    )?,
                };
            }
            Ok(projected(node, scan, &schema))
        }
        LogicalPlan::Filter(filter) => {
            check_expr(&filter.predicate)?;
            let input = compile_node(&filter.input, props)?;
            Ok(Plan::Filter {
                predicate: create_physical_expr(
                    &filter.predicate,
                    filter.input.schema(),
                    props,
                    &PhysicalPlanningContext::default(),
                )?,
                input: Box::new(input),
            })
        }
        LogicalPlan::Projection(projection) => {
            let input = compile_node(&projection.input, props)?;
            let exprs = projection
                .expr
                .iter()
                .map(|e| {
                    check_expr(e)?;
                    Ok(create_physical_expr(
                        e,
                        projection.input.schema(),
                        props,
                        &PhysicalPlanningContext::default(),
                    )?)
                })
                .collect::<Result<_, ViewError>>()?;
            Ok(Plan::Map {
                input: Box::new(input),
                exprs,
                schema: Arc::new(projection.schema.as_arrow().clone()),
            })
        }
        LogicalPlan::SubqueryAlias(alias) => compile_node(&alias.input, props),
        LogicalPlan::EmptyRelation(empty) => Ok(Plan::Constant {
            rows: if empty.produce_one_row {
                vec![vec![]]
            } else {
                vec![]
            },
            schema: Arc::new(empty.schema.as_arrow().clone()),
        }),
        LogicalPlan::Values(values) => {
            let no_columns = DFSchema::empty();
            let rows = values
                .values
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|e| {
                            check_expr(e)?;
                            Ok(create_physical_expr(
                                e,
                                &no_columns,
                                props,
                                &PhysicalPlanningContext::default(),
                            )?)
                        })
                        .collect::<Result<Vec<_>, ViewError>>()
                })
                .collect::<Result<Vec<_>, ViewError>>()?;
            Ok(Plan::Constant {
                rows,
                schema: Arc::new(values.schema.as_arrow().clone()),
            })
        }
        LogicalPlan::Window(window) => {
            let context = PhysicalPlanningContext::default();
            let functions = window
                .window_expr
                .iter()
                .map(|e| {
                    check_expr(e)?;
                    Ok(create_window_expr(
                        e,
                        window.input.schema(),
                        props,
                        &context,
                    )?)
                })
                .collect::<Result<Vec<_>, ViewError>>()?;
            let partition = functions
                .first()
                .map(|f| f.partition_by().to_vec())
                .unwrap_or_default();
            let same = |f: &Arc<dyn WindowExpr>| {
                format!("{:?}", f.partition_by()) == format!("{partition:?}")
            };
            if !functions.iter().all(same) {
                return Err(unsupported(
                    "window functions with different PARTITION BY in one query level",
                ));
            }
            Ok(Plan::Window {
                input: Box::new(compile_node(&window.input, props)?),
                partition,
                functions,
                schema: Arc::new(window.schema.as_arrow().clone()),
            })
        }
        LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
            Ok(Plan::Distinct {
                input: Box::new(compile_node(input, props)?),
            })
        }
        LogicalPlan::Distinct(datafusion::logical_expr::Distinct::On(_)) => {
            Err(unsupported("DISTINCT ON"))
        }
        LogicalPlan::Union(union) => {
            let schema = Arc::new(union.schema.as_arrow().clone());
            let inputs = union
                .inputs
                .iter()
                .map(|input| {
                    let types = input
                        .schema()
                        .as_arrow()
                        .fields()
                        .iter()
                        .map(|f| f.data_type().clone());
                    if !types.eq(schema.fields().iter().map(|f| f.data_type().clone())) {
                        return Err(unsupported("UNION of inputs of different column types"));
                    }
                    compile_node(input, props)
                })
                .collect::<Result<_, ViewError>>()?;
            Ok(Plan::Union { inputs, schema })
        }
        LogicalPlan::Join(join) => {
            use datafusion::common::{JoinType, NullEquality};
            let kind = match join.join_type {
                JoinType::Inner => JoinKind::Inner,
                JoinType::Left => JoinKind::Left,
                JoinType::Right => JoinKind::Right,
                JoinType::Full => JoinKind::Full,
                JoinType::LeftSemi => JoinKind::LeftSemi,
                JoinType::LeftAnti => JoinKind::LeftAnti,
                JoinType::RightSemi => JoinKind::RightSemi,
                JoinType::RightAnti => JoinKind::RightAnti,
                JoinType::LeftMark | JoinType::RightMark => {
                    return Err(unsupported("EXISTS or IN inside OR"))
                }
            };
            if join.null_aware {
                return Err(unsupported("NOT IN over a correlated subquery"));
            }
            let keys = |exprs: Vec<&Expr>, schema: &DFSchema| {
                exprs
                    .into_iter()
                    .map(|e| {
                        check_expr(e)?;
                        Ok(create_physical_expr(
                            e,
                            schema,
                            props,
                            &PhysicalPlanningContext::default(),
                        )?)
                    })
                    .collect::<Result<Vec<_>, ViewError>>()
            };
            let left_keys = keys(join.on.iter().map(|(l, _)| l).collect(), join.left.schema())?;
            let right_keys = keys(
                join.on.iter().map(|(_, r)| r).collect(),
                join.right.schema(),
            )?;
            // The residual condition is evaluated over the left columns then the right ones,
            // whatever the join returns.
            let joined = join.left.schema().join(join.right.schema())?;
            let filter = match &join.filter {
                None => None,
                Some(f) => {
                    check_expr(f)?;
                    Some(create_physical_expr(
                        f,
                        &joined,
                        props,
                        &PhysicalPlanningContext::default(),
                    )?)
                }
            };
            Ok(Plan::Join {
                left: Box::new(compile_node(&join.left, props)?),
                right: Box::new(compile_node(&join.right, props)?),
                left_keys,
                right_keys,
                nulls_equal: join.null_equality == NullEquality::NullEqualsNull,
                filter,
                kind,
                schema: Arc::new(join.schema.as_arrow().clone()),
            })
        }
        // A view's rows have no order (as in PostgreSQL, ORDER BY in a materialized view's
        // query orders nothing a later SELECT sees).
        LogicalPlan::Sort(sort) if sort.fetch.is_none() => compile_node(&sort.input, props),
        LogicalPlan::Sort(sort) => top_k(sort, 0, sort.fetch, props),
        LogicalPlan::Limit(limit) => {
            use datafusion::logical_expr::{FetchType, SkipType};
            let (SkipType::Literal(offset), FetchType::Literal(fetch)) =
                (limit.get_skip_type()?, limit.get_fetch_type()?)
            else {
                return Err(unsupported("LIMIT or OFFSET that is not a constant"));
            };
            match limit.input.as_ref() {
                LogicalPlan::Sort(sort) => {
                    // The sort's own fetch (pushed down by the optimiser) counts the offset.
                    let fetch = match (fetch, sort.fetch) {
                        (Some(f), Some(s)) => Some(f.min(s.saturating_sub(offset))),
                        (f, None) => f,
                        (None, Some(s)) => Some(s.saturating_sub(offset)),
                    };
                    top_k(sort, offset, fetch, props)
                }
                _ => Err(unsupported("LIMIT or OFFSET without ORDER BY")),
            }
        }
        LogicalPlan::Aggregate(aggregate) => {
            let input = compile_node(&aggregate.input, props)?;
            let logical_input = aggregate.input.schema();
            let physical_input: Schema = logical_input.as_arrow().clone();
            let group = aggregate
                .group_expr
                .iter()
                .map(|e| {
                    check_expr(e)?;
                    if matches!(e, Expr::GroupingSet(_)) {
                        return Err(unsupported("GROUPING SETS, CUBE or ROLLUP"));
                    }
                    Ok(create_physical_expr(
                        e,
                        logical_input,
                        props,
                        &PhysicalPlanningContext::default(),
                    )?)
                })
                .collect::<Result<_, ViewError>>()?;
            let aggregates = aggregate
                .aggr_expr
                .iter()
                .map(|e| {
                    check_expr(e)?;
                    let context = PhysicalPlanningContext::default();
                    let lowered = LoweredAggregateBuilder::new(
                        e,
                        logical_input,
                        &physical_input,
                        props,
                        &context,
                    )
                    .build()?;
                    // DISTINCT aggregates too: their partial states hold the distinct values
                    // (DataFusion's distinct accumulators), which merging unites.
                    Ok(Aggregate {
                        function: lowered.aggregate,
                        filter: lowered.filter,
                    })
                })
                .collect::<Result<_, ViewError>>()?;
            Ok(Plan::Reduce {
                input: Box::new(input),
                group,
                aggregates,
                schema: Arc::new(aggregate.schema.as_arrow().clone()),
            })
        }
        other => Err(unsupported(plan_name(other))),
    }
}

fn top_k(
    sort: &datafusion::logical_expr::Sort,
    offset: usize,
    limit: Option<usize>,
    props: &Cx,
) -> Result<Plan, ViewError> {
    let keys = sort
        .expr
        .iter()
        .map(|key| {
            check_expr(&key.expr)?;
            let expr = create_physical_expr(
                &key.expr,
                sort.input.schema(),
                props,
                &PhysicalPlanningContext::default(),
            )?;
            let options = SortOptions {
                descending: !key.asc,
                nulls_first: key.nulls_first,
            };
            Ok((expr, options))
        })
        .collect::<Result<_, ViewError>>()?;
    Ok(Plan::TopK {
        input: Box::new(compile_node(&sort.input, props)?),
        keys,
        offset,
        limit,
    })
}

/// Refuses expressions whose value is not a function of the row: volatile or stable functions
/// (`random()`, `now()`), subqueries not decorrelated into the plan.
fn check_expr(expr: &Expr) -> Result<(), ViewError> {
    let mut refusal = None;
    expr.apply(|e| {
        let found = match e {
            Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable => {
                Some(format!("{}()", f.func.name()))
            }
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                Some("a subquery in an expression".to_string())
            }
            Expr::Placeholder(_) => Some("a parameter".to_string()),
            _ => None,
        };
        Ok(match found {
            Some(what) => {
                refusal = Some(what);
                TreeNodeRecursion::Stop
            }
            None => TreeNodeRecursion::Continue,
        })
    })?;
    match refusal {
        Some(what) => Err(unsupported(what)),
        None => Ok(()),
    }
}

/// A scan's rows (`node`, all columns of `schema`) narrowed to the columns it projects.
fn projected(node: Plan, scan: &datafusion::logical_expr::TableScan, schema: &SchemaRef) -> Plan {
    let Some(projection) = &scan.projection else {
        return node;
    };
    let exprs = projection
        .iter()
        .map(|&i| Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    Plan::Map {
        input: Box::new(node),
        exprs,
        schema: Arc::new(scan.projected_schema.as_arrow().clone()),
    }
}

/// `plan`'s rows cast to the column types of `schema` (the same number of columns), where
/// they differ.
fn conform(plan: Plan, schema: &SchemaRef) -> Result<Plan, ViewError> {
    let from = plan.schema();
    if from.fields().len() != schema.fields().len() {
        return Err(unsupported(
            "WITH RECURSIVE whose terms have different widths",
        ));
    }
    let pairs = || from.fields().iter().zip(schema.fields());
    if pairs().all(|(a, b)| a.data_type() == b.data_type()) {
        return Ok(plan);
    }
    let exprs = pairs()
        .enumerate()
        .map(|(i, (a, b))| {
            let column = Arc::new(Column::new(a.name(), i)) as Arc<dyn PhysicalExpr>;
            if a.data_type() == b.data_type() {
                column
            } else {
                Arc::new(datafusion::physical_expr::expressions::CastExpr::new(
                    column,
                    b.data_type().clone(),
                    None,
                ))
            }
        })
        .collect();
    Ok(Plan::Map {
        input: Box::new(plan),
        exprs,
        schema: Arc::clone(schema),
    })
}

/// The name of the recursive relation a scan reads, if it reads one.
fn work_table(scan: &datafusion::logical_expr::TableScan) -> Option<String> {
    let provider = datafusion::datasource::source_as_provider(&scan.source).ok()?;
    provider
        .downcast_ref::<datafusion::datasource::cte_worktable::CteWorkTable>()
        .map(|table| table.name().to_string())
}

fn plan_name(plan: &LogicalPlan) -> String {
    match plan {
        LogicalPlan::Join(_) => "this JOIN".into(),
        LogicalPlan::RecursiveQuery(_) => "WITH RECURSIVE".into(),
        LogicalPlan::Unnest(_) => "a set-returning function".into(),
        LogicalPlan::Subquery(_) => "a LATERAL subquery that is not decorrelated".into(),
        LogicalPlan::Extension(e) if e.node.name().starts_with("Apply") => {
            "a subquery in an expression that is correlated other than by equality".into()
        }
        other => other.display().to_string(),
    }
}

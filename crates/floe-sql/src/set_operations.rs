//! `INTERSECT` and `EXCEPT` (with or without ALL) as PostgreSQL computes them.
//!
//! PostgreSQL reads both sides of every INTERSECT and EXCEPT into one hashed or sorted set
//! operation, counting each row's copies per side: a row that appears `m` times on the left and
//! `n` times on the right appears `min(m, n)` times in `INTERSECT ALL` and `max(m - n, 0)` times
//! in `EXCEPT ALL`, and both sides are always evaluated (an error in either is raised even when
//! the other is empty). DataFusion plans a semi or anti join of the two sides on all columns
//! (NULLs equal), which kept all `m` copies for INTERSECT ALL and none for EXCEPT ALL whenever
//! `n > 0`, and skipped one side when the other was empty. [`AllSetOperations`] plans them as
//! PostgreSQL does: the two sides tagged and appended (`UNION ALL`), grouped by every column
//! (NULLs equal; numerics by value), and the groups kept whose tags show the row on both sides
//! (INTERSECT) or only on the left (EXCEPT). With ALL the copies of a row on each side are
//! numbered first (`row_number() OVER (PARTITION BY` every column and the side`)`) and the
//! number is one more grouping key: the `k`-th copy on the left meets the `k`-th on the right.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, NullEquality, Result as DfResult};
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    col, lit, Distinct, Expr, ExprFunctionExt, Join, JoinType, LogicalPlan, LogicalPlanBuilder,
    Union,
};
use datafusion::optimizer::AnalyzerRule;

/// See the module doc.
#[derive(Debug, Default)]
pub struct AllSetOperations;

impl AnalyzerRule for AllSetOperations {
    fn name(&self) -> &str {
        "floe_all_set_operations"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Join(join) if is_set_operation(&join) => rewrite(join),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }
}

/// The join DataFusion's `LogicalPlanBuilder::intersect_or_except` builds: a semi or anti
/// join on every column with NULLs equal (its left side made distinct unless ALL).
fn is_set_operation(join: &Join) -> bool {
    matches!(join.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && join.null_equality == NullEquality::NullEqualsNull
        && join.filter.is_none()
        && join.on.len() == join.left.schema().fields().len()
        && join.on.len() == join.right.schema().fields().len()
        && join
            .on
            .iter()
            .all(|(l, r)| matches!((l, r), (Expr::Column(_), Expr::Column(_))))
}

const LEFT: &str = "__floe_left";
const RIGHT: &str = "__floe_right";
const COPY: &str = "__floe_copy";

fn key(i: usize) -> String {
    format!("__floe_key{i}")
}

/// `plan`'s columns as `__floe_key{i}`, and its side's tags. The keys carry no field metadata
/// (type tags and modifiers come back on the output): the physical union merges its inputs'
/// metadata where the logical one takes the first input's, and the aggregate above it
/// refused the difference ("Physical input schema should be the same …").
fn tagged(plan: &LogicalPlan, left: bool) -> DfResult<LogicalPlan> {
    let mut exprs: Vec<Expr> = plan
        .schema()
        .columns()
        .into_iter()
        .enumerate()
        .map(|(i, column)| {
            crate::type_tags::with_metadata(Expr::Column(column), Default::default()).alias(key(i))
        })
        .collect();
    exprs.push(lit(i64::from(left)).alias(LEFT));
    exprs.push(lit(i64::from(!left)).alias(RIGHT));
    LogicalPlanBuilder::from(plan.clone())
        .project(exprs)?
        .build()
}

fn rewrite(join: Join) -> DfResult<Transformed<LogicalPlan>> {
    // Without ALL, DataFusion made the left side distinct first.
    let (all, left) = match join.left.as_ref() {
        LogicalPlan::Distinct(Distinct::All(input)) => (false, input.as_ref()),
        other => (true, other),
    };
    let width = join.schema.fields().len();
    let keys: Vec<Expr> = (0..width).map(|i| col(key(i))).collect();
    let mut plan =
        LogicalPlanBuilder::from(tagged(left, true)?).union(tagged(&join.right, false)?)?;
    let mut group = keys.clone();
    if all {
        // The k-th copy of a row on one side meets the k-th on the other.
        let mut partition = keys.clone();
        partition.push(col(LEFT));
        plan = plan.window(vec![row_number()
            .partition_by(partition)
            .build()?
            .alias(COPY)])?;
        group.push(col(COPY));
    }
    let on_left = max(col(LEFT)).alias(LEFT);
    let on_right = max(col(RIGHT)).alias(RIGHT);
    let right_count = if join.join_type == JoinType::LeftSemi {
        1
    } else {
        0
    };
    let output: Vec<Expr> = join
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let key = col(key(i));
            let key = match field.metadata() {
                tags if tags.is_empty() => key,
                tags => crate::type_tags::with_metadata(key, tags.clone()),
            };
            key.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let plan = plan
        .aggregate(group, vec![on_left, on_right])?
        .filter(
            col(LEFT)
                .eq(lit(1i64))
                .and(col(RIGHT).eq(lit(right_count as i64))),
        )?
        .project(output)?
        .build()?;
    Ok(Transformed::yes(plan))
}

/// Union inputs named like the union (an optimizer rule, before `propagate_empty_relation`).
///
/// A union takes its column names from its first input. When DataFusion drops the inputs
/// known to be empty and one is left, it projects that input's columns by the union's names
/// (`(SELECT 1 AS a WHERE false) UNION (SELECT DISTINCT 1 AS b)` failed: "No field named
/// a"). Each input whose columns are named otherwise is given a projection renaming them.
#[derive(Debug, Default)]
pub struct UnionInputNames;

impl datafusion::optimizer::OptimizerRule for UnionInputNames {
    fn name(&self) -> &str {
        "floe_union_input_names"
    }

    fn apply_order(&self) -> Option<datafusion::optimizer::optimizer::ApplyOrder> {
        Some(datafusion::optimizer::optimizer::ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Union(mut union) = plan else {
            return Ok(Transformed::no(plan));
        };
        let names: Vec<String> = union
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut changed = false;
        for input in union.inputs.iter_mut() {
            let same = input
                .schema()
                .fields()
                .iter()
                .map(|f| f.name())
                .eq(names.iter());
            if same {
                continue;
            }
            let renamed: Vec<Expr> = input
                .schema()
                .columns()
                .into_iter()
                .zip(&names)
                .map(|(column, name)| Expr::Column(column).alias(name))
                .collect();
            let projected = LogicalPlanBuilder::from(input.as_ref().clone())
                .project(renamed)?
                .build()?;
            *input = Arc::new(projected);
            changed = true;
        }
        Ok(Transformed::new_transformed(
            LogicalPlan::Union(union),
            changed,
        ))
    }
}

/// A union's columns are nullable when a column of one of its inputs is.
///
/// DataFusion derives a union's schema when it is built and keeps it while later rules
/// rewrite its inputs: `coalesce(x, false)` is NOT NULL when planned, but simplified to
/// `x IS NOT NULL AND x` it is nullable, and the physical plan of `SELECT coalesce(x, false)
/// FROM t UNION SELECT false` failed ("Physical input schema should be the same as the one
/// converted from logical input schema"). Field metadata (Floe's type tags) goes the same
/// way: `coalesce(v, 'a')` over a `varchar(10)` column keeps the column's tag, the `CASE` it is
/// simplified to has none. The last rule, this one gives each union the nullability and the
/// metadata its physical plan derives from its inputs and recomputes the schemas of the nodes
/// above a union it changed.
#[derive(Debug, Default)]
pub struct UnionNullability;

impl datafusion::optimizer::OptimizerRule for UnionNullability {
    fn name(&self) -> &str {
        "floe_union_nullability"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn datafusion::optimizer::OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        union_nullability(plan)
    }
}

fn union_nullability(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let plan = plan
        .map_subqueries(union_nullability)?
        .transform_sibling(|p| p.map_children(union_nullability))?;
    let changed = plan.transformed;
    match plan.data {
        LogicalPlan::Projection(projection) => {
            let fixed = with_case_nullability(projection)?;
            let changed = changed || fixed.transformed;
            match fixed.data {
                projection if changed => Ok(Transformed::yes(
                    LogicalPlan::Projection(projection).recompute_schema()?,
                )),
                projection => Ok(Transformed::no(LogicalPlan::Projection(projection))),
            }
        }
        LogicalPlan::Union(union) => {
            let fixed = with_inputs_nullability(union)?;
            let tagged = with_inputs_metadata(fixed.data)?;
            let changed = changed || fixed.transformed || tagged.transformed;
            let fixed = tagged;
            Ok(Transformed::new_transformed(
                LogicalPlan::Union(fixed.data),
                changed,
            ))
        }
        other if changed => Ok(Transformed::yes(other.recompute_schema()?)),
        other => Ok(Transformed::no(other)),
    }
}

/// `projection` with each CASE or cast that DataFusion's logical plan holds NOT NULL but whose
/// physical expression is nullable (a NULL branch whose condition the logical analysis proves
/// never true: `WHEN x BETWEEN NULL AND 1.5 THEN NULL`; a cast's field) marked nullable in
/// both, so an aggregate above it (DISTINCT, an ordered aggregate) plans.
fn with_case_nullability(
    mut projection: datafusion::logical_expr::Projection,
) -> DfResult<Transformed<datafusion::logical_expr::Projection>> {
    use datafusion::logical_expr::ExprSchemable;
    let schema = Arc::clone(projection.input.schema());
    let naive = |case: &datafusion::logical_expr::expr::Case| -> bool {
        case.when_then_expr
            .iter()
            .map(|(_, then)| then.as_ref())
            .chain(case.else_expr.as_deref())
            .any(|e| e.nullable(&schema).unwrap_or(true))
            || case.else_expr.is_none()
    };
    let mut changed = false;
    for expr in projection.expr.iter_mut() {
        let name = expr.schema_name().to_string();
        let (inner, qualifier) = match &*expr {
            Expr::Alias(alias) => (alias.expr.as_ref(), alias.relation.clone()),
            other => (other, None),
        };
        if inner.nullable(&schema).unwrap_or(true) {
            continue;
        }
        let physical_nullable = match inner {
            Expr::Case(case) => naive(case),
            // A cast's own field (`k::text`) stays nullable when a later rule (outer join
            // elimination) made its operand NOT NULL; the physical cast takes the field.
            Expr::Cast(cast) => cast.field.is_nullable(),
            _ => false,
        };
        if !physical_nullable {
            continue;
        }
        let wrapped = crate::type_tags::nullable(inner.clone()).alias_qualified(qualifier, name);
        *expr = wrapped;
        changed = true;
    }
    Ok(Transformed::new_transformed(projection, changed))
}

/// `union` with each field's metadata as DataFusion's physical union derives it: the
/// metadata of the first input whose field is nullable (else the first input), extended by
/// every other input's in order.
fn with_inputs_metadata(mut union: Union) -> DfResult<Transformed<Union>> {
    let width = union.schema.fields().len();
    if union
        .inputs
        .iter()
        .any(|i| i.schema().fields().len() != width)
    {
        return Ok(Transformed::no(union));
    }
    let derived: Vec<HashMap<String, String>> = (0..width)
        .map(|i| {
            let field = |input: &Arc<LogicalPlan>| input.schema().field(i).clone();
            let chosen = union
                .inputs
                .iter()
                .position(|input| field(input).is_nullable())
                .unwrap_or(0);
            let mut metadata = field(&union.inputs[chosen]).metadata().clone();
            for (j, input) in union.inputs.iter().enumerate() {
                if j != chosen {
                    metadata.extend(field(input).metadata().clone());
                }
            }
            metadata
        })
        .collect();
    if union
        .schema
        .fields()
        .iter()
        .zip(&derived)
        .all(|(f, m)| f.metadata() == m)
    {
        return Ok(Transformed::no(union));
    }
    let fields: Vec<_> = union
        .schema
        .iter()
        .zip(derived)
        .map(|((qualifier, field), metadata)| {
            (
                qualifier.cloned(),
                Arc::new(field.as_ref().clone().with_metadata(metadata)),
            )
        })
        .collect();
    union.schema = Arc::new(DFSchema::new_with_metadata(
        fields,
        union.schema.metadata().clone(),
    )?);
    Ok(Transformed::yes(union))
}

/// `union` with each column nullable when the column of one of its inputs is (names and types
/// as planned); transformed when that changed its schema.
pub(crate) fn with_inputs_nullability(mut union: Union) -> DfResult<Transformed<Union>> {
    let nullable: Vec<bool> = (0..union.schema.fields().len())
        .map(|i| {
            union.inputs.iter().any(|input| {
                input
                    .schema()
                    .fields()
                    .get(i)
                    .is_some_and(|f| f.is_nullable())
            })
        })
        .collect();
    let stale = union
        .schema
        .fields()
        .iter()
        .zip(&nullable)
        .any(|(f, n)| f.is_nullable() != *n);
    if !stale {
        return Ok(Transformed::no(union));
    }
    let qualified: Vec<_> = union
        .schema
        .iter()
        .zip(&nullable)
        .map(|((qualifier, field), n)| {
            (
                qualifier.cloned(),
                Arc::new(field.as_ref().clone().with_nullable(*n)),
            )
        })
        .collect();
    let schema = DFSchema::new_with_metadata(qualified, union.schema.metadata().clone())?;
    union.schema = Arc::new(schema);
    Ok(Transformed::yes(union))
}

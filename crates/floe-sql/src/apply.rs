//! Subqueries DataFusion cannot turn into joins, run as PostgreSQL runs them: per outer row.
//!
//! DataFusion decorrelates the subqueries it can (equality correlations, IN and EXISTS in a
//! WHERE clause) into joins. The rest reach its physical planner as expressions it refuses
//! ("Physical plan does not support logical expression ScalarSubquery"): a correlation by `<`,
//! IN or EXISTS in the select list, a subquery without FROM whose WHERE reads the outer row.
//! PostgreSQL runs any subquery as a SubPlan, once per outer row with that row's values as
//! parameters. [`SubqueriesPerRow`], an optimizer rule right after DataFusion's decorrelation
//! rules, does the same with the subquery expressions they leave ([`FloeQueryPlanner`] again
//! with any left after optimization):
//! - each becomes an [`Apply`] node below the plan node holding it, which adds one column, the
//!   subquery's answer for each input row; the expression reads that column (a projection
//!   above drops it again where the node passes its input's columns through, as a filter does);
//! - [`ApplyExec`] binds the subquery's outer references to the row's values as literals, so
//!   the subquery is planned like any uncorrelated query (filters reach key and index
//!   lookups), runs it in the statement's task context (its snapshot, its transaction's own
//!   writes) and keeps the answers by outer values, so equal outer rows share one run.
//!
//! Answers follow PostgreSQL: a scalar subquery is NULL without rows and raises 21000 with
//! more than one; `x IN (…)` is true if a row equals `x`, else NULL if `x` or a row is NULL,
//! else false (NOT IN its negation); EXISTS asks for one row. Wide numerics compare by value.
//! Subqueries nested in the subquery are planned when it is (by decorrelation or by this
//! module again), with the outer values bound first.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{new_empty_array, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::common::metadata::FieldMetadata;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, DFSchemaRef, Result as DfResult, ScalarValue};
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, ExprSchemable, Extension, Filter, LogicalPlan, LogicalPlanBuilder,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::TryStreamExt;

use crate::error::{sqlstate, SqlError};

/// Answers kept per [`ApplyExec`] partition before the cache starts over.
const MAX_CACHED_ANSWERS: usize = 10_000;

/// What an uncorrelated subquery node computes ([`uncorrelated`]).
pub(crate) enum UncorrelatedKind {
    Scalar,
    Exists { negated: bool },
}

/// The parts of an [`Apply`] whose subquery reads nothing of the outer row.
pub(crate) struct UncorrelatedApply {
    pub input: LogicalPlan,
    pub subquery: LogicalPlan,
    pub kind: UncorrelatedKind,
    /// The name of the column the node adds.
    pub answer: String,
}

/// `node` as an uncorrelated scalar or EXISTS subquery, if it is one (materialized views
/// maintain those as joins: `view_shapes.rs`).
pub(crate) fn uncorrelated(
    node: &dyn UserDefinedLogicalNode,
) -> DfResult<Option<UncorrelatedApply>> {
    let Some(apply) = node.as_any().downcast_ref::<Apply>() else {
        return Ok(None);
    };
    let kind = match apply.kind {
        ApplyKind::Scalar => UncorrelatedKind::Scalar,
        ApplyKind::Exists { negated } => UncorrelatedKind::Exists { negated },
        ApplyKind::In { .. } => return Ok(None),
    };
    let mut correlated = false;
    apply.subquery.apply_with_subqueries(|node| {
        let inputs: Vec<&DFSchemaRef> = node.inputs().iter().map(|i| i.schema()).collect();
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                correlated |= outer_column(e, &inputs).is_some();
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    if correlated {
        return Ok(None);
    }
    Ok(Some(UncorrelatedApply {
        input: apply.input.clone(),
        subquery: apply.subquery.clone(),
        kind,
        answer: apply.answer().name().clone(),
    }))
}

/// The query planner: DataFusion's, after the leftover subqueries became [`Apply`] nodes.
#[derive(Debug, Default)]
pub(crate) struct FloeQueryPlanner;

#[async_trait]
impl QueryPlanner for FloeQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = subqueries_to_applies(logical_plan.clone())?.data;
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(ApplyPlanner)])
            .create_physical_plan(&plan, session)
            .await
    }
}

/// The optimizer rule: right after DataFusion's decorrelation rules, the subqueries they
/// left become [`Apply`] nodes while the outer references still name the outer plan's
/// columns as they are (later rules move and drop aliases).
#[derive(Debug, Default)]
pub(crate) struct SubqueriesPerRow;

impl OptimizerRule for SubqueriesPerRow {
    fn name(&self) -> &str {
        "floe_subqueries_per_row"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        subqueries_to_applies(plan)
    }
}

/// What an [`Apply`] computes for each input row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
enum ApplyKind {
    /// The subquery's one value (NULL without rows; 21000 with more).
    Scalar,
    /// Whether it has a row.
    Exists { negated: bool },
    /// Whether the probe equals one of its rows (three-valued).
    In { negated: bool },
}

/// `input` with one more column, named `name`: the answer of `subquery` for each input row
/// (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Apply {
    input: LogicalPlan,
    subquery: LogicalPlan,
    kind: ApplyKind,
    /// `x` of `x IN (subquery)`, over `input`.
    probe: Option<Expr>,
    schema: DFSchemaRef,
}

impl PartialOrd for Apply {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.input.partial_cmp(&other.input) {
            Some(std::cmp::Ordering::Equal) => {}
            unequal => return unequal,
        }
        match self.subquery.partial_cmp(&other.subquery) {
            Some(std::cmp::Ordering::Equal) => {}
            unequal => return unequal,
        }
        self.kind.partial_cmp(&other.kind)
    }
}

/// Names of the columns [`Apply`] nodes add, unique within the server's lifetime so nested
/// applies never collide.
static NEXT_APPLY: AtomicU64 = AtomicU64::new(0);

impl Apply {
    fn try_new(
        input: LogicalPlan,
        subquery: LogicalPlan,
        kind: ApplyKind,
        probe: Option<Expr>,
    ) -> DfResult<(Apply, Column)> {
        let name = format!(
            "__floe_subplan_{}",
            NEXT_APPLY.fetch_add(1, AtomicOrdering::Relaxed)
        );
        let (subquery, probe) = match probe {
            Some(probe) => {
                let (subquery, probe) = comparable(subquery, probe, input.schema())?;
                (subquery, Some(probe))
            }
            None => (subquery, None),
        };
        let field = match kind {
            ApplyKind::Scalar => {
                let answer = subquery.schema().field(0);
                Field::new(&name, answer.data_type().clone(), true)
                    .with_metadata(answer.metadata().clone())
            }
            ApplyKind::Exists { .. } | ApplyKind::In { .. } => {
                Field::new(&name, datafusion::arrow::datatypes::DataType::Boolean, true)
            }
        };
        let schema = Apply::schema_of(&input, Arc::new(field))?;
        Ok((
            Apply {
                input,
                subquery,
                kind,
                probe,
                schema,
            },
            Column::new_unqualified(name),
        ))
    }

    /// `input`'s columns and the answer.
    fn schema_of(input: &LogicalPlan, answer: FieldRef) -> DfResult<DFSchemaRef> {
        let mut fields: Vec<_> = input
            .schema()
            .iter()
            .map(|(qualifier, field)| (qualifier.cloned(), Arc::clone(field)))
            .collect();
        fields.push((None, answer));
        let schema = DFSchema::new_with_metadata(fields, input.schema().metadata().clone())?;
        Ok(Arc::new(schema))
    }

    /// The answer's field.
    fn answer(&self) -> FieldRef {
        let (_, field) = self.schema.qualified_field(self.schema.fields().len() - 1);
        Arc::clone(field)
    }
}

/// The subquery and probe of an IN made comparable by equality of values: the probe cast to
/// the subquery's column type, and wide numerics compared by their value without the scale.
fn comparable(
    subquery: LogicalPlan,
    probe: Expr,
    input: &DFSchema,
) -> DfResult<(LogicalPlan, Expr)> {
    let column_type = subquery.schema().field(0).data_type().clone();
    let probe = if probe.get_type(input)? == column_type {
        probe
    } else {
        probe.cast_to(&column_type, input)?
    };
    if !crate::numeric::is_numeric_field_type(&column_type) {
        return Ok((subquery, probe));
    }
    let (qualifier, field) = subquery.schema().qualified_field(0);
    let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
    let subquery = LogicalPlanBuilder::from(subquery)
        .project(vec![crate::numeric::keys::identity(column)])?
        .build()?;
    Ok((subquery, crate::numeric::keys::identity(probe)))
}

impl UserDefinedLogicalNodeCore for Apply {
    fn name(&self) -> &str {
        "Apply"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.probe.iter().cloned().collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Apply: {:?} per row", self.kind)
    }

    /// The input columns the parents ask for, and those the subquery and the probe read.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let input = self.input.schema();
        let mut needed: Vec<usize> = output_columns
            .iter()
            .copied()
            .filter(|i| *i < input.fields().len())
            .collect();
        needed.extend(
            outer_references(&self.subquery, input)
                .ok()?
                .into_iter()
                .map(|(index, _)| index),
        );
        if let Some(probe) = &self.probe {
            for column in probe.column_refs() {
                needed.push(input.index_of_column(column).ok()?);
            }
        }
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let mut apply = self.clone();
        if let Some(input) = inputs.into_iter().next() {
            apply.schema = Apply::schema_of(&input, self.answer())?;
            apply.input = input;
        }
        if apply.probe.is_some() {
            apply.probe = exprs.into_iter().next();
        }
        Ok(apply)
    }
}

fn is_subquery(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
    )
}

fn holds_subquery(expr: &Expr) -> bool {
    expr.exists(|e| Ok(is_subquery(e))).unwrap_or(false)
}

/// `plan` with each subquery expression left in a node of one input replaced by a column of
/// an [`Apply`] below it (see the module doc). Nodes of several inputs (a join's ON) keep
/// theirs, which the physical planner then refuses as before.
fn subqueries_to_applies(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    plan.transform_up(|node| {
        let node = split_filter(node)?;
        if node.inputs().len() != 1
            || matches!(node, LogicalPlan::Extension(_))
            || !node.expressions().iter().any(holds_subquery)
        {
            return Ok(Transformed::no(node));
        }
        let original = Arc::clone(node.schema());
        let mut input = node.inputs()[0].clone();
        let names = NamePreserver::new(&node);
        let mut exprs = Vec::new();
        for expr in node.expressions() {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| {
                let (subquery, kind, probe) = match e {
                    Expr::ScalarSubquery(s) => (s, ApplyKind::Scalar, None),
                    Expr::Exists(e) => (e.subquery, ApplyKind::Exists { negated: e.negated }, None),
                    Expr::InSubquery(i) => (
                        i.subquery,
                        ApplyKind::In { negated: i.negated },
                        Some(*i.expr),
                    ),
                    other => return Ok(Transformed::no(other)),
                };
                let (apply, column) = Apply::try_new(
                    input.clone(),
                    subquery.subquery.as_ref().clone(),
                    kind,
                    probe,
                )?;
                input = LogicalPlan::Extension(Extension {
                    node: Arc::new(apply),
                });
                Ok(Transformed::yes(Expr::Column(column)))
            })?;
            exprs.push(saved.restore(rewritten.data));
        }
        let rebuilt = node.with_new_exprs(exprs, vec![input])?;
        if rebuilt.schema().fields().len() == original.fields().len() {
            return Ok(Transformed::yes(rebuilt));
        }
        // The node passes its input's columns through: drop the answers again.
        let columns = original.columns().into_iter().map(Expr::Column);
        Ok(Transformed::yes(
            LogicalPlanBuilder::from(rebuilt)
                .project(columns)?
                .build()?,
        ))
    })
}

/// A filter whose conjuncts hold subqueries and others do not, as a filter of the others
/// under one of the subquery conjuncts: the plain conditions (join conditions among them, which
/// DataFusion's later rules push into the join) are not stuck above the [`Apply`] nodes, and
/// the subqueries run only for the rows that pass them, as PostgreSQL evaluates a SubPlan
/// condition last (TPC-H Q15 ran its scalar subquery over a cross join of 100 M rows).
fn split_filter(node: LogicalPlan) -> DfResult<LogicalPlan> {
    let LogicalPlan::Filter(filter) = node else {
        return Ok(node);
    };
    let (with, without): (Vec<Expr>, Vec<Expr>) =
        datafusion::logical_expr::utils::split_conjunction_owned(filter.predicate.clone())
            .into_iter()
            .partition(holds_subquery);
    let (Some(with), Some(without)) = (
        datafusion::logical_expr::utils::conjunction(with),
        datafusion::logical_expr::utils::conjunction(without),
    ) else {
        return Ok(LogicalPlan::Filter(filter));
    };
    let below = LogicalPlan::Filter(Filter::try_new(without, Arc::clone(&filter.input))?);
    Ok(LogicalPlan::Filter(Filter::try_new(with, Arc::new(below))?))
}

/// Plans [`Apply`] nodes as [`ApplyExec`].
struct ApplyPlanner;

#[async_trait]
impl ExtensionPlanner for ApplyPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn datafusion::catalog::Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(apply) = node.as_any().downcast_ref::<Apply>() else {
            return Ok(None);
        };
        let Some(state) = session.as_any().downcast_ref::<SessionState>() else {
            return Ok(None);
        };
        let input_schema = logical_inputs[0].schema();
        let input = Arc::clone(&physical_inputs[0]);
        let probe = match &apply.probe {
            Some(probe) => {
                Some(planner.create_physical_expr(probe, input_schema, session, planning_ctx)?)
            }
            None => None,
        };
        let outer = outer_references(&apply.subquery, input_schema)?
            .into_iter()
            .map(|(index, column)| {
                let field = Arc::clone(input_schema.field(index));
                (index, column, field)
            })
            .collect();
        let answer_field = apply.schema.field(apply.schema.fields().len() - 1);
        let mut fields: Vec<FieldRef> = input.schema().fields().iter().cloned().collect();
        fields.push(Arc::clone(answer_field));
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            input.schema().metadata().clone(),
        ));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            input.properties().output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Some(Arc::new(ApplyExec {
            input,
            run: Arc::new(SubPlan {
                subquery: apply.subquery.clone(),
                outer,
                kind: apply.kind,
                answer: Arc::clone(answer_field),
                state: Arc::new(state.clone()),
            }),
            probe,
            schema,
            properties,
        })))
    }
}

/// The outer references of `subquery` (at any depth) that `input` provides: their columns and
/// positions in `input`.
fn outer_references(subquery: &LogicalPlan, input: &DFSchema) -> DfResult<Vec<(usize, Column)>> {
    let mut found: Vec<(usize, Column)> = Vec::new();
    subquery.apply_with_subqueries(|node| {
        let inputs: Vec<&DFSchemaRef> = node.inputs().iter().map(|i| i.schema()).collect();
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Some(column) = outer_column(e, &inputs) {
                    if let Some(index) = input.maybe_index_of_column(column) {
                        if !found.iter().any(|(_, c)| c == column) {
                            found.push((index, column.clone()));
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(found)
}

/// The column `expr` reads from an outer query, in a node whose inputs have `inputs`: an
/// outer reference, or a column none of its inputs has (DataFusion's decorrelation of a
/// subquery nested in this one leaves the outer query's columns as plain columns in the join
/// it made, to be resolved once this subquery is decorrelated too; here they are bound).
fn outer_column<'a>(expr: &'a Expr, inputs: &[&DFSchemaRef]) -> Option<&'a Column> {
    match expr {
        Expr::OuterReferenceColumn(_, column) => Some(column),
        Expr::Column(column)
            if !inputs.is_empty() && !inputs.iter().any(|s| s.has_column(column)) =>
        {
            Some(column)
        }
        _ => None,
    }
}

/// A subquery with what it needs to run for one outer row.
#[derive(Debug)]
struct SubPlan {
    subquery: LogicalPlan,
    /// The outer columns it reads: position in the input, name, field.
    outer: Vec<(usize, Column, FieldRef)>,
    kind: ApplyKind,
    answer: FieldRef,
    state: Arc<SessionState>,
}

/// What a subquery returned for one set of outer values.
#[derive(Debug)]
enum Answer {
    /// A scalar subquery's value.
    Value(ScalarValue),
    /// The rows of an EXISTS (only whether there is one) or IN subquery.
    Rows {
        any: bool,
        values: HashSet<ScalarValue>,
        has_null: bool,
    },
}

impl SubPlan {
    /// The subquery with the outer references `values` stand for bound to them.
    fn bind(&self, values: &[ScalarValue]) -> DfResult<LogicalPlan> {
        let bound: HashMap<&Column, (&FieldRef, &ScalarValue)> = self
            .outer
            .iter()
            .map(|(_, column, field)| (column, field))
            .zip(values)
            .map(|((column, field), value)| (column, (field, value)))
            .collect();
        self.subquery
            .clone()
            .transform_up_with_subqueries(|node| {
                let inputs: Vec<DFSchemaRef> = node
                    .inputs()
                    .iter()
                    .map(|i| Arc::clone(i.schema()))
                    .collect();
                let inputs: Vec<&DFSchemaRef> = inputs.iter().collect();
                let names = NamePreserver::new(&node);
                let node = node
                    .map_expressions(|expr| {
                        let saved = names.save(&expr);
                        let rewritten = expr.transform(|e| {
                            let Some((field, value)) =
                                outer_column(&e, &inputs).and_then(|c| bound.get(c))
                            else {
                                return Ok(Transformed::no(e));
                            };
                            let value = value.cast_to(field.data_type())?;
                            let metadata = (!field.metadata().is_empty())
                                .then(|| FieldMetadata::from(field.as_ref()));
                            Ok(Transformed::yes(Expr::Literal(value, metadata)))
                        })?;
                        Ok(rewritten.update_data(|e| saved.restore(e)))
                    })?
                    .data;
                Ok(Transformed::yes(node.recompute_schema()?))
            })
            .map(|t| t.data)
    }

    /// Runs the subquery for one set of outer values.
    async fn answer(&self, values: &[ScalarValue], ctx: Arc<TaskContext>) -> DfResult<Answer> {
        let mut plan = self.bind(values)?;
        if let ApplyKind::Exists { .. } = self.kind {
            plan = LogicalPlanBuilder::from(plan).limit(0, Some(1))?.build()?;
        }
        let state = self.state.as_ref();
        let plan = state.optimizer().optimize(plan, state, |_, _| {})?;
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, state)
            .await?;
        let mut stream = datafusion::physical_plan::execute_stream(physical, ctx)?;
        let mut rows = 0usize;
        let mut first = None;
        let mut values = HashSet::new();
        let mut has_null = false;
        while let Some(batch) = stream.try_next().await? {
            if batch.num_rows() == 0 {
                continue;
            }
            match self.kind {
                ApplyKind::Scalar => {
                    rows += batch.num_rows();
                    if rows > 1 {
                        return Err(SqlError::new(
                            sqlstate::CARDINALITY_VIOLATION,
                            "more than one row returned by a subquery used as an expression",
                        )
                        .into());
                    }
                    first = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
                }
                ApplyKind::Exists { .. } => {
                    rows += batch.num_rows();
                    break;
                }
                ApplyKind::In { .. } => {
                    rows += batch.num_rows();
                    for row in 0..batch.num_rows() {
                        let value = ScalarValue::try_from_array(batch.column(0), row)?;
                        if value.is_null() {
                            has_null = true;
                        } else {
                            values.insert(normalized(value));
                        }
                    }
                }
            }
        }
        Ok(match self.kind {
            ApplyKind::Scalar => Answer::Value(match first {
                Some(value) => value,
                None => ScalarValue::try_from(self.answer.data_type())?,
            }),
            _ => Answer::Rows {
                any: rows > 0,
                values,
                has_null,
            },
        })
    }

    /// The answer column for `batch`.
    async fn extend(
        &self,
        batch: RecordBatch,
        probe: Option<&Arc<dyn PhysicalExpr>>,
        cache: &Mutex<HashMap<Vec<ScalarValue>, Arc<Answer>>>,
        ctx: &Arc<TaskContext>,
    ) -> DfResult<RecordBatch> {
        let rows = batch.num_rows();
        let probes = match probe {
            Some(probe) => Some(probe.evaluate(&batch)?.into_array(rows)?),
            None => None,
        };
        let mut answers = Vec::with_capacity(rows);
        for row in 0..rows {
            let key = self
                .outer
                .iter()
                .map(|(index, ..)| ScalarValue::try_from_array(batch.column(*index), row))
                .collect::<DfResult<Vec<_>>>()?;
            let known = cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .cloned();
            let answer = match known {
                Some(answer) => answer,
                None => {
                    let answer = Arc::new(self.answer(&key, Arc::clone(ctx)).await?);
                    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                    if cache.len() >= MAX_CACHED_ANSWERS {
                        cache.clear();
                    }
                    cache.insert(key, Arc::clone(&answer));
                    answer
                }
            };
            let value = match (self.kind, answer.as_ref()) {
                (ApplyKind::Scalar, Answer::Value(value)) => value.clone(),
                (ApplyKind::Exists { negated }, Answer::Rows { any, .. }) => {
                    ScalarValue::Boolean(Some(*any != negated))
                }
                (
                    ApplyKind::In { negated },
                    Answer::Rows {
                        any,
                        values,
                        has_null,
                    },
                ) => {
                    let probe = match &probes {
                        Some(probes) => ScalarValue::try_from_array(probes, row)?,
                        None => ScalarValue::Null,
                    };
                    let found = if !any {
                        Some(false)
                    } else if probe.is_null() {
                        None
                    } else if values.contains(&normalized(probe)) {
                        Some(true)
                    } else if *has_null {
                        None
                    } else {
                        Some(false)
                    };
                    ScalarValue::Boolean(found.map(|found| found != negated))
                }
                _ => ScalarValue::try_from(self.answer.data_type())?,
            };
            answers.push(value);
        }
        let column = if answers.is_empty() {
            new_empty_array(self.answer.data_type())
        } else {
            ScalarValue::iter_to_array(answers)?
        };
        let mut columns = batch.columns().to_vec();
        columns.push(column);
        let fields: Vec<FieldRef> = batch
            .schema()
            .fields()
            .iter()
            .cloned()
            .chain([Arc::clone(&self.answer)])
            .collect();
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            batch.schema().metadata().clone(),
        ));
        // Lists compare without their item fields' metadata: an answer computed from a
        // plan of its own may carry other type tags than the field planned for it.
        let options = RecordBatchOptions::new().with_match_field_names(false);
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }
}

/// Equal floats are one value (`0 = -0` in PostgreSQL).
fn normalized(value: ScalarValue) -> ScalarValue {
    match value {
        // `-0.0 + 0.0` is `0.0`; every other value stays as it is.
        ScalarValue::Float64(Some(v)) => ScalarValue::Float64(Some(v + 0.0)),
        ScalarValue::Float32(Some(v)) => ScalarValue::Float32(Some(v + 0.0)),
        other => other,
    }
}

/// Runs [`Apply`]: each input batch with the subquery's answers for its rows appended.
#[derive(Debug)]
struct ApplyExec {
    input: Arc<dyn ExecutionPlan>,
    run: Arc<SubPlan>,
    probe: Option<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for ApplyExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ApplyExec: {:?} subquery per row", self.run.kind)
    }
}

impl ExecutionPlan for ApplyExec {
    fn name(&self) -> &str {
        "ApplyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        match &self.probe {
            Some(probe) => f(probe),
            None => Ok(TreeNodeRecursion::Continue),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .unwrap_or_else(|| Arc::clone(&self.input));
        Ok(Arc::new(ApplyExec {
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(Arc::clone(&self.schema)),
                input.properties().output_partitioning().clone(),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            input,
            run: Arc::clone(&self.run),
            probe: self.probe.clone(),
            schema: Arc::clone(&self.schema),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let run = Arc::clone(&self.run);
        let probe = self.probe.clone();
        let cache = Arc::new(Mutex::new(HashMap::new()));
        let stream = input.and_then(move |batch| {
            let run = Arc::clone(&run);
            let probe = probe.clone();
            let cache = Arc::clone(&cache);
            let context = Arc::clone(&context);
            async move { run.extend(batch, probe.as_ref(), &cache, &context).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

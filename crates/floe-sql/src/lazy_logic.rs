//! `AND` and `OR` evaluate their right operand only for the rows the left one leaves open, as
//! PostgreSQL evaluates them row by row.
//!
//! PostgreSQL stops at the first operand that decides a row (`false` for AND, `true` for OR), so
//! `WHERE s ~ '^[0-9]+$' AND s::int > 5` never casts a row that is not a number. DataFusion
//! evaluates both operands over the whole batch (it selects the rows first only when few are
//! left open), so the cast failed (22P02) on rows the guard excludes. [`LazyLogic`], the last
//! physical optimizer rule, replaces each AND/OR of a filter or projection whose right operand
//! can fail (anything but columns, literals, comparisons, NULL tests, NOT, IN lists and LIKE)
//! with [`LazyBinary`]: the left operand over the batch, then the right one over only the rows
//! it leaves open, combined with SQL's three-valued logic. Where only the left operand can fail
//! the two trade places: DataFusion orders a WHERE's conditions cheap-first with casts counted
//! cheap, PostgreSQL by cost with each function counted, so its guard (a comparison, LIKE or
//! regular expression) comes first.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::compute::kernels::boolean::{and_kleene, or_kleene};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{
    BinaryExpr, CastExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, LikeExpr, Literal,
    NotExpr, TryCastExpr,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

/// See the module doc.
#[derive(Debug, Default)]
pub struct LazyLogic;

impl PhysicalOptimizerRule for LazyLogic {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(filter) = node.downcast_ref::<FilterExec>() {
                let schema = filter.input().schema();
                let predicate = lazy(Arc::clone(filter.predicate()), &schema)?;
                if !predicate.transformed {
                    return Ok(Transformed::no(node));
                }
                let properties = Arc::clone(filter.properties());
                let filter = FilterExecBuilder::from(filter)
                    .with_predicate(predicate.data)
                    .build()?;
                // The rewritten predicate hides its conjuncts from DataFusion, which would no
                // longer see the constants and equalities the sorts above were planned with
                // (a window over `WHERE i4 = 0 AND …`, partitioned by `i4`, then failed with
                // "Expects PARTITION BY expression to be ordered").
                return Ok(Transformed::yes(Arc::new(SameProperties {
                    input: Arc::new(filter),
                    properties,
                })
                    as Arc<dyn ExecutionPlan>));
            }
            if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
                let mut changed = false;
                let schema = projection.input().schema();
                let exprs = projection
                    .expr()
                    .iter()
                    .map(|p| {
                        let expr = lazy(Arc::clone(&p.expr), &schema)?;
                        changed |= expr.transformed;
                        Ok(ProjectionExpr {
                            expr: expr.data,
                            alias: p.alias.clone(),
                        })
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                if !changed {
                    return Ok(Transformed::no(node));
                }
                let projection = ProjectionExec::try_new(exprs, Arc::clone(projection.input()))?;
                return Ok(Transformed::yes(
                    Arc::new(projection) as Arc<dyn ExecutionPlan>
                ));
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_lazy_logic"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `expr` with its AND/OR over a right operand that can fail made lazy.
fn lazy(
    expr: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> DfResult<Transformed<Arc<dyn PhysicalExpr>>> {
    expr.transform_up(|e| {
        let Some(binary) = e.downcast_ref::<BinaryExpr>() else {
            return Ok(Transformed::no(e));
        };
        let and = match binary.op() {
            Operator::And => true,
            Operator::Or => false,
            _ => return Ok(Transformed::no(e)),
        };
        let (left, right) = (binary.left(), binary.right());
        let (left, right) = match (can_fail(left, schema), can_fail(right, schema)) {
            (_, true) => (left, right),
            // Only the left one can fail: the other goes first (AND and OR commute). DataFusion
            // orders a WHERE's conditions cheap-first and counts casts as cheap, so the guard
            // of `s ~ '^[0-9]+$' AND s::int > 5` came second; PostgreSQL, which counts the
            // cast's function, evaluates the regular expression first.
            (true, false) => (right, left),
            (false, false) => return Ok(Transformed::no(e)),
        };
        Ok(Transformed::yes(Arc::new(LazyBinary {
            left: Arc::clone(left),
            right: Arc::clone(right),
            and,
        }) as Arc<dyn PhysicalExpr>))
    })
}

/// Whether evaluating `expr` could raise an error: anything but columns, literals,
/// comparisons, AND/OR, NULL tests, NOT, IN lists, LIKE, regular expression matches (a bad
/// pattern fails whichever operand goes first) and widening casts of such operands.
fn can_fail(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> bool {
    let widening = expr.downcast_ref::<CastExpr>().is_some_and(|cast| {
        cast.expr()
            .data_type(schema)
            .is_ok_and(|from| widens(&from, cast.cast_type()))
    });
    let safe_node = widening
        || expr.is::<TryCastExpr>()
        || expr.is::<Column>()
        || expr.is::<Literal>()
        || expr.is::<IsNullExpr>()
        || expr.is::<IsNotNullExpr>()
        || expr.is::<NotExpr>()
        || expr.is::<InListExpr>()
        || expr.is::<LikeExpr>()
        || expr.is::<LazyBinary>()
        || expr.downcast_ref::<BinaryExpr>().is_some_and(|b| {
            matches!(
                b.op(),
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::And
                    | Operator::Or
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
                    | Operator::RegexMatch
                    | Operator::RegexIMatch
                    | Operator::RegexNotMatch
                    | Operator::RegexNotIMatch
                    | Operator::LikeMatch
                    | Operator::ILikeMatch
                    | Operator::NotLikeMatch
                    | Operator::NotILikeMatch
            )
        });
    !safe_node || expr.children().into_iter().any(|c| can_fail(c, schema))
}

/// Whether every value of `from` converts to `to` (a wider integer or float, or text).
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    match (from, to) {
        (Binary | LargeBinary | BinaryView | FixedSizeBinary(_), _) => false,
        (_, Utf8 | LargeUtf8 | Utf8View) => true,
        (Float32, Float64) => true,
        (Int8 | Int16 | Int32 | Int64, Float32 | Float64) => true,
        _ => matches!((rank(from), rank(to)), (Some(a), Some(b)) if a <= b),
    }
}

/// `left AND right` (`and`) or `left OR right`, `right` evaluated only on the rows `left`
/// leaves open.
#[derive(Debug, Eq)]
pub struct LazyBinary {
    left: Arc<dyn PhysicalExpr>,
    right: Arc<dyn PhysicalExpr>,
    and: bool,
}

// By hand, as DataFusion's expressions do (rust-lang/rust#78808).
impl PartialEq for LazyBinary {
    fn eq(&self, other: &Self) -> bool {
        self.left.eq(&other.left) && self.right.eq(&other.right) && self.and == other.and
    }
}

impl Hash for LazyBinary {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.left.hash(state);
        self.right.hash(state);
        self.and.hash(state);
    }
}

impl LazyBinary {
    fn operator(&self) -> &'static str {
        if self.and {
            "AND"
        } else {
            "OR"
        }
    }

    /// `left` combined with `right` by three-valued logic.
    fn combine(&self, left: &BooleanArray, right: &BooleanArray) -> DfResult<BooleanArray> {
        Ok(if self.and {
            and_kleene(left, right)?
        } else {
            or_kleene(left, right)?
        })
    }
}

impl fmt::Display for LazyBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.left, self.operator(), self.right)
    }
}

impl PhysicalExpr for LazyBinary {
    fn data_type(&self, _input_schema: &Schema) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> DfResult<bool> {
        Ok(self.left.nullable(input_schema)? || self.right.nullable(input_schema)?)
    }

    fn evaluate(&self, batch: &RecordBatch) -> DfResult<ColumnarValue> {
        let rows = batch.num_rows();
        let left = self.left.evaluate(batch)?.into_array(rows)?;
        let left = left.as_boolean();
        // The rows whose value the right operand decides: not false (AND), not true (OR).
        let open: BooleanArray = (0..rows)
            .map(|row| Some(!left.is_valid(row) || left.value(row) == self.and))
            .collect();
        let open_rows = open.true_count();
        if open_rows == 0 {
            return Ok(ColumnarValue::Array(Arc::new(left.clone())));
        }
        if open_rows == rows {
            let right = self.right.evaluate(batch)?.into_array(rows)?;
            let combined = self.combine(left, right.as_boolean())?;
            return Ok(ColumnarValue::Array(Arc::new(combined)));
        }
        let selected = filter_record_batch(batch, &open)?;
        let right: ArrayRef = self
            .right
            .evaluate(&selected)?
            .into_array(selected.num_rows())?;
        let right = right.as_boolean();
        let mut out = BooleanBuilder::with_capacity(rows);
        let mut next = 0;
        for row in 0..rows {
            if !open.value(row) {
                out.append_value(!self.and);
                continue;
            }
            let l = left.is_valid(row).then(|| left.value(row));
            let r = right.is_valid(next).then(|| right.value(next));
            next += 1;
            out.append_option(match (l, r, self.and) {
                (_, Some(false), true) => Some(false),
                (Some(true), r, true) => r,
                (None, _, true) => None,
                (_, Some(true), false) => Some(true),
                (Some(false), r, false) => r,
                (None, _, false) => None,
                _ => None,
            });
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.left, &self.right]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let [left, right]: [Arc<dyn PhysicalExpr>; 2] = children.try_into().map_err(|_| {
            datafusion::error::DataFusionError::Internal("AND/OR takes two operands".into())
        })?;
        Ok(Arc::new(LazyBinary {
            left,
            right,
            and: self.and,
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.left.fmt_sql(f)?;
        write!(f, " {} ", self.operator())?;
        self.right.fmt_sql(f)
    }
}

/// Its input, described by the properties of the node it replaced (the same rows: a filter
/// whose predicate [`LazyLogic`] rewrote).
#[derive(Debug)]
struct SameProperties {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for SameProperties {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SameProperties")
    }
}

impl ExecutionPlan for SameProperties {
    fn name(&self) -> &str {
        "SameProperties"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(SameProperties {
                input,
                properties: Arc::clone(&self.properties),
            })),
            Err(_) => datafusion::common::internal_err!("SameProperties has one child"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

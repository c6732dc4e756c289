//! PostgreSQL's integer arithmetic: an overflow is an error (22003, `integer out of range`),
//! never a silent wrap.
//!
//! DataFusion's `+`, `-`, `*`, `/` and unary minus wrap on integer overflow
//! (`2147483647::int4 + 1` is `-2147483648`). [`CheckedIntegerArithmetic`] is an analyzer
//! rule that runs after type coercion and replaces each such operation on `smallint`,
//! `integer` or `bigint` operands by a call of a checked function ([`checked_udfs`]), which
//! computes with Arrow's checked kernels (vectorised like the wrapping ones) and names the
//! type that overflowed as PostgreSQL does. The result type is unchanged, so the plan's
//! schema (and what clients were told in RowDescription) stays as planned. `%` keeps
//! DataFusion's operator: its only overflow, `MIN % -1`, is 0 in PostgreSQL too.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{sqlstate, SqlError};

/// The checked operations, by the function name the plan calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Neg,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "floe_int_add",
            Op::Sub => "floe_int_sub",
            Op::Mul => "floe_int_mul",
            Op::Div => "floe_int_div",
            Op::Neg => "floe_int_neg",
        }
    }

    fn of(op: Operator) -> Option<Op> {
        match op {
            Operator::Plus => Some(Op::Add),
            Operator::Minus => Some(Op::Sub),
            Operator::Multiply => Some(Op::Mul),
            Operator::Divide => Some(Op::Div),
            _ => None,
        }
    }

    fn arity(self) -> usize {
        if self == Op::Neg {
            1
        } else {
            2
        }
    }
}

const OPS: [Op; 5] = [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Neg];

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedInt {
    op: Op,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedInt {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let data_type = arrays[0].data_type().clone();
        let result = match self.op {
            Op::Neg => numeric::neg(arrays[0].as_ref()),
            op => {
                let (lhs, rhs) = (&arrays[0], &arrays[1]);
                match op {
                    Op::Add => numeric::add(lhs, rhs),
                    Op::Sub => numeric::sub(lhs, rhs),
                    Op::Mul => numeric::mul(lhs, rhs),
                    _ => numeric::div(lhs, rhs),
                }
            }
        };
        let array: ArrayRef = result.map_err(|e| overflow_error(e, &data_type))?;
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// PostgreSQL's words for an integer overflow (and division by zero, which the checked
/// division reports too).
pub(crate) fn overflow_error(
    err: ArrowError,
    data_type: &DataType,
) -> datafusion::error::DataFusionError {
    let sql = match err {
        ArrowError::DivideByZero => SqlError::new(sqlstate::DIVISION_BY_ZERO, "division by zero"),
        ArrowError::ArithmeticOverflow(_) => SqlError::new(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{} out of range", integer_name(data_type)),
        ),
        other => SqlError::from(other),
    };
    sql.into()
}

fn integer_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    }
}

fn is_checked_integer(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int16 | DataType::Int32 | DataType::Int64
    )
}

/// Replaces wrapping integer arithmetic by the checked functions (see the module doc).
#[derive(Debug)]
pub(crate) struct CheckedIntegerArithmetic {
    /// One function per entry of [`OPS`].
    udfs: Vec<Arc<ScalarUDF>>,
}

impl CheckedIntegerArithmetic {
    pub(crate) fn new() -> CheckedIntegerArithmetic {
        let udfs = OPS
            .into_iter()
            .map(|op| {
                Arc::new(ScalarUDF::new_from_impl(CheckedInt {
                    op,
                    signature: Signature::any(op.arity(), Volatility::Immutable),
                }))
            })
            .collect();
        CheckedIntegerArithmetic { udfs }
    }

    fn udf(&self, op: Op) -> Arc<ScalarUDF> {
        let at = OPS.iter().position(|o| *o == op).unwrap_or_default();
        self.udfs[at].clone()
    }

    /// `expr` with its own operation made checked, if it is integer arithmetic.
    fn checked(&self, expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
        let (op, args) = match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match Op::of(op) {
                Some(checked_op) if same_integer_type(&left, &right, schema) => {
                    (checked_op, vec![*left, *right])
                }
                _ => {
                    return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr::new(
                        left, op, right,
                    ))))
                }
            },
            Expr::Negative(inner) => match inner.get_type(schema) {
                Ok(t) if is_checked_integer(&t) => (Op::Neg, vec![*inner]),
                _ => return Ok(Transformed::no(Expr::Negative(inner))),
            },
            other => return Ok(Transformed::no(other)),
        };
        Ok(Transformed::yes(Expr::ScalarFunction(
            ScalarFunction::new_udf(self.udf(op), args),
        )))
    }
}

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let mut schema = merge_schema(&node.inputs());
            if let LogicalPlan::TableScan(scan) = &node {
                // A scan's filters refer to the table's own columns.
                schema.merge(scan.projected_schema.as_ref());
            }
            let names = NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let saved = names.save(&expr);
                let rewritten = expr.transform_up(|e| self.checked(e, &schema))?;
                Ok(rewritten.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_checked_integer_arithmetic"
    }
}

fn same_integer_type(left: &Expr, right: &Expr, schema: &DFSchema) -> bool {
    match (left.get_type(schema), right.get_type(schema)) {
        (Ok(l), Ok(r)) => l == r && is_checked_integer(&l),
        _ => false,
    }
}

//! Window frames over orderings DataFusion cannot range over: wide `numeric` and `bytea`.
//!
//! A window with ORDER BY has the frame `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` by
//! default, and DataFusion's type coercion refuses RANGE frames whose first ORDER BY
//! expression is binary, which wide numerics are (an internal error: `sum(x) OVER (ORDER BY
//! x)` failed). A RANGE frame bounded only by UNBOUNDED and CURRENT ROW is the same frame as
//! GROUPS with those bounds (CURRENT ROW means the current row's peers in both), so it is
//! planned as GROUPS. Peers are rows with equal ORDER BY values, so a wide numeric orders
//! by its value's identity (`2.0` and `2.00` are peers, as in PostgreSQL). RANGE frames with
//! an offset (`RANGE 1 PRECEDING`) over these types are refused with 0A000.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::logical_expr::expr::{Sort, WindowFunction};
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, WindowFrame, WindowFrameBound, WindowFrameUnits,
};
use datafusion::optimizer::AnalyzerRule;

use crate::error::{sqlstate, SqlError};
use crate::numeric::is_numeric_field_type;
use crate::numeric::keys::{identity, rewrite_window_functions};

/// See the module doc.
#[derive(Debug, Default)]
pub struct PeerFrames;

impl AnalyzerRule for PeerFrames {
    fn name(&self) -> &str {
        "floe_peer_frames"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Window(window) => rewrite_window_functions(window, rewrite_function),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }
}

fn rewrite_function(mut f: Box<WindowFunction>, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let params = &mut f.params;
    let type_of = |e: &Expr| e.get_type(schema).ok();
    let first = params.order_by.first().and_then(|s| type_of(&s.expr));
    let binary_first = first.as_ref().is_some_and(|t| {
        matches!(
            t,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        )
    });
    let wide_keys = params
        .order_by
        .iter()
        .any(|s| type_of(&s.expr).is_some_and(|t| is_numeric_field_type(&t)));
    if !binary_first && !wide_keys {
        return Ok(Transformed::no(Expr::WindowFunction(f)));
    }
    let frame = &params.window_frame;
    if frame.units == WindowFrameUnits::Range && binary_first {
        let plain = |b: &WindowFrameBound| match b {
            WindowFrameBound::CurrentRow => true,
            WindowFrameBound::Preceding(v) | WindowFrameBound::Following(v) => v.is_null(),
        };
        if !(plain(&frame.start_bound) && plain(&frame.end_bound)) {
            let name = match first {
                Some(DataType::LargeBinary) => "numeric",
                _ => "bytea",
            };
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!(
                    "RANGE with offset PRECEDING/FOLLOWING is not supported for column type {name}"
                ),
            )
            .into());
        }
        params.window_frame = WindowFrame::new_bounds(
            WindowFrameUnits::Groups,
            frame.start_bound.clone(),
            frame.end_bound.clone(),
        );
    }
    params.order_by = std::mem::take(&mut params.order_by)
        .into_iter()
        .map(|s| {
            if type_of(&s.expr).is_some_and(|t| is_numeric_field_type(&t)) {
                Sort {
                    expr: identity(s.expr),
                    ..s
                }
            } else {
                s
            }
        })
        .collect();
    Ok(Transformed::yes(Expr::WindowFunction(f)))
}

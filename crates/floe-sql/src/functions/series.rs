//! `generate_series` and `range` in FROM over any integer type.
//!
//! DataFusion's table functions take `bigint` constants (or an untyped NULL) only, so
//! `generate_series(1, 3::int4)` or a typed NULL (`NULL::int4`, how a parameter is planned
//! before it has a value, see [`crate::table_params`]) was refused. [`IntegerArguments`] hands
//! DataFusion's function its integer arguments as `bigint` and typed NULLs as NULL; the
//! column's type (`integer` for `integer` arguments) is given by the rewrite in
//! `rewrite::int4_series`.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::Expr;

use crate::error::{sqlstate, SqlError};

/// A table function whose integer constant arguments are widened to `bigint` first.
#[derive(Debug)]
pub(crate) struct IntegerArguments(pub Arc<dyn TableFunctionImpl>);

impl TableFunctionImpl for IntegerArguments {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs: Vec<Expr> = args
            .exprs()
            .iter()
            .map(|e| match e {
                Expr::Literal(value, _) if value.is_null() && value.data_type().is_integer() => {
                    Expr::Literal(ScalarValue::Null, None)
                }
                Expr::Literal(value, meta) if value.data_type().is_integer() => {
                    match value.cast_to(&DataType::Int64) {
                        Ok(wide) => Expr::Literal(wide, meta.clone()),
                        Err(_) => e.clone(),
                    }
                }
                other => other.clone(),
            })
            .collect();
        // PostgreSQL's error for a zero step (DataFusion's has no SQLSTATE).
        if let Some(Expr::Literal(step, _)) = exprs.get(2) {
            if matches!(step, ScalarValue::Int64(Some(0))) {
                return Err(SqlError::new(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "step size cannot equal zero",
                )
                .into());
            }
        }
        self.0
            .call_with_args(TableFunctionArgs::new(&exprs, args.session()))
    }
}

//! Functions that need the database or the session: `nextval`, advisory locks, `set_config`,
//! `pg_sleep`, and `pg_typeof` ([`type_of`]); PostgreSQL's domain checks around DataFusion's
//! built-ins ([`domain`]); and PostgreSQL functions DataFusion lacks or types differently
//! ([`math`], [`text`], [`datetime`], [`window`]); `json`/`jsonb` functions and operators
//! ([`jsonb`]).
//!
//! A `nextval` call names its sequence by text (`nextval('t_id_seq')`); the session resolves
//! the name along its `search_path` while planning and calls `floe_nextval(<oid>)`, so
//! evaluation needs no session state.
//!
//! Advisory locks ([`advisory`]) and `set_config` ([`settings`]) act on the session itself: the
//! session binds their calls to its [`handle::SessionHandle`] after planning, and picks up what
//! they did when the statement ends (see [`handle`]). `pg_sleep` ([`sleep`]) needs neither: it
//! is an async function whose wait ends when the statement is cancelled or times out.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use floe_storage::Db;

pub(crate) mod advisory;
pub(crate) mod any;
pub(crate) mod array_agg;
pub(crate) mod datetime;
pub(crate) mod domain;
pub(crate) mod encoding;
pub(crate) mod float_aggregates;
pub(crate) mod float_min_max;
pub(crate) mod gen_random_uuid;
pub(crate) mod handle;
pub(crate) mod jsonb;
pub(crate) mod math;
pub(crate) mod number_format;
pub(crate) mod series;
pub(crate) mod settings;
pub(crate) mod sleep;
pub(crate) mod string_agg;
pub(crate) mod text;
pub(crate) mod to_timestamp;
pub(crate) mod type_of;
pub(crate) mod window;

/// A result array as one value when every argument was one, else as a column.
pub(crate) fn finish(
    args: &[datafusion::logical_expr::ColumnarValue],
    array: ArrayRef,
) -> DfResult<datafusion::logical_expr::ColumnarValue> {
    use datafusion::logical_expr::ColumnarValue;
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        return Ok(ColumnarValue::Scalar(
            datafusion::common::ScalarValue::try_from_array(&array, 0)?,
        ));
    }
    Ok(ColumnarValue::Array(array))
}

/// How many rows a call computes: one when every argument is a single value.
pub(crate) fn rows_of(args: &datafusion::logical_expr::ScalarFunctionArgs) -> usize {
    use datafusion::logical_expr::ColumnarValue;
    if args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)))
    {
        1
    } else {
        args.number_rows
    }
}

/// The name the planner calls.
pub const NEXTVAL: &str = "floe_nextval";

/// `floe_nextval(sequence_oid bigint) → bigint`.
pub fn nextval_udf(db: Arc<Db>) -> ScalarUDF {
    ScalarUDF::new_from_impl(NextVal {
        db,
        signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
    })
}

#[derive(Debug)]
struct NextVal {
    db: Arc<Db>,
    signature: Signature,
}

impl PartialEq for NextVal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.db, &other.db)
    }
}

impl Eq for NextVal {}

impl Hash for NextVal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NEXTVAL.hash(state);
    }
}

impl ScalarUDFImpl for NextVal {
    fn name(&self) -> &str {
        NEXTVAL
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let oids: ArrayRef = match &args.args[0] {
            ColumnarValue::Array(a) => a.clone(),
            ColumnarValue::Scalar(s) => s.to_array_of_size(rows.max(1))?,
        };
        let Some(oids) = oids.as_any().downcast_ref::<Int64Array>() else {
            return exec_err!("nextval expects a sequence oid");
        };
        let catalog = self.db.catalog();
        let mut out = Int64Builder::with_capacity(rows);
        for i in 0..rows.min(oids.len()) {
            if oids.is_null(i) {
                out.append_null();
                continue;
            }
            let oid = oids.value(i) as u32;
            let Some(def) = catalog.relation(oid) else {
                return Err(crate::SqlError::new(
                    crate::sqlstate::UNDEFINED_TABLE,
                    format!("could not open relation with OID {oid}"),
                )
                .into());
            };
            match self.db.nextval(def) {
                Ok(Some(value)) => out.append_value(value),
                Ok(None) => {
                    return Err(crate::SqlError::new(
                        crate::sqlstate::SEQUENCE_GENERATOR_LIMIT_EXCEEDED,
                        format!(
                            "nextval: reached maximum value of sequence \"{}\"",
                            def.name
                        ),
                    )
                    .into())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

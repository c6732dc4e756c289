//! The advisory lock functions (`pg_advisory_lock`, `pg_try_advisory_xact_lock_shared`, …)
//! over the server's lock table ([`floe_storage::advisory`]).
//!
//! Each takes a `bigint` key or two `integer` keys (two key spaces) and is NULL for a NULL
//! key, doing nothing. The functions that may wait are async: their wait is part of the
//! statement's row stream, so cancelling the statement (CancelRequest, `statement_timeout`)
//! drops it, and `lock_timeout` bounds it ([`SessionHandle::lock`]). The others run inline.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, Volatility,
};
use floe_storage::advisory::{AdvisoryNumber, LockMode, LockScope};

use super::handle::{unbound, SessionHandle};
use crate::error::{sqlstate, SqlError};
use crate::types::SqlType;

/// What a function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// Waits for the lock; returns void.
    Lock(LockMode, LockScope),
    /// Takes the lock if free; returns whether it did.
    TryLock(LockMode, LockScope),
    /// Releases one session-level hold; returns whether there was one.
    Unlock(LockMode),
    /// Releases every session-level hold; returns void.
    UnlockAll,
}

use LockMode::{Exclusive, Shared};
use LockScope::{Session, Transaction};

const FUNCTIONS: [(&str, Op); 11] = [
    ("pg_advisory_lock", Op::Lock(Exclusive, Session)),
    ("pg_advisory_lock_shared", Op::Lock(Shared, Session)),
    ("pg_advisory_xact_lock", Op::Lock(Exclusive, Transaction)),
    (
        "pg_advisory_xact_lock_shared",
        Op::Lock(Shared, Transaction),
    ),
    ("pg_try_advisory_lock", Op::TryLock(Exclusive, Session)),
    ("pg_try_advisory_lock_shared", Op::TryLock(Shared, Session)),
    (
        "pg_try_advisory_xact_lock",
        Op::TryLock(Exclusive, Transaction),
    ),
    (
        "pg_try_advisory_xact_lock_shared",
        Op::TryLock(Shared, Transaction),
    ),
    ("pg_advisory_unlock", Op::Unlock(Exclusive)),
    ("pg_advisory_unlock_shared", Op::Unlock(Shared)),
    ("pg_advisory_unlock_all", Op::UnlockAll),
];

/// Whether `name` is an advisory lock function.
pub(crate) fn is_advisory(name: &str) -> bool {
    FUNCTIONS.iter().any(|(n, _)| *n == name)
}

/// Every advisory lock function, bound to `handle` (or planning-only placeholders).
pub(crate) fn udfs(handle: Option<Arc<SessionHandle>>) -> Vec<ScalarUDF> {
    FUNCTIONS
        .iter()
        .map(|(name, op)| make(name, *op, handle.clone()))
        .collect()
}

/// Advisory lock function `name`, bound to `handle`.
pub(crate) fn udf(name: &str, handle: Option<Arc<SessionHandle>>) -> Option<ScalarUDF> {
    FUNCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(name, op)| make(name, *op, handle))
}

fn make(name: &'static str, op: Op, handle: Option<Arc<SessionHandle>>) -> ScalarUDF {
    let signature = if op == Op::UnlockAll {
        Signature::nullary(Volatility::Volatile)
    } else {
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int64]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Int32]),
                TypeSignature::Any(1),
                TypeSignature::Any(2),
            ],
            Volatility::Volatile,
        )
    };
    let function = AdvisoryFunction {
        name,
        op,
        handle,
        signature,
    };
    match op {
        Op::Lock(..) => AsyncScalarUDF::new(Arc::new(function)).into_scalar_udf(),
        _ => ScalarUDF::new_from_impl(function),
    }
}

#[derive(Debug)]
struct AdvisoryFunction {
    name: &'static str,
    op: Op,
    handle: Option<Arc<SessionHandle>>,
    signature: Signature,
}

impl PartialEq for AdvisoryFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && match (&self.handle, &other.handle) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for AdvisoryFunction {}

impl Hash for AdvisoryFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The key numbers of each row: `None` where an argument is NULL.
fn keys(args: &[ColumnarValue], rows: usize) -> DfResult<Vec<Option<AdvisoryNumber>>> {
    let arrays: Vec<ArrayRef> = args
        .iter()
        .map(|a| {
            let array = a.to_array(rows)?;
            Ok(cast(&array, &DataType::Int64)?)
        })
        .collect::<DfResult<_>>()?;
    let ints: Vec<_> = arrays
        .iter()
        .map(|a| a.as_primitive::<Int64Type>())
        .collect();
    let mut keys = Vec::with_capacity(rows);
    for row in 0..rows {
        if ints.iter().any(|a| a.is_null(row)) {
            keys.push(None);
            continue;
        }
        keys.push(Some(match ints.as_slice() {
            [key] => AdvisoryNumber::Int8(key.value(row)),
            [first, second] => {
                let int4 = |v: i64| {
                    i32::try_from(v).map_err(|_| {
                        SqlError::new(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range")
                    })
                };
                AdvisoryNumber::Int4Pair(int4(first.value(row))?, int4(second.value(row))?)
            }
            _ => return Err(SqlError::internal("advisory lock key of 0 or 3+ parts").into()),
        }));
    }
    Ok(keys)
}

fn void_rows(keys: &[Option<AdvisoryNumber>]) -> ColumnarValue {
    let mut out = StringBuilder::new();
    for key in keys {
        match key {
            Some(_) => out.append_value(""),
            None => out.append_null(),
        }
    }
    ColumnarValue::Array(Arc::new(out.finish()))
}

impl AdvisoryFunction {
    fn handle(&self) -> DfResult<&Arc<SessionHandle>> {
        self.handle.as_ref().ok_or_else(|| unbound(self.name))
    }

    fn returns_void(&self) -> bool {
        matches!(self.op, Op::Lock(..) | Op::UnlockAll)
    }
}

impl ScalarUDFImpl for AdvisoryFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(if self.returns_void() {
            DataType::Utf8
        } else {
            DataType::Boolean
        })
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(if self.returns_void() {
            SqlType::Void.to_arrow_field(self.name)
        } else {
            SqlType::Bool.to_arrow_field(self.name)
        }))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let handle = self.handle()?;
        let rows = args.number_rows;
        if self.op == Op::UnlockAll {
            handle.unlock_all();
            return Ok(void_rows(&vec![Some(AdvisoryNumber::Int8(0)); rows]));
        }
        let keys = keys(&args.args, rows)?;
        let mut out = BooleanBuilder::with_capacity(rows);
        for key in keys {
            let Some(key) = key else {
                out.append_null();
                continue;
            };
            out.append_value(match self.op {
                Op::TryLock(mode, scope) => handle.try_lock(key, mode, scope),
                Op::Unlock(mode) => handle.unlock(key, mode),
                Op::Lock(..) | Op::UnlockAll => {
                    return Err(SqlError::internal("advisory lock evaluated inline").into())
                }
            });
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for AdvisoryFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let handle = self.handle()?;
        let Op::Lock(mode, scope) = self.op else {
            return self.invoke_with_args(args);
        };
        let keys = keys(&args.args, args.number_rows)?;
        for key in keys.iter().flatten() {
            handle.lock(*key, mode, scope).await?;
        }
        Ok(void_rows(&keys))
    }
}

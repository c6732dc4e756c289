//! `set_config(name, value, is_local)`: `SET` (or `SET LOCAL`) as a function.
//!
//! The call checks the parameter and value at once (42704 for an unknown parameter, 22023
//! for a bad value, 55P02 for a read-only one) and returns the value as `SHOW` will print it;
//! the session applies the change when the statement ends ([`super::handle`]). A NULL value
//! resets the parameter, a NULL `is_local` is false, and `is_local` outside a transaction
//! block lasts only for the statement's own transaction — so it has no effect after it, and no
//! warning, as in PostgreSQL.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use super::handle::{unbound, SessionHandle};
use crate::error::SqlError;

/// The function's name.
pub(crate) const SET_CONFIG: &str = "set_config";

/// `set_config`, bound to `handle` (or a planning-only placeholder).
pub(crate) fn set_config_udf(handle: Option<Arc<SessionHandle>>) -> ScalarUDF {
    ScalarUDF::new_from_impl(SetConfig {
        handle,
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Boolean]),
                TypeSignature::Any(3),
            ],
            Volatility::Volatile,
        ),
    })
}

#[derive(Debug)]
struct SetConfig {
    handle: Option<Arc<SessionHandle>>,
    signature: Signature,
}

impl PartialEq for SetConfig {
    fn eq(&self, other: &Self) -> bool {
        match (&self.handle, &other.handle) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl Eq for SetConfig {}

impl Hash for SetConfig {
    fn hash<H: Hasher>(&self, state: &mut H) {
        SET_CONFIG.hash(state);
    }
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        SET_CONFIG
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let handle = self.handle.as_ref().ok_or_else(|| unbound(SET_CONFIG))?;
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let [names, values, locals] = arrays.as_slice() else {
            return Err(SqlError::internal("set_config takes three arguments").into());
        };
        let names = cast(names, &DataType::Utf8)?;
        let values = cast(values, &DataType::Utf8)?;
        let locals = cast(locals, &DataType::Boolean)?;
        let (names, values, locals) = (
            names.as_string::<i32>(),
            values.as_string::<i32>(),
            locals.as_boolean(),
        );
        let mut out = StringBuilder::with_capacity(rows, 8 * rows);
        for row in 0..rows {
            if names.is_null(row) {
                return Err(SqlError::new("22004", "SET requires parameter name").into());
            }
            let value = (!values.is_null(row)).then(|| values.value(row));
            let local = !locals.is_null(row) && locals.value(row);
            out.append_value(handle.set_config(names.value(row), value, local)?);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

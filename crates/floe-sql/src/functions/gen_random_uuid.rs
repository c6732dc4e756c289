//! `gen_random_uuid()`: a random (version 4) UUID, built into PostgreSQL since 13 and the
//! usual default of a `uuid` key column. DataFusion's `uuid()` makes the value; the result is
//! typed `uuid`, not text.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::types::SqlType;

#[derive(Debug, PartialEq, Eq, Hash)]
struct GenRandomUuid {
    signature: Signature,
}

/// `gen_random_uuid`.
pub(crate) fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(GenRandomUuid {
        signature: Signature::nullary(Volatility::Volatile),
    })
}

impl ScalarUDFImpl for GenRandomUuid {
    fn name(&self) -> &str {
        "gen_random_uuid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(SqlType::Uuid.to_arrow())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(SqlType::Uuid.to_arrow_field(self.name())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        datafusion::functions::string::uuid().invoke_with_args(args)
    }
}

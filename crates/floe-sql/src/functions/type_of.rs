//! `pg_typeof(any)`: the PostgreSQL type of its argument, by name (as `regtype` prints it).
//!
//! The answer comes from the argument's Arrow field (type tags included), so it is what the
//! wire layer would describe the value as.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::SqlType;

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeOf {
    signature: Signature,
}

/// `pg_typeof`.
pub(crate) fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeOf {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

impl ScalarUDFImpl for PgTypeOf {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = match args.arg_fields.first() {
            Some(field) if field.data_type() == &DataType::Null => "unknown".to_string(),
            Some(field) => SqlType::from_arrow_field(field).name(),
            None => "unknown".to_string(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

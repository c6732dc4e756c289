//! A catalog table as DataFusion sees it: a fixed column list and a function that computes the
//! rows from the current catalog each time a query scans the table, so DDL shows up at once.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float32Builder, Int16Builder, Int32Builder, Int64Builder,
    ListBuilder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::Result as DfResult;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use floe_storage::{Catalog, Db};

/// PostgreSQL column types of catalog tables, as Arrow holds them. OIDs are `int4` (user OIDs
/// stay below 2^31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `oid` and the `reg*` aliases: Int32.
    Oid,
    /// `text`, `name`, `"char"`: Utf8.
    Text,
    /// `boolean`.
    Bool,
    /// `int2`.
    Int2,
    /// `int4`.
    Int4,
    /// `int8`.
    Int8,
    /// `real`.
    Float4,
    /// `text[]` (also `aclitem[]`).
    TextArray,
    /// `int2[]` / `int2vector`.
    Int2Array,
    /// `oid[]` / `oidvector`.
    OidArray,
    /// `timestamptz` (values: microseconds since the Unix epoch).
    TimestampTz,
}

/// A field tagged with a PostgreSQL type: `oid` values are Int32 tagged `oid`, so clients see
/// PostgreSQL's type 26 (and `array_agg` of one is `oid[]`, which asyncpg's type introspection
/// relies on); `oid[]` is a list of Int32 tagged `oid[]`.
fn tagged_field(name: &str, data_type: DataType, tag: &str) -> Field {
    Field::new(name, data_type, true).with_metadata(
        [(crate::types::PG_TYPE_KEY.to_string(), tag.to_string())]
            .into_iter()
            .collect(),
    )
}

impl Kind {
    fn field(self, name: &str) -> Field {
        match self {
            Kind::Oid => tagged_field(name, self.data_type(), "oid"),
            Kind::OidArray => tagged_field(name, self.data_type(), "oid[]"),
            _ => Field::new(name, self.data_type(), true),
        }
    }

    fn data_type(self) -> DataType {
        let list = |inner: DataType| DataType::List(Arc::new(Field::new("item", inner, true)));
        match self {
            Kind::Oid | Kind::Int4 => DataType::Int32,
            Kind::Text => DataType::Utf8,
            Kind::Bool => DataType::Boolean,
            Kind::Int2 => DataType::Int16,
            Kind::Int8 => DataType::Int64,
            Kind::Float4 => DataType::Float32,
            Kind::TextArray => list(DataType::Utf8),
            Kind::Int2Array => list(DataType::Int16),
            Kind::OidArray => list(DataType::Int32),
            Kind::TimestampTz => crate::types::SqlType::Timestamptz.to_arrow(),
        }
    }
}

/// A table's columns: name and type.
pub(crate) type Columns = &'static [(&'static str, Kind)];

/// One value of a catalog row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum V {
    Null,
    Text(String),
    Bool(bool),
    Int(i64),
    Float(f32),
    IntArray(Vec<i64>),
}

/// A catalog row, values in column order.
pub(crate) type Row = Vec<V>;

impl From<&str> for V {
    fn from(v: &str) -> V {
        V::Text(v.to_string())
    }
}

impl From<String> for V {
    fn from(v: String) -> V {
        V::Text(v)
    }
}

impl From<&String> for V {
    fn from(v: &String) -> V {
        V::Text(v.clone())
    }
}

impl From<bool> for V {
    fn from(v: bool) -> V {
        V::Bool(v)
    }
}

impl From<i16> for V {
    fn from(v: i16) -> V {
        V::Int(v.into())
    }
}

impl From<i32> for V {
    fn from(v: i32) -> V {
        V::Int(v.into())
    }
}

impl From<u32> for V {
    fn from(v: u32) -> V {
        V::Int(v.into())
    }
}

impl From<i64> for V {
    fn from(v: i64) -> V {
        V::Int(v)
    }
}

impl From<usize> for V {
    fn from(v: usize) -> V {
        V::Int(v as i64)
    }
}

impl From<f32> for V {
    fn from(v: f32) -> V {
        V::Float(v)
    }
}

impl<T: Into<V>> From<Option<T>> for V {
    fn from(v: Option<T>) -> V {
        v.map_or(V::Null, Into::into)
    }
}

/// A list of integers (`int2[]`, `oid[]`).
pub(crate) fn ints<T: Into<i64> + Copy>(values: &[T]) -> V {
    V::IntArray(values.iter().map(|v| (*v).into()).collect())
}

/// The Arrow schema of `columns` (every column nullable).
pub(crate) fn schema_of(columns: Columns) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| kind.field(name))
            .collect::<Vec<_>>(),
    ))
}

/// The rows as one record batch of `schema`.
pub(crate) fn to_batch(
    schema: &SchemaRef,
    columns: Columns,
    rows: &[Row],
) -> DfResult<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| column(*kind, rows.iter().map(|r| r.get(i).unwrap_or(&V::Null))))
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

fn column<'a>(kind: Kind, values: impl Iterator<Item = &'a V>) -> ArrayRef {
    fn int(v: &V) -> Option<i64> {
        match v {
            V::Int(i) => Some(*i),
            V::Bool(b) => Some(*b as i64),
            V::Float(f) => Some(*f as i64),
            V::Text(s) => s.parse().ok(),
            _ => None,
        }
    }
    match kind {
        Kind::Text => {
            let mut b = StringBuilder::new();
            for v in values {
                match v {
                    V::Text(s) => b.append_value(s),
                    V::Int(i) => b.append_value(i.to_string()),
                    V::Bool(x) => b.append_value(if *x { "t" } else { "f" }),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Bool => {
            let mut b = BooleanBuilder::new();
            for v in values {
                match v {
                    V::Bool(x) => b.append_value(*x),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Oid | Kind::Int4 => {
            let mut b = Int32Builder::new();
            for v in values {
                b.append_option(int(v).map(|i| i as i32));
            }
            Arc::new(b.finish())
        }
        Kind::Int2 => {
            let mut b = Int16Builder::new();
            for v in values {
                b.append_option(int(v).map(|i| i as i16));
            }
            Arc::new(b.finish())
        }
        Kind::Int8 => {
            let mut b = Int64Builder::new();
            for v in values {
                b.append_option(int(v));
            }
            Arc::new(b.finish())
        }
        Kind::Float4 => {
            let mut b = Float32Builder::new();
            for v in values {
                match v {
                    V::Float(f) => b.append_value(*f),
                    other => b.append_option(int(other).map(|i| i as f32)),
                }
            }
            Arc::new(b.finish())
        }
        Kind::TextArray => {
            let mut b = ListBuilder::new(StringBuilder::new());
            for v in values {
                match v {
                    V::Text(item) => {
                        b.values().append_value(item);
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Int2Array => {
            let mut b = ListBuilder::new(Int16Builder::new());
            for v in values {
                match v {
                    V::IntArray(items) => {
                        for item in items {
                            b.values().append_value(*item as i16);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
        Kind::TimestampTz => {
            let micros: Vec<Option<i64>> = values.map(int).collect();
            let array = datafusion::arrow::array::TimestampMicrosecondArray::from(micros);
            match crate::types::SqlType::Timestamptz.to_arrow() {
                DataType::Timestamp(_, zone) => Arc::new(array.with_timezone_opt(zone)),
                _ => Arc::new(array),
            }
        }
        Kind::OidArray => {
            let mut b = ListBuilder::new(Int32Builder::new());
            for v in values {
                match v {
                    V::IntArray(items) => {
                        for item in items {
                            b.values().append_value(*item as i32);
                        }
                        b.append(true);
                    }
                    _ => b.append(false),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// What a row function sees: the database, a catalog snapshot and the connected database.
pub(crate) struct Ctx {
    pub db: Arc<Db>,
    pub catalog: Arc<Catalog>,
    pub database: String,
    /// The maintained materialized views (for `floe_catalog`; `None` elsewhere).
    pub matviews: Option<Arc<crate::matview::MatViews>>,
}

/// Computes a table's rows.
pub(crate) type RowFn = fn(&Ctx) -> Vec<Row>;

/// A catalog table whose rows are computed when it is scanned.
pub(crate) struct CatalogTable {
    name: &'static str,
    columns: Columns,
    schema: SchemaRef,
    rows: RowFn,
    db: Arc<Db>,
    database: String,
    matviews: Option<Arc<crate::matview::MatViews>>,
}

impl std::fmt::Debug for CatalogTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogTable")
            .field("name", &self.name)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl CatalogTable {
    pub(crate) fn new(
        name: &'static str,
        columns: Columns,
        rows: RowFn,
        db: Arc<Db>,
        database: &str,
    ) -> CatalogTable {
        CatalogTable {
            name,
            columns,
            schema: schema_of(columns),
            rows,
            db,
            database: database.to_string(),
            matviews: None,
        }
    }

    /// The table's rows may describe the maintained materialized views.
    pub(crate) fn with_matviews(mut self, matviews: Arc<crate::matview::MatViews>) -> Self {
        self.matviews = Some(matviews);
        self
    }

    /// The table's rows now.
    pub(crate) fn batch(&self) -> DfResult<RecordBatch> {
        let ctx = Ctx {
            catalog: self.db.catalog(),
            db: self.db.clone(),
            database: self.database.clone(),
            matviews: self.matviews.clone(),
        };
        let rows = (self.rows)(&ctx);
        to_batch(&self.schema, self.columns, &rows)
    }
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.batch()?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

//! Materialized views at run time: the maintained views of the server ([`MatViews`], held by
//! the engine) and the table provider a `SELECT` reads one through ([`MatViewTable`]).
//!
//! A materialized view's definition is a catalog relation
//! ([`floe_storage::RelationKind::MaterializedView`]); its rows are kept by the view engine
//! (`floe-views`): the session compiles the defining query's optimised plan, starts a [`View`]
//! and a [`Feed`] from the base tables (`session/matview.rs`), and registers them here under
//! the view's OID. Which views run follows the committed catalog: after every commit that
//! changed it (and at startup) the registry is reconciled with it — new views start, dropped
//! ones stop, and a view whose base tables changed their row layout is planned again.
//!
//! A read waits until the view's frontier has passed the reader's snapshot (which includes the
//! session's own last commit), then returns the view's rows as of that snapshot: the same rows
//! the defining query returns there. Equality filters on an index's leading columns
//! (`CREATE INDEX` on the view) narrow the read to that index's rows (`View::read_at_key`). A view with no running maintenance (created by the
//! reader's own uncommitted block, or one whose maintenance could not start) is read as its
//! defining query instead (`session/view.rs`), which is the same answer, computed.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session as CatalogSession;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{project_schema, DataFusionError, Result as DfResult};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Operator};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use floe_storage::{ReadView, TableCodec, TableDef};
use floe_views::{Feed, View, ViewError};
use parking_lot::Mutex;

/// One maintained view.
pub struct Maintained {
    /// The view's OID.
    pub oid: u32,
    /// Its name when it started (for messages).
    pub name: String,
    view: Arc<View>,
    feed: Mutex<Option<Feed>>,
    /// The base tables read, each with the row layout the view was planned for.
    sources: Vec<(u32, Arc<TableCodec>)>,
    /// The snapshot the view was built from: it has no rows before it.
    start_ts: u64,
    started: Instant,
    /// How long building the view from its base tables took, once done.
    hydrated: Arc<Mutex<Option<Duration>>>,
}

impl fmt::Debug for Maintained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maintained")
            .field("oid", &self.oid)
            .field("name", &self.name)
            .field("start_ts", &self.start_ts)
            .finish_non_exhaustive()
    }
}

/// What introspection reports of a maintained view.
#[derive(Debug, Clone)]
pub struct MaintainedStatus {
    pub oid: u32,
    /// Every commit below it is reflected.
    pub frontier: u64,
    /// Whether the view has been built from its base tables.
    pub hydrated: bool,
    /// How long that took.
    pub hydration_time: Option<Duration>,
    /// Why maintenance stopped, if it did.
    pub error: Option<String>,
    /// The output's size.
    pub stats: floe_views::ViewStats,
}

impl Maintained {
    /// Starts maintaining `view`'s plan from the base tables `sources` (OIDs in the view's
    /// source order, with the layouts it was planned for).
    pub(crate) fn start(
        db: Arc<floe_storage::Db>,
        oid: u32,
        name: String,
        plan: floe_views::Plan,
        sources: Vec<(u32, Arc<TableCodec>)>,
        permits: Arc<floe_views::Permits>,
    ) -> Result<Maintained, ViewError> {
        let started = Instant::now();
        let view = Arc::new(View::start(plan, 0)?);
        let tables = sources.iter().map(|(id, _)| *id).collect();
        let (feed, start_ts) = Feed::start_with(db, Arc::clone(&view), tables, Some(permits))?;
        let hydrated = Arc::new(Mutex::new(None));
        {
            let view = Arc::clone(&view);
            let hydrated = Arc::clone(&hydrated);
            let name = name.clone();
            // Reports when the view is built (the thread ends with it if maintenance stops).
            let _ = std::thread::Builder::new()
                .name("floe-view-hydration".into())
                .spawn(move || {
                    if view
                        .wait(start_ts, Duration::from_secs(365 * 24 * 3600))
                        .is_ok()
                    {
                        let took = started.elapsed();
                        *hydrated.lock() = Some(took);
                        tracing::info!(view = %name, ms = took.as_millis() as u64, "materialized view hydrated");
                    }
                });
        }
        Ok(Maintained {
            oid,
            name,
            view,
            feed: Mutex::new(Some(feed)),
            sources,
            start_ts,
            started,
            hydrated,
        })
    }

    /// Whether a base table's row layout is no longer the one the view was planned for (or
    /// the table is gone): the view must be planned again.
    pub(crate) fn is_outdated(&self, db: &floe_storage::Db) -> bool {
        self.sources.iter().any(|(id, codec)| {
            db.committed_table(*id)
                .is_none_or(|table| !table.codec.same_layout(codec))
        })
    }

    /// The view's state for introspection.
    pub fn status(&self) -> MaintainedStatus {
        let stats = self.view.stats();
        let frontier = stats.frontier;
        let hydration_time = *self.hydrated.lock();
        MaintainedStatus {
            oid: self.oid,
            stats,
            frontier,
            hydrated: frontier > self.start_ts,
            hydration_time,
            error: self.view.stopped(),
        }
    }

    /// The view's size now.
    pub fn stats(&self) -> floe_views::ViewStats {
        self.view.stats()
    }

    /// The view's rows as of its start, in `relation`'s types, once built (or the error its
    /// query raises there): what CREATE reports.
    pub(crate) async fn initial_rows(&self, relation: &SchemaRef) -> DfResult<usize> {
        Ok(self
            .read_at(self.start_ts, relation, None)
            .await?
            .num_rows())
    }

    /// [`Maintained::wait_hydrated`], blocking the thread.
    pub fn wait_hydrated_blocking(&self) -> Result<(), ViewError> {
        self.view
            .wait(self.start_ts, Duration::from_secs(365 * 24 * 3600))
    }

    /// Waits until the view is built from its base tables.
    pub async fn wait_hydrated(&self) -> Result<(), ViewError> {
        self.view.wait_async(self.start_ts).await
    }

    /// Since when the view has been starting (for logs).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Keeps an index of the view's rows for each index of `def` (its current definition);
    /// reads at a snapshot where a unique one's key repeats get 23505.
    pub(crate) fn set_indexes(&self, def: &TableDef) {
        let wanted = def
            .indexes
            .iter()
            .filter_map(|index| {
                let columns = index
                    .columns
                    .iter()
                    .map(|id| def.columns.iter().position(|c| c.id == *id))
                    .collect::<Option<Vec<usize>>>()?;
                let names: Vec<String> = columns
                    .iter()
                    .map(|c| def.columns[*c].name.clone())
                    .collect();
                let name = index.name.clone();
                let unique = index.unique.then(|| {
                    Arc::new(move |key: &RecordBatch| {
                        let error = duplicated(&name, &names, key);
                        crate::error::SqlError::view_error_text(&DataFusionError::External(
                            Box::new(error),
                        ))
                    }) as floe_views::UniqueText
                });
                Some(floe_views::IndexSpec { columns, unique })
            })
            .collect();
        if let Err(e) = self.view.set_indexes(wanted) {
            tracing::warn!(view = %self.name, error = %e, "indexing a materialized view failed");
        }
    }

    /// The view's rows at snapshot `ts`, once it has caught up with `ts`, in the relation's
    /// column types; with `lookup`, only (at least) the rows it selects.
    async fn read_at(
        &self,
        ts: u64,
        relation: &SchemaRef,
        lookup: Option<&Lookup>,
    ) -> DfResult<RecordBatch> {
        if ts < self.start_ts {
            return Err(DataFusionError::External(Box::new(
                crate::error::SqlError::new(
                    crate::error::sqlstate::SERIALIZATION_FAILURE,
                    format!(
                        "could not serialize access: materialized view \"{}\" was created after this transaction's snapshot",
                        self.name
                    ),
                ),
            )));
        }
        self.view.wait_async(ts).await.map_err(view_error)?;
        let batch = match lookup {
            Some(lookup) => self
                .view
                .read_at_key(ts, &lookup.columns, &lookup.values)
                .map_err(view_error)?,
            None => self.view.read_at(ts).map_err(view_error)?,
        };
        conform(batch, relation)
    }

    /// Stops maintenance.
    pub(crate) fn stop(&self) {
        if let Some(feed) = self.feed.lock().take() {
            let _ = feed.stop();
        }
        self.view
            .stop("the materialized view was dropped or replaced".into());
    }
}

impl Drop for Maintained {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 23505 for a unique index `index` on columns `names` whose key `key` (one row of those
/// columns) repeats.
pub(crate) fn duplicated(
    index: &str,
    names: &[String],
    key: &RecordBatch,
) -> crate::error::SqlError {
    let values: Vec<String> = key
        .columns()
        .iter()
        .map(|c| {
            datafusion::arrow::util::display::array_value_to_string(c, 0)
                .unwrap_or_else(|_| "?".into())
        })
        .collect();
    crate::error::SqlError::new(
        crate::error::sqlstate::UNIQUE_VIOLATION,
        format!("could not create unique index \"{index}\""),
    )
    .with_detail(format!(
        "Key ({})=({}) is duplicated.",
        names.join(", "),
        values.join(", ")
    ))
}

/// A view error as a query error: the defining query's own error, and a view stopped past its
/// memory share, keep their SQLSTATE (carried as text, see
/// [`crate::error::SqlError::view_error_text`]); others are 55000.
fn view_error(e: ViewError) -> DataFusionError {
    match e {
        ViewError::Query(message) => DataFusionError::External(Box::new(
            crate::error::SqlError::from_view_message(&message),
        )),
        ViewError::Behind(_) => DataFusionError::External(Box::new(crate::error::SqlError::new(
            crate::error::sqlstate::SERIALIZATION_FAILURE,
            format!("could not serialize access: {e}"),
        ))),
        ViewError::Stopped(message) if message.contains('\u{1f}') => DataFusionError::External(
            Box::new(crate::error::SqlError::from_view_message(&message)),
        ),
        other => DataFusionError::External(Box::new(crate::error::SqlError::new(
            crate::error::sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
            other.to_string(),
        ))),
    }
}

/// `batch`'s columns cast to `schema`'s types, under its names.
fn conform(batch: RecordBatch, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                Ok(cast(column, field.data_type())?)
            }
        })
        .collect::<DfResult<_>>()?;
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

/// The server's maintained views, by OID.
#[derive(Debug)]
pub struct MatViews {
    /// Views load their base tables' snapshots a few at a time.
    permits: Arc<floe_views::Permits>,
    running: Mutex<HashMap<u32, Arc<Maintained>>>,
    /// Views CREATE built before committing their definition, for the reconciliation after
    /// the commit to take over (instead of building them again).
    built: Mutex<HashMap<u32, Maintained>>,
    /// Held while the registry is reconciled with the catalog (one at a time).
    pub(crate) sync: tokio::sync::Mutex<u64>,
}

/// How many views load their base tables at once (after a restart, several rebuild).
const REHYDRATION_CONCURRENCY: usize = 2;

impl Default for MatViews {
    fn default() -> Self {
        MatViews {
            permits: Arc::new(floe_views::Permits::new(REHYDRATION_CONCURRENCY)),
            running: Mutex::default(),
            built: Mutex::default(),
            sync: tokio::sync::Mutex::default(),
        }
    }
}

impl MatViews {
    /// The permits every view's feed loads its snapshot under.
    pub(crate) fn permits(&self) -> Arc<floe_views::Permits> {
        Arc::clone(&self.permits)
    }

    /// Hands over a view built before its definition was committed.
    pub(crate) fn offer(&self, maintained: Maintained) {
        self.built.lock().insert(maintained.oid, maintained);
    }

    /// Takes back the view offered for `oid` (to use it, or because the commit failed).
    pub(crate) fn take_offered(&self, oid: u32) -> Option<Maintained> {
        self.built.lock().remove(&oid)
    }

    /// Memory shares: every view may grow into what the hot tier and the other views leave of
    /// `limit` (the hot tier's share of `--memory-limit`); past it a view stops with 53200.
    pub(crate) fn share_memory(&self, db: &floe_storage::Db) {
        let Some(limit) = db.memory_limit() else {
            return;
        };
        let all = self.all();
        let used: u64 = all.iter().map(|m| m.view.stats().state_bytes).sum();
        let free = (limit as u64).saturating_sub(db.hot_bytes() as u64 + used);
        for maintained in all {
            let own = maintained.view.stats().state_bytes;
            maintained.view.set_memory_limit((own + free).max(1));
        }
    }

    /// Whether a view of `bytes` more state fits the memory limit now: `Err(needed, free)`.
    pub(crate) fn fits(&self, db: &floe_storage::Db, bytes: u64) -> Result<(), (u64, u64)> {
        let Some(limit) = db.memory_limit() else {
            return Ok(());
        };
        let used: u64 = self.all().iter().map(|m| m.view.stats().state_bytes).sum();
        let free = (limit as u64).saturating_sub(db.hot_bytes() as u64 + used);
        if bytes > free {
            Err((bytes, free))
        } else {
            Ok(())
        }
    }

    /// The maintained view with OID `oid`, if it runs.
    pub fn get(&self, oid: u32) -> Option<Arc<Maintained>> {
        self.running.lock().get(&oid).cloned()
    }

    /// Every maintained view.
    pub fn all(&self) -> Vec<Arc<Maintained>> {
        self.running.lock().values().cloned().collect()
    }

    /// Registers `maintained`, stopping the view it replaces.
    pub(crate) fn insert(&self, maintained: Maintained) -> Arc<Maintained> {
        let maintained = Arc::new(maintained);
        let old = self
            .running
            .lock()
            .insert(maintained.oid, Arc::clone(&maintained));
        if let Some(old) = old {
            old.stop();
        }
        maintained
    }

    pub(crate) fn remove(&self, oid: u32) {
        let old = self.running.lock().remove(&oid);
        if let Some(old) = old {
            old.stop();
        }
    }

    pub(crate) fn oids(&self) -> Vec<u32> {
        self.running.lock().keys().copied().collect()
    }

    /// Stops every view (shutdown).
    pub fn stop_all(&self) {
        let all: Vec<_> = self.running.lock().drain().map(|(_, m)| m).collect();
        for maintained in all {
            maintained.stop();
        }
    }
}

/// DataFusion's view of a maintained materialized view.
#[derive(Debug)]
pub struct MatViewTable {
    maintained: Arc<Maintained>,
    /// The relation's columns now (a rename after the view started shows).
    schema: SchemaRef,
}

impl MatViewTable {
    pub fn new(maintained: Arc<Maintained>, schema: SchemaRef) -> MatViewTable {
        MatViewTable { maintained, schema }
    }
}

#[async_trait]
impl TableProvider for MatViewTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// `column = constant` on an indexed column narrows the read to the index's rows; the
    /// filter itself still runs over them (inexact).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let indexed: Vec<usize> = self.maintained.view.indexes().concat();
        Ok(filters
            .iter()
            .map(|filter| match self.equality(filter) {
                Some((column, _)) if indexed.contains(&column) => {
                    TableProviderFilterPushDown::Inexact
                }
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let equal: Vec<(usize, ScalarValue)> =
            filters.iter().filter_map(|f| self.equality(f)).collect();
        let value = |column: usize| {
            equal
                .iter()
                .find(|(c, _)| *c == column)
                .map(|(_, v)| v.clone())
        };
        // The index whose leading columns the filters fix the most of.
        let lookup = self
            .maintained
            .view
            .indexes()
            .into_iter()
            .map(|columns| {
                let values: Vec<ScalarValue> = columns.iter().map_while(|c| value(*c)).collect();
                Lookup {
                    columns: columns[..values.len()].to_vec(),
                    values,
                }
            })
            .filter(|lookup| !lookup.values.is_empty())
            .max_by_key(|lookup| lookup.values.len());
        let schema = project_schema(&self.schema, projection)?;
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(MatViewScanExec {
            maintained: Arc::clone(&self.maintained),
            lookup,
            relation: Arc::clone(&self.schema),
            projection: projection.cloned(),
            schema,
            properties,
        }))
    }
}

impl MatViewTable {
    /// `filter` as (column position, value) when it is `column = constant` with the constant
    /// of the column's type, one the view's rows hold unconverted and whose equality is
    /// equality of the encoded value (so an index lookup finds every row equal to it).
    fn equality(&self, filter: &Expr) -> Option<(usize, ScalarValue)> {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = filter
        else {
            return None;
        };
        let (column, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                (c, v)
            }
            _ => return None,
        };
        let position = self.position(column)?;
        let field = self.schema.field(position);
        let stored = self.maintained.view.schema().fields().get(position)?;
        let exact = matches!(
            field.data_type(),
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
                | DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
                | DataType::Timestamp(..)
        );
        (exact
            && !value.is_null()
            && &value.data_type() == field.data_type()
            && stored.data_type() == field.data_type())
        .then(|| (position, value.clone()))
    }

    fn position(&self, column: &Column) -> Option<usize> {
        self.schema.index_of(&column.name).ok()
    }
}

/// An index lookup: the rows whose columns `columns` (leading columns of an index) equal
/// `values`.
#[derive(Debug, Clone)]
struct Lookup {
    columns: Vec<usize>,
    values: Vec<ScalarValue>,
}

/// Reads a maintained view at the statement's snapshot (found in the task context at
/// execution, like the table scans').
#[derive(Debug)]
struct MatViewScanExec {
    maintained: Arc<Maintained>,
    lookup: Option<Lookup>,
    /// The relation's columns (before the projection).
    relation: SchemaRef,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for MatViewScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MaterializedViewScan: {}", self.maintained.name)?;
        if let Some(lookup) = &self.lookup {
            let names: Vec<&str> = lookup
                .columns
                .iter()
                .map(|c| self.relation.field(*c).name().as_str())
                .collect();
            write!(f, ", index lookup on ({})", names.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for MatViewScanExec {
    fn name(&self) -> &str {
        "MaterializedViewScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let Some(snapshot) = context.session_config().get_extension::<ReadView>() else {
            return Err(DataFusionError::Internal(
                "a materialized view read without a snapshot".into(),
            ));
        };
        let ts = snapshot.snapshot_ts();
        let maintained = Arc::clone(&self.maintained);
        let lookup = self.lookup.clone();
        let projection = self.projection.clone();
        let schema = Arc::clone(&self.schema);
        let relation = Arc::clone(&self.relation);
        let read = async move {
            // Held until the read is done: the view keeps its history back to the oldest
            // snapshot a reader holds, so this one must stay registered while it waits.
            let _snapshot = snapshot;
            let batch = maintained.read_at(ts, &relation, lookup.as_ref()).await?;
            let batch = match &projection {
                Some(p) => batch.project(p)?,
                None => batch,
            };
            Ok(RecordBatch::try_new_with_options(
                schema,
                batch.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(read),
        )))
    }
}

//! DataFusion's view of a table: a [`TableProvider`] whose scan reads the hot tier at the
//! statement's snapshot, merged with the transaction's own writes.
//!
//! The snapshot is not part of the plan: [`HotScanExec`] finds the statement's [`ReadView`] in
//! the task context's session config at execution time, so a physical plan can be executed
//! again at another snapshot (prepared statements reuse plans).
//!
//! Primary-key predicates (`pk = literal` on every key column, or ranges on a one-column key)
//! become a key range, so point lookups and range scans touch only their keys. The
//! `with_key` variant adds the hidden `__floe_key` column that DML uses to name rows.
//!
//! Otherwise, equality on every column of a secondary index (`col = literal`) becomes an index
//! lookup: the scan reads only the rows the index names, at the snapshot, plus the
//! transaction's own writes. Filters stay `Inexact`, so DataFusion re-applies them to every
//! row: that is the index recheck, and why an index that names too many rows is harmless.
//!
//! A SERIALIZABLE transaction's scan leaves a SIREAD mark on what it reads when it starts
//! ([`ReadView::note_scan`]): its key, its key range, or the whole table.
//!
//! A table with cold runs is scanned by batch where that is exact (`cold_scan`): the
//! plan is made at execution (it needs the snapshot), its pieces run on `target_partitions`
//! blocking threads, and batches come out in no particular order.

use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::{RecordBatchReceiverStream, RecordBatchStreamAdapter};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};

use crate::codec::{Key, RowBytes};
use crate::cold_scan::{self, ColdScanPlan, ScanUnit};
use crate::db::Db;
use crate::error::StorageError;
use crate::hot::KeyRange;
use crate::source::{OlderSources, Sources};
use crate::table::{RunSet, TableData};
use crate::txn::ReadView;

/// Name of the hidden column holding a row's key (DML only).
pub const KEY_COLUMN: &str = "__floe_key";
/// Rows per batch a scan produces.
const BATCH_ROWS: usize = 4096;

/// A table as DataFusion sees it.
#[derive(Debug)]
pub struct FloeTable {
    db: Arc<Db>,
    table: Arc<TableData>,
    schema: SchemaRef,
    with_key: bool,
    batch_scans: bool,
}

impl FloeTable {
    /// The provider for `table`; `with_key` adds the [`KEY_COLUMN`].
    pub fn new(db: Arc<Db>, table: Arc<TableData>, with_key: bool) -> FloeTable {
        let base = table.codec.schema().clone();
        let schema = if with_key {
            let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(KEY_COLUMN, DataType::Binary, false));
            Arc::new(Schema::new(fields))
        } else {
            base
        };
        FloeTable {
            db,
            table,
            schema,
            with_key,
            batch_scans: true,
        }
    }

    /// Whether scans may read cold runs by batch (`cold_scan`; on by default). Off,
    /// every row goes through the newest-wins merge (tests compare the two).
    pub fn with_batch_scans(mut self, batch_scans: bool) -> FloeTable {
        self.batch_scans = batch_scans;
        self
    }

    /// The table's live state.
    pub fn data(&self) -> &Arc<TableData> {
        &self.table
    }

    /// An index every column of which the filters compare for equality, with the lookup key.
    fn index_lookup(&self, filters: &[Expr]) -> Option<(u32, Key)> {
        let schema = self.table.codec.schema();
        for index in &self.table.indexes {
            let mut values = Vec::with_capacity(index.positions().len());
            for &p in index.positions() {
                let field = schema.field(p);
                let value = filters
                    .iter()
                    .find_map(|f| equality_literal(f, field.name()))
                    .and_then(|v| literal_array(&v, field.data_type()))?;
                values.push(value);
            }
            if values.is_empty() {
                continue;
            }
            if let Ok(mut keys) = index.encode_values(&values) {
                if let Some(key) = keys.pop() {
                    return Some((index.oid, key));
                }
            }
        }
        None
    }

    /// The filters without volatile ones as one physical expression over the table's columns
    /// (`None`: no such filter, or one DataFusion cannot plan here: pruning and pushdown are
    /// only optimisations, DataFusion applies every filter above the scan).
    fn filter_expr(&self, state: &dyn Session, filters: &[Expr]) -> Option<Arc<dyn PhysicalExpr>> {
        let unqualified: Vec<Expr> = filters
            .iter()
            .filter(|filter| !filter.is_volatile())
            .filter_map(|filter| {
                filter
                    .clone()
                    .transform(|expr| match expr {
                        Expr::Column(column) => Ok(Transformed::yes(Expr::Column(
                            datafusion::common::Column::new_unqualified(column.name),
                        ))),
                        other => Ok(Transformed::no(other)),
                    })
                    .ok()
                    .map(|t| t.data)
            })
            .collect();
        let predicate = conjunction(unqualified)?;
        let schema = self.table.codec.schema().clone();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).ok()?;
        state.create_physical_expr(predicate, &df_schema).ok()
    }

    /// The key range the filters restrict the scan to (full range if none).
    fn key_range(&self, filters: &[Expr]) -> KeyRange {
        let mut range: KeyRange = (Bound::Unbounded, Bound::Unbounded);
        if self.with_key {
            for filter in filters {
                if let Some(ScalarValue::Binary(Some(bytes))) = equality_literal(filter, KEY_COLUMN)
                {
                    let key: Key = Arc::from(bytes.as_slice());
                    return (Bound::Included(key.clone()), Bound::Included(key));
                }
            }
        }
        let key_columns = self.table.codec.key_columns();
        if key_columns.is_empty() {
            return range;
        }
        let schema = self.table.codec.schema();
        // Every key column compared for equality: a point lookup.
        let mut values = Vec::with_capacity(key_columns.len());
        for &i in key_columns {
            let field = schema.field(i);
            let value = filters
                .iter()
                .find_map(|f| equality_literal(f, field.name()))
                .and_then(|v| literal_array(&v, field.data_type()));
            match value {
                Some(v) => values.push(v),
                None => break,
            }
        }
        if values.len() == key_columns.len() {
            if let Ok(Some(rows)) = self.table.codec.encode_key_values(&values) {
                let key: Key = Arc::from(rows.row(0).data());
                return (Bound::Included(key.clone()), Bound::Included(key));
            }
        }
        // A range on a one-column key.
        if key_columns.len() == 1 {
            let field = schema.field(key_columns[0]);
            for filter in filters {
                for (op, value) in comparisons(filter, field.name()) {
                    let Some(array) = literal_array(&value, field.data_type()) else {
                        continue;
                    };
                    let Ok(Some(rows)) = self.table.codec.encode_key_values(&[array]) else {
                        continue;
                    };
                    let key: Key = Arc::from(rows.row(0).data());
                    match op {
                        Operator::Gt => tighten_lower(&mut range.0, Bound::Excluded(key)),
                        Operator::GtEq => tighten_lower(&mut range.0, Bound::Included(key)),
                        Operator::Lt => tighten_upper(&mut range.1, Bound::Excluded(key)),
                        Operator::LtEq => tighten_upper(&mut range.1, Bound::Included(key)),
                        _ => {}
                    }
                }
            }
        }
        range
    }
}

pub(crate) fn tighten_lower(current: &mut Bound<Key>, new: Bound<Key>) {
    let replace = match (&*current, &new) {
        (Bound::Unbounded, _) => true,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            b > a || (b == a && matches!(new, Bound::Excluded(_)))
        }
        _ => false,
    };
    if replace {
        *current = new;
    }
}

pub(crate) fn tighten_upper(current: &mut Bound<Key>, new: Bound<Key>) {
    let replace = match (&*current, &new) {
        (Bound::Unbounded, _) => true,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            b < a || (b == a && matches!(new, Bound::Excluded(_)))
        }
        _ => false,
    };
    if replace {
        *current = new;
    }
}

/// The literal in `column = literal` (either side), looking through casts of the literal.
fn equality_literal(expr: &Expr, column: &str) -> Option<ScalarValue> {
    comparisons(expr, column)
        .into_iter()
        .find(|(op, _)| *op == Operator::Eq)
        .map(|(_, v)| v)
}

/// `(op, literal)` for `column op literal` (normalised so the column is on the left);
/// `BETWEEN` gives two.
fn comparisons(expr: &Expr, column: &str) -> Vec<(Operator, ScalarValue)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if let (Some(c), Some(v)) = (column_name(left), literal(right)) {
                if c == column {
                    return vec![(*op, v)];
                }
            }
            if let (Some(v), Some(c)) = (literal(left), column_name(right)) {
                if c == column {
                    if let Some(op) = op.swap() {
                        return vec![(op, v)];
                    }
                }
            }
            vec![]
        }
        Expr::Between(between) if !between.negated => {
            match (
                column_name(&between.expr),
                literal(&between.low),
                literal(&between.high),
            ) {
                (Some(c), Some(low), Some(high)) if c == column => {
                    vec![(Operator::GtEq, low), (Operator::LtEq, high)]
                }
                _ => vec![],
            }
        }
        _ => vec![],
    }
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(v, _) if !v.is_null() => Some(v.clone()),
        Expr::Cast(cast) => literal(&cast.expr)
            .and_then(|v| v.cast_to(cast.field.data_type()).ok())
            .filter(|v| !v.is_null()),
        Expr::TryCast(cast) => literal(&cast.expr)
            .and_then(|v| v.cast_to(cast.field.data_type()).ok())
            .filter(|v| !v.is_null()),
        _ => None,
    }
}

/// A one-element array of `value` converted exactly to `data_type` (no lossy casts).
fn literal_array(value: &ScalarValue, data_type: &DataType) -> Option<ArrayRef> {
    let converted = value.cast_to(data_type).ok()?;
    // A lossy conversion (1.5 to an integer key) must not select the wrong key.
    let back = converted.cast_to(&value.data_type()).ok()?;
    if back != *value {
        return None;
    }
    converted.to_array().ok()
}

#[async_trait]
impl TableProvider for FloeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let range = self.key_range(filters);
        let index_lookup = match &range {
            (Bound::Unbounded, Bound::Unbounded) => self.index_lookup(filters),
            _ => None,
        };
        // Only tables with runs pay for it (planning every hot point query would too).
        let point = matches!(&range, (Bound::Included(a), Bound::Included(b)) if a == b);
        let filter = if self.batch_scans
            && !self.with_key
            && !point
            && !filters.is_empty()
            && !self.table.cold.is_empty()
        {
            self.filter_expr(state, filters)
        } else {
            None
        };
        let pruning = filter.as_ref().and_then(|filter| {
            PruningPredicateBuilder::new()
                .with_file_schema(self.table.codec.schema().clone())
                .build(filter.clone())
        });
        // Testing the filters in the reader pays when it spares decoding other columns for
        // the rows they drop; otherwise DataFusion's own test above the scan is enough.
        let filter = filter.filter(|filter| {
            let used: Vec<usize> = datafusion::physical_expr::utils::collect_columns(filter)
                .iter()
                .map(|c| c.index())
                .collect();
            match projection {
                Some(p) => p.iter().any(|c| !used.contains(c)),
                None => true,
            }
        });
        let projection = projection.cloned();
        let schema = match &projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(HotScanExec {
            db: self.db.clone(),
            table: self.table.clone(),
            with_key: self.with_key,
            batch_scans: self.batch_scans,
            pruning,
            filter,
            projection,
            range,
            index_lookup,
            // A filter may still remove rows, so the limit only applies without filters.
            limit: if filters.is_empty() { limit } else { None },
            properties: Arc::new(PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )),
            schema,
        }))
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters narrow the key range; DataFusion still applies them to every row.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// Reads a table's rows visible to the statement (see the module doc).
#[derive(Debug)]
pub struct HotScanExec {
    db: Arc<Db>,
    table: Arc<TableData>,
    with_key: bool,
    /// Cold runs may be read by batch ([`crate::cold_scan`]).
    batch_scans: bool,
    /// The filters as a pruning predicate over the table's columns (batch scans skip row
    /// groups whose statistics rule every row out).
    pruning: Option<Arc<PruningPredicate>>,
    /// The filters, evaluated by batch scans on the visible rows of a row group before the
    /// other columns are decoded (DataFusion applies them again above the scan).
    filter: Option<Arc<dyn PhysicalExpr>>,
    projection: Option<Vec<usize>>,
    range: KeyRange,
    /// Read only the rows this index (by OID) names for this index key.
    index_lookup: Option<(u32, Key)>,
    limit: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl HotScanExec {
    /// Whether the scan reads a single key.
    pub fn is_point_lookup(&self) -> bool {
        matches!(&self.range, (Bound::Included(a), Bound::Included(b)) if a == b)
    }
}

impl DisplayAs for HotScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some((oid, _)) = &self.index_lookup {
            let name = self
                .table
                .index(*oid)
                .map_or("?", |(def, _)| def.name.as_str());
            return write!(
                f,
                "HotScanExec: table={}, index lookup ({name})",
                self.table.def.name
            );
        }
        let access = match &self.range {
            _ if self.is_point_lookup() => "key lookup",
            (Bound::Unbounded, Bound::Unbounded) => "full scan",
            _ => "key range",
        };
        write!(f, "HotScanExec: table={}, {access}", self.table.def.name)
    }
}

impl ExecutionPlan for HotScanExec {
    fn name(&self) -> &str {
        "HotScanExec"
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
        let view = context
            .session_config()
            .get_extension::<ReadView>()
            .unwrap_or_else(|| Arc::new(ReadView::committed(self.db.snapshot())));
        // SERIALIZABLE: the SIREAD mark of what this scan reads (an index lookup marks the
        // table: a new row with the looked-up value may appear under any key).
        view.note_scan(self.table.def.id, &self.range, self.index_lookup.is_some())?;
        let own = view.own_writes(self.table.def.id, &self.range);
        // The index as the committer maintains it now (a plan may outlive a DROP INDEX).
        let candidates = self.index_lookup.as_ref().and_then(|(oid, index_key)| {
            let live = self.db.table(self.table.def.id)?;
            if !Arc::ptr_eq(&live.hot, &self.table.hot) {
                return None;
            }
            let (_, index) = live.index(*oid)?;
            let mut keys = index.candidates(index_key);
            keys.sort();
            keys.dedup();
            Some(keys)
        });
        // A point lookup reads one key: the merge's lookups are cheaper than a plan.
        let batchable = self.batch_scans
            && !self.is_point_lookup()
            && candidates.is_none()
            && !self.with_key
            && self.limit.is_none()
            && own.rows.is_empty()
            && !own.truncated;
        if batchable {
            let plan = cold_scan::plan(
                &self.table,
                view.snapshot_ts(),
                &self.range,
                self.pruning.as_deref(),
                self.filter.as_ref(),
            );
            if let Some(plan) = plan {
                return Ok(self.execute_plan(plan, view, &context));
            }
        }
        let state = ScanState {
            older: None,
            candidates,
            table: self.table.clone(),
            view,
            range: self.range.clone(),
            own: own.rows.into_iter().peekable(),
            skip_committed: own.truncated,
            remaining: self.limit.unwrap_or(usize::MAX),
            with_key: self.with_key,
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            done: false,
        };
        let stream = futures::stream::unfold(state, |mut state| async move {
            match state.next_batch() {
                Ok(Some(batch)) => Some((Ok(batch), state)),
                Ok(None) => None,
                Err(e) => {
                    state.done = true;
                    Some((Err(e), state))
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        )))
    }
}

struct ScanState {
    /// The run list to read (`None`: the table's current one, taken per chunk).
    older: Option<(OlderSources, u64)>,
    /// Index lookup: only these keys (sorted) of the committed rows are read.
    candidates: Option<Vec<Key>>,
    table: Arc<TableData>,
    view: Arc<ReadView>,
    range: KeyRange,
    own: std::iter::Peekable<std::vec::IntoIter<(Key, Option<RowBytes>)>>,
    skip_committed: bool,
    remaining: usize,
    with_key: bool,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    done: bool,
}

impl ScanState {
    fn sources(&self) -> Sources<'_> {
        let snapshot_ts = self.view.snapshot_ts();
        match &self.older {
            Some((older, truncated_at)) => {
                Sources::new(&self.table.hot, older.clone(), *truncated_at, snapshot_ts)
            }
            None => self.table.sources(snapshot_ts),
        }
    }

    fn next_batch(&mut self) -> DfResult<Option<RecordBatch>> {
        if let Some(keys) = self.candidates.take() {
            if self.done {
                return Ok(None);
            }
            self.done = true;
            let committed = if self.skip_committed {
                Vec::new()
            } else {
                let sources = self.sources();
                let mut found = Vec::with_capacity(keys.len());
                for key in keys {
                    if let Some(row) = sources.try_get(&key)? {
                        found.push((key, row));
                    }
                }
                found
            };
            let rows = self.merge(committed, None);
            return if rows.is_empty() {
                Ok(None)
            } else {
                self.to_batch(rows).map(Some)
            };
        }
        while !self.done && self.remaining > 0 {
            let mut committed = Vec::new();
            let last = if self.skip_committed {
                None
            } else {
                self.sources().try_scan_chunk(
                    &self.range,
                    BATCH_ROWS.min(self.remaining),
                    &mut committed,
                )?
            };
            match &last {
                Some(key) => self.range.0 = Bound::Excluded(key.clone()),
                None => self.done = true,
            }
            let rows = self.merge(committed, last.as_ref());
            if !rows.is_empty() {
                return self.to_batch(rows).map(Some);
            }
        }
        Ok(None)
    }

    /// Overlays the transaction's own writes up to `last` (all remaining when `None`).
    fn merge(
        &mut self,
        committed: Vec<(Key, RowBytes)>,
        last: Option<&Key>,
    ) -> Vec<(Key, RowBytes)> {
        let mut out = Vec::with_capacity(committed.len());
        let mut committed = committed.into_iter().peekable();
        loop {
            let own_next = self
                .own
                .peek()
                .filter(|(k, _)| last.is_none_or(|last| k <= last))
                .map(|(k, _)| k.clone());
            let take_own = match (committed.peek(), &own_next) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((ck, _)), Some(ok)) => ok <= ck,
            };
            if take_own {
                if let Some((key, row)) = self.own.next() {
                    if committed.peek().is_some_and(|(ck, _)| *ck == key) {
                        committed.next();
                    }
                    if let Some(row) = row {
                        out.push((key, row));
                    }
                }
            } else if let Some(row) = committed.next() {
                out.push(row);
            }
            if out.len() >= self.remaining {
                break;
            }
        }
        out.truncate(self.remaining);
        self.remaining -= out.len();
        out
    }

    fn to_batch(&self, rows: Vec<(Key, RowBytes)>) -> DfResult<RecordBatch> {
        rows_to_batch(
            &self.table,
            self.with_key,
            self.projection.as_deref(),
            &self.schema,
            rows,
        )
    }
}

/// `rows` of `table` as a batch of `schema`: the table's columns (and the key column when
/// `with_key`), projected.
fn rows_to_batch(
    table: &TableData,
    with_key: bool,
    projection: Option<&[usize]>,
    schema: &SchemaRef,
    rows: Vec<(Key, RowBytes)>,
) -> DfResult<RecordBatch> {
    let count = rows.len();
    let decoded = table
        .codec
        .decode_rows(rows.iter().map(|(_, r)| r.as_ref()))?;
    let mut columns: Vec<ArrayRef> = decoded.columns().to_vec();
    if with_key {
        columns.push(Arc::new(BinaryArray::from_iter_values(
            rows.iter().map(|(k, _)| k.as_ref()),
        )));
    }
    let columns = match projection {
        Some(p) => p.iter().map(|&i| columns[i].clone()).collect(),
        None => columns,
    };
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(count)),
    )?)
}

impl HotScanExec {
    /// Runs `plan`'s units on up to `target_partitions` tasks, batches in any order.
    fn execute_plan(
        &self,
        plan: ColdScanPlan,
        view: Arc<ReadView>,
        context: &Arc<TaskContext>,
    ) -> SendableRecordBatchStream {
        let workers = context
            .session_config()
            .target_partitions()
            .clamp(1, plan.units.len().max(1));
        let columns: Arc<[usize]> = match &self.projection {
            Some(p) => p.iter().copied().collect(),
            None => (0..self.table.codec.schema().fields().len()).collect(),
        };
        let older = (plan.runs.sources.clone(), plan.truncated_at);
        let queue = Arc::new(parking_lot::Mutex::new(std::collections::VecDeque::from(
            plan.units,
        )));
        // Every task holds the run list until it ends (see `cold_scan`).
        let runs = Arc::new(plan.runs);
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), workers * 2);
        for _ in 0..workers {
            let worker = ScanWorker {
                tx: builder.tx(),
                queue: queue.clone(),
                _runs: runs.clone(),
                older: older.clone(),
                table: self.table.clone(),
                view: view.clone(),
                projection: self.projection.clone(),
                columns: columns.clone(),
                range: self.range.clone(),
                schema: self.schema.clone(),
            };
            builder.spawn_blocking(move || worker.run());
        }
        builder.build()
    }
}

/// One task of a batch scan: takes units off the shared queue until it is empty.
struct ScanWorker {
    tx: tokio::sync::mpsc::Sender<DfResult<RecordBatch>>,
    queue: Arc<parking_lot::Mutex<std::collections::VecDeque<ScanUnit>>>,
    _runs: Arc<RunSet>,
    older: (OlderSources, u64),
    table: Arc<TableData>,
    view: Arc<ReadView>,
    projection: Option<Vec<usize>>,
    columns: Arc<[usize]>,
    range: KeyRange,
    schema: SchemaRef,
}

impl ScanWorker {
    /// Runs on a blocking thread: Floe runs each connection on a current-thread runtime, so
    /// tasks spawned there would share its one thread; blocking threads decode in parallel.
    /// Fetches still run on the cold runtime (the stream awaits them from here).
    fn run(self) -> DfResult<()> {
        loop {
            let unit = self.queue.lock().pop_front();
            let Some(unit) = unit else {
                return Ok(());
            };
            match unit {
                ScanUnit::Merge(range) => {
                    let mut state = ScanState {
                        older: Some(self.older.clone()),
                        candidates: None,
                        table: self.table.clone(),
                        view: self.view.clone(),
                        range,
                        own: Vec::new().into_iter().peekable(),
                        skip_committed: false,
                        remaining: usize::MAX,
                        with_key: false,
                        projection: self.projection.clone(),
                        schema: self.schema.clone(),
                        done: false,
                    };
                    while let Some(batch) = state.next_batch()? {
                        if self.tx.blocking_send(Ok(batch)).is_err() {
                            return Ok(()); // the consumer is gone
                        }
                    }
                }
                ScanUnit::Rows(rows) => {
                    let batch = rows_to_batch(
                        &self.table,
                        false,
                        self.projection.as_deref(),
                        &self.schema,
                        rows,
                    )?;
                    if self.tx.blocking_send(Ok(batch)).is_err() {
                        return Ok(());
                    }
                }
                ScanUnit::RowGroup {
                    run,
                    group,
                    visibility,
                } => {
                    let batches = run
                        .scan_group(
                            group,
                            &self.range,
                            visibility,
                            &self.columns,
                            self.schema.clone(),
                            BATCH_ROWS * 2,
                        )
                        .map_err(StorageError::from)?;
                    for batch in futures::executor::block_on_stream(batches) {
                        let batch = batch.map_err(StorageError::from)?;
                        if batch.num_rows() == 0 {
                            continue;
                        }
                        if self.tx.blocking_send(Ok(batch)).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

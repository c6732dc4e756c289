//! Cold runs: immutable Parquet files, each holding versions of one table's rows.
//!
//! A run's columns:
//! - `__floe_key` (Binary): the encoded primary key ([`crate::codec`]; byte order is key
//!   order);
//! - `__floe_ts` (UInt64): the version's commit ts;
//! - `__floe_deleted` (Boolean): a tombstone (the table's columns are null in its row);
//! - then the table's columns under their names and Arrow types (nullable, for tombstones),
//!   each with its stable column id in the field metadata `floe.column_id`, so a run written
//!   before an `ALTER TABLE` is read by id (a dropped column is ignored, an added one reads as
//!   NULL). `interval` (Arrow's month-day-nano, which Parquet cannot hold) is stored as the
//!   struct `{months, days, nanoseconds}`.
//!
//! Rows are sorted by key, then commit ts descending, so DataFusion's Parquet reader can later
//! scan a run with projection and statistics pruning, and a lookup at snapshot `s` takes the
//! first row of the key with `ts <= s`. Row groups hold up to [`RunOptions::row_group_rows`]
//! rows (scans); pages up to [`RunOptions::page_rows`] rows with a page index, and every row
//! group has a bloom filter on `__floe_key` (point lookups).
//!
//! Invariants:
//! - a run is written once, create-only, under a name holding its writer's epoch and a
//!   sequence number ([`RunNamer`]), and never changed; it is live iff the manifest lists it
//!   ([`crate::manifest`]);
//! - rows are ordered by (key, commit ts descending), and a key's versions never straddle a
//!   row group: a point lookup reads one row group, and only the pages whose key range holds
//!   the key;
//! - a run's [`RunMeta`] (key range, ts range, rows, bytes) is exact, so a reader skips a run
//!   without opening it.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Int32Array, Int64Array,
    IntervalMonthDayNanoArray, ListArray, RecordBatch, RecordBatchOptions, StructArray,
    UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::kernels::cmp::{gt, gt_eq, lt, lt_eq};
use datafusion::arrow::compute::{and, cast, take};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Int32Type, Int64Type, IntervalMonthDayNano, IntervalUnit, Schema,
    SchemaRef, UInt64Type,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningStatistics};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::basic::Compression;
use parquet::bloom_filter::Sbbf;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader, SortingColumn,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::codec::{Key, TableCodec};
use crate::error::{ColdError, ColdResult, StorageResult};
use crate::hot::KeyRange;
use crate::manifest::{PinGuard, RunPins};
use crate::source::{Lookup, Source, Versioned};
use crate::store::{ColdStore, Created};

/// The run column holding the encoded primary key (the name DML uses for a row's key).
pub const KEY_COLUMN: &str = crate::provider::KEY_COLUMN;
/// The run column holding a version's commit ts.
pub const TS_COLUMN: &str = "__floe_ts";
/// The run column marking a tombstone.
pub const DELETED_COLUMN: &str = "__floe_deleted";
/// Field metadata naming a table column's stable id.
pub const COLUMN_ID_METADATA: &str = "floe.column_id";
/// Columns before the table's own.
const SYSTEM_COLUMNS: usize = 3;

/// What the manifest records of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The table (OID) whose rows it holds.
    pub table_id: u32,
    /// The run's object name below the store's prefix.
    pub path: String,
    /// The LSM level (0: fresh flushes, which may overlap).
    pub level: u32,
    /// The smallest key (encoded).
    #[serde(with = "hex_bytes")]
    pub min_key: Vec<u8>,
    /// The largest key (encoded).
    #[serde(with = "hex_bytes")]
    pub max_key: Vec<u8>,
    /// The oldest version's commit ts.
    pub min_ts: u64,
    /// The newest version's commit ts.
    pub max_ts: u64,
    /// Versions (rows) in the run, tombstones included.
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
    /// Whether the run holds at most one version per key (what a flush writes): then each
    /// row's visibility at a snapshot is decided by the row alone, and a scan of the run may
    /// filter rows independently (`cold_scan`). Runs listed before this was recorded
    /// read as `false`.
    #[serde(default)]
    pub unique_keys: bool,
}

impl RunMeta {
    /// Whether the run may hold versions of keys in `range`.
    pub fn overlaps(&self, range: &KeyRange) -> bool {
        overlaps(&self.min_key, &self.max_key, range)
    }
}

/// Keys as hex strings in the manifest's JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            text.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd-length hex key"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("bad hex key"))
            })
            .collect()
    }
}

/// Names runs for one writer: `runs/<table>/<epoch>-<sequence>.parquet`, both numbers zero
/// padded to 20 digits. Only the writer holding an epoch makes names with it, so a name is
/// never made twice, and a fenced (older) writer cannot make a name the live writer uses.
#[derive(Debug)]
pub struct RunNamer {
    epoch: u64,
    next: AtomicU64,
}

impl RunNamer {
    /// Names for the writer holding `epoch`.
    pub fn new(epoch: u64) -> RunNamer {
        RunNamer {
            epoch,
            next: AtomicU64::new(1),
        }
    }

    /// The writer's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A new run name for `table_id`.
    pub fn next_name(&self, table_id: u32) -> String {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        format!(
            "{RUNS_DIR}/{table_id}/{:020}-{sequence:020}.parquet",
            self.epoch
        )
    }
}

/// The folder below the store's prefix that holds runs.
pub const RUNS_DIR: &str = "runs";

/// The writer epoch in a run's name (`None`: not a run name).
pub fn run_epoch(name: &str) -> Option<u64> {
    let file = name.rsplit('/').next()?.strip_suffix(".parquet")?;
    let (epoch, sequence) = file.split_once('-')?;
    sequence.parse::<u64>().ok()?;
    epoch.parse().ok()
}

/// How runs are laid out.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Versions encoded per Arrow batch (a batch ends at a key boundary once this is reached).
    pub batch_rows: usize,
    /// Rows per row group (cut at a key boundary once reached): big enough for scans.
    pub row_group_rows: usize,
    /// Rows per data page: small enough that a point lookup decodes little.
    pub page_rows: usize,
    /// Bytes per data page, at most.
    pub page_bytes: usize,
    /// A run is closed (and the next begun) once its file reaches this size.
    pub target_run_bytes: usize,
    /// The key bloom filter's false-positive rate.
    pub bloom_fpp: f64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_rows: 8192,
            row_group_rows: 128 * 1024,
            page_rows: 1024,
            page_bytes: 64 * 1024,
            target_run_bytes: 128 * 1024 * 1024,
            bloom_fpp: 0.01,
        }
    }
}

/// The Parquet file schema of runs of a table with `codec`'s layout.
pub fn run_schema(codec: &TableCodec) -> ColdResult<SchemaRef> {
    let mut fields = vec![
        Field::new(KEY_COLUMN, DataType::Binary, false),
        Field::new(TS_COLUMN, DataType::UInt64, false),
        Field::new(DELETED_COLUMN, DataType::Boolean, false),
    ];
    for (field, id) in codec.schema().fields().iter().zip(codec.column_ids()) {
        if field.name().starts_with("__floe_") {
            return Err(ColdError::Internal(format!(
                "column \"{}\" collides with the cold tier's system columns",
                field.name()
            )));
        }
        let mut metadata = field.metadata().clone();
        metadata.insert(COLUMN_ID_METADATA.to_string(), id.to_string());
        fields.push(
            Field::new(field.name(), file_type(field.data_type()), true).with_metadata(metadata),
        );
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn interval_fields() -> Fields {
    Fields::from(vec![
        Field::new("months", DataType::Int32, true),
        Field::new("days", DataType::Int32, true),
        Field::new("nanoseconds", DataType::Int64, true),
    ])
}

/// The type a column of `data_type` has in a run (Parquet cannot hold every Arrow type).
fn file_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Interval(IntervalUnit::MonthDayNano) => DataType::Struct(interval_fields()),
        DataType::List(item) => DataType::List(Arc::new(
            item.as_ref()
                .clone()
                .with_data_type(file_type(item.data_type())),
        )),
        other => other.clone(),
    }
}

/// A table column as a run stores it.
fn to_file(array: &ArrayRef) -> ColdResult<ArrayRef> {
    match array.data_type() {
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let intervals =
                array.as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>();
            let values = intervals.values();
            let months: Int32Array = values.iter().map(|v| v.months).collect::<Vec<_>>().into();
            let days: Int32Array = values.iter().map(|v| v.days).collect::<Vec<_>>().into();
            let nanos: Int64Array = values
                .iter()
                .map(|v| v.nanoseconds)
                .collect::<Vec<_>>()
                .into();
            Ok(Arc::new(StructArray::try_new(
                interval_fields(),
                vec![Arc::new(months), Arc::new(days), Arc::new(nanos)],
                intervals.nulls().cloned(),
            )?))
        }
        DataType::List(item) if file_type(item.data_type()) != *item.data_type() => {
            let list = array.as_list::<i32>();
            let values = to_file(list.values())?;
            let item = Arc::new(
                item.as_ref()
                    .clone()
                    .with_data_type(values.data_type().clone()),
            );
            Ok(Arc::new(ListArray::try_new(
                item,
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        _ => Ok(array.clone()),
    }
}

/// A run's column read back as the table's `target` type.
fn from_file(array: &ArrayRef, target: &DataType) -> ColdResult<ArrayRef> {
    match (array.data_type(), target) {
        (found, target) if found == target => Ok(array.clone()),
        (DataType::Struct(_), DataType::Interval(IntervalUnit::MonthDayNano)) => {
            let parts = array.as_struct();
            let bad = || ColdError::corrupt("cold run", "an interval column is malformed");
            let months = parts
                .column(0)
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(bad)?;
            let days = parts
                .column(1)
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(bad)?;
            let nanos = parts
                .column(2)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(bad)?;
            let values: Vec<IntervalMonthDayNano> = (0..parts.len())
                .map(|i| IntervalMonthDayNano::new(months.value(i), days.value(i), nanos.value(i)))
                .collect();
            Ok(Arc::new(IntervalMonthDayNanoArray::new(
                values.into(),
                parts.nulls().cloned(),
            )))
        }
        (DataType::List(_), DataType::List(item)) => {
            let list = array.as_list::<i32>();
            let values = from_file(list.values(), item.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                item.clone(),
                list.offsets().clone(),
                values,
                list.nulls().cloned(),
            )?))
        }
        // A run written before the column's type changed (the rows a table rewrite
        // supersedes): convert as the commit log's older records are.
        _ => Ok(cast(array, target)?),
    }
}

fn writer_properties(options: &RunOptions) -> ColdResult<WriterProperties> {
    let key = ColumnPath::from(KEY_COLUMN);
    // LZ4 (raw): scans of cold runs are bound by decompression on local disks; zstd level 1
    // made runs 28 % smaller but TPC-H SF1 over them ~15 % slower (docs/design/0010).
    Ok(WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_statistics_enabled(EnabledStatistics::Page)
        // Row groups are cut by the writer, at key boundaries only.
        .set_max_row_group_row_count(None)
        .set_write_batch_size(options.page_rows.clamp(1, 1024))
        .set_data_page_row_count_limit(options.page_rows.max(1))
        .set_data_page_size_limit(options.page_bytes.max(1024))
        .set_column_dictionary_enabled(key.clone(), false)
        .set_column_bloom_filter_enabled(key.clone(), true)
        .set_column_bloom_filter_fpp(key.clone(), options.bloom_fpp)
        .set_column_bloom_filter_max_ndv(key, options.row_group_rows as u64)
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 1,
                descending: true,
                nulls_first: false,
            },
        ]))
        .build())
}

/// Runs written by one [`RunWriter`], pinned until the manifest version listing them is
/// published (then drop `pin`): the sweeper leaves pinned runs alone.
#[derive(Debug)]
pub struct WrittenRuns {
    /// The runs, in key order (they do not overlap).
    pub runs: Vec<RunMeta>,
    /// Keeps the runs from the sweeper.
    pub pin: PinGuard,
}

/// A run being written.
struct OpenRun {
    name: String,
    writer: ArrowWriter<Vec<u8>>,
    min_key: Key,
    max_key: Key,
    min_ts: u64,
    max_ts: u64,
    rows: u64,
    /// No key has two versions in the run so far.
    unique_keys: bool,
}

/// Writes one table's versions, given in key order and newest first per key (what
/// [`Source::scan_versions`] yields, every version), into runs of about
/// [`RunOptions::target_run_bytes`], each uploaded create-only as it is closed. Synchronous:
/// encoding is CPU work on the caller's thread; uploads wait on the cold runtime.
pub struct RunWriter {
    store: Arc<ColdStore>,
    codec: Arc<TableCodec>,
    schema: SchemaRef,
    properties: WriterProperties,
    table_id: u32,
    level: u32,
    namer: Arc<RunNamer>,
    options: RunOptions,
    pending: Vec<Versioned>,
    open: Option<OpenRun>,
    written: Vec<RunMeta>,
    pin: PinGuard,
    last: Option<(Key, u64)>,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunWriter")
            .field("table_id", &self.table_id)
            .field("level", &self.level)
            .field("written", &self.written.len())
            .finish()
    }
}

impl RunWriter {
    /// A writer of `table_id`'s runs at `level`, named by `namer` and pinned in `pins`.
    pub fn new(
        store: Arc<ColdStore>,
        codec: Arc<TableCodec>,
        table_id: u32,
        level: u32,
        namer: Arc<RunNamer>,
        pins: &Arc<RunPins>,
        options: RunOptions,
    ) -> ColdResult<RunWriter> {
        Ok(RunWriter {
            schema: run_schema(&codec)?,
            properties: writer_properties(&options)?,
            store,
            codec,
            table_id,
            level,
            namer,
            options,
            pending: Vec::new(),
            open: None,
            written: Vec::new(),
            pin: pins.pin(Vec::new()),
            last: None,
        })
    }

    /// Writes every version of `versions` and finishes.
    pub fn write_all(
        mut self,
        versions: impl IntoIterator<Item = Versioned>,
    ) -> ColdResult<WrittenRuns> {
        for version in versions {
            self.push(version)?;
        }
        self.finish()
    }

    /// Adds one version: keys ascending, a key's versions newest first.
    pub fn push(&mut self, version: Versioned) -> ColdResult<()> {
        if let Some((key, ts)) = &self.last {
            let in_order = match version.key.as_ref().cmp(key.as_ref()) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Equal => version.commit_ts < *ts,
                std::cmp::Ordering::Less => false,
            };
            if !in_order {
                return Err(ColdError::Internal(format!(
                    "run versions out of order for table {}",
                    self.table_id
                )));
            }
        }
        self.last = Some((version.key.clone(), version.commit_ts));
        let at_key_boundary = self
            .pending
            .last()
            .is_some_and(|last| last.key != version.key);
        if self.pending.len() >= self.options.batch_rows && at_key_boundary {
            self.write_pending()?;
        }
        self.pending.push(version);
        Ok(())
    }

    /// Writes what is left, closes and uploads the last run.
    pub fn finish(mut self) -> ColdResult<WrittenRuns> {
        self.write_pending()?;
        self.close_run()?;
        Ok(WrittenRuns {
            runs: std::mem::take(&mut self.written),
            pin: std::mem::replace(&mut self.pin, PinGuard::empty()),
        })
    }

    /// The pending versions as a batch of the run schema.
    fn encode_batch(&self) -> ColdResult<RecordBatch> {
        let versions = &self.pending;
        let keys = BinaryArray::from_iter_values(versions.iter().map(|v| v.key.as_ref()));
        let ts = UInt64Array::from_iter_values(versions.iter().map(|v| v.commit_ts));
        let deleted = BooleanArray::from_iter(versions.iter().map(|v| Some(v.row.is_none())));
        let live: Vec<&[u8]> = versions.iter().filter_map(|v| v.row.as_deref()).collect();
        let all_live = live.len() == versions.len();
        let decoded = self.codec.decode_rows(live)?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(ts), Arc::new(deleted)];
        let spread: Option<UInt32Array> = (!all_live).then(|| {
            let mut next = 0u32;
            versions
                .iter()
                .map(|v| {
                    v.row.as_ref().map(|_| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        });
        for column in decoded.columns() {
            let column = match &spread {
                Some(indices) => take(column.as_ref(), indices, None)?,
                None => column.clone(),
            };
            columns.push(to_file(&column)?);
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    fn write_pending(&mut self) -> ColdResult<()> {
        let (Some(first), Some(last)) = (self.pending.first(), self.pending.last()) else {
            return Ok(());
        };
        let (first_key, last_key) = (first.key.clone(), last.key.clone());
        let (min_ts, max_ts) = self.pending.iter().fold((u64::MAX, 0), |(lo, hi), v| {
            (lo.min(v.commit_ts), hi.max(v.commit_ts))
        });
        let batch = self.encode_batch()?;
        let rows = self.pending.len() as u64;
        // A key's versions never straddle two pending batches (they are cut at key boundaries).
        let unique_keys = self
            .pending
            .windows(2)
            .all(|pair| pair[0].key != pair[1].key);
        self.pending.clear();
        if self.open.is_none() {
            let name = self.namer.next_name(self.table_id);
            // Pinned before it exists: the sweeper must not take it for an orphan.
            self.pin.add(name.clone());
            let writer = ArrowWriter::try_new(
                Vec::new(),
                self.schema.clone(),
                Some(self.properties.clone()),
            )
            .map_err(|source| ColdError::Parquet {
                path: name.clone(),
                source,
            })?;
            self.open = Some(OpenRun {
                name,
                writer,
                min_key: first_key.clone(),
                max_key: last_key.clone(),
                min_ts,
                max_ts,
                rows: 0,
                unique_keys: true,
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Err(ColdError::Internal("no open run".into()));
        };
        let parquet = |name: &str| {
            let path = name.to_string();
            move |source| ColdError::Parquet { path, source }
        };
        open.writer.write(&batch).map_err(parquet(&open.name))?;
        open.max_key = last_key;
        open.min_ts = open.min_ts.min(min_ts);
        open.max_ts = open.max_ts.max(max_ts);
        open.rows += rows;
        open.unique_keys &= unique_keys;
        if open.writer.in_progress_rows() >= self.options.row_group_rows {
            open.writer.flush().map_err(parquet(&open.name))?;
            if open.writer.bytes_written() >= self.options.target_run_bytes {
                self.close_run()?;
            }
        }
        Ok(())
    }

    /// Finishes the open run's file and uploads it create-only.
    fn close_run(&mut self) -> ColdResult<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let bytes = open
            .writer
            .into_inner()
            .map_err(|source| ColdError::Parquet {
                path: open.name.clone(),
                source,
            })?;
        let size = bytes.len() as u64;
        let store = self.store.clone();
        let name = open.name.clone();
        let created = self
            .store
            .io()
            .block_on(async move { store.put_create(&name, Bytes::from(bytes)).await })??;
        if created == Created::FoundOnRetry {
            // The name is this writer's alone: the object is the earlier attempt's.
            tracing::info!(run = %open.name, "run upload confirmed after a retried put");
        }
        tracing::debug!(run = %open.name, rows = open.rows, bytes = size, "wrote cold run");
        self.written.push(RunMeta {
            table_id: self.table_id,
            path: open.name,
            level: self.level,
            min_key: open.min_key.to_vec(),
            max_key: open.max_key.to_vec(),
            min_ts: open.min_ts,
            max_ts: open.max_ts,
            rows: open.rows,
            bytes: size,
            unique_keys: open.unique_keys,
        });
        Ok(())
    }
}

/// Whether keys in `[min, max]` may fall in `range`.
fn overlaps(min: &[u8], max: &[u8], range: &KeyRange) -> bool {
    let above_start = match &range.0 {
        Bound::Included(start) => max >= start.as_ref(),
        Bound::Excluded(start) => max > start.as_ref(),
        Bound::Unbounded => true,
    };
    let below_end = match &range.1 {
        Bound::Included(end) => min <= end.as_ref(),
        Bound::Excluded(end) => min < end.as_ref(),
        Bound::Unbounded => true,
    };
    above_start && below_end
}

/// An open run: its metadata, footer and page index cached, its bloom filters loaded on
/// first use. Cheap to clone. A [`Source`] for the merge.
#[derive(Debug, Clone)]
pub struct ColdRun {
    reader: Arc<RunReader>,
}

#[derive(Debug)]
struct RunReader {
    meta: RunMeta,
    store: Arc<ColdStore>,
    codec: Arc<TableCodec>,
    parquet: ArrowReaderMetadata,
    /// For each table column: its column in the file (`None`: added after the run).
    columns: Vec<Option<usize>>,
    /// Each row group's key range from its statistics (`None`: unknown, so read it).
    row_group_keys: Vec<Option<(Vec<u8>, Vec<u8>)>>,
    /// Each row group's key bloom filter, once read (`None` inside: the group has none).
    blooms: Vec<OnceLock<Option<Arc<Sbbf>>>>,
    /// Whether some row group may hold a tombstone (from the statistics of `__floe_deleted`).
    may_hold_tombstones: bool,
    /// Row groups read so far (tests check that a lookup reads at most one).
    row_groups_read: AtomicU64,
    /// Row groups read by batch scans ([`ColdRun::scan_group`]) so far.
    row_groups_scanned: AtomicU64,
    /// Bytes fetched after opening (footer and page index excluded).
    bytes_read: Arc<AtomicU64>,
    /// Keeps the sweeper from deleting the file while any reader holds the run
    /// ([`ColdRun::pin_in`]); released when the last clone drops.
    pin: OnceLock<PinGuard>,
}

impl ColdRun {
    /// Opens the run `meta` of a table encoded by `codec`: reads its footer and page index.
    pub async fn open(
        store: Arc<ColdStore>,
        meta: RunMeta,
        codec: Arc<TableCodec>,
    ) -> ColdResult<ColdRun> {
        let io = store.clone();
        io.io()
            .run(async move {
                // Each byte range is retried by the store (`RunFile`): no retry around it.
                let mut reader = object_reader(&store, &meta, &Arc::default());
                let options =
                    ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
                let parquet = ArrowReaderMetadata::load_async(&mut reader, options)
                    .await
                    .map_err(|source| read_error(meta.path.clone(), source))?;
                RunReader::new(store, meta, codec, parquet)
            })
            .await?
            .map(|reader| ColdRun {
                reader: Arc::new(reader),
            })
    }

    /// [`ColdRun::open`] for a synchronous caller.
    pub fn open_blocking(
        store: Arc<ColdStore>,
        meta: RunMeta,
        codec: Arc<TableCodec>,
    ) -> ColdResult<ColdRun> {
        let io = store.clone();
        io.io().block_on(ColdRun::open(store, meta, codec))?
    }

    /// Pins the run's file in `pins` for as long as any clone of this run lives: a run an
    /// engine reads from is never swept, even after a compaction or a DROP took it out of the
    /// manifest, until the last reader lets go. A second call keeps the first pin.
    pub fn pin_in(&self, pins: &Arc<RunPins>) {
        let _ = self
            .reader
            .pin
            .get_or_init(|| pins.pin(vec![self.reader.meta.path.clone()]));
    }

    /// What the manifest records of the run.
    pub fn meta(&self) -> &RunMeta {
        &self.reader.meta
    }

    /// Bytes fetched by lookups and scans so far (the footer and page index, read at open,
    /// not counted).
    pub fn bytes_read(&self) -> u64 {
        self.reader.bytes_read.load(Ordering::Relaxed)
    }

    /// Row groups read so far by lookups and scans.
    pub fn row_groups_read(&self) -> u64 {
        self.reader.row_groups_read.load(Ordering::Relaxed)
    }

    /// Row groups read by batch scans so far.
    pub fn row_groups_scanned(&self) -> u64 {
        self.reader.row_groups_scanned.load(Ordering::Relaxed)
    }

    /// Whether some row of the run may be a tombstone.
    pub fn may_hold_tombstones(&self) -> bool {
        self.reader.may_hold_tombstones
    }

    /// The row groups whose key statistics overlap `range`, in order.
    pub fn row_groups_in(&self, range: &KeyRange) -> Vec<usize> {
        self.reader.row_groups_in(range)
    }

    /// The row groups of `groups` that may hold rows `predicate` (over the table's columns)
    /// accepts, by their statistics. Columns a run stores as another type (intervals) or not
    /// at all are unknown to the statistics, so they never prune.
    pub fn prune_groups(&self, groups: Vec<usize>, predicate: &PruningPredicate) -> Vec<usize> {
        if groups.is_empty() {
            return groups;
        }
        let statistics = GroupStatistics {
            reader: &self.reader,
            groups: &groups,
        };
        match predicate.prune(&statistics) {
            Ok(keep) => groups
                .iter()
                .zip(keep)
                .filter_map(|(group, keep)| keep.then_some(*group))
                .collect(),
            Err(error) => {
                tracing::debug!(%error, run = %self.reader.meta.path, "row groups not pruned");
                groups
            }
        }
    }

    /// A batch scan of row group `group`: the rows of its pages whose keys may fall in
    /// `range` (whole pages: rows outside `range` may come too) that `visibility` keeps, as
    /// the table columns `columns` (positions in the codec's schema) converted to their
    /// table types, in batches of `schema` of up to `batch_rows` rows. Decoding happens where
    /// the stream is polled; fetches run on the cold runtime.
    pub fn scan_group(
        &self,
        group: usize,
        range: &KeyRange,
        visibility: Arc<Visibility>,
        columns: &[usize],
        schema: SchemaRef,
        batch_rows: usize,
    ) -> ColdResult<futures::stream::BoxStream<'static, ColdResult<RecordBatch>>> {
        let reader = &self.reader;
        let Some(selection) = reader.page_selection(group, range) else {
            return Ok(futures::stream::empty().boxed());
        };
        reader.row_groups_read.fetch_add(1, Ordering::Relaxed);
        reader.row_groups_scanned.fetch_add(1, Ordering::Relaxed);
        let path = reader.meta.path.clone();
        let file_columns: Vec<Option<usize>> = columns
            .iter()
            .map(|&c| reader.columns.get(c).copied().flatten())
            .collect();
        let mut roots: Vec<usize> = file_columns.iter().flatten().copied().collect();
        roots.sort_unstable();
        roots.dedup();
        if roots.is_empty() && visibility.keeps_all() && visibility.filter.is_none() {
            // Nothing to decode (count(*)): the selection's row count says it all.
            let mut left = selection.row_count();
            let step = batch_rows.max(1);
            let mut batches = Vec::with_capacity(left.div_ceil(step));
            while left > 0 {
                let rows = left.min(step);
                left -= rows;
                batches.push(Ok(RecordBatch::try_new_with_options(
                    schema.clone(),
                    vec![],
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )?));
            }
            return Ok(futures::stream::iter(batches).boxed());
        }
        if roots.is_empty() {
            // Decode the narrowest column so batches carry their row counts.
            roots.push(1);
        }
        let descriptor = reader.parquet.metadata().file_metadata().schema_descr_ptr();
        let mut file = object_reader(&reader.store, &reader.meta, &reader.bytes_read);
        file.on_cold_runtime = true;
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(file, reader.parquet.clone())
                .with_row_groups(vec![group])
                .with_row_selection(selection)
                .with_projection(ProjectionMask::roots(&descriptor, roots.iter().copied()))
                .with_batch_size(batch_rows.max(1));
        let mut predicates: Vec<Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>> = Vec::new();
        if !visibility.keeps_all() {
            let leaves = visibility.leaves();
            let predicate = ArrowPredicateFn::new(
                ProjectionMask::leaves(&descriptor, leaves.iter().copied()),
                visibility_filter(visibility.clone(), &leaves),
            );
            predicates.push(Box::new(predicate));
        }
        if let Some(filter) = &visibility.filter {
            // After visibility: the filters see only visible rows (an old version or a hidden
            // key's row must not make them fail).
            if let Some(predicate) = self.filter_predicate(filter.clone()) {
                predicates.push(Box::new(predicate));
            }
        }
        if !predicates.is_empty() {
            builder = builder.with_row_filter(RowFilter::new(predicates));
        }
        let stream = builder
            .build()
            .map_err(|source| read_error(path.clone(), source))?;
        let targets: Vec<DataType> = columns
            .iter()
            .map(|&c| reader.codec.schema().field(c).data_type().clone())
            .collect();
        let positions: Vec<Option<usize>> = file_columns
            .iter()
            .map(|f| f.and_then(|root| roots.iter().position(|r| *r == root)))
            .collect();
        Ok(stream
            .map(move |batch| {
                let batch = batch.map_err(|source| read_error(path.clone(), source))?;
                let rows = batch.num_rows();
                let mut out = Vec::with_capacity(targets.len());
                for (target, position) in targets.iter().zip(&positions) {
                    out.push(match position {
                        Some(p) => from_file(batch.column(*p), target)?,
                        None => new_null_array(target, rows),
                    });
                }
                Ok(RecordBatch::try_new_with_options(
                    schema.clone(),
                    out,
                    &RecordBatchOptions::new().with_row_count(Some(rows)),
                )?)
            })
            .boxed())
    }

    /// `filter` (over the table's columns) as a Parquet row filter reading only the columns
    /// it uses; `None` when it uses none the run stores.
    fn filter_predicate(
        &self,
        filter: Arc<dyn PhysicalExpr>,
    ) -> Option<
        ArrowPredicateFn<
            impl FnMut(RecordBatch) -> Result<BooleanArray, datafusion::arrow::error::ArrowError>
                + Send
                + 'static,
        >,
    > {
        use datafusion::arrow::error::ArrowError;
        let reader = &self.reader;
        // Every column nullable: those the filter does not use are NULL here.
        let table_schema = Arc::new(Schema::new(
            reader
                .codec
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let used: Vec<usize> = {
            let mut used: Vec<usize> = datafusion::physical_expr::utils::collect_columns(&filter)
                .iter()
                .map(|c| c.index())
                .collect();
            used.sort_unstable();
            used
        };
        let mut roots: Vec<usize> = used
            .iter()
            .filter_map(|&c| reader.columns.get(c).copied().flatten())
            .collect();
        roots.sort_unstable();
        roots.dedup();
        if roots.is_empty() {
            return None;
        }
        let positions: Vec<Option<usize>> = (0..table_schema.fields().len())
            .map(|c| {
                if !used.contains(&c) {
                    return None;
                }
                let root = reader.columns.get(c).copied().flatten()?;
                roots.iter().position(|r| *r == root)
            })
            .collect();
        let descriptor = reader.parquet.metadata().file_metadata().schema_descr_ptr();
        let mask = ProjectionMask::roots(&descriptor, roots.iter().copied());
        Some(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let rows = batch.num_rows();
            let mut columns = Vec::with_capacity(positions.len());
            for (field, position) in table_schema.fields().iter().zip(&positions) {
                columns.push(match position {
                    Some(p) => from_file(batch.column(*p), field.data_type())
                        .map_err(|e| ArrowError::ExternalError(Box::new(e)))?,
                    None => new_null_array(field.data_type(), rows),
                });
            }
            let table_batch = RecordBatch::try_new_with_options(
                table_schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(rows)),
            )?;
            let kept = filter
                .evaluate(&table_batch)
                .and_then(|value| value.into_array(rows))
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
            let kept = kept
                .as_boolean_opt()
                .ok_or_else(|| ArrowError::ComputeError("a filter is not boolean".into()))?;
            // NULL is not true: the row is dropped.
            Ok(match kept.nulls() {
                Some(_) => datafusion::arrow::compute::prep_null_mask_filter(kept),
                None => kept.clone(),
            })
        }))
    }

    /// The newest version of `key` at `snapshot_ts` in this run.
    pub async fn lookup_at(&self, key: &[u8], snapshot_ts: u64) -> ColdResult<Lookup> {
        if !self.reader.may_hold(key, snapshot_ts) {
            return Ok(Lookup::Absent);
        }
        let reader = self.reader.clone();
        let key = Key::from(key);
        let io = reader.store.clone();
        io.io()
            .run(async move { reader.lookup(&key, snapshot_ts).await })
            .await?
    }

    /// Up to `max` keys of `range` with their newest version at `snapshot_ts`, and the key
    /// to continue after when the chunk is full (see [`Source::scan_versions`]).
    pub async fn scan_at(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
    ) -> ColdResult<(Vec<Versioned>, Option<Key>)> {
        if !self.reader.may_overlap(range, snapshot_ts) || max == 0 {
            return Ok((Vec::new(), None));
        }
        let reader = self.reader.clone();
        let range = range.clone();
        let io = reader.store.clone();
        io.io()
            .run(async move { reader.scan(&range, snapshot_ts, max).await })
            .await?
    }
}

/// What a batch scan of a run keeps of its rows (see `cold_scan` for when a scan
/// filtered row by row like this is exact).
#[derive(Debug, Default)]
pub struct Visibility {
    /// Keep only rows with `commit_ts <= snapshot_ts` (`None`: every row is old enough).
    pub snapshot_ts: Option<u64>,
    /// Drop rows with `commit_ts < truncated_at` (`None`: no truncation marker hides rows).
    pub truncated_at: Option<u64>,
    /// Drop tombstones.
    pub tombstones: bool,
    /// Keep only the first row per key that `snapshot_ts` keeps (before the other tests): the
    /// run may hold several versions of a key.
    pub first_per_key: bool,
    /// Drop rows of these keys (a newer source holds a version of them at the snapshot).
    pub hidden: std::collections::HashSet<Key, ahash::RandomState>,
    /// The scan's filters over the table's columns, tested on the rows the tests above keep
    /// (after them: an invisible row must not make a filter fail). Not part of
    /// [`Visibility::keeps_all`].
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

impl Visibility {
    /// Whether every row is visible.
    pub fn keeps_all(&self) -> bool {
        self.snapshot_ts.is_none()
            && self.truncated_at.is_none()
            && !self.tombstones
            && !self.first_per_key
            && self.hidden.is_empty()
    }

    /// The system columns (leaves 0..3: key, ts, deleted) the test reads.
    fn leaves(&self) -> Vec<usize> {
        let mut leaves = Vec::with_capacity(SYSTEM_COLUMNS);
        if self.first_per_key || !self.hidden.is_empty() {
            leaves.push(0);
        }
        if self.snapshot_ts.is_some() || self.truncated_at.is_some() {
            leaves.push(1);
        }
        if self.tombstones {
            leaves.push(2);
        }
        leaves
    }
}

/// The row filter applying `visibility` to batches of the system columns `leaves` (in order).
/// Called on a row group's rows in order, so "first per key" carries the last key across
/// batches (a key's versions never straddle row groups).
fn visibility_filter(
    visibility: Arc<Visibility>,
    leaves: &[usize],
) -> impl FnMut(RecordBatch) -> Result<BooleanArray, datafusion::arrow::error::ArrowError> + Send + 'static
{
    use datafusion::arrow::error::ArrowError;
    let position = |leaf: usize| leaves.iter().position(|l| *l == leaf);
    let (key_at, ts_at, deleted_at) = (position(0), position(1), position(2));
    let mut last_key: Option<Vec<u8>> = None;
    move |batch: RecordBatch| {
        let bad = |what: &str| ArrowError::SchemaError(format!("cold run: {what}"));
        let keys = match key_at {
            Some(i) => Some(
                batch
                    .column(i)
                    .as_binary_opt::<i32>()
                    .ok_or_else(|| bad("key column is not binary"))?,
            ),
            None => None,
        };
        let ts = match ts_at {
            Some(i) => Some(
                batch
                    .column(i)
                    .as_primitive_opt::<UInt64Type>()
                    .ok_or_else(|| bad("ts column is not uint64"))?,
            ),
            None => None,
        };
        let deleted = match deleted_at {
            Some(i) => Some(
                batch
                    .column(i)
                    .as_boolean_opt()
                    .ok_or_else(|| bad("deleted column is not boolean"))?,
            ),
            None => None,
        };
        let mut keep = datafusion::arrow::array::BooleanBufferBuilder::new(batch.num_rows());
        for row in 0..batch.num_rows() {
            let commit_ts = ts.map_or(0, |ts| ts.value(row));
            let mut kept = visibility.snapshot_ts.is_none_or(|s| commit_ts <= s);
            if kept && visibility.first_per_key {
                if let Some(keys) = keys {
                    let key = keys.value(row);
                    match &mut last_key {
                        Some(last) if last.as_slice() == key => kept = false,
                        Some(last) => {
                            last.clear();
                            last.extend_from_slice(key);
                        }
                        None => last_key = Some(key.to_vec()),
                    }
                }
            }
            kept = kept
                && visibility.truncated_at.is_none_or(|t| commit_ts >= t)
                && !deleted.is_some_and(|d| d.value(row))
                && (visibility.hidden.is_empty()
                    || !keys.is_some_and(|keys| visibility.hidden.contains(keys.value(row))));
            keep.append(kept);
        }
        Ok(BooleanArray::new(keep.finish(), None))
    }
}

fn object_reader(store: &Arc<ColdStore>, meta: &RunMeta, bytes_read: &Arc<AtomicU64>) -> RunFile {
    RunFile {
        store: store.clone(),
        name: meta.path.clone(),
        size: meta.bytes,
        bytes_read: bytes_read.clone(),
        on_cold_runtime: false,
    }
}

/// A run's bytes for Parquet's async reader: ranged reads through the store, retried there.
#[derive(Debug, Clone)]
struct RunFile {
    store: Arc<ColdStore>,
    name: String,
    size: u64,
    /// Bytes fetched, for the run's counter.
    bytes_read: Arc<AtomicU64>,
    /// Send each fetch to the cold runtime (a batch scan decodes on DataFusion's threads,
    /// but its object-store connections stay on the cold tier's runtime).
    on_cold_runtime: bool,
}

fn external(error: ColdError) -> ParquetError {
    ParquetError::External(Box::new(error))
}

/// A Parquet read's error: the object-store error it carries, if it carries one (so callers
/// see `ColdError::ObjectStore`, not a Parquet error around it).
fn read_error(path: String, source: ParquetError) -> ColdError {
    match source {
        ParquetError::External(inner) => match inner.downcast::<ColdError>() {
            Ok(cold) => *cold,
            Err(inner) => ColdError::Parquet {
                path,
                source: ParquetError::External(inner),
            },
        },
        source => ColdError::Parquet { path, source },
    }
}

impl AsyncFileReader for RunFile {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        if self.on_cold_runtime {
            let (store, name) = (self.store.clone(), self.name.clone());
            return async move {
                let io = store.clone();
                io.io()
                    .run(async move { store.get_range(&name, range).await })
                    .await
                    .map_err(external)?
                    .map_err(external)
            }
            .boxed();
        }
        async move {
            self.store
                .get_range(&self.name, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        self.bytes_read.fetch_add(total, Ordering::Relaxed);
        if self.on_cold_runtime {
            let (store, name) = (self.store.clone(), self.name.clone());
            return async move {
                let io = store.clone();
                io.io()
                    .run(async move { store.get_ranges(&name, &ranges).await })
                    .await
                    .map_err(external)?
                    .map_err(external)
            }
            .boxed();
        }
        async move {
            self.store
                .get_ranges(&self.name, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

impl RunReader {
    fn new(
        store: Arc<ColdStore>,
        meta: RunMeta,
        codec: Arc<TableCodec>,
        parquet: ArrowReaderMetadata,
    ) -> ColdResult<RunReader> {
        let schema = parquet.schema().clone();
        let system = [
            (KEY_COLUMN, DataType::Binary),
            (TS_COLUMN, DataType::UInt64),
            (DELETED_COLUMN, DataType::Boolean),
        ];
        for (i, (name, data_type)) in system.iter().enumerate() {
            let ok = schema
                .fields()
                .get(i)
                .is_some_and(|f| f.name() == name && f.data_type() == data_type);
            if !ok {
                return Err(ColdError::corrupt(
                    format!("cold run {}", meta.path),
                    format!("column {i} is not {name} {data_type}"),
                ));
            }
        }
        let ids: Vec<Option<u32>> = schema
            .fields()
            .iter()
            .map(|f| f.metadata().get(COLUMN_ID_METADATA)?.parse().ok())
            .collect();
        let columns = codec
            .column_ids()
            .iter()
            .map(|id| {
                ids.iter()
                    .enumerate()
                    .skip(SYSTEM_COLUMNS)
                    .find(|(_, found)| **found == Some(*id))
                    .map(|(i, _)| i)
            })
            .collect();
        let metadata = parquet.metadata();
        let row_group_keys = metadata
            .row_groups()
            .iter()
            .map(|group| {
                let stats = group.column(0).statistics()?;
                Some((
                    stats.min_bytes_opt()?.to_vec(),
                    stats.max_bytes_opt()?.to_vec(),
                ))
            })
            .collect();
        let blooms = (0..metadata.num_row_groups())
            .map(|_| OnceLock::new())
            .collect();
        let may_hold_tombstones = metadata.row_groups().iter().any(|group| {
            !matches!(
                group.column(2).statistics(),
                Some(parquet::file::statistics::Statistics::Boolean(stats))
                    if stats.max_opt() == Some(&false)
            )
        });
        Ok(RunReader {
            meta,
            store,
            codec,
            parquet,
            columns,
            row_group_keys,
            blooms,
            may_hold_tombstones,
            row_groups_read: AtomicU64::new(0),
            row_groups_scanned: AtomicU64::new(0),
            bytes_read: Arc::default(),
            pin: OnceLock::new(),
        })
    }

    /// Whether the run may hold a version of `key` visible at `snapshot_ts`, from what is in
    /// memory (key range, ts range, bloom filters already read).
    fn may_hold(&self, key: &[u8], snapshot_ts: u64) -> bool {
        if snapshot_ts < self.meta.min_ts
            || key < self.meta.min_key.as_slice()
            || key > self.meta.max_key.as_slice()
        {
            return false;
        }
        // No allocation: this runs for every lookup that reaches the run.
        self.row_group_keys
            .iter()
            .enumerate()
            .filter(|(_, keys)| {
                keys.as_ref()
                    .is_none_or(|(min, max)| min.as_slice() <= key && key <= max.as_slice())
            })
            .any(|(group, _)| match self.blooms[group].get() {
                Some(Some(bloom)) => bloom.check(key),
                _ => true,
            })
    }

    fn may_overlap(&self, range: &KeyRange, snapshot_ts: u64) -> bool {
        snapshot_ts >= self.meta.min_ts && self.meta.overlaps(range)
    }

    /// The row groups whose key statistics overlap `range`, in order.
    fn row_groups_in(&self, range: &KeyRange) -> Vec<usize> {
        self.row_group_keys
            .iter()
            .enumerate()
            .filter(|(_, keys)| match keys {
                Some((min, max)) => overlaps(min, max, range),
                None => true,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The key bloom filter of `group` (read once).
    async fn bloom(&self, group: usize) -> ColdResult<Option<Arc<Sbbf>>> {
        if let Some(bloom) = self.blooms[group].get() {
            return Ok(bloom.clone());
        }
        let reader = object_reader(&self.store, &self.meta, &self.bytes_read);
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.parquet.clone());
        let bloom = builder
            .get_row_group_column_bloom_filter(group, 0)
            .await
            .map_err(|source| read_error(self.meta.path.clone(), source))?
            .map(Arc::new);
        Ok(self.blooms[group].get_or_init(|| bloom).clone())
    }

    async fn lookup(&self, key: &Key, snapshot_ts: u64) -> ColdResult<Lookup> {
        let point: KeyRange = (Bound::Included(key.clone()), Bound::Included(key.clone()));
        for group in self.row_groups_in(&point) {
            if let Some(bloom) = self.bloom(group).await? {
                if !bloom.check(key.as_ref()) {
                    continue;
                }
            }
            let mut found = Vec::with_capacity(1);
            self.read_group(group, &point, snapshot_ts, 1, &mut found)
                .await?;
            if let Some(version) = found.pop() {
                return Ok(match version.row {
                    Some(row) => Lookup::Live {
                        commit_ts: version.commit_ts,
                        row,
                    },
                    None => Lookup::Deleted {
                        commit_ts: version.commit_ts,
                    },
                });
            }
        }
        Ok(Lookup::Absent)
    }

    async fn scan(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
    ) -> ColdResult<(Vec<Versioned>, Option<Key>)> {
        let mut out = Vec::new();
        for group in self.row_groups_in(range) {
            let room = max - out.len();
            if self
                .read_group(group, range, snapshot_ts, room, &mut out)
                .await?
            {
                let last = out.last().map(|v| v.key.clone());
                return Ok((out, last));
            }
        }
        Ok((out, None))
    }

    /// The rows of `group`'s pages whose key range overlaps `range` (`None`: no page does).
    fn page_selection(&self, group: usize, range: &KeyRange) -> Option<RowSelection> {
        let metadata = self.parquet.metadata();
        let rows = usize::try_from(metadata.row_group(group).num_rows()).unwrap_or(0);
        let whole = Some(RowSelection::from_consecutive_ranges(
            std::iter::once(0..rows),
            rows,
        ));
        let index = metadata
            .column_index()
            .and_then(|groups| groups.get(group))
            .and_then(|columns| columns.first());
        let offsets = metadata
            .offset_index()
            .and_then(|groups| groups.get(group))
            .and_then(|columns| columns.first());
        let (Some(ColumnIndexMetaData::BYTE_ARRAY(index)), Some(offsets)) = (index, offsets) else {
            return whole;
        };
        let pages = offsets.page_locations();
        let mut ranges: Vec<std::ops::Range<usize>> = Vec::new();
        for (page, location) in pages.iter().enumerate() {
            let start = usize::try_from(location.first_row_index).unwrap_or(0);
            let end = pages.get(page + 1).map_or(rows, |next| {
                usize::try_from(next.first_row_index).unwrap_or(rows)
            });
            let wanted = match (index.min_value(page), index.max_value(page)) {
                (Some(min), Some(max)) => overlaps(min, max, range),
                _ => true,
            };
            if !wanted {
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => ranges.push(start..end),
            }
        }
        if ranges.is_empty() {
            return None;
        }
        Some(RowSelection::from_consecutive_ranges(
            ranges.into_iter(),
            rows,
        ))
    }

    /// Reads `group`'s versions in `range` at `snapshot_ts` into `out`: each key's newest
    /// version, until `max` keys are taken. Returns whether `max` was reached.
    async fn read_group(
        &self,
        group: usize,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
        out: &mut Vec<Versioned>,
    ) -> ColdResult<bool> {
        let Some(selection) = self.page_selection(group, range) else {
            return Ok(false);
        };
        self.row_groups_read.fetch_add(1, Ordering::Relaxed);
        let (versions, full) = self
            .read_selection(group, selection, range, snapshot_ts, max)
            .await?;
        out.extend(versions);
        Ok(full)
    }

    async fn read_selection(
        &self,
        group: usize,
        selection: RowSelection,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
    ) -> ColdResult<(Vec<Versioned>, bool)> {
        let parquet_err = |source| read_error(self.meta.path.clone(), source);
        let descriptor = self.parquet.metadata().file_metadata().schema_descr_ptr();
        let lower = range.0.clone();
        let upper = range.1.clone();
        let predicate = ArrowPredicateFn::new(
            ProjectionMask::leaves(&descriptor, [0, 1]),
            move |batch: RecordBatch| {
                let keys = batch.column(0);
                let visible = lt_eq(batch.column(1), &UInt64Array::new_scalar(snapshot_ts))?;
                let visible = match &lower {
                    Bound::Included(k) => {
                        and(&visible, &gt_eq(keys, &BinaryArray::new_scalar(k))?)?
                    }
                    Bound::Excluded(k) => and(&visible, &gt(keys, &BinaryArray::new_scalar(k))?)?,
                    Bound::Unbounded => visible,
                };
                match &upper {
                    Bound::Included(k) => and(&visible, &lt_eq(keys, &BinaryArray::new_scalar(k))?),
                    Bound::Excluded(k) => and(&visible, &lt(keys, &BinaryArray::new_scalar(k))?),
                    Bound::Unbounded => Ok(visible),
                }
            },
        );
        let roots: Vec<usize> = (0..SYSTEM_COLUMNS)
            .chain(self.columns.iter().flatten().copied())
            .collect();
        let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
            object_reader(&self.store, &self.meta, &self.bytes_read),
            self.parquet.clone(),
        )
        .with_row_groups(vec![group])
        .with_row_selection(selection)
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
        .with_projection(ProjectionMask::roots(&descriptor, roots.iter().copied()))
        .with_batch_size(max.clamp(16, 1024))
        .build()
        .map_err(parquet_err)?;
        let mut out = Vec::new();
        while let Some(batch) = stream.try_next().await.map_err(parquet_err)? {
            if self.take_versions(&batch, &roots, max, &mut out)? {
                return Ok((out, true));
            }
        }
        Ok((out, false))
    }

    /// Appends the first (newest) row of each new key in `batch` to `out`, until `out` holds
    /// `max` keys. `roots` are the file columns the batch holds, in order. Returns whether
    /// `max` keys were taken.
    fn take_versions(
        &self,
        batch: &RecordBatch,
        roots: &[usize],
        max: usize,
        out: &mut Vec<Versioned>,
    ) -> ColdResult<bool> {
        let bad = |what: &str| ColdError::corrupt(format!("cold run {}", self.meta.path), what);
        let keys = batch
            .column(0)
            .as_binary_opt::<i32>()
            .ok_or_else(|| bad("key column is not binary"))?;
        let ts = batch
            .column(1)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| bad("ts column is not uint64"))?;
        let deleted = batch
            .column(2)
            .as_boolean_opt()
            .ok_or_else(|| bad("deleted column is not boolean"))?;
        // (position in out, row in batch) of live versions to decode.
        let mut live: Vec<(usize, u32)> = Vec::new();
        let mut full = false;
        for row in 0..batch.num_rows() {
            let key = keys.value(row);
            if out.last().is_some_and(|v| v.key.as_ref() == key) {
                continue; // an older version of a key already taken
            }
            if !deleted.value(row) {
                live.push((out.len(), row as u32));
            }
            out.push(Versioned {
                key: Key::from(key),
                commit_ts: ts.value(row),
                row: None,
            });
            if out.len() >= max {
                full = true;
                break;
            }
        }
        if !live.is_empty() {
            let indices = UInt32Array::from_iter_values(live.iter().map(|(_, row)| *row));
            let schema = self.codec.schema();
            let mut columns = Vec::with_capacity(self.columns.len());
            for (i, file_column) in self.columns.iter().enumerate() {
                let target = schema.field(i).data_type();
                let column = match file_column {
                    Some(root) => {
                        let position = roots
                            .iter()
                            .position(|r| r == root)
                            .ok_or_else(|| bad("a projected column is missing"))?;
                        let taken = take(batch.column(position).as_ref(), &indices, None)?;
                        from_file(&taken, target)?
                    }
                    None => new_null_array(target, live.len()),
                };
                columns.push(column);
            }
            let rows = self.codec.encode_rows(&columns)?;
            for (n, (position, _)) in live.iter().enumerate() {
                out[*position].row = Some(Arc::from(rows.row(n).data()));
            }
        }
        Ok(full)
    }
}

/// Some row groups' statistics, by table column, for DataFusion's pruning.
struct GroupStatistics<'a> {
    reader: &'a RunReader,
    groups: &'a [usize],
}

impl GroupStatistics<'_> {
    /// The statistics of the table column `column`, when the run stores it as its own type.
    fn converter(
        &self,
        column: &datafusion::common::Column,
    ) -> Option<parquet::arrow::arrow_reader::statistics::StatisticsConverter<'_>> {
        let schema = self.reader.codec.schema();
        let index = schema.index_of(column.name()).ok()?;
        let root = self.reader.columns.get(index).copied().flatten()?;
        let file_schema = self.reader.parquet.schema();
        let field = file_schema.fields().get(root)?;
        if field.data_type() != schema.field(index).data_type() {
            return None;
        }
        parquet::arrow::arrow_reader::statistics::StatisticsConverter::try_new(
            field.name(),
            file_schema,
            self.reader
                .parquet
                .metadata()
                .file_metadata()
                .schema_descr(),
        )
        .ok()
    }

    fn metadatas(&self) -> impl Iterator<Item = &parquet::file::metadata::RowGroupMetaData> {
        let metadata = self.reader.parquet.metadata();
        self.groups.iter().map(move |g| metadata.row_group(*g))
    }
}

impl PruningStatistics for GroupStatistics<'_> {
    fn min_values(&self, column: &datafusion::common::Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_mins(self.metadatas())
            .ok()
    }

    fn max_values(&self, column: &datafusion::common::Column) -> Option<ArrayRef> {
        self.converter(column)?
            .row_group_maxes(self.metadatas())
            .ok()
    }

    fn num_containers(&self) -> usize {
        self.groups.len()
    }

    fn null_counts(&self, column: &datafusion::common::Column) -> Option<ArrayRef> {
        let counts = self
            .converter(column)?
            .row_group_null_counts(self.metadatas())
            .ok()?;
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(
            self.metadatas().map(|m| m.num_rows().max(0) as u64),
        )))
    }

    fn contained(
        &self,
        _column: &datafusion::common::Column,
        _values: &std::collections::HashSet<datafusion::common::ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}

impl Source for ColdRun {
    fn lookup(&self, key: &[u8], snapshot_ts: u64) -> StorageResult<Lookup> {
        // Answered from memory when the key range, ts range or a bloom filter rules it out.
        if !self.reader.may_hold(key, snapshot_ts) {
            return Ok(Lookup::Absent);
        }
        let reader = self.reader.clone();
        let key = Key::from(key);
        let io = reader.store.clone();
        Ok(io
            .io()
            .block_on(async move { reader.lookup(&key, snapshot_ts).await })??)
    }

    fn scan_versions(
        &self,
        range: &KeyRange,
        snapshot_ts: u64,
        max: usize,
        out: &mut Vec<Versioned>,
    ) -> StorageResult<Option<Key>> {
        if !self.reader.may_overlap(range, snapshot_ts) || max == 0 {
            return Ok(None);
        }
        let reader = self.reader.clone();
        let range = range.clone();
        let io = reader.store.clone();
        let (versions, last) = io
            .io()
            .block_on(async move { reader.scan(&range, snapshot_ts, max).await })??;
        out.extend(versions);
        Ok(last)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, PrimaryKey, RelationKind, TableDef};
    use crate::hot::HotTable;
    use crate::source::{Sources, LATEST};
    use datafusion::arrow::array::{
        BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int16Array,
        IntervalMonthDayNanoBuilder, LargeBinaryArray, ListBuilder, StringArray, StringBuilder,
        Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::TimeUnit;

    pub(crate) const TABLE: u32 = 16384;

    /// A deterministic xorshift generator: failures replay from the printed seed.
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn column(id: u32, name: &str, data_type: DataType, nullable: bool) -> ColumnDef {
        ColumnDef {
            id,
            name: name.into(),
            field: Field::new(name, data_type, nullable),
            default: None,
            identity: None,
        }
    }

    fn list_of(item: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", item, true)))
    }

    /// A table with a column of every type the codec holds for SQL types, keyed by `id`.
    pub(crate) fn all_types() -> TableDef {
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        let columns = vec![
            column(1, "id", DataType::Int64, false),
            column(2, "flag", DataType::Boolean, true),
            column(3, "small", DataType::Int16, true),
            column(4, "int", DataType::Int32, true),
            column(5, "real", DataType::Float32, true),
            column(6, "double", DataType::Float64, true),
            column(7, "numeric", DataType::LargeBinary, true),
            column(8, "money", DataType::Decimal128(12, 2), true),
            column(9, "text", DataType::Utf8, true),
            column(10, "bytes", DataType::Binary, true),
            column(11, "day", DataType::Date32, true),
            column(12, "time", DataType::Time64(TimeUnit::Microsecond), true),
            column(
                13,
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            column(
                14,
                "tstz",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            column(15, "span", interval.clone(), true),
            column(16, "ints", list_of(DataType::Int32), true),
            column(17, "texts", list_of(DataType::Utf8), true),
            column(18, "spans", list_of(interval), true),
        ];
        TableDef {
            id: TABLE,
            database: "postgres".into(),
            schema: "public".into(),
            name: "cold".into(),
            kind: RelationKind::Table,
            next_column_id: columns.len() as u32 + 1,
            columns,
            primary_key: Some(PrimaryKey {
                name: "cold_pkey".into(),
                columns: vec![0],
            }),
            constraints: vec![],
            indexes: vec![],
            persistence: Default::default(),
        }
    }

    /// Rows of [`all_types`] for `ids`, their values a function of `(id, variant)`, with NULLs
    /// in every nullable column now and then and multi-byte text.
    pub(crate) fn sample_columns(ids: &[i64], variant: u64) -> Vec<ArrayRef> {
        let n = |i: usize| (ids[i] as u64).wrapping_mul(31).wrapping_add(variant * 7);
        let some = |i: usize| n(i) % 5 != 0;
        let len = ids.len();
        let mut texts = ListBuilder::new(StringBuilder::new());
        let mut spans = ListBuilder::new(IntervalMonthDayNanoBuilder::new());
        for i in 0..len {
            if some(i) {
                texts.values().append_value(format!("ünï {}", n(i)));
                texts.values().append_null();
                texts.values().append_value("日本語 ✓");
                texts.append(true);
                spans
                    .values()
                    .append_value(IntervalMonthDayNano::new(n(i) as i32 % 12, -3, 1_000));
                spans.append(true);
            } else {
                texts.append(false);
                spans.append(n(i) % 2 == 0);
            }
        }
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(BooleanArray::from(
                (0..len)
                    .map(|i| some(i).then_some(n(i) % 2 == 0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int16Array::from(
                (0..len)
                    .map(|i| some(i).then_some((n(i) % 60_000) as i16))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Int32Array::from(
                (0..len)
                    .map(|i| some(i).then_some(n(i) as i32 - 1_000_000))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float32Array::from(
                (0..len)
                    .map(|i| some(i).then_some(n(i) as f32 / 3.0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                (0..len)
                    .map(|i| some(i).then_some(-(n(i) as f64) / 7.0))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(LargeBinaryArray::from(
                (0..len)
                    .map(|i| some(i).then(|| vec![4u8, (n(i) % 256) as u8, 0, 0, 2]))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|v| v.as_deref())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                Decimal128Array::from(
                    (0..len)
                        .map(|i| some(i).then_some(n(i) as i128 * 100 - 12_345))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(12, 2)
                .expect("decimal type"),
            ),
            Arc::new(StringArray::from(
                (0..len)
                    .map(|i| some(i).then(|| format!("héllo wörld {} 🎉 Ωμέγα", n(i))))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(BinaryArray::from(
                (0..len)
                    .map(|i| some(i).then(|| vec![0u8, 255, (n(i) % 256) as u8]))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|v| v.as_deref())
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Date32Array::from(
                (0..len)
                    .map(|i| some(i).then_some(n(i) as i32 % 40_000))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(Time64MicrosecondArray::from(
                (0..len)
                    .map(|i| some(i).then_some((n(i) % 86_400) as i64 * 1_000_000))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMicrosecondArray::from(
                (0..len)
                    .map(|i| some(i).then_some(n(i) as i64 * 1_000_003))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..len)
                        .map(|i| some(i).then_some(-(n(i) as i64) * 999))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("+00:00"),
            ),
            Arc::new(IntervalMonthDayNanoArray::from(
                (0..len)
                    .map(|i| some(i).then_some(IntervalMonthDayNano::new(1, n(i) as i32 % 31, -7)))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..len)
                    .map(|i| some(i).then(|| vec![Some(n(i) as i32), None, Some(-1)]))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(texts.finish()),
            Arc::new(spans.finish()),
        ]
    }

    /// The key and row of [`all_types`]'s row `id` in `variant`.
    pub(crate) fn sample_row(codec: &TableCodec, id: i64, variant: u64) -> (Key, RowBytes) {
        let columns = sample_columns(&[id], variant);
        let keys = codec.encode_keys(&columns).unwrap().unwrap();
        let rows = codec.encode_rows(&columns).unwrap();
        (Arc::from(keys.row(0).data()), Arc::from(rows.row(0).data()))
    }

    pub(crate) fn codec() -> Arc<TableCodec> {
        Arc::new(TableCodec::new(&all_types()).unwrap())
    }

    use crate::codec::RowBytes;

    /// Small row groups and pages, so tests cross their boundaries.
    pub(crate) fn small_options() -> RunOptions {
        RunOptions {
            batch_rows: 16,
            row_group_rows: 64,
            page_rows: 8,
            page_bytes: 4096,
            target_run_bytes: usize::MAX,
            bloom_fpp: 0.01,
        }
    }

    /// A random history over keys `0..keys`: every version, oldest first per key.
    pub(crate) fn random_history(
        rng: &mut Rng,
        codec: &TableCodec,
        keys: u64,
        commits: u64,
    ) -> Vec<Vec<Versioned>> {
        let mut history: Vec<Vec<Versioned>> = vec![Vec::new(); keys as usize];
        for ts in 1..=commits {
            for _ in 0..1 + rng.below(4) {
                let id = rng.below(keys);
                let versions = &mut history[id as usize];
                if versions.last().is_some_and(|v| v.commit_ts == ts) {
                    continue;
                }
                let (key, row) = sample_row(codec, id as i64 * 3, ts);
                versions.push(Versioned {
                    key,
                    commit_ts: ts,
                    row: (rng.below(4) != 0).then_some(row),
                });
            }
        }
        // Key order is the encoded keys' order (ids are increasing, so it is id order).
        history
    }

    /// The versions in run order: key ascending, newest first.
    pub(crate) fn run_order<'a>(
        versions: impl IntoIterator<Item = &'a Versioned>,
    ) -> Vec<Versioned> {
        let mut out: Vec<Versioned> = versions.into_iter().cloned().collect();
        out.sort_by(|a, b| {
            a.key
                .as_ref()
                .cmp(b.key.as_ref())
                .then(b.commit_ts.cmp(&a.commit_ts))
        });
        out
    }

    pub(crate) fn write_run(
        store: &Arc<ColdStore>,
        codec: &Arc<TableCodec>,
        namer: &Arc<RunNamer>,
        pins: &Arc<RunPins>,
        options: RunOptions,
        versions: Vec<Versioned>,
    ) -> ColdResult<WrittenRuns> {
        RunWriter::new(
            store.clone(),
            codec.clone(),
            TABLE,
            0,
            namer.clone(),
            pins,
            options,
        )?
        .write_all(versions)
    }

    fn stores() -> Vec<(Arc<ColdStore>, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/cold", dir.path().display());
        vec![
            (Arc::new(ColdStore::in_memory().unwrap()), None),
            (
                Arc::new(ColdStore::open(Some(&url), dir.path()).unwrap()),
                Some(dir),
            ),
        ]
    }

    fn all(range: &KeyRange, run: &ColdRun, snapshot: u64, max: usize) -> Vec<Versioned> {
        let mut out = Vec::new();
        let mut range = range.clone();
        while let Some(last) = run.scan_versions(&range, snapshot, max, &mut out).unwrap() {
            range.0 = Bound::Excluded(last);
        }
        out
    }

    const EVERYTHING: KeyRange = (Bound::Unbounded, Bound::Unbounded);

    /// Every column type the codec holds goes through a run and back byte for byte, with
    /// NULLs, multi-byte text, nested lists and intervals, on a local and an in-memory store.
    #[test]
    fn runs_round_trip_every_column_type() {
        let codec = codec();
        for (store, _dir) in stores() {
            let pins = RunPins::new();
            let namer = Arc::new(RunNamer::new(7));
            let rows: Vec<Versioned> = (0..300)
                .map(|id| {
                    let (key, row) = sample_row(&codec, id, 1);
                    Versioned {
                        key,
                        commit_ts: 5,
                        row: Some(row),
                    }
                })
                .collect();
            let written =
                write_run(&store, &codec, &namer, &pins, small_options(), rows.clone()).unwrap();
            assert_eq!(written.runs.len(), 1);
            let meta = written.runs[0].clone();
            assert!(
                meta.path.starts_with("runs/16384/00000000000000000007-"),
                "{meta:?}"
            );
            assert_eq!(run_epoch(&meta.path), Some(7));
            assert_eq!((meta.rows, meta.min_ts, meta.max_ts), (300, 5, 5));
            assert_eq!(meta.min_key, rows[0].key.to_vec());
            assert_eq!(meta.max_key, rows[299].key.to_vec());
            assert!(pins.is_pinned(&meta.path));
            drop(written);
            assert!(!pins.is_pinned(&meta.path));
            let run = ColdRun::open_blocking(store.clone(), meta, codec.clone()).unwrap();
            assert_eq!(all(&EVERYTHING, &run, LATEST, 1000), rows);
            assert_eq!(all(&EVERYTHING, &run, LATEST, 7), rows);
            assert!(all(&EVERYTHING, &run, 4, 1000).is_empty());
            // Decoded, the rows are the columns they were made from.
            let batch = codec
                .decode_rows(rows.iter().map(|v| v.row.as_deref().unwrap()))
                .unwrap();
            let ids: Vec<i64> = (0..300).collect();
            assert_eq!(batch.columns(), sample_columns(&ids, 1).as_slice());
        }
    }

    /// Point lookups answer what the hot tier answers for the same history (live, deleted,
    /// absent, a version older than the snapshot) and read at most one row group; keys the
    /// run does not hold mostly read none (key range, bloom filter).
    #[test]
    fn point_lookups_match_the_hot_tier_and_read_one_row_group() {
        let codec = codec();
        for (store, _dir) in stores() {
            let mut rng = Rng::new(3);
            let history = random_history(&mut rng, &codec, 120, 150);
            let hot = HotTable::keeping_tombstones();
            let mut by_ts: Vec<&Versioned> = history.iter().flatten().collect();
            by_ts.sort_by_key(|v| v.commit_ts);
            for v in by_ts {
                hot.apply(&v.key, v.row.clone(), v.commit_ts, 0);
            }
            let versions = run_order(history.iter().flatten());
            let written = write_run(
                &store,
                &codec,
                &Arc::new(RunNamer::new(1)),
                &RunPins::new(),
                small_options(),
                versions.clone(),
            )
            .unwrap();
            let run = ColdRun::open_blocking(store.clone(), written.runs[0].clone(), codec.clone())
                .unwrap();
            assert!(run.reader.parquet.metadata().num_row_groups() > 3);
            let mut absent_reads = 0;
            let mut max_bytes = 0;
            for id in 0..125 {
                // Odd multiples of 3 plus one are never written: absent keys inside the range.
                for key_id in [id * 3, id * 3 + 1] {
                    let (key, _) = sample_row(&codec, key_id, 0);
                    for snapshot in [0, 1, 2, 10, 30, 75, 149, 150, 151, LATEST] {
                        let before = run.row_groups_read();
                        let bytes_before = run.bytes_read();
                        let got = Source::lookup(&run, &key, snapshot).unwrap();
                        let read = run.row_groups_read() - before;
                        max_bytes = max_bytes.max(run.bytes_read() - bytes_before);
                        assert!(
                            read <= 1,
                            "key {key_id} at {snapshot} read {read} row groups"
                        );
                        assert_eq!(
                            got,
                            hot.lookup(&key, snapshot),
                            "key {key_id} at {snapshot}"
                        );
                        if key_id % 3 == 1 {
                            absent_reads += read;
                        }
                    }
                }
            }
            println!(
                "absent-key row-group reads: {absent_reads}; most bytes per lookup: {max_bytes} of {}",
                run.meta().bytes
            );
            // A bloom filter at 1% lets few absent keys through to a row group read.
            assert!(
                absent_reads < 60,
                "absent keys read {absent_reads} row groups"
            );
            // The page index keeps a lookup to a few pages of one row group (and its bloom
            // filter on first use), far from the whole file.
            assert!(
                max_bytes * 4 < run.meta().bytes,
                "a lookup read {max_bytes} bytes"
            );
            // Every kind of answer occurred.
            let answers: Vec<Lookup> = (0..120)
                .map(|id| {
                    let (key, _) = sample_row(&codec, id * 3, 0);
                    Source::lookup(&run, &key, LATEST).unwrap()
                })
                .collect();
            assert!(answers.iter().any(|a| matches!(a, Lookup::Live { .. })));
            assert!(answers.iter().any(|a| matches!(a, Lookup::Deleted { .. })));
        }
    }

    /// Reads through a store that fails a share of its reads still answer right: the
    /// transient failures are retried (byte ranges by the store, whole reads around them); a
    /// store that keeps failing surfaces a typed error, never a wrong answer.
    #[test]
    fn reads_retry_transient_faults_and_surface_persistent_ones() {
        use crate::fault::{FaultyStore, Op};
        use crate::store::RetryPolicy;
        let codec = codec();
        let faulty = FaultyStore::new(Arc::new(object_store::memory::InMemory::new()), 9);
        let store = Arc::new(
            ColdStore::with_object_store(faulty.clone(), "")
                .unwrap()
                .with_retry(RetryPolicy {
                    attempts: 10,
                    first_backoff: std::time::Duration::from_millis(1),
                    max_backoff: std::time::Duration::from_millis(2),
                }),
        );
        let mut rng = Rng::new(21);
        let history = random_history(&mut rng, &codec, 60, 80);
        let written = write_run(
            &store,
            &codec,
            &Arc::new(RunNamer::new(1)),
            &RunPins::new(),
            small_options(),
            run_order(history.iter().flatten()),
        )
        .unwrap();
        let meta = written.runs[0].clone();
        faulty.fail(&[Op::Get], 300);
        let run = ColdRun::open_blocking(store.clone(), meta.clone(), codec.clone()).unwrap();
        for versions in &history {
            let (Some(newest), Some(key)) = (versions.last(), versions.first().map(|v| &v.key))
            else {
                continue;
            };
            let expect = match &newest.row {
                Some(row) => Lookup::Live {
                    commit_ts: newest.commit_ts,
                    row: row.clone(),
                },
                None => Lookup::Deleted {
                    commit_ts: newest.commit_ts,
                },
            };
            assert_eq!(Source::lookup(&run, key, LATEST).unwrap(), expect);
        }
        assert_eq!(
            all(&EVERYTHING, &run, LATEST, 7).len(),
            history.iter().filter(|v| !v.is_empty()).count()
        );
        assert!(faulty.injected() > 0);
        faulty.fail(&[Op::Get], 1000);
        let fresh = ColdRun::open_blocking(store, meta, codec).unwrap_err();
        assert!(
            matches!(fresh, ColdError::ObjectStore { op: "read", .. }),
            "{fresh}"
        );
    }

    /// Chunked range scans of versions match the hot tier's for bounded and unbounded ranges
    /// at several snapshots.
    #[test]
    fn range_scans_match_the_hot_tier() {
        let codec = codec();
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let mut rng = Rng::new(11);
        let history = random_history(&mut rng, &codec, 90, 40);
        let hot = HotTable::keeping_tombstones();
        let mut by_ts: Vec<&Versioned> = history.iter().flatten().collect();
        by_ts.sort_by_key(|v| v.commit_ts);
        for v in by_ts {
            hot.apply(&v.key, v.row.clone(), v.commit_ts, 0);
        }
        let written = write_run(
            &store,
            &codec,
            &Arc::new(RunNamer::new(1)),
            &RunPins::new(),
            small_options(),
            run_order(history.iter().flatten()),
        )
        .unwrap();
        let run = ColdRun::open_blocking(store, written.runs[0].clone(), codec.clone()).unwrap();
        let key = |id: i64| sample_row(&codec, id, 0).0;
        let ranges: Vec<KeyRange> = vec![
            EVERYTHING,
            (Bound::Included(key(30)), Bound::Excluded(key(150))),
            (Bound::Excluded(key(30)), Bound::Included(key(150))),
            (Bound::Unbounded, Bound::Included(key(3))),
            (Bound::Included(key(200)), Bound::Unbounded),
            (Bound::Included(key(1000)), Bound::Unbounded),
            (Bound::Included(key(31)), Bound::Included(key(32))),
        ];
        for range in &ranges {
            for snapshot in [0, 1, 15, 40, LATEST] {
                let mut expect = Vec::new();
                let mut r = range.clone();
                while let Some(last) = hot.scan_versions(&r, snapshot, 5, &mut expect) {
                    r.0 = Bound::Excluded(last);
                }
                for max in [1, 3, 64, 10_000] {
                    assert_eq!(
                        all(range, &run, snapshot, max),
                        expect,
                        "range {range:?} at {snapshot}, chunks of {max}"
                    );
                }
            }
        }
    }

    /// A run whose table later gained and lost columns reads by column id: the dropped column
    /// is ignored, the added one is NULL.
    #[test]
    fn runs_read_by_column_id_after_alter_table() {
        let def = all_types();
        let codec = Arc::new(TableCodec::new(&def).unwrap());
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let (key, row) = sample_row(&codec, 42, 3);
        let written = write_run(
            &store,
            &codec,
            &Arc::new(RunNamer::new(1)),
            &RunPins::new(),
            RunOptions::default(),
            vec![Versioned {
                key: key.clone(),
                commit_ts: 9,
                row: Some(row.clone()),
            }],
        )
        .unwrap();
        let mut altered = def.clone();
        altered.columns.remove(8); // text
        altered
            .columns
            .push(column(19, "added", DataType::Int32, true));
        let new_codec = Arc::new(TableCodec::new(&altered).unwrap());
        let run =
            ColdRun::open_blocking(store, written.runs[0].clone(), new_codec.clone()).unwrap();
        let Lookup::Live { row: got, .. } = Source::lookup(&run, &key, LATEST).unwrap() else {
            panic!("row expected");
        };
        let got = new_codec.decode_rows([got.as_ref()]).unwrap();
        let old = codec.decode_rows([row.as_ref()]).unwrap();
        assert_eq!(got.num_columns(), old.num_columns());
        for i in 0..8 {
            assert_eq!(got.column(i), old.column(i));
        }
        assert_eq!(got.column(8), old.column(9));
        assert!(got.column(got.num_columns() - 1).is_null(0));
    }

    /// The writer splits its input into runs of about the target size at key boundaries,
    /// each named with its epoch and a new sequence number, and refuses versions out of order.
    #[test]
    fn writer_splits_runs_and_refuses_disorder() {
        let codec = codec();
        let store = Arc::new(ColdStore::in_memory().unwrap());
        let mut rng = Rng::new(5);
        let history = random_history(&mut rng, &codec, 400, 200);
        let versions = run_order(history.iter().flatten());
        let options = RunOptions {
            target_run_bytes: 16 * 1024,
            ..small_options()
        };
        let pins = RunPins::new();
        let written = write_run(
            &store,
            &codec,
            &Arc::new(RunNamer::new(3)),
            &pins,
            options,
            versions.clone(),
        )
        .unwrap();
        assert!(written.runs.len() > 2, "{} runs", written.runs.len());
        assert_eq!(
            written.runs.iter().map(|r| r.rows).sum::<u64>(),
            versions.len() as u64
        );
        for pair in written.runs.windows(2) {
            assert!(pair[0].max_key < pair[1].min_key, "runs overlap");
            assert!(pair[0].path < pair[1].path);
        }
        let mut read = Vec::new();
        for meta in &written.runs {
            assert!(pins.is_pinned(&meta.path));
            let run = ColdRun::open_blocking(store.clone(), meta.clone(), codec.clone()).unwrap();
            // Every version: a scan at each version's ts would be needed; check the newest.
            read.extend(all(&EVERYTHING, &run, LATEST, 100));
        }
        let newest: Vec<Versioned> = history
            .iter()
            .filter_map(|versions| versions.last().cloned())
            .collect();
        assert_eq!(read, newest);

        let mut backwards = versions.clone();
        backwards.swap(0, 1);
        let err = write_run(
            &store,
            &codec,
            &Arc::new(RunNamer::new(3)),
            &pins,
            small_options(),
            backwards,
        )
        .unwrap_err();
        assert!(matches!(err, ColdError::Internal(_)), "{err}");
    }

    /// Random histories layered over a hot tier and one or two cold runs (each key's oldest
    /// versions in the oldest run, as flushes move them) read like one history through
    /// `Sources` at every snapshot: lookups and chunked scans. `FLOE_COLD_SEED` replays one.
    #[test]
    fn hot_over_cold_runs_reads_like_one_history() {
        let seeds: Vec<u64> = match std::env::var("FLOE_COLD_SEED") {
            Ok(seed) => vec![seed.parse().expect("FLOE_COLD_SEED is a number")],
            Err(_) => (1..=12).collect(),
        };
        let codec = codec();
        let store = Arc::new(ColdStore::in_memory().unwrap());
        for seed in seeds {
            println!("FLOE_COLD_SEED={seed}");
            check_layers(seed, &store, &codec);
        }
    }

    fn check_layers(seed: u64, store: &Arc<ColdStore>, codec: &Arc<TableCodec>) {
        let mut rng = Rng::new(seed);
        let keys = 1 + rng.below(40);
        let commits = 1 + rng.below(50);
        let cold_layers = 1 + rng.below(2) as usize;
        let history = random_history(&mut rng, codec, keys, commits);
        let truncations: Vec<u64> = (1..=commits).filter(|_| rng.below(12) == 0).collect();
        // Layer 0 is the oldest run, the last layer the hot tier.
        let mut layers: Vec<Vec<Versioned>> = vec![Vec::new(); cold_layers + 1];
        for versions in &history {
            let mut cuts: Vec<usize> = (0..cold_layers)
                .map(|_| rng.below(versions.len() as u64 + 1) as usize)
                .collect();
            cuts.sort_unstable();
            cuts.push(versions.len());
            let mut from = 0;
            for (layer, cut) in cuts.into_iter().enumerate() {
                layers[layer].extend(versions[from..cut].iter().cloned());
                from = cut;
            }
        }
        let hot = HotTable::keeping_tombstones();
        let mut hot_versions = layers.pop().unwrap_or_default();
        hot_versions.sort_by_key(|v| v.commit_ts);
        for v in &hot_versions {
            hot.apply(&v.key, v.row.clone(), v.commit_ts, 0);
        }
        for t in &truncations {
            hot.truncate(*t);
        }
        let namer = Arc::new(RunNamer::new(seed));
        let pins = RunPins::new();
        let mut older: Vec<Arc<dyn Source>> = Vec::new();
        for layer in layers.into_iter().rev() {
            let options = RunOptions {
                batch_rows: 1 + rng.below(8) as usize,
                row_group_rows: 1 + rng.below(20) as usize,
                page_rows: 1 + rng.below(6) as usize,
                ..small_options()
            };
            let written = write_run(store, codec, &namer, &pins, options, run_order(&layer))
                .expect("write run");
            for meta in written.runs {
                let run = ColdRun::open_blocking(store.clone(), meta, codec.clone()).unwrap();
                older.push(Arc::new(run));
            }
        }
        for snapshot in (0..=commits + 1).chain([LATEST]) {
            let truncated_at = hot.truncated_at(snapshot);
            let model: Vec<(Key, RowBytes)> = history
                .iter()
                .filter_map(|versions| {
                    let v = versions.iter().rev().find(|v| v.commit_ts <= snapshot)?;
                    let row = v.row.as_ref().filter(|_| v.commit_ts >= truncated_at)?;
                    Some((v.key.clone(), row.clone()))
                })
                .collect();
            let sources = Sources::new(&hot, older.clone().into(), truncated_at, snapshot);
            for max in [1, 2, 5, 1000] {
                let mut got = Vec::new();
                let mut range = EVERYTHING;
                while let Some(last) = sources.try_scan_chunk(&range, max, &mut got).unwrap() {
                    range.0 = Bound::Excluded(last);
                }
                assert_eq!(
                    got, model,
                    "seed {seed}, snapshot {snapshot}, chunks of {max}"
                );
            }
            for id in 0..keys + 1 {
                let key = sample_row(codec, id as i64 * 3, 0).0;
                let expect = model
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, r)| r.clone());
                assert_eq!(
                    sources.try_get(&key).unwrap(),
                    expect,
                    "seed {seed}, snapshot {snapshot}, key {id}"
                );
            }
        }
    }
}

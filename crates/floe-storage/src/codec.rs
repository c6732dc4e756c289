//! Byte forms of keys, rows and commit-log records.
//!
//! - A *key* orders rows in the hot tier: the primary-key columns in Arrow's row format
//!   (memcomparable: byte order is SQL order), or 8 big-endian bytes of a hidden row id for
//!   tables without a primary key.
//! - A *row* in memory is the whole row in Arrow's row format, which converts back to columns
//!   in bulk, so scans build Arrow batches without per-value work.
//! - A *log record* is what a commit appends: per table, an Arrow IPC stream of the changed rows
//!   (columns named by stable column id, so ALTER TABLE does not break old records), or a
//!   TRUNCATE marker. The row format is not stable across Arrow versions, so it never reaches
//!   disk; IPC is.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BinaryArray, BooleanArray, RecordBatch,
    RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::{cast_with_options, filter, take, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::catalog::TableDef;
use crate::error::{StorageError, StorageResult};
use crate::numeric_key;

/// The first value of `column` as PostgreSQL prints it in a key's DETAIL.
pub(crate) fn describe_value(column: &ArrayRef) -> String {
    if column.data_type() == &DataType::LargeBinary && !column.is_null(0) {
        return numeric_key::to_text(column.as_binary::<i64>().value(0));
    }
    ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
        .map(|f| f.value(0).to_string())
        .unwrap_or_default()
}

/// A row's key in the hot tier (see the module doc).
pub type Key = Arc<[u8]>;
/// A row's values in Arrow's row format.
pub type RowBytes = Arc<[u8]>;

/// Encodes and decodes one table's keys and rows. Rebuilt whenever the table's definition
/// changes (a changed definition means a rewritten table or a metadata-only change).
#[derive(Debug)]
pub struct TableCodec {
    schema: SchemaRef,
    rows: RowConverter,
    key: Option<(RowConverter, Vec<usize>)>,
    column_ids: Vec<u32>,
}

impl TableCodec {
    /// The codec for `def`.
    pub fn new(def: &TableDef) -> StorageResult<TableCodec> {
        let schema = def.arrow_schema();
        let rows = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let key = match &def.primary_key {
            Some(pk) => {
                let fields = pk
                    .columns
                    .iter()
                    .map(|&i| SortField::new(schema.field(i).data_type().clone()))
                    .collect();
                Some((RowConverter::new(fields)?, pk.columns.clone()))
            }
            None => None,
        };
        Ok(TableCodec {
            schema,
            rows,
            key,
            column_ids: def.columns.iter().map(|c| c.id).collect(),
        })
    }

    /// Whether rows and keys encoded by `other` mean the same here (same column types in the
    /// same order, same key columns).
    pub fn same_layout(&self, other: &TableCodec) -> bool {
        self.key_columns() == other.key_columns()
            && self.schema.fields().len() == other.schema.fields().len()
            && self
                .schema
                .fields()
                .iter()
                .zip(other.schema.fields().iter())
                .all(|(a, b)| a.data_type() == b.data_type())
    }

    /// The table's row schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The stable id of each column (`ALTER TABLE` keeps ids; positions may change), in the
    /// schema's order.
    pub fn column_ids(&self) -> &[u32] {
        &self.column_ids
    }

    /// Whether rows are keyed by a primary key (else by hidden row ids).
    pub fn has_primary_key(&self) -> bool {
        self.key.is_some()
    }

    /// The primary-key column positions.
    pub fn key_columns(&self) -> &[usize] {
        self.key.as_ref().map(|(_, c)| c.as_slice()).unwrap_or(&[])
    }

    /// Encodes full rows from the table's columns.
    pub fn encode_rows(&self, columns: &[ArrayRef]) -> StorageResult<Rows> {
        Ok(self.rows.convert_columns(columns)?)
    }

    /// Encodes the primary keys of rows given as the table's columns (`None` without a key).
    pub fn encode_keys(&self, columns: &[ArrayRef]) -> StorageResult<Option<Rows>> {
        match &self.key {
            Some((converter, positions)) => {
                let key_columns: Vec<ArrayRef> = positions
                    .iter()
                    .map(|&i| numeric_key::canonical_column(&columns[i]))
                    .collect();
                Ok(Some(converter.convert_columns(&key_columns)?))
            }
            None => Ok(None),
        }
    }

    /// The key of `value` when the primary key is one `smallint`, `integer` or `bigint`
    /// column, encoded as the key's row converter encodes it, without building an array (a
    /// point lookup's key; pgbench's shape). `None` when the key is not one integer column;
    /// `Some(None)` when `value` is outside the column's range (it equals no key).
    pub fn integer_key(&self, value: i64) -> Option<Option<Key>> {
        let (_, positions) = self.key.as_ref()?;
        let [column] = positions.as_slice() else {
            return None;
        };
        // Arrow's row format for a non-null signed integer, ascending: a 1 (valid) byte,
        // then the big-endian bytes with the sign bit flipped.
        let encode = |be: &[u8]| {
            let mut bytes = Vec::with_capacity(1 + be.len());
            bytes.push(1);
            bytes.extend_from_slice(be);
            bytes[1] ^= 0x80;
            Key::from(bytes)
        };
        Some(match self.schema.field(*column).data_type() {
            DataType::Int16 => i16::try_from(value).ok().map(|v| encode(&v.to_be_bytes())),
            DataType::Int32 => i32::try_from(value).ok().map(|v| encode(&v.to_be_bytes())),
            DataType::Int64 => Some(encode(&value.to_be_bytes())),
            _ => return None,
        })
    }

    /// Decodes key-column values given as arrays of the primary key's types.
    pub fn encode_key_values(&self, key_columns: &[ArrayRef]) -> StorageResult<Option<Rows>> {
        match &self.key {
            Some((converter, _)) => {
                let key_columns: Vec<ArrayRef> = key_columns
                    .iter()
                    .map(numeric_key::canonical_column)
                    .collect();
                Ok(Some(converter.convert_columns(&key_columns)?))
            }
            None => Ok(None),
        }
    }

    /// Decodes rows into a batch of the table's schema.
    pub fn decode_rows<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> StorageResult<RecordBatch> {
        let parser = self.rows.parser();
        let parsed: Vec<_> = rows.into_iter().map(|b| parser.parse(b)).collect();
        let count = parsed.len();
        let columns = self.rows.convert_rows(parsed)?;
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(count)),
        )?)
    }

    /// `(a, b)=(1, 2)`: a key for error messages, as PostgreSQL prints it in DETAIL.
    pub fn describe_key(&self, key: &[u8]) -> String {
        let Some((converter, positions)) = &self.key else {
            return String::new();
        };
        let names: Vec<&str> = positions
            .iter()
            .map(|&i| self.schema.field(i).name().as_str())
            .collect();
        let parser = converter.parser();
        let values = match converter.convert_rows([parser.parse(key)]) {
            Ok(columns) => columns.iter().map(describe_value).collect::<Vec<_>>(),
            Err(_) => vec![],
        };
        format!("({})=({})", names.join(", "), values.join(", "))
    }

    /// The hidden row-id key for `rowid`.
    pub fn rowid_key(rowid: u64) -> Key {
        Arc::from(rowid.to_be_bytes().as_slice())
    }

    /// The row id of a hidden row-id key.
    pub fn rowid_of(key: &[u8]) -> Option<u64> {
        key.try_into().ok().map(u64::from_be_bytes)
    }

    /// Encodes one table's changes (key, new row or `None` for a delete) as an IPC stream.
    pub fn encode_changes(&self, changes: &[(Key, Option<RowBytes>)]) -> StorageResult<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_changes_into(changes.iter().map(|(k, r)| (k, r)), &mut out)?;
        Ok(out)
    }

    /// [`TableCodec::encode_changes`], appending to `out`. The stream holds one IPC batch per
    /// [`LOG_BATCH_ROWS`] changes, so the Arrow form of a huge commit (a COPY of millions of
    /// rows) never exists all at once: only one batch's columns besides the bytes.
    pub fn encode_changes_into<'a>(
        &self,
        changes: impl IntoIterator<Item = (&'a Key, &'a Option<RowBytes>)>,
        out: &mut Vec<u8>,
    ) -> StorageResult<()> {
        let schema = self.log_schema();
        let mut writer = StreamWriter::try_new(out, &schema)?;
        let mut changes = changes.into_iter();
        let mut chunk: Vec<(&Key, &Option<RowBytes>)> = Vec::with_capacity(LOG_BATCH_ROWS);
        loop {
            chunk.clear();
            chunk.extend(changes.by_ref().take(LOG_BATCH_ROWS));
            if chunk.is_empty() {
                break;
            }
            let keys = BinaryArray::from_iter_values(chunk.iter().map(|(k, _)| k.as_ref()));
            let live = BooleanArray::from_iter(chunk.iter().map(|(_, r)| Some(r.is_some())));
            let present: Vec<&[u8]> = chunk.iter().filter_map(|(_, r)| r.as_deref()).collect();
            let all_live = present.len() == chunk.len();
            let decoded = self.decode_rows(present)?;
            let mut columns: Vec<ArrayRef> = vec![Arc::new(keys), Arc::new(live)];
            if all_live {
                columns.extend(decoded.columns().iter().cloned());
            } else {
                let mut next = 0u32;
                let indices: UInt32Array = chunk
                    .iter()
                    .map(|(_, r)| {
                        r.as_ref().map(|_| {
                            next += 1;
                            next - 1
                        })
                    })
                    .collect();
                for column in decoded.columns() {
                    columns.push(take(column.as_ref(), &indices, None)?);
                }
            }
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            writer.write(&batch)?;
        }
        writer.finish()?;
        Ok(())
    }

    /// The schema of the IPC stream of a table's changes in a log record.
    fn log_schema(&self) -> SchemaRef {
        let mut fields = vec![
            Field::new("__key", DataType::Binary, false),
            Field::new("__live", DataType::Boolean, false),
        ];
        for (i, field) in self.schema.fields().iter().enumerate() {
            fields.push(
                Field::new(
                    format!("c{}", self.column_ids[i]),
                    field.data_type().clone(),
                    true,
                )
                .with_metadata(field.metadata().clone()),
            );
        }
        Arc::new(Schema::new(fields))
    }

    /// Encodes inserted rows, given as their keys and the table's columns they were encoded
    /// from, as one log-record entry of table `table_id` (what [`RecordBuilder::rows`] writes
    /// for them), appended to `out` for [`RecordBuilder::encoded`]. The values go straight
    /// into the IPC stream: a bulk load encodes its log record while its rows arrive, with no
    /// decoding of rows at commit.
    pub fn encode_insert_entry<'a>(
        &self,
        table_id: u32,
        keys: impl ExactSizeIterator<Item = &'a [u8]>,
        columns: &[ArrayRef],
        out: &mut Vec<u8>,
    ) -> StorageResult<()> {
        let count = keys.len();
        if columns.len() != self.schema.fields().len() || columns.iter().any(|c| c.len() != count) {
            return Err(StorageError::Internal(
                "inserted rows do not match their columns".into(),
            ));
        }
        let schema = self.log_schema();
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(keys)),
            Arc::new(BooleanArray::from(vec![true; count])),
        ];
        arrays.extend(columns.iter().cloned());
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        write_entry(out, 1, table_id, |out| {
            let mut writer = StreamWriter::try_new(out, &schema)?;
            let mut offset = 0;
            while offset < count {
                let len = LOG_BATCH_ROWS.min(count - offset);
                writer.write(&batch.slice(offset, len))?;
                offset += len;
            }
            writer.finish()?;
            Ok(())
        })
    }

    /// Decodes changes written by [`TableCodec::encode_changes`], possibly under an older
    /// definition of the table: columns are matched by id, missing ones are NULL.
    pub fn decode_changes(&self, bytes: &[u8]) -> StorageResult<Vec<(Key, Option<RowBytes>)>> {
        let corrupt = |e: &dyn std::fmt::Display| StorageError::corrupt("commit log record", e);
        let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(|e| corrupt(&e))?;
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(&e))?;
            let keys = batch
                .column(0)
                .as_any()
                .downcast_ref::<BinaryArray>()
                .ok_or_else(|| corrupt(&"key column is not binary"))?;
            let live = batch
                .column(1)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| corrupt(&"live column is not boolean"))?;
            let live_rows = filter(&batch.column(1).clone(), live)?.len();
            let mut columns = Vec::with_capacity(self.column_ids.len());
            for (i, id) in self.column_ids.iter().enumerate() {
                let target = self.schema.field(i).data_type();
                let column = match batch.schema().index_of(&format!("c{id}")) {
                    Ok(pos) => {
                        let c = filter(batch.column(pos).as_ref(), live)?;
                        if c.data_type() == target {
                            c
                        } else {
                            // Only records that a later rewrite supersedes can disagree on
                            // types; values that do not convert become NULL.
                            cast_with_options(&c, target, &CastOptions::default())?
                        }
                    }
                    Err(_) => new_null_array(target, live_rows),
                };
                columns.push(column);
            }
            let rows = self.encode_rows(&columns)?;
            let mut live_index = 0;
            for i in 0..batch.num_rows() {
                let key: Key = Arc::from(keys.value(i));
                if live.value(i) {
                    let row: RowBytes = Arc::from(rows.row(live_index).data());
                    live_index += 1;
                    out.push((key, Some(row)));
                } else {
                    out.push((key, None));
                }
            }
        }
        Ok(out)
    }
}

/// One part of a commit-log record.
#[derive(Debug, Clone)]
pub enum LogEntry {
    /// Rows of one table changed: IPC bytes from [`TableCodec::encode_changes`].
    Rows {
        /// The table's OID.
        table_id: u32,
        /// The encoded changes.
        ipc: Vec<u8>,
    },
    /// Every row of the table was removed before the record's other entries for it.
    Truncate {
        /// The table's OID.
        table_id: u32,
    },
}

const RECORD_VERSION: u8 = 1;

/// Changes per IPC batch in a log record (see [`TableCodec::encode_changes_into`]).
pub const LOG_BATCH_ROWS: usize = 16 * 1024;

/// Builds a commit's log record in place, in the format of [`encode_record`]: each entry's
/// payload is encoded straight into the record, so a big commit's bytes exist once.
#[derive(Debug)]
pub struct RecordBuilder {
    out: Vec<u8>,
    /// Where the record starts in `out` (see [`RecordBuilder::around`]).
    start: usize,
    entries: u32,
}

impl Default for RecordBuilder {
    fn default() -> Self {
        let mut out = Vec::new();
        out.push(RECORD_VERSION);
        out.extend_from_slice(&0u32.to_le_bytes());
        RecordBuilder {
            out,
            start: 0,
            entries: 0,
        }
    }
}

/// Room left before a table's entries encoded ahead (by a transaction's bulk inserts) for the
/// record's header and a TRUNCATE marker: the record of a commit is built around them
/// ([`RecordBuilder::around`]).
pub const RECORD_PREFIX: usize = 5 + 9;

impl RecordBuilder {
    /// A builder with room for about `bytes` of encoded changes reserved up front: a big
    /// commit's record then grows without reallocations (each a copy of everything so far
    /// into new, not yet touched memory). Reserved pages that go unused are never touched.
    pub fn with_capacity(bytes: usize) -> RecordBuilder {
        let mut builder = RecordBuilder::default();
        builder.out.reserve(bytes);
        builder
    }

    /// A record around one table's `entries` entries encoded ahead into `bytes`, after
    /// [`RECORD_PREFIX`] bytes of room: the header (and the TRUNCATE marker of `truncate`, the
    /// table's id) go into that room and other tables' entries after them, so a bulk load's
    /// bytes are not copied. A table's entries only depend on its own earlier entries in the
    /// record, so putting them first is safe.
    pub fn around(mut bytes: Vec<u8>, entries: u32, truncate: Option<u32>) -> RecordBuilder {
        if bytes.len() < RECORD_PREFIX {
            bytes.resize(RECORD_PREFIX, 0);
        }
        let start = match truncate {
            Some(table_id) => {
                bytes[5] = 2;
                bytes[6..10].copy_from_slice(&table_id.to_le_bytes());
                bytes[10..14].copy_from_slice(&0u32.to_le_bytes());
                0
            }
            None => 9,
        };
        bytes[start] = RECORD_VERSION;
        RecordBuilder {
            out: bytes,
            start,
            entries: entries + u32::from(truncate.is_some()),
        }
    }

    /// Reserves room for about `bytes` more.
    pub fn reserve(&mut self, bytes: usize) {
        self.out.reserve(bytes);
    }

    /// Adds a TRUNCATE marker.
    pub fn truncate(&mut self, table_id: u32) {
        self.out.push(2);
        self.out.extend_from_slice(&table_id.to_le_bytes());
        self.out.extend_from_slice(&0u32.to_le_bytes());
        self.entries += 1;
    }

    /// Adds `entries` entries encoded already ([`TableCodec::encode_insert_entry`]).
    pub fn encoded(&mut self, bytes: &[u8], entries: u32) {
        self.out.extend_from_slice(bytes);
        self.entries += entries;
    }

    /// Adds a table's changed rows.
    pub fn rows<'a>(
        &mut self,
        codec: &TableCodec,
        table_id: u32,
        changes: impl IntoIterator<Item = (&'a Key, &'a Option<RowBytes>)>,
    ) -> StorageResult<()> {
        write_entry(&mut self.out, 1, table_id, |out| {
            codec.encode_changes_into(changes, out)
        })?;
        self.entries += 1;
        Ok(())
    }

    /// The finished record: the buffer and where the record starts in it.
    pub fn finish(mut self) -> (Vec<u8>, usize) {
        let at = self.start + 1;
        self.out[at..at + 4].copy_from_slice(&self.entries.to_le_bytes());
        (self.out, self.start)
    }
}

/// Appends one record entry: its tag, table and the length of the payload `payload` writes.
fn write_entry(
    out: &mut Vec<u8>,
    tag: u8,
    table_id: u32,
    payload: impl FnOnce(&mut Vec<u8>) -> StorageResult<()>,
) -> StorageResult<()> {
    out.push(tag);
    out.extend_from_slice(&table_id.to_le_bytes());
    let len_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    payload(out)?;
    let len = u32::try_from(out.len() - len_at - 4).map_err(|_| {
        StorageError::Internal("a table's changes exceed 4 GiB in one commit".into())
    })?;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Encodes a commit's log record.
pub fn encode_record(entries: &[LogEntry]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|e| match e {
            LogEntry::Rows { ipc, .. } => 9 + ipc.len(),
            LogEntry::Truncate { .. } => 9,
        })
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for entry in entries {
        match entry {
            LogEntry::Rows { table_id, ipc } => {
                out.push(1);
                out.extend_from_slice(&table_id.to_le_bytes());
                out.extend_from_slice(&(ipc.len() as u32).to_le_bytes());
                out.extend_from_slice(ipc);
            }
            LogEntry::Truncate { table_id } => {
                out.push(2);
                out.extend_from_slice(&table_id.to_le_bytes());
                out.extend_from_slice(&0u32.to_le_bytes());
            }
        }
    }
    out
}

/// Decodes a commit's log record.
pub fn decode_record(bytes: &[u8]) -> StorageResult<Vec<LogEntry>> {
    let corrupt = |d: &str| StorageError::corrupt("commit log record", d);
    let u32_at = |pos: usize| -> StorageResult<u32> {
        bytes
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| corrupt("truncated"))
    };
    if bytes.first() != Some(&RECORD_VERSION) {
        return Err(corrupt("unknown record version"));
    }
    let count = u32_at(1)? as usize;
    let mut pos = 5;
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let kind = *bytes.get(pos).ok_or_else(|| corrupt("truncated"))?;
        let table_id = u32_at(pos + 1)?;
        let len = u32_at(pos + 5)? as usize;
        pos += 9;
        let payload = bytes
            .get(pos..pos + len)
            .ok_or_else(|| corrupt("truncated payload"))?;
        pos += len;
        entries.push(match kind {
            1 => LogEntry::Rows {
                table_id,
                ipc: payload.to_vec(),
            },
            2 => LogEntry::Truncate { table_id },
            _ => return Err(corrupt("unknown entry kind")),
        });
    }
    if pos != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDef, PrimaryKey, RelationKind};
    use datafusion::arrow::array::{Int32Array, StringArray};

    /// The direct integer key is byte for byte what the key's row converter makes, for
    /// every integer key type, at the edges of each range; other keys have none.
    #[test]
    fn integer_keys_match_the_row_converter() {
        use datafusion::arrow::array::{Int16Array, Int64Array};
        for data_type in [DataType::Int16, DataType::Int32, DataType::Int64] {
            let mut def = table(true);
            def.columns[0].field = Field::new("id", data_type.clone(), false);
            let codec = TableCodec::new(&def).unwrap();
            let values = [
                i64::MIN,
                i64::from(i32::MIN) - 1,
                i64::from(i32::MIN),
                i64::from(i16::MIN) - 1,
                i64::from(i16::MIN),
                -256,
                -1,
                0,
                1,
                255,
                256,
                i64::from(i16::MAX),
                i64::from(i16::MAX) + 1,
                i64::from(i32::MAX),
                i64::from(i32::MAX) + 1,
                i64::MAX,
            ];
            for value in values {
                let array: Option<ArrayRef> = match data_type {
                    DataType::Int16 => i16::try_from(value)
                        .ok()
                        .map(|v| Arc::new(Int16Array::from(vec![v])) as ArrayRef),
                    DataType::Int32 => i32::try_from(value)
                        .ok()
                        .map(|v| Arc::new(Int32Array::from(vec![v])) as ArrayRef),
                    _ => Some(Arc::new(Int64Array::from(vec![value])) as ArrayRef),
                };
                let want = array.map(|a| {
                    let rows = codec.encode_key_values(&[a]).unwrap().unwrap();
                    rows.row(0).data().to_vec()
                });
                let got = codec.integer_key(value).unwrap().map(|k| k.to_vec());
                assert_eq!(got, want, "{data_type} {value}");
            }
        }
        assert!(TableCodec::new(&table(false))
            .unwrap()
            .integer_key(1)
            .is_none());
        let mut text_key = table(true);
        text_key.primary_key.as_mut().unwrap().columns = vec![1];
        assert!(TableCodec::new(&text_key).unwrap().integer_key(1).is_none());
        let mut two = table(true);
        two.primary_key.as_mut().unwrap().columns = vec![0, 1];
        assert!(TableCodec::new(&two).unwrap().integer_key(1).is_none());
    }

    fn table(pk: bool) -> TableDef {
        TableDef {
            id: 16384,
            database: "postgres".into(),
            schema: "public".into(),
            name: "t".into(),
            kind: RelationKind::Table,
            columns: vec![
                ColumnDef {
                    id: 1,
                    name: "id".into(),
                    field: Field::new("id", DataType::Int32, false),
                    default: None,
                    identity: None,
                },
                ColumnDef {
                    id: 2,
                    name: "v".into(),
                    field: Field::new("v", DataType::Utf8, true),
                    default: None,
                    identity: None,
                },
            ],
            primary_key: pk.then(|| PrimaryKey {
                name: "t_pkey".into(),
                columns: vec![0],
            }),
            constraints: vec![],
            indexes: vec![],
            next_column_id: 3,
            persistence: Default::default(),
        }
    }

    #[test]
    fn keys_sort_like_sql_and_rows_round_trip() {
        let codec = TableCodec::new(&table(true)).unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![-5, 3, 100])),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])),
        ];
        let keys = codec.encode_keys(&columns).unwrap().unwrap();
        assert!(keys.row(0).data() < keys.row(1).data());
        assert!(keys.row(1).data() < keys.row(2).data());
        assert_eq!(codec.describe_key(keys.row(2).data()), "(id)=(100)");
        let rows = codec.encode_rows(&columns).unwrap();
        let batch = codec.decode_rows(rows.iter().map(|r| r.data())).unwrap();
        assert_eq!(batch.columns(), columns.as_slice());
    }

    #[test]
    fn changes_survive_a_log_record_and_an_added_column() {
        let def = table(true);
        let codec = TableCodec::new(&def).unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("x"), Some("y")])),
        ];
        let keys = codec.encode_keys(&columns).unwrap().unwrap();
        let rows = codec.encode_rows(&columns).unwrap();
        let changes: Vec<(Key, Option<RowBytes>)> = vec![
            (
                Arc::from(keys.row(0).data()),
                Some(Arc::from(rows.row(0).data())),
            ),
            (Arc::from(keys.row(1).data()), None),
        ];
        let record = encode_record(&[
            LogEntry::Truncate { table_id: 7 },
            LogEntry::Rows {
                table_id: def.id,
                ipc: codec.encode_changes(&changes).unwrap(),
            },
        ]);
        let entries = decode_record(&record).unwrap();
        assert!(matches!(entries[0], LogEntry::Truncate { table_id: 7 }));
        let LogEntry::Rows { ipc, .. } = &entries[1] else {
            panic!("rows entry expected")
        };
        assert_eq!(codec.decode_changes(ipc).unwrap(), changes);

        // After ALTER TABLE ADD COLUMN the old record decodes with NULL in the new column.
        let mut altered = def.clone();
        altered.columns.push(ColumnDef {
            id: 3,
            name: "w".into(),
            field: Field::new("w", DataType::Int32, true),
            default: None,
            identity: None,
        });
        let new_codec = TableCodec::new(&altered).unwrap();
        let decoded = new_codec.decode_changes(ipc).unwrap();
        let batch = new_codec
            .decode_rows([decoded[0].1.as_deref().unwrap()])
            .unwrap();
        assert_eq!(batch.num_columns(), 3);
        assert!(batch.column(2).is_null(0));
        assert!(decode_record(&record[..record.len() - 1]).is_err());
    }
}

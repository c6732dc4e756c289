//! Batch scans of cold runs (`cold_scan`): SQL over `FloeTable` with batch scans on must
//! answer exactly as with every row going through the newest-wins merge, and as a model, for
//! every column type, projections and filters, over cold-only ranges, hot updates and deletes
//! of cold keys, TRUNCATE then new rows, snapshots held across flushes, and several (also
//! overlapping) runs. Random histories are seeded: `FLOE_COLD_SCAN_SEED=<n>` replays one,
//! `FLOE_COLD_SCAN_SEEDS=<n>` runs that many (the long form).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int16Array,
    Int32Array, Int64Array, IntervalMonthDayNanoArray, LargeBinaryArray, ListArray, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, IntervalMonthDayNano, IntervalUnit, TimeUnit,
};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::TaskContext;
use datafusion::prelude::SessionContext;
use floe_storage::{
    CatalogChange, ColumnDef, Db, DbOptions, FloeTable, Isolation, PrimaryKey, ReadView,
    RelationKind, Snapshot, TableData, TableDef,
};

fn column(id: u32, name: &str, data_type: DataType, nullable: bool) -> ColumnDef {
    ColumnDef {
        id,
        name: name.into(),
        field: Field::new(name, data_type, nullable),
        default: None,
        identity: None,
    }
}

fn interval() -> DataType {
    DataType::Interval(IntervalUnit::MonthDayNano)
}

/// A table with a column of every kind of type a run stores differently.
fn def(db: &Db) -> TableDef {
    let mut uuid = Field::new("uuid", DataType::Utf8, true);
    uuid.set_metadata([("pg_type".to_string(), "uuid".to_string())].into());
    let list = |item: DataType| DataType::List(Arc::new(Field::new("item", item, true)));
    let columns = vec![
        column(1, "id", DataType::Int64, false),
        column(2, "v", DataType::Int32, true),
        column(3, "flag", DataType::Boolean, true),
        column(4, "small", DataType::Int16, true),
        column(5, "double", DataType::Float64, true),
        column(6, "numeric", DataType::LargeBinary, true),
        column(7, "money", DataType::Decimal128(12, 2), true),
        column(8, "text", DataType::Utf8, true),
        column(9, "bytes", DataType::Binary, true),
        column(10, "day", DataType::Date32, true),
        column(
            11,
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        column(12, "span", interval(), true),
        ColumnDef {
            id: 13,
            name: "uuid".into(),
            field: uuid,
            default: None,
            identity: None,
        },
        column(14, "ints", list(DataType::Int32), true),
        column(15, "spans", list(interval()), true),
    ];
    TableDef {
        id: db.allocate_oid(),
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

/// The columns of rows `(id, v)`: every other column a function of both, NULL now and then.
fn columns(rows: &[(i64, i32)]) -> Vec<ArrayRef> {
    let null = |id: i64, v: i32, k: i64| (id + i64::from(v)) % k == 0;
    let span = |id: i64, v: i32| IntervalMonthDayNano::new(v % 13, (id % 40) as i32, id * 1_000);
    let ints = ListArray::from_iter_primitive::<Int32Type, _, _>(
        rows.iter()
            .map(|&(id, v)| (!null(id, v, 7)).then(|| vec![Some(v), None, Some(id as i32)])),
    );
    let span_values: Vec<Option<IntervalMonthDayNano>> = rows
        .iter()
        .flat_map(|&(id, v)| [Some(span(id, v)), None])
        .collect();
    let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths(rows.iter().map(|_| 2));
    let spans = ListArray::new(
        Arc::new(Field::new("item", interval(), true)),
        offsets,
        Arc::new(IntervalMonthDayNanoArray::from(span_values)),
        None,
    );
    vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(BooleanArray::from_iter(
            rows.iter()
                .map(|&(id, v)| (!null(id, v, 5)).then_some(v % 2 == 0)),
        )),
        Arc::new(Int16Array::from_iter(
            rows.iter()
                .map(|&(id, v)| Some((v % 1000) as i16 - id as i16)),
        )),
        Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|&(id, v)| (!null(id, v, 3)).then_some(v as f64 / 7.0)),
        )),
        Arc::new(LargeBinaryArray::from_iter(rows.iter().map(|&(id, v)| {
            Some(vec![1u8, (v % 256) as u8, (id % 256) as u8])
        }))),
        Arc::new(
            Decimal128Array::from_iter(
                rows.iter()
                    .map(|&(id, v)| (!null(id, v, 4)).then_some(i128::from(v) * 100 + 7)),
            )
            .with_precision_and_scale(12, 2)
            .unwrap(),
        ),
        Arc::new(StringArray::from_iter(rows.iter().map(|&(id, v)| {
            (!null(id, v, 6)).then(|| format!("ünïcødé ✓ {id} {v} 雪"))
        }))),
        Arc::new(BinaryArray::from_iter(rows.iter().map(|&(id, v)| {
            Some(vec![(id % 256) as u8, (v % 256) as u8, 0])
        }))),
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|&(id, v)| (id as i32) + v % 100),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            rows.iter().map(|&(id, v)| id * 1_000_000 + i64::from(v)),
        )),
        Arc::new(IntervalMonthDayNanoArray::from_iter(
            rows.iter()
                .map(|&(id, v)| (!null(id, v, 8)).then(|| span(id, v))),
        )),
        Arc::new(StringArray::from_iter(rows.iter().map(|&(id, v)| {
            Some(format!(
                "00000000-0000-4000-8000-{:06x}{:06x}",
                id,
                v.unsigned_abs()
            ))
        }))),
        Arc::new(ints),
        Arc::new(spans),
    ]
}

async fn write(db: &Arc<Db>, table: &Arc<TableData>, rows: &[(i64, i32)], deletes: &[i64]) {
    let mut txn = db.begin(Isolation::ReadCommitted);
    if !rows.is_empty() {
        let columns = columns(rows);
        let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
        let encoded = table.codec.encode_rows(&columns).unwrap();
        for i in 0..rows.len() {
            let key: floe_storage::Key = Arc::from(keys.row(i).data());
            txn.lock_row(table, &key).await.unwrap();
            txn.write(table, key, Some(Arc::from(encoded.row(i).data())))
                .await
                .unwrap();
        }
    }
    if !deletes.is_empty() {
        let ids: Vec<(i64, i32)> = deletes.iter().map(|id| (*id, 0)).collect();
        let columns = columns(&ids);
        let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
        for i in 0..ids.len() {
            let key: floe_storage::Key = Arc::from(keys.row(i).data());
            txn.lock_row(table, &key).await.unwrap();
            txn.write(table, key, None).await.unwrap();
        }
    }
    txn.commit().await.unwrap();
}

async fn truncate(db: &Arc<Db>, table: &Arc<TableData>) {
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.truncate(table);
    txn.commit().await.unwrap();
}

/// The queries compared: every column, aggregates, projections, filters and key ranges.
fn queries(max_id: i64) -> Vec<String> {
    let (lo, hi) = (max_id / 4, max_id / 2);
    vec![
        "SELECT * FROM t ORDER BY id".into(),
        "SELECT count(*) FROM t".into(),
        "SELECT count(*), sum(v), min(text), max(ts), sum(money), count(span) FROM t".into(),
        format!("SELECT id, text, span FROM t WHERE id >= {lo} AND id < {hi} ORDER BY id"),
        "SELECT id, uuid, spans FROM t WHERE v % 3 = 0 ORDER BY id".into(),
        "SELECT flag, count(*), round(sum(double), 6) FROM t GROUP BY flag ORDER BY flag".into(),
        format!("SELECT id, v FROM t WHERE id = {lo}"),
        // Filters the row-group statistics decide (prune all, keep some).
        "SELECT count(*), sum(v) FROM t WHERE ts > TIMESTAMP '2100-01-01 00:00:00'".into(),
        "SELECT count(*), sum(v) FROM t WHERE ts < TIMESTAMP '1970-01-01 00:10:00'".into(),
        "SELECT id FROM t WHERE text LIKE '%雪' AND v > 500 ORDER BY id".into(),
    ]
}

/// The query's result as text, through a provider with batch scans on or off, at `view`.
async fn run(
    db: &Arc<Db>,
    table: &Arc<TableData>,
    view: Arc<ReadView>,
    batch_scans: bool,
    sql: &str,
) -> String {
    let ctx = SessionContext::new();
    let provider = FloeTable::new(db.clone(), table.clone(), false).with_batch_scans(batch_scans);
    ctx.register_table("t", Arc::new(provider)).unwrap();
    let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await;
    let plan = plan.unwrap();
    let state = ctx.state();
    let config = state.config().clone().with_extension(view);
    let task = Arc::new(TaskContext::from(&state).with_session_config(config));
    let batches: Vec<RecordBatch> = datafusion::physical_plan::collect(plan, task)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

/// `(id, v)` of every row at `view`, through batch scans.
async fn ids(db: &Arc<Db>, table: &Arc<TableData>, view: Arc<ReadView>) -> Vec<(i64, i32)> {
    let text = run(db, table, view, true, "SELECT id, v FROM t ORDER BY id").await;
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).filter(|c| !c.is_empty());
            let id = cells.next()?.parse().ok()?;
            let v = cells.next()?.parse().ok()?;
            Some((id, v))
        })
        .collect()
}

/// Row groups read by batch scans so far, over the table's current runs.
fn scanned(table: &TableData) -> u64 {
    table
        .cold
        .current()
        .runs
        .iter()
        .map(|r| r.row_groups_scanned())
        .sum()
}

/// Checks every query at `view` with batch scans on and off, and the rows against `model`.
async fn check(
    db: &Arc<Db>,
    table: &Arc<TableData>,
    view: Arc<ReadView>,
    model: &BTreeMap<i64, i32>,
    max_id: i64,
    context: &str,
) {
    for sql in queries(max_id) {
        let fast = run(db, table, view.clone(), true, &sql).await;
        let merged = run(db, table, view.clone(), false, &sql).await;
        assert_eq!(fast, merged, "{context}: {sql}");
    }
    let expect: Vec<(i64, i32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(ids(db, table, view).await, expect, "{context}");
}

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(
        dir,
        DbOptions {
            flush_age_commits: Some(0),
            ..DbOptions::default()
        },
    )
    .unwrap()
}

async fn create(db: &Arc<Db>) -> Arc<TableData> {
    let def = Arc::new(def(db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    db.table(def.id).unwrap()
}

fn now(db: &Db) -> Arc<ReadView> {
    Arc::new(ReadView::committed(db.snapshot()))
}

/// The cases one by one: a cold-only table, hot updates and deletes of cold keys, a held
/// snapshot, several runs (disjoint and overlapping), TRUNCATE then new rows, a restart.
#[tokio::test(flavor = "multi_thread")]
async fn batch_scans_read_like_the_merge_and_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let table = create(&db).await;
    let mut model: BTreeMap<i64, i32> = BTreeMap::new();
    let first: Vec<(i64, i32)> = (1..=3000).map(|id| (id, (id * 7 % 1000) as i32)).collect();
    write(&db, &table, &first, &[]).await;
    model.extend(first.iter().copied());
    db.checkpoint().unwrap();
    assert_eq!(table.cold.current().runs.len(), 1, "one run");
    assert!(table.hot.key_count() < 10, "the rows went cold");
    check(&db, &table, now(&db), &model, 3000, "cold only").await;
    assert!(scanned(&table) > 0, "the scan read the run by batch");

    // Hot updates and deletes of cold keys, and a snapshot held from before them.
    let held: Arc<Snapshot> = db.snapshot();
    let held_model = model.clone();
    write(
        &db,
        &table,
        &[(5, -5), (2999, -1), (4000, 4)],
        &[6, 7, 1500],
    )
    .await;
    model.extend([(5, -5), (2999, -1), (4000, 4)]);
    for id in [6, 7, 1500] {
        model.remove(&id);
    }
    check(&db, &table, now(&db), &model, 4000, "hot over cold").await;
    let held_view = Arc::new(ReadView::committed(held.clone()));
    check(&db, &table, held_view.clone(), &held_model, 4000, "held").await;

    // A second, disjoint run, and a third that overlaps both (the updated keys).
    let second: Vec<(i64, i32)> = (5000..=6000).map(|id| (id, id as i32 % 77)).collect();
    write(&db, &table, &second, &[]).await;
    model.extend(second.iter().copied());
    drop(held_view);
    drop(held);
    db.checkpoint().unwrap();
    assert!(table.cold.current().runs.len() >= 2, "more runs");
    check(&db, &table, now(&db), &model, 6000, "several runs").await;

    // TRUNCATE, then new rows: the old runs are hidden.
    let before_truncate = db.snapshot();
    let before_model = model.clone();
    truncate(&db, &table).await;
    model.clear();
    let third: Vec<(i64, i32)> = (100..=400).map(|id| (id, -(id as i32))).collect();
    write(&db, &table, &third, &[]).await;
    model.extend(third.iter().copied());
    check(&db, &table, now(&db), &model, 6000, "truncated").await;
    let view = Arc::new(ReadView::committed(before_truncate.clone()));
    check(&db, &table, view, &before_model, 6000, "before truncate").await;
    drop(before_truncate);
    db.checkpoint().unwrap();
    check(&db, &table, now(&db), &model, 6000, "truncated, flushed").await;

    // After a restart, with nothing hot.
    db.close();
    drop(db);
    let db = open(dir.path());
    let table = db.table(table.def.id).unwrap();
    check(&db, &table, now(&db), &model, 6000, "restarted").await;
    db.close();
}

/// A deterministic xorshift generator: failures replay from the printed seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random writes, deletes, flushes, truncations and held snapshots: batch scans answer as
/// the merge and the model at the newest and every held snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn random_histories_scan_alike() {
    let seeds: Vec<u64> = match (
        std::env::var("FLOE_COLD_SCAN_SEED"),
        std::env::var("FLOE_COLD_SCAN_SEEDS"),
    ) {
        (Ok(seed), _) => vec![seed.parse().expect("FLOE_COLD_SCAN_SEED is a number")],
        (_, Ok(n)) => (1..=n.parse().expect("FLOE_COLD_SCAN_SEEDS is a number")).collect(),
        _ => (1..=4).collect(),
    };
    let mut batch_reads = 0;
    for seed in seeds {
        println!("FLOE_COLD_SCAN_SEED={seed}");
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let table = create(&db).await;
        let mut model: BTreeMap<i64, i32> = BTreeMap::new();
        let mut held: Vec<(Arc<Snapshot>, BTreeMap<i64, i32>)> = Vec::new();
        let max_id = 2000;
        for step in 0..24 {
            match rng.below(10) {
                0..=3 => {
                    // A block of new or rewritten keys (a run of its own once flushed).
                    let start = rng.below(max_id as u64) as i64;
                    let len = 1 + rng.below(300) as i64;
                    let v = rng.below(1000) as i32;
                    let rows: Vec<(i64, i32)> = (start..(start + len).min(max_id))
                        .map(|id| (id, v + id as i32 % 10))
                        .collect();
                    write(&db, &table, &rows, &[]).await;
                    model.extend(rows);
                }
                4 | 5 => {
                    // Scattered updates and deletes.
                    let rows: Vec<(i64, i32)> = (0..rng.below(20))
                        .map(|_| (rng.below(max_id as u64) as i64, rng.below(50) as i32))
                        .collect();
                    let deletes: Vec<i64> = (0..rng.below(20))
                        .map(|_| rng.below(max_id as u64) as i64)
                        .filter(|id| !rows.iter().any(|r| r.0 == *id))
                        .collect();
                    let mut deletes_unique = deletes.clone();
                    deletes_unique.sort_unstable();
                    deletes_unique.dedup();
                    let mut rows_unique: BTreeMap<i64, i32> = BTreeMap::new();
                    rows_unique.extend(rows);
                    let rows: Vec<(i64, i32)> = rows_unique.into_iter().collect();
                    write(&db, &table, &rows, &deletes_unique).await;
                    model.extend(rows);
                    for id in deletes_unique {
                        model.remove(&id);
                    }
                }
                6 | 7 => {
                    db.checkpoint().unwrap();
                }
                8 => {
                    if rng.below(3) == 0 {
                        truncate(&db, &table).await;
                        model.clear();
                    } else {
                        held.push((db.snapshot(), model.clone()));
                    }
                }
                _ => {
                    held.clear();
                }
            }
            let context = format!("seed {seed}, step {step}");
            check(&db, &table, now(&db), &model, max_id, &context).await;
            for (snapshot, then) in &held {
                let view = Arc::new(ReadView::committed(snapshot.clone()));
                let context = format!("{context}, snapshot {}", snapshot.ts);
                check(&db, &table, view, then, max_id, &context).await;
            }
        }
        batch_reads += scanned(&table);
        held.clear();
        db.close();
    }
    assert!(batch_reads > 0, "some scan read a run by batch");
}

/// Rough timings (not a benchmark: `bench/` owns those): `count(*)` and `sum` over
/// `FLOE_COLD_SCAN_ROWS` (default 1 000 000) cold rows, with batch scans and through the merge.
/// Run with `cargo test --release -p floe-storage --test cold_scan -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn measure_batch_scans_against_the_merge() {
    let rows: i64 = std::env::var("FLOE_COLD_SCAN_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let def = Arc::new(TableDef {
        columns: vec![
            column(1, "id", DataType::Int64, false),
            column(2, "v", DataType::Int32, true),
            column(3, "text", DataType::Utf8, true),
        ],
        next_column_id: 4,
        ..def(&db)
    });
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    let started = std::time::Instant::now();
    for chunk in (1..=rows).collect::<Vec<_>>().chunks(50_000) {
        let ids = Int64Array::from_iter_values(chunk.iter().copied());
        let vs = Int32Array::from_iter_values(chunk.iter().map(|id| (id % 1000) as i32));
        let texts = StringArray::from_iter_values(chunk.iter().map(|id| format!("row {id:08}")));
        let columns: Vec<ArrayRef> = vec![Arc::new(ids), Arc::new(vs), Arc::new(texts)];
        let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
        let encoded = table.codec.encode_rows(&columns).unwrap();
        let mut txn = db.begin(Isolation::ReadCommitted);
        for i in 0..chunk.len() {
            let key: floe_storage::Key = Arc::from(keys.row(i).data());
            txn.lock_row(&table, &key).await.unwrap();
            txn.write(&table, key, Some(Arc::from(encoded.row(i).data())))
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
    }
    println!("loaded {rows} rows in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    db.checkpoint().unwrap();
    println!(
        "flushed in {:?}: {} runs, {} keys hot",
        started.elapsed(),
        table.cold.current().runs.len(),
        table.hot.key_count()
    );
    // DataFusion reading the same files directly (no visibility filter: every row is live).
    let raw = SessionContext::new();
    let files: Vec<String> = table
        .cold
        .current()
        .runs
        .iter()
        .map(|r| format!("{}/cold/{}", dir.path().display(), r.meta().path))
        .collect();
    raw.register_parquet("t", files[0].as_str(), Default::default())
        .await
        .unwrap();
    for sql in [
        "SELECT count(*) FROM t",
        "SELECT sum(v) FROM t",
        "SELECT sum(v), max(text) FROM t",
        "SELECT count(*) FROM t WHERE v = 7",
        // Clustered with the key: row-group statistics prune all but the first group.
        "SELECT count(*), sum(v) FROM t WHERE text < 'row 00100000'",
    ] {
        if files.len() == 1 {
            for _ in 0..2 {
                let started = std::time::Instant::now();
                let batches = raw.sql(sql).await.unwrap().collect().await.unwrap();
                let out = pretty_format_batches(&batches).unwrap().to_string();
                let answer = out.lines().nth(3).unwrap_or_default().to_string();
                println!(
                    "{sql:40} DataFusion on the run:   {:>10.1?}  {answer}",
                    started.elapsed()
                );
            }
        }
        for batch_scans in [true, false, true, false] {
            let groups_before = scanned(&table);
            let started = std::time::Instant::now();
            let out = run(&db, &table, now(&db), batch_scans, sql).await;
            let answer = out.lines().nth(3).unwrap_or_default().to_string();
            println!(
                "{sql:40} batch scans {batch_scans:5}: {:>10.1?}  {answer} ({} row groups)",
                started.elapsed(),
                scanned(&table) - groups_before
            );
        }
    }
    // Hot updates of 1% of the cold keys: the batch scan hides them with a key filter.
    let updated: Vec<(i64, i32)> = (1..=rows).step_by(100).map(|id| (id, 0)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(updated.iter().map(|r| r.0))),
        Arc::new(Int32Array::from_iter_values(updated.iter().map(|r| r.1))),
        Arc::new(StringArray::from_iter_values(updated.iter().map(|_| "hot"))),
    ];
    let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
    let encoded = table.codec.encode_rows(&columns).unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for i in 0..updated.len() {
        let key: floe_storage::Key = Arc::from(keys.row(i).data());
        txn.lock_row(&table, &key).await.unwrap();
        txn.write(&table, key, Some(Arc::from(encoded.row(i).data())))
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    let sql = "SELECT count(*), sum(v) FROM t";
    for batch_scans in [true, false, true, false] {
        let started = std::time::Instant::now();
        let out = run(&db, &table, now(&db), batch_scans, sql).await;
        let answer = out.lines().nth(3).unwrap_or_default().to_string();
        println!(
            "{} keys hot: {sql:30} batch scans {batch_scans:5}: {:>10.1?}  {answer}",
            updated.len(),
            started.elapsed()
        );
    }
    db.close();
}

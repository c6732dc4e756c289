//! Micro benchmarks of the storage engine's inner loops (run by `bench/run micro`):
//! - `codec/*`: row and key encoding/decoding of pgbench_accounts-shaped rows;
//! - `hot/*`: the hot tier's ordered map (point get at a snapshot, apply of a new version, a
//!   full-table scan in chunks);
//! - `commit/*`: a commit through the committer thread, one synced log write each (single-row
//!   and 100-row transactions) — this one measures the disk's sync latency as much as Floe.

use std::ops::Bound;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use floe_storage::hot::HotTable;
use floe_storage::{
    CatalogChange, ColumnDef, Db, DbOptions, Isolation, Key, PrimaryKey, RelationKind, RowBytes,
    TableData, TableDef,
};

const ROWS: i32 = 100_000;

fn column(id: u32, name: &str, data_type: DataType, nullable: bool) -> ColumnDef {
    ColumnDef {
        id,
        name: name.into(),
        field: Field::new(name, data_type, nullable),
        default: None,
        identity: None,
    }
}

/// `pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler text)`.
fn accounts_def(id: u32) -> TableDef {
    TableDef {
        id,
        database: "postgres".into(),
        schema: "public".into(),
        name: "accounts".into(),
        kind: RelationKind::Table,
        columns: vec![
            column(1, "aid", DataType::Int32, false),
            column(2, "bid", DataType::Int32, true),
            column(3, "abalance", DataType::Int32, true),
            column(4, "filler", DataType::Utf8, true),
        ],
        primary_key: Some(PrimaryKey {
            name: "accounts_pkey".into(),
            columns: vec![0],
        }),
        constraints: vec![],
        indexes: vec![],
        next_column_id: 5,
        persistence: Default::default(),
    }
}

fn columns(from: i32, count: i32) -> Vec<ArrayRef> {
    let ids = from..from + count;
    vec![
        Arc::new(Int32Array::from_iter_values(ids.clone())),
        Arc::new(Int32Array::from_iter_values(
            ids.clone().map(|i| i / 100_000 + 1),
        )),
        Arc::new(Int32Array::from_iter_values(ids.clone().map(|_| 0))),
        Arc::new(StringArray::from_iter_values(ids.map(|_| " ".repeat(84)))),
    ]
}

fn encoded(table: &TableData, from: i32, count: i32) -> Vec<(Key, RowBytes)> {
    let cols = columns(from, count);
    let keys = table.codec.encode_keys(&cols).unwrap().unwrap();
    let rows = table.codec.encode_rows(&cols).unwrap();
    (0..count as usize)
        .map(|i| (Arc::from(keys.row(i).data()), Arc::from(rows.row(i).data())))
        .collect()
}

fn codec(c: &mut Criterion) {
    let table = TableData::new(Arc::new(accounts_def(16384))).unwrap();
    let cols = columns(1, 1000);
    let rows = encoded(&table, 1, 1000);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("encode_rows_1000", |b| {
        b.iter(|| table.codec.encode_rows(&cols).unwrap())
    });
    group.bench_function("encode_keys_1000", |b| {
        b.iter(|| table.codec.encode_keys(&cols).unwrap())
    });
    group.bench_function("decode_rows_1000", |b| {
        b.iter(|| {
            table
                .codec
                .decode_rows(rows.iter().map(|(_, r)| r.as_ref()))
                .unwrap()
        })
    });
    group.finish();
}

fn hot(c: &mut Criterion) {
    let table = TableData::new(Arc::new(accounts_def(16384))).unwrap();
    let hot = HotTable::default();
    let rows = encoded(&table, 1, ROWS);
    let changes: Vec<(Key, Option<RowBytes>)> = rows
        .iter()
        .map(|(k, r)| (k.clone(), Some(r.clone())))
        .collect();
    hot.apply_all(changes.iter().map(|(k, r)| (k, r)), 1, 1, |_, _, _| {});
    let mut group = c.benchmark_group("hot");
    let mut i = 0usize;
    group.bench_function("get_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % rows.len();
            hot.get(&rows[i].0, 10).unwrap()
        })
    });
    let mut ts = 2u64;
    group.bench_function("apply_update_100k", |b| {
        b.iter(|| {
            i = (i + 7919) % rows.len();
            ts += 1;
            hot.apply(&rows[i].0, Some(rows[i].1.clone()), ts, ts)
        })
    });
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("scan_100k", |b| {
        b.iter(|| {
            let range = (Bound::Unbounded, Bound::Unbounded);
            let mut out = Vec::with_capacity(8192);
            let mut seen = 0;
            let mut range = range;
            loop {
                out.clear();
                let next = hot.scan_chunk(&range, u64::MAX, 8192, &mut out);
                seen += out.len();
                match next {
                    Some(key) => range = (Bound::Excluded(key), Bound::Unbounded),
                    None => break,
                }
            }
            seen
        })
    });
    group.finish();
}

fn commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let def = Arc::new(accounts_def(db.allocate_oid()));
    rt.block_on(db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())]))
        .unwrap();
    let table = db.table(def.id).unwrap();
    let mut next = 0i32;
    let mut group = c.benchmark_group("commit");
    group.sample_size(20);
    for size in [1i32, 100] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("insert_{size}_rows_synced"), |b| {
            b.iter_batched(
                || {
                    next += size;
                    encoded(&table, next, size)
                },
                |rows| {
                    rt.block_on(async {
                        let mut txn = db.begin(Isolation::ReadCommitted);
                        for (key, row) in rows {
                            txn.lock_row(&table, &key).await.unwrap();
                            txn.write(&table, key, Some(row)).await.unwrap();
                        }
                        txn.commit().await.unwrap()
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    db.close();
}

criterion_group!(benches, codec, hot, commit);
criterion_main!(benches);

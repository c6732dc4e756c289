//! Views fed from the database: the tables' rows at a snapshot, then every commit (inserts,
//! updates, deletes, TRUNCATE with rows written after it in the same transaction); after each
//! commit the view equals its defining query over the table's rows at that commit.

mod common;
use common::lines;

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use floe_storage::{
    CatalogChange, ColumnDef, Db, DbOptions, Isolation, Key, PrimaryKey, RelationKind, RowBytes,
    TableData, TableDef,
};
use floe_views::{compile, Feed, Permits, View};

fn def(db: &Db) -> TableDef {
    let column = |id: u32, name: &str, data_type: DataType, nullable: bool| ColumnDef {
        id,
        name: name.into(),
        field: Field::new(name, data_type, nullable),
        default: None,
        identity: None,
    };
    TableDef {
        id: db.allocate_oid(),
        database: "postgres".into(),
        schema: "public".into(),
        name: "accounts".into(),
        kind: RelationKind::Table,
        columns: vec![
            column(1, "id", DataType::Int32, false),
            column(2, "customer", DataType::Int32, true),
            column(3, "balance", DataType::Int64, true),
            column(4, "note", DataType::Utf8, true),
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

type Account = (i32, i32, i64);

fn encode(table: &TableData, rows: &[Account]) -> Vec<(Key, RowBytes)> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("ü{}", r.0)),
        )),
    ];
    let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
    let encoded = table.codec.encode_rows(&columns).unwrap();
    (0..rows.len())
        .map(|i| {
            (
                Arc::from(keys.row(i).data()),
                Arc::from(encoded.row(i).data()),
            )
        })
        .collect()
}

/// The table's rows at `ts`, read through the storage's own scan.
fn rows_at(db: &Db, table: &TableData, ts: u64) -> RecordBatch {
    let current = db.table(table.def.id).unwrap();
    let sources = current.sources(ts);
    let mut all = Vec::new();
    let mut range = (Bound::Unbounded, Bound::Unbounded);
    while let Some(last) = sources.try_scan_chunk(&range, 5, &mut all).unwrap() {
        range.0 = Bound::Excluded(last);
    }
    table
        .codec
        .decode_rows(all.iter().map(|(_, r)| r.as_ref()))
        .unwrap()
}

async fn context(table: &TableData, rows: RecordBatch) -> SessionContext {
    let ctx = SessionContext::new();
    let mem = MemTable::try_new(table.codec.schema().clone(), vec![vec![rows]]).unwrap();
    ctx.register_table("accounts", Arc::new(mem)).unwrap();
    ctx
}

const VIEWS: [&str; 3] = [
    "SELECT customer, count(*) AS n, sum(balance) AS total FROM accounts GROUP BY customer",
    "SELECT id, balance * 2 AS doubled, note FROM accounts WHERE balance > 500",
    "SELECT count(*) AS n, max(balance) AS top FROM accounts",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fed_views_follow_commits_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let def = Arc::new(def(&db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    let seed: u64 = std::env::var("FLOE_VIEWS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(99);
    let mut rng = seed;
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    // Rows committed before the views start come from the snapshot.
    let mut txn = db.begin(Isolation::ReadCommitted);
    let initial: Vec<Account> = (1..=20).map(|i| (i, i % 4, i64::from(i) * 37)).collect();
    for (key, row) in encode(&table, &initial) {
        txn.lock_row(&table, &key).await.unwrap();
        txn.write(&table, key, Some(row)).await.unwrap();
    }
    txn.commit().await.unwrap();

    let mut views = Vec::new();
    for sql in VIEWS {
        let ctx = context(&table, rows_at(&db, &table, db.visible_ts())).await;
        let plan = ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap();
        let view = Arc::new(View::start(compile(&plan).unwrap(), 0).unwrap());
        let (feed, _) = Feed::start(db.clone(), view.clone(), vec![def.id]).unwrap();
        views.push((sql, view, feed));
    }
    let mut truncates = 0;
    for round in 0..60 {
        let mut txn = db.begin(Isolation::ReadCommitted);
        if next(12) == 0 {
            txn.truncate(&table);
            truncates += 1;
        }
        for _ in 0..=next(5) {
            let id = next(40) as i32 + 1;
            let key_row = encode(&table, &[(id, next(5) as i32, next(1000) as i64)]);
            let (key, row) = key_row.into_iter().next().unwrap();
            txn.lock_row(&table, &key).await.unwrap();
            let delete = next(4) == 0;
            txn.write(&table, key, (!delete).then_some(row))
                .await
                .unwrap();
        }
        let ts = txn
            .commit()
            .await
            .unwrap()
            .unwrap_or_else(|| db.visible_ts());
        let current = rows_at(&db, &table, ts);
        for (sql, view, _) in &views {
            view.wait(ts, Duration::from_secs(30)).unwrap();
            let ctx = context(&table, current.clone()).await;
            let expected = lines(&ctx.sql(sql).await.unwrap().collect().await.unwrap());
            let got = lines(&[view.read().unwrap()]);
            assert_eq!(
                expected, got,
                "seed {seed}, round {round}, ts {ts}, view {sql}"
            );
        }
    }
    assert!(
        truncates > 0,
        "seed {seed}: no transaction truncated the table"
    );
    for (_, _, feed) in views {
        feed.stop().unwrap();
    }
}

/// A feed held back past the change stream's retention (here while it waits for its permit
/// to load its snapshot) catches up from a new snapshot: the view equals its query after
/// it, and the commits it skipped get an error, never a stale answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_falls_behind_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        DbOptions {
            change_retention_commits: 3,
            ..DbOptions::default()
        },
    )
    .unwrap();
    let def = Arc::new(def(&db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    let write = |rows: Vec<Account>| {
        let db = db.clone();
        let table = table.clone();
        async move {
            let mut txn = db.begin(Isolation::ReadCommitted);
            for (key, row) in encode(&table, &rows) {
                txn.lock_row(&table, &key).await.unwrap();
                txn.write(&table, key, Some(row)).await.unwrap();
            }
            txn.commit().await.unwrap();
        }
    };
    write((1..=10).map(|i| (i, i % 3, 100)).collect()).await;
    let ctx = context(&table, rows_at(&db, &table, db.visible_ts())).await;
    let plan = ctx
        .sql(VIEWS[0])
        .await
        .unwrap()
        .into_optimized_plan()
        .unwrap();
    let view = Arc::new(View::start(compile(&plan).unwrap(), 0).unwrap());
    let permits = Arc::new(Permits::new(1));
    let blocker = permits.try_take().expect("a free permit");
    let (feed, start) = Feed::start_with(
        db.clone(),
        view.clone(),
        vec![def.id],
        Some(permits.clone()),
    )
    .unwrap();
    for round in 0..10 {
        write(vec![(round + 1, 7, 1000 + i64::from(round))]).await;
    }
    drop(blocker);
    let now = db.visible_ts();
    view.wait(now, Duration::from_secs(30)).unwrap();
    let ctx = context(&table, rows_at(&db, &table, now)).await;
    let expected = lines(&ctx.sql(VIEWS[0]).await.unwrap().collect().await.unwrap());
    assert_eq!(lines(&[view.read_at(now).unwrap()]), expected);
    // The commits between the snapshot and the catch-up have no answer.
    assert!(matches!(
        view.read_at(start + 2),
        Err(floe_views::ViewError::Behind(_))
    ));
    // And the view goes on following commits.
    write(vec![(50, 1, 5)]).await;
    let later = db.visible_ts();
    view.wait(later, Duration::from_secs(30)).unwrap();
    let ctx = context(&table, rows_at(&db, &table, later)).await;
    let expected = lines(&ctx.sql(VIEWS[0]).await.unwrap().collect().await.unwrap());
    assert_eq!(lines(&[view.read_at(later).unwrap()]), expected);
    feed.stop().unwrap();
}

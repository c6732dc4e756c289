//! Storage-level tests: commits, snapshots, recovery and the change stream, without SQL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use floe_storage::{
    CatalogChange, ColumnDef, Db, DbOptions, Isolation, PrimaryKey, RelationKind, RowCheck,
    StorageError, TableData, TableDef,
};

fn accounts_def(db: &Db, name: &str) -> TableDef {
    TableDef {
        id: db.allocate_oid(),
        database: "postgres".into(),
        schema: "public".into(),
        name: name.into(),
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
                name: "balance".into(),
                field: Field::new("balance", DataType::Int64, true),
                default: None,
                identity: None,
            },
            ColumnDef {
                id: 3,
                name: "note".into(),
                field: Field::new("note", DataType::Utf8, true),
                default: None,
                identity: None,
            },
        ],
        primary_key: Some(PrimaryKey {
            name: format!("{name}_pkey"),
            columns: vec![0],
        }),
        constraints: vec![],
        indexes: vec![],
        next_column_id: 4,
        persistence: Default::default(),
    }
}

async fn create(db: &Arc<Db>, name: &str) -> Arc<TableData> {
    let def = Arc::new(accounts_def(db, name));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    db.table(def.id).unwrap()
}

/// The table's columns for rows `(id, balance)` (the note is `row <id>`).
fn columns(values: &[(i32, i64)]) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int32Array::from_iter_values(values.iter().map(|v| v.0))),
        Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.1))),
        Arc::new(StringArray::from_iter_values(
            values.iter().map(|v| format!("row {}", v.0)),
        )),
    ]
}

/// Encodes rows `(id, balance, note)`; returns (key, row) pairs.
fn rows(
    table: &TableData,
    values: &[(i32, i64)],
) -> Vec<(floe_storage::Key, floe_storage::RowBytes)> {
    let columns = columns(values);
    let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
    let encoded = table.codec.encode_rows(&columns).unwrap();
    (0..values.len())
        .map(|i| {
            (
                Arc::from(keys.row(i).data()),
                Arc::from(encoded.row(i).data()),
            )
        })
        .collect()
}

fn balances(table: &TableData, ts: u64) -> Vec<(i32, i64)> {
    let visible = table.hot.visible_keys(ts);
    let batch = table
        .codec
        .decode_rows(visible.iter().map(|(_, r)| r.as_ref()))
        .unwrap();
    let ids = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    let bal = batch
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    (0..batch.num_rows())
        .map(|i| (ids.value(i), bal.value(i)))
        .collect()
}

#[tokio::test]
async fn commits_are_visible_to_later_snapshots_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = create(&db, "accounts").await;

    let before = db.snapshot();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for (key, row) in rows(&table, &[(1, 100), (2, 200)]) {
        txn.lock_row(&table, &key).await.unwrap();
        txn.write(&table, key, Some(row)).await.unwrap();
    }
    // Uncommitted: invisible to others, visible to the transaction itself.
    assert!(balances(&table, db.visible_ts()).is_empty());
    let own = txn.statement_view();
    assert_eq!(
        own.own_writes(
            table.def.id,
            &(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
        )
        .rows
        .len(),
        2
    );
    let ts = txn.commit().await.unwrap().unwrap();
    assert_eq!(balances(&table, ts), vec![(1, 100), (2, 200)]);
    assert!(balances(&table, before.ts).is_empty());

    // A rolled-back transaction leaves nothing.
    let mut txn = db.begin(Isolation::ReadCommitted);
    for (key, row) in rows(&table, &[(3, 300)]) {
        txn.lock_row(&table, &key).await.unwrap();
        txn.write(&table, key, Some(row)).await.unwrap();
    }
    drop(txn);
    assert_eq!(balances(&table, db.visible_ts()).len(), 2);
}

#[tokio::test]
async fn recovery_replays_every_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let table_id;
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        let table = create(&db, "accounts").await;
        table_id = table.def.id;
        for i in 0..50 {
            let mut txn = db.begin(Isolation::ReadCommitted);
            for (key, row) in rows(&table, &[(i, i as i64 * 10)]) {
                txn.lock_row(&table, &key).await.unwrap();
                txn.write(&table, key, Some(row)).await.unwrap();
            }
            txn.commit().await.unwrap();
        }
        // Delete one, update one.
        let mut txn = db.begin(Isolation::ReadCommitted);
        let changed = rows(&table, &[(7, -1), (8, 8888)]);
        txn.lock_row(&table, &changed[0].0).await.unwrap();
        txn.write(&table, changed[0].0.clone(), None).await.unwrap();
        txn.lock_row(&table, &changed[1].0).await.unwrap();
        txn.write(&table, changed[1].0.clone(), Some(changed[1].1.clone()))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        db.close();
    }
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = db.table(table_id).expect("table survives restart");
    let all = balances(&table, db.visible_ts());
    assert_eq!(all.len(), 49);
    assert!(!all.iter().any(|(id, _)| *id == 7));
    assert!(all.contains(&(8, 8888)));
    assert_eq!(
        db.catalog()
            .relation_by_name("postgres", "public", "accounts")
            .map(|t| t.id),
        Some(table_id)
    );
    // New OIDs never collide with recovered ones.
    assert!(db.allocate_oid() > table_id);
}

#[tokio::test]
async fn repeatable_read_conflicts_and_read_committed_sees_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = create(&db, "c").await;
    let initial = rows(&table, &[(1, 0)]);
    let (key, row) = initial[0].clone();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.lock_row(&table, &key).await.unwrap();
    txn.write(&table, key.clone(), Some(row)).await.unwrap();
    txn.commit().await.unwrap();

    let mut rr = db.begin(Isolation::RepeatableRead);
    let rr_view = rr.statement_view();
    let mut rc = db.begin(Isolation::ReadCommitted);
    let rc_view = rc.statement_view();

    let updated = rows(&table, &[(1, 1)]);
    let mut writer = db.begin(Isolation::ReadCommitted);
    writer.lock_row(&table, &key).await.unwrap();
    writer
        .write(&table, key.clone(), Some(updated[0].1.clone()))
        .await
        .unwrap();
    writer.commit().await.unwrap();

    rr.lock_row(&table, &key).await.unwrap();
    assert!(matches!(
        rr.check_row(&table, &key, &rr_view),
        Err(StorageError::SerializationFailure)
    ));
    drop(rr);
    rc.lock_row(&table, &key).await.unwrap();
    assert_eq!(
        rc.check_row(&table, &key, &rc_view).unwrap(),
        RowCheck::Changed(Some(updated[0].1.clone()))
    );
}

#[tokio::test]
async fn the_change_stream_carries_commits_in_order_and_nothing_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = create(&db, "s").await;
    let mut reader = db.changes(db.visible_ts());

    let r = rows(&table, &[(1, 10), (2, 20)]);
    let mut t1 = db.begin(Isolation::ReadCommitted);
    for (k, row) in &r {
        t1.lock_row(&table, k).await.unwrap();
        t1.write(&table, k.clone(), Some(row.clone()))
            .await
            .unwrap();
    }
    let ts1 = t1.commit().await.unwrap().unwrap();

    let mut aborted = db.begin(Isolation::ReadCommitted);
    aborted.lock_row(&table, &r[0].0).await.unwrap();
    aborted.write(&table, r[0].0.clone(), None).await.unwrap();
    drop(aborted);

    let updated = rows(&table, &[(2, 21)]);
    let mut t2 = db.begin(Isolation::ReadCommitted);
    t2.lock_row(&table, &updated[0].0).await.unwrap();
    t2.write(&table, updated[0].0.clone(), Some(updated[0].1.clone()))
        .await
        .unwrap();
    let ts2 = t2.commit().await.unwrap().unwrap();

    let first = reader.next().await.unwrap();
    assert_eq!(first.commit_ts, ts1);
    assert_eq!(
        first.changes.iter().map(|c| c.diff).collect::<Vec<_>>(),
        vec![1, 1]
    );
    let second = reader.next().await.unwrap();
    assert_eq!(second.commit_ts, ts2);
    assert_eq!(
        ts2,
        ts1 + 1,
        "the rolled-back transaction took no timestamp"
    );
    let diffs: Vec<(i64, &[u8])> = second
        .changes
        .iter()
        .map(|c| (c.diff, c.row.as_ref()))
        .collect();
    assert_eq!(
        diffs,
        vec![(-1, r[1].1.as_ref()), (1, updated[0].1.as_ref())]
    );
}

#[tokio::test]
async fn concurrent_increments_serialize_on_the_row_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = create(&db, "counter").await;
    let (key, row) = rows(&table, &[(1, 0)]).remove(0);
    let mut t = db.begin(Isolation::ReadCommitted);
    t.lock_row(&table, &key).await.unwrap();
    t.write(&table, key.clone(), Some(row)).await.unwrap();
    t.commit().await.unwrap();

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db = db.clone();
        let table = table.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let mut txn = db.begin(Isolation::ReadCommitted);
                let view = txn.statement_view();
                txn.lock_row(&table, &key).await.unwrap();
                let current = match txn.check_row(&table, &key, &view).unwrap() {
                    RowCheck::Current(r) | RowCheck::Changed(r) => r.unwrap(),
                };
                let batch = table.codec.decode_rows([current.as_ref()]).unwrap();
                let value = batch
                    .column(1)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0);
                let (_, new_row) = rows(&table, &[(1, value + 1)]).remove(0);
                txn.write(&table, key.clone(), Some(new_row)).await.unwrap();
                txn.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(balances(&table, db.visible_ts()), vec![(1, 200)]);
}

#[tokio::test]
async fn sequences_never_repeat_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let seq = TableDef {
        id: 20000,
        database: "postgres".into(),
        schema: "public".into(),
        name: "s".into(),
        kind: RelationKind::Sequence(floe_storage::SequenceDef {
            start: 1,
            increment: 1,
            min: 1,
            max: i64::MAX,
            cycle: false,
            owned_by: None,
        }),
        columns: vec![],
        primary_key: None,
        constraints: vec![],
        indexes: vec![],
        next_column_id: 1,
        persistence: Default::default(),
    };
    let last;
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        assert_eq!(db.nextval(&seq).unwrap(), Some(1));
        assert_eq!(db.nextval(&seq).unwrap(), Some(2));
        last = db.nextval(&seq).unwrap().unwrap();
        db.close();
    }
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    assert!(db.nextval(&seq).unwrap().unwrap() > last);
}

#[tokio::test]
async fn the_memory_budget_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        DbOptions {
            memory_limit: Some(64 * 1024),
            ..DbOptions::default()
        },
    )
    .unwrap();
    let table = create(&db, "big").await;
    let mut txn = db.begin(Isolation::ReadCommitted);
    let mut failed = false;
    for i in 0..10_000 {
        let (key, row) = rows(&table, &[(i, i as i64)]).remove(0);
        if let Err(e) = txn.write(&table, key, Some(row)).await {
            assert!(matches!(e, StorageError::MemoryLimit { .. }), "{e:?}");
            failed = true;
            break;
        }
    }
    assert!(failed, "64 KiB cannot hold 10k rows");
}

/// A table whose `balance` is UNIQUE; storage adds the constraint's index on commit.
async fn create_unique(db: &Arc<Db>, name: &str) -> Arc<TableData> {
    let mut def = accounts_def(db, name);
    def.constraints.push(floe_storage::ConstraintDef::Unique {
        name: format!("{name}_balance_key"),
        columns: vec![2],
    });
    db.commit_catalog(vec![CatalogChange::PutRelation(Arc::new(def.clone()))])
        .await
        .unwrap();
    db.table(def.id).unwrap()
}

async fn insert(db: &Arc<Db>, table: &Arc<TableData>, values: &[(i32, i64)]) -> u64 {
    let mut txn = db.begin(Isolation::ReadCommitted);
    for (key, row) in rows(table, values) {
        txn.lock_row(table, &key).await.unwrap();
        txn.write(table, key, Some(row)).await.unwrap();
    }
    txn.commit().await.unwrap().unwrap()
}

fn balance_key(table: &TableData, balance: i64) -> floe_storage::Key {
    let index = &table.indexes[0];
    let values: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values([balance]))];
    index.encode_values(&values).unwrap().remove(0)
}

#[tokio::test]
async fn unique_indexes_follow_commits_and_reject_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = create_unique(&db, "u").await;
    assert_eq!(table.def.indexes.len(), 1);
    assert!(table.def.indexes[0].unique && table.def.indexes[0].constraint);
    insert(&db, &table, &[(1, 100), (2, 200)]).await;
    let index = table.indexes[0].clone();
    let k1 = rows(&table, &[(1, 0)]).remove(0).0;
    assert_eq!(
        index.candidates(&balance_key(&table, 100)),
        vec![k1.clone()]
    );

    // A held snapshot keeps the old entry; after the horizon passes it, vacuum drops it.
    let old_snapshot = db.snapshot();
    insert(&db, &table, &[(1, 150)]).await;
    assert_eq!(
        index.candidates(&balance_key(&table, 150)),
        vec![k1.clone()]
    );
    assert_eq!(
        index.candidates(&balance_key(&table, 100)),
        vec![k1.clone()]
    );
    index.vacuum(old_snapshot.ts);
    assert_eq!(index.len(), 3);
    drop(old_snapshot);
    index.vacuum(db.visible_ts());
    assert_eq!(index.len(), 2);
    assert!(index.candidates(&balance_key(&table, 100)).is_empty());

    // A duplicate is refused, with PostgreSQL's message; the freed value is available.
    let mut txn = db.begin(Isolation::ReadCommitted);
    let (key, row) = rows(&table, &[(3, 200)]).remove(0);
    txn.lock_row(&table, &key).await.unwrap();
    match txn.write(&table, key, Some(row)).await {
        Err(StorageError::UniqueViolation { constraint, detail }) => {
            assert_eq!(constraint, "u_balance_key");
            assert_eq!(detail, "Key (balance)=(200) already exists.");
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    drop(txn);
    insert(&db, &table, &[(3, 100)]).await;

    // Deleting and re-inserting a value in one transaction works.
    let mut txn = db.begin(Isolation::ReadCommitted);
    let (k3, _) = rows(&table, &[(3, 0)]).remove(0);
    txn.lock_row(&table, &k3).await.unwrap();
    txn.write(&table, k3, None).await.unwrap();
    let (k4, r4) = rows(&table, &[(4, 100)]).remove(0);
    txn.lock_row(&table, &k4).await.unwrap();
    txn.write(&table, k4, Some(r4)).await.unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn unique_indexes_are_built_checked_and_rebuilt_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        let table = create(&db, "b").await;
        id = table.def.id;
        insert(&db, &table, &[(1, 10), (2, 10), (3, 30)]).await;
        let mut def = table.def.as_ref().clone();
        def.constraints.push(floe_storage::ConstraintDef::Unique {
            name: "b_balance_key".into(),
            columns: vec![2],
        });
        let err = db
            .commit_catalog(vec![CatalogChange::PutRelation(Arc::new(def.clone()))])
            .await
            .unwrap_err();
        match err {
            StorageError::DuplicateInIndex { index, detail } => {
                assert_eq!(index, "b_balance_key");
                assert_eq!(detail, "Key (balance)=(10) is duplicated.");
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert!(db.table(id).unwrap().def.indexes.is_empty());
        insert(&db, &table, &[(2, 20)]).await;
        db.commit_catalog(vec![CatalogChange::PutRelation(Arc::new(def))])
            .await
            .unwrap();
        let table = db.table(id).unwrap();
        // The replaced version (2, 10) is still kept for old snapshots, so its entry is too.
        assert_eq!(
            table.indexes[0].candidates(&balance_key(&table, 20)).len(),
            1
        );
        db.close();
    }
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = db.table(id).unwrap();
    assert_eq!(table.indexes.len(), 1);
    assert_eq!(table.indexes[0].len(), 3);
    let mut txn = db.begin(Isolation::ReadCommitted);
    let (key, row) = rows(&table, &[(9, 30)]).remove(0);
    txn.lock_row(&table, &key).await.unwrap();
    let err = txn.write(&table, key, Some(row)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::UniqueViolation { .. }),
        "{err:?}"
    );
}

/// The bulk path COPY uses: many rows per call, a key that exists stops at its position,
/// savepoints undo a bulk insert, other writers wait for its keys, and a commit big enough to
/// span several IPC batches of the log record survives a restart.
#[tokio::test]
async fn bulk_inserts_check_keys_lock_them_and_survive_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let n = floe_storage::codec::LOG_BATCH_ROWS as i32 * 2 + 100;
    let table_id;
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        let table = create(&db, "bulk").await;
        table_id = table.def.id;
        insert(&db, &table, &[(5, 5)]).await;

        let mut txn = db.begin(Isolation::ReadCommitted);
        // Row 5 is committed already: the first call stops there, rows before it are written.
        let first: Vec<(i32, i64)> = (1..=10).map(|i| (i, i as i64)).collect();
        assert_eq!(
            txn.insert_new(&table, rows(&table, &first), None)
                .await
                .unwrap(),
            Some(4)
        );
        // A duplicate within the transaction's own rows, and within one call.
        assert_eq!(
            txn.insert_new(&table, rows(&table, &[(11, 0), (2, 0)]), None)
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(
            txn.insert_new(&table, rows(&table, &[(12, 0), (12, 0)]), None)
                .await
                .unwrap(),
            Some(1)
        );
        drop(txn);

        let mut txn = db.begin(Isolation::ReadCommitted);
        let mark = txn.savepoint();
        let undone: Vec<(i32, i64)> = (100..200).map(|i| (i, 0)).collect();
        assert_eq!(
            txn.insert_new(&table, rows(&table, &undone), None)
                .await
                .unwrap(),
            None
        );
        txn.rollback_to(mark);
        let all: Vec<(i32, i64)> = (1..=n).filter(|i| *i != 5).map(|i| (i, 1)).collect();
        for chunk in all.chunks(10_000) {
            assert_eq!(
                txn.insert_new(&table, rows(&table, chunk), None)
                    .await
                    .unwrap(),
                None
            );
        }
        // Another writer of one of the keys waits until the bulk insert commits.
        let db2 = db.clone();
        let table2 = table.clone();
        let waiter = tokio::spawn(async move {
            let mut other = db2.begin(Isolation::ReadCommitted);
            let (key, _) = rows(&table2, &[(7, 0)]).remove(0);
            other.lock_row(&table2, &key).await.unwrap();
            other.key_exists(&table2, &key).unwrap()
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        assert!(balances(&table, db.visible_ts()).len() == 1);
        let ts = txn.commit().await.unwrap().unwrap();
        assert!(waiter.await.unwrap(), "the waiter sees the committed row");
        let visible = balances(&table, ts);
        assert_eq!(visible.len(), n as usize);
        // The rolled-back rows (balance 0) are gone: every row has balance 1 but row 5.
        let sum: i64 = visible.iter().map(|(_, b)| b).sum();
        assert_eq!(sum, 5 + (n as i64 - 1));
        db.close();
    }
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let table = db.table(table_id).unwrap();
    let visible = balances(&table, db.visible_ts());
    assert_eq!(visible.len(), n as usize);
    let sum: i64 = visible.iter().map(|(_, b)| b).sum();
    assert_eq!(sum, 5 + (n as i64 - 1));
}

/// `Txn::insert_new` of `values`, with their columns.
async fn bulk(
    txn: &mut floe_storage::Txn,
    table: &Arc<TableData>,
    values: &[(i32, i64)],
) -> Option<usize> {
    let columns = columns(values);
    txn.insert_new(table, rows(table, values), Some(&columns))
        .await
        .unwrap()
}

/// Bulk inserts that give their columns have their log record encoded as they write: what
/// a restart replays from it matches what was committed, also after other writes, a
/// savepoint's undo or a TRUNCATE made the encoded entries stale or partial.
#[tokio::test]
async fn bulk_inserts_encode_their_log_as_they_write() {
    let dir = tempfile::tempdir().unwrap();
    let options = || DbOptions {
        // Recovery must replay the log, not load a checkpoint.
        checkpoint_on_close: false,
        checkpoint_log_bytes: None,
        ..DbOptions::default()
    };
    let big = floe_storage::codec::LOG_BATCH_ROWS as i32 + 500;
    let values = |range: std::ops::Range<i32>, balance: i64| -> Vec<(i32, i64)> {
        range.map(|i| (i, balance)).collect()
    };
    let mut expected: Vec<Vec<(i32, i64)>> = Vec::new();
    let mut ids = Vec::new();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        // Several calls, one of them more than one IPC batch.
        let table = create(&db, "plain").await;
        let mut txn = db.begin(Isolation::ReadCommitted);
        for (range, balance) in [(0..big, 1), (big..big + 10, 2), (big + 10..big + 20, 3)] {
            let v = values(range, balance);
            assert_eq!(bulk(&mut txn, &table, &v).await, None);
        }
        txn.commit().await.unwrap();
        ids.push(table.def.id);

        // A later write in the same transaction changes a row the entries hold.
        let table = create(&db, "updated").await;
        let mut txn = db.begin(Isolation::ReadCommitted);
        let v = values(0..100, 1);
        assert_eq!(bulk(&mut txn, &table, &v).await, None);
        let (key, row) = rows(&table, &[(7, 70)]).remove(0);
        txn.write(&table, key, Some(row)).await.unwrap();
        let (key, _) = rows(&table, &[(8, 0)]).remove(0);
        txn.write(&table, key, None).await.unwrap();
        let v = values(100..110, 2);
        assert_eq!(bulk(&mut txn, &table, &v).await, None);
        txn.commit().await.unwrap();
        ids.push(table.def.id);

        // A savepoint undoes the second call; a duplicate stops the third part-way.
        let table = create(&db, "undone").await;
        let mut txn = db.begin(Isolation::ReadCommitted);
        let v = values(0..50, 1);
        assert_eq!(bulk(&mut txn, &table, &v).await, None);
        let mark = txn.savepoint();
        let v = values(50..60, 2);
        assert_eq!(bulk(&mut txn, &table, &v).await, None);
        txn.rollback_to(mark);
        let v = [(60, 3), (61, 3), (10, 3), (62, 3)];
        assert_eq!(bulk(&mut txn, &table, &v).await, Some(2));
        txn.commit().await.unwrap();
        ids.push(table.def.id);

        // TRUNCATE, then a bulk load, in one transaction.
        let table = create(&db, "reloaded").await;
        insert(&db, &table, &values(0..20, 9)).await;
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.truncate(&table);
        let v = values(10..30, 4);
        assert_eq!(bulk(&mut txn, &table, &v).await, None);
        txn.commit().await.unwrap();
        ids.push(table.def.id);

        // Three tables in one transaction, as pgbench -i loads: one record holds every
        // table's entries, built around the biggest table's (the second's, then its
        // TRUNCATE first), the others' TRUNCATEs before their rows.
        let first = create(&db, "first").await;
        let second = create(&db, "second").await;
        let third = create(&db, "third").await;
        insert(&db, &second, &values(100..120, 9)).await;
        insert(&db, &third, &values(0..10, 9)).await;
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.truncate(&third);
        for (key, row) in rows(&third, &values(3..5, 8)) {
            txn.write(&third, key, Some(row)).await.unwrap();
        }
        assert_eq!(bulk(&mut txn, &first, &values(0..30, 5)).await, None);
        txn.truncate(&second);
        assert_eq!(bulk(&mut txn, &second, &values(0..40, 6)).await, None);
        assert_eq!(bulk(&mut txn, &first, &values(30..35, 7)).await, None);
        txn.commit().await.unwrap();
        ids.push(first.def.id);
        ids.push(second.def.id);
        ids.push(third.def.id);

        for id in &ids {
            expected.push(balances(&db.table(*id).unwrap(), db.visible_ts()));
        }
        db.close();
    }
    let mut want_updated = values(0..110, 1);
    want_updated.retain(|(id, _)| *id != 8);
    for row in want_updated.iter_mut() {
        if row.0 == 7 {
            row.1 = 70;
        } else if row.0 >= 100 {
            row.1 = 2;
        }
    }
    assert_eq!(expected[1], want_updated);
    assert_eq!(expected[2].len(), 52);
    assert_eq!(expected[3], values(10..30, 4));
    let mut want_first = values(0..30, 5);
    want_first.extend(values(30..35, 7));
    assert_eq!(expected[4], want_first);
    assert_eq!(expected[5], values(0..40, 6));
    assert_eq!(expected[6], values(3..5, 8));
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.checkpoint_ts(), 0);
    for (id, want) in ids.iter().zip(&expected) {
        let table = db.table(*id).unwrap();
        assert_eq!(&balances(&table, db.visible_ts()), want, "table {id}");
    }
}

/// A bulk insert beyond `--memory-limit` fails with the memory-limit error, not an OOM.
#[tokio::test]
async fn bulk_inserts_respect_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        DbOptions {
            memory_limit: Some(256 * 1024),
            ..DbOptions::default()
        },
    )
    .unwrap();
    let table = create(&db, "big").await;
    let mut txn = db.begin(Isolation::ReadCommitted);
    let mut failed = false;
    for start in (0..100_000).step_by(1000) {
        let values: Vec<(i32, i64)> = (start..start + 1000).map(|i| (i, 0)).collect();
        // Half the chunks with their log entries encoded ahead (which count too).
        let columns = columns(&values);
        let encoded = (start / 1000) % 2 == 0;
        let done = txn.insert_new(
            &table,
            rows(&table, &values),
            encoded.then_some(&columns[..]),
        );
        if let Err(e) = done.await {
            assert!(matches!(e, StorageError::MemoryLimit { .. }), "{e:?}");
            failed = true;
            break;
        }
    }
    assert!(failed, "256 KiB cannot hold 100k rows");
}

#[tokio::test]
async fn catalog_changes_commit_with_the_rows_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let options = || DbOptions {
        // Recovery must replay the log, not load a checkpoint.
        checkpoint_on_close: false,
        ..DbOptions::default()
    };
    let (created_id, rolled_back_id);
    {
        let db = Db::open(dir.path(), options()).unwrap();
        let def = Arc::new(accounts_def(&db, "created"));
        created_id = def.id;
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.change_catalog(CatalogChange::PutRelation(def.clone()))
            .unwrap();
        let pending = txn.pending_catalog();
        // Only the transaction's scope sees the new table.
        assert!(db.table(created_id).is_none());
        assert!(db.catalog().relation(created_id).is_none());
        let table = floe_storage::with_pending_catalog(pending.clone(), async {
            assert!(db.catalog().relation(created_id).is_some());
            db.table(created_id).expect("pending table in scope")
        })
        .await;
        for (key, row) in rows(&table, &[(1, 10), (2, 20)]) {
            txn.write(&table, key, Some(row)).await.unwrap();
        }
        // A savepoint undoes a later CREATE and its rows, keeps the earlier one.
        let mark = txn.savepoint();
        let later = Arc::new(accounts_def(&db, "later"));
        txn.change_catalog(CatalogChange::PutRelation(later.clone()))
            .unwrap();
        txn.rollback_to(mark);
        floe_storage::with_pending_catalog(pending, async {
            assert!(db.table(later.id).is_none());
            assert!(db.table(created_id).is_some());
        })
        .await;
        let before = db.visible_ts();
        txn.commit().await.unwrap();
        // One commit: catalog and rows at the same timestamp.
        assert_eq!(db.visible_ts(), before + 1);
        let table = db.table(created_id).expect("committed");
        assert_eq!(balances(&table, db.visible_ts()), vec![(1, 10), (2, 20)]);

        // Rolled back (dropped): neither definition nor rows.
        let def = Arc::new(accounts_def(&db, "rolled_back"));
        rolled_back_id = def.id;
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.change_catalog(CatalogChange::PutRelation(def)).unwrap();
        let pending = txn.pending_catalog();
        let table = floe_storage::with_pending_catalog(pending, async {
            db.table(rolled_back_id).unwrap()
        })
        .await;
        for (key, row) in rows(&table, &[(3, 30)]) {
            txn.write(&table, key, Some(row)).await.unwrap();
        }
        drop(txn);
        assert!(db.table(rolled_back_id).is_none());

        // A DROP rolled back leaves the table and its rows.
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.change_catalog(CatalogChange::DropRelation(created_id))
            .unwrap();
        drop(txn);
        db.close();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    let table = db
        .table(created_id)
        .expect("created table survives restart");
    assert_eq!(balances(&table, db.visible_ts()), vec![(1, 10), (2, 20)]);
    assert!(db.table(rolled_back_id).is_none());
    assert!(db
        .catalog()
        .relation_by_name("postgres", "public", "later")
        .is_none());
    assert!(db.allocate_oid() > created_id);
}

#[tokio::test]
async fn a_second_relation_with_a_taken_name_is_refused_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let mut first = db.begin(Isolation::ReadCommitted);
    first
        .change_catalog(CatalogChange::PutRelation(Arc::new(accounts_def(
            &db, "same",
        ))))
        .unwrap();
    let mut second = db.begin(Isolation::ReadCommitted);
    second
        .change_catalog(CatalogChange::PutRelation(Arc::new(accounts_def(
            &db, "same",
        ))))
        .unwrap();
    first.commit().await.unwrap();
    let err = second.commit().await.unwrap_err();
    assert!(matches!(err, StorageError::DuplicateTable(_)), "{err:?}");
}

/// TRUNCATE is a table-level marker: snapshots older than it still see the rows, later ones
/// and writers don't (point lookups, scans, uniqueness), rows the truncating commit writes
/// stay, the change stream retracts every hidden row, and a restart replays it.
#[tokio::test]
async fn truncate_hides_older_rows_from_later_snapshots_and_survives_recovery() {
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint at close: the restart replays the TRUNCATE from the log.
    let options = || DbOptions {
        checkpoint_on_close: false,
        ..DbOptions::default()
    };
    let table_id;
    {
        let db = Db::open(dir.path(), options()).unwrap();
        let table = create_unique(&db, "t").await;
        table_id = table.def.id;
        insert(&db, &table, &[(1, 10), (2, 20)]).await;
        let before = db.snapshot();
        let mut reader = db.changes(db.visible_ts());
        let mut txn = db.begin(Isolation::ReadCommitted);
        txn.truncate(&table);
        // In the same commit: a truncated row's key with another truncated row's unique value.
        for (key, row) in rows(&table, &[(2, 10)]) {
            txn.lock_row(&table, &key).await.unwrap();
            txn.write(&table, key, Some(row)).await.unwrap();
        }
        let ts = txn.commit().await.unwrap().unwrap();
        assert_eq!(balances(&table, before.ts), vec![(1, 10), (2, 20)]);
        assert_eq!(balances(&table, ts), vec![(2, 10)]);
        let one = rows(&table, &[(1, 10)]).remove(0).0;
        assert!(table.sources(before.ts).try_get(&one).unwrap().is_some());
        assert!(table.sources(ts).try_get(&one).unwrap().is_none());
        assert!(!table.latest().try_lookup(&one).unwrap().is_live());
        let commit = reader.next().await.unwrap();
        assert_eq!(commit.commit_ts, ts);
        let mut diffs: Vec<i64> = commit.changes.iter().map(|c| c.diff).collect();
        diffs.sort();
        assert_eq!(diffs, vec![-1, -1, 1]);
        // The truncated row's unique value is free again.
        insert(&db, &table, &[(3, 20)]).await;
        drop(before);
        db.close();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    let table = db.table(table_id).unwrap();
    assert_eq!(balances(&table, db.visible_ts()), vec![(2, 10), (3, 20)]);
    let mut txn = db.begin(Isolation::ReadCommitted);
    let (key, row) = rows(&table, &[(4, 10)]).remove(0);
    txn.lock_row(&table, &key).await.unwrap();
    assert!(matches!(
        txn.write(&table, key, Some(row)).await,
        Err(StorageError::UniqueViolation { .. })
    ));
}

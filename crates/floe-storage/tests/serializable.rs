//! SERIALIZABLE (serializable snapshot isolation) without SQL: write skew, phantoms and the
//! read-only anomaly abort one transaction with 40001; transactions that do not conflict
//! commit; REPEATABLE READ still allows write skew. Reads go through the real `TableProvider`
//! (DataFusion plans over [`FloeTable`]) and the point-lookup fast path ([`ReadView::get`]).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::execution::TaskContext;
use datafusion::prelude::SessionContext;
use floe_storage::{
    CatalogChange, ColumnDef, Db, DbOptions, FloeTable, Isolation, Key, PrimaryKey, ReadView,
    RelationKind, RowBytes, StorageError, StorageResult, TableData, TableDef, Txn,
};

fn table_def(db: &Db, name: &str) -> TableDef {
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
        name: name.into(),
        kind: RelationKind::Table,
        columns: vec![
            column(1, "id", DataType::Int32, false),
            column(2, "v", DataType::Int64, true),
            column(3, "note", DataType::Utf8, true),
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

struct Fixture {
    _dir: tempfile::TempDir,
    db: Arc<Db>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        Fixture { _dir: dir, db }
    }

    /// A table `(id int primary key, v bigint, note text)` holding `values` as `(id, v)`.
    async fn table(&self, name: &str, values: &[(i32, i64)]) -> Arc<TableData> {
        let def = Arc::new(table_def(&self.db, name));
        self.db
            .commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
            .await
            .unwrap();
        let table = self.db.table(def.id).unwrap();
        if !values.is_empty() {
            let mut txn = self.db.begin(Isolation::ReadCommitted);
            for (id, v) in values {
                put(&mut txn, &table, *id, *v).await.unwrap();
            }
            txn.commit().await.unwrap();
        }
        table
    }

    /// Runs `SELECT sum(v), count(*) FROM <table> WHERE <filter>` through the provider, reading
    /// `view`; returns `(sum, count)`.
    async fn sum_count(
        &self,
        table: &Arc<TableData>,
        view: Arc<ReadView>,
        filter: &str,
    ) -> StorageResult<(i64, i64)> {
        let ctx = SessionContext::new();
        ctx.register_table(
            "t",
            Arc::new(FloeTable::new(self.db.clone(), table.clone(), false)),
        )
        .unwrap();
        let df = ctx
            .sql(&format!(
                "SELECT coalesce(sum(v), 0), count(*) FROM t WHERE {filter}"
            ))
            .await
            .unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let state = ctx.state();
        let config = state.config().clone().with_extension(view);
        let task = Arc::new(TaskContext::from(&state).with_session_config(config));
        let batches = match datafusion::physical_plan::collect(plan, task).await {
            Ok(batches) => batches,
            Err(e) => return Err(storage_error(e)),
        };
        let batch = &batches[0];
        let sum = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        let count = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        Ok((sum, count))
    }
}

/// The storage error inside a DataFusion error.
fn storage_error(e: datafusion::error::DataFusionError) -> StorageError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(storage) = err.downcast_ref::<StorageError>() {
            return match storage {
                StorageError::SerializationConflict { detail } => {
                    StorageError::SerializationConflict {
                        detail: detail.clone(),
                    }
                }
                other => StorageError::Internal(other.to_string()),
            };
        }
        source = err.source();
    }
    StorageError::Internal(e.to_string())
}

fn encoded(table: &TableData, id: i32, v: i64) -> (Key, RowBytes) {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![id])),
        Arc::new(Int64Array::from(vec![v])),
        Arc::new(StringArray::from(vec![format!("row {id}")])),
    ];
    let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
    let rows = table.codec.encode_rows(&columns).unwrap();
    (Arc::from(keys.row(0).data()), Arc::from(rows.row(0).data()))
}

/// Writes row `(id, v)` (insert or update) in `txn`.
async fn put(txn: &mut Txn, table: &Arc<TableData>, id: i32, v: i64) -> StorageResult<()> {
    let (key, row) = encoded(table, id, v);
    txn.lock_row(table, &key).await?;
    txn.write(table, key, Some(row)).await
}

/// Reads row `id`'s `v` by primary key (the fast path's point lookup).
fn get(table: &TableData, view: &ReadView, id: i32) -> StorageResult<Option<i64>> {
    let (key, _) = encoded(table, id, 0);
    Ok(view.get(table, &key)?.map(|row| {
        let batch = table.codec.decode_rows([row.as_ref()]).unwrap();
        batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }))
}

fn is_conflict<T: std::fmt::Debug>(result: &StorageResult<T>) -> bool {
    matches!(result, Err(StorageError::SerializationConflict { .. }))
}

/// Two doctors on call (`v = 1`); each transaction checks that at least two are on call and
/// takes itself off. Under SERIALIZABLE the second commit fails; under REPEATABLE READ both
/// commit and nobody is left on call.
async fn doctors(isolation: Isolation, full_scan: bool) -> (bool, bool, i64) {
    let f = Fixture::new();
    let doctors = f.table("doctors", &[(1, 1), (2, 1)]).await;
    let mut alice = f.db.begin(isolation);
    let mut bob = f.db.begin(isolation);
    for txn in [&mut alice, &mut bob] {
        let view = txn.statement_view();
        let on_call = if full_scan {
            f.sum_count(&doctors, view, "v = 1").await.unwrap().1
        } else {
            get(&doctors, &view, 1).unwrap().unwrap() + get(&doctors, &view, 2).unwrap().unwrap()
        };
        assert_eq!(on_call, 2);
    }
    put(&mut alice, &doctors, 1, 0).await.unwrap();
    put(&mut bob, &doctors, 2, 0).await.unwrap();
    let alice_ok = alice.commit().await.is_ok();
    let bob = bob.commit().await;
    let bob_ok = bob.is_ok();
    if isolation == Isolation::Serializable && !bob_ok {
        assert!(is_conflict(&bob), "{bob:?}");
        let message = bob.unwrap_err().to_string();
        assert_eq!(
            message,
            "could not serialize access due to read/write dependencies among transactions"
        );
    }
    let check = f.db.begin(Isolation::ReadCommitted).statement_view();
    let on_call = f.sum_count(&doctors, check, "true").await.unwrap().0;
    assert_eq!(f.db.serializable_tracked(), 0, "marks outlived everyone");
    (alice_ok, bob_ok, on_call)
}

#[tokio::test]
async fn write_skew_fails_under_serializable_with_a_full_scan() {
    assert_eq!(
        doctors(Isolation::Serializable, true).await,
        (true, false, 1)
    );
}

#[tokio::test]
async fn write_skew_fails_under_serializable_with_point_reads() {
    assert_eq!(
        doctors(Isolation::Serializable, false).await,
        (true, false, 1)
    );
}

#[tokio::test]
async fn repeatable_read_still_allows_write_skew() {
    assert_eq!(
        doctors(Isolation::RepeatableRead, true).await,
        (true, true, 0)
    );
    assert_eq!(
        doctors(Isolation::RepeatableRead, false).await,
        (true, true, 0)
    );
}

/// Each transaction counts the rows with `10 <= id < 20` and inserts one there: the insert is
/// a phantom for the other's range read.
#[tokio::test]
async fn inserts_into_a_range_read_by_another_conflict() {
    let f = Fixture::new();
    let t = f.table("ranged", &[(5, 0), (10, 1), (25, 0)]).await;
    let mut t1 = f.db.begin(Isolation::Serializable);
    let mut t2 = f.db.begin(Isolation::Serializable);
    for txn in [&mut t1, &mut t2] {
        let view = txn.statement_view();
        let (_, count) = f.sum_count(&t, view, "id >= 10 AND id < 20").await.unwrap();
        assert_eq!(count, 1);
    }
    put(&mut t1, &t, 15, 1).await.unwrap();
    put(&mut t2, &t, 16, 1).await.unwrap();
    assert!(t1.commit().await.is_ok());
    let second = t2.commit().await;
    assert!(is_conflict(&second), "{second:?}");
    assert_eq!(f.db.serializable_tracked(), 0);
}

/// Inserts outside the other's range, and reads and writes of different rows, conflict with
/// nothing: both transactions commit.
#[tokio::test]
async fn serializable_transactions_that_do_not_overlap_both_commit() {
    let f = Fixture::new();
    let t = f
        .table("disjoint", &[(1, 0), (2, 0), (10, 0), (20, 0)])
        .await;
    // Disjoint ranges, each inserting into its own.
    let mut t1 = f.db.begin(Isolation::Serializable);
    let mut t2 = f.db.begin(Isolation::Serializable);
    let v1 = t1.statement_view();
    let v2 = t2.statement_view();
    assert_eq!(f.sum_count(&t, v1, "id < 5").await.unwrap().1, 2);
    assert_eq!(
        f.sum_count(&t, v2, "id >= 10 AND id < 30").await.unwrap().1,
        2
    );
    put(&mut t1, &t, 3, 1).await.unwrap();
    put(&mut t2, &t, 15, 1).await.unwrap();
    t1.commit().await.unwrap();
    t2.commit().await.unwrap();

    // Point reads and updates of one's own rows (the pgbench shape).
    let mut t1 = f.db.begin(Isolation::Serializable);
    let mut t2 = f.db.begin(Isolation::Serializable);
    let v1 = t1.statement_view();
    let v2 = t2.statement_view();
    let a = get(&t, &v1, 1).unwrap().unwrap();
    let b = get(&t, &v2, 2).unwrap().unwrap();
    put(&mut t1, &t, 1, a + 1).await.unwrap();
    put(&mut t2, &t, 2, b + 1).await.unwrap();
    t2.commit().await.unwrap();
    t1.commit().await.unwrap();

    // A reader of a row another transaction then changes is only one rw-conflict, no cycle:
    // both commit (the reader is serialized first).
    let mut reader = f.db.begin(Isolation::Serializable);
    let mut writer = f.db.begin(Isolation::Serializable);
    let rv = reader.statement_view();
    let wv = writer.statement_view();
    assert_eq!(get(&t, &rv, 10).unwrap(), Some(0));
    assert_eq!(get(&t, &wv, 10).unwrap(), Some(0));
    put(&mut writer, &t, 10, 7).await.unwrap();
    writer.commit().await.unwrap();
    put(&mut reader, &t, 20, 1).await.unwrap();
    reader.commit().await.unwrap();
    assert_eq!(f.db.serializable_tracked(), 0);
}

/// The PostgreSQL wiki's receipts example (the read-only anomaly): a deposit reads the
/// current batch and adds a receipt to it; meanwhile the batch is closed, and a report of the
/// closed batch runs. The report, although read only, would see a state no serial order
/// gives, so one transaction must fail — and none must while the report's snapshot predates
/// the batch's closing.
async fn receipts(report_before_close: bool, report_after_deposit_commits: bool) -> Vec<bool> {
    let f = Fixture::new();
    // control: id 1 holds the current batch in v; receipts: (id, batch).
    let control = f.table("control", &[(1, 1)]).await;
    let receipts = f.table("receipts", &[(1, 1)]).await;

    let mut deposit = f.db.begin(Isolation::Serializable);
    let dv = deposit.statement_view();
    let batch = get(&control, &dv, 1).unwrap().unwrap();
    assert_eq!(batch, 1);
    put(&mut deposit, &receipts, 2, batch).await.unwrap();

    let mut report = f.db.begin(Isolation::Serializable);
    report.set_read_only(true);
    if report_before_close {
        // Snapshot taken before the batch closes.
        report.statement_view();
    }

    let mut close = f.db.begin(Isolation::Serializable);
    let cv = close.statement_view();
    let current = get(&control, &cv, 1).unwrap().unwrap();
    put(&mut close, &control, 1, current + 1).await.unwrap();
    let close_ok = close.commit().await.is_ok();

    let mut outcome = vec![close_ok];
    // The report's snapshot (unless taken already) and its read of the current batch.
    let rv = report.statement_view();
    let batch_now = get(&control, &rv, 1).unwrap().unwrap();
    let deposit_first = if report_after_deposit_commits {
        let result = deposit.commit().await;
        outcome.push(result.is_ok());
        None
    } else {
        Some(deposit)
    };
    // The receipts of the batch before the current one.
    let report_result = f
        .sum_count(&receipts, rv.clone(), &format!("v = {}", batch_now - 1))
        .await;
    let report_ok = match report_result {
        Ok(_) => report.commit().await.is_ok(),
        Err(e) => {
            assert!(
                matches!(e, StorageError::SerializationConflict { .. }),
                "{e:?}"
            );
            drop(report);
            false
        }
    };
    outcome.push(report_ok);
    if let Some(deposit) = deposit_first {
        let result = deposit.commit().await;
        if let Err(e) = &result {
            assert!(
                matches!(e, StorageError::SerializationConflict { .. }),
                "{e:?}"
            );
        }
        outcome.push(result.is_ok());
    }
    drop(rv);
    assert_eq!(f.db.serializable_tracked(), 0);
    outcome
}

#[tokio::test]
async fn read_only_anomaly_aborts_the_deposit() {
    // close, report, deposit: the deposit (the pivot) fails at commit.
    assert_eq!(receipts(false, false).await, vec![true, true, false]);
}

#[tokio::test]
async fn read_only_anomaly_aborts_the_report_when_the_deposit_committed() {
    // close, deposit, report: the report's read of the receipts fails.
    assert_eq!(receipts(false, true).await, vec![true, true, false]);
}

#[tokio::test]
async fn a_read_only_transaction_older_than_the_close_is_safe() {
    // The report's snapshot predates the close: it reads as if it ran first; all commit.
    assert_eq!(receipts(true, false).await, vec![true, true, true]);
    assert_eq!(receipts(true, true).await, vec![true, true, true]);
}

/// Read-only serializable transactions that only read, and reads outside blocks, commit; a
/// serializable transaction that read nothing a concurrent one wrote commits.
#[tokio::test]
async fn readers_alone_always_commit() {
    let f = Fixture::new();
    let t = f.table("readers", &[(1, 1), (2, 2)]).await;
    let mut writer = f.db.begin(Isolation::Serializable);
    writer.statement_view();
    let mut reader = f.db.begin(Isolation::Serializable);
    let view = reader.statement_view();
    assert_eq!(f.sum_count(&t, view, "true").await.unwrap(), (3, 2));
    put(&mut writer, &t, 1, 10).await.unwrap();
    writer.commit().await.unwrap();
    // Reads again after the concurrent commit: still its snapshot, still no cycle.
    let view = reader.statement_view();
    assert_eq!(f.sum_count(&t, view, "true").await.unwrap(), (3, 2));
    assert_eq!(reader.commit().await.unwrap(), None);
    // A statement of its own (outside a block).
    let view = f.db.serializable_view();
    assert_eq!(f.sum_count(&t, view, "id = 1").await.unwrap(), (10, 1));
    assert_eq!(f.db.serializable_tracked(), 0);
}

/// READ COMMITTED and REPEATABLE READ never register anything.
#[tokio::test]
async fn other_levels_leave_no_marks() {
    let f = Fixture::new();
    let t = f.table("plain", &[(1, 1)]).await;
    for isolation in [Isolation::ReadCommitted, Isolation::RepeatableRead] {
        let mut txn = f.db.begin(isolation);
        let view = txn.statement_view();
        assert!(!view.is_serializable());
        f.sum_count(&t, view.clone(), "true").await.unwrap();
        get(&t, &view, 1).unwrap();
        assert_eq!(f.db.serializable_tracked(), 0);
        put(&mut txn, &t, 1, 2).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(f.db.serializable_tracked(), 0);
    }
}

/// A rolled-back serializable transaction's marks go at once: a writer of what it read
/// conflicts with nothing.
#[tokio::test]
async fn rolled_back_marks_are_forgotten() {
    let f = Fixture::new();
    let t = f.table("rollback", &[(1, 1), (2, 1)]).await;
    let mut t1 = f.db.begin(Isolation::Serializable);
    let mut t2 = f.db.begin(Isolation::Serializable);
    for txn in [&mut t1, &mut t2] {
        let view = txn.statement_view();
        f.sum_count(&t, view, "true").await.unwrap();
    }
    put(&mut t1, &t, 1, 0).await.unwrap();
    put(&mut t2, &t, 2, 0).await.unwrap();
    drop(t1);
    assert_eq!(f.db.serializable_tracked(), 1);
    t2.commit().await.unwrap();
    assert_eq!(f.db.serializable_tracked(), 0);
}

/// A TRUNCATE writes the whole table: a two-transaction cycle through one is found.
#[tokio::test]
async fn a_cycle_through_a_truncate_is_found() {
    let f = Fixture::new();
    let a = f.table("a", &[(1, 1)]).await;
    let b = f.table("b", &[(1, 1)]).await;
    let mut t1 = f.db.begin(Isolation::Serializable);
    let mut t2 = f.db.begin(Isolation::Serializable);
    let v1 = t1.statement_view();
    let v2 = t2.statement_view();
    // t1 reads a, t2 reads b; t1 empties b, t2 writes a.
    f.sum_count(&a, v1, "true").await.unwrap();
    f.sum_count(&b, v2, "true").await.unwrap();
    t1.truncate(&b);
    put(&mut t2, &a, 2, 2).await.unwrap();
    t1.commit().await.unwrap();
    let second = t2.commit().await;
    assert!(is_conflict(&second), "{second:?}");
}

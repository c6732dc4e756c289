//! The cold tier wired into the engine: the runs the newest manifest version lists are read
//! with the hot tier (lookups, scans, uniqueness, unique indexes, updates and deletes of cold
//! rows), after restarts and checkpoints, without loading cold rows into memory.

use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field};
use floe_storage::cold_run::{RunOptions, RunWriter};
use floe_storage::manifest::{ManifestEdit, ManifestWriter, RunPins};
use floe_storage::store::ColdStore;
use floe_storage::{
    CatalogChange, ColumnDef, ConstraintDef, Db, DbOptions, Isolation, Key, PrimaryKey,
    RelationKind, RowBytes, StorageError, TableData, TableDef, Versioned,
};

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
            column(2, "balance", DataType::Int64, true),
            column(3, "note", DataType::Utf8, true),
        ],
        primary_key: Some(PrimaryKey {
            name: "accounts_pkey".into(),
            columns: vec![0],
        }),
        constraints: vec![ConstraintDef::Unique {
            name: "accounts_balance_key".into(),
            columns: vec![2],
        }],
        indexes: vec![],
        next_column_id: 4,
        persistence: Default::default(),
    }
}

fn rows(table: &TableData, values: &[(i32, i64)]) -> Vec<(Key, RowBytes)> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(values.iter().map(|v| v.0))),
        Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.1))),
        Arc::new(StringArray::from_iter_values(
            values.iter().map(|v| format!("row {}", v.0)),
        )),
    ];
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

/// Every live `(id, balance)` at the newest snapshot, through the sources.
fn balances(db: &Db, table_id: u32) -> Vec<(i32, i64)> {
    balances_at(db, table_id, db.visible_ts())
}

/// Every live `(id, balance)` at `snapshot_ts`, through the sources.
fn balances_at(db: &Db, table_id: u32, snapshot_ts: u64) -> Vec<(i32, i64)> {
    let table = db.table(table_id).unwrap();
    let sources = table.sources(snapshot_ts);
    let mut all = Vec::new();
    let mut range = (Bound::Unbounded, Bound::Unbounded);
    while let Some(last) = sources.try_scan_chunk(&range, 7, &mut all).unwrap() {
        range.0 = Bound::Excluded(last);
    }
    let batch = table
        .codec
        .decode_rows(all.iter().map(|(_, r)| r.as_ref()))
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

async fn write(
    db: &Arc<Db>,
    table: &Arc<TableData>,
    values: &[(i32, i64)],
) -> Result<u64, StorageError> {
    let mut txn = db.begin(Isolation::ReadCommitted);
    for (key, row) in rows(table, values) {
        txn.lock_row(table, &key).await?;
        txn.write(table, key, Some(row)).await?;
    }
    Ok(txn.commit().await?.unwrap_or(0))
}

/// Writes `values` at commit ts 1 into a run of `table` and lists it in a new manifest
/// version (a writer of its own: as a flush of an earlier process would have).
async fn publish_run(dir: &std::path::Path, table: &TableData, values: &[(i32, i64)]) {
    let store = Arc::new(ColdStore::open(None, dir).unwrap());
    let writer = ManifestWriter::open(store.clone(), RunPins::new())
        .await
        .unwrap();
    let codec = table.codec.clone();
    let table_id = table.def.id;
    let versions: Vec<Versioned> = rows(table, values)
        .into_iter()
        .map(|(key, row)| Versioned {
            key,
            commit_ts: 1,
            row: Some(row),
        })
        .collect();
    let namer = writer.namer().clone();
    let pins = writer.pins().clone();
    let written = tokio::task::spawn_blocking(move || {
        RunWriter::new(
            store,
            codec,
            table_id,
            0,
            namer,
            &pins,
            RunOptions::default(),
        )
        .unwrap()
        .write_all(versions)
        .unwrap()
    })
    .await
    .unwrap();
    writer
        .publish(ManifestEdit {
            add: written.runs.clone(),
            remove: vec![],
        })
        .await
        .unwrap();
}

fn open(dir: &std::path::Path) -> Arc<Db> {
    Db::open(dir, DbOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cold_rows_read_update_delete_and_survive_restarts_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let (_, first_epoch) = db.cold_tier().unwrap();
    let def = Arc::new(def(&db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    db.close();
    drop(db);
    let cold: Vec<(i32, i64)> = (1..=50).map(|i| (i, i64::from(i) * 10)).collect();
    publish_run(dir.path(), &table, &cold).await;

    let db = open(dir.path());
    let (_, epoch) = db.cold_tier().unwrap();
    assert!(epoch > first_epoch + 1, "each open claims a newer epoch");
    let table = db.table(def.id).unwrap();
    assert!(!table.cold.is_empty());
    assert_eq!(
        table.hot.key_count(),
        0,
        "cold rows are not loaded into memory"
    );
    assert_eq!(balances(&db, def.id), cold);
    // Point lookups of cold keys, and an absent one.
    let [(k7, _)] = rows(&table, &[(7, 0)]).try_into().unwrap();
    assert!(table.latest().try_get(&k7).unwrap().is_some());
    let [(k99, _)] = rows(&table, &[(99, 0)]).try_into().unwrap();
    assert!(table.latest().try_get(&k99).unwrap().is_none());
    // A cold row's unique balance is taken.
    let err = write(&db, &table, &[(100, 70)]).await.unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    // Update a cold row (its balance is free again), delete another.
    write(&db, &table, &[(7, 7000)]).await.unwrap();
    write(&db, &table, &[(100, 70)]).await.unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.lock_row(&table, &k7).await.unwrap();
    let [(k8, _)] = rows(&table, &[(8, 0)]).try_into().unwrap();
    txn.lock_row(&table, &k8).await.unwrap();
    txn.write(&table, k8.clone(), None).await.unwrap();
    txn.commit().await.unwrap();
    let mut expect = cold.clone();
    expect.retain(|(id, _)| *id != 8);
    expect.iter_mut().for_each(|v| {
        if v.0 == 7 {
            v.1 = 7000
        }
    });
    expect.push((100, 70));
    assert_eq!(balances(&db, def.id), expect);

    // Restart replaying the log, then a checkpoint (tombstones kept in it), then restart.
    db.close();
    drop(db);
    let db = Db::open(
        dir.path(),
        DbOptions {
            checkpoint_on_close: true,
            ..DbOptions::default()
        },
    )
    .unwrap();
    assert_eq!(balances(&db, def.id), expect);
    db.checkpoint().unwrap();
    db.close();
    drop(db);
    let db = open(dir.path());
    assert_eq!(balances(&db, def.id), expect);
    let table = db.table(def.id).unwrap();
    assert!(
        table.latest().try_get(&k8).unwrap().is_none(),
        "the tombstone survived"
    );
    let err = write(&db, &table, &[(101, 7000)]).await.unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    write(&db, &table, &[(101, 80)]).await.unwrap();
    db.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn truncating_a_table_with_runs_hides_them_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let def = Arc::new(def(&db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    db.close();
    drop(db);
    publish_run(dir.path(), &table, &[(1, 10), (2, 20)]).await;
    let db = open(dir.path());
    let table = db.table(def.id).unwrap();
    assert_eq!(balances(&db, def.id), vec![(1, 10), (2, 20)]);
    truncate(&db, &table).await;
    write(&db, &table, &[(3, 20)]).await.unwrap();
    assert_eq!(balances(&db, def.id), vec![(3, 20)]);
    db.checkpoint().unwrap();
    db.close();
    drop(db);
    let db = open(dir.path());
    assert_eq!(balances(&db, def.id), vec![(3, 20)]);
    db.close();
}

/// TRUNCATE of `table`, committed.
async fn truncate(db: &Arc<Db>, table: &Arc<TableData>) {
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.truncate(table);
    txn.commit().await.unwrap();
}

fn open_flushing(dir: &std::path::Path) -> Arc<Db> {
    Db::open(
        dir,
        DbOptions {
            flush_age_commits: Some(0),
            ..DbOptions::default()
        },
    )
    .unwrap()
}

async fn delete(db: &Arc<Db>, table: &Arc<TableData>, id: i32) {
    let [(key, _)] = rows(table, &[(id, 0)]).try_into().unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    txn.lock_row(table, &key).await.unwrap();
    txn.write(table, key, None).await.unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_flush_settled_rows_and_snapshots_keep_their_versions() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_flushing(dir.path());
    let def = Arc::new(def(&db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    let mut model: std::collections::BTreeMap<i32, i64> =
        (1..=200).map(|i| (i, i64::from(i))).collect();
    let all: Vec<(i32, i64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    write(&db, &table, &all).await.unwrap();
    // A reader holds a snapshot across the flush: what it sees must not change.
    let held = db.snapshot();
    let held_rows = balances(&db, def.id);
    write(&db, &table, &[(5, 5000)]).await.unwrap();
    model.insert(5, 5000);
    db.checkpoint().unwrap();
    assert!(!table.cold.is_empty(), "the checkpoint flushed a run");
    // Keys written after the held snapshot stay hot; the rest are cold.
    assert!(
        table.hot.key_count() < 10,
        "{} keys hot",
        table.hot.key_count()
    );
    {
        let at_held = table.sources(held.ts);
        let mut seen = Vec::new();
        let mut range = (Bound::Unbounded, Bound::Unbounded);
        while let Some(last) = at_held.try_scan_chunk(&range, 64, &mut seen).unwrap() {
            range.0 = Bound::Excluded(last);
        }
        assert_eq!(seen.len(), held_rows.len());
    }
    drop(held);
    delete(&db, &table, 9).await;
    model.remove(&9);
    write(&db, &table, &[(7, 7000)]).await.unwrap();
    model.insert(7, 7000);
    let expect: Vec<(i32, i64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(balances(&db, def.id), expect);
    db.checkpoint().unwrap();
    assert_eq!(balances(&db, def.id), expect);
    let err = write(&db, &table, &[(300, 7000)]).await.unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    db.close();
    drop(db);
    let db = open_flushing(dir.path());
    let table = db.table(def.id).unwrap();
    assert!(table.hot.key_count() < 10, "restart loads no cold rows");
    assert_eq!(balances(&db, def.id), expect);
    let err = write(&db, &table, &[(300, 7000)]).await.unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    db.close();
}

/// A snapshot a reader holds and the rows it saw then.
type Held = (Arc<floe_storage::Snapshot>, Vec<(i32, i64)>);

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

/// Random inserts, updates, deletes, truncations, flushes (checkpoints), compactions
/// (requested ones, and the background compactor's after each flush), restarts and held
/// snapshots read like a model map. `FLOE_FLUSH_SEED=<n>` replays one seed.
#[tokio::test(flavor = "multi_thread")]
async fn random_writes_flushes_and_restarts_read_like_a_model() {
    let seeds: Vec<u64> = match std::env::var("FLOE_FLUSH_SEED") {
        Ok(seed) => vec![seed.parse().expect("FLOE_FLUSH_SEED is a number")],
        Err(_) => (1..=12).collect(),
    };
    for seed in seeds {
        println!("FLOE_FLUSH_SEED={seed}");
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let dir = tempfile::tempdir().unwrap();
        let mut db = open_flushing(dir.path());
        let def = Arc::new(def(&db));
        db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
            .await
            .unwrap();
        let mut model: std::collections::BTreeMap<i32, i64> = Default::default();
        let mut held: Vec<Held> = Vec::new();
        let mut next_balance = 1i64;
        for step in 0..80 {
            let table = db.table(def.id).unwrap();
            match rng.below(12) {
                0..=4 => {
                    let id = rng.below(40) as i32;
                    next_balance += 1;
                    write(&db, &table, &[(id, next_balance)]).await.unwrap();
                    model.insert(id, next_balance);
                }
                5 | 6 => {
                    let id = rng.below(40) as i32;
                    delete(&db, &table, id).await;
                    model.remove(&id);
                }
                7 => {
                    db.checkpoint().unwrap();
                }
                8 => {
                    held.push((db.snapshot(), model.iter().map(|(k, v)| (*k, *v)).collect()));
                }
                10 => {
                    db.compact().unwrap();
                    assert_compacted(&db, def.id);
                }
                11 if rng.below(3) == 0 => {
                    truncate(&db, &table).await;
                    model.clear();
                }
                11 => {}
                _ => {
                    held.clear();
                    db.close();
                    drop(db);
                    db = open_flushing(dir.path());
                }
            }
            let expect: Vec<(i32, i64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(balances(&db, def.id), expect, "seed {seed}, step {step}");
            for (snapshot, rows_then) in &held {
                assert_eq!(
                    &balances_at(&db, def.id, snapshot.ts),
                    rows_then,
                    "seed {seed}, step {step}, snapshot {}",
                    snapshot.ts
                );
            }
            // Point lookups agree with the scan, present and absent keys alike.
            let table = db.table(def.id).unwrap();
            for id in 0..40 {
                let [(key, _)] = rows(&table, &[(id, 0)]).try_into().unwrap();
                let found = table.latest().try_get(&key).unwrap().is_some();
                assert_eq!(
                    found,
                    model.contains_key(&id),
                    "seed {seed}, step {step}, id {id}"
                );
            }
        }
        held.clear();
        db.close();
    }
}

/// After [`Db::compact`]: no level-0 run of `table_id` is left, and its level-1 runs hold one
/// version per key and overlap no other.
fn assert_compacted(db: &Db, table_id: u32) {
    let mut runs: Vec<_> = db
        .cold_runs()
        .into_iter()
        .filter(|r| r.table_id == table_id)
        .collect();
    assert!(runs.iter().all(|r| r.level == 1), "{runs:#?}");
    assert!(runs.iter().all(|r| r.unique_keys), "{runs:#?}");
    runs.sort_by(|a, b| a.min_key.cmp(&b.min_key));
    for pair in runs.windows(2) {
        assert!(pair[0].max_key < pair[1].min_key, "{runs:#?}");
    }
    let table = db.table(table_id).unwrap();
    assert_eq!(
        table.cold.metas().len(),
        runs.len(),
        "the table reads what is listed"
    );
}

/// The run files under the default `file://<dir>/cold` store.
fn run_files(dir: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let runs = dir.join("cold").join("runs");
    for table in std::fs::read_dir(&runs).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(table.path()).unwrap().flatten() {
            files.push(format!(
                "runs/{}/{}",
                table.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_merges_runs_drops_tombstones_and_runs_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_flushing(dir.path());
    let def = Arc::new(def(&db));
    db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
        .await
        .unwrap();
    let table = db.table(def.id).unwrap();
    let mut model: std::collections::BTreeMap<i32, i64> = Default::default();
    // Five flushes over overlapping keys: updates and deletes of keys earlier runs hold.
    for round in 0..5i64 {
        let values: Vec<(i32, i64)> = (0..60)
            .map(|i| (i * 5 + round as i32, 1000 * round + i64::from(i)))
            .chain((0..20).map(|i| (i * 3, 100_000 + 1000 * round + i64::from(i))))
            .collect();
        let mut unique = std::collections::BTreeMap::new();
        for (k, v) in values {
            unique.insert(k, v);
        }
        let values: Vec<(i32, i64)> = unique.into_iter().collect();
        write(&db, &table, &values).await.unwrap();
        model.extend(values);
        for id in (round as i32..300).step_by(17) {
            delete(&db, &table, id).await;
            model.remove(&id);
        }
        db.checkpoint().unwrap();
    }
    let expect: Vec<(i32, i64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(balances(&db, def.id), expect);
    let before = db.cold_runs();
    assert!(before.len() >= 2, "{before:#?}");
    // A reader holding a snapshot (and so the old runs) across the compaction.
    let held = db.snapshot();
    let held_list = table.cold.current();
    db.compact().unwrap();
    assert_compacted(&db, def.id);
    let after = db.cold_runs();
    let cold_rows: u64 = after.iter().map(|r| r.rows).sum();
    let hot_keys = table.hot.key_count() as u64;
    assert!(
        cold_rows + hot_keys >= model.len() as u64 && cold_rows <= model.len() as u64,
        "tombstones and older versions are gone: {cold_rows} cold rows, {} live",
        model.len()
    );
    assert_eq!(balances(&db, def.id), expect);
    assert_eq!(balances_at(&db, def.id, held.ts), expect);
    // The old runs' files stay while a reader holds them, and go once it lets go.
    let files = run_files(dir.path());
    for meta in before.iter() {
        assert!(
            files.contains(&meta.path),
            "{} was deleted under a reader",
            meta.path
        );
    }
    drop(held_list);
    drop(held);
    let compactions = db.compactions();
    let last = compactions.last().unwrap();
    assert_eq!(last.state, floe_storage::compaction::CompactionState::Done);
    assert_eq!(last.table_id, def.id);
    assert!(
        last.rows_read >= last.output_rows && last.output_rows > 0,
        "{last:?}"
    );
    db.compact().unwrap();
    let listed: Vec<String> = db.cold_runs().into_iter().map(|r| r.path).collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(
        run_files(dir.path()),
        listed_sorted,
        "unlisted runs were swept"
    );
    // Lookups and the unique constraint see the compacted rows.
    let (&some_id, &some_balance) = model.iter().next().unwrap();
    let err = write(&db, &table, &[(5000, some_balance)])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    let [(key, _)] = rows(&table, &[(some_id, 0)]).try_into().unwrap();
    assert!(table.latest().try_get(&key).unwrap().is_some());
    db.close();
    drop(db);
    let db = open_flushing(dir.path());
    assert_eq!(balances(&db, def.id), expect);
    assert_compacted(&db, def.id);

    // TRUNCATE: once every reader sees it, compaction drops the runs without reading them.
    let table = db.table(def.id).unwrap();
    truncate(&db, &table).await;
    write(&db, &table, &[(1, 1)]).await.unwrap();
    db.checkpoint().unwrap();
    db.compact().unwrap();
    assert_eq!(balances(&db, def.id), vec![(1, 1)]);
    let runs = db.cold_runs();
    assert!(
        runs.iter().all(|r| r.rows <= 1),
        "truncated runs dropped: {runs:#?}"
    );

    // DROP TABLE: its runs leave the manifest, and their files are swept once the last
    // reader of the table lets go.
    db.commit_catalog(vec![CatalogChange::DropRelation(def.id)])
        .await
        .unwrap();
    db.compact().unwrap();
    assert!(db.cold_runs().is_empty(), "{:#?}", db.cold_runs());
    assert!(
        !run_files(dir.path()).is_empty(),
        "a reader still holds the table"
    );
    drop(table);
    db.compact().unwrap();
    assert!(db.cold_runs().is_empty(), "{:#?}", db.cold_runs());
    assert!(
        run_files(dir.path()).is_empty(),
        "{:?}",
        run_files(dir.path())
    );
    db.close();
}

/// A database whose cold tier is `store` (a fault-injecting wrapper), flushing every settled
/// key at each checkpoint.
fn open_on_store(dir: &std::path::Path, store: Arc<ColdStore>) -> Arc<Db> {
    Db::open(
        dir,
        DbOptions {
            flush_age_commits: Some(0),
            cold_store: Some(store),
            ..DbOptions::default()
        },
    )
    .unwrap()
}

/// With a share of every object-store call failing (some puts landing before they fail)
/// while rows are written, flushed and compacted, no acknowledged row is lost: a failed flush
/// or compaction leaves the manifest and the tables' runs as they were (reads may fail with a
/// cold-tier error meanwhile, never answer wrong), and once the faults stop the answers are
/// the model's, also after a restart, and the sweeper leaves exactly the listed runs.
/// `FLOE_FAULT_SEED=<n>` replays one seed.
#[tokio::test(flavor = "multi_thread")]
async fn faults_during_flushes_and_compactions_lose_no_acknowledged_row() {
    use floe_storage::fault::{FaultyStore, Op};
    use floe_storage::store::RetryPolicy;
    use object_store::memory::InMemory;
    let seeds: Vec<u64> = match std::env::var("FLOE_FAULT_SEED") {
        Ok(seed) => vec![seed.parse().expect("FLOE_FAULT_SEED is a number")],
        Err(_) => (1..=4).collect(),
    };
    let retry = RetryPolicy {
        attempts: 2,
        first_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(2),
    };
    for seed in seeds {
        println!("FLOE_FAULT_SEED={seed}");
        let objects: Arc<InMemory> = Arc::new(InMemory::new());
        let faulty = FaultyStore::new(objects.clone(), seed);
        let store = |faulty: &Arc<FaultyStore>| {
            Arc::new(
                ColdStore::with_object_store(faulty.clone(), "cold")
                    .unwrap()
                    .with_retry(retry),
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let db = open_on_store(dir.path(), store(&faulty));
        let def = Arc::new(def(&db));
        db.commit_catalog(vec![CatalogChange::PutRelation(def.clone())])
            .await
            .unwrap();
        let table = db.table(def.id).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut model: std::collections::BTreeMap<i32, i64> = Default::default();
        let mut next_balance = 0i64;
        faulty.fail(&[Op::Put, Op::Get, Op::List, Op::Delete], 150);
        let (mut failed_checkpoints, mut failed_compactions) = (0, 0);
        for _round in 0..16 {
            // Writes to the hot tier never touch the store: they are acknowledged.
            let mut values = Vec::new();
            for _ in 0..12 {
                let id = rng.below(60) as i32;
                next_balance += 1;
                values.push((id, next_balance));
            }
            values.sort();
            values.dedup_by_key(|v| v.0);
            // A write may need a cold lookup (the old row), which may fail: then nothing of
            // it is applied.
            if write(&db, &table, &values).await.is_ok() {
                model.extend(values);
            }
            if rng.below(3) == 0 {
                let id = rng.below(60) as i32;
                let [(key, _)] = rows(&table, &[(id, 0)]).try_into().unwrap();
                let mut txn = db.begin(Isolation::ReadCommitted);
                let deleted = async {
                    txn.lock_row(&table, &key).await?;
                    txn.write(&table, key, None).await?;
                    txn.commit().await
                }
                .await;
                if deleted.is_ok() {
                    model.remove(&id);
                }
            }
            if db.checkpoint().is_err() {
                failed_checkpoints += 1;
            }
            if rng.below(2) == 0 && db.compact().is_err() {
                failed_compactions += 1;
            }
        }
        println!(
            "{} faults; {failed_checkpoints} checkpoints and {failed_compactions} compactions failed",
            faulty.injected()
        );
        faulty.fail(&[], 0);
        let expect: Vec<(i32, i64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(balances(&db, def.id), expect, "seed {seed}");
        db.checkpoint().unwrap();
        db.compact().unwrap();
        assert_compacted(&db, def.id);
        assert_eq!(balances(&db, def.id), expect, "seed {seed}");
        drop(table);
        db.close();
        drop(db);
        // A new process over the same objects (the faults no longer on).
        let db = open_on_store(dir.path(), store(&FaultyStore::new(objects.clone(), seed)));
        assert_eq!(balances(&db, def.id), expect, "seed {seed} after restart");
        db.compact().unwrap();
        let mut listed: Vec<String> = db.cold_runs().into_iter().map(|r| r.path).collect();
        listed.sort();
        let mut files: Vec<String> = futures::executor::block_on(async {
            use futures::TryStreamExt;
            use object_store::ObjectStore;
            objects
                .list(Some(&object_store::path::Path::from("cold/runs")))
                .map_ok(|meta| {
                    meta.location
                        .as_ref()
                        .trim_start_matches("cold/")
                        .to_string()
                })
                .try_collect()
                .await
        })
        .unwrap();
        files.sort();
        assert_eq!(files, listed, "seed {seed}: only listed runs are left");
        db.close();
    }
}

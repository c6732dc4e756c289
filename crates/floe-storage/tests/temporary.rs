//! Temporary relations at the storage level: they live in memory only — their commits write
//! no commit-log record and no catalog key, checkpoints skip them, nothing of them survives a
//! reopen — and their `ON COMMIT` actions apply.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field};
use floe_storage::{
    CatalogChange, ColumnDef, Db, DbOptions, Isolation, OnCommit, Persistence, PrimaryKey,
    RelationKind, SchemaDef, SequenceDef, TableData, TableDef,
};

const TEMP_SCHEMA: &str = "pg_temp_3";

fn table_def(db: &Db, schema: &str, name: &str, persistence: Persistence) -> TableDef {
    TableDef {
        id: db.allocate_oid(),
        database: "postgres".into(),
        schema: schema.into(),
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
                name: "v".into(),
                field: Field::new("v", DataType::Int64, true),
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
        next_column_id: 3,
        persistence,
    }
}

async fn temp_schema(db: &Arc<Db>) {
    db.commit_catalog(vec![CatalogChange::PutSchema(SchemaDef {
        oid: db.allocate_oid(),
        database: "postgres".into(),
        name: TEMP_SCHEMA.into(),
        temporary: true,
    })])
    .await
    .unwrap();
}

async fn insert(db: &Arc<Db>, table: &Arc<TableData>, values: &[(i32, i64)]) -> Option<u64> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(values.iter().map(|v| v.0))),
        Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.1))),
    ];
    let keys = table.codec.encode_keys(&columns).unwrap().unwrap();
    let rows = table.codec.encode_rows(&columns).unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    for i in 0..values.len() {
        let key: floe_storage::Key = Arc::from(keys.row(i).data());
        txn.lock_row(table, &key).await.unwrap();
        txn.write(table, key, Some(Arc::from(rows.row(i).data())))
            .await
            .unwrap();
    }
    txn.commit().await.unwrap()
}

fn row_count(db: &Db, id: u32) -> usize {
    db.table(id)
        .map(|t| t.hot.visible_keys(db.visible_ts()).len())
        .unwrap_or(0)
}

#[tokio::test]
async fn temporary_tables_never_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = DbOptions {
        checkpoint_on_close: false,
        ..DbOptions::default()
    };
    let (temp_id, seq_id, permanent_id) = {
        let db = Db::open(dir.path(), options.clone()).unwrap();
        let permanent = Arc::new(table_def(&db, "public", "t", Persistence::Permanent));
        db.commit_catalog(vec![CatalogChange::PutRelation(permanent.clone())])
            .await
            .unwrap();
        let logged = db.log_record_count().unwrap();

        temp_schema(&db).await;
        let temp = Arc::new(table_def(
            &db,
            TEMP_SCHEMA,
            "t",
            Persistence::Temporary(OnCommit::PreserveRows),
        ));
        let seq = Arc::new(TableDef {
            id: db.allocate_oid(),
            database: "postgres".into(),
            schema: TEMP_SCHEMA.into(),
            name: "t_id_seq".into(),
            kind: RelationKind::Sequence(SequenceDef {
                start: 1,
                increment: 1,
                min: 1,
                max: i64::MAX,
                cycle: false,
                owned_by: Some((temp.id, 1)),
            }),
            columns: vec![],
            primary_key: None,
            constraints: vec![],
            indexes: vec![],
            next_column_id: 1,
            persistence: Persistence::Temporary(OnCommit::PreserveRows),
        });
        db.commit_catalog(vec![
            CatalogChange::PutRelation(temp.clone()),
            CatalogChange::PutRelation(seq.clone()),
        ])
        .await
        .unwrap();
        let table = db.table(temp.id).unwrap();
        let ts = insert(&db, &table, &[(1, 10), (2, 20)]).await.unwrap();
        assert_eq!(table.hot.visible_keys(ts).len(), 2);
        assert_eq!(db.nextval(&seq).unwrap(), Some(1));
        assert_eq!(db.nextval(&seq).unwrap(), Some(2));
        // Creating the schema and the table and writing its rows logged nothing.
        assert_eq!(db.log_record_count().unwrap(), logged);

        // A transaction writing both kinds logs the permanent rows only.
        let permanent_data = db.table(permanent.id).unwrap();
        insert(&db, &permanent_data, &[(7, 70)]).await.unwrap();
        assert_eq!(db.log_record_count().unwrap(), logged + 1);

        // A checkpoint writes the permanent table only; it is what the reopen loads.
        db.checkpoint().unwrap();
        (temp.id, seq.id, permanent.id)
        // Dropped without a clean close of the session: like a crash for the temp table.
    };
    let db = Db::open(dir.path(), options).unwrap();
    let catalog = db.catalog();
    assert!(catalog.schema("postgres", TEMP_SCHEMA).is_none());
    assert!(catalog.relation(temp_id).is_none());
    assert!(catalog.relation(seq_id).is_none());
    assert!(db.table(temp_id).is_none());
    assert_eq!(row_count(&db, permanent_id), 1);
}

#[tokio::test]
async fn on_commit_actions_apply_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    temp_schema(&db).await;

    // ON COMMIT DELETE ROWS: rows live until the end of the transaction that wrote them.
    let delete_rows = Arc::new(table_def(
        &db,
        TEMP_SCHEMA,
        "d",
        Persistence::Temporary(OnCommit::DeleteRows),
    ));
    db.commit_catalog(vec![CatalogChange::PutRelation(delete_rows.clone())])
        .await
        .unwrap();
    let table = db.table(delete_rows.id).unwrap();
    let mut txn = db.begin(Isolation::ReadCommitted);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![1])),
        Arc::new(Int64Array::from(vec![1])),
    ];
    let key: floe_storage::Key = Arc::from(
        table
            .codec
            .encode_keys(&columns)
            .unwrap()
            .unwrap()
            .row(0)
            .data(),
    );
    let row: floe_storage::RowBytes =
        Arc::from(table.codec.encode_rows(&columns).unwrap().row(0).data());
    txn.write(&table, key.clone(), Some(row)).await.unwrap();
    assert!(txn.own_row(table.def.id, &key).is_some());
    txn.commit().await.unwrap();
    assert_eq!(row_count(&db, delete_rows.id), 0);

    // ON COMMIT DROP: gone when the creating transaction commits, with its sequences.
    let mut txn = db.begin(Isolation::ReadCommitted);
    let dropped = Arc::new(table_def(
        &db,
        TEMP_SCHEMA,
        "x",
        Persistence::Temporary(OnCommit::Drop),
    ));
    let seq = Arc::new(TableDef {
        id: db.allocate_oid(),
        database: "postgres".into(),
        schema: TEMP_SCHEMA.into(),
        name: "x_id_seq".into(),
        kind: RelationKind::Sequence(SequenceDef {
            start: 1,
            increment: 1,
            min: 1,
            max: i64::MAX,
            cycle: false,
            owned_by: Some((dropped.id, 1)),
        }),
        columns: vec![],
        primary_key: None,
        constraints: vec![],
        indexes: vec![],
        next_column_id: 1,
        persistence: Persistence::Temporary(OnCommit::PreserveRows),
    });
    txn.change_catalog(CatalogChange::PutRelation(dropped.clone()))
        .unwrap();
    txn.change_catalog(CatalogChange::PutRelation(seq.clone()))
        .unwrap();
    txn.commit().await.unwrap();
    assert!(db.catalog().relation(dropped.id).is_none());
    assert!(db.catalog().relation(seq.id).is_none());

    // A permanent relation cannot be put into a temporary schema.
    let misplaced = Arc::new(table_def(&db, TEMP_SCHEMA, "p", Persistence::Permanent));
    assert!(db
        .commit_catalog(vec![CatalogChange::PutRelation(misplaced)])
        .await
        .is_err());
}

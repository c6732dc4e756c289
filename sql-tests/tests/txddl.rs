//! Transactional DDL across sessions: uncommitted DDL is invisible to others, DDL on one name
//! serialises, a commit racing a DROP fails cleanly, and committed DDL+data (only that)
//! survives restarts.

use std::time::Duration;

use floe_sql_tests::TestServer;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
}

fn code(result: Result<(), tokio_postgres::Error>) -> SqlState {
    result
        .expect_err("expected an error")
        .code()
        .cloned()
        .expect("a server error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uncommitted_create_table_is_invisible_to_other_sessions() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "BEGIN; CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one')",
    )
    .await
    .unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM t").await, 1, "own DDL");
    assert_eq!(
        code(b.batch_execute("SELECT * FROM t").await),
        SqlState::UNDEFINED_TABLE
    );
    assert_eq!(
        count(&b, "SELECT count(*) FROM pg_class WHERE relname = 't'").await,
        0
    );
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'"
        )
        .await,
        0
    );
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t").await, 1, "committed");

    // A DROP in an open block: a reader waits for the block (the relation lock), and sees the
    // table again after the ROLLBACK.
    a.batch_execute("BEGIN; DROP TABLE t").await.unwrap();
    assert_eq!(
        code(a.batch_execute("SELECT * FROM t").await),
        SqlState::UNDEFINED_TABLE
    );
    let b_reads = tokio::spawn(async move {
        let n = count(&b, "SELECT count(*) FROM t").await;
        (b, n)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_reads.is_finished(), "the reader must wait for the DROP");
    a.batch_execute("ROLLBACK").await.unwrap();
    let (b, n) = b_reads.await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(count(&a, "SELECT count(*) FROM t").await, 1);

    // An uncommitted ALTER: others keep the old columns.
    a.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN w int DEFAULT 5")
        .await
        .unwrap();
    assert_eq!(count(&a, "SELECT sum(w)::bigint FROM t").await, 5);
    assert_eq!(
        code(b.batch_execute("SELECT w FROM t").await),
        SqlState::UNDEFINED_COLUMN
    );
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&b, "SELECT sum(w)::bigint FROM t").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statements_wait_for_uncommitted_ddl_on_their_tables() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    let c = server.connect().await;
    a.batch_execute(
        "CREATE TABLE w (id int PRIMARY KEY, v int); INSERT INTO w VALUES (1, 10);
         CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other VALUES (1)",
    )
    .await
    .unwrap();
    // A prepared fast-path statement, planned before the ALTER.
    let get = b.prepare("SELECT v FROM w WHERE id = $1").await.unwrap();

    a.batch_execute("BEGIN; ALTER TABLE w ADD COLUMN z int DEFAULT 7")
        .await
        .unwrap();
    let b_reads = tokio::spawn(async move {
        let v: i32 = b.query_one(&get, &[&1i32]).await.unwrap().get(0);
        (b, v)
    });
    let c_writes = tokio::spawn(async move {
        let result = c
            .batch_execute("INSERT INTO w (id, v) VALUES (2, 20)")
            .await;
        (c, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_reads.is_finished(), "the SELECT must wait for the ALTER");
    assert!(
        !c_writes.is_finished(),
        "the INSERT must wait for the ALTER"
    );
    // Tables the DDL does not touch are not blocked.
    assert_eq!(count(&a, "SELECT count(*) FROM other").await, 1);
    a.batch_execute("COMMIT").await.unwrap();
    let (b, v) = b_reads.await.unwrap();
    assert_eq!(v, 10);
    let (c, result) = c_writes.await.unwrap();
    result.unwrap();
    assert_eq!(
        count(&b, "SELECT sum(z)::bigint FROM w").await,
        14,
        "the INSERT ran against the new definition"
    );

    // A waiting statement whose table was dropped meanwhile fails with 42P01.
    a.batch_execute("BEGIN; DROP TABLE w").await.unwrap();
    let c_writes = tokio::spawn(async move {
        let result = c.batch_execute("UPDATE w SET v = v + 1").await;
        (c, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!c_writes.is_finished(), "the UPDATE must wait for the DROP");
    a.batch_execute("COMMIT").await.unwrap();
    let (c, result) = c_writes.await.unwrap();
    assert_eq!(code(result), SqlState::UNDEFINED_TABLE);

    // A cycle through a row lock and a relation lock is a deadlock, found and broken.
    a.batch_execute("CREATE TABLE w2 (id int PRIMARY KEY)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; UPDATE other SET id = 1 WHERE id = 1")
        .await
        .unwrap();
    c.batch_execute("BEGIN; ALTER TABLE w2 ADD COLUMN q int")
        .await
        .unwrap();
    let a_waits = tokio::spawn(async move {
        let result = a.batch_execute("SELECT * FROM w2").await;
        (a, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c_result = c
        .batch_execute("UPDATE other SET id = 1 WHERE id = 1")
        .await;
    assert_eq!(code(c_result), SqlState::T_R_DEADLOCK_DETECTED);
    c.batch_execute("ROLLBACK").await.unwrap();
    let (a, result) = a_waits.await.unwrap();
    result.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ddl_on_the_same_name_serialises() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;

    // Two blocks create the same name: the second waits; after the first rolls back it
    // proceeds.
    a.batch_execute("BEGIN; CREATE TABLE s (id int)")
        .await
        .unwrap();
    let b_creates = tokio::spawn(async move {
        let result = b
            .batch_execute("BEGIN; CREATE TABLE s (id int, other text)")
            .await;
        (b, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_creates.is_finished(), "the second CREATE must wait");
    a.batch_execute("ROLLBACK").await.unwrap();
    let (b, result) = b_creates.await.unwrap();
    result.unwrap();
    b.batch_execute("INSERT INTO s VALUES (1, 'x'); COMMIT")
        .await
        .unwrap();
    assert_eq!(count(&a, "SELECT count(other)::bigint FROM s").await, 1);

    // The second waits, and after the first commits fails as PostgreSQL does (42P07).
    a.batch_execute("BEGIN; CREATE TABLE u (id int)")
        .await
        .unwrap();
    let b_creates = tokio::spawn(async move {
        let result = b.batch_execute("CREATE TABLE u (id int)").await;
        (b, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_creates.is_finished(), "the second CREATE must wait");
    a.batch_execute("COMMIT").await.unwrap();
    let (b, result) = b_creates.await.unwrap();
    assert_eq!(code(result), SqlState::DUPLICATE_TABLE);

    // DROP in a block, ALTER elsewhere: the ALTER waits, then finds no table (42P01).
    a.batch_execute("BEGIN; DROP TABLE s").await.unwrap();
    let b_alters = tokio::spawn(async move {
        let result = b.batch_execute("ALTER TABLE s ADD COLUMN z int").await;
        (b, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_alters.is_finished(), "the ALTER must wait");
    a.batch_execute("COMMIT").await.unwrap();
    let (b, result) = b_alters.await.unwrap();
    assert_eq!(code(result), SqlState::UNDEFINED_TABLE);

    // Two blocks creating each other's names in opposite order: a deadlock is detected, not
    // waited for forever.
    a.batch_execute("BEGIN; CREATE TABLE d1 (id int)")
        .await
        .unwrap();
    b.batch_execute("BEGIN; CREATE TABLE d2 (id int)")
        .await
        .unwrap();
    let a_waits = tokio::spawn(async move {
        let result = a.batch_execute("CREATE TABLE d2 (id int)").await;
        (a, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b_result = b.batch_execute("CREATE TABLE d1 (id int)").await;
    assert_eq!(code(b_result), SqlState::T_R_DEADLOCK_DETECTED);
    b.batch_execute("ROLLBACK").await.unwrap();
    let (a, result) = a_waits.await.unwrap();
    result.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM d1").await, 0);
    assert_eq!(count(&b, "SELECT count(*) FROM d2").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_committed_to_a_concurrently_dropped_table_fail_cleanly() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE y (id int PRIMARY KEY)")
        .await
        .unwrap();
    b.batch_execute("BEGIN; INSERT INTO y VALUES (1)")
        .await
        .unwrap();
    a.batch_execute("DROP TABLE y").await.unwrap();
    assert_eq!(
        code(b.batch_execute("COMMIT").await),
        SqlState::T_R_SERIALIZATION_FAILURE
    );
    // Both connections stay usable; the name is free again.
    b.batch_execute("CREATE TABLE y (id int PRIMARY KEY); INSERT INTO y VALUES (2)")
        .await
        .unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM y").await, 1);

    // Rows written in a block to a table the same block dropped are simply gone.
    a.batch_execute("BEGIN; INSERT INTO y VALUES (3); DROP TABLE y; COMMIT")
        .await
        .unwrap();
    assert_eq!(
        code(b.batch_execute("SELECT * FROM y").await),
        SqlState::UNDEFINED_TABLE
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ddl_in_a_block_never_breaks_the_connection() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    for bad in [
        "CREATE TABLE (id int)",
        "CREATE TABLE bad (id nosuchtype)",
        "CREATE TABLE bad (id int PRIMARY KEY, id int)",
        "ALTER TABLE nosuch ADD COLUMN x int",
        "DROP TABLE nosuch",
        "CREATE INDEX ON nosuch (x)",
        "DROP SCHEMA nosuch",
        "CREATE VIEW bad AS SELECT * FROM nosuch",
        "CREATE DATABASE bad",
        "DROP DATABASE bad",
    ] {
        a.batch_execute("BEGIN; CREATE TABLE ok1 (id int)")
            .await
            .unwrap();
        assert!(a.batch_execute(bad).await.is_err(), "{bad} should fail");
        assert_eq!(
            code(a.batch_execute("SELECT 1").await),
            SqlState::IN_FAILED_SQL_TRANSACTION
        );
        a.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(
            code(a.batch_execute("SELECT * FROM ok1").await),
            SqlState::UNDEFINED_TABLE
        );
    }
    assert_eq!(count(&a, "SELECT 1::bigint").await, 1);
}

#[tokio::test]
async fn committed_ddl_with_data_survives_restarts_and_rolled_back_ddl_does_not() {
    let mut server = TestServer::start_floe();
    let (d_oid, i_oid) = {
        let c = server.connect().await;
        c.batch_execute(
            "BEGIN;
             CREATE TABLE d (id serial PRIMARY KEY, v text);
             INSERT INTO d (v) VALUES ('a'), ('b');
             CREATE INDEX d_v_idx ON d (v);
             CREATE VIEW dv AS SELECT v FROM d;
             CREATE TABLE dropped_later (x int);
             INSERT INTO dropped_later VALUES (1);
             DROP TABLE dropped_later;
             COMMIT;
             BEGIN;
             CREATE TABLE r (x int);
             INSERT INTO r VALUES (1);
             ALTER TABLE d ADD COLUMN never int;
             ROLLBACK;",
        )
        .await
        .unwrap();
        // An open block at the kill: none of it may survive.
        c.batch_execute("BEGIN; CREATE TABLE open_at_kill (x int); INSERT INTO open_at_kill VALUES (1); DROP TABLE d CASCADE")
            .await
            .unwrap();
        let b = server.connect().await;
        let d_oid: i64 = b
            .query_one("SELECT oid::bigint FROM pg_class WHERE relname = 'd'", &[])
            .await
            .unwrap()
            .get(0);
        let i_oid: i64 = b
            .query_one(
                "SELECT oid::bigint FROM pg_class WHERE relname = 'd_v_idx'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        (d_oid, i_oid)
    };
    // SIGKILL: recovery replays the commit log (no checkpoint at shutdown).
    server.kill9();
    server.restart(&[]);
    for round in 0..2 {
        let c = server.connect().await;
        let rows = c
            .query("SELECT id, v FROM d ORDER BY id", &[])
            .await
            .unwrap();
        let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, vec![(1, "a".into()), (2, "b".into())], "round {round}");
        assert_eq!(count(&c, "SELECT count(*) FROM dv").await, 2);
        let oid: i64 = c
            .query_one("SELECT oid::bigint FROM pg_class WHERE relname = 'd'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(oid, d_oid, "a table's OID is stable across restarts");
        let oid: i64 = c
            .query_one(
                "SELECT oid::bigint FROM pg_class WHERE relname = 'd_v_idx'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(oid, i_oid, "an index's OID is stable across restarts");
        for gone in ["r", "open_at_kill", "dropped_later"] {
            assert_eq!(
                code(c.batch_execute(&format!("SELECT * FROM {gone}")).await),
                SqlState::UNDEFINED_TABLE,
                "{gone} (round {round})"
            );
        }
        assert_eq!(
            code(c.batch_execute("SELECT never FROM d").await),
            SqlState::UNDEFINED_COLUMN
        );
        // New objects never reuse a committed OID.
        let name = format!("fresh{round}");
        c.batch_execute(&format!("CREATE TABLE {name} (x int)"))
            .await
            .unwrap();
        let fresh: i64 = c
            .query_one(
                &format!("SELECT oid::bigint FROM pg_class WHERE relname = '{name}'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            fresh > d_oid && fresh != i_oid,
            "fresh OID {fresh} after {d_oid}"
        );
        // The serial sequence continues after its last value.
        let id: i32 = c
            .query_one("INSERT INTO d (v) VALUES ('c') RETURNING id", &[])
            .await
            .unwrap()
            .get(0);
        assert!(id > 2, "sequence went back to {id}");
        c.batch_execute("DELETE FROM d WHERE v = 'c'")
            .await
            .unwrap();
        drop(c);
        // Second round: after a clean shutdown (a checkpoint) as well.
        assert!(server.terminate(Duration::from_secs(15)).is_some());
        server.restart(&[]);
    }
}

#[tokio::test]
async fn copy_into_a_table_created_in_the_block() {
    use futures::SinkExt;
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    for (end, expected) in [("ROLLBACK", None), ("COMMIT", Some(3))] {
        a.batch_execute("BEGIN; CREATE TABLE cp (id serial PRIMARY KEY, v text)")
            .await
            .unwrap();
        let sink = a.copy_in("COPY cp (v) FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"a\nb\nc\n"))
            .await
            .unwrap();
        assert_eq!(sink.finish().await.unwrap(), 3);
        assert_eq!(count(&a, "SELECT max(id)::bigint FROM cp").await, 3);
        a.batch_execute(end).await.unwrap();
        match expected {
            Some(n) => assert_eq!(count(&b, "SELECT count(*) FROM cp").await, n),
            None => assert_eq!(
                code(b.batch_execute("SELECT * FROM cp").await),
                SqlState::UNDEFINED_TABLE
            ),
        }
    }
}

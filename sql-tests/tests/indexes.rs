//! UNIQUE constraints and indexes over the wire: two sessions racing for one value, COPY,
//! and indexes surviving a restart.

use std::time::Duration;

use floe_sql_tests::TestServer;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
}

/// The second inserter of a value waits for the first; it fails with 23505 if the first
/// commits and succeeds if the first rolls back (as in PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_of_one_unique_value_wait_for_each_other() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE u (id int PRIMARY KEY, v int UNIQUE)")
        .await
        .unwrap();
    for (finish, expect_ok) in [("COMMIT", false), ("ROLLBACK", true)] {
        let value = if expect_ok { 2 } else { 1 };
        a.batch_execute(&format!("BEGIN; INSERT INTO u VALUES ({value}0, {value})"))
            .await
            .unwrap();
        let b_insert = {
            let sql = format!("INSERT INTO u VALUES ({value}1, {value})");
            let b = &b;
            async move { b.batch_execute(&sql).await }
        };
        tokio::pin!(b_insert);
        // b must wait while a holds the value.
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut b_insert).await;
        assert!(waited.is_err(), "second inserter did not wait ({finish})");
        a.batch_execute(finish).await.unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), b_insert)
            .await
            .expect("second inserter still waiting");
        if expect_ok {
            result.unwrap();
        } else {
            let err = result.unwrap_err();
            assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
            let db = err.as_db_error().unwrap();
            assert_eq!(
                db.message(),
                "duplicate key value violates unique constraint \"u_v_key\""
            );
            assert_eq!(db.detail(), Some("Key (v)=(1) already exists."));
        }
    }
    assert_eq!(count(&a, "SELECT count(*) FROM u").await, 2);
    // A value being vacated is free once the deleter commits: the inserter waits for it.
    a.batch_execute("BEGIN; DELETE FROM u WHERE v = 1")
        .await
        .unwrap();
    let b_insert = b.batch_execute("INSERT INTO u VALUES (30, 1)");
    tokio::pin!(b_insert);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut b_insert)
            .await
            .is_err(),
        "inserter did not wait for the deleter"
    );
    a.batch_execute("COMMIT").await.unwrap();
    b_insert.await.unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM u WHERE v = 1").await, 1);
}

/// Many sessions insert overlapping values at once: exactly one row per value survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_inserters_leave_one_row_per_value() {
    let server = TestServer::start_floe();
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE race (id serial PRIMARY KEY, v int, UNIQUE (v))")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = server.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for v in 0..50 {
                match c
                    .batch_execute(&format!("INSERT INTO race (v) VALUES ({v})"))
                    .await
                {
                    Ok(()) => ok += 1,
                    Err(e) => assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION), "{e}"),
                }
            }
            ok
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 50);
    assert_eq!(
        count(&setup, "SELECT count(DISTINCT v) FROM race").await,
        50
    );
    assert_eq!(count(&setup, "SELECT count(*) FROM race").await, 50);
}

#[tokio::test]
async fn copy_respects_unique_constraints() {
    use futures::SinkExt;
    let server = TestServer::start_floe();
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE cu (id int, code text UNIQUE)")
        .await
        .unwrap();
    let sink = c.copy_in("COPY cu FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\ta\n2\tb\n3\t\\N\n4\t\\N\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 4);
    let sink = c.copy_in("COPY cu FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"5\tc\n6\ta\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    assert_eq!(
        err.as_db_error().unwrap().detail(),
        Some("Key (code)=(a) already exists.")
    );
    assert_eq!(count(&c, "SELECT count(*) FROM cu").await, 4);
}

#[tokio::test]
async fn indexes_survive_a_restart() {
    let mut server = TestServer::start_floe();
    {
        let c = server.connect().await;
        c.batch_execute(
            "CREATE TABLE ri (id int PRIMARY KEY, a int UNIQUE, b text, c int);
             CREATE UNIQUE INDEX ri_b_uniq ON ri (b);
             CREATE INDEX ON ri (c);
             INSERT INTO ri VALUES (1, 10, 'x', 5), (2, 20, 'y', 5), (3, NULL, NULL, 6);
             UPDATE ri SET a = 11, b = 'x2' WHERE id = 1;
             DELETE FROM ri WHERE id = 2;",
        )
        .await
        .unwrap();
    }
    assert!(server.terminate(Duration::from_secs(15)).is_some());
    server.restart(&[]);
    let c = server.connect().await;
    let err = c
        .batch_execute("INSERT INTO ri VALUES (4, 11, 'z', 1)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = c
        .batch_execute("INSERT INTO ri VALUES (4, 12, 'x2', 1)")
        .await
        .unwrap_err();
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "duplicate key value violates unique constraint \"ri_b_uniq\""
    );
    // Values freed before the restart are free after it.
    c.batch_execute("INSERT INTO ri VALUES (4, 10, 'x', 1), (5, 20, 'y', 1)")
        .await
        .unwrap();
    let names: Vec<String> = c
        .query(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'ri' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["ri_a_key", "ri_b_uniq", "ri_c_idx", "ri_pkey"]);
    assert_eq!(count(&c, "SELECT count(*) FROM ri WHERE c = 1").await, 2);
}

/// A transaction whose rows were not checked against a unique index created after them
/// cannot commit them (PostgreSQL would have made CREATE INDEX wait; Floe fails the writer).
#[tokio::test]
async fn rows_unchecked_against_a_new_unique_index_do_not_commit() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE late (id int PRIMARY KEY, x int)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; INSERT INTO late VALUES (1, 1)")
        .await
        .unwrap();
    b.batch_execute("INSERT INTO late VALUES (2, 1); CREATE UNIQUE INDEX late_x ON late (x)")
        .await
        .unwrap();
    let err = a.batch_execute("COMMIT").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    assert_eq!(count(&b, "SELECT count(*) FROM late").await, 1);
}

/// Equality on an indexed column reads through the index and still sees every change,
/// including the transaction's own.
#[tokio::test]
async fn equality_on_an_indexed_column_uses_the_index() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE ie (id int PRIMARY KEY, b int, c text);
         INSERT INTO ie SELECT g, g % 10, 'x' FROM generate_series(1, 1000) g;
         CREATE INDEX ON ie (b);",
    )
    .await
    .unwrap();
    let plan: Vec<String> = c
        .simple_query("EXPLAIN SELECT * FROM ie WHERE b = 3")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("index lookup (ie_b_idx)")),
        "{plan:?}"
    );
    assert_eq!(count(&c, "SELECT count(*) FROM ie WHERE b = 3").await, 100);
    c.batch_execute(
        "BEGIN; UPDATE ie SET b = 3 WHERE id = 1; INSERT INTO ie VALUES (5000, 3, 'n');",
    )
    .await
    .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM ie WHERE b = 3").await, 102);
    c.batch_execute("DELETE FROM ie WHERE b = 3 AND id < 100; COMMIT")
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM ie WHERE b = 3").await, 91);
    assert_eq!(count(&c, "SELECT count(*) FROM ie WHERE b = 1").await, 99);
}

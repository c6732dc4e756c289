//! Temporary tables across sessions and restarts: another session cannot see or use them,
//! two sessions' temporary tables of one name are independent, they are gone when their
//! session disconnects, and nothing of them survives a SIGKILL and restart.

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

async fn temp_schema(c: &Client, table: &str) -> String {
    c.query_one(
        "SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = $1 AND pg_table_is_visible(c.oid)",
        &[&table],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn temporary_tables_are_private_to_their_session() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE TABLE shared (id int); INSERT INTO shared VALUES (1); \
         CREATE TEMP TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); \
         CREATE TEMP TABLE shared (x text); INSERT INTO shared VALUES ('mine')",
    )
    .await
    .unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM t").await, 2);
    let a_schema = temp_schema(&a, "t").await;
    assert!(a_schema.starts_with("pg_temp_"), "{a_schema}");

    // B does not see A's temporary table by name, nor A's shadowing of `shared`.
    assert_eq!(
        code(b.batch_execute("SELECT * FROM t").await),
        SqlState::UNDEFINED_TABLE
    );
    assert_eq!(
        count(&b, "SELECT count(*) FROM shared WHERE id = 1").await,
        1
    );
    // As in PostgreSQL, B sees the catalog row, but not as visible, and cannot use it.
    assert_eq!(
        count(
            &b,
            "SELECT count(*) FROM pg_class WHERE relname = 't' AND relpersistence = 't' \
             AND NOT pg_table_is_visible(oid)"
        )
        .await,
        1
    );
    assert_eq!(
        code(
            b.batch_execute(&format!("SELECT * FROM {a_schema}.t"))
                .await
        ),
        SqlState::FEATURE_NOT_SUPPORTED
    );
    assert_eq!(
        code(
            b.batch_execute(&format!("INSERT INTO {a_schema}.t VALUES (3, 'c')"))
                .await
        ),
        SqlState::FEATURE_NOT_SUPPORTED
    );

    // B's own temporary table of the same name is another table, in another schema; creating
    // both in open blocks does not make either wait.
    a.batch_execute("BEGIN; CREATE TEMP TABLE u (a int)")
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        b.batch_execute("BEGIN; CREATE TEMP TABLE u (b int); CREATE TEMP TABLE t (z int); COMMIT"),
    )
    .await
    .expect("temporary DDL must not wait for another session's")
    .unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    b.batch_execute("INSERT INTO t VALUES (42)").await.unwrap();
    assert_eq!(count(&b, "SELECT sum(z)::bigint FROM t").await, 42);
    assert_eq!(count(&a, "SELECT sum(id)::bigint FROM t").await, 3);
    assert_ne!(temp_schema(&b, "t").await, a_schema);

    // A disconnects: its temporary tables are gone; a new session does not see them.
    drop(a);
    let mut gone = false;
    for _ in 0..50 {
        let n = count(
            &b,
            &format!(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{a_schema}'"
            ),
        )
        .await;
        if n == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone,
        "A's temporary relations must be dropped when A disconnects"
    );
    let a2 = server.connect().await;
    assert_eq!(
        code(a2.batch_execute("SELECT * FROM t").await),
        SqlState::UNDEFINED_TABLE
    );
    assert_eq!(
        count(&a2, "SELECT count(*) FROM shared WHERE id = 1").await,
        1
    );
    // A new temporary table in a reused slot starts empty.
    a2.batch_execute("CREATE TEMP TABLE t (id int)")
        .await
        .unwrap();
    assert_eq!(count(&a2, "SELECT count(*) FROM t").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_of_a_temporary_table_survives_a_crash() {
    let mut server = TestServer::start_floe();
    let a = server.connect().await;
    a.batch_execute(
        "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1); \
         CREATE TEMP TABLE scratch (id serial PRIMARY KEY, v text); \
         INSERT INTO scratch (v) SELECT 'row ' || g FROM generate_series(1, 100) g; \
         CREATE TEMP VIEW scratch_v AS SELECT * FROM scratch; \
         BEGIN; INSERT INTO kept VALUES (2); INSERT INTO scratch (v) VALUES ('x'); COMMIT",
    )
    .await
    .unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM scratch").await, 101);
    drop(a);
    server.kill9();
    server.restart(&[]);
    let a = server.connect().await;
    assert_eq!(count(&a, "SELECT count(*) FROM kept").await, 2);
    assert_eq!(
        code(a.batch_execute("SELECT * FROM scratch").await),
        SqlState::UNDEFINED_TABLE
    );
    assert_eq!(
        count(
            &a,
            "SELECT count(*) FROM pg_class WHERE relpersistence = 't' \
             OR relname LIKE 'scratch%'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &a,
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'pg_temp%'"
        )
        .await,
        0
    );
    // The name is free for a permanent table.
    a.batch_execute("CREATE TABLE scratch (id int)")
        .await
        .unwrap();
}

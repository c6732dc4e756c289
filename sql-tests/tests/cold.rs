//! The cold tier over the wire: a table loaded under a tiny memory budget (so commits keep
//! asking for flushes) answers aggregates, point lookups, UPDATE/DELETE of flushed rows,
//! UNIQUE violations and secondary-index lookups correctly, after CHECKPOINT, a clean restart
//! and a SIGKILL.

use floe_sql_tests::TestServer;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

const BUDGET: [&str; 2] = ["--memory-limit", "8MB"];
const ROWS: i64 = 20_000;

async fn one(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
}

/// What every check expects after the edits below: row 5 updated, row 6 deleted, row
/// 20001 added.
async fn check(c: &Client, when: &str) {
    assert_eq!(one(c, "SELECT count(*) FROM t").await, ROWS, "{when}");
    let sum: i64 = (1..=ROWS).map(|i| i * 10).sum::<i64>() + 1 - 60 + 200_010;
    assert_eq!(one(c, "SELECT sum(v)::bigint FROM t").await, sum, "{when}");
    assert_eq!(
        one(
            c,
            "SELECT count(*) FROM (SELECT g, count(*) FROM t GROUP BY g) s"
        )
        .await,
        10,
        "{when}"
    );
    assert_eq!(one(c, "SELECT v FROM t WHERE id = 5").await, 51, "{when}");
    assert_eq!(
        one(c, "SELECT count(*) FROM t WHERE id = 6").await,
        0,
        "{when}"
    );
    assert_eq!(
        one(c, "SELECT v FROM t WHERE id = 777").await,
        7770,
        "{when}"
    );
    // The secondary index on g finds flushed rows.
    assert_eq!(
        one(c, "SELECT count(*) FROM t WHERE g = 3").await,
        2000,
        "{when}"
    );
    // UNIQUE (v) and the primary key hold against flushed rows.
    let err = c
        .batch_execute("INSERT INTO t VALUES (30000, 0, 7770, 'dup')")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::UNIQUE_VIOLATION),
        "{when}: {err}"
    );
    let err = c
        .batch_execute("INSERT INTO t VALUES (777, 0, -1, 'dup')")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::UNIQUE_VIOLATION),
        "{when}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_past_its_memory_budget_answers_correctly_across_restarts() {
    let mut server = TestServer::start_floe_with(&BUDGET);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id bigint PRIMARY KEY, g int, v bigint UNIQUE, note text);
         CREATE INDEX t_g ON t (g);",
    )
    .await
    .unwrap();
    for start in (1..=ROWS).step_by(1000) {
        c.batch_execute(&format!(
            "INSERT INTO t SELECT i, i % 10, i * 10, 'row ' || i
             FROM generate_series({start}::bigint, {}::bigint) AS s(i)",
            start + 999
        ))
        .await
        .unwrap();
    }
    c.batch_execute("CHECKPOINT").await.unwrap();
    c.batch_execute("UPDATE t SET v = 51 WHERE id = 5")
        .await
        .unwrap();
    c.batch_execute("DELETE FROM t WHERE id = 6").await.unwrap();
    c.batch_execute("INSERT INTO t VALUES (20001, 0, 200010, 'new')")
        .await
        .unwrap();
    check(&c, "before restart").await;
    c.batch_execute("CHECKPOINT").await.unwrap();
    check(&c, "after checkpoint").await;
    drop(c);
    server.terminate(std::time::Duration::from_secs(10));
    server.restart(&BUDGET);
    let c = server.connect().await;
    check(&c, "after a clean restart").await;
    drop(c);
    server.kill9();
    server.restart(&BUDGET);
    let c = server.connect().await;
    check(&c, "after SIGKILL").await;
}

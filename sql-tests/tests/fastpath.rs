//! The primary-key fast path (crates/floe-sql/src/session/fast.rs) through prepared
//! statements: one scenario runs against Floe and PostgreSQL 15 and both transcripts (rows,
//! parameter and column types, errors with SQLSTATE) must be equal; concurrency and isolation
//! through the fast path are checked on Floe.

use std::sync::Arc;

use floe_sql_tests::TestServer;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel};

/// Runs a prepared statement and writes what came back (or the error) to the transcript.
async fn step(c: &Client, log: &mut Vec<String>, sql: &str, params: &[&(dyn ToSql + Sync)]) {
    step_typed(c, log, sql, &[], params).await
}

/// [`step`] with parameter types declared in Parse, as drivers such as psycopg do.
async fn step_typed(
    c: &Client,
    log: &mut Vec<String>,
    sql: &str,
    types: &[tokio_postgres::types::Type],
    params: &[&(dyn ToSql + Sync)],
) {
    let stmt = match c.prepare_typed(sql, types).await {
        Ok(stmt) => stmt,
        Err(e) => {
            log.push(format!("{sql} -> prepare error {}", error_text(&e)));
            return;
        }
    };
    let params_desc: Vec<String> = stmt.params().iter().map(|t| t.name().to_string()).collect();
    let columns: Vec<String> = stmt
        .columns()
        .iter()
        .map(|c| format!("{}:{}", c.name(), c.type_().name()))
        .collect();
    let result = c.query(&stmt, params).await;
    let outcome = match result {
        Ok(rows) => {
            let rows: Vec<String> = rows
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| cell(row, i))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            format!("rows {rows:?}")
        }
        Err(e) => format!("error {}", error_text(&e)),
    };
    log.push(format!(
        "{sql} params {params_desc:?} columns {columns:?} -> {outcome}"
    ));
}

fn cell(row: &tokio_postgres::Row, i: usize) -> String {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let text = match ty {
        Type::INT4 => row.get::<_, Option<i32>>(i).map(|v| v.to_string()),
        Type::INT8 => row.get::<_, Option<i64>>(i).map(|v| v.to_string()),
        Type::INT2 => row.get::<_, Option<i16>>(i).map(|v| v.to_string()),
        Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(|v| v.to_string()),
        Type::BOOL => row.get::<_, Option<bool>>(i).map(|v| v.to_string()),
        Type::TEXT | Type::VARCHAR => row.get::<_, Option<String>>(i),
        other => Some(format!("<{other}>")),
    };
    text.unwrap_or_else(|| "NULL".into())
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {} / {}",
            db.code().code(),
            db.message(),
            db.detail().unwrap_or("")
        ),
        None => e.to_string(),
    }
}

async fn scenario(c: &Client) -> Vec<String> {
    let mut log = Vec::new();
    c.batch_execute(
        "CREATE TABLE acc (id int PRIMARY KEY, bal int NOT NULL, name text, f float8, ok boolean);
         CREATE TABLE hist (a int, b bigint, at timestamp, note char(4));
         CREATE TABLE kv (k text PRIMARY KEY, v bigint);
         CREATE TABLE pair (a int, b int, v int, PRIMARY KEY (a, b));
         INSERT INTO acc VALUES (1, 100, 'one', 1.5, true), (2, 200, NULL, NULL, NULL);
         INSERT INTO kv VALUES ('x', 1);
         INSERT INTO pair VALUES (1, 2, 12), (2, 1, 21);",
    )
    .await
    .unwrap();
    let s = &mut log;
    step(c, s, "SELECT bal FROM acc WHERE id = $1", &[&1i32]).await;
    step(
        c,
        s,
        "SELECT bal, name, f, ok FROM acc WHERE id = $1",
        &[&2i32],
    )
    .await;
    step(
        c,
        s,
        "SELECT a.bal AS b, a.name FROM acc a WHERE a.id = $1",
        &[&1i32],
    )
    .await;
    step(c, s, "SELECT bal FROM acc WHERE $1 = id", &[&3i32]).await;
    step(c, s, "SELECT bal FROM acc WHERE id = 2", &[]).await;
    step(c, s, "SELECT bal FROM acc WHERE id = -1", &[]).await;
    step(c, s, "SELECT bal FROM acc WHERE id = 99999999999", &[]).await;
    step(c, s, "SELECT bal FROM acc WHERE id = $1", &[&None::<i32>]).await;
    step(c, s, "SELECT v FROM kv WHERE k = $1", &[&"x"]).await;
    step(c, s, "SELECT v FROM kv WHERE k = 'x'", &[]).await;
    step(
        c,
        s,
        "SELECT v FROM pair WHERE b = $1 AND a = $2",
        &[&2i32, &1i32],
    )
    .await;
    step(c, s, "SELECT v FROM pair WHERE a = 2 AND (b = 1)", &[]).await;
    // Updates: arithmetic, assignment, overflow, NOT NULL, several columns.
    step(
        c,
        s,
        "UPDATE acc SET bal = bal + $1 WHERE id = $2",
        &[&5i32, &1i32],
    )
    .await;
    step(
        c,
        s,
        "UPDATE acc SET bal = bal - 7, name = $1 WHERE id = 2",
        &[&"two"],
    )
    .await;
    step(
        c,
        s,
        "UPDATE acc SET f = f + 1, ok = false WHERE id = 1",
        &[],
    )
    .await;
    step(
        c,
        s,
        "UPDATE acc SET bal = $1 WHERE id = $2",
        &[&i32::MAX, &1i32],
    )
    .await;
    step(c, s, "UPDATE acc SET bal = bal + 1 WHERE id = 1", &[]).await;
    step(c, s, "UPDATE acc SET bal = NULL WHERE id = 1", &[]).await;
    step(c, s, "UPDATE acc SET bal = 0 WHERE id = 42", &[]).await;
    step(c, s, "UPDATE kv SET v = v * 2 WHERE k = 'x'", &[]).await;
    step(
        c,
        s,
        "UPDATE pair SET v = v + $1 WHERE a = $2 AND b = $3",
        &[&100i32, &1i32, &2i32],
    )
    .await;
    step(
        c,
        s,
        "SELECT id, bal, name, f, ok FROM acc ORDER BY id",
        &[],
    )
    .await;
    step(c, s, "SELECT a, b, v FROM pair ORDER BY a", &[]).await;
    // Inserts: parameters, constants, CURRENT_TIMESTAMP, left-out columns, errors.
    step(
        c,
        s,
        "INSERT INTO hist (a, b, at) VALUES ($1, $2, CURRENT_TIMESTAMP)",
        &[&1i32, &2i64],
    )
    .await;
    step(
        c,
        s,
        "INSERT INTO hist (b, a) VALUES (5, -3), ($1, $2)",
        &[&7i64, &8i32],
    )
    .await;
    step(
        c,
        s,
        "INSERT INTO acc VALUES ($1, $2, $3, $4, $5)",
        &[&3i32, &300i32, &"three", &2.5f64, &true],
    )
    .await;
    step(c, s, "INSERT INTO acc (id, bal) VALUES (1, 1)", &[]).await;
    step(c, s, "INSERT INTO acc (id) VALUES (9)", &[]).await;
    step(
        c,
        s,
        "INSERT INTO acc (id, bal) VALUES ($1, $2)",
        &[&4i32, &None::<i32>],
    )
    .await;
    step(c, s, "INSERT INTO kv VALUES ($1, $2)", &[&"y", &2i64]).await;
    step(
        c,
        s,
        "SELECT a, b, at IS NOT NULL FROM hist ORDER BY a",
        &[],
    )
    .await;
    step(c, s, "SELECT id, bal, name FROM acc ORDER BY id", &[]).await;
    // UNIQUE is enforced on the fast path too (by storage).
    c.batch_execute("CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE)")
        .await
        .unwrap();
    step(c, s, "INSERT INTO u VALUES ($1, $2)", &[&1i32, &"a@x"]).await;
    step(c, s, "INSERT INTO u VALUES ($1, $2)", &[&2i32, &"a@x"]).await;
    step(c, s, "INSERT INTO u VALUES ($1, $2)", &[&2i32, &"b@x"]).await;
    step(
        c,
        s,
        "UPDATE u SET email = $1 WHERE id = $2",
        &[&"a@x", &2i32],
    )
    .await;
    step(
        c,
        s,
        "UPDATE u SET email = $1 WHERE id = $2",
        &[&"c@x", &1i32],
    )
    .await;
    step(c, s, "INSERT INTO u VALUES (3, 'a@x')", &[]).await;
    step(c, s, "SELECT id, email FROM u ORDER BY id", &[]).await;
    // Inside a transaction block: own writes, rollback, truncate.
    c.batch_execute("BEGIN").await.unwrap();
    step(
        c,
        s,
        "UPDATE acc SET bal = $1 WHERE id = $2",
        &[&-1i32, &3i32],
    )
    .await;
    step(c, s, "SELECT bal FROM acc WHERE id = $1", &[&3i32]).await;
    step(
        c,
        s,
        "INSERT INTO acc (id, bal) VALUES ($1, $2)",
        &[&10i32, &10i32],
    )
    .await;
    step(c, s, "SELECT bal FROM acc WHERE id = $1", &[&10i32]).await;
    c.batch_execute("TRUNCATE kv").await.unwrap();
    step(c, s, "SELECT v FROM kv WHERE k = $1", &[&"x"]).await;
    c.batch_execute("ROLLBACK").await.unwrap();
    step(c, s, "SELECT bal FROM acc WHERE id = $1", &[&3i32]).await;
    step(c, s, "SELECT bal FROM acc WHERE id = $1", &[&10i32]).await;
    step(c, s, "SELECT v FROM kv WHERE k = $1", &[&"x"]).await;
    // CURRENT_TIMESTAMP is the transaction's start, in the session's time zone.
    c.batch_execute("SET TimeZone = 'America/New_York'; BEGIN")
        .await
        .unwrap();
    step(
        c,
        s,
        "INSERT INTO hist (a, at) VALUES (100, CURRENT_TIMESTAMP)",
        &[],
    )
    .await;
    step(c, s, "INSERT INTO hist (a, at) VALUES (101, now())", &[]).await;
    step(
        c,
        s,
        "SELECT a FROM hist WHERE at = CURRENT_TIMESTAMP::timestamp ORDER BY a",
        &[],
    )
    .await;
    c.batch_execute("COMMIT; RESET TimeZone").await.unwrap();
    // A read-only transaction refuses fast writes too.
    c.batch_execute("BEGIN READ ONLY").await.unwrap();
    step(c, s, "UPDATE acc SET bal = 1 WHERE id = 1", &[]).await;
    c.batch_execute("ROLLBACK").await.unwrap();
    // Shapes the fast path leaves alone still work.
    step(
        c,
        s,
        "SELECT bal FROM acc WHERE id = $1 FOR UPDATE",
        &[&1i32],
    )
    .await;
    step(
        c,
        s,
        "UPDATE acc SET bal = bal + 1 WHERE id = $1 RETURNING bal",
        &[&3i32],
    )
    .await;
    step(c, s, "INSERT INTO hist (note) VALUES ('ab')", &[]).await;
    step(
        c,
        s,
        "UPDATE acc SET bal = $1, name = ($2) WHERE id > $3",
        &[&5i32, &"n", &100i32],
    )
    .await;
    step(
        c,
        s,
        "SELECT note || '|' FROM hist WHERE note IS NOT NULL",
        &[],
    )
    .await;
    // Declared parameter types narrower than the columns' (int2/int4 for bigint columns).
    {
        use tokio_postgres::types::Type;
        c.batch_execute("CREATE TABLE big (id bigint PRIMARY KEY, v bigint NOT NULL)")
            .await
            .unwrap();
        step_typed(
            c,
            s,
            "INSERT INTO big (id, v) VALUES ($1, $2)",
            &[Type::INT4, Type::INT2],
            &[&7i32, &3i16],
        )
        .await;
        step_typed(
            c,
            s,
            "UPDATE big SET v = v + $1 WHERE id = $2",
            &[Type::INT2, Type::INT4],
            &[&5i16, &7i32],
        )
        .await;
        step_typed(
            c,
            s,
            "UPDATE big SET v = $1 WHERE id = $2",
            &[Type::INT4, Type::INT4],
            &[&i32::MIN, &8i32],
        )
        .await;
        step_typed(
            c,
            s,
            "SELECT v FROM big WHERE id = $1",
            &[Type::INT4],
            &[&7i32],
        )
        .await;
        step_typed(
            c,
            s,
            "SELECT v FROM big WHERE id = $1",
            &[Type::INT2],
            &[&8i16],
        )
        .await;
        // A declared type wider than the column's stays on the general path.
        step_typed(
            c,
            s,
            "SELECT bal FROM acc WHERE id = $1",
            &[Type::INT8],
            &[&1i64],
        )
        .await;
    }
    log
}

#[test]
fn fast_path_matches_postgres() {
    // Servers start outside the runtime (starting PostgreSQL waits on a runtime of its own).
    let floe = TestServer::start_floe();
    let pg = if TestServer::postgres_available() {
        Some(TestServer::start_postgres())
    } else if std::env::var("FLOE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("PostgreSQL 15 is required (FLOE_REQUIRE_POSTGRES=1) but not installed");
    } else {
        None
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let floe_log = rt.block_on(async { scenario(&floe.connect().await).await });
    let Some(pg) = pg else {
        eprintln!("PostgreSQL not installed: ran the scenario on Floe only");
        return;
    };
    let pg_log = rt.block_on(async { scenario(&pg.connect().await).await });
    for (i, (f, p)) in floe_log.iter().zip(&pg_log).enumerate() {
        assert_eq!(f, p, "step {i} differs (left: Floe, right: PostgreSQL)");
    }
    assert_eq!(floe_log.len(), pg_log.len());
}

/// Prepared statements keep working after the table they were planned for changes.
#[tokio::test]
async fn prepared_fast_statements_survive_alter_table() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)")
        .await
        .unwrap();
    let get = c.prepare("SELECT v FROM t WHERE id = $1").await.unwrap();
    let bump = c
        .prepare("UPDATE t SET v = v + $1 WHERE id = $2")
        .await
        .unwrap();
    c.execute(&bump, &[&1i32, &1i32]).await.unwrap();
    c.batch_execute("ALTER TABLE t ADD COLUMN w text DEFAULT 'w'; INSERT INTO t VALUES (2, 20)")
        .await
        .unwrap();
    c.execute(&bump, &[&1i32, &2i32]).await.unwrap();
    let v: i32 = c.query_one(&get, &[&2i32]).await.unwrap().get(0);
    assert_eq!(v, 21);
    let v: i32 = c.query_one(&get, &[&1i32]).await.unwrap().get(0);
    assert_eq!(v, 11);
    let w: String = c
        .query_one("SELECT w FROM t WHERE id = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(w, "w");
}

/// 8 sessions × 50 prepared `UPDATE … SET v = v + $1 WHERE id = $2` under READ COMMITTED:
/// every increment applies (the waiter applies to the new version).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prepared_increments_all_apply() {
    let server = Arc::new(TestServer::start_floe());
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE c (id int PRIMARY KEY, v int); INSERT INTO c VALUES (1, 0)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = server.connect().await;
            let bump = c
                .prepare("UPDATE c SET v = v + $1 WHERE id = $2")
                .await
                .unwrap();
            let read = c.prepare("SELECT v FROM c WHERE id = $1").await.unwrap();
            for _ in 0..50 {
                let t = c.transaction().await.unwrap();
                assert_eq!(t.execute(&bump, &[&1i32, &1i32]).await.unwrap(), 1);
                let _: i32 = t.query_one(&read, &[&1i32]).await.unwrap().get(0);
                t.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v: i32 = setup
        .query_one("SELECT v FROM c WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 400);
}

/// Under REPEATABLE READ a fast-path update of a row changed since the snapshot is 40001.
#[tokio::test]
async fn fast_update_conflict_under_repeatable_read() {
    let server = TestServer::start_floe();
    let mut a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE c (id int PRIMARY KEY, v int); INSERT INTO c VALUES (1, 0)")
        .await
        .unwrap();
    let t = a
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let v: i32 = t
        .query_one("SELECT v FROM c WHERE id = $1", &[&1i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 0);
    b.execute("UPDATE c SET v = v + $1 WHERE id = $2", &[&5i32, &1i32])
        .await
        .unwrap();
    // The snapshot still reads the old value through the fast path.
    let v: i32 = t
        .query_one("SELECT v FROM c WHERE id = $1", &[&1i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 0);
    let err = t
        .execute("UPDATE c SET v = v + $1 WHERE id = $2", &[&1i32, &1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    drop(t);
    // After the rollback the row is updatable again.
    let n = a
        .execute("UPDATE c SET v = 7 WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    assert_eq!(n, 1);
}

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
    if stmt.columns().is_empty() {
        // A command: its row count (INSERT 0 0 for a skipped conflict, DELETE 1, …).
        let outcome = match c.execute(&stmt, params).await {
            Ok(n) => format!("count {n}"),
            Err(e) => format!("error {}", error_text(&e)),
        };
        log.push(format!("{sql} params {params_desc:?} -> {outcome}"));
        return;
    }
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
        Type::NUMERIC => row
            .get::<_, Option<rust_decimal::Decimal>>(i)
            .map(|v| v.to_string()),
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

    // Numerics (rounded to the column's scale, 22003 past its precision, NaN widening a
    // numeric(p, s) column), DELETE by key and INSERT … ON CONFLICT DO NOTHING.
    {
        use rust_decimal::Decimal;
        let d = |t: &str| t.parse::<Decimal>().unwrap();
        c.batch_execute(
            "CREATE TABLE ord (id bigint PRIMARY KEY, c int NOT NULL, amount numeric(12,2) NOT NULL,
                              w numeric, status text);
             CREATE TABLE uq (id int PRIMARY KEY, e text UNIQUE);
             INSERT INTO uq VALUES (1, 'a');",
        )
        .await
        .unwrap();
        let insert = "INSERT INTO ord (id, c, amount, status) VALUES ($1, $2, $3, 'new') \
                      ON CONFLICT DO NOTHING";
        step(c, s, insert, &[&1i64, &1i32, &d("12.345")]).await;
        step(c, s, insert, &[&1i64, &2i32, &d("99")]).await;
        step(c, s, insert, &[&2i64, &2i32, &d("99.995")]).await;
        step(c, s, insert, &[&3i64, &2i32, &d("9999999999.995")]).await;
        step(c, s, insert, &[&3i64, &2i32, &d("-0.004")]).await;
        step(c, s, insert, &[&4i64, &2i32, &None::<Decimal>]).await;
        let update = "UPDATE ord SET amount = $1, w = $1 WHERE id = $2";
        step(c, s, update, &[&d("1.005"), &1i64]).await;
        step(c, s, update, &[&d("-1500"), &2i64]).await;
        step(c, s, update, &[&d("100000000000"), &2i64]).await;
        step(c, s, "UPDATE ord SET w = -2.50 WHERE id = 1", &[]).await;
        step(c, s, "UPDATE ord SET amount = 7.777 WHERE id = 2", &[]).await;
        step(c, s, "UPDATE ord SET amount = 1e3 WHERE id = 3", &[]).await;
        // Increments: the exact sum, then the column's rounding (1.01 - 0.005 = 1.005 -> 1.01;
        // rounding the operand first would give 1.00).
        let bump = "UPDATE ord SET amount = amount + $1 WHERE id = $2";
        step(c, s, bump, &[&d("-0.005"), &1i64]).await;
        step(c, s, bump, &[&d("0.004"), &2i64]).await;
        step(c, s, bump, &[&d("99999999999"), &2i64]).await;
        step(c, s, bump, &[&None::<Decimal>, &3i64]).await;
        step(c, s, "UPDATE ord SET w = w - 1.25 WHERE id = 1", &[]).await;
        step(
            c,
            s,
            "UPDATE ord SET w = w + $1 WHERE id = $2",
            &[&d("1"), &3i64],
        )
        .await;
        step(
            c,
            s,
            "UPDATE ord SET amount = amount - 0.004 WHERE id = 1",
            &[],
        )
        .await;
        step(c, s, "SELECT amount, w FROM ord WHERE id = $1", &[&1i64]).await;
        step(c, s, "SELECT id, amount, w FROM ord ORDER BY id", &[]).await;
        let delete = "DELETE FROM ord WHERE id = $1";
        step(c, s, delete, &[&1i64]).await;
        step(c, s, delete, &[&1i64]).await;
        step(c, s, delete, &[&None::<i64>]).await;
        step(c, s, "DELETE FROM ord o WHERE o.id = 2", &[]).await;
        step(
            c,
            s,
            "DELETE FROM ord WHERE id = $1 AND id = $2",
            &[&3i64, &3i64],
        )
        .await;
        step(c, s, "SELECT id, amount FROM ord ORDER BY id", &[]).await;
        // NaN into numeric(12,2): the column widens and the row goes in, as in PostgreSQL.
        c.batch_execute("INSERT INTO ord VALUES (5, 1, 0, 'NaN', 'nan')")
            .await
            .unwrap();
        let nan = "INSERT INTO ord (id, c, amount) VALUES ($1, 1, 'NaN') ON CONFLICT DO NOTHING";
        step(c, s, nan, &[&6i64]).await;
        step(
            c,
            s,
            "SELECT id, amount::text, w::text FROM ord ORDER BY id",
            &[],
        )
        .await;
        let skip_any = "INSERT INTO uq VALUES ($1, $2) ON CONFLICT DO NOTHING";
        step(c, s, skip_any, &[&2i32, &"a"]).await;
        step(c, s, skip_any, &[&1i32, &"b"]).await;
        step(c, s, skip_any, &[&2i32, &"b"]).await;
        let skip_pk = "INSERT INTO uq VALUES ($1, $2) ON CONFLICT (id) DO NOTHING";
        step(c, s, skip_pk, &[&1i32, &"c"]).await;
        step(c, s, skip_pk, &[&3i32, &"a"]).await;
        step(
            c,
            s,
            "INSERT INTO uq VALUES (1, 'z'), (4, 'd'), (4, 'e') ON CONFLICT ON CONSTRAINT uq_pkey DO NOTHING",
            &[],
        )
        .await;
        step(
            c,
            s,
            "INSERT INTO uq VALUES (5, 'a') ON CONFLICT (e) DO NOTHING",
            &[],
        )
        .await;
        step(
            c,
            s,
            "INSERT INTO uq VALUES (5, 'a') ON CONFLICT (nope) DO NOTHING",
            &[],
        )
        .await;
        step(
            c,
            s,
            "INSERT INTO uq VALUES (1, 'q') ON CONFLICT (id) DO UPDATE SET e = 'q'",
            &[],
        )
        .await;
        step(c, s, "SELECT id, e FROM uq ORDER BY id", &[]).await;
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

/// 8 sessions insert the same 50 keys with `ON CONFLICT DO NOTHING`, then delete them by key:
/// each key is inserted once and deleted once (a waiter sees the winner's committed row).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_conflicting_inserts_and_deletes_apply_once() {
    let server = Arc::new(TestServer::start_floe());
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE k (id bigint PRIMARY KEY, amount numeric(12,2))")
        .await
        .unwrap();
    let run = |sql: &'static str| {
        let mut tasks = Vec::new();
        for worker in 0..8i64 {
            let server = server.clone();
            tasks.push(tokio::spawn(async move {
                let c = server.connect().await;
                let stmt = c.prepare(sql).await.unwrap();
                let mut applied = 0;
                for i in 0..50i64 {
                    // Each worker walks the keys from another start.
                    let id = (i + worker * 7) % 50;
                    applied += c.execute(&stmt, &[&id]).await.unwrap();
                }
                applied
            }));
        }
        tasks
    };
    let mut inserted = 0;
    for task in run("INSERT INTO k VALUES ($1, 1.5) ON CONFLICT DO NOTHING") {
        inserted += task.await.unwrap();
    }
    assert_eq!(inserted, 50);
    let n: i64 = setup
        .query_one("SELECT count(*) FROM k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 50);
    let mut deleted = 0;
    for task in run("DELETE FROM k WHERE id = $1") {
        deleted += task.await.unwrap();
    }
    assert_eq!(deleted, 50);
    let n: i64 = setup
        .query_one("SELECT count(*) FROM k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// Under REPEATABLE READ a fast-path delete of a row changed since the snapshot is 40001.
#[tokio::test]
async fn fast_delete_conflict_under_repeatable_read() {
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
    t.query_one("SELECT v FROM c WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    b.execute("UPDATE c SET v = v + $1 WHERE id = $2", &[&5i32, &1i32])
        .await
        .unwrap();
    let err = t
        .execute("DELETE FROM c WHERE id = $1", &[&1i32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
}

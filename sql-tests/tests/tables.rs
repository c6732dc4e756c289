//! Tables over the wire: visibility between sessions, concurrent writers, isolation levels,
//! durability through restarts and SIGKILL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use floe_sql_tests::TestServer;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, IsolationLevel, NoTls};

async fn count(c: &Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0)
}

#[tokio::test]
async fn uncommitted_rows_are_invisible_to_other_sessions() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        .await
        .unwrap();
    a.batch_execute("BEGIN; INSERT INTO t VALUES (1, 'one')")
        .await
        .unwrap();
    assert_eq!(count(&a, "SELECT count(*) FROM t").await, 1, "own writes");
    assert_eq!(count(&b, "SELECT count(*) FROM t").await, 0, "uncommitted");
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t").await, 1, "committed");

    a.batch_execute("BEGIN; DELETE FROM t; INSERT INTO t VALUES (2, 'two')")
        .await
        .unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t WHERE id = 1").await, 1);
    a.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t WHERE id = 2").await, 0);
    assert_eq!(count(&a, "SELECT count(*) FROM t WHERE id = 1").await, 1);

    // REPEATABLE READ keeps its snapshot; READ COMMITTED sees new commits.
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t").await, 1);
    a.batch_execute("INSERT INTO t VALUES (3, 'three')")
        .await
        .unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t").await, 1);
    b.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&b, "SELECT count(*) FROM t").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_under_read_committed_all_apply() {
    let server = TestServer::start_floe();
    let setup = server.connect().await;
    setup
        .batch_execute("CREATE TABLE c (id int PRIMARY KEY, v int); INSERT INTO c VALUES (1, 0)")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = server.connect().await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                client
                    .execute("UPDATE c SET v = v + 1 WHERE id = 1", &[])
                    .await
                    .unwrap();
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

#[tokio::test]
async fn repeatable_read_write_conflicts_fail_with_40001() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute("CREATE TABLE r (id int PRIMARY KEY, v int); INSERT INTO r VALUES (1, 0)")
        .await
        .unwrap();
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM r")
        .await
        .unwrap();
    a.batch_execute("UPDATE r SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    let err = b
        .batch_execute("UPDATE r SET v = 2 WHERE id = 1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    b.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deadlocks_are_detected() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = server.connect().await;
    a.batch_execute(
        "CREATE TABLE d (id int PRIMARY KEY, v int); INSERT INTO d VALUES (1, 0), (2, 0)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN; UPDATE d SET v = 1 WHERE id = 1")
        .await
        .unwrap();
    b.batch_execute("BEGIN; UPDATE d SET v = 2 WHERE id = 2")
        .await
        .unwrap();
    let a_waits = tokio::spawn(async move {
        let r = a.batch_execute("UPDATE d SET v = 1 WHERE id = 2").await;
        (a, r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_result = b.batch_execute("UPDATE d SET v = 2 WHERE id = 1").await;
    let err = b_result.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_DEADLOCK_DETECTED));
    b.batch_execute("ROLLBACK").await.unwrap();
    let (a, a_result) = a_waits.await.unwrap();
    a_result.unwrap();
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(count(&a, "SELECT sum(v)::bigint FROM d").await, 2);
}

/// Transfers between accounts keep the total, under READ COMMITTED (row locks re-check the
/// newest version) and under REPEATABLE READ (conflicts retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_keep_the_total() {
    let server = TestServer::start_floe();
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE bank (id int PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO bank SELECT g, 1000 FROM generate_series(1, 10) g",
        )
        .await
        .unwrap();
    for isolation in [
        IsolationLevel::ReadCommitted,
        IsolationLevel::RepeatableRead,
    ] {
        let mut tasks = Vec::new();
        for worker in 0..6u64 {
            let (mut client, conn) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
            tokio::spawn(conn);
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                let mut seed = worker * 7919 + 1;
                while done < 30 {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let from = (seed >> 33) % 10 + 1;
                    let to = (seed >> 17) % 10 + 1;
                    if from == to {
                        continue;
                    }
                    let tx = client
                        .build_transaction()
                        .isolation_level(isolation)
                        .start()
                        .await
                        .unwrap();
                    let moved = async {
                        tx.execute(
                            "UPDATE bank SET balance = balance - 7 WHERE id = $1",
                            &[&(from as i32)],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE bank SET balance = balance + 7 WHERE id = $1",
                            &[&(to as i32)],
                        )
                        .await?;
                        tx.commit().await
                    }
                    .await;
                    match moved {
                        Ok(()) => done += 1,
                        Err(e)
                            if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                                || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {}
                        Err(e) => panic!("transfer failed: {e:?}"),
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            count(&setup, "SELECT sum(balance)::bigint FROM bank").await,
            10_000,
            "{isolation:?}"
        );
    }
}

#[tokio::test]
async fn committed_data_survives_a_clean_restart() {
    let mut server = TestServer::start_floe();
    {
        let c = server.connect().await;
        c.batch_execute(
            "CREATE TABLE p (id bigserial PRIMARY KEY, name text, n numeric(10, 2));
             INSERT INTO p (name, n) VALUES ('a', 1.5), ('b', NULL);
             UPDATE p SET name = 'B' WHERE name = 'b';
             CREATE TABLE gone (x int); DROP TABLE gone;",
        )
        .await
        .unwrap();
    }
    assert!(server.terminate(Duration::from_secs(15)).is_some());
    server.restart(&[]);
    let c = server.connect().await;
    let rows = c
        .query("SELECT id, name, n::text FROM p ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![(1, "a".into(), Some("1.50".into())), (2, "B".into(), None)]
    );
    // The sequence continues after its last value.
    let id: i64 = c
        .query_one("INSERT INTO p (name) VALUES ('c') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert!(id > 2, "sequence went back to {id}");
    let err = c.batch_execute("SELECT * FROM gone").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE));
}

/// Wide numerics (unconstrained `numeric`, `numeric(50, 5)`) keep every digit, their scale,
/// NaN and the infinities through the commit log, a checkpoint and restarts, and the catalog
/// keeps the typmod.
#[tokio::test]
async fn numerics_survive_restarts_and_checkpoints() {
    let mut server = TestServer::start_floe();
    let values = [
        "1.50",
        "-0.000001",
        "NaN",
        "-Infinity",
        "123456789012345678901234567890123456789012345.6789",
    ];
    {
        let c = server.connect().await;
        c.batch_execute("CREATE TABLE nums (id int PRIMARY KEY, n numeric, w numeric(50, 5))")
            .await
            .unwrap();
        for (i, v) in values.iter().enumerate() {
            let w = if v.contains("Infinity") { "0" } else { v };
            c.batch_execute(&format!("INSERT INTO nums VALUES ({i}, '{v}', '{w}')"))
                .await
                .unwrap();
        }
    }
    let read = |c: Client| async move {
        c.query("SELECT n::text, w::text FROM nums ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("1.50".to_string(), "1.50000".to_string()),
        ("-0.000001".into(), "0.00000".into()),
        ("NaN".into(), "NaN".into()),
        ("-Infinity".into(), "0.00000".into()),
        (
            values[4].into(),
            "123456789012345678901234567890123456789012345.67890".into(),
        ),
    ];
    assert!(server.terminate(Duration::from_secs(15)).is_some());
    server.restart(&[]);
    assert_eq!(read(server.connect().await).await, expected);
    server
        .connect()
        .await
        .batch_execute("CHECKPOINT")
        .await
        .unwrap();
    assert!(server.terminate(Duration::from_secs(15)).is_some());
    server.restart(&[]);
    let c = server.connect().await;
    let typmod: String = c
        .query_one(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             JOIN pg_class c ON a.attrelid = c.oid WHERE c.relname = 'nums' AND a.attname = 'w'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(typmod, "numeric(50,5)");
    assert_eq!(read(c).await, expected);
}

/// Kills the server with SIGKILL while a client commits in a loop; after each restart every
/// acknowledged commit is there and no transaction is half applied.
#[test]
fn acknowledged_commits_survive_sigkill() {
    sigkill_loop(&[]);
}

/// The same with a tiny checkpoint threshold, so background checkpoints (and log truncation)
/// run, and get killed, throughout the loop; `CHECKPOINT` in SQL works too.
#[test]
fn acknowledged_commits_survive_sigkill_during_checkpoints() {
    let server = sigkill_loop(&["--checkpoint-log-size", "16kB"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let c = server.connect().await;
        let before = count(&c, "SELECT count(*) FROM ledger").await;
        c.batch_execute("CHECKPOINT").await.unwrap();
        c.batch_execute("INSERT INTO ledger VALUES (-1, 0, 0)")
            .await
            .unwrap();
        assert_eq!(count(&c, "SELECT count(*) FROM ledger").await, before + 1);
    });
}

/// Commits in a loop while killing the server; returns the server, running.
fn sigkill_loop(extra: &[&str]) -> TestServer {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut server = TestServer::start_floe_with(extra);
    runtime.block_on(async {
        let c = server.connect().await;
        c.batch_execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, a bigint NOT NULL, b bigint NOT NULL);
             INSERT INTO ledger VALUES (0, 0, 0)",
        )
        .await
        .unwrap();
    });
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut seed: u64 = std::env::var("FLOE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("crash test seed: {seed} (FLOE_CRASH_SEED)");
    for round in 0..20 {
        let url = server.url();
        let acked = acknowledged.clone();
        // Each transaction inserts one row and moves 1 from `a` to `b` of row 0, so a
        // half-applied transaction would show as a row count that disagrees with row 0.
        let writer = runtime.spawn(async move {
            let Ok((client, conn)) = tokio_postgres::connect(&url, NoTls).await else {
                return;
            };
            tokio::spawn(conn);
            loop {
                let next = acked.load(Ordering::SeqCst) + 1;
                let sql = format!(
                    "BEGIN;
                     INSERT INTO ledger VALUES ({next}, 0, 0);
                     UPDATE ledger SET a = a - 1, b = b + 1 WHERE id = 0;
                     COMMIT;"
                );
                if client.batch_execute(&sql).await.is_err() {
                    return;
                }
                acked.store(next, Ordering::SeqCst);
            }
        });
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let wait_ms = 50 + (seed >> 33) % 250;
        std::thread::sleep(Duration::from_millis(wait_ms));
        server.kill9();
        runtime.block_on(async {
            let _ = writer.await;
        });
        server.restart(extra);
        let acked = acknowledged.load(Ordering::SeqCst);
        runtime.block_on(async {
            let c = server.connect().await;
            let rows = count(&c, "SELECT count(*) FROM ledger WHERE id > 0").await as u64;
            let moved: i64 = c
                .query_one("SELECT b FROM ledger WHERE id = 0", &[])
                .await
                .unwrap()
                .get(0);
            assert!(
                rows >= acked,
                "round {round}: {acked} commits acknowledged but {rows} rows survived"
            );
            assert!(rows <= acked + 1, "round {round}: rows from nowhere");
            assert_eq!(
                moved as u64, rows,
                "round {round}: a transaction was half applied"
            );
            acknowledged.store(rows, Ordering::SeqCst);
        });
    }
    server
}

#[tokio::test]
async fn copy_in_and_out_in_text_and_csv() {
    use futures::{SinkExt, TryStreamExt};
    let server = TestServer::start_floe();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE cp (id int PRIMARY KEY, name text, score numeric(6, 2), day date)",
    )
    .await
    .unwrap();
    let sink = c.copy_in("COPY cp FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    let mut data = String::new();
    for i in 1..=20_000 {
        data.push_str(&format!("{i}\tname\\t{i}\t{}.5\t2024-01-02\n", i % 100));
    }
    data.push_str("20001\t\\N\t\\N\t\\N\n");
    sink.send(bytes::Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 20_001);
    assert_eq!(count(&c, "SELECT count(*) FROM cp").await, 20_001);
    let row = c
        .query_one(
            "SELECT name, score::text, day::text FROM cp WHERE id = 7",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "name\t7");
    assert_eq!(row.get::<_, String>(1), "7.50");
    assert_eq!(row.get::<_, String>(2), "2024-01-02");

    let sink = c
        .copy_in("COPY cp (id, name) FROM STDIN WITH (FORMAT csv, HEADER true)")
        .await
        .unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"id,name\n30000,\"a, \"\"quoted\"\" name\"\n30001,\n",
    ))
    .await
    .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);

    let out = c
        .copy_out("COPY (SELECT id, name, score FROM cp WHERE id IN (7, 20001, 30000) ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
    let text: String = chunks
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(
        text,
        "7\tname\\t7\t7.50\n20001\t\\N\t\\N\n30000\ta, \"quoted\" name\t\\N\n"
    );
    let out = c
        .copy_out("COPY cp (id, name) TO STDOUT WITH (FORMAT csv)")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
    assert_eq!(chunks.len(), 20_003);

    // A bad row fails the whole COPY; nothing of it is kept and the session goes on.
    let sink = c.copy_in("COPY cp FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(
        b"40000\tok\t1\t2024-01-01\nnot-a-number\tx\t1\t2024-01-01\n",
    ))
    .await
    .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::INVALID_TEXT_REPRESENTATION));
    assert_eq!(
        count(&c, "SELECT count(*) FROM cp WHERE id = 40000").await,
        0
    );
    let sink = c.copy_in("COPY cp FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\tdup\t1\t2024-01-01\n"))
        .await
        .unwrap();
    let err = sink.finish().await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    assert_eq!(count(&c, "SELECT count(*) FROM cp").await, 20_003);
}

/// `SELECT … FOR UPDATE` locks the rows it returns until the transaction ends: a second
/// FOR UPDATE and an UPDATE of the row wait; NOWAIT fails with 55P03; SKIP LOCKED skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn select_for_update_locks_rows() {
    let server = TestServer::start_floe();
    let a = server.connect().await;
    let b = Arc::new(server.connect().await);
    a.batch_execute(
        "CREATE TABLE fu (id int PRIMARY KEY, v int); INSERT INTO fu VALUES (1, 10), (2, 20)",
    )
    .await
    .unwrap();
    a.batch_execute("BEGIN").await.unwrap();
    let rows = a
        .query("SELECT v FROM fu WHERE id = $1 FOR UPDATE", &[&1i32])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), 10);

    let err = b
        .batch_execute("SELECT * FROM fu WHERE id = 1 FOR UPDATE NOWAIT")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::LOCK_NOT_AVAILABLE));
    assert!(
        err.as_db_error()
            .is_some_and(|e| e.message() == "could not obtain lock on row in relation \"fu\""),
        "{err:?}"
    );
    let skipped = b
        .query("SELECT id FROM fu ORDER BY id FOR UPDATE SKIP LOCKED", &[])
        .await
        .unwrap();
    let ids: Vec<i32> = skipped.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![2], "the locked row is skipped");
    // FOR NO KEY UPDATE / FOR SHARE parse and lock too.
    b.batch_execute(
        "SELECT * FROM fu WHERE id = 2 FOR NO KEY UPDATE; SELECT * FROM fu WHERE id = 2 FOR SHARE",
    )
    .await
    .unwrap();

    // A waiting FOR UPDATE and a waiting UPDATE proceed only after commit, and see the new row.
    let b2 = b.clone();
    let waiting_select = tokio::spawn(async move {
        b2.batch_execute("BEGIN").await.unwrap();
        let row = b2
            .query_one("SELECT v FROM fu WHERE id = 1 FOR UPDATE", &[])
            .await
            .unwrap();
        let v: i32 = row.get(0);
        b2.batch_execute("UPDATE fu SET v = v + 1 WHERE id = 1; COMMIT")
            .await
            .unwrap();
        v
    });
    let c = server.connect().await;
    let waiting_update =
        tokio::spawn(async move { c.execute("UPDATE fu SET v = v * 2 WHERE id = 1", &[]).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting_select.is_finished(), "FOR UPDATE must wait");
    assert!(!waiting_update.is_finished(), "UPDATE must wait");
    a.batch_execute("UPDATE fu SET v = 100 WHERE id = 1; COMMIT")
        .await
        .unwrap();
    let seen = waiting_select.await.unwrap();
    // The waiters run in either order; each sees the newest version when it gets the lock.
    assert!(
        seen == 100 || seen == 200,
        "READ COMMITTED FOR UPDATE returns the row's new version, got {seen}"
    );
    assert_eq!(waiting_update.await.unwrap().unwrap(), 1);
    let v: i32 = a
        .query_one("SELECT v FROM fu WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    // (100 + 1) * 2 when the FOR UPDATE went first, 100 * 2 + 1 otherwise: no lost update.
    assert_eq!(v, if seen == 100 { 202 } else { 201 });

    // A row that no longer matches after the wait is skipped.
    a.batch_execute("BEGIN; UPDATE fu SET v = 0 WHERE id = 2")
        .await
        .unwrap();
    let b3 = b.clone();
    let filtered = tokio::spawn(async move {
        b3.query("SELECT id FROM fu WHERE v = 20 FOR UPDATE", &[])
            .await
            .unwrap()
            .len()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.batch_execute("COMMIT").await.unwrap();
    assert_eq!(filtered.await.unwrap(), 0);

    // REPEATABLE READ: a row changed since the snapshot is a serialization failure.
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM fu")
        .await
        .unwrap();
    a.batch_execute("UPDATE fu SET v = 5 WHERE id = 2")
        .await
        .unwrap();
    let err = b
        .batch_execute("SELECT * FROM fu WHERE id = 2 FOR UPDATE")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::T_R_SERIALIZATION_FAILURE));
    b.batch_execute("ROLLBACK").await.unwrap();
}

/// The classic read-then-write transfer: `SELECT balance … FOR UPDATE`, then UPDATE with the
/// value read. Without the lock, READ COMMITTED loses updates; with it the total holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bank_transfers_with_select_for_update_keep_the_total() {
    let server = TestServer::start_floe();
    let setup = server.connect().await;
    setup
        .batch_execute(
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 5) g",
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for worker in 0..6u64 {
        let (mut client, conn) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
        tokio::spawn(conn);
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut seed = worker * 7919 + 1;
            while done < 25 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let from = ((seed >> 33) % 5 + 1) as i32;
                let to = ((seed >> 17) % 5 + 1) as i32;
                if from == to {
                    continue;
                }
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::ReadCommitted)
                    .start()
                    .await
                    .unwrap();
                let moved = async {
                    // Lock in id order so transfers do not deadlock.
                    let (first, second) = (from.min(to), from.max(to));
                    let select = "SELECT balance FROM accounts WHERE id = $1 FOR UPDATE";
                    let b1: i64 = tx.query_one(select, &[&first]).await?.get(0);
                    let b2: i64 = tx.query_one(select, &[&second]).await?.get(0);
                    let (from_balance, to_balance) =
                        if first == from { (b1, b2) } else { (b2, b1) };
                    // `$1::bigint`: Floe infers a bare `SET col = $1` parameter as text (known gap).
                    let update = "UPDATE accounts SET balance = $1::bigint WHERE id = $2";
                    tx.execute(update, &[&(from_balance - 7), &from]).await?;
                    tx.execute(update, &[&(to_balance + 7), &to]).await?;
                    tx.commit().await
                }
                .await;
                match moved {
                    Ok(()) => done += 1,
                    Err(e) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) => {}
                    Err(e) => panic!("transfer failed: {e:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        count(&setup, "SELECT sum(balance)::bigint FROM accounts").await,
        5_000
    );
}

#[tokio::test]
async fn views_and_create_table_as_survive_a_restart() {
    let mut server = TestServer::start_floe();
    {
        let c = server.connect().await;
        c.batch_execute(
            "CREATE TABLE base (id int PRIMARY KEY, v text);
             INSERT INTO base VALUES (1, 'a'), (2, 'b');
             CREATE VIEW base_v (ident, value) AS SELECT id, v FROM base WHERE id > 1;
             CREATE VIEW base_vv AS SELECT * FROM base_v;
             CREATE TABLE base_copy AS SELECT id * 10 AS id10, v FROM base;",
        )
        .await
        .unwrap();
    }
    assert!(server.terminate(Duration::from_secs(15)).is_some());
    server.restart(&[]);
    let c = server.connect().await;
    let row = c
        .query_one("SELECT ident, value FROM base_vv", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i32>(0), row.get::<_, String>(1)),
        (2, "b".into())
    );
    assert_eq!(
        count(&c, "SELECT sum(id10)::bigint FROM base_copy").await,
        30
    );
    c.batch_execute("INSERT INTO base_copy VALUES (40, 'd')")
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM base_copy").await, 3);
    let err = c.batch_execute("DROP TABLE base").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DEPENDENT_OBJECTS_STILL_EXIST));
}

/// Sends `data` as one COPY FROM STDIN: the row count, or the error.
async fn copy_in(c: &Client, sql: &str, data: String) -> Result<u64, tokio_postgres::Error> {
    use futures::SinkExt;
    let sink = c.copy_in(sql).await?;
    futures::pin_mut!(sink);
    // Several messages, as clients send them, split mid-row.
    let bytes = data.into_bytes();
    for part in bytes.chunks(50_000) {
        sink.send(bytes::Bytes::copy_from_slice(part)).await?;
    }
    sink.finish().await
}

/// COPY loads in chunks; a COPY large enough to cross several chunk (and log-batch)
/// boundaries keeps every row, defaults and serials included, through a restart; a bad row,
/// a NOT NULL violation or a duplicate key after a boundary fails the whole COPY with the
/// line in CONTEXT and leaves the table as it was.
#[tokio::test]
async fn big_copies_are_all_or_nothing_and_survive_restart() {
    let mut server = TestServer::start_floe();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, bid int NOT NULL, abalance int, \
         filler text DEFAULT 'f', n serial)",
    )
    .await
    .unwrap();
    let rows = 50_000;
    let data: String = (1..=rows)
        .map(|i| format!("{i}\t{}\t{}\n", i % 7, i % 100))
        .collect();
    let copied = copy_in(&c, "COPY big (id, bid, abalance) FROM STDIN", data)
        .await
        .unwrap();
    assert_eq!(copied, rows);
    let check = "SELECT count(*)::bigint, sum(abalance)::bigint, count(DISTINCT n)::bigint, \
                 min(filler) || max(filler) FROM big";
    let expect_sum: i64 = (1..=rows as i64).map(|i| i % 100).sum();
    let verify = |row: tokio_postgres::Row| {
        assert_eq!(row.get::<_, i64>(0), rows as i64);
        assert_eq!(row.get::<_, i64>(1), expect_sum);
        assert_eq!(row.get::<_, i64>(2), rows as i64, "serials are distinct");
        assert_eq!(row.get::<_, String>(3), "ff", "defaults filled in");
    };
    verify(c.query_one(check, &[]).await.unwrap());

    // A value of the wrong type on line 40000 (a later chunk than the first).
    let bad: String = (rows + 1..=rows + 45_000)
        .map(|i| {
            if i == rows + 40_000 {
                format!("{i}\tnot-a-number\t0\n")
            } else {
                format!("{i}\t1\t0\n")
            }
        })
        .collect();
    let err = copy_in(&c, "COPY big (id, bid, abalance) FROM STDIN", bad)
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::INVALID_TEXT_REPRESENTATION);
    assert_eq!(db.where_(), Some("COPY big, line 40000"));

    // A key that repeats one from the first chunk, on line 30000.
    let dup: String = (rows + 1..=rows + 35_000)
        .map(|i| {
            let id = if i == rows + 30_000 { rows + 5 } else { i };
            format!("{id}\t1\t0\n")
        })
        .collect();
    let err = copy_in(&c, "COPY big (id, bid, abalance) FROM STDIN", dup)
        .await
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::UNIQUE_VIOLATION);
    assert_eq!(
        db.message(),
        "duplicate key value violates unique constraint \"big_pkey\""
    );
    assert_eq!(
        db.detail(),
        Some(format!("Key (id)=({}) already exists.", rows + 5).as_str())
    );
    assert_eq!(db.where_(), Some("COPY big, line 30000"));

    // A key that exists already (committed), a NULL for a NOT NULL column, a missing column.
    let err = copy_in(
        &c,
        "COPY big (id, bid, abalance) FROM STDIN",
        "7\t1\t1\n".into(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION));
    let err = copy_in(
        &c,
        "COPY big (id, bid, abalance) FROM STDIN",
        format!("{}\t1\t1\n{}\t\\N\t1\n", rows + 1, rows + 2),
    )
    .await
    .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::NOT_NULL_VIOLATION);
    assert_eq!(db.where_(), Some("COPY big, line 2"));
    let err = copy_in(
        &c,
        "COPY big (id, bid, abalance) FROM STDIN",
        format!("{}\t1\t1\n{}\t1\n", rows + 1, rows + 2),
    )
    .await
    .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::BAD_COPY_FILE_FORMAT);
    assert_eq!(db.message(), "missing data for column \"abalance\"");
    assert_eq!(db.where_(), Some("COPY big, line 2"));
    verify(c.query_one(check, &[]).await.unwrap());

    // In a transaction block, the COPY's rows are invisible to others until COMMIT.
    let other = server.connect().await;
    c.batch_execute("BEGIN").await.unwrap();
    let more: String = (rows + 1..=rows + 20_000)
        .map(|i| format!("{i}\t1\t0\n"))
        .collect();
    copy_in(&c, "COPY big (id, bid, abalance) FROM STDIN", more)
        .await
        .unwrap();
    assert_eq!(
        count(&c, "SELECT count(*) FROM big").await,
        rows as i64 + 20_000
    );
    assert_eq!(count(&other, "SELECT count(*) FROM big").await, rows as i64);
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&c, "SELECT count(*) FROM big").await, rows as i64);

    drop((c, other));
    server.kill9();
    server.restart(&[]);
    let c = server.connect().await;
    verify(c.query_one(check, &[]).await.unwrap());
}

/// A COPY larger than `--memory-limit` allows fails with 53200 (never an OOM kill), leaves
/// nothing behind, and the server goes on.
#[tokio::test]
async fn a_copy_beyond_the_memory_limit_fails_cleanly() {
    let server = TestServer::start_floe_with(&["--memory-limit", "20MB"]);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE capped (id bigint PRIMARY KEY, v text)")
        .await
        .unwrap();
    let data: String = (1..=300_000)
        .map(|i| format!("{i}\tsome text to fill the row {i}\n"))
        .collect();
    let err = copy_in(&c, "COPY capped FROM STDIN", data)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::OUT_OF_MEMORY));
    assert_eq!(count(&c, "SELECT count(*) FROM capped").await, 0);
    let small: String = (1..=1000).map(|i| format!("{i}\tx\n")).collect();
    assert_eq!(
        copy_in(&c, "COPY capped FROM STDIN", small).await.unwrap(),
        1000
    );
}

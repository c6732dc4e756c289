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

/// Polls `sql` (one bigint) until `done` holds for its value, for up to a minute.
async fn wait_for(c: &Client, sql: &str, done: impl Fn(i64) -> bool) -> i64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let value = one(c, sql).await;
        if done(value) || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Flushes that overlap in key range pile up level-0 runs; the background compactor merges
/// them into level-1 runs (visible in `floe_catalog.compactions` and `floe_catalog.cold_runs`)
/// while the answers stay the same, and a dropped table's runs leave the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_flushes_are_compacted_in_the_background() {
    const ROUNDS: i64 = 6;
    const PER_ROUND: i64 = 6000;
    let mut server = TestServer::start_floe_with(&BUDGET);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE k (id bigint PRIMARY KEY, v bigint, pad text)")
        .await
        .unwrap();
    // Round r writes ids r, r + ROUNDS, r + 2 * ROUNDS, …: every flush spans the whole key
    // range, so no run can simply move down a level. Each round also updates and deletes
    // rows earlier rounds flushed.
    for round in 0..ROUNDS {
        c.batch_execute(&format!(
            "INSERT INTO k SELECT i * {ROUNDS} + {round}, i, repeat('x', 600)
             FROM generate_series(0::bigint, {}::bigint) AS s(i)",
            PER_ROUND - 1
        ))
        .await
        .unwrap();
        if round > 0 {
            c.batch_execute(&format!(
                "UPDATE k SET v = v + 1000000 WHERE id % 97 = {} AND id % {ROUNDS} < {round};
                 DELETE FROM k WHERE id % 101 = {round} AND id % {ROUNDS} < {round};",
                round - 1
            ))
            .await
            .unwrap();
        }
        c.batch_execute("CHECKPOINT").await.unwrap();
    }
    let expect_count = one(&c, "SELECT count(*) FROM k").await;
    let expect_sum = one(&c, "SELECT sum(v)::bigint FROM k").await;
    let relid = one(&c, "SELECT 'k'::regclass::oid::bigint").await;
    let compacted = wait_for(
        &c,
        &format!(
            "SELECT count(*) FROM floe_catalog.compactions
             WHERE relid = {relid} AND state = 'done' AND input_runs > 1"
        ),
        |n| n > 0,
    )
    .await;
    assert!(compacted > 0, "no compaction of k finished");
    let level0 = wait_for(
        &c,
        &format!("SELECT count(*) FROM floe_catalog.cold_runs WHERE relid = {relid} AND level = 0"),
        |n| n < 4,
    )
    .await;
    assert!(level0 < 4, "{level0} level-0 runs left");
    let row = c
        .query_one(
            &format!(
                "SELECT relname, output_rows, rows_read, error IS NULL
                 FROM floe_catalog.compactions WHERE relid = {relid} AND state = 'done'
                 ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "k");
    assert!(row.get::<_, i64>(1) > 0 && row.get::<_, i64>(2) >= row.get::<_, i64>(1));
    assert!(row.get::<_, bool>(3));
    assert_eq!(one(&c, "SELECT count(*) FROM k").await, expect_count);
    assert_eq!(one(&c, "SELECT sum(v)::bigint FROM k").await, expect_sum);
    assert_eq!(
        one(
            &c,
            &format!("SELECT v FROM k WHERE id = {}", 5 * ROUNDS + 2)
        )
        .await,
        5
    );
    drop(c);
    server.kill9();
    server.restart(&BUDGET);
    let c = server.connect().await;
    assert_eq!(one(&c, "SELECT count(*) FROM k").await, expect_count);
    assert_eq!(one(&c, "SELECT sum(v)::bigint FROM k").await, expect_sum);
    // No CHECKPOINT needed: dropping a table with runs asks the compactor for a pass.
    c.batch_execute("DROP TABLE k").await.unwrap();
    let left = wait_for(
        &c,
        &format!("SELECT count(*) FROM floe_catalog.cold_runs WHERE relid = {relid}"),
        |n| n == 0,
    )
    .await;
    assert_eq!(left, 0, "the dropped table's runs left the manifest");
}

/// SIGKILL at random moments while checkpoints flush and the compactor merges and swaps
/// manifest versions: every acknowledged row is there after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_flushes_and_compactions_loses_nothing() {
    let mut server = TestServer::start_floe_with(&BUDGET);
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE s (id bigint PRIMARY KEY, v bigint, pad text)")
        .await
        .unwrap();
    let (mut count, mut sum) = (0i64, 0i64);
    // Kill delays in milliseconds after the CHECKPOINT is sent: before, during and after
    // the flush, and while the compactor runs.
    for (round, delay) in [0u64, 40, 150, 400, 900, 1500].into_iter().enumerate() {
        let round = round as i64;
        let c = server.connect().await;
        // Interleaved keys: every flush overlaps the earlier ones.
        for part in 0..6 {
            c.batch_execute(&format!(
                "INSERT INTO s SELECT i * 8 + {round}, i, repeat('y', 600)
                 FROM generate_series({}::bigint, {}::bigint) AS g(i)",
                part * 1000,
                part * 1000 + 999
            ))
            .await
            .unwrap();
        }
        c.batch_execute(&format!(
            "UPDATE s SET v = v + 1 WHERE id % 8 < {round} AND id % 13 = 0"
        ))
        .await
        .unwrap();
        count = one(&c, "SELECT count(*) FROM s").await;
        sum = one(&c, "SELECT sum(v)::bigint FROM s").await;
        let checkpointer = server.connect().await;
        let pending = tokio::spawn(async move { checkpointer.batch_execute("CHECKPOINT").await });
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        server.kill9();
        let _ = pending.await;
        drop(c);
        server.restart(&BUDGET);
        let c = server.connect().await;
        assert_eq!(
            one(&c, "SELECT count(*) FROM s").await,
            count,
            "round {round}"
        );
        assert_eq!(
            one(&c, "SELECT sum(v)::bigint FROM s").await,
            sum,
            "round {round}"
        );
    }
    let c = server.connect().await;
    c.batch_execute("CHECKPOINT").await.unwrap();
    assert_eq!(one(&c, "SELECT count(*) FROM s").await, count);
    assert_eq!(one(&c, "SELECT sum(v)::bigint FROM s").await, sum);
    assert_eq!(
        one(&c, "SELECT count(*) FROM s WHERE id = 8 * 77 + 3").await,
        1
    );
}

/// The server's resident set in bytes (Linux).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// A table about ten times the memory budget (`FLOE_BIG_ROWS` rows, 640,000 by default, of
/// ~260 bytes against `--memory-limit 16MB`) loads in statements of 10,000 rows, answers count,
/// sum, GROUP BY, point lookups, UPDATE and DELETE of cold rows correctly, survives a restart,
/// and the server's RSS does not grow with the data: the second half of the load adds at most
/// 48 MB, and the peak stays within the idle size plus the budget plus a stated overhead of
/// 384 MB. RocksDB's memtables and the change stream's retention follow the budget (an eighth
/// each) and freed memory is returned within a second; what is left does not yet (the
/// runtimes' and DataFusion's buffers, caches): measured 250-300 MB at 16 MB, down from
/// ~370 MB; shrinking it is open work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_ten_times_the_budget_loads_answers_and_stays_in_memory() {
    const BIG_BUDGET: [&str; 2] = ["--memory-limit", "16MB"];
    const OVERHEAD: u64 = 384 << 20;
    let rows: i64 = std::env::var("FLOE_BIG_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(700_000);
    let mut server = TestServer::start_floe_with(&BIG_BUDGET);
    let c = server.connect().await;
    let idle = rss_bytes(server.pid());
    let mut peak = idle;
    let mut at_half = 0;
    c.batch_execute("CREATE TABLE big (id bigint PRIMARY KEY, g int, v bigint, pad text)")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for start in (0..rows).step_by(10_000) {
        c.batch_execute(&format!(
            "INSERT INTO big SELECT i, (i % 7)::int, i * 3, repeat(md5(i::text), 7)
             FROM generate_series({start}::bigint, {}::bigint) AS s(i)",
            (start + 9_999).min(rows - 1)
        ))
        .await
        .unwrap();
        peak = peak.max(rss_bytes(server.pid()));
        if start < rows / 2 {
            at_half = peak;
        }
    }
    println!(
        "loaded {rows} rows in {:?}; RSS idle {} MB, peak {} MB",
        started.elapsed(),
        idle >> 20,
        peak >> 20
    );
    assert!(
        peak <= at_half + (48 << 20),
        "RSS grew with the data: {} MB at half the load, {} MB at the end",
        at_half >> 20,
        peak >> 20
    );
    let data_bytes = rows as u64 * 260;
    assert!(data_bytes >= 10 * (16 << 20) || rows < 700_000);
    c.batch_execute("UPDATE big SET v = -1 WHERE id = 12345; DELETE FROM big WHERE id = 54321")
        .await
        .unwrap();
    let expect_sum: i64 = (0..rows).map(|i| i * 3).sum::<i64>() - 12345 * 3 - 1 - 54321 * 3;
    for when in ["loaded", "restarted"] {
        let c2 = server.connect().await;
        assert_eq!(
            one(&c2, "SELECT count(*) FROM big").await,
            rows - 1,
            "{when}"
        );
        assert_eq!(
            one(&c2, "SELECT sum(v)::bigint FROM big").await,
            expect_sum,
            "{when}"
        );
        assert_eq!(
            one(
                &c2,
                "SELECT count(*) FROM (SELECT g, count(*) FROM big GROUP BY g) s"
            )
            .await,
            7,
            "{when}"
        );
        assert_eq!(
            one(&c2, "SELECT v FROM big WHERE id = 777").await,
            2331,
            "{when}"
        );
        assert_eq!(
            one(&c2, "SELECT v FROM big WHERE id = 12345").await,
            -1,
            "{when}"
        );
        assert_eq!(
            one(&c2, "SELECT count(*) FROM big WHERE id = 54321").await,
            0,
            "{when}"
        );
        peak = peak.max(rss_bytes(server.pid()));
        if when == "loaded" {
            server.terminate(std::time::Duration::from_secs(30));
            server.restart(&BIG_BUDGET);
        }
    }
    println!("RSS peak {} MB", peak >> 20);
    assert!(
        peak <= idle + (16 << 20) + OVERHEAD,
        "RSS peaked at {} MB: idle {} MB + budget 16 MB + overhead {} MB",
        peak >> 20,
        idle >> 20,
        OVERHEAD >> 20
    );
}

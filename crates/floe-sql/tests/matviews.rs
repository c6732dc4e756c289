//! Materialized views through SQL: every shape the view engine maintains, under random
//! INSERT/UPDATE/DELETE transactions (committed and rolled back), equals its defining query
//! run directly after every transaction, read from the writing session and from another one;
//! a REPEATABLE READ block reads views as of its snapshot; views come back after a restart.
//!
//! `FLOE_MV_SEED` picks the random run (default 7), `FLOE_MV_TXNS` its length (default 40).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::util::display::array_value_to_string;
use floe_sql::{Engine, EngineConfig, Session, SqlResult, StatementResult};
use futures::StreamExt;

/// The views under test: each a shape of issue 17.
const VIEWS: &[&str] = &[
    // Filter, projection, scalar expressions, casts, CASE, COALESCE.
    "SELECT id, amount * 2 AS doubled, CASE WHEN status = 'open' THEN 'o' ELSE coalesce(status, '?') END AS s, \
     customer_id::text AS c FROM orders WHERE amount > 10",
    // GROUP BY with the aggregates, HAVING.
    "SELECT customer_id, count(*) AS n, count(status) AS ns, sum(amount) AS total, avg(amount) AS mean, \
     min(amount) AS lo, max(amount) AS hi FROM orders GROUP BY customer_id",
    "SELECT status, count(DISTINCT customer_id) AS customers FROM orders GROUP BY status",
    "SELECT customer_id, bool_and(amount > 50) AS all_big, bool_or(status = 'open') AS any_open \
     FROM orders GROUP BY customer_id HAVING count(*) > 1",
    // Aggregates without GROUP BY: one row even over no rows.
    "SELECT count(*) AS n, sum(amount) AS total, max(id) AS top FROM orders WHERE status = 'rare'",
    // Joins: inner with a residual condition, outer, self, three-way.
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id AND o.amount > c.id",
    "SELECT c.id, c.name, o.id AS order_id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id",
    "SELECT c.name, o.id FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id AND o.status = 'open'",
    "SELECT c.id AS cid, o.id AS oid FROM customers c FULL JOIN orders o ON o.customer_id = c.id",
    "SELECT a.id, b.id AS other FROM orders a JOIN orders b ON a.customer_id = b.customer_id AND a.id < b.id",
    "SELECT c.region, count(*) AS n, sum(o.amount) AS total FROM orders o JOIN customers c ON c.id = o.customer_id \
     JOIN regions r ON r.name = c.region GROUP BY c.region",
    // DISTINCT and set operations.
    "SELECT DISTINCT customer_id, status FROM orders",
    "SELECT customer_id FROM orders UNION SELECT id FROM customers",
    "SELECT customer_id FROM orders UNION ALL SELECT id FROM customers",
    "SELECT customer_id FROM orders INTERSECT SELECT id FROM customers",
    "SELECT id FROM customers EXCEPT SELECT customer_id FROM orders",
    // Subqueries: IN, EXISTS, NOT EXISTS, correlated scalar, in FROM.
    "SELECT id, name FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE status = 'open')",
    "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.amount > 100)",
    "SELECT id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
    "SELECT c.id, (SELECT max(o.amount) FROM orders o WHERE o.customer_id = c.id) AS top FROM customers c",
    "SELECT t.customer_id, t.n FROM (SELECT customer_id, count(*) AS n FROM orders GROUP BY customer_id) t WHERE t.n > 2",
    // TopK, per group through row_number, window functions.
    "SELECT id, amount FROM orders ORDER BY amount DESC NULLS LAST, id LIMIT 5",
    "SELECT customer_id, id FROM (SELECT customer_id, id, row_number() OVER (PARTITION BY customer_id ORDER BY amount DESC, id) AS rn \
     FROM orders) t WHERE rn <= 2",
    "SELECT id, customer_id, sum(amount) OVER (PARTITION BY customer_id) AS total FROM orders",
    // WITH RECURSIVE: a transitive closure (UNION, over a graph with cycles), paths counted
    // with their duplicates (UNION ALL, bounded by depth), and a recursion seeded by an
    // aggregate (every round changes when the base row does).
    "WITH RECURSIVE r(a, b) AS (SELECT customer_id, id % 9 FROM orders \
     UNION SELECT r.a, o.id % 9 FROM r JOIN orders o ON o.customer_id = r.b) SELECT a, b FROM r",
    "WITH RECURSIVE r(src, dst, depth) AS (SELECT customer_id, id % 9, 1 FROM orders \
     UNION ALL SELECT r.src, o.id % 9, r.depth + 1 FROM r JOIN orders o ON o.customer_id = r.dst \
     WHERE r.depth < 3 AND o.amount > 150) SELECT src, dst, depth FROM r",
    "WITH RECURSIVE t(n) AS (SELECT count(*) FROM orders UNION ALL SELECT n - 1 FROM t WHERE n > 0) \
     SELECT n FROM t",
    // Aggregates with FILTER, ORDER BY and DISTINCT; DISTINCT ON.
    "SELECT customer_id, count(*) FILTER (WHERE status = 'open') AS open, \
     sum(DISTINCT amount) FILTER (WHERE amount > 100) AS big, string_agg(id::text, ',' ORDER BY id DESC) AS ids, \
     count(DISTINCT status) AS statuses, array_agg(DISTINCT status ORDER BY status) AS kinds FROM orders GROUP BY customer_id",
    "SELECT DISTINCT ON (customer_id) customer_id, id, amount FROM orders ORDER BY customer_id, amount DESC NULLS LAST, id",
    // Uncorrelated subqueries: scalar (in WHERE and in the select list), EXISTS in an
    // expression, NOT IN over a column with NULLs.
    "SELECT id, amount FROM orders WHERE amount > (SELECT avg(amount) FROM orders)",
    "SELECT c.id, (SELECT max(amount) FROM orders WHERE status = 'open') AS top_open, \
     EXISTS (SELECT 1 FROM orders WHERE status = 'rare') AS any_rare FROM customers c",
    "SELECT id FROM orders WHERE amount NOT IN (SELECT amount FROM orders WHERE status = 'rare')",
    // Only accumulable aggregates (count, sum, avg: O(1) per change), over integers, bigints
    // and numerics, with FILTER; and without GROUP BY (one row over no rows).
    "SELECT customer_id, status, count(*) AS n, count(amount) AS na, sum(amount) AS total, avg(amount) AS mean, \
     sum(id) AS ids, avg(id) AS mean_id, sum(id::bigint * 1000000000000) AS big_ids, \
     count(*) FILTER (WHERE amount > 100) AS big, sum(amount) FILTER (WHERE status = 'open') AS open_total \
     FROM orders GROUP BY customer_id, status",
    "SELECT count(*) AS n, sum(amount) AS total, avg(amount) AS mean FROM orders WHERE status = 'rare'",
];

/// Views over the views above (by position): a view of a materialized view, and a
/// materialized view of one.
const OVER_VIEWS: &[&str] = &[
    "SELECT count(*) AS groups, sum(n) AS orders FROM mv1",
    "SELECT customer_id FROM mv1 WHERE total > 500",
];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("floe-{name}-{}-{nanos}", std::process::id()))
}

fn engine(dir: &Path) -> Arc<Engine> {
    Engine::new(EngineConfig {
        data_dir: dir.to_path_buf(),
        target_partitions: 2,
        ..EngineConfig::default()
    })
    .expect("engine")
}

fn session(engine: &Arc<Engine>) -> Session {
    engine
        .new_session("postgres", "postgres", std::iter::empty())
        .expect("session")
}

/// Runs `sql`; the last statement's rows as text, sorted (a multiset).
async fn run(session: &mut Session, sql: &str) -> SqlResult<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for statement in session.parse(sql)? {
        out.clear();
        let result = collect(session, statement, &mut out).await;
        session.finish_statement(result.is_ok());
        result?;
    }
    out.sort();
    Ok(out)
}

async fn collect(
    session: &mut Session,
    statement: datafusion::sql::sqlparser::ast::Statement,
    out: &mut Vec<Vec<String>>,
) -> SqlResult<()> {
    if let StatementResult::Rows { mut rows, .. } = session.run_simple(statement).await? {
        while let Some(batch) = rows.stream.next().await {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                out.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| {
                            if c.is_null(row) {
                                "NULL".to_string()
                            } else {
                                array_value_to_string(c, row).unwrap_or_default()
                            }
                        })
                        .collect(),
                );
            }
        }
    }
    Ok(())
}

async fn ok(session: &mut Session, sql: &str) -> Vec<Vec<String>> {
    match run(session, sql).await {
        Ok(rows) => rows,
        Err(e) => panic!("{sql}\nfailed: {e:?}"),
    }
}

const SETUP: &str = "CREATE TABLE regions (name text PRIMARY KEY, zone int); \
    CREATE TABLE customers (id int PRIMARY KEY, name text, region text); \
    CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount numeric(12,2), status text)";

/// One random statement against the base tables.
fn random_statement(rng: &mut Rng, next_id: &mut i64) -> String {
    let status = || ["'open'", "'done'", "'rare'", "NULL"];
    match rng.below(10) {
        0..=3 => {
            *next_id += 1;
            let amount = if rng.below(8) == 0 {
                "NULL".to_string()
            } else {
                format!("{}.{}", rng.below(300), rng.below(100))
            };
            format!(
                "INSERT INTO orders VALUES ({}, {}, {amount}, {})",
                next_id,
                rng.below(9),
                status()[rng.below(4) as usize]
            )
        }
        4 | 5 => format!(
            "UPDATE orders SET amount = amount + {}, status = {} WHERE id % 7 = {}",
            rng.below(50),
            status()[rng.below(4) as usize],
            rng.below(7)
        ),
        6 => format!(
            "UPDATE orders SET customer_id = {} WHERE id = {}",
            rng.below(9),
            rng.below(*next_id as u64 + 1)
        ),
        7 => format!("DELETE FROM orders WHERE id % 5 = {}", rng.below(5)),
        8 => {
            let id = rng.below(8);
            let region = ["'north'", "'south'", "NULL"][rng.below(3) as usize];
            format!(
                "INSERT INTO customers VALUES ({id}, 'c{id}', {region}) ON CONFLICT (id) DO UPDATE SET region = excluded.region"
            )
        }
        _ => format!("DELETE FROM customers WHERE id = {}", rng.below(8)),
    }
}

async fn check_all(writer: &mut Session, reader: &mut Session, views: &[String], context: &str) {
    for (i, query) in views.iter().enumerate() {
        let expected = ok(writer, query).await;
        let from_writer = ok(writer, &format!("SELECT * FROM mv{i}")).await;
        assert_eq!(
            from_writer, expected,
            "mv{i} ({query}) from the writer, {context}"
        );
        let from_reader = ok(reader, &format!("SELECT * FROM mv{i}")).await;
        assert_eq!(
            from_reader, expected,
            "mv{i} ({query}) from another session, {context}"
        );
    }
}

/// Reads through the indexes made on `mv0` and `mv1` (`column = constant` reads only the
/// index's rows; mv1's is unique and never repeated, so no read may report a violation)
/// equal the defining queries filtered the same way.
async fn check_lookups(writer: &mut Session, reader: &mut Session, context: &str) {
    let mut lookups: Vec<(String, String)> = (0..7)
        .map(|k| {
            (
                format!("SELECT * FROM mv1 WHERE customer_id = {k}"),
                format!("SELECT * FROM ({}) q WHERE customer_id = {k}", VIEWS[1]),
            )
        })
        .collect();
    for s in ["o", "done", "?"] {
        lookups.push((
            format!("SELECT * FROM mv0 WHERE s = '{s}'"),
            format!("SELECT * FROM ({}) q WHERE s = '{s}'", VIEWS[0]),
        ));
    }
    for (read, oracle) in &lookups {
        let expected = ok(writer, oracle).await;
        assert_eq!(ok(writer, read).await, expected, "{read}, {context}");
        assert_eq!(
            ok(reader, read).await,
            expected,
            "{read} from another session, {context}"
        );
    }
}

/// Every view defined as `mv<i>`, the ones over views last.
async fn create_views(session: &mut Session) -> Vec<String> {
    let mut views: Vec<String> = VIEWS.iter().map(|q| q.to_string()).collect();
    for (i, query) in views.iter().enumerate() {
        ok(
            session,
            &format!("CREATE MATERIALIZED VIEW mv{i} AS {query}"),
        )
        .await;
    }
    ok(
        session,
        &format!("CREATE VIEW plain_over AS {}", OVER_VIEWS[0]),
    )
    .await;
    let n = views.len();
    ok(
        session,
        &format!("CREATE MATERIALIZED VIEW mv{n} AS {}", OVER_VIEWS[1]),
    )
    .await;
    // The oracle of a view over a view reads the plain view / the defining query.
    views.push("SELECT customer_id FROM (SELECT customer_id, count(*) AS n, count(status) AS ns, \
         sum(amount) AS total, avg(amount) AS mean, min(amount) AS lo, max(amount) AS hi FROM orders \
         GROUP BY customer_id) t WHERE total > 500"
        .to_string());
    views
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_their_queries_after_every_transaction() {
    let seed: u64 = std::env::var("FLOE_MV_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let txns: usize = std::env::var("FLOE_MV_TXNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let dir = temp_dir("matviews");
    let engine = engine(&dir);
    let mut writer = session(&engine);
    let mut reader = session(&engine);
    ok(&mut writer, SETUP).await;
    ok(
        &mut writer,
        "INSERT INTO regions VALUES ('north', 1), ('south', 2); \
         INSERT INTO customers VALUES (0, 'c0', 'north'), (1, 'c1', 'south'), (2, 'c2', NULL), (3, 'c3', 'north'); \
         INSERT INTO orders SELECT g, g % 6, g * 3.5, CASE WHEN g % 4 = 0 THEN 'open' ELSE 'done' END \
         FROM generate_series(1, 40) g",
    )
    .await;
    let views = create_views(&mut writer).await;
    // Every one is maintained (none refused and read as its query instead).
    let maintained = ok(
        &mut reader,
        "SELECT count(*) FROM floe_catalog.materialized_views WHERE state <> 'not maintained'",
    )
    .await;
    assert_eq!(maintained, vec![vec![views.len().to_string()]]);
    check_all(&mut writer, &mut reader, &views, "after CREATE").await;
    ok(
        &mut writer,
        "CREATE UNIQUE INDEX ON mv1 (customer_id); CREATE INDEX ON mv0 (s, id)",
    )
    .await;
    let plan = ok(
        &mut reader,
        "EXPLAIN SELECT * FROM mv1 WHERE customer_id = 1",
    )
    .await;
    assert!(
        plan.iter()
            .flatten()
            .any(|l| l.contains("index lookup on (customer_id)")),
        "{plan:?}"
    );
    check_lookups(&mut writer, &mut reader, "after CREATE INDEX").await;
    let plain = ok(&mut writer, OVER_VIEWS[0]).await;
    assert_eq!(ok(&mut reader, "SELECT * FROM plain_over").await, plain);

    let mut rng = Rng(seed);
    let mut next_id = 1000;
    for txn in 0..txns {
        let statements: Vec<String> = (0..=rng.below(3))
            .map(|_| random_statement(&mut rng, &mut next_id))
            .collect();
        let rollback = rng.below(6) == 0;
        if statements.len() == 1 && !rollback {
            ok(&mut writer, &statements[0]).await;
        } else {
            ok(&mut writer, "BEGIN").await;
            for s in &statements {
                ok(&mut writer, s).await;
            }
            ok(&mut writer, if rollback { "ROLLBACK" } else { "COMMIT" }).await;
        }
        let context = format!("seed {seed}, transaction {txn}: {statements:?}");
        check_all(&mut writer, &mut reader, &views, &context).await;
        check_lookups(&mut writer, &mut reader, &context).await;
    }

    // REFRESH recomputes from scratch: the same rows.
    for i in 0..views.len() {
        let before = ok(&mut reader, &format!("SELECT * FROM mv{i}")).await;
        ok(&mut writer, &format!("REFRESH MATERIALIZED VIEW mv{i}")).await;
        assert_eq!(
            ok(&mut reader, &format!("SELECT * FROM mv{i}")).await,
            before
        );
    }

    // A REPEATABLE READ block reads the view as of its snapshot.
    ok(&mut reader, "BEGIN ISOLATION LEVEL REPEATABLE READ").await;
    let snapshot = ok(&mut reader, "SELECT * FROM mv1").await;
    let one = ok(&mut reader, "SELECT * FROM mv1 WHERE customer_id = 1").await;
    ok(
        &mut writer,
        "INSERT INTO orders VALUES (99999, 1, 1000, 'open')",
    )
    .await;
    assert_eq!(ok(&mut reader, "SELECT * FROM mv1").await, snapshot);
    assert_eq!(
        ok(&mut reader, "SELECT * FROM mv1 WHERE customer_id = 1").await,
        one
    );
    assert_eq!(ok(&mut reader, VIEWS[1]).await, snapshot);
    ok(&mut reader, "COMMIT").await;
    assert_ne!(ok(&mut reader, "SELECT * FROM mv1").await, snapshot);
    check_all(
        &mut writer,
        &mut reader,
        &views,
        "after the REPEATABLE READ block",
    )
    .await;

    // After a restart the views are built again from the base tables.
    let expected: Vec<Vec<Vec<String>>> = {
        let mut all = Vec::new();
        for q in &views {
            all.push(ok(&mut writer, q).await);
        }
        all
    };
    drop(writer);
    drop(reader);
    engine.close();
    drop(engine);
    let engine = self::engine(&dir);
    let mut early = session(&engine);
    // Before maintenance starts, a view is read as its query.
    assert_eq!(ok(&mut early, "SELECT * FROM mv1").await, expected[1]);
    // Started, not yet built: reads wait for the views to be built.
    assert_eq!(
        engine.start_materialized_views().await.unwrap().len(),
        views.len()
    );
    for (i, rows) in expected.iter().enumerate() {
        assert_eq!(
            &ok(&mut early, &format!("SELECT * FROM mv{i}")).await,
            rows,
            "mv{i} after restart"
        );
    }
    let mut again = session(&engine);
    check_lookups(&mut early, &mut again, "after restart").await;
    let states = ok(
        &mut early,
        "SELECT DISTINCT state FROM floe_catalog.materialized_views",
    )
    .await;
    assert_eq!(states, vec![vec!["running".to_string()]]);
    engine.close();
    drop(early);
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_count_against_the_memory_limit() {
    let dir = temp_dir("matviews-memory");
    let engine = Engine::new(EngineConfig {
        data_dir: dir.clone(),
        target_partitions: 2,
        hot_memory_limit: Some(4 << 20),
        ..EngineConfig::default()
    })
    .expect("engine");
    let mut s = session(&engine);
    ok(
        &mut s,
        "CREATE TABLE pairs (id int PRIMARY KEY, g int); \
         INSERT INTO pairs SELECT g, g % 2 FROM generate_series(1, 1000) g",
    )
    .await;
    // 500,000 joined rows do not fit: the CREATE fails and leaves nothing behind.
    let err = run(
        &mut s,
        "CREATE MATERIALIZED VIEW too_big AS SELECT a.id AS x, b.id AS y FROM pairs a JOIN pairs b ON a.g = b.g",
    )
    .await
    .expect_err("a view past the memory limit");
    assert_eq!(err.code, "53200", "{err:?}");
    assert!(run(&mut s, "SELECT * FROM too_big").await.is_err());
    // A view that fits, then grows past its share: reads report 53200, the server goes on.
    ok(
        &mut s,
        "CREATE TABLE few (id int PRIMARY KEY, g int); INSERT INTO few VALUES (1, 1), (2, 1); \
         CREATE MATERIALIZED VIEW grows AS SELECT a.id AS x, b.id AS y FROM few a JOIN few b ON a.g = b.g",
    )
    .await;
    assert_eq!(
        ok(&mut s, "SELECT count(*) FROM grows").await,
        vec![vec!["4".to_string()]]
    );
    ok(
        &mut s,
        "INSERT INTO few SELECT g, 1 FROM generate_series(3, 600) g",
    )
    .await;
    let err = run(&mut s, "SELECT count(*) FROM grows")
        .await
        .expect_err("a view grown past its share");
    assert_eq!(err.code, "53200", "{err:?}");
    let state = ok(
        &mut s,
        "SELECT state FROM floe_catalog.materialized_views WHERE relname = 'grows'",
    )
    .await;
    assert_eq!(state, vec![vec!["stopped".to_string()]]);
    assert_eq!(
        ok(&mut s, "SELECT count(*) FROM few").await,
        vec![vec!["600".to_string()]]
    );
    // Dropped, its memory is free again.
    ok(&mut s, "DROP MATERIALIZED VIEW grows").await;
    engine.close();
    drop(s);
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

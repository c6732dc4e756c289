//! The catalog through real clients against `floe serve`: psql's describe commands (`\dt`,
//! `\d`, `\d+`, `\dn`, `\l`, `\dv`, `\ds`, `\di`), compared with PostgreSQL 15's own output
//! where it is installed; pgbench (its partition detection runs before every benchmark); and
//! catalog queries over tokio-postgres's extended protocol.
//!
//! Tests that need the `psql` or `pgbench` binaries are skipped (with a message) when they are
//! not installed.

use std::process::Command;
use std::time::Duration;

use floe_sql_tests::TestServer;

fn have(binary: &str) -> bool {
    let found = Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skip: {binary} is not installed");
    }
    found
}

/// Runs one psql command (`-c`) and returns what it printed (stdout, then stderr, where psql
/// says "Did not find any relations."); psql must succeed without errors.
fn psql(server: &TestServer, command: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p"])
        .arg(server.port().to_string())
        .args(["-U", "postgres", "-d", "postgres", "-X", "-c", command])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("cannot run psql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("ERROR"),
        "psql {command} failed: {stderr}"
    );
    format!("{stdout}{stderr}")
}

/// The output with runs of blanks collapsed, so table cells compare without padding.
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_shows(output: &str, expected: &[&str]) {
    let squeezed = squeeze(output);
    for line in expected {
        assert!(
            squeezed.contains(line),
            "expected {line:?} in psql output:\n{output}"
        );
    }
}

async fn execute(server: &TestServer, sql: &str) {
    let client = server.connect().await;
    client.batch_execute(sql).await.expect(sql);
}

const SCHEMA: &str = "CREATE TABLE t (id int PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'x', \
    amount numeric(12,2) CHECK (amount >= 0), u text UNIQUE); \
    CREATE TABLE s (id serial PRIMARY KEY, v bigint); \
    CREATE SCHEMA sch; \
    CREATE TABLE sch.other (k smallint PRIMARY KEY)";

#[tokio::test]
async fn psql_describe_commands() {
    if !have("psql") {
        return;
    }
    let server = TestServer::start_floe();
    execute(&server, SCHEMA).await;

    assert_shows(
        &psql(&server, "\\dt"),
        &[
            "Schema | Name | Type | Owner",
            "public | s | table | postgres",
            "public | t | table | postgres",
            "(2 rows)",
        ],
    );
    assert_shows(
        &psql(&server, "\\d t"),
        &[
            "Table \"public.t\"",
            "Column | Type | Collation | Nullable | Default",
            "id | integer | | not null |",
            "name | character varying(20) | | not null | 'x'",
            "amount | numeric(12,2) | | |",
            "u | text | | |",
            "Indexes:",
            "\"t_pkey\" PRIMARY KEY, btree (id)",
            "\"t_u_key\" UNIQUE CONSTRAINT, btree (u)",
            "Check constraints:",
            "\"t_amount_check\" CHECK (amount >= 0)",
        ],
    );
    assert_shows(
        &psql(&server, "\\d+ t"),
        &[
            "Column | Type | Collation | Nullable | Default | Storage | Compression | Stats target | Description",
            "id | integer | | not null | | plain | | |",
            "amount | numeric(12,2) | | | | main | | |",
            "u | text | | | | extended | | |",
            "\"t_pkey\" PRIMARY KEY, btree (id)",
            "Access method: heap",
        ],
    );
    assert_shows(
        &psql(&server, "\\dn"),
        &["public | pg_database_owner", "sch | postgres"],
    );
    assert_shows(
        &psql(&server, "\\l"),
        &["postgres | postgres | UTF8 | C.UTF-8 | C.UTF-8 | | libc |"],
    );
    assert_shows(&psql(&server, "\\dv"), &["Did not find any relations."]);
    assert_shows(
        &psql(&server, "\\ds"),
        &["public | s_id_seq | sequence | postgres", "(1 row)"],
    );
    assert_shows(
        &psql(&server, "\\d s_id_seq"),
        &[
            "Sequence \"public.s_id_seq\"",
            "integer | 1 | 1 | 2147483647 | 1 | no | 1",
            "Owned by: public.s.id",
        ],
    );
    assert_shows(
        &psql(&server, "\\di"),
        &[
            "public | s_pkey | index | postgres | s",
            "public | t_pkey | index | postgres | t",
            "public | t_u_key | index | postgres | t",
        ],
    );
    assert_shows(
        &psql(&server, "\\d t_pkey"),
        &[
            "id | integer | yes | id",
            "primary key, btree, for table \"public.t\"",
        ],
    );
    assert_shows(
        &psql(&server, "\\dt sch.*"),
        &["sch | other | table | postgres"],
    );
    assert_shows(
        &psql(&server, "\\d"),
        &[
            "public | s | table | postgres",
            "public | s_id_seq | sequence | postgres",
            "public | t | table | postgres",
        ],
    );

    // A table created now shows up at once; a dropped one disappears.
    execute(&server, "CREATE TABLE later (x int); DROP TABLE s").await;
    let tables = squeeze(&psql(&server, "\\dt"));
    assert!(
        tables.contains("public | later | table | postgres"),
        "{tables}"
    );
    assert!(!tables.contains("public | s |"), "{tables}");
}

/// For tables without literal defaults or CHECK constraints (whose expressions Floe prints as
/// written rather than in PostgreSQL's normalised form), psql shows exactly what PostgreSQL 15
/// shows.
#[test]
fn psql_output_matches_postgres() {
    if !have("psql") || !TestServer::postgres_available() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let schema = "CREATE TABLE cmp_a (id int PRIMARY KEY, code varchar(10) NOT NULL UNIQUE, \
        price numeric(10,3), tags text[], note text, at timestamptz, big bigint NOT NULL); \
        CREATE TABLE cmp_b (k int, v char(2), f double precision, d date, b bytea, j jsonb); \
        CREATE INDEX cmp_b_k_v_idx ON cmp_b (k, v); CREATE UNIQUE INDEX cmp_b_d_uq ON cmp_b (d); \
        CREATE TABLE cmp_c (id serial PRIMARY KEY, n bigint NOT NULL); \
        CREATE SCHEMA cmp_s; \
        CREATE TABLE cmp_s.c (x smallint PRIMARY KEY, y boolean)";
    let floe = TestServer::start_floe();
    let postgres = TestServer::start_postgres();
    runtime.block_on(execute(&floe, schema));
    runtime.block_on(execute(&postgres, schema));
    for command in [
        "\\dt",
        "\\dt cmp_s.*",
        "\\d cmp_a",
        "\\d+ cmp_a",
        "\\d cmp_b",
        "\\d+ cmp_b",
        "\\d cmp_c",
        "\\d+ cmp_c",
        "\\d cmp_c_id_seq",
        "\\d cmp_s.c",
        "\\di",
        "\\d cmp_a_pkey",
        "\\d cmp_a_code_key",
        "\\d cmp_b_k_v_idx",
        "\\d cmp_b_d_uq",
        // Floe's own views live in `floe_catalog`, a schema PostgreSQL does not have (as an
        // extension's schema would), so the user schemas are compared by pattern.
        "\\dn cmp*",
        "\\dn public",
        "\\dv",
        "\\ds",
    ] {
        assert_eq!(
            psql(&floe, command),
            psql(&postgres, command),
            "psql {command}: Floe (left) differs from PostgreSQL (right)"
        );
    }
    let schemas = squeeze(&psql(&floe, "\\dn"));
    assert!(schemas.contains("floe_catalog | postgres"), "{schemas}");
    assert!(schemas.contains("cmp_s | postgres"), "{schemas}");
}

#[tokio::test]
async fn pgbench_runs_against_floe() {
    if !have("pgbench") {
        assert!(
            std::env::var("FLOE_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "pgbench is required (FLOE_REQUIRE_POSTGRES=1) but not installed"
        );
        return;
    }
    let server = TestServer::start_floe();
    let pgbench = |args: &[&str]| {
        let out = Command::new("pgbench")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(server.port().to_string())
            .args(["-U", "postgres"])
            .args(args)
            .arg("postgres")
            .output()
            .expect("cannot run pgbench");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
        text
    };
    // The default init steps: drop, create, COPY the data, VACUUM, primary keys.
    let init = pgbench(&["-i", "-s", "1"]);
    assert!(init.contains("done in"), "{init}");
    // pgbench first asks the catalog whether pgbench_accounts is partitioned.
    for mode in [
        &["-M", "prepared"][..],
        &["-M", "simple"][..],
        &["-S", "-M", "prepared"][..],
    ] {
        // -n: keep pgbench_history between runs (pgbench would truncate it), so the branch
        // balances must equal the sum of all deltas at the end.
        let mut args = vec!["-n", "-c", "4", "-T", "2"];
        args.extend_from_slice(mode);
        let text = pgbench(&args);
        assert!(
            text.contains("number of failed transactions: 0 "),
            "pgbench {mode:?}:\n{text}"
        );
    }
    let c = server.connect().await;
    let branches: String = c
        .query_one("SELECT sum(bbalance)::text FROM pgbench_branches", &[])
        .await
        .unwrap()
        .get(0);
    let history: String = c
        .query_one("SELECT sum(delta)::text FROM pgbench_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        branches, history,
        "every transaction applied all of its updates"
    );
}

const PGBENCH_PARTITION_QUERY: &str = "select o.n, p.partstrat, pg_catalog.count(i.inhparent) \
    from pg_catalog.pg_class as c \
    join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) \
    cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) \
    left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) \
    left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) \
    where c.relname = 'pgbench_accounts' and o.n is not null \
    group by 1, 2 order by 1 asc limit 1";

#[tokio::test]
async fn pgbench_partition_query_finds_the_table() {
    let server = TestServer::start_floe();
    let client = server.connect().await;
    assert!(client
        .query(PGBENCH_PARTITION_QUERY, &[])
        .await
        .unwrap()
        .is_empty());
    client
        .batch_execute("CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, filler char(84))")
        .await
        .unwrap();
    let rows = client.query(PGBENCH_PARTITION_QUERY, &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Option<i32>>(0), Some(2));
    assert_eq!(rows[0].get::<_, Option<String>>(1), None);
    assert_eq!(rows[0].get::<_, i64>(2), 0);
}

#[tokio::test]
async fn catalog_queries_over_the_extended_protocol() {
    let server = TestServer::start_floe();
    let client = server.connect().await;
    client.batch_execute(SCHEMA).await.unwrap();

    let oid: u32 = client
        .query_one(
            "SELECT oid FROM pg_catalog.pg_class WHERE relname = $1",
            &[&"t"],
        )
        .await
        .unwrap()
        .get(0);
    let kinds: Vec<(String, String)> = client
        .query(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n \
             ON n.oid = c.relnamespace WHERE n.nspname = $1 ORDER BY c.relname",
            &[&"public"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let kind = |name: &str, kind: &str| (name.to_string(), kind.to_string());
    assert_eq!(
        kinds,
        vec![
            kind("s", "r"),
            kind("s_id_seq", "S"),
            kind("s_pkey", "i"),
            kind("t", "r"),
            kind("t_pkey", "i"),
            kind("t_u_key", "i"),
        ]
    );

    let columns: Vec<(String, i16, bool, String)> = client
        .query(
            "SELECT attname, attnum, attnotnull, format_type(atttypid, atttypmod) \
             FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped \
             ORDER BY attnum",
            &[&oid],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let column = |n: &str, i: i16, nn: bool, t: &str| (n.to_string(), i, nn, t.to_string());
    assert_eq!(
        columns,
        vec![
            column("id", 1, true, "integer"),
            column("name", 2, true, "character varying(20)"),
            column("amount", 3, false, "numeric(12,2)"),
            column("u", 4, false, "text"),
        ]
    );

    let info: Vec<(String, String, String, Option<i32>)> = client
        .query(
            "SELECT column_name, data_type, is_nullable, character_maximum_length \
             FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&"public", &"t"],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let info_row = |n: &str, t: &str, null: &str, len: Option<i32>| {
        (n.to_string(), t.to_string(), null.to_string(), len)
    };
    assert_eq!(
        info,
        vec![
            info_row("id", "integer", "NO", None),
            info_row("name", "character varying", "NO", Some(20)),
            info_row("amount", "numeric", "YES", None),
            info_row("u", "text", "YES", None),
        ]
    );

    let definition: String = client
        .query_one(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = $1 AND i.indisprimary",
            &[&oid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        definition,
        "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"
    );
}

#[tokio::test]
async fn relation_oids_survive_a_restart() {
    let mut server = TestServer::start_floe();
    let query = "SELECT c.oid, i.indexrelid FROM pg_class c JOIN pg_index i ON i.indrelid = c.oid \
                 WHERE c.relname = 't' AND i.indisprimary";
    let before = {
        let client = server.connect().await;
        client.batch_execute(SCHEMA).await.unwrap();
        let row = client.query_one(query, &[]).await.unwrap();
        (row.get::<_, u32>(0), row.get::<_, u32>(1))
    };
    assert!(server.terminate(Duration::from_secs(30)).is_some());
    server.restart(&[]);
    let client = server.connect().await;
    let row = client.query_one(query, &[]).await.unwrap();
    assert_eq!((row.get::<_, u32>(0), row.get::<_, u32>(1)), before);
    let regclass: i32 = client
        .query_one("SELECT 't'::regclass::int4", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(regclass as u32, before.0);
}

#[tokio::test]
async fn psql_describes_views() {
    if !have("psql") {
        return;
    }
    let server = TestServer::start_floe();
    execute(
        &server,
        "CREATE TABLE vt (id int PRIMARY KEY, name text); \
         CREATE VIEW vv (ident, label) AS SELECT id, name FROM vt WHERE id > 0",
    )
    .await;
    assert_shows(
        &psql(&server, "\\dv"),
        &[
            "Schema | Name | Type | Owner",
            "public | vv | view | postgres",
            "(1 row)",
        ],
    );
    assert_shows(
        &psql(&server, "\\d vv"),
        &[
            "View \"public.vv\"",
            "Column | Type | Collation | Nullable | Default",
            "ident | integer | | |",
            "label | text | | |",
        ],
    );
    assert_shows(
        &psql(&server, "\\d+ vv"),
        &["View definition:", "SELECT id, name FROM vt WHERE id > 0;"],
    );
    assert_shows(
        &psql(&server, "SELECT pg_get_viewdef('vv'::regclass)"),
        &["SELECT id, name FROM vt WHERE id > 0;"],
    );
}

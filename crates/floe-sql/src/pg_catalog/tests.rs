//! The catalog through a session: the queries psql, pgbench and drivers send.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::util::display::array_value_to_string;
use futures::StreamExt;

use crate::{Engine, EngineConfig, Session, SqlResult, StatementResult};

struct Harness {
    dir: PathBuf,
    engine: Arc<Engine>,
    session: Session,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.engine.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Harness {
    fn new() -> Harness {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("floe-pg-catalog-{}-{nanos}", std::process::id()));
        let engine = Engine::new(EngineConfig {
            data_dir: dir.clone(),
            target_partitions: 2,
            ..EngineConfig::default()
        })
        .expect("engine");
        let session = engine
            .new_session("postgres", "postgres", std::iter::empty())
            .expect("session");
        Harness {
            dir,
            engine,
            session,
        }
    }

    /// Runs `sql` (one or more statements); the last one's rows as text (`NULL` for null).
    async fn run(&mut self, sql: &str) -> SqlResult<Vec<Vec<String>>> {
        let mut out = Vec::new();
        for statement in self.session.parse(sql)? {
            out.clear();
            // As the wire layer does: the statement ends once its rows are out, or it failed.
            let result = self.collect(statement, &mut out).await;
            self.session.finish_statement(result.is_ok());
            result?;
        }
        Ok(out)
    }

    async fn collect(
        &mut self,
        statement: datafusion::sql::sqlparser::ast::Statement,
        out: &mut Vec<Vec<String>>,
    ) -> SqlResult<()> {
        {
            if let StatementResult::Rows { mut rows, .. } =
                self.session.run_simple(statement).await?
            {
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
        }
        Ok(())
    }

    async fn ok(&mut self, sql: &str) -> Vec<Vec<String>> {
        match self.run(sql).await {
            Ok(rows) => rows,
            Err(e) => panic!("{sql}\nfailed: {e:?}"),
        }
    }

    async fn one(&mut self, sql: &str) -> String {
        let rows = self.ok(sql).await;
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        rows[0][0].clone()
    }
}

fn rows(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

const SETUP: &str = "CREATE TABLE t (id int PRIMARY KEY, name varchar(20) NOT NULL DEFAULT 'x', \
     amount numeric(12,2) CHECK (amount >= 0), u text UNIQUE); \
     CREATE TABLE s (id serial PRIMARY KEY, v int8)";

#[tokio::test]
async fn pg_class_lists_tables_with_real_oids() {
    let mut h = Harness::new();
    h.ok(SETUP).await;
    let oid = h
        .engine
        .db()
        .catalog()
        .relation_by_name("postgres", "public", "t")
        .unwrap()
        .id;
    assert_eq!(
        h.ok(
            "SELECT c.oid, c.relkind, n.nspname FROM pg_catalog.pg_class c \
              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 't'"
        )
        .await,
        rows(&[&[&oid.to_string(), "r", "public"]])
    );
    assert_eq!(h.one("SELECT 't'::regclass::oid").await, oid.to_string());
    assert_eq!(
        h.ok(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace \
              ORDER BY relname"
        )
        .await,
        rows(&[
            &["s", "r"],
            &["s_id_seq", "S"],
            &["s_pkey", "i"],
            &["t", "r"],
            &["t_pkey", "i"],
            &["t_u_key", "i"],
        ])
    );
    // New tables show up at once.
    h.ok("CREATE TABLE later (x int)").await;
    assert_eq!(
        h.one("SELECT count(*) FROM pg_class WHERE relname = 'later'")
            .await,
        "1"
    );
}

#[tokio::test]
async fn pg_attribute_and_format_type() {
    let mut h = Harness::new();
    h.ok(SETUP).await;
    assert_eq!(
        h.ok("SELECT attname, attnum, attnotnull, atthasdef, \
                     pg_catalog.format_type(atttypid, atttypmod) \
              FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 ORDER BY attnum")
            .await,
        rows(&[
            &["id", "1", "true", "false", "integer"],
            &["name", "2", "true", "true", "character varying(20)"],
            &["amount", "3", "false", "false", "numeric(12,2)"],
            &["u", "4", "false", "false", "text"],
        ])
    );
}

#[tokio::test]
async fn constraints_and_indexes() {
    let mut h = Harness::new();
    h.ok(SETUP).await;
    assert_eq!(
        h.ok(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint \
              WHERE conrelid = 't'::regclass ORDER BY conname"
        )
        .await,
        rows(&[
            &["t_amount_check", "c", "CHECK (amount >= 0)"],
            &["t_pkey", "p", "PRIMARY KEY (id)"],
            &["t_u_key", "u", "UNIQUE (u)"],
        ])
    );
    assert_eq!(
        h.ok(
            "SELECT c.relname, i.indisprimary, pg_get_indexdef(i.indexrelid) \
              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
              WHERE i.indrelid = 't'::regclass ORDER BY 1"
        )
        .await,
        rows(&[
            &[
                "t_pkey",
                "true",
                "CREATE UNIQUE INDEX t_pkey ON public.t USING btree (id)"
            ],
            &[
                "t_u_key",
                "false",
                "CREATE UNIQUE INDEX t_u_key ON public.t USING btree (u)"
            ],
        ])
    );
}

#[tokio::test]
async fn information_schema_speaks_postgres_types() {
    let mut h = Harness::new();
    h.ok(SETUP).await;
    assert_eq!(
        h.ok(
            "SELECT column_name, data_type, is_nullable, character_maximum_length, \
                     numeric_precision, numeric_scale, column_default \
              FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position"
        )
        .await,
        rows(&[
            &["id", "integer", "NO", "NULL", "32", "0", "NULL"],
            &[
                "name",
                "character varying",
                "NO",
                "20",
                "NULL",
                "NULL",
                "'x'"
            ],
            &["amount", "numeric", "YES", "NULL", "12", "2", "NULL"],
            &["u", "text", "YES", "NULL", "NULL", "NULL", "NULL"],
        ])
    );
    assert_eq!(
        h.ok(
            "SELECT table_name, table_type FROM information_schema.tables \
              WHERE table_schema = 'public' ORDER BY 1"
        )
        .await,
        rows(&[&["s", "BASE TABLE"], &["t", "BASE TABLE"]])
    );
}

#[tokio::test]
async fn pgbench_partition_query() {
    let mut h = Harness::new();
    h.ok("CREATE TABLE pgbench_accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84))")
        .await;
    let sql = "select o.n, p.partstrat, pg_catalog.count(i.inhparent) \
        from pg_catalog.pg_class as c \
        join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) \
        cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) \
        left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) \
        left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) \
        where c.relname = 'pgbench_accounts' and o.n is not null \
        group by 1, 2 order by 1 asc limit 1";
    assert_eq!(h.ok(sql).await, rows(&[&["2", "NULL", "0"]]));
}

/// The queries psql 15 sends for `\dt`, `\d t`, `\d+ t`, `\dn`, `\l`, `\dv`, `\ds`.
#[tokio::test]
async fn psql_describe_queries_plan_and_run() {
    let mut h = Harness::new();
    h.ok(SETUP).await;
    let t = h
        .engine
        .db()
        .catalog()
        .relation_by_name("postgres", "public", "t")
        .unwrap()
        .id;
    let seq = h
        .engine
        .db()
        .catalog()
        .relation_by_name("postgres", "public", "s_id_seq")
        .unwrap()
        .id;
    let pkey = h
        .one("SELECT indexrelid FROM pg_index WHERE indrelid = 't'::regclass AND indisprimary")
        .await;
    for (name, sql) in super::tests_psql::QUERIES {
        let sql = sql
            .replace("@T@", &t.to_string())
            .replace("@SEQ@", &seq.to_string())
            .replace("@IDX@", &pkey);
        if let Err(e) = h.run(&sql).await {
            panic!("psql query {name} failed: {e:?}\n{sql}");
        }
    }
    let columns = h
        .ok(&super::tests_psql::COLUMNS.replace("@T@", &t.to_string()))
        .await;
    assert_eq!(
        columns,
        rows(&[
            &["id", "integer", "NULL", "true", "NULL", "", ""],
            &[
                "name",
                "character varying(20)",
                "'x'",
                "true",
                "NULL",
                "",
                ""
            ],
            &["amount", "numeric(12,2)", "NULL", "false", "NULL", "", ""],
            &["u", "text", "NULL", "false", "NULL", "", ""],
        ])
    );
}

#[tokio::test]
async fn to_reg_functions_look_names_up_when_they_run() {
    let mut h = Harness::new();
    h.ok("CREATE SCHEMA s; CREATE TABLE s.u (a int)").await;
    assert_eq!(h.one("SELECT to_regtype('int4')").await, "integer");
    assert_eq!(h.one("SELECT to_regtype('int4')::oid").await, "23");
    assert_eq!(h.one("SELECT to_regtype('hstore')").await, "NULL");
    assert_eq!(h.one("SELECT to_regclass('s.u')").await, "s.u");
    assert_eq!(h.one("SELECT to_regclass('u')").await, "NULL");
    assert_eq!(h.one("SELECT to_regproc('now')").await, "now");
    assert_eq!(h.one("SELECT to_regnamespace('s')").await, "s");
}

#[tokio::test]
async fn regclass_prints_bare_what_the_search_path_finds() {
    let mut h = Harness::new();
    h.ok("CREATE SCHEMA s; CREATE TABLE s.u (a int)").await;
    h.ok("SET search_path = s, public").await;
    // Visible along the search path: printed bare, as PostgreSQL prints regclass.
    assert_eq!(h.one("SELECT to_regclass('u')").await, "u");
    assert_eq!(
        h.one("SELECT oid::regclass FROM pg_class WHERE relname = 'u'")
            .await,
        "u"
    );
    h.ok("SET search_path = public").await;
    assert_eq!(
        h.one("SELECT oid::regclass FROM pg_class WHERE relname = 'u'")
            .await,
        "s.u"
    );
}

#[tokio::test]
async fn set_config_applies_when_the_statement_ends() {
    let mut h = Harness::new();
    assert_eq!(
        h.one("SELECT set_config('application_name', 'x', false)")
            .await,
        "x"
    );
    assert_eq!(h.one("SHOW application_name").await, "x");
    h.ok("BEGIN").await;
    h.ok("SELECT set_config('application_name', 'y', true)")
        .await;
    assert_eq!(h.one("SHOW application_name").await, "y");
    h.ok("COMMIT").await;
    assert_eq!(h.one("SHOW application_name").await, "x");
    let err = h
        .run("SELECT set_config('application_name', 'z', false), 1 / 0")
        .await
        .unwrap_err();
    assert_eq!(err.code, "22012");
    assert_eq!(h.one("SHOW application_name").await, "x");
    let err = h
        .run("SELECT set_config('nope', '1', false)")
        .await
        .unwrap_err();
    assert_eq!(err.code, "42704");
}

/// The first value `sql` returns in `session`, ending the statement as the wire layer does.
async fn first_value(session: &mut Session, sql: &str) -> String {
    let statement = session.parse(sql).expect("parse").remove(0);
    let StatementResult::Rows { mut rows, .. } = session.run_simple(statement).await.expect("run")
    else {
        panic!("{sql}: no rows");
    };
    let batch = rows.stream.next().await.expect("a batch").expect("ok");
    let value = array_value_to_string(batch.column(0), 0).expect("text");
    drop(rows);
    session.finish_statement(true);
    value
}

#[tokio::test]
async fn advisory_locks_belong_to_the_session() {
    let mut h = Harness::new();
    let mut other = h
        .engine
        .new_session("postgres", "postgres", std::iter::empty())
        .expect("session");
    h.ok("SELECT pg_advisory_lock(1)").await;
    assert_eq!(
        first_value(&mut other, "SELECT pg_try_advisory_lock(1)").await,
        "false"
    );
    h.ok("BEGIN; SELECT pg_advisory_xact_lock(2)").await;
    assert_eq!(
        first_value(&mut other, "SELECT pg_try_advisory_lock(2)").await,
        "false"
    );
    h.ok("ROLLBACK").await;
    assert_eq!(
        first_value(&mut other, "SELECT pg_try_advisory_lock(2)").await,
        "true"
    );
    // Outside a block the statement is the transaction.
    h.ok("SELECT pg_advisory_xact_lock(3)").await;
    assert_eq!(
        first_value(&mut other, "SELECT pg_try_advisory_lock(3)").await,
        "true"
    );
    assert_eq!(h.one("SELECT pg_advisory_unlock(3)").await, "false");
    assert_eq!(h.session.take_notices().len(), 1);
    // The session's end releases what it holds.
    let h_session = std::mem::replace(
        &mut h.session,
        h.engine
            .new_session("postgres", "postgres", std::iter::empty())
            .expect("session"),
    );
    drop(h_session);
    assert_eq!(
        first_value(&mut other, "SELECT pg_try_advisory_lock(1)").await,
        "true"
    );
}

//! Protocol tests with tokio-postgres, which uses the extended protocol with binary parameters
//! and binary results: every type round-trips exactly, NULLs included; errors carry SQLSTATEs;
//! bad input on the socket never takes the server down.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use floe_sql_tests::TestServer;
use pg_interval::Interval;
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSqlOwned, ToSql};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

async fn round_trip<T>(client: &Client, cast: &str, value: T)
where
    T: ToSql + FromSqlOwned + PartialEq + std::fmt::Debug + Sync,
{
    let sql = format!("SELECT $1::{cast}");
    let row = client
        .query_one(sql.as_str(), &[&value])
        .await
        .unwrap_or_else(|e| panic!("{sql} with {value:?}: {e:?}"));
    let back: T = row.get(0);
    assert_eq!(back, value, "{sql}");
    // NULL of the same type.
    let row = client
        .query_one(sql.as_str(), &[&None::<T>])
        .await
        .unwrap_or_else(|e| panic!("{sql} with NULL: {e:?}"));
    let back: Option<T> = row.get(0);
    assert_eq!(back, None, "{sql} NULL");
}

#[tokio::test]
async fn every_type_round_trips_in_binary() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    round_trip(&c, "int2", -12i16).await;
    round_trip(&c, "int4", i32::MAX).await;
    round_trip(&c, "int8", i64::MIN).await;
    round_trip(&c, "float4", 1.5f32).await;
    round_trip(&c, "float8", -0.1f64).await;
    round_trip(&c, "numeric", Decimal::new(-123456789, 4)).await;
    round_trip(&c, "text", "héllo, wörld".to_string()).await;
    round_trip(&c, "varchar", "v".to_string()).await;
    round_trip(&c, "bool", true).await;
    round_trip(&c, "date", NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()).await;
    round_trip(
        &c,
        "time",
        NaiveTime::from_hms_micro_opt(23, 59, 58, 123456).unwrap(),
    )
    .await;
    let ts =
        NaiveDateTime::parse_from_str("2024-01-02 03:04:05.25", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    round_trip(&c, "timestamp", ts).await;
    let tstz: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
    round_trip(&c, "timestamptz", tstz).await;
    round_trip(&c, "interval", Interval::new(14, 3, 4_000_000)).await;
    round_trip(
        &c,
        "uuid",
        uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
    )
    .await;
    round_trip(&c, "bytea", vec![0u8, 1, 2, 255]).await;
    round_trip(&c, "json", serde_json::json!({"a": [1, 2, null]})).await;
    round_trip(&c, "jsonb", serde_json::json!({"k": "v"})).await;
    round_trip(&c, "int4[]", vec![1i32, 2, 3]).await;
    round_trip(&c, "int8[]", vec![Some(1i64), None, Some(3)]).await;
    round_trip(&c, "text[]", vec!["a".to_string(), "b c".to_string()]).await;
    round_trip(&c, "float8[]", vec![1.5f64, -2.0]).await;
    round_trip(&c, "bool[]", vec![true, false]).await;
}

#[tokio::test]
async fn result_types_are_postgres_types() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    let stmt = c
        .prepare("SELECT 1, 10000000000, 1.5, 'x', true, 1.5::float8, now(), CURRENT_DATE")
        .await
        .unwrap();
    let types: Vec<_> = stmt
        .columns()
        .iter()
        .map(|c| c.type_().name().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "int4",
            "int8",
            "numeric",
            "text",
            "bool",
            "float8",
            "timestamptz",
            "date"
        ]
    );
    let names: Vec<_> = stmt
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names[0], "?column?");
    assert_eq!(names[5], "float8");
    assert_eq!(names[6], "now");
    // Parameter types inferred from context.
    let stmt = c.prepare("SELECT $1 + 1, upper($2)").await.unwrap();
    let params: Vec<_> = stmt.params().iter().map(|t| t.name().to_string()).collect();
    // PostgreSQL says int4 for the first; Floe infers from the literal, which DataFusion plans
    // as int8 (known difference, see README).
    assert!(matches!(params[0].as_str(), "int4" | "int8"), "{params:?}");
    assert_eq!(params[1], "text");
    let stmt = c.prepare("SELECT $1::int4 + 1, upper($2)").await.unwrap();
    let row = c.query_one(&stmt, &[&41i32, &"abc"]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(row.get::<_, String>(1), "ABC");
}

#[tokio::test]
async fn portals_suspend_and_resume() {
    let server = TestServer::start_floe();
    let mut c = server.connect().await;
    let tx = c.transaction().await.unwrap();
    let stmt = tx
        .prepare("SELECT g FROM generate_series(1, 10) g")
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let rows = tx.query_portal(&portal, 3).await.unwrap();
        if rows.is_empty() {
            break;
        }
        // integer, as in PostgreSQL: generate_series of int4 arguments.
        seen.extend(rows.iter().map(|r| r.get::<_, i32>(0)));
    }
    assert_eq!(seen, (1..=10).collect::<Vec<i32>>());
    tx.commit().await.unwrap();
}

async fn code_of(c: &Client, sql: &str) -> SqlState {
    let err = c.simple_query(sql).await.expect_err(sql);
    let code = err
        .code()
        .cloned()
        .unwrap_or_else(|| panic!("{sql}: {err:?}"));
    // The connection stays usable after every error.
    let rows = c.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(rows.get::<_, i32>(0), 1);
    code
}

#[tokio::test]
async fn errors_carry_sqlstates_and_leave_the_connection_usable() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    assert_eq!(code_of(&c, "SELEC 1").await, SqlState::SYNTAX_ERROR);
    assert_eq!(
        code_of(&c, "SELECT * FROM nope").await,
        SqlState::UNDEFINED_TABLE
    );
    assert_eq!(code_of(&c, "SELECT nope").await, SqlState::UNDEFINED_COLUMN);
    assert_eq!(
        code_of(&c, "SELECT nofunc(1)").await,
        SqlState::UNDEFINED_FUNCTION
    );
    assert_eq!(code_of(&c, "SELECT 1/0").await, SqlState::DIVISION_BY_ZERO);
    assert_eq!(
        code_of(&c, "SELECT 'abc'::int").await,
        SqlState::INVALID_TEXT_REPRESENTATION
    );
    assert_eq!(
        code_of(&c, "LISTEN foo").await,
        SqlState::FEATURE_NOT_SUPPORTED
    );
    // Extended protocol: errors at Parse and at Execute.
    let err = c.prepare("SELECT 1 +").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::SYNTAX_ERROR));
    let err = c.query("SELECT 1 / $1::int4", &[&0i32]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    // Inside a transaction block, later statements get 25P02 until ROLLBACK.
    c.batch_execute("BEGIN").await.unwrap();
    let err = c.query("SELECT 1/0", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
    let err = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        c.query_one("SELECT 2", &[]).await.unwrap().get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn simple_protocol_runs_each_statement() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    let messages = c
        .simple_query("SELECT 1; SELECT 2, 3; SET application_name = 'x'")
        .await
        .unwrap();
    let completes: Vec<u64> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(completes, [1, 1, 0]);
    // The empty query.
    let messages = c.simple_query("").await.unwrap();
    assert!(messages
        .iter()
        .all(|m| !matches!(m, SimpleQueryMessage::Row(_))));
    // A 1 MB query string.
    let big = "x".repeat(1 << 20);
    let row = c
        .query_one(format!("SELECT length('{big}')").as_str(), &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1 << 20);
}

#[tokio::test]
async fn cancel_and_statement_timeout_stop_long_queries() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = c
        .simple_query("SELECT count(*) FROM generate_series(1, 5000000000)")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    canceller.await.unwrap();
    assert_eq!(
        c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );

    c.batch_execute("SET statement_timeout = '200ms'")
        .await
        .unwrap();
    let err = c
        .query("SELECT count(*) FROM generate_series(1, 5000000000)", &[])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("statement timeout"), "{message}");
    c.batch_execute("SET statement_timeout = 0").await.unwrap();
    assert_eq!(
        c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_other_sessions() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    let addr = ("127.0.0.1", server.port());
    let garbage: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 64],
        vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0], // absurd length
        vec![0, 0, 0, 8],                         // truncated
        vec![],
    ];
    for bytes in garbage {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let _ = s.shutdown().await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    }
    // SSLRequest is answered with 'N'.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"N");
    drop(s);
    // Unknown database: FATAL 3D000, server fine.
    let err = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=nope",
            server.port()
        ),
        NoTls,
    )
    .await
    .err()
    .expect("connecting to a missing database must fail");
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME));
    assert_eq!(
        c.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );
    let fresh = server.connect().await;
    assert_eq!(
        fresh
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_connections() {
    let server = TestServer::start_floe();
    let mut tasks = Vec::new();
    for i in 0..64i32 {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            tokio::spawn(conn);
            for j in 0..10i32 {
                let row = c
                    .query_one("SELECT $1::int4 * 100 + $2::int4", &[&i, &j])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i32>(0), i * 100 + j);
            }
            let rows = c
                .simple_query("SELECT count(*) FROM generate_series(1, 1000)")
                .await
                .unwrap();
            assert!(rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = TestServer::start_floe();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(server.connect());
    rt.block_on(async { client.query_one("SELECT 1", &[]).await.unwrap() });
    let status = server
        .terminate(Duration::from_secs(15))
        .expect("floe did not exit after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    // The idle client sees its connection closed.
    let err = rt.block_on(async { client.query_one("SELECT 1", &[]).await.unwrap_err() });
    assert!(err.is_closed() || err.code().is_none(), "{err:?}");
}

async fn now(c: &Client) -> String {
    match &c.simple_query("SELECT now()::text").await.unwrap()[1] {
        SimpleQueryMessage::Row(r) => r.get(0).unwrap().to_string(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn repeated_statements_see_fresh_values() {
    let server = TestServer::start_floe();
    let c = server.connect().await;
    let first = now(&c).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_ne!(
        first,
        now(&c).await,
        "now() must not be cached across statements"
    );
    // Inside a block, now() is the transaction's start.
    c.batch_execute("BEGIN").await.unwrap();
    let a = now(&c).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(a, now(&c).await);
    c.batch_execute("COMMIT").await.unwrap();
    // Re-running a cached query re-executes it fully.
    for _ in 0..3 {
        let rows = c
            .query("SELECT g FROM generate_series(1, 3) g", &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
        let rows = c
            .simple_query("SELECT g FROM generate_series(1, 3) g")
            .await
            .unwrap();
        assert_eq!(
            rows.iter()
                .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                .count(),
            3
        );
        let one = c.query_one("SELECT 1 + 1", &[]).await.unwrap();
        assert_eq!(one.get::<_, i32>(0), 2);
    }
}

#[tokio::test]
async fn warnings_arrive_as_notices() {
    use tokio_postgres::AsyncMessage;
    let server = TestServer::start_floe();
    let (client, mut connection) = tokio_postgres::connect(&server.url(), NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = futures::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notice(notice)) => {
                    let _ = tx.send(notice);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.batch_execute("COMMIT").await.unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notice.severity(), "WARNING");
    assert_eq!(notice.code(), &SqlState::NO_ACTIVE_SQL_TRANSACTION);
    assert_eq!(notice.message(), "there is no transaction in progress");
}

#[test]
fn shutdown_cancels_statements_that_outlive_the_grace_period() {
    let mut server = TestServer::start_floe_with(&["--shutdown-grace", "1"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(server.connect());
    let running = rt.spawn(async move {
        client
            .simple_query("SELECT count(*) FROM generate_series(1, 50000000000)")
            .await
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = server
        .terminate(Duration::from_secs(15))
        .expect("floe did not exit after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    let result = rt.block_on(running).unwrap();
    let err = result.expect_err("the long query must not complete");
    // The client is told why (57P01) or sees the connection close.
    if let Some(code) = err.code() {
        assert_eq!(code, &SqlState::ADMIN_SHUTDOWN);
    }
}

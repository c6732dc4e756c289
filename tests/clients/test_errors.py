"""Errors reach psycopg and asyncpg with PostgreSQL's SQLSTATE, and the connection stays usable:
over the simple protocol, the extended protocol (named prepared statements), and in binary."""

import asyncpg
import psycopg
import pytest

from conftest import TARGET, floe_xfail

# A statement each server rejects as not supported (0A000): one Floe does not implement yet,
# one PostgreSQL does not allow.
NOT_SUPPORTED = (
    "LISTEN floe_test_channel"
    if TARGET == "floe"
    else "SELECT CASE WHEN true THEN generate_series(1, 3) END"
)

CASES = [
    ("42601", "SELEC 1"),
    ("42601", "SELECT 1 +"),
    ("42601", "SELECT (1"),
    ("42601", "SELECT 'unterminated"),
    ("42P01", "SELECT * FROM no_such_table"),
    ("42P01", "SELECT * FROM public.no_such_table"),
    ("42703", "SELECT nope FROM generate_series(1, 2) AS g"),
    ("42703", "SELECT t.b FROM (VALUES (1)) AS t(a)"),
    ("42703", "SELECT nope"),
    ("42883", "SELECT no_such_function(1)"),
    ("42883", "SELECT length(1, 2, 3)"),
    ("22012", "SELECT 1 / 0"),
    ("22012", "SELECT 1::int8 / 0"),
    ("22012", "SELECT 1.5 / 0"),
    ("22012", "SELECT 5 % 0"),
    ("22012", "SELECT 1.0::float8 / 0"),
    ("22P02", "SELECT 'abc'::int"),
    ("22P02", "SELECT 'maybe'::bool"),
    ("22P02", "SELECT 'zz'::uuid"),
    ("22P02", "SELECT 'x1'::numeric"),
    ("22P02", "SELECT 'abc'::float8"),
    ("22P02", "SELECT array_length('{1,x}'::int4[], 1)"),
    ("22003", "SELECT 40000::int2"),
    ("0A000", NOT_SUPPORTED),
    ("0A000", "SELECT CASE WHEN true THEN generate_series(1, 3) END"),
    ("0A000", "SELECT coalesce(generate_series(1, 3), 0)"),
    ("42601", "SELECT 1 FROM WHERE"),
    ("42601", "SELECT 1 FROM ORDER BY 1"),
    ("42601", "DELETE FROM WHERE x = 1"),
]


def case_id(case):
    code, sql = case.values if hasattr(case, "values") else case
    return f"{code}:{sql}"


IDS = [case_id(c) for c in CASES]


@pytest.fixture(scope="module")
def pconn(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def aconn(server, loop):
    c = loop.run_until_complete(
        asyncpg.connect(host=server.host, port=server.port, user="postgres", database="postgres")
    )
    yield c
    loop.run_until_complete(c.close())


def assert_usable(pconn):
    assert pconn.execute("SELECT 1").fetchone() == (1,)
    assert pconn.execute("SELECT %s::int4", [2], prepare=True).fetchone() == (2,)


@pytest.mark.parametrize("code,sql", CASES, ids=IDS)
def test_psycopg_simple_protocol(pconn, code, sql):
    with pytest.raises(psycopg.Error) as info:
        pconn.execute(sql)
    assert info.value.sqlstate == code, info.value
    assert info.value.diag.severity == "ERROR"
    assert info.value.diag.message_primary
    assert_usable(pconn)


@pytest.mark.parametrize("code,sql", CASES, ids=IDS)
def test_psycopg_prepared_binary(pconn, code, sql):
    with pytest.raises(psycopg.Error) as info:
        pconn.cursor(binary=True).execute(sql, prepare=True)
    assert info.value.sqlstate == code, info.value
    assert_usable(pconn)


@pytest.mark.parametrize("code,sql", CASES, ids=IDS)
def test_asyncpg(loop, aconn, code, sql):
    with pytest.raises(asyncpg.PostgresError) as info:
        loop.run_until_complete(aconn.fetch(sql))
    assert info.value.sqlstate == code, info.value
    assert loop.run_until_complete(aconn.fetchval("SELECT $1::int4", 3)) == 3


@pytest.mark.parametrize(
    "text,code",
    [("abc", "22P02"), ("1.5", "22P02"), ("", "22P02"), (" 99999999999 ", "22003")],
)
def test_bad_text_parameter(pconn, text, code):
    # %t: a text-format parameter that int4's input function rejects.
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SELECT %t::int4", [text])
    assert info.value.sqlstate == code, info.value
    assert_usable(pconn)


def test_bad_text_parameter_asyncpg(loop, aconn):
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        loop.run_until_complete(aconn.fetchval("SELECT $1::text::int4", "abc"))
    assert loop.run_until_complete(aconn.fetchval("SELECT 1")) == 1


def test_failed_transaction_psycopg(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            c.execute("SELECT 1 / 0")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        for attempt in ["SELECT 1", "SELECT %s::int4"]:
            with pytest.raises(psycopg.errors.InFailedSqlTransaction) as info:
                c.execute(attempt, [1] if "%s" in attempt else None)
            assert info.value.sqlstate == "25P02"
            assert "current transaction is aborted" in str(info.value)
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT %s::int4", [1], prepare=True)
        c.execute("ROLLBACK")
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT 5").fetchone() == (5,)


def test_commit_of_failed_transaction_rolls_back(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("BEGIN")
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("SELECT * FROM nope")
        cur = c.execute("COMMIT")
        assert cur.statusmessage == "ROLLBACK"
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert c.execute("SELECT 6").fetchone() == (6,)


def test_failed_transaction_non_autocommit(server):
    with psycopg.connect(server.dsn) as c:
        with pytest.raises(psycopg.errors.SyntaxError):
            c.execute("SELEC 1")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            c.execute("SELECT 1")
        c.rollback()
        assert c.execute("SELECT 7").fetchone() == (7,)


def test_failed_transaction_asyncpg(loop, aconn):
    async def go():
        tr = aconn.transaction()
        await tr.start()
        with pytest.raises(asyncpg.DivisionByZeroError):
            await aconn.fetchval("SELECT 1 / $1::int4", 0)
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            await aconn.fetchval("SELECT $1::int4", 1)
        await tr.rollback()
        return await aconn.fetchval("SELECT $1::int4", 8)

    assert loop.run_until_complete(go()) == 8


def test_error_in_multi_statement_query_stops_it(pconn):
    # One simple Query with three statements: the first runs, the rest are skipped.
    with pytest.raises(psycopg.errors.DivisionByZero):
        pconn.execute("SELECT 1; SELECT 1 / 0; SELECT 3")
    assert_usable(pconn)


def test_multi_statement_implicit_transaction_rolls_back(pconn):
    # SET in the same Query as a failing statement is undone (implicit transaction).
    pconn.execute("SET application_name = 'before'")
    with pytest.raises(psycopg.errors.DivisionByZero):
        pconn.execute("SET application_name = 'during'; SELECT 1 / 0")
    assert pconn.execute("SHOW application_name").fetchone() == ("before",)


def test_error_fields(pconn):
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SELECT * FROM no_such_table")
    diag = info.value.diag
    assert diag.sqlstate == "42P01"
    assert diag.severity == "ERROR"
    assert diag.message_primary == 'relation "no_such_table" does not exist'


def test_error_has_nonlocalized_severity(pconn):
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SELECT * FROM no_such_table")
    assert info.value.diag.severity_nonlocalized == "ERROR"


@pytest.mark.parametrize("sql,position", [
    ("SELECT 1 + )", "12"),
    ("SELECT 1 +", "11"),
    ("SELECT 'é',\n  ) x", "15"),
    ("select 1;\nselect 2 2", "20"),
])
def test_syntax_error_has_position(pconn, sql, position):
    with pytest.raises(psycopg.errors.SyntaxError) as info:
        pconn.execute(sql)
    assert info.value.diag.statement_position == position


def test_unknown_setting(pconn):
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SET no_such_setting = 1")
    assert info.value.sqlstate == "42704"
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SHOW no_such_setting")
    assert info.value.sqlstate == "42704"
    assert_usable(pconn)


def test_invalid_setting_value(pconn):
    with pytest.raises(psycopg.Error) as info:
        pconn.execute("SET statement_timeout = 'soon'")
    assert info.value.sqlstate == "22023"
    assert_usable(pconn)


def test_statement_timeout_is_57014(pconn):
    pconn.execute("SET statement_timeout = 200")
    try:
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            pconn.execute("SELECT count(*) FROM generate_series(1, 10000000000)")
        assert info.value.sqlstate == "57014"
    finally:
        pconn.execute("SET statement_timeout = 0")
    assert_usable(pconn)


def test_parallel_plan_times_out_with_57014(pconn):
    # A join big enough to run for minutes; its plan has several partitions, which Floe runs on
    # the shared runtime rather than the connection's own thread: the timeout must reach it.
    pconn.execute("CREATE TABLE par_big (v int)")
    try:
        pconn.execute("INSERT INTO par_big SELECT i FROM generate_series(1, 100000) i")
        pconn.execute("SET statement_timeout = 300")
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as info:
                pconn.execute(
                    "SELECT count(*) FROM par_big a, par_big b WHERE a.v + b.v < 0"
                )
            assert info.value.sqlstate == "57014"
        finally:
            pconn.execute("SET statement_timeout = 0")
        assert_usable(pconn)
        assert pconn.execute("SELECT count(*) FROM par_big").fetchone() == (100000,)
    finally:
        pconn.execute("DROP TABLE par_big")


def test_busy_connection_does_not_hold_up_others(server):
    # One client runs a statement that would take hours; others keep getting answers while it
    # runs (each connection has a thread of its own in Floe, a process in PostgreSQL).
    import threading

    outcome = {}

    with psycopg.connect(server.dsn, autocommit=True) as busy:

        def run():
            try:
                busy.execute("SELECT count(*) FROM generate_series(1, 100000000000)")
                outcome["result"] = "finished"
            except psycopg.errors.QueryCanceled as e:
                outcome["result"] = e.sqlstate

        worker = threading.Thread(target=run)
        worker.start()
        try:
            others = [psycopg.connect(server.dsn, autocommit=True) for _ in range(3)]
            try:
                for i in range(100):
                    c = others[i % len(others)]
                    assert c.execute("SELECT %s::int + 1", (i,)).fetchone() == (i + 1,)
                assert worker.is_alive(), "the long statement ended early"
            finally:
                for c in others:
                    c.close()
        finally:
            busy.cancel()
            worker.join(60)
    assert outcome.get("result") == "57014"


def test_cancel_is_57014(server):
    import threading
    import time

    with psycopg.connect(server.dsn, autocommit=True) as c:
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled):
                c.execute("SELECT count(*) FROM generate_series(1, 10000000000)")
        finally:
            timer.cancel()
        assert time.monotonic() - started < 30
        assert c.execute("SELECT 9").fetchone() == (9,)

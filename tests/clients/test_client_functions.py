"""Functions drivers call before and around their first queries, with more than one session:
psycopg's type lookup (to_regtype), advisory locks shared between sessions, pg_sleep cancelled
by a CancelRequest and by statement_timeout, asyncpg's pool (pg_advisory_unlock_all on
release), SQLAlchemy's first connection."""

import asyncio
import threading
import time

import asyncpg
import psycopg
import pytest
from psycopg.types import TypeInfo


def connect(server):
    return psycopg.connect(server.dsn, autocommit=True)


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def in_thread(fn):
    """Runs fn() in a thread; returns (thread, outcome dict with 'result' or 'error')."""
    outcome = {}

    def run():
        try:
            outcome["result"] = fn()
        except Exception as e:  # noqa: BLE001 - reported to the test
            outcome["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_psycopg_typeinfo_fetch(server):
    with connect(server) as c:
        info = TypeInfo.fetch(c, "int4")
        assert (info.name, info.oid, info.array_oid) == ("int4", 23, 1007)
        info = TypeInfo.fetch(c, "text")
        assert (info.oid, info.array_oid) == (25, 1009)
        assert TypeInfo.fetch(c, "hstore") is None
        assert TypeInfo.fetch(c, "no_such_type") is None
        # Still usable: to_regtype never fails for a missing type.
        assert one(c, "SELECT 1") == 1


def test_to_regclass_with_a_parameter(server):
    with connect(server) as c:
        c.execute("CREATE TABLE tr_t (a int)")
        try:
            oid = one(c, "SELECT oid FROM pg_class WHERE relname = 'tr_t'")
            assert one(c, "SELECT to_regclass(%s)::oid", ("tr_t",)) == oid
            assert one(c, "SELECT to_regclass(%s)::text", ("public.tr_t",)) == "tr_t"
            assert one(c, "SELECT to_regclass(%s)", ("no_such_table",)) is None
        finally:
            c.execute("DROP TABLE tr_t")


def test_advisory_lock_waits_for_the_holder(server):
    with connect(server) as a, connect(server) as b, connect(server) as c:
        one(a, "SELECT pg_advisory_lock(42)")
        started = time.monotonic()
        thread, outcome = in_thread(lambda: one(b, "SELECT pg_advisory_lock(42)"))
        try:
            time.sleep(0.5)
            assert thread.is_alive(), f"second locker did not wait: {outcome}"
            # Others are not held up, and cannot take it either.
            assert one(c, "SELECT pg_try_advisory_lock(42)") is False
            assert one(c, "SELECT pg_try_advisory_lock_shared(42)") is False
            assert one(c, "SELECT 1") == 1
        finally:
            assert one(a, "SELECT pg_advisory_unlock(42)") is True
            thread.join(10)
        assert not thread.is_alive() and "error" not in outcome, outcome
        assert time.monotonic() - started >= 0.5
        # Now b holds it.
        assert one(a, "SELECT pg_try_advisory_lock(42)") is False
        assert one(b, "SELECT pg_advisory_unlock(42)") is True
        assert one(a, "SELECT pg_try_advisory_lock(42)") is True
        assert one(a, "SELECT pg_advisory_unlock(42)") is True


def test_shared_and_exclusive(server):
    with connect(server) as a, connect(server) as b, connect(server) as c:
        assert one(a, "SELECT pg_try_advisory_lock_shared(7)") is True
        assert one(b, "SELECT pg_try_advisory_lock_shared(7)") is True
        assert one(c, "SELECT pg_try_advisory_lock(7)") is False
        assert one(a, "SELECT pg_advisory_unlock_shared(7)") is True
        assert one(c, "SELECT pg_try_advisory_lock(7)") is False
        assert one(b, "SELECT pg_advisory_unlock_shared(7)") is True
        assert one(c, "SELECT pg_try_advisory_lock(7)") is True
        assert one(a, "SELECT pg_try_advisory_lock_shared(7)") is False
        # Two-key locks are a key space of their own.
        assert one(a, "SELECT pg_try_advisory_lock(0, 7)") is True
        c.execute("SELECT pg_advisory_unlock_all()")
        a.execute("SELECT pg_advisory_unlock_all()")


def test_session_end_releases_its_locks(server):
    with connect(server) as b:
        a = connect(server)
        one(a, "SELECT pg_advisory_lock(43)")
        one(a, "SELECT pg_advisory_lock_shared(44)")
        a.execute("BEGIN")
        one(a, "SELECT pg_advisory_xact_lock(45)")
        assert one(b, "SELECT pg_try_advisory_lock(43)") is False
        assert one(b, "SELECT pg_try_advisory_lock(45)") is False
        a.close()
        assert eventually(lambda: one(b, "SELECT pg_try_advisory_lock(43)"))
        assert one(b, "SELECT pg_try_advisory_lock(44)") is True
        assert one(b, "SELECT pg_try_advisory_lock(45)") is True
        b.execute("SELECT pg_advisory_unlock_all()")


@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
def test_transaction_locks_end_with_the_transaction(server, end):
    with connect(server) as a, connect(server) as b:
        a.execute("BEGIN")
        one(a, "SELECT pg_advisory_xact_lock(46)")
        assert one(a, "SELECT pg_try_advisory_xact_lock_shared(47)") is True
        assert one(b, "SELECT pg_try_advisory_lock(46)") is False
        assert one(b, "SELECT pg_try_advisory_lock(47)") is False
        assert one(b, "SELECT pg_try_advisory_lock_shared(47)") is True
        b.execute("SELECT pg_advisory_unlock_all()")
        a.execute(end)
        assert one(b, "SELECT pg_try_advisory_lock(46)") is True
        assert one(b, "SELECT pg_try_advisory_lock(47)") is True
        b.execute("SELECT pg_advisory_unlock_all()")


def test_statement_is_the_transaction_outside_a_block(server):
    with connect(server) as a, connect(server) as b:
        one(a, "SELECT pg_advisory_xact_lock(48)")
        assert one(b, "SELECT pg_try_advisory_lock(48)") is True
        # A waiting xact lock outside a block is released when its statement ends.
        thread, outcome = in_thread(lambda: one(a, "SELECT pg_advisory_xact_lock(48)"))
        time.sleep(0.3)
        assert thread.is_alive()
        assert one(b, "SELECT pg_advisory_unlock(48)") is True
        thread.join(10)
        assert "error" not in outcome, outcome
        assert one(b, "SELECT pg_try_advisory_lock(48)") is True
        b.execute("SELECT pg_advisory_unlock_all()")


def test_lock_wait_is_cancelled(server):
    with connect(server) as a, connect(server) as b:
        one(a, "SELECT pg_advisory_lock(49)")
        timer = threading.Timer(0.5, b.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as info:
                b.execute("SELECT pg_advisory_lock(49)")
        finally:
            timer.cancel()
        assert info.value.sqlstate == "57014"
        assert time.monotonic() - started < 10
        # The cancelled waiter holds nothing and waits for nothing.
        assert one(a, "SELECT pg_advisory_unlock(49)") is True
        assert one(a, "SELECT pg_try_advisory_lock(49)") is True
        assert one(b, "SELECT pg_try_advisory_lock(49)") is False
        a.execute("SELECT pg_advisory_unlock_all()")


def test_lock_timeout(server):
    with connect(server) as a, connect(server) as b:
        one(a, "SELECT pg_advisory_lock(50)")
        b.execute("SET lock_timeout = '200ms'")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable) as info:
            b.execute("SELECT pg_advisory_lock(50)")
        assert info.value.sqlstate == "55P03"
        assert time.monotonic() - started < 5
        b.execute("RESET lock_timeout")
        assert one(b, "SELECT 1") == 1
        a.execute("SELECT pg_advisory_unlock_all()")


def test_statement_timeout_ends_a_lock_wait(server):
    with connect(server) as a, connect(server) as b:
        one(a, "SELECT pg_advisory_lock(51)")
        b.execute("SET statement_timeout = '200ms'")
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            b.execute("SELECT pg_advisory_lock(51)")
        assert info.value.sqlstate == "57014"
        b.execute("RESET statement_timeout")
        a.execute("SELECT pg_advisory_unlock_all()")


def test_deadlock_is_detected(server):
    def lock(conn, key):
        try:
            one(conn, f"SELECT pg_advisory_lock({key})")
            return "locked"
        except psycopg.errors.DeadlockDetected as e:
            # Session locks outlive the failed statement: let the other session go on.
            conn.execute("SELECT pg_advisory_unlock_all()")
            return e.sqlstate

    with connect(server) as a, connect(server) as b:
        one(a, "SELECT pg_advisory_lock(61)")
        one(b, "SELECT pg_advisory_lock(62)")
        thread, outcome = in_thread(lambda: lock(a, 62))
        time.sleep(0.3)
        b_result = lock(b, 61)
        thread.join(10)
        # Floe fails the wait that closes the cycle (b's); PostgreSQL the one whose deadlock
        # check runs first (a's, after deadlock_timeout).
        assert sorted([b_result, outcome.get("result")]) == ["40P01", "locked"], outcome
        a.execute("SELECT pg_advisory_unlock_all()")
        b.execute("SELECT pg_advisory_unlock_all()")


def test_pg_sleep_is_cancelled(server):
    with connect(server) as c, connect(server) as other:
        timer = threading.Timer(0.5, c.cancel)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(psycopg.errors.QueryCanceled) as info:
                c.execute("SELECT pg_sleep(30)")
        finally:
            timer.cancel()
        assert info.value.sqlstate == "57014"
        assert "user request" in str(info.value)
        assert time.monotonic() - started < 10
        assert one(c, "SELECT 1") == 1
        assert one(other, "SELECT 2") == 2


def test_pg_sleep_times_out(server):
    with connect(server) as c:
        c.execute("SET statement_timeout = '200ms'")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            c.execute("SELECT pg_sleep(30)")
        assert "statement timeout" in str(info.value)
        assert time.monotonic() - started < 10
        c.execute("RESET statement_timeout")
        # Extended protocol, binary results: void is an empty value (psycopg has no loader
        # for it, so the raw bytes).
        assert c.execute("SELECT pg_sleep(0.01)", binary=True).fetchone() == (b"",)


def test_pg_sleep_sleeps_without_holding_up_others(server):
    with connect(server) as c, connect(server) as other:
        started = time.monotonic()
        thread, outcome = in_thread(lambda: one(c, "SELECT pg_sleep(1)"))
        for _ in range(20):
            assert one(other, "SELECT 1") == 1
        assert time.monotonic() - started < 0.9
        thread.join(10)
        assert outcome == {"result": ""}
        assert time.monotonic() - started >= 1.0


def test_void_is_void(server):
    with connect(server) as c:
        cur = c.execute("SELECT pg_sleep(0), pg_advisory_unlock_all()")
        assert [d.type_code for d in cur.description] == [2278, 2278]
        assert [d.name for d in cur.description] == ["pg_sleep", "pg_advisory_unlock_all"]


def test_set_config_then_next_statement(server):
    with connect(server) as c:
        assert one(c, "SELECT set_config('search_path', %s, false)", ("pg_catalog, public",)) \
            == "pg_catalog, public"
        assert one(c, "SHOW search_path") == "pg_catalog, public"
        c.execute("SELECT set_config('application_name', 'from_set_config', false)")
        # A reported parameter: the driver hears of the change (ParameterStatus).
        assert c.info.parameter_status("application_name") == "from_set_config"
        c.execute("RESET ALL")


def test_asyncpg_pool_and_transactions(server, loop):
    async def go():
        pool = await asyncpg.create_pool(
            host=server.host, port=server.port, user="postgres", database="postgres",
            min_size=1, max_size=2,
        )
        try:
            async with pool.acquire() as con:
                async with con.transaction():
                    await con.execute("SELECT pg_advisory_xact_lock(70)")
                    assert await con.fetchval("SELECT 1") == 1
                await con.execute("SELECT pg_advisory_lock(71)")
                await con.execute("SET application_name = 'leaked'")
                pid = await con.fetchval("SELECT pg_backend_pid()")
            # Release ran pg_advisory_unlock_all() and RESET ALL.
            async with pool.acquire() as con:
                assert await con.fetchval("SELECT pg_backend_pid()") == pid
                assert await con.fetchval("SHOW application_name") == ""
                async with pool.acquire() as other:
                    assert await other.fetchval("SELECT pg_try_advisory_lock(71)") is True
                    assert await other.fetchval("SELECT pg_try_advisory_lock(70)") is True
                    await other.execute("SELECT pg_advisory_unlock_all()")
                # Parameters of the lock functions, as asyncpg binds them.
                assert await con.fetchval("SELECT pg_try_advisory_lock($1)", 72) is True
                assert await con.fetchval("SELECT pg_advisory_unlock($1)", 72) is True
                assert await con.fetchval("SELECT pg_try_advisory_lock($1, $2)", 1, 2) is True
                assert await con.fetchval("SELECT pg_advisory_unlock($1, $2)", 1, 2) is True
                assert await con.fetchval("SELECT pg_sleep(0)") is None
        finally:
            await asyncio.wait_for(pool.close(), 10)

    loop.run_until_complete(go())


def test_sqlalchemy_connects_and_queries(server):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://postgres@{server.host}:{server.port}/postgres"
    )
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT 1 + 1")).scalar() == 2
            assert conn.execute(
                sqlalchemy.text("SELECT CAST(:x AS int) * 2"), {"x": 21}
            ).scalar() == 42
    finally:
        engine.dispose()

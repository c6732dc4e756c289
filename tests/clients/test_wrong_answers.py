"""Answers that once differed from PostgreSQL's where a driver sees them (issue 15): parameter
types of prepared INSERT/UPDATE, integer overflow over the extended protocol, multi-byte text
at a query's start on both protocols, lock_timeout and client_min_messages. Every test passes
on PostgreSQL 15 too (FLOE_CLIENT_TARGET=postgres)."""

import asyncpg
import psycopg
import pytest


@pytest.fixture
def conn(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        yield c


@pytest.fixture
def aconn(server, loop):
    c = loop.run_until_complete(
        asyncpg.connect(host=server.host, port=server.port, user="postgres", database="postgres")
    )
    yield c
    loop.run_until_complete(c.close())


def test_insert_parameters_take_the_column_types(server, loop, aconn):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS wa_params")
        c.execute("CREATE TABLE wa_params (id int PRIMARY KEY, name text, amount bigint)")

    async def go():
        insert = await aconn.prepare("INSERT INTO wa_params VALUES ($1, $2, $3)")
        assert [t.name for t in insert.get_parameters()] == ["int4", "text", "int8"]
        await insert.fetch(1, "one", 10)
        named = await aconn.prepare("INSERT INTO wa_params (amount, id) VALUES ($1, $2)")
        assert [t.name for t in named.get_parameters()] == ["int8", "int4"]
        await named.fetch(20, 2)
        update = await aconn.prepare("UPDATE wa_params SET amount = $1 WHERE id = $2")
        assert [t.name for t in update.get_parameters()] == ["int8", "int4"]
        await update.fetch(30, 2)
        select = await aconn.prepare("SELECT name FROM wa_params WHERE id = $1")
        assert [t.name for t in select.get_parameters()] == ["int4"]
        return await aconn.fetch("SELECT id, name, amount FROM wa_params ORDER BY id")

    rows = loop.run_until_complete(go())
    assert [tuple(r) for r in rows] == [(1, "one", 10), (2, None, 30)]


@pytest.mark.parametrize("prepare", [False, True])
def test_integer_overflow_is_an_error(conn, prepare):
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        conn.execute("SELECT %s::int4 + 1", [2147483647], prepare=prepare)
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        conn.execute("SELECT %s::int8 * 2", [9223372036854775807], prepare=prepare)
    assert conn.execute("SELECT %s::int4 - 1", [2147483647], prepare=prepare).fetchone() == (
        2147483646,
    )


@pytest.mark.parametrize("prepare", [False, True])
@pytest.mark.parametrize("sql", ["-- über\nSELECT 1", "/* ü */ SELECT 1", "/*日本*/SELECT 1"])
def test_multi_byte_text_at_the_start(conn, sql, prepare):
    assert conn.execute(sql, prepare=prepare).fetchone() == (1,)


def test_multi_byte_text_at_the_start_asyncpg(loop, aconn):
    assert loop.run_until_complete(aconn.fetchval("-- über\nSELECT 1")) == 1
    assert loop.run_until_complete(aconn.fetchval("/* ü */ SELECT $1::int4", 2)) == 2


def test_lock_timeout_ends_a_lock_wait(server):
    with psycopg.connect(server.dsn, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS wa_locks")
        setup.execute("CREATE TABLE wa_locks (id int PRIMARY KEY, v int)")
        setup.execute("INSERT INTO wa_locks VALUES (1, 0)")
    with psycopg.connect(server.dsn) as holder, psycopg.connect(server.dsn) as waiter:
        holder.execute("UPDATE wa_locks SET v = 1 WHERE id = 1")
        waiter.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable) as info:
            waiter.execute("UPDATE wa_locks SET v = 2 WHERE id = 1")
        assert "lock timeout" in str(info.value)
        waiter.rollback()
        holder.commit()
        # Without the competition the same statement goes through.
        waiter.execute("UPDATE wa_locks SET v = 2 WHERE id = 1")
        waiter.commit()
        assert waiter.execute("SELECT v FROM wa_locks WHERE id = 1").fetchone() == (2,)


def test_client_min_messages_filters_notices(conn):
    seen = []
    conn.add_notice_handler(lambda diag: seen.append(diag.severity))
    conn.execute("COMMIT")  # WARNING: there is no transaction in progress
    assert seen == ["WARNING"]
    conn.execute("SET client_min_messages = error")
    conn.execute("COMMIT")
    assert seen == ["WARNING"]
    conn.execute("RESET client_min_messages")
    conn.execute("COMMIT")
    assert seen == ["WARNING", "WARNING"]


def test_multi_statement_query_is_one_transaction(conn):
    conn.execute("DROP TABLE IF EXISTS wa_multi")
    conn.execute("CREATE TABLE wa_multi (id int PRIMARY KEY)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO wa_multi VALUES (1); INSERT INTO wa_multi VALUES (1)")
    assert conn.execute("SELECT count(*) FROM wa_multi").fetchone() == (0,)
    conn.execute("INSERT INTO wa_multi VALUES (1); INSERT INTO wa_multi VALUES (2)")
    assert conn.execute("SELECT count(*) FROM wa_multi").fetchone() == (2,)


@pytest.mark.parametrize("prepare", [False, True])
def test_statements_that_once_panicked_keep_the_connection(conn, prepare):
    # lpad with a negative length made a library panic; whatever the answer, the connection
    # answers the next statement.
    conn.execute("DROP TABLE IF EXISTS wa_panic")
    conn.execute("CREATE TABLE wa_panic (s text)")
    conn.execute("INSERT INTO wa_panic VALUES ('x')")
    try:
        conn.execute("SELECT lpad('a', -1, s) FROM wa_panic", prepare=prepare).fetchall()
    except psycopg.Error as e:
        assert e.sqlstate, e
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_idle_in_transaction_timeout_ends_the_session(server):
    """A session idle inside a transaction block past idle_in_transaction_session_timeout is
    ended with FATAL 25P03: its writes are rolled back and its row locks released at once."""
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS wa_idle")
        c.execute("CREATE TABLE wa_idle (id int PRIMARY KEY, v int)")
        c.execute("INSERT INTO wa_idle VALUES (1, 0)")
    idle = psycopg.connect(server.dsn, autocommit=True)
    idle.execute("SET idle_in_transaction_session_timeout = '300ms'")
    idle.execute("BEGIN")
    idle.execute("UPDATE wa_idle SET v = 1 WHERE id = 1")
    idle.execute("INSERT INTO wa_idle VALUES (2, 2)")
    with psycopg.connect(server.dsn, autocommit=True) as other:
        # Waits for the row lock, which the timeout releases.
        other.execute("SET lock_timeout = '5s'")
        other.execute("UPDATE wa_idle SET v = 10 WHERE id = 1")
        assert other.execute("SELECT id, v FROM wa_idle ORDER BY id").fetchall() == [(1, 10)]
    with pytest.raises(psycopg.Error) as err:
        idle.execute("SELECT 1")
    assert "idle-in-transaction timeout" in str(err.value)
    assert idle.closed or idle.broken
    idle.close()


def test_idle_in_transaction_timeout_spares_other_sessions(server):
    """Idle outside a transaction block, or with the setting 0, a session lives on."""
    import time

    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("SET idle_in_transaction_session_timeout = '200ms'")
        time.sleep(0.6)
        assert c.execute("SELECT 1").fetchone() == (1,)
        c.execute("BEGIN")
        c.execute("SELECT 1")
        for _ in range(4):
            time.sleep(0.1)
            assert c.execute("SELECT 2").fetchone() == (2,)
        c.execute("COMMIT")
        c.execute("SET idle_in_transaction_session_timeout = 0")
        c.execute("BEGIN")
        time.sleep(0.5)
        assert c.execute("SELECT 3").fetchone() == (3,)
        c.execute("COMMIT")


@pytest.mark.parametrize("prepare", [False, True])
def test_select_without_columns_returns_rows(conn, prepare):
    """`SELECT FROM …` returns rows of no columns; over the extended protocol it is described
    by an empty RowDescription (not NoData), as PostgreSQL does (found by test_fuzz)."""
    cur = conn.cursor()
    cur.execute("SELECT FROM generate_series(1, 3) AS g(x) WHERE x > 1", prepare=prepare)
    assert cur.description == []
    assert cur.fetchall() == [(), ()]


def test_select_without_columns_asyncpg(loop, aconn):
    rows = loop.run_until_complete(aconn.fetch("SELECT FROM generate_series(1, 2)"))
    assert len(rows) == 2 and all(len(r) == 0 for r in rows)


def test_char_n_is_padded_in_output(conn):
    conn.execute("DROP TABLE IF EXISTS wa_char")
    conn.execute("CREATE TABLE wa_char (id int PRIMARY KEY, c char(5), d char)")
    conn.execute("INSERT INTO wa_char VALUES (1, 'ab', 'x'), (2, 'ab   ', NULL), (3, 'äb', ' ')")
    rows = conn.execute("SELECT id, c, d FROM wa_char ORDER BY id").fetchall()
    assert rows == [(1, "ab   ", "x"), (2, "ab   ", None), (3, "äb   ", " ")]
    with conn.cursor(binary=True) as cur:
        cur.execute("SELECT c FROM wa_char WHERE id = %s", [1])
        assert cur.fetchone() == ("ab   ",)
    assert conn.execute("SELECT 'ab'::char(4), 'x'::char, c::text FROM wa_char WHERE id = 1").fetchone() == (
        "ab  ",
        "x",
        "ab",
    )
    with conn.cursor() as cur:
        with cur.copy("COPY wa_char TO STDOUT") as copy:
            out = b"".join(bytes(block) for block in copy)
    assert out.decode() == "1\tab   \tx\n2\tab   \t\\N\n3\täb   \t \n"
    conn.execute("DROP TABLE wa_char")

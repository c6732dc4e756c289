"""numeric through real drivers: psycopg (text and binary) gets `Decimal`s with the exact
scale PostgreSQL prints, asyncpg (binary NUMERIC send/recv) round-trips wide values, NaN and
±Infinity, and COPY carries numerics in and out unchanged."""

from decimal import Decimal

import asyncpg
import psycopg
import pytest

from typecases import same

VALUES = [
    Decimal("1.50"),
    Decimal("-0.005"),
    Decimal("0"),
    Decimal("0.000"),
    Decimal("12345678901234567890.123456789"),
    Decimal("-" + "9" * 60 + "." + "1" * 30),
    Decimal("1" + "0" * 40),
]


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS num_clients")
        c.execute("CREATE TABLE num_clients (id int PRIMARY KEY, n numeric, p numeric(10,2))")
        yield c


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_results_keep_the_scale(conn, binary):
    cur = conn.cursor(binary=binary)
    cur.execute(
        "SELECT 1.50::numeric, 1::numeric / 3, avg(x), 2.5::numeric(10,3), 'NaN'::numeric "
        "FROM (VALUES (1), (2)) v(x)"
    )
    row = cur.fetchone()
    want = [Decimal("1.50"), Decimal("0.33333333333333333333"), Decimal("1.5000000000000000"),
            Decimal("2.500")]
    assert all(same(g, w) for g, w in zip(row, want)), row
    assert row[4].is_nan()


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_stores_and_reads_back_exact_values(conn, binary):
    conn.execute("DELETE FROM num_clients")
    cur = conn.cursor(binary=binary)
    for i, value in enumerate(VALUES):
        cur.execute("INSERT INTO num_clients (id, n) VALUES (%s, %s)", [i, value])
    cur.execute("SELECT n FROM num_clients ORDER BY id")
    got = [r[0] for r in cur.fetchall()]
    bad = [(w, g) for w, g in zip(VALUES, got) if not same(g, w)]
    assert not bad, bad
    cur.execute("SELECT n FROM num_clients ORDER BY n")
    assert [r[0] for r in cur.fetchall()] == sorted(VALUES)
    cur.execute("SELECT id FROM num_clients WHERE n = %s", [Decimal("1.5")])
    assert cur.fetchall() == [(0,)]


def test_psycopg_typmod_rounds_and_overflows(conn):
    conn.execute("DELETE FROM num_clients")
    conn.execute("INSERT INTO num_clients (id, p) VALUES (1, %s)", [Decimal("1.005")])
    assert conn.execute("SELECT p FROM num_clients").fetchone()[0] == Decimal("1.01")
    with pytest.raises(psycopg.errors.NumericValueOutOfRange):
        conn.execute("INSERT INTO num_clients (id, p) VALUES (2, %s)", [Decimal("123456789.5")])
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1::numeric / 0")


def test_copy_round_trips_numerics(conn):
    conn.execute("DELETE FROM num_clients")
    rows = [(i, v, Decimal("3.25")) for i, v in enumerate(VALUES)]
    rows.append((len(VALUES), Decimal("NaN"), None))
    cur = conn.cursor()
    with cur.copy("COPY num_clients (id, n, p) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    out = []
    with cur.copy("COPY num_clients (id, n, p) TO STDOUT") as copy:
        for row in copy.rows():
            out.append(row)
    text = [(str(i), str(n) if not n.is_nan() else "NaN", None if p is None else str(p))
            for i, n, p in rows]
    assert out == text


def test_asyncpg_binary_numerics(server, loop):
    async def go():
        c = await asyncpg.connect(host=server.host, port=server.port, user="postgres",
                                  database="postgres")
        try:
            for value in [*VALUES, Decimal("Infinity"), Decimal("-Infinity")]:
                got = await c.fetchval("SELECT $1::numeric", value)
                # asyncpg decodes whole numbers with trailing zero digit groups as 1E+40, on
                # PostgreSQL too: those compare by value.
                whole = value.is_finite() and value == value.to_integral_value()
                assert same(got, value, numeric_scale=not whole), (value, got)
            got = await c.fetchval("SELECT $1::numeric", Decimal("NaN"))
            assert got.is_nan()
            # A parameter compared with a numeric is described as numeric.
            await c.execute("DELETE FROM num_clients")
            await c.executemany("INSERT INTO num_clients (id, n) VALUES ($1, $2)",
                                [(1, Decimal("2.50")), (2, Decimal("-1"))])
            assert await c.fetchval("SELECT id FROM num_clients WHERE n = $1",
                                    Decimal("2.5")) == 1
            total = await c.fetchval("SELECT sum(n) FROM num_clients")
            assert same(total, Decimal("1.50"))
            avg = await c.fetchval("SELECT avg(n) FROM num_clients")
            assert same(avg, Decimal("0.75000000000000000000"))
        finally:
            await c.close()

    loop.run_until_complete(go())


@pytest.mark.parametrize("binary", [False, True])
def test_nan_into_typmod_columns_through_parameters(server, binary):
    """PostgreSQL stores NaN in numeric(p, s); so does Floe (the column becomes a wide numeric
    on its first NaN), whether the NaN comes as a numeric or a float parameter."""
    with psycopg.connect(server.dsn, autocommit=True) as c:
        table = f"num_nan_{int(binary)}"
        c.execute(f"DROP TABLE IF EXISTS {table}")
        c.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, p numeric(10,2), q numeric(5,1))")
        cur = c.cursor(binary=binary)
        insert = f"INSERT INTO {table} VALUES (%s, %s, %s)"
        cur.execute(insert, [1, Decimal("1.005"), Decimal("2")])
        cur.execute(insert, [2, Decimal("NaN"), Decimal("3")])
        cur.execute(insert, [3, float("nan"), 4.25])
        cur.execute(f"UPDATE {table} SET q = %s WHERE id = %s", [Decimal("NaN"), 1])
        with c.transaction():
            cur.executemany(insert, [(4, Decimal("4.5"), Decimal("NaN")), (5, None, None)])
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            cur.execute(insert, [6, Decimal("123456789.5"), None])
        rows = cur.execute(f"SELECT id, p, q FROM {table} ORDER BY id").fetchall()
        text = [(i, str(p) if p is not None else None, str(q) if q is not None else None)
                for i, p, q in rows]
        assert text == [(1, "1.01", "NaN"), (2, "NaN", "3.0"), (3, "NaN", "4.3"),
                        (4, "4.50", "NaN"), (5, None, None)]
        assert cur.execute(f"SELECT id FROM {table} WHERE p = %s ORDER BY id",
                           [Decimal("NaN")]).fetchall() == [(2,), (3,)]


def test_copy_nan_into_a_typmod_column_after_the_first_chunk(server):
    """A COPY whose NaN comes after rows already written (Floe converts 16k rows at a time)
    keeps every row, also inside a block."""
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS num_nan_copy")
        c.execute("CREATE TABLE num_nan_copy (id int PRIMARY KEY, p numeric(12,2))")
        rows = [(i, Decimal(i) + Decimal("0.5")) for i in range(20000)]
        rows[18000] = (18000, Decimal("NaN"))
        cur = c.cursor()
        with cur.copy("COPY num_nan_copy FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        assert cur.execute("SELECT count(*), count(p) FROM num_nan_copy").fetchone() == (
            20000, 20000)
        got = cur.execute("SELECT p FROM num_nan_copy WHERE id IN (17999, 18000) ORDER BY id")
        assert [str(r[0]) for r in got.fetchall()] == ["17999.50", "NaN"]
        c.execute("DROP TABLE num_nan_copy")
        c.execute("CREATE TABLE num_nan_copy (id int PRIMARY KEY, p numeric(12,2))")
        with c.transaction():
            with cur.copy("COPY num_nan_copy FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            assert cur.execute("SELECT count(p) FROM num_nan_copy").fetchone() == (20000,)
        assert cur.execute("SELECT max(p) FROM num_nan_copy").fetchone()[0].is_nan()


def test_asyncpg_nan_into_a_typmod_column(server, loop):
    async def go():
        c = await asyncpg.connect(host=server.host, port=server.port, user="postgres",
                                  database="postgres")
        try:
            await c.execute("DROP TABLE IF EXISTS num_nan_async")
            await c.execute("CREATE TABLE num_nan_async (id int PRIMARY KEY, p numeric(8,3))")
            async with c.transaction():
                await c.executemany("INSERT INTO num_nan_async VALUES ($1, $2)",
                                    [(1, Decimal("1.5")), (2, Decimal("NaN")),
                                     (3, Decimal("-2.0005"))])
            rows = await c.fetch("SELECT id, p FROM num_nan_async ORDER BY p")
            assert [r["id"] for r in rows] == [3, 1, 2]
            assert rows[2]["p"].is_nan() and str(rows[0]["p"]) == "-2.001"
        finally:
            await c.close()

    loop.run_until_complete(go())


def test_asyncpg_describes_set_operations_mixing_integers_and_numerics(server, loop):
    """A Describe tells the type rows come in: an integer column UNION a numeric is numeric
    (Floe described it as integer and sent numerics, which asyncpg could not decode)."""
    async def go():
        c = await asyncpg.connect(host=server.host, port=server.port, user="postgres",
                                  database="postgres")
        try:
            await c.execute("DROP TABLE IF EXISTS num_setops")
            await c.execute("CREATE TABLE num_setops (a int4)")
            await c.execute("INSERT INTO num_setops VALUES (1), (3)")
            for sql, want in [
                ("SELECT a FROM num_setops UNION ALL SELECT 1e40 EXCEPT SELECT 3",
                 [Decimal("1"), Decimal("1E+40")]),
                ("SELECT a FROM num_setops EXCEPT SELECT 1e40", [Decimal("1"), Decimal("3")]),
                ("SELECT * FROM (VALUES (1), (2.5::numeric)) v", [Decimal("1"), Decimal("2.5")]),
            ]:
                stmt = await c.prepare(sql)
                assert [a.type.name for a in stmt.get_attributes()] == ["numeric"], sql
                assert sorted(r[0] for r in await stmt.fetch()) == want, sql
        finally:
            await c.close()

    loop.run_until_complete(go())

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

"""asyncpg: binary format for every parameter and result, statements prepared and cached by the
driver, and the types the server declares for parameters and columns (Describe)."""

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import asyncpg
import pytest

from conftest import floe_xfail
from typecases import ARRAYS, SCALARS, SCALED_NUMERICS, WIDE_TIMESTAMPS, same


# asyncpg has codecs of its own for a few array types; for the others it asks the server with
# its type introspection query over pg_catalog.pg_type (and pg_range, pg_namespace, …), which
# needs `array_agg(atttypid)` to be `oid[]` (as `int4[]` asyncpg recursed forever).

# json keeps its text exactly; jsonb's text is normalised, so these are already in that form.
JSON_TEXTS = ['{"b": 1,  "a" : [1,2, {"x": null}]}', "[]", '"str ✓"', "123", "-1.25e3", "null",
              "true", '  {"k": "v"}  ']
JSONB_TEXTS = ['{"a": 1, "b": [true, null, "x"], "cc": {"d": 1.5}}', "[]", "{}", '"str ✓"',
               "123", "null", "[1, [2, [3, {\"k\": \"v\"}]]]"]


@pytest.fixture(scope="module")
def conn(server, loop):
    c = loop.run_until_complete(
        asyncpg.connect(host=server.host, port=server.port, user="postgres", database="postgres")
    )
    yield c
    loop.run_until_complete(c.close())


@pytest.fixture(scope="module")
def run(loop):
    return loop.run_until_complete


def check_roundtrip(run, conn, sql_type, values, numeric_scale=False):
    """Numerics compare by value here; test_numeric_keeps_its_scale checks the scale."""

    async def go():
        bad = []
        for value in [*values, None]:
            got = await conn.fetchval(f"SELECT $1::{sql_type} AS v", value)
            if not same(got, value, numeric_scale):
                bad.append((value, got))
        return bad

    bad = run(go())
    assert not bad, f"{sql_type}: (sent, received) pairs that differ: {bad!r}"


@pytest.mark.parametrize("sql_type", SCALARS)
def test_scalar_roundtrip(run, conn, sql_type):
    check_roundtrip(run, conn, sql_type, SCALARS[sql_type])


@pytest.mark.parametrize("sql_type", list(ARRAYS))
def test_array_roundtrip(run, conn, sql_type):
    check_roundtrip(run, conn, sql_type, ARRAYS[sql_type])


def test_numeric_keeps_its_scale(run, conn):
    check_roundtrip(run, conn, "numeric", SCALED_NUMERICS, numeric_scale=True)


@pytest.mark.parametrize("sql_type", WIDE_TIMESTAMPS)
def test_timestamps_beyond_the_nanosecond_range(run, conn, sql_type):
    # asyncpg sends datetime.min/max as -infinity/infinity, so year 1 and 9999 stay clear of them
    values = [v for v in WIDE_TIMESTAMPS[sql_type] if v.replace(tzinfo=None) not in
              (datetime.min, datetime.max)]
    check_roundtrip(run, conn, sql_type, values)


@pytest.mark.parametrize(
    "sql_type,values",
    [("date", [date.max, date.min]), ("timestamp", [datetime.max, datetime.min]),
     ("timestamptz", [datetime.max.replace(tzinfo=timezone.utc),
                      datetime.min.replace(tzinfo=timezone.utc)])],
)
def test_infinity(run, conn, sql_type, values):
    async def go():
        return [await conn.fetchval(f"SELECT $1::{sql_type}", v) for v in values]

    got = run(go())
    # asyncpg decodes an infinite timestamptz to a naive datetime.max/min
    strip = [g.replace(tzinfo=None) if isinstance(g, datetime) else g for g in got]
    assert strip == [v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in values]


def test_json_roundtrip_keeps_text(run, conn):
    check_roundtrip(run, conn, "json", JSON_TEXTS)


def test_jsonb_roundtrip(run, conn):
    check_roundtrip(run, conn, "jsonb", JSONB_TEXTS)


def test_many_columns_one_row(run, conn):
    types = list(SCALARS)
    args = [SCALARS[t][1] for t in types]
    query = "SELECT " + ", ".join(f"${i + 1}::{t}" for i, t in enumerate(types))
    row = run(conn.fetchrow(query, *args))
    bad = [(t, a, g) for t, a, g in zip(types, args, row) if not same(g, a, numeric_scale=False)]
    assert not bad


def test_statement_cache_rebinds(run, conn):
    """asyncpg caches the named statement and binds it again with new values."""

    async def go():
        for i in range(50):
            assert await conn.fetchrow("SELECT $1::int8 * 2 AS a, $2::text AS b", i, str(i)) == (
                i * 2,
                str(i),
            )

    run(go())


def test_explicit_prepare_and_fetch_rows(run, conn):
    async def go():
        stmt = await conn.prepare(
            "SELECT g, g::text AS t FROM generate_series(1, 500) AS g WHERE g <= $1::int4"
        )
        rows = await stmt.fetch(500)
        assert [tuple(r) for r in rows] == [(i, str(i)) for i in range(1, 501)]
        assert await stmt.fetchval(3) == 1
        assert len(await stmt.fetch(0)) == 0

    run(go())


def test_parameter_in_table_function(run, conn):
    async def go():
        stmt = await conn.prepare("SELECT g FROM generate_series(1, $1::int4) AS g")
        first = [r[0] for r in await stmt.fetch(3)]
        again = [r[0] for r in await stmt.fetch(2)]
        untyped = await conn.prepare("SELECT g FROM generate_series($2::int4, $1) AS g")
        params = [t.name for t in untyped.get_parameters()]
        return first, again, params, [r[0] for r in await untyped.fetch(6, 4)]

    assert run(go()) == ([1, 2, 3], [1, 2], ["int4", "int4"], [4, 5, 6])


def test_cursor_fetches_in_batches(run, conn):
    """Execute with a row limit (PortalSuspended), then continue the portal."""

    async def go():
        async with conn.transaction():
            total = 0
            async for record in conn.cursor(
                "SELECT g FROM generate_series(1, 1000) AS g", prefetch=64
            ):
                total += record["g"]
        return total

    assert run(go()) == 500500


def test_executemany(run, conn):
    run(conn.executemany("SELECT $1::int4, $2::text", [(i, str(i)) for i in range(20)]))
    assert run(conn.fetchval("SELECT 1")) == 1


# Parameter and column types the server declares (ParameterDescription, RowDescription), as
# PostgreSQL 15 reports them.
DESCRIBE = [
    ("SELECT $1::int4 AS a, $2::text AS b", ["int4", "text"], [("a", "int4"), ("b", "text")]),
    ("SELECT $1::int4 + $2", ["int4", "int4"], [("?column?", "int4")]),
    ("SELECT $1::date < $2", ["date", "date"], [("?column?", "bool")]),
    ("SELECT $1 || 'x'", ["text"], [("?column?", "text")]),
    ("SELECT $1 = 'a'::text", ["text"], [("?column?", "bool")]),
    ("SELECT $1::numeric * $2", ["numeric", "numeric"], [("?column?", "numeric")]),
    ("SELECT $1", ["text"], [("?column?", "text")]),
    ("SELECT $1::timestamptz - $2", ["timestamptz", "timestamptz"], [("?column?", "interval")]),
    ("SELECT $1::text[] || $2", ["text[]", "text[]"], [("?column?", "text[]")]),
    ("SELECT array_length($1::int4[], 1)", ["int4[]"], [("array_length", "int4")]),
    ("SELECT $1::uuid AS u, $2::jsonb AS j, $3::bytea AS b", ["uuid", "jsonb", "bytea"],
     [("u", "uuid"), ("j", "jsonb"), ("b", "bytea")]),
    ("SELECT $1::float4 AS r, $2::int2 AS s, $3::varchar AS v",
     ["float4", "int2", "varchar"], [("r", "float4"), ("s", "int2"), ("v", "varchar")]),
    ("SELECT $1::bpchar AS c", ["bpchar"], [("c", "bpchar")]),
    ("SELECT $1::time AS t, $2::timestamp AS ts, $3::interval AS i, $4::json AS j",
     ["time", "timestamp", "interval", "json"],
     [("t", "time"), ("ts", "timestamp"), ("i", "interval"), ("j", "json")]),
    ("SELECT atttypid AS t, 1::oid AS o FROM pg_attribute LIMIT 1", [],
     [("t", "oid"), ("o", "oid")]),
    ("SELECT array_agg(atttypid) AS a FROM pg_attribute", [], [("a", "oid[]")]),
    # nullif is of the type its first argument is compared as (varchar compares as text).
    ("SELECT nullif(v, 'x') AS a, nullif('x', v) AS b, nullif(u, u) AS c FROM "
     "(SELECT 'a'::varchar(5) AS v, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u) AS t", [],
     [("a", "text"), ("b", "text"), ("c", "uuid")]),
    # A cast takes the target's type, not the tagged source's (was varchar/oid).
    ("SELECT CAST(v AS int4) AS i, v::text AS t, CAST(v AS date) IS NULL AS n, "
     "oid::int8 AS o FROM (SELECT '12'::varchar(5) AS v, 1::oid AS oid WHERE false) AS x", [],
     [("i", "int4"), ("t", "text"), ("n", "bool"), ("o", "int8")]),
    ("SELECT array_agg(u ORDER BY u) AS u, array_agg(DISTINCT j) AS j, array_agg(v) AS v FROM "
     "(VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{}'::jsonb, 'x'::varchar)) "
     "AS t(u, j, v)", [], [("u", "uuid[]"), ("j", "jsonb[]"), ("v", "varchar[]")]),
    # A union of text and varchar is of its first input's type (the analyzer merged the tags).
    ("(SELECT NULL::text AS c) UNION (SELECT 'a'::varchar(3))", [], [("c", "text")]),
    ("(SELECT 'a'::varchar(3) AS c) UNION (SELECT 'x'::text)", [], [("c", "varchar")]),
    # Also where the text side is an expression (no tag) and the varchar side a column read
    # as another Arrow string type.
    ("SELECT CASE WHEN true THEN 'a' ELSE NULL::text END AS c UNION SELECT 'b'::varchar(8) "
     "ORDER BY 1 LIMIT 3", [], [("c", "text")]),
    ("SELECT upper('a') AS c UNION ALL SELECT relname::varchar FROM pg_class", [],
     [("c", "text")]),
    # A bare string literal is of unknown type: the next input's type decides, unless the
    # literal went through a derived table or DISTINCT (which resolve it to text).
    ("SELECT 'a_c' AS c UNION SELECT relname::varchar FROM pg_class", [], [("c", "varchar")]),
    ("SELECT d.c FROM (SELECT 'a' AS c) d UNION SELECT relname::varchar FROM pg_class", [],
     [("c", "text")]),
    ("(SELECT DISTINCT 'a' AS c) UNION (SELECT relname::varchar FROM pg_class)", [],
     [("c", "text")]),
    ("SELECT $1 + 1", ["int4"], [("?column?", "int4")]),
    ("SELECT $1 > 3000000000", ["int8"], [("?column?", "bool")]),
    ("SELECT $1 = $2 + 1", ["int4", "int4"], [("?column?", "bool")]),
    ("SELECT coalesce($1, 5::int4)", ["int4"], [("coalesce", "int4")]),
    ("SELECT nullif($1, 3) AS a, greatest($2, 2, 3) AS b", ["int4", "int4"],
     [("a", "int4"), ("b", "int4")]),
    ("SELECT length($1) AS l, upper($2) AS u, lpad($3, 5, '*') AS p", ["text", "text", "text"],
     [("l", "int4"), ("u", "text"), ("p", "text")]),
    ("SELECT array_append(ARRAY[1, 2], $1)", ["int4"], [("array_append", "int4[]")]),
    ("SELECT round($1, 2) AS r", ["numeric"], [("r", "numeric")]),
    ("SELECT $1 IN (1, 2) AS i, $2 BETWEEN 1 AND 5 AS b, $3 LIKE 'a%' AS l",
     ["int4", "int4", "text"], [("i", "bool"), ("b", "bool"), ("l", "bool")]),
    ("SELECT CASE WHEN true THEN $1 ELSE 5 END", ["int4"], [("case", "int4")]),
    ("SELECT 1 AS one LIMIT $1", ["int8"], [("one", "int4")]),
    ("SELECT g FROM generate_series(1, $1) AS g", ["int4"], [("g", "int4")]),
]


@pytest.mark.parametrize("query,params,columns", DESCRIBE)
def test_declared_types(run, conn, query, params, columns):
    stmt = run(conn.prepare(query))
    assert [t.name for t in stmt.get_parameters()] == params
    assert [(a.name, a.type.name) for a in stmt.get_attributes()] == columns
    assert all(t.schema == "pg_catalog" for t in stmt.get_parameters())


def test_untyped_parameters_where_the_server_infers_the_type(run, conn):
    async def go():
        assert await conn.fetchval("SELECT $1::int4 + $2", 40, 2) == 42
        assert await conn.fetchval("SELECT $1::date < $2", date(2024, 1, 1), date(2024, 1, 2))
        assert await conn.fetchval("SELECT $1 || 'x'", "ab") == "abx"
        assert await conn.fetchval("SELECT $1::numeric * $2", Decimal("1.5"), Decimal("2")) == (
            Decimal("3.0")
        )
        when = datetime(2024, 1, 1, tzinfo=timezone.utc)
        assert (await conn.fetchval("SELECT $1::timestamptz - $2", when, when)).total_seconds() == 0
        assert await conn.fetchval("SELECT $1", "plain") == "plain"
        assert await conn.fetchval("SELECT $1::text[] || $2::text[]", ["a"], ["b", None]) == [
            "a", "b", None
        ]

    run(go())


def test_array_parameter_type_is_introspected(run, conn):
    assert run(conn.fetchval("SELECT $1::int4[]", [1, None, 3])) == [1, None, 3]


def test_cast_of_a_tagged_column_is_sent_as_its_target_type(run, conn):
    """Binary int4 rows, not a varchar description of them."""
    assert run(conn.fetchval("SELECT CAST(v AS int4) FROM (SELECT '12'::varchar(5) AS v) x")) == 12


def test_oids_and_arrays_of_them(run, conn):
    """oid is unsigned (binary: 4 bytes); array_agg of it is oid[] (binary elements too)."""

    async def go():
        assert await conn.fetchval("SELECT 4294967295::oid") == 4294967295
        assert await conn.fetchval(
            "SELECT array_agg(x::oid ORDER BY x) FROM (VALUES (23), (1), (NULL)) AS t(x)"
        ) == [1, 23, None]
        oids = await conn.fetchval(
            "SELECT array_agg(atttypid ORDER BY attnum) FROM pg_attribute "
            "WHERE attrelid = 'pg_class'::regclass AND attnum = 1"
        )
        assert oids == [26]

    run(go())


def test_custom_codec_for_builtin_type(run, conn):
    """set_type_codec on a built-in type (asyncpg knows its OID without asking the server)."""

    async def go():
        await conn.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )
        try:
            return await conn.fetchval("SELECT $1::jsonb", {"a": [1, 2]})
        finally:
            await conn.reset_type_codec("jsonb", schema="pg_catalog")

    assert run(go()) == {"a": [1, 2]}


def test_transaction_commit_and_rollback(run, conn):
    async def go():
        async with conn.transaction():
            assert await conn.fetchval("SELECT $1::int4", 7) == 7
        tr = conn.transaction()
        await tr.start()
        await tr.rollback()
        assert await conn.fetchval("SELECT 1") == 1

    run(go())


def test_server_version(conn):
    assert conn.get_server_version().major >= 15

"""Differences the differential tester (tests/differential) found that a driver sees: result
column types (OIDs) and names, and the server's connection limit in SHOW max_connections. Every
test passes on PostgreSQL 15 too (FLOE_CLIENT_TARGET=postgres)."""

import os

import psycopg
import pytest

from conftest import TARGET
from servers import start_floe


@pytest.fixture
def conn(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        yield c


def test_show_max_connections_is_the_server_limit():
    if TARGET == "postgres":
        pytest.skip("the limit is a Floe server option")
    os.environ["FLOE_MAX_CONNECTIONS"] = "7"
    try:
        server = start_floe()
    finally:
        del os.environ["FLOE_MAX_CONNECTIONS"]
    try:
        with psycopg.connect(server.dsn, autocommit=True) as c:
            assert c.execute("SHOW max_connections").fetchone() == ("7",)
            c.execute("RESET ALL")
            assert c.execute("SELECT current_setting('max_connections')").fetchone() == ("7",)
    finally:
        server.stop()


# (query, [(column name, type OID), …]) as PostgreSQL 15 describes the result.
DESCRIBED = [
    ("SELECT generate_series(1, 2)", [("generate_series", 23)]),
    ("SELECT generate_series(1, 2::int8)", [("generate_series", 20)]),
    (
        "SELECT row_number() OVER (), rank() OVER (ORDER BY 1), dense_rank() OVER (ORDER BY 1), "
        "ntile(2) OVER (), count(*) OVER ()",
        [("row_number", 20), ("rank", 20), ("dense_rank", 20), ("ntile", 23), ("count", 20)],
    ),
    (
        "SELECT gcd(4, 6), lcm(4::int8, 6), mod(5::int2, 2::int2), sign(5), sign(2.5)",
        [("gcd", 23), ("lcm", 20), ("mod", 21), ("sign", 701), ("sign", 1700)],
    ),
    (
        "SELECT CASE WHEN true THEN 1.5::float8 ELSE sum(1.5::float8) END, "
        "CASE WHEN true THEN 1 ELSE 2 END, CAST(NULL::bool AS int4), CAST('2.25'::float8 AS int2), "
        "'2020-01-01'::date::timestamp",
        [("sum", 701), ("case", 23), ("int4", 23), ("int2", 21), ("timestamp", 1114)],
    ),
    (
        "SELECT substr('abc', 1, 2), substring('abc' FROM 1 FOR 2), quote_ident('a'), "
        "format('%s', 1), make_timestamp(2020, 1, 2, 3, 4, 5), isfinite(now())",
        [("substr", 25), ("substring", 25), ("quote_ident", 25), ("format", 25),
         ("make_timestamp", 1114), ("isfinite", 16)],
    ),
    ("SELECT regexp_split_to_table('a b', ' ')", [("regexp_split_to_table", 25)]),
    (
        "SELECT 1::int2 << 2, 8::int2 >> 1::int2, '2020-01-02'::date - '2020-01-01'::date",
        [("?column?", 21), ("?column?", 21), ("?column?", 23)],
    ),
    # coalesce, nullif and greatest keep the type their arguments share (uuid, jsonb, varchar;
    # a string literal takes it), and NOT EXISTS has no name of its own.
    (
        "SELECT coalesce(u, u), nullif(u, u), coalesce(u, 'af345b28-660f-b6a0-9bc5-df2af5c57d0e'), "
        "coalesce(v, 'x'), greatest(j, j), NOT EXISTS (SELECT 1) "
        "FROM (SELECT 'af345b28-660f-b6a0-9bc5-df2af5c57d0e'::uuid AS u, 'a'::varchar AS v, "
        "'1'::jsonb AS j) AS t",
        [("coalesce", 2950), ("nullif", 2950), ("coalesce", 2950), ("coalesce", 1043),
         ("greatest", 3802), ("?column?", 16)],
    ),
    (
        "SELECT to_timestamp(1), to_date('2020-01-01', 'YYYY-MM-DD'), "
        "'2020-01-01'::date AT TIME ZONE 'UTC', convert_to('a', 'UTF8'), length('\\x00'::bytea)",
        [("to_timestamp", 1184), ("to_date", 1082), ("timezone", 1114), ("convert_to", 17),
         ("length", 23)],
    ),
    # CASE keeps the type its results share (a NULL or string literal takes it); mixed types
    # stay text.
    (
        "SELECT CASE WHEN true THEN u END, CASE WHEN false THEN j ELSE '{}' END, "
        "CASE WHEN true THEN v ELSE NULL END, CASE WHEN true THEN u::text END, "
        "CASE WHEN true THEN v ELSE u::text END "
        "FROM (SELECT 'af345b28-660f-b6a0-9bc5-df2af5c57d0e'::uuid AS u, 'a'::varchar AS v, "
        "'1'::jsonb AS j) AS t",
        [("case", 2950), ("case", 3802), ("case", 1043), ("case", 25), ("u", 25)],
    ),
    # A UNION of integer literals is integer; a column where an input is bigint is bigint.
    (
        "(SELECT 1 AS c0, 6 AS c1) UNION (SELECT 9 AS c0, 3::int8)",
        [("c0", 23), ("c1", 20)],
    ),
    ("SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2) s", [("x", 23)]),
    # Correlated scalar subqueries keep the type of the column they return (by equality,
    # with LIMIT 1, by inequality, per outer row).
    (
        "SELECT (SELECT s.u FROM (SELECT 1 AS k, 'af345b28-660f-b6a0-9bc5-df2af5c57d0e'::uuid AS u) s "
        "WHERE s.k = t.k), "
        "(SELECT s.j FROM (SELECT 1 AS k, '1'::jsonb AS j) s WHERE s.k = t.k LIMIT 1), "
        "(SELECT s.v FROM (SELECT 1 AS k, 'a'::varchar AS v) s WHERE s.k < t.k) "
        "FROM (SELECT 1 AS k) AS t",
        [("u", 2950), ("j", 3802), ("v", 1043)],
    ),
    # json and jsonb operators and functions: jsonb (3802) or json (114) where PostgreSQL's are.
    (
        "SELECT '{\"a\": 1}'::jsonb -> 'a', '{\"a\": 1}'::jsonb ->> 'a', "
        "'{\"a\": 1}'::json -> 'a', '{\"a\": 1}'::jsonb ? 'a', '[1]'::jsonb || '[2]', "
        "'[1]'::jsonb #> '{0}', to_jsonb(1), to_json(1), jsonb_build_object('k', 1), "
        "json_build_array(1), jsonb_array_length('[]'), jsonb_set('[1]', '{0}', '2')",
        [("?column?", 3802), ("?column?", 25), ("?column?", 114), ("?column?", 16),
         ("?column?", 3802), ("?column?", 3802), ("to_jsonb", 3802), ("to_json", 114),
         ("jsonb_build_object", 3802), ("json_build_array", 114), ("jsonb_array_length", 23),
         ("jsonb_set", 3802)],
    ),
    (
        "SELECT jsonb_agg(1), json_agg(1), jsonb_object_agg('a', 1), json_object_agg('a', 1)",
        [("jsonb_agg", 3802), ("json_agg", 114), ("jsonb_object_agg", 3802),
         ("json_object_agg", 114)],
    ),
    ("SELECT jsonb_array_elements('[1, 2]')", [("jsonb_array_elements", 3802)]),
    ("SELECT json_array_elements_text('[1, 2]')", [("json_array_elements_text", 25)]),
    ("SELECT * FROM jsonb_each('{\"a\": 1}')", [("key", 25), ("value", 3802)]),
    ("SELECT * FROM json_each_text('{\"a\": 1}')", [("key", 25), ("value", 25)]),
    # Of text, varchar and bpchar the first is the common type (a CASE's ELSE first).
    (
        "SELECT coalesce('a', 'x'::varchar(5), 'y'::text), coalesce('y'::text, 'x'::varchar), "
        "CASE WHEN true THEN 'y'::text ELSE 'x'::varchar END, "
        "CASE WHEN true THEN 'x'::varchar ELSE 'y'::text END",
        [("coalesce", 1043), ("coalesce", 25), ("case", 1043), ("case", 25)],
    ),
    (
        "SELECT ARRAY['x'::varchar, 'a'], ARRAY[gen_random_uuid()], unnest(ARRAY['x'::varchar]), "
        "unnest(ARRAY[gen_random_uuid()])",
        [("array", 1015), ("array", 2951), ("unnest", 1043), ("unnest", 2950)],
    ),
    ("SELECT * FROM unnest(ARRAY[1, 2])", [("unnest", 23)]),
    ("SELECT x FROM unnest(ARRAY['a'::varchar]) x", [("x", 1043)]),
    ("SELECT CAST((SELECT 2) AS int2), (SELECT 1 AS x)::text", [("?column?", 21), ("x", 25)]),
    # An integer literal under sum/min/max is an integer (sum: bigint), string_agg is text.
    (
        "SELECT sum(CASE WHEN true THEN 1 ELSE 0 END) + 1, sum(1) * 2, max(1) + 1, "
        "sum(3000000000), octet_length(string_agg('a', ',')), strpos(string_agg('ab', ','), 'b')",
        [("?column?", 20), ("?column?", 20), ("?column?", 23), ("sum", 1700),
         ("octet_length", 23), ("strpos", 23)],
    ),
]


def test_jsonb_parameters_are_read_as_jsonb(conn):
    """A jsonb parameter is jsonb's canonical value, in text and in binary format."""
    from psycopg.types.json import Json, Jsonb

    for binary in (False, True):
        row = conn.execute(
            "SELECT %s::jsonb::text, %s::jsonb -> 'b', %s::json::text",
            [Jsonb({"b": [1, 2], "a": 1.50}), Jsonb({"b": 2}), Json({"x": 1})],
            binary=binary,
        ).fetchone()
        assert row == ('{"a": 1.5, "b": [1, 2]}', 2, '{"x": 1}')


@pytest.mark.parametrize("sql,described", DESCRIBED)
def test_result_names_and_types(conn, sql, described):
    cursor = conn.execute(sql)
    assert [(d.name, d.type_code) for d in cursor.description] == described


def test_union_of_differing_integer_types_is_bigint_in_binary(conn):
    """A UNION of an integer column and a bigint is described as bigint and sent as one: it was
    described with its first input's type (integer) while its rows were bigint, which a binary
    client read as garbage (asyncpg: 'unexpected trailing 4 bytes')."""
    cur = conn.cursor(binary=True)
    cur.execute("SELECT x FROM (VALUES (1), (2)) AS v(x) UNION ALL SELECT 2147483648 ORDER BY 1")
    assert [d.type_code for d in cur.description] == [20]
    assert cur.fetchall() == [(1,), (2,), (2147483648,)]

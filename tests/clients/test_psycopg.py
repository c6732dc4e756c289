"""psycopg 3: every type round-trips through parameters and results, in text and binary format,
with and without server-side prepared statements, typed (`%s::type`) and untyped."""

import math
from datetime import date, datetime
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Json, Jsonb

from conftest import floe_xfail
from typecases import ARRAYS, JSON_DOCS, SCALARS, SCALED_NUMERICS, UTC, WIDE_TIMESTAMPS, same

# mode name -> (binary results?, parameter placeholder, server-side prepared statement?)
MODES = {
    # text parameters, text results, unnamed statements
    "text": (False, "%t", False),
    # binary parameters, binary results
    "binary": (True, "%b", False),
    # binary parameters, text results
    "binparams": (False, "%b", False),
    # psycopg's automatic parameter format, binary results, named prepared statement
    "prepared": (True, "%s", True),
    # text parameters, binary results, named prepared statement
    "prepared_text": (True, "%t", True),
}


@pytest.fixture(scope="module")
def conn(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        yield c


def roundtrip(conn, mode, sql_type, values, wrap=lambda v: v, numeric_scale=False):
    """Numerics compare by value here; test_numeric_keeps_its_scale checks the scale."""
    binary, placeholder, prepare = MODES[mode]
    cur = conn.cursor(binary=binary)
    bad = []
    for value in [*values, None]:
        param = None if value is None else wrap(value)
        cur.execute(f"SELECT {placeholder}::{sql_type} AS v", [param], prepare=prepare)
        got = cur.fetchone()[0]
        if not same(got, value, numeric_scale):
            bad.append((value, got))
    assert not bad, f"{sql_type} ({mode}): (sent, received) pairs that differ: {bad!r}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sql_type", SCALARS)
def test_scalar_roundtrip(conn, sql_type, mode):
    roundtrip(conn, mode, sql_type, SCALARS[sql_type])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sql_type", ARRAYS)
def test_array_roundtrip(conn, sql_type, mode):
    roundtrip(conn, mode, sql_type, ARRAYS[sql_type])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sql_type,wrapper", [("json", Json), ("jsonb", Jsonb)])
def test_json_roundtrip(conn, sql_type, wrapper, mode):
    roundtrip(conn, mode, sql_type, JSON_DOCS, wrap=wrapper)


UNTYPED = [
    (sql_type, mode)
    for sql_type in [t for t in SCALARS if t not in ("bpchar", "varchar", "int2", "int4", "float4")]
    + [t for t in ARRAYS if t not in ("varchar[]", "int2[]", "int4[]", "float4[]")]
    for mode in ("binary", "prepared")
    # psycopg sends a list of str in %s as unknown text: the server infers text, not text[]
    if (sql_type, mode) != ("text[]", "prepared")
]


@pytest.mark.parametrize("sql_type,mode", UNTYPED)
def test_untyped_parameter_takes_the_driver_type(conn, sql_type, mode):
    """`SELECT %b`: the parameter's type is the one psycopg declares (int → int2/4/8 by size,
    str → text, list → array of the element's type, …), and the result has that type."""
    binary, placeholder, prepare = MODES[mode]
    values = SCALARS.get(sql_type) or [v for v in ARRAYS[sql_type] if v]
    cur = conn.cursor(binary=binary)
    bad = []
    for value in values:
        cur.execute(f"SELECT {placeholder} AS v", [value], prepare=prepare)
        got = cur.fetchone()[0]
        if not same(got, value, numeric_scale=False):
            bad.append((value, got))
    assert not bad, f"{sql_type} ({mode}): (sent, received) pairs that differ: {bad!r}"


@pytest.mark.parametrize("mode", ["binary", "prepared"])
@pytest.mark.parametrize("wrapper", [Json, Jsonb])
def test_untyped_json_parameter(conn, wrapper, mode):
    binary, placeholder, prepare = MODES[mode]
    cur = conn.cursor(binary=binary)
    for doc in JSON_DOCS:
        cur.execute(f"SELECT {placeholder} AS v", [wrapper(doc)], prepare=prepare)
        got = cur.fetchone()[0]
        assert same(got, doc), (doc, got)


@pytest.mark.parametrize("mode", MODES)
def test_many_parameters_of_mixed_types(conn, mode):
    binary, ph, prepare = MODES[mode]
    row = [1, "two", Decimal("3.30"), 4.5, True, date(2024, 1, 2), None,
           datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), b"\x01", [1, 2]]
    types = ["int8", "text", "numeric", "float8", "bool", "date", "int4", "timestamptz", "bytea",
             "int4[]"]
    cols = ", ".join(f"{ph}::{t}" for t in types)
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT {cols}", row, prepare=prepare)
    got = list(cur.fetchone())
    assert all(same(g, w, numeric_scale=False) for g, w in zip(got, row)), got


def test_prepared_statement_is_reused(conn):
    """With prepare=True psycopg parses once into a named statement and binds it again."""
    cur = conn.cursor(binary=True)
    query = "SELECT %s::int8 * 2, %s::text || '!'"
    for i in range(20):
        cur.execute(query, [i, f"v{i}"], prepare=True)
        assert cur.fetchone() == (i * 2, f"v{i}!")


def test_prepare_threshold_automatic(server):
    """psycopg prepares a query on its own after `prepare_threshold` executions."""
    with psycopg.connect(server.dsn, autocommit=True, prepare_threshold=2) as c:
        for i in range(6):
            cur = c.execute("SELECT %s::int4 + 1", [i], binary=True)
            assert cur.fetchone() == (i + 1,)


def test_executemany(conn):
    cur = conn.cursor()
    cur.executemany("SELECT %s::int4, %s::text", [(i, str(i)) for i in range(50)])
    assert conn.execute("SELECT 'ok'").fetchone() == ("ok",)


def test_executemany_returning(conn):
    cur = conn.cursor(binary=True)
    cur.executemany(
        "SELECT %s::int4 * 10, %s::text", [(i, str(i)) for i in range(10)], returning=True
    )
    results = []
    while True:
        results.append(cur.fetchone())
        if not cur.nextset():
            break
    assert results == [(i * 10, str(i)) for i in range(10)]


def test_pipeline_mode(conn):
    """Pipeline mode: many Parse/Bind/Execute before one Sync."""
    with conn.pipeline():
        cursors = []
        for i in range(30):
            cur = conn.cursor(binary=bool(i % 2))
            cur.execute("SELECT %s::int8 + 1, %s::text", [i, "x" * i])
            cursors.append(cur)
    for i, cur in enumerate(cursors):
        assert cur.fetchone() == (i + 1, "x" * i)


def test_multiple_rows_and_columns(conn):
    cur = conn.cursor(binary=True)
    cur.execute("SELECT g, g::text, g * 0.5 FROM generate_series(1, 1000) AS g")
    rows = cur.fetchall()
    assert len(rows) == 1000
    assert rows[0] == (1, "1", Decimal("0.5"))
    assert rows[-1] == (1000, "1000", Decimal("500.0"))


def test_column_descriptions(conn):
    cur = conn.cursor()
    cur.execute(
        "SELECT 1::int4 AS a, 'x'::text AS b, 1.5::numeric AS c, now() AS d, "
        "'2024-01-01'::date AS e"
    )
    names = [d.name for d in cur.description]
    oids = [d.type_code for d in cur.description]
    assert names == ["a", "b", "c", "d", "e"]
    assert oids == [23, 25, 1700, 1184, 1082]


def test_float_text_output_exact(conn):
    """Text-format floats use the shortest form that reads back exactly."""
    cur = conn.cursor()
    for value in [0.1, 1 / 3, 1e-7, 123456789012345.67, 2.5e-310]:
        cur.execute("SELECT %t::float8", [value])
        got = cur.fetchone()[0]
        assert got == value


def test_nan_and_infinity_text(conn):
    cur = conn.cursor()
    cur.execute("SELECT 'NaN'::float8, 'Infinity'::float8, '-Infinity'::float4")
    a, b, c = cur.fetchone()
    assert math.isnan(a) and b == math.inf and c == -math.inf


@pytest.mark.parametrize("mode", ["text", "binary"])
def test_char_n_is_blank_padded(conn, mode):
    binary, ph, prepare = MODES[mode]
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT {ph}::char(5), {ph}::char", ["ab", "xyz"], prepare=prepare)
    assert cur.fetchone() == ("ab   ", "x")


@pytest.mark.parametrize("mode", MODES)
def test_numeric_keeps_its_scale(conn, mode):
    roundtrip(conn, mode, "numeric", SCALED_NUMERICS, numeric_scale=True)


@pytest.mark.parametrize("mode", ["text", "binary"])
def test_numeric_with_29_integer_digits(conn, mode):
    roundtrip(conn, mode, "numeric", [Decimal("12345678901234567890123456789")])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sql_type", WIDE_TIMESTAMPS)
def test_timestamps_beyond_the_nanosecond_range(conn, sql_type, mode):
    roundtrip(conn, mode, sql_type, WIDE_TIMESTAMPS[sql_type])


@pytest.mark.parametrize("mode", ["text", "binary"])
def test_numeric_special_values(conn, mode):
    binary, ph, prepare = MODES[mode]
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT {ph}::numeric", [Decimal("NaN")], prepare=prepare)
    assert cur.fetchone()[0].is_nan()


@pytest.mark.parametrize("mode", ["text", "binary"])
def test_numeric_beyond_38_digits(conn, mode):
    binary, ph, prepare = MODES[mode]
    value = Decimal("1234567890123456789012345678901234567890.0123456789")
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT {ph}::numeric", [value], prepare=prepare)
    assert same(cur.fetchone()[0], value)


@floe_xfail("multidimensional arrays are not supported")
@pytest.mark.parametrize("mode", ["text", "binary"])
def test_two_dimensional_array(conn, mode):
    binary, ph, prepare = MODES[mode]
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT {ph}::int4[]", [[[1, 2], [3, None]]], prepare=prepare)
    assert cur.fetchone()[0] == [[1, 2], [3, None]]


def test_timestamptz_follows_session_time_zone(conn):
    cur = conn.cursor()
    try:
        cur.execute("SET TimeZone = 'Asia/Kolkata'")
        value = datetime(2024, 7, 1, 8, 0, tzinfo=UTC)
        for c in (conn.cursor(), conn.cursor(binary=True)):
            c.execute("SELECT %t::timestamptz", [value])
            (got,) = c.fetchone()
            assert got == value
        cur.execute("SELECT %t::timestamptz", [value])
        assert cur.fetchone()[0].utcoffset().total_seconds() == 5.5 * 3600
    finally:
        cur.execute("SET TimeZone = 'UTC'")


def test_timestamptz_cast_to_text(conn):
    cur = conn.cursor()
    try:
        cur.execute("SET TimeZone = 'Asia/Kolkata'")
        cur.execute("SELECT %t::timestamptz::text", [datetime(2024, 7, 1, 8, 0, tzinfo=UTC)])
        assert cur.fetchone() == ("2024-07-01 13:30:00+05:30",)
    finally:
        cur.execute("SET TimeZone = 'UTC'")


@pytest.mark.parametrize("prepare", [False, True])
def test_datetime_text_parameters(conn, prepare):
    """Dates and times sent as text read as PostgreSQL reads them: no seconds, a zone-less
    timestamptz in the session's time zone."""
    conn.execute("SET TimeZone = 'America/New_York'")
    try:
        row = conn.execute(
            "SELECT %s::timestamptz::text, %s::timestamp::text, %s::time::text, %s::date::text",
            ["2024-01-02 10:00", "2024-01-02 10:00", "10:00", "Jan 2, 2024"],
            prepare=prepare,
        ).fetchone()
    finally:
        conn.execute("RESET TimeZone")
    assert row == ("2024-01-02 10:00:00-05", "2024-01-02 10:00:00", "10:00:00", "2024-01-02")


@pytest.mark.parametrize("mode", ["text", "prepared"])
def test_parameter_in_table_function(conn, mode):
    binary, ph, prepare = MODES[mode]
    cur = conn.cursor(binary=binary)
    cur.execute(f"SELECT count(*) FROM generate_series(1, {ph}::int4)", [10], prepare=prepare)
    assert cur.fetchone() == (10,)


def test_transaction_commands(server):
    with psycopg.connect(server.dsn) as c:  # not autocommit: psycopg sends BEGIN itself
        assert c.execute("SELECT 1").fetchone() == (1,)
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        c.commit()
        assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with c.transaction():
            assert c.execute("SELECT %s::int4", [5]).fetchone() == (5,)
        c.rollback()


def test_server_parameters_reported(conn):
    info = conn.info
    assert info.server_version >= 150000
    assert info.parameter_status("server_encoding") == "UTF8"
    assert info.parameter_status("client_encoding") == "UTF8"
    assert info.parameter_status("integer_datetimes") == "on"
    assert info.parameter_status("standard_conforming_strings") == "on"
    assert info.parameter_status("DateStyle").startswith("ISO")

"""Random UTF-8 text and mutated statements thrown at the SQL entry point, over the simple and
the extended protocol (psycopg and asyncpg): each input either runs or fails with an
ErrorResponse carrying a SQLSTATE, and the same connection answers `SELECT 1` afterwards.

Seeded: the seed is printed; FLOE_FUZZ_SEED=<seed> replays a run.
"""

import os
import random

import asyncpg
import psycopg
import pytest

SEED = int(os.environ.get("FLOE_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
RANDOM_INPUTS = 150
MUTATED_INPUTS = 150

# Inputs that once broke the SQL entry point, always tried first.
FIXED = [
    "-- über\nselect 1",
    "/* ü */ select 1",
    "select 1 -- ü",
    "/* 日本 */ select '日本'",
    "ü",
    "'ü",
    "\"ü\"",
    "$ü$ select",
    "select $$ü$$",
    "--",
    "/*",
    "/* ü",
    "select 'ü' /* ",
    "\u00a0select 1",
    "\ufeffselect 1",
]

# Valid statements to mutate (the table is created by the `table` fixture).
CORPUS = [
    "SELECT 1",
    "SELECT 'über' || 'x', length('日本語')",
    "SELECT a, b FROM fuzz_t WHERE a > 1 ORDER BY a LIMIT 2",
    "SELECT count(*), max(b) FROM fuzz_t GROUP BY a % 2 HAVING count(*) > 0",
    "INSERT INTO fuzz_t VALUES (100, 'ß') ON CONFLICT (a) DO NOTHING",
    "UPDATE fuzz_t SET b = b || '🙂' WHERE a = 2",
    "DELETE FROM fuzz_t WHERE a > 50",
    "SELECT x FROM generate_series(1, 5) AS g(x) WHERE x IN (SELECT a FROM fuzz_t)",
    "SELECT CASE WHEN a = 1 THEN 'ä' ELSE NULL END FROM fuzz_t",
    "SELECT $$dollar ü$$, E'\\x41\\n', U&'\\00fc', '{\"k\": [1, 2]}'::jsonb -> 'k'",
    "SELECT '2024-02-29'::date + 1, 1.5::numeric(4, 2), '\\xdeadbeef'::bytea",
    "WITH w AS (SELECT a FROM fuzz_t) SELECT sum(a) OVER (ORDER BY a) FROM w",
    "SELECT a FROM fuzz_t UNION ALL SELECT 7 EXCEPT SELECT 3",
    "SELECT /* ü */ 1 -- 日本\n, 2",
    "SELECT \"a\" AS \"ü\" FROM \"fuzz_t\"",
]

KEYWORDS = ["SELECT", "FROM", "WHERE", "(", ")", ",", ";", "'", "\"", "$$", "--", "/*", "*/",
            "::", "ü", "日本", "🙂", "NULL", "AND", "OR", "NOT", "IN", "JOIN", "ON", "GROUP BY",
            "ORDER BY", "LIMIT", "UNION", "VALUES", "CAST(", "AS", "int4", "text", "1e400",
            "-2147483648", "E'\\", "$1", "BEGIN", "ROLLBACK", "*", "\n", "\t", " "]

ALPHABET = (
    [chr(c) for c in range(0x20, 0x7F)] * 3
    + list("\n\t\r")
    + list("éüßñçÅ日本語中文한국어ελληνικάкириллица")
    + ["🙂", "🎉", "\u0301", "\u200b", "\ufeff", "\u00a0", "\u2028", "\U0010ffff", "\ufffd"]
)


def random_text(rng):
    n = rng.choice([0, 1, 2, 5, 10, 30, 80])
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def mutate(rng, sql):
    """1–3 character-level edits: delete, insert, swap, truncate, splice a keyword, repeat."""
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(sql))
        op = rng.randrange(6)
        if op == 0 and sql:
            i = min(i, len(sql) - 1)
            sql = sql[:i] + sql[i + 1:]
        elif op == 1:
            sql = sql[:i] + rng.choice(ALPHABET) + sql[i:]
        elif op == 2 and len(sql) > 1:
            i = min(i, len(sql) - 2)
            sql = sql[:i] + sql[i + 1] + sql[i] + sql[i + 2:]
        elif op == 3:
            sql = sql[:i]
        elif op == 4:
            sql = sql[:i] + rng.choice(KEYWORDS) + sql[i:]
        else:
            j = rng.randint(i, min(len(sql), i + 10))
            sql = sql[:j] + sql[i:j] + sql[j:]
    return sql


def inputs():
    rng = random.Random(SEED)
    out = list(FIXED)
    out += [random_text(rng) for _ in range(RANDOM_INPUTS)]
    out += [mutate(rng, rng.choice(CORPUS)) for _ in range(MUTATED_INPUTS)]
    return out


@pytest.fixture(scope="module")
def table(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("CREATE TABLE fuzz_t (a int4 PRIMARY KEY, b text)")
        c.execute("INSERT INTO fuzz_t VALUES (1, 'a'), (2, 'ü'), (3, NULL)")
    return "fuzz_t"


def context(sql, how):
    return f"FLOE_FUZZ_SEED={SEED}, {how}, input {sql!r}"


def reset_psycopg(conn):
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_fuzz_psycopg(server, table, prepare):
    print(f"fuzz seed {SEED} (FLOE_FUZZ_SEED)")
    how = f"psycopg {'extended' if prepare else 'simple'} protocol"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        for sql in inputs():
            try:
                conn.cursor().execute(sql, prepare=prepare)
            except psycopg.Error as e:
                assert e.sqlstate is not None, f"{context(sql, how)}: no SQLSTATE: {e!r}"
            assert not conn.closed, f"{context(sql, how)}: connection closed"
            reset_psycopg(conn)
            assert conn.execute("SELECT 1").fetchone() == (1,), context(sql, how)


@pytest.mark.parametrize("extended", [False, True], ids=["simple", "extended"])
def test_fuzz_asyncpg(server, table, loop, extended):
    print(f"fuzz seed {SEED} (FLOE_FUZZ_SEED)")
    how = f"asyncpg {'extended' if extended else 'simple'} protocol"

    async def go():
        conn = await asyncpg.connect(host=server.host, port=server.port, user="postgres")
        try:
            await conn.execute("SET statement_timeout = '5s'")
            for sql in inputs():
                try:
                    if extended:
                        await conn.fetch(sql)
                    else:
                        await conn.execute(sql)
                except asyncpg.PostgresError as e:
                    assert e.sqlstate, f"{context(sql, how)}: no SQLSTATE: {e!r}"
                except asyncpg.InterfaceError as e:
                    # asyncpg's own check of a prepared statement's parameter count ($1).
                    assert "argument" in str(e), f"{context(sql, how)}: {e!r}"
                except AttributeError as e:
                    # asyncpg's execute() trips over an empty query's EmptyQueryResponse.
                    assert not extended and "decode" in str(e), f"{context(sql, how)}: {e!r}"
                except (ValueError, OverflowError) as e:
                    # Values PostgreSQL has and Python does not ('20240-02-29'::date: Python's
                    # dates end at year 9999): asyncpg fails to decode the row, not the server.
                    assert extended and "out of range" in str(e), f"{context(sql, how)}: {e!r}"
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                assert await conn.fetchval("SELECT 1") == 1, context(sql, how)
        finally:
            await conn.close()

    loop.run_until_complete(go())

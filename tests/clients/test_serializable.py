"""SERIALIZABLE over the wire (psycopg 3): write skew between two connections fails one of them
with 40001 and PostgreSQL's message, DETAIL and HINT; the connection stays usable (25P02 until
ROLLBACK when the failure is inside a block); the isolation level is selected by BEGIN,
SET TRANSACTION and default_transaction_isolation. Runs against PostgreSQL 15 too
(FLOE_CLIENT_TARGET=postgres)."""

import psycopg
import pytest
from psycopg import errors

MESSAGE = "could not serialize access due to read/write dependencies among transactions"


@pytest.fixture
def doctors(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS doctors")
        c.execute("CREATE TABLE doctors (name text PRIMARY KEY, on_call boolean NOT NULL)")
        c.execute("INSERT INTO doctors VALUES ('alice', true), ('bob', true)")
    yield server
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS doctors")


def connect(server):
    return psycopg.connect(server.dsn, autocommit=True)


def on_call(conn):
    return conn.execute("SELECT count(*) FROM doctors WHERE on_call").fetchone()[0]


def go_off_call(conn, name, begin="BEGIN ISOLATION LEVEL SERIALIZABLE"):
    """The first half of the write skew: check, then leave."""
    conn.execute(begin)
    assert on_call(conn) == 2
    conn.execute("UPDATE doctors SET on_call = false WHERE name = %s", [name])


def assert_serialization_failure(err):
    assert err.sqlstate == "40001"
    assert err.diag.message_primary == MESSAGE
    assert err.diag.message_hint == "The transaction might succeed if retried."
    assert err.diag.message_detail and err.diag.message_detail.startswith("Reason code:")


@pytest.mark.parametrize(
    "begin",
    [
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    ],
)
def test_write_skew_fails_with_40001(doctors, begin):
    with connect(doctors) as alice, connect(doctors) as bob:
        for conn, name in [(alice, "alice"), (bob, "bob")]:
            if begin.startswith("BEGIN;"):
                conn.execute("BEGIN")
                conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                conn.execute("SELECT 1")
                assert on_call(conn) == 2
                conn.execute("UPDATE doctors SET on_call = false WHERE name = %s", [name])
            else:
                go_off_call(conn, name, begin)
        alice.execute("COMMIT")
        with pytest.raises(psycopg.Error) as failure:
            bob.execute("COMMIT")
        assert_serialization_failure(failure.value)
        # The failed COMMIT rolled bob's transaction back; the connection works on.
        assert bob.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert on_call(bob) == 1
        assert bob.execute("SELECT name FROM doctors WHERE on_call").fetchone()[0] == "bob"


def test_a_failure_inside_a_block_needs_rollback(doctors):
    """The pivot fails when a later statement of its block reads what the other committed
    (Floe; PostgreSQL fails it at the UPDATE or the COMMIT): either way the block is aborted,
    gives 25P02 until ROLLBACK, and the connection is fine after it."""
    with connect(doctors) as alice, connect(doctors) as bob:
        go_off_call(alice, "alice")
        go_off_call(bob, "bob")
        alice.execute("COMMIT")
        try:
            bob.execute("SELECT * FROM doctors WHERE name = 'alice'")
            bob.execute("COMMIT")
            pytest.fail("bob's transaction committed a write skew")
        except psycopg.Error as failure:
            assert_serialization_failure(failure)
        if bob.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            with pytest.raises(errors.InFailedSqlTransaction):
                bob.execute("SELECT 1")
            bob.execute("ROLLBACK")
        assert bob.execute("SELECT 1").fetchone()[0] == 1
        assert on_call(bob) == 1


def test_default_transaction_isolation_selects_serializable(doctors):
    with connect(doctors) as alice, connect(doctors) as bob:
        for conn in (alice, bob):
            conn.execute("SET default_transaction_isolation = 'serializable'")
            assert conn.execute("SHOW default_transaction_isolation").fetchone()[0] == (
                "serializable"
            )
        alice.execute("BEGIN")
        assert alice.execute("SHOW transaction_isolation").fetchone()[0] == "serializable"
        assert on_call(alice) == 2
        alice.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
        bob.execute("BEGIN")
        assert on_call(bob) == 2
        bob.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")
        alice.execute("COMMIT")
        with pytest.raises(psycopg.Error) as failure:
            bob.execute("COMMIT")
        assert_serialization_failure(failure.value)
        # Single statements are serializable transactions too, and they still work.
        assert on_call(bob) == 1


def test_disjoint_serializable_transactions_commit(doctors):
    with connect(doctors) as alice, connect(doctors) as bob:
        alice.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        bob.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")
        assert alice.execute("SELECT on_call FROM doctors WHERE name = 'alice'").fetchone()[0]
        assert bob.execute("SELECT on_call FROM doctors WHERE name = 'bob'").fetchone()[0]
        alice.execute("UPDATE doctors SET on_call = false WHERE name = 'alice'")
        bob.execute("UPDATE doctors SET on_call = false WHERE name = 'bob'")
        alice.execute("COMMIT")
        bob.execute("COMMIT")
        assert on_call(alice) == 0


def test_repeatable_read_allows_write_skew(doctors):
    with connect(doctors) as alice, connect(doctors) as bob:
        go_off_call(alice, "alice", "BEGIN ISOLATION LEVEL REPEATABLE READ")
        go_off_call(bob, "bob", "BEGIN ISOLATION LEVEL REPEATABLE READ")
        alice.execute("COMMIT")
        bob.execute("COMMIT")
        assert on_call(alice) == 0


def test_serializable_read_only_deferrable_runs(doctors):
    with connect(doctors) as conn:
        conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE")
        assert on_call(conn) == 2
        with pytest.raises(errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE doctors SET on_call = false")
        conn.execute("ROLLBACK")
        assert on_call(conn) == 2

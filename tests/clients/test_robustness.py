"""Big, empty and malformed input: the server answers or closes that one connection, never
crashes, and other sessions keep working. Raw-socket tests speak protocol v3 by hand."""

import random
import socket
import struct

import asyncpg
import psycopg
import pytest

from conftest import TARGET, floe_xfail

MB = 1024 * 1024


@pytest.fixture(scope="module")
def bystander(server):
    """A session opened before the abuse; it must still work after each test."""
    with psycopg.connect(server.dsn, autocommit=True) as c:
        c.execute("SET application_name = 'bystander'")
        yield c


@pytest.fixture(autouse=True)
def _others_keep_working(request, server, bystander):
    yield
    assert bystander.execute("SELECT current_setting('application_name')").fetchone() == (
        "bystander",
    )
    with psycopg.connect(server.dsn, autocommit=True) as fresh:
        assert fresh.execute("SELECT %s::int4 + 1", [1]).fetchone() == (2,)


@pytest.fixture
def conn(server):
    with psycopg.connect(server.dsn, autocommit=True) as c:
        yield c


# --- big queries ---------------------------------------------------------------------------


def test_one_megabyte_literal(conn):
    literal = "x" * MB
    assert conn.execute(f"SELECT length('{literal}')").fetchone() == (MB,)
    (got,) = conn.execute(f"SELECT '{literal}'").fetchone()
    assert got == literal


def test_one_megabyte_literal_prepared_binary(conn):
    literal = "".join(chr(ord("a") + i % 26) for i in range(MB))
    cur = conn.cursor(binary=True)
    cur.execute(f"SELECT '{literal}', %s::int4", [1], prepare=True)
    assert cur.fetchone() == (literal, 1)


BIG_TEXT = "é" * (MB // 2)
BIG_BLOB = bytes(i % 251 for i in range(MB))


def test_one_megabyte_parameters(conn):
    text, blob = BIG_TEXT, BIG_BLOB
    cur = conn.cursor(binary=True)
    cur.execute("SELECT %b::text, %b::bytea", [text, blob])
    assert cur.fetchone() == (text, blob)
    cur = conn.cursor()
    cur.execute("SELECT %t::text, %t::bytea", [text, blob])
    assert cur.fetchone() == (text, blob)


def test_one_megabyte_parameters_asyncpg(server, loop):
    text, blob = BIG_TEXT, BIG_BLOB

    async def go():
        c = await asyncpg.connect(host=server.host, port=server.port, user="postgres")
        try:
            return await c.fetchrow("SELECT $1::text, $2::bytea", text, blob)
        finally:
            await c.close()

    assert tuple(loop.run_until_complete(go())) == (text, blob)


def test_long_in_list(conn):
    items = ",".join(str(i) for i in range(150_000))  # about 1 MB of SQL
    assert len(items) > 900_000
    assert conn.execute(f"SELECT 149999 IN ({items}), -1 IN ({items})").fetchone() == (
        True,
        False,
    )
    assert conn.execute(
        f"SELECT count(*) FROM generate_series(1, 10) AS g WHERE g IN ({items})"
    ).fetchone() == (10,)


def test_many_parameters(conn):
    values = list(range(5000))
    placeholders = ",".join(["%s"] * len(values))
    cur = conn.cursor(binary=True)
    cur.execute(f"SELECT 4999 IN ({placeholders})", values)
    assert cur.fetchone() == (True,)


def test_many_result_rows(conn):
    cur = conn.cursor(binary=True)
    cur.execute("SELECT g, repeat('x', 100) FROM generate_series(1, 200000) AS g")
    n = 0
    for row in cur:
        n += 1
    assert n == 200_000


def survives(server, sql):
    """Runs `sql` on a connection of its own: PostgreSQL answers or reports an error such as
    54001 (stack depth limit exceeded); either way the server must survive (a stack overflow
    kills the whole process) and the connection stays usable."""
    with psycopg.connect(server.dsn, autocommit=True) as c:
        try:
            c.execute(sql).fetchall()
        except psycopg.Error as e:
            if e.sqlstate is None:  # no ErrorResponse: the connection (or server) died
                raise
        server.assert_alive()
        assert c.execute("SELECT 1").fetchone() == (1,)


DEEP = {
    "1 + 1 + ... (100 000 terms)": ("SELECT 1" + " + 1" * 100_000, None),
    "1 + 1 + ... (10 000 terms)": ("SELECT 1" + " + 1" * 10_000, None),
    "1 + 1 + ... (500 terms)": ("SELECT 1" + " + 1" * 500, None),
    "1 + 1 + ... (100 terms)": ("SELECT 1" + " + 1" * 100, None),
    "a AND a AND ... (20 000 terms)": ("SELECT true" + " AND true" * 20_000, None),
    "'a' || 'a' || ... (20 000 terms)": ("SELECT 'a'" + " || 'a'" * 20_000, None),
    "10 000 nested parentheses": ("SELECT " + "(" * 10_000 + "1" + ")" * 10_000, None),
    "2 000 nested scalar subqueries": ("SELECT " + "(SELECT " * 2000 + "1" + ")" * 2000, None),
    "5 000 nested function calls": ("SELECT " + "abs(" * 5000 + "1" + ")" * 5000, None),
    "2 000 UNION ALL branches": ("SELECT 1" + " UNION ALL SELECT 1" * 2000, None),
    "100 UNION ALL branches": ("SELECT 1" + " UNION ALL SELECT 1" * 100, None),
    "30 UNION ALL branches": ("SELECT 1" + " UNION ALL SELECT 1" * 30, None),
}


@pytest.mark.parametrize(
    "sql",
    [pytest.param(sql, marks=mark or (), id=name) for name, (sql, mark) in DEEP.items()],
)
def test_deep_expressions_do_not_crash(own_server, sql):
    survives(own_server, sql)


# --- empty queries -------------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- only a comment", "/* c */ ;;"])
def test_empty_query_simple(conn, sql):
    cur = conn.execute(sql)
    assert cur.pgresult.status == psycopg.pq.ExecStatus.EMPTY_QUERY
    assert cur.description is None
    assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("sql", ["", ";"])
def test_empty_query_prepared(conn, sql):
    cur = conn.cursor(binary=True)
    cur.execute(sql, prepare=True)
    assert cur.pgresult.status == psycopg.pq.ExecStatus.EMPTY_QUERY
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_empty_query_asyncpg(server, loop):
    async def go():
        c = await asyncpg.connect(host=server.host, port=server.port, user="postgres")
        try:
            assert await c.fetch("") == []
            return await c.fetchval("SELECT 1")
        finally:
            await c.close()

    assert loop.run_until_complete(go()) == 1


# --- raw protocol --------------------------------------------------------------------------


def startup_packet(params=None, version=196608):
    params = {"user": "postgres", "database": "postgres"} if params is None else params
    body = struct.pack("!i", version)
    for k, v in params.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def message(kind, body=b""):
    return kind + struct.pack("!i", len(body) + 4) + body


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_message(sock):
    """(type, body), or None when the server closed the connection."""
    try:
        head = recv_exact(sock, 5)
    except (ConnectionResetError, BrokenPipeError):
        return None
    if head is None:
        return None
    kind, length = head[:1], struct.unpack("!i", head[1:])[0]
    body = recv_exact(sock, length - 4)
    return (kind, body)


def read_until_ready(sock):
    """Messages up to and including ReadyForQuery, or up to the end of the connection."""
    out = []
    while True:
        msg = read_message(sock)
        if msg is None:
            return out
        out.append(msg)
        if msg[0] == b"Z":
            return out


def error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode()
    return fields


def drain(sock):
    """Everything the server sends until it closes the connection (or goes quiet)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except socket.timeout:
        return data, False
    except (ConnectionResetError, BrokenPipeError):
        return data, True


def raw(server, timeout=10):
    s = socket.create_connection((server.host, server.port), timeout=timeout)
    return s


def logged_in(server):
    s = raw(server)
    s.sendall(startup_packet())
    msgs = read_until_ready(s)
    assert msgs and msgs[0] == (b"R", struct.pack("!i", 0)), msgs[:1]
    assert msgs[-1][0] == b"Z"
    return s


def send_ignoring_reset(sock, data):
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass


def test_raw_startup_and_queries(server):
    with logged_in(server) as s:
        s.sendall(message(b"Q", b"SELECT 1 AS one\0"))
        msgs = read_until_ready(s)
        kinds = [m[0] for m in msgs]
        assert kinds == [b"T", b"D", b"C", b"Z"]
        assert msgs[1][1] == struct.pack("!hi", 1, 1) + b"1"
        assert msgs[2][1] == b"SELECT 1\0"
        assert msgs[3][1] == b"I"
        s.sendall(message(b"X"))


@pytest.mark.parametrize("sql", [b"", b";", b"  -- nothing"])
def test_raw_empty_query(server, sql):
    with logged_in(server) as s:
        s.sendall(message(b"Q", sql + b"\0"))
        assert read_until_ready(s) == [(b"I", b""), (b"Z", b"I")]


def test_raw_empty_query_extended(server):
    with logged_in(server) as s:
        s.sendall(
            message(b"P", b"\0\0" + struct.pack("!h", 0))
            + message(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
            + message(b"E", b"\0" + struct.pack("!i", 0))
            + message(b"S")
        )
        assert [m[0] for m in read_until_ready(s)] == [b"1", b"2", b"I", b"Z"]


GARBAGE = {
    "random bytes": bytes(random.Random(7).randrange(256) for _ in range(200)),
    "http request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "length too small": struct.pack("!i", 4),
    "length zero": struct.pack("!ii", 0, 196608),
    "negative length": struct.pack("!ii", -8, 196608),
    "huge length": struct.pack("!ii", 0x7FFFFFFF, 196608) + b"user\0",
    "protocol 9.9": startup_packet(version=(9 << 16) | 9),
    "protocol 2.0": startup_packet(version=2 << 16),
    "no user": startup_packet({"database": "postgres"}),
    "unterminated parameters": struct.pack("!ii", 16, 196608) + b"user\0pos",
    "odd parameter list": pytest.param(
        struct.pack("!ii", 32, 196608) + b"user\0postgres\0dangling\0\0",
        marks=floe_xfail("a startup packet with a name but no value logs in"),
    ),
    "bogus cancel": struct.pack("!iiii", 16, 80877102, 12345, 67890),
    "short cancel": struct.pack("!iii", 12, 80877102, 1),
    "truncated": startup_packet()[:11],
}


@pytest.mark.parametrize("payload", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_startup(server, payload):
    """The server rejects the packet (ErrorResponse and/or close) without taking a query."""
    with raw(server, timeout=5) as s:
        send_ignoring_reset(s, payload)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data, closed = drain(s)
    # Whatever came back, it is not a successful login.
    assert b"R\x00\x00\x00\x08\x00\x00\x00\x00" not in data
    if data:
        assert data[:1] in (b"E", b"N"), data[:50]
    assert closed or data == b"", "server neither answered nor closed the connection"


@floe_xfail("an unsupported protocol version closes the connection without an ErrorResponse")
def test_garbage_startup_answers_with_error(server):
    """A startup packet with an unsupported protocol version gets a proper ErrorResponse."""
    with raw(server) as s:
        s.sendall(startup_packet(version=(9 << 16) | 9))
        msg = read_message(s)
    assert msg is not None and msg[0] == b"E", msg
    fields = error_fields(msg[1])
    assert fields["S"] == "FATAL"
    assert fields["C"] == "0A000", fields


def test_startup_without_user_is_rejected(server):
    with raw(server) as s:
        s.sendall(startup_packet({"database": "postgres"}))
        msg = read_message(s)
    assert msg is not None and msg[0] == b"E", msg
    assert error_fields(msg[1])["C"] == "28000"


def test_fatal_startup_error_is_the_last_message(server):
    with raw(server) as s:
        s.sendall(startup_packet({"database": "postgres"}))
        msg = read_message(s)
        assert msg is not None and msg[0] == b"E", msg
        assert read_message(s) is None


def test_ssl_request_is_declined_then_plain_startup_works(server):
    with raw(server) as s:
        s.sendall(struct.pack("!ii", 8, 80877103))
        assert recv_exact(s, 1) == b"N"
        s.sendall(startup_packet())
        assert read_until_ready(s)[-1] == (b"Z", b"I")
        s.sendall(message(b"Q", b"SELECT 'after ssl'\0"))
        assert [m[0] for m in read_until_ready(s)] == [b"T", b"D", b"C", b"Z"]


def test_gssenc_request_is_answered(server):
    with raw(server) as s:
        s.sendall(struct.pack("!ii", 8, 80877104))
        answer = recv_exact(s, 1)
        # 'G' only from a server built with GSSAPI (PostgreSQL here); Floe has none.
        assert answer in (b"N", b"G") if server.kind == "postgres" else answer == b"N"
        if answer == b"G":
            return
        s.sendall(startup_packet())
        assert read_until_ready(s)[-1] == (b"Z", b"I")


def test_connect_and_close_immediately(server):
    for _ in range(20):
        s = raw(server)
        s.close()


def test_idle_half_open_connections_do_not_block_others(server, bystander):
    idle = [raw(server) for _ in range(5)]
    partial = raw(server)
    partial.sendall(startup_packet()[:6])
    try:
        with psycopg.connect(server.dsn, autocommit=True, connect_timeout=10) as c:
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        for s in idle + [partial]:
            s.close()


def test_unknown_message_type_after_login(server):
    with logged_in(server) as s:
        send_ignoring_reset(s, message(b"?", b"junk"))
        data, closed = drain(s)
    if data:
        assert data[:1] == b"E", data[:50]
        assert error_fields(data[5:])["C"] == "08P01"
    assert closed


def test_huge_message_length_after_login(server):
    with logged_in(server) as s:
        send_ignoring_reset(s, b"Q" + struct.pack("!i", 0x7FFFFFF0) + b"SELECT")
        s.shutdown(socket.SHUT_WR)
        data, closed = drain(s)
    assert closed
    if data:
        assert data[:1] == b"E", data[:50]


def test_negative_message_length_after_login(server):
    with logged_in(server) as s:
        send_ignoring_reset(s, b"Q" + struct.pack("!i", -1) + b"SELECT 1\0")
        data, closed = drain(s)
    assert closed
    if data:
        assert data[:1] == b"E", data[:50]


def test_random_bytes_after_login(server):
    rng = random.Random(11)
    for _ in range(5):
        with logged_in(server) as s:
            send_ignoring_reset(s, bytes(rng.randrange(256) for _ in range(300)))
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            drain(s)


def test_bind_with_wrong_parameter_count(server):
    # PostgreSQL fails the Bind; Floe the Execute after it. Either way: one 08P01, then ready.
    with logged_in(server) as s:
        s.sendall(
            message(b"P", b"s1\0SELECT $1::int4\0" + struct.pack("!h", 0))
            + message(b"B", b"\0s1\0" + struct.pack("!hhh", 0, 0, 0))
            + message(b"E", b"\0" + struct.pack("!i", 0))
            + message(b"S")
        )
        msgs = read_until_ready(s)
        assert msgs[0][0] == b"1"
        errors = [error_fields(b)["C"] for k, b in msgs if k == b"E"]
        assert errors == ["08P01"]
        assert b"D" not in [k for k, _ in msgs]
        assert msgs[-1] == (b"Z", b"I")
        s.sendall(message(b"Q", b"SELECT 2\0"))
        assert [m[0] for m in read_until_ready(s)] == [b"T", b"D", b"C", b"Z"]


def test_bad_binary_parameter(server):
    with logged_in(server) as s:
        s.sendall(
            message(b"P", b"\0SELECT $1::int4\0" + struct.pack("!h", 0))
            # one parameter, binary, 6 bytes: not an int4
            + message(b"B", b"\0\0" + struct.pack("!hhhi", 1, 1, 1, 6) + b"\x00\x01" * 3
                      + struct.pack("!h", 0))
            + message(b"E", b"\0" + struct.pack("!i", 0))
            + message(b"S")
        )
        msgs = read_until_ready(s)
        errors = [error_fields(b) for k, b in msgs if k == b"E"]
        assert [e["C"] for e in errors] == ["22P03"]
        assert msgs[-1] == (b"Z", b"I")


def test_execute_unknown_portal(server):
    with logged_in(server) as s:
        s.sendall(message(b"E", b"nope\0" + struct.pack("!i", 0)) + message(b"S"))
        msgs = read_until_ready(s)
        assert [error_fields(b)["C"] for k, b in msgs if k == b"E"] == ["34000"]
        assert msgs[-1] == (b"Z", b"I")
        s.sendall(message(b"D", b"Pnope\0") + message(b"S"))
        msgs = read_until_ready(s)
        assert [error_fields(b)["C"] for k, b in msgs if k == b"E"] == ["34000"]
        assert msgs[-1] == (b"Z", b"I")


def test_bind_unknown_statement(server):
    with logged_in(server) as s:
        s.sendall(message(b"B", b"\0nope\0" + struct.pack("!hhh", 0, 0, 0)) + message(b"S"))
        msgs = read_until_ready(s)
        assert [error_fields(b)["C"] for k, b in msgs if k == b"E"] == ["26000"]
        assert msgs[-1] == (b"Z", b"I")
        s.sendall(message(b"Q", b"SELECT 1\0"))
        assert [m[0] for m in read_until_ready(s)] == [b"T", b"D", b"C", b"Z"]


def test_many_concurrent_sessions(server):
    conns = [psycopg.connect(server.dsn, autocommit=True) for _ in range(20)]
    try:
        for i, c in enumerate(conns):
            assert c.execute("SELECT %s::int4", [i]).fetchone() == (i,)
    finally:
        for c in conns:
            c.close()


def test_each_new_connection_starts_clean(server):
    # Connections that follow each other may be served by the same server thread (Floe keeps
    # connection threads for the next client): nothing of one session may show in the next.
    for i in range(30):
        with psycopg.connect(server.dsn, autocommit=True) as c:
            assert c.execute("SHOW application_name").fetchone() == ("",)
            assert c.execute("SHOW statement_timeout").fetchone() == ("0",)
            assert c.execute("SELECT pg_backend_pid() > 0").fetchone() == (True,)
            c.execute("SET application_name = 'leftover'")
            c.execute("SET statement_timeout = 1234")
            c.execute("PREPARE leftover AS SELECT $1::int + %d" % i)
            assert c.execute("EXECUTE leftover(1)").fetchone() == (1 + i,)
            c.execute("BEGIN")
            c.execute("SELECT 1")
            # Closed inside an open transaction block.


@pytest.mark.skipif(TARGET != "floe", reason="Floe's connection threads")
def test_connection_threads_are_reused(own_server):
    # A connection's thread waits for the next client instead of exiting, so clients that
    # connect per transaction do not start a thread each time.
    import os
    import time

    def connection_threads():
        tasks = f"/proc/{own_server.proc.pid}/task"
        names = []
        for t in os.listdir(tasks):
            try:
                with open(f"{tasks}/{t}/comm") as f:
                    names.append(f.read().strip())
            except OSError:
                pass  # exited meanwhile
        return names.count("floe-conn")

    for i in range(10):
        with psycopg.connect(own_server.dsn, autocommit=True) as c:
            assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)
        time.sleep(0.1)
    # One thread served them all, unless a client came before the last one's thread was back
    # in the idle list.
    assert 1 <= connection_threads() <= 5


@pytest.mark.skipif(TARGET != "floe", reason="Floe's --memory-limit")
def test_small_memory_limit_still_sorts():
    """With a small --memory-limit an ORDER BY of a few rows works and a large one spills
    (every sort failed with 53200 below ~32MB: each partition set aside 10 MB to merge spills)."""
    from servers import start_floe

    server = start_floe("--memory-limit", "16MB")
    try:
        with psycopg.connect(server.dsn, autocommit=True) as c:
            rows = c.execute("SELECT g FROM generate_series(1, 3) g ORDER BY g DESC").fetchall()
            assert rows == [(3,), (2,), (1,)]
            big = c.execute(
                "SELECT count(*), min(x), max(x) FROM "
                "(SELECT g AS x FROM generate_series(1, 300000) g ORDER BY g DESC) t"
            ).fetchone()
            assert big == (300000, 1, 300000)
    finally:
        server.stop()

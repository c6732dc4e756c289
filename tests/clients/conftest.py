"""Shared fixtures for the driver tests: each test module gets its own server.

By default that is `floe serve` (binary from FLOE_BIN, else $CARGO_TARGET_DIR/debug/floe with
CARGO_TARGET_DIR defaulting to ~/.cache/floe-target) on a free loopback port with a fresh data
directory. With FLOE_CLIENT_TARGET=postgres the same tests run against a private PostgreSQL 15
(from /usr/lib/postgresql/15/bin, as the `postgres` OS user when run as root), which shows that
what the tests expect is what PostgreSQL does. Known Floe differences are marked with
`floe_xfail`, which only applies to the Floe target.
"""

import asyncio
import os

import pytest

from servers import start_floe, start_postgres

TARGET = os.environ.get("FLOE_CLIENT_TARGET", "floe")


def floe_xfail(reason):
    """A strict xfail for a known Floe bug or difference; PostgreSQL must pass the test."""
    return pytest.mark.xfail(TARGET == "floe", strict=True, reason=reason)


@pytest.fixture(scope="module")
def server():
    """A server of its own for each test module; stopped (and checked alive) at teardown."""
    srv = start_postgres() if TARGET == "postgres" else start_floe()
    try:
        yield srv
        srv.assert_alive()
    finally:
        srv.stop()


@pytest.fixture
def own_server():
    """A server for one test alone, for tests that might crash it (so a crash fails only that
    test, not the rest of the module)."""
    srv = start_postgres() if TARGET == "postgres" else start_floe()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _server_survives(request):
    """Every test that used a server leaves it running: a crash fails the test that caused it."""
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").assert_alive()


@pytest.fixture(scope="module")
def loop():
    """One event loop per module, so module-scoped asyncpg connections can be shared."""
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()

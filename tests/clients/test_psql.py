"""psql against a real server: -c, multi-statement strings, scripts, ON_ERROR_STOP, exit codes."""

import os
import shutil
import subprocess

import pytest

from conftest import floe_xfail

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


def psql(server, *args, stdin=None):
    env = dict(os.environ, PGCONNECT_TIMEOUT="10", PGOPTIONS="", PGTZ="UTC")
    for var in ("PGPASSWORD", "PGSERVICE", "PGDATABASE", "PGHOST", "PGPORT", "PGUSER"):
        env.pop(var, None)
    return subprocess.run(
        ["psql", "-X", "-h", server.host, "-p", str(server.port), "-U", "postgres", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_select_1(server):
    out = psql(server, "-c", "select 1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n") == [
        " ?column? ",
        "----------",
        "        1",
        "(1 row)",
        "",
        "",
    ]
    assert out.stderr == ""


def test_select_1_unaligned(server):
    out = psql(server, "-At", "-c", "select 1")
    assert (out.returncode, out.stdout, out.stderr) == (0, "1\n", "")


def test_multi_statement_command_shows_every_result(server):
    # psql 15 sends the string as one simple Query and prints each result.
    out = psql(server, "-At", "-c", "select 1; select 'two' as b; select 3, 4")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "1\ntwo\n3|4\n"


def test_several_c_options_run_in_order(server):
    out = psql(server, "-At", "-c", "select 1", "-c", "select 2")
    assert (out.returncode, out.stdout) == (0, "1\n2\n"), out.stderr


def test_error_exit_code(server):
    out = psql(server, "-c", "selec 1")
    assert out.returncode == 1
    assert 'syntax error at or near "selec"' in out.stderr
    assert out.stderr.startswith("ERROR:")


def test_error_in_multi_statement_command_stops_it(server):
    # One simple Query: the statements after the failing one are not run.
    out = psql(server, "-At", "-c", "select 1; select 1/0; select 3")
    assert out.returncode == 1
    assert out.stdout == "1\n"
    assert "division by zero" in out.stderr


def test_on_error_stop_in_script(server):
    script = "\\set ON_ERROR_STOP on\nselect 1;\nselec 2;\nselect 3;\n"
    out = psql(server, "-At", stdin=script)
    assert out.returncode == 3
    assert out.stdout == "1\n"
    assert 'syntax error at or near "selec"' in out.stderr


def test_on_error_stop_variable_flag(server):
    out = psql(server, "-At", "-v", "ON_ERROR_STOP=1", stdin="select 1;\nselect 1/0;\nselect 3;\n")
    assert out.returncode == 3
    assert out.stdout == "1\n"


def test_script_continues_after_error_without_on_error_stop(server):
    out = psql(server, "-At", stdin="select 1;\nselec 2;\nselect 3;\n")
    assert out.returncode == 0
    assert out.stdout == "1\n3\n"
    assert "syntax error" in out.stderr


def test_transaction_block_and_failed_transaction(server):
    script = (
        "begin;\n"
        "select 1/0;\n"
        "select 2;\n"
        "rollback;\n"
        "select 'after';\n"
    )
    out = psql(server, "-At", stdin=script)
    assert out.returncode == 0
    assert out.stdout == "BEGIN\nROLLBACK\nafter\n"
    assert "division by zero" in out.stderr
    assert "current transaction is aborted" in out.stderr


def test_gset_and_variables(server):
    script = "select 40 + 2 as answer \\gset\n\\echo :answer\nselect :answer * 2;\n"
    out = psql(server, "-At", stdin=script)
    assert (out.returncode, out.stdout) == (0, "42\n84\n"), out.stderr


def test_gdesc(server):
    # \gdesc: Parse/Describe, then a query formatting the types with pg_catalog.format_type().
    out = psql(server, "-At", stdin="select 1::int4 as a, 'x'::text as b \\gdesc\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "a|integer\nb|text\n"


def test_psql_types_print_like_postgres(server):
    query = (
        "select 1::int2, 2::int8, 0.1::float8, 'ab'::text, true, "
        "date '2024-02-29', time '12:34:56.5', timestamp '2024-02-29 12:34:56', "
        "'\\x00ff'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, array[1,2,3], "
        "array['a b', null]"
    )
    out = psql(server, "-At", "-c", query)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        "1|2|0.1|ab|t|2024-02-29|12:34:56.5|2024-02-29 12:34:56|\\x00ff|"
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{1,2,3}|{"a b",NULL}\n'
    )


def test_psql_numeric_keeps_scale(server):
    out = psql(server, "-At", "-c", "select 1.50::numeric, '2.000'::numeric")
    assert (out.returncode, out.stdout) == (0, "1.50|2.000\n"), out.stderr


def test_psql_interval_literal(server):
    out = psql(server, "-At", "-c", "select interval '1 day 02:03:04', '-1 days +02:00'::interval")
    assert (out.returncode, out.stdout) == (0, "1 day 02:03:04|-1 days +02:00:00\n"), out.stderr


def test_psql_timestamp_difference(server):
    out = psql(server, "-At", "-c",
               "select timestamp '2024-01-01 00:00:00' - timestamp '2023-12-30 22:00:00'")
    assert (out.returncode, out.stdout) == (0, "1 day 02:00:00\n"), out.stderr


def test_psql_timestamp_literal_without_seconds(server):
    out = psql(server, "-At", "-c", "select timestamp '2024-01-01 10:30'")
    assert (out.returncode, out.stdout) == (0, "2024-01-01 10:30:00\n"), out.stderr


def test_empty_command(server):
    out = psql(server, "-c", "")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_server_still_serves_after_psql_runs(server):
    out = psql(server, "-At", "-c", "select 'still here'")
    assert (out.returncode, out.stdout) == (0, "still here\n")

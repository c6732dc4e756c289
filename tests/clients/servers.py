"""Starting and stopping the servers the Python tests talk to: `floe serve` (binary from
FLOE_BIN, else $CARGO_TARGET_DIR/debug/floe with CARGO_TARGET_DIR defaulting to
~/.cache/floe-target) and a private PostgreSQL 15 (from /usr/lib/postgresql/15/bin, as the
`postgres` OS user when run as root), each on a free loopback port with a fresh data directory.
Shared by the driver tests' fixtures (conftest.py) and the differential tester
(tests/differential)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 60.0


def floe_binary():
    path = os.environ.get("FLOE_BIN")
    if path:
        return Path(path)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/floe-target")
    return Path(target) / "debug" / "floe"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running server process on 127.0.0.1:port."""

    def __init__(self, kind, proc, port, workdir, log_path):
        self.kind = kind
        self.proc = proc
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir
        self.log_path = log_path

    @property
    def dsn(self):
        return f"host={self.host} port={self.port} user=postgres dbname=postgres connect_timeout=10"

    @property
    def url(self):
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def log_tail(self, lines=40):
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def assert_alive(self):
        code = self.proc.poll()
        assert code is None, f"{self.kind} server exited with {code}; log:\n{self.log_tail()}"

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} server exited with {self.proc.returncode} during startup:\n"
                    f"{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.1)
                continue
            if self.kind == "postgres" and not self._pg_accepts():
                time.sleep(0.1)
                continue
            return
        self.stop()
        raise RuntimeError(f"{self.kind} server did not listen within {START_TIMEOUT}s")

    def _pg_accepts(self):
        # The port opens before PostgreSQL finishes recovery; wait until it takes sessions.
        out = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", "postgres"],
            capture_output=True,
        )
        return out.returncode == 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_floe(*extra_args):
    """A Floe server on a fresh data dir; `extra_args` are more `floe serve` options."""
    binary = floe_binary()
    if not binary.exists():
        raise RuntimeError(f"floe binary {binary} not found; build it or set FLOE_BIN")
    workdir = tempfile.mkdtemp(prefix="floe-client-test-")
    port = free_port()
    log_path = os.path.join(workdir, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(binary),
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                os.path.join(workdir, "data"),
                "--log-level",
                os.environ.get("FLOE_TEST_LOG", "warn"),
                *extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server("floe", proc, port, workdir, log_path)
    server.wait_ready()
    return server


def start_postgres():
    if not (PG_BIN / "postgres").exists():
        raise RuntimeError(f"PostgreSQL 15 not found in {PG_BIN}")
    workdir = tempfile.mkdtemp(prefix="floe-client-pg-")
    as_root = os.geteuid() == 0

    def command(program, *args):
        cmd = [str(PG_BIN / program), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if as_root else cmd

    if as_root:
        subprocess.run(["chown", "-R", "postgres", workdir], check=True)
    pgdata = os.path.join(workdir, "pgdata")
    # Floe's locale: code point order (as C) with Unicode case mapping (upper('ü') is 'Ü').
    subprocess.run(
        command("initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                "--locale=C.UTF-8", "--no-sync"),
        check=True,
        capture_output=True,
    )
    port = free_port()
    log_path = os.path.join(workdir, "server.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command("postgres", "-D", pgdata, "-p", str(port), "-h", "127.0.0.1", "-k", workdir,
                    "-c", "fsync=off", "-c", "TimeZone=UTC"),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server("postgres", proc, port, workdir, log_path)
    server.wait_ready()
    return server

"""Starting and stopping the servers under test: Floe and a private PostgreSQL 15."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .common import FLOE, PG, PG_BIN, HarnessError, StepFailed, one_line

# PostgreSQL settings used for every suite. Durable like Floe (fsync, synchronous commit),
# memory sized for a 24 GiB machine rather than the 128 MB default, enough connections for
# 32 pgbench clients and the 100 idle connections of the wire suite.
PG_SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "effective_cache_size": "8GB",
    "max_wal_size": "8GB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "listen_addresses": "127.0.0.1",
}

FLOE_MAX_CONNECTIONS = 300


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def as_postgres_user(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def tail(path, n=15, offset=0):
    """The last n lines of a log file, from byte offset on (this server process's part)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return "".join(f.read().decode(errors="replace").splitlines(True)[-n:])
    except OSError:
        return ""


def fs_type(path):
    try:
        out = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def tree_pids(root):
    pids = [root]
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    children = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            children.setdefault(int(parts[1]), []).append(int(parts[0]))
    i = 0
    while i < len(pids):
        pids.extend(children.get(pids[i], []))
        i += 1
    return pids


def gone(pid):
    """True when pid no longer runs (exited, or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def sigkill_tree(root, timeout=30):
    """SIGKILLs root and then its descendants (a crash: nothing gets to clean up), and waits
    until all of them are gone."""
    pids = tree_pids(root)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while time.time() < deadline and not all(gone(p) for p in pids):
        time.sleep(0.02)


def dir_bytes(path):
    """Bytes a directory tree occupies on disk (allocated blocks, like du)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def dir_breakdown(path):
    """[(top-level entry, bytes on disk)] of a directory, largest first."""
    out = []
    try:
        names = os.listdir(path)
    except OSError:
        return out
    for name in names:
        full = os.path.join(path, name)
        try:
            size = dir_bytes(full) if os.path.isdir(full) and not os.path.islink(full) \
                else os.lstat(full).st_blocks * 512
        except OSError:
            continue
        out.append((name, size))
    return sorted(out, key=lambda e: -e[1])


def smaps_kib(pid, key):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return 0
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def pg_error_text(e):
    """The server's error as PostgreSQL prints it: 'ERROR:  message (SQLSTATE xxxxx)'."""
    diag = getattr(e, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag else None
    sqlstate = getattr(e, "sqlstate", None)
    if primary:
        sev = getattr(diag, "severity", None) or "ERROR"
        return one_line(f"{sev}: {primary}" + (f" (SQLSTATE {sqlstate})" if sqlstate else ""))
    return one_line(str(e) or type(e).__name__)


class Server:
    name = "?"

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = None
        self.proc = None
        self.log_path = None
        self.start_error = None
        self.log_offset = 0  # where this process's lines start in the (appended) log
        self.generation = 0  # incremented by every (re)start: connections of an older one are stale
        self.restarts = []  # steps before which a crashed server was restarted

    def revive(self, step):
        """Restarts a server that died mid-suite (same data dir), so that one crash does not
        hide every later step. Returns False when it cannot or should not be restarted."""
        return False

    def launch(self):
        """Starts the server process on its existing data directory without waiting for it."""
        raise NotImplementedError

    def wait_ready(self, timeout):
        raise NotImplementedError

    def kill(self):
        """Crashes the server: SIGKILL, no shutdown, then waits until its processes are gone."""
        raise NotImplementedError

    def restart(self, timeout=60):
        """Starts the server again on the same data directory (after stop() or kill())."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def dead_message(self):
        if self.start_error:
            return self.start_error
        code = self.proc.poll() if self.proc else None
        last = tail(self.log_path, 5, self.log_offset)
        last = re.sub(r"(thread '[^']*') \(\d+\)", r"\1", last)  # same crash, same text
        return (f"the {self.name} server exited (code {code}); last log lines: "
                f"{one_line(last, 600)}")

    def failed(self, e):
        """The StepFailed for a client error: the server's message, or — when the connection
        broke because the server died — its exit and last log lines. A dying process can take
        a moment to exit (an abort writes its message first), so wait for it briefly."""
        import psycopg

        if isinstance(e, psycopg.OperationalError) and self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if not self.alive():
            return StepFailed(self.dead_message())
        return StepFailed(pg_error_text(e))

    def connect(self, autocommit=True):
        import psycopg

        if not self.alive():
            raise StepFailed(self.dead_message())
        try:
            return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                   dbname="postgres", autocommit=autocommit, connect_timeout=30)
        except psycopg.Error as e:
            raise self.failed(e) from None

    def execute(self, sql, conn=None):
        """Runs statements; raises StepFailed with the server's error message."""
        import psycopg

        own = conn is None
        if own:
            conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                if cur.description is not None:
                    return cur.fetchall()
                return None
        except psycopg.Error as e:
            raise self.failed(e) from None
        finally:
            if own:
                conn.close()


class FloeServer(Server):
    name = FLOE

    def __init__(self, binary, workdir, extra_args=()):
        super().__init__(workdir)
        self.binary = binary
        self.data_dir = os.path.join(workdir, "floe-data")
        self.extra_args = list(extra_args)  # e.g. ["--flush-age", "0"] for the cold tier
        self.log_level = "warn"  # a suite may raise it (ivm reads Floe's rehydration line)

    MAX_RESTARTS = 3

    def revive(self, step):
        if self.start_error or self.proc is None or self.alive():
            return False
        if len(self.restarts) >= self.MAX_RESTARTS:
            return False
        self.restarts.append(step)
        try:
            self.start()
        except StepFailed as e:
            self.start_error = f"restart after a crash failed: {e.message}"
            return False
        return True

    def start(self, timeout=60):
        """Starts Floe (on its data directory, created on first use) and waits for its port."""
        return self.restart(timeout)

    def launch(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.generation += 1
        self.port = free_port()
        self.log_path = os.path.join(self.workdir, "floe.log")
        log = open(self.log_path, "ab")
        self.log_offset = log.tell()
        env = dict(os.environ)
        env.pop("FLOE_LOG_LEVEL", None)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             self.data_dir, "--log-level", self.log_level, "--max-connections",
             str(FLOE_MAX_CONNECTIONS)] + self.extra_args,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        log.close()

    def wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise StepFailed("Floe did not start: "
                                 + one_line(tail(self.log_path, 15, self.log_offset), 600))
            if port_open(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise StepFailed(f"Floe did not open its port within {timeout:g} s")

    def kill(self):
        if self.alive():
            sigkill_tree(self.proc.pid)
        if self.proc is not None:
            self.proc.wait()

    def memory_kib(self):
        """RSS of the one Floe process."""
        return smaps_kib(self.proc.pid, "Rss") if self.alive() else 0

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PostgresServer(Server):
    name = PG

    def __init__(self, workdir):
        super().__init__(workdir)
        self.base = None
        self.data_dir = None

    def _base_dir(self):
        """A directory the postgres OS user can use, on the same file system as the work dir
        when possible (so fsync costs the same as for Floe)."""
        os.makedirs(self.workdir, exist_ok=True)
        if os.geteuid() != 0:
            return tempfile.mkdtemp(prefix="pg-", dir=self.workdir)
        base = tempfile.mkdtemp(prefix="pg-", dir=self.workdir)
        shutil.chown(base, "postgres", "postgres")
        ok = subprocess.run(as_postgres_user(["test", "-w", base]), capture_output=True)
        if ok.returncode == 0:
            return base
        os.rmdir(base)
        base = tempfile.mkdtemp(prefix="floe-bench-pg-")
        shutil.chown(base, "postgres", "postgres")
        return base

    def start(self):
        if not os.path.exists(f"{PG_BIN}/postgres"):
            raise HarnessError(f"PostgreSQL 15 is not installed at {PG_BIN}")
        self.base = self._base_dir()
        self.data_dir = os.path.join(self.base, "data")
        self.port = free_port()
        init = subprocess.run(
            as_postgres_user([f"{PG_BIN}/initdb", "-D", self.data_dir, "-U", "postgres",
                              "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]),
            capture_output=True, text=True)
        if init.returncode != 0:
            raise HarnessError(f"initdb failed: {one_line(init.stderr, 600)}")
        return self.restart()

    def launch(self):
        """Starts the postmaster on the existing cluster (same data directory and port)."""
        self.generation += 1
        self.log_path = os.path.join(self.workdir, "postgres.log")
        log = open(self.log_path, "ab")
        self.log_offset = log.tell()
        opts = []
        for k, v in PG_SETTINGS.items():
            opts += ["-c", f"{k}={v}"]
        self.proc = subprocess.Popen(
            as_postgres_user([f"{PG_BIN}/postgres", "-D", self.data_dir, "-p", str(self.port),
                              "-k", self.base] + opts),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("PostgreSQL did not start: "
                                   + one_line(tail(self.log_path, 15, self.log_offset), 600))
            ready = subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p",
                                    str(self.port)])
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        raise HarnessError(f"PostgreSQL did not become ready within {timeout:g} s")

    def kill(self):
        """SIGKILLs the postmaster, then its backends and auxiliary processes (a crash: the next
        start runs WAL crash recovery), and waits until all of them are gone."""
        pid = self.postmaster_pid()
        if pid is not None and not gone(pid):
            sigkill_tree(pid)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)  # the runuser wrapper exits with the postmaster
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data_dir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def memory_kib(self):
        """PSS summed over the postmaster and all its children (shared buffers counted once)."""
        pid = self.postmaster_pid()
        if pid is None:
            return 0
        return sum(smaps_kib(p, "Pss") for p in tree_pids(pid))

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            subprocess.run(as_postgres_user([f"{PG_BIN}/pg_ctl", "-D", self.data_dir, "-m",
                                             "fast", "-w", "stop"]),
                           capture_output=True)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.base and not self.base.startswith(self.workdir):
            shutil.rmtree(self.base, ignore_errors=True)


class Conn:
    """One client connection to a server, reopened (and its setup statements re-run) when the
    server dropped it or was restarted."""

    def __init__(self, server, setup=()):
        self.server, self.setup = server, list(setup)
        self._c, self._gen = None, None

    def get(self):
        c = self._c
        if c is None or c.closed or c.broken or self._gen != self.server.generation:
            if c is not None and not c.closed:
                c.close()
            self._c = None
            c = self.server.connect()
            self._gen = self.server.generation
            for stmt in self.setup:
                self.server.execute(stmt, c)
            self._c = c
        return c

    def close(self):
        if self._c is not None and not self._c.closed:
            self._c.close()


class Servers:
    """Both servers of one suite, started fresh for it. Floe failing to start is recorded
    (Floe cannot run the suite yet); PostgreSQL failing is a harness error."""

    def __init__(self, ctx, suite, floe_args=()):
        self.ctx = ctx
        self.dir = os.path.join(ctx.work, suite)
        self.floe = FloeServer(ctx.floe_bin, os.path.join(self.dir, "floe"), floe_args)
        self.pg = PostgresServer(os.path.join(self.dir, "postgres"))

    def __enter__(self):
        self.ctx.log(f"starting PostgreSQL 15 and Floe in {self.dir}")
        self.pg.start()
        try:
            self.floe.start()
        except StepFailed as e:
            self.floe.start_error = e.message
            self.ctx.log(e.message)
        return self

    def both(self):
        return [self.floe, self.pg]

    def __exit__(self, *exc):
        for s in (self.floe, self.pg):
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001 - stopping must not hide the real error
                self.ctx.log(f"stopping {s.name}: {e}")
        if not self.ctx.args.keep_data:
            shutil.rmtree(self.floe.data_dir, ignore_errors=True)
            if self.pg.data_dir:
                shutil.rmtree(self.pg.data_dir, ignore_errors=True)
        return False

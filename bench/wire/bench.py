#!/usr/bin/env python3
"""Protocol benchmark: Floe vs PostgreSQL 15 on this machine, in the same run.

Measures, for each server:
  * `SELECT 1` round trips per second with 8 connections, extended protocol (pgbench
    `-M extended` and `-M prepared`) and simple protocol (`-M simple`);
  * connection setup rate (pgbench `-C`: a new connection for every transaction);
  * idle memory per connection (100 idle connections; Floe: growth of the server's RSS;
    PostgreSQL: growth of the summed PSS of all its processes).

Prints a Markdown table with Floe/PostgreSQL ratios (higher is better for rates, lower for
memory). Only the Python standard library is used. Run through `bench/wire/run.sh`, which
builds Floe in release mode first.
"""

import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def as_postgres_user(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class Server:
    def __init__(self, name, port, proc, workdir):
        self.name, self.port, self.proc, self.workdir = name, port, proc, workdir

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_floe(binary):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="floe-bench-")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", workdir,
         "--log-level", "warn", "--max-connections", "300"],
        stdin=subprocess.DEVNULL,
    )
    wait_port(port)
    return Server("Floe", port, proc, workdir)


def start_postgres():
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="floe-bench-pg-")
    os.chmod(workdir, 0o777)
    pgdata = os.path.join(workdir, "pgdata")
    subprocess.run(
        as_postgres_user([f"{PG_BIN}/initdb", "-D", pgdata, "-U", "postgres", "--auth=trust",
                          "--encoding=UTF8", "--locale=C", "--no-sync"]),
        check=True, stdout=subprocess.DEVNULL,
    )
    proc = subprocess.Popen(
        as_postgres_user([f"{PG_BIN}/postgres", "-D", pgdata, "-p", str(port), "-h", "127.0.0.1",
                          "-k", workdir, "-c", "max_connections=300"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    time.sleep(1)
    return Server("PostgreSQL 15", port, proc, workdir)


def pgbench(port, mode, seconds, clients, connect_each=False):
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write("SELECT 1;\n")
    script.close()
    os.chmod(script.name, 0o644)
    cmd = [f"{PG_BIN}/pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
           "-f", script.name, "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds),
           "-M", mode, "postgres"]
    if connect_each:
        cmd.insert(1, "-C")
    out = subprocess.run(cmd, capture_output=True, text=True)
    os.unlink(script.name)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed: {out.stderr}\n{out.stdout}")
    m = re.search(r"tps = ([0-9.]+)", out.stdout)
    lat = re.search(r"latency average = ([0-9.]+) ms", out.stdout)
    return float(m.group(1)), float(lat.group(1)) if lat else None


def startup_packet():
    params = b"user\0postgres\0database\0postgres\0\0"
    body = struct.pack("!I", 196608) + params
    return struct.pack("!I", len(body) + 4) + body


def open_idle(port, n):
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(startup_packet())
        buf = b""
        while True:  # read until ReadyForQuery
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("server closed the connection during startup")
            buf += chunk
            ok = False
            i = 0
            while i + 5 <= len(buf):
                tag = buf[i:i + 1]
                length = struct.unpack("!I", buf[i + 1:i + 5])[0]
                if i + 1 + length > len(buf):
                    break
                if tag == b"Z":
                    ok = True
                i += 1 + length
            if ok:
                break
        conns.append(s)
    return conns


def tree_pids(root):
    pids = [root]
    try:
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
        children = {}
        for line in out.stdout.split("\n"):
            parts = line.split()
            if len(parts) == 2:
                children.setdefault(int(parts[1]), []).append(int(parts[0]))
        i = 0
        while i < len(pids):
            pids.extend(children.get(pids[i], []))
            i += 1
    except OSError:
        pass
    return pids


def memory_kib(server):
    """Floe: RSS of its one process. PostgreSQL: PSS summed over postmaster and backends."""
    total = 0
    for pid in tree_pids(server.proc.pid):
        path = f"/proc/{pid}/smaps_rollup"
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        key = "Pss:" if server.name != "Floe" else "Rss:"
        m = re.search(rf"^{key}\s+(\d+) kB", text, re.M)
        if m:
            total += int(m.group(1))
    return total


def idle_memory_per_connection(server, n=100):
    before = memory_kib(server)
    conns = open_idle(server.port, n)
    time.sleep(1)
    after = memory_kib(server)
    for c in conns:
        c.close()
    return max(after - before, 0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floe", required=True, help="path to a release build of floe")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--output", help="also write the Markdown report here")
    args = ap.parse_args()

    results = {}
    for start in (lambda: start_floe(args.floe), start_postgres):
        server = start()
        try:
            r = {}
            for mode in ("extended", "prepared", "simple"):
                r[f"SELECT 1 tps, {mode}"] = pgbench(server.port, mode, args.seconds, args.clients)[0]
            r["connections/s (pgbench -C)"] = pgbench(server.port, "simple", max(args.seconds // 2, 3),
                                                      args.clients, connect_each=True)[0]
            r["idle KiB per connection"] = idle_memory_per_connection(server)
            results[server.name] = r
            print(f"{server.name}: {r}", file=sys.stderr)
        finally:
            server.stop()

    floe, pg = results["Floe"], results["PostgreSQL 15"]
    lines = [
        f"Protocol benchmark, {args.clients} clients, {args.seconds} s per run, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores",
        "",
        "| metric | Floe | PostgreSQL 15 | Floe / PG |",
        "|---|---:|---:|---:|",
    ]
    for key in floe:
        ratio = floe[key] / pg[key] if pg[key] else float("nan")
        lines.append(f"| {key} | {floe[key]:.1f} | {pg[key]:.1f} | {ratio:.2f}x |")
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()

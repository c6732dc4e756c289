"""wire: the protocol itself (was bench/wire/bench.py).

* `SELECT 1` round trips with 8 connections: pgbench -M extended, -M prepared and -M simple
  (throughput, and latency percentiles from pgbench's per-transaction log);
* connection setup rate (pgbench -C: a new connection for every transaction);
* idle memory per connection (N idle connections; Floe: growth of its RSS; PostgreSQL: growth
  of the PSS summed over postmaster and backends).
"""

import os
import socket
import struct
import time

from .. import plots
from ..common import FLOE, PG, Notes, Outcome, StepFailed, measure, percentile, ratio, \
    ratio_cell, run_pgbench
from ..report import image, table
from ..servers import Servers

MODES = ("extended", "prepared", "simple")
CLIENTS = 8


def startup_packet():
    params = b"user\0postgres\0database\0postgres\0\0"
    body = struct.pack("!I", 196608) + params
    return struct.pack("!I", len(body) + 4) + body


def open_idle(port, n):
    """Opens n connections through startup, up to ReadyForQuery, and leaves them idle."""
    conns = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            conns.append(s)
            s.sendall(startup_packet())
            buf = b""
            ready = False
            while not ready:
                chunk = s.recv(4096)
                if not chunk:
                    raise StepFailed(f"the server closed connection {len(conns)} during startup")
                buf += chunk
                i = 0
                while i + 5 <= len(buf):
                    tag = buf[i:i + 1]
                    length = struct.unpack("!I", buf[i + 1:i + 5])[0]
                    if i + 1 + length > len(buf):
                        break
                    if tag == b"E":
                        raise StepFailed("ErrorResponse during startup: "
                                         + buf[i + 5:i + 1 + length].decode(errors="replace"))
                    if tag == b"Z":
                        ready = True
                    i += 1 + length
    except BaseException:
        for c in conns:
            c.close()
        raise
    return conns


def idle_kib_per_connection(server, n):
    before = server.memory_kib()
    conns = open_idle(server.port, n)
    try:
        time.sleep(1)
        after = server.memory_kib()
    finally:
        for c in conns:
            c.close()
    time.sleep(0.5)
    return max(after - before, 0) / n


def run(ctx):
    seconds = ctx.args.wire_seconds or (1 if ctx.smoke else 10)
    idle_n = 20 if ctx.smoke else 100
    script = os.path.join(ctx.work, "wire", "select1.sql")
    os.makedirs(os.path.dirname(script), exist_ok=True)
    with open(script, "w") as f:
        f.write("SELECT 1;\n")
    notes = Notes()
    metrics = {}  # metric -> {server: Outcome}
    lat = {}  # (server, mode) -> latencies of all repeats

    def outcome(metric, server):
        return metrics.setdefault(metric, {}).setdefault(server, Outcome())

    with Servers(ctx, "wire") as srv:
        for rep in range(ctx.repeat):
            for server in srv.both():
                ctx.log(f"wire: repeat {rep + 1}/{ctx.repeat} on {server.name}")
                for mode in MODES:
                    logdir = os.path.join(srv.dir, "pgbench", f"{server.name[:4]}-{mode}-{rep}")

                    def select1(mode=mode, logdir=logdir):
                        r = run_pgbench(server.port, ["-n", "-f", script, "-c", str(CLIENTS),
                                                      "-j", str(CLIENTS),
                                                      "-T", str(seconds), "-M", mode],
                                        logdir, timeout=seconds + 120,
                                        keep_logs=ctx.args.keep_data)
                        lat.setdefault((server.name, mode), []).extend(r["lat_ms"])
                        return r

                    r = measure(ctx, server, outcome(f"SELECT 1 tps, -M {mode}", server.name),
                                notes, f"SELECT 1 -M {mode}", select1, key=lambda r: r["tps"])
                    if r is not None:
                        if r["avg_ms"] is not None:
                            outcome(f"SELECT 1 mean ms, -M {mode}", server.name).add(
                                r["avg_ms"])
                        outcome(f"SELECT 1 p50 ms, -M {mode}", server.name).add(
                            percentile(r["lat_ms"], 50))
                        outcome(f"SELECT 1 p99 ms, -M {mode}", server.name).add(
                            percentile(r["lat_ms"], 99))
                logdir = os.path.join(srv.dir, "pgbench", f"{server.name[:4]}-connect-{rep}")
                measure(ctx, server, outcome("connections/s (pgbench -C)", server.name), notes,
                        "connection rate (pgbench -C)",
                        lambda logdir=logdir: run_pgbench(
                            server.port, ["-n", "-C", "-f", script, "-c", str(CLIENTS), "-j",
                                          str(CLIENTS), "-T",
                                          str(max(seconds, 2)), "-M", "simple"],
                            logdir, timeout=seconds + 120,
                                        keep_logs=ctx.args.keep_data)["tps"])
                measure(ctx, server, outcome("idle KiB per connection", server.name), notes,
                        f"{idle_n} idle connections",
                        lambda: idle_kib_per_connection(server, idle_n))

    # Fill in missing cells so every metric lists both servers.
    for m in metrics.values():
        for name in (FLOE, PG):
            m.setdefault(name, Outcome())

    lower_better = ("ms", "KiB")
    rows = []
    cats, ratios = [], []
    for metric, by in metrics.items():
        if not by[FLOE].ok and by[FLOE].error is None and " ms, " in metric:
            # No latency where the throughput run itself failed: show that run's footnote.
            by[FLOE] = metrics[f"SELECT 1 tps, {metric.split(', ', 1)[1]}"][FLOE]
        r = ratio(by[FLOE], by[PG])
        better = "lower" if any(u in metric for u in lower_better) else "higher"
        fmt = "{:.3f}" if "ms" in metric else "{:.0f}"
        rows.append([metric, by[FLOE].cell(fmt), by[PG].cell(fmt), ratio_cell(r), better])
        if "tps" in metric or "connections" in metric or "KiB" in metric:
            cats.append(metric.replace("SELECT 1 ", "").replace(" (pgbench -C)", ""))
            ratios.append(r)
    out = [f"{CLIENTS} pgbench clients (one pgbench thread each), {seconds} s per run, "
           f"{ctx.repeat} run(s) each; "
           f"{idle_n} idle connections for the memory figure. Cells: median [min–max]. "
           "Mean latency is pgbench's own `latency average` (run time / transactions); p50 and "
           "p99 come from its per-transaction log, where a reply that has already arrived when "
           "pgbench looks is logged as 0 µs (pgbench reads its clock lazily) — so a fast "
           "server's p50 can read 0.000.\n",
           table(["metric", "Floe", "PostgreSQL 15", "Floe / PG", "better"], rows, "lrrrl")]
    out.append(notes.markdown())
    png = plots.ratio_bars(os.path.join(ctx.out, "wire-ratio.png"),
                           "wire: Floe / PostgreSQL 15 (rates: higher is better; "
                           "memory: lower is better)", cats, {"Floe / PG": ratios}, "ratio")
    out.append(image("wire ratios", png))
    curves = {}
    for mode in MODES:
        for name in (FLOE, PG):
            curves[f"{'Floe' if name == FLOE else 'PG'}, -M {mode}"] = sorted(
                lat.get((name, mode), []))
    png = plots.latency_cdf(os.path.join(ctx.out, "wire-latency-cdf.png"),
                            f"SELECT 1 latency, {CLIENTS} clients (solid: Floe, dashed: PG)",
                            curves)
    out.append(image("SELECT 1 latency CDF", png))
    return "\n".join(out)

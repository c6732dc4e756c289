"""restart: how long a server takes to come back after a crash that follows ~1 GB of committed
writes. Floe against PostgreSQL 15's WAL crash recovery, in the same run.

Per server and run, on a fresh data directory:

1. `CREATE TABLE r (id bigint PRIMARY KEY, payload text)`;
2. commit `--restart-mb` MiB (default 1024; smoke 20) of row data over the wire from one
   client, each batch of ~8 MiB its own transaction: COPY batches of ~1 KiB rows until an
   eighth of it is loaded (the live data), then batches of single-row UPDATEs (pipelined) that
   give every row a new payload, pass after pass, until the total is reached — the live table
   stays at ~1/8 of what the log has to hold. Every payload is 1000 base64 characters of
   random bytes, different for every row version, so compression cannot shrink the log;
3. SIGKILL the server (Floe: its process; PostgreSQL: the postmaster, then its backends) — a
   crash, no shutdown checkpoint;
4. start it again on the same data directory and time from the process start until a new
   client's `SELECT count(*) FROM r` returns; the count must equal the rows committed, and the
   rows of the last committed UPDATE batch must carry its payloads.

The OS page cache stays warm (a process crash, not a machine crash). Floe's target: back in
under 10 s after 1 GB (1024 MiB) of committed writes; reported as text, never asserted.
"""

import base64
import os
import random
import time

from ..common import FLOE, PG, Notes, Outcome, StepFailed, measure, ratio, ratio_cell
from ..report import fmt_num, table
from ..servers import Servers, dir_breakdown, dir_bytes

MiB = 1 << 20
ROW_PAYLOAD = 1000  # bytes of payload per row; id + payload is ~1 KiB a row version
LIVE_FRACTION = 8  # live data = total / 8
TARGET_S = 10.0
TARGET_MIB = 1024
COME_BACK_TIMEOUT = 900  # s a server gets to answer again after the crash

DDL = "CREATE TABLE r (id bigint PRIMARY KEY, payload text)"


def payloads(seed, n):
    """n distinct ROW_PAYLOAD-character payloads: base64 of (seeded) random bytes, so neither
    a compressing store nor PostgreSQL's WAL prefix/suffix compression of updates shrinks them;
    CSV-safe (no comma, quote or newline)."""
    raw = random.Random(seed).randbytes(ROW_PAYLOAD * 3 // 4 * n)
    text = base64.b64encode(raw).decode()
    return [text[k * ROW_PAYLOAD:(k + 1) * ROW_PAYLOAD] for k in range(n)]


def plan(total_mib):
    """Rows, batch size and the work list: [('copy', first_id, n) | ('update', lo, hi, pass)]."""
    row_bytes = 8 + ROW_PAYLOAD
    total = total_mib * MiB
    # About 8 MiB per transaction; smaller totals still get a few dozen transactions.
    batch_rows = max(1, min(8 * MiB, total // 32) // row_bytes)
    live_rows = max(batch_rows, (total // LIVE_FRACTION) // row_bytes)
    work = []
    for first in range(1, live_rows + 1, batch_rows):
        work.append(("copy", first, min(batch_rows, live_rows - first + 1)))
    written = live_rows * row_bytes
    n_pass = 0
    while written < total:
        n_pass += 1
        for lo in range(1, live_rows + 1, batch_rows):
            if written >= total:
                break
            hi = min(lo + batch_rows, live_rows + 1)  # exclusive
            work.append(("update", lo, hi, n_pass))
            written += (hi - lo) * row_bytes
    return live_rows, batch_rows, row_bytes, work


def write_phase(server, live_rows, row_bytes, work):
    """Runs the work list over one connection, every batch its own committed transaction.
    Returns (seconds, row bytes committed, transactions, last UPDATE batch as (lo, hi,
    payloads))."""
    import psycopg
    from psycopg.types.numeric import Int8

    conn = server.connect(autocommit=False)
    written, txns, last = 0, 0, None
    t0 = time.perf_counter()
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS r")
            cur.execute(DDL)
            conn.commit()
            for item in work:
                if item[0] == "copy":
                    _, first, n = item
                    data = "".join(f"{i},{p}\n" for i, p in
                                   zip(range(first, first + n), payloads(first, n))).encode()
                    with cur.copy("COPY r FROM STDIN (FORMAT csv)") as cp:
                        cp.write(data)
                    conn.commit()
                    written += n * row_bytes
                else:
                    _, lo, hi, n_pass = item
                    ps = payloads((n_pass << 40) + lo, hi - lo)
                    # Ids bound as int8 (the column's type): psycopg types small Python ints
                    # as int2/int4 by default, which Floe executes several times slower.
                    cur.executemany("UPDATE r SET payload = %s WHERE id = %s",
                                    [(p, Int8(i)) for i, p in zip(range(lo, hi), ps)])
                    if cur.rowcount != hi - lo:
                        raise StepFailed(f"UPDATEs of ids [{lo}, {hi}) reported {cur.rowcount} "
                                         f"rows, expected {hi - lo}")
                    conn.commit()
                    written += (hi - lo) * row_bytes
                    last = (lo, hi, ps)
                txns += 1
    except psycopg.Error as e:
        raise server.failed(e) from None
    finally:
        conn.close()
    got = server.execute("SELECT count(*) FROM r")[0][0]
    if got != live_rows:
        raise StepFailed(f"count(*) before the crash returned {got}, expected {live_rows}")
    return time.perf_counter() - t0, written, txns, last


def crash_and_come_back(server, live_rows, last, timeout=COME_BACK_TIMEOUT):
    """SIGKILL, restart on the same data directory, and poll with new connections until
    `SELECT count(*) FROM r` answers. Returns (seconds from the process start, dir bytes at
    the kill, top-level breakdown of the data dir)."""
    import psycopg

    server.kill()
    size = dir_bytes(server.data_dir)
    parts = dir_breakdown(server.data_dir)
    t0 = time.monotonic()
    server.launch()
    last_err = None
    while True:
        if not server.alive():
            raise StepFailed("after the crash: " + server.dead_message())
        try:
            with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres",
                                 dbname="postgres", autocommit=True, connect_timeout=10) as c:
                got = c.execute("SELECT count(*) FROM r").fetchone()[0]
            secs = time.monotonic() - t0
            break
        except psycopg.Error as e:
            last_err = e
        if time.monotonic() - t0 > timeout:
            server.kill()
            raise StepFailed(f"no answer to SELECT count(*) FROM r within {timeout} s after the "
                             f"restart; last error: {last_err}")
        time.sleep(0.02)
    if got != live_rows:
        raise StepFailed(f"after the crash count(*) returned {got}, expected {live_rows} "
                         "(committed rows lost or duplicated)")
    if last is not None:
        lo, hi, ps = last
        rows = server.execute(f"SELECT id, payload FROM r WHERE id >= {lo} AND id < {hi}")
        want = dict(zip(range(lo, hi), ps))
        ok = sum(1 for i, p in rows if want.get(i) == p)
        if ok != hi - lo:
            raise StepFailed(f"after the crash only {ok} of the {hi - lo} rows of the last "
                             "committed UPDATE batch carry its payloads (a committed write was "
                             "lost)")
    return secs, size, parts


def run(ctx):
    total_mib = ctx.args.restart_mb or (20 if ctx.smoke else TARGET_MIB)
    live_rows, batch_rows, row_bytes, work = plan(total_mib)
    notes = Notes()
    res = {}  # metric -> {server: Outcome}
    layout = {}  # server -> top-level breakdown of the data dir at the last kill

    def o(metric, name):
        return res.setdefault(metric, {}).setdefault(name, Outcome())

    for rep in range(ctx.repeat):
        # Fresh servers (new data directories) for every run.
        with Servers(ctx, os.path.join("restart", f"run{rep + 1}")) as srv:
            order = srv.both() if rep % 2 == 0 else srv.both()[::-1]
            for server in order:
                ctx.log(f"restart: repeat {rep + 1}/{ctx.repeat} writing {total_mib} MiB into "
                        f"{server.name} ({len(work)} transactions)")
                w = measure(ctx, server, o("write s", server.name), notes,
                            f"commit {total_mib} MiB of writes",
                            lambda server=server: write_phase(server, live_rows, row_bytes, work),
                            key=lambda r: r[0])
                if w is None:
                    o("restart s", server.name).fail(o("write s", server.name).error,
                                                     server.name == FLOE)
                    continue
                secs, written, txns, last = w
                o("written MiB", server.name).add(written / MiB)
                o("write MiB/s", server.name).add(written / MiB / secs)
                o("transactions", server.name).add(txns)
                ctx.log(f"restart: SIGKILL {server.name} and restart it")
                r = measure(ctx, server, o("restart s", server.name), notes,
                            "restart after SIGKILL",
                            lambda server=server, last=last: crash_and_come_back(
                                server, live_rows, last),
                            key=lambda r: r[0])
                if r is not None:
                    ctx.log(f"restart: {server.name} answered {r[0]:.2f} s after its restart")
                    o("data dir MiB", server.name).add(r[1] / MiB)
                    layout[server.name] = r[2]
    return render(ctx, total_mib, live_rows, batch_rows, row_bytes, work, res, layout, notes)


def render(ctx, total_mib, live_rows, batch_rows, row_bytes, work, res, layout, notes):
    def get(metric, name):
        return res.get(metric, {}).get(name, Outcome())

    n_copy = sum(1 for w in work if w[0] == "copy")
    out = [f"Per server and run, on a fresh data directory: `{DDL}`; {n_copy} COPY "
           f"transactions load {live_rows:,} rows of ~{row_bytes} bytes "
           f"({live_rows * row_bytes / MiB:.0f} MiB live), then {len(work) - n_copy} "
           f"transactions of {batch_rows:,} single-row UPDATEs each (pipelined, ids bound as "
           "int8) give the rows new payloads until "
           f"{total_mib} MiB of row data are committed, from one client; every payload is 1000 "
           "base64 characters of random bytes, distinct per row version (incompressible). "
           "Then SIGKILL (Floe: its process; PostgreSQL: the postmaster, then its "
           "backends: WAL crash recovery on the next start), restart on the same data "
           "directory, and time from the process start until a new connection's "
           "`SELECT count(*) FROM r` answers (polled every 20 ms); the count and the last "
           "UPDATE batch's rows are checked. The page cache stays warm (a process crash). "
           "PostgreSQL's time covers its whole crash recovery: the fsync of its data "
           "directory before redo, redo of the WAL since the last checkpoint, and the "
           "end-of-recovery checkpoint. "
           f"{ctx.repeat} run(s), servers alternating; cells: median [min–max].\n"]
    rows = []
    for metric, label, fmt, better in (
            ("restart s", "restart after SIGKILL → `SELECT count(*)` answered, s", "{:.2f}",
             "lower"),
            ("written MiB", "row data committed before the crash, MiB", "{:.0f}", ""),
            ("transactions", "transactions committed", "{:.0f}", ""),
            ("write s", "write phase, s", "{:.1f}", "lower"),
            ("write MiB/s", "write phase, MiB/s of row data", "{:.1f}", "higher"),
            ("data dir MiB", "data directory on disk at the crash, MiB", "{:.0f}", "")):
        f, p = get(metric, FLOE), get(metric, PG)
        if not f.ok and f.error is None and get("restart s", FLOE).error is not None:
            f = get("restart s", FLOE)  # no number because Floe failed: show its footnote
        rows.append([label, f.cell(fmt), p.cell(fmt),
                     ratio_cell(ratio(f, p)) if better else "—", better or "—"])
    out.append(table(["metric", "Floe", "PostgreSQL 15", "Floe / PG", "better"], rows,
                     "lrrrl"))
    for name in (FLOE, PG):
        parts = layout.get(name)
        if parts:
            shown = ", ".join(f"`{n}` {fmt_num(b / MiB)} MiB" for n, b in parts[:5])
            more = f", … ({len(parts)} entries)" if len(parts) > 5 else ""
            out.append(f"- {name} data directory at the last crash: {shown}{more}")
    out.append("")
    f = get("restart s", FLOE)
    target = f"Target: Floe back in under {TARGET_S:g} s after {TARGET_MIB} MiB (1 GB) of " \
             "committed writes — "
    if not f.ok:
        target += "not measured (Floe could not run this; see the footnote)."
    else:
        target += (f"**met** ({f.median:.2f} s)" if f.median < TARGET_S else
                   f"**not met** ({f.median:.2f} s)")
        if total_mib < TARGET_MIB:
            target += (f"; but this run wrote only {total_mib} MiB, so it does not test the "
                       "target.")
        else:
            target += f" with {get('written MiB', FLOE).median:.0f} MiB committed."
    out.append(target + "\n")
    out.append(notes.markdown())
    return "\n".join(out)

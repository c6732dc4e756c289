"""ingest: bulk load with `COPY … FROM STDIN (FORMAT csv)` into a narrow (3 columns) and a
wide (20 columns) table with a bigint primary key, on Floe and PostgreSQL 15: rows/s, MB/s and
the server's peak memory during the load (sampled every 100 ms; Floe: RSS of its process;
PostgreSQL: PSS summed over postmaster and backends). The row count is checked afterwards.
"""

import os
import random
import threading

from .. import plots
from ..common import FLOE, PG, Notes, Outcome, StepFailed, measure, ratio, ratio_cell
from ..report import image, table
from ..servers import Servers
from .tpch import copy_csv

NARROW_DDL = """CREATE TABLE ingest_narrow (
    id bigint PRIMARY KEY,
    k integer NOT NULL,
    v double precision NOT NULL
)"""

WIDE_DDL = """CREATE TABLE ingest_wide (
    id bigint PRIMARY KEY,
    a1 integer, a2 bigint, a3 smallint, a4 numeric(12,2), a5 double precision, a6 real,
    a7 boolean, a8 date, a9 timestamp, a10 text, a11 varchar(64), a12 char(8), a13 integer,
    a14 bigint, a15 numeric(18,4), a16 double precision, a17 text, a18 date, a19 timestamp
)"""

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "


def gen_narrow(path, n):
    rnd = random.Random(1)
    with open(path, "w") as f:
        f.write("id,k,v\n")
        buf = []
        for i in range(1, n + 1):
            buf.append(f"{i},{rnd.randrange(1_000_000)},{rnd.random() * 1000:.6f}\n")
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


def gen_wide(path, n):
    rnd = random.Random(2)

    def word(lo, hi):
        return "".join(rnd.choices(LETTERS, k=rnd.randint(lo, hi))).strip() or "x"

    with open(path, "w") as f:
        f.write(",".join(["id"] + [f"a{i}" for i in range(1, 20)]) + "\n")
        buf = []
        for i in range(1, n + 1):
            d = rnd.randrange(0, 3650)
            y, rem = 2015 + d // 365, d % 365
            date = f"{y}-{1 + rem // 31 % 12:02d}-{1 + rem % 28:02d}"
            ts = f"{date} {rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}"
            row = [i, rnd.randrange(-2**31, 2**31), rnd.randrange(-2**62, 2**62),
                   rnd.randrange(-32768, 32768), f"{rnd.uniform(-1e9, 1e9):.2f}",
                   f"{rnd.uniform(-1e6, 1e6):.9g}", f"{rnd.uniform(-1e3, 1e3):.5g}",
                   "t" if rnd.random() < 0.5 else "f", date, ts, word(5, 40), word(1, 64),
                   word(8, 8)[:8], rnd.randrange(1000), rnd.randrange(10**12),
                   f"{rnd.uniform(-1e12, 1e12):.4f}", f"{rnd.random():.12g}", word(0, 120),
                   date, ts]
            buf.append(",".join(str(x) for x in row) + "\n")
            if len(buf) >= 5000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


class PeakSampler:
    def __init__(self, server, interval=0.1):
        self.server, self.interval = server, interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.memory_kib())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.server.memory_kib())
        return False


def run(ctx):
    n_narrow = ctx.args.ingest_rows or (20_000 if ctx.smoke else 5_000_000)
    n_wide = max(n_narrow // 5, 1)
    cache = os.path.join(ctx.cache, "ingest")
    os.makedirs(cache, exist_ok=True)
    specs = []
    for name, ddl, n, gen in (("ingest_narrow", NARROW_DDL, n_narrow, gen_narrow),
                              ("ingest_wide", WIDE_DDL, n_wide, gen_wide)):
        path = os.path.join(cache, f"{name}-v1-{n}.csv")
        if not os.path.exists(path):
            ctx.log(f"ingest: generating {n} rows for {name}")
            gen(path + ".tmp", n)
            os.rename(path + ".tmp", path)
        specs.append((name, ddl, n, path))
    notes = Notes()
    res = {}  # (table, metric) -> {server: Outcome}

    def o(t, metric, server):
        return res.setdefault((t, metric), {}).setdefault(server, Outcome())

    with Servers(ctx, "ingest") as srv:
        # Each run loads into a new, empty table. The previous run's table is dropped first
        # (outside the measurement); where DROP fails, the next run uses a new name.
        current = {}  # (server, table) -> name of the table to drop before the next run
        for rep in range(ctx.repeat):
            for name, ddl, n, path in specs:
                for server in srv.both():
                    ctx.log(f"ingest: repeat {rep + 1}/{ctx.repeat} {name} ({n} rows) into "
                            f"{server.name}")

                    def load(server=server, name=name, ddl=ddl, n=n, path=path, rep=rep):
                        conn = server.connect()
                        try:
                            tname = name
                            old = current.pop((server.name, name), None)
                            if old is not None:
                                try:
                                    server.execute(f"DROP TABLE {old}", conn)
                                except StepFailed as e:
                                    tname = f"{name}_{rep + 1}"
                                    if server.name == FLOE:
                                        notes.add(f"DROP TABLE {old}", e.message)
                                    else:
                                        raise
                            server.execute(ddl.replace(name, tname, 1), conn)
                            current[(server.name, name)] = tname
                            base = server.memory_kib()
                            with PeakSampler(server) as s:
                                secs, rows, nbytes = copy_csv(server, conn, tname, path)
                            got = server.execute(f"SELECT count(*) FROM {tname}", conn)[0][0]
                            if got != n:
                                raise StepFailed(f"count(*) after COPY returned {got}, "
                                                 f"expected {n}")
                        finally:
                            conn.close()
                        return secs, rows, nbytes, base, s.peak

                    r = measure(ctx, server, o(name, "rows/s", server.name), notes,
                                f"COPY into {name}", load, key=lambda r: r[1] / r[0])
                    if r is not None:
                        secs, rows, nbytes, base, peak = r
                        o(name, "MB/s", server.name).add(nbytes / secs / 1e6)
                        o(name, "peak MiB", server.name).add(peak / 1024)
                        o(name, "baseline MiB", server.name).add(base / 1024)
    return render(ctx, specs, res, notes)


def render(ctx, specs, res, notes):
    sizes = {name: os.path.getsize(path) for name, _, _, path in specs}
    out = ["`COPY … FROM STDIN (FORMAT csv)` from one client in 1 MiB chunks, bigint primary key; "
           f"{ctx.repeat} run(s) each into a new empty table (the previous one dropped first). "
           "Cells: median [min–max].\n"]
    rows = []
    cats, ratios = [], []
    for name, _, n, _ in specs:
        for metric, better, fmt in (("rows/s", "higher", "{:,.0f}"), ("MB/s", "higher", "{:.1f}"),
                                    ("peak MiB", "lower", "{:.0f}"),
                                    ("baseline MiB", "lower", "{:.0f}")):
            by = res.get((name, metric), {})
            f, p = by.get(FLOE, Outcome()), by.get(PG, Outcome())
            if metric != "rows/s" and not f.ok:
                f = res.get((name, "rows/s"), {}).get(FLOE, f)
            r = ratio(f, p)
            rows.append([f"{name} ({n:,} rows, {sizes[name] / 1e6:.1f} MB CSV)", metric,
                         f.cell(fmt), p.cell(fmt), ratio_cell(r), better])
            if metric in ("rows/s", "peak MiB"):
                cats.append(f"{name.replace('ingest_', '')} {metric}")
                ratios.append(r)
    out.append(table(["table", "metric", "Floe", "PostgreSQL 15", "Floe / PG", "better"], rows,
                     "llrrrl"))
    out.append(notes.markdown())
    png = plots.ratio_bars(os.path.join(ctx.out, "ingest-ratio.png"),
                           "ingest: Floe / PostgreSQL 15 (rows/s: higher is better; "
                           "peak memory: lower is better)", cats, {"Floe / PG": ratios}, "ratio")
    out.append(image("ingest ratios", png))
    return "\n".join(out)

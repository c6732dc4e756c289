"""tpch: TPC-H (SF1 by default) generated with tpchgen-cli, loaded with COPY into Floe and
PostgreSQL 15; all 22 queries on Floe, PostgreSQL, DuckDB (native tables, loaded from the same
CSV files) and DataFusion over the raw Parquet files (the ceiling).

tpch-cold: the same, with Floe started with `--flush-age 0` and a `CHECKPOINT` after the load,
which moves every row into cold Parquet runs (the time it takes and the share of rows cold are
reported) before the queries run.
"""

import os
import shutil
import subprocess
import time

from .. import plots
from ..common import FLOE, PG, HarnessError, Notes, Outcome, StepFailed, measure, one_line, \
    ratio, ratio_cell
from ..report import fmt_num, image, table
from ..servers import Conn, Servers

TABLES = ("region", "nation", "supplier", "part", "partsupp", "customer", "orders", "lineitem")
DUCK = "DuckDB"
DF = "DataFusion (Parquet)"
ENGINES = (FLOE, PG, DUCK, DF)
SHORT = {FLOE: "Floe", PG: "PG", DUCK: "DuckDB", DF: "DataFusion"}


def statements(path):
    """The statements of a .sql file (split on ';' at line ends; '--' comments dropped)."""
    text = "\n".join(ln for ln in open(path).read().splitlines()
                     if not ln.strip().startswith("--"))
    return [s.strip() for s in text.split(";") if s.strip()]


def tpchgen_binary(ctx):
    for cand in (os.environ.get("TPCHGEN_CLI"),
                 os.path.join(ctx.bench_dir, ".tools", "bin", "tpchgen-cli"),
                 shutil.which("tpchgen-cli")):
        if cand and os.path.exists(cand):
            return cand
    raise HarnessError("tpchgen-cli not found (bench/run installs it into ~/.cache/floe-bench-tools)")


def generate(ctx, sf):
    """CSV (for COPY and DuckDB) and Parquet (for DataFusion) of scale factor sf, cached."""
    base = os.path.join(ctx.cache, "tpch", f"sf{sf:g}")
    done = os.path.join(base, ".complete")
    if os.path.exists(done):
        return base
    shutil.rmtree(base, ignore_errors=True)
    binary = tpchgen_binary(ctx)
    for fmt in ("csv", "parquet"):
        d = os.path.join(base, fmt)
        os.makedirs(d, exist_ok=True)
        ctx.log(f"tpch: generating SF {sf:g} as {fmt} into {d}")
        r = subprocess.run([binary, fmt, "--scale-factor", f"{sf:g}", "--output-dir", d,
                            "--quiet"], capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"tpchgen-cli failed: {one_line(r.stderr + r.stdout, 600)}")
    for t in TABLES:
        for fmt in ("csv", "parquet"):
            if not os.path.exists(table_file(base, fmt, t)):
                raise HarnessError(f"tpchgen-cli wrote no {fmt} file for {t} in {base}")
    open(done, "w").close()
    return base


def table_file(base, fmt, t):
    return os.path.join(base, fmt, f"{t}.{fmt}")


def copy_csv(server, conn, t, path):
    """COPY t FROM STDIN (FORMAT csv), the file's header line skipped client-side so only
    the plainest COPY form is needed. Returns (seconds, rows, bytes)."""
    import psycopg

    rows = 0
    nbytes = 0
    t0 = time.perf_counter()
    try:
        with conn.cursor() as cur:
            with cur.copy(f"COPY {t} FROM STDIN (FORMAT csv)") as cp, open(path, "rb") as f:
                f.readline()  # header
                while True:
                    chunk = f.read(1 << 20)
                    if not chunk:
                        break
                    rows += chunk.count(b"\n")
                    nbytes += len(chunk)
                    cp.write(chunk)
    except psycopg.Error as e:
        raise server.failed(e) from None
    return time.perf_counter() - t0, rows, nbytes


class QueryTimeout(Exception):
    pass


def timed_query(server, conn, sql):
    import psycopg

    t0 = time.perf_counter()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
    except psycopg.errors.QueryCanceled:
        raise QueryTimeout() from None
    except psycopg.Error as e:
        raise server.failed(e) from None
    return time.perf_counter() - t0, len(rows)


class Peer:
    """An in-process engine (DuckDB or DataFusion) with the same interface as a Server."""

    def __init__(self, name):
        self.name = name

    def alive(self):
        return True

    def revive(self, step):
        return False

    def dead_message(self):
        return ""


def run_cold(ctx):
    return run(ctx, cold=True)


def settle_cold(ctx, server, conn, notes):
    """After the load: CHECKPOINT (with --flush-age 0 it moves every settled row into cold
    runs), then waits (up to 10 minutes) for background compaction to go quiet. Returns
    (seconds, rows in cold runs)."""
    t0 = time.perf_counter()
    server.execute("CHECKPOINT", conn.get())
    deadline = time.time() + 600
    last = None
    while time.time() < deadline:
        with conn.get().cursor() as cur:
            cur.execute("SELECT count(*), coalesce(sum(rows), 0) FROM floe_catalog.cold_runs")
            state = tuple(cur.fetchone())
            cur.execute("SELECT count(*) FROM floe_catalog.compactions "
                        "WHERE finished IS NULL")
            running = cur.fetchone()[0]
        if state == last and running == 0:
            break
        last = state
        time.sleep(2)
    secs = time.perf_counter() - t0
    return secs, int(last[1]) if last else 0


def run(ctx, cold=False):
    sf = ctx.args.tpch_scale if ctx.args.tpch_scale else (0.01 if ctx.smoke else 1.0)
    timeout = ctx.args.query_timeout or (60 if ctx.smoke else 600)
    qdir = os.path.join(ctx.bench_dir, "tpch", "queries")
    queries = [(f"Q{i}", open(os.path.join(qdir, f"q{i:02d}.sql")).read()) for i in range(1, 23)]
    base = generate(ctx, sf)
    schema = statements(os.path.join(ctx.bench_dir, "tpch", "schema.sql"))
    notes = Notes()
    load = {}  # (engine, table) -> Outcome of seconds
    load_rows, load_bytes = {}, {}
    post = {FLOE: Outcome(), PG: Outcome()}
    times = {}  # (query, engine) -> Outcome of seconds
    rows = {}  # (query, engine) -> row count of the first run
    work = os.path.join(ctx.work, "tpch")
    os.makedirs(work, exist_ok=True)

    import datafusion
    import duckdb

    duck_path = os.path.join(work, "duckdb.db")
    for p in (duck_path, duck_path + ".wal"):
        if os.path.exists(p):
            os.unlink(p)
    duck = duckdb.connect(duck_path)
    duck_peer = Peer(DUCK)
    df_peer = Peer(DF)
    dfctx = datafusion.SessionContext()
    for t in TABLES:
        dfctx.register_parquet(t, table_file(base, "parquet", t))

    suite = "tpch-cold" if cold else "tpch"
    cold_state = {}
    floe_args = ["--flush-age", "0"] if cold else []
    with Servers(ctx, suite, floe_args=floe_args) as srv:
        conns = {server.name: Conn(server) for server in srv.both()}
        if [d.split()[2] for d in schema] != list(TABLES):
            raise HarnessError("tpch/schema.sql must create exactly the TPC-H tables in the "
                               f"order {', '.join(TABLES)}")
        for server in srv.both():
            ctx.log(f"tpch: loading SF {sf:g} into {server.name}")
            conn = conns[server.name]
            # Table by table: a table Floe cannot create is reported, the others still load.
            for t, ddl in zip(TABLES, schema):
                o = load.setdefault((server.name, t), Outcome())
                created = Outcome()
                measure(ctx, server, created, notes, f"CREATE TABLE {t}",
                        lambda server=server, ddl=ddl, conn=conn:
                        server.execute(ddl, conn.get()) or 0)
                if not created.ok:
                    o.fail(created.error, cannot=created.cannot)
                    continue

                def do_copy(t=t, server=server, conn=conn):
                    secs, n, b = copy_csv(server, conn.get(), t, table_file(base, "csv", t))
                    load_rows[t], load_bytes[t] = n, b
                    return secs

                measure(ctx, server, o, notes, f"COPY {t}", do_copy)
            measure(ctx, server, post[server.name], notes, "post-load indexes + ANALYZE",
                    lambda server=server, conn=conn: sum(
                        _timed(lambda s=s: server.execute(s, conn.get()))
                        for s in statements(os.path.join(ctx.bench_dir, "tpch",
                                                         "post_load.sql"))))
            if cold and server is srv.floe:
                ctx.log("tpch-cold: CHECKPOINT, moving the rows into cold runs")
                settled = Outcome()
                measure(ctx, server, settled, notes, "CHECKPOINT into cold runs",
                        lambda server=server, conn=conn: cold_state.setdefault(
                            "settle", settle_cold(ctx, server, conn, notes))[0])
            # Queries (only) run under statement_timeout, also after a reconnect.
            set_timeout = f"SET statement_timeout = '{timeout:g}s'"
            conn.setup.append(set_timeout)
            measure(ctx, server, Outcome(), notes, "SET statement_timeout",
                    lambda server=server, conn=conn:
                    server.execute(set_timeout, conn.get()) or 0)

        ctx.log("tpch: loading DuckDB from the same CSV files")
        for stmt in schema:
            duck.execute(stmt)
        for t in TABLES:
            def duck_copy(t=t):
                t0 = time.perf_counter()
                duck.execute(f"COPY {t} FROM '{table_file(base, 'csv', t)}' "
                             "(FORMAT csv, HEADER true)")
                return time.perf_counter() - t0
            measure(ctx, duck_peer, load.setdefault((DUCK, t), Outcome()), notes,
                    f"DuckDB COPY {t}", _peer_call(duck_copy))

        def server_query(name, server, sql, qname):
            try:
                return timed_query(server, conns[name].get(), sql)
            except QueryTimeout:
                times[(qname, name)].timed_out = timeout
                return None

        runners = {
            FLOE: lambda sql, q: server_query(FLOE, srv.floe, sql, q),
            PG: lambda sql, q: server_query(PG, srv.pg, sql, q),
            DUCK: _peer_call(lambda sql, q: _timed_rows(lambda: duck.execute(sql).fetchall())),
            DF: _peer_call(lambda sql, q: _timed_rows(
                lambda: [None] * sum(b.num_rows for b in dfctx.sql(sql).collect()))),
        }
        engines = {FLOE: srv.floe, PG: srv.pg, DUCK: duck_peer, DF: df_peer}
        for rep in range(ctx.repeat):
            ctx.log(f"tpch: queries, repeat {rep + 1}/{ctx.repeat}")
            for qname, sql in queries:
                for name in ENGINES:
                    r = measure(ctx, engines[name], times.setdefault((qname, name), Outcome()),
                                notes, f"TPC-H {qname}",
                                lambda name=name, sql=sql, q=qname: runners[name](sql, q),
                                key=lambda r: r[0])
                    if r is not None and (qname, name) not in rows:
                        rows[(qname, name)] = r[1]
        for c in conns.values():
            c.close()
    duck.close()
    report = render(ctx, sf, timeout, queries, load, load_rows, load_bytes, post, times, rows,
                    notes, suite)
    if cold:
        settle = cold_state.get("settle")
        total = sum(load_rows.values()) if load_rows else None
        if settle:
            share = f" of {total:,} ({100 * settle[1] / total:.1f} %)" if total else ""
            report = (f"Floe ran with `--flush-age 0`; after the load a `CHECKPOINT` moved "
                      f"{settle[1]:,} rows{share} into cold runs in {settle[0]:.1f} s "
                      "(compaction included).\n\n" + report)
        else:
            report = "The move into cold runs failed (see the notes).\n\n" + report
    return report


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_rows(fn):
    t0 = time.perf_counter()
    res = fn()
    return time.perf_counter() - t0, len(res)


def _peer_call(fn):
    """Turns an in-process engine's exception into StepFailed (a harness error for peers)."""
    def call(*a):
        try:
            return fn(*a)
        except StepFailed:
            raise
        except Exception as e:  # noqa: BLE001 - any engine error is reported, not raised
            raise StepFailed(one_line(f"{type(e).__name__}: {e}"))
    return call


def render(ctx, sf, timeout, queries, load, load_rows, load_bytes, post, times, rows, notes,
           suite="tpch"):
    out = [f"Scale factor {sf:g}; {ctx.repeat} run(s) of each query per engine, engines "
           f"interleaved per query; statement_timeout {timeout:g} s on the servers. Floe and "
           "PostgreSQL load the CSV files with `COPY … FROM STDIN (FORMAT csv)`, then run "
           "`tpch/post_load.sql` (secondary indexes, ANALYZE); DuckDB loads the same CSV files "
           "into native tables; DataFusion reads the Parquet files directly. Times in seconds "
           "(client-side, including result transfer). Cells: median [min–max].\n"]

    # Load.
    lrows = []
    for t in TABLES:
        n = load_rows.get(t)
        lrows.append([t, fmt_num(n, 0) if n else "—"] +
                     [load.get((name, t), Outcome()).cell("{:.2f}") for name in (FLOE, PG, DUCK)] +
                     [ratio_cell(ratio(load.get((FLOE, t)), load.get((PG, t))))])
    allrows = sum(load_rows.values()) if load_rows else None
    allbytes = sum(load_bytes.values()) if load_bytes else None

    def rate(name):
        outs = [load.get((name, t), Outcome()) for t in TABLES]
        if allrows and all(o.ok for o in outs):
            secs = sum(o.median for o in outs)
            return (f"{secs:.2f} s ({allrows / secs:,.0f} rows/s, "
                    f"{allbytes / secs / 1e6:.1f} MB/s)")
        return "n/a ¹" if name == FLOE else "—"
    lrows.append(["**all tables**", fmt_num(allrows, 0) if allrows else "—", rate(FLOE), rate(PG),
                  rate(DUCK), "—"])
    lrows.append(["post-load indexes + ANALYZE", "", post[FLOE].cell("{:.2f}"),
                  post[PG].cell("{:.2f}"), "", ratio_cell(ratio(post[FLOE], post[PG]))])
    out.append("**Load** (seconds, lower is better; one load per run — the `ingest` suite "
               "measures COPY repeatedly)\n")
    out.append(table(["table", "rows", "Floe COPY", "PostgreSQL COPY", "DuckDB COPY (local file)",
                      "Floe / PG"], lrows))

    # Queries.
    qrows = []
    ratios = {f"{SHORT[e]} / DataFusion": [] for e in (FLOE, PG, DUCK)}
    geo = {e: [] for e in ENGINES}
    mismatches = []
    for qname, _ in queries:
        o = {e: times.get((qname, e), Outcome()) for e in ENGINES}
        counts = {e: rows.get((qname, e)) for e in ENGINES if rows.get((qname, e)) is not None}
        ref = counts.get(DF, counts.get(PG))
        rc = str(ref) if ref is not None else "—"
        bad = [SHORT[e] for e, c in counts.items() if ref is not None and c != ref]
        if bad:
            rc += " ≠ " + ", ".join(f"{b}: {counts[e]}" for e, b in
                                    ((e, SHORT[e]) for e in counts) if b in bad)
            mismatches.append(qname)
        qrows.append([qname] + [o[e].cell("{:.3f}") for e in ENGINES] +
                     [ratio_cell(ratio(o[FLOE], o[PG])), ratio_cell(ratio(o[FLOE], o[DUCK])),
                      ratio_cell(ratio(o[FLOE], o[DF])), rc])
        for e in (FLOE, PG, DUCK):
            ratios[f"{SHORT[e]} / DataFusion"].append(ratio(o[e], o[DF]))
        for e in ENGINES:
            geo[e].append(o[e].median if o[e].ok else None)
    g = {e: (plots.geomean(v) if all(x is not None for x in v) else None) for e, v in geo.items()}

    def gr(a, b):
        return ratio_cell(g[a] / g[b] if g[a] and g[b] else None)
    qrows.append(["**geomean**"] + [f"{g[e]:.3f}" if g[e] else "—" for e in ENGINES] +
                 [gr(FLOE, PG), gr(FLOE, DUCK), gr(FLOE, DF), ""])
    out.append("\n**Queries** (seconds, lower is better)\n")
    out.append(table(["query", "Floe", "PostgreSQL 15", "DuckDB", "DataFusion (Parquet)",
                      "Floe / PG", "Floe / DuckDB", "Floe / DataFusion", "rows"], qrows))
    if mismatches:
        out.append(f"\nRow counts differ between engines for: {', '.join(mismatches)}.\n")
    out.append(notes.markdown())
    cats = [q for q, _ in queries] + ["geomean"]
    for e in (FLOE, PG, DUCK):
        key = f"{SHORT[e]} / DataFusion"
        ratios[key].append(g[e] / g[DF] if g[e] and g[DF] else None)
    note = None if any(v is not None for v in ratios["Floe / DataFusion"]) else \
        "Floe: cannot run these yet (see report)"
    png = plots.ratio_bars(os.path.join(ctx.out, f"{suite}-ratio.png"),
                           f"TPC-H SF {sf:g}: query time relative to DataFusion over Parquet "
                           "(lower is better; 1 = the ceiling)", cats, ratios,
                           "time / DataFusion time (log)", log=True, note=note)
    out.append(image("TPC-H ratios", png))
    return "\n".join(out)

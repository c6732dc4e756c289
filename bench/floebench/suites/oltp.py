"""oltp: pgbench's built-in select-only and tpcb-like scripts, -M prepared and -M simple,
1/8/32 clients, on Floe and PostgreSQL 15 after `pgbench -i` into each.

Throughput is pgbench's tps; p50/p99 latency come from its per-transaction log (-l).
"""

import os

from .. import plots
from ..common import FLOE, PG, Notes, Outcome, measure, percentile, ratio, ratio_cell, \
    run_pgbench, run_pgbench_init
from ..report import image, table
from ..servers import Servers

WORKLOADS = ("select-only", "tpcb-like")
MODES = ("prepared", "simple")
FALLBACK_STEPS = "dtgp"  # drop, create tables, generate (client-side COPY), primary keys


def run(ctx):
    scale = ctx.args.oltp_scale or (1 if ctx.smoke else 10)
    seconds = ctx.args.oltp_seconds or (2 if ctx.smoke else 20)
    clients_list = [int(c) for c in ctx.args.oltp_clients.split(",")]
    notes = Notes()
    init = {FLOE: Outcome(), PG: Outcome()}
    init_fallback = Outcome()
    tps, p50, p99 = {}, {}, {}
    lat = {}

    with Servers(ctx, "oltp") as srv:
        for server in srv.both():
            ctx.log(f"oltp: pgbench -i -s {scale} into {server.name}")
            done = measure(ctx, server, init[server.name], notes, f"pgbench -i -s {scale}",
                           lambda: run_pgbench_init(server.port, scale,
                                                    os.path.join(srv.dir, "pgbench"),
                                                    timeout=3600))
            if done is None and server.name == FLOE and server.alive():
                # The default steps end with VACUUM (then primary keys); try without it so the
                # runs can still measure what Floe can do. Both attempts are reported.
                ctx.log(f"oltp: pgbench -i -I {FALLBACK_STEPS} into Floe (fallback)")
                measure(ctx, server, init_fallback, notes,
                        f"pgbench -i -I {FALLBACK_STEPS} -s {scale}",
                        lambda: run_pgbench_init(server.port, scale,
                                                 os.path.join(srv.dir, "pgbench"),
                                                 timeout=3600, steps=FALLBACK_STEPS))
        for rep in range(ctx.repeat):
            for workload in WORKLOADS:
                for mode in MODES:
                    for clients in clients_list:
                        cfg = (workload, mode, clients)
                        for server in srv.both():
                            ctx.log(f"oltp: repeat {rep + 1}/{ctx.repeat} {workload} -M {mode} "
                                    f"-c {clients} on {server.name}")
                            logdir = os.path.join(srv.dir, "pgbench",
                                                  f"{server.name[:4]}-{workload}-{mode}-"
                                                  f"c{clients}-{rep}")
                            o = tps.setdefault(cfg, {}).setdefault(server.name, Outcome())
                            r = measure(
                                ctx, server, o, notes, f"{workload} -M {mode} -c {clients}",
                                lambda logdir=logdir, clients=clients, mode=mode,
                                workload=workload: run_pgbench(
                                    server.port,
                                    ["-n", "-b", workload, "-M", mode, "-c", str(clients), "-j",
                                     str(clients), "-T", str(seconds)],
                                    logdir, timeout=seconds + 300, keep_logs=ctx.args.keep_data),
                                key=lambda r: r["tps"])
                            if r is not None:
                                p50.setdefault(cfg, {}).setdefault(server.name, Outcome()).add(
                                    percentile(r["lat_ms"], 50))
                                p99.setdefault(cfg, {}).setdefault(server.name, Outcome()).add(
                                    percentile(r["lat_ms"], 99))
                                lat.setdefault(cfg + (server.name,), []).extend(r["lat_ms"])

    def get(d, cfg, name):
        return d.get(cfg, {}).get(name, Outcome())

    out = [f"pgbench scale {scale}, {seconds} s per run, {ctx.repeat} run(s) per "
           f"configuration, one pgbench thread per client (-j = -c). Cells: median [min–max].\n"]
    init_rows = [[f"pgbench -i -s {scale} (s, lower is better)", init[FLOE].cell("{:.1f}"),
                  init[PG].cell("{:.1f}"), ratio_cell(ratio(init[FLOE], init[PG]))]]
    if init_fallback.values or init_fallback.error:
        init_rows.append([f"Floe's fallback: pgbench -i -I {FALLBACK_STEPS} (no VACUUM)",
                          init_fallback.cell("{:.1f}"), "—", "—"])
    out.append(table(["step", "Floe", "PostgreSQL 15", "Floe / PG"], init_rows))
    rows = []
    cats, ratios = [], []
    for cfg in tps:
        workload, mode, clients = cfg
        t_f, t_p = get(tps, cfg, FLOE), get(tps, cfg, PG)
        # A failed Floe run has no latency either: show the same footnote marker.
        l50f = get(p50, cfg, FLOE) if t_f.ok else t_f
        l99f = get(p99, cfg, FLOE) if t_f.ok else t_f
        r = ratio(t_f, t_p)
        rows.append([workload, f"-M {mode}", clients, t_f.cell("{:.0f}"), t_p.cell("{:.0f}"),
                     ratio_cell(r), l50f.cell("{:.2f}"), get(p50, cfg, PG).cell("{:.2f}"),
                     l99f.cell("{:.2f}"), get(p99, cfg, PG).cell("{:.2f}"),
                     ratio_cell(ratio(l99f, get(p99, cfg, PG)))])
        cats.append(f"{'sel' if workload == 'select-only' else 'tpcb'} {mode[:4]} c{clients}")
        ratios.append(r)
    out.append("\n")
    out.append(table(["workload", "mode", "clients", "Floe tps", "PG tps", "Floe / PG tps",
                      "Floe p50 ms", "PG p50 ms", "Floe p99 ms", "PG p99 ms",
                      "Floe / PG p99"], rows, "lllrrrrrrrr"))
    out.append(notes.markdown())
    png = plots.ratio_bars(os.path.join(ctx.out, "oltp-tps-ratio.png"),
                           "oltp: throughput Floe / PostgreSQL 15 (higher is better)", cats,
                           {"Floe / PG tps": ratios}, "ratio")
    out.append(image("oltp throughput ratios", png))
    for workload in WORKLOADS:
        curves = {}
        for mode in MODES:
            for clients in clients_list:
                for name in (FLOE, PG):
                    short = "Floe" if name == FLOE else "PG"
                    curves[f"{short}, -M {mode} -c {clients}"] = sorted(
                        lat.get((workload, mode, clients, name), []))
        png = plots.latency_cdf(os.path.join(ctx.out, f"oltp-{workload}-latency-cdf.png"),
                                f"oltp {workload}: latency CDF (solid: Floe, dashed: PG)",
                                curves)
        out.append(image(f"oltp {workload} latency CDF", png))
    return "\n".join(out)

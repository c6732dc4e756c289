"""oltp: pgbench's built-in select-only and tpcb-like scripts, -M prepared and -M simple,
1/8/32 clients, on Floe and PostgreSQL 15 after `pgbench -i` into each.

`pgbench -i` runs --repeat times into each server (interleaved, before the pgbench runs); its
wall time and the per-step breakdown of its closing line (drop tables, create tables,
client-side generate = the COPY of the accounts rows, vacuum, primary keys) are reported.
Throughput is pgbench's tps; p50/p99 latency come from its per-transaction log (-l).
`--oltp-clients ''` measures `pgbench -i` only.
"""

import os

from .. import plots
from ..common import FLOE, PG, Notes, Outcome, measure, percentile, ratio, ratio_cell, \
    pgbench_init, run_pgbench
from ..report import image, table
from ..servers import Servers

WORKLOADS = ("select-only", "tpcb-like")
MODES = ("prepared", "simple")
FALLBACK_STEPS = "dtgp"  # drop, create tables, generate (client-side COPY), primary keys


def run(ctx):
    scale = ctx.args.oltp_scale or (1 if ctx.smoke else 10)
    seconds = ctx.args.oltp_seconds or (2 if ctx.smoke else 20)
    clients_list = [int(c) for c in ctx.args.oltp_clients.split(",") if c.strip()]
    notes = Notes()
    init = {FLOE: Outcome(), PG: Outcome()}
    init_fallback = Outcome()
    # pgbench's per-step times: server name -> step -> Outcome; Floe's fallback runs apart.
    steps = {FLOE: {}, PG: {}}
    fallback_steps = {}
    step_order = []
    tps, p50, p99 = {}, {}, {}
    lat = {}

    def record_steps(dest, r):
        for name, secs in r["steps"].items():
            if name not in step_order:
                step_order.append(name)
            dest.setdefault(name, Outcome()).add(secs)

    with Servers(ctx, "oltp") as srv:
        logs = os.path.join(srv.dir, "pgbench")
        # pgbench -i --repeat times into each server, interleaved; the last one leaves the
        # tables the pgbench runs use.
        for rep in range(ctx.repeat):
            for server in srv.both():
                tag = f"{'floe' if server.name == FLOE else 'pg'}-{rep + 1}"
                # Once Floe failed the default steps, only the fallback is tried again.
                fallback = server.name == FLOE and init[FLOE].error is not None
                if not fallback:
                    ctx.log(f"oltp: repeat {rep + 1}/{ctx.repeat} pgbench -i -s {scale} into "
                            f"{server.name}")
                    r = measure(ctx, server, init[server.name], notes, f"pgbench -i -s {scale}",
                                lambda tag=tag: pgbench_init(server.port, scale, logs,
                                                             timeout=3600, tag=tag),
                                key=lambda r: r["elapsed"])
                    if r is not None:
                        record_steps(steps[server.name], r)
                    fallback = r is None and server.name == FLOE and server.alive()
                if fallback:
                    # The default steps end with VACUUM (then primary keys); try without it so
                    # the runs can still measure what Floe can do. Both attempts are reported.
                    ctx.log(f"oltp: pgbench -i -I {FALLBACK_STEPS} into Floe (fallback)")
                    r = measure(ctx, server, init_fallback, notes,
                                f"pgbench -i -I {FALLBACK_STEPS} -s {scale}",
                                lambda tag=tag: pgbench_init(server.port, scale, logs,
                                                             timeout=3600, steps=FALLBACK_STEPS,
                                                             tag=tag),
                                key=lambda r: r["elapsed"])
                    if r is not None:
                        record_steps(fallback_steps, r)
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
           f"configuration, one pgbench thread per client (-j = -c). `pgbench -i` ran "
           f"{ctx.repeat} time(s) into each server, interleaved, before the pgbench runs; its "
           "steps are pgbench's own breakdown from its closing line (`done in … s (drop tables "
           "…, client-side generate …, …)`). Cells: median [min–max]; time ratios are "
           "Floe / PG (below 1.00× Floe is faster).\n"]
    out.append(table(["step", "Floe", "PostgreSQL 15", "Floe / PG"],
                     init_rows(scale, init, init_fallback, steps, fallback_steps, step_order,
                               notes)))
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
    if not clients_list:
        out.append("\n`--oltp-clients` was empty: `pgbench -i` only, no pgbench runs.\n")
        out.append(notes.markdown())
        return "\n".join(out)
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


def step_label(scale, name):
    if name == "client-side generate":
        return (f"pgbench -i generate step (COPY of {100_000 * scale:,} accounts rows), s")
    if name == "server-side generate":
        return (f"pgbench -i generate step (server-side INSERT … SELECT of {100_000 * scale:,} "
                "accounts rows), s")
    return f"pgbench -i step: {name}, s"


def init_rows(scale, init, init_fallback, steps, fallback_steps, step_order, notes):
    """The `pgbench -i` rows: wall time, Floe's fallback when it needed one, then each step."""
    rows = [[f"pgbench -i -s {scale} (s, lower is better)", init[FLOE].cell("{:.1f}"),
             init[PG].cell("{:.1f}"), ratio_cell(ratio(init[FLOE], init[PG]))]]
    if init_fallback.values or init_fallback.error:
        rows.append([f"Floe's fallback: pgbench -i -I {FALLBACK_STEPS} (no VACUUM)",
                     init_fallback.cell("{:.1f}"), "—", "—"])
    # Floe's step times come from its default run when that worked, else from the fallback.
    floe_steps, floe_failed = steps[FLOE], init[FLOE]
    if not init[FLOE].ok and fallback_steps:
        floe_steps, floe_failed = fallback_steps, init_fallback
        notes.info(f"Floe's per-step `pgbench -i` times come from its fallback run "
                   f"(`-I {FALLBACK_STEPS}`: no VACUUM step).")
    for name in step_order:
        f = floe_steps.get(name)
        if f is None:
            f_cell = floe_failed.cell() if not floe_failed.ok else "— (not run)"
        else:
            f_cell = f.cell("{:.2f}")
        p = steps[PG].get(name)
        rows.append([step_label(scale, name), f_cell, p.cell("{:.2f}") if p else "—",
                     ratio_cell(ratio(f, p))])
    return rows

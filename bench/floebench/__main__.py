"""bench/run's driver: runs the suites and writes report.md with PNG plots.

Exit status: 0 when the harness worked (even when Floe could not run a step: that is reported
as "Floe cannot run this yet: <error>"), 1 when the harness or a reference peer broke.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

from .common import PG_BIN, Context, HarnessError
from .servers import PG_SETTINGS, fs_type
from .suites import ingest, ivm, micro, oltp, placeholders, restart, tpch, wire

SUITES = {
    "wire": ("Wire protocol", wire.run),
    "oltp": ("OLTP (pgbench)", oltp.run),
    "tpch": ("TPC-H", tpch.run),
    "ingest": ("Ingest (COPY)", ingest.run),
    "restart": ("Restart after a crash", restart.run),
    "micro": ("Micro benchmarks (floe-storage)", micro.run),
    "ivm": ("Incremental view maintenance", ivm.run),
    "subscribe": ("SUBSCRIBE", placeholders.runner("subscribe")),
    "tpch-cold": ("TPC-H on the cold tier", tpch.run_cold),
}


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Measure Floe against PostgreSQL 15, DuckDB and DataFusion; write a report.")
    ap.add_argument("suites", nargs="*", metavar="suite",
                    help=f"suites to run (default: all): {', '.join(SUITES)}")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds-long version of every suite (CI); report goes to the work dir")
    ap.add_argument("--repeat", type=int, help="runs of every measurement (default 3, smoke 1)")
    ap.add_argument("--out", help="report directory (default bench/results/<date>/, smoke: "
                                  "the run's work dir)")
    ap.add_argument("--work", help="raw-data directory (default bench/work/<run id>/)")
    ap.add_argument("--floe", default=os.environ.get("FLOE_BIN"), help="floe binary (FLOE_BIN)")
    ap.add_argument("--keep-data", action="store_true",
                    help="keep the servers' data directories after each suite")
    ap.add_argument("--wire-seconds", type=int, help="seconds per wire pgbench run (default 10)")
    ap.add_argument("--oltp-scale", type=int, help="pgbench scale (default 10, smoke 1)")
    ap.add_argument("--oltp-seconds", type=int, help="seconds per pgbench run (default 20, "
                                                     "smoke 2)")
    ap.add_argument("--oltp-clients", default="1,8,32",
                    help="client counts (default 1,8,32); empty: pgbench -i only")
    ap.add_argument("--tpch-scale", type=float, help="TPC-H scale factor (default 1, smoke 0.01)")
    ap.add_argument("--sf10", action="store_true", help="TPC-H at scale factor 10")
    ap.add_argument("--query-timeout", type=float,
                    help="statement_timeout for TPC-H queries on the servers, seconds "
                         "(default 600, smoke 60)")
    ap.add_argument("--ingest-rows", type=int,
                    help="rows for the narrow ingest table; the wide one gets a fifth "
                         "(default 5,000,000, smoke 20,000)")
    ap.add_argument("--restart-mb", type=int,
                    help="MiB of row data committed before the restart suite's crash "
                         "(default 1024, smoke 20)")
    ap.add_argument("--ivm-seconds", type=int,
                    help="seconds per ivm pgbench run (default 20; smoke 2 for the 8-client "
                         "runs, 1 for the others)")
    ap.add_argument("--ivm-rows", type=int,
                    help="orders rows of the ivm write runs (default 100,000, smoke 5,000)")
    ap.add_argument("--ivm-rehydrate-rows", type=int,
                    help="orders rows under the view ivm restarts Floe with "
                         "(default 1,000,000, smoke 20,000)")
    args = ap.parse_args(argv)
    if args.sf10:
        args.tpch_scale = 10.0
    for s in args.suites:
        if s not in SUITES:
            ap.error(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
    if args.restart_mb is not None and args.restart_mb < 1:
        ap.error("--restart-mb must be at least 1")
    for opt in ("ivm_seconds", "ivm_rows", "ivm_rehydrate_rows"):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be at least 1")
    if args.repeat is not None and args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def cmd_out(cmd, **kw):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
        return (r.stdout.strip() or r.stderr.strip()).splitlines()[0] if r.returncode == 0 \
            else "?"
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine(ctx):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    osname = "?"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    versions = {}
    try:
        import duckdb
        versions["DuckDB (Python)"] = duckdb.__version__
    except ImportError:
        versions["DuckDB (Python)"] = "not installed"
    try:
        import datafusion
        versions["DataFusion (Python)"] = datafusion.__version__
    except ImportError:
        versions["DataFusion (Python)"] = "not installed"
    try:
        import psycopg
        versions["psycopg"] = psycopg.__version__
    except ImportError:
        versions["psycopg"] = "not installed"
    import matplotlib
    versions["matplotlib"] = matplotlib.__version__
    tg = os.environ.get("TPCHGEN_CLI") or os.path.join(ctx.bench_dir, ".tools", "bin", "tpchgen-cli")
    rev = cmd_out(["git", "rev-parse", "--short", "HEAD"], cwd=ctx.root)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=ctx.root, capture_output=True, text=True).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(ctx.floe_bin)))
    profile = (" (release build)" if "/release/" in ctx.floe_bin else
               " (**debug build**)" if "/debug/" in ctx.floe_bin else "")
    rows = [
        ("cores (nproc)", str(os.cpu_count())),
        ("memory", mem),
        ("CPU", cpu),
        ("OS / kernel", f"{osname} / {platform.release()}"),
        ("work dir file system", f"{fs_type(ctx.work)} ({ctx.work})"),
        ("Floe", f"{cmd_out([ctx.floe_bin, '--version'])} — `{ctx.floe_bin}`{profile}, "
                 f"built {built} UTC; "
                 f"work tree at git {rev}{' + uncommitted changes' if dirty else ''}"),
        ("PostgreSQL", cmd_out([f"{PG_BIN}/postgres", "--version"])),
        ("pgbench", cmd_out([f"{PG_BIN}/pgbench", "--version"])),
        ("tpchgen-cli", cmd_out([tg, "--version"]) if os.path.exists(tg) else "not installed"),
        ("rustc", cmd_out(["rustc", "--version"])),
        ("Python", sys.version.split()[0]),
    ] + list(versions.items())
    return rows


def default_out(bench_dir):
    day = time.strftime("%Y-%m-%d")
    out = os.path.join(bench_dir, "results", day)
    if os.path.exists(os.path.join(out, "report.md")):
        out = os.path.join(bench_dir, "results", time.strftime("%Y-%m-%d-%H%M"))
    return out


def prune_smoke_dirs(parent, keep):
    """Smoke runs pile up in bench/work/: keep the newest few (with this run's, three)."""
    try:
        dirs = sorted(d for d in os.listdir(parent) if d.endswith("-smoke"))
    except OSError:
        return
    for d in dirs[:-keep] if keep else dirs:
        shutil.rmtree(os.path.join(parent, d), ignore_errors=True)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    root = os.path.dirname(bench_dir)
    run_id = time.strftime("%Y%m%d-%H%M%S") + ("-smoke" if args.smoke else "")
    work = os.path.abspath(args.work or os.path.join(bench_dir, "work", run_id))
    if args.out:
        out = os.path.abspath(args.out)
    elif args.smoke:
        out = os.path.join(work, "report")
    else:
        out = default_out(bench_dir)
    if args.smoke and not args.work:
        prune_smoke_dirs(os.path.join(bench_dir, "work"), keep=2)
    os.makedirs(work, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    if not args.floe or not os.path.exists(args.floe):
        print(f"bench/run: Floe binary not found: {args.floe!r} (set FLOE_BIN or --floe)",
              file=sys.stderr)
        return 2
    ctx = Context(args=args, smoke=args.smoke, repeat=args.repeat or (1 if args.smoke else 3),
                  root=root, bench_dir=bench_dir, work=work, out=out,
                  floe_bin=os.path.abspath(args.floe),
                  cache=os.path.join(bench_dir, "work", "cache"))
    suites = args.suites or list(SUITES)
    started = time.time()
    ctx.log(f"suites {', '.join(suites)}; repeat {ctx.repeat}; work dir {work}; report {out}")
    sections = []
    durations = {}
    for name in suites:
        title, fn = SUITES[name]
        t0 = time.time()
        ctx.log(f"=== {name}")
        try:
            body = fn(ctx)
        except HarnessError as e:
            ctx.harness_error(f"{name}: {e}")
            body = f"**Harness error:** {e}\n"
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            tb = traceback.format_exc()
            with open(os.path.join(work, f"{name}-traceback.txt"), "w") as f:
                f.write(tb)
            print(tb, file=sys.stderr)
            ctx.harness_error(f"{name}: {type(e).__name__}: {e}")
            body = f"**Harness error:** `{type(e).__name__}: {e}` (traceback in the work dir)\n"
        durations[name] = time.time() - t0
        sections.append(f"## {title} (`{name}`, {durations[name]:.0f} s)\n\n{body}")

    total = time.time() - started
    head = [f"# Floe benchmark report — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"]
    if args.smoke:
        head.append("> **Smoke run**: tiny sizes, one run each. It checks that the harness works; "
                    "its numbers mean nothing.\n")
    head.append(f"`bench/run {' '.join(sys.argv[1:] if argv is None else argv)}` — suites: "
                f"{', '.join(suites)}; {ctx.repeat} run(s) per measurement; total "
                f"{total:.0f} s. Every ratio compares Floe with a peer measured in the same run "
                "on this machine; clients and servers share its cores. Cells with several runs "
                "read `median [min–max]`; ratios use medians. Raw data: "
                f"`{os.path.relpath(work, root)}` (not committed).\n")
    head.append("### Machine\n")
    head.append("| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in machine(ctx)))
    head.append("\nPostgreSQL settings: " + ", ".join(f"`{k}={v}`" for k, v in
                                                       PG_SETTINGS.items()) +
                "; Floe: `floe serve --log-level warn --max-connections 300` with defaults "
                "otherwise. Both servers keep their data under the work dir.\n")
    if ctx.harness_errors:
        head.append("### Harness errors\n")
        head.append("\n".join(f"- {e}" for e in ctx.harness_errors) + "\n")
    report = "\n".join(head) + "\n" + "\n".join(sections)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(report)
    ctx.log(f"report: {path} ({total:.0f} s)")
    if ctx.harness_errors:
        ctx.log(f"{len(ctx.harness_errors)} harness error(s): exit 1")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

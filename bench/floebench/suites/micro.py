"""micro: the criterion benches of the `floe-storage` package, when it has any.

Full runs use `cargo bench --workspace --bench storage` (optimised); the smoke run uses
`cargo test --workspace --benches`, which runs every criterion bench once in test mode
(a debug build: it checks that the benches still build and run, it measures nothing). Both
select the whole workspace, never `-p floe-storage`: a package-scoped build resolves other
features and would recompile DataFusion.
Micro benches have no peer in the same run, so they are reported in absolute numbers only.
"""

import glob
import json
import os
import subprocess

from ..common import HarnessError, one_line
from ..report import table


def bench_targets(ctx):
    r = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                       cwd=ctx.root, capture_output=True, text=True)
    if r.returncode != 0:
        raise HarnessError(f"cargo metadata failed: {one_line(r.stderr, 600)}")
    meta = json.loads(r.stdout)
    pkg = next((p for p in meta["packages"] if p["name"] == "floe-storage"), None)
    if pkg is None:
        return None, []
    return pkg, [t["name"] for t in pkg["targets"] if "bench" in t["kind"]]


def fmt_ns(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"


def run(ctx):
    pkg, benches = bench_targets(ctx)
    if pkg is None:
        return "No micro benches yet: the workspace has no `floe-storage` package.\n"
    if not benches:
        return "No micro benches yet: `floe-storage` has no `[[bench]]` targets.\n"
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ctx.root, "target"))
    crit = os.path.join(target_dir, "criterion")
    if ctx.smoke:
        cmd = ["cargo", "test", "--locked", "--workspace", "--benches"]
    else:
        cmd = ["cargo", "bench", "--locked", "--workspace"] + \
            [arg for b in benches for arg in ("--bench", b)]
    ctx.log("micro: " + " ".join(cmd))
    log = os.path.join(ctx.work, "micro.log")
    os.makedirs(ctx.work, exist_ok=True)
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=ctx.root, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise HarnessError(f"`{' '.join(cmd)}` failed (exit {r.returncode}); see {log}")
    out = [f"`{' '.join(cmd)}`: bench targets {', '.join(benches)}. "
           "No peer runs these: absolute numbers only.\n"]
    if ctx.smoke:
        out.append("Smoke run: each bench ran once in test mode (no timings).\n")
        return "\n".join(out)
    rows = []
    for est in sorted(glob.glob(os.path.join(crit, "**", "new", "estimates.json"),
                                recursive=True)):
        name = os.path.relpath(os.path.dirname(os.path.dirname(est)), crit)
        try:
            with open(est) as f:
                e = json.load(f)
            m = e["mean"]
            ci = m["confidence_interval"]
            rows.append([name, fmt_ns(e["median"]["point_estimate"]), fmt_ns(m["point_estimate"]),
                         f"{fmt_ns(ci['lower_bound'])} – {fmt_ns(ci['upper_bound'])}"])
        except (OSError, KeyError, ValueError):
            continue
    if rows:
        out.append(table(["bench", "median", "mean", "mean 95% CI"], rows))
    else:
        out.append(f"criterion wrote no estimates under {crit}; see {log}.\n")
    return "\n".join(out)

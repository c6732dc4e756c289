"""Shared pieces of the benchmark harness: run context, outcomes, statistics, pgbench."""

import glob
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field

PG_BIN = os.environ.get("FLOE_BENCH_PG_BIN", "/usr/lib/postgresql/15/bin")
FLOE = "Floe"
PG = "PostgreSQL 15"


class HarnessError(Exception):
    """The harness itself (or a reference peer) failed: the run must exit non-zero."""


class StepFailed(Exception):
    """A server refused or failed a step; `message` is what the server said."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


@dataclass
class Context:
    args: object
    smoke: bool
    repeat: int
    root: str  # the repository root
    bench_dir: str  # bench/
    work: str  # this run's raw-data directory (git-ignored)
    out: str  # where report.md and the PNGs go
    floe_bin: str
    cache: str  # data reused across runs (generated TPC-H, ingest CSVs), git-ignored
    harness_errors: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)

    def log(self, msg):
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def harness_error(self, msg):
        self.log(f"HARNESS ERROR: {msg}")
        self.harness_errors.append(msg)


# ---------------------------------------------------------------- outcomes and statistics


class Outcome:
    """The repeated measurements of one metric on one engine, or why there are none."""

    def __init__(self):
        self.values = []
        self.error = None  # first failure message
        self.cannot = False  # True: Floe cannot run this yet (server said so)
        self.timed_out = None  # seconds, when a run hit the statement timeout

    def add(self, v):
        self.values.append(v)

    def fail(self, message, cannot=True):
        if self.error is None:
            self.error = message
            self.cannot = cannot

    @property
    def ok(self):
        return bool(self.values) and self.error is None and self.timed_out is None

    @property
    def median(self):
        return statistics.median(self.values) if self.ok else None

    def cell(self, fmt="{:.1f}"):
        """'median [min–max]' (or one value when measured once), or why there is none."""
        if not self.ok:
            if self.error is None:
                return f"timeout (> {self.timed_out:g} s)" if self.timed_out else "—"
            return "n/a ¹" if self.cannot else "FAILED"
        v = sorted(self.values)
        med = fmt.format(statistics.median(v))
        if len(v) == 1:
            return med
        return f"{med} [{fmt.format(v[0])}–{fmt.format(v[-1])}]"


def ratio(a, b):
    """a / b of two Outcomes' medians, or None."""
    if a is None or b is None or not a.ok or not b.ok:
        return None
    if b.median == 0:
        return None
    return a.median / b.median


def ratio_cell(r, fmt=None):
    if r is None:
        return "—"
    if fmt:
        return fmt.format(r)
    return f"{r:.1f}×" if r >= 10 else f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def one_line(msg, limit=400):
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


def cannot_text(message):
    return f"Floe cannot run this yet: {one_line(message)}"


class Notes:
    """Numbered footnotes for the cells that have no number (why Floe could not run a step)."""

    def __init__(self):
        self.items = []  # (step, message)
        self.infos = []

    def add(self, step, message):
        self.items.append((step, message))

    def info(self, line):
        self.infos.append(line)

    def markdown(self):
        extra = "".join(f"\n- {line}" for line in self.infos)
        if not self.items:
            return extra + ("\n" if extra else "")
        # Group identical messages so 22 identical "relation does not exist" lines read as one.
        groups = {}
        for step, msg in self.items:
            groups.setdefault(one_line(msg), []).append(step)
        lines = ["", "¹ Steps Floe could not run (the error Floe returned):", ""]
        for msg, steps in groups.items():
            shown = ", ".join(steps[:8]) + (f", … ({len(steps)} steps)" if len(steps) > 8 else "")
            lines.append(f"- {shown}: {cannot_text(msg)}")
        return "\n".join(lines) + extra + "\n"


def measure(ctx, server, outcome, notes, step, fn, key=None):
    """Runs fn() for one measurement of `step` on `server` and records the value in outcome.

    A failure on Floe is recorded as 'Floe cannot run this yet' with the server's message; a
    failure on a reference peer is a harness error (the run exits non-zero)."""
    try:
        if not server.alive():
            if server.revive(step):
                notes.info(f"{server.name} had exited (see the footnotes); it was restarted "
                           f"on the same data directory before “{step}”.")
                ctx.log(f"{server.name} restarted before {step}")
            else:
                raise StepFailed(server.dead_message())
        value = fn()
    except StepFailed as e:
        first = outcome.error is None
        if server.name == FLOE:
            outcome.fail(e.message)
            if first:
                notes.add(step, e.message)
                ctx.log(f"{step}: {cannot_text(e.message)}")
        else:
            outcome.fail(e.message, cannot=False)
            if first:
                ctx.harness_error(f"{server.name} failed {step}: {e.message}")
        return None
    if value is not None:
        outcome.add(key(value) if key else value)
    return value


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# ---------------------------------------------------------------- pgbench


def pgbench_error(stderr, stdout=""):
    """The most telling line of pgbench's output: the server's ERROR (with the statement, when
    pgbench names it), else pgbench's own complaint."""
    text = (stderr or "") + "\n" + (stdout or "")
    m = re.search(r"((?:ERROR|FATAL):.*)", text)
    if m:
        q = re.search(r"Query was: (.*)", text)
        return one_line(m.group(1) + (f" — in: {q.group(1)}" if q else ""))
    # pgbench's threads interleave their lines: take the clean ones, the commonest first.
    msgs = [m.group(1) for m in re.finditer(r"^pgbench: error: (.*)$", text, re.M)
            if "pgbench:" not in m.group(1)]
    if msgs:
        plain = [x for x in msgs if not x.startswith("client ")] or msgs
        msg = max(plain, key=plain.count)
        aborted = next((x for x in msgs if re.match(r"client \d+ aborted", x)), None)
        if aborted and aborted != msg:
            msg += " (" + re.sub(r"^client \d+", "a client", aborted) + ")"
        if re.search(r"^scaling factor: 0$", text, re.M):
            msg += "; pgbench found scale 0 (pgbench_branches is empty)"
        return one_line("pgbench: " + msg)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return one_line(lines[-1] if lines else "pgbench failed without a message")


def run_pgbench(port, extra, log_dir, timeout, env=None, keep_logs=False):
    """Runs pgbench against 127.0.0.1:port with per-transaction logging in log_dir.

    Returns dict(tps, lat_ms=list of per-transaction latencies in ms (sorted), stdout). The
    per-transaction log files are deleted after parsing unless keep_logs.
    Raises StepFailed with the server's message when pgbench fails or aborts.
    """
    os.makedirs(log_dir, exist_ok=True)
    for f in glob.glob(os.path.join(log_dir, "tx*")):
        os.unlink(f)
    cmd = [f"{PG_BIN}/pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
           "-l", f"--log-prefix={os.path.join(log_dir, 'tx')}"] + extra + ["postgres"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=log_dir,
                             env=env)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"pgbench did not finish within {timeout} s (server hung?)")
    with open(os.path.join(log_dir, "pgbench.out"), "w") as f:
        f.write(" ".join(cmd) + "\n" + out.stdout + "\n--- stderr\n" + out.stderr)
    m = re.search(r"tps = ([0-9.]+)", out.stdout)
    if out.returncode != 0 or not m:
        raise StepFailed(pgbench_error(out.stderr, out.stdout))
    lat = []
    for path in glob.glob(os.path.join(log_dir, "tx*")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    lat.append(int(parts[2]) / 1000.0)
        if not keep_logs:  # they run to hundreds of MB over a full run
            os.unlink(path)
    lat.sort()
    avg = re.search(r"latency average = ([0-9.]+) ms", out.stdout)
    return {"tps": float(m.group(1)), "lat_ms": lat, "stdout": out.stdout,
            "avg_ms": float(avg.group(1)) if avg else None}


INIT_DONE = re.compile(r"done in ([0-9.]+) s \(([^()]*)\)")


def parse_init_steps(text):
    """pgbench -i's closing line, e.g. 'done in 1.78 s (drop tables 0.00 s, create tables
    0.02 s, client-side generate 1.07 s, vacuum 0.14 s, primary keys 0.56 s).', as
    (total seconds, {step: seconds} in pgbench's order); (None, {}) when it is not there."""
    found = INIT_DONE.findall(text or "")
    if not found:
        return None, {}
    total, inner = found[-1]
    steps = {}
    for part in inner.split(","):
        m = re.match(r"\s*(.*?)\s+([0-9.]+) s\s*$", part)
        if m:
            steps[m.group(1)] = float(m.group(2))
    return float(total), steps


def pgbench_init(port, scale, log_dir, timeout, steps=None, tag=None):
    """`pgbench -i -s scale [-I steps]`; returns dict(elapsed=wall seconds measured here,
    total=pgbench's own 'done in' seconds or None, steps={step name: seconds} from its closing
    line, e.g. 'client-side generate'). Its output goes to log_dir/pgbench-init-STEPS[-tag].out.
    Raises StepFailed with the server's error."""
    os.makedirs(log_dir, exist_ok=True)
    cmd = [f"{PG_BIN}/pgbench", "-i", "-s", str(scale), "-h", "127.0.0.1", "-p", str(port),
           "-U", "postgres"] + (["-I", steps] if steps else []) + ["postgres"]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"pgbench -i did not finish within {timeout} s")
    elapsed = time.monotonic() - t0
    name = f"pgbench-init-{steps or 'default'}{'-' + tag if tag else ''}.out"
    with open(os.path.join(log_dir, name), "w") as f:
        f.write(" ".join(cmd) + "\n" + out.stdout + "\n--- stderr\n" + out.stderr)
    if out.returncode != 0:
        raise StepFailed(pgbench_error(out.stderr, out.stdout))
    total, by_step = parse_init_steps(out.stderr)
    return {"elapsed": elapsed, "total": total, "steps": by_step}


def run_pgbench_init(port, scale, log_dir, timeout, steps=None, tag=None):
    """`pgbench -i -s scale [-I steps]`; returns seconds taken, raises StepFailed with the
    server's error. pgbench_init() also returns pgbench's per-step breakdown."""
    return pgbench_init(port, scale, log_dir, timeout, steps, tag)["elapsed"]


def which_or(path, name):
    return path if os.path.exists(path) else shutil.which(name)

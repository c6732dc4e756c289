"""The differential tester's short seeded pass (tests/differential): up to 2,000 generated
statements (75 s at most) on Floe and on PostgreSQL 15 side by side, failing on a difference in a class that
tests/differential/known_differences.toml does not list. The findings (summary, minimal .slt
cases) go to target/difftest-ci/. FLOE_DIFFTEST_SEED and FLOE_DIFFTEST_QUERIES change the seed
and the count; with FLOE_CLIENT_TARGET=postgres it compares PostgreSQL with a second
PostgreSQL planning differently (which checks that every generated query has one answer).
The long run is `scripts/difftest.sh`.
"""

import os
import sys
import time
from pathlib import Path

import pytest

from conftest import TARGET
from servers import start_floe, start_postgres

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "differential"))

from difftest import OTHER_PLANS, DiffTest  # noqa: E402
from report import load_known  # noqa: E402

SEED = int(os.environ.get("FLOE_DIFFTEST_SEED", "15"))
# Classes of this seed's pass that are still open (the ratchet): a class not listed here and
# not in known_differences.toml fails the pass; a fixed one simply stops appearing (remove it
# with FLOE_DIFFTEST_WRITE_BASELINE=1, which rewrites the file from a full run).
BASELINE = ROOT / "tests" / "differential" / "ci_baseline.txt"
WRITE_BASELINE = os.environ.get("FLOE_DIFFTEST_WRITE_BASELINE") == "1"
QUERIES = int(os.environ.get("FLOE_DIFFTEST_QUERIES", "2000"))
SECONDS = 75  # stop early on a slow machine rather than hold up CI


@pytest.mark.timeout(900 if WRITE_BASELINE else SECONDS + 90)
def test_differential_short_pass():
    print(f"difftest seed {SEED} (FLOE_DIFFTEST_SEED), {QUERIES} statements")
    pg = start_postgres()
    against_pg = TARGET == "postgres"
    start_other = start_postgres if against_pg else start_floe
    other = start_other()
    test = DiffTest(pg, other, SEED, ROOT / "target" / "difftest-ci", load_known(),
                    start_other, OTHER_PLANS if against_pg else (), budget=60, row_budget=20)
    try:
        deadline = None if WRITE_BASELINE else time.monotonic() + SECONDS
        summary = test.run(QUERIES, deadline=deadline)
        print(summary.write())
        unknown = summary.unknown()
    finally:
        test.close()
        test.other_server.stop()
        pg.stop()
    assert summary.statements >= min(QUERIES, 1000), "too few statements ran"
    if WRITE_BASELINE and not against_pg:
        BASELINE.write_text("".join(f"{c}\n" for c in sorted(unknown)))
    baseline = set() if against_pg else set(BASELINE.read_text().splitlines())
    new = {c: n for c, n in unknown.items() if c not in baseline}
    print(f"difftest: {len(unknown)} open classes seen, {len(baseline - set(unknown))} of the "
          f"baseline's {len(baseline)} not seen, {len(new)} new")
    top = sorted(new.items(), key=lambda kv: -kv[1])[:20]
    assert not new, (
        f"seed {SEED}: {sum(new.values())} differences from PostgreSQL in {len(new)} classes "
        "neither in known_differences.toml nor in ci_baseline.txt (see "
        "target/difftest-ci/summary.txt and cases/), the most frequent: "
        + "; ".join(f"{c} ({n})" for c, n in top)
    )

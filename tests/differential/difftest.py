"""The differential tester: seeded random statements on Floe and on PostgreSQL 15, side by side.

    python tests/differential/difftest.py [--queries N] [--seed S] [--out DIR]

starts both servers (tests/clients/servers.py), runs N generated statements and prints the
count of differences per class with one minimal example each; the examples are written to
DIR/cases/*.slt (PostgreSQL's answers in the sql-tests format), every difference to
DIR/findings.jsonl. The exit code is 1 when a difference falls in a class that
known_differences.toml does not list. `--against-postgres` compares two PostgreSQL servers
(the second with other planner settings), which checks that the generator's queries have one
right answer.

The run is a series of episodes: a fresh random schema and rows (setup statements, compared
too), then `--episode` statements on it (queries, and DML whose table contents are compared
afterwards). Values one server cannot store are replaced by NULL (and reported once); a DML
statement that leaves a table different is reported, and the table is loaded again from
PostgreSQL's rows, so one difference is not reported over and over.
"""

import argparse
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients"))

from generator import Gen, Table, gen_rows, gen_schema  # noqa: E402
from minimize import Evaluation, Minimizer, evaluate  # noqa: E402
from report import Summary, classify, load_known, message_shape  # noqa: E402
from runner import Side, compare, differing_column, numeric_scale_only, run_pair  # noqa: E402
from servers import start_floe, start_postgres  # noqa: E402
from sqlast import Raw, is_dml  # noqa: E402

# Planner settings of the second PostgreSQL in --against-postgres mode: other join and
# aggregation strategies give other row orders.
OTHER_PLANS = ("SET enable_hashjoin = off", "SET enable_hashagg = off",
               "SET enable_mergejoin = off")
DML_SHARE = 0.15
EXTENDED_SHARE = 0.3


class DiffTest:
    """A run against two servers: PostgreSQL (`pg_server`, the reference) and the compared
    one (`other_server`, Floe or a second PostgreSQL), with findings going to `out_dir`."""

    def __init__(self, pg_server, other_server, seed, out_dir, known, start_other=None,
                 other_settings=(), budget=150, row_budget=40, episode_len=200, log=print):
        self.pg_server = pg_server
        self.other_server = other_server
        self.start_other = start_other  # restarts the compared server after a crash
        self.other_settings = other_settings
        self.seed = seed
        self.episode_len = episode_len
        self.log = log
        self.summary = Summary(out_dir, known)
        self.pg = Side("postgres", pg_server)
        self.floe = Side("floe", other_server, settings=other_settings)
        self.budget = budget
        self.row_budget = row_budget
        self.minimizer = None
        self.restarts = 0
        self.signatures = Counter()  # differences seen per signature
        self.by_message = {}  # signature + Floe's error message → Counter of classes
        self.bad_values = {}  # (column type, value) one server cannot store alike → class

    # servers

    def setup_min_db(self):
        for side in (self.pg, self.floe):
            side.run("DROP DATABASE IF EXISTS difftest_min")
            side.must("CREATE DATABASE difftest_min")
        if self.minimizer is None:
            self.minimizer = Minimizer(self.pg_server, self.other_server, self.other_settings,
                                       self.row_budget)
        else:
            self.minimizer.use_floe(self.other_server)

    def ensure_alive(self):
        """After a lost connection: restart the compared server if its process died. True when
        it was restarted (its tables are gone)."""
        if self.other_server.proc.poll() is None:
            return False
        code = self.other_server.proc.returncode
        self.log(f"difftest: {self.other_server.kind} died (exit {code}); restarting")
        self.other_server.stop()
        self.other_server = self.start_other()
        self.restarts += 1
        self.floe.close()
        self.floe = Side("floe", self.other_server, settings=self.other_settings)
        self.setup_min_db()
        return True

    def close(self):
        self.pg.close()
        self.floe.close()
        if self.minimizer:
            self.minimizer.close()
        self.summary.close()

    # the run

    def run(self, n_statements, deadline=None):
        self.setup_min_db()
        done, episode = 0, 0
        started = time.monotonic()
        last_report = started
        while done < n_statements and (deadline is None or time.monotonic() < deadline):
            done += self.episode(episode, min(self.episode_len, n_statements - done))
            episode += 1
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                self.log(f"difftest: {done} statements, {sum(self.summary.counts.values())} "
                         f"differences, {done / (last_report - started):.0f}/s")
        return self.summary

    def episode(self, episode, n):
        """One schema and up to n statements on it; returns the number of statements run."""
        rng = random.Random(f"{self.seed}/{episode}")
        tables = gen_schema(rng)
        rows = {t.name: gen_rows(rng, t) for t in tables}
        if not self.setup(episode, tables, rows):
            return 0
        gen = Gen(rng, tables)
        next_key = 100
        for i in range(n):
            index = f"{episode}.{i}"
            if rng.random() < DML_SHARE:
                stmt = gen.dml(next_key)
                next_key += 3
            else:
                stmt = gen.query()
            extended = rng.random() < EXTENDED_SHARE
            self.summary.statements += 1
            ev = evaluate(self.pg, self.floe, stmt, extended, in_block=False)
            if ev.pg.sqlstate:
                self.summary.pg_errors[ev.pg.sqlstate] += 1
            if ev.signature is None:
                if is_dml(stmt):
                    rows[stmt.table] = [list(r) for r in ev.pg_state.rows]
                continue
            self.report(stmt, ev, extended, tables, rows, index)
            if ev.signature.startswith("lost") and self.ensure_alive():
                return i + 1
            if is_dml(stmt):
                state = ev.pg_state.rows if ev.pg_state is not None else None
                table = next(t for t in tables if t.name == stmt.table)
                if state is None or not numeric_scale_only(ev.pg_state, ev.floe_state):
                    rows[stmt.table] = self.resync(table, [list(r) for r in state or ()],
                                                   episode)
                    if rows[stmt.table] is None:
                        return i + 1  # still different: start a new episode
                else:
                    rows[stmt.table] = [list(r) for r in state]
        return n

    def setup(self, episode, tables, rows):
        """Creates the tables and loads the rows on both servers, comparing every statement.
        False when the episode must be skipped."""
        for t in tables:
            for sql in (f"DROP TABLE IF EXISTS {t.name}", t.ddl()):
                a, b = run_pair(self.pg, self.floe, sql)
                self.summary.setup_statements += 1
                if compare(a, b) is not None or not a.ok:
                    self.setup_difference(Raw(sql), Evaluation(compare(a, b), a, b), t, episode)
                    return False
            rows[t.name] = self.load_rows(t, rows[t.name], episode)
            if rows[t.name] is None:
                return False
        return True

    def resync(self, table, pg_rows, episode):
        """After a DML statement left the table different: both get PostgreSQL's rows again.
        Returns the rows, or None when the tables still differ."""
        run_pair(self.pg, self.floe, f"DELETE FROM {table.name}")
        return self.load_rows(table, pg_rows, episode)

    def load_rows(self, t, rows, episode):
        """Inserts the rows one at a time on both servers, comparing each INSERT and the row it
        stored. A value one server rejects or stores differently is recorded (once per type and
        value) and replaced by NULL, here and in later rows. Returns the rows as PostgreSQL
        holds them, or None when the tables still differ."""
        for row in rows:
            row = [None if (c.sql_type, v) in self.bad_values else v
                   for c, v in zip(t.columns, row)]
            while True:
                stmt = Raw(t.insert_sql(row), t.name)
                a, b = run_pair(self.pg, self.floe, stmt.sql())
                self.summary.setup_statements += 1
                sig = compare(a, b)
                if sig is None and a.ok:
                    sa, sb = run_pair(self.pg, self.floe,
                                      f"SELECT * FROM {t.name} WHERE k = {row[0]}")
                    if numeric_scale_only(sa, sb):
                        if sa.rows != sb.rows:
                            self.note_numeric_scale(stmt, Evaluation("state", a, b, sa, sb), t,
                                                    episode)
                    elif compare(sa, sb) is not None:
                        sig, a, b = "state", sa, sb
                if sig is None:
                    break
                run_pair(self.pg, self.floe, f"DELETE FROM {t.name} WHERE k = {row[0]}")
                col = self.setup_difference(stmt, Evaluation(sig, a, b), t, episode, row)
                if col is None:
                    break  # the row is left out
                row[col] = None
        a, b = run_pair(self.pg, self.floe, f"SELECT * FROM {t.name} ORDER BY k")
        if compare(a, b, ordered=True) is not None and not numeric_scale_only(a, b):
            return None
        return [list(r) for r in a.rows]

    def note_numeric_scale(self, stmt, ev, table, episode):
        """The known numeric difference in a stored row, recorded once per column type."""
        col = differing_column(ev.pg_state, ev.floe_state)
        key = (table.columns[col].sql_type, "numeric-scale")
        if key not in self.bad_values:
            self.bad_values[key] = "setup:stored-value:numeric-scale"
            self.summary.add({"class": self.bad_values[key], "seed": self.seed,
                              "index": f"{episode}.setup", "extended": False,
                              "original": stmt.sql(), "stmt": stmt, "rows": {}, "eval": ev,
                              "reproduced": True}, [table])

    def setup_difference(self, stmt, ev, table, episode, row=None):
        """Records a difference of a setup statement; for a row, narrowed down to the first
        column whose value alone shows it. Returns that column's index, or None."""
        cls = f"setup:{ev.signature}:{stmt.sql().split(' (')[0].lower()}"
        culprit = None
        if row is not None:
            cls = f"setup:{ev.signature}:insert"
            for i, (col, raw) in enumerate(zip(table.columns, row)):
                if raw is None or i == 0:
                    continue
                probe = Table(table.name, [table.columns[0], col])
                one = Raw(probe.insert_sql([row[0], raw]).replace(
                    "VALUES", f"(k, {col.name}) VALUES"), table.name)
                a, b = run_pair(self.pg, self.floe, one.sql())
                sa, sb = run_pair(self.pg, self.floe,
                                  f"SELECT k, {col.name} FROM {table.name} ORDER BY k")
                run_pair(self.pg, self.floe, f"DELETE FROM {table.name} WHERE k = {row[0]}")
                sig = compare(a, b) or compare(sa, sb, ordered=True) and "state"
                if sig:
                    kind = "stored-value" if sig == "state" else sig
                    stmt, ev = one, Evaluation(sig, a, b, sa, sb)
                    cls = f"setup:{kind}:{col.sql_type}"
                    culprit = i
                    self.bad_values[(col.sql_type, raw)] = cls
                    break
        finding = {"class": cls, "seed": self.seed, "index": f"{episode}.setup",
                   "extended": False, "original": stmt.sql(), "stmt": stmt, "eval": ev,
                   "rows": {}, "reproduced": True}
        self.summary.add(finding, [table])
        if ev.pg.lost or ev.floe.lost:
            self.ensure_alive()
        return culprit

    def report(self, stmt, found, extended, tables, rows, index):
        """Minimises, classifies and records a differing statement (`found`: its Evaluation).
        Signatures seen often get a smaller reduction budget; rows are minimised for the first
        example of a class only."""
        signature, ev = found.signature, found
        if signature.startswith("lost"):
            self.ensure_alive()
        self.signatures[signature] += 1
        # Where Floe failed, its message names the class; once a message always led to the same
        # class, later statements failing with it are not minimised again.
        seen = None
        if signature.startswith("sqlstate:") and ev.floe.sqlstate:
            seen = self.by_message.setdefault(f"{signature}:{message_shape(ev.floe.message)}",
                                              Counter())
            if sum(seen.values()) >= 3 and len(seen) == 1:
                cls = next(iter(seen))
                seen[cls] += 1
                self.summary.add({"class": cls, "seed": self.seed, "index": index,
                                  "extended": extended, "original": stmt.sql(), "stmt": stmt,
                                  "eval": ev, "rows": {}, "reproduced": True}, tables)
                return
        budget = self.budget if self.signatures[signature] <= 5 else self.budget // 4
        try:
            stmt_min, ev, data, reproduced = self.minimizer.minimize(
                stmt, signature, extended, tables, rows, self.pg, self.floe, budget)
        except RuntimeError as e:  # the minimiser's database could not be loaded
            self.log(f"difftest: statement {index} not minimised: {e}")
            ev = evaluate(self.pg, self.floe, stmt, extended, in_block=True)
            stmt_min, data, reproduced = stmt, {}, False
        if ev.floe.lost:
            self.ensure_alive()
        if not reproduced:
            # Not shown again in difftest_min (its rows are in another physical order): where
            # PostgreSQL's main database answers like Floe under another plan, that is why.
            cls, ev, stmt_min = f"{signature}:unreproduced", found, stmt
            if (signature.startswith("sqlstate:") and not is_dml(stmt)
                    and self.minimizer.plan_dependent(stmt, found, extended, self.pg)):
                cls = "plan-dependent:" + cls
            elif (signature.startswith("sqlstate:")
                    and self.minimizer.order_dependent(stmt, found, extended, self.pg)):
                cls = "evaluation-order:" + cls
            elif (signature.startswith("sqlstate:")
                    and self.minimizer.scope_dependent(stmt, found, extended, self.pg,
                                                       self.floe, message_shape)):
                cls = "evaluation-scope:" + cls
        else:
            cls = classify(stmt_min, signature, ev)
            if (signature.startswith("sqlstate:")
                    and self.minimizer.plan_dependent(stmt_min, ev, extended)):
                cls = "plan-dependent:" + cls
            elif (signature.startswith("sqlstate:")
                    and self.minimizer.order_dependent(stmt_min, ev, extended)):
                cls = "evaluation-order:" + cls
            elif (signature.startswith("sqlstate:")
                    and self.minimizer.scope_dependent(stmt_min, ev, extended,
                                                       shape=message_shape)):
                cls = "evaluation-scope:" + cls
            if cls not in self.summary.counts and data:
                data, ev = self.minimizer.shrink_rows(stmt_min, signature, extended, tables,
                                                      data)
        if seen is not None:
            seen[cls] += 1
        finding = {"class": cls, "seed": self.seed, "index": index, "extended": extended,
                   "original": stmt.sql(), "stmt": stmt_min, "eval": ev, "rows": data,
                   "reproduced": reproduced}
        self.summary.add(finding, tables)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--out", default="target/difftest")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long")
    p.add_argument("--episode", type=int, default=200, help="statements per schema")
    p.add_argument("--budget", type=int, default=150,
                   help="statement reductions tried per difference")
    p.add_argument("--against-postgres", action="store_true",
                   help="compare PostgreSQL with PostgreSQL (checks the generator)")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    print(f"difftest: seed {seed} (replay with --seed {seed}), {args.queries} statements, "
          f"output in {args.out}", flush=True)
    known = load_known()
    # SIGTERM stops the run like the deadline does: the summary is written, servers stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    pg_server = start_postgres()
    start_other = start_postgres if args.against_postgres else start_floe
    other = start_other()
    settings = OTHER_PLANS if args.against_postgres else ()
    test = DiffTest(pg_server, other, seed, args.out, known, start_other, settings,
                    budget=args.budget, episode_len=args.episode,
                    log=lambda m: print(m, flush=True))
    started = time.monotonic()
    try:
        deadline = started + args.minutes * 60 if args.minutes else None
        try:
            summary = test.run(args.queries, deadline)
        except KeyboardInterrupt:
            print("difftest: interrupted", flush=True)
            summary = test.summary
        print(summary.write())
        print(f"difftest: {time.monotonic() - started:.0f}s, seed {seed}, "
              f"{test.restarts} restart(s) of {test.other_server.kind}")
        unknown = summary.unknown()
    finally:
        test.close()
        test.other_server.stop()
        pg_server.stop()
    if unknown:
        print(f"difftest: {sum(unknown.values())} difference(s) in {len(unknown)} class(es) not "
              f"in {os.path.relpath(Path(__file__).with_name('known_differences.toml'))}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

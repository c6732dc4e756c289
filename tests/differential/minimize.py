"""Shrinking a differing statement and its data while the difference persists.

The minimiser works in a database of its own (`difftest_min`) on each server, loaded with the
rows PostgreSQL held when the statement differed (the tables the statement uses only). It first
reduces the statement (`sqlast.variants`, smallest candidates first, greedy) and then the rows
(halves, then single rows), keeping a step only when the difference signature stays the same.
A DML statement is evaluated inside BEGIN … ROLLBACK, with the written table's contents
compared after it.
"""

import time
from dataclasses import dataclass

from runner import Side, compare, run_pair
from sqlast import (Select, SetOp, is_dml, reorderings, row_probes, scope_probes, tables_of,
                    variants)

MIN_DB = "difftest_min"
MINIMIZE_SECONDS = 30  # per statement, for the reductions (slow candidates add up)
# PostgreSQL planner settings under which a minimal statement is tried again: when one of them
# gives Floe's outcome, the difference is only in an order of evaluation PostgreSQL leaves open
# (which join side, filter or row comes first).
PLAN_VARIANTS = (
    ("enable_hashjoin", "enable_mergejoin"),
    ("enable_nestloop", "enable_hashjoin"),
    ("enable_nestloop", "enable_mergejoin"),
    ("enable_seqscan",),
    ("enable_indexscan", "enable_bitmapscan"),
    ("enable_hashagg",),
    ("enable_sort",),
)


# The function `sqlast.row_probes` call on PostgreSQL: runs a statement, returns `ok` or its
# error as `SQLSTATE:message` (created inside each probe's transaction block).
TRY_FUNCTION = (
    "CREATE FUNCTION pg_temp.difftest_try(q text) RETURNS text LANGUAGE plpgsql AS $f$ "
    "BEGIN EXECUTE q; RETURN 'ok'; "
    "EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ':' || SQLERRM; END $f$")


@dataclass
class Evaluation:
    signature: str
    pg: object  # Outcome
    floe: object
    pg_state: object = None  # Outcome of the table read after a DML, or None
    floe_state: object = None


def statement_meta(stmt):
    """(ordered, inexact flags per output column) for comparing a statement's rows."""
    if isinstance(stmt, (Select, SetOp)):
        items = stmt.items
    else:
        items = stmt.returning
    inexact = tuple(bool(getattr(i.expr, "inexact", False)) for i in items)
    return bool(getattr(stmt, "ordered", False)), inexact


def state_sql(table):
    return f"SELECT * FROM {table} ORDER BY k"


def evaluate(pg, floe, stmt, extended, in_block):
    """Runs `stmt` on both sides and compares. A DML statement's table is read after it; with
    `in_block` the statement runs inside BEGIN … ROLLBACK (after a savepoint, rolled back to
    where the statement failed, as autocommit would), so the tables stay as they were."""
    ordered, inexact = statement_meta(stmt)
    sql = stmt.sql()
    if not is_dml(stmt):
        a, b = run_pair(pg, floe, sql, extended)
        return Evaluation(compare(a, b, ordered, inexact), a, b)
    pg.keep_block = floe.keep_block = in_block
    try:
        if in_block:
            run_pair(pg, floe, "BEGIN")
            run_pair(pg, floe, "SAVEPOINT difftest")
        a, b = run_pair(pg, floe, sql, extended)
        if in_block:
            for side, out in ((pg, a), (floe, b)):
                if out.sqlstate:
                    side.run("ROLLBACK TO SAVEPOINT difftest")
        sig = compare(a, b, ordered, inexact)
        sa, sb = run_pair(pg, floe, state_sql(stmt.table))
        if sig is None and (sa.lost or sb.lost):
            sig = compare(sa, sb)
        if sig is None and sb.sqlstate is None:
            state = compare(sa, sb, ordered=True)
            sig = state and f"state:{state}"
    finally:
        if in_block:
            run_pair(pg, floe, "ROLLBACK")
        pg.keep_block = floe.keep_block = False
    return Evaluation(sig, a, b, sa, sb)


class Minimizer:
    """Owns the `difftest_min` connections of both servers."""

    def __init__(self, pg_server, floe_server, floe_settings, row_budget):
        self.pg = Side("postgres-min", pg_server, MIN_DB)
        self.floe = Side("floe-min", floe_server, MIN_DB, floe_settings)
        self.floe_settings = floe_settings
        self.row_budget = row_budget

    def use_floe(self, floe_server):
        """After Floe was restarted: point at the new server; its database is gone."""
        self.floe.close()
        self.floe = Side("floe-min", floe_server, MIN_DB, self.floe_settings)

    def close(self):
        self.pg.close()
        self.floe.close()

    def load(self, tables, rows):
        """Creates `tables` (Table objects) with `rows` (name → raw rows) on both sides, keeping
        the rows both servers accept."""
        kept = {}
        for t in tables:
            run_pair(self.pg, self.floe, f"DROP TABLE IF EXISTS {t.name}")
            a, b = run_pair(self.pg, self.floe, t.ddl())
            if not (a.ok and b.ok):
                raise RuntimeError(f"minimiser: {t.ddl()}: {a.brief()} / {b.brief()}")
            kept[t.name] = []
            for row in rows.get(t.name, []):
                a, b = run_pair(self.pg, self.floe, t.insert_sql(row))
                if not a.ok:
                    raise RuntimeError(f"minimiser: {t.insert_sql(row)}: {a.brief()}")
                if b.ok:
                    kept[t.name].append(row)
                else:
                    run_pair(self.pg, self.floe, f"DELETE FROM {t.name} WHERE k = {row[0]}")
        return kept

    def minimize(self, stmt, signature, extended, tables, rows, main_pg, main_floe, budget):
        """Reduces the statement, trying at most `budget` candidates: (minimal statement, its
        Evaluation, rows loaded per table, reproduced?). Statements without tables run on the
        main connections; the others in difftest_min, loaded with `rows`."""
        used = tables_of(stmt)
        if used:
            data = self.load([t for t in tables if t.name in used], rows)
            pg, floe = self.pg, self.floe
        else:
            data = {}
            pg, floe = main_pg, main_floe
        seen = {}

        def check(candidate):
            sql = candidate.sql()
            if sql not in seen:
                seen[sql] = evaluate(pg, floe, candidate, extended, in_block=True)
            return seen[sql]

        first = check(stmt)
        if first.signature != signature:
            return stmt, first, data, False
        best, best_eval = stmt, first
        evaluations = 0
        deadline = time.monotonic() + MINIMIZE_SECONDS
        improved = True
        while improved and evaluations < budget and time.monotonic() < deadline:
            improved = False
            candidates = {}
            for cand in variants(best):
                sql = cand.sql()
                if len(sql) < len(best.sql()) and sql not in seen:
                    candidates.setdefault(sql, cand)
            for sql in sorted(candidates, key=len):
                if evaluations >= budget or time.monotonic() > deadline:
                    break
                evaluations += 1
                ev = check(candidates[sql])
                if ev.signature == signature:
                    best, best_eval = candidates[sql], ev
                    improved = True
                    break
        return best, best_eval, data, True

    def plan_dependent(self, stmt, ev, extended, pg=None):
        """Whether PostgreSQL (in difftest_min, or on `pg`) under another plan fails like Floe
        did (or succeeds like it)."""
        if not tables_of(stmt):
            return False
        tries = [([f"SET LOCAL {setting} = off" for setting in variant], stmt)
                 for variant in PLAN_VARIANTS]
        return self._postgres_answers_like(tries, ev, extended, pg)

    def order_dependent(self, stmt, ev, extended, pg=None):
        """Whether PostgreSQL (in difftest_min, or on `pg`) fails like Floe did (or succeeds
        like it) once the parts whose order of evaluation SQL leaves open are reversed
        (`sqlast.reorderings`). A DML statement runs inside BEGIN … ROLLBACK."""
        tries = [([], other) for other in reorderings(stmt) if other.sql() != stmt.sql()]
        return self._postgres_answers_like(tries, ev, extended, pg)

    def scope_dependent(self, stmt, ev, extended, pg=None, floe=None, shape=None):
        """Whether the data exception (SQLSTATE class 22) one side raised and the other did
        not is raised by that other side too when it evaluates one of the statement's
        subexpressions on all rows of the FROM items it reads (`sqlast.scope_probes`), with
        the same SQLSTATE and message (`shape` strips the values): the statement's rows
        hold the value, and whether it is reached is the plan's choice (which rows a filter
        or join sees first, an empty join side PostgreSQL's executor checks before the other).
        """
        pg, floe = pg or self.pg, floe or self.floe
        if ev.pg.lost or ev.floe.lost:
            return False
        if (ev.floe.sqlstate or "").startswith("22"):
            other, want = pg, ev.floe
        elif (ev.pg.sqlstate or "").startswith("22") and not ev.floe.sqlstate:
            other, want = floe, ev.pg
        else:
            return False
        def like(sqlstate, message):
            return sqlstate == want.sqlstate and (
                shape is None or shape(message) == shape(want.message))

        other.keep_block = True
        try:
            for probe in scope_probes(stmt):
                other.run("BEGIN")
                other.run("SET LOCAL statement_timeout = '2s'")
                out = other.run(probe.sql(), extended)
                other.run("ROLLBACK")
                if not out.lost and like(out.sqlstate, out.message):
                    return True
            if other is pg:
                # Row by row: the first failing row may fail otherwise.
                for probe in row_probes(stmt):
                    other.run("BEGIN")
                    other.run("SET LOCAL statement_timeout = '5s'")
                    other.run(TRY_FUNCTION)
                    out = other.run(probe.sql())
                    other.run("ROLLBACK")
                    for (outcome,) in out.rows if out.ok else ():
                        state, _, message = (outcome or "").partition(":")
                        if like(state, message):
                            return True
        finally:
            other.keep_block = False
        return False

    def _postgres_answers_like(self, tries, ev, extended, pg):
        """Whether one of `tries` ((settings, statement) pairs, each run inside BEGIN …
        ROLLBACK) ends on PostgreSQL with Floe's SQLSTATE (none: success)."""
        pg = pg or self.pg
        if ev.pg.lost or ev.floe.lost:
            return False
        pg.keep_block = True
        try:
            for settings, statement in tries:
                pg.run("BEGIN")
                for setting in settings:
                    pg.run(setting)
                out = pg.run(statement.sql(), extended)
                pg.run("ROLLBACK")
                if out.sqlstate == ev.floe.sqlstate and not out.lost:
                    return True
        finally:
            pg.keep_block = False
        return False

    def shrink_rows(self, stmt, signature, extended, tables, data):
        """Drops rows (halves of a table's rows, then single rows) from difftest_min while the
        difference persists: (rows kept, the final Evaluation)."""
        used = tables_of(stmt)
        by_name = {t.name: t for t in tables}
        data = {name: rows for name, rows in data.items() if name in used}
        budget = self.row_budget

        def still_differs():
            return evaluate(self.pg, self.floe, stmt, extended, in_block=True).signature \
                == signature

        for name in sorted(data):
            table = by_name[name]
            chunk = max(1, len(data[name]) // 2)
            while chunk >= 1 and budget > 0:
                i = 0
                while i < len(data[name]) and budget > 0:
                    drop = data[name][i:i + chunk]
                    keys = ", ".join(r[0] for r in drop)
                    run_pair(self.pg, self.floe, f"DELETE FROM {name} WHERE k IN ({keys})")
                    budget -= 1
                    if still_differs():
                        data[name] = data[name][:i] + data[name][i + chunk:]
                    else:
                        for row in drop:
                            run_pair(self.pg, self.floe, table.insert_sql(row))
                        i += chunk
                chunk //= 2
        return data, evaluate(self.pg, self.floe, stmt, extended, in_block=True)


def insert_rows_sql(table, rows):
    """One INSERT of all `rows`, or None when there are none."""
    if not rows:
        return None
    single = [table.insert_sql(r) for r in rows]
    head = f"INSERT INTO {table.name} VALUES "
    return head + ", ".join(s[len(head):] for s in single)


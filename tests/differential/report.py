"""Classes of differences, the known-differences list, regression snippets and the summary.

A difference's class is its signature (what differs: `sqlstate:22003-vs-ok`, `type-oid:…`,
`colname`, `rows:count`, `state`, …) followed by a label for the culprit in the minimal
statement: for a differing column, the innermost operator or function of that column's
expression; otherwise the statement's structure (join kind, set operation, DML) for row-count
and order differences, or the innermost operator or function for errors. The known classes
are listed in `known_differences.toml` (fnmatch patterns, each with a reason); only other
classes fail a run.
"""

import fnmatch
import json
import re
import tomllib
from collections import Counter
from pathlib import Path

from minimize import insert_rows_sql, state_sql
from runner import differing_column
from sqlast import (Delete, Expr, Insert, Join, Leaf, Select, SetOp, Update, children,
                    tables_of)

KNOWN_FILE = Path(__file__).with_name("known_differences.toml")


def load_known(path=KNOWN_FILE):
    """[(pattern, reason)] from the known-differences file."""
    data = tomllib.loads(Path(path).read_text())
    return [(k["class"], k["reason"]) for k in data.get("known", [])]


def known_reason(cls, known):
    for pattern, reason in known:
        if fnmatch.fnmatchcase(cls, pattern):
            return reason
    return None


# --- classification ------------------------------------------------------------------------


def interesting(node):
    """An operator/function node, or a leaf standing for a window or set-returning call."""
    if isinstance(node, Expr):
        return True
    return isinstance(node, Leaf) and not node.label.startswith(("col:", "lit:", "null:", "star"))


def innermost(node):
    """The label of the first interesting node none of whose expression arguments is
    interesting (the culprit of a minimal expression), or None."""
    if not interesting(node):
        return None
    if isinstance(node, Expr):
        for a in node.args:
            if isinstance(a, (Leaf, Expr)):
                inner = innermost(a)
                if inner:
                    return inner
    return node.label


def expressions(stmt):
    """The statement's expressions: a SELECT's items, WHERE, HAVING, … before its join
    conditions (which are mostly plain equalities), subqueries' where they occur."""
    out = []

    def walk(n):
        if isinstance(n, (Leaf, Expr)):
            out.append(n)
            if isinstance(n, Expr):
                for a in n.args:
                    if isinstance(a, (Select, SetOp)):
                        walk(a)
            return
        nodes = children(n)
        if isinstance(n, Select):
            nodes = [c for c in nodes if not isinstance(c, Join)] + list(n.joins)
        for c in nodes:
            walk(c)

    walk(stmt)
    return out


def structure(stmt):
    """A label for the statement's shape: DML kind, set operation, joins, grouping, …"""
    if isinstance(stmt, Insert):
        return "insert" + (":on-conflict" if stmt.conflict else "") + (
            ":select" if stmt.select is not None else "")
    if isinstance(stmt, Update):
        return "update"
    if isinstance(stmt, Delete):
        return "delete"
    if isinstance(stmt, SetOp):
        return stmt.op.lower() + (" all" if stmt.all else "")
    parts = []
    if stmt.from_ is not None:
        if stmt.from_.srf is not None:
            parts.append("from-" + stmt.from_.srf.label)
        if stmt.from_.sub is not None:
            parts.append("derived-table")
    parts += [j.kind.lower() for j in stmt.joins]
    if stmt.group_by:
        parts.append("group-by")
    if stmt.having is not None:
        parts.append("having")
    if stmt.distinct:
        parts.append("distinct")
    if stmt.limit is not None or stmt.offset is not None:
        parts.append("limit")
    if stmt.order_by:
        parts.append("order-by")
    return "+".join(parts)


def output_items(stmt):
    if isinstance(stmt, SetOp):
        return stmt.left.items
    if isinstance(stmt, Select):
        return stmt.items
    return stmt.returning


def culprit(stmt, signature, ev):
    kind = signature.split(":")[0]
    if kind in ("type-oid", "colname") or signature in ("rows:values", "rows:numeric-scale",
                                                       "rows:numeric-rounding",
                                                       "rows:float-text"):
        col = differing_column(ev.pg, ev.floe, [False] * len(ev.pg.oids))
        items = output_items(stmt)
        if col is not None and col < len(items):
            e = items[col].expr
            return innermost(e) or e.label
    if kind == "state" and ev.pg_state is not None:
        col = differing_column(ev.pg_state, ev.floe_state)
        written = written_expression(stmt, ev.pg_state.names[col]) if col is not None else None
        if written is not None:
            return innermost(written) or written.label
    inner = next(filter(None, map(innermost, expressions(stmt))), None)
    shape = structure(stmt)
    if kind in ("sqlstate", "lost", "state"):
        return inner or shape or "plain"
    return shape or inner or "plain"


def written_expression(stmt, column):
    """The expression an UPDATE or INSERT … VALUES writes into `column`, or None."""
    if isinstance(stmt, Update):
        return next((e for c, e in stmt.sets if c == column), None)
    if isinstance(stmt, Insert) and stmt.rows and column in stmt.columns:
        return stmt.rows[0][stmt.columns.index(column)]
    return None


def message_shape(message):
    """An error message without its values: quoted text and numbers replaced, details cut."""
    text = message.splitlines()[0] if message else ""
    # Values are quoted "like this" (PostgreSQL) or 'like this' (DataFusion, which also quotes
    # function names that way: those stay).
    text = re.sub(r"\"[^\"]*\"|'([^']*)'",
                  lambda m: m.group(0) if re.fullmatch(r"[a-z_]+", m.group(1) or "") else "…",
                  text)
    text = re.sub(r"\d+", "N", text)
    text = re.split(r"[({]", text)[0]
    return " ".join(text.split())[:90]


def classify(stmt, signature, ev):
    """The class key: the signature, then Floe's error message (values removed) when Floe
    failed where PostgreSQL did not or failed otherwise, else the culprit's label."""
    # PostgreSQL's executor has no FULL JOIN for a condition that is not an equality it can
    # hash or merge; Floe joins on any condition, as the standard defines it.
    if ev.pg.sqlstate == "0A000" and (ev.pg.message or "").startswith(
            "FULL JOIN is only supported with merge-joinable or hash-joinable"):
        return "postgres-refuses:full-join-condition"
    if signature.startswith("sqlstate:") and ev.floe.sqlstate:
        return f"{signature}:{message_shape(ev.floe.message)}"
    return f"{signature}:{culprit(stmt, signature, ev)}"


# --- regression snippets -------------------------------------------------------------------


def slt_value(v):
    if v is None:
        return "NULL"
    if v == "":
        return "(empty)"
    return v


def slt_expect(sql, out, ordered):
    """An sqllogictest record expecting `out` (PostgreSQL's answer) for `sql`."""
    if out.sqlstate:
        return f"statement error {out.sqlstate}\n{sql}\n"
    if not out.oids:
        return f"statement ok\n{sql}\n"
    lines = [" ".join(slt_value(v) for v in row) for row in out.rows]
    mode = "" if ordered else " rowsort"
    return f"query {'T' * len(out.oids)}{mode}\n{sql}\n----\n" + "".join(l + "\n" for l in lines)


def slt_case(finding, tables):
    """A self-contained .slt snippet: the tables, their rows, the statement and PostgreSQL's
    answer (and, after DML, the table's contents)."""
    stmt, ev = finding["stmt"], finding["eval"]
    by_name = {t.name: t for t in tables}
    used = sorted(tables_of(stmt))
    out = [f"# difftest class {finding['class']}",
           f"# found with seed {finding['seed']}, statement {finding['index']}"
           f" ({'extended' if finding['extended'] else 'simple'} protocol)",
           f"# PostgreSQL: {one_line(ev.pg.brief())}",
           f"# Floe:       {one_line(ev.floe.brief())}", ""]
    for name in used:
        out.append(f"statement ok\n{by_name[name].ddl()}\n")
        insert = insert_rows_sql(by_name[name], finding["rows"].get(name, []))
        if insert:
            out.append(f"statement ok\n{insert}\n")
    ordered = bool(getattr(stmt, "ordered", False))
    out.append(slt_expect(stmt.sql(), ev.pg, ordered))
    if getattr(stmt, "table", None) and ev.pg_state is not None:
        out.append(slt_expect(state_sql(stmt.table), ev.pg_state, True))
    for name in used:
        out.append(f"statement ok\nDROP TABLE {name}\n")
    return "\n".join(out)


def one_line(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " …"


def file_name(cls):
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", cls)[:120] + ".slt"


# --- summary -------------------------------------------------------------------------------


class Summary:
    """Counts per class, one example per class, written to the output directory."""

    def __init__(self, out_dir, known):
        self.out_dir = Path(out_dir)
        (self.out_dir / "cases").mkdir(parents=True, exist_ok=True)
        for old in (self.out_dir / "cases").glob("*.slt"):
            old.unlink()  # a previous run's
        self.log = open(self.out_dir / "findings.jsonl", "w")
        self.known = known
        self.counts = Counter()
        self.examples = {}
        self.statements = 0
        self.setup_statements = 0
        self.pg_errors = Counter()  # SQLSTATEs of the generated statements on PostgreSQL

    def add(self, finding, tables):
        cls = finding["class"]
        self.counts[cls] += 1
        ev = finding["eval"]
        record = {"class": cls, "seed": finding["seed"], "index": finding["index"],
                  "original": finding["original"], "minimal": finding["stmt"].sql(),
                  "reproduced": finding["reproduced"], "postgres": ev.pg.brief(),
                  "floe": ev.floe.brief()}
        self.log.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.log.flush()
        if cls not in self.examples:
            self.examples[cls] = record
            (self.out_dir / "cases" / file_name(cls)).write_text(slt_case(finding, tables))

    def unknown(self):
        return {c: n for c, n in self.counts.items() if known_reason(c, self.known) is None}

    def text(self):
        differing = sum(self.counts.values())
        total = self.statements + self.setup_statements
        errors = ", ".join(f"{code} {n}" for code, n in self.pg_errors.most_common(12))
        lines = [f"statements: {total} ({self.statements} generated, "
                 f"{self.setup_statements} setup)",
                 f"ok: {total - differing}",
                 f"differing: {differing}"
                 f" ({sum(self.unknown().values())} in classes not in known_differences)",
                 f"classes: {len(self.counts)}",
                 f"generated statements PostgreSQL failed: {sum(self.pg_errors.values())}"
                 f" ({errors})", ""]
        for cls, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            reason = known_reason(cls, self.known)
            ex = self.examples[cls]
            lines.append(f"{n:7d}  {cls}" + (f"   [known: {reason}]" if reason else ""))
            lines.append(f"         {one_line(ex['minimal'], 400)}")
            lines.append(f"         postgres: {one_line(ex['postgres'], 200)}")
            lines.append(f"         floe:     {one_line(ex['floe'], 200)}")
        return "\n".join(lines)

    def write(self):
        text = self.text()
        (self.out_dir / "summary.txt").write_text(text + "\n")
        (self.out_dir / "summary.json").write_text(json.dumps(
            {"statements": self.statements, "differing": sum(self.counts.values()),
             "classes": dict(self.counts), "examples": self.examples}, indent=1,
            ensure_ascii=False))
        return text

    def close(self):
        self.log.close()

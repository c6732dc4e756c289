"""The statement trees the generator builds and the minimiser shrinks.

Every node is a frozen dataclass that renders itself as SQL (`sql()`). Expressions carry their
PostgreSQL result type, a label naming their root operator or function (used to classify
differences) and whether float math happened at or below them (those columns are compared with
a tolerance). `variants(node)` yields every tree one reduction step smaller than `node`: a
subexpression hoisted into its parent's place or replaced by a plain literal, a select item,
WHERE conjunct, join, clause or VALUES row dropped, a set operation replaced by one side.
"""

import re
from dataclasses import dataclass, fields, replace
from typing import Optional

# A plain, valid literal of each expression type: what the minimiser puts in place of a
# subexpression.
PLAIN_LITERALS = {
    "int2": "1::int2",
    "int4": "1",
    "int8": "1::int8",
    "float8": "1.5::float8",
    "numeric": "1.5",
    "text": "'a'",
    "bool": "true",
    "date": "'2000-01-01'::date",
    "timestamp": "'2000-01-01 00:00:00'::timestamp",
    "timestamptz": "'2000-01-01 00:00:00+00'::timestamptz",
    "bytea": "'\\x01'::bytea",
    "uuid": "'00000000-0000-0000-0000-000000000001'::uuid",
    "jsonb": "'{}'::jsonb",
}


class Node:
    def sql(self):
        raise NotImplementedError


@dataclass(frozen=True)
class Leaf(Node):
    """A literal or a column reference."""

    text: str
    type: str
    label: str
    inexact: bool = False

    agg = False

    def sql(self):
        return self.text


@dataclass(frozen=True)
class Expr(Node):
    """An operator, function, cast, CASE, aggregate or window call: `template` has `{0}`,
    `{1}`, … for the rendered `args` (expressions, or selects for subqueries)."""

    template: str
    args: tuple
    type: str
    label: str
    float_math: bool = False
    is_agg: bool = False

    @property
    def inexact(self):
        return self.float_math or any(getattr(a, "inexact", False) for a in self.args)

    @property
    def agg(self):
        return self.is_agg or any(isinstance(a, (Leaf, Expr)) and a.agg for a in self.args)

    def sql(self):
        return self.template.format(*(a.sql() for a in self.args))


@dataclass(frozen=True)
class Item(Node):
    expr: Node
    alias: Optional[str] = None

    def sql(self):
        return self.expr.sql() + (f" AS {self.alias}" if self.alias else "")


@dataclass(frozen=True)
class FromItem(Node):
    """A table, a derived table (`sub`) or a set-returning function call (`srf`), with an
    alias and, for functions, column aliases."""

    alias: str
    table: Optional[str] = None
    sub: Optional[Node] = None
    srf: Optional[Node] = None
    columns: tuple = ()

    def sql(self):
        if self.table:
            return f"{self.table} AS {self.alias}"
        body = f"({self.sub.sql()})" if self.sub else self.srf.sql()
        cols = f"({', '.join(self.columns)})" if self.columns else ""
        return f"{body} AS {self.alias}{cols}"


@dataclass(frozen=True)
class Join(Node):
    kind: str  # JOIN, LEFT JOIN, FULL JOIN, CROSS JOIN
    item: FromItem
    on: Optional[Node] = None

    def sql(self):
        on = f" ON {self.on.sql()}" if self.on is not None else ""
        return f"{self.kind} {self.item.sql()}{on}"


@dataclass(frozen=True)
class Select(Node):
    items: tuple
    from_: Optional[FromItem] = None
    joins: tuple = ()
    where: tuple = ()
    group_by: tuple = ()
    having: Optional[Node] = None
    distinct: bool = False
    order_all: bool = False  # ORDER BY every output column: the order is determined
    order_by: tuple = ()  # other ORDER BY keys (the order is then not compared)
    limit: Optional[int] = None
    offset: Optional[int] = None

    @property
    def ordered(self):
        return self.order_all

    def sql(self):
        parts = ["SELECT"]
        if self.distinct:
            parts.append("DISTINCT")
        parts.append(", ".join(i.sql() for i in self.items))
        if self.from_ is not None:
            parts.append("FROM " + self.from_.sql())
            parts.extend(j.sql() for j in self.joins)
        if self.where:
            parts.append("WHERE " + " AND ".join(f"({w.sql()})" for w in self.where))
        if self.group_by:
            parts.append("GROUP BY " + ", ".join(g.sql() for g in self.group_by))
        if self.having is not None:
            parts.append("HAVING " + self.having.sql())
        parts.append(order_clause(self.order_all, len(self.items), self.order_by))
        parts.append(limit_clause(self.limit, self.offset))
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class SetOp(Node):
    op: str  # UNION, INTERSECT, EXCEPT
    all: bool
    left: Select
    right: Select
    order_all: bool = False
    limit: Optional[int] = None
    offset: Optional[int] = None

    @property
    def ordered(self):
        return self.order_all

    @property
    def items(self):
        return self.left.items

    def sql(self):
        op = self.op + (" ALL" if self.all else "")
        tail = " ".join(
            p
            for p in (order_clause(self.order_all, len(self.left.items), ()),
                      limit_clause(self.limit, self.offset))
            if p
        )
        return f"({self.left.sql()}) {op} ({self.right.sql()})" + (f" {tail}" if tail else "")


@dataclass(frozen=True)
class Insert(Node):
    table: str
    columns: tuple
    rows: tuple = ()  # tuples of expressions, or
    select: Optional[Select] = None
    conflict: str = ""  # ON CONFLICT … text
    returning: tuple = ()

    ordered = False

    def sql(self):
        if self.select is not None:
            body = self.select.sql()
        else:
            body = "VALUES " + ", ".join(
                "(" + ", ".join(e.sql() for e in row) + ")" for row in self.rows
            )
        return (f"INSERT INTO {self.table} ({', '.join(self.columns)}) {body}"
                + (f" {self.conflict}" if self.conflict else "") + returning(self.returning))


@dataclass(frozen=True)
class Update(Node):
    table: str
    sets: tuple  # (column, expression) pairs
    where: tuple = ()
    returning: tuple = ()

    ordered = False

    def sql(self):
        sets = ", ".join(f"{c} = {e.sql()}" for c, e in self.sets)
        where = " WHERE " + " AND ".join(f"({w.sql()})" for w in self.where) if self.where else ""
        return f"UPDATE {self.table} SET {sets}{where}" + returning(self.returning)


@dataclass(frozen=True)
class Delete(Node):
    table: str
    where: tuple = ()
    returning: tuple = ()

    ordered = False

    def sql(self):
        where = " WHERE " + " AND ".join(f"({w.sql()})" for w in self.where) if self.where else ""
        return f"DELETE FROM {self.table}{where}" + returning(self.returning)


@dataclass(frozen=True)
class Raw(Node):
    """A statement given as text (the setup's CREATE TABLE and INSERTs); `table` names the
    table it writes."""

    text: str
    table: Optional[str] = None

    ordered = False

    def sql(self):
        return self.text


def order_clause(order_all, n_items, order_by):
    keys = [str(i + 1) for i in range(n_items)] if order_all else []
    keys += [f"{e.sql()} {direction}" for e, direction in order_by]
    return "ORDER BY " + ", ".join(keys) if keys else ""


def limit_clause(limit, offset):
    out = f"LIMIT {limit}" if limit is not None else ""
    if offset is not None:
        out += f" OFFSET {offset}"
    return out.strip()


def returning(items):
    return " RETURNING " + ", ".join(i.sql() for i in items) if items else ""


def is_dml(stmt):
    return isinstance(stmt, (Insert, Update, Delete))


def tables_of(node):
    """Names of the tables a statement reads or writes."""
    out = set()

    def walk(n):
        if isinstance(n, FromItem) and n.table:
            out.add(n.table)
        if isinstance(n, (Insert, Update, Delete, Raw)) and n.table:
            out.add(n.table)
        for child in children(n):
            walk(child)

    walk(node)
    return out


def children(node):
    """The direct child nodes of `node` (through tuples and pairs)."""
    out = []

    def collect(v):
        if isinstance(v, Node):
            out.append(v)
        elif isinstance(v, tuple):
            for x in v:
                collect(x)

    for f in fields(node):
        collect(getattr(node, f.name))
    return out


# --- orders of evaluation -------------------------------------------------------------------


def reorderings(node):
    """`node` with the parts whose order of evaluation SQL leaves open reversed: WHERE
    conditions and AND/OR operands; select items (and SET assignments, RETURNING items); both.
    PostgreSQL evaluates them left to right, and a statement that fails or not by that order
    alone answers as it does by chance ("the order of evaluation of subexpressions is not
    defined", PostgreSQL's manual, 4.2.14)."""
    for conds, items in ((True, False), (False, True), (True, True)):
        yield _reorder(node, conds, items)


def _reorder(value, conds, items):
    if isinstance(value, tuple):
        return tuple(_reorder(v, conds, items) for v in value)
    if not isinstance(value, Node) or isinstance(value, (Leaf, Raw)):
        return value
    changes = {f.name: _reorder(getattr(value, f.name), conds, items) for f in fields(value)}
    if isinstance(value, Expr) and value.label in ("AND", "OR") and conds:
        changes["args"] = changes["args"][::-1]
    if isinstance(value, (Select, Update, Delete)) and conds:
        changes["where"] = changes["where"][::-1]
    if isinstance(value, Select) and items:
        changes["items"] = changes["items"][::-1]
    if isinstance(value, Update) and items:
        changes["sets"] = changes["sets"][::-1]
    if isinstance(value, (Insert, Update, Delete)) and items:
        changes["returning"] = changes["returning"][::-1]
    return replace(value, **changes)


# --- evaluation scope -----------------------------------------------------------------------

_ALIAS = re.compile(r"\b([a-z]\d+)\.")


def row_probes(stmt, limit=40):
    """`scope_probes` row by row, for PostgreSQL: each probe evaluates the subexpression once
    per combination of rows of the tables it reads (`pg_temp.difftest_try`, a PL/pgSQL
    function that returns the error instead of raising it) and returns the distinct outcomes
    as `SQLSTATE:message` (`ok` where it succeeded), so an error a later row raises shows
    even when an earlier row fails otherwise."""
    out = []
    for expr_text, sources in _scoped_expressions(stmt):
        # Every table has the key column k; a DML statement's own table is named, not aliased.
        tables = [(src.alias, src.sql()) if isinstance(src, FromItem) else (src, src)
                  for src in sources if not isinstance(src, FromItem) or src.table]
        if not tables:
            continue
        rendered = [src.sql() if isinstance(src, FromItem) else src for src in sources]
        keys = " || ' AND ' || ".join(f"'{alias}.k = ' || {alias}.k" for alias, _ in tables)
        inner = f"$probe$SELECT ({expr_text}) FROM {', '.join(rendered)} WHERE $probe$ || {keys}"
        body = (f"SELECT DISTINCT pg_temp.difftest_try({inner}) FROM "
                + ", ".join(source for _, source in tables))
        out.append(Raw(body))
    out.sort(key=lambda r: len(r.text))
    return out[:limit]


def scope_probes(stmt, limit=40):
    """Statements that evaluate one subexpression of `stmt` on every row of the FROM items it
    reads, joined without condition (`SELECT (e) FROM t1 AS a1, t2 AS a2`; for UPDATE and
    DELETE, also their table): which of those rows a statement evaluates an expression on
    depends on its plan (an empty join partner, a filter applied first), so an error one of
    these raises is an error of the data, raised or not by the plan. Smallest first; no
    aggregates, window calls or subqueries (a subquery's own expressions are probed with its
    FROM items)."""
    probes = {}
    for text, sources in _scoped_expressions(stmt):
        rendered = [src.sql() if isinstance(src, FromItem) else src for src in sources]
        body = f"SELECT ({text})" + (" FROM " + ", ".join(rendered) if rendered else "")
        probes.setdefault(body, Raw(body))
    out = [probes[k] for k in sorted(probes, key=len)][:limit]
    if isinstance(stmt, (Select, SetOp)) and (stmt.limit is not None or stmt.offset is not None):
        # The rows LIMIT/OFFSET discard: whether their select list is computed first (a sort
        # key PostgreSQL computes for every row) is the plan's choice.
        out.append(replace(stmt, limit=None, offset=None))
    return out


def _scoped_expressions(stmt):
    """(text, sources) of each subexpression `scope_probes` evaluates: its FROM items (and
    for UPDATE and DELETE, the target table's name)."""
    items = {}

    def collect(n):
        if isinstance(n, FromItem):
            items[n.alias] = n
        for c in children(n):
            collect(c)

    collect(stmt)
    target = stmt.table if isinstance(stmt, (Update, Delete)) else None
    out = {}

    def walk(n):
        for c in children(n):
            walk(c)
        if not isinstance(n, Expr) or n.agg or n.label.startswith("win:"):
            return
        if any(isinstance(a, (Select, SetOp)) for a in n.args):
            return
        text = n.sql()
        aliases = sorted(set(_ALIAS.findall(text)))
        if any(a not in items for a in aliases):
            return
        out.setdefault(text, [items[a] for a in aliases] + ([target] if target else []))

    walk(stmt)
    # An inner join's equality of two columns lets a planner apply a condition on one of them
    # to the other side as well (DataFusion's inferred join predicates: `a.x % a.x` with
    # `ON a.x = b.y` is also evaluated as `b.y % b.y` on b's rows, even rows that join
    # nothing): those substitutions are probed too.
    for a, b in _join_equalities(stmt):
        for text in list(out):
            for old, new in ((a, b), (b, a)):
                if re.search(rf"\b{re.escape(old)}\b", text):
                    other = re.sub(rf"\b{re.escape(old)}\b", new, text)
                    aliases = sorted(set(_ALIAS.findall(other)))
                    if all(x in items for x in aliases):
                        out.setdefault(other, [items[x] for x in aliases]
                                       + ([target] if target else []))
    return list(out.items())


def _join_equalities(stmt):
    """(left, right) column texts of the joins' `ON a.x = b.y` conditions (inner joins, and
    outer joins a WHERE condition may turn into inner ones)."""
    out = []

    def walk(n):
        if isinstance(n, Join) and n.kind in ("JOIN", "LEFT JOIN") and isinstance(n.on, Expr):
            args = n.on.args
            if (n.on.template == "({0} = {1})" and len(args) == 2
                    and all(isinstance(x, Leaf) and x.label.startswith("col:") for x in args)):
                out.append((args[0].text, args[1].text))
        for c in children(n):
            walk(c)

    walk(stmt)
    return out


# --- reductions ----------------------------------------------------------------------------


def variants(node):
    """Every tree one reduction step smaller than `node` (some may be invalid SQL; the
    minimiser keeps only those that still show the difference)."""
    yield from _local(node)
    for f in fields(node):
        value = getattr(node, f.name)
        for smaller in _value_variants(value):
            yield replace(node, **{f.name: smaller})


def _value_variants(value):
    if isinstance(value, Node):
        yield from variants(value)
    elif isinstance(value, tuple):
        for i, x in enumerate(value):
            for smaller in _value_variants(x):
                yield value[:i] + (smaller,) + value[i + 1:]


def _drop_each(seq, keep_one=False):
    if keep_one and len(seq) <= 1:
        return
    for i in range(len(seq)):
        yield seq[:i] + seq[i + 1:]


def _local(node):
    if isinstance(node, Leaf):
        if node.label.startswith("col") and node.type in PLAIN_LITERALS:
            yield Leaf(PLAIN_LITERALS[node.type], node.type, f"lit:{node.type}")
    elif isinstance(node, Expr):
        for a in node.args:
            if isinstance(a, (Leaf, Expr)) and a.type == node.type:
                yield a
        if node.type in PLAIN_LITERALS:
            yield Leaf(PLAIN_LITERALS[node.type], node.type, f"lit:{node.type}")
            yield Leaf(f"NULL::{node.type}", node.type, f"null:{node.type}")
    elif isinstance(node, Select):
        for items in _drop_each(node.items, keep_one=True):
            yield replace(node, items=items)
        for where in _drop_each(node.where):
            yield replace(node, where=where)
        if node.from_ is not None and not node.joins:
            yield replace(node, from_=None)
        if node.joins:
            yield replace(node, joins=node.joins[:-1])
        for joins in _drop_each(node.joins):
            yield replace(node, joins=joins)
        if node.group_by:
            yield replace(node, group_by=(), having=None)
        if node.having is not None:
            yield replace(node, having=None)
        if node.distinct:
            yield replace(node, distinct=False)
        if node.order_by:
            yield replace(node, order_by=())
        if node.offset is not None:
            yield replace(node, offset=None)
        if node.limit is not None:
            yield replace(node, limit=None)
        if node.order_all and node.limit is None and node.offset is None:
            yield replace(node, order_all=False)
        if node.from_ is not None and node.from_.sub is not None and not node.joins:
            sub = node.from_.sub
            if isinstance(sub, Select) and len(sub.items) == len(node.items):
                yield sub
    elif isinstance(node, SetOp):
        if node.order_all is False and node.limit is None:
            yield node.left
            yield node.right
        else:
            yield replace(node.left, order_all=node.order_all, limit=node.limit,
                          offset=node.offset)
        if node.limit is not None or node.offset is not None:
            yield replace(node, limit=None, offset=None)
        if node.all:
            yield replace(node, all=False)
    elif isinstance(node, Insert):
        for rows in _drop_each(node.rows, keep_one=True):
            yield replace(node, rows=rows)
        if node.conflict:
            yield replace(node, conflict="")
    if isinstance(node, (Insert, Update, Delete)):
        for ret in _drop_each(node.returning):
            yield replace(node, returning=ret)
        if isinstance(node, Update):
            for sets in _drop_each(node.sets, keep_one=True):
                yield replace(node, sets=sets)
        if isinstance(node, (Update, Delete)):
            for where in _drop_each(node.where):
                yield replace(node, where=where)

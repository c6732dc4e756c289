"""Running one statement on both servers and comparing the answers.

A `Side` is one server's connection (libpq through psycopg's `pq` layer, autocommit, text
results) that reopens itself when lost. `run_pair` sends a statement to both sides at once
(simple or extended protocol) and `compare` turns two `Outcome`s into a difference signature,
or None when they agree: SQLSTATE, command tag, column count, result type OIDs, column names
and rows (text form; a multiset unless the statement's ORDER BY decides the order; float math
columns compared to 12 significant digits).
"""

import math
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from psycopg import pq

STATEMENT_TIMEOUT = "10s"
HANG_SECONDS = 30

TYPE_NAMES = {
    16: "bool", 17: "bytea", 18: "char", 19: "name", 20: "int8", 21: "int2", 23: "int4",
    25: "text", 26: "oid", 114: "json", 700: "float4", 701: "float8", 705: "unknown",
    1000: "bool[]", 1005: "int2[]", 1007: "int4[]", 1009: "text[]", 1016: "int8[]",
    1022: "float8[]", 1042: "bpchar", 1043: "varchar", 1082: "date", 1083: "time",
    1114: "timestamp", 1184: "timestamptz", 1186: "interval", 1231: "numeric[]",
    1700: "numeric", 2950: "uuid", 3802: "jsonb", 2249: "record",
}
NUMERIC_OID, FLOAT8_OID = 1700, 701
FLOAT_OIDS = {700, 701}
ORDER_NUMERIC_OIDS = {20, 21, 23, 700, 701, 1700}


def type_name(oid):
    return TYPE_NAMES.get(oid, str(oid))


@dataclass
class Outcome:
    sqlstate: str = None  # set when the statement failed
    message: str = ""
    names: tuple = ()
    oids: tuple = ()
    rows: list = field(default_factory=list)  # tuples of text values (None for NULL)
    tag: str = ""
    lost: bool = False  # the connection died (or hung) instead of answering

    @property
    def ok(self):
        return self.sqlstate is None and not self.lost

    def brief(self):
        if self.lost:
            return f"connection lost ({self.message})"
        if self.sqlstate:
            return f"ERROR {self.sqlstate}: {self.message}"
        cols = ", ".join(f"{n}:{type_name(o)}" for n, o in zip(self.names, self.oids))
        shown = "; ".join(
            "(" + ", ".join("NULL" if v is None else repr(v) for v in r) + ")"
            for r in self.rows[:6]
        )
        more = f" … ({len(self.rows)} rows)" if len(self.rows) > 6 else ""
        return f"{self.tag} [{cols}] {shown}{more}"


class Side:
    """One server's connection to `dbname`, reopened on demand after a loss."""

    def __init__(self, name, server, dbname="postgres", settings=()):
        self.name = name
        self.server = server
        self.dbname = dbname
        self.settings = tuple(settings)
        self.conn = None
        self.keep_block = False  # leave an open transaction block open after a statement
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"difftest-{name}")

    def dsn(self):
        return (f"host={self.server.host} port={self.server.port} user=postgres "
                f"dbname={self.dbname} connect_timeout=10")

    def connect(self):
        self.close()
        conn = pq.PGconn.connect(self.dsn().encode())
        if conn.status != pq.ConnStatus.OK:
            raise RuntimeError(f"{self.name}: cannot connect: {conn.error_message.decode()}")
        self.conn = conn
        for sql in (f"SET statement_timeout = '{STATEMENT_TIMEOUT}'", "SET TimeZone = 'UTC'",
                    *self.settings):
            out = self._exec(sql, False)
            if not out.ok:
                raise RuntimeError(f"{self.name}: {sql}: {out.brief()}")

    def close(self):
        if self.conn is not None:
            self.conn.finish()
            self.conn = None

    def _exec(self, sql, extended):
        conn = self.conn
        try:
            data = sql.encode()
            res = conn.exec_params(data, []) if extended else conn.exec_(data)
        except Exception as e:  # libpq reports a broken connection as an exception
            return Outcome(lost=True, message=str(e).strip())
        status = res.status
        if status == pq.ExecStatus.FATAL_ERROR:
            code = res.error_field(pq.DiagnosticField.SQLSTATE)
            message = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode(
                errors="replace")
            if code is None:
                return Outcome(lost=True, message=message or conn.error_message.decode(
                    errors="replace").strip())
            return Outcome(sqlstate=code.decode(), message=message)
        out = Outcome(tag=(res.command_status or b"").decode(errors="replace"))
        if status == pq.ExecStatus.TUPLES_OK:
            n = res.nfields
            out.names = tuple(res.fname(i).decode(errors="replace") for i in range(n))
            out.oids = tuple(res.ftype(i) for i in range(n))
            out.rows = [
                tuple(None if v is None else v.decode(errors="backslashreplace")
                      for v in (res.get_value(r, c) for c in range(n)))
                for r in range(res.ntuples)
            ]
        if not self.keep_block and conn.transaction_status != pq.TransactionStatus.IDLE:
            conn.exec_(b"ROLLBACK")
        return out

    def submit(self, sql, extended=False):
        """Starts `sql`; returns a function that waits for its Outcome."""
        if self.conn is None or self.conn.status != pq.ConnStatus.OK:
            try:
                self.connect()
            except Exception as e:
                message = str(e)  # `e` is gone once the except block ends
                return lambda: Outcome(lost=True, message=message)
        conn = self.conn
        future = self.pool.submit(self._exec, sql, extended)

        def wait():
            try:
                out = future.result(timeout=HANG_SECONDS)
            except FutureTimeout:
                conn.get_cancel().cancel()
                try:
                    out = future.result(timeout=10)
                except FutureTimeout:
                    # Abandon the stuck connection (and its thread) for a new one.
                    self.conn = None
                    self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"difftest-{self.name}")
                    return Outcome(lost=True, message=f"no answer in {HANG_SECONDS + 10}s")
            if out.lost:
                self.close()
            return out

        return wait

    def run(self, sql, extended=False):
        return self.submit(sql, extended)()

    def must(self, sql):
        out = self.run(sql)
        if not out.ok:
            raise RuntimeError(f"{self.name}: {sql}: {out.brief()}")
        return out


def run_pair(pg, floe, sql, extended=False):
    """Runs `sql` on both sides at once: (PostgreSQL's Outcome, Floe's Outcome)."""
    wait_floe = floe.submit(sql, extended)
    wait_pg = pg.submit(sql, extended)
    return wait_pg(), wait_floe()


# --- comparison ----------------------------------------------------------------------------


def compare(pg, fl, ordered=False, inexact=()):
    """None when the outcomes agree, else a signature "kind:detail" of the first difference
    (in this order: lost connection, SQLSTATE, command tag, column count, type OIDs, column
    names, rows)."""
    if fl.lost or pg.lost:
        return "lost" if fl.lost else "lost-postgres"
    if pg.sqlstate != fl.sqlstate:
        return f"sqlstate:{pg.sqlstate or 'ok'}-vs-{fl.sqlstate or 'ok'}"
    if pg.sqlstate:
        return None
    if len(pg.oids) != len(fl.oids):
        return "columns:count"
    for a, b in zip(pg.oids, fl.oids):
        if a != b:
            return f"type-oid:{type_name(a)}-vs-{type_name(b)}"
    if pg.names != fl.names:
        return "colname"
    rows = compare_rows(pg, fl, ordered, inexact)
    if rows:
        return rows
    if pg.tag != fl.tag:
        return "tag"
    return None


def numeric_scale_only(pg, fl):
    """Whether two row sets of the same shape differ only in how numeric values are written
    (1.5 and 1.5000000000), row by row."""
    if pg.oids != fl.oids or len(pg.rows) != len(fl.rows):
        return False
    for a, b in zip(pg.rows, fl.rows):
        for x, y, oid in zip(a, b, pg.oids):
            if x == y:
                continue
            if oid != NUMERIC_OID or x is None or y is None:
                return False
            try:
                if Decimal(x) != Decimal(y):
                    return False
            except InvalidOperation:
                return False
    return True


def differing_column(pg, fl, inexact=()):
    """The index of the first column whose type, name or values differ, or None."""
    for i, (a, b) in enumerate(zip(pg.oids, fl.oids)):
        if a != b or pg.names[i] != fl.names[i]:
            return i
    for i in range(len(pg.oids)):
        exact = i >= len(inexact) or not inexact[i]
        norm = (lambda v: v) if exact else approx
        if sorted(map(sortable, (norm(r[i]) for r in pg.rows))) != sorted(
                map(sortable, (norm(r[i]) for r in fl.rows))):
            return i
    return None


def approx(v):
    """A float's text rounded to 12 significant digits (other text unchanged)."""
    if v is None:
        return v
    try:
        f = float(v)
    except ValueError:
        return v
    if math.isnan(f) or math.isinf(f):
        return v
    return "%.12g" % (f + 0.0)


def sortable(v):
    return (v is None, v or "")


def _norm_rows(out, inexact):
    """Rows as compared: float math columns rounded; -0 and 0 alike in float columns (equal
    values, so DISTINCT, GROUP BY or max may keep either)."""
    floats = [o in FLOAT_OIDS for o in out.oids]
    if not any(inexact) and not any(floats):
        return out.rows

    def norm(i, v):
        if i < len(inexact) and inexact[i]:
            v = approx(v)
        if floats[i] and v == "-0":
            v = "0"
        return v

    return [tuple(norm(i, v) for i, v in enumerate(r)) for r in out.rows]


def _order_key(value, oid):
    """A value as the server orders it, for the types whose equal values print differently
    (0 and -0, 1.0 and 1.00)."""
    if value is None or oid not in ORDER_NUMERIC_OIDS:
        return value
    try:
        d = Decimal(value)
    except InvalidOperation:
        return value
    return "NaN" if d.is_nan() else d.normalize() if d.is_finite() else value


def compare_rows(pg, fl, ordered, inexact):
    a, b = _norm_rows(pg, inexact), _norm_rows(fl, inexact)
    key = lambda r: tuple(map(sortable, r))
    if sorted(a, key=key) == sorted(b, key=key):
        if ordered:
            ka = [tuple(_order_key(v, o) for v, o in zip(r, pg.oids)) for r in a]
            kb = [tuple(_order_key(v, o) for v, o in zip(r, pg.oids)) for r in b]
            if ka != kb:
                return "rows:order"
        return None
    if len(a) != len(b):
        return "rows:count"
    col = differing_column(pg, fl, inexact)
    if col is None:
        return "rows:values"
    oid = pg.oids[col]
    if oid in (NUMERIC_OID, FLOAT8_OID):
        xs = _numbers([r[col] for r in pg.rows])
        ys = _numbers([r[col] for r in fl.rows])
        numbers = xs is not None and ys is not None
        if numbers and oid == NUMERIC_OID and _all_close(xs, ys, exact=True):
            return "rows:numeric-scale"
        if numbers and _all_close(xs, ys, exact=False):
            return "rows:numeric-rounding" if oid == NUMERIC_OID else "rows:float-text"
    return "rows:values"


def _numbers(values):
    """A column's values as sorted Decimals (NULLs and NaNs last), or None if one is not a
    number."""
    try:
        nums = [Decimal(v) for v in values if v is not None]
    except InvalidOperation:
        return None
    nulls = len(values) - len(nums)
    return sorted(nums, key=lambda d: (d.is_nan(), 0 if d.is_nan() else d)) + [None] * nulls


def _all_close(xs, ys, exact):
    """Whether two columns of sorted numbers are the same (equal, or within 1e-9
    relative)."""
    for dx, dy in zip(xs, ys):
        if dx is None or dy is None:
            if dx is not dy:
                return False
            continue
        if dx.is_nan() or dy.is_nan():
            if not (dx.is_nan() and dy.is_nan()):
                return False
            continue
        if exact:
            if dx != dy:
                return False
        elif dx != dy and abs(dx - dy) > Decimal("1e-9") * max(abs(dx), abs(dy)):
            return False
    return True


"""The seeded generator of schemas, rows and statements.

All randomness comes from the `random.Random` passed in. A schema is a few tables `t0`, `t1`, …
with an `int4` primary key `k` and columns of the supported types (int2/int4/int8, float8,
numeric, text, varchar(n), bool, date, timestamp, timestamptz, bytea, uuid, jsonb). Rows mix
ordinary values with edge values (integer bounds, 0, -1, NULL, '', multi-byte text, dates at the
ends of their range, infinities, NaN). Statements are SELECTs (expressions over operators, casts
and functions, CASE/COALESCE/NULLIF, aggregates with GROUP BY/HAVING, joins, IN/EXISTS/scalar
subqueries, set operations, ORDER BY/LIMIT/OFFSET, window functions, set-returning functions)
and INSERT/UPDATE/DELETE … RETURNING, as `sqlast` trees. Only deterministic queries are
generated: LIMIT and order-sensitive window functions and aggregates always come with an order
that decides every row.
"""

from dataclasses import dataclass, replace

from sqlast import (Delete, Expr, FromItem, Insert, Item, Join, Leaf, Select, SetOp, Update)

INT_TYPES = ("int2", "int4", "int8")
ORDERABLE = ("int2", "int4", "int8", "float8", "numeric", "text", "date", "timestamp",
             "timestamptz", "bool", "uuid", "bytea")
MINMAX = ("int2", "int4", "int8", "float8", "numeric", "text", "date", "timestamp",
          "timestamptz")
EXPR_TYPES = ("int2", "int4", "int8", "float8", "numeric", "text", "bool", "date", "timestamp",
              "timestamptz", "bytea", "uuid", "jsonb")
# How often each expression type is asked for (the common types more).
TYPE_WEIGHTS = {"int4": 6, "int8": 3, "int2": 2, "float8": 3, "numeric": 3, "text": 6,
                "bool": 4, "date": 2, "timestamp": 2, "timestamptz": 2, "bytea": 1, "uuid": 1,
                "jsonb": 2}

# Column types of the schema: (SQL type, expression type, weight). Plain numeric is rare (it
# used to print with 10 decimals in Floe, which would have hidden other differences).
COLUMN_TYPES = [
    ("int2", "int2", 1), ("int4", "int4", 1.5), ("int8", "int8", 1), ("float8", "float8", 1),
    ("numeric(12,2)", "numeric", 1), ("numeric(20,6)", "numeric", 0.5),
    ("numeric", "numeric", 0.25), ("text", "text", 1.5), ("varchar(8)", "text", 0.5),
    ("bool", "bool", 1), ("date", "date", 1), ("timestamp", "timestamp", 1),
    ("timestamptz", "timestamptz", 1), ("bytea", "bytea", 0.5), ("uuid", "uuid", 0.5),
    ("jsonb", "jsonb", 1),
]
SHORT_NAMES = {"int2": "i2", "int4": "i4", "int8": "i8", "float8": "f8", "numeric": "n",
               "text": "s", "bool": "b", "date": "d", "timestamp": "ts", "timestamptz": "tz",
               "bytea": "by", "uuid": "u", "jsonb": "j"}

# Edge values (raw text, as typed into a literal) and ordinary values per type.
EDGES = {
    "int2": ["0", "-1", "1", "32767", "-32768"],
    "int4": ["0", "-1", "1", "2147483647", "-2147483648"],
    "int8": ["0", "-1", "1", "9223372036854775807", "-9223372036854775808"],
    "float8": ["0", "-0", "1e308", "-1e308", "1e-300", "NaN", "Infinity", "-Infinity", "0.1"],
    "numeric": ["0", "-1", "0.001", "99999.99", "-99999.99", "1e9", "0.5", "-0.5"],
    "text": ["", " ", "über", "日本語", "🙂", "a b", "it's", "%_\\", "NULL", "ÄÖÜ", "0", "-1"],
    "bool": ["true", "false"],
    "date": ["0001-01-01", "9999-12-31", "1970-01-01", "2000-02-29", "infinity", "-infinity",
             "0044-03-15 BC"],
    "timestamp": ["0001-01-01 00:00:00", "9999-12-31 23:59:59.999999", "1970-01-01 00:00:00",
                  "2000-02-29 12:00:00.5", "infinity", "-infinity"],
    "timestamptz": ["0001-01-01 00:00:00+00", "9999-12-31 23:59:59.999999+00",
                    "1970-01-01 00:00:00+00", "2021-06-01 08:00:00-07:30", "infinity",
                    "-infinity"],
    "bytea": ["\\x", "\\x00", "\\xff00", "\\xdeadbeef"],
    "uuid": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "jsonb": ["{}", "[]", "null", "0", "\"\"", "{\"a\": {\"b\": [1, 2, null]}, \"c\": \"ü\"}",
              "[1, \"x\", true, null]", "1.50", "{\"b\": 2, \"a\": 1}", "\"日本\"",
              "{\"a\": 1e400}"],
}
TEXT_POOL = ["a", "b", "abc", "ABC", "Abc", "x y", "über", "日本", "ab%", "a_c", "hello", "B"]
TEXT_KEYS = ["a", "b", "c", "x"]


def ordinary(rng, typ):
    """An ordinary (non-edge) value's raw text; small ranges so joins and groups match."""
    if typ in INT_TYPES:
        return str(rng.randint(-5, 12))
    if typ == "float8":
        return rng.choice(["0.5", "1", "2.25", "-3.5", "10", "0.1", "1e10", "-7.125", "3"])
    if typ == "numeric":
        return rng.choice(["1", "2.5", "-3.25", "10.10", "0.01", "12345.678", "7"])
    if typ == "text":
        return rng.choice(TEXT_POOL)
    if typ == "bool":
        return rng.choice(["true", "false"])
    if typ == "date":
        return f"20{rng.randint(0, 30):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if typ == "timestamp":
        return (f"20{rng.randint(0, 30):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                f" {rng.randint(0, 23):02d}:{rng.choice(['00', '30', '59'])}:"
                f"{rng.choice(['00', '01.5', '59.999999'])}")
    if typ == "timestamptz":
        return ordinary(rng, "timestamp") + rng.choice(["+00", "+02", "-05", "+05:30"])
    if typ == "bytea":
        return "\\x" + "".join(rng.choice("0123456789abcdef") for _ in range(rng.choice([2, 4, 6])))
    if typ == "uuid":
        return "%08x-%04x-%04x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                              rng.getrandbits(16), rng.getrandbits(16),
                                              rng.getrandbits(48))
    if typ == "jsonb":
        return rng.choice(["{\"a\": 1}", "{\"a\": \"x\", \"b\": [1, 2]}", "[1, 2, 3]", "true",
                           "\"s\"", "{\"c\": null}", "2.5", "{\"a\": {\"b\": 1}}", "[]"])
    raise ValueError(typ)


def quote(text):
    return "'" + text.replace("'", "''") + "'"


def literal(typ, raw, sql_type=None):
    """A typed SQL literal for `raw`."""
    if typ == "int4":
        return raw if not raw.startswith("-") else f"({raw})"
    if typ == "bool":
        return raw if raw in ("true", "false") else f"{quote(raw)}::bool"
    if typ == "text" and sql_type is None:
        return quote(raw)
    return f"{quote(raw)}::{sql_type or typ}"


def value(rng, typ, null_rate=0.12, edge_rate=0.3):
    """A random value's raw text for a column of expression type `typ`, or None for NULL."""
    r = rng.random()
    if r < null_rate:
        return None
    if r < null_rate + edge_rate:
        return rng.choice(EDGES[typ])
    return ordinary(rng, typ)


# --- schema and rows -----------------------------------------------------------------------


@dataclass
class Column:
    name: str
    sql_type: str
    type: str  # expression type


@dataclass
class Table:
    name: str
    columns: list  # Column, the key `k` first

    def ddl(self):
        cols = ", ".join(
            f"{c.name} {c.sql_type}" + (" PRIMARY KEY" if c.name == "k" else "")
            for c in self.columns
        )
        return f"CREATE TABLE {self.name} ({cols})"

    def insert_sql(self, row):
        """INSERT of one row given as raw texts (None for NULL)."""
        vals = ", ".join(
            "NULL" if v is None else literal(c.type, v, c.sql_type if c.type != "int4" else None)
            for c, v in zip(self.columns, row)
        )
        return f"INSERT INTO {self.name} VALUES ({vals})"


def gen_schema(rng):
    tables = []
    for t in range(rng.randint(2, 4)):
        cols = [Column("k", "int4", "int4")]
        used = {}
        for sql_type, typ, _ in weighted_sample(rng, COLUMN_TYPES, rng.randint(3, 7)):
            base = SHORT_NAMES[typ]
            used[base] = used.get(base, 0) + 1
            name = base if used[base] == 1 else f"{base}{used[base]}"
            cols.append(Column(name, sql_type, typ))
        tables.append(Table(f"t{t}", cols))
    return tables


def weighted_sample(rng, entries, n):
    """n distinct entries, each (…, weight) drawn with its weight."""
    pool = list(entries)
    out = []
    for _ in range(min(n, len(pool))):
        pick = rng.choices(pool, weights=[e[-1] for e in pool])[0]
        pool.remove(pick)
        out.append(pick)
    return out


def gen_rows(rng, table):
    keys = rng.sample(range(1, 21), rng.randint(3, 10))
    return [[str(k)] + [value(rng, c.type) for c in table.columns[1:]] for k in keys]


# --- expressions ---------------------------------------------------------------------------

# Operator and function signatures: (template, argument types, result type, label, float math).
# An argument type may be a literal-only kind: "smallint" (a small int4 literal), or a
# constant string from a list (("lit", [...])).
SMALLINT = "smallint"


def _sigs():
    s = []

    def add(template, args, result, label, fm=False):
        s.append((template, tuple(args), result, label, fm))

    for t in INT_TYPES:
        for op in "+-*/%":
            add(f"({{0}} {op} {{1}})", [t, t], t, f"{op}({t})")
        add("(- {0})", [t], t, f"neg({t})")
        add("abs({0})", [t], t, f"abs({t})")
        for op in "&|#":
            add(f"({{0}} {op} {{1}})", [t, t], t, f"{op}({t})")
        add("({0} << {1})", [t, SMALLINT], t, f"<<({t})")
        add("({0} >> {1})", [t, SMALLINT], t, f">>({t})")
    for a, b, r in (("int2", "int4", "int4"), ("int4", "int8", "int8"), ("int2", "int8", "int8")):
        for op in "+-*/":
            add(f"({{0}} {op} {{1}})", [a, b], r, f"{op}({a},{b})")
    add("mod({0}, {1})", ["int4", "int4"], "int4", "mod(int4)")
    add("gcd({0}, {1})", ["int8", "int8"], "int8", "gcd(int8)")
    add("lcm({0}, {1})", ["int4", "int4"], "int4", "lcm(int4)")
    add("length({0})", ["text"], "int4", "length(text)")
    add("octet_length({0})", ["text"], "int4", "octet_length(text)")
    add("strpos({0}, {1})", ["text", "text"], "int4", "strpos")
    add("ascii({0})", ["text"], "int4", "ascii")
    add("length({0})", ["bytea"], "int4", "length(bytea)")
    add("({0} - {1})", ["date", "date"], "int4", "-(date,date)")
    add("jsonb_array_length({0})", ["jsonb"], "int4", "jsonb_array_length")
    add("sign({0})", ["numeric"], "numeric", "sign(numeric)")
    for src in ("int2", "int8", "float8", "numeric", "text", "bool"):
        add(f"CAST({{0}} AS int4)", [src], "int4", f"cast({src}->int4)")
    for src in ("int4", "int8", "float8", "numeric", "text"):
        add(f"CAST({{0}} AS int2)", [src], "int2", f"cast({src}->int2)")
    for src in ("int4", "float8", "numeric", "text"):
        add(f"CAST({{0}} AS int8)", [src], "int8", f"cast({src}->int8)")
    # float8
    for op in "+-*/":
        add(f"({{0}} {op} {{1}})", ["float8", "float8"], "float8", f"{op}(float8)", True)
        add(f"({{0}} {op} {{1}})", ["float8", "int4"], "float8", f"{op}(float8,int4)", True)
    for fn in ("abs", "floor", "ceil", "round", "trunc", "sign"):
        add(f"{fn}({{0}})", ["float8"], "float8", f"{fn}(float8)")
    for fn in ("sqrt", "cbrt", "exp", "ln", "log", "sin", "cos", "atan", "degrees"):
        add(f"{fn}({{0}})", ["float8"], "float8", f"{fn}(float8)", True)
    add("power({0}, {1})", ["float8", "float8"], "float8", "power(float8)", True)
    add("(- {0})", ["float8"], "float8", "neg(float8)")
    for src in ("int2", "int4", "int8", "numeric", "text"):
        add("CAST({0} AS float8)", [src], "float8", f"cast({src}->float8)")
    add("date_part({0}, {1})", [("lit", ["'year'", "'month'", "'day'", "'dow'", "'doy'"]), "date"],
        "float8", "date_part(date)")
    add("date_part({0}, {1})", [("lit", ["'epoch'", "'hour'", "'second'", "'year'"]),
                                "timestamp"], "float8", "date_part(timestamp)")
    add("date_part({0}, {1})", [("lit", ["'epoch'", "'hour'", "'day'"]), "timestamptz"],
        "float8", "date_part(timestamptz)")
    # numeric
    for op in "+-*":
        add(f"({{0}} {op} {{1}})", ["numeric", "numeric"], "numeric", f"{op}(numeric)")
        add(f"({{0}} {op} {{1}})", ["numeric", "int4"], "numeric", f"{op}(numeric,int4)")
    add("({0} / {1})", ["numeric", "numeric"], "numeric", "/(numeric)")
    add("({0} % {1})", ["numeric", "numeric"], "numeric", "%(numeric)")
    for fn in ("abs", "floor", "ceil", "round", "trunc"):
        add(f"{fn}({{0}})", ["numeric"], "numeric", f"{fn}(numeric)")
    add("round({0}, {1})", ["numeric", SMALLINT], "numeric", "round(numeric,int)")
    for fn in ("sqrt", "exp", "ln", "log"):
        add(f"{fn}({{0}})", ["numeric"], "numeric", f"{fn}(numeric)")
    add("power({0}, {1})", ["numeric", "numeric"], "numeric", "power(numeric)")
    add("log({0}, {1})", ["numeric", "numeric"], "numeric", "log(numeric,numeric)")
    add("(- {0})", ["numeric"], "numeric", "neg(numeric)")
    for src in ("int2", "int4", "int8", "float8", "text"):
        add("CAST({0} AS numeric)", [src], "numeric", f"cast({src}->numeric)")
    add("CAST({0} AS numeric(10,2))", ["numeric"], "numeric", "cast(numeric->numeric(10,2))")
    add("extract({0} from {1})", [("lit", ["year", "month", "day", "dow"]), "date"], "numeric",
        "extract(date)")
    add("extract({0} from {1})", [("lit", ["epoch", "hour", "second"]), "timestamp"], "numeric",
        "extract(timestamp)")
    # text
    add("({0} || {1})", ["text", "text"], "text", "||(text)")
    add("({0} || {1})", ["text", "int4"], "text", "||(text,int4)")
    for fn in ("upper", "lower", "initcap", "reverse", "md5", "btrim", "ltrim", "rtrim",
               "quote_literal", "quote_ident"):
        add(f"{fn}({{0}})", ["text"], "text", f"{fn}(text)")
    add("substr({0}, {1})", ["text", SMALLINT], "text", "substr/2")
    add("substr({0}, {1}, {2})", ["text", SMALLINT, SMALLINT], "text", "substr/3")
    add("substring({0} from {1} for {2})", ["text", "int4", SMALLINT], "text", "substring")
    add("left({0}, {1})", ["text", SMALLINT], "text", "left")
    add("right({0}, {1})", ["text", SMALLINT], "text", "right")
    add("repeat({0}, {1})", ["text", SMALLINT], "text", "repeat")
    add("lpad({0}, {1}, {2})", ["text", SMALLINT, "text"], "text", "lpad")
    add("rpad({0}, {1})", ["text", SMALLINT], "text", "rpad")
    add("replace({0}, {1}, {2})", ["text", "text", "text"], "text", "replace")
    add("translate({0}, {1}, {2})", ["text", "text", "text"], "text", "translate")
    add("split_part({0}, {1}, {2})", ["text", "text", SMALLINT], "text", "split_part")
    add("concat({0}, {1}, {2})", ["text", "int4", "date"], "text", "concat")
    add("concat_ws({0}, {1}, {2})", [("lit", ["','", "''", "NULL"]), "text", "numeric"], "text",
        "concat_ws")
    add("to_hex({0})", ["int8"], "text", "to_hex")
    add("chr({0})", [("lit", ["65", "252", "8364", "128512", "0", "1114112", "(-1)"])], "text",
        "chr")
    add("encode({0}, {1})", ["bytea", ("lit", ["'hex'", "'base64'", "'escape'"])], "text",
        "encode")
    add("md5({0})", ["bytea"], "text", "md5(bytea)")
    add("({0} ->> {1})", ["jsonb", ("lit", ["'a'", "'b'", "'c'", "0", "1", "(-1)"])], "text",
        "->>")
    add("({0} #>> {1})", ["jsonb", ("lit", ["'{a,b}'", "'{a}'", "'{0}'", "'{}'"])], "text",
        "#>>")
    add("jsonb_typeof({0})", ["jsonb"], "text", "jsonb_typeof")
    add("format({0}, {1}, {2})", [("lit", ["'%s-%s'", "'%s|%L'", "'[%3s]'"]), "text", "int4"],
        "text", "format")
    add("to_char({0}, {1})", ["timestamp", ("lit", ["'YYYY-MM-DD'", "'HH24:MI:SS'", "'Dy Mon'"])],
        "text", "to_char(timestamp)")
    add("to_char({0}, {1})", ["int4", ("lit", ["'999'", "'0000'", "'FM999'"])], "text",
        "to_char(int4)")
    for src in ("int2", "int4", "int8", "float8", "numeric", "bool", "date", "timestamp",
                "timestamptz", "bytea", "uuid", "jsonb"):
        add("CAST({0} AS text)", [src], "text", f"cast({src}->text)")
    add("CAST({0} AS varchar(3))", ["text"], "text", "cast(text->varchar(3))")
    # bool
    for t in ORDERABLE + ("jsonb",):
        for op in ("=", "<>", "<", "<=", ">", ">="):
            if t in ("bool", "jsonb") and op not in ("=", "<>"):
                continue
            add(f"({{0}} {op} {{1}})", [t, t], "bool", f"{op}({t})")
        add("({0} IS DISTINCT FROM {1})", [t, t], "bool", f"isdistinct({t})")
    for a, b in (("int4", "int8"), ("int2", "int4"), ("int4", "numeric"), ("int8", "float8"),
                 ("numeric", "float8"), ("date", "timestamp"), ("timestamp", "timestamptz")):
        for op in ("=", "<"):
            add(f"({{0}} {op} {{1}})", [a, b], "bool", f"{op}({a},{b})")
    add("({0} AND {1})", ["bool", "bool"], "bool", "AND")
    add("({0} OR {1})", ["bool", "bool"], "bool", "OR")
    add("(NOT {0})", ["bool"], "bool", "NOT")
    for t in ("int4", "text", "numeric", "date", "float8"):
        add("({0} BETWEEN {1} AND {2})", [t, t, t], "bool", f"between({t})")
        add("({0} IN ({1}, {2}))", [t, t, t], "bool", f"in-list({t})")
        add("({0} NOT IN ({1}, {2}))", [t, t, t], "bool", f"not-in-list({t})")
    for t in ("int4", "text", "bool", "jsonb", "date"):
        add("({0} IS NULL)", [t], "bool", "isnull")
        add("({0} IS NOT NULL)", [t], "bool", "isnotnull")
    add("({0} IS TRUE)", ["bool"], "bool", "istrue")
    add("({0} IS NOT FALSE)", ["bool"], "bool", "isnotfalse")
    pats = ("lit", ["'%'", "'a%'", "'%b%'", "'_'", "''", "'ü%'", "'%\\%%'", "'A_C'", "'%日%'"])
    add("({0} LIKE {1})", ["text", pats], "bool", "LIKE")
    add("({0} NOT LIKE {1})", ["text", pats], "bool", "NOT LIKE")
    add("({0} ILIKE {1})", ["text", pats], "bool", "ILIKE")
    add("({0} ~ {1})", ["text", ("lit", ["'^a'", "'b$'", "'[0-9]'", "'^.$'", "'(a|b)c'"])],
        "bool", "~")
    add("starts_with({0}, {1})", ["text", "text"], "bool", "starts_with")
    add("({0} @> {1})", ["jsonb", "jsonb"], "bool", "@>(jsonb)")
    add("({0} ? {1})", ["jsonb", ("lit", ["'a'", "'b'", "'x'"])], "bool", "?(jsonb)")
    add("isfinite({0})", ["date"], "bool", "isfinite(date)")
    add("CAST({0} AS bool)", [("lit", ["'t'", "'yes'", "'0'", "'on'", "'maybe'", "' true '"])],
        "bool", "cast(text->bool)")
    add("CAST({0} AS bool)", ["int4"], "bool", "cast(int4->bool)")
    # date and time
    add("({0} + {1})", ["date", "int4"], "date", "+(date,int4)")
    add("({0} - {1})", ["date", "int4"], "date", "-(date,int4)")
    add("make_date({0}, {1}, {2})", [("lit", ["2024", "1", "(-44)", "10000", "0"]),
                                     ("lit", ["1", "2", "12", "13"]),
                                     ("lit", ["1", "29", "31"])], "date", "make_date")
    for src in ("timestamp", "timestamptz", "text"):
        add("CAST({0} AS date)", [src], "date", f"cast({src}->date)")
    ivl = ("lit", ["interval '1 day'", "interval '1 month'", "interval '-1 year'",
                   "interval '1 hour 30 minutes'", "interval '0.5 seconds'"])
    add("({0} + {1})", ["timestamp", ivl], "timestamp", "+(timestamp,interval)")
    add("({0} - {1})", ["timestamp", ivl], "timestamp", "-(timestamp,interval)")
    add("({0} + {1})", ["timestamptz", ivl], "timestamptz", "+(timestamptz,interval)")
    add("({0} + {1})", ["date", ivl], "timestamp", "+(date,interval)")
    trunc = ("lit", ["'year'", "'month'", "'day'", "'hour'", "'minute'", "'week'", "'quarter'"])
    add("date_trunc({0}, {1})", [trunc, "timestamp"], "timestamp", "date_trunc(timestamp)")
    add("date_trunc({0}, {1})", [trunc, "timestamptz"], "timestamptz", "date_trunc(timestamptz)")
    for src in ("date", "timestamptz", "text"):
        add("CAST({0} AS timestamp)", [src], "timestamp", f"cast({src}->timestamp)")
        add("CAST({0} AS timestamptz)", [src.replace("timestamptz", "timestamp")],
            "timestamptz", f"cast({src.replace('timestamptz', 'timestamp')}->timestamptz)")
    add("CAST({0} AS timestamp(0))", ["timestamp"], "timestamp", "cast(timestamp->timestamp(0))")
    add("({0} AT TIME ZONE 'UTC')", ["timestamptz"], "timestamp", "at-time-zone(timestamptz)")
    add("to_timestamp({0})", ["float8"], "timestamptz", "to_timestamp(float8)")
    add("make_timestamp({0}, {1}, {2}, {3}, {4}, {5})",
        [("lit", ["2024", "1", "(-1)"]), ("lit", ["1", "2", "12"]), ("lit", ["1", "29", "30"]),
         ("lit", ["0", "23", "24"]), ("lit", ["0", "59"]), ("lit", ["0", "59.999999", "60"])],
        "timestamp", "make_timestamp")
    # bytea, uuid, jsonb
    add("({0} || {1})", ["bytea", "bytea"], "bytea", "||(bytea)")
    add("decode({0}, {1})", [("lit", ["'00ff'", "'ABC'", "'YWJj'", "''"]),
                             ("lit", ["'hex'", "'base64'", "'escape'"])], "bytea", "decode")
    add("CAST({0} AS bytea)", ["text"], "bytea", "cast(text->bytea)")
    add("substr({0}, {1}, {2})", ["bytea", SMALLINT, SMALLINT], "bytea", "substr(bytea)")
    add("sha256({0})", ["bytea"], "bytea", "sha256")
    add("convert_to({0}, 'UTF8')", ["text"], "bytea", "convert_to")
    add("CAST(md5({0}) AS uuid)", ["text"], "uuid", "cast(md5->uuid)")
    add("CAST({0} AS uuid)", [("lit", ["'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
                                      "'{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}'",
                                      "'a0eebc999c0b4ef8bb6d6bb9bd380a11'", "'not-a-uuid'"])],
        "uuid", "cast(text->uuid)")
    add("({0} -> {1})", ["jsonb", ("lit", ["'a'", "'b'", "0", "1", "(-1)"])], "jsonb", "->")
    add("({0} || {1})", ["jsonb", "jsonb"], "jsonb", "||(jsonb)")
    add("({0} - {1})", ["jsonb", ("lit", ["'a'", "0"])], "jsonb", "-(jsonb)")
    add("jsonb_build_object({0}, {1})", [("lit", ["'k'", "'a'"]), "int4"], "jsonb",
        "jsonb_build_object")
    add("jsonb_build_array({0}, {1})", ["text", "bool"], "jsonb", "jsonb_build_array")
    for src in ("int4", "float8", "numeric", "text", "timestamp", "timestamptz", "date", "bool"):
        add("to_jsonb(CAST({0} AS text))" if src == "text" else "to_jsonb({0})", [src], "jsonb",
            f"to_jsonb({src})")
    add("jsonb_strip_nulls({0})", ["jsonb"], "jsonb", "jsonb_strip_nulls")
    add("CAST({0} AS jsonb)", [("lit", ["'{\"a\":1,\"a\":2}'", "'[1,2'", "'1e2'", "'-0'",
                                       "'\"\\u00fc\"'", "' {} '"])], "jsonb", "cast(text->jsonb)")
    return s


SIGNATURES = _sigs()
SIGS_BY_RESULT = {}
for _sig in SIGNATURES:
    SIGS_BY_RESULT.setdefault(_sig[2], []).append(_sig)

# Aggregates: (template, argument type, result type, label, float math).
AGGREGATES = []
for _t in INT_TYPES:
    AGGREGATES.append(("sum({0})", _t, "int8" if _t != "int8" else "numeric", f"sum({_t})",
                       False))
    AGGREGATES.append(("avg({0})", _t, "numeric", f"avg({_t})", False))
for _t in MINMAX:
    AGGREGATES.append(("min({0})", _t, _t, f"min({_t})", False))
    AGGREGATES.append(("max({0})", _t, _t, f"max({_t})", False))
AGGREGATES += [
    ("sum({0})", "float8", "float8", "sum(float8)", True),
    ("avg({0})", "float8", "float8", "avg(float8)", True),
    ("sum({0})", "numeric", "numeric", "sum(numeric)", False),
    ("avg({0})", "numeric", "numeric", "avg(numeric)", False),
    ("stddev_samp({0})", "float8", "float8", "stddev_samp(float8)", True),
    ("var_pop({0})", "int4", "numeric", "var_pop(int4)", False),
    ("bool_and({0})", "bool", "bool", "bool_and", False),
    ("bool_or({0})", "bool", "bool", "bool_or", False),
    ("count({0})", "text", "int8", "count", False),
    ("count(DISTINCT {0})", "int4", "int8", "count-distinct", False),
    ("count(DISTINCT {0})", "text", "int8", "count-distinct", False),
    ("string_agg({0}, ',' ORDER BY {0})", "text", "text", "string_agg", False),
    ("jsonb_agg({0} ORDER BY {0})", "int4", "jsonb", "jsonb_agg", False),
]
AGGS_BY_RESULT = {}
for _a in AGGREGATES:
    AGGS_BY_RESULT.setdefault(_a[2], []).append(_a)


@dataclass
class Scope:
    """The columns an expression may use: (qualified name, expression type) pairs."""

    columns: list
    keys: list  # the qualified names that together decide every row (for total orders)
    tables: list  # the schema's tables, for subqueries


class Gen:
    """Generates expressions and statements over one schema."""

    def __init__(self, rng, tables):
        self.rng = rng
        self.tables = tables
        self.aliases = 0

    def alias(self, prefix="a"):
        self.aliases += 1
        return f"{prefix}{self.aliases}"

    def pick_type(self):
        types = list(TYPE_WEIGHTS)
        return self.rng.choices(types, weights=[TYPE_WEIGHTS[t] for t in types])[0]

    # expressions

    def lit(self, typ):
        raw = value(self.rng, typ, null_rate=0.1, edge_rate=0.45)
        if raw is None:
            return Leaf(f"NULL::{typ}", typ, f"null:{typ}")
        return Leaf(literal(typ, raw), typ, f"lit:{typ}")

    def expr(self, typ, scope, depth, agg=None):
        """An expression of type `typ` over `scope`'s columns; given `agg` (a scope), it may
        contain aggregates over `agg`'s columns."""
        rng = self.rng
        if agg is not None and typ in AGGS_BY_RESULT and rng.random() < 0.6:
            return self.aggregate(typ, agg, depth)
        cols = [c for c in scope.columns if c[1] == typ] if scope else []
        if depth <= 0 or rng.random() < 0.25:
            if cols and rng.random() < 0.7:
                name, t = rng.choice(cols)
                return Leaf(name, t, f"col:{t}")
            return self.lit(typ)
        r = rng.random()
        if r < 0.07:
            n = rng.randint(1, 2)
            whens = []
            for _ in range(n):
                whens += [self.expr("bool", scope, depth - 1, agg), self.expr(typ, scope, depth - 1,
                                                                              agg)]
            tmpl = "CASE " + " ".join(f"WHEN {{{2 * i}}} THEN {{{2 * i + 1}}}" for i in range(n))
            if rng.random() < 0.7:
                whens.append(self.expr(typ, scope, depth - 1, agg))
                tmpl += f" ELSE {{{2 * n}}}"
            return Expr(tmpl + " END", tuple(whens), typ, "case")
        if r < 0.12:
            args = tuple(self.expr(typ, scope, depth - 1, agg) for _ in range(rng.randint(2, 3)))
            return Expr("coalesce(" + ", ".join(f"{{{i}}}" for i in range(len(args))) + ")",
                        args, typ, "coalesce")
        if r < 0.15:
            args = (self.expr(typ, scope, depth - 1, agg), self.expr(typ, scope, depth - 1, agg))
            return Expr("nullif({0}, {1})", args, typ, "nullif")
        if r < 0.18 and typ in MINMAX:
            fn = rng.choice(["greatest", "least"])
            args = (self.expr(typ, scope, depth - 1, agg), self.expr(typ, scope, depth - 1, agg))
            return Expr(fn + "({0}, {1})", args, typ, fn)
        if r < 0.22 and scope is not None and scope.tables:
            sub = self.subquery_expr(typ, scope, depth)
            if sub is not None:
                return sub
        sigs = SIGS_BY_RESULT.get(typ)
        if not sigs:
            return self.lit(typ)
        template, arg_types, result, label, fm = rng.choice(sigs)
        args = tuple(self.arg(a, scope, depth - 1, agg) for a in arg_types)
        return Expr(template, args, result, label, float_math=fm)

    def arg(self, kind, scope, depth, agg):
        rng = self.rng
        if kind == SMALLINT:
            n = rng.choice([-1, 0, 1, 2, 3, 5])
            return Leaf(str(n) if n >= 0 else f"({n})", "int4", "lit:int4")
        if isinstance(kind, tuple):
            return Leaf(rng.choice(kind[1]), "const", "lit:const")
        return self.expr(kind, scope, depth, agg)

    def aggregate(self, typ, scope, depth):
        template, arg_type, result, label, fm = self.rng.choice(AGGS_BY_RESULT[typ])
        if label == "count" and self.rng.random() < 0.4:
            return Expr("count(*)", (), "int8", "count(*)", is_agg=True)
        arg = self.expr(arg_type, scope, depth - 1)
        return Expr(template, (arg,), result, f"agg:{label}", float_math=fm, is_agg=True)

    def subquery_expr(self, typ, scope, depth):
        """A scalar subquery of type `typ`, or (for bool) IN / EXISTS, maybe correlated."""
        rng = self.rng
        table = rng.choice(scope.tables)
        alias = self.alias("s")
        inner_cols = [(f"{alias}.{c.name}", c.type) for c in table.columns]
        inner = Scope(inner_cols + scope.columns if rng.random() < 0.5 else inner_cols,
                      [f"{alias}.k"], [])
        where = (self.expr("bool", inner, 1),) if rng.random() < 0.7 else ()
        from_ = FromItem(alias, table=table.name)
        if typ == "bool" and rng.random() < 0.6:
            if rng.random() < 0.5:
                sel = Select((Item(Leaf("1", "int4", "lit:int4")),), from_, where=where)
                neg = rng.choice(["", "NOT "])
                return Expr(neg + "EXISTS ({0})", (sel,), "bool", f"{neg.lower()}exists")
            t = rng.choice([c[1] for c in inner_cols])
            sel = Select((Item(self.expr(t, inner, 1)),), from_, where=where)
            neg = rng.choice(["", "NOT "])
            return Expr("({0} " + neg + "IN ({1}))", (self.expr(t, scope, depth - 1), sel), "bool",
                        f"{neg.lower()}in-subquery({t})")
        if typ in AGGS_BY_RESULT and rng.random() < 0.7:
            item = self.aggregate(typ, Scope(inner_cols, [], []), 2)
            sel = Select((Item(item),), from_, where=where)
        else:
            sel = Select((Item(self.expr(typ, inner, 1)),), from_, where=where,
                         order_by=((Leaf(f"{alias}.k", "int4", "col:int4"), "DESC"),), limit=1)
        return Expr("({0})", (sel,), typ, "scalar-subquery")

    # statements

    def from_clause(self, allow_joins=True):
        """(FromItem, joins, scope)."""
        rng = self.rng
        r = rng.random()
        if r < 0.1:
            alias = self.alias("g")
            lo, hi = rng.choice([(1, 3), (0, 0), (-2, 2), (5, 1)])
            srf = Expr("generate_series({0}, {1})", (Leaf(str(lo), "int4", "lit:int4"),
                                                     Leaf(str(hi), "int4", "lit:int4")),
                       "int4", "generate_series")
            first = FromItem(alias, srf=srf, columns=("x",))
            scope = Scope([(f"{alias}.x", "int4")], [f"{alias}.x"], self.tables)
        elif r < 0.15:
            alias = self.alias("u")
            typ = rng.choice(["int4", "text", "numeric"])
            elems = ", ".join(self.lit(typ).sql() for _ in range(rng.randint(0, 4)))
            srf = Leaf(f"unnest(ARRAY[{elems}]::{typ}[])", typ, "unnest")
            first = FromItem(alias, srf=srf, columns=("x",))
            scope = Scope([(f"{alias}.x", typ)], [], self.tables)
        elif r < 0.22:
            table = rng.choice(self.tables)
            inner_alias = self.alias()
            inner = Scope([(f"{inner_alias}.{c.name}", c.type) for c in table.columns],
                          [f"{inner_alias}.k"], self.tables)
            items = tuple(Item(self.expr(self.pick_type(), inner, rng.randint(0, 2)), f"c{i}")
                          for i in range(rng.randint(1, 3)))
            sub = Select(items, FromItem(inner_alias, table=table.name), (), self.where(inner),
                         distinct=rng.random() < 0.2)
            alias = self.alias("d")
            first = FromItem(alias, sub=sub)
            scope = Scope([(f"{alias}.c{i}", it.expr.type) for i, it in enumerate(items)], [],
                          self.tables)
        else:
            table = rng.choice(self.tables)
            alias = self.alias()
            first = FromItem(alias, table=table.name)
            scope = Scope([(f"{alias}.{c.name}", c.type) for c in table.columns],
                          [f"{alias}.k"], self.tables)
        joins = []
        if allow_joins:
            for _ in range(rng.choice([0, 0, 1, 1, 2])):
                table = rng.choice(self.tables)
                alias = self.alias()
                cols = [(f"{alias}.{c.name}", c.type) for c in table.columns]
                kind = rng.choice(["JOIN", "LEFT JOIN", "FULL JOIN", "CROSS JOIN", "JOIN"])
                on = None
                if kind != "CROSS JOIN":
                    common = [(a, b) for a in scope.columns for b in cols if a[1] == b[1]]
                    if common and rng.random() < 0.8:
                        a, b = rng.choice(common)
                        on = Expr("({0} = {1})", (Leaf(a[0], a[1], f"col:{a[1]}"),
                                                  Leaf(b[0], b[1], f"col:{b[1]}")),
                                  "bool", f"=({a[1]})")
                    else:
                        on = self.expr("bool", Scope(scope.columns + cols, [], []), 1)
                    if kind == "FULL JOIN" and not on.label.startswith("="):
                        kind = "LEFT JOIN"  # FULL JOIN needs a merge- or hash-joinable ON
                joins.append(Join(kind, FromItem(alias, table=table.name), on))
                keys = scope.keys + [f"{alias}.k"] if scope.keys else []
                scope = Scope(scope.columns + cols, keys, self.tables)
        return first, tuple(joins), scope

    def items(self, scope, n, agg=None, types=None):
        out = []
        for i in range(n):
            typ = types[i] if types else self.pick_type()
            e = self.expr(typ, scope, self.rng.randint(1, 3), agg)
            out.append(Item(e, f"c{i}" if self.rng.random() < 0.5 else None))
        return tuple(out)

    def where(self, scope):
        return tuple(self.expr("bool", scope, self.rng.randint(1, 3))
                     for _ in range(self.rng.choice([0, 1, 1, 2])))

    def plain_select(self, types=None, allow_limit=True):
        rng = self.rng
        first, joins, scope = self.from_clause()
        n = len(types) if types else rng.randint(1, 4)
        sel = Select(self.items(scope, n, types=types), first, joins, self.where(scope),
                     distinct=rng.random() < 0.1)
        return self.ordering(sel, scope, allow_limit)

    def ordering(self, sel, scope, allow_limit=True):
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            sel = replace(sel, order_all=True)
            if allow_limit and rng.random() < 0.5:
                sel = replace(sel, limit=rng.choice([0, 1, 3, 10]),
                              offset=rng.choice([None, None, 1, 2]))
        elif r < 0.5 and not sel.group_by and not sel.distinct and not any(
                i.expr.agg for i in sel.items):
            key = self.expr(rng.choice(ORDERABLE), scope, 1)
            direction = rng.choice(["ASC", "DESC NULLS LAST", "ASC NULLS FIRST"])
            if not (isinstance(key, Leaf) and not key.label.startswith("col")):
                sel = replace(sel, order_by=((key, direction),))
        return sel

    def grouped_select(self):
        rng = self.rng
        first, joins, scope = self.from_clause()
        keys = rng.sample(scope.columns, min(len(scope.columns), rng.randint(0, 2)))
        key_scope = Scope(keys, [], self.tables)
        items = [Item(self.expr(t, key_scope, rng.randint(0, 1)), None) for _, t in keys]
        items += self.items(key_scope, rng.randint(1, 3), agg=scope)
        having = None
        if keys and rng.random() < 0.3:
            having = Expr("({0} > {1})", (Expr("count(*)", (), "int8", "count(*)", is_agg=True),
                                          Leaf(str(rng.randint(0, 2)), "int4", "lit:int4")),
                          "bool", ">(int8)")
        sel = Select(tuple(items), first, joins, self.where(scope),
                     group_by=tuple(Leaf(name, t, f"col:{t}") for name, t in keys),
                     having=having)
        return self.ordering(sel, scope)

    def window_select(self):
        rng = self.rng
        table = rng.choice(self.tables)
        alias = self.alias()
        scope = Scope([(f"{alias}.{c.name}", c.type) for c in table.columns], [f"{alias}.k"],
                      self.tables)
        part = rng.choice([c for c in scope.columns])
        okey = rng.choice(scope.columns)
        total = f"{okey[0]}, {alias}.k"
        r = rng.random()
        if r < 0.3:
            fn = rng.choice(["rank()", "dense_rank()", "percent_rank()", "cume_dist()"])
            over = f"ORDER BY {okey[0]}"
            typ = "float8" if fn in ("percent_rank()", "cume_dist()") else "int8"
            w = Leaf(f"{fn} OVER (PARTITION BY {part[0]} {over})", typ, f"win:{fn[:-2]}")
        elif r < 0.6:
            fn = rng.choice(["row_number()", "ntile(2)"])
            w = Leaf(f"{fn} OVER (PARTITION BY {part[0]} ORDER BY {total})", "int8",
                     f"win:{fn.split('(')[0]}")
        elif r < 0.8:
            col = rng.choice(scope.columns)
            fn = rng.choice(["lag", "lead", "first_value"])
            w = Leaf(f"{fn}({col[0]}) OVER (ORDER BY {total})", col[1], f"win:{fn}")
        else:
            template, arg_type, result, label, fm = rng.choice(
                [a for a in AGGREGATES if "ORDER BY" not in a[0] and "DISTINCT" not in a[0]])
            cols = [c for c in scope.columns if c[1] == arg_type]
            arg = cols[0][0] if cols else self.lit(arg_type).sql()
            frame = rng.choice(["", f" ORDER BY {okey[0]}"])
            w = Leaf(template.format(arg) + f" OVER (PARTITION BY {part[0]}{frame})", result,
                     f"win:{label}", inexact=fm)
        items = (Item(w, "w"),) + self.items(scope, rng.randint(0, 2))
        sel = Select(items, FromItem(alias, table=table.name), (), self.where(scope))
        return self.ordering(sel, scope)

    def setop_select(self):
        rng = self.rng
        types = [self.pick_type() for _ in range(rng.randint(1, 2))]
        types = [t if t != "jsonb" or rng.random() < 0.5 else "text" for t in types]
        left = self.plain_select(types, allow_limit=False)
        right = self.plain_select(types, allow_limit=False)
        strip = {"order_all": False, "order_by": (), "limit": None, "offset": None}
        left = replace(left, **strip)
        right = replace(right, **strip)
        op = rng.choice(["UNION", "INTERSECT", "EXCEPT", "UNION"])
        order_all = rng.random() < 0.4
        limit = rng.choice([None, 2]) if order_all else None
        return SetOp(op, rng.random() < 0.5, left, right, order_all, limit)

    def no_from_select(self):
        n = self.rng.randint(1, 3)
        sel = Select(self.items(None, n))
        if self.rng.random() < 0.1:
            srf = Expr("generate_series({0}, {1})", (self.arg(SMALLINT, None, 0, None),
                                                     Leaf("3", "int4", "lit:int4")),
                       "int4", "srf:generate_series")
            sel = Select(sel.items + (Item(srf),))
        return sel

    def select_list_srf(self):
        rng = self.rng
        first, joins, scope = self.from_clause(allow_joins=False)
        srf = rng.choice([
            ("generate_series(1, {0})", "smallint", "int4", "srf:generate_series"),
            ("unnest(ARRAY[{0}, {0}])", "text", "text", "srf:unnest"),
            ("jsonb_array_elements_text({0})", "jsonb", "text", "srf:jsonb_array_elements_text"),
            ("jsonb_object_keys({0})", "jsonb", "text", "srf:jsonb_object_keys"),
            ("regexp_split_to_table({0}, ' ')", "text", "text", "srf:regexp_split_to_table"),
        ])
        template, arg_type, result, label = srf
        arg = self.arg(SMALLINT if arg_type == "smallint" else arg_type, scope, 1, None)
        items = ((Item(Expr(template, (arg,), result, label)),)
                 + self.items(scope, rng.randint(0, 1)))
        return Select(items, first, joins, self.where(scope))

    def query(self):
        r = self.rng.random()
        if r < 0.25:
            return self.no_from_select()
        if r < 0.55:
            return self.plain_select()
        if r < 0.72:
            return self.grouped_select()
        if r < 0.8:
            return self.window_select()
        if r < 0.9:
            return self.setop_select()
        return self.select_list_srf()

    def dml(self, next_key):
        """An INSERT, UPDATE or DELETE; `next_key` is a fresh primary key value."""
        rng = self.rng
        table = rng.choice(self.tables)
        scope = Scope([(c.name, c.type) for c in table.columns], ["k"], self.tables)
        ret = ()
        if rng.random() < 0.7:
            ret = (Item(Leaf("k", "int4", "col:int4")),) + tuple(
                Item(self.expr(rng.choice([c.type for c in table.columns]), scope, 1))
                for _ in range(rng.randint(0, 2)))
            if rng.random() < 0.2:
                ret = (Item(Leaf("*", "any", "star")),)
        r = rng.random()
        if r < 0.45:
            cols = ["k"] + [c.name for c in table.columns[1:] if rng.random() < 0.7]
            types = {c.name: c for c in table.columns}
            rows = []
            for i in range(rng.randint(1, 3)):
                key = next_key + i if rng.random() < 0.85 else rng.randint(1, 20)
                row = [Leaf(str(key), "int4", "lit:int4")]
                for name in cols[1:]:
                    c = types[name]
                    if rng.random() < 0.8:
                        raw = value(rng, c.type)
                        row.append(Leaf("NULL" if raw is None else literal(c.type, raw),
                                        c.type, f"lit:{c.type}"))
                    else:
                        row.append(self.expr(c.type, None, 2))
                rows.append(tuple(row))
            if rng.random() < 0.15:
                alias = self.alias("s")
                inner = Scope([(f"{alias}.{c}", types[c].type) for c in cols], [], self.tables)
                items = (Item(Leaf(f"{alias}.k + {next_key}", "int4", "col:int4")),) + tuple(
                    Item(Leaf(f"{alias}.{c}", types[c].type, f"col:{types[c].type}"))
                    for c in cols[1:])
                select = Select(items, FromItem(alias, table=table.name), (), self.where(inner))
                return Insert(table.name, tuple(cols), select=select,
                              conflict=rng.choice(["", "ON CONFLICT DO NOTHING"]), returning=ret)
            conflict = rng.choice(["", "", "ON CONFLICT DO NOTHING",
                                   "ON CONFLICT (k) DO UPDATE SET k = excluded.k"])
            if len(cols) > 1 and conflict.endswith("excluded.k"):
                conflict = f"ON CONFLICT (k) DO UPDATE SET {cols[1]} = excluded.{cols[1]}"
            return Insert(table.name, tuple(cols), tuple(rows), conflict=conflict, returning=ret)
        if r < 0.8:
            targets = rng.sample(table.columns[1:], rng.randint(1, min(2, len(table.columns) - 1)))
            sets = tuple((c.name, self.expr(c.type, scope, rng.randint(0, 2))) for c in targets)
            return Update(table.name, sets, self.where(scope), ret)
        return Delete(table.name, self.where(scope), ret)

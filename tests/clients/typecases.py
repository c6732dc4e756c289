"""Values of every supported type, shared by the psycopg and asyncpg round-trip tests.

Each case is (SQL type, list of Python values). Every value is sent as a parameter, cast to the
type, and must come back exactly (`same`), and so must NULL.
"""

import math
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

UTC = timezone.utc
IST = timezone(timedelta(hours=5, minutes=30))
PST = timezone(timedelta(hours=-8))

TEXTS = [
    "",
    "hello",
    "it's \"quoted\" \\ back\\slash",
    "héllo wörld ✓ 🎉 日本語",
    "line1\nline2\ttab\r",
    " padded  ",
    "NULL",
]

SCALARS = {
    "int2": [0, 1, -1, 32767, -32768],
    "int4": [0, 42, 2147483647, -2147483648],
    "int8": [0, 9223372036854775807, -9223372036854775808, 2**40],
    "numeric": [
        Decimal("0"),
        Decimal("1.50"),
        Decimal("-123456789.000123"),
        Decimal("0.000000001"),
        Decimal("1234567890123456789012345678"),
        Decimal("-12345678901234567890.123456789"),  # more digits than rust_decimal holds
        Decimal("-0.5"),
    ],
    # float4 values whose shortest text form reads back exactly as a Python float
    "float4": [0.0, 1.5, -2.25, 0.125, 16777216.0, 1e10, 4096.5, math.inf, -math.inf,
               math.nan],
    "float8": [0.0, -0.0, 0.1, 1 / 3, 1e308, 5e-324, 2.2250738585072014e-308, 123456789.12345679,
               -1e-5, 1e15, math.inf, -math.inf, math.nan],
    "text": TEXTS,
    "varchar": TEXTS,
    "bpchar": ["x", "abc", "  lead", "ü✓"],
    "bool": [True, False],
    "date": [date(2024, 2, 29), date(1, 1, 2), date(9999, 12, 30), date(1970, 1, 1),
             date(2000, 1, 1), date(1999, 12, 31)],
    "time": [time(0, 0), time(23, 59, 59, 999999), time(12, 34, 56, 789000), time(1, 2, 3)],
    "timestamp": [
        datetime(2024, 2, 29, 12, 34, 56, 789012),
        datetime(1970, 1, 1),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(2000, 1, 1, 0, 0, 0, 1),
        datetime(1700, 3, 1, 1, 2, 3),
        datetime(2262, 1, 1, 0, 0),
    ],
    "timestamptz": [
        datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC),
        datetime(2024, 7, 1, 8, 0, tzinfo=IST),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2000, 1, 1, tzinfo=PST),
        datetime(2262, 1, 1, tzinfo=UTC),
    ],
    "interval": [
        timedelta(0),
        timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=7),
        timedelta(days=-1),
        timedelta(microseconds=-1),
        timedelta(days=-3, hours=2),
        timedelta(days=10000, microseconds=1),
        timedelta(seconds=86399, microseconds=999999),
    ],
    "uuid": [
        uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        uuid.UUID(int=0),
        uuid.UUID(int=2**128 - 1),
    ],
    "bytea": [
        b"",
        b"\x00",
        bytes(range(256)),
        b"\\x41",
        b"'\"\\",
        bytes((i * 7) % 256 for i in range(100_000)),
    ],
}

# Outside 1677-09-21 .. 2262-04-11, where a nanosecond timestamp ends.
WIDE_TIMESTAMPS = {
    "timestamp": [datetime(1, 1, 1, 0, 0), datetime(9999, 12, 31, 23, 59, 59, 999999),
                  datetime(1000, 6, 15, 12, 0)],
    "timestamptz": [datetime(1, 1, 2, tzinfo=UTC),
                    datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)],
}

# Numerics whose scale (digits after the point) must come back as written.
SCALED_NUMERICS = [Decimal("1.50"), Decimal("0"), Decimal("-3"), Decimal("0.000000001"),
                   Decimal("2.000"), Decimal("123.4567890123456")]

# JSON documents, as Python values. jsonb keys are given in jsonb's own order (shorter keys
# first) and without duplicates, so the normalised text is the same as the input.
JSON_DOCS = [
    {"a": 1, "b": [True, None, "x"], "cc": {"d": 1.5}},
    [],
    {},
    "str ✓ \"q\"",
    123,
    -1.25,
    True,
    None,  # JSON null, not SQL NULL
    [1, [2, [3, {"k": "v"}]]],
]

ARRAYS = {
    "int2[]": [[1, -2, None, 32767]],
    "int4[]": [[1, 2, 3], [], [None], [1, None, -2147483648]],
    "int8[]": [[9223372036854775807, None, -1]],
    "numeric[]": [[Decimal("1.50"), None, Decimal("-3")]],
    "float4[]": [[1.5, -2.25, None]],
    "float8[]": [[1.5, -0.0, math.inf, -math.inf, 0.1, None]],
    "text[]": [["a", "b c", "", None, "NULL", '"q"', "back\\slash", "{x}", "comma,", "ü"], []],
    "varchar[]": [["x", None, "y z"]],
    "bool[]": [[True, False, None]],
    "date[]": [[date(2024, 2, 29), None, date(1, 1, 2)]],
    "time[]": [[time(1, 2, 3, 4), None]],
    "timestamp[]": [[datetime(2024, 2, 29, 12, 34, 56, 789012), None]],
    "timestamptz[]": [[datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC), None]],
    "interval[]": [[timedelta(days=1, seconds=1), None]],
    "uuid[]": [[uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), None]],
    "bytea[]": [[b"\x00\xff", None, b""]],
}


def same(got, want, numeric_scale=True):
    """Exact equality: NaN equals NaN, -0.0 differs from 0.0, an aware datetime must come back
    aware, UUIDs compare by value whatever their class, and numerics by value and (unless
    `numeric_scale` is false) by scale too."""
    if want is None or got is None:
        return got is None and want is None
    if isinstance(want, float):
        if not isinstance(got, float):
            return False
        if math.isnan(want):
            return math.isnan(got)
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    if isinstance(want, Decimal):
        if not isinstance(got, Decimal) or got != want:
            return False
        return not numeric_scale or got.as_tuple().exponent == want.as_tuple().exponent
    if isinstance(want, datetime):
        return (
            isinstance(got, datetime)
            and (got.tzinfo is None) == (want.tzinfo is None)
            and got == want
        )
    if isinstance(want, uuid.UUID):
        return str(got) == str(want)
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(got) == len(want)
            and all(same(g, w, numeric_scale) for g, w in zip(got, want))
        )
    if isinstance(want, dict):
        return (
            isinstance(got, dict)
            and got.keys() == want.keys()
            and all(same(got[k], want[k], numeric_scale) for k in want)
        )
    if isinstance(want, bool):
        return got is want
    if isinstance(want, (bytes, bytearray, memoryview)):
        return isinstance(got, (bytes, bytearray, memoryview)) and bytes(got) == bytes(want)
    return type(got) is type(want) and got == want

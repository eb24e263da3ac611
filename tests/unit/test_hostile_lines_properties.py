"""Property tests over generated hostile lines (#13): either parsing path gives a line the same verdict
and the same row, a line never costs its file or its neighbours, and a kept line's objects are stored
as the values that were sent.

Lines are written by hand (not by a JSON library) so that they can hold what libraries do not write:
integers beyond 64 bits, lone surrogate escapes, raw control characters, nesting beyond any parser's
limit, numbers beyond a double's range.
"""

from __future__ import annotations

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile_lines import TIMESTAMP
from tests.unit.test_hostile_lines import good, run, verdict

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SAFE = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"\\')
_ESCAPES = [b'\\"', b"\\\\", b"\\/", b"\\n", b"\\t", b"\\u0000", b"\\u001F", b"\\ufeff", b"\\\\ud800"]


def _pair(code: int) -> bytes:
    high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
    return b"\\u%04x\\u%04X" % (high, low)


PIECES = st.one_of(
    st.text(_SAFE, max_size=6).map(str.encode),  # non-BMP characters as raw UTF-8 among them
    st.sampled_from(_ESCAPES),
    st.integers(0, 0xFFFF).filter(lambda c: not 0xD800 <= c <= 0xDFFF).map(lambda c: b"\\u%04x" % c),
    st.integers(0x10000, 0x10FFFF).map(_pair),
    st.integers(0xD800, 0xDFFF).map(lambda c: b"\\u%04x" % c),  # a lone surrogate escape
    st.integers(0, 0x1F).filter(lambda c: c != 0x0A).map(lambda c: bytes([c])),  # raw: not JSON
)
STRINGS = st.lists(PIECES, max_size=4).map(lambda pieces: b'"' + b"".join(pieces) + b'"')
EDGE_NUMBERS = [
    b"1e400", b"-1e400", b"1e-400", b"-0", b"1E5", b"1e38", b"3.5e38", b"1.7976931348623157e308",
    b"340282366920938463463374607431768211455", b"340282366920938463463374607431768211456",
    b"9223372036854775807", b"9223372036854775808", b"-9223372036854775809", b"18446744073709551616",
    b"1" + b"0" * 308, b"1" + b"0" * 309, b"0." + b"0" * 400 + b"1", b"1" * 60 + b".5e-3",
]  # fmt: skip
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
    st.integers(-(10**130), 10**130).map(lambda i: str(i).encode()),
    st.sampled_from(EDGE_NUMBERS),
)
LEAVES = st.one_of(NUMBERS, STRINGS, st.sampled_from([b"true", b"false", b"null"]))


def _object(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"{" + b",".join(key + b":" + value for key, value in pairs) + b"}"


VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]"),
        st.lists(st.tuples(STRINGS, inner), max_size=4).map(_object),
    ),
    max_leaves=12,
)
DEPTHS = [100, 254, 255, 256, 600, 1000, 1020, 1021, 1022, 1023, 1024, 1100, 2000]
DEEP = st.tuples(st.sampled_from(DEPTHS), LEAVES, st.booleans()).map(
    lambda t: (b"[" * t[0] + t[1] + b"]" * t[0]) if t[2] else (b'{"a":' * t[0] + t[1] + b"}" * t[0])
)
TYPED = st.one_of(NUMBERS, NUMBERS.map(lambda n: b'"' + n + b'"'), st.sampled_from([b'"NaN"', b'"-inf"']))


@st.composite
def objects(draw: st.DrawFn, typed: bool) -> bytes:
    pairs = draw(st.lists(st.tuples(STRINGS, st.one_of(VALUES, DEEP)), max_size=3))
    if typed:
        fields = draw(st.lists(st.sampled_from(["quantity", "price", "total", "revenue"]), unique=True))
        pairs += [(f'"{name}"'.encode(), draw(TYPED)) for name in fields]
    return _object(draw(st.permutations(pairs)))


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """A Segment track message whose id and objects hold hostile values."""
    pairs = [
        (b'"messageId"', b'"m-' + draw(STRINGS)[1:]),
        (b'"type"', b'"track"'),
        (b'"event"', draw(st.one_of(st.just(b'"Product Added"'), STRINGS))),
        (b'"userId"', draw(st.one_of(st.just(b'"u-1"'), STRINGS))),
        (b'"timestamp"', f'"{TIMESTAMP}"'.encode()),
        (b'"properties"', draw(objects(typed=True))),
    ]
    for name in draw(st.lists(st.sampled_from([b'"context"', b'"traits"']), unique=True)):
        pairs.append((name, draw(objects(typed=False))))
    return _object(pairs)


@pytest.mark.deep
@SETTINGS
@given(line=lines())
def test_either_path_gives_a_line_the_same_verdict_and_row(line: bytes) -> None:
    assert verdict(line, slow=False) == verdict(line, slow=True)


@SETTINGS
@given(line=lines())
def test_a_line_never_costs_its_file_or_its_neighbours_and_a_kept_one_is_stored_as_sent(line: bytes) -> None:
    result = run([good("before"), line, good("after")])
    assert result.lines == 3
    assert {"before", "after"} <= set(result.events["event_id"])
    kept = result.events.filter(pl.col("source_line") == 2)
    assert kept.height + result.quarantine.filter(pl.col("source_line") == 2).height == 1
    shallow = line.count(b"[") + line.count(b"{") < 200  # Python's == recurses
    if kept.height and shallow and b"ip" not in line and b"\\u" not in line:  # no IP to truncate
        assert orjson.loads(kept["properties"][0]) == orjson.loads(line)["properties"]


@pytest.mark.deep
@SETTINGS
@given(many=st.lists(lines(), min_size=1, max_size=25))
def test_a_file_of_hostile_lines_accounts_for_every_line(many: list[bytes]) -> None:
    result = run([*many, good("last")])
    assert result.lines == len(many) + 1
    assert "last" in set(result.events["event_id"])
    numbers = sorted([*result.events["source_line"], *result.quarantine["source_line"]])
    assert numbers == list(range(1, len(many) + 2))

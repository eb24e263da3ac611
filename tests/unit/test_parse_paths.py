"""One parse per line (#17): the fast path (the screen, then one Polars read) gives exactly the rows of
the slow one (every line judged by orjson first), and Polars' pitfalls cost no line its verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from transforms.ingest import parse
from transforms.ingest.files import FileResult, process_file
from transforms.ingest.group import process_files
from transforms.ingest.members import first_members
from transforms.ingest.parse import opens_with, split_lines
from transforms.ingest.screen import _QUOTED_BRACE, flagged_lines
from transforms.spec import MAX_LINE_BYTES

LANDED = datetime(2026, 3, 1, 12, tzinfo=UTC)
TIMESTAMP = "2026-03-01T11:00:00Z"


def run(data: bytes, *, line_by_line: bool = False) -> FileResult:
    return process_file(
        data,
        source_file="events/f.ndjson",
        landed_at=LANDED,
        ingested_at=LANDED,
        batch_id=1,
        line_by_line=line_by_line,
    )


def message(message_id: str, **fields: object) -> bytes:
    base = {"messageId": message_id, "type": "track", "event": "Viewed", "userId": "u-1"}
    return orjson.dumps({**base, "timestamp": TIMESTAMP, **fields})


def with_raw(message_id: str, field: bytes, value: bytes) -> bytes:
    """A message with `field` written as raw JSON text `value` (what no JSON library writes)."""
    return message(message_id)[:-1] + b"," + field + b":" + value + b"}"


def both_paths(data: bytes) -> tuple[FileResult, FileResult]:
    return run(data), run(data, line_by_line=True)


def assert_same(data: bytes) -> FileResult:
    fast, slow = both_paths(data)
    assert fast.lines == slow.lines
    assert_frame_equal(fast.events, slow.events)
    assert_frame_equal(fast.quarantine, slow.quarantine)
    return fast


# --- the verdicts of the two paths (regressions: old main accepted `"{}"` on its fast path)


def test_a_string_that_looks_like_an_object_is_wrong_type_on_either_path() -> None:
    lines = [
        message("a"),
        with_raw("b", b'"properties"', b'"{}"'),
        with_raw("c", b'"traits"', b'"{\\"a\\":1}"'),
    ]
    result = assert_same(b"\n".join(lines) + b"\n")
    assert result.events["event_id"].to_list() == ["a"]
    assert result.quarantine.select("source_line", "reason", "detail").rows() == [
        (2, "wrong_type", "properties must be an object, got str"),
        (3, "wrong_type", "traits must be an object, got str"),
    ]


def test_an_array_or_number_in_an_object_field_gets_the_line_by_line_detail() -> None:
    lines = [message("a"), with_raw("b", b'"context"', b"[1]"), with_raw("c", b'"properties"', b"7")]
    result = assert_same(b"\n".join(lines) + b"\n")
    assert result.quarantine.select("source_line", "detail").rows() == [
        (2, "context must be an object, got list"),
        (3, "properties must be an object, got int"),
    ]


def test_an_escaped_key_that_spells_an_object_field_is_judged_as_that_field() -> None:
    line = with_raw("b", b'"propert\\u0069es"', b'"{}"')
    result = assert_same(message("a") + b"\n" + line + b"\n")
    assert result.quarantine["detail"].to_list() == ["properties must be an object, got str"]


def given_twice(key: bytes, first: bytes, second: bytes) -> bytes:
    """A message giving `key` twice at its top level (raw JSON values), and only there."""
    name = orjson.loads(key)
    base = orjson.dumps({k: v for k, v in orjson.loads(message("d", anonymousId="a")).items() if k != name})
    return base[:-1] + b"," + key + b":" + first + b"," + key + b":" + second + b"}"


def padded_to(size: int, end: bytes = b"") -> bytes:
    """A good message of `size` bytes, then `end`."""
    base = message("p", properties={"pad": ""})
    return message("p", properties={"pad": "x" * (size - len(base))}) + end


def assert_all_paths(data: bytes) -> FileResult:
    """The rows of `data` on the fast path, line by line and in a commit group's pass: the same."""
    (group,) = assert_group_matches([("events/f.ndjson", data, LANDED)], 1 << 24)
    alone = assert_same(data)
    for ours, theirs in ((group.events, alone.events), (group.quarantine, alone.quarantine)):
        assert_frame_equal(ours.drop("batch_id"), theirs.drop("batch_id"))
    return group


def test_a_name_given_twice_is_read_as_polars_reads_it_on_every_path() -> None:
    """Regression (found by review): lines were judged on orjson's value (the last) and kept with Polars'
    (the first): an object then a string was wrong_type line by line and kept when read in one go; a
    user id given as an array then a string was kept as `["x"]`."""
    lines = [
        given_twice(b'"properties"', b'{"product_id":"p1"}', b'"x"'),
        given_twice(b'"context"', b'{"ip":"1.2.3.4"}', b"[1]"),
        given_twice(b'"userId"', b'["x"]', b'"u"'),
        given_twice(b'"properties"', b'{"product_id":"p1"}', b'{"product_id":"p2"}'),
        given_twice(b'"properties"', b'"x"', b'{"product_id":"p3"}'),
        given_twice(b'"propert\\u0069es"', b'{"product_id":"p4"}', b'"x"'),  # an escape spelling the name
        given_twice(b'"properties"', b'{"name":"t\\tb"}', b'{"name":"p6"}'),  # its objects written again
        given_twice(b'"traits"', b'{"a":1}', b'{"userId":"x","userId":"y"}'),  # nested names are no members
    ]
    result = assert_all_paths(b"\n".join(lines) + b"\n")
    assert result.quarantine.select("source_line", "reason", "detail").rows() == [
        (3, "wrong_type", "userId must be a string"),
        (5, "wrong_type", "properties must be an object, got str"),
    ]
    kept = result.events.select("source_line", "user_id", "product_id", "product_name").rows()
    assert kept == [
        (1, "u-1", "p1", None),
        (2, "u-1", None, None),
        (4, "u-1", "p1", None),
        (6, "u-1", "p4", None),
        (7, "u-1", None, "t\tb"),
        (8, "u-1", None, None),
    ]
    assert orjson.loads(result.events["properties"][4]) == {"name": "t\tb"}
    assert orjson.loads(result.events["traits"][5]) == {"a": 1}


@pytest.mark.parametrize(
    ("line", "first"),
    [
        (b'{"userId":"a","context":{"traits":{"userId":"b"}}}', "a"),  # nested: no member
        (b'{"userId":"a","userId":"b"}', "a"),
        (b'{ "userId" : "a" , "event":"userId", "userId" : "b" }', "a"),  # blanks; a value is no key
        (b'{"x":"\\",\\"userId\\":","userId":"a","userId":[1]}', "a"),  # punctuation inside strings
        (b'{"user\\u0049d":[{"a":"}"}],"userId":"b"}', [{"a": "}"}]),
    ],
)
def test_first_members_finds_the_first_value_of_a_top_level_name(line: bytes, first: object) -> None:
    message = orjson.loads(line)
    assert first_members(line, message, ["userId", "event"])["userId"] == first
    assert first_members(line, message, ["event"]) is message  # none repeated: nothing read again


def test_a_crlf_line_at_the_limit_is_read_on_every_path() -> None:
    """Regression (found by review): a CRLF file's CR counted against the limit (33025 bytes > 33024)."""
    lines = [padded_to(MAX_LINE_BYTES, b"\r"), padded_to(MAX_LINE_BYTES + 1, b"\r")]
    lines.append(padded_to(MAX_LINE_BYTES))
    result = assert_all_paths(b"\n".join(lines) + b"\n")
    assert result.events["source_line"].to_list() == [1, 3]
    assert result.quarantine.select("source_line", "reason", "detail").rows() == [
        (2, "line_too_long", f"{MAX_LINE_BYTES + 1} bytes > {MAX_LINE_BYTES}")
    ]


def test_an_event_name_of_whitespace_only_is_missing_as_an_empty_one_on_every_path() -> None:
    """Regression (found by review): a track named `"  "` was accepted into `events` on both paths, while
    one named `""` or not at all was quarantined missing_field. A name with blanks around it stays as sent."""
    unnamed = orjson.dumps({k: v for k, v in orjson.loads(message("d")).items() if k != "event"})
    lines = [message("a"), message("b", event=""), message("c", event=" "), unnamed]
    lines += [message("e", event="\t\r\n "), message("f", event=" Viewed ")]
    result = assert_all_paths(b"\n".join(lines) + b"\n")
    assert result.events.select("event_id", "event_name").rows() == [("a", "Viewed"), ("f", " Viewed ")]
    missing = ("missing_field", "event is required for track")
    assert result.quarantine.select("source_line", "reason", "detail").rows() == [
        (n, *missing) for n in (2, 3, 4, 5)
    ]


# --- Polars' pitfalls, each guarded


def test_one_bad_line_is_found_by_its_bytes_not_by_a_failed_read_of_the_file() -> None:
    lines = [message(f"m{i}") for i in range(1000)]
    lines[400] = lines[400][:-20]  # truncated
    lines[700] = b"\xff" + lines[700]
    lines[900] = b"[1]"
    data = b"\n".join(lines) + b"\n"
    assert flagged_lines(data, split_lines(data)) == {400, 700, 900}
    result = assert_same(data)
    assert result.events.height == 997
    assert result.quarantine.select("source_line", "reason").rows() == [
        (401, "invalid_json"),
        (701, "invalid_utf8"),
        (901, "not_an_object"),
    ]


def test_a_clean_file_flags_no_line() -> None:
    data = b"\n".join(message(f"m{i}", properties={"price": 1.5}) for i in range(200)) + b"\n"
    assert flagged_lines(data, split_lines(data)) == set()


def test_lone_surrogates_are_flagged_and_never_read_as_nul() -> None:
    lines = [message("a"), with_raw("b", b'"userId"', b'"\\ud800"'), with_raw("c", b'"userId"', b'"\\udbff"')]
    data = b"\n".join(lines) + b"\n"
    assert flagged_lines(data, split_lines(data)) == {1, 2}
    result = assert_same(data)
    assert result.events["user_id"].to_list() == ["u-1"]
    assert result.quarantine["reason"].to_list() == ["invalid_json", "invalid_json"]


def test_a_huge_number_in_a_nested_object_is_kept_as_a_double_that_reads_back() -> None:
    line = with_raw(
        "b", b'"properties"', b'{"a":{"b":[1e100, 100000000000000000000000000000000000000000000000000]}}'
    )
    result = assert_same(message("a") + b"\n" + line + b"\n")
    assert result.quarantine.height == 0
    text = result.events.filter(pl.col("event_id") == "b")["properties"][0]
    assert orjson.loads(text) == {"a": {"b": [1e100, 1e50]}}
    assert "0" * 39 not in text


# --- any mix of good and hostile lines: the same rows either way

GOOD = st.builds(
    message,
    st.text("abcdef0123", min_size=1, max_size=3),
    properties=st.one_of(st.none(), st.just({}), st.just({"price": 9.5, "quantity": 2, "ip": "1.2.3.4"})),
    context=st.one_of(st.none(), st.just({"ip": "203.0.113.9", "page": {"url": "https://x"}})),
)
RAW_VALUES = [
    b'"{}"', b'"{\\"a\\":1}"', b'"\\u007b}"', b'"x"', b"[1]", b"[]", b"1", b"1.5", b"true", b"null", b"{}",
    b'{"a":1e100}', b'{"a":' + b"1" * 45 + b"}", b'{"a":"\\ud800"}', b'{"a":"\\\\"}', b'{"a":"t\\tb"}',
]  # fmt: skip
OBJECT_KEYS = [b'"properties"', b'"traits"', b'"context"', b'"propert\\u0069es"']
STRING_VALUES = [b'"\\ud800"', b'"\\udc00x"', b'"\\ud83d\\ude00"', b"[1]", b"{}"]
STRING_KEYS = [b'"userId"', b'"messageId"', b'"type"', b'"user\\u0049d"']
NAME_VALUES = [*STRING_VALUES, b'"u"', b"null", b'"identify"', b'["x"]']
HOSTILE = st.one_of(
    st.builds(with_raw, st.just("h"), st.sampled_from(OBJECT_KEYS), st.sampled_from(RAW_VALUES)),
    st.builds(with_raw, st.just("s"), st.sampled_from(STRING_KEYS), st.sampled_from(STRING_VALUES)),
    GOOD.map(lambda line: line[: len(line) // 2]),  # truncated
    GOOD.map(lambda line: line + b"\r"),
    GOOD.map(lambda line: b" " + line),
    GOOD.map(lambda line: b"\xef\xbb\xbf" + line),  # a BOM inside the file
    GOOD.map(lambda line: line[:10] + b"\xff" + line[10:]),
    GOOD.map(lambda line: line[:-1] + b',"pad":"' + b"x" * 33000 + b'"}'),
    st.builds(padded_to, st.sampled_from([MAX_LINE_BYTES, MAX_LINE_BYTES + 1]), st.just(b"\r")),
    st.builds(given_twice, st.sampled_from(OBJECT_KEYS), *[st.sampled_from(RAW_VALUES)] * 2),
    st.builds(given_twice, st.sampled_from(STRING_KEYS), *[st.sampled_from(NAME_VALUES)] * 2),
    st.builds(message, st.just("e"), event=st.sampled_from(["", " ", "\t\r\n", " x "])),  # blank names
    st.sampled_from([b"", b" ", b"\r", b"{", b"}", b"{}", b"[1]", b'"x"', b"null", b"{,}", b"{}}"]),
)  # fmt: skip


@pytest.mark.deep
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(GOOD, HOSTILE), min_size=1, max_size=30), final_newline=st.booleans())
def test_fast_and_slow_paths_give_identical_events_and_quarantine_rows(
    lines: list[bytes], final_newline: bool
) -> None:
    assert_same(b"\n".join(lines) + (b"\n" if final_newline else b""))


# --- a commit group in one pass: each file's rows as `process_file` gives them


def assert_group_matches(named: list[tuple[str, bytes, datetime]], segment_bytes: int) -> list[FileResult]:
    together = process_files(named, ingested_at=LANDED, batch_id=3, segment_bytes=segment_bytes)
    for (name, data, at), result in zip(named, together, strict=True):
        alone = process_file(
            data, source_file=name, landed_at=at, ingested_at=LANDED, batch_id=3, segment_bytes=segment_bytes
        )
        assert (result.source_file, result.lines) == (alone.source_file, alone.lines)
        assert_frame_equal(result.events, alone.events)
        assert_frame_equal(result.quarantine, alone.quarantine)
    return together


def test_a_rejected_last_line_of_a_later_segment_quotes_its_own_raw_line() -> None:
    """Regression: the group took the raw text of a segment's last line from the next segment (its
    number is where the next one starts)."""
    lines = [message(f"m{n}", type="bogus") for n in range(40)]  # unknown_type: rejected after the read
    data = b"\n".join(lines) + b"\n"
    (result,) = assert_group_matches([("events/f.ndjson", data, LANDED)], 600)
    assert result.quarantine["raw"].to_list() == [line.decode() for line in lines]


def test_a_pass_reads_its_files_in_one_polars_call_and_each_keeps_its_own_repairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#17: one `read_ndjson` per pass, not per file; a later file's escaped text (written again from its
    own raw line), huge number (read again alone) and wrong-typed object keep their own line numbers."""
    reads: list[int] = []
    real_read = parse._read

    def counted(lines: list[bytes]) -> pl.DataFrame:
        reads.append(len(lines))
        return real_read(lines)

    monkeypatch.setattr(parse, "_read", counted)
    clean = [message(f"c{n}") for n in range(5)]
    odd = [
        message("tab", properties={"name": "t\tb"}),
        with_raw("huge", b'"properties"', b'{"a":' + b"1" * 45 + b"}"),
        with_raw("string", b'"propert\\u0069es"', b'"{}"'),
        message("last"),
    ]
    named = [
        (f"events/f{i}.ndjson", b"\n".join(lines) + b"\n", LANDED) for i, lines in enumerate([clean, odd])
    ]
    first, second = assert_group_matches(named, 1 << 24)
    assert reads[0] == 8  # the pass: 5 + 3 lines (the wrong-typed one is judged by the screen)
    assert first.events["source_line"].to_list() == [1, 2, 3, 4, 5]
    assert second.events["event_id"].to_list() == ["tab", "huge", "last"]
    assert second.events["source_line"].to_list() == [1, 2, 4]
    assert orjson.loads(second.events["properties"][0]) == {"name": "t\tb"}
    assert second.quarantine.select("source_line", "reason").rows() == [(3, "wrong_type")]


FILES = st.lists(st.lists(st.one_of(GOOD, GOOD, HOSTILE), max_size=12), min_size=1, max_size=5)


@pytest.mark.deep
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=FILES, segment_bytes=st.sampled_from([1 << 24, 600]))
def test_a_group_in_one_pass_gives_each_file_the_rows_of_process_file(
    files: list[list[bytes]], segment_bytes: int
) -> None:
    named = [
        (f"events/f{i}.ndjson", b"\n".join(lines) + b"\n", LANDED - timedelta(days=i))
        for i, lines in enumerate(files)
    ]
    assert_group_matches(named, segment_bytes)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64) | st.lists(st.sampled_from([b'"', b"{", b"}", b"a", b":"])).map(b"".join))
def test_the_quoted_brace_search_finds_exactly_the_quoted_braces(body: bytes) -> None:
    """The screen's regex for `"{` (faster than `in`, #17) answers as `b'"{' in body` does."""
    assert (_QUOTED_BRACE.search(body) is not None) == (b'"{' in body)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.none() | st.text(max_size=20) | st.sampled_from(["{", "[", "{}", "|", "\\", "z{", "ü"]))
)
def test_opens_with_answers_as_starts_with(texts: list[str | None]) -> None:
    """`opens_with`'s two compares (cheaper than `str.starts_with`, #17) give what it gives, nulls too."""
    series = pl.Series(texts, dtype=pl.String)
    for char in ("{", "["):
        assert opens_with(series, char).to_list() == series.str.starts_with(char).to_list()

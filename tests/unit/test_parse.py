"""Line-level parsing and validation of landed files: every reason code, and the dirt around lines."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import polars as pl
import pytest

from transforms.ingest.files import process_file
from transforms.ingest.parse import parse_lines
from transforms.spec import MAX_LINE_BYTES, Reason

LANDED = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def message(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "messageId": "m-1",
        "type": "track",
        "event": "Product Viewed",
        "userId": "u-1",
        "timestamp": "2026-11-22T10:00:00.123Z",
        "properties": {"product_id": "p-1", "price": 12.5},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def line(**overrides: object) -> bytes:
    return orjson.dumps(message(**overrides))


def run(data: bytes) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    result = process_file(
        data, source_file="events/f.ndjson", landed_at=LANDED, ingested_at=LANDED, batch_id=1
    )
    return result.events, result.quarantine, result.lines


GOOD = line(messageId="good")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b'{"messageId": "x", "type": "tra', Reason.INVALID_JSON),
        (b'{"messageId": "x\xff\xfe", "type": "track"}', Reason.INVALID_UTF8),
        (b"[1, 2, 3]", Reason.NOT_AN_OBJECT),
        (line(messageId="x", properties={"blob": "x" * MAX_LINE_BYTES}), Reason.LINE_TOO_LONG),
        (line(messageId=None), Reason.MISSING_FIELD),
        (line(messageId="x", userId=None), Reason.MISSING_FIELD),
        (line(messageId="x", event=None), Reason.MISSING_FIELD),
        (line(messageId="x", timestamp=None), Reason.MISSING_FIELD),
        (line(messageId="x", properties="not an object"), Reason.WRONG_TYPE),
        (line(messageId="x", properties=[1, 2]), Reason.WRONG_TYPE),
        (line(messageId="x", context=5), Reason.WRONG_TYPE),
        (line(messageId={"nested": "id"}), Reason.WRONG_TYPE),
        (line(messageId="x", type="bogus"), Reason.UNKNOWN_TYPE),
        (line(messageId="x", timestamp="yesterday"), Reason.INVALID_TIMESTAMP),
        (line(messageId="x", timestamp="2026-11-29T10:00:00Z"), Reason.TIMESTAMP_OUT_OF_RANGE),
        (line(messageId="x", timestamp="1970-01-01T00:00:00Z"), Reason.TIMESTAMP_OUT_OF_RANGE),
    ],
)
def test_each_bad_line_is_quarantined_with_its_reason_and_the_good_lines_survive(
    bad: bytes, reason: Reason
) -> None:
    events, quarantine, lines = run(GOOD + b"\n" + bad + b"\n" + line(messageId="after") + b"\n")
    assert events["event_id"].to_list() == ["good", "after"]
    assert quarantine.select("source_line", "reason").rows() == [(2, str(reason))]
    assert quarantine["detail"][0]
    assert lines == 3


def test_quarantine_keeps_a_bounded_raw_copy() -> None:
    big = line(messageId="x", properties={"blob": "y" * 100_000})
    _, quarantine, _ = run(big + b"\n")
    assert quarantine["reason"].to_list() == [Reason.LINE_TOO_LONG]
    assert 0 < len(quarantine["raw"][0]) <= 2048


def test_bom_crlf_blank_lines_and_a_truncated_last_line() -> None:
    data = (
        b"\xef\xbb\xbf"
        + line(messageId="a")
        + b"\r\n\r\n   \n"
        + line(messageId="b")
        + b"\r\n"
        + b'{"messageId":"c'
    )
    events, quarantine, lines = run(data)
    assert events.select("event_id", "source_line").rows() == [("a", 1), ("b", 4)]
    assert quarantine.select("source_line", "reason").rows() == [(5, "invalid_json")]
    assert lines == 3  # blank lines are skipped and not counted


def test_a_clean_file_and_the_same_lines_beside_a_bad_one_give_the_same_events() -> None:
    lines = [line(messageId=f"m-{i}", properties={"product_id": f"p-{i}", "price": i}) for i in range(50)]
    clean, _, _ = run(b"\n".join(lines) + b"\n")
    dirty, quarantine, _ = run(b"\n".join([*lines[:25], b"{oops", *lines[25:]]) + b"\n")
    columns = [c for c in clean.columns if c != "source_line"]
    assert clean.select(columns).equals(dirty.select(columns))
    assert quarantine["source_line"].to_list() == [26]


def test_parse_lines_in_small_chunks_numbers_lines_across_chunks() -> None:
    lines = [line(messageId=f"m-{i}") for i in range(10)]
    lines[7] = b"not json"
    parsed = parse_lines(b"\n".join(lines), chunk_lines=3)
    assert parsed.messages["source_line"].to_list() == [1, 2, 3, 4, 5, 6, 7, 9, 10]
    assert parsed.rejects["source_line"].to_list() == [8]


def test_clock_skew_is_corrected_from_sent_and_received_times() -> None:
    skewed = line(
        timestamp="2026-11-22T10:05:00.000Z",
        sentAt="2026-11-22T10:06:00.000Z",
        receivedAt="2026-11-22T10:01:00.000Z",
    )
    events, _, _ = run(skewed + b"\n")
    assert events["event_ts"][0] == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert events["event_date"][0].isoformat() == "2026-11-22"


def test_timestamps_with_offsets_and_without_fraction_are_read() -> None:
    events, quarantine, _ = run(line(timestamp="2026-11-22T12:00:00+02:00") + b"\n")
    assert quarantine.height == 0
    assert events["event_ts"][0] == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_ecommerce_properties_become_typed_columns_and_unknown_ones_stay_in_properties() -> None:
    props = {
        "product_id": "p-9",
        "price": "19.90",
        "quantity": 2,
        "cart_id": "c-1",
        "colour": "red",
        "products": [],
    }
    events, _, _ = run(line(properties=props, context={"timezone": "Asia/Tokyo", "locale": "ja-JP"}) + b"\n")
    row = events.row(0, named=True)
    assert (row["product_id"], row["price"], row["quantity"], row["cart_id"]) == ("p-9", 19.9, 2, "c-1")
    assert (row["timezone"], row["locale"]) == ("Asia/Tokyo", "ja-JP")
    assert orjson.loads(row["properties"])["colour"] == "red"


def test_a_string_that_looks_like_an_object_is_found_by_the_careful_path() -> None:
    tricky = line(messageId="x", properties="{not really an object}")
    events, quarantine, _ = run(GOOD + b"\n" + tricky + b"\n")
    assert events["event_id"].to_list() == ["good"]
    assert quarantine.select("source_line", "reason").rows() == [(2, "wrong_type")]


def test_an_empty_file_has_no_lines() -> None:
    events, quarantine, lines = run(b"")
    assert (events.height, quarantine.height, lines) == (0, 0, 0)


@pytest.mark.parametrize(
    ("timestamp", "detail"),
    [
        ("2026-11-29T10:00:00Z", "event time more than 24 h after landing"),
        ("1970-01-01T00:00:00Z", "event time before 2000-01-01"),  # said "after landing" (found by QA)
        ("0001-01-01T00:00:00Z", "event time before 2000-01-01"),
    ],
)
def test_an_event_time_out_of_range_says_which_bound_it_crosses(timestamp: str, detail: str) -> None:
    _, quarantine, _ = run(line(messageId="x", timestamp=timestamp) + b"\n")
    assert quarantine.select("reason", "detail").rows() == [(str(Reason.TIMESTAMP_OUT_OF_RANGE), detail)]

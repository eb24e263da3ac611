"""Segment's 32 KB per message, measured as the client sent the message: the collector's stamps are not
counted, and the ingest's landed-line limit leaves room for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from segment.analytics.consumer import MAX_MSG_SIZE as LIMIT  # 32768: Segment's client's limit

from tests.unit.test_collector import AUTH, config, landed, message, post
from transforms.ingest.parse import classify_line
from transforms.spec import MAX_LINE_BYTES, Reason

SENT_AT = "2026-11-20T09:30:00.123456+00:00"  # as Segment's Python library writes a batch's sentAt


def sized(size: int, measure: Any = orjson.dumps, *, named: bool = True) -> dict[str, Any]:
    """A message of exactly `size` bytes as `measure` writes it (by default compact, as JSON.stringify
    writes it); without a messageId unless `named`."""
    padded = message(properties={"pad": ""})
    if not named:
        del padded["messageId"]  # the collector adds one: the longest stamps
    padded["properties"]["pad"] = "x" * (size - len(measure(padded)))
    assert len(measure(padded)) == size
    return padded


@pytest.mark.parametrize(("size", "taken"), [(LIMIT, True), (LIMIT + 1, False)])
def test_a_message_is_measured_as_its_client_sent_it_not_as_stamped(
    tmp_path: Path, size: int, taken: bool
) -> None:
    unnamed = sized(size, named=False)
    body = b'{"batch":[' + orjson.dumps(unnamed) + b"," + orjson.dumps(message(2)) + b'],"sentAt":"'
    response = post(config(tmp_path), "/v1/batch", body + SENT_AT.encode() + b'"}', **AUTH)
    assert response.status_code == 200
    if taken:
        assert "rejected" not in response.json()
    else:
        assert response.json()["rejected"] == [
            {"index": 0, "reason": "line_too_long", "detail": f"{size} bytes > {LIMIT}"}
        ]
    assert len(landed(tmp_path)) == (2 if taken else 1)


def test_the_ingest_takes_the_longest_message_the_collector_lands(tmp_path: Path) -> None:
    # A 32 KB message with every stamp the collector adds: a new messageId (51 bytes), receivedAt (40),
    # the Python library's sentAt (44) and a public key's `lakemailKeyKind` (27) are 162 bytes, within the
    # ingest's margin.
    body = {"batch": [sized(LIMIT, named=False)], "sentAt": SENT_AT}
    assert post(config(tmp_path), "/v1/batch", body, **AUTH).json() == {"success": True}
    (landed_file,) = (tmp_path / "events").iterdir()
    (line,) = landed_file.read_bytes().splitlines()
    assert len(line) == LIMIT + 162 <= MAX_LINE_BYTES
    assert classify_line(line) is None  # not quarantined as too long
    over = line[:-1] + b',"x":"' + b"y" * (MAX_LINE_BYTES - len(line) - 6) + b'"}'
    assert (len(over), classify_line(over)) == (
        MAX_LINE_BYTES + 1,
        (Reason.LINE_TOO_LONG, f"{len(over)} bytes > {MAX_LINE_BYTES}"),
    )


def test_a_message_segments_python_library_sends_at_its_limit_is_taken(tmp_path: Path) -> None:
    # analytics-python measures json.dumps (", " and ": " separators) and sends those very bytes.
    at_limit = sized(LIMIT, lambda m: json.dumps(m).encode())
    body = json.dumps({"batch": [at_limit], "sentAt": SENT_AT, "writeKey": "wk-test"}).encode()
    assert post(config(tmp_path), "/v1/batch", body).json() == {"success": True}
    assert landed(tmp_path)[0]["properties"] == at_limit["properties"]


def test_a_batch_sent_at_longer_than_the_margin_refuses_only_a_message_it_pushes_over(
    tmp_path: Path,
) -> None:
    long_sent_at = "2026-11-20T09:30:00Z" + " " * 1000  # copied into each message as the client wrote it
    body = {"batch": [sized(LIMIT), message(2)], "sentAt": long_sent_at}
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    [refused] = response.json()["rejected"]
    assert (refused["index"], refused["reason"]) == (0, "line_too_long")
    assert "sentAt" in refused["detail"]
    assert [m["sentAt"] for m in landed(tmp_path)] == [long_sent_at]


def test_a_message_carrying_its_own_stamps_lands_with_the_collectors(tmp_path: Path) -> None:
    own = message(1, sentAt="client", receivedAt="client", messageId="")
    response = post(config(tmp_path), "/v1/batch", {"batch": [own], "sentAt": SENT_AT}, **AUTH)
    assert response.json() == {"success": True}
    (line,) = landed(tmp_path)
    assert (line["sentAt"], line["receivedAt"]) == (SENT_AT, "2026-11-20T09:30:00.123Z")
    assert len(line["messageId"]) == 36
    assert list(line) == [*own, "lakemailKeyKind"]  # replaced where they were, no key twice

"""One message of a batch that orjson cannot take (a lone surrogate escape, nesting past its limits, a
number beyond a double) is refused by itself: the others land, as the ingest reads them. A body that is
not JSON is still refused whole (services/collector/lenient.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.collector.lenient import Unreadable, read_leniently
from services.collector.wire import MAX_BATCH_MESSAGES, WireError, take
from services.collector.write_keys import WriteKeys
from tests.hostile_lines import KEPT
from tests.unit.test_collector import AUTH, config, landed, post
from transforms.ingest.files import process_file

KEYS = WriteKeys(("wk",))  # the key a request's Authorization header names

GOOD = rb'{"type":"track","event":"Good","userId":"u","timestamp":"2026-11-20T09:29:59Z"}'
# JSON.stringify of a string cut mid-emoji: QA's batch
SURROGATE = rb'{"type":"track","event":"T","userId":"u","properties":{"name":"Caf\ud83d"}}'


def bad(properties: bytes) -> bytes:
    return rb'{"type":"track","event":"T","userId":"u","properties":' + properties + b"}"


def nested(depth: int) -> bytes:
    return bad(b'{"deep":' + b"[" * depth + b"]" * depth + b"}")


def batch(*messages: bytes) -> bytes:
    return b'{"batch":[' + b",".join(messages) + b"]}"


def ingested(tmp_path: Path) -> tuple[list[str | None], int]:
    """(event names, quarantined lines) of the landed files read by the ingest."""
    data = b"".join(f.read_bytes() for f in sorted((tmp_path / "events").iterdir()))
    now = datetime.now(UTC)
    result = process_file(data, source_file="events/f.ndjson", landed_at=now, ingested_at=now, batch_id=1)
    return result.events["event_name"].to_list(), result.quarantine.height


BAD = [
    ("lone_surrogate", SURROGATE, "surrogates not allowed"),
    ("nested_2000", nested(2000), "nested too deep"),  # past orjson's 1024 levels: it cannot read the body
    ("nested_300", nested(300), "Recursion limit"),  # orjson reads it but writes 254 levels at most
    ("number_1e400", bad(b'{"n": 1e400}'), "beyond a double"),
]


@pytest.mark.parametrize(("refused", "why"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_message_orjson_cannot_take_is_refused_alone_and_the_others_land(
    tmp_path: Path, refused: bytes, why: str
) -> None:
    response = post(config(tmp_path), "/v1/batch", batch(GOOD, refused), **AUTH)
    assert response.status_code == 200 and response.json()["success"] is True
    (rejected,) = response.json()["rejected"]
    assert (rejected["index"], rejected["reason"]) == (1, "invalid_json") and why in rejected["detail"]
    assert [m["event"] for m in landed(tmp_path)] == ["Good"]
    assert ingested(tmp_path) == (["Good"], 0)  # valid UTF-8 NDJSON the ingest reads whole


def test_qas_batch_lands_its_good_message(tmp_path: Path) -> None:
    body = rb'{"batch":[{"type":"track","event":"Good","userId":"u"},' + SURROGATE + b"]}"
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    assert response.status_code == 200
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [(1, "invalid_json")]
    assert [(m["event"], m["userId"]) for m in landed(tmp_path)] == [("Good", "u")]


def test_a_batch_of_only_such_messages_is_refused_with_each_reason(tmp_path: Path) -> None:
    response = post(config(tmp_path), "/v1/batch", batch(SURROGATE, nested(2000)), **AUTH)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [
        (0, "invalid_json"),
        (1, "invalid_json"),
    ]
    assert landed(tmp_path) == []


NOT_JSON = [
    ("cut", b'{"batch": ['),
    ("surrogate_then_cut", batch(GOOD, SURROGATE)[:-1]),
    ("surrogate_and_a_bad_message", batch(GOOD, SURROGATE, b'{"event": tru}')),
    ("surrogate_and_nan", batch(SURROGATE, b'{"n": NaN}')),
    ("surrogate_and_trailing_text", batch(GOOD, SURROGATE) + b" x"),
    ("surrogate_and_a_trailing_comma", batch(GOOD, SURROGATE, b"")),
    ("deep_outside_the_batch", b'{"batch": [' + GOOD + b'], "x": ' + b"[" * 2000 + b"]" * 2000 + b"}"),
    ("deep_and_unclosed", b'{"batch": [' + GOOD + b"," + b"[" * 2000 + b'"\\"' * 1000 + b"]}"),
    ("not_utf8", b'{"batch": [{"event": "\xff"}, ' + SURROGATE + b"]}"),
    ("surrogate_in_a_list", b'["\\ud83d"]'),
]


@pytest.mark.parametrize("body", [n[1] for n in NOT_JSON], ids=[n[0] for n in NOT_JSON])
def test_a_body_that_is_not_json_is_still_refused_whole(tmp_path: Path, body: bytes) -> None:
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    assert "rejected" not in response.json() and landed(tmp_path) == []


def test_a_lone_surrogate_in_the_body_write_key_is_an_unknown_key(tmp_path: Path) -> None:
    body = b'{"writeKey": "\\ud83d", "batch": [' + GOOD + b"]}"
    response = post(config(tmp_path), "/v1/batch", body)  # the key is only in the body
    assert (response.status_code, response.json()["code"]) == (401, "invalid_write_key")


def test_read_leniently_reads_what_orjson_reads_as_orjson_does() -> None:
    # The values a batch lands must not depend on whether another message sent it down this path
    # (big integers, huge and tiny doubles, escapes, non-BMP characters).
    for hostile in KEPT:
        body = batch(GOOD, hostile.line)
        wanted: Any = orjson.loads(body)
        try:
            orjson.dumps(wanted)
        except orjson.JSONEncodeError:
            continue  # too deep to land: refused on either path
        assert read_leniently(body) == wanted, hostile.name
    assert read_leniently(batch(GOOD, nested(2000)))["batch"][1] == Unreadable("nested too deep to read")


def test_a_batch_over_the_message_bound_is_refused_before_the_rest_is_read() -> None:
    # orjson refuses the body, so it was read message by message to its end (255,000 of them in 0.4 s)
    # before the bound refused it, and before a body's key was checked. Past the bound this body is not
    # even JSON: read to its end it is refused as such, not for its size.
    body = b'{"batch":[' + b"1," * (MAX_BATCH_MESSAGES + 1) + rb'"\ud800", {]}'
    with pytest.raises(WireError) as refused:
        take(body, None, None, "2026-11-20T09:30:00.000Z", KEYS.kind, "wk")
    assert (refused.value.status, refused.value.reason) == (400, "batch_too_large")


def test_a_batch_at_the_message_bound_is_still_read_leniently() -> None:
    body = batch(*[GOOD] * (MAX_BATCH_MESSAGES - 1), SURROGATE)
    kept = take(body, None, None, "2026-11-20T09:30:00.000Z", KEYS.kind, "wk")
    assert (len(kept.lines), [r["index"] for r in kept.rejected]) == (MAX_BATCH_MESSAGES - 1, [9_999])

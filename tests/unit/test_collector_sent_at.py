"""A request's `sentAt` that is no timestamp costs no message: the collector lands the messages without
it (no skew correction, as Segment does) and counts them; the ingest takes every one of them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.test_collector import AUTH, NOW, config, landed, message, post, serve
from transforms.ingest.files import process_file

IGNORED = "lakemail_collector_ignored_sent_at_messages_total"


def ingested(tmp_path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The landed files through the real ingest: (events, quarantine reasons)."""
    data = b"".join(f.read_bytes() for f in sorted((tmp_path / "events").iterdir()))
    result = process_file(data, source_file="events/f.ndjson", landed_at=NOW, ingested_at=NOW, batch_id=1)
    return result.events.to_dicts(), result.quarantine["reason"].to_list()


@pytest.mark.parametrize("sent_at", ["yesterday", 12345, "", True, {"at": "2026-11-20T09:30:00Z"}])
def test_a_batch_sent_at_that_is_no_timestamp_lands_no_message_quarantined(
    tmp_path: Path, sent_at: object
) -> None:
    own = message(2, sentAt="2026-11-20T09:29:59.500Z")  # a message's own sentAt stays when the batch's goes
    body = {"batch": [message(1), own], "sentAt": sent_at}
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert [line.get("sentAt") for line in landed(tmp_path)] == [None, "2026-11-20T09:29:59.500Z"]
    events, quarantined = ingested(tmp_path)
    assert quarantined == []
    assert [e["event_id"] for e in events] == ["~public:m-1", "~public:m-2"]  # a public key's: its own ids
    assert events[0]["sent_at"] is None
    assert events[0]["event_ts"] == datetime(2026, 11, 20, 9, 29, 59, tzinfo=UTC)  # the client's, uncorrected


def test_a_one_message_body_with_a_sent_at_that_is_no_timestamp_is_kept(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert post(cfg, "/v1/track", message(1, sentAt="soon"), **AUTH).status_code == 200
    assert post(cfg, "/v1/track", message(2, sentAt="2026-11-20T09:30:00Z"), **AUTH).status_code == 200
    assert [line.get("sentAt") for line in landed(tmp_path)] == [None, "2026-11-20T09:30:00Z"]
    events, quarantined = ingested(tmp_path)
    assert (quarantined, len(events)) == ([], 2)
    assert events[1]["sent_at"] == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)  # a good one still corrects


def test_the_messages_landed_without_their_sent_at_are_counted(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> str:
        for sent_at in ("yesterday", "2026-11-20T09:30:00Z", "2026-11-20"):
            body = {"batch": [message(1), message(2), message(3)], "sentAt": sent_at}
            assert (await client.post("/v1/batch", json=body, headers=AUTH)).status_code == 200
        one = message(4, sentAt="soon")
        assert (await client.post("/v1/track", json=one, headers=AUTH)).status_code == 200
        return (await client.get("/metrics")).text

    metrics = serve(config(tmp_path), scenario)
    assert f"{IGNORED} 4.0" in metrics.splitlines()  # three of a batch and one of its own


def test_a_message_sent_at_that_is_no_timestamp_goes_when_the_batch_has_none(tmp_path: Path) -> None:
    """A batch without a usable `sentAt` keeps each message's own one when it is a timestamp."""
    batch = [message(1, sentAt="later"), message(2, sentAt="2026-11-20T09:30:00Z"), message(3, sentAt=None)]
    for n, sent_at in enumerate((None, "never")):
        body = {"batch": [{**m, "messageId": f"{m['messageId']}-{n}"} for m in batch], "sentAt": sent_at}
        assert post(config(tmp_path), "/v1/batch", body, **AUTH).status_code == 200
    lines = landed(tmp_path)
    assert [line.get("sentAt") for line in lines] == [None, "2026-11-20T09:30:00Z", None] * 2
    events, quarantined = ingested(tmp_path)
    assert (quarantined, len(events)) == ([], 6)


def test_a_batch_of_distinct_own_sent_ats_is_read_in_one_parse_not_one_a_message(tmp_path: Path) -> None:
    # One parse a value took 0.7 ms for one that is no timestamp: 10,000 distinct ones in a 200 KB
    # batch held the collector's event loop for 7 s. They are read together now.
    batch: list[dict[str, Any]] = [{"sentAt": f"later {n}"} for n in range(9_990)]
    batch += [message(n, sentAt=f"2026-11-20T09:29:{n:02d}Z") for n in range(10)]
    started = time.monotonic()
    response = post(config(tmp_path), "/v1/batch", {"batch": batch}, **AUTH)
    took = time.monotonic() - started
    assert (response.status_code, response.json()) == (200, {"success": True})
    lines = landed(tmp_path)
    assert [line.get("sentAt") for line in lines[-11:]] == [None] + [
        f"2026-11-20T09:29:{n:02d}Z" for n in range(10)
    ]
    assert sum("sentAt" in line for line in lines) == 10
    assert took < 3.0, f"{took:.1f} s"


@pytest.mark.parametrize("own", [["2026-11-20T09:30:00Z"], {"at": "2026-11-20T09:30:00Z"}, 12345, False])
def test_a_message_sent_at_that_is_a_list_or_an_object_goes_not_the_request(
    tmp_path: Path, own: object
) -> None:
    # A list or an object was looked up in the set of usable sentAts: TypeError, a 500 for the batch.
    body = {"batch": [message(1, sentAt=own), message(2)]}
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert [("sentAt" in line, line["messageId"]) for line in landed(tmp_path)] == [
        (False, "m-1"),
        (False, "m-2"),
    ]
    events, quarantined = ingested(tmp_path)
    assert (quarantined, len(events)) == ([], 2)

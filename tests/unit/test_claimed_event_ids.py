"""A public write key's message can claim no trusted message's event id (found by review: the ingest keeps
one event per id, and an id was the messageId as sent, so a browser could post a harmless `page` as
`unsubscribe-<send_id>`, an id computable from public facts, and the shopper's real unsubscribe was then
dropped as its duplicate; so with any id a server-side source would use later). A message the collector
marked (any `lakemailKeyKind`) has `~public:` and its messageId, a trusted one whose own id starts with
`~` has `~trusted:` and it, every other id is its messageId: the same on every ingest path, whatever else
a pass holds (and `event_id_of`, for readers of landed lines), and each kind's retries are still one event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from transforms.ingest.files import BatchRows, FileResult, assemble_batch, process_file
from transforms.ingest.group import process_files
from transforms.ingest.trust import event_id_of

LANDED = datetime(2026, 3, 1, 12, tzinfo=UTC)


def line(message_id: str, kind: Any = None, event: str = "Product Viewed") -> bytes:
    marked = {} if kind is None else {"lakemailKeyKind": kind}
    message = {"type": "track", "event": event, "userId": "u-1", "messageId": message_id, **marked}
    return orjson.dumps({**message, "timestamp": "2026-03-01T11:00:00Z"})


# (file, the event ids of its lines): every mark the ingest may read, ids in and out of the namespace
FILES = {
    "public": (
        [line("unsubscribe-s-1", "public"), line("~x", "public"), line("m-1", ""), line("m-6", False)],
        ["~public:unsubscribe-s-1", "~public:~x", "~public:m-1", "~public:m-6"],
    ),
    "trusted": (
        [line("unsubscribe-s-1", event="Unsubscribed"), line("m-1"), line("~public:m-2"), line("~x")],
        ["unsubscribe-s-1", "m-1", "~trusted:~public:m-2", "~trusted:~x"],
    ),
    "mixed": (
        [line("m-2", "public"), line("~public:m-2"), line("m-3"), line("~y", "anything"), line("m-3", "p")],
        ["~public:m-2", "~trusted:~public:m-2", "m-3", "~public:~y", "~public:m-3"],
    ),
}


def data(name: str) -> bytes:
    return b"\n".join(FILES[name][0]) + b"\n"


def single(name: str, *, line_by_line: bool) -> FileResult:
    return process_file(
        data(name),
        source_file=f"events/{name}.ndjson",
        landed_at=LANDED,
        ingested_at=LANDED,
        batch_id=1,
        line_by_line=line_by_line,
    )


@pytest.mark.parametrize("name", FILES)
def test_every_ingest_path_gives_the_same_event_ids(name: str) -> None:
    fast, slow = single(name, line_by_line=False), single(name, line_by_line=True)
    # the group path: each file in one pass with all the others (its marks beside other kinds of file)
    grouped = process_files(
        [(f"events/{n}.ndjson", data(n), LANDED) for n in FILES], ingested_at=LANDED, batch_id=1
    )
    [group] = [r for r in grouped if r.source_file == f"events/{name}.ndjson"]
    assert fast.events["event_id"].to_list() == FILES[name][1]
    messages = [orjson.loads(sent) for sent in FILES[name][0]]  # and as readers of landed lines make them
    assert [event_id_of(m["messageId"], m.get("lakemailKeyKind")) for m in messages] == FILES[name][1]
    for other in (slow, group):
        assert_frame_equal(fast.events, other.events)
        assert_frame_equal(fast.quarantine, other.quarantine)


def batch(lines: list[bytes], seen_ids: pl.Series) -> BatchRows:
    [result] = process_files([("events/f.ndjson", b"\n".join(lines), LANDED)], ingested_at=LANDED, batch_id=1)
    return assemble_batch([result], seen_ids)


def test_retries_are_one_event_per_kind_and_a_public_id_claims_no_trusted_one() -> None:
    public, trusted = line("unsubscribe-s-1", "public"), line("unsubscribe-s-1", event="Unsubscribed")
    first = batch([public, public], pl.Series("event_id", [], dtype=pl.String))  # the claim, retried
    assert first.events["event_id"].to_list() == ["~public:unsubscribe-s-1"]
    assert first.counts.select("accepted", "duplicates").row(0) == (1, 1)
    later = batch([trusted, public, trusted], first.events["event_id"])  # the real one, retried
    assert later.events.select("event_id", "event_name").rows() == [("unsubscribe-s-1", "Unsubscribed")]
    assert later.counts.select("accepted", "duplicates").row(0) == (1, 2)

"""What Segment's official clients send, as the ingest must take it (issue 14, ingest level).

Message types beyond track/identify/page, strings that look like JSON, timestamps in every form Segment
accepts, `originalTimestamp` and `sentAt`, batch envelopes, and `context` kept with the IP truncated.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest

from transforms.ingest.events import identity_edges
from transforms.ingest.files import assemble_batch, process_file
from transforms.schema import EVENTS_SCHEMA
from transforms.spec import Reason

LANDED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def message(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "messageId": "m-1",
        "type": "track",
        "event": "Product Viewed",
        "userId": "u-1",
        "timestamp": "2026-11-30T10:00:00.000Z",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def run(*messages: Mapping[str, object] | bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = b"\n".join(m if isinstance(m, bytes) else orjson.dumps(m) for m in messages) + b"\n"
    result = process_file(
        data, source_file="events/f.ndjson", landed_at=LANDED, ingested_at=LANDED, batch_id=1
    )
    assert result.events.height + result.quarantine.height == result.lines
    return result.events, result.quarantine


def one(**fields: object) -> dict[str, Any]:
    events, quarantine = run(message(**fields))
    assert quarantine.height == 0, quarantine.select("reason", "detail").rows()
    return events.row(0, named=True)


def reasons(*messages: Mapping[str, object] | bytes) -> list[tuple[int, str]]:
    return run(*messages)[1].select("source_line", "reason").rows()


# --- 1. screen, group and alias ---------------------------------------------------------------------


def test_screen_group_and_alias_are_accepted_with_their_own_fields() -> None:
    screen = one(type="screen", event=None, name="Home", category="Feed", properties={"Feed Type": "private"})
    assert (screen["event_type"], screen["page_name"], screen["page_category"]) == ("screen", "Home", "Feed")
    assert orjson.loads(screen["properties"]) == {"Feed Type": "private"}
    group = one(type="group", event=None, groupId="0e8c78ea9d97a7b8185e8632", traits={"name": "Initech"})
    assert (group["event_type"], group["group_id"]) == ("group", "0e8c78ea9d97a7b8185e8632")
    assert orjson.loads(group["traits"]) == {"name": "Initech"}
    alias = one(type="alias", event=None, previousId="anon-7", userId="507f191e81")
    assert (alias["event_type"], alias["previous_id"], alias["user_id"]) == ("alias", "anon-7", "507f191e81")


def test_page_name_and_category_are_kept() -> None:
    page = one(
        type="page", event=None, name="Home", category="Docs", properties={"url": "https://x.example/"}
    )
    assert (page["page_name"], page["page_category"], page["url"]) == ("Home", "Docs", "https://x.example/")


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"type": "alias", "event": None, "previousId": None}, "previousId"),
        (
            {"type": "alias", "event": None, "previousId": "a-1", "userId": None, "anonymousId": "a-2"},
            "userId",
        ),
        ({"type": "group", "event": None}, "groupId"),
    ],
)
def test_alias_and_group_without_their_ids_are_missing_fields(fields: dict[str, object], detail: str) -> None:
    _, quarantine = run(message(**fields))
    assert quarantine["reason"].to_list() == [Reason.MISSING_FIELD]
    assert detail in quarantine["detail"][0]


def test_alias_links_previous_id_to_user_id_like_an_identify() -> None:
    events, _ = run(
        message(messageId="a", type="alias", event=None, previousId="anon-1", userId="u-1"),
        message(messageId="i", type="identify", event=None, anonymousId="anon-2", userId="u-2"),
        message(messageId="t", anonymousId="anon-3", userId=None),
    )
    edges = identity_edges(events)
    assert edges.select("anonymous_id", "user_id").rows() == [("anon-1", "u-1"), ("anon-2", "u-2")]


def test_an_alias_from_analytics_js_links_both_its_ids() -> None:
    """analytics.js sends the browser's anonymousId as previousId and as anonymousId: one edge."""
    events, _ = run(
        message(type="alias", event=None, previousId="anon-1", anonymousId="anon-1", userId="u-1"),
    )
    assert identity_edges(events).select("anonymous_id", "user_id").rows() == [("anon-1", "u-1")]


# --- 2. a string is a string, whatever its first character ------------------------------------------


@pytest.mark.parametrize(
    ("fields", "column", "value"),
    [
        ({"event": "[Promo] Banner Clicked"}, "event_name", "[Promo] Banner Clicked"),
        ({"event": "{curly} Clicked"}, "event_name", "{curly} Clicked"),
        ({"userId": "[42]"}, "user_id", "[42]"),
        ({"anonymousId": "{a}"}, "anonymous_id", "{a}"),
        ({"messageId": "[m-1]"}, "event_id", "[m-1]"),
        ({"type": "page", "event": None, "name": "[Sale] Home"}, "page_name", "[Sale] Home"),
        ({"type": "alias", "event": None, "previousId": "{anon}"}, "previous_id", "{anon}"),
    ],
)
def test_a_string_that_begins_with_a_bracket_is_a_string(
    fields: dict[str, object], column: str, value: str
) -> None:
    assert one(**fields)[column] == value


@pytest.mark.parametrize(
    "fields",
    [
        {"userId": [42]},
        {"userId": {"id": 42}},
        {"event": {"name": "x"}},
        {"anonymousId": ["a"], "userId": None},
        {"previousId": {"id": 1}, "type": "alias", "event": None},
        {"name": [], "type": "page", "event": None},
        {"timestamp": {"at": "2026-11-30T10:00:00Z"}},
    ],
)
def test_an_object_or_array_where_a_string_is_required_is_wrong_type(fields: dict[str, object]) -> None:
    good = message(messageId="good", event="[Promo] Banner Clicked")
    events, quarantine = run(good, message(messageId="bad", **fields), message(messageId="after"))
    assert events["event_id"].to_list() == ["good", "after"]
    assert quarantine.select("source_line", "reason").rows() == [(2, "wrong_type")]
    assert "must be a string" in quarantine["detail"][0]


# --- 3. timestamps as Segment accepts them ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-30T10:00:00Z", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        ("2026-11-30T10:00:00.123456+00:00", datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-30T12:00:00+02:00", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        ("2026-11-30T05:00:00-0500", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        ("2026-11-30T10:00:00", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),  # no offset: UTC
        ("2026-11-30T10:00:00.250", datetime(2026, 11, 30, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),
        ("2026-11-30 10:00:00", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        ("2026-11-30 10:00:00.5Z", datetime(2026, 11, 30, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-30T10:00Z", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        ("2026-11-30T11:00+01:00", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        ("2026-11-30T10:00", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_form_segment_accepts(text: str, expected: datetime) -> None:
    assert one(timestamp=text)["event_ts"] == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-30T25:00:00", "30/11/2026", ""]
)
def test_what_segment_rejects_stays_an_invalid_timestamp(text: str) -> None:
    expected = Reason.MISSING_FIELD if text == "" else Reason.INVALID_TIMESTAMP
    assert reasons(message(timestamp=text)) == [(1, str(expected))]


def test_a_message_segment_processed_keeps_its_corrected_timestamp() -> None:
    """The docs' own track example: `timestamp` was corrected by Segment; correcting again would be wrong."""
    row = one(
        timestamp="2015-12-12T19:11:01.249Z",
        originalTimestamp="2015-12-12T19:11:01.152Z",
        sentAt="2015-12-12T19:11:01.169Z",
        receivedAt="2015-12-12T19:11:01.266Z",
    )
    assert row["event_ts"] == datetime(2015, 12, 12, 19, 11, 1, 249000, tzinfo=UTC)
    assert row["original_timestamp"] == datetime(2015, 12, 12, 19, 11, 1, 152000, tzinfo=UTC)


def test_a_client_ten_minutes_fast_is_corrected_once() -> None:
    """Segment corrected the time (10:00); the client's own clock said 10:10. The event is at 10:00."""
    row = one(
        timestamp="2026-11-30T10:00:00.000Z",
        originalTimestamp="2026-11-30T10:10:00.000Z",
        sentAt="2026-11-30T10:10:05.000Z",
        receivedAt="2026-11-30T10:00:05.000Z",
    )
    assert row["event_ts"] == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_original_timestamp_alone_is_skew_corrected_with_sent_at() -> None:
    row = one(
        timestamp=None,
        originalTimestamp="2026-11-30T10:10:00Z",
        sentAt="2026-11-30T10:10:05Z",
        receivedAt="2026-11-30T10:00:05Z",
    )
    assert row["event_ts"] == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert row["original_timestamp"] == datetime(2026, 11, 30, 10, 10, tzinfo=UTC)


def test_original_timestamp_alone_without_sent_at_is_taken_as_is() -> None:
    row = one(timestamp=None, originalTimestamp="2026-11-30 10:10:00")
    assert row["event_ts"] == datetime(2026, 11, 30, 10, 10, tzinfo=UTC)


def test_neither_timestamp_is_a_missing_field() -> None:
    _, quarantine = run(message(timestamp=None))
    assert quarantine["reason"].to_list() == [Reason.MISSING_FIELD]
    assert "originalTimestamp" in quarantine["detail"][0]


def test_an_invalid_original_timestamp_is_an_invalid_timestamp() -> None:
    assert reasons(message(originalTimestamp="soon")) == [(1, "invalid_timestamp")]


# --- 4. sentAt, per message or from the batch --------------------------------------------------------


def test_sent_at_copied_from_the_batch_corrects_the_skew() -> None:
    """analytics-python stamps `sentAt` on the batch (isoformat, microseconds); the collector copies it."""
    row = one(
        timestamp="2026-11-30T10:10:00.000+00:00",
        sentAt="2026-11-30T10:10:05.000000+00:00",
        receivedAt="2026-11-30T10:00:05.000Z",
    )
    assert row["event_ts"] == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert row["sent_at"] == datetime(2026, 11, 30, 10, 10, 5, tzinfo=UTC)


def test_a_landed_batch_envelope_is_quarantined_with_its_own_reason() -> None:
    """A whole `/v1/batch` body on one line: its messages are not taken apart (line accounting stays
    one line, one outcome), and the write key it may carry does not reach the lake."""
    envelope = {
        "batch": [message(messageId="b-1"), message(messageId="b-2")],
        "sentAt": "2026-11-30T10:00:01Z",
        "writeKey": "wk-secret-123",
    }
    events, quarantine = run(message(messageId="before"), envelope, message(messageId="after"))
    assert events["event_id"].to_list() == ["before", "after"]
    assert quarantine.select("source_line", "reason").rows() == [(2, "batch_envelope")]
    assert "/v1/batch" in quarantine["detail"][0]
    assert "wk-secret-123" not in quarantine["raw"][0]


def test_a_batch_envelope_counts_as_one_quarantined_line_in_the_file() -> None:
    data = b"\n".join(
        orjson.dumps(m)
        for m in (message(messageId="x"), {"batch": [message(messageId="y")]}, message(messageId="x"))
    )
    result = process_file(data, source_file="f", landed_at=LANDED, ingested_at=LANDED, batch_id=1)
    counts = assemble_batch([result], pl.Series([], dtype=pl.String)).counts
    assert counts.select("lines", "accepted", "quarantined", "duplicates").rows() == [(3, 1, 1, 1)]


# --- 5. context kept, the IP truncated -------------------------------------------------------------

CONTEXT = {
    "ip": "203.0.113.195",
    "library": {"name": "analytics.js", "version": "2.11.1"},
    "locale": "en-US",
    "timezone": "Europe/Amsterdam",
    "userAgent": "Mozilla/5.0 (Macintosh)",
    "page": {
        "path": "/academy/",
        "referrer": "https://www.google.com/",
        "search": "?utm_source=Newsletter",
        "title": "Analytics Academy",
        "url": "https://segment.com/academy/?utm_source=Newsletter",
    },
    "campaign": {
        "name": "TPS Innovation Newsletter",
        "source": "Newsletter",
        "medium": "email",
        "term": "tps reports",
        "content": "image link",
    },
}


def test_context_is_kept_as_json_and_in_typed_columns() -> None:
    row = one(context=CONTEXT)
    assert {k: row[k] for k in row if k.startswith("context_")} == {
        "context_ip": "203.0.113.0",
        "context_campaign_source": "Newsletter",
        "context_campaign_medium": "email",
        "context_campaign_name": "TPS Innovation Newsletter",
        "context_page_url": "https://segment.com/academy/?utm_source=Newsletter",
        "context_page_path": "/academy/",
        "context_page_referrer": "https://www.google.com/",
        "context_library_name": "analytics.js",
        "context_user_agent": "Mozilla/5.0 (Macintosh)",
    }
    assert (row["locale"], row["timezone"]) == ("en-US", "Europe/Amsterdam")
    assert orjson.loads(row["context"]) == {**CONTEXT, "ip": "203.0.113.0"}


def test_new_event_columns_have_their_types() -> None:
    for column, dtype in {
        "context": pl.String(),
        "context_ip": pl.String(),
        "context_campaign_source": pl.String(),
        "context_page_url": pl.String(),
        "context_library_name": pl.String(),
        "context_user_agent": pl.String(),
        "page_name": pl.String(),
        "page_category": pl.String(),
        "previous_id": pl.String(),
        "group_id": pl.String(),
        "original_timestamp": pl.Datetime("us", "UTC"),
    }.items():
        assert EVENTS_SCHEMA[column] == dtype, column


@pytest.mark.parametrize(
    ("ip", "kept"),
    [
        ("203.0.113.195", "203.0.113.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("2001:db8::1", "2001:db8::"),
        ("::ffff:198.51.100.7", "::"),  # /48 of an IPv4-mapped address
        ("fe80::1%eth0", "fe80::"),
        ("not an ip", None),
        ("203.0.113.195, 10.0.0.1", None),
    ],
)
def test_the_ip_is_truncated_in_the_column_and_in_the_json(ip: str, kept: str | None) -> None:
    row = one(context={"ip": ip, "locale": "en-US"})
    assert row["context_ip"] == kept
    assert orjson.loads(row["context"]) == {"ip": kept, "locale": "en-US"}


def test_the_raw_ip_reaches_no_column_even_when_nested_objects_come_first() -> None:
    context = {"device": {"id": "d-1", "ip": "198.51.100.7"}, "ip": "203.0.113.195", "n": {"x": [1]}}
    events, _ = run(message(context=context), message(messageId="m-2", context={"ip": 5}))
    text = events.write_ndjson()
    for raw in ("203.0.113.195", "198.51.100.7"):
        assert raw not in text
    assert events["context_ip"].to_list() == ["203.0.113.0", None]


def test_a_number_or_object_as_the_ip_is_dropped() -> None:
    for value in (5, {"v4": "203.0.113.195"}, ["203.0.113.195"]):
        row = one(context={"ip": value})
        assert row["context_ip"] is None
        assert "203.0.113.195" not in row["context"]


def test_a_quarantined_line_keeps_only_the_truncated_ip() -> None:
    bad = message(type="bogus", context={"ip": "203.0.113.195"})
    truncated_json = b'{"messageId": "m", "context": {"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348'
    _, quarantine = run(bad, truncated_json)
    assert quarantine["reason"].to_list() == ["unknown_type", "invalid_json"]
    assert "203.0.113.0" in quarantine["raw"][0]
    assert "203.0.113.195" not in quarantine["raw"][0]
    assert "8a2e" not in quarantine["raw"][1]


def test_a_context_with_odd_shapes_still_yields_its_columns() -> None:
    """A campaign that is a string (a hand-rolled integration) does not fail the file: no column for it."""
    rows, quarantine = run(
        message(messageId="a", context={"campaign": "spring", "page": {"url": 5}, "locale": "de-DE"}),
        message(messageId="b", context={"campaign": {"source": "google"}}),
    )
    assert quarantine.height == 0
    assert rows.select("context_campaign_source", "context_page_url", "locale").rows() == [
        (None, "5", "de-DE"),
        ("google", None, None),
    ]


def test_events_without_context_have_null_context_columns() -> None:
    row = one()
    assert row["context"] is None and row["context_ip"] is None and row["context_campaign_source"] is None


def test_an_id_of_whitespace_only_is_no_id() -> None:
    """A blank messageId made the second such message a duplicate of the first (dropped), and a blank
    userId one shopper of everyone who sent one (found by review)."""
    first = message(messageId=" ", userId="u-1")
    second = message(messageId="\t ", userId="u-2", event="Product Added")
    assert reasons(first, second) == [(1, str(Reason.MISSING_FIELD)), (2, str(Reason.MISSING_FIELD))]
    anonymous = one(messageId="m-9", userId="  ", anonymousId="a-9")
    assert (anonymous["user_id"], anonymous["anonymous_id"]) == (None, "a-9")
    assert reasons(message(userId=" ")) == [(1, str(Reason.MISSING_FIELD))]  # nor an anonymous id
    alias = message(type="alias", event=None, userId="u-1", previousId=" ")
    assert run(alias)[1]["detail"].to_list() == ["previousId is required for alias"]
    assert one(messageId=" m-1 ")["event_id"] == " m-1 "  # an id around blanks stays as sent

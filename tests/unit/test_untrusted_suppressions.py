"""A message that would suppress a shopper, sent with a public write key, suppresses no one (found by review:
LAKEMAIL_WRITE_KEY is in every browser, and any `Unsubscribed`, `Email Bounced` or `Email Marked as Spam`
posted with it was ingested as-is, so anyone could silently stop any shopper's email). The collector marks
such messages `"lakemailKeyKind": "public"`; the ingest quarantines a marked suppressing event as
`untrusted_suppression`, on every path, and keeps the rest. LAKEMAIL_SERVER_WRITE_KEY is a setting: a key
that cannot be secret stops start-up naming the variable, never showing the value."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestration.settings import Settings, SettingsError, known_variables
from services.collector.app import CollectorConfig, create_collector_app
from stores.suppressions import SUPPRESSING
from transforms.ingest.files import FileResult, process_file
from transforms.ingest.group import process_files
from transforms.ingest.trust import SUPPRESSING_EVENTS

LANDED = datetime(2026, 3, 1, 12, tzinfo=UTC)
SERVER_KEY = "server-key-0123456789abcdef"
VARIABLE = "LAKEMAIL_SERVER_WRITE_KEY"


def line(message_id: str, event: str, **fields: Any) -> bytes:
    """A track message in the Segment Email spec's shape (the recipient in `context.traits.email`)."""
    return orjson.dumps(
        {
            "type": "track",
            "event": event,
            "userId": "019mr8mf4r",
            "messageId": message_id,
            "timestamp": "2026-03-01T11:00:00Z",
            "properties": {"email_id": "18vzF7u3z", "email_subject": "Your cart", "list_id": "1425"},
            "context": {"traits": {"email": "ann@example.com"}},
            **fields,
        }
    )


PUBLIC = {"lakemailKeyKind": "public"}
LINES = [
    line("m-1", "Unsubscribed", **PUBLIC),
    line("m-2", "Unsubscribed"),  # a file landed directly, or a server key's: trusted
    line("m-3", "email_bounced", **PUBLIC),  # a spec name's variant is the spec's name
    line("m-4", "Email Marked as Spam", **PUBLIC),
    line("m-5", "Product Viewed", **PUBLIC),  # a public key's other events are kept as ever
    line("m-6", "Email Bounced", lakemailKeyKind="anything"),  # marked at all: untrusted
]


def run(paths: str) -> FileResult:
    data = b"\n".join(LINES) + b"\n"
    if paths == "group":
        [result] = process_files([("events/f.ndjson", data, LANDED)], ingested_at=LANDED, batch_id=1)
        return result
    return process_file(
        data,
        source_file="events/f.ndjson",
        landed_at=LANDED,
        ingested_at=LANDED,
        batch_id=1,
        line_by_line=paths == "line by line",
    )


@pytest.mark.parametrize("paths", ["vectorised", "line by line", "group"])
def test_a_suppressing_event_under_a_public_key_is_quarantined_on_every_path(paths: str) -> None:
    result = run(paths)
    assert result.events["event_id"].to_list() == ["m-2", "~public:m-5"]  # test_claimed_event_ids
    assert result.quarantine.select("source_line", "reason").rows() == [
        (1, "untrusted_suppression"),
        (3, "untrusted_suppression"),
        (4, "untrusted_suppression"),
        (6, "untrusted_suppression"),
    ]
    assert result.lines == result.events.height + result.quarantine.height  # every line accounted for
    assert all("LAKEMAIL_SERVER_WRITE_KEY" in detail for detail in result.quarantine["detail"])
    assert all('"lakemailKeyKind"' in raw for raw in result.quarantine["raw"])


def test_the_ingest_distrusts_exactly_the_events_that_suppress() -> None:
    assert set(SUPPRESSING_EVENTS) == set(SUPPRESSING)


def test_the_server_write_keys_are_a_setting() -> None:
    assert VARIABLE in known_variables()
    Settings.from_env({VARIABLE: f"{SERVER_KEY}, {SERVER_KEY}-2", "LAKEMAIL_WRITE_KEY": "wk"}, dotenv=None)
    Settings.from_env({VARIABLE: ""}, dotenv=None)  # empty: none (the demo needs none)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({VARIABLE: "short-key"}, f"{VARIABLE} must hold keys of at least 16 characters"),
        ({VARIABLE: f"{SERVER_KEY}, short"}, f"{VARIABLE} must hold keys of at least 16 characters"),
        ({VARIABLE: "user:password-0123456"}, f"{VARIABLE} must not hold a key with a ':'"),
        (
            {VARIABLE: SERVER_KEY, "LAKEMAIL_WRITE_KEY": f"wk, {SERVER_KEY}"},
            f"{VARIABLE} must not hold a key of LAKEMAIL_WRITE_KEY",
        ),
    ],
)
def test_a_server_key_that_cannot_be_secret_stops_start_up(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says) as raised:
        Settings.from_env(env, dotenv=None)
    for value in env[VARIABLE].split(","):
        assert value.strip() not in str(raised.value)


def test_the_collector_refuses_a_public_key_as_a_server_key(tmp_path: Path) -> None:
    config = CollectorConfig(landing=tmp_path, write_keys=("wk", SERVER_KEY), server_write_keys=(SERVER_KEY,))
    with pytest.raises(ValueError, match=f"{VARIABLE} must not hold a key of LAKEMAIL_WRITE_KEY"):
        create_collector_app(config)

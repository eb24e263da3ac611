"""An address Postmark refuses as inactive is suppressed (found by review 23b: its 422 ErrorCode 406, "marked
as inactive", a hard bounce or a spam complaint, was only `failed_permanent`, and every later trigger for
the shopper called Postmark again; PRODUCT.md section 6: "bounces and unsubscribes -> suppressions").
The send stage lands the refusal as an `Email Bounced` event; the next ingest suppresses the address."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from resources.providers import EmailProvider, PostmarkProvider, SendGridProvider
from stores.decide import reads
from stores.sends import run_sends
from stores.sends_delivery import AttemptMarkers, Delivery, SendsReport
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _cart, _signup
from tests.lake.test_webhook_resend import Receiver, signed_up
from tests.story import at
from tests.unit.test_plan import RUN_NOW, planned_rows, sender_for
from transforms.erasure.records import address_key
from transforms.schema import EVENTS_SCHEMA, SENDS_SCHEMA, SUPPRESSIONS_SCHEMA
from transforms.sends.policy import inactive_recipient

POSTMARK = PostmarkProvider("tok", "https://pm.test")
INACTIVE = {
    "ErrorCode": 406,
    "Message": "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: u-1@example.com. Inactive recipients are ones that have generated a hard bounce or a spam "
    "complaint.",
}


def refused(request: httpx.Request) -> httpx.Response:
    return httpx.Response(422, json=INACTIVE)


def send_run(home: Home, receiver: Receiver, now: datetime) -> SendsReport:
    with httpx.Client(transport=httpx.MockTransport(receiver)) as client, home.lake.decide_lock():
        sender = replace(sender_for(client, wall_clock=lambda: now), provider=POSTMARK, secret=SECRET)
        return run_sends(home.lake, home.state, home.landing, sender, now=now)


def landed_refusals(home: Home) -> list[dict]:
    files = [f.path for f in home.landing.list_files() if f.path.startswith("events/sends-refused-")]
    return [json.loads(line) for path in files for line in home.landing.read(path)[1].splitlines()]


def store_suppresses(home: Home) -> frozenset[str]:
    """Who of u-1 (with the address) and u-2 the state store suppresses."""
    profiles = pl.DataFrame({"user_id": ["u-1", "u-2"], "email": ["u-1@example.com", "u-2@example.com"]})
    with home.state.reader() as reader:
        return reads.suppressed_users(reader, profiles, SECRET)


def test_a_refused_address_is_suppressed_by_the_next_ingest_and_not_called_again(tmp_path: Path) -> None:
    home = signed_up(tmp_path)  # u-1's welcome is decided at T0 + 1 min
    receiver = Receiver(refused)
    report = send_run(home, receiver, at(1))
    [row] = home.lake.read("sends", SENDS_SCHEMA).to_dicts()
    assert (row["status"], row["next_attempt_at"]) == ("failed_permanent", None)  # the row stays failed
    assert row["last_error"].startswith("HTTP 422: ") and "<address>" in row["last_error"]
    assert "u-1@example.com" not in repr(row) and "u-1@example.com" not in repr(report)
    [event] = landed_refusals(home)
    assert event["messageId"] == f"postmark-refused-{row['send_id']}" and event["userId"] == "u-1"
    assert (event["event"], event["timestamp"]) == ("Email Bounced", "2026-11-20T12:01:00.000Z")
    assert event["properties"] == {
        "email": "u-1@example.com",
        "send_id": row["send_id"],
        "provider": "postmark",
        "bounce_type": "hard",
    }
    home.batch("2", at(3), _cart("u-1", at(2)))  # the real ingest: the refusal file, then the cart
    suppressions = home.lake.read("suppressions", SUPPRESSIONS_SCHEMA).select("user_key", "reason").rows()
    assert suppressions == [(address_key("u-1@example.com", SECRET), "hard_bounce")]
    assert store_suppresses(home) == {"u-1"}  # the store, as the engine and the sender ask it
    home.engine(at(2 + 61))
    assert ("abandoned_cart", "suppressed") in home.decisions("u-1")
    send_run(home, receiver, at(2 + 62))
    assert len(receiver.keys) == 1  # Postmark is not called again for the address


def test_a_refusal_landed_twice_is_one_bounce(tmp_path: Path) -> None:
    """A run retried after landing it (its statuses not committed) lands the same messageId again."""
    home = signed_up(tmp_path)
    send_run(home, Receiver(refused), at(1))
    [event] = landed_refusals(home)
    home.landing.land_messages("sends-refused", [event], at(2))
    home.batch("2", at(3), _signup("u-2", at(2)))
    events = home.lake.read("events", EVENTS_SCHEMA).filter(pl.col("event_name") == "Email Bounced")
    assert events.height == 1 and store_suppresses(home) == {"u-1"}


@pytest.mark.parametrize(
    ("provider", "status", "body", "bounced"),
    [
        (POSTMARK, 422, INACTIVE, True),
        (POSTMARK, 422, {"ErrorCode": 300, "Message": "Invalid email request"}, False),
        (POSTMARK, 500, INACTIVE, False),  # not a refusal: retried
        (SendGridProvider("k", "https://sg.test"), 400, {"errors": [{"message": "bad"}]}, False),
    ],
)
def test_only_an_inactive_recipient_answer_lands_a_bounce(
    tmp_path: Path, provider: EmailProvider, status: int, body: dict, bounced: bool
) -> None:
    answer = httpx.MockTransport(lambda r: httpx.Response(status, json=body))
    with httpx.Client(transport=answer) as client:
        sender = replace(sender_for(client, sleep=lambda s: None, max_attempts=1), provider=provider)
        delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned_rows("t-1"))
    assert [e["properties"]["email"] for e in delivery.refusals] == (["u1@example.com"] if bounced else [])
    assert inactive_recipient(status, json.dumps(body).encode()) is (status == 422 and bounced)

"""The providers' webhook events as Segment Email spec events (services.collector.esp_events): which
events land as what, which are refused and why, and the message each lands as."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.collector.esp import read_events, read_reports
from services.collector.esp_events import (
    Refused,
    Report,
    postmark_kind,
    postmark_report,
    sendgrid_kind,
    sendgrid_report,
    track_message,
    trusted_send,
)
from services.collector.wire import WireError
from stores.suppressions import BOUNCED, COMPLAINED, SOFT_BOUNCES
from transforms.sends.message import ORIGIN_ARG, origin_mark

SECRET = "home-secret"
WHEN = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)


def sendgrid(event: str, **fields: Any) -> dict[str, Any]:
    base = {"email": "ada@example.com", "timestamp": int(WHEN.timestamp()), "sg_event_id": "ev-1"}
    return base | {"event": event} | fields


def postmark(record: str | None, kind: str | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ID": 42, "Email": "ada@example.com", "BouncedAt": "2026-11-20T07:10:00-05:00"}
    base |= {"RecordType": record} if record is not None else {}
    return base | ({"Type": kind} if kind is not None else {}) | fields


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (sendgrid("bounce", type="bounce"), "hard_bounce"),
        (sendgrid("bounce"), "hard_bounce"),  # before SendGrid added `type`, a bounce was a bounce
        (sendgrid("bounce", type="Blocked"), "transient_bounce"),
        (sendgrid("bounce", type="expired"), "transient_bounce"),
        (sendgrid("spamreport"), "complaint"),
        (sendgrid("dropped", reason="Bounced Address"), "hard_bounce"),
        (sendgrid("dropped", type="Bounced Address"), "hard_bounce"),
        (sendgrid("dropped", reason="Spam Reporting Address"), "complaint"),
        (sendgrid("dropped", reason="Unsubscribed Address"), None),
        (sendgrid("dropped", reason="Invalid SMTPAPI header"), None),
        *((sendgrid(name), None) for name in ("processed", "delivered", "deferred", "open", "click")),
        *((sendgrid(name), None) for name in ("unsubscribe", "group_unsubscribe", "group_resubscribe")),
        ({"email": "ada@example.com"}, None),  # no event name: nothing to land
    ],
)
def test_sendgrid_events(event: dict[str, Any], kind: str | None) -> None:
    assert sendgrid_kind(event) == kind


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        *(
            (postmark("Bounce", t), "hard_bounce")
            for t in ("HardBounce", "BadEmailAddress", "ManuallyDeactivated")
        ),
        *(
            (postmark("Bounce", t), "transient_bounce")
            for t in ("SoftBounce", "Transient", "DnsError", "Blocked", "AutoResponder", "Unknown")
        ),
        (postmark("SpamComplaint", "SpamComplaint"), "complaint"),
        (postmark("Bounce", "SpamComplaint"), "complaint"),
        (postmark(None, "HardBounce"), "hard_bounce"),  # the older bounce webhook names no RecordType
        (postmark(None, "SpamComplaint"), "complaint"),
        *((postmark(r), None) for r in ("Delivery", "Open", "Click", "SubscriptionChange")),
        (postmark(None), None),
    ],
)
def test_postmark_records(event: dict[str, Any], kind: str | None) -> None:
    assert postmark_kind(event) == kind


def test_a_transient_bounce_lands_as_a_bounce_that_suppresses_no_one() -> None:
    assert "transient" in SOFT_BOUNCES and "hard" not in SOFT_BOUNCES


def test_reports_carry_the_providers_id_time_address_and_args() -> None:
    ours = {"send_id": "s-1", ORIGIN_ARG: origin_mark("s-1", SECRET)}
    assert sendgrid_report(sendgrid("bounce", email=" Ada@Example.com ", **ours)) == Report(
        "sendgrid",
        "ev-1",
        "hard_bounce",
        "Ada@Example.com",
        WHEN,
        sendgrid("bounce", email=" Ada@Example.com ", **ours),
    )
    assert postmark_report(postmark("Bounce", "HardBounce", Metadata=ours)) == Report(
        "postmark", "42", "hard_bounce", "ada@example.com", WHEN, ours
    )
    seven_digits = postmark("SpamComplaint", "SpamComplaint", BouncedAt="2026-11-20T12:10:00.1234567Z")
    assert postmark_report(seven_digits).at == datetime(2026, 11, 20, 12, 10, 0, 123456, tzinfo=UTC)  # type: ignore[union-attr]
    naive = postmark("Bounce", "SoftBounce", BouncedAt="2026-11-20T12:10:00", Metadata="not an object")
    assert postmark_report(naive) == Report("postmark", "42", "transient_bounce", "ada@example.com", WHEN, {})
    assert sendgrid_report(sendgrid("delivered", email=None)) is None  # not landed: not read either


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an event", "not_an_object"),
        (sendgrid("bounce", email=""), "missing_field"),
        (sendgrid("bounce", email=None), "missing_field"),
        (sendgrid("spamreport", sg_event_id=None), "missing_field"),
        (sendgrid("spamreport", sg_event_id="x" * 257), "missing_field"),
        (sendgrid("bounce", timestamp="yesterday"), "missing_field"),
        (sendgrid("bounce", timestamp=True), "missing_field"),
        (sendgrid("bounce", timestamp=10**20), "invalid_timestamp"),
        (sendgrid("bounce", timestamp=float("nan")), "invalid_timestamp"),
    ],
)
def test_sendgrid_refusals(event: object, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        sendgrid_report(event)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (["a list"], "not_an_object"),
        (postmark("Bounce", "HardBounce", Email=42), "missing_field"),
        (postmark("Bounce", "HardBounce", ID=None), "missing_field"),
        (postmark("Bounce", "HardBounce", ID=True), "missing_field"),
        (postmark("Bounce", "HardBounce", BouncedAt=None), "missing_field"),
        (postmark("Bounce", "HardBounce", BouncedAt="last week"), "invalid_timestamp"),
    ],
)
def test_postmark_refusals(event: object, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        postmark_report(event)
    assert refused.value.reason == reason


def test_only_a_send_with_this_homes_mark_is_trusted() -> None:
    ours = {"send_id": "s-1", ORIGIN_ARG: origin_mark("s-1", SECRET)}
    assert trusted_send(ours, SECRET) == "s-1"
    assert trusted_send(ours, None) is None  # no secret to check the mark with
    assert trusted_send({"send_id": "s-1", ORIGIN_ARG: origin_mark("s-1", "another home")}, SECRET) is None
    assert trusted_send({"send_id": "s-2", ORIGIN_ARG: ours[ORIGIN_ARG]}, SECRET) is None  # another send's
    assert trusted_send({"send_id": "s-1"}, SECRET) is None
    assert trusted_send({"send_id": 7, ORIGIN_ARG: "x"}, SECRET) is None


def test_the_message_of_a_report() -> None:
    bounce = Report("sendgrid", "ev-1", "hard_bounce", "ada@example.com", WHEN, {})
    assert track_message(bounce, send_id="s-1", user_id="u-1") == {
        "type": "track",
        "event": BOUNCED,
        "messageId": "sendgrid-ev-1",
        "userId": "u-1",
        "timestamp": "2026-11-20T12:10:00.000Z",
        "properties": {
            "email": "ada@example.com",
            "provider": "sendgrid",
            "bounce_type": "hard",
            "send_id": "s-1",
        },
        "context": {"traits": {"email": "ada@example.com"}, "library": {"name": "lakemail-esp"}},
    }
    soft = Report("postmark", "42", "transient_bounce", "ada@example.com", WHEN, {})
    message = track_message(soft, send_id=None, user_id=None)
    assert (message["anonymousId"], message["messageId"], "userId" in message) == (
        "esp:postmark",
        "postmark-42",
        False,
    )
    assert message["properties"] == {
        "email": "ada@example.com",
        "provider": "postmark",
        "bounce_type": "transient",
    }
    spam = track_message(
        Report("postmark", "43", "complaint", "a@b.c", WHEN, {}), send_id="s-1", user_id=None
    )
    assert (spam["event"], spam["anonymousId"]) == (COMPLAINED, "esp:postmark")  # a send without its user
    assert spam["properties"] == {"email": "a@b.c", "provider": "postmark", "send_id": "s-1"}


def test_a_body_is_read_as_its_provider_posts_it() -> None:
    assert read_events("sendgrid", b'[{"event": "open"}]') == [{"event": "open"}]
    assert read_events("postmark", b'{"RecordType": "Open"}') == [{"RecordType": "Open"}]
    for provider, body, reason in [
        ("sendgrid", b"{not json", "invalid_json"),
        ("sendgrid", b'{"event": "bounce"}', "invalid_batch"),
        ("postmark", b'[{"RecordType": "Bounce"}]', "invalid_json"),
        ("postmark", b'"text"', "invalid_json"),
    ]:
        with pytest.raises(WireError) as refused:
            read_events(provider, body)
        assert (refused.value.status, refused.value.reason) == (400, reason)
    reading = read_reports(
        "sendgrid", [sendgrid("open"), 7, sendgrid("spamreport"), sendgrid("bounce", email="")]
    )
    assert [(i, r.kind) for i, r in reading.reports] == [(2, "complaint")]
    assert [(r["index"], r["reason"]) for r in reading.rejected] == [
        (1, "not_an_object"),
        (3, "missing_field"),
    ]
    assert reading.ignored == 1

"""What the email providers' event webhooks report, as the Segment Email spec's events (pure: no I/O).

SendGrid's Event Webhook posts a JSON array of events; Postmark's bounce and spam-complaint webhooks
post one JSON object each. Only what suppresses (stores.suppressions) lands: a bounce as `Email Bounced`
with `bounce_type` `hard`, or `transient` for one the address may yet take (SendGrid's `blocked`,
Postmark's soft bounces, DNS errors and the like: it suppresses no one), a spam complaint as `Email
Marked as Spam`. Deliveries, opens, clicks and the rest are counted, not landed: lakemail's own click
redirect and unsubscribe links record what it needs of those.

A message's `messageId` comes from the provider's event id, so a webhook the provider retries lands
duplicates the ingest drops; its `timestamp` is the provider's time of the event. lakemail's custom
args (SendGrid) or Metadata (Postmark) name the send, not the shopper (no person data at the provider):
the send counts only when the email carries this home's mark (ORIGIN_ARG), so an email another home
sent through the same provider account names no send of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from stores.suppressions import BOUNCED, COMPLAINED
from transforms.sends.message import ORIGIN_ARG, sent_by_us
from transforms.spec import Reason

Kind = Literal["hard_bounce", "transient_bounce", "complaint"]
# The `kind` label of the webhook counter: what landed, or why nothing did (a fixed set of values).
KINDS: tuple[str, ...] = ("hard_bounce", "transient_bounce", "complaint", "ignored", "refused")
MAX_EVENT_ID_CHARS = 256
# Postmark's bounce types that say the address takes no mail (Postmark deactivates it); every other
# type of a `Bounce` record (SoftBounce, Transient, DnsError, Blocked, AutoResponder, ...) may pass.
POSTMARK_HARD = frozenset({"hardbounce", "bademailaddress", "manuallydeactivated"})


class Refused(Exception):
    """An event that says something lakemail lands, but not in a form it can land (its reason code)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Report:
    """One provider event that lands: a bounce or a spam complaint, for `email`, at `at`."""

    provider: str
    event_id: str
    kind: Kind
    email: str
    at: datetime
    args: Mapping[str, object]  # the custom args / Metadata the email was sent with


def _word(value: object) -> str | None:
    """`value` as a lower-case word to compare, None when it is no (or an empty) string."""
    return (value.strip().lower() or None) if isinstance(value, str) else None


def sendgrid_kind(event: Mapping[str, Any]) -> Kind | None:
    """What a SendGrid event reports: a `bounce` (its `type` `bounce`, or none: hard; `blocked` or
    another: transient), a `spamreport`, a `dropped` for an address SendGrid holds as bounced or as a
    spam reporter; None for the rest (processed, delivered, deferred, open, click, unsubscribes)."""
    name = event.get("event")
    if name == "bounce":
        return "hard_bounce" if _word(event.get("type")) in (None, "bounce") else "transient_bounce"
    if name == "spamreport":
        return "complaint"
    if name == "dropped":  # SendGrid puts the cause in `reason` (sometimes in `type`)
        causes = {_word(event.get("reason")), _word(event.get("type"))}
        if "bounced address" in causes:
            return "hard_bounce"
        if "spam reporting address" in causes:
            return "complaint"
    return None


def postmark_kind(event: Mapping[str, Any]) -> Kind | None:
    """What a Postmark webhook reports: a `SpamComplaint` record (or a bounce of that type), a `Bounce`
    record (hard for POSTMARK_HARD, else transient); None for deliveries, opens, clicks and
    subscription changes. A record without `RecordType` (Postmark's older bounce webhook) is a bounce."""
    record = event.get("RecordType", "Bounce" if "Type" in event else None)
    bounce_type = _word(event.get("Type"))
    if record == "SpamComplaint" or (record == "Bounce" and bounce_type == "spamcomplaint"):
        return "complaint"
    if record == "Bounce":
        return "hard_bounce" if bounce_type in POSTMARK_HARD else "transient_bounce"
    return None


def sendgrid_report(event: object) -> Report | None:
    """The Report of one SendGrid event, None when it reports nothing that lands; Refused when it does
    but lacks what a message needs. Custom args are the event's own fields (SendGrid merges them in)."""
    if not isinstance(event, dict):
        raise Refused(Reason.NOT_AN_OBJECT, f"a JSON {type(event).__name__}, not an event object")
    kind = sendgrid_kind(event)
    if kind is None:
        return None
    stamp = event.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise Refused(Reason.MISSING_FIELD, "`timestamp` (Unix seconds) is missing or not a number")
    try:
        at = datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        raise Refused(Reason.INVALID_TIMESTAMP, "`timestamp` is not a time") from None
    return Report("sendgrid", _event_id(event, "sg_event_id"), kind, _email(event, "email"), at, event)


def postmark_report(event: object) -> Report | None:
    """The Report of one Postmark webhook body (see sendgrid_report); lakemail's args are `Metadata`."""
    if not isinstance(event, dict):
        raise Refused(Reason.NOT_AN_OBJECT, f"a JSON {type(event).__name__}, not a Postmark record")
    kind = postmark_kind(event)
    if kind is None:
        return None
    when = event.get("BouncedAt")
    if not isinstance(when, str):
        raise Refused(Reason.MISSING_FIELD, "`BouncedAt` is missing or not a string")
    try:
        at = datetime.fromisoformat(when.strip())
    except ValueError:
        raise Refused(Reason.INVALID_TIMESTAMP, "`BouncedAt` is not an ISO 8601 time") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    metadata = event.get("Metadata")
    args = metadata if isinstance(metadata, dict) else {}
    return Report("postmark", _event_id(event, "ID"), kind, _email(event, "Email"), at, args)


def _event_id(event: Mapping[str, Any], field: str) -> str:
    value = event.get(field)
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text or len(text) > MAX_EVENT_ID_CHARS:
        raise Refused(Reason.MISSING_FIELD, f"`{field}` (the event's id) is missing or not an id")
    return text


def _email(event: Mapping[str, Any], field: str) -> str:
    value = event.get(field)
    if not isinstance(value, str) or not value.strip():
        raise Refused(Reason.MISSING_FIELD, f"`{field}` (the address) is missing or empty")
    return value.strip()


def trusted_send(args: Mapping[str, object], secret: str | None) -> str | None:
    """The `send_id` lakemail's args name, when they carry this home's mark for it (None without a
    secret to check the mark with)."""
    send_id = args.get("send_id")
    if secret is None or not isinstance(send_id, str) or ORIGIN_ARG not in args:
        return None
    return send_id if sent_by_us(args, send_id, secret) else None


def track_message(report: Report, *, send_id: str | None, user_id: str | None) -> dict[str, Any]:
    """The Segment track message of `report`: its user when the send names one, else the provider's
    anonymous id (never both: the ingest would link the two)."""
    properties: dict[str, Any] = {"email": report.email, "provider": report.provider}
    if report.kind != "complaint":
        properties["bounce_type"] = "hard" if report.kind == "hard_bounce" else "transient"
    if send_id is not None:
        properties["send_id"] = send_id
    who = {"userId": user_id} if user_id else {"anonymousId": f"esp:{report.provider}"}
    return {
        "type": "track",
        "event": COMPLAINED if report.kind == "complaint" else BOUNCED,
        "messageId": f"{report.provider}-{report.event_id}",
        **who,
        "timestamp": report.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": properties,
        "context": {"traits": {"email": report.email}, "library": {"name": "lakemail-esp"}},
    }

"""A provider's refusal of an address at send time, as the Segment Email spec's `Email Bounced` (pure).

Postmark refuses to send to an address it has marked inactive (HTTP 422, `ErrorCode` 406: it hard-bounced,
complained of spam or was deactivated by hand). The send stage lands that refusal as a hard bounce, so the
next ingest suppresses the address (stores.suppressions) as it does a bounce a provider's webhook reports,
and the next trigger for it does not call the provider again. Its `messageId` is fixed per send: landed
twice (a run retried), the ingest drops the second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

BOUNCED, COMPLAINED = "Email Bounced", "Email Marked as Spam"  # the Segment Email spec's events


def refusal_event(
    *, send_id: str, user_id: str | None, email: str, provider: str, at: datetime
) -> dict[str, Any]:
    """The `Email Bounced` track message of the send `send_id`, refused by `provider` at `at` for `email`."""
    who = {"userId": user_id} if user_id else {"anonymousId": f"esp:{provider}"}
    return {
        "type": "track",
        "event": BOUNCED,
        "messageId": f"{provider}-refused-{send_id}",
        **who,
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {"email": email, "send_id": send_id, "provider": provider, "bounce_type": "hard"},
        "context": {"library": {"name": "lakemail-sends"}},
    }

"""The outbound contract shared by rendering, delivery and the sandbox: an email, its ids, its tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

TOKEN_PURPOSE = b"lakemail-unsubscribe:"
ORIGIN_PURPOSE = b"lakemail-origin:"
ORIGIN_ARG = "lakemail_origin"  # the custom arg that says which lakemail home sent an email


@dataclass(frozen=True)
class Email:
    """One rendered email, ready for any provider. `headers` never hold CR or LF (rendering sees to it)."""

    send_id: str
    to: str
    sender: str
    subject: str
    preheader: str
    html: str
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)  # List-Unsubscribe, List-Unsubscribe-Post
    custom_args: Mapping[str, str] = field(default_factory=dict)  # send_id, trigger_id, kind, variant


def send_id_for(trigger_id: str) -> str:
    """The outbox id of a trigger's email: deterministic, so a retried run finds the same row."""
    return "s-" + hashlib.sha256(trigger_id.encode()).hexdigest()[:24]


def _mac(send_id: str, secret: str, purpose: bytes = TOKEN_PURPOSE) -> str:
    digest = hmac.new(secret.encode(), purpose + send_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def origin_mark(send_id: str, secret: str) -> str:
    """What only the lakemail home holding `secret` can put on the email of `send_id` (ORIGIN_ARG)."""
    return _mac(send_id, secret, ORIGIN_PURPOSE)


def sent_by_us(custom_args: Mapping[str, object], send_id: str, secret: str) -> bool:
    """Whether a provider's copy of an email carries `send_id` and this home's mark for it: anyone
    with the provider's key can store a message under a `send_id`, only this home can mark it."""
    mark = custom_args.get(ORIGIN_ARG)
    return (
        custom_args.get("send_id") == send_id
        and isinstance(mark, str)
        and hmac.compare_digest(mark.encode(), origin_mark(send_id, secret).encode())
    )


def unsubscribe_token(send_id: str, secret: str) -> str:
    """An opaque, signed unsubscribe token: the send's id (a hash, no person data) and its HMAC."""
    return f"{send_id}.{_mac(send_id, secret)}"


def verify_unsubscribe_token(token: str, secret: str) -> str | None:
    """The send id a token was made for, or None when it is malformed (any character outside ASCII:
    compare_digest raises on such a str) or its signature is wrong."""
    send_id, dot, mac = token.partition(".")
    if not dot or not send_id.startswith("s-") or len(send_id) > 64 or not token.isascii():
        return None
    return send_id if hmac.compare_digest(mac, _mac(send_id, secret)) else None

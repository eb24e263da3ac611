"""The outbound contract shared by rendering, delivery and the sandbox: an email, its ids, its tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

TOKEN_PURPOSE = b"lakemail-unsubscribe:"


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


def _mac(send_id: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), TOKEN_PURPOSE + send_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def unsubscribe_token(send_id: str, secret: str) -> str:
    """An opaque, signed unsubscribe token: the send's id (a hash, no person data) and its HMAC."""
    return f"{send_id}.{_mac(send_id, secret)}"


def verify_unsubscribe_token(token: str, secret: str) -> str | None:
    """The send id a token was made for, or None when it is malformed or its signature is wrong."""
    send_id, dot, mac = token.partition(".")
    if not dot or not send_id.startswith("s-") or len(send_id) > 64:
        return None
    return send_id if hmac.compare_digest(mac, _mac(send_id, secret)) else None

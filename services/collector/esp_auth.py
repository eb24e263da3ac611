"""Who may post the providers' event webhooks (`POST /v1/esp/sendgrid`, `/v1/esp/postmark`): their own
secret, never the tracking write key (found by review: the write key was taken, and it is public, in every
page's `/lakemail.js` snippet, so anyone could land forged bounces and spam reports that suppress any
shopper's address).

- `LAKEMAIL_ESP_WEBHOOK_KEY` is the HTTP Basic password of the webhook URL the shop gives the provider
  (`https://lakemail:<key>@host/v1/esp/postmark`; the user is not checked), compared in constant time.
- With `LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY` (the base64 DER key SendGrid shows for its Signed Event
  Webhook), a SendGrid post must carry a valid ECDSA P-256 / SHA-256 signature over the timestamp header
  followed by the body as received, at most REPLAY_WINDOW from the collector's clock; no Basic secret.
- Neither configured for a provider: its route answers 503 (the provider retries once it is set).
The keys are never logged nor echoed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from services.collector.wire import WireError

if TYPE_CHECKING:  # cryptography loads only where a public key is configured
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

KEY_VARIABLE = "LAKEMAIL_ESP_WEBHOOK_KEY"
PUBLIC_KEY_VARIABLE = "LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY"
MIN_KEY_CHARS = 16  # a guessable key would let anyone suppress anyone
KEY_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # what a URL's userinfo carries without percent-encoding
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
# A signed post older (or newer) than this is refused as a replay (401). SendGrid retries a failed post for
# up to 24 h, and does not say whether a retry is signed again: a narrower window could refuse a real
# bounce for good. A genuine event replayed inside it lands nothing new (its messageId is the provider's
# event id, so the ingest counts it a duplicate).
REPLAY_WINDOW = timedelta(hours=36)


def check_webhook_key(key: str, write_keys: Sequence[str]) -> None:
    """ValueError naming LAKEMAIL_ESP_WEBHOOK_KEY (never its value) unless it can be the webhooks' secret."""
    if len(key) < MIN_KEY_CHARS or KEY_CHARS.fullmatch(key) is None:
        raise ValueError(
            f"{KEY_VARIABLE} must be at least {MIN_KEY_CHARS} characters of letters, digits and - _ . ~ "
            "(it goes in the webhook URL; e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if any(hmac.compare_digest(key.encode(), known.encode()) for known in write_keys):
        raise ValueError(
            f"{KEY_VARIABLE} must not be a write key: LAKEMAIL_WRITE_KEY is public (browsers carry it)"
        )


def load_public_key(text: str) -> EllipticCurvePublicKey:
    """SendGrid's verification key (base64 DER, as its Mail Settings show it) as a P-256 public key;
    ValueError naming LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY otherwise."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(
            f"{PUBLIC_KEY_VARIABLE} must be the base64 DER P-256 public key SendGrid shows for its Signed "
            "Event Webhook (Settings > Mail Settings > Event Webhooks)"
        )
    return key


@dataclass(frozen=True)
class EspAuth:
    """The webhooks' credentials: `key` (Basic password) and SendGrid's signing key (see the module)."""

    key: str | None = None
    sendgrid_key: EllipticCurvePublicKey | None = None
    window: timedelta = REPLAY_WINDOW

    @classmethod
    def of(cls, key: str | None, public_key: str | None, write_keys: Sequence[str]) -> EspAuth:
        """The credentials as configured (ValueError naming the variable for one that cannot be)."""
        if key:
            check_webhook_key(key, write_keys)
        return cls(key or None, load_public_key(public_key) if public_key else None)

    def admit(self, provider: str, headers: Mapping[str, str]) -> None:
        """Before the body is read: WireError 503 when `provider`'s webhook is not configured, 401 when
        the Basic password is not the key (a signed SendGrid post is checked by `verify`)."""
        if provider == "sendgrid" and self.sendgrid_key is not None:
            return
        if self.key is None:
            needs = KEY_VARIABLE + (f" or {PUBLIC_KEY_VARIABLE}" if provider == "sendgrid" else "")
            off = f"the {provider} webhook is off until {needs} is set"
            raise WireError(503, "webhook_not_configured", off)
        password = basic_password(headers.get("authorization"))
        if password is None or not hmac.compare_digest(password, self.key.encode()):
            raise WireError(401, "invalid_webhook_key", f"the HTTP Basic password must be {KEY_VARIABLE}")

    def verify(self, provider: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """With SendGrid's key: WireError 401 unless `body` (as received) is signed by it, recently."""
        if provider != "sendgrid" or self.sendgrid_key is None:
            return
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        signature, stamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER, "").strip()
        if not signature or not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise WireError(401, "invalid_signature", "SendGrid's Signed Event Webhook headers are missing")
        if abs(now.timestamp() - int(stamp)) > self.window.total_seconds():
            raise WireError(401, "stale_signature", f"the signature's timestamp is over {self.window} away")
        try:
            der = base64.b64decode(signature.strip(), validate=True)
            self.sendgrid_key.verify(der, stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise WireError(401, "invalid_signature", "the body is not signed by SendGrid's key") from None


def basic_password(authorization: str | None) -> bytes | None:
    """The password of an HTTP Basic `authorization` header, None when there is none."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except ValueError:  # binascii.Error, or a header of bytes outside ASCII (was a 500)
        return None
    _, colon, password = decoded.partition(b":")  # the user is not checked
    return password if colon else None

"""Delivery policy (pure): what a provider's answer means, how long to wait, and what to keep of an error.

No HTTP here; `resources.email.deliver` runs the loop that applies this policy.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum

MAX_ERROR_CHARS = 300
# Postmark answers 422 with these ErrorCodes when the account or sender, not the email, is at fault:
# bad token (10), sender signature missing / unconfirmed (400, 401), not allowed to send (405),
# account pending (412), account may not send (413). Every send would fail alike, so the circuit opens.
POSTMARK_ACCOUNT_ERRORS = frozenset({10, 400, 401, 405, 412, 413})
# Postmark's 422 ErrorCode for an inactive recipient: the address hard-bounced, complained of spam or was
# deactivated by hand, and Postmark sends it nothing more. The email fails; the address is suppressed.
POSTMARK_INACTIVE_RECIPIENT = 406
# An X-RateLimit-Reset below this cannot be an epoch time (it is before 2001): read it as seconds.
EPOCH_FLOOR = 1_000_000_000
# The longest wait a server's hint may ask for: a Retry-After of 10**12 s (or a reset in the year 30000)
# is no plan, and a timedelta cannot even hold it. The outbox's staleness still ends a row held too long.
MAX_SERVER_WAIT = 24 * 3600.0
REDIRECT_HINT = "LAKEMAIL_ESP_URL must be the send API's own URL, https:// where it redirects there"
ADDRESS = re.compile(r"[^\s<>()\[\],;:'\"@]+@[^\s<>()\[\],;:'\"@]+")


class Verdict(StrEnum):
    """What an answer (or its absence) means for the send."""

    SENT = "sent"
    RETRY = "retry"  # transient: try again after a delay
    PERMANENT = "permanent"  # this email will never go through as it is
    AUTH = "auth"  # credentials or account: every send would fail, so the circuit opens
    CONFIG = (
        "config"  # the provider setting is wrong (its URL redirects): every send alike, the circuit opens
    )
    UNKNOWN = "unknown"  # the provider may or may not have taken it: never resend blindly


def classify(status_code: int, *, same_target: bool = False) -> Verdict:
    """2xx sent; 408, 429 and 5xx retry; 401/403 auth; other 4xx permanent; a redirect config, unless it
    may follow a request acted on (unknown); anything else unknown.

    `same_target`: the redirect leads to the URL the request went to but for its scheme, host or port.
    """
    if 200 <= status_code < 300:
        return Verdict.SENT
    if status_code in (408, 429) or 500 <= status_code < 600:
        return Verdict.RETRY
    if status_code in (401, 403):
        return Verdict.AUTH
    if 400 <= status_code < 500:
        return Verdict.PERMANENT
    if 300 <= status_code < 400:
        # 301, 307 and 308 send the request itself elsewhere (http:// to https://, a moved API): it was not
        # taken, and every send will be redirected alike. A 303, or a 302 to another path, may be a
        # post-redirect-get after the request was acted on: no telling.
        if status_code == 303 or (status_code == 302 and not same_target):
            return Verdict.UNKNOWN
        return Verdict.CONFIG
    return Verdict.UNKNOWN  # 1xx: not an answer a send API gives, so no telling what happened


def classify_response(
    status_code: int, body: bytes, *, same_target: bool = False, idempotent: bool = False
) -> Verdict:
    """`classify`, refined by the body: a Postmark account-level error opens the circuit. To a request
    with an idempotency key (`idempotent`), a 409 says a request with that key is still being processed
    (the IETF Idempotency-Key draft): the email may go, no telling yet."""
    if idempotent and status_code == 409:
        return Verdict.UNKNOWN
    verdict = classify(status_code, same_target=same_target)
    if verdict is Verdict.PERMANENT and _error_code(body) in POSTMARK_ACCOUNT_ERRORS:
        return Verdict.AUTH
    return verdict


def inactive_recipient(status_code: int, body: bytes) -> bool:
    """Whether the answer refuses the recipient's address itself (Postmark's 422, ErrorCode 406)."""
    return status_code == 422 and _error_code(body) == POSTMARK_INACTIVE_RECIPIENT


@dataclass(frozen=True)
class RetryBudget:
    """How far one send may go in one run: attempts, wall time, and the backoff curve."""

    max_attempts: int = 5
    max_seconds: float = 60.0
    base: float = 0.5
    cap: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_seconds < 0 or self.base < 0 or self.cap < 0:
            raise ValueError("max_seconds, base and cap must not be negative")

    def allows(self, attempts: int, elapsed: float, delay: float) -> bool:
        """Whether another attempt fits after `attempts` made, `elapsed` seconds spent, `delay` to wait."""
        return attempts < self.max_attempts and elapsed + delay <= self.max_seconds


def server_delay(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the server asked us to wait (Retry-After, X-RateLimit-Reset; the later wins), or None.

    Never negative, never over MAX_SERVER_WAIT."""
    lowered = {name.lower(): value for name, value in headers.items()}
    waits = [
        wait
        for wait in (
            _retry_after(lowered.get("retry-after"), now),
            _rate_limit_reset(lowered.get("x-ratelimit-reset"), now),
        )
        if wait is not None
    ]
    return max(waits) if waits else None


def retry_delay(
    attempt: int,
    headers: Mapping[str, str],
    *,
    now: float,
    rng: random.Random,
    base: float = 0.5,
    cap: float = 30.0,
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry).

    The server's own hint wins and is never shortened (nor capped: the budget decides whether to wait
    that long); without one, exponential backoff with full jitter. Never negative.
    """
    hinted = server_delay(headers, now=now)
    if hinted is not None:
        return hinted
    return max(0.0, rng.uniform(0.0, min(cap, base * 2 ** max(attempt, 0))))


def describe_error(status_code: int, body: bytes) -> str:
    """`HTTP <status>: <provider message>`, without addresses, truncated: safe to store in `last_error`."""
    if 300 <= status_code < 400:  # never where to: a webhook's URL may carry a token
        return f"HTTP {status_code}: redirected, not followed ({REDIRECT_HINT})"
    message = provider_message(body)
    text = f"HTTP {status_code}: {message}" if message else f"HTTP {status_code}"
    return redact(text)[:MAX_ERROR_CHARS]


def provider_message(body: bytes) -> str | None:
    """The error message in a provider's JSON answer (SendGrid `errors[]`, Postmark `Message`), if any."""
    document = _json(body)
    if not isinstance(document, dict):
        return None
    errors = document.get("errors")
    if isinstance(errors, list):
        messages = [str(e["message"]) for e in errors if isinstance(e, dict) and e.get("message")]
        if messages:
            return "; ".join(messages)
    for key in ("Message", "message", "error"):
        value = document.get(key)
        if isinstance(value, str) and value:
            code = document.get("ErrorCode")
            return f"{value} (ErrorCode {code})" if type(code) is int else value
    return None


def redact(text: str) -> str:
    """`text` with anything shaped like an email address replaced (providers echo the recipient)."""
    return ADDRESS.sub("<address>", text)


def _error_code(body: bytes) -> int | None:
    """A Postmark-shaped answer's `ErrorCode`, when it is a number: any other answer may come back (a
    webhook's receiver, a proxy), and an object or a list there raised TypeError out of the set lookup,
    failing the run with the row's attempt marker left (found by review)."""
    document = _json(body)
    code = document.get("ErrorCode") if isinstance(document, dict) else None
    return code if type(code) is int else None  # a bool is no code


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date (RFC 9110), as seconds from `now`."""
    if value is None:
        return None
    text = value.strip()
    try:
        return _seconds(float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by convention, though parsedate leaves it naive
        when = when.replace(tzinfo=UTC)
    return _seconds(when.timestamp() - now)


def _rate_limit_reset(value: str | None, now: float) -> float | None:
    """X-RateLimit-Reset as epoch seconds (SendGrid's form), as seconds from `now`."""
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    return _seconds(reset if reset < EPOCH_FLOOR else reset - now)


def _seconds(value: float) -> float | None:
    """A wait in seconds within [0, MAX_SERVER_WAIT]; None for NaN or infinity (a header we cannot trust)."""
    return min(max(0.0, value), MAX_SERVER_WAIT) if math.isfinite(value) else None

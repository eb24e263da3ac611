"""What a collector is configured with: where messages land, who may send, and its bounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resources.landing import land
from services.collector.backlog import Backlog, BacklogLimits
from services.collector.commit import Writer
from services.collector.esp import UserLookup
from services.collector.profiles import ProfileApi
from services.reading import BODY_SECONDS


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _no_backlog() -> Backlog:
    return Backlog(files=0, bytes=0, free_bytes=1 << 62)


@dataclass(frozen=True)
class CollectorConfig:
    """Where messages land, who may send, and the bounds (see `lakemail serve collector --help`)."""

    landing: Path  # the landing zone root: messages land in its `events/` folder
    # LAKEMAIL_WRITE_KEY: public (the snippet and the shop's pages carry the first one); their messages land
    # marked untrusted, and none of them suppresses a shopper (services.collector.write_keys)
    write_keys: tuple[str, ...]
    # LAKEMAIL_SERVER_WRITE_KEY: secret keys for the shop's back end, trusted as files landed directly are
    # (an `Unsubscribed` or a bounce sent with one suppresses); none may be a public key (ValueError)
    server_write_keys: tuple[str, ...] = ()
    probe: Callable[[], Backlog] = _no_backlog  # measures the landing zone's backlog
    limits: BacklogLimits = field(default_factory=BacklogLimits)
    probe_seconds: float = 1.0
    linger: float = 0.1  # a file gathers requests this long after its first one
    max_messages_per_file: int = 5000
    max_queued_bytes: int = 64 * 1024 * 1024  # held in memory waiting to land: past it, 429
    max_requests: int = 256  # requests being read or landed at once: past it, 429
    max_body_key_requests: int = 128  # of them, with the key only in the body (the snippet's): past it, 429
    body_seconds: float = BODY_SECONDS  # a request's body must arrive within this: past it, 408
    shop_catalog: list[dict[str, Any]] | None = None  # the demo shop's products; None: no shop
    clock: Callable[[], datetime] = _utc_now
    click_secret: str | None = None  # LAKEMAIL_SECRET: serves the click redirect /c/{token} (None: not)
    # a send's user (services.unsubscribe.user_for_send over the lake): with click_secret, serves
    # the unsubscribe links' /unsubscribe/{token} (None: not)
    user_for_send: Callable[[str], str | None] | None = None
    # the users of many sends at once (services.unsubscribe.users_for_sends): a provider's webhook
    # event that names this home's send lands under its user (None: under the provider's anonymous id)
    users_for_sends: UserLookup | None = None
    writer: Writer = land
    profiles: ProfileApi | None = None  # the profile API /v1/profiles/... (services.collector.profiles)
    # the providers' webhooks' own secret, their HTTP Basic password (LAKEMAIL_ESP_WEBHOOK_KEY), and
    # SendGrid's signing key, base64 DER (LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY): neither, the webhooks 503
    esp_webhook_key: str | None = None
    sendgrid_public_key: str | None = None

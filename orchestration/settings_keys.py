"""The collector's write keys (`LAKEMAIL_WRITE_KEY`, public; `LAKEMAIL_SERVER_WRITE_KEY`, secret) and the
secrets that must never be a public one, checked at start-up; a message names the variable, never a
value. Values come in from `orchestration.settings`, the one reader of the environment."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from orchestration.settings_values import SettingsError

WRITE_KEY_VARIABLE = "LAKEMAIL_WRITE_KEY"
SERVER_WRITE_KEY_VARIABLE = "LAKEMAIL_SERVER_WRITE_KEY"  # services.collector.write_keys
API_KEY_VARIABLE = "LAKEMAIL_API_KEY"
ESP_WEBHOOK_KEY_VARIABLE = "LAKEMAIL_ESP_WEBHOOK_KEY"
SENDGRID_PUBLIC_KEY_VARIABLE = "LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY"
SECRET_VARIABLE = "LAKEMAIL_SECRET"
PUBLIC = "LAKEMAIL_WRITE_KEY is public (every page's snippet carries it)"


def split_write_keys(text: str) -> tuple[str, ...]:
    """The write keys of `LAKEMAIL_WRITE_KEY=text`: comma-separated, blanks around them and empty ones left
    out."""
    return tuple(key.strip() for key in text.split(",") if key.strip())


def check_keys(env: Mapping[str, str]) -> None:
    """SettingsError unless the collector can take the write keys of `env` and no secret of it is one of
    them (found by review: such values were taken, and failed or leaked only once the collector served)."""
    text = env.get(WRITE_KEY_VARIABLE)
    keys = split_write_keys(text or "")
    if text is not None and not keys:  # `up` announced them, and its collector exited for want of one
        raise SettingsError(
            f"{WRITE_KEY_VARIABLE} is set but holds no key: set comma-separated write keys, or unset it "
            "(lakemail up then uses the demo key)"
        )
    if any(":" in key for key in keys):  # Segment's libraries: refused 401, every request
        raise SettingsError(
            f"{WRITE_KEY_VARIABLE} must not hold a key with a ':': Segment's libraries send the key as the "
            "HTTP Basic user name, which ends at the first ':'"
        )
    # The profile API's key would open every shopper's profile to anyone; the HMAC secret would let anyone
    # sign unsubscribe links (unsubscribing any shopper) and clicks.
    for name, value in (
        (API_KEY_VARIABLE, env.get(API_KEY_VARIABLE, "").strip()),
        (SECRET_VARIABLE, env.get(SECRET_VARIABLE, "")),
    ):
        if value and any(hmac.compare_digest(value.encode(), key.encode()) for key in keys):
            raise SettingsError(f"{name} must not be a write key: {PUBLIC}")
    check_server_write_keys(env, keys)
    check_esp_webhooks(env, keys)


def check_server_write_keys(env: Mapping[str, str], keys: tuple[str, ...]) -> None:
    """SettingsError naming LAKEMAIL_SERVER_WRITE_KEY when it holds a key the collector cannot take as
    secret (short, holding a `:`, or one of the public write keys `keys`); never a value. Unset or
    empty: no server key (the demo needs none: its browsers and simulator send nothing that suppresses)."""
    server = split_write_keys(env.get(SERVER_WRITE_KEY_VARIABLE) or "")
    if not server:
        return
    from services.collector.write_keys import check_server_keys

    try:
        check_server_keys(server, keys)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def check_esp_webhooks(env: Mapping[str, str], keys: tuple[str, ...]) -> None:
    """SettingsError naming LAKEMAIL_ESP_WEBHOOK_KEY or LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY when set to
    something the collector cannot take (a short key, a write key, not a P-256 key); never the value."""
    key, public_key = env.get(ESP_WEBHOOK_KEY_VARIABLE), env.get(SENDGRID_PUBLIC_KEY_VARIABLE)
    if not key and not public_key:
        return
    from services.collector.esp_auth import EspAuth

    try:
        EspAuth.of(key, public_key, keys)
    except ValueError as error:
        raise SettingsError(str(error)) from None

"""Where recipients' links point: `LAKEMAIL_PUBLIC_URL` (unsubscribe) and `LAKEMAIL_CLICK_URL` (the
click redirect). Values come in from `orchestration.settings`, the one reader of the environment."""

from __future__ import annotations

import httpx

from orchestration.settings_values import SettingsError
from transforms.sends.clicks import LOCAL_COLLECTOR_URL


def public_url_for(esp: str, url: str | None, name: str = "LAKEMAIL_PUBLIC_URL") -> str | None:
    """`LAKEMAIL_PUBLIC_URL`, where recipients' unsubscribe and click links point. A real provider
    needs an `https:` one: without it the links would name the provider's API or the local sandbox."""
    if url is None and esp == "sandbox":
        return None  # the local sandbox serves /unsubscribe itself
    schemes, need = (
        (("http", "https"), "an http: or https: URL") if esp == "sandbox" else (("https",), "an https: URL")
    )
    try:
        parsed = httpx.URL(url or "")
    except httpx.InvalidURL:
        parsed = None
    if url is None:
        raise SettingsError(f"{name} must be set, to {need}, with LAKEMAIL_ESP={esp}")
    if parsed is None or parsed.scheme not in schemes or not parsed.host:
        raise SettingsError(f"{name}={url!r} must be {need} with LAKEMAIL_ESP={esp}")
    return url


def click_url_for(esp: str, click: str | None, public: str | None) -> str:
    """Where the click redirect (`/c/<token>`, the collector's) is reached: `LAKEMAIL_CLICK_URL`, else
    `LAKEMAIL_PUBLIC_URL` with a real provider (an `https:` URL), else the local collector (the sandbox)."""
    if click or esp != "sandbox":
        name = "LAKEMAIL_CLICK_URL" if click else "LAKEMAIL_PUBLIC_URL"
        return public_url_for(esp, click or public, name) or LOCAL_COLLECTOR_URL
    return LOCAL_COLLECTOR_URL

"""Where recipients' links point: `LAKEMAIL_PUBLIC_URL` (unsubscribe) and `LAKEMAIL_CLICK_URL` (the
click redirect). Values come in from `orchestration.settings`, the one reader of the environment."""

from __future__ import annotations

import httpx

from orchestration.settings_values import SettingsError
from resources.providers import MAX_PORT
from transforms.sends.clicks import LOCAL_COLLECTOR_URL
from transforms.sends.safety import safe_url


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
    if parsed is not None and parsed.userinfo:  # never echoed: it may hold a password
        raise SettingsError(f"{name} must be {need} without a user name or password")
    if parsed is None or parsed.scheme not in schemes or not parsed.host:
        raise SettingsError(f"{name}={url!r} must be {need} with LAKEMAIL_ESP={esp}")
    if parsed.port is not None and not 1 <= parsed.port <= MAX_PORT:  # every link dead (found by review)
        raise SettingsError(f"{name}={url!r} names no port: ports are 1 to {MAX_PORT}")
    _check_link_base(url, parsed, name)
    return url


def _check_link_base(url: str, parsed: httpx.URL, name: str) -> None:
    """SettingsError unless `url` takes a path after it (`/unsubscribe/<token>`, `/c/<token>`) and stays a
    link every email may carry: after a query or a fragment the token is no longer in the path (every
    link a 404), and one `safe_url` refuses (a space, a quote) aborted every email, each only when sent
    (found by review)."""
    if "?" in url or "#" in url:
        raise SettingsError(f"{name}={url!r} must not hold a query or a fragment: links add their path to it")
    as_https = "https" + url[len(parsed.scheme) :]
    if safe_url(as_https, "") != as_https:
        raise SettingsError(f"{name}={url!r} must not hold spaces, quotes, brackets or control characters")


def click_url_for(esp: str, click: str | None, public: str | None) -> str:
    """Where the click redirect (`/c/<token>`, the collector's) is reached: `LAKEMAIL_CLICK_URL`, else
    `LAKEMAIL_PUBLIC_URL` with a real provider (an `https:` URL), else the local collector (the sandbox)."""
    if click or esp != "sandbox":
        name = "LAKEMAIL_CLICK_URL" if click else "LAKEMAIL_PUBLIC_URL"
        return public_url_for(esp, click or public, name) or LOCAL_COLLECTOR_URL
    return LOCAL_COLLECTOR_URL

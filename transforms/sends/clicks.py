"""Click tracking, pure part: every marketing link of an email as a signed click-redirect token, the
token checked again by the collector's `GET /c/{token}`, and whether a click was a person's.

A token carries the send (send_id, trigger_id, kind, variant), the link's role, the `https:` URL it
leads to and when the email was made, under an HMAC with LAKEMAIL_SECRET: the redirect goes only to
that URL (never an open redirect), and no person data is in it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from transforms.sends.content import CART_KINDS, KINDS, PRODUCT_KINDS, VARIANTS
from transforms.sends.safety import URL_LIMIT, safe_url

CLICK_PURPOSE = b"lakemail-click:"
LOCAL_COLLECTOR_URL = "http://127.0.0.1:8000"  # `lakemail serve collector`'s default port
ROLES = ("product", "cart", "recommendation", "home")
MAC_CHARS = 24  # 18 bytes of the HMAC, base64
FIELDS_BYTES = 256  # the token's JSON but its URL (ids of 26 characters, kinds of up to 18), with room
# The longest token of a URL `safe_url` keeps (URL_LIMIT characters of up to 4 UTF-8 bytes each, in the
# JSON as they are), base64: a longer one is no token of ours.
MAX_TOKEN_CHARS = -(-(4 * URL_LIMIT + FIELDS_BYTES) * 4 // 3) + 1 + MAC_CHARS
# A scanner opens links within seconds of delivery, before a person could have read the email.
TOO_SOON_SECONDS = 10.0
# Mail security scanners, link previewers and HTTP libraries (no person clicks with these).
SCANNER_AGENTS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|preview|scanner|proofpoint|mimecast|barracuda|safelinks|"
    r"microsoft office|ms-office|outlook-ios-linkpreview|python-requests|python-httpx|python-urllib|"
    r"aiohttp|curl/|wget/|go-http-client|java/|okhttp|libwww|headlesschrome|phantomjs|httpclient",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ClickLink:
    """What a click-redirect token says: the send, the link's role, its URL, when the email was made."""

    send_id: str
    trigger_id: str
    kind: str
    variant: str
    role: str
    url: str
    issued_at: float  # epoch seconds

    def properties(self) -> dict[str, str]:
        return {
            "send_id": self.send_id,
            "trigger_id": self.trigger_id,
            "kind": self.kind,
            "variant": self.variant,
            "role": self.role,
            "link_url": self.url,
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(payload: str, secret: str) -> str:
    return _b64(hmac.new(secret.encode(), CLICK_PURPOSE + payload.encode(), hashlib.sha256).digest()[:18])


def click_token(link: ClickLink, secret: str) -> str:
    """The signed, URL-safe token of `link`: its fields as JSON in UTF-8 (a non-ASCII link as it is, not
    in `\\uXXXX` escapes of 6 or 12 bytes a character), base64, then the MAC. Tokens made with escapes
    still verify."""
    fields = [
        link.send_id,
        link.trigger_id,
        link.kind,
        link.variant,
        link.role,
        link.url,
        int(link.issued_at),
    ]
    payload = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_mac(payload, secret)}"


def verify_click_token(token: str, secret: str) -> ClickLink | None:
    """The link a token was made for, or None when it is malformed, forged or leads anywhere unsafe
    (our tokens are base64 and a dot: one with any other character is no token of ours)."""
    if not token.isascii():  # compare_digest raises on a str that is not ASCII
        return None
    payload, dot, mac = token.rpartition(".")
    if not dot or len(token) > MAX_TOKEN_CHARS or not hmac.compare_digest(mac, _mac(payload, secret)):
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(fields, list) or len(fields) != 7 or not isinstance(fields[6], int):
        return None
    send_id, trigger_id, kind, variant, role, url, issued = fields
    if not all(isinstance(v, str) for v in (send_id, trigger_id, kind, variant, role, url)):
        return None
    if kind not in KINDS or variant not in VARIANTS or role not in ROLES or not send_id.startswith("s-"):
        return None
    if safe_url(url, "") != url:  # signed, but still never anything but an https link
        return None
    return ClickLink(send_id, trigger_id, kind, variant, role, url, float(issued))


def bot_reason(method: str, user_agent: str | None, issued_at: float, now: datetime) -> str | None:
    """Why a click looks like a machine's (a HEAD, a scanner's user agent, too soon after delivery);
    None for a person's. Such clicks are recorded, flagged, and not counted. "Delivery" here is when the
    token was made (`issued_at`, just before the provider call); measurement judges again by the send's
    `sent_at` (transforms.measure.attribution.clicks_of)."""
    if method.upper() == "HEAD":
        return "head_request"
    if not (user_agent or "").strip():
        return "no_user_agent"
    if SCANNER_AGENTS.search(user_agent or ""):
        return "scanner_user_agent"
    if now.timestamp() - issued_at < TOO_SOON_SECONDS:
        return "too_soon_after_delivery"
    return None


Link = Callable[[str, str], str]  # (url, role) -> the click-redirect URL


def _cards(items: Any, role: str, link: Link) -> Any:
    return [{**item, "url": link(item["url"], role) if item.get("url") else ""} for item in items or []]


def tracked_context(context: Mapping[str, Any], kind: str, link: Link) -> dict[str, Any]:
    """`context` (an email's, `content.build_content`) with every marketing link through `link`."""
    out = dict(context)
    shop = dict(out.get("shop") or {})
    if shop.get("home_url"):
        shop["home_url"] = link(shop["home_url"], "home")
    out["shop"] = shop
    if out.get("cta_url"):
        role = "cart" if kind in CART_KINDS else "product" if kind in PRODUCT_KINDS else "home"
        out["cta_url"] = link(out["cta_url"], role)
    if isinstance(out.get("cart"), Mapping):
        out["cart"] = {**out["cart"], "lines": _cards(out["cart"].get("lines"), "cart", link)}
    if isinstance(out.get("product"), Mapping) and out["product"].get("url"):
        out["product"] = {**out["product"], "url": link(out["product"]["url"], "product")}
    out["recommendations"] = _cards(out.get("recommendations"), "recommendation", link)
    return out

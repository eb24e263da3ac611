"""What data may put into an email: https links only, header-safe text, prices with their currency."""

from __future__ import annotations

import math
import re
import unicodedata
from urllib.parse import urlsplit

HEADER_LIMIT = 998  # RFC 5322's line limit
NAME_LIMIT = 120  # names of people and products, so one odd value cannot swamp a layout or a subject
URL_LIMIT = 2048
CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}
_URL_FORBIDDEN = frozenset("<>\"'`\\")  # never valid unencoded in a URL; a sign of markup injection
_KEPT_FORMAT_CHARS = frozenset("\u200d")  # zero-width joiner: part of emoji sequences
# What mail clients make a link of in plain text: a scheme, `mailto:`, `www.`, an address, or a dotted host
# name ending in letters (`evil.example/win`; `Dr. Who`, `e.g.` and `0.5l` are none).
_LINK_LIKE = re.compile(
    r"[a-z][a-z0-9+.-]*://|mailto:|www\.|@|[^\W_][\w-]*(?:\.[\w-]+)*\.[^\W\d_]{2,}(?!\w)", re.IGNORECASE
)
# Put between `=` and `?`: an invisible word joiner, so no RFC 2047 encoded-word starts there.
ENCODED_WORD_BREAK = "=\u2060?"


def safe_url(url: str | None, fallback: str) -> str:
    """`url` when it is an absolute https URL with a host and nothing odd in it, else `fallback`."""
    text = (url or "").strip()
    if not text or len(text) > URL_LIMIT:
        return fallback
    if any(c in _URL_FORBIDDEN or unicodedata.category(c)[0] in "CZ" for c in text):
        return fallback  # control, format and space characters, and markup
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return fallback
    if parts.scheme.lower() != "https" or not host or "@" in parts.netloc:
        return fallback  # userinfo before the host is a phishing trick
    return text


def holds_link(text: str) -> bool:
    """Whether `text` (a name from an event) holds something a mail client would show as a link: a name
    is text, and a link in the shop's email must be the shop's own (fullwidth and ideographic stops are
    dots too)."""
    folded = unicodedata.normalize("NFKC", text).replace("\u3002", ".")
    return _LINK_LIKE.search(folded) is not None


def header_value(text: str, limit: int = HEADER_LIMIT) -> str:
    """`text` fit for an email header: control and line-break characters as spaces, trimmed, bounded."""
    chars = []
    for c in text:
        category = unicodedata.category(c)
        if category in ("Cc", "Zl", "Zp"):
            chars.append(" ")
        elif category != "Cf" or c in _KEPT_FORMAT_CHARS:  # bidi overrides would disguise a subject
            chars.append(c)
    value = " ".join("".join(chars).split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def subject_value(text: str, limit: int) -> str:
    """`header_value` for a subject: no `=?` in it either. A provider writes an ASCII subject into the
    header as it is, and mail clients decode an RFC 2047 encoded-word there (`=?utf-8?q?...?=` in a
    first name would show other words); with a word joiner after each `=` the subject reads as written
    (the provider encodes it whole, as it must a non-ASCII one). Idempotent, as `compose` applies it
    again."""
    return header_value(text, limit).replace("=?", ENCODED_WORD_BREAK)


def format_price(amount: float | None, currency: str) -> str:
    """`amount` with its currency ("€12.50", "12.50 CHF"); "" when there is no amount."""
    if amount is None or not math.isfinite(amount):
        return ""
    code = header_value(currency, limit=8).upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {code}".rstrip()

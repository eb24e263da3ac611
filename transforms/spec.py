"""The landed message format (Segment's spec, as lakemail reads it) and why a line is not a message.

What is kept of a message is the `events` table's contract, in `transforms.schema`.
"""

from __future__ import annotations

from enum import StrEnum

import polars as pl

MAX_MESSAGE_BYTES = 32 * 1024  # Segment's own limit for one message, as its clients measure it (unstamped)
# What a landed line may hold besides the message: the stamps the collector (or Segment) adds. Ours are
# `,"messageId":"<uuid4>"` (51 bytes, when the client sent none), `,"receivedAt":"...Z"` (40), the
# batch's `,"sentAt":...` (44 as Segment's Python library writes it) and, under a public write key,
# `,"lakemailKeyKind":"public"` (27): 162 bytes, so 256 leaves 94 for a longer `sentAt`. A message the
# collector took (at most 32 KB as sent) is never too long here.
STAMP_MARGIN_BYTES = 256
MAX_LINE_BYTES = MAX_MESSAGE_BYTES + STAMP_MARGIN_BYTES  # one landed line: a message and its stamps
RAW_QUARANTINE_BYTES = 2048  # how much of a rejected line `quarantine.raw` keeps
KNOWN_TYPES = ("track", "identify", "page", "screen", "group", "alias")
# What the collector stamps on a message it took under a public write key (LAKEMAIL_WRITE_KEY, which every
# browser holds), after taking out any such field a client sent: `"lakemailKeyKind": "public"`. A message
# that carries the field (any value) is untrusted: it may not suppress anyone, and its event id is its
# messageId in a namespace of its own (`~public:`), so it claims no trusted message's id
# (transforms.ingest.trust). Messages under a server key, and files landed directly, carry none.
KEY_KIND_FIELD = "lakemailKeyKind"
PUBLIC_KEY_KIND = "public"


class Reason(StrEnum):
    """Why a landed line was quarantined (the `quarantine.reason` code)."""

    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    LINE_TOO_LONG = "line_too_long"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"  # quantity beyond int64, price/total/revenue not finite
    BATCH_ENVELOPE = "batch_envelope"  # a whole `{"batch": [...]}` request body landed as one line
    UNTRUSTED_SUPPRESSION = "untrusted_suppression"  # a suppressing event under a public key (trust.py)


# Top-level message fields as landed. Object fields are read as their JSON text: Polars keeps an
# object's text for a String column, so unknown properties survive and nothing fails on odd shapes.
# `batch` is not a message field: it marks a landed `/v1/batch` body (quarantined as BATCH_ENVELOPE);
# nor is KEY_KIND_FIELD: the collector's mark of an untrusted message.
SCALAR_FIELDS = (
    "messageId",
    "type",
    "event",
    "userId",
    "anonymousId",
    "previousId",  # alias
    "groupId",  # group
    "name",  # page, screen
    "category",  # page, screen
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
)
OBJECT_FIELDS = ("properties", "traits", "context")
RAW_MESSAGE_SCHEMA: dict[str, pl.DataType] = {
    name: pl.String() for name in (*SCALAR_FIELDS, *OBJECT_FIELDS, "batch", KEY_KIND_FIELD)
}

# E-commerce v2 properties lifted into typed columns (all other properties stay in `properties`).
PROPERTY_COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    "product_id": ("product_id", pl.String()),
    "sku": ("sku", pl.String()),
    "category": ("category", pl.String()),
    "name": ("product_name", pl.String()),
    "brand": ("brand", pl.String()),
    "price": ("price", pl.Float64()),
    "quantity": ("quantity", pl.Int64()),
    "cart_id": ("cart_id", pl.String()),
    "order_id": ("order_id", pl.String()),
    "checkout_id": ("checkout_id", pl.String()),
    "total": ("total", pl.Float64()),
    "revenue": ("revenue", pl.Float64()),
    "currency": ("currency", pl.String()),
    "query": ("query", pl.String()),
    "url": ("url", pl.String()),
    "image_url": ("image_url", pl.String()),
    "products": ("products", pl.String()),
}
# `context` paths (Segment's common fields) lifted into typed columns for analysts; the whole object
# stays in the `context` JSON column. `ip` is kept truncated only (IPv4 /24, IPv6 /48), here and there.
CONTEXT_COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    "locale": ("locale", pl.String()),
    "timezone": ("timezone", pl.String()),
    "ip": ("context_ip", pl.String()),
    "userAgent": ("context_user_agent", pl.String()),
    "library.name": ("context_library_name", pl.String()),
    "campaign.source": ("context_campaign_source", pl.String()),
    "campaign.medium": ("context_campaign_medium", pl.String()),
    "campaign.name": ("context_campaign_name", pl.String()),
    "page.url": ("context_page_url", pl.String()),
    "page.path": ("context_page_path", pl.String()),
    "page.referrer": ("context_page_referrer", pl.String()),
}

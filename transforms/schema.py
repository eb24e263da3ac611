"""Column schemas of the lake tables this stage writes, and the quarantine reason codes."""

from __future__ import annotations

from enum import StrEnum

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")
MAX_LINE_BYTES = 32 * 1024  # Segment's own limit for one message
KNOWN_TYPES = ("track", "identify", "page")


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


# Top-level message fields as landed. Object fields are read as their JSON text: Polars keeps an
# object's text for a String column, so unknown properties survive and nothing fails on odd shapes.
RAW_MESSAGE_SCHEMA: dict[str, pl.DataType] = {
    name: pl.String()
    for name in (
        "messageId",
        "type",
        "event",
        "userId",
        "anonymousId",
        "timestamp",
        "sentAt",
        "receivedAt",
        "properties",
        "traits",
        "context",
    )
}
OBJECT_FIELDS = ("properties", "traits", "context")
SCALAR_FIELDS = ("messageId", "type", "event", "userId", "anonymousId", "timestamp", "sentAt", "receivedAt")

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
CONTEXT_COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    "locale": ("locale", pl.String()),
    "timezone": ("timezone", pl.String()),
}

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "event_type": pl.String(),
    "event_name": pl.String(),
    "user_id": pl.String(),
    "anonymous_id": pl.String(),
    "event_ts": UTC_TS,
    "sent_at": UTC_TS,
    "received_at": UTC_TS,
    "landed_at": UTC_TS,
    "ingested_at": UTC_TS,
    "event_date": pl.Date(),
    **{column: dtype for column, dtype in PROPERTY_COLUMNS.values()},
    **{column: dtype for column, dtype in CONTEXT_COLUMNS.values()},
    "properties": pl.String(),
    "traits": pl.String(),
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "batch_id": pl.Int64(),
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
    "ingested_at": UTC_TS,
    "batch_id": pl.Int64(),
}

INGEST_LOG_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "bytes": pl.Int64(),
    "sha256": pl.String(),
    "lines": pl.Int64(),
    "accepted": pl.Int64(),
    "quarantined": pl.Int64(),
    "duplicates": pl.Int64(),
    "batch_id": pl.Int64(),
    "status": pl.String(),
    "detail": pl.String(),
    "landed_at": UTC_TS,
    "committed_at": UTC_TS,
}

IDENTITIES_SCHEMA: dict[str, pl.DataType] = {
    "anonymous_id": pl.String(),
    "user_id": pl.String(),
    "first_seen_at": UTC_TS,
}

RAW_QUARANTINE_BYTES = 2048  # how much of a rejected line `quarantine.raw` keeps

# Columns whose min/max may enter the Delta log as file statistics. Person-identifying columns (user
# and anonymous ids, traits, raw lines) never do, so an erasure can leave no trace in `_delta_log`.
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": (
        "event_id",
        "event_type",
        "event_name",
        "event_ts",
        "received_at",
        "landed_at",
        "ingested_at",
        "event_date",
        "product_id",
        "source_file",
        "source_line",
        "batch_id",
    ),
    "quarantine": ("source_file", "source_line", "reason", "ingested_at", "batch_id"),
    "ingest_log": ("source_file", "batch_id", "status", "landed_at", "committed_at"),
    "identities": ("first_seen_at",),
    "audit_results": ("audit", "run_at", "passed"),
    "suppressions": ("reason", "since"),
    "erased_events_daily": ("event_date", "event_type", "event_name"),
    "erasures": ("request_id", "erased_at", "passed"),
}

"""Raw messages -> validated, normalised `events` rows; duplicates and identity edges."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import polars as pl

from transforms.schema import (
    CONTEXT_COLUMNS,
    EVENTS_SCHEMA,
    KNOWN_TYPES,
    OBJECT_FIELDS,
    PROPERTY_COLUMNS,
    SCALAR_FIELDS,
    UTC_TS,
    Reason,
)

ISO_TS = "%Y-%m-%dT%H:%M:%S%.f%#z"  # Segment's ISO-8601: fraction optional, `Z` or an offset
MAX_AHEAD = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1)


def _ts(column: str) -> pl.Expr:
    return pl.col(column).str.to_datetime(ISO_TS, time_unit="us", time_zone="UTC", strict=False)


def _present(column: str) -> pl.Expr:
    return pl.col(column).is_not_null()


def rejection_reasons(messages: pl.DataFrame, landed_at: datetime) -> pl.DataFrame:
    """`messages` with `reason`, `detail` (null when valid) and the parsed event time columns."""
    cleaned = messages.with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in SCALAR_FIELDS]
    ).with_columns(
        _ts("timestamp").alias("_ts"), _ts("sentAt").alias("sent_at"), _ts("receivedAt").alias("_recv")
    )
    skew_known = _present("sent_at") & _present("_recv")
    event_ts = (
        pl.when(skew_known)
        .then(pl.col("_recv") - (pl.col("sent_at") - pl.col("_ts")))
        .otherwise(pl.col("_ts"))
    )
    landed = pl.lit(landed_at, dtype=UTC_TS)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    detail: pl.Expr = pl.lit(None, dtype=pl.String)
    for bad, code, text in reversed(_checks(landed)):  # the first failing check wins
        reason = pl.when(bad).then(pl.lit(str(code))).otherwise(reason)
        detail = pl.when(bad).then(text).otherwise(detail)
    return (
        cleaned.with_columns(
            event_ts.alias("event_ts"), pl.col("_recv").fill_null(landed).alias("received_at")
        )
        .with_columns(reason.alias("reason"), detail.alias("detail"))
        .drop("_ts", "_recv")
    )


def _checks(landed: pl.Expr) -> list[tuple[pl.Expr, Reason, pl.Expr]]:
    """(failing, reason, detail) of every check on a message, in the order they are judged."""
    checks: list[tuple[pl.Expr, Reason, pl.Expr]] = []
    for field in OBJECT_FIELDS:
        bad = _present(field) & ~pl.col(field).str.starts_with("{")
        checks.append((bad, Reason.WRONG_TYPE, pl.lit(f"{field} must be an object")))
    for field in SCALAR_FIELDS:
        bad = pl.col(field).str.contains(r"^[\[{]")
        checks.append((bad.fill_null(False), Reason.WRONG_TYPE, pl.lit(f"{field} must be a string")))
    for field in ("messageId", "type", "timestamp"):
        checks.append((~_present(field), Reason.MISSING_FIELD, pl.lit(f"{field} is required")))
    no_identity = ~_present("userId") & ~_present("anonymousId")
    checks.append((no_identity, Reason.MISSING_FIELD, pl.lit("userId or anonymousId is required")))
    unknown = ~pl.col("type").is_in(KNOWN_TYPES)
    checks.append(
        (unknown, Reason.UNKNOWN_TYPE, pl.lit("type must be one of ") + pl.lit(", ".join(KNOWN_TYPES)))
    )
    checks.append(
        ((pl.col("type") == "track") & ~_present("event"), Reason.MISSING_FIELD, pl.lit("event is required"))
    )
    for raw, parsed in (("timestamp", "_ts"), ("sentAt", "sent_at"), ("receivedAt", "_recv")):
        bad = _present(raw) & ~_present(parsed)
        checks.append((bad, Reason.INVALID_TIMESTAMP, pl.lit(f"{raw} is not an ISO-8601 timestamp")))
    too_far = (pl.col("event_ts") > landed + MAX_AHEAD) | (
        pl.col("event_ts") < pl.lit(EARLIEST, dtype=UTC_TS)
    )
    checks.append((too_far, Reason.TIMESTAMP_OUT_OF_RANGE, pl.lit("event time more than 24 h after landing")))
    return checks


def lift_object(texts: pl.Series, columns: dict[str, tuple[str, pl.DataType]]) -> pl.DataFrame:
    """Typed columns from the JSON objects in `texts` (raises when a text is not an object)."""
    schema = {key: pl.String() for key in columns}
    joined = texts.fill_null("{}").str.join("\n").item()
    raw = (
        pl.read_ndjson(io.BytesIO(joined.encode()), schema=schema)
        if len(texts)
        else pl.DataFrame(schema=schema)
    )
    if raw.height != len(texts):
        raise ValueError("object column did not read back one row per message")
    return raw.select(
        [_cast(pl.col(key), dtype).alias(column) for key, (column, dtype) in columns.items()],
    )


def _cast(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Int64:
        return expr.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    return expr.cast(dtype, strict=False)


def to_events(
    valid: pl.DataFrame, *, source_file: str, landed_at: datetime, ingested_at: datetime, batch_id: int
) -> pl.DataFrame:
    """`events` rows (EVENTS_SCHEMA order) from validated messages of one file."""
    lifted = pl.concat(
        [lift_object(valid["properties"], PROPERTY_COLUMNS), lift_object(valid["context"], CONTEXT_COLUMNS)],
        how="horizontal",
    )
    base = valid.select(
        pl.col("messageId").alias("event_id"),
        pl.col("type").alias("event_type"),
        pl.col("event").alias("event_name"),
        pl.col("userId").alias("user_id"),
        pl.col("anonymousId").alias("anonymous_id"),
        "event_ts",
        "sent_at",
        "received_at",
        pl.lit(landed_at, dtype=UTC_TS).alias("landed_at"),
        pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
        pl.col("event_ts").dt.date().alias("event_date"),
        "properties",
        "traits",
        pl.lit(source_file).alias("source_file"),
        "source_line",
        pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
    )
    return pl.concat([base, lifted], how="horizontal").select(
        [pl.col(name).cast(dtype) for name, dtype in EVENTS_SCHEMA.items()]
    )


def dedupe_dates(dates: list[date]) -> list[date]:
    """The `event_date` partitions where an earlier copy of a message on `dates` can sit.

    `event_ts` is corrected for the sender's clock skew with `receivedAt`, so a retry of the same
    message (same `messageId`, `timestamp` and `sentAt`) received later gets a later event time: one
    received just after midnight lands in the next day's partition. A day either side covers every
    retry received within 24 hours of the first copy.
    """
    return sorted({d + timedelta(days=shift) for d in dates for shift in (-1, 0, 1)})


def drop_seen(batch: pl.DataFrame, seen_ids: pl.Series) -> pl.DataFrame:
    """Events of `batch` whose event_id is not in `seen_ids`, first occurrence kept."""
    first = batch.unique("event_id", keep="first", maintain_order=True)
    return first.join(
        seen_ids.rename("event_id").to_frame(), on="event_id", how="anti", maintain_order="left"
    )


def identity_edges(events: pl.DataFrame) -> pl.DataFrame:
    """anonymous_id -> user_id edges seen in `events`, with the earliest event time of each."""
    return (
        events.filter(pl.col("anonymous_id").is_not_null() & pl.col("user_id").is_not_null())
        .group_by("anonymous_id", "user_id")
        .agg(pl.col("event_ts").min().alias("first_seen_at"))
        .sort("anonymous_id", "user_id")
    )

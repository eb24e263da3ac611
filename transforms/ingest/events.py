"""Raw messages -> validated, normalised `events` rows; duplicates and identity edges."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from transforms.ingest.context import context_columns, scrub_json_ips
from transforms.ingest.numbers import (
    any_out_of_range,
    first_out_of_range,
    long_numbers,
    readable_numbers,
    to_int64,
)
from transforms.ingest.objects import read_objects, repair_member, rounded_member
from transforms.ingest.spec_names import CAMEL_COLUMNS, CAMEL_LOOK, camel_look, keyed_ids, spec_event_name
from transforms.ingest.timestamps import event_time, parse_timestamps
from transforms.ingest.trust import (
    NAMESPACE_LOOK,
    UNTRUSTED_DETAIL,
    event_ids,
    namespace_look,
    untrusted_suppressions,
)
from transforms.schema import EVENTS_SCHEMA, UTC_TS, batch_column
from transforms.spec import (
    CONTEXT_COLUMNS,
    KEY_KIND_FIELD,
    KNOWN_TYPES,
    OBJECT_FIELDS,
    PROPERTY_COLUMNS,
    SCALAR_FIELDS,
    Reason,
)

MAX_AHEAD = timedelta(hours=24)
EARLIEST = datetime(2000, 1, 1)
# Raw time fields -> their parsed columns (`_`: working columns, dropped before `events`).
TIME_FIELDS = {
    "timestamp": "_ts",
    "originalTimestamp": "original_timestamp",
    "sentAt": "sent_at",
    "receivedAt": "_recv",
}
# Fields a message type needs beyond the common ones, as Segment's API requires them.
TYPE_FIELDS = {"track": ("event",), "alias": ("previousId", "userId"), "group": ("groupId",)}
# Fields whose text of whitespace only is none: the ids, the event's (dedupe) and the shopper's
# (principals), and a track's event name (`"  "` names no event, as `""` names none: missing_field).
IDS_AND_EVENT = frozenset({"messageId", "userId", "anonymousId", "previousId", "event"})
# The properties' ids that carts, checkouts, orders and products are keyed by (profiles, rules, attribution):
# one of whitespace only names none, so it is absent (null) as a missing one is. Kept, every shopper's blank
# cart or checkout was one trigger instance, a shopper's blank orders one order, blank products one product.
# Each is read as `cartId`, ... too when it names none (spec_names.py), as Segment's destinations read it.
KEY_IDS = ("cart_id", "checkout_id", "order_id", "product_id")
# What `to_events` quarantines (number_out_of_range, untrusted_suppression), and the frame when it
# quarantines nothing.
NO_REJECTS = pl.DataFrame(schema={"source_line": pl.Int64(), "reason": pl.String(), "detail": pl.String()})
ENVELOPE_DETAIL = "a whole /v1/batch request body on one line, not one message: post it to /v1/batch"


def _present(column: str) -> pl.Expr:
    return pl.col(column).is_not_null()


def _blank(column: str) -> pl.Expr:
    """An empty text, or for an id or event name (IDS_AND_EVENT) one of whitespace only: absent (a blank
    `messageId` kept as the event id made every other message with one a duplicate of the first, dropped)."""
    if column in IDS_AND_EVENT:
        return pl.col(column).str.strip_chars() == ""
    return pl.col(column) == ""


def rejection_reasons(
    messages: pl.DataFrame, landed_at: datetime | pl.Expr, not_a_string: pl.Series
) -> pl.DataFrame:
    """`messages` with `reason`, `detail` (null when valid) and the parsed event time columns.

    `not_a_string` names, per message, a string field that holds an object or array (null: none); the
    JSON text alone cannot tell `"[42]"` from `[42]`, so the parser looks at the raw line (parse.py).
    """
    cleaned = messages.with_columns(
        [pl.when(_blank(c)).then(None).otherwise(pl.col(c)).alias(c) for c in SCALAR_FIELDS]
    )
    cleaned = cleaned.with_columns(
        *[parse_timestamps(cleaned[raw]).alias(parsed) for raw, parsed in TIME_FIELDS.items()],
        not_a_string.alias("_not_a_string"),
    )
    event_ts = event_time(pl.col("_ts"), pl.col("original_timestamp"), pl.col("sent_at"), pl.col("_recv"))
    landed = landed_at if isinstance(landed_at, pl.Expr) else pl.lit(landed_at, dtype=UTC_TS)
    checks = _checks(landed)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    detail: pl.Expr = pl.lit(None, dtype=pl.String)
    for bad, code, text in reversed(checks):  # the first failing check in `checks` wins
        reason = pl.when(bad).then(pl.lit(str(code))).otherwise(reason)
        detail = pl.when(bad).then(text).otherwise(detail)
    return (
        cleaned.with_columns(
            event_ts.alias("event_ts"), pl.col("_recv").fill_null(landed).alias("received_at")
        )
        .with_columns(reason.alias("reason"), detail.alias("detail"))
        .drop("_ts", "_recv", "_not_a_string")
    )


def _checks(landed: pl.Expr) -> list[tuple[pl.Expr, Reason, pl.Expr]]:
    """(failing, reason, detail) per rule, in the order they are tried."""
    envelope = _present("batch") & ~_present("type")
    checks: list[tuple[pl.Expr, Reason, pl.Expr]] = [
        (envelope, Reason.BATCH_ENVELOPE, pl.lit(ENVELOPE_DETAIL))
    ]
    for field in OBJECT_FIELDS:
        bad = _present(field) & ~pl.col(field).str.starts_with("{")
        checks.append((bad, Reason.WRONG_TYPE, pl.lit(f"{field} must be an object")))
    not_string = _present("_not_a_string")
    checks.append((not_string, Reason.WRONG_TYPE, pl.col("_not_a_string") + pl.lit(" must be a string")))
    for field in ("messageId", "type"):
        checks.append((~_present(field), Reason.MISSING_FIELD, pl.lit(f"{field} is required")))
    no_time = ~_present("timestamp") & ~_present("originalTimestamp")
    checks.append((no_time, Reason.MISSING_FIELD, pl.lit("timestamp (or originalTimestamp) is required")))
    no_identity = ~_present("userId") & ~_present("anonymousId")
    checks.append((no_identity, Reason.MISSING_FIELD, pl.lit("userId or anonymousId is required")))
    unknown = ~pl.col("type").is_in(KNOWN_TYPES)
    checks.append(
        (unknown, Reason.UNKNOWN_TYPE, pl.lit("type must be one of ") + pl.lit(", ".join(KNOWN_TYPES)))
    )
    for kind, fields in TYPE_FIELDS.items():
        for field in fields:
            missing = (pl.col("type") == kind) & ~_present(field)
            checks.append((missing, Reason.MISSING_FIELD, pl.lit(f"{field} is required for {kind}")))
    for raw, parsed in TIME_FIELDS.items():
        bad = _present(raw) & ~_present(parsed)
        checks.append((bad, Reason.INVALID_TIMESTAMP, pl.lit(f"{raw} is not an ISO-8601 timestamp")))
    too_far = pl.col("event_ts") > landed + MAX_AHEAD
    checks.append((too_far, Reason.TIMESTAMP_OUT_OF_RANGE, pl.lit("event time more than 24 h after landing")))
    too_early = pl.col("event_ts") < pl.lit(EARLIEST, dtype=UTC_TS)  # an unset clock: 1970, year 1
    before = pl.lit(f"event time before {EARLIEST:%Y-%m-%d}")
    checks.append((too_early, Reason.TIMESTAMP_OUT_OF_RANGE, before))
    return checks


def lift_object(texts: pl.Series, columns: dict[str, tuple[str, pl.DataType]]) -> pl.DataFrame:
    """Typed columns from the JSON objects in `texts` (raises when a text is not an object), and
    `_out_of_range`: true where a number does not fit its column (numbers.py)."""
    return _read_object(texts, columns).select(
        *[_cast(pl.col(key), dtype).alias(column) for key, (column, dtype) in columns.items()],
        any_out_of_range(columns).alias("_out_of_range"),
    )


def _read_object(texts: pl.Series, columns: dict[str, tuple[str, pl.DataType]]) -> pl.DataFrame:
    """The members `columns` names of the JSON objects in `texts`, as text."""
    return read_objects(texts, {key: pl.String() for key in columns})


def _cast(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return to_int64(expr) if dtype == pl.Int64 else expr.cast(dtype, strict=False)


def to_events(
    valid: pl.DataFrame,
    *,
    source_file: str | pl.Expr,
    landed_at: datetime | pl.Expr,
    ingested_at: datetime,
    batch_id: int,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`events` rows (EVENTS_SCHEMA order) from validated messages of one file, IPs truncated, and the
    messages with a number their typed column cannot hold or that suppress under a public write key
    (trust.py) (`source_line`, `reason`, `detail`)."""
    valid = valid.with_columns(scrub_json_ips(valid[c]) for c in OBJECT_FIELDS)
    # One look for the rare texts to write again: long numbers (numbers.py), escapes (objects.py); for
    # camelCase ids (spec_names.py); and for messageIds in lakemail's namespace (trust.py).
    escaped = pl.col("properties").str.contains("\\", literal=True).any().alias("_escaped")
    looked_for = (*long_numbers(OBJECT_FIELDS), escaped, camel_look(), namespace_look())
    looks = valid.select(looked_for).row(0, named=True)
    valid = readable_numbers(valid, [c for c in OBJECT_FIELDS if looks[c]])
    camel = CAMEL_COLUMNS if looks[CAMEL_LOOK] else {}
    lifted = pl.concat(
        [
            lift_object(valid["properties"], {**PROPERTY_COLUMNS, **camel}),
            context_columns(valid["context"], CONTEXT_COLUMNS),
        ],
        how="horizontal",
    )
    if looks["_escaped"]:
        lifted = lifted.with_columns(repair_member(lifted["products"], valid["properties"], "products"))
    lifted = lifted.with_columns(rounded_member(lifted["products"], valid["properties"], "products"))
    if looks["properties"]:  # `products` is written from `properties`' text
        lifted = readable_numbers(lifted, ["products"])
    # `properties` keeps the text as sent; the typed column, what is keyed by, reads a blank id as none.
    lifted = keyed_ids(lifted, KEY_IDS)
    base = valid.select(
        "context",
        event_ids(valid[KEY_KIND_FIELD], looks[NAMESPACE_LOOK]).alias("event_id"),  # trust.py
        pl.col("type").alias("event_type"),
        spec_event_name(pl.col("event")).alias("event_name"),  # a spec name's variant as the spec writes it
        pl.col("userId").alias("user_id"),
        pl.col("anonymousId").alias("anonymous_id"),
        pl.col("previousId").alias("previous_id"),
        pl.col("groupId").alias("group_id"),
        pl.col("name").alias("page_name"),
        pl.col("category").alias("page_category"),
        "event_ts",
        "original_timestamp",
        "sent_at",
        "received_at",
        (landed_at if isinstance(landed_at, pl.Expr) else pl.lit(landed_at, dtype=UTC_TS)).alias("landed_at"),
        pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
        pl.col("event_ts").dt.date().alias("event_date"),
        "properties",
        "traits",
        (source_file if isinstance(source_file, pl.Expr) else pl.lit(source_file)).alias("source_file"),
        "source_line",
        batch_column(batch_id),
        pl.col(KEY_KIND_FIELD).alias("_key_kind"),
    )
    return _kept(pl.concat([base, lifted], how="horizontal"))


def _kept(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(events whose numbers fit their columns and that may be kept, EVENTS_SCHEMA; `number_out_of_range`
    rows for the others, then `untrusted_suppression` rows for suppressing events under a public key)."""
    columns = [pl.col(name).cast(dtype) for name, dtype in EVENTS_SCHEMA.items()]
    untrusted = untrusted_suppressions(events["_key_kind"], events["event_name"])
    if untrusted is not None and not untrusted.any():
        untrusted = None
    if untrusted is None and not events["_out_of_range"].any():  # the common case: no copy of the rows
        return events.select(columns), NO_REJECTS
    bad = events.filter("_out_of_range")
    detail = first_out_of_range(PROPERTY_COLUMNS).alias("detail")
    details = _read_object(bad["properties"], PROPERTY_COLUMNS).select(detail)
    rejected = bad.select("source_line", pl.lit(str(Reason.NUMBER_OUT_OF_RANGE)).alias("reason"))
    rejected = rejected.with_columns(details["detail"])
    kept = ~pl.col("_out_of_range")
    if untrusted is not None:
        events = events.with_columns(untrusted.alias("_untrusted"))
        distrusted = events.filter(kept & pl.col("_untrusted")).select(
            "source_line",
            pl.lit(str(Reason.UNTRUSTED_SUPPRESSION)).alias("reason"),
            pl.lit(UNTRUSTED_DETAIL).alias("detail"),
        )
        rejected, kept = pl.concat([rejected, distrusted]), kept & ~pl.col("_untrusted")
    return events.filter(kept).select(columns), rejected


def dedupe_dates(dates: list[date]) -> list[date]:
    """The `event_date` partitions where an earlier copy of a message on `dates` can sit.

    `event_ts` is corrected for the sender's clock skew with `receivedAt`, so a retry of the same
    message (same `messageId`, `timestamp` and `sentAt`) received later gets a later event time: one
    received just after midnight lands in the next day's partition. A day either side covers every
    retry received within 24 hours of the first copy.
    """
    return sorted({d + timedelta(days=shift) for d in dates for shift in (-1, 0, 1)})


def drop_seen(batch: pl.DataFrame, seen_ids: pl.Series) -> pl.DataFrame:
    """Events of `batch` whose event_id is not in `seen_ids`, first occurrence kept (one filter: one
    copy of the batch, not two, and 5x faster than `unique` then an anti join on a commit group)."""
    event_id = pl.col("event_id")
    return batch.filter(event_id.is_first_distinct() & ~event_id.is_in(seen_ids.implode()))


def identity_edges(events: pl.DataFrame) -> pl.DataFrame:
    """anonymous_id -> user_id edges seen in `events`, with the earliest event time of each
    (IDENTITIES_SCHEMA).

    An `alias` links its `previousId` to its `userId` as an identify links its anonymous id: the
    previous id plays the anonymous side. The previous id may also be a user id the shopper had before
    (Segment's spec/alias.md): `aliased_at`, the earliest alias of the edge, says so.
    """
    user = pl.col("user_id")
    seen = events.filter(pl.col("anonymous_id").is_not_null() & user.is_not_null()).select(
        "anonymous_id", "user_id", "event_ts", pl.lit(None, UTC_TS).alias("_aliased")
    )
    aliased = events.filter(
        (pl.col("event_type") == "alias") & pl.col("previous_id").is_not_null() & user.is_not_null()
    ).select(
        pl.col("previous_id").alias("anonymous_id"),
        "user_id",
        "event_ts",
        pl.col("event_ts").alias("_aliased"),
    )
    return (
        pl.concat([seen, aliased])
        .group_by("anonymous_id", "user_id")
        .agg(pl.col("event_ts").min().alias("first_seen_at"), pl.col("_aliased").min().alias("aliased_at"))
        .sort("anonymous_id", "user_id")
    )

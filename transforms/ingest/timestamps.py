"""Segment timestamps -> UTC datetimes, and the event time a message stands for.

Segment accepts ISO-8601 with or without an offset (none means UTC), a date alone, a space for the
`T` and hours and minutes without seconds. Clients send the canonical form (`...T10:00:00.123Z` or
`+00:00`), so one vectorised parse takes nearly every value; the few it misses are rewritten to the
canonical form and parsed again, so a clean file pays for one parse only.
"""

from __future__ import annotations

import polars as pl

from transforms.schema import UTC_TS

ISO_TS = "%Y-%m-%dT%H:%M:%S%.f%#z"  # fraction optional, `Z` or an offset (+hh, +hhmm, +hh:mm)
_DATE = r"(\d{4}-\d{2}-\d{2})"
_OFFSET = r"([Zz]|[+-]\d{2}(:?\d{2})?)$"


def parse_timestamps(texts: pl.Series) -> pl.Series:
    """Each text as a UTC datetime, null where it is no timestamp Segment accepts."""
    parsed = texts.str.to_datetime(ISO_TS, time_unit="us", time_zone="UTC", strict=False)
    missed = parsed.is_null() & texts.is_not_null()
    if not missed.any():
        return parsed
    rows = missed.arg_true()
    retried = canonical(texts.gather(rows)).str.to_datetime(
        ISO_TS, time_unit="us", time_zone="UTC", strict=False
    )
    return parsed.scatter(rows, retried)


def canonical(texts: pl.Series) -> pl.Series:
    """Accepted variants rewritten as `YYYY-MM-DDTHH:MM:SS[.f]<offset>` (others left to fail the parse)."""
    frame = texts.rename("t").to_frame()
    text = pl.col("t").str.strip_chars()
    text = text.str.replace(rf"^{_DATE}$", "${1}T00:00:00")  # a date alone: midnight
    text = text.str.replace(rf"^{_DATE}[ tT]", "${1}T")  # a space (or a lower-case t) for the T
    text = text.str.replace(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})([^:\d]|$)", "${1}:00${2}")  # no seconds
    text = text.str.replace(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}),(\d)", "${1}.${2}")  # decimal comma
    with_offset = pl.when(text.str.contains(_OFFSET)).then(text).otherwise(text + pl.lit("Z"))
    return frame.select(with_offset.alias(texts.name)).to_series()


def event_time(timestamp: pl.Expr, original: pl.Expr, sent_at: pl.Expr, received_at: pl.Expr) -> pl.Expr:
    """When the event happened, from parsed times, as Segment computes `timestamp`.

    With `originalTimestamp` present the message went through Segment already and `timestamp` is
    the skew-corrected time: it is used as is. Otherwise the client's time (`timestamp`, or
    `originalTimestamp` alone) is corrected for the client's clock skew, `receivedAt - (sentAt - t)`,
    when both are known.
    """
    client = pl.coalesce(timestamp, original)
    return (
        pl.when(timestamp.is_not_null() & original.is_not_null())
        .then(timestamp)
        .when(sent_at.is_not_null() & received_at.is_not_null())
        .then(received_at - (sent_at - client))
        .otherwise(client)
        .cast(UTC_TS)
    )

"""Delta file statistics (an `add` action's `stats`) from the rows a file holds, for a writer that writes its
own Parquet files (`resources.lake_files`, #17).

A reader skips a file when its min and max say no row can match, so a statistic must never be narrower than
the file's values: here they are the exact values (timestamps to the microsecond, where delta-rs' own writer
keeps milliseconds), and a column whose values cannot be stated exactly gets no min or max at all (a float,
which may hold NaN; a string longer than `MAX_STAT_CHARS`), which only means the file is never skipped on it.
Only the table's `delta.dataSkippingStatsColumns` are stated: person-identifying columns never enter the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

MAX_STAT_CHARS = 256  # a longer string's min/max is left out (a long id would fill the log)

# The types a min and max are stated for; others get a null count only.
_BOUNDED = (pl.String, pl.Date, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


def stats_aggregates(schema: Mapping[str, pl.DataType], columns: Sequence[str]) -> list[pl.Expr]:
    """The aggregations `file_stats` reads: each column's null count, and its min and max where stated."""
    exprs = []
    for name in columns:
        exprs.append(pl.col(name).null_count().alias(f"nulls:{name}"))
        if _states_bounds(schema[name]):
            exprs += [pl.col(name).min().alias(f"min:{name}"), pl.col(name).max().alias(f"max:{name}")]
    return exprs


def file_stats(aggregates: Mapping[str, Any], columns: Sequence[str], records: int) -> str:
    """The `stats` JSON of a file of `records` rows, from one row of `stats_aggregates`."""
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    for name in columns:
        least, most = _stated(aggregates.get(f"min:{name}")), _stated(aggregates.get(f"max:{name}"))
        if least is not None and most is not None:
            low[name], high[name] = least, most
    nulls = {name: int(aggregates[f"nulls:{name}"]) for name in columns}
    stats = {"numRecords": records, "minValues": low, "maxValues": high, "nullCount": nulls}
    return json.dumps(stats, separators=(",", ":"))


def _states_bounds(dtype: pl.DataType) -> bool:
    if isinstance(dtype, pl.Datetime):  # Delta's timestamp: microseconds, UTC
        return dtype.time_unit == "us" and dtype.time_zone == "UTC"
    return isinstance(dtype, _BOUNDED)


def _stated(value: Any) -> Any:
    """`value` as the log states it; None when it cannot be stated exactly."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) > MAX_STAT_CHARS:
        return None
    return value

"""File statistics for the Delta log (`transforms.delta_stats`): never narrower than the file's values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl

from transforms.delta_stats import MAX_STAT_CHARS, file_stats, stats_aggregates

T = datetime(2026, 12, 5, 23, 59, 59, 999_999, tzinfo=UTC)


def stats_of(frame: pl.DataFrame) -> dict:
    columns = frame.columns
    aggregates = frame.select(stats_aggregates(frame.schema, columns)).row(0, named=True)
    return json.loads(file_stats(aggregates, columns, frame.height))


def test_values_are_stated_exactly_and_what_cannot_be_is_left_out() -> None:
    frame = pl.DataFrame(
        {
            "ts": [T, T - timedelta(microseconds=1), None],
            "day": [date(2026, 12, 5), date(2026, 1, 1), None],
            "n": [3, -7, None],
            "id": ["b", "a", None],
            "long": ["x" * (MAX_STAT_CHARS + 1), "y", None],
            "price": [1.5, float("nan"), None],
            "flag": [True, False, None],
            "nothing": [None, None, None],
            "local": [T, T, T],
        },
        schema_overrides={"nothing": pl.String, "local": pl.Datetime("us", "Europe/London")},
    )
    stats = stats_of(frame)
    assert stats["numRecords"] == 3
    assert stats["minValues"] == {
        "ts": "2026-12-05T23:59:59.999998Z",  # to the microsecond: a millisecond max would be narrower
        "day": "2026-01-01",
        "n": -7,
        "id": "a",
    }
    assert stats["maxValues"] == {"ts": "2026-12-05T23:59:59.999999Z", "day": "2026-12-05", "n": 3, "id": "b"}
    assert stats["nullCount"] == {c: 1 for c in frame.columns[:7]} | {"nothing": 3, "local": 0}


def test_a_string_at_the_limit_is_stated() -> None:
    edge = "z" * MAX_STAT_CHARS
    stats = stats_of(pl.DataFrame({"id": [edge, "a"]}))
    assert stats["maxValues"] == {"id": edge} and stats["minValues"] == {"id": "a"}

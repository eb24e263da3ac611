"""The send stage's bestsellers (the fallback of an email without recommendations) are a week of `events`
ranked: a process keeps the ranking a run read for BESTSELLERS_KEPT of the runs' clock instead of scanning
the week at every run that falls back to it (#17)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from resources.lake import LakeResource
from stores.sends import BESTSELLERS_KEPT, kept_bestsellers, read_bestsellers
from transforms.schema import EVENTS_SCHEMA

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _adds(lake: LakeResource, batch: int, adds: list[tuple[str, str]]) -> None:
    """`Product Added` events of (user, product), an hour before NOW."""
    at = NOW - timedelta(hours=1)
    rows = [
        {
            "event_id": f"e-{batch}-{n}",
            "event_name": "Product Added",
            "user_id": user,
            "product_id": product,
            "event_ts": at,
            "event_date": at.date(),
            "batch_id": batch,
        }
        for n, (user, product) in enumerate(adds)
    ]
    frame = pl.DataFrame(rows).select(
        [pl.col(c).cast(t) if c in rows[0] else pl.lit(None, t).alias(c) for c, t in EVENTS_SCHEMA.items()]
    )
    lake.append("events", frame, batch_id=batch)


def test_a_ranking_is_kept_for_five_minutes_of_the_runs_clock_then_read_again(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    _adds(lake, 1, [("u1", "p1"), ("u2", "p1"), ("u1", "p2")])
    assert kept_bestsellers(lake, NOW) == ["p1", "p2"]
    _adds(lake, 2, [("u3", "p2"), ("u4", "p2")])  # p2 now leads
    assert read_bestsellers(lake, NOW) == ["p2", "p1"]
    assert kept_bestsellers(lake, NOW + timedelta(minutes=4)) == ["p1", "p2"]  # kept
    assert kept_bestsellers(lake, NOW + BESTSELLERS_KEPT) == ["p2", "p1"]  # read again
    _adds(lake, 3, [("u5", "p3"), ("u6", "p3"), ("u7", "p3"), ("u8", "p3")])
    assert kept_bestsellers(lake, NOW) == ["p3", "p2", "p1"]  # a clock before the read's: read again


def test_each_lake_has_its_own_ranking(tmp_path: Path) -> None:
    one, two = (LakeResource(uri=str(tmp_path / name)) for name in ("one", "two"))
    _adds(one, 1, [("u1", "p1")])
    _adds(two, 1, [("u1", "p9")])
    assert (kept_bestsellers(one, NOW), kept_bestsellers(two, NOW)) == (["p1"], ["p9"])

"""A catalog's changes do not depend on how its files were grouped into micro-batches: a product sold
out and restocked (3 -> 0 -> 5) in two feeds taken in one batch restocks as in two batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.lake.decide_harness import csv
from transforms.schema import CATALOG_CHANGES_SCHEMA

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FEEDS = [
    [("p1", 10.0, 3), ("p2", 20.0, 4)],  # the first feed: no change
    [("p1", 10.0, 0), ("p2", 15.0, 4)],  # p1 sold out, p2 25 % off
    [("p1", 10.0, 5), ("p2", 20.0, 4)],  # p1 restocked, p2 back up
]


def changes_when_taken(home: Path, groups: list[list[int]]) -> pl.DataFrame:
    """catalog_changes (without batch_id) after taking FEEDS in micro-batches of `groups` (feed numbers)."""
    lake, landing = LakeResource(uri=str(home / "lake")), LandingResource(uri=str(home / "landing"))
    for group in groups:
        for n in group:
            landing.land(f"catalog/feed-{n}.csv", csv(FEEDS[n], START + timedelta(minutes=n)).encode())
        ingest(lake, landing, now=START + timedelta(hours=1))
    assert lake.committed_batch() == len(groups)
    found = lake.read("catalog_changes", CATALOG_CHANGES_SCHEMA)
    return found.drop("batch_id").sort("product_id", "change", "changed_at")


def test_one_batch_changes_the_catalog_as_one_batch_per_feed(tmp_path: Path) -> None:
    apart = changes_when_taken(tmp_path / "apart", [[0], [1], [2]])
    together = changes_when_taken(tmp_path / "together", [[0], [1, 2]])
    assert apart.select("product_id", "change", "old_value", "new_value").rows() == [
        ("p1", "back_in_stock", 0.0, 5.0),
        ("p2", "price_drop", 20.0, 15.0),
    ]
    assert together.equals(apart)

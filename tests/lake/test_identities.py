"""The `identities` table's merge (stores/identities.py): new anonymous -> user edges appended once, an
earlier sighting of a known edge moving its first_seen_at back, and only the batch's anonymous ids read on
the usual path, not the whole table (5M rows a batch at 5M shoppers; #17)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from resources.lake import LakeResource
from stores.identities import merge_identities
from transforms.schema import IDENTITIES_SCHEMA


def _edges(*rows: tuple[str, str, int]) -> pl.DataFrame:
    """(anonymous_id, user_id, day of December 2026 first seen)."""
    return pl.DataFrame(
        [(a, u, datetime(2026, 12, day, tzinfo=UTC), None) for a, u, day in rows],
        schema=IDENTITIES_SCHEMA,
        orient="row",
    )


def _table(lake: LakeResource) -> list[tuple[str, str, int]]:
    rows = lake.read("identities", IDENTITIES_SCHEMA).sort("anonymous_id", "user_id")
    return [(a, u, t.day) for a, u, t, _ in rows.iter_rows()]


def test_edges_are_added_once_and_an_earlier_sighting_moves_first_seen_back(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    merge_identities(lake, _edges(), 1)
    assert _table(lake) == []  # the table is there from the first batch
    merge_identities(lake, _edges(("a1", "u1", 5), ("a2", "u2", 5)), 2)
    merge_identities(lake, _edges(("a1", "u1", 6), ("a3", "u1", 6)), 3)  # a1 again, later: kept at the 5th
    assert _table(lake) == [("a1", "u1", 5), ("a2", "u2", 5), ("a3", "u1", 6)]
    merge_identities(lake, _edges(("a2", "u2", 1)), 4)  # seen earlier than known (a late file)
    assert _table(lake) == [("a1", "u1", 5), ("a2", "u2", 1), ("a3", "u1", 6)]


def test_the_usual_batch_reads_only_its_own_anonymous_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    merge_identities(lake, _edges(*[(f"a{n}", f"u{n}", 5) for n in range(100)]), 1)
    read: list[int] = []
    collect = LakeResource.collect

    def counted(self: LakeResource, name: str, schema: object, query: object) -> pl.DataFrame:
        found = collect(self, name, schema, query)  # type: ignore[arg-type]
        read.append(found.height)
        return found

    monkeypatch.setattr(LakeResource, "read", lambda *a, **k: pytest.fail("the whole table was read"))
    monkeypatch.setattr(LakeResource, "collect", counted)
    merge_identities(lake, _edges(), 2)
    merge_identities(lake, _edges(("a7", "u7", 6), ("b1", "u1", 6)), 3)
    assert read == [1]  # a7's edge, not the 100 rows
    monkeypatch.undo()
    assert len(_table(lake)) == 101

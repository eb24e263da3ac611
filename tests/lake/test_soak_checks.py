"""The kill soak's line reconciliation (#13): every landed line once in the lake, or it says so."""

from __future__ import annotations

import polars as pl
from deltalake import DeltaTable

from benchmarks.soak_checks import reconcile_lines
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import file_lines


def test_every_landed_line_is_an_event_a_quarantine_row_or_a_duplicate(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", file_lines("a", 10, bad_every=5))
    land(settings, "b.ndjson", [*file_lines("a", 3), b"", *file_lines("b", 4)])  # 3 duplicates, a blank
    ingest(lake, landing)
    figures = reconcile_lines(settings.home)
    assert figures["landed_lines"] == 17
    assert (figures["as_events"], figures["as_quarantine"], figures["as_duplicates"]) == (12, 2, 3)
    assert all(figures[k] == 0 for k in figures if k.endswith(("lost", "twice", "not_logged")))


def test_a_lost_event_and_an_unlogged_file_are_counted(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", file_lines("a", 5))
    ingest(lake, landing)
    DeltaTable(f"{settings.lake_uri}/events").delete("event_id = 'a-0'")
    land(settings, "late.ndjson", file_lines("late", 2))  # landed after the last batch
    figures = reconcile_lines(settings.home)
    assert figures["lines_lost"] == 1 + 2
    assert figures["files_not_logged"] == 1
    assert pl.read_delta(f"{settings.lake_uri}/events").height == 4

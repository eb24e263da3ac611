"""Hostile lines (#13, points 7, 8 and 10) through the real ingest: the file is committed with every
line counted, the hostile ones quarantined with their reasons, and what is kept reads back."""

from __future__ import annotations

import io
from collections import Counter

import polars as pl

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land, table
from tests.events_data import track
from tests.hostile_lines import HOSTILE_LINES, KEPT, QUARANTINED


def test_a_file_of_hostile_lines_is_committed_with_every_line_accounted_for(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    lines = [line for i, h in enumerate(HOSTILE_LINES) for line in (track(f"good-{i}"), h.line)]
    land(settings, "hostile.ndjson", lines)
    report = ingest(lake, landing)
    assert report.failed_files == []
    log = table(settings, "ingest_log").row(0, named=True)
    assert (log["status"], log["lines"]) == ("committed", len(lines))
    assert (log["accepted"], log["quarantined"], log["duplicates"]) == (
        len(HOSTILE_LINES) + len(KEPT),
        len(QUARANTINED),
        0,
    )
    assert Counter(table(settings, "quarantine")["reason"]) == Counter(h.reason for h in QUARANTINED)
    events = table(settings, "events")
    assert set(events["event_id"]) >= {h.message_id for h in KEPT}
    for column in ("properties", "context", "traits"):  # JSON Polars reads back (no 101-digit integers)
        texts = events[column].drop_nulls()
        back = pl.read_ndjson(io.BytesIO("\n".join(texts).encode()), schema={"x": pl.String()})
        assert back.height == len(texts)

"""The public tables a first batch may not write are set up empty with the lake (found by review: `select ...
from suppressions` was "relation 'suppressions' was not found" until the first unsubscribe, and DuckDB
could not read the table either)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import polars as pl
from deltalake import DeltaTable

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from stores.ingest_tables import set_up_tables
from tests.conftest import land
from tests.events_data import track
from transforms.schema import STATS_COLUMNS
from transforms.tables import PUBLIC_TABLES, SET_UP_TABLES


def test_the_first_batch_sets_up_every_table_a_reader_names(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", [track("m-1")])
    ingest(lake, landing)
    for name in SET_UP_TABLES:
        table = DeltaTable(lake.table_uri(name))  # what DuckDB, Spark or Polars open by path
        assert pl.scan_delta(table).collect_schema() == pl.Schema(PUBLIC_TABLES[name]), name
        assert pl.scan_delta(table).collect().height == 0, name
        stats = table.metadata().configuration.get("delta.dataSkippingStatsColumns")
        assert stats == ",".join(STATS_COLUMNS[name]), name  # as a table lakemail writes first
    versions = {name: lake.version(name) for name in SET_UP_TABLES}
    land(settings, "b.ndjson", [track("m-2")])
    ingest(lake, landing)
    assert {name: lake.version(name) for name in SET_UP_TABLES} == versions  # nothing written again


def test_an_existing_table_is_left_as_it_is(lake: LakeResource) -> None:
    row = pl.DataFrame(
        {"user_key": ["k-1"], "reason": ["unsubscribed"], "since": [datetime(2026, 11, 1, tzinfo=UTC)]},
        schema=PUBLIC_TABLES["suppressions"],
    )
    lake.write("suppressions", row)
    assert set_up_tables(lake) == ["audit_results", "attributions", "experiments"]
    assert (
        lake.version("suppressions"),
        lake.read("suppressions", PUBLIC_TABLES["suppressions"]).rows(),
    ) == (
        0,
        row.rows(),
    )
    assert set_up_tables(lake) == []


def test_concurrent_set_ups_leave_each_table_once_and_empty(lake: LakeResource) -> None:
    """Two runs of a new lake setting it up at once (each would hold the ingest lock; here neither does):
    no error, and each table is one empty table with its columns."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(lambda _: set_up_tables(LakeResource(uri=lake.uri)), range(4)))
    assert {name for names in created for name in names} == set(SET_UP_TABLES)
    for name in SET_UP_TABLES:
        assert lake.read(name, PUBLIC_TABLES[name]).height == 0
        assert pl.scan_delta(lake.table_uri(name)).collect_schema() == pl.Schema(PUBLIC_TABLES[name])

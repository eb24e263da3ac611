"""`lakemail sql`: every table by name, time travel, three output formats, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.settings import Settings
from orchestration.sql import SqlError, parse_as_of, run_query
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import track

LAKEMAIL = str(Path(sys.executable).parent / "lakemail")


@pytest.fixture
def two_versions(settings: Settings, lake: LakeResource, landing: LandingResource) -> Settings:
    land(settings, "a.ndjson", [track("m-1"), track("m-2"), b"{bad"])
    ingest(lake, landing)
    land(settings, "b.ndjson", [track("m-3")])
    ingest(lake, landing)
    return settings


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"LAKEMAIL_HOME": str(settings.home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [LAKEMAIL, "sql", *args], env=env, cwd=settings.home, capture_output=True, text=True
    )


def test_every_table_answers_by_name(two_versions: Settings) -> None:
    for name in ("events", "quarantine", "ingest_log", "identities"):
        assert run_query(two_versions.lake_uri, f"select count(*) as n from {name}").height == 1
    counts = run_query(two_versions.lake_uri, "select reason, count(*) as n from quarantine group by reason")
    assert counts.rows() == [("invalid_json", 1)]


def test_time_travel_by_version(two_versions: Settings) -> None:
    query = "select count(*) as n from events"
    assert run_query(two_versions.lake_uri, query).item() == 3
    # events version 0 was the first batch's commit
    assert run_query(two_versions.lake_uri, query, parse_as_of("0")).item() == 2


def test_formats_from_the_command_line(two_versions: Settings) -> None:
    as_json = cli(two_versions, "select event_id from events order by event_id", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{"event_id": "m-1"}, {"event_id": "m-2"}, {"event_id": "m-3"}]
    as_csv = cli(two_versions, "select count(*) as n from events", "--format", "csv", "--as-of", "0")
    assert as_csv.stdout.splitlines() == ["n", "2"]
    as_table = cli(two_versions, "select count(*) as n from events")
    assert "n" in as_table.stdout and "3" in as_table.stdout


def test_errors_are_clear_and_exit_non_zero(two_versions: Settings) -> None:
    missing = cli(two_versions, "select * from nope")
    assert missing.returncode == 2 and "nope" in missing.stderr and "events" in missing.stderr
    with pytest.raises(SqlError, match="as-of"):
        parse_as_of("last tuesday")


def test_only_the_lakes_tables_answer(two_versions: Settings) -> None:
    """Not a file beside the lake (the home's HMAC secret), and no statement that changes a table (#13)."""
    secret = two_versions.home / ".secret"
    secret.write_text("the-hmac-secret\n")
    with pytest.raises(SqlError, match="reads files or URLs") as refused:
        run_query(two_versions.lake_uri, f"select * from read_csv('{secret}', has_header => false)")
    assert "the-hmac-secret" not in str(refused.value)
    for statement in (
        "delete from events",
        "with old as (select 1) delete from events",
        "insert into events select * from events",
        "update events set event_id = 'x'",
        "create table copy as select * from events",
    ):
        with pytest.raises(SqlError, match="one read-only query"):
            run_query(two_versions.lake_uri, statement)
    assert run_query(two_versions.lake_uri, "select count(*) as n from events").item() == 3
    cte = "with seen as (select event_id from events) select count(*) as n from seen -- all of them"
    assert run_query(two_versions.lake_uri, cte).item() == 3


def test_time_travel_out_of_reach_is_a_clear_error(two_versions: Settings) -> None:
    with pytest.raises(SqlError, match="no lake table existed yet at 2000-01-01"):
        run_query(two_versions.lake_uri, "select 1", parse_as_of("2000-01-01"))
    with pytest.raises(SqlError, match="no lake table had reached version 99"):
        run_query(two_versions.lake_uri, "select 1", parse_as_of("99"))

"""`lakemail sql`: every table by name, time travel, three output formats, clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from orchestration.settings import Settings
from orchestration.sql import SqlError, parse_as_of, run_query
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import track
from transforms.tables import PUBLIC_TABLES

LAKEMAIL = str(Path(sys.executable).parent / "lakemail")


# One two-version lake for the module's tests, on one worker (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("sql")


@pytest.fixture(scope="module")
def two_versions_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two ingests (the first with a broken line), made once per module; each test reads a copy."""
    home = tmp_path_factory.mktemp("two-versions")
    made = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    lake, landing = LakeResource(uri=made.lake_uri), LandingResource(uri=made.landing_uri)
    land(made, "a.ndjson", [track("m-1"), track("m-2"), b"{bad"])
    ingest(lake, landing)
    land(made, "b.ndjson", [track("m-3")])
    ingest(lake, landing)
    return home


@pytest.fixture
def two_versions(two_versions_home: Path, settings: Settings) -> Settings:
    for part, to in (("lake", settings.lake_uri), ("landing", settings.landing_uri)):
        shutil.copytree(two_versions_home / part, to, dirs_exist_ok=True)
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


def stamped(message_id: str, at: str) -> bytes:
    return orjson.dumps({**orjson.loads(track(message_id)), "timestamp": at})


@pytest.fixture
def kiritimati(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's zone is UTC+14 (at 2026-11-22 12:00 UTC it is 2026-11-23 02:00 there)."""
    with monkeypatch.context() as zone:
        zone.setenv("TZ", "Pacific/Kiritimati")
        time.tzset()
        yield
    time.tzset()


@pytest.mark.usefixtures("kiritimati")
def test_in_the_last_day_on_a_utc_clock_whatever_the_hosts_zone(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    """Found by review: `now() - interval '1 day'` and `timestamp '...'` failed against the UTC columns,
    and `now()` / `current_date` read the host's zone (Kiritimati's date was a day ahead of UTC's)."""
    at = ["2026-11-21T09:00:00Z", "2026-11-21T23:30:00Z", "2026-11-22T10:00:00Z"]
    land(settings, "a.ndjson", [stamped(f"m-{n}", t) for n, t in enumerate(at)])
    ingest(lake, landing)
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    for where, count in [
        ("event_ts >= now() - interval '1 day'", 2),
        ("event_ts > current_timestamp - interval '24 hours'", 2),
        ("event_ts >= timestamp '2026-11-22 00:00:00'", 1),
        ("event_date = current_date", 1),
        ("event_date = current_date - interval '1 day'", 2),
    ]:
        query = f"select count(*) as n from events where {where}"
        assert run_query(settings.lake_uri, query, now=now).item() == count, where
    clock = run_query(settings.lake_uri, "select now() as now, current_date as today", now=now)
    assert clock.rows() == [(now, date(2026, 11, 22))]


@pytest.mark.parametrize("name", ["suppressions", "audit_results", "attributions", "experiments", "profiles"])
def test_a_public_table_answers_by_name_before_its_first_write(settings: Settings, name: str) -> None:
    """Found by review: "relation 'suppressions' was not found" until the first unsubscribe."""
    answer = run_query(settings.lake_uri, f"select * from {name}")
    assert (answer.height, answer.schema) == (0, pl.Schema(PUBLIC_TABLES[name]))


def test_why_was_a_user_not_emailed_joins_suppressions_before_any(two_versions: Settings) -> None:
    query = (
        "select t.kind, t.decision, s.reason as suppressed from triggers t "
        "left join suppressions s on s.user_key = t.user_id where t.user_id = 'u-1'"
    )
    assert run_query(two_versions.lake_uri, query).columns == ["kind", "decision", "suppressed"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (
            "select user_id, cart_items[1].name from profiles",
            "Polars SQL does not support this: complex field",
        ),
        ("select properties->>'query' from events", "no struct field 'query': ->, ->> and . read the fields"),
        (
            "with x as (select 1) delete from events",
            "'DELETE FROM events' operation is currently unsupported: ",
        ),
    ],
)
def test_an_error_names_what_failed(two_versions: Settings, query: str, says: str) -> None:
    """Found by review: a SELECT with unsupported syntax was told it changed tables; `->>` said "query"."""
    with pytest.raises(SqlError) as failed:
        run_query(two_versions.lake_uri, query)
    assert str(failed.value).startswith(says)
    assert ("one read-only query" in str(failed.value)) == ("delete" in query)


def test_cart_items_field_and_json_text_as_the_readme_says(two_versions: Settings) -> None:
    assert run_query(two_versions.lake_uri, "select cart_items[1]->>'name' as n from profiles").height == 0
    like = 'select count(*) as n from events where properties like \'%"product_id": "p-1"%\''
    regexp = 'select count(*) as n from events where regexp_like(properties, \'"product_id":\\s*"p-1"\')'
    assert (
        run_query(two_versions.lake_uri, like).item() == run_query(two_versions.lake_uri, regexp).item() == 3
    )


@pytest.mark.parametrize("text", ["²", "٣", "１"])
def test_as_of_takes_only_ascii_digits_as_a_version(text: str) -> None:
    """Found by review: `--as-of ²` raised "ValueError: invalid literal for int()" (isdigit takes it)."""
    with pytest.raises(SqlError, match="neither a version number nor an ISO-8601 timestamp"):
        parse_as_of(text)

"""`lakemail sql` as a user runs it: a failure is one line on stderr and exit 2, never a traceback (#13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from deltalake import DeltaTable

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import track

REPO = Path(__file__).resolve().parents[2]
SECRET = "the-hmac-secret-of-this-home"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two ingest commits, then the first one's files compacted and vacuumed, as maintenance does."""
    home = tmp_path_factory.mktemp("sql-home")
    settings = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    lake, landing = LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri)
    land(settings, "a.ndjson", [track("m-1"), track("m-2")])
    ingest(lake, landing)
    land(settings, "b.ndjson", [track("m-3")])
    ingest(lake, landing)
    events = DeltaTable(lake.table_uri("events"))
    events.optimize.compact()
    events.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    (home / ".secret").write_text(SECRET)
    return home


def sql(home: Path, *args: str, zone: str = "UTC") -> subprocess.CompletedProcess[str]:
    env = {"LAKEMAIL_HOME": str(home), "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "TZ": zone}
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "sql", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["select event_id + 1 from events"], "arithmetic on dtypes str"),
        (["select [1, 2] as items", "--format", "csv"], "cannot hold the nested column(s) items"),
        (
            ["select count(*) as n from events", "--as-of", "0"],
            "were vacuumed (by maintenance or an erasure)",
        ),
        (["select count(*) as n from events", "--as-of", "2001-01-01"], "no lake table existed yet"),
        (["create table copy as select * from events"], "one read-only query"),
        (["delete from events"], "one read-only query"),
        (["select * from read_csv('.secret', has_header => false)"], "reads files or URLs"),
        # found by review: told "statements that change or define tables ... are not run"
        (["select cart_items[1].name from profiles"], "does not support this: complex field access chains"),
        (["select properties->>'query' from events"], "no struct field 'query'"),  # was "lakemail sql: query"
        (
            ["select 1", "--as-of", "²"],
            "neither a version number",
        ),  # was "ValueError: invalid literal for int()"
    ],
)
def test_a_failing_query_is_one_line_and_exit_2(home: Path, args: list[str], says: str) -> None:
    done = sql(home, *args)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.startswith("lakemail sql: ") and done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr and SECRET not in done.stderr


def test_the_current_version_still_answers_after_the_vacuum(home: Path) -> None:
    done = sql(home, "select count(*) as n from events", "--format", "csv")
    assert (done.returncode, done.stdout.split()) == (0, ["n", "3"]), done.stderr


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/New_York"])
def test_the_clock_is_utc_whatever_the_hosts_zone(home: Path, zone: str) -> None:
    """Found by review: `now()` was the host's wall clock labelled UTC (05:44 UTC at 10:44 UTC in New York),
    `current_date` the host's date, and `event_ts >= now() - interval '...'` exit 2."""
    before = datetime.now(UTC)
    query = "select now() as now, current_date as today, count(*) as n from events"
    done = sql(
        home, f"{query} where event_ts >= now() - interval '36500 days'", "--format", "json", zone=zone
    )
    after = datetime.now(UTC)
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(row["now"]) <= after
    assert row["now"].endswith("+00:00") and row["n"] == 3
    assert date.fromisoformat(row["today"]) in (before.date(), after.date())

"""lakemail's commands with Dagster's storage in a real PostgreSQL server that the test starts (#18).

`make test-postgres` runs the Dagster tiers against PostgreSQL; this is the path an operator takes:
a bare `postgresql://` URL with a password, set in the environment, and a database with no schema yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestration.instance import PG_URL_VARIABLE
from orchestration.settings import Settings
from tests.conftest import land, table
from tests.events_data import file_lines
from tests.postgres import create_database, server

LAKEMAIL = [sys.executable, "-m", "orchestration.cli"]  # this checkout's code
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "never-in-dagster-yaml"  # the test server trusts loopback; a real one would check it


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with server() as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database (lakemail creates Dagster's schema), as an operator writes its URL."""
    name = f"e2e_{request.node.name.replace('-', '_')[:40].lower()}"
    made = create_database(pg_server, name)
    return made.replace("postgresql+psycopg2://lakemail@", f"postgresql://lakemail:{PASSWORD}@")


def lakemail(settings: Settings, pg_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "LAKEMAIL_HOME": str(settings.home),
        "LAKEMAIL_ESP_URL": str(settings.esp_url),
        "LAKEMAIL_SECRET": "test-secret",
        PG_URL_VARIABLE: pg_url,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [*LAKEMAIL, *args], env=env, cwd=settings.home, capture_output=True, text=True, timeout=300
    )


def runs_in(pg_url: str) -> list[tuple[str, str]]:
    """(status, launched by) of every run in the PostgreSQL database, read with SQL."""
    url = pg_url.replace("postgresql://", "postgresql+psycopg2://")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        query = (
            "select r.status, t.value from runs r join run_tags t on t.run_id = r.run_id "
            "where t.key = 'lakemail/launched_by' order by r.create_timestamp"
        )
        return [(str(status), str(by)) for status, by in connection.execute(sa.text(query))]


def test_process_and_status_keep_dagster_history_in_postgresql(settings: Settings, pg_url: str) -> None:
    land(settings, "a.ndjson", file_lines("a", 40, bad_every=10))
    first = lakemail(settings, pg_url, "process")
    assert first.returncode == 0, first.stderr[-3000:]
    land(settings, "b.ndjson", file_lines("b", 30))
    second = lakemail(settings, pg_url, "process")
    assert second.returncode == 0, second.stderr[-3000:]
    assert table(settings, "events").height == 36 + 30

    assert runs_in(pg_url) == [("SUCCESS", "lakemail process")] * 2
    config = (settings.dagster_home / "dagster.yaml").read_text()
    assert f"env: {PG_URL_VARIABLE}" in config and PASSWORD not in config and "127.0.0.1" not in config
    assert not (settings.dagster_home / "history").exists()  # no SQLite storage beside it

    status = lakemail(settings, pg_url, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    report = json.loads(status.stdout)
    assert report["healthy"] and report["last_run"]["status"] == "SUCCESS"
    assert PASSWORD not in status.stdout + status.stderr + first.stdout + first.stderr

    forgot = lakemail(settings, "", "status")  # without the URL: not an empty SQLite history
    assert forgot.returncode == 2 and f"{PG_URL_VARIABLE} is not set" in forgot.stderr, forgot.stderr

"""SIGKILL around the state store's commit in a real micro-batch (#15): killed after the batch's Delta
commits and before the store's, or right after the store's; the next run catches the store up, and the
lake, the store and the profiles end as a clean run leaves them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.state.view import current_profiles
from tests.conftest import lake_snapshot, land
from tests.events_data import track
from tests.lake.test_state_live import ingest_namespaces_equal

ROOT = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 11, 25, tzinfo=UTC)


def land_workload(settings: Settings) -> None:
    """Anonymous shoppers claimed by identifies, and re-sent messages across files."""
    for i in range(3):
        lines = [track(f"f{i}-{n}", user=None, anon=f"a-{n % 5}") for n in range(40)]
        lines += [track(f"f{max(i - 1, 0)}-{n}", user=None, anon=f"a-{n % 5}") for n in range(10)]  # re-sent
        lines += [track(f"f{i}-u{n}", user=f"u-{n % 3}", anon=f"a-{(n + i) % 5}") for n in range(4)]
        land(settings, f"f{i}.ndjson", lines)


def outcome(settings: Settings) -> tuple[dict[str, object], pl.DataFrame]:
    lake, state = LakeResource(uri=settings.lake_uri), StateResource(uri=settings.state_store_uri)
    assert ingest_namespaces_equal(lake, state) == {}
    store = state.existing()
    assert store is not None
    return lake_snapshot(settings), current_profiles(store, AS_OF)[0]


def clean(tmp_path: Path) -> tuple[dict[str, object], pl.DataFrame]:
    home = tmp_path / "ref"
    reference = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    land_workload(reference)
    lake, landing = LakeResource(uri=reference.lake_uri), LandingResource(uri=reference.landing_uri)
    state = StateResource(uri=reference.state_store_uri)
    ingest(
        lake, landing, max_batch_bytes=1, state=state, secret="test-secret"
    )  # a batch per file, as the run
    return outcome(reference)


@pytest.mark.parametrize("crash_after", ["ingest_log", "profile_updates"])
def test_a_run_killed_around_the_store_commit_then_retried_gives_the_clean_result(
    settings: Settings, tmp_path: Path, crash_after: str
) -> None:
    land_workload(settings)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    args = [sys.executable, "-m", "tests.crashing", settings.lake_uri, settings.landing_uri, crash_after]
    crashed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    lake, state = LakeResource(uri=settings.lake_uri), StateResource(uri=settings.state_store_uri)
    assert lake.committed_batch() == 1
    assert state.stamps()["ingest"] == (0 if crash_after == "ingest_log" else 1)

    with dg.instance_for_test(temp_dir=str(home)) as instance:
        [killed] = instance.get_run_records()
        instance.report_run_failed(killed.dagster_run)  # what run monitoring does for a dead worker
        assert process_once(settings, instance)["status"] == "SUCCESS"  # the retry
    (snapshot, profiles), (clean_snapshot, clean_profiles) = outcome(settings), clean(tmp_path)
    assert snapshot == clean_snapshot
    assert profiles.equals(clean_profiles) and profiles.height > 0

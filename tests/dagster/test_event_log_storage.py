"""A SQLite home's Dagster event log: one database for every run (#17: the default's database per run cost
a micro-batch 0.3-0.6 s of engine creation, schema and migration stamping, and double writes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from assets.maintenance import prune_runs
from orchestration.instance import DAGSTER_YAML, persistent_instance
from orchestration.settings import Settings


@dg.asset
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=probe)
def probe_checked() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def test_every_run_of_a_sqlite_home_writes_one_event_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "unset")  # restored afterwards: persistent_instance sets it
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    history = settings.dagster_home / "history"

    with persistent_instance(settings) as instance:
        runs = [dg.materialize([probe, probe_checked], instance=instance).run_id for _ in range(2)]
        materialized = instance.fetch_materializations(probe.key, limit=5).records
        checked = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(probe.key, "probe_checked"), limit=5
        )
        steps = [len(instance.all_logs(run, of_type=dg.DagsterEventType.STEP_SUCCESS)) for run in runs]

    assert (history / "event_log.db").is_file()
    assert sorted(p.name for p in history.glob("*.db")) == ["event_log.db", "runs.db"]
    assert not any(run in p.name for run in runs for p in settings.dagster_home.rglob("*"))  # no run shard
    assert [r.run_id for r in materialized] == runs[::-1]  # asset history across runs, newest first
    assert [c.run_id for c in checked] == runs[::-1]
    assert steps == [2, 2]


def test_a_home_from_before_prunes_its_runs_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    settings.dagster_home.mkdir(parents=True)
    (settings.dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)  # the event log's default: per run
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as before:
        old = dg.materialize([probe], instance=before).run_id
    shard = settings.dagster_home / "history" / "runs" / f"{old}.db"
    assert shard.is_file()

    with persistent_instance(settings) as instance:  # lakemail's dagster.yaml: one event database
        new = dg.materialize([probe], instance=instance).run_id
        deleted = prune_runs(instance, datetime.now(UTC) + timedelta(days=1))
        left = instance.get_run_ids()

    assert (deleted, left) == (2, [])
    assert not shard.exists() and new  # the earlier run's file went with it

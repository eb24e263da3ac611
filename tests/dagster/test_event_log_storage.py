"""A SQLite home's Dagster history: one event database for every run (#17: the default's database per run cost
a micro-batch 0.3-0.6 s of engine creation, schema and migration stamping, and double writes)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from assets.maintenance import prune_runs
from orchestration.instance import DAGSTER_YAML, persistent_instance
from orchestration.settings import Settings


@dg.asset
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3})


@dg.asset_check(asset=probe)
def probe_checked() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.op
def nothing() -> None:
    return None


@dg.job
def quiet() -> None:
    nothing()


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


def _connects(opened: list[str]) -> Callable[[Any, object], None]:
    def count(dbapi_connection: Any, _record: object) -> None:
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list").fetchall()]
        opened.extend(Path(f).name for f in files if f)

    return count


def test_a_process_keeps_its_history_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster's storages opened (and, closing it, checkpointed) a connection per write: 2-3 ms each."""
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    opened: list[str] = []
    listener = _connects(opened)
    sa.event.listen(sa.Engine, "connect", listener)
    try:
        with persistent_instance(settings) as instance:
            runs = [dg.materialize([probe, probe_checked], instance=instance).run_id for _ in range(3)]
            events = sum(len(instance.all_logs(run)) for run in runs)
    finally:
        sa.event.remove(sa.Engine, "connect", listener)

    assert events >= 3 * 15  # each run writes its planned, step, output and check events
    # Creating each database, then a pool of a few for every event and every run record's read and write.
    assert 1 <= opened.count("event_log.db") <= 5, opened.count("event_log.db")
    assert 1 <= opened.count("runs.db") <= 8, opened.count("runs.db")


WRITER = """
import sys
import dagster as dg
with dg.DagsterInstance.get() as instance:
    instance.report_engine_event("written", instance.get_run_by_id(sys.argv[1]))
    print("written", flush=True)
    sys.stdin.readline()  # held open: SQLite checkpoints the log into the database when it closes
"""


def test_a_run_watcher_sees_another_process_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI's live view of a run: the database changes only at checkpoints now, its log on each commit."""
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    seen = threading.Event()
    with persistent_instance(settings) as instance:
        run = instance.create_run_for_job(job_def=quiet)
        instance.event_log_storage.watch(run.run_id, None, lambda entry, _cursor: seen.set())
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, run.run_id],
            env={**os.environ, "DAGSTER_HOME": str(settings.dagster_home)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "written"
            watched = seen.wait(timeout=20)
        finally:
            writer.communicate("done\n", timeout=60)
    assert watched


def test_the_history_schema_is_read_once_a_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster reflected a table's columns before every asset event, check event and run-record read."""
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    reflected: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("PRAGMA") and "table_" in statement:
            reflected.append(statement)

    with persistent_instance(settings) as instance:
        dg.materialize([probe, probe_checked], instance=instance)  # the first run: the schema is read
        sa.event.listen(sa.Engine, "before_cursor_execute", count)
        try:
            runs = [dg.materialize([probe, probe_checked], instance=instance).run_id for _ in range(3)]
            records = [instance.get_run_record_by_id(run) for run in runs]
        finally:
            sa.event.remove(sa.Engine, "before_cursor_execute", count)

    assert all(r is not None and r.dagster_run.is_success for r in records)
    assert reflected == [], reflected[:3]

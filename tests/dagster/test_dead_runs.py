"""In flight means alive (#13): a run whose executor is gone is marked failed and its batch taken at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

from orchestration.jobs import MICROBATCH_JOB
from orchestration.leases import LEASE_TTL_S, WORKER_HOST, Executor, launch_tags, process_started
from orchestration.runner import serve_batches
from orchestration.sensors import run_in_flight
from orchestration.settings import Settings
from tests.conftest import instance_at, land, make_dagster_home, table
from tests.dagster.test_microbatch import evaluate_sensor
from tests.events_data import file_lines

ROOT = Path(__file__).resolve().parents[2]
FILES = {"events/a.ndjson", "events/b.ndjson"}


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failure.dagster_event is not None
    return str(failure.dagster_event.message)


def kill_mid_run(settings: Settings, home: Path, how: str) -> None:
    """A micro-batch SIGKILLed right after its `events` commit: Dagster still says STARTED."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "tests.crashing", settings.lake_uri, settings.landing_uri, "events"]
    args += [settings.esp_url or "", "", how]
    crashed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]


def ingested(settings: Settings) -> set[str]:
    if not (Path(settings.lake_uri) / "ingest_log" / "_delta_log").is_dir():
        return set()
    return set(table(settings, "ingest_log")["source_file"])


def take_with_runner(settings: Settings, instance: dg.DagsterInstance, timeout: float = 40) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=serve_batches, args=(settings, instance, stop), daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout
    try:
        while ingested(settings) != FILES and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(60)
    assert ingested(settings) == FILES, "the runner never took the dead run's batch"


@pytest.mark.parametrize(
    ("how", "taker"),
    [("leased", "runner"), ("worker", "sensor")],
    ids=["runner-run-then-runner", "daemon-run-then-sensor"],
)
def test_a_killed_run_is_marked_failed_and_its_batch_taken_at_once(
    settings: Settings, tmp_path: Path, how: str, taker: str
) -> None:
    land(settings, "a.ndjson", file_lines("a", 40))
    land(settings, "b.ndjson", file_lines("b", 30))
    home = make_dagster_home(tmp_path / "dagster_home")
    kill_mid_run(settings, home, how)
    with instance_at(home) as instance:
        [killed] = instance.get_run_records()
        assert killed.dagster_run.status == dg.DagsterRunStatus.STARTED
        if taker == "sensor":
            request = evaluate_sensor(settings, instance)
            assert isinstance(request, dg.RunRequest), request
            assert set(request.run_config["ops"]["ingest_stage"]["config"]["files"]) == FILES
        else:
            take_with_runner(settings, instance)
            assert table(settings, "events").height == 70  # the killed run's commit is not doubled
        dead = instance.get_run_record_by_id(killed.dagster_run.run_id)
        assert dead is not None and dead.dagster_run.status == dg.DagsterRunStatus.FAILURE
        assert dead.dagster_run.tags["dagster/failure_reason"] == "UNEXPECTED_TERMINATION"
        message = failure_message(instance, killed.dagster_run.run_id)
        assert "is gone" in message and "taken again" in message


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stamp(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    run = dg.DagsterRun(
        job_name=MICROBATCH_JOB, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, tags=tags
    )
    instance.add_run(run)
    return run.run_id


HERE = socket.gethostname()
ME = Executor(HERE, os.getpid(), process_started(os.getpid()))


@pytest.mark.parametrize(
    ("executor", "lease_age", "alive", "reason"),
    [
        (ME, None, True, None),
        (Executor(HERE, -1, None), None, False, "is gone"),  # replaced below by a reaped pid
        (Executor(HERE, os.getpid(), (ME.started or 0) - 3600), None, False, "started later"),
        (Executor("elsewhere", 4242, 1.0), 2.0, True, None),
        (Executor("elsewhere", 4242, 1.0), LEASE_TTL_S + 30, False, "not renewed its lease"),
        (None, None, True, None),  # launched by the daemon, not started yet: Dagster's to watch
    ],
    ids=["this-process", "dead-pid", "pid-reused", "other-host-fresh", "other-host-expired", "daemon"],
)
def test_in_flight_means_a_live_executor(
    instance: dg.DagsterInstance,
    executor: Executor | None,
    lease_age: float | None,
    alive: bool,
    reason: str | None,
) -> None:
    if executor is not None and executor.pid == -1:
        executor = Executor(HERE, dead_pid(), None)
    tags = {**launch_tags("lakemail runner"), **executor.tags()} if executor else {}
    if executor is not None and lease_age is not None:
        instance.run_storage.set_cursor_values({executor.lease_key: str(time.time() - lease_age)})
    run_id = stamp(instance, tags)
    said: list[str] = []
    assert run_in_flight(instance, said.append) is alive
    run = instance.get_run_by_id(run_id)
    assert run is not None
    if alive:
        assert run.status == dg.DagsterRunStatus.STARTED and not said
    else:
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert reason is not None and reason in failure_message(instance, run_id)
        assert said and run_id in said[0] and reason in said[0]


@pytest.mark.parametrize("host", [HERE, "elsewhere", None], ids=["this-host", "other-host", "untagged"])
def test_a_daemon_run_is_judged_by_its_workers_pid_on_its_host(
    instance: dg.DagsterInstance, host: str | None
) -> None:
    """A run the daemon launched for the sensor names its worker's host: on that host the pid Dagster
    logged for the worker decides, in SQLite and PostgreSQL alike (#18). Untagged, only a SQLite instance
    (one host's) lets this host judge it."""
    run_id = stamp(instance, {WORKER_HOST: host} if host else {})
    run = instance.get_run_by_id(run_id)
    assert run is not None
    instance.report_engine_event("Started process for run", run, EngineEventData.in_process(dead_pid()))
    released = host == HERE or (host is None and isinstance(instance.run_storage, SqliteRunStorage))
    said: list[str] = []
    assert run_in_flight(instance, said.append) is not released
    after = instance.get_run_by_id(run_id)
    assert after is not None
    if released:
        assert after.status == dg.DagsterRunStatus.FAILURE and "is gone" in failure_message(instance, run_id)
        assert said and run_id in said[0]
    else:
        assert after.status == dg.DagsterRunStatus.STARTED and not said

"""`lakemail runner`: micro-batches from a warm process, recorded in Dagster; the sensor stands aside."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import dagster as dg

from orchestration.jobs import DECIDE_JOB, INGEST_JOB
from orchestration.runner import serve_batches
from orchestration.sensors import HEARTBEAT_TIMEOUT_S, heartbeat_path
from orchestration.settings import Settings
from resources.lake import LakeResource
from tests.conftest import land, table
from tests.dagster.test_microbatch import evaluate_sensor
from tests.events_data import file_lines


def wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


def ingested(settings: Settings) -> set[str]:
    if not (Path(settings.lake_uri) / "ingest_log" / "_delta_log").is_dir():
        return set()
    return set(table(settings, "ingest_log")["source_file"])


def test_the_runner_takes_each_landed_file_in_a_recorded_run(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    stop = threading.Event()
    runs: list[int] = []
    worker = threading.Thread(
        target=lambda: runs.append(serve_batches(settings, instance, stop, poll_seconds=0.05)), daemon=True
    )
    worker.start()
    try:
        beat = heartbeat_path(LakeResource(uri=settings.lake_uri))
        assert beat is not None
        wait_for(beat.exists, 30)
        land(settings, "a.ndjson", file_lines("a", 5))
        wait_for(lambda: ingested(settings) == {"events/a.ndjson"}, 60)
        land(settings, "b.ndjson", file_lines("b", 3))
        wait_for(lambda: ingested(settings) == {"events/a.ndjson", "events/b.ndjson"}, 60)
    finally:
        stop.set()
        worker.join(60)
    assert not beat.exists()  # gone at once: the sensors take over
    records = instance.get_run_records()
    ingests = [r for r in records if r.dagster_run.job_name == INGEST_JOB]
    decides = [r for r in records if r.dagster_run.job_name == DECIDE_JOB]
    # One ingest run per file; decide runs (#15) for the committed batches, in runs of their own.
    assert len(ingests) == 2 and 1 <= len(decides) <= 2 and runs == [len(records)]
    assert len(records) == len(ingests) + len(decides)
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    assert {r.dagster_run.tags["lakemail/launched_by"] for r in records} == {"lakemail runner"}
    # The UI's "Launched by" column reads the `user` tag: the runner's runs are not "Manually launched".
    assert {r.dagster_run.tags.get("user") for r in records} == {"lakemail runner"}
    assert table(settings, "events").height == 8


def test_the_sensor_stands_aside_while_the_runner_beats(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "a.ndjson", file_lines("a", 5))
    beat = heartbeat_path(LakeResource(uri=settings.lake_uri))
    assert beat is not None
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.touch()
    skip = evaluate_sensor(settings, instance)
    assert isinstance(skip, dg.SkipReason) and "runner" in (skip.skip_message or "")
    old = time.time() - HEARTBEAT_TIMEOUT_S - 1
    os.utime(beat, (old, old))  # a runner that died without cleaning up
    assert isinstance(evaluate_sensor(settings, instance), dg.RunRequest)

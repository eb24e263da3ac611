"""A backlog's run config stays small (found by review): the landing sensor and the runner named every
pending landed file in the ingest run's config, and Dagster stores each run's config in its run storage:
on a 20k-file backlog, a megabyte or so per run and per retry. Past a few hundred paths the run now lists
the landing zone itself; it still takes everything landed since the last run, each file exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import dagster as dg
import orjson

from orchestration.jobs import MANIFEST_MAX_CHARS
from orchestration.runner import serve_batches
from orchestration.settings import Settings
from tests.conftest import table
from tests.dagster.test_lanes import evaluate, launch
from tests.events_data import track

BACKLOG = 1500  # paths of some 40 characters: 60k characters named in full


def land_backlog(settings: Settings, prefix: str, count: int) -> None:
    """`count` one-line files, written straight under their names (as `cp` into the zone would)."""
    folder = Path(settings.landing_uri) / "events"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{prefix}-{i:05d}-0123456789abcdef.ndjson").write_bytes(track(f"{prefix}-{i}") + b"\n")


def config_chars(config: object) -> int:
    return len(orjson.dumps(config))


def test_the_sensor_s_run_for_a_backlog_has_a_small_config_and_takes_it_all_once(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land_backlog(settings, "a", BACKLOG)
    request = evaluate(settings, instance, "landing_sensor")
    assert isinstance(request, dg.RunRequest)
    assert config_chars(request.run_config) < 1024 < MANIFEST_MAX_CHARS
    assert request.tags["lakemail/files"] == str(BACKLOG)
    land_backlog(settings, "late", 3)  # landed after the sensor looked, before the run: taken with it

    result = launch(settings, instance, "landing_sensor", request)

    assert result.success
    [run] = instance.get_runs()
    assert config_chars(run.run_config) < 1024  # as Dagster stored it
    log = table(settings, "ingest_log")
    assert log.height == BACKLOG + 3 and log["source_file"].n_unique() == BACKLOG + 3  # one run, all of it
    assert table(settings, "events").height == BACKLOG + 3
    assert launch(settings, instance, "landing_sensor", request).success  # a run retry of it adds nothing
    assert table(settings, "events").height == BACKLOG + 3
    skip = evaluate(settings, instance, "landing_sensor")
    assert isinstance(skip, dg.SkipReason) and "no new" in (skip.skip_message or "")


def test_a_few_files_are_still_named_in_the_run_config(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land_backlog(settings, "a", 3)
    request = evaluate(settings, instance, "landing_sensor")
    assert isinstance(request, dg.RunRequest)
    assert request.run_config["ops"]["ingest_stage"]["config"]["files"] == [
        f"events/a-{i:05d}-0123456789abcdef.ndjson" for i in range(3)
    ]


def test_the_runner_s_run_for_a_backlog_has_a_small_config(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land_backlog(settings, "a", BACKLOG)
    stop = threading.Event()
    worker = threading.Thread(target=serve_batches, args=(settings, instance, stop), daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    try:
        while not instance.get_runs() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(60)
    ingest = [r for r in instance.get_runs() if r.job_name == "ingest_job"]
    assert ingest and ingest[-1].tags["lakemail/files"] == str(BACKLOG)  # the first: the whole backlog
    assert all(config_chars(r.run_config) < 1024 for r in ingest)
    assert table(settings, "ingest_log").height == BACKLOG

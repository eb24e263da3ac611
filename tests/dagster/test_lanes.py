"""Two lanes (#15): ingest runs and decide + deliver runs are separate Dagster jobs, each with its in-run
checks, launched by a sensor each when no runner beats; a run of one lane never holds up the other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import dagster as dg
import pytest

from orchestration.definitions import build_defs
from orchestration.jobs import DECIDE_JOB, INGEST_JOB, MICROBATCH_JOB
from orchestration.lanes import DECIDE, INGEST
from orchestration.leases import Executor, launch_tags, process_started
from orchestration.sensors import heartbeat_path, run_in_flight
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from tests.conftest import land, table
from tests.events_data import file_lines

ME = Executor(socket.gethostname(), os.getpid(), process_started(os.getpid()))


def evaluate(settings: Settings, instance: dg.DagsterInstance, name: str) -> object:
    sensor = build_defs(settings).resolve_sensor_def(name)
    resources = {
        "lake": LakeResource(uri=settings.lake_uri),
        "landing": LandingResource(uri=settings.landing_uri),
        "state": StateResource(uri=settings.state_store_uri),
    }
    return sensor(dg.build_sensor_context(instance=instance, resources=resources))


def launch(
    settings: Settings, instance: dg.DagsterInstance, sensor: str, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """What the daemon does with a sensor's request: run the sensor's job with the request's config."""
    defs = build_defs(settings)
    job = defs.resolve_job_def(str(defs.resolve_sensor_def(sensor).job_name))
    return job.execute_in_process(instance=instance, run_config=request.run_config, tags=request.tags)


def stamp(instance: dg.DagsterInstance, job: str, executor: Executor) -> str:
    """A run of `job` in flight (STARTED) whose executor is `executor`."""
    tags = {**launch_tags("lakemail runner"), **executor.tags()}
    run = dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, tags=tags)
    instance.add_run(run)
    return run.run_id


def dead_executor() -> Executor:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return Executor(socket.gethostname(), child.pid, None)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def test_the_sensors_launch_both_lanes_and_neither_waits_for_the_other(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    defs = build_defs(settings)
    assert defs.resolve_sensor_def("landing_sensor").job_name == INGEST_JOB
    assert defs.resolve_sensor_def("decide_sensor").job_name == DECIDE_JOB
    assert isinstance(evaluate(settings, instance, "decide_sensor"), dg.SkipReason)  # nothing committed
    land(settings, "a.ndjson", file_lines("a", 5))
    ingest = evaluate(settings, instance, "landing_sensor")
    assert isinstance(ingest, dg.RunRequest)
    result = launch(settings, instance, "landing_sensor", ingest)
    assert result.success
    assert materialized(result) == {
        *("events", "quarantine", "ingest_log", "identities", "customers", "catalog", "catalog_changes"),
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["events_event_id_unique"] and checks["no_failed_files"]

    decide = evaluate(settings, instance, "decide_sensor")  # batch 1 is committed, the engine has not seen it
    assert isinstance(decide, dg.RunRequest) and decide.run_key
    again = evaluate(settings, instance, "decide_sensor")
    assert isinstance(again, dg.RunRequest) and again.run_key == decide.run_key  # asked once per batch

    # A decide run (a slow delivery) in flight: the next landed file is still launched at once.
    in_flight = stamp(instance, DECIDE_JOB, ME)
    land(settings, "b.ndjson", file_lines("b", 3))
    waiting = evaluate(settings, instance, "decide_sensor")
    assert isinstance(waiting, dg.SkipReason) and "in flight" in (waiting.skip_message or "")
    second = evaluate(settings, instance, "landing_sensor")
    assert isinstance(second, dg.RunRequest)
    assert second.run_config["ops"]["ingest_stage"]["config"]["files"] == ["events/b.ndjson"]
    assert launch(settings, instance, "landing_sensor", second).success
    assert table(settings, "events").height == 8
    placeholder = instance.get_run_by_id(in_flight)
    assert placeholder is not None
    instance.report_run_failed(placeholder)  # the placeholder ends

    decided = launch(settings, instance, "decide_sensor", evaluate(settings, instance, "decide_sensor"))  # type: ignore[arg-type]
    assert decided.success and materialized(decided) == {"triggers", "sends"}
    assert {e.asset_key.to_user_string() for e in decided.get_asset_check_evaluations()} >= {"triggers"}
    done = evaluate(settings, instance, "decide_sensor")
    assert isinstance(done, dg.SkipReason) and "no batch" in (done.skip_message or "")


@pytest.mark.parametrize(("dead", "live"), [(INGEST_JOB, DECIDE_JOB), (DECIDE_JOB, INGEST_JOB)])
def test_a_dead_run_of_either_lane_is_marked_failed_and_frees_its_lane(
    settings: Settings, instance: dg.DagsterInstance, dead: str, live: str
) -> None:
    gone = stamp(instance, dead, dead_executor())
    alive = stamp(instance, live, ME)
    said: list[str] = []
    assert run_in_flight(instance, said.append)  # the live run of the other lane is in flight
    dead_run, live_run = instance.get_run_by_id(gone), instance.get_run_by_id(alive)
    assert dead_run is not None and dead_run.status == dg.DagsterRunStatus.FAILURE
    assert dead_run.tags["dagster/failure_reason"] == "UNEXPECTED_TERMINATION"
    assert live_run is not None and live_run.status == dg.DagsterRunStatus.STARTED
    assert len(said) == 1 and gone in said[0] and "is gone" in said[0]


@pytest.mark.parametrize("sensor", ["landing_sensor", "decide_sensor"])
def test_a_run_of_both_lanes_holds_each_lane(
    settings: Settings, instance: dg.DagsterInstance, sensor: str
) -> None:
    """`lakemail process` (microbatch_job, both lanes in one run) in flight: neither lane starts a run."""
    land(settings, "a.ndjson", file_lines("a", 5))
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    assert job.execute_in_process(instance=instance, run_config={}).success  # something for decide
    land(settings, "b.ndjson", file_lines("b", 3))
    stamp(instance, MICROBATCH_JOB, ME)
    skip = evaluate(settings, instance, sensor)
    assert isinstance(skip, dg.SkipReason) and "in flight" in (skip.skip_message or "")


def test_a_runner_of_one_lane_holds_only_that_lanes_sensor(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """`lakemail up` runs one runner per lane: while one beats, the other lane's sensor takes its runs."""
    land(settings, "a.ndjson", file_lines("a", 5))
    lake = LakeResource(uri=settings.lake_uri)
    ingest_beat, decide_beat = heartbeat_path(lake, INGEST), heartbeat_path(lake, DECIDE)
    assert ingest_beat is not None and decide_beat is not None
    ingest_beat.parent.mkdir(parents=True, exist_ok=True)
    ingest_beat.touch()
    skip = evaluate(settings, instance, "landing_sensor")
    assert isinstance(skip, dg.SkipReason) and "runner" in (skip.skip_message or "")
    idle = evaluate(settings, instance, "decide_sensor")  # its own rule: nothing committed yet
    assert isinstance(idle, dg.SkipReason) and "runner" not in (idle.skip_message or "")
    ingest_beat.unlink()
    decide_beat.touch()
    assert isinstance(evaluate(settings, instance, "landing_sensor"), dg.RunRequest)
    aside = evaluate(settings, instance, "decide_sensor")
    assert isinstance(aside, dg.SkipReason) and "runner" in (aside.skip_message or "")

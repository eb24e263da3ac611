"""A schedule asks for no run while its last one is still in flight (found by review): `profiles_job` runs
every LAKEMAIL_PROFILES_REFRESH (2 minutes) and takes 95-536 s on a 5M-user lake (BENCHMARKS.md), so its
schedule launched a run at every tick whatever was running: each waited on the profiles lock in a process
of its own, then did the refresh again, and the queue grew as long as a run outlasted the interval. A run
whose worker died holds no schedule back: it is marked failed, as the lanes' are."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from orchestration.definitions import build_defs
from orchestration.jobs import PROFILES_JOB, microbatch_config
from orchestration.leases import WORKER_HOST, Executor, launch_tags
from orchestration.settings import Settings
from resources.lake import LakeResource
from tests.conftest import land
from tests.dagster.test_dead_runs import dead_pid, failure_message
from tests.events_data import track

SCHEDULE_TAG = "dagster/schedule_name"  # Dagster's tag on a schedule's runs (and their run retries)
SCHEDULES = ("profiles_schedule", "maintenance_schedule", "measure_schedule", "audit_schedule")


def tick(schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance) -> dg.RunRequest | str:
    """The schedule's evaluation at its next tick, as the daemon makes it: its request, or why it skips."""
    at = datetime.now(UTC) + timedelta(minutes=2)
    data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at))
    if data.run_requests:
        [request] = data.run_requests
        return request
    return str(data.skip_message)


def in_flight(instance: dg.DagsterInstance, job: str) -> list[dg.RunRecord]:
    return list(instance.get_run_records(dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.STARTED])))


def test_profiles_schedule_waits_for_the_refresh_in_flight(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "a.ndjson", [track("m-1", anon="anon-1")])
    defs = build_defs(settings)
    batch = defs.resolve_job_def("microbatch_job")
    assert batch.execute_in_process(instance=instance, run_config=microbatch_config(None, 64)).success
    schedule = defs.resolve_schedule_def("profiles_schedule")
    first = tick(schedule, instance)
    assert isinstance(first, dg.RunRequest)
    job = defs.resolve_job_def(PROFILES_JOB)
    tags = {**first.tags, SCHEDULE_TAG: "profiles_schedule"}  # the daemon's run of that tick
    with LakeResource(uri=settings.lake_uri).profiles_lock():  # a long refresh: its run waits here
        worker = threading.Thread(target=lambda: job.execute_in_process(instance=instance, tags=tags))
        worker.start()
        deadline = time.monotonic() + 60
        while not in_flight(instance, PROFILES_JOB) and time.monotonic() < deadline:
            time.sleep(0.05)
        [running] = in_flight(instance, PROFILES_JOB)

        skipped = [tick(schedule, instance) for _ in range(3)]  # three ticks while it runs

        assert skipped == [f"run {running.dagster_run.run_id} of profiles_schedule is still in flight"] * 3
    worker.join(120)
    assert not in_flight(instance, PROFILES_JOB)
    assert isinstance(tick(schedule, instance), dg.RunRequest)  # it ended: the next tick runs
    assert first.tags[WORKER_HOST]  # so that a dead worker is judged by its pid on PostgreSQL too


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_scheduled_run_whose_worker_died_holds_no_schedule_back(
    settings: Settings, instance: dg.DagsterInstance, name: str
) -> None:
    schedule = build_defs(settings).resolve_schedule_def(name)
    alive = dg.DagsterRun(
        job_name=schedule.job_name,
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={**launch_tags("test"), **Executor.current().tags(), SCHEDULE_TAG: name},
    )
    instance.add_run(alive)
    assert tick(schedule, instance) == f"run {alive.run_id} of {name} is still in flight"
    instance.report_run_canceled(alive)

    dead = dg.DagsterRun(
        job_name=schedule.job_name,
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={**Executor(socket.gethostname(), dead_pid(), None).tags(), SCHEDULE_TAG: name},
    )
    instance.add_run(dead)

    assert isinstance(tick(schedule, instance), dg.RunRequest)
    failed = instance.get_run_by_id(dead.run_id)
    assert failed is not None and failed.status == dg.DagsterRunStatus.FAILURE
    assert "is gone" in failure_message(instance, dead.run_id)

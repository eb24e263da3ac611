"""`lakemail status` judges each lane (#15): a decide lane that failed, or whose work nothing takes, is
unhealthy however well the ingest lane does (found by a read-only review: both were HEALTHY, exit 0)."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import RemoteInstigatorOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData
from dagster._daemon.types import DaemonHeartbeat

from orchestration.definitions import build_defs
from orchestration.jobs import DECIDE_JOB, INGEST_JOB, MICROBATCH_JOB, decide_config, ingest_config
from orchestration.lanes import DECIDE, INGEST
from orchestration.sensors import heartbeat_path
from orchestration.settings import Settings
from orchestration.status import render_status, status_report
from resources.lake import LakeResource
from tests.conftest import land
from tests.dagster.test_maintenance import REPOSITORY
from transforms.triggers.policies import Policy

NEW_BATCH = "a batch the engine has not seen"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No quiet hours: these runs decide at the wall clock's time, and a welcome decided between 07:50 and
    08:00 UTC was deferred to 08:00, so the test's "ten minutes later" found it due and waiting (it failed
    at 07:59 on 2026-12-05)."""
    return replace(settings, policy=Policy(quiet_hours=False))


def identify(settings: Settings, name: str, user: str) -> None:
    """A consented identify of two hours ago landed as `name` (a welcome to decide)."""
    at = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    traits = {"email": f"{user}@example.com", "marketing_consent": True}
    message = {
        "type": "identify",
        "messageId": f"m-{user}",
        "userId": user,
        "timestamp": at,
        "traits": traits,
    }
    land(settings, name, [orjson.dumps(message)])


def run(settings: Settings, instance: dg.DagsterInstance, job: str) -> None:
    config = ingest_config(None, 64) if job == INGEST_JOB else decide_config()
    assert (
        build_defs(settings)
        .resolve_job_def(job)
        .execute_in_process(instance=instance, run_config=config)
        .success
    )


def failed(instance: dg.DagsterInstance, job: str) -> str:
    """A run of `job` that failed (a decide step that raised, say)."""
    record = dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.FAILURE)
    instance.add_run(record)
    return record.run_id


def beat(settings: Settings, lane: str, at: datetime) -> None:
    """A runner of one lane beating at `at`."""
    path = heartbeat_path(LakeResource(uri=settings.lake_uri), lane)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, (at.timestamp(), at.timestamp()))


def test_a_failed_decide_lane_is_unhealthy_until_a_decide_run_succeeds(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    identify(settings, "a.ndjson", "u-1")
    run(settings, instance, INGEST_JOB)
    decide = failed(instance, DECIDE_JOB)
    identify(settings, "b.ndjson", "u-2")
    run(settings, instance, INGEST_JOB)  # the newest run, a success: it hid the decide lane's failure

    report = status_report(settings, instance)
    assert not report["healthy"]
    assert report["problems"] == [f"decide lane: last run FAILURE ({decide}), no later run succeeded"]
    health = report["lane_health"]
    assert health[DECIDE]["failed"] and health[DECIDE]["last_finished"]["run_id"] == decide
    assert not health[INGEST]["failed"] and report["lanes"][INGEST]["status"] == "SUCCESS"
    assert f"  ! decide lane: last run FAILURE ({decide})" in render_status(report)
    assert "u-1" not in str(report) and "example.com" not in str(report)

    run(settings, instance, DECIDE_JOB)  # the provider is back: the welcomes go
    report = status_report(settings, instance)
    assert report["healthy"] and report["problems"] == [], report["problems"]
    assert report["lane_health"][DECIDE]["waiting_seconds"] is None

    both = failed(instance, MICROBATCH_JOB)  # `lakemail process` runs both lanes: its failure is each one's
    report = status_report(settings, instance)
    assert report["problems"] == [
        f"ingest lane: last run FAILURE ({both}), no later run succeeded",
        f"decide lane: last run FAILURE ({both}), no later run succeeded",
    ]
    assert [f["run_id"] for f in report["open_failures"]] == [both]  # one run, named once


def test_decide_work_nothing_takes_is_unhealthy_after_the_max_lag(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    identify(settings, "a.ndjson", "u-1")
    run(settings, instance, INGEST_JOB)  # batch 1: the decide lane's work, and no runner, no daemon
    now = datetime.now(UTC)

    fresh = status_report(settings, instance, now=now)
    assert fresh["healthy"], fresh["problems"]  # just committed: within the max lag

    later = now + timedelta(minutes=10)
    report = status_report(settings, instance, now=later, max_lag=timedelta(minutes=2))
    assert not report["healthy"]
    [problem] = report["problems"]
    assert problem.startswith("decide lane: work waiting for 6")  # ten minutes less the ingest run
    assert (
        f"({NEW_BATCH}) and nothing takes it (no `lakemail runner` heartbeat for the decide lane" in problem
    )
    assert "decide work: waiting 6" in render_status(report)
    work = fresh["lane_health"][DECIDE]
    assert work["waiting_for"] == [NEW_BATCH] and work["waiting_seconds"] < 60 and work["takers"] == []

    beat(settings, INGEST, later)  # a runner of the ingest lane does not take the decide lane's work
    report = status_report(settings, instance, now=later)
    assert report["problems"] == [problem]
    assert report["lane_health"][INGEST]["takers"] == ["lakemail runner (ingest lane)"]

    beat(settings, DECIDE, later)
    report = status_report(settings, instance, now=later)
    assert report["healthy"], report["problems"]
    assert report["takers"] == ["lakemail runner"]

    run(settings, instance, DECIDE_JOB)
    assert status_report(settings, instance, now=later)["lane_health"][DECIDE]["waiting_seconds"] is None


def test_files_nothing_of_the_ingest_lane_takes_are_unhealthy_at_once(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    now = datetime.now(UTC)
    beat(settings, DECIDE, now)  # a runner of the decide lane alone
    identify(settings, "a.ndjson", "u-1")
    report = status_report(settings, instance, now=now)
    assert report["takers"] == ["lakemail runner (decide lane)"]
    assert (
        "backlog: 1 file(s) wait and nothing takes them "
        "(no `lakemail runner` heartbeat for the ingest lane, no Dagster daemon running its sensor): "
        "start `lakemail up` or turn the sensor on"
    ) in report["problems"]


def daemon_beats(instance: dg.DagsterInstance, at: datetime) -> None:
    """A `dagster-daemon` whose sensor thread beat at `at`."""
    instance.add_daemon_heartbeat(DaemonHeartbeat(at.timestamp(), "SENSOR", "daemon-1", []))


def sensor_state(instance: dg.DagsterInstance, name: str) -> InstigatorState:
    """The state the daemon stores for a sensor it runs (as declared in code: running)."""
    origin = RemoteInstigatorOrigin(REPOSITORY, name)
    return instance.add_instigator_state(
        InstigatorState(
            origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE, SensorInstigatorData()
        )
    )


def test_the_daemon_takes_only_the_lanes_whose_sensor_runs(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    now = datetime.now(UTC)
    daemon_beats(instance, now)
    states = {name: sensor_state(instance, name) for name in ("landing_sensor", "decide_sensor")}
    identify(settings, "a.ndjson", "u-1")
    run(settings, instance, INGEST_JOB)  # batch 1: the decide lane's work
    identify(settings, "b.ndjson", "u-2")
    report = status_report(settings, instance, now=now)
    assert report["healthy"], report["problems"]
    assert report["takers"] == ["dagster-daemon (landing_sensor)", "dagster-daemon (decide_sensor)"]

    landing = states["landing_sensor"]  # turned off in the UI: the daemon beats on, launching nothing
    instance.stop_sensor(landing.instigator_origin_id, landing.selector_id, None)
    report = status_report(settings, instance, now=now)
    assert report["problems"] == [
        "backlog: 1 file(s) wait and nothing takes them (no `lakemail runner` heartbeat for the ingest "
        "lane, no Dagster daemon running its sensor): start `lakemail up` or turn the sensor on"
    ]
    assert report["takers"] == ["dagster-daemon (decide_sensor)"]

    run(settings, instance, INGEST_JOB)  # batch 2
    later = now + timedelta(minutes=10)
    daemon_beats(instance, later)
    assert status_report(settings, instance, now=later)["healthy"]  # decide_sensor takes it
    decide = states["decide_sensor"]
    instance.stop_sensor(decide.instigator_origin_id, decide.selector_id, None)
    report = status_report(settings, instance, now=later)
    [problem] = report["problems"]
    assert problem.startswith("decide lane: work waiting for ") and problem.endswith(
        f"({NEW_BATCH}) and nothing takes it (no `lakemail runner` heartbeat for the decide lane, "
        "no Dagster daemon running its sensor): start `lakemail up` or turn the sensor on"
    )
    assert report["takers"] == [] and "taken by:  nothing" in render_status(report)

    for state in states.values():  # turned on again
        instance.update_instigator_state(state.with_status(InstigatorStatus.RUNNING))
    report = status_report(settings, instance, now=later)
    assert report["healthy"], report["problems"]
    assert report["lane_health"][DECIDE]["takers"] == ["dagster-daemon (decide_sensor)"]

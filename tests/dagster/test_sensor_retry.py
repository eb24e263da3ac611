"""A lane sensor takes work again after its run and Dagster's run retries all failed: Dagster never launches
a sensor's run key twice, so the key gets a new generation once the last failure is `failure_backoff` old.
The erasure sensor too: a person's request whose runs all failed was never carried out."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import orjson
import pytest
import yaml
from dagster._core.storage.tags import (
    AUTO_RETRY_RUN_ID_TAG,
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_ID_TAG,
    WILL_RETRY_TAG,
)

from orchestration.definitions import build_defs
from orchestration.instance import DAGSTER_YAML
from orchestration.jobs import DECIDE_JOB, ERASURE_JOB, INGEST_JOB
from orchestration.run_keys import BATCH_KEY_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG, failure_backoff
from orchestration.sensors import ERASURE_SENSOR, build_erasure_sensor, build_lane_sensors
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.erasure.requests import pending_requests, read_certificate
from tests.conftest import NO_CAPTURE, instance_at, land
from tests.dagster.test_erasure import EMAIL, USER, erasure_defs, land_world, write_request
from tests.events_data import file_lines

SENSOR_JOB = {"landing_sensor": INGEST_JOB, "decide_sensor": DECIDE_JOB, ERASURE_SENSOR: ERASURE_JOB}
Tick = Callable[[datetime], object]


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """An instance with lakemail's run retries (dagster.yaml: two), so Dagster tags each failure with
    whether a retry will follow."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    retries = yaml.safe_load(DAGSTER_YAML)["run_retries"]
    with instance_at(home, {"compute_logs": NO_CAPTURE, "run_retries": retries}) as made:
        yield made


def ticker(settings: Settings, instance: dg.DagsterInstance, name: str) -> Tick:
    """One evaluation of the lane sensor `name` at a given time, as the daemon's tick makes it."""
    sensor = next(s for s in build_lane_sensors(2, 64, now=lambda: clock[0]) if s.name == name)
    resources = {
        "lake": LakeResource(uri=settings.lake_uri),
        "landing": LandingResource(uri=settings.landing_uri),
        "state": StateResource(uri=settings.state_store_uri),
    }
    clock = [datetime.now(UTC)]

    def tick(at: datetime) -> object:
        clock[0] = at
        return sensor(dg.build_sensor_context(instance=instance, resources=resources))

    return tick


def work_for(settings: Settings, instance: dg.DagsterInstance, name: str) -> None:
    """Something for the lane of `name` to do: a landed file, or a batch committed and not decided on."""
    land(settings, "a.ndjson", file_lines("a", 5))
    if name == "decide_sensor":
        defs = build_defs(settings)
        assert defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance).success


def sensor_run(
    instance: dg.DagsterInstance,
    name: str,
    request: dg.RunRequest,
    parent: dg.DagsterRun | None = None,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED,
) -> dg.DagsterRun:
    """The run the daemon makes of `request` (or, with `parent`, its run retry of `parent`), in `status`."""
    tags = {**request.tags, RUN_KEY_TAG: str(request.run_key), SENSOR_NAME_TAG: name}
    root = None if parent is None else parent.root_run_id or parent.run_id
    if parent is not None:
        retry = str(int(parent.tags.get(RETRY_NUMBER_TAG, "0")) + 1)
        tags |= {PARENT_RUN_ID_TAG: parent.run_id, ROOT_RUN_ID_TAG: str(root), RETRY_NUMBER_TAG: retry}
    run = dg.DagsterRun(
        job_name=SENSOR_JOB[name],
        run_id=str(uuid.uuid4()),
        status=status,
        tags=tags,
        root_run_id=root,
        parent_run_id=None if parent is None else parent.run_id,
    )
    instance.add_run(run)
    if parent is not None:
        instance.add_run_tags(parent.run_id, {AUTO_RETRY_RUN_ID_TAG: run.run_id})
    return run


def fail(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun:
    """`run` fails (a full disk, a killed worker): Dagster says whether its run retries take it again."""
    instance.report_run_failed(run)
    failed = instance.get_run_by_id(run.run_id)
    assert failed is not None and failed.status == dg.DagsterRunStatus.FAILURE
    return failed


def fail_with_retries(instance: dg.DagsterInstance, name: str, request: dg.RunRequest, tick: Tick) -> float:
    """The run of `request` and Dagster's two retries of it fail; returns when the last one ended. While
    a retry is to come, the sensor asks for the same key (Dagster skips it: the retry takes the batch)."""
    run = fail(instance, sensor_run(instance, name, request))
    for _ in range(2):
        assert run.tags[WILL_RETRY_TAG] == "true"
        during = tick(datetime.now(UTC) + timedelta(hours=1))
        assert isinstance(during, dg.RunRequest) and during.run_key == request.run_key
        run = fail(instance, sensor_run(instance, name, request, parent=run))
    assert run.tags[WILL_RETRY_TAG] == "false"  # retries exhausted, by Dagster's own policy
    record = instance.get_run_record_by_id(run.run_id)
    assert record is not None and record.end_time is not None
    return record.end_time


@pytest.mark.parametrize("name", ["landing_sensor", "decide_sensor"])
def test_work_whose_runs_all_failed_is_requested_again_under_a_new_key_after_a_backoff(
    settings: Settings, instance: dg.DagsterInstance, name: str
) -> None:
    work_for(settings, instance, name)
    tick = ticker(settings, instance, name)
    first = tick(datetime.now(UTC))
    assert isinstance(first, dg.RunRequest) and first.run_key
    base = first.run_key
    assert first.tags[BATCH_KEY_TAG] == base  # the lake's key: the first generation's run key

    ended = datetime.fromtimestamp(fail_with_retries(instance, name, first, tick), UTC)
    assert failure_backoff(3) == 4.0
    early = tick(ended + timedelta(seconds=3.9))
    assert isinstance(early, dg.SkipReason) and f"3 run(s) of {base} failed" in (early.skip_message or "")
    second = tick(ended + timedelta(seconds=4))
    assert isinstance(second, dg.RunRequest) and second.run_key == f"{base}-r3"
    assert second.run_config == first.run_config and second.tags[BATCH_KEY_TAG] == base
    assert tick(ended + timedelta(seconds=5)).run_key == second.run_key  # type: ignore[attr-defined]

    # The new generation fails as well: the next waits longer (32 s after six failures).
    ended = datetime.fromtimestamp(fail_with_retries(instance, name, second, tick), UTC)
    assert isinstance(tick(ended + timedelta(seconds=31.9)), dg.SkipReason)
    third = tick(ended + timedelta(seconds=32))
    assert isinstance(third, dg.RunRequest) and third.run_key == f"{base}-r6"


@pytest.mark.parametrize(
    ("name", "ending"),
    [
        ("landing_sensor", dg.DagsterRunStatus.SUCCESS),
        ("decide_sensor", dg.DagsterRunStatus.SUCCESS),
        ("landing_sensor", dg.DagsterRunStatus.CANCELED),
    ],
)
def test_a_run_that_ended_otherwise_keeps_its_key(
    settings: Settings, instance: dg.DagsterInstance, name: str, ending: dg.DagsterRunStatus
) -> None:
    """A run that succeeded (or was canceled from the UI) is not requested again under a new key, however
    late: Dagster skips its key (the lake, once the run committed, gives a new one)."""
    work_for(settings, instance, name)
    tick = ticker(settings, instance, name)
    first = tick(datetime.now(UTC))
    assert isinstance(first, dg.RunRequest)
    run = fail(instance, sensor_run(instance, name, first))
    assert sensor_run(instance, name, first, parent=run, status=ending).status == ending  # its run retry
    later = tick(datetime.now(UTC) + timedelta(days=1))
    assert isinstance(later, dg.RunRequest) and later.run_key == first.run_key


def test_the_backoff_doubles_from_a_second_to_a_minute_as_the_runner_waits() -> None:
    assert [failure_backoff(n) for n in range(9)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert failure_backoff(10_000) == 60.0


def erasure_ticker(settings: Settings, instance: dg.DagsterInstance) -> Tick:
    """One evaluation of the erasure sensor at a given time: its one request, or its skip."""
    clock = [datetime.now(UTC)]
    sensor = build_erasure_sensor(now=lambda: clock[0])
    landing = LandingResource(uri=settings.landing_uri)

    def tick(at: datetime) -> object:
        clock[0] = at
        evaluated = sensor(dg.build_sensor_context(instance=instance, resources={"landing": landing}))
        if isinstance(evaluated, list):
            [request] = evaluated
            return request
        return evaluated

    return tick


def test_an_erasure_request_whose_runs_all_failed_is_requested_again_and_carried_out(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """Her request file stays for a retry when a run fails; once Dagster's run retries failed too, the
    erasure sensor asked for the same run key forever (Dagster skips it): she was never erased."""
    land_world(settings)
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))
    tick = erasure_ticker(settings, instance)
    first = tick(datetime.now(UTC))
    assert isinstance(first, dg.RunRequest) and first.run_key
    base = first.run_key
    assert first.tags[BATCH_KEY_TAG] == base and EMAIL.lower() not in base.lower()

    ended = datetime.fromtimestamp(fail_with_retries(instance, ERASURE_SENSOR, first, tick), UTC)
    early = tick(ended + timedelta(seconds=3.9))
    assert isinstance(early, dg.SkipReason) and f"3 run(s) of {base} failed" in (early.skip_message or "")
    second = tick(ended + timedelta(seconds=4))
    assert isinstance(second, dg.RunRequest) and second.run_key == f"{base}-r3"
    assert second.run_config == first.run_config and second.tags[BATCH_KEY_TAG] == base

    # The daemon's run of the new key carries her request out: nothing waits, nothing is asked again.
    tags = {**second.tags, RUN_KEY_TAG: f"{base}-r3", SENSOR_NAME_TAG: ERASURE_SENSOR}
    job = erasure_defs(settings).resolve_job_def(ERASURE_JOB)
    result = job.execute_in_process(instance=instance, run_config=second.run_config, tags=tags)
    [certificate] = [orjson.loads(c) for c in result.output_for_node("erase_requests")]
    assert certificate["passed"] and certificate["request_source"] in str(second.run_config)
    assert read_certificate(LakeResource(uri=settings.lake_uri), certificate["request_id"]) is not None
    landing = LandingResource(uri=settings.landing_uri)
    assert pending_requests(landing) == []
    later = tick(ended + timedelta(hours=1))
    assert isinstance(later, dg.SkipReason) and later.skip_message == "no erasure requests"

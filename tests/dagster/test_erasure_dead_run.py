"""In flight means alive, for erasure too (found by review): an erasure run whose worker died (SIGKILL,
OOM, `lakemail up` killed with its code servers) stayed STARTED forever. Dagster's run monitoring does not
check the default launcher's workers, the erasure sensor asked for that run's key again at every tick
(Dagster never launches a key twice), and `lakemail status` counted the dead run as taking the request:
the person was never erased, and nothing said so."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import orjson

from orchestration.leases import WORKER_HOST
from orchestration.run_keys import RUN_KEY_TAG, SENSOR_NAME_TAG
from orchestration.sensors import ERASURE_SENSOR, build_erasure_sensor
from orchestration.settings import Settings
from orchestration.status import status_report
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.erasure.requests import pending_requests, read_certificate
from tests.conftest import instance_at, make_dagster_home
from tests.dagster.test_dead_runs import failure_message
from tests.dagster.test_erasure import EMAIL, USER, erasure_defs, land_world, write_request
from tests.dagster.test_erasure_names import launch

ROOT = Path(__file__).resolve().parents[2]


def tick(instance: dg.DagsterInstance, landing: LandingResource, at: datetime) -> dg.RunRequest | str:
    """One evaluation of the erasure sensor at `at`: its one request, or why it skipped."""
    sensor = build_erasure_sensor(now=lambda: at)
    evaluated = sensor(dg.build_sensor_context(instance=instance, resources={"landing": landing}))
    if isinstance(evaluated, list):
        [request] = evaluated
        return request
    assert isinstance(evaluated, dg.SkipReason)
    return str(evaluated.skip_message)


def kill_mid_erasure(settings: Settings, home: Path, request: dg.RunRequest) -> None:
    """The daemon's run of `request`, SIGKILLed right after the erasure's first Delta write."""
    [path] = request.run_config["ops"]["erase_requests"]["config"]["requests"]
    tags = {**request.tags, RUN_KEY_TAG: str(request.run_key), SENSOR_NAME_TAG: ERASURE_SENSOR}
    args = [sys.executable, "-m", "tests.crashing_erasure", settings.lake_uri, settings.landing_uri]
    args += [settings.state_store_uri, path, orjson.dumps(tags).decode()]
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    crashed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]


def test_an_erasure_run_whose_worker_died_is_marked_failed_and_the_request_carried_out(
    settings: Settings, landing: LandingResource, tmp_path: Path
) -> None:
    land_world(settings)
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))
    home = make_dagster_home(tmp_path / "dagster_home")
    with instance_at(home) as instance:
        first = tick(instance, landing, datetime.now(UTC))
        assert isinstance(first, dg.RunRequest) and first.run_key
        assert WORKER_HOST in first.tags  # judged by its worker's pid on PostgreSQL too
    kill_mid_erasure(settings, home, first)
    with instance_at(home) as instance:
        [killed] = instance.get_run_records()
        assert killed.dagster_run.status == dg.DagsterRunStatus.STARTED  # as Dagster leaves it
        later = datetime.now(UTC) + timedelta(hours=1)
        report = status_report(settings, instance, now=later)  # a dead run takes nothing
        assert report["erasure"]["runs_in_flight"] == 0 and report["erasure"]["pending_requests"] == 1
        assert any("no erasure run is queued or running" in p for p in report["problems"])

        again = tick(instance, landing, later)

        dead = instance.get_run_by_id(killed.dagster_run.run_id)
        assert dead is not None and dead.status == dg.DagsterRunStatus.FAILURE
        assert "is gone" in failure_message(instance, dead.run_id)
        assert isinstance(again, dg.RunRequest) and again.run_key == f"{first.run_key}-r1"
        assert again.run_config == first.run_config

        result = launch(erasure_defs(settings), instance, again)  # the daemon's run of the new key
        assert result.success
        [certificate] = [orjson.loads(c) for c in result.output_for_node("erase_requests")]
        assert certificate["passed"]
        assert read_certificate(LakeResource(uri=settings.lake_uri), certificate["request_id"]) is not None
        assert pending_requests(landing) == []
        assert tick(instance, landing, later + timedelta(minutes=1)) == "no erasure requests"

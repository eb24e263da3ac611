"""`lakemail status` judges GDPR erasure requests that nothing takes (found by a review of the erasure
path): a request waiting in the landing zone with no erasure run queued or running (the daemon down, the
sensor off, or its failed run pruned by maintenance, which status judged the request by) left status
HEALTHY, exit 0, while the person was never erased. Past the max lag it is unhealthy, saying a count and
an age only: the file may be named after her until the sensor renames it. And an erasure whose
certificate found traces left ended as a successful run, so status said nothing of it: it is an open
failure until a later erasure of that person is certified clean."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import orjson
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

import stores.erasure.requests as requests
from assets.maintenance import prune_runs
from orchestration.jobs import ERASURE_JOB
from orchestration.settings import Settings
from orchestration.status import render_status, status_report
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.erasure.requests import pending_requests
from stores.ingest import ingest
from tests.dagster.test_erasure import EMAIL, USER, erasure_defs, identify, write_request
from tests.dagster.test_erasure_names import launch, sensor_requests
from transforms.operations.maintenance import history_cutoff


def waiting(seconds: int) -> str:
    return (
        f"erasure: 1 request(s) wait, the oldest for {seconds} s, and no erasure run is queued or running "
        "(the Dagster daemon's `erasure_sensor` launches one within seconds): start `lakemail up` or turn "
        "the sensor on"
    )


def landed_at(landing: LandingResource) -> datetime:
    [request] = pending_requests(landing)
    return request.landed_at


def says_nothing_of_her(report: dict[str, Any]) -> None:
    said = (str(report) + render_status(report)).lower()
    assert USER not in said and EMAIL.lower() not in said and "erasure/" not in said


def test_a_request_nothing_takes_is_unhealthy_after_the_max_lag(
    settings: Settings, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))  # named after her
    landed = landed_at(landing)
    report = status_report(settings, instance, now=landed + timedelta(seconds=60))
    assert report["healthy"], report["problems"]  # within the max lag (2 min): the sensor may take it yet
    assert report["erasure"] == {"pending_requests": 1, "oldest_age_seconds": 60.0, "runs_in_flight": 0}

    report = status_report(settings, instance, now=landed + timedelta(hours=3))
    assert not report["healthy"] and report["problems"] == [waiting(10800)]
    assert "erasure:   1 requests waiting, oldest 10800.0 s; 0 runs in flight" in render_status(report)
    says_nothing_of_her(report)
    assert status_report(settings, None, now=landed + timedelta(hours=3))["problems"] == [waiting(10800)]
    later = status_report(settings, instance, now=landed + timedelta(hours=3), max_lag=timedelta(hours=4))
    assert later["healthy"]  # `--max-lag` is the bound

    # An erasure run started (the daemon's, from the sensor) takes it: nothing to judge while it runs.
    run = dg.DagsterRun(job_name=ERASURE_JOB, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    report = status_report(settings, instance, now=landed + timedelta(hours=3))
    assert report["healthy"] and report["erasure"]["runs_in_flight"] == 1, report["problems"]


def test_a_request_whose_failed_run_was_pruned_stays_unhealthy_until_carried_out(
    settings: Settings,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))
    defs = erasure_defs(settings)
    [request] = sensor_requests(defs, instance, landing)

    def dies(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(requests, "erase_user", dies)
        failed = launch(defs, instance, request)
    assert not failed.success and len(pending_requests(landing)) == 1  # it stays for a retry
    week = landed_at(landing) + timedelta(days=8)
    failure = f"erasure_job: a request's last run FAILURE ({failed.run_id}), no later run of it succeeded"
    assert status_report(settings, instance, now=week)["problems"] == [failure, waiting(8 * 86400)]

    # Maintenance prunes finished runs older than its retention (7 days): the failure status judged goes.
    assert prune_runs(instance, history_cutoff(week, 7) + timedelta(days=2)) == 1
    assert instance.get_run_by_id(failed.run_id) is None
    report = status_report(settings, instance, now=week)
    assert not report["healthy"] and report["problems"] == [waiting(8 * 86400)]
    says_nothing_of_her(report)

    [again] = sensor_requests(defs, instance, landing)  # the key is free again: the sensor asks for it
    assert launch(defs, instance, again).success
    report = status_report(settings, instance, now=week)
    assert report["healthy"] and report["erasure"]["pending_requests"] == 0, report["problems"]


def erase(settings: Settings, instance: dg.DagsterInstance, user_id: str) -> dict[str, Any]:
    """Her request through the sensor and a run of it, as the daemon makes it: the run's certificate."""
    write_request(settings, f"{user_id}.json", orjson.dumps({"user_id": user_id}))
    defs = erasure_defs(settings)
    [request] = sensor_requests(defs, instance, LandingResource(uri=settings.landing_uri))
    result = launch(defs, instance, request)
    assert result.success  # whatever the certificate says
    [certificate] = [orjson.loads(c) for c in result.output_for_node("erase_requests")]
    return certificate


def test_a_certificate_that_found_traces_is_open_until_a_later_erasure_of_her_passes(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    landing.land("events/a.ndjson", identify("m-1", USER, "anon-erin-1", EMAIL) + b"\n")
    ingest(lake, landing)
    # A row that should never hold her address (a failed line's detail): no erasure rewrites it, the
    # certificate's check finds it.
    stray = pl.DataFrame({"source_file": ["events/x.ndjson"], "status": ["failed"], "detail": [f"{EMAIL}?"]})
    write_deltalake(lake.table_uri("ingest_log"), stray.to_arrow(), mode="append", schema_mode="merge")
    failed = erase(settings, instance, USER)
    assert not failed["passed"] and failed["checks"]["tables"]["ingest_log"] == 1
    erased_at = datetime.fromisoformat(failed["erased_at"])
    at = erased_at + timedelta(seconds=30)
    problem = (
        f"erasure: certificate {failed['request_id']} (30 s ago) found traces left, no later erasure of "
        "that person passed: its `checks` in `erasures` say where; remove them and erase the person again"
    )
    report = status_report(settings, instance, now=at)
    assert not report["healthy"] and report["problems"] == [problem]
    [opened] = report["open_failures"]
    assert opened == {
        "job": ERASURE_JOB,
        "run_id": None,
        "status": "TRACES_LEFT",
        "request_id": failed["request_id"],
        "age_seconds": 30.0,
    }
    assert "; 1 open" in render_status(report)
    says_nothing_of_her(report)

    assert erase(settings, instance, "u-olga")["passed"]  # another person's erasure honours nothing of hers
    assert status_report(settings, instance, now=at)["problems"] == [problem]

    # The trace removed (by its file, never by her address: a predicate is kept in the Delta log), she is
    # erased again and certified clean.
    DeltaTable(lake.table_uri("ingest_log")).delete("source_file = 'events/x.ndjson'")
    assert erase(settings, instance, USER)["passed"]
    report = status_report(settings, instance, now=at)
    assert report["healthy"] and report["open_failures"] == [], report["problems"]

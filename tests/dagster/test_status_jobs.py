"""`lakemail status` judges the jobs beside the lanes (found by a review of d4fe272): an erasure that fails
every time (a GDPR request never honoured) or an attribution run that always fails left status HEALTHY,
exit 0. A job's failed run is an open failure until a later run of it succeeds; an erasure run's, until a
later run of the same request does (another person's erasure honours nothing of hers)."""

from __future__ import annotations

import dagster as dg
import orjson
import pytest

import assets.measure as measure_assets
from orchestration.definitions import build_defs
from orchestration.jobs import MEASURE_JOB
from orchestration.settings import Settings
from orchestration.status import render_status, status_report
from resources.landing import LandingResource
from tests.dagster.test_erasure import EMAIL, USER, write_request
from tests.dagster.test_erasure_names import failed_erasure, launch, sensor_requests


def measure(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_defs(settings).resolve_job_def(MEASURE_JOB)
    return job.execute_in_process(instance=instance, raise_on_error=False)


def test_a_failing_attribution_job_is_an_open_failure_until_it_succeeds(
    settings: Settings, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert status_report(settings, instance)["healthy"]  # never run: nothing failed
    assert measure(settings, instance).success
    assert status_report(settings, instance)["healthy"]

    def dies(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the attribution fell over")

    with monkeypatch.context() as patched:
        patched.setattr(measure_assets, "run_attribution", dies)
        first, second = measure(settings, instance), measure(settings, instance)
    assert not first.success and not second.success
    report = status_report(settings, instance)
    assert not report["healthy"]
    assert report["problems"] == [
        f"{MEASURE_JOB}: last run FAILURE ({second.run_id}), no later run succeeded"
    ]
    [failure] = report["open_failures"]
    assert (failure["job"], failure["run_id"], failure["status"]) == (MEASURE_JOB, second.run_id, "FAILURE")
    assert report["failed_runs_last_hour"] == 2  # every job's, not the lanes' alone
    text = render_status(report)
    assert f"  ! {MEASURE_JOB}: last run FAILURE ({second.run_id})" in text
    assert "2 failed runs, 0 failed files (1 h); 1 open" in text

    assert measure(settings, instance).success  # a transient failure, already recovered: healthy
    report = status_report(settings, instance)
    assert report["healthy"] and report["open_failures"] == [], report["problems"]


def test_an_erasure_that_fails_stays_open_until_that_request_is_carried_out(
    settings: Settings,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defs, request, failed = failed_erasure(settings, landing, instance, monkeypatch)
    report = status_report(settings, instance)
    problem = f"erasure_job: a request's last run FAILURE ({failed.run_id}), no later run of it succeeded"
    assert not report["healthy"] and report["problems"] == [problem]
    stored = str(report) + render_status(report)
    assert USER not in stored and EMAIL.lower() not in stored.lower() and "erasure/" not in stored

    # Another person's request is carried out: hers is still not honoured.
    write_request(settings, "olga.json", orjson.dumps({"user_id": "u-olga"}))
    [other] = [r for r in sensor_requests(defs, instance, landing) if r.run_key != request.run_key]
    assert launch(defs, instance, other).success
    assert status_report(settings, instance)["problems"] == [problem]

    assert launch(defs, instance, request).success  # her request, taken again: carried out
    report = status_report(settings, instance)
    assert report["healthy"] and report["open_failures"] == [], report["problems"]

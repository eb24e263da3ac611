"""Erasure requests named after the person (found by a read-only review, 2026-12-05).

Operators may name a request file after the person (`erasure/erin.erase@example.com.json`). The
certificate redacted such a name, but the sensor keyed the run by it and put it in run config, and the
op logged it and put it in metadata for a rejected, failed or vanished request: all stored by Dagster.
A request is now renamed to `erasure/req-<random>.json` before anything launches or reads it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dagster as dg
import orjson
import pytest

import stores.erasure.requests as requests
from orchestration.jobs import ERASURE_JOB
from orchestration.settings import Settings
from orchestration.sql import run_query
from resources.landing import LandingResource
from stores.erasure.requests import pending_requests
from tests.dagster.test_erasure import EMAIL, USER, erasure_defs, land_world, write_request

OTHER = "Olga.Other@example.com"  # a rejected request's file is named after her
NAMES = (EMAIL.lower(), OTHER.lower())
OPAQUE = re.compile(r"erasure/(?:rejected/)?req-[0-9a-f]{32}\.json")


def dagster_text(instance: dg.DagsterInstance) -> str:
    """Everything the instance stores of every run: the run (config, tags, ...) and each event log entry."""
    texts = []
    for run in instance.get_runs():
        texts.append(dg.serialize_value(run))
        texts += [dg.serialize_value(record) for record in instance.all_logs(run.run_id)]
    return "\n".join(texts).lower()


def messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [r.user_message for r in instance.all_logs(run_id) if r.dagster_event is None]


def sensor_requests(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing: LandingResource
) -> list[dg.RunRequest]:
    evaluated = defs.resolve_sensor_def("erasure_sensor")(
        dg.build_sensor_context(instance=instance, resources={"landing": landing})
    )
    return evaluated if isinstance(evaluated, list) else []


def launch(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    """Run a sensor's request as the daemon does: its run config, its run key as a tag."""
    return defs.resolve_job_def(ERASURE_JOB).execute_in_process(
        instance=instance,
        run_config=request.run_config,
        tags={**request.tags, "dagster/run_key": request.run_key or ""},
        raise_on_error=False,
    )


def failed_erasure(
    settings: Settings,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[dg.Definitions, dg.RunRequest, dg.ExecuteInProcessResult]:
    """Erin's request, named after her, taken by the sensor and run while the lake fails: the run failed."""
    land_world(settings)
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))
    defs = erasure_defs(settings)
    [request] = sensor_requests(defs, instance, landing)

    def dies(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the lake went away")

    with monkeypatch.context() as patched:
        patched.setattr(requests, "erase_user", dies)
        failed = launch(defs, instance, request)
    assert not failed.success
    return defs, request, failed


def test_requests_named_after_people_name_no_run_tag_or_event(
    settings: Settings,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    land_world(settings)
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))
    write_request(settings, f"{OTHER}.json", b"{not json")
    defs = erasure_defs(settings)
    launched = sensor_requests(defs, instance, landing)
    results = [launch(defs, instance, request) for request in launched]
    assert len(results) == 2 and all(result.success for result in results)
    stored = dagster_text(instance)
    assert "u-erin" not in stored and not [name for name in NAMES if name in stored]
    assert not [name for name in NAMES if name in caplog.text.lower()]
    [text] = [c for result in results for c in result.output_for_node("erase_requests")]
    certificate = orjson.loads(text)
    assert certificate["passed"] is True and OPAQUE.fullmatch(certificate["request_source"])
    assert run_query(settings.lake_uri, "select * from events where user_id = 'u-erin'").is_empty()
    assert all(OPAQUE.fullmatch((r.run_key or "").split(":")[0]) for r in launched)
    # The rejected one is where its log line says, under that name, as it landed.
    [line] = [m for r in results for m in messages(instance, r.run_id) if "rejected" in m]
    [aside] = re.findall(r"moved to (erasure/rejected/req-[0-9a-f]{32}\.json)", line)
    assert (Path(settings.landing_uri) / aside).read_bytes() == b"{not json"
    assert sorted(p.name for p in (Path(settings.landing_uri) / "erasure").iterdir()) == ["rejected"]
    assert sensor_requests(defs, instance, landing) == []


def test_a_request_that_failed_keeps_its_name_and_is_carried_out_once(
    settings: Settings,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defs, request, failed = failed_erasure(settings, landing, instance, monkeypatch)
    [waiting] = pending_requests(landing)
    [line] = [m for m in messages(instance, failed.run_id) if "failed" in m]
    assert f"it stays as {waiting.path} for a retry" in line and OPAQUE.fullmatch(waiting.path)
    [again] = sensor_requests(defs, instance, landing)  # not renamed again: the same run key
    assert again.run_key == request.run_key
    retried = launch(defs, instance, again)
    assert retried.success and orjson.loads(retried.output_for_node("erase_requests")[0])["passed"]
    assert pending_requests(landing) == [] and sensor_requests(defs, instance, landing) == []
    stored = dagster_text(instance)
    assert "u-erin" not in stored and EMAIL.lower() not in stored


def test_a_run_without_config_takes_named_requests_under_new_names(
    settings: Settings, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    """As launched from the UI: every pending request, each renamed before it is read."""
    land_world(settings)
    write_request(settings, f"{EMAIL}.json", orjson.dumps({"user_id": USER}))
    write_request(settings, f"{OTHER}.json", b'{"user_id": 42}')
    result = erasure_defs(settings).resolve_job_def(ERASURE_JOB).execute_in_process(instance=instance)
    assert result.success and orjson.loads(result.output_for_node("erase_requests")[0])["passed"]
    stored = dagster_text(instance)
    assert "u-erin" not in stored and not [name for name in NAMES if name in stored]
    [aside] = (Path(settings.landing_uri) / "erasure" / "rejected").iterdir()
    assert OPAQUE.fullmatch(f"erasure/rejected/{aside.name}") and aside.read_bytes() == b'{"user_id": 42}'

"""Two lanes (#15): with a slow provider, the runner's decide run delivers while the next landed file is
ingested and committed by an ingest run of its own: a landed file never waits for a delivery."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import orjson
import pytest

from orchestration.jobs import DECIDE_JOB, INGEST_JOB
from orchestration.runner import serve_batches
from orchestration.settings import Settings
from resources.providers import SANDBOX_API_KEY
from services.sandbox.app import create_sandbox_app
from services.server import ServerThread
from tests.conftest import land, table
from tests.events_data import file_lines
from tests.story import message
from transforms.triggers.policies import Policy, unit_hash

USERS = [u for u in (f"lane-{i}" for i in range(8)) if unit_hash(f"holdout:{u}") >= 0.05]  # no holdout
SLOW_S = 8.0  # each email's answer; under the provider client's 10 s read timeout
AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


@pytest.fixture
def sandbox(tmp_path: Path, settings: Settings) -> Iterator[str]:
    app = create_sandbox_app(
        tmp_path / "inbox",
        SANDBOX_API_KEY,
        lake_uri=settings.lake_uri,
        landing_uri=settings.landing_uri,
        secret="test-secret",
    )
    with ServerThread(app) as server:
        yield server.url


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def ingested(settings: Settings) -> set[str]:
    if not (Path(settings.lake_uri) / "ingest_log" / "_delta_log").is_dir():
        return set()
    return set(table(settings, "ingest_log")["source_file"])


def api(sandbox: str, method: str, path: str, body: object = None) -> Any:
    with httpx.Client(base_url=sandbox, headers=AUTH) as client:
        return client.request(method, path, json=body).raise_for_status().json()


def test_an_ingest_run_commits_while_a_slow_delivery_is_in_flight(
    settings: Settings, instance: dg.DagsterInstance, sandbox: str
) -> None:
    settings = dataclasses.replace(
        settings, esp_url=sandbox, public_url=sandbox, policy=Policy(quiet_hours=False)
    )
    api(sandbox, "POST", "/api/faults", {"kind": "slow", "seconds": SLOW_S, "times": 100})
    now = datetime.now(UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    stop = threading.Event()
    worker = threading.Thread(
        target=serve_batches, args=(settings, instance, stop), kwargs={"poll_seconds": 0.05}
    )
    worker.start()
    try:
        land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
        # The welcome emails are being delivered: the provider holds their requests (a fault is taken).
        wait_for(lambda: api(sandbox, "GET", "/api/faults")[0]["times"] < 100, 120, "a delivery to start")
        land(settings, "later.ndjson", file_lines("later", 20))
        seen_first: list[bool] = []

        def later_committed() -> bool:
            if "events/later.ndjson" not in ingested(settings):
                return False
            seen_first.append(len(api(sandbox, "GET", "/api/messages")) == 0)
            return True

        wait_for(later_committed, 120, "the later file to be committed")
        assert seen_first == [True], "the later file waited for the delivery in flight"
        wait_for(lambda: len(api(sandbox, "GET", "/api/messages")) >= len(USERS), 120, "the welcomes")
    finally:
        stop.set()
        worker.join(120)
    assert not worker.is_alive()
    runs = {r.dagster_run.run_id: r for r in instance.get_run_records()}
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs.values())
    assert {r.dagster_run.tags.get("user") for r in runs.values()} == {"lakemail runner"}
    decides = [r for r in runs.values() if r.dagster_run.job_name == DECIDE_JOB]
    ingests = [r for r in runs.values() if r.dagster_run.job_name == INGEST_JOB]
    # The run that committed the later file started and ended inside a decide run (the two overlap).
    assert any(
        d.start_time
        and d.end_time
        and i.start_time
        and i.end_time
        and d.start_time < i.start_time
        and i.end_time < d.end_time
        for d in decides
        for i in ingests
    )
    recipients = [str(m["to"]) for m in api(sandbox, "GET", "/api/messages")]
    assert sorted(recipients) == sorted(f"{u}@example.com" for u in USERS)  # each once

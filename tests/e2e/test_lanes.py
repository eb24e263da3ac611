"""Two lanes (#15.4): `lakemail up`'s two runners, `lakemail runner --lane ingest` and `--lane decide`,
run their lanes in processes of their own. With a slow provider, the decide runner delivers the
welcomes while the ingest runner takes the next landed file and commits it: a landed file never waits
for a delivery, and every welcome goes out once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx
import orjson
import pytest

from orchestration.jobs import DECIDE_JOB, INGEST_JOB
from orchestration.leases import PID
from orchestration.settings import Settings, ensure_secret
from resources.providers import SANDBOX_API_KEY
from tests.conftest import land
from tests.e2e.test_runner_stops import Runner, ingested, sandbox, wait_for
from tests.events_data import file_lines
from tests.story import message
from transforms.triggers.policies import unit_hash

__all__ = ["sandbox"]  # the fixture
USERS = [u for u in (f"lane-{i}" for i in range(10)) if unit_hash(f"holdout:{u}") >= 0.05]  # no holdout
SLOW_S = 8.0  # each email's answer; under the provider client's 10 s read timeout
AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


def api(url: str, method: str, path: str, body: object = None) -> Any:
    with httpx.Client(base_url=url, headers=AUTH) as client:
        return client.request(method, path, json=body).raise_for_status().json()


@pytest.fixture
def runners(settings: Settings, sandbox: str) -> Iterator[tuple[Runner, Runner]]:
    ensure_secret(settings.home, {})  # as `lakemail up` does before it starts them (one writes it)
    ingest, decide = (
        Runner(settings, sandbox, "ingest", "ingest"),
        Runner(settings, sandbox, "decide", "decide"),
    )
    try:
        yield ingest, decide
    finally:
        for runner in (ingest, decide):
            if runner.process.poll() is None:
                runner.process.send_signal(signal.SIGTERM)
        for runner in (ingest, decide):
            runner.wait(60)


def test_the_ingest_runner_commits_while_the_decide_runner_delivers(
    settings: Settings, sandbox: str, runners: tuple[Runner, Runner]
) -> None:
    ingest, decide = runners
    now = datetime.now(UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    api(sandbox, "POST", "/api/faults", {"kind": "slow", "seconds": SLOW_S, "times": 100})
    land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
    instance = ingest.instance()
    # The welcome emails are being delivered: the provider holds their requests (a fault is taken).
    wait_for(lambda: api(sandbox, "GET", "/api/faults")[0]["times"] < 100, 180, "a delivery to start")
    land(settings, "later.ndjson", file_lines("later", 20))
    wait_for(lambda: "events/later.ndjson" in ingested(settings), 60, "the next file to be ingested")
    delivered = len(api(sandbox, "GET", "/api/messages"))
    # The delivery goes on in the other process: the ingest run neither waited for it nor held it up.
    # A runner of both lanes (one process, one run at a time) commits the file only after the delivery.
    assert delivered < len(USERS), f"the ingest waited for the delivery ({delivered} emails were out)"
    wait_for(lambda: len(api(sandbox, "GET", "/api/messages")) == len(USERS), 180, "every welcome")
    recipients = sorted(str(m["to"]) for m in api(sandbox, "GET", "/api/messages"))
    assert recipients == sorted(f"{u}@example.com" for u in USERS)  # each once
    wait_for(lambda: all(r.dagster_run.is_finished for r in instance.get_run_records()), 60, "the runs")
    records = instance.get_run_records()
    assert all(r.dagster_run.status != dg.DagsterRunStatus.FAILURE for r in records)
    # Both lanes' runs in the instance (the UI's run history), each lane's from its own runner.
    pids = {job: {r.dagster_run.tags.get(PID) for r in records if r.dagster_run.job_name == job}
            for job in (INGEST_JOB, DECIDE_JOB)}  # fmt: skip
    assert pids == {INGEST_JOB: {str(ingest.process.pid)}, DECIDE_JOB: {str(decide.process.pid)}}
    # And they overlapped: an ingest run started and ended while a decide run was delivering.
    spans = {
        job: [(r.start_time or 0.0, r.end_time or 0.0) for r in records if r.dagster_run.job_name == job]
        for job in (INGEST_JOB, DECIDE_JOB)
    }
    assert any(d0 < i0 and i1 < d1 for i0, i1 in spans[INGEST_JOB] for d0, d1 in spans[DECIDE_JOB]), spans

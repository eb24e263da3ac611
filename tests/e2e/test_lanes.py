"""Two lanes (#15): with a slow provider, a decide run delivers in one process while an ingest run in
another takes the next landed file and commits it: a landed file never waits for a delivery."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import orjson
import pytest

from orchestration.definitions import build_defs
from orchestration.jobs import DECIDE_JOB, INGEST_JOB
from orchestration.settings import Settings
from resources.providers import SANDBOX_API_KEY
from services.sandbox.app import create_sandbox_app
from services.server import ServerThread
from tests.conftest import land, table
from tests.events_data import file_lines
from tests.story import message
from transforms.triggers.policies import unit_hash

ROOT = Path(__file__).resolve().parents[2]
FIRST, NEXT = f"{INGEST_JOB},{DECIDE_JOB}", INGEST_JOB  # before #15: microbatch_job both
USERS = [u for u in (f"lane-{i}" for i in range(20)) if unit_hash(f"holdout:{u}") >= 0.05]  # no holdout
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


def api(sandbox: str, method: str, path: str, body: object = None) -> Any:
    with httpx.Client(base_url=sandbox, headers=AUTH) as client:
        return client.request(method, path, json=body).raise_for_status().json()


def run_job(settings: Settings, instance: dg.DagsterInstance, job: str) -> dg.ExecuteInProcessResult:
    return build_defs(settings).resolve_job_def(job).execute_in_process(instance=instance)


def test_an_ingest_run_commits_while_a_slow_delivery_is_in_flight(
    settings: Settings, instance: dg.DagsterInstance, sandbox: str
) -> None:
    now = datetime.now(UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    api(sandbox, "POST", "/api/faults", {"kind": "slow", "seconds": SLOW_S, "times": 100})
    land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Another process takes the sign-ups and delivers their welcomes (slowly): ingest, then decide.
    args = [sys.executable, "-m", "tests.lanes_decide", str(settings.home), sandbox, FIRST]
    decide = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The welcome emails are being delivered: the provider holds their requests (a fault is taken).
        wait_for(lambda: api(sandbox, "GET", "/api/faults")[0]["times"] < 100, 180, "a delivery to start")
        land(settings, "later.ndjson", file_lines("later", 20))
        started = time.monotonic()
        assert run_job(settings, instance, NEXT).success
        took = time.monotonic() - started
        in_flight, delivered = decide.poll() is None, len(api(sandbox, "GET", "/api/messages"))
        assert "events/later.ndjson" in set(table(settings, "ingest_log")["source_file"])
        # The delivery goes on (the other process still runs, not every welcome is out): the ingest
        # run neither waited for it nor held it up. Before #15 it waited for the writer lock until the
        # other run had delivered everything, and that process was gone by then.
        assert in_flight and delivered < len(USERS), f"the ingest run waited for the delivery ({took:.1f} s)"
        output, _ = decide.communicate(timeout=180)
        assert decide.returncode == 0, output.decode()[-3000:]
    finally:
        if decide.poll() is None:
            decide.kill()
            decide.wait()
    recipients = sorted(str(m["to"]) for m in api(sandbox, "GET", "/api/messages"))
    assert recipients == sorted(f"{u}@example.com" for u in USERS)  # each once

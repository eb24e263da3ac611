"""`lakemail runner` stopped mid-run (#13): SIGTERM finishes or hands back the run, SIGKILL blocks nothing."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import orjson
import pytest

from orchestration.settings import Settings
from resources.providers import SANDBOX_API_KEY
from services.sandbox.app import create_sandbox_app
from services.server import ServerThread
from tests.conftest import land, table
from tests.events_data import file_lines
from tests.story import message
from transforms.triggers.policies import unit_hash

ROOT = Path(__file__).resolve().parents[2]
USERS = [u for u in (f"stall-{i}" for i in range(14)) if unit_hash(f"holdout:{u}") >= 0.05]  # no holdout


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


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


class Runner:
    """`lakemail runner` on the test's home, as `lakemail up` starts it."""

    def __init__(self, settings: Settings, sandbox: str, name: str, lane: str = "both") -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LAKEMAIL_HOME": str(settings.home),
            "LAKEMAIL_ESP_URL": sandbox,
            "LAKEMAIL_PUBLIC_URL": sandbox,
            "LAKEMAIL_QUIET_HOURS": "off",
        }
        env.pop("DAGSTER_HOME", None)
        self.log, self.home = settings.home / f"{name}.log", settings.dagster_home
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "orchestration.cli", "runner", "--lane", lane],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def instance(self) -> dg.DagsterInstance:
        """The runner's Dagster instance, once the runner has created it."""
        wait_for(lambda: "taking micro-batches" in self.output(), 120, "the runner to start")
        return dg.DagsterInstance.from_config(str(self.home))

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running after {timeout} s:\n{self.output()[-3000:]}") from None


def land_workload(settings: Settings) -> None:
    """Sign-ups (a welcome email each) and enough events that a run takes seconds."""
    now = datetime.now(UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
    for i in range(4):
        land(settings, f"load-{i}.ndjson", file_lines(f"load-{i}", 4000))


def landed(settings: Settings) -> set[str]:
    return {f"events/{p.name}" for p in (Path(settings.landing_uri) / "events").glob("*.ndjson")}


def ingested(settings: Settings) -> set[str]:
    if not (Path(settings.lake_uri) / "ingest_log" / "_delta_log").is_dir():
        return set()
    return set(table(settings, "ingest_log")["source_file"])


def started_run(instance: dg.DagsterInstance) -> str | None:
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    return records[0].dagster_run.run_id if records else None


def run_status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run.status


def inbox(sandbox: str) -> list[dict[str, object]]:
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}  # the sandbox's API takes its key (#13.12)
    with httpx.Client(base_url=sandbox, headers=auth) as client:
        return list(client.get("/api/messages").raise_for_status().json())


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failure.dagster_event is not None
    return str(failure.dagster_event.message)


@pytest.mark.parametrize("signals", [1, 2], ids=["sigterm-finishes", "second-sigterm-hands-back"])
def test_sigterm_during_a_run_finishes_or_hands_it_back(
    settings: Settings, sandbox: str, signals: int
) -> None:
    land_workload(settings)
    runner = Runner(settings, sandbox, "runner")
    instance = runner.instance()
    try:
        wait_for(lambda: started_run(instance), 120, "a run to start")
        run_id = started_run(instance)
        assert run_id is not None
        for _ in range(signals):
            runner.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
        assert runner.wait(30) == 0
        status = run_status(instance, run_id)
        if signals == 2 or status != dg.DagsterRunStatus.SUCCESS:  # one signal: handed back after 10 s
            assert status == dg.DagsterRunStatus.FAILURE, runner.output()[-3000:]
            assert "stopped (SIGTERM) before this run finished" in failure_message(instance, run_id)
            assert "handed back" in runner.output()
        assert "letting run" in runner.output()
    finally:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait(10)  # reaped: an unreaped Popen warns in whichever test comes next
        instance.dispose()


def test_a_runner_killed_mid_run_blocks_nothing_and_sends_nothing_twice(
    settings: Settings, sandbox: str
) -> None:
    land_workload(settings)
    first = Runner(settings, sandbox, "first")
    instance = first.instance()
    try:
        wait_for(lambda: started_run(instance), 120, "a run to start")
        run_id = started_run(instance)
        assert run_id is not None
        first.process.send_signal(signal.SIGKILL)
        first.wait(10)
        assert run_status(instance, run_id) == dg.DagsterRunStatus.STARTED  # what used to stall
        for i in range(3):  # the backlog grows while nothing runs
            land(settings, f"more-{i}.ndjson", file_lines(f"more-{i}", 50))
        second = Runner(settings, sandbox, "second")
        try:
            wait_for(lambda: ingested(settings) == landed(settings), 120, "the backlog to drain")
            try:  # a liveness bound, not speed: alone this takes seconds, under CI's load over a minute
                wait_for(lambda: len(inbox(sandbox)) >= len(USERS), 180, "the welcomes")
            except AssertionError as late:  # what the next reader needs to tell a stall from a slow machine
                got = len(inbox(sandbox))
                raise AssertionError(f"{late}: {got} of {len(USERS)}\n{second.output()[-4000:]}") from None
            time.sleep(1.0)  # a second send of the same email would arrive in the same run
            second.process.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        finally:
            if second.process.poll() is None:
                second.process.kill()
                second.process.wait(10)
        assert run_status(instance, run_id) == dg.DagsterRunStatus.FAILURE
        assert "is gone" in failure_message(instance, run_id)
        assert f"run {run_id} marked failed" in second.output()
        recipients = collections.Counter(str(m["to"]) for m in inbox(sandbox))
        assert len(recipients) == len(USERS) and set(recipients.values()) == {1}, recipients
    finally:
        instance.dispose()

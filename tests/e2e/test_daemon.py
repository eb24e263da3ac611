"""The real thing: `dagster-daemon` runs landing_sensor, which launches micro-batch runs into the lake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from orchestration.instance import dagster_yaml
from orchestration.sensors import run_in_flight
from orchestration.settings import Settings
from tests.conftest import land, table
from tests.events_data import file_lines

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except Exception:  # the table may not exist yet, or be mid-commit
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_daemon_sensor_ingests_files_as_they_land(settings: Settings, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml(settings))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LAKEMAIL_HOME": str(settings.home),
        "LAKEMAIL_POLL_SECONDS": "1",
    }
    daemon_bin = str(Path(sys.executable).parent / "dagster-daemon")
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed in finally
    daemon = subprocess.Popen(
        [daemon_bin, "run", "-w", str(ROOT / "workspace.yaml")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        land(settings, "first.ndjson", file_lines("first", 100, bad_every=10))
        wait_for(lambda: table(settings, "ingest_log").height == 1, 120, "the first file")
        land(settings, "second.ndjson", file_lines("second", 100))
        land(settings, "third.ndjson", file_lines("third", 100))
        wait_for(lambda: table(settings, "ingest_log").height == 3, 60, "the next files")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for(lambda: not run_in_flight(instance), 60, "the last run to finish")
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=30)
        log.close()
    assert table(settings, "events").height == 90 + 100 + 100
    assert table(settings, "quarantine").height == 10
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(job_name="microbatch_job"))
        runs = [r.dagster_run for r in records]
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert all(r.tags.get("dagster/sensor_name") == "landing_sensor" for r in runs)
        assert len(runs) <= 3  # never one run per file beyond what landed between ticks

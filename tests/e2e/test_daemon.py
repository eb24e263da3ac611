"""The real thing: `dagster-daemon` runs landing_sensor, which launches micro-batch runs into the lake."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from orchestration.instance import dagster_yaml
from orchestration.leases import WORKER_HOST
from orchestration.run_keys import failure_backoff
from orchestration.sensors import run_in_flight
from orchestration.settings import Settings
from resources.lake import LakeResource
from tests.conftest import land, table
from tests.events_data import file_lines
from tests.processes import stop_session

# The daemon, its sensor and run retries are the production path on PostgreSQL (#18): under `make test` too.
pytestmark = pytest.mark.postgres

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


@contextmanager
def running_daemon(settings: Settings, tmp_path: Path, **extra: str) -> Iterator[Path]:
    """`dagster-daemon run` on lakemail's dagster.yaml for `settings` (SQLite, or PostgreSQL under
    `make test-postgres`), with `extra` variables: its DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(dagster_yaml(settings))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LAKEMAIL_HOME": str(settings.home),
        "LAKEMAIL_POLL_SECONDS": "1",
        **extra,
    }
    daemon_bin = str(Path(sys.executable).parent / "dagster-daemon")
    with (tmp_path / "daemon.log").open("wb") as log:
        daemon = subprocess.Popen(
            [daemon_bin, "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its code servers and run workers: the session stop_session ends
        )
    try:
        yield home
    finally:
        # Everything the daemon started, not only the daemon: a code server of it outlived a CI run by
        # an hour (2026-12-05), waiting for a run worker, then for the test's database, dropped by then.
        killed = stop_session(daemon, marker=f"DAGSTER_HOME={home}")
        with (tmp_path / "daemon.log").open("a") as log:
            log.write("".join(f"test teardown: SIGKILL {pid} {line}\n" for pid, line in killed.items()))


def succeeded(instance: dg.DagsterInstance, job: str) -> bool:
    done = dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS])
    return bool(instance.get_run_records(filters=done, limit=1))


def test_daemon_sensor_ingests_files_as_they_land(settings: Settings, tmp_path: Path) -> None:
    with running_daemon(settings, tmp_path) as home:
        land(settings, "first.ndjson", file_lines("first", 100, bad_every=10))
        wait_for(lambda: table(settings, "ingest_log").height == 1, 120, "the first file")
        land(settings, "second.ndjson", file_lines("second", 100))
        land(settings, "third.ndjson", file_lines("third", 100))
        wait_for(lambda: table(settings, "ingest_log").height == 3, 60, "the next files")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # The decide lane (#15): decide_sensor launches decide_job for the committed batches.
            wait_for(lambda: succeeded(instance, "decide_job"), 120, "a decide run")
            wait_for(lambda: not run_in_flight(instance), 60, "the last run to finish")
            # What the daemon did, read while it runs: a run its sensor creates as it shuts down fails to
            # launch ("Location lakemail does not exist in workspace"), which says nothing of the lanes.
            records = instance.get_run_records(filters=dg.RunsFilter(job_name="ingest_job"))
            decide_runs = instance.get_run_records(filters=dg.RunsFilter(job_name="decide_job"))
    assert table(settings, "events").height == 90 + 100 + 100
    assert table(settings, "quarantine").height == 10
    runs = [r.dagster_run for r in records]
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert all(r.tags.get("dagster/sensor_name") == "landing_sensor" for r in runs)
    assert all(r.tags.get(WORKER_HOST) == socket.gethostname() for r in runs)
    assert len(runs) <= 3  # never one run per file beyond what landed between ticks
    # Those that ended: the sensor may have launched another (a trigger come due) since.
    decides = [r.dagster_run for r in decide_runs if r.dagster_run.is_finished]
    assert decides and all(r.status == dg.DagsterRunStatus.SUCCESS for r in decides), [
        (r.status, r.tags.get("dagster/run_key")) for r in decides
    ]
    assert all(r.tags.get("dagster/sensor_name") == "decide_sensor" for r in decides)
    assert len({r.tags["dagster/run_key"] for r in decides}) == len(decides)  # one run per key
    assert LakeResource(uri=settings.lake_uri).version("triggers") is not None


def retries_of(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The first failed micro-batch run and the retries the daemon made of it, oldest first."""
    failed = dg.RunsFilter(job_name="ingest_job", statuses=[dg.DagsterRunStatus.FAILURE])
    runs = [r.dagster_run for r in reversed(instance.get_run_records(filters=failed))]
    root = next((r.run_id for r in runs if "dagster/parent_run_id" not in r.tags), None)
    return [r for r in runs if root in (r.run_id, r.tags.get("dagster/root_run_id"))]


def test_the_daemon_retries_a_failed_sensor_run_twice(settings: Settings, tmp_path: Path) -> None:
    """Run retries (dagster.yaml: `max_retries: 2`), on SQLite and under `make test-postgres` alike (#18).
    The lake is where nothing can be written (under /proc): the sensor sees a new lake with a file to
    take, and the run, then each retry, fails on its first commit."""
    land(settings, "a.ndjson", file_lines("a", 20))
    daemon = running_daemon(settings, tmp_path, LAKEMAIL_LAKE_URI="/proc/lakemail-no-such-lake")
    with daemon as home, dg.DagsterInstance.from_config(str(home)) as instance:
        wait_for(lambda: len(retries_of(instance)) == 3, 240, "a failed run and its two retries")
        first, *retries = retries_of(instance)
        # Retries exhausted, the sensor asks for the batch again under a new run key (Dagster never
        # launches one twice), 4 s after the last failure (orchestration.run_keys.failure_backoff).
        key = first.tags["dagster/run_key"]
        again = dg.RunsFilter(tags={"dagster/run_key": f"{key}-r3"})
        wait_for(lambda: instance.get_run_records(filters=again), 120, "the batch requested again")
        (record,) = instance.get_run_records(filters=again, limit=1)
        last = instance.get_run_record_by_id(retries[-1].run_id)
        assert last is not None and last.end_time is not None
    # Not before the backoff (less a second: SQLite stores the creation in whole seconds).
    assert record.create_timestamp.timestamp() >= last.end_time + failure_backoff(3) - 1
    assert first.tags.get("dagster/sensor_name") == "landing_sensor"
    assert [r.tags.get("dagster/retry_number") for r in retries] == ["1", "2"]
    assert [r.tags.get("dagster/parent_run_id") for r in retries] == [first.run_id, retries[0].run_id]
    # The retries keep the sensor's tags: a retry whose worker dies is judged on its host too.
    assert all(r.tags.get(WORKER_HOST) == socket.gethostname() for r in (first, *retries))
    assert record.dagster_run.tags.get("dagster/sensor_name") == "landing_sensor"
    assert record.dagster_run.tags.get("lakemail/batch_key") == key
    assert "dagster/parent_run_id" not in record.dagster_run.tags  # a run of its own, with retries of its own

"""`lakemail status`: real figures, valid JSON, and a non-zero exit when the pipeline is not keeping up."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from orchestration.instance import prepare_dagster_home
from orchestration.jobs import MICROBATCH_JOB
from orchestration.leases import Executor, launch_tags
from orchestration.process import process_once
from orchestration.sensors import heartbeat_path
from orchestration.settings import Settings
from resources.lake import LakeResource
from tests.conftest import keep_connection, land, storage_env
from tests.events_data import file_lines
from transforms.operations.status import LaneState, RunInFlight, judge, latency_percentiles, table_freshness

ROOT = Path(__file__).resolve().parents[2]
LAKEMAIL = [sys.executable, "-m", "orchestration.cli"]  # this checkout's code


def status(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"LAKEMAIL_HOME": str(settings.home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    env |= storage_env()
    return subprocess.run(
        [*LAKEMAIL, "status", *args], env=env, cwd=settings.home, capture_output=True, text=True
    )


def test_healthy_after_a_run_then_unhealthy_when_files_wait(settings: Settings) -> None:
    prepare_dagster_home(settings)
    land(settings, "a.ndjson", file_lines("a", 50, bad_every=10))
    with keep_connection(dg.DagsterInstance.from_config(str(settings.dagster_home))) as instance:
        assert process_once(settings, instance)["status"] == "SUCCESS"
    healthy = status(settings, "--json")
    assert healthy.returncode == 0, healthy.stdout
    report = json.loads(healthy.stdout)
    assert report["healthy"] and report["backlog"]["files"] == 0
    assert report["last_run"]["status"] == "SUCCESS"
    assert report["quarantine_by_reason"] == {"invalid_json": 5}
    assert report["latency_seconds_last_hour"]["landed_to_committed"]["count"] == 1
    assert set(report["freshness"]) == {
        "events",
        "quarantine",
        "ingest_log",
        "identities",
        "triggers",
        "sends",
    }

    # The sensor is "stopped": files keep landing and nobody ingests them.
    old = land(settings, "b.ndjson", file_lines("b", 5))
    past = time.time() - 600
    os.utime(old, (past, past))
    land(settings, "c.ndjson", file_lines("c", 5))
    unhealthy = status(settings, "--max-lag", "60")
    assert unhealthy.returncode == 1
    assert "UNHEALTHY" in unhealthy.stdout and "backlog: 2 files" in unhealthy.stdout.replace(
        "backlog:   ", "backlog: "
    )


def test_a_new_home_with_nothing_landed_is_healthy(settings: Settings) -> None:
    done = status(settings)
    assert done.returncode == 0 and "HEALTHY" in done.stdout and "none yet" in done.stdout


def test_freshness_and_verdict_rules() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    lag = timedelta(minutes=2)
    assert not table_freshness("events", now - timedelta(minutes=1), now, lag).stale
    assert table_freshness("events", now - timedelta(minutes=3), now, lag).stale
    assert table_freshness("events", None, now, lag).stale
    assert not table_freshness("events", None, None, lag).stale
    stale = table_freshness("events", now - timedelta(minutes=3), now, lag)
    verdict = judge(
        backlog_oldest_seconds=10,
        freshness=[stale],
        failed_files_last_hour=1,
        max_lag=lag,
        lanes=[LaneState("ingest", last_status="FAILURE", last_run_id="r-1")],
    )
    assert not verdict.healthy and len(verdict.problems) == 3
    fine = judge(
        backlog_oldest_seconds=None,
        freshness=[],
        failed_files_last_hour=0,
        max_lag=lag,
        lanes=[LaneState("ingest", last_status="SUCCESS"), LaneState("decide")],
    )
    assert fine.healthy


def test_latency_percentiles() -> None:
    start = datetime(2026, 11, 22, tzinfo=UTC)
    frame = pl.DataFrame({"a": [start] * 100, "b": [start + timedelta(seconds=i + 1) for i in range(100)]})
    figures = latency_percentiles(frame, pl.col("a"), pl.col("b"))
    assert figures["count"] == 100 and figures["max"] == 100.0
    assert 50 <= (figures["p50"] or 0) <= 51 and 99 <= (figures["p99"] or 0) <= 100


def dead_executor() -> Executor:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return Executor(socket.gethostname(), child.pid, None)


def test_a_stuck_run_and_a_backlog_nobody_takes_are_unhealthy_at_once(settings: Settings) -> None:
    prepare_dagster_home(settings)
    land(settings, "a.ndjson", file_lines("a", 5))  # landed a moment ago: far below the max lag
    run = dg.DagsterRun(
        job_name=MICROBATCH_JOB,
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={**launch_tags("lakemail runner"), **dead_executor().tags()},
    )
    with keep_connection(dg.DagsterInstance.from_config(str(settings.dagster_home))) as instance:
        instance.add_run(run)
    done = status(settings)
    assert done.returncode == 1, done.stdout
    assert "UNHEALTHY" in done.stdout
    assert f"stuck run {run.run_id}: STARTED" in done.stdout and "is gone" in done.stdout
    assert "1 file(s) wait and nothing takes them" in done.stdout
    assert "taken by:  nothing" in done.stdout
    report = json.loads(status(settings, "--json").stdout)
    [stuck] = report["runs_in_flight"]
    assert stuck["run_id"] == run.run_id and "is gone" in stuck["gone"]
    assert report["takers"] == []


def test_a_fresh_backlog_with_a_live_runner_is_healthy(settings: Settings) -> None:
    prepare_dagster_home(settings)
    land(settings, "a.ndjson", file_lines("a", 5))
    with keep_connection(dg.DagsterInstance.from_config(str(settings.dagster_home))) as instance:
        assert process_once(settings, instance)["status"] == "SUCCESS"
    land(settings, "b.ndjson", file_lines("b", 5))
    beat = heartbeat_path(LakeResource(uri=settings.lake_uri))
    assert beat is not None
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.touch()
    done = status(settings, "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["takers"] == ["lakemail runner"]


def test_readable_output_without_negative_lags(settings: Settings) -> None:
    prepare_dagster_home(settings)
    land(settings, "a.ndjson", file_lines("a", 50, bad_every=10))
    with keep_connection(dg.DagsterInstance.from_config(str(settings.dagster_home))) as instance:
        assert process_once(settings, instance)["status"] == "SUCCESS"
    future = land(settings, "b.ndjson", file_lines("b", 5))
    ahead = time.time() + 300  # a producer whose clock runs 5 minutes ahead
    os.utime(future, (ahead, ahead))
    report = json.loads(status(settings, "--json").stdout)
    lags = [f["lag_seconds"] for f in report["freshness"].values()]
    assert lags and all(lag is not None and lag >= 0 for lag in lags)  # committed after the landing
    # its age counts from when it appeared here (this clock), its date shows the producer's skew
    assert 0 <= report["backlog"]["oldest_age_seconds"] < 60 and report["backlog"]["clock_skew_seconds"] > 250
    text = status(settings).stdout
    assert "{" not in text and "}" not in text, text  # no Python dict
    assert re.search(r"(^|\s)-\d", text) is None, text  # no negative figure
    assert "quarantine: 5 invalid_json" in text and "clock skew" in text and "STALE" not in text


def test_a_table_a_batch_had_no_rows_for_is_fresh_when_its_batch_committed(settings: Settings) -> None:
    """Found running `make run`: `quarantine` read STALE in a healthy shop that simply had no bad line for
    minutes; a batch commits no rows to it then, and the batch's `ingest_log` commit covers it (as the
    asset check `*_fresh` already judged: stores.operations.checks.COVERED_BY)."""
    prepare_dagster_home(settings)
    land(settings, "a.ndjson", file_lines("a", 50, bad_every=10))
    with keep_connection(dg.DagsterInstance.from_config(str(settings.dagster_home))) as instance:
        assert process_once(settings, instance)["status"] == "SUCCESS"
        land(settings, "b.ndjson", file_lines("b", 5))  # landed after quarantine's last commit, no bad line
        assert process_once(settings, instance)["status"] == "SUCCESS"
    report = json.loads(status(settings, "--json", "--max-lag", "0").stdout)
    assert report["freshness"]["ingest_log"]["stale"] is False
    assert report["freshness"]["quarantine"]["stale"] is False, report["freshness"]["quarantine"]


def test_a_compaction_after_the_last_batch_is_no_freshness(settings: Settings) -> None:
    """Found by review: status took a table's last commit of any kind, so maintenance compacting `events`
    after a file landed made the waiting table look fresh (the asset checks count data commits only)."""
    prepare_dagster_home(settings)
    with keep_connection(dg.DagsterInstance.from_config(str(settings.dagster_home))) as instance:
        for name in ("a", "c"):  # two batches: two files per table to compact
            land(settings, f"{name}.ndjson", file_lines(name, 20))
            assert process_once(settings, instance)["status"] == "SUCCESS"
    lake = LakeResource(uri=settings.lake_uri)
    land(settings, "b.ndjson", file_lines("b", 5))  # waiting: nobody takes it
    for name in ("events", "ingest_log"):
        table = lake.table(name)
        assert table is not None
        before = table.version()
        table.optimize.compact()  # maintenance's commit, after b landed
        assert table.version() == before + 1
    report = json.loads(status(settings, "--json", "--max-lag", "0").stdout)
    assert report["freshness"]["events"]["stale"] is True, report["freshness"]["events"]
    assert report["freshness"]["ingest_log"]["stale"] is True


def test_verdict_on_runs_in_flight_and_takers() -> None:
    lag = timedelta(minutes=2)
    common: dict[str, Any] = {
        "backlog_oldest_seconds": 3,
        "freshness": [],
        "failed_files_last_hour": 0,
        "max_lag": lag,
    }
    assert judge(**common, backlog_files=2, takers=["lakemail runner"]).healthy
    assert judge(**common, backlog_files=2, takers=None).healthy  # unknown: judged by age alone
    [nobody] = judge(**common, backlog_files=2, takers=[]).problems
    assert "2 file(s) wait and nothing takes them" in nobody
    dead = RunInFlight("r-1", "STARTED", 5, "its executor (pid 7 on h) is gone")
    assert judge(**common, in_flight=[dead]).problems == [
        "stuck run r-1: STARTED for 5 s, its executor (pid 7 on h) is gone"
    ]
    assert judge(**common, in_flight=[RunInFlight("r-2", "STARTED", 5)]).healthy
    [slow] = judge(**common, in_flight=[RunInFlight("r-3", "STARTED", 600)]).problems
    assert slow == "run r-3 has been STARTED for 600 s"
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert table_freshness("events", now + timedelta(seconds=5), now, lag).lag_seconds == 0


def test_the_process_summary_counts_customer_and_catalog_rows(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """Its lines counted every folder but its accepted count only events (found by QA): the rows of
    customers/ and catalog/ files are `reference_rows`, so the summary's counts add up to its lines."""
    land(settings, "a.ndjson", file_lines("a", 20, bad_every=10))
    zone = Path(settings.landing_uri)
    (zone / "customers").mkdir()
    (zone / "customers/crm.csv").write_bytes(b"user_id,email\nu1,a@example.com\nu2,b@example.com\n")
    summary = process_once(settings, instance)
    counted = sum(summary[k] for k in ("accepted", "reference_rows", "duplicates", "quarantined"))
    assert (summary["reference_rows"], summary["lines"]) == (2, counted)

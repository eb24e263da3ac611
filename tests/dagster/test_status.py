"""`lakemail status`: real figures, valid JSON, and a non-zero exit when the pipeline is not keeping up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.instance import prepare_dagster_home
from orchestration.process import process_once
from orchestration.settings import Settings
from tests.conftest import land
from tests.events_data import file_lines
from transforms.operations.status import judge, latency_percentiles, table_freshness

LAKEMAIL = str(Path(sys.executable).parent / "lakemail")


def status(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"LAKEMAIL_HOME": str(settings.home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [LAKEMAIL, "status", *args], env=env, cwd=settings.home, capture_output=True, text=True
    )


def test_healthy_after_a_run_then_unhealthy_when_files_wait(settings: Settings) -> None:
    prepare_dagster_home(settings.dagster_home)
    land(settings, "a.ndjson", file_lines("a", 50, bad_every=10))
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
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
        last_run_status="FAILURE",
        failed_files_last_hour=1,
        max_lag=lag,
    )
    assert not verdict.healthy and len(verdict.problems) == 3
    fine = judge(
        backlog_oldest_seconds=None,
        freshness=[],
        last_run_status="SUCCESS",
        failed_files_last_hour=0,
        max_lag=lag,
    )
    assert fine.healthy


def test_latency_percentiles() -> None:
    start = datetime(2026, 11, 22, tzinfo=UTC)
    frame = pl.DataFrame({"a": [start] * 100, "b": [start + timedelta(seconds=i + 1) for i in range(100)]})
    figures = latency_percentiles(frame, pl.col("a"), pl.col("b"))
    assert figures["count"] == 100 and figures["max"] == 100.0
    assert 50 <= (figures["p50"] or 0) <= 51 and 99 <= (figures["p99"] or 0) <= 100

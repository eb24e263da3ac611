"""A simulated day with the default dirt: every landed line is accounted for, once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from orchestration.process import process_once
from orchestration.settings import Settings
from orchestration.sql import run_query
from simulator.run import run_simulation
from tests.conftest import table


def test_a_simulated_day_reconciles_file_by_file(settings: Settings, instance: dg.DagsterInstance) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1, minutes=5)
    report = run_simulation(
        Path(settings.landing_uri),
        users=400,
        rate=1.0,  # 86,400 events over the simulated day, one file per simulated hour
        duration=86_400,
        seed=7,
        rotate_seconds=3600,
        realtime=False,
        start=start,
    )
    assert process_once(settings, instance)["status"] == "SUCCESS"

    log = table(settings, "ingest_log").filter(pl.col("source_file").str.starts_with("events/"))
    assert log.height == len(report.files) == 24
    assert (
        log.filter(
            pl.col("lines") != pl.col("accepted") + pl.col("duplicates") + pl.col("quarantined")
        ).height
        == 0
    )
    assert int(log["lines"].sum()) == report.total_lines == 86_400
    assert int(log["duplicates"].sum()) == report.lines["duplicate"] > 0

    events = table(settings, "events")
    assert events["event_id"].n_unique() == events.height == report.distinct_ok_ids
    quarantine = table(settings, "quarantine")
    assert dict(quarantine["reason"].value_counts().iter_rows()) == report.malformed
    assert len(report.malformed) == 7  # every kind of dirt the simulator makes showed up
    assert table(settings, "identities").height > 0

    # The simulator's Segment mix, kept: every message type, device times, the analysts' campaign column.
    assert set(events["event_type"]) == {"track", "identify", "page", "screen", "group", "alias"}
    assert 0 < events["original_timestamp"].drop_nulls().len() < events.height
    query = "select context_campaign_source, count(*) as n from events group by 1"
    sources = dict(run_query(settings.lake_uri, query).iter_rows())
    assert {"google", "newsletter", None} <= set(sources) and sources[None] < events.height


def test_simulate_command_lands_files(tmp_path: Path) -> None:
    lakemail = str(Path(sys.executable).parent / "lakemail")
    root = Path(__file__).resolve().parents[2]  # this checkout's code, not the one installed in the venv
    env = {"LAKEMAIL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    args = [
        lakemail,
        "simulate",
        "--users",
        "20",
        "--rate",
        "500",
        "--duration",
        "4",
        "--seed",
        "3",
        "--fast",
    ]
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    files = sorted((tmp_path / "landing" / "events").glob("*.ndjson"))
    assert files and sum(len(f.read_bytes().splitlines()) for f in files) == 2000
    assert b'"originalTimestamp"' in b"".join(f.read_bytes() for f in files)  # this checkout's simulator

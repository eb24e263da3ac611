"""Exactly once on real Delta tables and a real Dagster instance: reruns, crashes, races."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest

from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import instance_at, lake_snapshot, land, make_dagster_home, table
from tests.events_data import file_lines, track

ROOT = Path(__file__).resolve().parents[2]
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def land_workload(settings: Settings) -> None:
    """Files with overlapping ids (duplicates across files) and bad lines, large enough for 2 groups."""
    for i in range(6):
        lines = file_lines(f"f{i}", 3000, bad_every=101)
        lines += file_lines(f"f{max(i - 1, 0)}", 50)  # re-sends of the previous file's messages
        land(settings, f"f{i}.ndjson", lines)


def clean_snapshot(tmp_path: Path) -> dict[str, object]:
    home = tmp_path / "ref"
    reference = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    land_workload(reference)
    lake, landing = LakeResource(uri=reference.lake_uri), LandingResource(uri=reference.landing_uri)
    ingest(lake, landing, max_batch_bytes=1 << 20)
    return lake_snapshot(reference)


def test_the_same_batch_twice_adds_nothing(
    settings: Settings, lake: LakeResource, landing: LandingResource, tmp_path: Path
) -> None:
    land_workload(settings)
    files = [f.path for f in landing.list_files()]
    first = ingest(lake, landing, files, max_batch_bytes=1 << 20)
    snapshot = lake_snapshot(settings)
    again = ingest(lake, landing, files, max_batch_bytes=1 << 20)
    assert again.files == 0 and again.accepted == 0
    assert lake_snapshot(settings) == snapshot == clean_snapshot(tmp_path)
    assert len(first.batches) >= 2  # the workload spans several commit groups


@pytest.mark.parametrize("crash_after", ["quarantine", "events", "identities", "ingest_log"])
def test_a_run_killed_after_a_commit_then_retried_gives_the_clean_result(
    settings: Settings, tmp_path: Path, crash_after: str
) -> None:
    land_workload(settings)
    home = make_dagster_home(tmp_path / "dagster_home")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    args = [sys.executable, "-m", "tests.crashing", settings.lake_uri, settings.landing_uri, crash_after]
    crashed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]

    with instance_at(home) as instance:
        [killed] = instance.get_run_records()
        assert killed.dagster_run.status == dg.DagsterRunStatus.STARTED  # Dagster never heard of the commit
        instance.report_run_failed(killed.dagster_run)  # what run monitoring does for a dead worker
        summary = process_once(settings, instance)  # the retry
        assert summary["status"] == "SUCCESS"
    assert lake_snapshot(settings) == clean_snapshot(tmp_path)


def test_two_lakemail_process_at_once(settings: Settings, tmp_path: Path) -> None:
    land_workload(settings)
    env = {**os.environ, "LAKEMAIL_HOME": str(settings.home), "LAKEMAIL_MAX_BATCH_MB": "1"}
    lakemail = str(Path(sys.executable).parent / "lakemail")
    racers = [
        subprocess.Popen([lakemail, "process"], cwd=tmp_path, env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [r.communicate(timeout=180)[0].decode() for r in racers]
    assert [r.returncode for r in racers] == [0, 0], outputs
    assert lake_snapshot(settings) == clean_snapshot(tmp_path)
    batches = table(settings, "ingest_log")["batch_id"]
    assert batches.n_unique() == batches.max()  # batch numbers are consecutive: no batch committed twice


def test_a_retry_received_after_midnight_is_still_a_duplicate(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    """Skew correction moves a later-received copy's event time past midnight: still one event."""

    def copy(received: str) -> bytes:
        return orjson.dumps(
            {
                "messageId": "m-retried",
                "type": "track",
                "event": "Product Viewed",
                "userId": "u-1",
                "timestamp": "2026-11-22T23:59:00.000Z",
                "sentAt": "2026-11-22T23:59:30.000Z",
                "receivedAt": received,
                "properties": {"product_id": "p-1"},
            }
        )

    land(settings, "first.ndjson", [copy("2026-11-22T23:59:31.000Z")])
    ingest(lake, landing)
    land(settings, "retry.ndjson", [copy("2026-11-23T00:02:31.000Z")])
    second = ingest(lake, landing)
    events = table(settings, "events")
    assert events["event_id"].to_list() == ["m-retried"]
    assert events["event_date"].cast(pl.String).to_list() == ["2026-11-22"]
    log = table(settings, "ingest_log").filter(pl.col("source_file") == "events/retry.ndjson")
    assert log.select("lines", "accepted", "duplicates").row(0) == (1, 0, 1)
    assert second.batches


def test_person_ids_never_enter_the_delta_log(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    late = b'{"messageId": "late", "type": "page", "userId": "u-9", "anonymousId": "anon-x", '
    land(
        settings,
        "a.ndjson",
        [
            *file_lines("a", 20),
            b'{"messageId": "q", "userId": "u-1"}',
            track("x1", user="u-9", anon="anon-x"),
        ],
    )
    ingest(lake, landing)
    # New edges, and an existing edge seen earlier than recorded (first_seen_at must move back).
    land(
        settings,
        "b.ndjson",
        [track("b1", user="u-7", anon="anon-new"), late + b'"timestamp": "2026-11-21T10:00:00Z"}'],
    )
    ingest(lake, landing)
    edges = table(settings, "identities").sort("anonymous_id")
    assert ("anon-new", "u-7") in edges.select("anonymous_id", "user_id").rows()
    assert edges.filter(pl.col("anonymous_id") == "anon-x")["first_seen_at"].dt.day().to_list() == [21]
    assert edges.select("anonymous_id", "user_id").is_unique().all()
    for log_file in Path(settings.lake_uri).glob("*/_delta_log/*"):
        # Random UUIDs (file names, table ids) can hold "a-3" by chance ("...846a-3fb4..."): not a person.
        text = UUID.sub(b"<uuid>", log_file.read_bytes())
        for person in (b"u-1", b"u-7", b"u-9", b"a-3", b"anon-x", b"anon-new"):
            assert person not in text, (log_file, person)

"""What the runner's /metrics counts for a run (#18): exact figures from one real micro-batch run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import orjson
from prometheus_client import CollectorRegistry

from orchestration.definitions import build_defs
from orchestration.jobs import (
    DECIDE_JOB,
    INGEST_JOB,
    MICROBATCH_JOB,
    decide_config,
    ingest_config,
    microbatch_config,
)
from orchestration.leases import execute_leased
from orchestration.metrics.families import STAGES
from orchestration.metrics.observer import MetricsObserver, runner_registry
from orchestration.settings import Settings
from resources.lake import LakeResource
from tests.conftest import land
from tests.story import message
from transforms.triggers.policies import unit_hash

USERS = [u for u in (f"metrics-{i}" for i in range(6)) if unit_hash(f"holdout:{u}") >= 0.05][:3]


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_one_run_is_counted_exactly(settings: Settings, instance: dg.DagsterInstance) -> None:
    # No quiet hours: the run's `now` is the wall clock, and in the evening (CI at 21:12 UTC) quiet
    # hours deferred every welcome and the run counted no `send`.
    settings = replace(settings, policy=replace(settings.policy, quiet_hours=False))
    now = datetime.now(UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
    views = [orjson.dumps(message("Product Viewed", now, user="viewer", product_id="p-1")) for _ in range(2)]
    land(settings, "dirty.ndjson", [*views, views[0], b"{not json", b"[1]"])  # a duplicate, two broken
    registry, metrics = runner_registry(settings, instance)
    lake = LakeResource(uri=settings.lake_uri)
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    result = execute_leased(job, instance, microbatch_config(None, settings.max_batch_mb), "test")
    assert result.success
    MetricsObserver(metrics, instance, lake).finished(result)

    assert sample(registry, "lakemail_runs_total", lane="both", status="success") == 1  # microbatch_job
    assert sample(registry, "lakemail_lines_total", outcome="accepted") == len(USERS) + 2
    assert sample(registry, "lakemail_lines_total", outcome="duplicate") == 1
    assert sample(registry, "lakemail_lines_total", outcome="quarantined") == 2
    assert sample(registry, "lakemail_quarantined_lines_total", reason="invalid_json") == 1
    assert sample(registry, "lakemail_quarantined_lines_total", reason="not_an_object") == 1
    assert sample(registry, "lakemail_landed_to_committed_seconds_count") == 2  # one per file
    assert sample(registry, "lakemail_decisions_total", kind="welcome", decision="send") == len(USERS)
    assert sample(registry, "lakemail_sends_total", status="sent") == len(USERS)
    assert sample(registry, "lakemail_sends_enqueued_total") == len(USERS)
    assert sample(registry, "lakemail_landed_to_sent_seconds_count") == len(USERS)
    assert sample(registry, "lakemail_provider_responses_total", provider="sandbox", code="202") is not None
    assert sample(registry, "lakemail_provider_circuit_open", provider="sandbox") == 0
    for stage in STAGES:
        assert sample(registry, "lakemail_batch_stage_duration_seconds_count", stage=stage) == 1
    assert sample(registry, "lakemail_batch_duration_seconds_count") == 1
    # Measured from the lake and the instance at scrape time: the backlog is gone, the run succeeded.
    assert sample(registry, "lakemail_backlog_files") == 0
    assert sample(registry, "lakemail_backlog_oldest_age_seconds") == 0
    assert (sample(registry, "lakemail_last_successful_run_timestamp_seconds") or 0) >= now.timestamp()
    assert sample(registry, "lakemail_table_last_commit_timestamp_seconds", table="ingest_log") is not None
    # The micro-batch committed its batch to the state store (#15): there, and not behind the lake.
    assert sample(registry, "lakemail_state_store_present") == 1
    assert sample(registry, "lakemail_state_store_lag_batches") == 0
    # and its help says so: it described the store before #15, moved by `lakemail state rebuild` only.
    (lag,) = [m for m in registry.collect() if m.name == "lakemail_state_store_lag_batches"]
    assert "Each ingest run commits its batch to the store" in lag.documentation
    assert "rebuild" not in lag.documentation
    assert (sample(registry, "lakemail_lake_size_bytes") or 0) > 0


def test_a_pinned_now_run_counts_its_sends_latency(settings: Settings, instance: dg.DagsterInstance) -> None:
    # A replay (`process --now`) writes `sent_at` on the run's clock: the metrics read the run's sends by
    # the window its sends step reports there, not by the run's wall-clock span (which counted none).
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
    registry, metrics = runner_registry(settings, instance)
    lake = LakeResource(uri=settings.lake_uri)
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    config = microbatch_config(None, settings.max_batch_mb, now=now.isoformat())
    result = execute_leased(job, instance, config, "test")
    assert result.success
    MetricsObserver(metrics, instance, lake).finished(result)

    assert sample(registry, "lakemail_sends_total", status="sent") == len(USERS)
    assert sample(registry, "lakemail_landed_to_sent_seconds_count") == len(USERS)


def test_runs_are_counted_by_lane(settings: Settings, instance: dg.DagsterInstance) -> None:
    """`lakemail up` runs a runner per lane; runs were counted by outcome only, so one lane's successes
    hid the other failing every run (found by review: LakemailRunsFailing never fired for a decide lane
    that sent nothing while ingest went on). Real runs of each lane's job: the decide lane's fails on a
    `triggers` table whose log is broken, the ingest lane's succeeds."""
    now = datetime.now(UTC)
    land(
        settings,
        "signups.ndjson",
        [orjson.dumps(message("identify", now, user=USERS[0], email="a@b.example"))],
    )
    registry, metrics = runner_registry(settings, instance)
    lake = LakeResource(uri=settings.lake_uri)
    observer, defs = MetricsObserver(metrics, instance, lake), build_defs(settings)
    ingested = execute_leased(
        defs.resolve_job_def(INGEST_JOB), instance, ingest_config(None, settings.max_batch_mb), "test"
    )
    assert ingested.success
    observer.finished(ingested)
    log = Path(settings.lake_uri) / "triggers" / "_delta_log"
    log.mkdir(parents=True)
    (log / f"{0:020d}.json").write_text("not a Delta log\n")
    decided = execute_leased(defs.resolve_job_def(DECIDE_JOB), instance, decide_config(), "test")
    assert not decided.success
    observer.finished(decided)

    assert sample(registry, "lakemail_runs_total", lane="ingest", status="success") == 1
    assert sample(registry, "lakemail_runs_total", lane="ingest", status="failure") == 0
    assert sample(registry, "lakemail_runs_total", lane="decide", status="success") == 0
    assert sample(registry, "lakemail_runs_total", lane="decide", status="failure") == 1

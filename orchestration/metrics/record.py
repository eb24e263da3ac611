"""What one micro-batch run did, from its result (the assets' metadata, Dagster's step stats) and the rows
it committed (ingest_log by its batch ids, sends by the window its sends step reports): read once per run,
never per scrape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl

from orchestration.metrics.families import RunnerMetrics, lane_of
from resources.lake import LakeResource
from transforms.schema import INGEST_LOG_SCHEMA, SENDS_SCHEMA

# The sends asset's metadata key -> the status its rows got (`waiting`: pending or retrying).
SEND_KEYS = {"sent": "sent", "failed": "failed_permanent", "aborted": "aborted", "unknown": "unknown"}


def run_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """asset name -> its materialization's metadata values (plain Python values)."""
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        asset = event.asset_key.to_user_string() if event.asset_key else ""
        metadata = event.materialization.metadata
        found.setdefault(asset, {}).update({key: value.value for key, value in metadata.items()})
    return found


def batch_ids(text: object) -> list[int]:
    """The events asset's `batches` ("3, 4" or "none") as numbers."""
    return [int(part) for part in str(text).split(",") if part.strip().isdigit()]


def record_run(
    metrics: RunnerMetrics,
    result: dg.ExecuteInProcessResult,
    instance: dg.DagsterInstance,
    lake: LakeResource,
) -> None:
    """Count run `result` in `metrics`."""
    status = "success" if result.success else "failure"
    metrics.runs.labels(lane=lane_of(result.job_def.name), status=status).inc()
    stats = instance.get_run_stats(result.run_id)
    if stats.start_time is not None and stats.end_time is not None:
        metrics.run_duration.observe(stats.end_time - stats.start_time)
    for step in instance.get_run_step_stats(result.run_id):
        if step.start_time is not None and step.end_time is not None:
            metrics.stage_duration.labels(stage=step.step_key).observe(step.end_time - step.start_time)
    metadata = run_metadata(result)
    _ingest(metrics, metadata, lake)
    _decisions(metrics, metadata.get("triggers", {}))
    sends = metadata.get("sends")
    if sends is not None:
        _sends(metrics, sends)
        _sent_latency(metrics, lake, _sent_window(sends, stats.start_time, stats.end_time))


def _ingest(metrics: RunnerMetrics, metadata: dict[str, dict[str, Any]], lake: LakeResource) -> None:
    events, quarantine = metadata.get("events", {}), metadata.get("quarantine", {})
    metrics.lines.labels(outcome="accepted").inc(int(events.get("accepted") or 0))
    metrics.lines.labels(outcome="duplicate").inc(int(events.get("duplicates") or 0))
    metrics.lines.labels(outcome="quarantined").inc(int(quarantine.get("quarantined") or 0))
    for reason, n in (quarantine.get("by_reason") or {}).items():
        metrics.quarantined.labels(reason=str(reason)).inc(int(n))
    metrics.failed_files.inc(int(metadata.get("ingest_log", {}).get("failed_files") or 0))
    batches = batch_ids(events.get("batches", "none"))
    if not batches:
        return
    log = (
        lake.scan("ingest_log", INGEST_LOG_SCHEMA)
        .filter(pl.col("batch_id").is_in(batches) & (pl.col("status") == "committed"))
        .select((pl.col("committed_at") - pl.col("landed_at")).dt.total_milliseconds().alias("ms"))
        .collect()
    )
    for ms in log["ms"].drop_nulls():
        metrics.landed_to_committed.observe(max(0, ms) / 1000)


def _decisions(metrics: RunnerMetrics, triggers: dict[str, Any]) -> None:
    for kind, decisions in (triggers.get("by_kind_and_decision") or {}).items():
        for decision, n in decisions.items():
            metrics.decisions.labels(kind=str(kind), decision=str(decision)).inc(int(n))


def _sends(metrics: RunnerMetrics, sends: dict[str, Any]) -> None:
    metrics.enqueued.inc(int(sends.get("enqueued") or 0))
    for key, status in SEND_KEYS.items():
        metrics.sends.labels(status=status).inc(int(sends.get(key) or 0))
    metrics.sends.labels(status="retrying").inc(int(sends.get("waiting") or 0))
    provider = str(sends.get("provider") or "unknown")
    touched = sum(int(sends.get(k) or 0) for k in (*SEND_KEYS, "waiting"))
    if sends.get("circuit_open"):
        metrics.circuit_open.labels(provider=provider).set(1)
    elif touched:  # a run that delivered nothing says nothing about the circuit
        metrics.circuit_open.labels(provider=provider).set(0)


Window = tuple[datetime, datetime]


def _sent_window(sends: dict[str, Any], start: float | None, end: float | None) -> Window | None:
    """When the run's `sent_at`s fall: the window its sends step reports, on the run's clock (a run with a
    pinned `now` writes them there); else the run's wall-clock span (a run from before the window)."""
    if sends.get("sent_from") and sends.get("sent_until"):
        since, until = (datetime.fromisoformat(str(sends[k])) for k in ("sent_from", "sent_until"))
        return since, until
    if start is None or end is None:
        return None
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def _sent_latency(metrics: RunnerMetrics, lake: LakeResource, window: Window | None) -> None:
    """The emails the provider accepted in the run's sends window: their `latency_ms`."""
    if window is None:
        return
    since, until = window
    accepted = (pl.col("status") == "sent") & pl.col("sent_at").is_between(since, until)
    columns = {k: SENDS_SCHEMA[k] for k in ("status", "sent_at", "latency_ms")}
    sent = lake.collect("sends", columns, lambda rows: rows.filter(accepted).select("latency_ms"))
    for ms in sent["latency_ms"].drop_nulls():
        metrics.landed_to_sent.observe(max(0, ms) / 1000)

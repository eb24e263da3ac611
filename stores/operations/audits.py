"""Scheduled audits on the lake: the lake checks over a window (or the whole lake), the latency SLO and
the quarantine and failure trends, appended as rows of the `audit_results` table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from resources.lake import LakeResource
from stores.operations.checks import checks_for, evaluate
from stores.operations.probe import Probe
from transforms.operations.audits import (
    audit_rows,
    failure_trend,
    hourly_trend,
    latency_slo,
    quarantine_trend,
)
from transforms.operations.checks import CheckOutcome
from transforms.schema import INGEST_LOG_SCHEMA, UTC_TS

AUDIT_RESULTS = "audit_results"


def audit_names(tables: Iterable[str]) -> list[str]:
    """Names of the audits run over `tables`, in the order they run (each is an asset check)."""
    present = set(tables)
    latency = ["ingest_latency_slo", *(["send_latency_slo"] if "sends" in present else [])]
    return [c.name for c in checks_for(present)] + latency + ["quarantine_trend", "failure_trend"]


def _sent(probe: Probe) -> pl.LazyFrame:
    """Sent emails in scope, each with `due`: when it could go (its event landed and its delay passed).

    A cart email waits its trigger's delay on purpose; the SLO measures the time the system added.
    """
    sends = probe.whole("sends")
    if sends is None:
        return pl.LazyFrame(schema={"due": UTC_TS, "sent_at": UTC_TS})
    has_due = "due_at" in sends.collect_schema().names()  # written before the outbox recorded it: landed
    sent = sends.filter((pl.col("status") == "sent") & pl.col("sent_at").is_not_null())
    if probe.scope.since is not None:
        sent = sent.filter(pl.col("sent_at") >= probe.scope.since)
    due = pl.max_horizontal("landed_at", "due_at") if has_due else pl.col("landed_at")
    return sent.select(due.alias("due"), "sent_at")


def _latency(probe: Probe, tables: set[str]) -> dict[str, CheckOutcome]:
    """The ingest latency SLO, and the send one when `sends` is audited (produced even before it exists)."""
    events = probe.scoped("events")
    frame = (
        events.select("landed_at", "ingested_at")
        if events is not None
        else pl.LazyFrame(schema={"landed_at": UTC_TS, "ingested_at": UTC_TS})
    )
    target = probe.thresholds
    found = {
        "ingest_latency_slo": latency_slo(
            frame, start="landed_at", end="ingested_at", target_p95_s=target.ingest_p95_target_s
        )
    }
    if "sends" in tables:
        found["send_latency_slo"] = latency_slo(
            _sent(probe), start="due", end="sent_at", target_p95_s=target.send_p95_target_s
        )
    return found


def _trends(probe: Probe) -> dict[str, CheckOutcome]:
    log = probe.scoped("ingest_log")
    trend = hourly_trend(log if log is not None else pl.LazyFrame(schema=INGEST_LOG_SCHEMA))
    quarantine = probe.scoped("quarantine")
    reasons = (
        quarantine.group_by("reason").agg(pl.len().alias("rows")).collect()
        if quarantine is not None
        else pl.DataFrame(schema={"reason": pl.String, "rows": pl.UInt32})
    )
    return {
        "quarantine_trend": quarantine_trend(trend, reasons, probe.thresholds.quarantine_rate_max),
        "failure_trend": failure_trend(trend),
    }


def run_audits(probe: Probe, tables: Iterable[str]) -> dict[str, CheckOutcome]:
    """Every audit over `tables` within the probe's scope, by name (in `audit_names` order)."""
    present = set(tables)
    outcomes = {check.name: evaluate(check, probe) for check in checks_for(present)}
    return {**outcomes, **_latency(probe, present), **_trends(probe)}


def append_audit_rows(lake: LakeResource, rows: pl.DataFrame) -> int:
    """Append the rows of one run (one `run_at`) unless that run's rows are already there; rows added.

    A retried step of the same run has the same `run_at`, so it adds nothing; a new run adds its own.
    """
    [run_at] = rows["run_at"].unique().to_list()
    table = lake.table(AUDIT_RESULTS)
    if (
        table is not None
        and pl.scan_delta(table).filter(pl.col("run_at") == run_at).select(pl.len()).collect().item()
    ):
        return 0
    lake.write(AUDIT_RESULTS, rows)
    return rows.height


def record_audits(
    probe: Probe, tables: Iterable[str], run_at: datetime
) -> tuple[dict[str, CheckOutcome], int]:
    """Every audit over `tables`, appended as `audit_results` rows of the run at `run_at`; rows added."""
    outcomes = run_audits(probe, tables)
    return outcomes, append_audit_rows(probe.lake, audit_rows(run_at, outcomes))

"""Scheduled audits: the lake checks over a window (or the whole lake), the latency SLO and quarantine
and failure trends, kept as rows of the `audit_results` table and as asset check results in the UI."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import polars as pl

from assets.checks import (
    INGEST_TABLES,
    Probe,
    Scope,
    check_key,
    checks_for,
    evaluate,
)
from resources.lake import LakeResource
from resources.landing import LandingResource
from transforms.operations.checks import (
    CheckOutcome,
    Thresholds,
    failure_trend,
    hourly_trend,
    latency_slo,
    quarantine_trend,
)
from transforms.schema import INGEST_LOG_SCHEMA, UTC_TS

AUDIT_GROUP = "operations"
AUDIT_RESULTS = "audit_results"
AUDIT_RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "audit": pl.String(),
    "run_at": UTC_TS,
    "passed": pl.Boolean(),
    "figures": pl.String(),  # JSON object of counts and rates
}
WARN = dg.AssetCheckSeverity.WARN
DEFAULTS = Thresholds()


class AuditConfig(dg.Config):
    """How far back an audit looks (hours; none: the whole lake) and the limits it holds the lake to."""

    window_hours: float | None = 1.0
    quarantine_rate_max: float = DEFAULTS.quarantine_rate_max
    freshness_lag_minutes: float = DEFAULTS.freshness_lag / timedelta(minutes=1)
    send_budget_minutes: float = DEFAULTS.send_budget / timedelta(minutes=1)
    ingest_p95_target_s: float = DEFAULTS.ingest_p95_target_s
    send_p95_target_s: float = DEFAULTS.send_p95_target_s

    def thresholds(self) -> Thresholds:
        return Thresholds(
            quarantine_rate_max=self.quarantine_rate_max,
            freshness_lag=timedelta(minutes=self.freshness_lag_minutes),
            send_budget=timedelta(minutes=self.send_budget_minutes),
            ingest_p95_target_s=self.ingest_p95_target_s,
            send_p95_target_s=self.send_p95_target_s,
        )


def audit_names(tables: Iterable[str]) -> list[str]:
    """Names of the audits run over `tables`, in the order they run (each is an asset check)."""
    present = set(tables)
    latency = ["ingest_latency_slo", *(["send_latency_slo"] if "sends" in present else [])]
    return [c.name for c in checks_for(present)] + latency + ["quarantine_trend", "failure_trend"]


def _latency(probe: Probe) -> dict[str, CheckOutcome]:
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
    sends = probe.whole("sends")
    if sends is not None:
        sent = sends.filter((pl.col("status") == "sent") & pl.col("sent_at").is_not_null())
        if probe.scope.since is not None:
            sent = sent.filter(pl.col("sent_at") >= probe.scope.since)
        found["send_latency_slo"] = latency_slo(
            sent, start="landed_at", end="sent_at", target_p95_s=target.send_p95_target_s
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
    outcomes = {check.name: evaluate(check, probe) for check in checks_for(tables)}
    return {**outcomes, **_latency(probe), **_trends(probe)}


def audit_rows(run_at: datetime, outcomes: dict[str, CheckOutcome]) -> pl.DataFrame:
    """One `audit_results` row per audit of a run."""
    rows = [
        (name, run_at, outcome.passed, orjson.dumps(outcome.figures, option=orjson.OPT_SORT_KEYS).decode())
        for name, outcome in outcomes.items()
    ]
    return pl.DataFrame(rows, schema=AUDIT_RESULTS_SCHEMA, orient="row")


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


def run_started_at(context: dg.AssetExecutionContext) -> datetime:
    """When this run started: the same for every step and retry of the run, new for a re-execution."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is not None and record.start_time is not None:
        return datetime.fromtimestamp(record.start_time, UTC)
    if record is not None:
        created = record.create_timestamp
        return created if created.tzinfo else created.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _summary(outcomes: dict[str, CheckOutcome]) -> str:
    lines = ["| audit | passed | figures |", "|---|---|---|"]
    for name, outcome in outcomes.items():
        shown = ", ".join(f"{k}={v}" for k, v in list(outcome.figures.items())[:6])
        lines.append(f"| {name} | {'yes' if outcome.passed else 'NO'} | {shown} |")
    return "\n".join(lines) + "\n"


def build_audit_results(tables: Iterable[str] = INGEST_TABLES) -> dg.AssetsDefinition:
    """The `audit_results` asset auditing `tables` (the lake tables whose assets exist)."""
    present = sorted(set(tables))
    severities = {c.name: c.severity for c in checks_for(present)}

    @dg.asset(
        name=AUDIT_RESULTS,
        group_name=AUDIT_GROUP,
        deps=present,
        check_specs=[dg.AssetCheckSpec(name, asset=AUDIT_RESULTS) for name in audit_names(present)],
    )
    def audit_results(
        context: dg.AssetExecutionContext, config: AuditConfig, lake: LakeResource, landing: LandingResource
    ) -> dg.MaterializeResult:
        """Audit findings over a window or the whole lake: checks, latency SLO, quarantine, failures."""
        run_at = run_started_at(context)
        now = datetime.now(UTC)
        since = None if config.window_hours is None else now - timedelta(hours=config.window_hours)
        outcomes = run_audits(Probe(lake, landing, Scope(since=since), config.thresholds(), now), present)
        written = append_audit_rows(lake, audit_rows(run_at, outcomes))
        failed = [name for name, outcome in outcomes.items() if not outcome.passed]
        context.log.info("audit of %s: %s audits, failed: %s", run_at.isoformat(), len(outcomes), failed)
        return dg.MaterializeResult(
            metadata={
                "run_at": run_at.isoformat(),
                "window_hours": "whole lake" if config.window_hours is None else config.window_hours,
                "audits": len(outcomes),
                "failed": len(failed),
                "rows_written": written,
                "summary": dg.MetadataValue.md(_summary(outcomes)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=name,
                    passed=outcome.passed,
                    severity=severities.get(name, WARN),
                    metadata=dict(outcome.figures),
                )
                for name, outcome in outcomes.items()
            ],
        )

    return audit_results


def audit_selection(asset_keys: Iterable[str] = INGEST_TABLES) -> dg.AssetSelection:
    """What `audit_job` runs: `audit_results` and the hourly monitor checks on the tables.

    A micro-batch job selects everything but this (`dg.AssetSelection.all() - audit_selection(keys)`).
    """
    monitors = [check_key(c) for c in checks_for(asset_keys, in_run=False)]
    return dg.AssetSelection.assets(AUDIT_RESULTS) | dg.AssetSelection.checks(*monitors)

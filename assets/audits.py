"""Scheduled audits as Dagster sees them: the `audit_results` asset, its check results and its selection.

What an audit reads and writes is in stores/operations/audits.py; here its clock (`now`), window and limits
come from the run config, and its findings become the asset's metadata and check results in the UI.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.checks import check_key
from assets.clock import EngineConfig, engine_now
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.operations.audits import AUDIT_RESULTS, audit_names, record_audits
from stores.operations.checks import INGEST_TABLES, checks_for
from stores.operations.probe import Probe, Scope
from transforms.operations.checks import CheckOutcome, Thresholds

AUDIT_GROUP = "operations"
WARN = dg.AssetCheckSeverity.WARN
DEFAULTS = Thresholds()


class AuditConfig(EngineConfig):
    """The audit's `now` (ISO-8601; none: the clock), how far back before it the audit looks (hours; none:
    the whole lake) and the limits it holds the lake to. The monitor checks of the run take the same `now`
    (`assets.clock.run_now`)."""

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


def _check_results(
    outcomes: dict[str, CheckOutcome], severities: dict[str, dg.AssetCheckSeverity]
) -> list[dg.AssetCheckResult]:
    """One check result of `audit_results` per audit (a lake check keeps its severity, the rest warn)."""
    return [
        dg.AssetCheckResult(
            check_name=name,
            passed=outcome.passed,
            severity=severities.get(name, WARN),
            metadata=dict(outcome.figures),
        )
        for name, outcome in outcomes.items()
    ]


def build_audit_results(tables: Iterable[str] = INGEST_TABLES) -> dg.AssetsDefinition:
    """The `audit_results` asset auditing `tables` (the lake tables whose assets exist)."""
    present = sorted(set(tables))
    severities = {c.name: dg.AssetCheckSeverity(c.severity) for c in checks_for(present)}

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
        now = engine_now(config)
        since = None if config.window_hours is None else now - timedelta(hours=config.window_hours)
        probe = Probe(lake, landing, Scope(since=since), config.thresholds(), now)
        outcomes, written = record_audits(probe, present, run_at)
        failed = [name for name, outcome in outcomes.items() if not outcome.passed]
        context.log.info("audit of %s: %s audits, failed: %s", run_at.isoformat(), len(outcomes), failed)
        return dg.MaterializeResult(
            metadata={
                "run_at": run_at.isoformat(),
                "now": now.isoformat(),
                "window_hours": "whole lake" if config.window_hours is None else config.window_hours,
                "audits": len(outcomes),
                "failed": len(failed),
                "rows_written": written,
                "summary": dg.MetadataValue.md(_summary(outcomes)),
            },
            check_results=_check_results(outcomes, severities),
        )

    return audit_results


def audit_selection(asset_keys: Iterable[str] = INGEST_TABLES) -> dg.AssetSelection:
    """What `audit_job` runs: `audit_results` and the hourly monitor checks on the tables.

    A micro-batch job selects everything but this (`dg.AssetSelection.all() - audit_selection(keys)`).
    """
    monitors = [check_key(c) for c in checks_for(asset_keys, in_run=False)]
    return dg.AssetSelection.assets(AUDIT_RESULTS) | dg.AssetSelection.checks(*monitors)

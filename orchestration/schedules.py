"""Every schedule of lakemail: the hourly and nightly audits, hourly maintenance and measurement."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from orchestration.jobs import audit_job, maintenance_job, measure_job, profiles_job
from stores.operations.audits import AUDIT_RESULTS


def _audit_schedule(name: str, cron: str, hours: float | None, description: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name,
        job=audit_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        run_config={"ops": {AUDIT_RESULTS: {"config": {"window_hours": hours}}}},
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )


audit_schedule = _audit_schedule("audit_schedule", "5 * * * *", 1.0, "Hourly audit of the last hour.")
audit_full_schedule = _audit_schedule(
    "audit_full_schedule", "15 3 * * *", None, "Nightly audit of the whole lake."
)
maintenance_schedule = dg.ScheduleDefinition(
    name="maintenance_schedule",
    job=maintenance_job,
    cron_schedule="30 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly, at minute 30: lake maintenance and Dagster history pruning.",
)
measure_schedule = dg.ScheduleDefinition(
    name="measure_schedule",
    job=measure_job,
    cron_schedule="50 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly, at minute 50: attributions and experiments (what the emails earn).",
)
SCHEDULES = [audit_schedule, audit_full_schedule, maintenance_schedule, measure_schedule]


def profiles_schedule(every: timedelta) -> dg.ScheduleDefinition:
    """`profiles_job` every `every` (whole minutes, at least one; LAKEMAIL_PROFILES_REFRESH)."""
    minutes = max(1, round(every.total_seconds() / 60))
    cron = f"*/{minutes} * * * *" if minutes < 60 else f"0 */{max(1, minutes // 60)} * * *"
    return dg.ScheduleDefinition(
        name="profiles_schedule",
        job=profiles_job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every {minutes} min: rewrite the `profiles` Delta table from the state store.",
    )

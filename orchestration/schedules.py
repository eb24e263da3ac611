"""Every schedule of lakemail: the hourly and nightly audits, hourly maintenance and measurement, and the
profiles refresh. A schedule asks for no run while its last one is still in flight with a live worker:
a run that outlasts the interval (a profiles refresh of a large lake takes minutes) would otherwise have
another start at every tick, wait on the same lock in a process of its own and do the work again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.jobs import audit_job, maintenance_job, measure_job, profiles_job
from orchestration.lanes import IN_FLIGHT
from orchestration.leases import release_if_dead, worker_tags
from stores.operations.audits import AUDIT_RESULTS

SCHEDULE_NAME_TAG = "dagster/schedule_name"  # Dagster's tag on a schedule's runs, kept by their run retries
Job = UnresolvedAssetJobDefinition | dg.JobDefinition


def schedule_in_flight(
    instance: dg.DagsterInstance, name: str, log: Callable[[str], None] | None = None
) -> str | None:
    """The run of schedule `name` still queued or running with a live worker (its id), if any; one whose
    worker is gone is marked failed with the reason (`orchestration.leases`), said through `log`."""
    found = dg.RunsFilter(statuses=IN_FLIGHT, tags={SCHEDULE_NAME_TAG: name})
    for record in instance.get_run_records(filters=found):
        reason = release_if_dead(instance, record)
        if reason is None:
            return record.dagster_run.run_id
        if log is not None:
            log(f"run {record.dagster_run.run_id} marked failed: {reason}")
    return None


def _schedule(
    name: str, job: Job, cron: str, description: str, run_config: Mapping[str, Any] | None = None
) -> dg.ScheduleDefinition:
    def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        running = schedule_in_flight(context.instance, name, context.log.warning)
        if running is not None:
            return dg.SkipReason(f"run {running} of {name} is still in flight")
        # The worker's host, so that a dead worker is judged by its pid on PostgreSQL too.
        return dg.RunRequest(run_config=dict(run_config or {}), tags=worker_tags())

    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        execution_fn=evaluate,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )


def _audit_schedule(name: str, cron: str, hours: float | None, description: str) -> dg.ScheduleDefinition:
    config = {"ops": {AUDIT_RESULTS: {"config": {"window_hours": hours}}}}
    return _schedule(name, audit_job, cron, description, config)


audit_schedule = _audit_schedule("audit_schedule", "5 * * * *", 1.0, "Hourly audit of the last hour.")
audit_full_schedule = _audit_schedule(
    "audit_full_schedule", "15 3 * * *", None, "Nightly audit of the whole lake."
)
maintenance_schedule = _schedule(
    "maintenance_schedule",
    maintenance_job,
    "30 * * * *",
    "Hourly, at minute 30: lake maintenance and Dagster history pruning.",
)
measure_schedule = _schedule(
    "measure_schedule",
    measure_job,
    "50 * * * *",
    "Hourly, at minute 50: attributions and experiments (what the emails earn).",
)
SCHEDULES = [audit_schedule, audit_full_schedule, maintenance_schedule, measure_schedule]


def profiles_schedule(every: timedelta) -> dg.ScheduleDefinition:
    """`profiles_job` every `every` (whole minutes, at least one; LAKEMAIL_PROFILES_REFRESH)."""
    minutes = max(1, round(every.total_seconds() / 60))
    cron = f"*/{minutes} * * * *" if minutes < 60 else f"0 */{max(1, minutes // 60)} * * *"
    description = f"Every {minutes} min: rewrite the `profiles` Delta table from the state store."
    return _schedule("profiles_schedule", profiles_job, cron, description)

"""Every sensor of lakemail: landing (a micro-batch run for everything new, one at a time) and erasure."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.erasure import run_config_for
from orchestration.jobs import ERASURE_JOB, MICROBATCH_JOB, microbatch_config
from orchestration.leases import release_if_dead, worker_tags
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.erasure.requests import pending_requests
from stores.ingest import backlog
from stores.sends import next_attempt
from stores.triggers import next_due
from transforms.ingest.batch import SensorDecision, decide_batch

HEARTBEAT = "_runner_heartbeat"
HEARTBEAT_TIMEOUT_S = 15.0  # longer than any quiet stretch of the loop (a run beats before and after)


def heartbeat_path(lake: LakeResource) -> Path | None:
    """Where the runner says it is alive: next to a local lake (None for object stores)."""
    return lake.root / HEARTBEAT if lake.root is not None else None


def runner_alive(lake: LakeResource, now: float | None = None) -> bool:
    path = heartbeat_path(lake)
    try:
        beat = path.stat().st_mtime if path is not None else None
    except FileNotFoundError:
        return False
    return beat is not None and (now or time.time()) - beat < HEARTBEAT_TIMEOUT_S


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def run_in_flight(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> bool:
    """Whether a micro-batch run is queued or running in this Dagster instance with a live executor.

    A run whose executor is gone (SIGKILL, OOM, a lost machine) is marked failed with the reason, and
    said through `log`: it no longer blocks, and its files, not in `ingest_log`, are taken again.
    """
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=MICROBATCH_JOB, statuses=IN_FLIGHT))
    live = False
    for record in records:
        reason = release_if_dead(instance, record)
        if reason is None:
            live = True
        elif log is not None:
            log(f"run {record.dagster_run.run_id} marked failed: {reason}")
    return live


def evaluate_landing(lake: LakeResource, landing: LandingResource, in_flight: bool) -> SensorDecision:
    """What the sensor should do now: the lake's ingest_log, not Dagster's memory, says what is new."""
    _, pending = backlog(lake, landing)
    due = [t for t in (next_due(lake), next_attempt(lake)) if t is not None]
    return decide_batch(
        pending, run_in_flight=in_flight, next_due=min(due, default=None), now=datetime.now(UTC)
    )


def build_landing_sensor(poll_seconds: float, max_batch_mb: int) -> dg.SensorDefinition:
    """`landing_sensor`, polling every `poll_seconds` (the daemon evaluates at most every 5 s)."""

    @dg.sensor(
        name="landing_sensor",
        job_name=MICROBATCH_JOB,
        minimum_interval_seconds=max(1, round(poll_seconds)),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches one micro-batch run for every landed file the lake has not ingested yet.",
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource, landing: LandingResource
    ) -> dg.RunRequest | dg.SkipReason:
        if runner_alive(lake):
            return dg.SkipReason("`lakemail runner` is taking the micro-batches (its heartbeat is fresh)")
        decision = evaluate_landing(lake, landing, run_in_flight(context.instance, context.log.warning))
        if decision.run_key is None:
            return dg.SkipReason(decision.skip_reason)
        context.update_cursor(decision.run_key)  # the last manifest requested, shown in the UI
        return dg.RunRequest(
            run_key=decision.run_key,
            run_config=microbatch_config(list(decision.files), max_batch_mb),
            tags={"lakemail/files": str(len(decision.files)), **worker_tags()},
        )

    return landing_sensor


ERASURE_POLL_SECONDS = 5


def erasure_run_requests(landing: LandingResource) -> list[dg.RunRequest]:
    """One run per pending request file, keyed by its path, size and landing time."""
    return [
        dg.RunRequest(
            run_key=f"{f.path}:{f.size}:{f.landed_at.isoformat()}",
            run_config=run_config_for(f.path),
        )
        for f in pending_requests(landing)
    ]


@dg.sensor(
    name="erasure_sensor",
    job_name=ERASURE_JOB,  # by name: `job=` trips a Dagster beta warning when resources are attached
    minimum_interval_seconds=ERASURE_POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches `erasure_job` for every request file landed in `erasure/`.",
)
def erasure_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> list[dg.RunRequest] | dg.SkipReason:
    requests = erasure_run_requests(landing)
    return requests or dg.SkipReason("no erasure requests")

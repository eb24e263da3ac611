"""The landing sensor: one micro-batch run for everything new, never two at once."""

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from assets.ingest import landed_frame
from assets.outbox import next_attempt
from assets.trigger_store import next_due
from orchestration.resources import LakeResource, LandedFile, LandingResource
from transforms.batch import SensorDecision, decide_batch, pending_files
from transforms.schema import INGEST_LOG_SCHEMA

MICROBATCH_JOB = "microbatch_job"
INGEST_FOLDERS = ("events", "customers", "catalog")

HEARTBEAT = "_runner_heartbeat"
HEARTBEAT_TIMEOUT_S = 15.0  # longer than any quiet stretch of the loop (a run beats before and after)


def heartbeat_path(lake: LakeResource) -> Path | None:
    """Where the runner says it is alive: next to a local lake (None for object stores)."""
    if "://" in lake.uri and not lake.uri.startswith("file://"):
        return None
    return Path(lake.uri.removeprefix("file://")) / HEARTBEAT


def runner_alive(lake: LakeResource, now: float | None = None) -> bool:
    path = heartbeat_path(lake)
    try:
        beat = path.stat().st_mtime if path is not None else None
    except FileNotFoundError:
        return False
    return beat is not None and (now or time.time()) - beat < HEARTBEAT_TIMEOUT_S


def microbatch_config(files: list[str] | None, max_batch_mb: int, now: str | None = None) -> dict[str, Any]:
    """Run config of one micro-batch: its files (None = everything landed) and the engine's clock."""
    engine = {"config": {"now": now}}
    return {
        "ops": {
            "ingest_stage": {"config": {"files": files, "max_batch_mb": max_batch_mb}},
            "profiles": engine,
            "triggers": engine,
            "sends": engine,
        }
    }


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def run_in_flight(instance: dg.DagsterInstance) -> bool:
    """Whether a micro-batch run is queued or running in this Dagster instance."""
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=MICROBATCH_JOB, statuses=IN_FLIGHT), limit=1
    )
    return bool(runs)


def landed_everywhere(landing: LandingResource) -> list[LandedFile]:
    """Finished files in every folder a micro-batch takes (events, customers, catalog)."""
    return [f for folder in INGEST_FOLDERS for f in landing.list_files(folder)]


def evaluate_landing(lake: LakeResource, landing: LandingResource, in_flight: bool) -> SensorDecision:
    """What the sensor should do now: the lake's ingest_log, not Dagster's memory, says what is new."""
    ingest_log = lake.read("ingest_log", INGEST_LOG_SCHEMA, ["source_file", "bytes"])
    pending = pending_files(landed_frame(landed_everywhere(landing)), ingest_log)
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
        decision = evaluate_landing(lake, landing, run_in_flight(context.instance))
        if decision.run_key is None:
            return dg.SkipReason(decision.skip_reason)
        context.update_cursor(decision.run_key)  # the last manifest requested, shown in the UI
        return dg.RunRequest(
            run_key=decision.run_key,
            run_config=microbatch_config(list(decision.files), max_batch_mb),
            tags={"lakemail/files": str(len(decision.files))},
        )

    return landing_sensor

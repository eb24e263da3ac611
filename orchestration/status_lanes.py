"""`lakemail status`, lane by lane (#15): what takes each lane, each lane's runs, and how long the decide
lane's work has waited, by the rule the runner and the decide sensor launch its runs by."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

from orchestration.jobs import ERASURE_JOB, LANE_JOBS, SCHEDULED_JOBS
from orchestration.lanes import ALL_JOBS, DECIDE, LANES, DecideWork, decide_now, runs_in_flight
from orchestration.sensors import LANE_SENSORS, runner_alive
from resources.lake import LakeResource
from resources.state import StateResource
from stores.operations.probe import last_data_commit
from transforms.schema import INGEST_LOG_SCHEMA

DAEMON_BEAT_S = 90.0  # the daemon's sensor thread beats every 30 s: three missed, it is gone
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def last_commit(lake: LakeResource, name: str) -> datetime | None:
    """When table `name` last brought data in: maintenance's compactions and vacuums are no freshness
    (found by review: a compaction after a file landed made a table that waited for it look fresh)."""
    return last_data_commit(lake.table(name))


def lane_takers(lake: LakeResource, instance: dg.DagsterInstance | None, now: datetime) -> dict[str, Any]:
    """What takes each lane now: runners with a fresh heartbeat (one for both lanes, or one per lane), a
    daemon running the lane's sensor (not one turned off). None for a lane when nothing is seen on an
    object-store lake: a runner there leaves no heartbeat here, unknown."""
    alive = [lane for lane in LANES if runner_alive(lake, now.timestamp(), lane)]
    runner = "lakemail runner" if len(alive) == len(LANES) else "lakemail runner ({} lane)"
    beat = instance.get_daemon_heartbeats().get("SENSOR") if instance is not None else None
    sensors: set[str] = set()
    if instance is not None and beat is not None and now.timestamp() - beat.timestamp <= DAEMON_BEAT_S:
        sensors = set(LANE_SENSORS.values()) - stopped_sensors(instance)
    takers: dict[str, list[str] | None] = {}
    for lane in LANES:
        found = [runner.format(lane)] if lane in alive else []
        found += [f"dagster-daemon ({LANE_SENSORS[lane]})"] if LANE_SENSORS[lane] in sensors else []
        takers[lane] = None if not found and lake.root is None else found
    return takers


def stopped_sensors(instance: dg.DagsterInstance) -> set[str]:
    """The sensors turned off in the instance (the UI, `dagster sensor stop`): the daemon, beating on,
    evaluates them no more. A sensor with no state stored runs as declared in code (running)."""
    stopped = instance.all_instigator_state(
        instigator_type=InstigatorType.SENSOR, instigator_statuses={InstigatorStatus.STOPPED}
    )
    return {state.name for state in stopped}


def every_taker(takers: dict[str, list[str] | None]) -> list[str] | None:
    """Every lane's takers in one list (None when no lane's are known)."""
    if all(found is None for found in takers.values()):
        return None
    return list(dict.fromkeys(t for found in takers.values() for t in found or ()))


def run_summary(records: list[dg.RunRecord], now: datetime) -> dict[str, Any] | None:
    """The newest of `records` (by when it was made; the storage's order breaks a tie within a second)."""
    if not records:
        return None
    record = max(records, key=lambda r: (r.create_timestamp, r.storage_id))
    ended = record.end_time or record.start_time or record.create_timestamp.timestamp()
    return {
        "run_id": record.dagster_run.run_id,
        "job": record.dagster_run.job_name,
        "status": record.dagster_run.status.value,
        "age_seconds": round(max(0.0, now.timestamp() - ended), 3),
    }


def lane_runs(instance: dg.DagsterInstance | None, now: datetime) -> dict[str, Any]:
    """The last run of each lane and of either, each lane's last finished run (its own jobs':
    `microbatch_job` counts for both), and the failed runs of the last hour (of every job)."""
    if instance is None:
        nothing = {lane: None for lane in LANE_JOBS}
        return {"last": None, "failed_last_hour": 0, "lanes": nothing, "finished": dict(nothing)}
    latest = {job: instance.get_run_records(dg.RunsFilter(job_name=job), limit=1) for job in ALL_JOBS}
    done = {
        job: instance.get_run_records(dg.RunsFilter(job_name=job, statuses=FINISHED), limit=1)
        for job in ALL_JOBS
    }
    hour = dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=now - timedelta(hours=1))
    every_job = (*ALL_JOBS, *SCHEDULED_JOBS, ERASURE_JOB)
    failed = [r for r in instance.get_run_records(filters=hour) if r.dagster_run.job_name in every_job]
    return {
        "last": run_summary([r for records in latest.values() for r in records], now),
        "failed_last_hour": len(failed),
        "lanes": {
            lane: run_summary([r for j in jobs for r in latest[j]], now) for lane, jobs in LANE_JOBS.items()
        },
        "finished": {
            lane: run_summary([r for j in jobs for r in done[j]], now) for lane, jobs in LANE_JOBS.items()
        },
    }


def decide_waiting(
    lake: LakeResource, state: StateResource, instance: dg.DagsterInstance | None, now: datetime
) -> dict[str, Any]:
    """The decide lane's work that no run has taken (`decide_now`, the runner's and the sensor's rule),
    and since when: the first batch the engine has not seen committed, the engine run whose decisions are
    not all in the outbox committed, the earliest pending trigger or outbox row fell due. Nothing waits
    while a decide run is queued or running (a slow or stuck run is judged as a run)."""
    nothing: dict[str, Any] = {"waiting_seconds": None, "waiting_for": []}
    if instance is not None and runs_in_flight(instance, LANE_JOBS[DECIDE]):
        return nothing
    work = DecideWork.of(lake, state)
    if decide_now(work, in_flight=False, now=now).run_key is None:
        return nothing
    since: dict[str, datetime | None] = {}
    if work.new_batches():
        since["a batch the engine has not seen"] = _first_commit(lake, work.considered, work.committed)
    if work.unqueued():
        since["decisions not yet in the outbox"] = last_commit(lake, "triggers")
    if work.due_by(now):
        since["a trigger or outbox row due"] = work.due
    oldest = min((t for t in since.values() if t is not None), default=now)
    return {"waiting_seconds": round(max(0.0, (now - oldest).total_seconds()), 3), "waiting_for": list(since)}


def _first_commit(lake: LakeResource, considered: int, committed: int) -> datetime | None:
    """When the first batch after `considered` (up to `committed`) was committed (`ingest_log`; its last
    commit when the log has no row of those batches)."""
    batch = pl.col("batch_id")
    first = (
        lake.scan("ingest_log", INGEST_LOG_SCHEMA)
        .filter((batch > considered) & (batch <= committed))
        .select(pl.col("committed_at").min())
        .collect()
        .item()
    )
    return first if isinstance(first, datetime) else last_commit(lake, "ingest_log")

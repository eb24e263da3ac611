"""Every sensor of lakemail: one per lane (`landing_sensor` launches ingest runs, `decide_sensor` decide
runs; each one at a time, the two overlapping) while no `lakemail runner` beats, and erasure."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from assets.erasure import run_config_for
from orchestration.jobs import (
    DECIDE_JOB,
    ERASURE_JOB,
    INGEST_JOB,
    decide_config,
    ingest_config,
    lane_manifest,
)
from orchestration.lanes import (
    DECIDE,
    IN_FLIGHT,
    INGEST,
    evaluate_decide,
    evaluate_ingest,
    jobs_in_flight,
    lane_in_flight,
)
from orchestration.leases import worker_tags
from orchestration.run_keys import BATCH_KEY_TAG, sensor_runs, with_generation
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.erasure.names import take_pending
from transforms.ingest.batch import SensorDecision

__all__ = ["IN_FLIGHT", "run_in_flight"]  # the names tests and status import here

HEARTBEAT = "_runner_heartbeat"
HEARTBEAT_TIMEOUT_S = 15.0  # longer than any quiet stretch of the loop (a run beats before and after)
RUNNER_BEATS = "`lakemail runner` is taking this lane's runs (its heartbeat is fresh)"
LANE_SENSORS = {INGEST: "landing_sensor", DECIDE: "decide_sensor"}  # the daemon's takers of each lane


def heartbeat_path(lake: LakeResource, lane: str | None = None) -> Path | None:
    """Where a runner says it is alive, next to a local lake (None for object stores): a runner of one
    lane (`lakemail runner --lane`) beats that lane's file, a runner of both the plain one."""
    if lake.root is None:
        return None
    return lake.root / (HEARTBEAT if lane is None else f"{HEARTBEAT}_{lane}")


def runner_alive(lake: LakeResource, now: float | None = None, lane: str | None = None) -> bool:
    """Whether a runner takes `lane` (None: either lane) now: its heartbeat is fresh."""
    lanes = (lane,) if lane is not None else (INGEST, DECIDE)
    for path in (heartbeat_path(lake), *(heartbeat_path(lake, one) for one in lanes)):
        try:
            beat = path.stat().st_mtime if path is not None else None
        except FileNotFoundError:
            continue
        if beat is not None and (now or time.time()) - beat < HEARTBEAT_TIMEOUT_S:
            return True
    return False


def run_in_flight(instance: dg.DagsterInstance, log: Callable[[str], None] | None = None) -> bool:
    """Whether a run of either lane is in flight with a live executor (dead ones marked failed)."""
    return lane_in_flight(instance, None, log)


def _request(
    context: dg.SensorEvaluationContext,
    sensor: str,
    decision: SensorDecision,
    run_config: dict[str, object],
    now: datetime,
) -> dg.RunRequest | dg.SkipReason:
    """The request for `decision`, under the run key of its generation (`run_keys`): work whose every run
    failed, Dagster's run retries included, is requested again under a new key after a backoff."""
    base = decision.run_key
    if base is not None:
        decision = with_generation(decision, sensor_runs(context.instance, sensor, base), now)
    if decision.run_key is None:
        return dg.SkipReason(decision.skip_reason)
    context.update_cursor(decision.run_key)  # the last request of this lane, shown in the UI
    return dg.RunRequest(
        run_key=decision.run_key,
        run_config=run_config,
        tags={"lakemail/files": str(len(decision.files)), BATCH_KEY_TAG: str(base), **worker_tags()},
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_lane_sensors(
    poll_seconds: float, max_batch_mb: int, now: Callable[[], datetime] = _utc_now
) -> list[dg.SensorDefinition]:
    """`landing_sensor` and `decide_sensor`, polling every `poll_seconds` (the daemon: at most every 5 s);
    `now` tells the time of due work and of run-key backoffs."""
    interval = max(1, round(poll_seconds))

    @dg.sensor(
        name=LANE_SENSORS[INGEST],
        job_name=INGEST_JOB,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="The ingest lane: one run for every landed file the lake has not ingested yet.",
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext,
        lake: LakeResource,
        landing: LandingResource,
        state: StateResource,
    ) -> dg.RunRequest | dg.SkipReason:
        if runner_alive(lake, lane=INGEST):
            return dg.SkipReason(RUNNER_BEATS)
        in_flight = lane_in_flight(context.instance, INGEST, context.log.warning)
        decision = evaluate_ingest(lake, landing, in_flight, state)
        config = ingest_config(lane_manifest(decision.files), max_batch_mb)
        return _request(context, LANE_SENSORS[INGEST], decision, config, now())

    @dg.sensor(
        name=LANE_SENSORS[DECIDE],
        job_name=DECIDE_JOB,
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="The decide lane: triggers and sends for every committed batch, and when one is due.",
    )
    def decide_sensor(
        context: dg.SensorEvaluationContext, lake: LakeResource, state: StateResource
    ) -> dg.RunRequest | dg.SkipReason:
        if runner_alive(lake, lane=DECIDE):
            return dg.SkipReason(RUNNER_BEATS)
        in_flight = lane_in_flight(context.instance, DECIDE, context.log.warning)
        at = now()
        decision = evaluate_decide(lake, in_flight, at, state)
        return _request(context, LANE_SENSORS[DECIDE], decision, decide_config(), at)

    return [landing_sensor, decide_sensor]


ERASURE_POLL_SECONDS = 5
ERASURE_SENSOR = "erasure_sensor"


def erasure_run_requests(
    landing: LandingResource,
    instance: dg.DagsterInstance | None = None,
    now: datetime | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[dg.RunRequest], list[str]]:
    """One run per pending request file, keyed by its path, size and mtime (a chmod, which moves its
    ctime, is not a new request; `resources.landing.LandedFile`): each renamed first to
    `erasure/req-<random>.json` (a file named after the person names no run, config or tick). With the
    `instance`, each key has its generation (`run_keys`), as the lanes' do: a request whose run and
    Dagster's run retries all failed (the file stays for a retry) is requested again under a new key
    `failure_backoff` after the last failure; an erasure run whose worker is gone is marked failed first
    (said through `log`), as the lanes' are, or its key would stand for ever. The requests, and why the
    others wait (a backoff)."""
    found: list[dg.RunRequest] = []
    waiting: list[str] = []
    if instance is not None:
        jobs_in_flight(instance, (ERASURE_JOB,), log)
    for landed in take_pending(landing):
        base = f"{landed.path}:{landed.size}:{landed.modified_at.isoformat()}"
        decision = SensorDecision((landed.path,), run_key=base)
        if instance is not None:
            runs = sensor_runs(instance, ERASURE_SENSOR, base)
            decision = with_generation(decision, runs, now or _utc_now())
        if decision.run_key is None:
            waiting.append(str(decision.skip_reason))
            continue
        config, tags = run_config_for(landed.path), {BATCH_KEY_TAG: base, **worker_tags()}
        found.append(dg.RunRequest(run_key=decision.run_key, run_config=config, tags=tags))
    return found, waiting


def build_erasure_sensor(now: Callable[[], datetime] = _utc_now) -> dg.SensorDefinition:
    """`erasure_sensor`; `now` tells the time of run-key backoffs."""

    @dg.sensor(
        name=ERASURE_SENSOR,
        job_name=ERASURE_JOB,  # by name: `job=` trips a Dagster beta warning when resources are attached
        minimum_interval_seconds=ERASURE_POLL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches `erasure_job` for every request file landed in `erasure/`.",
    )
    def erasure_sensor(
        context: dg.SensorEvaluationContext, landing: LandingResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        requests, waiting = erasure_run_requests(landing, context.instance, now(), context.log.warning)
        return requests or dg.SkipReason("; ".join(waiting) or "no erasure requests")

    return erasure_sensor


erasure_sensor = build_erasure_sensor()

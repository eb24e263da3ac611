"""The two lanes of the micro-batch (#15) and what each should do now: the runner's and the sensors' rule.

- ingest (`ingest_job`): a run whenever landed files wait, or the state store is behind the lake's last
  batch (a crash between a batch's Delta and store commits: the run's start catches it up), and no
  ingest run is in flight.
- decide (`decide_job`): a run whenever the store holds batches the engine has not considered,
  decisions wait for the outbox, a pending trigger or an outbox row is due, and no decide run is in flight.

The two may be in flight at once: each takes only its own lake lock (`resources.lake_locks`), and the
decide lane decides the batches the store holds only (`stores.decide.engine.decide`: a batch in Delta
but not yet in the store waits for the next run). A run of `microbatch_job` (`lakemail process`,
`lakemail retry`) occupies both lanes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import dagster as dg

from orchestration.jobs import DECIDE_JOB, INGEST_JOB, LANE_JOBS
from orchestration.leases import release_if_dead
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from resources.vacuumed import VACUUMED
from stores.ingest import backlog
from stores.sends import next_attempt
from stores.triggers_pending import considered_batch, next_due
from transforms.ingest.batch import SensorDecision, decide_batch
from transforms.schema import RUN_APP, SENDS_APP

INGEST, DECIDE = "ingest", "decide"
LANES = (INGEST, DECIDE)
LANE_JOB = {INGEST: INGEST_JOB, DECIDE: DECIDE_JOB}

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
ALL_JOBS = tuple(dict.fromkeys(job for jobs in LANE_JOBS.values() for job in jobs))
POLL_MISSES = 5  # lake reads failing this many polls in a row are no race (`Poll`)


def runs_in_flight(instance: dg.DagsterInstance, jobs: tuple[str, ...] = ALL_JOBS) -> list[dg.RunRecord]:
    """Runs of `jobs` queued or running (by Dagster's word: see `lane_in_flight` for alive)."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=IN_FLIGHT))
    return [r for r in records if r.dagster_run.job_name in jobs]


def lane_in_flight(
    instance: dg.DagsterInstance, lane: str | None = None, log: Callable[[str], None] | None = None
) -> bool:
    """Whether a run of `lane` (None: of either lane) is queued or running with a live executor.

    A run whose executor is gone (SIGKILL, OOM, a lost machine) is marked failed with the reason, and
    said through `log`: it no longer blocks, and its work (files not in `ingest_log`, batches the engine
    has not considered, due outbox rows) is taken again.
    """
    return jobs_in_flight(instance, LANE_JOBS[lane] if lane else ALL_JOBS, log)


def jobs_in_flight(
    instance: dg.DagsterInstance, jobs: tuple[str, ...], log: Callable[[str], None] | None = None
) -> bool:
    """Whether a run of `jobs` is queued or running with a live executor; dead ones are marked failed
    with the reason (`orchestration.leases`), said through `log`, and no longer count."""
    live = False
    for record in runs_in_flight(instance, jobs):
        reason = release_if_dead(instance, record)
        if reason is None:
            live = True
        elif log is not None:
            log(f"run {record.dagster_run.run_id} marked failed: {reason}")
    return live


def stored_batch(state: StateResource | None) -> int | None:
    """The last batch the state store holds (None: no store yet, or none to ask)."""
    store = state.existing() if state is not None else None
    return store.stamps()["ingest"] if store is not None else None


def evaluate_ingest(
    lake: LakeResource, landing: LandingResource, in_flight: bool, state: StateResource | None = None
) -> SensorDecision:
    """What the ingest lane should do now: the lake's ingest_log, not Dagster's memory, says what is new;
    with nothing landed, a store behind the lake is caught up by a run of no files."""
    _, pending = backlog(lake, landing)
    decision = decide_batch(pending, run_in_flight=in_flight)
    stored = stored_batch(state) if decision.skip_reason and not in_flight else None
    committed = lake.committed_batch() if stored is not None else 0
    if stored is not None and stored < committed:
        return SensorDecision(files=(), run_key=f"catch-up-b{committed}-s{stored}")
    return decision


@dataclass(frozen=True)
class DecideWork:
    """What the lake says the decide lane has to do (`LakeResource` app versions and due times)."""

    committed: int  # the last batch the state store holds (the lake's when there is no store yet)
    considered: int  # the last batch an engine run saw
    evaluation: int  # the last engine run
    enqueued: int  # the last engine run whose `send` decisions are in the outbox
    due: datetime | None  # the earliest pending trigger or outbox row

    @classmethod
    def of(cls, lake: LakeResource, state: StateResource | None = None, *, due: bool = True) -> DecideWork:
        """The lake's and the store's figures; without `due`, the due time is read only when nothing else
        is to do (a busy lane's poll reads no pending trigger nor outbox row: #17)."""
        stored = stored_batch(state)
        work = cls(
            committed=lake.committed_batch() if stored is None else stored,
            considered=considered_batch(lake),
            evaluation=lake.app_version("triggers", RUN_APP),
            enqueued=lake.app_version("sends", SENDS_APP),
            due=None,
        )
        if due or not (work.new_batches() or work.unqueued()):
            times = [t for t in (next_due(lake, state), next_attempt(lake)) if t is not None]
            work = replace(work, due=min(times, default=None))
        return work

    def new_batches(self) -> bool:
        """The store holds batches the engine has not considered."""
        return self.committed > self.considered

    def unqueued(self) -> bool:
        """An engine run's `send` decisions are not all in the outbox yet."""
        return self.enqueued < self.evaluation

    def due_by(self, now: datetime) -> bool:
        """A pending trigger or an outbox row is due at `now`."""
        return self.due is not None and self.due <= now


def decide_now(work: DecideWork, *, in_flight: bool, now: datetime) -> SensorDecision:
    """One decide run for new batches, decisions not yet in the outbox, or something due; the key names
    the engine run it follows, so that the sensor asks once for each (a new batch gives a new key)."""
    if in_flight:
        return SensorDecision(skip_reason="a decide run is in flight; the next one takes what is new")
    key = f"decide-b{work.committed}-e{work.evaluation}"
    if work.new_batches() or work.unqueued():
        return SensorDecision(run_key=key)
    if work.due_by(now) and work.due is not None:
        return SensorDecision(run_key=f"{key}-due-{work.due.isoformat()}")
    return SensorDecision(skip_reason="no batch the engine has not seen, no trigger or outbox row due")


def evaluate_decide(
    lake: LakeResource, in_flight: bool, now: datetime, state: StateResource | None = None
) -> SensorDecision:
    """What the decide lane should do now (`decide_now` over the lake's and the store's `DecideWork`)."""
    if in_flight:
        return decide_now(DecideWork(0, 0, 0, 0, None), in_flight=True, now=now)
    return decide_now(DecideWork.of(lake, state, due=False), in_flight=False, now=now)


@dataclass
class Poll:
    """A lane's decision taken by polling the lake several times a second without a lock (the runner's).

    A read may race an erasure, which deletes and then vacuums at retention 0: the files of the version
    the poll opened are gone before it reads them (`VACUUMED`). That poll is said and decides nothing; the
    next one opens the new version. POLL_MISSES in a row are no race: the error is raised.
    """

    decide: Callable[[], SensorDecision]
    say: Callable[[str], None]
    misses: int = 0

    def __call__(self) -> SensorDecision:
        try:
            decision = self.decide()
        except VACUUMED as error:
            self.misses += 1
            if self.misses >= POLL_MISSES:
                raise
            self.say(f"reading the lake failed ({type(error).__name__}: {error}); polling again")
            return SensorDecision(skip_reason="reading the lake failed")
        self.misses = 0
        return decision

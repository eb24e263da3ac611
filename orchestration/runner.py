"""`lakemail runner`: the lanes' decisions, taken every quarter second by a warm process, and at once when
a file lands or the store commits a batch (`orchestration.lane_wake`).

The daemon evaluates sensors at most every 5 s and starts a fresh interpreter per run (about 1.5 s
before the first asset runs on the 2-core reference machine): together most of the landed -> email
latency. The runner keeps a process with everything imported and takes the lanes (#15) in it against
the persistent instance: `ingest_job` whenever files wait and no ingest run is in flight, `decide_job`
whenever the store holds a batch the engine has not considered or something is due and no decide run
is in flight (`orchestration.lanes`). Each run shows in the UI's run history, with its checks.

`lakemail runner --lane ingest` and `--lane decide` take one lane each, so that their runs truly overlap
(`lakemail up` starts one of each): a landed file never waits for a delivery. A runner of both lanes
executes one run at a time (`_ONE_RUN`: Dagster's in-process runs deadlock in logging when two overlap
in one process); the lake's lane locks let runs of the two lanes from separate processes overlap.

While its heartbeat is fresh the sensors of its lanes stand aside. When the runner stops, they take
over within one heartbeat timeout; the lake's lane locks and `ingest_log` keep any overlap harmless.
Its runs carry its pid and lease (`orchestration.leases`): if it dies mid-run, the next runner or
sensor evaluation marks that run failed and takes its work again. SIGTERM / SIGINT let the runs in
flight finish (up to `STOP_GRACE_S`), then hand them back: marked failed with the reason, their work
left to the next runs. A lane's loop that fails stops the runner the same way (exit 1, its error shown);
a poll whose lake read raced an erasure's vacuum does not (`orchestration.lanes.Poll`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_defs
from orchestration.jobs import decide_config, ingest_config, lane_manifest
from orchestration.lane_wake import Signal, idle, landing_signal, store_signal
from orchestration.lanes import (
    DECIDE,
    INGEST,
    LANE_JOB,
    LANES,
    Poll,
    evaluate_decide,
    evaluate_ingest,
    lane_in_flight,
)
from orchestration.leases import execute_leased
from orchestration.metrics.observer import RunObserver, start_metrics
from orchestration.run_keys import failure_backoff
from orchestration.runner_stop import abandon
from orchestration.runner_stop import say as _say
from orchestration.sensors import heartbeat_path
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from transforms.ingest.batch import SensorDecision

POLL_SECONDS = 0.25
STOP_GRACE_S = 10.0  # under `lakemail up`'s 15 s between SIGTERM and SIGKILL
LAUNCHED_BY = "lakemail runner"
_ONE_RUN = threading.Lock()


@contextmanager
def _one_run() -> Iterator[bool]:
    """`_ONE_RUN` held for a run; whether it had to wait for it (a lane alone in its process never does,
    and its poll's decision stands: no second read of the lake before each run, #17).

    Two `execute_in_process` runs at once in one process deadlock in Dagster's logging: each run's setup
    calls `logging.config.dictConfig` (DagsterInstance.get_yaml_python_handlers), which holds logging's
    module lock while it takes every handler's lock, while the other run's event handler holds its own
    lock and waits for the module lock (seen within seconds under load). So this process executes one
    run at a time; the lanes still decide, and are recorded, separately, and runs of the two lanes from
    separate processes (the sensors' run workers, `lakemail process`) overlap under the lane locks."""
    waited = not _ONE_RUN.acquire(blocking=False)
    if waited:
        _ONE_RUN.acquire()
    try:
        yield waited
    finally:
        _ONE_RUN.release()


@dataclass
class InFlight:
    """The runs the runner executes now, by lane (none between runs), for a stop to hand back."""

    runs: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return next(iter(self.runs.values()), None)


def _beat(path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


@dataclass
class _Lane:
    """One lane's loop: decide, run, tell the observer; sleep `poll_seconds` when there is nothing to do."""

    name: str
    job: dg.JobDefinition
    decide: Callable[[Callable[[str], None]], SensorDecision]
    config: Callable[[SensorDecision], dict[str, object]]
    signal: Signal | None = None  # what wakes it before its next poll (`orchestration.lane_wake`)
    runs: int = 0

    def serve(
        self, instance: dg.DagsterInstance, stop: threading.Event, poll: float, flight: InFlight,
        watch: RunObserver, beat: Path | None,
    ) -> None:  # fmt: skip
        def released(message: str) -> None:
            _say(message)
            watch.released()

        failures = 0
        decide = Poll(lambda: self.decide(released), lambda said: _say(f"{self.name} lane: {said}"))
        while not stop.is_set():
            _beat(beat)
            decision = decide()
            if decision.run_key is None:
                idle(stop, poll, self.signal)
                continue
            with _one_run() as waited:
                decision = decide() if waited else decision  # the other lane's run may have changed it
                if decision.run_key is None:
                    continue
                flight.runs[self.name] = run_id = str(uuid.uuid4())
                result = execute_leased(
                    self.job,
                    instance,
                    self.config(decision),
                    LAUNCHED_BY,
                    tags={"lakemail/files": str(len(decision.files)), "lakemail/batch_key": decision.run_key},
                    run_id=run_id,
                    on_renew=lambda: _beat(beat),  # a long run keeps the sensors standing aside
                )
                flight.runs.pop(self.name, None)
            self.runs += 1
            watch.finished(result)
            failures = 0 if result.success else failures + 1
            if failures:  # `failure_backoff`: the sensors wait as long before a failed batch's next run
                stop.wait(failure_backoff(failures))


def _lanes(settings: Settings, instance: dg.DagsterInstance, lake: LakeResource) -> dict[str, _Lane]:
    """Each lane: its job, its rule (`orchestration.lanes`), its run config and what wakes it."""
    defs = build_defs(settings)
    landing, state = LandingResource(uri=settings.landing_uri), StateResource(uri=settings.state_store_uri)
    return {
        INGEST: _Lane(
            INGEST,
            defs.resolve_job_def(LANE_JOB[INGEST]),
            lambda said: evaluate_ingest(lake, landing, lane_in_flight(instance, INGEST, said), state),
            lambda decision: ingest_config(lane_manifest(decision.files), settings.max_batch_mb),
            landing_signal(landing),
        ),
        DECIDE: _Lane(
            DECIDE,
            defs.resolve_job_def(LANE_JOB[DECIDE]),
            lambda said: evaluate_decide(
                lake, lane_in_flight(instance, DECIDE, said), datetime.now(UTC), state
            ),
            lambda _: decide_config(),
            store_signal(state),
        ),
    }


def serve_batches(
    settings: Settings,
    instance: dg.DagsterInstance,
    stop: threading.Event,
    *,
    poll_seconds: float = POLL_SECONDS,
    in_flight: InFlight | None = None,
    observer: RunObserver | None = None,
    lanes: tuple[str, ...] = LANES,
) -> int:
    """Run `lanes` until `stop` is set; returns how many runs they started (each told `observer`)."""
    lake = LakeResource(uri=settings.lake_uri)
    beat = heartbeat_path(lake, lanes[0] if len(lanes) == 1 else None)
    flight, watch = in_flight or InFlight(), observer or RunObserver()
    every = _lanes(settings, instance, lake)
    serving = [every[lane] for lane in lanes]
    failed: list[BaseException] = []

    def serve(lane: _Lane) -> None:
        try:
            lane.serve(instance, stop, poll_seconds, flight, watch, beat)
        except BaseException as error:  # one lane's loop failing stops the runner: shown now, raised below
            failed.append(error)
            _say(f"the {lane.name} lane failed, stopping: {type(error).__name__}: {error}")
            traceback.print_exception(error)
            stop.set()

    threads = [  # daemons: runs handed back at a stop must not keep the process alive
        threading.Thread(target=serve, args=(lane,), name=f"lakemail-{lane.name}", daemon=True)
        for lane in serving
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        if beat is not None:
            beat.unlink(missing_ok=True)  # the sensors take over at once
    if failed:
        raise failed[0]
    return sum(lane.runs for lane in serving)


def command(settings: Settings, metrics_port: int | None, lane: str = "both") -> int:
    """`lakemail runner [--metrics-port N] [--lane ingest|decide|both]` on the persistent instance."""
    from orchestration.instance import persistent_instance
    from orchestration.settings import ensure_secret

    ensure_secret(settings.home)
    return main(settings, persistent_instance(settings), metrics_port, LANES if lane == "both" else (lane,))


def main(
    settings: Settings,
    instance: dg.DagsterInstance,
    metrics_port: int | None = None,
    lanes: tuple[str, ...] = LANES,
) -> int:
    """`lakemail runner`: serve until SIGINT / SIGTERM, then finish or hand back the runs in flight;
    Prometheus metrics on 127.0.0.1:`metrics_port`/metrics when given (orchestration.metrics).

    The runs execute in worker threads (one per lane), so the signals reach this thread (Dagster's own
    interrupt handling applies to runs on the main thread only, and would fail the run at once).
    """
    stop, signals, failed = threading.Event(), [], []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    observer = None
    if metrics_port is not None:
        observer = start_metrics(settings, instance, metrics_port)
        _say(f"metrics on http://127.0.0.1:{metrics_port}/metrics")
    said = " and ".join(lanes) + (" lanes" if len(lanes) > 1 else " lane")
    _say(f"taking micro-batches, {said}, every {POLL_SECONDS:g} s (pid {os.getpid()})")
    started, flight, runs = datetime.now(UTC), InFlight(), []

    def serve() -> None:
        try:
            runs.append(
                serve_batches(settings, instance, stop, in_flight=flight, observer=observer, lanes=lanes)
            )
        except BaseException as error:  # a lane's loop failed (serve_batches showed its traceback)
            failed.append(error)

    worker = threading.Thread(target=serve, name="lakemail-runner", daemon=True)  # daemon: see abandon
    worker.start()
    while worker.is_alive() and not stop.wait(0.5):
        pass
    why = signals[0] if signals else "a lane failed"  # no signal: a lane's loop stopped the runner
    if worker.is_alive() and flight.runs:
        for lane, run_id in sorted(dict(flight.runs).items()):
            _say(f"{why}: letting run {run_id} ({lane}) finish (up to {STOP_GRACE_S:g} s)")
    deadline = time.monotonic() + STOP_GRACE_S
    while worker.is_alive() and len(signals) < 2 and time.monotonic() < deadline:
        worker.join(0.1)
    if worker.is_alive():
        abandon(settings, instance, flight.runs, signals[-1] if signals else why, lanes, 0 if signals else 1)
    _say(f"stopped after {sum(runs)} runs since {started:%H:%M:%S} UTC")
    return 1 if failed or not signals else 0

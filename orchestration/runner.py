"""`lakemail runner`: the landing sensor's decision, taken every quarter second by a warm process.

The daemon evaluates sensors at most every 5 s and starts a fresh interpreter per run (about 1.5 s
before the first asset runs on the 2-core reference machine): together most of the landed -> email
latency. The
runner keeps one process with everything imported and runs `microbatch_job` in it against the
persistent instance, so each run still shows in the UI's run history, with its checks and metadata.

It decides exactly as `landing_sensor` does (`evaluate_landing`: files `ingest_log` has not seen,
or a trigger or outbox row due), and while its heartbeat is fresh the sensor stands aside. When the
runner stops, the sensor takes over within one heartbeat timeout; the lake's writer lock and
`ingest_log` keep any overlap harmless. Its runs carry its pid and lease (`orchestration.leases`): if it
dies mid-run, the next runner or sensor evaluation marks that run failed and takes its batch again.
SIGTERM / SIGINT let the run in flight finish (up to `STOP_GRACE_S`), then hand it back: marked failed
with the reason, its files left to the next micro-batch.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_defs
from orchestration.jobs import MICROBATCH_JOB, microbatch_config
from orchestration.leases import execute_leased
from orchestration.metrics.observer import RunObserver, start_metrics
from orchestration.sensors import evaluate_landing, heartbeat_path, run_in_flight
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource

POLL_SECONDS = 0.25
STOP_GRACE_S = 10.0  # under `lakemail up`'s 15 s between SIGTERM and SIGKILL
LAUNCHED_BY = "lakemail runner"


@dataclass
class InFlight:
    """The run the runner executes now (None between runs), for a stop to hand back."""

    run_id: str | None = None


def _beat(path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def _say(message: str) -> None:
    print(f"lakemail runner: {message}", flush=True)


def serve_batches(
    settings: Settings,
    instance: dg.DagsterInstance,
    stop: threading.Event,
    *,
    poll_seconds: float = POLL_SECONDS,
    in_flight: InFlight | None = None,
    observer: RunObserver | None = None,
) -> int:
    """Run micro-batches until `stop` is set; returns how many runs it started (each told `observer`)."""
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    lake, landing = LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri)
    beat, flight, watch = heartbeat_path(lake), in_flight or InFlight(), observer or RunObserver()
    runs = 0

    def released(message: str) -> None:
        _say(message)
        watch.released()

    try:
        while not stop.is_set():
            _beat(beat)
            decision = evaluate_landing(lake, landing, run_in_flight(instance, released))
            if decision.run_key is None:
                stop.wait(poll_seconds)
                continue
            flight.run_id = str(uuid.uuid4())
            result = execute_leased(
                job,
                instance,
                microbatch_config(list(decision.files), settings.max_batch_mb),
                LAUNCHED_BY,
                tags={"lakemail/files": str(len(decision.files)), "lakemail/batch_key": decision.run_key},
                run_id=flight.run_id,
                on_renew=lambda: _beat(beat),  # a long run keeps the sensor standing aside
            )
            flight.run_id = None
            runs += 1
            watch.finished(result)
    finally:
        if beat is not None:
            beat.unlink(missing_ok=True)  # the sensor takes over at once
    return runs


def hand_back(instance: dg.DagsterInstance, run_id: str, why: str) -> bool:
    """Mark the runner's unfinished run failed with `why`: its files (not in `ingest_log`) go to the next."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return False
    message = f"lakemail runner: {why}; its batch is taken again by the next micro-batch"
    instance.report_run_failed(run, message)
    return True


def command(settings: Settings, metrics_port: int | None) -> int:
    """`lakemail runner [--metrics-port N]` on the persistent instance."""
    from orchestration.instance import persistent_instance
    from orchestration.settings import ensure_secret

    ensure_secret(settings.home)
    return main(settings, persistent_instance(settings), metrics_port)


def main(settings: Settings, instance: dg.DagsterInstance, metrics_port: int | None = None) -> int:
    """`lakemail runner`: serve until SIGINT / SIGTERM, then finish or hand back the run in flight;
    Prometheus metrics on 127.0.0.1:`metrics_port`/metrics when given (orchestration.metrics).

    The runs execute in a worker thread, so the signals reach this thread (Dagster's own interrupt
    handling applies to runs on the main thread only, and would fail the run at once).
    """
    stop, signals = threading.Event(), []

    def on_signal(signum: int, _frame: object) -> None:
        signals.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    observer = None
    if metrics_port is not None:
        observer = start_metrics(settings, instance, metrics_port)
        _say(f"metrics on http://127.0.0.1:{metrics_port}/metrics")
    _say(f"taking micro-batches every {POLL_SECONDS:g} s (pid {os.getpid()})")
    started, flight, runs = datetime.now(UTC), InFlight(), []
    worker = threading.Thread(
        target=lambda: runs.append(
            serve_batches(settings, instance, stop, in_flight=flight, observer=observer)
        ),
        name="lakemail-runner",
        daemon=True,  # a run handed back must not keep the process alive
    )
    worker.start()
    while worker.is_alive() and not stop.wait(0.5):
        pass
    if worker.is_alive() and flight.run_id is not None:
        _say(f"{signals[0]}: letting run {flight.run_id} finish (up to {STOP_GRACE_S:g} s)")
    deadline = time.monotonic() + STOP_GRACE_S
    while worker.is_alive() and len(signals) < 2 and time.monotonic() < deadline:
        worker.join(0.1)
    if worker.is_alive():
        _abandon(settings, instance, flight, signals[-1])
    _say(f"stopped after {sum(runs)} runs since {started:%H:%M:%S} UTC")
    return 0 if signals else 1  # without a signal, the loop itself failed (its traceback is above)


def _abandon(settings: Settings, instance: dg.DagsterInstance, flight: InFlight, signal_name: str) -> None:
    """The run in flight did not finish in time (or a second signal came): hand it back and exit now."""
    run_id = flight.run_id
    why = f"stopped ({signal_name}) before this run finished"
    if run_id is not None and hand_back(instance, run_id, why):
        _say(f"handed back run {run_id}: marked failed; the next micro-batch takes its files")
    beat = heartbeat_path(LakeResource(uri=settings.lake_uri))
    if beat is not None:
        beat.unlink(missing_ok=True)
    _say("stopped with a run handed back")
    os._exit(0)  # the run's thread stops with the process, as after a SIGKILL, and the lake is made for that

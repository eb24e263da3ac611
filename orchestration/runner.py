"""`lakemail runner`: the landing sensor's decision, taken every quarter second by a warm process.

The daemon evaluates sensors at most every 5 s and starts a fresh interpreter per run (about 1.5 s
before the first asset runs on the 2-core reference machine): together most of the landed -> email
latency. The
runner keeps one process with everything imported and runs `microbatch_job` in it against the
persistent instance, so each run still shows in the UI's run history, with its checks and metadata.

It decides exactly as `landing_sensor` does (`evaluate_landing`: files `ingest_log` has not seen,
or a trigger or outbox row due), and while its heartbeat is fresh the sensor stands aside. When the
runner stops, the sensor takes over within one heartbeat timeout; the lake's writer lock and
`ingest_log` keep any overlap harmless.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_defs
from orchestration.jobs import MICROBATCH_JOB, microbatch_config
from orchestration.sensors import evaluate_landing, heartbeat_path, run_in_flight
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource

POLL_SECONDS = 0.25


def _beat(path: Path | None) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def serve_batches(
    settings: Settings,
    instance: dg.DagsterInstance,
    stop: threading.Event,
    *,
    poll_seconds: float = POLL_SECONDS,
) -> int:
    """Run micro-batches until `stop` is set; returns how many runs it started."""
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    lake, landing = LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri)
    beat = heartbeat_path(lake)
    runs = 0
    try:
        while not stop.is_set():
            _beat(beat)
            decision = evaluate_landing(lake, landing, run_in_flight(instance))
            if decision.run_key is None:
                stop.wait(poll_seconds)
                continue
            job.execute_in_process(
                instance=instance,
                run_config=microbatch_config(list(decision.files), settings.max_batch_mb),
                tags={
                    "lakemail/launched_by": "lakemail runner",
                    "lakemail/files": str(len(decision.files)),
                    "lakemail/batch_key": decision.run_key,
                },
                raise_on_error=False,
            )
            runs += 1
    finally:
        if beat is not None:
            beat.unlink(missing_ok=True)  # the sensor takes over at once
    return runs


def main(settings: Settings, instance: dg.DagsterInstance) -> int:
    """The `lakemail runner` command: serve until SIGINT / SIGTERM."""
    import signal

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"lakemail runner: taking micro-batches every {POLL_SECONDS:g} s (pid {os.getpid()})", flush=True)
    started = datetime.now(UTC)
    runs = serve_batches(settings, instance, stop)
    print(f"lakemail runner: stopped after {runs} runs since {started:%H:%M:%S} UTC", flush=True)
    return 0

"""A steady run on a big lake: micro-batches back to back for minutes, `profiles_job` refreshing beside them.

Issue #15: at 5M users the slowest run of a 10-minute steady run is at most 3x the median run (no
stalls), peak RSS stays under 1.5 GB, and the `profiles` Delta table is at most 5 minutes behind while
`profiles_job` rewrites it off the hot path every LAKEMAIL_PROFILES_REFRESH (default 2 minutes).

Batches are 10k-event `lakemail process --now` runs, one after the other (as a backlogged sensor would
take them). A thread runs `profiles_job` in its own child every `refresh` seconds (the next one when the
last has finished, if it took longer), as the schedule would. After every batch the benchmark reads
which batch `profiles` reflects (its PROFILES_APP transaction): its lag is how long ago the oldest
committed batch it does not reflect yet committed (0 when it reflects the last one).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import env_for, lake_of, run_child
from benchmarks.microbatch import BatchFeeder, BatchRun, process
from stores.state.refresh import PROFILES_APP

REFRESH_SECONDS = 120.0  # LAKEMAIL_PROFILES_REFRESH's default


@dataclass(frozen=True)
class Refresh:
    """One `profiles_job` child: when it started (s into the steady run), what it cost, what it reached."""

    started: float
    seconds: float
    peak_rss_mb: float
    ok: bool
    reflects: int  # the batch `profiles` reflected when it ended


@dataclass
class LoadedRun:
    """The runs, the refreshes and the lag samples (seconds) of one steady run."""

    seconds: float
    runs: list[BatchRun] = field(default_factory=list)
    refreshes: list[Refresh] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)


def lag(reflected: int, committed: Mapping[int, float], now: float) -> float:
    """Seconds since the oldest batch in `committed` (batch -> when it committed) newer than `reflected`."""
    pending = [at for batch, at in committed.items() if batch > reflected]
    return max(0.0, now - min(pending)) if pending else 0.0


def reflected_batch(home: Path) -> int:
    return lake_of(home).app_version("profiles", PROFILES_APP)


def refresh_once(home: Path, started: float) -> Refresh:
    """`profiles_job` in a child, as its schedule runs it."""
    argv = [sys.executable, "-m", "benchmarks.maintain", "profiles_job"]
    began = time.perf_counter()
    result = run_child(argv, env_for(home), home / "profiles_job.log")
    return Refresh(began - started, result.seconds, result.peak_rss_mb, result.returncode == 0, 0)


def steady_load(
    home: Path,
    feeder: BatchFeeder,
    env: dict[str, str],
    *,
    seconds: float,
    events: int,
    refresh: float = REFRESH_SECONDS,
    say: Callable[[str], None],
) -> LoadedRun:
    """Batches of `events` back to back for `seconds`, `profiles_job` every `refresh` s beside them."""
    result = LoadedRun(seconds)
    stop = threading.Event()
    started = time.perf_counter()
    committed: dict[int, float] = {}

    def refresher() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            done = refresh_once(home, started)
            result.refreshes.append(
                Refresh(done.started, done.seconds, done.peak_rss_mb, done.ok, reflected_batch(home))
            )
            say(f"loaded: profiles_job {done.seconds:.1f} s, peak RSS {done.peak_rss_mb:,.0f} MB")
            stop.wait(max(0.0, began + refresh - time.perf_counter()))

    thread = threading.Thread(target=refresher, name="profiles_job", daemon=True)
    thread.start()
    try:
        while time.perf_counter() - started < seconds:
            run = process(home, feeder.land(events), env)
            now = time.perf_counter()
            committed[lake_of(home).committed_batch()] = now
            result.runs.append(run)
            result.lags.append(lag(reflected_batch(home), committed, now))
            behind = result.lags[-1]
            say(f"loaded {now - started:.0f} s: run {run.run_seconds:.2f} s, profiles behind {behind:.0f} s")
    finally:
        stop.set()
        thread.join()  # the refresh in flight finishes: the next lake must not share a child with it
    return result

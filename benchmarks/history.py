"""Cost per run after 10,000 prior micro-batches (small files, Dagster history), with and without maintenance.

Three measurements of the same kind of run (`lakemail process --now` of one 1,000-event simulated file,
the size of a steady-state run): on a fresh lake right after its first run; on a lake that lived
through `History.batches` small micro-batches (`history_lake`) with as many past runs in its Dagster
instance (`dagster_history`); and on that lake again after one pass of `maintenance_job`. The aged
lake is written straight into Delta: its state store is built by `lakemail state rebuild` before its
first run (timed), or that run would rebuild it.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import env_for, run_child, temp_home
from benchmarks.dagster_history import clone_runs
from benchmarks.history_lake import History, HistoryLake, build_history_lake
from benchmarks.microbatch import BatchFeeder, BatchRun, process, sandbox
from benchmarks.parallel import run_jobs
from benchmarks.past import anchored
from benchmarks.prebuilt import write_shoppers
from benchmarks.store import RebuildRun, rebuild_store

SEED = 11


@dataclass(frozen=True)
class Footprint:
    """Files and bytes under a folder."""

    files: int
    mb: float


def footprint(folder: Path) -> Footprint:
    sizes = [p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()]
    return Footprint(len(sizes), sum(sizes) / 1e6)


@dataclass
class HistoryRuns:
    """The runs of each stage, what building and maintenance took, and what was on disk."""

    first: list[BatchRun] = field(default_factory=list)
    before: list[BatchRun] = field(default_factory=list)
    after: list[BatchRun] = field(default_factory=list)
    maintenance_seconds: float = 0.0
    build_seconds: float = 0.0
    lake: HistoryLake | None = None
    disk: dict[str, Footprint] = field(default_factory=dict)
    rebuild: RebuildRun | None = None  # the aged lake's state store, built before its first run


def measure_history(history: History, repeat: int, say: Callable[[str], None]) -> HistoryRuns:
    # The lake started at midnight (UTC, simulated): all its batches are in today's `events` partition.
    now = anchored(datetime.now(UTC), history.every * history.batches)
    result = HistoryRuns()
    result.first = _fresh_lake_runs(history, now, repeat, say)
    with temp_home("history") as tmp:
        home = Path(tmp)
        past = history.past(SEED, now)
        started = time.perf_counter()
        run_jobs([functools.partial(write_shoppers, home, SEED, history.users)], isolate=True)
        result.lake = build_history_lake(home, history, past, say)
        result.rebuild = run = rebuild_store(home)
        say(f"history: state rebuild {run.seconds:.1f} s, peak RSS {run.peak_rss_mb:,.0f} MB")
        with sandbox(home) as env:
            feeder = BatchFeeder(home / "landing", users=history.users, seed=SEED, start=past.now)
            template = process(home, feeder.land(history.events_per_batch), env)
            say(f"history: cloning run {template.run_id[:8]} {history.batches:,} times into the instance")
            clone_runs(
                home / "dagster_home", template.run_id, history.batches, every=history.every.total_seconds()
            )
            result.build_seconds = time.perf_counter() - started
            result.disk = {
                name: footprint(home / name.replace(" ", "_")) for name in ("lake", "dagster_home", "state")
            }
            result.before = _runs(home, feeder, history, repeat, env, "before maintenance", say)
            result.maintenance_seconds = _maintain(home)
            say(f"history: maintenance pass {result.maintenance_seconds:.1f} s")
            result.disk["lake after maintenance"] = footprint(home / "lake")
            result.after = _runs(home, feeder, history, repeat, env, "after maintenance", say)
    return result


def _fresh_lake_runs(
    history: History, now: datetime, repeat: int, say: Callable[[str], None]
) -> list[BatchRun]:
    with temp_home("history-first") as tmp:
        home = Path(tmp)
        with sandbox(home) as env:
            feeder = BatchFeeder(home / "landing", users=history.users, seed=SEED, start=now)
            process(home, feeder.land(history.events_per_batch), env)  # creates the tables and the instance
            return _runs(home, feeder, history, repeat, env, "fresh lake", say)


def _runs(
    home: Path,
    feeder: BatchFeeder,
    history: History,
    repeat: int,
    env: dict[str, str],
    stage: str,
    say: Callable[[str], None],
) -> list[BatchRun]:
    runs = []
    for i in range(repeat):
        runs.append(process(home, feeder.land(history.events_per_batch), env))
        run = runs[-1]
        say(f"history {stage} {i + 1}/{repeat}: run {run.run_seconds:.2f} s, wall {run.wall_seconds:.2f} s")
    return runs


def _maintain(home: Path) -> float:
    result = run_child([sys.executable, "-m", "benchmarks.maintain"], env_for(home), home / "maintain.log")
    if result.returncode != 0:
        raise RuntimeError(f"maintenance failed:\n{result.output[-3000:]}")
    return result.seconds

"""Scaling: the cost of one 10k-event micro-batch with 100k / 1M / 5M users and 10M / 50M events before it.

Per users size a lake is pre-built (`prebuilt.build_lake`) and its state store built from it by
`lakemail state rebuild` (timed: the rebuild figure), so that no measured run rebuilds it. The
simulator, with the same seed and size, lands real 10k-event batches that `lakemail process --now`
takes through the whole job, as the sensor's run would; Dagster's run record and step events say where
the time went. The events axis appends more past events to the largest lake (and rebuilds its store).
On the largest lake last: profile lookups from the store, then a steady run of batches back to back
with `profiles_job` refreshing `profiles` beside them (`loaded`).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import temp_home
from benchmarks.loaded import LoadedRun, steady_load
from benchmarks.microbatch import BatchFeeder, BatchRun, process, sandbox
from benchmarks.parallel import people_path, run_jobs
from benchmarks.past import Past, anchored
from benchmarks.prebuilt import append_events, build_lake, top_up_updates, write_shoppers
from benchmarks.store import Lookups, RebuildRun, lookup_profiles, rebuild_store
from transforms.schema import FOLD_EVERY_ROWS

SEED = 7  # the simulator's seed: the pre-built past and the measured batches share their shoppers
BATCH_EVENTS = 10_000
WARMUP_EVENTS = 1_000
WAITING = FOLD_EVERY_ROWS // 2  # partials waiting for the fold: on average, half the threshold
NOON = timedelta(hours=12)  # the batches run at 12:00 UTC (simulated): today's partition holds half a day


@dataclass(frozen=True)
class Point:
    """One lake size: shoppers in `profiles` and rows in `events` before the measured batches."""

    users: int
    events: int

    @property
    def label(self) -> str:
        return f"{short(self.users)} users, {short(self.events)} events"


# The sizes (#15: 5M users against 100k, 50M events). The 1M-users lake of earlier runs is left
# out: with a state store to build per lake and the 10-minute steady run, `make bench` stays near an hour.
FULL = (
    Point(100_000, 10_000_000),
    Point(5_000_000, 10_000_000),
    Point(5_000_000, 50_000_000),
)
QUICK = (Point(10_000, 1_000_000), Point(100_000, 1_000_000), Point(100_000, 2_000_000))
LOOKUPS = 20_000  # profile lookups from the store of the largest lake


@dataclass(frozen=True)
class Load:
    """The steady run on the largest lake: how long, and how often `profiles_job` refreshes."""

    seconds: float
    refresh: float = 120.0


def short(n: int) -> str:
    """100000 -> '100k', 5000000 -> '5M'."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return f"{n:,}"


@dataclass
class Scaling:
    """Measured runs per point, the store's rebuilds, lookups and steady run, what building took."""

    runs: dict[Point, list[BatchRun]] = field(default_factory=dict)
    rebuilds: dict[Point, RebuildRun] = field(default_factory=dict)
    build_seconds: dict[Point, float] = field(default_factory=dict)
    lookups: dict[Point, Lookups] = field(default_factory=dict)
    loaded: dict[Point, LoadedRun] = field(default_factory=dict)


def by_users(points: Sequence[Point]) -> list[list[Point]]:
    """Points grouped by users (one lake each), events ascending within a group."""
    ordered = sorted(points, key=lambda p: (p.users, p.events))
    return [list(group) for _, group in itertools.groupby(ordered, key=lambda p: p.users)]


def measure_scaling(
    points: Sequence[Point], repeat: int, say: Callable[[str], None], *, load: Load | None = None
) -> Scaling:
    """Build each lake and its store, measure `repeat` batches per point; on the largest lake, the
    lookups and (when `load`) the steady run."""
    result = Scaling()
    groups = by_users(points)
    for group in groups:
        with temp_home("scaling") as tmp:
            _measure_lake(Path(tmp), group, repeat, say, result, load=load if group is groups[-1] else None)
    return result


def _rebuild(home: Path, point: Point, result: Scaling, say: Callable[[str], None]) -> None:
    result.rebuilds[point] = run = rebuild_store(home)
    say(
        f"scaling {point.label}: state rebuild {run.seconds:.1f} s ({run.wall_seconds:.1f} s wall), "
        f"peak RSS {run.peak_rss_mb:,.0f} MB, {run.total_keys:,} keys, {run.size_mb:,.0f} MB"
    )


def _measure_lake(
    home: Path,
    group: list[Point],
    repeat: int,
    say: Callable[[str], None],
    result: Scaling,
    *,
    load: Load | None,
) -> None:
    """One lake (one users size): build it and its store, then its points in order of events."""
    first = group[0]
    past = Past(first.users, first.events, SEED, anchored(datetime.now(UTC), NOON))
    say(f"scaling: building {first.label}")
    started = time.perf_counter()
    run_jobs([functools.partial(write_shoppers, home, SEED, first.users)], isolate=True)
    build_lake(home, past, say, waiting=WAITING)
    result.build_seconds[first] = time.perf_counter() - started
    with sandbox(home) as env:
        feeder = BatchFeeder(home / "landing", users=first.users, seed=SEED, start=past.now)
        have = past.events  # the lake's batches stay those of the first build: appends add older rows
        for point in group:
            if point.events > have:
                say(f"scaling: appending {short(point.events - have)} past events")
                started = time.perf_counter()
                append_events(home, past, point.events - have, salt=point.events)
                result.build_seconds[point], have = time.perf_counter() - started, point.events
            if load is not None and point is group[-1]:  # the steady run's first refresh folds them
                run_jobs([functools.partial(top_up_updates, home, past, FOLD_EVERY_ROWS)], isolate=True)
            _rebuild(home, point, result, say)  # the store as the lake now is: no measured run rebuilds
            if point is first:
                process(home, feeder.land(WARMUP_EVENTS), env)  # the instance's first run: not measured
            result.runs[point] = [_batch(home, feeder, env, point, i, repeat, say) for i in range(repeat)]
        last = group[-1]
        lookup = functools.partial(lookup_profiles, str(home / "state"), people_path(home), LOOKUPS)
        result.lookups[last] = run_jobs([lookup], isolate=True)[0]
        if load is not None:
            say(f"scaling {last.label}: steady run, {load.seconds:.0f} s")
            result.loaded[last] = steady_load(
                home, feeder, env, seconds=load.seconds, events=BATCH_EVENTS, refresh=load.refresh, say=say
            )


def _batch(
    home: Path,
    feeder: BatchFeeder,
    env: dict[str, str],
    point: Point,
    i: int,
    repeat: int,
    say: Callable[[str], None],
) -> BatchRun:
    run = process(home, feeder.land(BATCH_EVENTS), env)
    say(f"scaling {point.label} {i + 1}/{repeat}: {_brief(run)}")
    return run


def _brief(run: BatchRun) -> str:
    slowest = sorted(run.steps.items(), key=lambda kv: -kv[1])[:3]
    steps = ", ".join(f"{k} {v:.2f}" for k, v in slowest)
    return f"run {run.run_seconds:.2f} s, wall {run.wall_seconds:.2f} s ({steps})"

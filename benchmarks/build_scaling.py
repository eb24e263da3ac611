"""The scaling figure: batch cost by lake size, the state store's rebuild and lookups, the steady run."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from benchmarks.breakdown import load_note, paired_ratios, step_table
from benchmarks.figures import Figure
from benchmarks.loaded import LoadedRun
from benchmarks.scaling import WAITING, Point, Scaling, by_users, short
from benchmarks.stats import Target, percentile

SCALING_USERS = Target(
    "largest-users batch / smallest-users batch (run seconds)", 1.3, at_least=False, unit="x"
)
LOOKUP_P99 = Target("profile lookup from the store p99, largest lake", 1.0, at_least=False, unit="ms")
STEADY_SPREAD = Target("steady run: slowest run / median run", 3.0, at_least=False, unit="x")
STEADY_RSS = Target("steady run: peak RSS of a micro-batch (largest)", 1536, at_least=False, unit="MB")
PROFILES_LAG = Target("steady run: `profiles` behind the last batch (largest)", 300, at_least=False, unit="s")
ROUNDS = 3  # lookups are cut into rounds: min / median / max over them


def scaling_figure(result: Scaling, points: Sequence[Point], commands: list[str]) -> Figure:
    """Per lake size: run and wall seconds, peak RSS, the store's rebuild; the targets judged."""
    figure = Figure(
        "scaling",
        "Scaling: a 10k-event micro-batch on a lake with many users and past events",
        commands=commands,
    )
    for point in points:
        runs = result.runs[point]
        figure.add(f"{point.label}: run (Dagster run record)", "s", [r.run_seconds for r in runs])
        figure.add(f"{point.label}: `lakemail process` wall", "s", [r.wall_seconds for r in runs])
        figure.add(f"{point.label}: peak RSS", "MB", [r.peak_rss_mb for r in runs])
    users_axis = sorted((p for p in points if p.events == points[0].events), key=lambda p: p.users)
    small, large = users_axis[0], users_axis[-1]
    if large != small:
        ratios = paired_ratios(
            [r.run_seconds for r in result.runs[large]], [r.run_seconds for r in result.runs[small]]
        )
        metric = f"run ratio {short(large.users)} / {short(small.users)} users ({short(small.events)} events)"
        figure.check(SCALING_USERS, figure.add(metric, "x", ratios))
    events_axis = sorted((p for p in points if p.users == large.users), key=lambda p: p.events)
    if len(events_axis) > 1:
        low, high = events_axis[0], events_axis[-1]
        ratios = paired_ratios(
            [r.run_seconds for r in result.runs[high]], [r.run_seconds for r in result.runs[low]]
        )
        figure.add(
            f"run ratio {short(high.events)} / {short(low.events)} events ({short(large.users)} users)",
            "x",
            ratios,
        )
    _store_rows(figure, result, points)
    for point, loaded in result.loaded.items():
        _loaded_rows(figure, point, loaded, result.runs.get(point, []))
    columns = {p.label.replace(" users, ", " / "): result.runs[p] for p in points}
    columns |= {f"{p.label.replace(' users, ', ' / ')} steady": run.runs for p, run in result.loaded.items()}
    figure.tables.append(step_table("Where the time goes (median seconds per run):", columns))
    figure.notes += scaling_notes(result, points)
    return figure


def rounds(latencies: Sequence[float], q: float, parts: int = ROUNDS) -> list[float]:
    """The q-th percentile of each of `parts` consecutive rounds of `latencies` (all of them if fewer)."""
    size = len(latencies) // parts
    if size == 0:
        return [percentile(latencies, q)]
    return [percentile(latencies[i * size : (i + 1) * size], q) for i in range(parts)]


def _store_rows(figure: Figure, result: Scaling, points: Sequence[Point]) -> None:
    """`lakemail state rebuild` per lake (as it was measured), then the lookups of each lake's store."""
    for point in points:
        run = result.rebuilds.get(point)
        if run is None:
            continue
        name = f"{point.label}: `lakemail state rebuild`"
        figure.add(f"{name} (as it reports)", "s", [run.seconds])
        figure.add(f"{name} peak RSS", "MB", [run.peak_rss_mb])
        figure.add(f"{name}: keys", "keys", [float(run.total_keys)])
        figure.add(f"{name}: store size", "MB", [run.size_mb])
    largest = max(result.lookups, key=lambda p: (p.users, p.events), default=None)
    for point, lookups in result.lookups.items():
        figure.add(f"{point.label}: profile lookup p50", "ms", rounds(lookups.latencies_ms, 50))
        p99 = figure.add(f"{point.label}: profile lookup p99", "ms", rounds(lookups.latencies_ms, 99))
        if point == largest:
            figure.check(LOOKUP_P99, p99)


def _loaded_rows(figure: Figure, point: Point, loaded: LoadedRun, unloaded: Sequence[object]) -> None:
    """The steady run: its runs' spread and memory, `profiles_job` beside it, the lag of `profiles`."""
    name = f"{point.label}, steady {loaded.seconds / 60:g} min"
    seconds = [r.run_seconds for r in loaded.runs]
    if not seconds:
        return
    figure.add(f"{name}: run (Dagster run record), over its {len(seconds)} runs", "s", seconds)
    spread = max(seconds) / statistics.median(seconds)
    figure.check(STEADY_SPREAD, figure.add(f"{name}: slowest run / median run", "x", [spread]))
    peaks = [r.peak_rss_mb for r in loaded.runs]
    figure.add(f"{name}: peak RSS of the micro-batches", "MB", peaks)
    figure.check(STEADY_RSS, figure.add(f"{name}: peak RSS, largest", "MB", [max(peaks)]))
    if loaded.lags:
        figure.add(f"{name}: `profiles` behind the last batch, after each run", "s", loaded.lags)
        figure.check(PROFILES_LAG, figure.add(f"{name}: `profiles` behind, largest", "s", [max(loaded.lags)]))
    done = [r for r in loaded.refreshes if r.ok]
    if done:
        figure.add(f"{name}: `profiles_job` run", "s", [r.seconds for r in done])
        figure.add(f"{name}: `profiles_job` peak RSS", "MB", [r.peak_rss_mb for r in done])
    if len(done) < len(loaded.refreshes):
        failed = len(loaded.refreshes) - len(done)
        figure.notes.append(f"{failed} `profiles_job` run(s) failed in the steady run (see its log).")


def scaling_notes(result: Scaling, points: Sequence[Point]) -> list[str]:
    firsts = {group[0] for group in by_users(points)}
    built = "; ".join(
        f"{p.label} {result.build_seconds[p]:.0f} s"
        if p in firsts
        else f"appending up to {short(p.events)} events {result.build_seconds[p]:.0f} s"
        for p in points
        if p in result.build_seconds
    )
    notes = [
        "Each lake is pre-built, its state store built from it by `lakemail state rebuild` (a child; "
        "its time and peak RSS are the rebuild rows; after events are appended the store is rebuilt), "
        "then real batches run through the whole `microbatch_job` as `lakemail process --now` runs it "
        "(one child per batch, the email sandbox running as `make run` starts it). Without the rebuild "
        "the first run would find no store and rebuild it within its run. The batches are the "
        "simulator's (`--users N --seed 7`, 10 files of 1,000 lines), so they touch shoppers the lake "
        "knows. A first 1,000-event run per lake (creating the Dagster instance) is not measured. "
        "Simulated time: the past ends and the batches run at 12:00 UTC, so the day's `events` "
        "partition holds half a day.",
        "Pre-built, not replayed: `events` are vectorised simulator-mix events of the same shoppers over "
        "30 days (a file per day, statistics as delta-rs writes them, batch ids growing with time); "
        "`profile_state` rows are generated per shopper (list lengths following events per user; see "
        "benchmarks/states.py) and `profiles` derived from them with `transforms.profiles.derive`; one "
        "`identities` edge per shopper, the CRM's 30 % in `customers`, 1 % unsubscribed; a decision log "
        "of 0.1 rows per past event, none of them `send` (the outbox, `sends`, has no past rows, so it "
        "starts empty). Tables are written in large files, as after maintenance.",
        f"{WAITING:,} partials wait in `profile_updates` (half the fold threshold, the average). Building "
        f"the lakes took: {built}.",
        "Profile lookup: one known shopper drawn at random (uniform over all of them), its `profiles` and "
        "`customers` keys read in one read transaction of the store (`StateStore.reader`, in a worker "
        "process, no HTTP: benchmarks/profile_api.py measures the API), one lookup at a time; p50 / p99 "
        f"of each of {ROUNDS} rounds.",
    ]
    for point, loaded in result.loaded.items():
        notes.append(loaded_note(point, loaded))
    runs = [r for point_runs in result.runs.values() for r in point_runs]
    if runs:
        notes.append(load_note(runs))
    parents = [r.parent_rss_mb for r in runs]
    if parents:
        notes.append(
            "Peak RSS is the child's as `wait4` reports it, which on Linux includes the memory it inherited "
            f"at fork: the benchmark process held {min(parents):,.0f}-{max(parents):,.0f} MB then."
        )
    return notes


def loaded_note(point: Point, loaded: LoadedRun) -> str:
    refresh = ", ".join(f"{r.started:.0f} s ({r.seconds:.0f} s)" for r in loaded.refreshes)
    return (
        f"Steady run at {point.label}: 10k-event batches back to back for {loaded.seconds:g} s "
        f"({len(loaded.runs)} runs; a backlogged sensor's pace, faster than 1,000 events/s), while "
        "`profiles_job` (in its own child, `python -m benchmarks.maintain profiles_job`, as its schedule "
        "runs it) refreshes `profiles` every LAKEMAIL_PROFILES_REFRESH (2 minutes; the next one when "
        "the last has ended, if it took longer). `profile_updates` was filled to the fold threshold "
        "before the store was built, so the first refresh also folds (as one does every 250k partials). "
        "After each run the benchmark reads which batch `profiles` reflects (its "
        "`lakemail-profiles-batch` transaction): it is behind by the time since the oldest batch it does "
        "not reflect committed (sampled after each run, so within one run of its peak; the `as_of` of its "
        "rows is when the refresh ran, not which batch it reflects). `profiles_job` started at (seconds "
        f"into the run, its duration): {refresh}."
    )

"""Turn measured runs into figures: rows over repeats, ratios within this run, target verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.breakdown import load_note, paired_ratios, step_table
from benchmarks.build_scaling import scaling_figure as scaling_figure  # re-exported: run.py, tests
from benchmarks.drain import DrainRun
from benchmarks.figures import Figure, Table
from benchmarks.floor import FloorRun
from benchmarks.floor import floor_figure as floor_figure  # re-exported: run.py and tests call build's
from benchmarks.history import HistoryRuns
from benchmarks.history_lake import History
from benchmarks.stats import Target, percentile
from benchmarks.steady import SteadyRun

DRAIN_RATE = Target("events/s (wall less delivery)", 150_000, at_least=True, unit="events/s")
DRAIN_RATIO = Target("ratio to the floor's rows/s", 0.4, at_least=True, unit="x")
HONEST_RATIO = Target("ratio to the honest floor", 0.6, at_least=True, unit="x")
DRAIN_RSS = Target("peak RSS", 2048, at_least=False, unit="MB")
# Issue #15 (the state store, two lanes): the product's goal is to beat Spark's 0.43 s p50 outright.
STEADY_P50 = Target("landed -> committed p50", 0.6, at_least=False, unit="s")
STEADY_P99 = Target("landed -> committed p99", 1.5, at_least=False, unit="s")
BACKLOG_BOUND = Target("max backlog while feeding", 10, at_least=False, unit="files")
EMAIL_P50 = Target("landed -> email accepted p50", 1.5, at_least=False, unit="s")
EMAIL_P99 = Target("landed -> email accepted p99", 3.0, at_least=False, unit="s")


def drain_figure(runs: Sequence[DrainRun], floors: Sequence[FloorRun], commands: list[str]) -> Figure:
    figure = Figure(
        "backlog_drain", "Backlog drain: `lakemail process` on a landed backlog", commands=commands
    )
    figure.add("events/s (lines / wall seconds of the child)", "events/s", [r.events_per_s for r in runs])
    undelivered = [r.undelivered_events_per_s for r in runs]
    rate = figure.add("events/s (lines / wall seconds less the `sends` step)", "events/s", undelivered)
    figure.add("delivery: the `sends` step", "s", [r.delivery_seconds for r in runs])
    figure.add("events/s (lines / run seconds as reported)", "events/s", [r.job_events_per_s for r in runs])
    figure.add("wall seconds (child start to exit)", "s", [r.wall_seconds for r in runs])
    figure.add("run seconds (as reported)", "s", [r.job_seconds for r in runs])
    rss = figure.add("peak RSS of the child", "MB", [r.peak_rss_mb for r in runs])
    figure.check(DRAIN_RATE, rate)
    if floors:
        ratios = [d.undelivered_events_per_s / f.rows_per_s for d, f in zip(runs, floors, strict=False)]
        figure.check(DRAIN_RATIO, figure.add("ratio to the floor's rows/s (paired by repeat)", "x", ratios))
        honest = [
            d.undelivered_events_per_s / f.group_rows_per_s
            for d, f in zip(runs, floors, strict=False)
            if f.groups
        ]
        if honest:
            ratio = figure.add("ratio to the honest floor (one call per group)", "x", honest)
            figure.check(HONEST_RATIO, ratio)
    figure.check(DRAIN_RSS, rss)
    figure.notes.append(
        f"{runs[-1].lines:,} landed lines, {runs[-1].accepted:,} accepted, in one run of the whole "
        "`microbatch_job`: ingest (events, quarantine, identities, ingest_log and their in-run checks), "
        "`profiles`, `triggers` and whatever else the job holds (see `scaling` for a step breakdown). "
        "The target and the floor ratios are judged on the wall seconds less the `sends` step "
        "(delivery to the sandbox provider, which issue #17 measures apart)."
    )
    return figure


def steady_figure(
    runs: Sequence[SteadyRun],
    seconds: float,
    commands: list[str],
    spark: Sequence[Sequence[float]] = (),
) -> Figure:
    """lakemail's latencies over the repeats, judged; Spark's (`spark`: its repeats' latencies) beside."""
    figure = Figure(
        "steady_state_ingest", "Steady-state ingest: `lakemail up` fed at 1,000 events/s", commands=commands
    )
    p50 = figure.add("landed -> committed p50", "s", [percentile(r.latencies, 50) for r in runs])
    figure.add("landed -> committed p95", "s", [percentile(r.latencies, 95) for r in runs])
    p99 = figure.add("landed -> committed p99", "s", [percentile(r.latencies, 99) for r in runs])
    figure.add("landed -> committed max", "s", [max(r.latencies) for r in runs])
    figure.add("files measured per repeat", "files", [float(r.files) for r in runs])
    peak = figure.add("max backlog while feeding", "files", [float(max(r.backlog, default=0)) for r in runs])
    emailed = [r for r in runs if r.email_latencies]
    if emailed:
        e50 = figure.add(
            "landed -> email accepted p50", "s", [percentile(r.email_latencies, 50) for r in emailed]
        )
        figure.add("landed -> email accepted p95", "s", [percentile(r.email_latencies, 95) for r in emailed])
        e99 = figure.add(
            "landed -> email accepted p99", "s", [percentile(r.email_latencies, 99) for r in emailed]
        )
        figure.add("landed -> email accepted max", "s", [max(r.email_latencies) for r in emailed])
        figure.add(
            "immediate emails measured per repeat", "emails", [float(len(r.email_latencies)) for r in emailed]
        )
    timed = [r for r in runs if r.waits]
    if timed:
        figure.add("landed -> its run started p50 (wait)", "s", [percentile(r.waits, 50) for r in timed])
        figure.add(
            "its run started -> committed p50 (in run)", "s", [percentile(r.in_run, 50) for r in timed]
        )
        figure.add("micro-batch runs per repeat", "runs", [float(r.runs) for r in timed])
        steps = sorted({step for r in timed for step in r.steps})
        figure.tables.append(
            Table(
                "Where the time goes: median seconds per step of the micro-batch runs, by repeat",
                ["step", *(f"repeat {i}" for i in range(1, len(timed) + 1))],
                [[f"`{step}`", *(f"{r.steps.get(step, 0.0):.3f}" for r in timed)] for step in steps],
            )
        )
    for q in (50, 99) if spark else ():
        figure.add(
            f"Spark Structured Streaming, same feed: landed -> committed p{q}",
            "s",
            [percentile(latencies, q) for latencies in spark],
        )
    figure.check(STEADY_P50, p50)
    figure.check(STEADY_P99, p99)
    figure.check(BACKLOG_BOUND, peak)
    if emailed:
        figure.check(EMAIL_P50, e50)
        figure.check(EMAIL_P99, e99)
    figure.notes.append(
        f"{seconds:g} s of realtime simulation per repeat (one file a second). Latency is per landed file, "
        "`committed_at - landed_at` from `ingest_log`, where `landed_at` is when the file appeared in the "
        "landing zone (its ctime). "
        "The backlog is the count of landed files with no `ingest_log` row, sampled every 5 s; "
        "the bound of 10 files is 10 s of input. Landed -> email accepted is per `welcome` email (the "
        "trigger with no delay), `sent_at - landed_at` from `sends`: the sandbox's 202 for the email of "
        "an identify in that file. Micro-batches are taken by `lakemail runner` (started by `lakemail up`); "
        "the wait is landed -> start of the run that committed the file, from the instance's run stats."
    )
    for i, run in enumerate(runs, 1):
        figure.notes.append(f"Backlog samples, repeat {i} (files): {' '.join(str(n) for n in run.backlog)}")
    return figure


HISTORY_MAINTAINED = Target(
    "after the past batches, maintained / fresh lake (run seconds)", 1.25, at_least=False, unit="x"
)
HISTORY_UNMAINTAINED = Target(
    "after the past batches, no maintenance / fresh lake (run seconds)", 2.0, at_least=False, unit="x"
)


def history_figure(result: HistoryRuns, history: History, commands: list[str]) -> Figure:
    """Fresh lake vs after the past batches, before and after one maintenance pass."""
    n = f"{history.batches:,}"
    figure = Figure(
        "batch_history",
        f"Cost per run after {n} prior micro-batches (small files, Dagster history), with and without "
        "maintenance",
        commands=commands,
    )
    stages = {
        "fresh lake": result.first,
        f"after {n} batches, no maintenance": result.before,
        f"after {n} batches and one maintenance pass": result.after,
    }
    for stage, runs in stages.items():
        figure.add(f"{stage}: run (Dagster run record)", "s", [r.run_seconds for r in runs])
        figure.add(f"{stage}: `lakemail process` wall", "s", [r.wall_seconds for r in runs])
    first = [r.run_seconds for r in result.first]
    aged = figure.add(
        "run ratio, no maintenance / fresh", "x", paired_ratios([r.run_seconds for r in result.before], first)
    )
    kept = figure.add(
        "run ratio, maintained / fresh", "x", paired_ratios([r.run_seconds for r in result.after], first)
    )
    figure.check(HISTORY_MAINTAINED, kept)
    figure.check(HISTORY_UNMAINTAINED, aged)
    figure.add("the maintenance pass (`maintenance_job`, in a child)", "s", [result.maintenance_seconds])
    if result.rebuild is not None:
        figure.add("`lakemail state rebuild` of the aged lake (as it reports)", "s", [result.rebuild.seconds])
        figure.add("`lakemail state rebuild` of the aged lake: peak RSS", "MB", [result.rebuild.peak_rss_mb])
    figure.tables.append(step_table("Where the time goes (median seconds per run):", stages))
    figure.notes += history_notes(result, history)
    return figure


def history_notes(result: HistoryRuns, history: History) -> list[str]:
    lake = result.lake
    disk = "; ".join(f"{name}: {f.files:,} files, {f.mb:,.0f} MB" for name, f in result.disk.items())
    notes = [
        f"Every run is one simulated file of {history.events_per_batch:,} events (a steady-state run), "
        "taken by `lakemail process --now` as in `scaling`. The fresh lake's first run (which creates the "
        "tables and the instance) is not measured; nor is the first run on the aged lake, which served as "
        "the template of the cloned Dagster runs.",
        f"Simulated, not replayed: {history.batches:,} past batches of {history.events_per_batch:,} events "
        f"of {history.users:,} shoppers, one every {history.every.total_seconds():g} s from midnight UTC "
        "(simulated; all in the day's `events` partition, which each run's dedupe reads), each committed as "
        "the job commits it: a small file and a commit per table (`events`, `quarantine`, `identities`, "
        "`ingest_log`, `profile_updates`, `triggers`), `trigger_state` rewritten each time, the CRM and "
        "catalog every 10 minutes, a fold of `profile_updates` every 250k partials, checkpoints every 100 "
        "versions, written straight into `_delta_log` (benchmarks/deltalog.py). Their landed files are "
        "kept (sparse) in the landing zone, as lakemail keeps them. The Dagster instance holds as many "
        "clones of a real run of this job (run storage, index shard, event-log shards, compute logs).",
        "Not simulated: the sensor's tick history and the daemon (runs here are `lakemail process`, not "
        "sensor launches); the folds' earlier rewrites of `profile_state` and `profiles` (only the last "
        "one is written). Maintenance keeps 7 days of history: it compacts and checkpoints, but neither "
        "vacuums these files nor prunes these runs, all younger than that.",
        "The aged lake's state store is built by `lakemail state rebuild` (a child) before its first run, "
        "as an operator would after restoring such a lake: otherwise that run would find no store and "
        "rebuild it within its run. The fresh lake's first run makes its (empty) store.",
    ]
    notes.append(load_note([*result.first, *result.before, *result.after]))
    if lake is not None:
        notes.append(
            f"Building took {result.build_seconds:.0f} s: {lake.commits:,} commits, {lake.folds} folds, "
            f"{lake.waiting_partials:,} partials waiting. On disk: {disk}."
        )
    return notes

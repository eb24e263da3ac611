"""Turn measured runs into figures: rows over repeats, ratios within this run, target verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.drain import DrainRun
from benchmarks.figures import Figure
from benchmarks.floor import FloorRun
from benchmarks.stats import Target, percentile
from benchmarks.steady import SteadyRun

DRAIN_RATE = Target("events/s (wall, whole child)", 150_000, at_least=True, unit="events/s")
DRAIN_RATIO = Target("ratio to the floor's rows/s", 0.4, at_least=True, unit="x")
DRAIN_RSS = Target("peak RSS", 2048, at_least=False, unit="MB")
STEADY_P50 = Target("landed -> committed p50", 3.0, at_least=False, unit="s")
STEADY_P99 = Target("landed -> committed p99", 6.0, at_least=False, unit="s")
BACKLOG_BOUND = Target("max backlog while feeding", 10, at_least=False, unit="files")


def floor_figure(runs: Sequence[FloorRun], commands: list[str]) -> Figure:
    figure = Figure("floor", "Floor: the same landing files without lakemail", commands=commands)
    figure.add("plain read of the bytes", "MB/s", [r.read_mb_per_s for r in runs])
    figure.add(
        "read_ndjson (explicit schema) + write_parquet, per file", "rows/s", [r.rows_per_s for r in runs]
    )
    last = runs[-1]
    figure.notes.append(
        f"{last.files:,} files, {last.rows:,} rows written. `read_ndjson` fails a whole file on one "
        f"bad line: {last.files_with_bad_lines:,} files failed it, and for those only, the floor drops "
        f"unparseable lines with orjson line by line ({last.dropped_lines:,} lines dropped) and reads the "
        "rest; the failed first attempt is part of the timing. lakemail itself quarantines such lines."
    )
    return figure


def drain_figure(runs: Sequence[DrainRun], floors: Sequence[FloorRun], commands: list[str]) -> Figure:
    figure = Figure(
        "backlog_drain", "Backlog drain: `lakemail process` on a landed backlog", commands=commands
    )
    rate = figure.add(
        "events/s (lines / wall seconds of the child)", "events/s", [r.events_per_s for r in runs]
    )
    figure.add("events/s (lines / run seconds as reported)", "events/s", [r.job_events_per_s for r in runs])
    figure.add("wall seconds (child start to exit)", "s", [r.wall_seconds for r in runs])
    figure.add("run seconds (as reported)", "s", [r.job_seconds for r in runs])
    rss = figure.add("peak RSS of the child", "MB", [r.peak_rss_mb for r in runs])
    figure.check(DRAIN_RATE, rate)
    if floors:
        ratios = [d.events_per_s / f.rows_per_s for d, f in zip(runs, floors, strict=False)]
        figure.check(DRAIN_RATIO, figure.add("ratio to the floor's rows/s (paired by repeat)", "x", ratios))
    figure.check(DRAIN_RSS, rss)
    figure.notes.append(
        f"{runs[-1].lines:,} landed lines, {runs[-1].accepted:,} accepted. The targets are meant to include "
        "`profiles` and triggers, which do not exist yet: today's figure covers ingest only "
        "(events, quarantine, identities, ingest_log and in-run checks)."
    )
    return figure


def steady_figure(runs: Sequence[SteadyRun], seconds: float, commands: list[str]) -> Figure:
    figure = Figure(
        "steady_state_ingest", "Steady-state ingest: `lakemail up` fed at 1,000 events/s", commands=commands
    )
    p50 = figure.add("landed -> committed p50", "s", [percentile(r.latencies, 50) for r in runs])
    figure.add("landed -> committed p95", "s", [percentile(r.latencies, 95) for r in runs])
    p99 = figure.add("landed -> committed p99", "s", [percentile(r.latencies, 99) for r in runs])
    figure.add("landed -> committed max", "s", [max(r.latencies) for r in runs])
    figure.add("files measured per repeat", "files", [float(r.files) for r in runs])
    peak = figure.add("max backlog while feeding", "files", [float(max(r.backlog, default=0)) for r in runs])
    figure.check(STEADY_P50, p50)
    figure.check(STEADY_P99, p99)
    figure.check(BACKLOG_BOUND, peak)
    figure.notes.append(
        f"{seconds:g} s of realtime simulation per repeat (one file a second). Latency is per landed file, "
        "`committed_at - landed_at` from `ingest_log`, where `landed_at` is the file's mtime. "
        "The backlog is the count of landed files with no `ingest_log` row, sampled every 5 s; "
        "the bound of 10 files is 10 s of input. Landed -> email accepted is not measured: "
        "triggers and sends do not exist yet."
    )
    for i, run in enumerate(runs, 1):
        figure.notes.append(f"Backlog samples, repeat {i} (files): {' '.join(str(n) for n in run.backlog)}")
    return figure

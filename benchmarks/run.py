"""`make bench`: measure the figures and write BENCHMARKS.md (`python -m benchmarks.run --help`)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import build
from benchmarks.collector_figure import collector_figure
from benchmarks.common import shown, simulate, simulate_argv, temp_home
from benchmarks.drain import drain_once
from benchmarks.figures import Figure
from benchmarks.floor import PER_FILE_FLOOR, FloorRun, both_floors
from benchmarks.history import measure_history
from benchmarks.history_lake import History
from benchmarks.peers import load_results
from benchmarks.peers.figures import SPARK_RATE, backlog_figure, comparison_figure, peer_figures
from benchmarks.plot import write_plot
from benchmarks.profile_figure import profile_api_figure
from benchmarks.report import merged, render, this_machine
from benchmarks.scaling import FULL, QUICK, Load, measure_scaling
from benchmarks.steady import SteadyRun, steady_once

FIGURES = (
    "floor",
    "backlog_drain",
    "steady_state_ingest",
    "scaling",
    "batch_history",
    "profile_api",
    "collector",
)
BACKLOG_SEED = 7
STEADY_SEED = 11
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
STEADY_REPEAT = 1  # 5 minutes of realtime feed a repeat: one, unless --repeat-steady asks for more
# The steady run at 5M users (issue #15: 10 minutes). The whole `make bench` stays within about an hour.
LOADED_MINUTES = 10.0
QUICK_LOADED_MINUTES = 1.0
QUICK_HISTORY = History(batches=1_000, users=10_000)
BATCH_COMMANDS = [
    "lakemail serve sandbox --port <free port>   # per lake, as make run starts it",
    "LAKEMAIL_ESP_URL=<the sandbox> lakemail process --now <end of the batch's simulated time>   # per batch",
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakemail bench", description="Measure lakemail; write BENCHMARKS.md."
    )
    parser.add_argument("--only", choices=FIGURES, help="one figure (backlog_drain also measures floor)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--repeat-steady",
        type=int,
        default=STEADY_REPEAT,
        help=f"repeats of steady_state_ingest, 5 min each (default {STEADY_REPEAT})",
    )
    parser.add_argument(
        "--loaded-minutes",
        type=float,
        default=None,
        help=f"scaling's steady run on the largest lake, with profiles_job beside it (default "
        f"{LOADED_MINUTES:g}, {QUICK_LOADED_MINUTES:g} with --quick; 0 leaves it out)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to write (default BENCHMARKS.md)"
    )
    return parser


def _say(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def backlog_figures(events: int, repeat: int, drain: bool) -> list[Figure]:
    """Floor and (optionally) backlog drain, on the same simulated landing files."""
    with temp_home("source") as tmp:
        source = Path(tmp)
        _say(f"simulating {events:,} events")
        files = simulate(source, events, BACKLOG_SEED)
        floors: list[FloorRun] = []
        runs = []
        # Each repeat's floor right before its drain: the ratios pair figures minutes apart, not a
        # floor measured before every drain (the machine's speed drifts within an hour, #17).
        for i in range(repeat):
            floors.append(both_floors(files, source / f"floor-{i}"))
            last = floors[-1]
            honest = f"honest {last.group_rows_per_s:,.0f}"
            _say(f"floor {i + 1}/{repeat}: {last.rows_per_s:,.0f} rows/s, {honest}")
            if drain:
                runs.append(drain_once(source))
                _say(f"drain {i + 1}/{repeat}: {runs[-1].events_per_s:,.0f} events/s")
        commands = [shown(simulate_argv(events, BACKLOG_SEED))]
        figures = [build.floor_figure(floors, commands)]
        if drain:
            commands = [*commands, "lakemail process   # in a fresh LAKEMAIL_HOME per repeat, files copied"]
            figures.append(build.drain_figure(runs, floors, commands))
        return figures


def steady_figure(seconds: float, repeat: int, spark: list[list[float]]) -> tuple[Figure, list[SteadyRun]]:
    runs = []
    for i in range(repeat):
        runs.append(steady_once(seconds, STEADY_SEED + i))
        _say(f"steady {i + 1}/{repeat}: {len(runs[-1].latencies)} files")
    commands = [
        "LAKEMAIL_POLL_SECONDS=1 lakemail up --no-simulator --port <free port>",
        shown(simulate_argv(int(seconds * 1000), STEADY_SEED, fast=False)) + "   # seed 11, 12, 13 by repeat",
    ]
    return build.steady_figure(runs, seconds, commands, spark), runs


def scaling_figure(quick: bool, repeat: int, loaded_minutes: float | None) -> Figure:
    points = QUICK if quick else FULL
    if loaded_minutes is None:
        loaded_minutes = QUICK_LOADED_MINUTES if quick else LOADED_MINUTES
    refresh = 20.0 if quick else 120.0  # --quick: a refresh or more within its short steady run
    load = Load(loaded_minutes * 60, refresh) if loaded_minutes > 0 else None
    result = measure_scaling(points, repeat, _say, load=load)
    return build.scaling_figure(result, points, BATCH_COMMANDS)


def history_figure(quick: bool, repeat: int) -> Figure:
    history = QUICK_HISTORY if quick else History()
    result = measure_history(history, repeat, _say)
    commands = [*BATCH_COMMANDS, "python -m benchmarks.maintain   # maintenance_job, as its schedule runs it"]
    return build.history_figure(result, history, commands)


def _steady(seconds: float, repeat: int, spark: list[list[float]], runs: list[SteadyRun]) -> list[Figure]:
    figure, measured = steady_figure(seconds, repeat, spark)
    runs.extend(measured)
    return [figure]


def _guarded(name: str, measure: Callable[[], list[Figure]]) -> list[Figure]:
    """A figure that fails says so in BENCHMARKS.md; the figures after it are still measured."""
    try:
        return measure()
    except Exception as error:  # an hour of other figures must not be lost to one
        _say(f"{name} failed:\n{traceback.format_exc()}")
        failed = Figure(name, f"`{name}`: not measured in this run", failed=True)
        failed.notes.append(f"The figure failed: {type(error).__name__}: {error}")
        return [failed]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeat < 1 or args.repeat_steady < 1:
        print("lakemail bench: --repeat and --repeat-steady must be >= 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    steady_runs: list[SteadyRun] = []
    wanted = set(FIGURES) if args.only is None else {args.only}
    figures: list[Figure] = []
    peers = load_results()  # benchmarks/peers/results.json from `make bench-peers`; None if never run
    spark = [r.latencies for r in peers.steady] if peers is not None else []
    if wanted & {"floor", "backlog_drain"}:
        events = 100_000 if args.quick else 1_000_000
        figures += _guarded(
            "backlog_drain", lambda: backlog_figures(events, args.repeat, "backlog_drain" in wanted)
        )
    if "steady_state_ingest" in wanted:
        seconds = 60.0 if args.quick else 300.0
        figures += _guarded(
            "steady_state_ingest", lambda: _steady(seconds, args.repeat_steady, spark, steady_runs)
        )
    if "scaling" in wanted:
        figures += _guarded("scaling", lambda: [scaling_figure(args.quick, args.repeat, args.loaded_minutes)])
    if "batch_history" in wanted:
        figures += _guarded("batch_history", lambda: [history_figure(args.quick, args.repeat)])
    if "profile_api" in wanted:
        figures += _guarded("profile_api", lambda: [profile_api_figure(args.quick, args.repeat, _say)])
    if "collector" in wanted:
        figures += _guarded("collector", lambda: [collector_figure(args.quick, args.repeat, _say)])
    command = shlex.join(["python", "-m", "benchmarks.run", *(argv if argv is not None else sys.argv[1:])])
    date = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    named = {f.name: f for f in figures if f.rows}  # a failed figure has no rows to pair
    measured = list(figures)  # what this run measured (the peers' figures are read from their results)
    if peers is not None:
        comparison = comparison_figure(peers, named.get("backlog_drain"), named.get("steady_state_ingest"))
        figures += peer_figures(peers) + ([comparison] if comparison else [])
    plot = None
    if steady_runs and "backlog_drain" in named and "floor" in named:
        latencies = {"lakemail": steady_runs[0].latencies}
        throughput = {
            "floor": named["floor"].median(PER_FILE_FLOOR),
            "lakemail": named["backlog_drain"].median("events/s (lines / wall seconds of the child)"),
        }
        if peers is not None and peers.steady:
            latencies["spark"] = peers.steady[0].latencies
        if peers is not None and peers.backlog:
            throughput["spark"] = backlog_figure(peers).median(SPARK_RATE)
        plot = write_plot(args.out.with_suffix(".png"), latencies, throughput).name
    if args.only is not None and args.out.exists():  # one figure re-measured: the others are kept
        text = merged(args.out.read_text(), measured, date=date, command=command)
    else:
        seconds = time.perf_counter() - started
        text = render(figures, this_machine(), date=date, command=command, seconds=seconds, plot=plot)
    args.out.write_text(text)
    _say(f"wrote {args.out}")
    failed = [f.name for f in figures if f.failed]
    if failed:  # written, so the other figures are kept, but a run with a failed figure is no measurement
        print(f"lakemail bench: not measured: {', '.join(failed)} (see {args.out})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

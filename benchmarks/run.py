"""`make bench`: measure the figures and write BENCHMARKS.md (`python -m benchmarks.run --help`)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import build
from benchmarks.common import shown, simulate, simulate_argv, temp_home
from benchmarks.drain import drain_once
from benchmarks.figures import Figure
from benchmarks.floor import FloorRun, parse_and_write
from benchmarks.report import render, this_machine
from benchmarks.steady import steady_once

FIGURES = ("floor", "backlog_drain", "steady_state_ingest")
BACKLOG_SEED = 7
STEADY_SEED = 11
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakemail bench", description="Measure lakemail; write BENCHMARKS.md."
    )
    parser.add_argument("--only", choices=FIGURES, help="one figure (backlog_drain also measures floor)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
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
        for i in range(repeat):
            floors.append(parse_and_write(files, source / f"floor-{i}"))
            _say(f"floor {i + 1}/{repeat}: {floors[-1].rows_per_s:,.0f} rows/s")
        commands = [shown(simulate_argv(events, BACKLOG_SEED))]
        figures = [build.floor_figure(floors, commands)]
        if drain:
            runs = []
            for i in range(repeat):
                runs.append(drain_once(source))
                _say(f"drain {i + 1}/{repeat}: {runs[-1].events_per_s:,.0f} events/s")
            commands = [*commands, "lakemail process   # in a fresh LAKEMAIL_HOME per repeat, files copied"]
            figures.append(build.drain_figure(runs, floors, commands))
        return figures


def steady_figure(seconds: float, repeat: int) -> Figure:
    runs = []
    for i in range(repeat):
        runs.append(steady_once(seconds, STEADY_SEED + i))
        _say(f"steady {i + 1}/{repeat}: {len(runs[-1].latencies)} files")
    commands = [
        "LAKEMAIL_POLL_SECONDS=1 lakemail up --no-simulator --port <free port>",
        shown(simulate_argv(int(seconds * 1000), STEADY_SEED, fast=False)) + "   # seed 11, 12, 13 by repeat",
    ]
    return build.steady_figure(runs, seconds, commands)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.repeat < 1:
        print("lakemail bench: --repeat must be >= 1", file=sys.stderr)
        return 2
    started = time.perf_counter()
    wanted = set(FIGURES) if args.only is None else {args.only}
    figures: list[Figure] = []
    if wanted & {"floor", "backlog_drain"}:
        events = 100_000 if args.quick else 1_000_000
        figures += backlog_figures(events, args.repeat, drain="backlog_drain" in wanted)
    if "steady_state_ingest" in wanted:
        figures.append(steady_figure(60.0 if args.quick else 300.0, args.repeat))
    command = shlex.join(["python", "-m", "benchmarks.run", *(argv if argv is not None else sys.argv[1:])])
    date = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    text = render(figures, this_machine(), date=date, command=command, seconds=time.perf_counter() - started)
    args.out.write_text(text)
    _say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-peers`: the Spark peer on lakemail's backlog and steady load -> benchmarks/peers/results.json.

Runs in the main venv; each Spark query runs as a child in .venv-peers (`python -m benchmarks.peers.run
--help`). The data comes from the same simulator, seeds and sizes as `make bench`.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import shown, simulate, simulate_argv, temp_home
from benchmarks.peers.queries import (
    DRIVER_MEMORY,
    SHUFFLE_PARTITIONS,
    Work,
    backlog_once,
    count_lines,
    steady_once,
)
from benchmarks.peers.results import (
    DEFAULT_PATH,
    PeerBacklogRun,
    PeerResults,
    PeerSteadyRun,
    load_results,
    to_json,
)
from benchmarks.report import this_machine
from benchmarks.run import BACKLOG_SEED, STEADY_SEED

DEFAULT_PYTHON = Path(__file__).resolve().parents[2] / ".venv-peers" / "bin" / "python"


def _say(message: str) -> None:
    print(f"[bench-peers {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def peer_versions(python: str) -> dict[str, str]:
    """Python and pyspark of the peer venv, and the Java that Spark starts."""
    probe = "import platform, pyspark; print(platform.python_version(), pyspark.__version__)"
    out = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "([^"]+)"', java)
    return {"python": out[0], "pyspark": out[1], "java": match.group(1) if match else "unknown"}


def backlog_runs(python: str, events: int, repeat: int) -> list[PeerBacklogRun]:
    with temp_home("peer-backlog") as tmp:
        home = Path(tmp).resolve()
        _say(f"simulating {events:,} events")
        files = simulate(home, events, BACKLOG_SEED)
        lines = count_lines(files)
        runs = []
        for i in range(repeat):
            run = backlog_once(python, home / "landing" / "events", lines, Work(home / f"spark-{i}"))
            runs.append(run)
            _say(f"backlog {i + 1}/{repeat}: {run.events_per_s:,.0f} events/s, {run.wall_seconds:.1f} s")
        return runs


def steady_runs(python: str, seconds: float, repeat: int, trigger_seconds: float) -> list[PeerSteadyRun]:
    runs = []
    for i in range(repeat):
        runs.append(steady_once(python, seconds, STEADY_SEED + i, trigger_seconds))
        median = statistics.median(runs[-1].latencies)
        _say(f"steady {i + 1}/{repeat}: {runs[-1].files} files, p50 {median:.2f} s")
    return runs


def settings(trigger_seconds: float) -> dict[str, str]:
    return {
        "master": "local[2]",
        "driver_memory": DRIVER_MEMORY,
        "shuffle_partitions": str(SHUFFLE_PARTITIONS),
        "source": 'readStream.format("json"), explicit schema (all strings), mode DROPMALFORMED',
        "dedupe": 'dropDuplicates(["messageId"]), no watermark (state keeps every messageId)',
        "state_store": "HDFSBackedStateStoreProvider (Spark's default)",
        "sink": "parquet with checkpoint",
        "backlog_trigger": "availableNow=True (one batch: no maxFilesPerTrigger)",
        "steady_trigger": f'processingTime="{trigger_seconds:g} seconds"',
    }


NOTES = [
    "Delta Lake's jars cannot be downloaded on this machine (only PyPI, Debian and npm are reachable), "
    "so the peer's sink is parquet with a checkpoint, not Delta; lakemail commits to Delta.",
    "The peer parses, types (try_to_timestamp), drops malformed lines and lines without messageId, type or "
    "timestamp, and dedupes on messageId over all time. It writes no quarantine, identities or ingest log, "
    "so it does less work than lakemail's ingest.",
    "Peak RSS of the child's process tree (python + JVM), read from /proc every 0.25 s: the larger of "
    "the tree's summed VmRSS and the largest process's own peak (VmHWM, what wait4 gives for lakemail's "
    "child). Without Hadoop's native library the JVM starts chmod/readlink helpers for file operations; "
    "a helper that has not exec'd yet shares the JVM's memory and is not counted again.",
    "Steady latency per landed file: the mtime of its batch's entry in the sink's _spark_metadata log "
    "(when its rows become visible) minus the file's mtime, as lakemail's is committed_at - landed_at.",
    "The machine has 2 cores and is shared with other work: each part records the 1-minute load average "
    "at its start and end. The peer itself brings it towards 2 while it runs (the steady part starts right "
    "after the backlog part); well above that, the peer competed for the cores and its numbers are "
    "pessimistic.",
]


def commands(events: int, seconds: float, trigger: float, repeat: int) -> dict[str, list[str]]:
    steady_sim = shown(simulate_argv(int(seconds * 1000), STEADY_SEED, fast=False))
    seeds = ", ".join(str(STEADY_SEED + i) for i in range(repeat))
    return {
        "backlog": [
            shown(simulate_argv(events, BACKLOG_SEED)),
            "spark_peer.py backlog   # fresh sink and checkpoint per repeat, same landed files",
        ],
        "steady": [
            f"spark_peer.py steady --trigger-seconds {trigger:g}   # on an empty landing folder",
            f"{steady_sim}   # seed {seeds} by repeat, after a 100-event warm-up file",
        ],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="make bench-peers", description=__doc__)
    parser.add_argument("--python", default=str(DEFAULT_PYTHON), help="the peer venv's interpreter")
    parser.add_argument("--quick", action="store_true", help="100k events and 60 s, for a smoke run")
    parser.add_argument(
        "--only", choices=("backlog", "steady"), help="one part; the other is kept from --out"
    )
    parser.add_argument("--repeat", type=int, default=3, help="backlog repeats (default 3)")
    parser.add_argument("--steady-repeat", type=int, default=2, help="steady repeats (default 2)")
    parser.add_argument("--trigger-seconds", type=float, default=0.0, help="steady trigger interval")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_PATH, help="default benchmarks/peers/results.json"
    )
    return parser


def _machine() -> dict[str, str]:
    machine = this_machine()
    return {"cores": str(machine.cores), "memory_gb": f"{machine.memory_gb:.1f}", "cpu": machine.cpu}


def measured(argv: Sequence[str], started: datetime, load_at_start: float) -> str:
    """When a part ran, by what command, and how busy the machine was around it."""
    command = shlex.join(["python", "-m", "benchmarks.peers.run", *argv])
    load = f"1-minute load average {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    return f"{started:%Y-%m-%d %H:%M} UTC by `{command}`; {load}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    shown_argv = sys.argv[1:] if argv is None else list(argv)
    if min(args.repeat, args.steady_repeat) < 1:
        print("bench-peers: repeats must be >= 1", file=sys.stderr)
        return 2
    events, seconds = (100_000, 60.0) if args.quick else (1_000_000, 300.0)
    old = load_results(args.out) if args.only else None
    kept = old if old is not None and old.quick == args.quick else None  # --only never mixes sizes
    backlog, steady = (kept.backlog, kept.steady) if kept else ([], [])
    context = {part: kept.measured[part] for part in kept.measured if part != args.only} if kept else {}
    if args.only != "steady":
        started, load = datetime.now(UTC), os.getloadavg()[0]
        backlog = backlog_runs(args.python, events, args.repeat)
        context["backlog"] = measured(shown_argv, started, load)
    if args.only != "backlog":
        started, load = datetime.now(UTC), os.getloadavg()[0]
        steady = steady_runs(args.python, seconds, args.steady_repeat, args.trigger_seconds)
        context["steady"] = measured(shown_argv, started, load)
    results = PeerResults(
        peer="spark-structured-streaming",
        date=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        quick=args.quick,
        machine=_machine(),
        measured=context,
        versions=peer_versions(args.python),
        settings=settings(args.trigger_seconds),
        commands=commands(events, seconds, args.trigger_seconds, args.steady_repeat),
        notes=NOTES,
        backlog_events=events,
        steady_seconds=seconds,
        backlog=backlog,
        steady=steady,
    )
    args.out.write_text(to_json(results))
    _say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

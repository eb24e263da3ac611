"""One Spark peer query as a measured child: the backlog drain, and the steady load with its latencies."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.common import env_for, lakemail, landed_files, simulate_argv, temp_home
from benchmarks.peers import sparklog
from benchmarks.peers.results import PeerBacklogRun, PeerSteadyRun
from benchmarks.peers.rss import PeakRss
from benchmarks.steady import SAMPLE_SECONDS, WARMUP_SEED, wait_until

PEER_SCRIPT = Path(__file__).resolve().with_name("spark_peer.py")
DRIVER_MEMORY = "2g"
SHUFFLE_PARTITIONS = 2


@dataclasses.dataclass(frozen=True)
class Work:
    """Where one peer query keeps its sink, checkpoint, report and log."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    def argv(self, python: str, mode: str, landing: Path, *extra: str) -> list[str]:
        folders = {"--landing": landing, "--sink": self.path("sink"), "--checkpoint": self.path("checkpoint")}
        options = [item for name, path in folders.items() for item in (name, str(path))]
        sizes = ["--driver-memory", DRIVER_MEMORY, "--shuffle-partitions", str(SHUFFLE_PARTITIONS)]
        report = ["--report", str(self.path("report.json"))]
        return [python, str(PEER_SCRIPT), mode, *options, *report, *sizes, *extra]

    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.path("report.json").read_text()))

    def failure(self, what: str) -> RuntimeError:
        log = self.path("spark.log")
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        return RuntimeError(f"{what}; the end of {log}:\n{tail}")


def count_lines(files: Sequence[Path]) -> int:
    return sum(path.read_bytes().count(b"\n") for path in files)


def rows_written(sink: Path) -> int:
    return int(pl.scan_parquet(str(sink / "*.parquet")).select(pl.len()).collect().item())


def backlog_once(python: str, landing: Path, lines: int, work: Work) -> PeerBacklogRun:
    """One `availableNow` query over the landed backlog, timed and sampled from outside."""
    work.root.mkdir(parents=True)
    with work.path("spark.log").open("wb") as log:
        started = time.perf_counter()
        child = subprocess.Popen(work.argv(python, "backlog", landing), stdout=log, stderr=subprocess.STDOUT)
        with PeakRss(child.pid) as rss:
            child.wait()
        seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise work.failure(f"the backlog query exited {child.returncode}")
    report = work.report()
    return PeerBacklogRun(
        lines=lines,
        wall_seconds=seconds,
        query_seconds=report["query_seconds"],
        startup_seconds=report["startup_seconds"],
        peak_rss_mb=rss.peak_mb,
        rows_written=rows_written(work.path("sink")),
        batches=len(report["batches"]),
    )


@contextlib.contextmanager
def steady_query(python: str, landing: Path, work: Work, trigger_seconds: float) -> Iterator[PeakRss]:
    """A running steady query (and its memory sampler); stopped through its stop file on exit."""
    extra = ["--started", str(work.path("started")), "--stop", str(work.path("stop"))]
    extra += ["--trigger-seconds", f"{trigger_seconds:g}"]
    with work.path("spark.log").open("wb") as log:
        argv = work.argv(python, "steady", landing, *extra)
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with PeakRss(child.pid) as rss:
            wait_until(lambda: work.path("started").exists() or child.poll() is not None, 300, "Spark query")
            if child.poll() is not None:
                raise work.failure(f"the steady query exited {child.returncode}")
            yield rss
            work.path("stop").touch()
            child.wait(timeout=120)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)  # only the session started above: python and its JVM
            child.wait()
    if child.returncode != 0:
        raise work.failure(f"the steady query exited {child.returncode}")


def steady_once(python: str, seconds: float, seed: int, trigger_seconds: float) -> PeerSteadyRun:
    """Warm the query up on a small file, feed it `seconds` of realtime simulation, wait for the drain."""
    with temp_home("peer-steady") as tmp:
        home = Path(tmp).resolve()
        landing = home / "landing" / "events"
        landing.mkdir(parents=True)
        work = Work(home / "spark")
        work.root.mkdir()
        checkpoint, sink = work.path("checkpoint"), work.path("sink")

        def backlog() -> int:
            return sparklog.uncommitted(landed_files(home), checkpoint, sink)

        samples: list[int] = []
        with steady_query(python, landing, work, trigger_seconds) as rss:
            warm = [lakemail(), *simulate_argv(100, WARMUP_SEED)]
            subprocess.run(warm, env=env_for(home), check=True, stdout=subprocess.DEVNULL)
            wait_until(lambda: backlog() == 0, 180, "first micro-batch")
            argv = [lakemail(), *simulate_argv(int(seconds * 1000), seed, fast=False)]
            sim = subprocess.Popen(argv, env=env_for(home), stdout=subprocess.DEVNULL)
            try:
                while sim.poll() is None:
                    samples.append(backlog())
                    time.sleep(SAMPLE_SECONDS)
            finally:
                if sim.poll() is None:  # an error above: stop the simulator this run started
                    sim.terminate()
                    sim.wait()
            if sim.returncode != 0:
                raise RuntimeError(f"simulator exited {sim.returncode}")
            wait_until(lambda: backlog() == 0, 120, "backlog drain after the simulator")
        measured = [p for p in landed_files(home) if p.name.startswith(f"sim-{seed}-")]
        batches = sparklog.file_batches(checkpoint)
        warm_batches = {b for path, b in batches.items() if Path(path).name.startswith(f"sim-{WARMUP_SEED}-")}
        report = work.report()
        return PeerSteadyRun(
            seed=seed,
            latencies=sparklog.latencies(measured, checkpoint, sink),
            backlog=samples,
            batch_seconds=[b["ms"] / 1000 for b in report["batches"] if b["batch"] not in warm_batches],
            peak_rss_mb=rss.peak_mb,
        )

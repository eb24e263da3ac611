"""Steady state: `lakemail up` as `make run` starts it (runner, sandbox), fed by a realtime simulator.

Measures landed -> committed per file (`ingest_log`), landed -> email accepted per immediate email
(`sends` of `welcome`, the trigger with no delay: `sent_at - landed_at`), the backlog over time, and
where the time goes: for each file, the wait before its run started and the time inside the run,
and the median duration of each step (from the Dagster instance's run and step stats).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from benchmarks.common import env_for, ingest_log, lake_of, lakemail, landed_files, simulate_argv, temp_home
from transforms.schema import SENDS_SCHEMA

WARMUP_SEED = 999
SAMPLE_SECONDS = 5.0
POLL_SECONDS = "1"
COMMITTING_JOBS = ("ingest_job", "microbatch_job")  # the runs that commit landed files
DECIDING_JOBS = ("decide_job",)


@dataclass(frozen=True)
class SteadyRun:
    latencies: list[float]  # landed -> committed, seconds, one per file of the measured simulator
    backlog: list[int]  # landed files not yet in ingest_log, sampled every SAMPLE_SECONDS
    files: int
    email_latencies: list[float] = field(default_factory=list)  # landed -> accepted, immediate emails
    waits: list[float] = field(default_factory=list)  # landed -> its run started, per file
    in_run: list[float] = field(default_factory=list)  # its run started -> committed, per file
    steps: dict[str, float] = field(default_factory=dict)  # step -> median seconds over the runs
    runs: int = 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def webserver_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def backlog(home: Path) -> int:
    """Landed files that ingest_log has no row for yet."""
    landed = {f"events/{p.name}" for p in landed_files(home)}
    return len(landed - set(ingest_log(home)["source_file"].to_list()))


@contextlib.contextmanager
def system_up(
    home: Path, sandbox_port: int | None = None, collector_port: int | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`lakemail up --no-simulator` on free loopback ports; SIGINT and wait on exit."""
    port = free_port()
    argv = [
        lakemail(),
        "up",
        "--no-simulator",
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port or free_port()),
        "--collector-port",
        str(collector_port or free_port()),
    ]
    env = env_for(home, LAKEMAIL_POLL_SECONDS=POLL_SECONDS)
    with (home / "up.log").open("wb") as log:
        up = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: webserver_up(port), 180, "Dagster webserver")
        yield up
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        stop_group(up.pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(pgid: int) -> None:
    """Wait for what `lakemail up` started to go (a code server can outlive it), then kill the rest."""
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not group_alive(pgid), 30, "process group exit")
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)  # only the session we started: webserver, daemon, code servers
        wait_until(lambda: not group_alive(pgid), 10, "process group kill")


def warm_up(home: Path) -> None:
    """Land a small file and wait for its commit, so the measured files see a running sensor."""
    subprocess.run(
        [lakemail(), *simulate_argv(100, WARMUP_SEED)],
        env=env_for(home),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wait_until(lambda: backlog(home) == 0 and ingest_log(home).height > 0, 180, "first micro-batch")


def feed(home: Path, seconds: float, seed: int) -> list[int]:
    """Run the realtime simulator for `seconds`, sampling the backlog; then wait for it to drain."""
    argv = [lakemail(), *simulate_argv(int(seconds * 1000), seed, fast=False)]
    samples: list[int] = []
    with (home / "simulate.log").open("wb") as log:
        sim = subprocess.Popen(argv, env=env_for(home), stdout=log, stderr=subprocess.STDOUT)
        while sim.poll() is None:
            samples.append(backlog(home))
            time.sleep(SAMPLE_SECONDS)
    if sim.returncode != 0:
        raise RuntimeError(f"simulator exited {sim.returncode}")
    wait_until(lambda: backlog(home) == 0, 120, "backlog drain after the simulator")
    return samples


def steady_once(seconds: float, seed: int) -> SteadyRun:
    with temp_home("steady") as tmp:
        home = Path(tmp)
        with system_up(home):
            warm_up(home)
            samples = feed(home, seconds, seed)
        everything = ingest_log(home)
        log = everything.filter(everything["source_file"].str.contains(f"/sim-{seed}-"))
        lag = (log["committed_at"] - log["landed_at"]).dt.total_microseconds() / 1e6
        runs, steps = run_timings(home)
        waits, in_run = split_latency(log, runs)
        return SteadyRun(
            latencies=lag.to_list(),
            backlog=samples,
            files=log.height,
            email_latencies=email_latencies(home, log),
            waits=waits,
            in_run=in_run,
            steps=steps,
            runs=runs.height,
        )


def email_latencies(home: Path, log: pl.DataFrame) -> list[float]:
    """Seconds from landing to the sandbox's 202 for the welcome emails of the measured window."""
    if log.height == 0:
        return []
    sends = lake_of(home).read("sends", SENDS_SCHEMA, ["kind", "status", "landed_at", "sent_at"])
    window = sends.filter(
        (pl.col("kind") == "welcome")
        & (pl.col("status") == "sent")
        & pl.col("landed_at").is_between(log["landed_at"].min(), log["landed_at"].max())
    )
    return ((window["sent_at"] - window["landed_at"]).dt.total_microseconds() / 1e6).to_list()


def run_timings(home: Path) -> tuple[pl.DataFrame, dict[str, float]]:
    """(start, end) of every run that commits files (the ingest lane's, #15; a micro-batch's), and each
    step's median seconds over the runs of both lanes, from the instance."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    rows, durations = [], []
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records():
            if record.dagster_run.job_name not in COMMITTING_JOBS + DECIDING_JOBS:
                continue
            stats = instance.get_run_stats(record.dagster_run.run_id)
            if stats.start_time is None or stats.end_time is None:
                continue
            if record.dagster_run.job_name in COMMITTING_JOBS:
                rows.append({"start": stats.start_time, "end": stats.end_time})
            for step in instance.get_run_step_stats(record.dagster_run.run_id):
                if step.start_time is not None and step.end_time is not None:
                    durations.append({"step": step.step_key, "s": step.end_time - step.start_time})
    runs = pl.DataFrame(rows, schema={"start": pl.Float64, "end": pl.Float64}).sort("start")
    steps = pl.DataFrame(durations, schema={"step": pl.String, "s": pl.Float64})
    medians = steps.group_by("step").agg(pl.col("s").median()).sort("step")
    return runs, {step: round(float(s), 3) for step, s in medians.iter_rows()}


def split_latency(log: pl.DataFrame, runs: pl.DataFrame) -> tuple[list[float], list[float]]:
    """Per file: landed -> start of the run that committed it, and that start -> the commit."""
    if log.height == 0 or runs.height == 0:
        return [], []
    files = log.select(
        (pl.col("landed_at").dt.epoch("us") / 1e6).alias("landed"),
        (pl.col("committed_at").dt.epoch("us") / 1e6).alias("committed"),
    ).sort("committed")
    joined = files.join_asof(runs, left_on="committed", right_on="start", strategy="backward")
    joined = joined.filter(pl.col("start").is_not_null())
    waits = (joined["start"] - joined["landed"]).clip(lower_bound=0).to_list()
    return waits, (joined["committed"] - joined["start"]).to_list()

"""One measured micro-batch: simulated events landed, `lakemail process` in a child, Dagster's step times.

The batch is the simulator's own output (`ShopperSimulator.step`, as `lakemail simulate --fast` lands
it: 1,000 lines a file), so it touches shoppers a pre-built lake of the same seed and size knows.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.common import env_for, lakemail, run_child
from benchmarks.steady import free_port, stop_group, wait_until
from simulator.landing import write_landing_file
from simulator.shoppers import ShopperSimulator

LINES_PER_FILE = 1_000
SIM_RATE = 1_000  # simulated events per second: a 10k-event batch covers 10 simulated seconds
RUN_LINE = re.compile(r"^run (\S+): (SUCCESS|FAILURE) - \S+ files, ([\d,]+) lines", re.MULTILINE)
REPORTED = re.compile(r"^([\d.]+) s, [\d,]+ lines/s, peak RSS", re.MULTILINE)


@dataclass(frozen=True)
class BatchRun:
    """What one `lakemail process` of a landed batch cost."""

    lines: int
    wall_seconds: float  # the child: interpreter start, imports, the run, exit
    reported_seconds: float  # as `lakemail process` reports it: definitions, instance and the run
    run_seconds: float  # Dagster's run record: start to end of the run itself
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds (STEP_SUCCESS durations)
    peak_rss_mb: float = 0.0  # the child's; Linux counts what it inherited at fork (`parent_rss_mb`)
    run_id: str = ""
    parent_rss_mb: float = 0.0  # the benchmark process when it forked the child
    load: float = 0.0  # the machine's 1-minute load average when the child started (2 cores: 2 is full)

    @property
    def launch_seconds(self) -> float:
        """Everything but the run: starting the interpreter, imports, definitions, the instance."""
        return self.wall_seconds - self.run_seconds


class BatchFeeder:
    """Lands batches of simulated shoppers 1..`users` (seed `seed`) from `start` on, in simulated time."""

    def __init__(self, landing: Path, *, users: int, seed: int, start: datetime) -> None:
        self.folder = landing / "events"
        self.sim = ShopperSimulator(users=users, seed=seed, start=start)
        self.clock = start
        self.seed = seed
        self.landed = 0

    def land(self, events: int) -> datetime:
        """Land `events` more lines (files of 1,000) and return the simulated clock after them."""
        self.clock += timedelta(seconds=events / SIM_RATE)
        lines = self.sim.step(self.clock, events)
        for start in range(0, len(lines), LINES_PER_FILE):
            self.landed += 1
            chunk = [line.data for line in lines[start : start + LINES_PER_FILE]]
            write_landing_file(self.folder, f"bench-{self.seed}-{self.landed:06d}.ndjson", chunk)
        return self.clock


def parse_process(text: str) -> tuple[str, int, float]:
    """Run id, lines and reported seconds from `lakemail process` output; raises when the run failed."""
    run, reported = RUN_LINE.search(text), REPORTED.search(text)
    if run is None or reported is None or run.group(2) != "SUCCESS":
        raise RuntimeError(f"lakemail process did not succeed:\n{text[-3000:]}")
    return run.group(1), int(run.group(3).replace(",", "")), float(reported.group(1))


def step_seconds(successes: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Seconds per step from (step key, duration in ms) pairs of STEP_SUCCESS events (retries summed)."""
    steps: dict[str, float] = {}
    for key, duration_ms in successes:
        steps[key] = steps.get(key, 0.0) + duration_ms / 1000
    return steps


def run_timing(dagster_home: Path, run_id: str) -> tuple[float, dict[str, float]]:
    """(run seconds, seconds per step) of `run_id` from the instance's run record and event log."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        record = instance.get_run_record_by_id(run_id)
        if record is None or record.start_time is None or record.end_time is None:
            raise RuntimeError(f"run {run_id} has no start and end in {dagster_home}")
        entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        pairs = [
            (
                str(e.dagster_event.step_key),
                float(getattr(e.dagster_event.event_specific_data, "duration_ms", 0)),
            )
            for e in entries
            if e.dagster_event is not None
        ]
        return record.end_time - record.start_time, step_seconds(pairs)


def process(home: Path, now: datetime, env: Mapping[str, str] | None = None) -> BatchRun:
    """`lakemail process --now NOW` on `home` in a child; its costs, with Dagster's per-step times."""
    log = home / "process.log"
    parent, load = current_rss_mb(), os.getloadavg()[0]
    result = run_child(
        [lakemail(), "process", "--now", now.isoformat()], {**env_for(home), **(env or {})}, log
    )
    if result.returncode != 0:
        raise RuntimeError(f"lakemail process exited {result.returncode}:\n{result.output[-3000:]}")
    run_id, lines, reported = parse_process(result.output)
    run, steps = run_timing(home / "dagster_home", run_id)
    return BatchRun(lines, result.seconds, reported, run, steps, result.peak_rss_mb, run_id, parent, load)


def current_rss_mb() -> float:
    """This process's resident memory now (VmRSS), 0 where /proc is not there."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return 0.0
    found = next((line.split()[1] for line in lines if line.startswith("VmRSS:")), "0")
    return int(found) / 1024


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def sandbox(home: Path) -> Iterator[dict[str, str]]:
    """`lakemail serve sandbox` on a free port, as `make run` starts it; yields the env that sends to it.

    Without it `sends` would spend its whole retry budget on a refused connection in every run.
    """
    port = free_port()
    argv = [lakemail(), "serve", "sandbox", "--port", str(port)]
    with (home / "sandbox.log").open("wb") as log:
        child = subprocess.Popen(
            argv, env=env_for(home), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(lambda: listening(port), 60, "email sandbox")
        url = f"http://127.0.0.1:{port}"
        yield {"LAKEMAIL_ESP_URL": url, "LAKEMAIL_PUBLIC_URL": url}
    finally:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=30)
        stop_group(child.pid)

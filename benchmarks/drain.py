"""Backlog drain: a landed backlog through `lakemail process` in a child process."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import env_for, lakemail, run_child, temp_home
from benchmarks.microbatch import sandbox

SUMMARY = re.compile(r"SUCCESS - .*?([\d,]+) lines, ([\d,]+) accepted")
TIMING = re.compile(r"([\d.]+) s, [\d,]+ lines/s, peak RSS")


@dataclass(frozen=True)
class DrainRun:
    lines: int
    accepted: int
    wall_seconds: float  # the whole child: interpreter start, imports, Dagster run, exit
    job_seconds: float  # as `lakemail process` reports it (the run alone)
    peak_rss_mb: float
    delivery_seconds: float = 0.0  # the run's `sends` step: delivery, bound by the provider (#17: apart)

    @property
    def events_per_s(self) -> float:
        return self.lines / self.wall_seconds

    @property
    def undelivered_events_per_s(self) -> float:
        """Lines over the child's wall seconds less its delivery step: events -> profiles -> triggers."""
        return self.lines / (self.wall_seconds - self.delivery_seconds)

    @property
    def job_events_per_s(self) -> float:
        return self.lines / self.job_seconds


def parse_output(text: str) -> tuple[int, int, float]:
    """Lines, accepted and job seconds from `lakemail process` output."""
    summary, timing = SUMMARY.search(text), TIMING.search(text)
    if summary is None or timing is None:
        raise RuntimeError(f"lakemail process did not succeed:\n{text[-2000:]}")
    lines, accepted = (int(g.replace(",", "")) for g in summary.groups())
    return lines, accepted, float(timing.group(1))


def drain_once(source_home: Path) -> DrainRun:
    """Copy the landed files of `source_home` into a fresh LAKEMAIL_HOME and process them."""
    with temp_home("drain") as tmp:
        home = Path(tmp)
        shutil.copytree(source_home / "landing", home / "landing")
        with sandbox(home) as mail:  # sends go to the sandbox, as `make run` has it
            result = run_child([lakemail(), "process"], env_for(home, **mail), home / "process.log")
        if result.returncode != 0:
            raise RuntimeError(f"lakemail process exited {result.returncode}:\n{result.output[-2000:]}")
        lines, accepted, job_seconds = parse_output(result.output)
        delivery = step_seconds(home / "dagster_home", "sends")
        return DrainRun(lines, accepted, result.seconds, job_seconds, result.peak_rss_mb, delivery)


def step_seconds(dagster_home: Path, step: str) -> float:
    """Seconds the `step` of every run in the instance at `dagster_home` took, in all."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:  # no DAGSTER_HOME to set and reset
        return sum(
            stat.end_time - stat.start_time
            for record in instance.get_run_records()
            for stat in instance.get_run_step_stats(record.dagster_run.run_id)
            if stat.step_key == step and stat.start_time is not None and stat.end_time is not None
        )

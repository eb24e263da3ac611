"""Shared plumbing: the lakemail binary, landing zones simulated into temp dirs, child processes."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from transforms.schema import INGEST_LOG_SCHEMA

SIM_USERS = 10_000
SIM_RATE = 1_000  # events per simulated second; with --fast, one file per 1,000 events


def lakemail() -> str:
    """The `lakemail` script of the running interpreter's environment."""
    return str(Path(sys.executable).parent / "lakemail")


@contextlib.contextmanager
def temp_home(label: str) -> Iterator[str]:
    """A fresh LAKEMAIL_HOME under $TMPDIR (or /tmp), removed when the context exits."""
    path = tempfile.mkdtemp(prefix=f"lakemail-bench-{label}-")
    try:
        yield path
    finally:
        remove_tree(Path(path))


def remove_tree(path: Path, attempts: int = 10) -> None:
    """rmtree, retried: a Dagster process winding down can still write into DAGSTER_HOME for a moment."""
    for _ in range(attempts):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(1)
    shutil.rmtree(path, ignore_errors=True)


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEMAIL_")}
    return {**env, "LAKEMAIL_HOME": str(home), **extra}


def simulate_argv(events: int, seed: int, *, fast: bool = True) -> list[str]:
    duration = events / SIM_RATE
    argv = ["simulate", "--users", str(SIM_USERS), "--rate", str(SIM_RATE), "--duration", f"{duration:g}"]
    return argv + ["--seed", str(seed)] + (["--fast"] if fast else [])


def shown(argv: list[str]) -> str:
    """A command as BENCHMARKS.md shows it."""
    return "lakemail " + shlex.join(argv)


def simulate(home: Path, events: int, seed: int) -> list[Path]:
    """Land `events` simulated events (fast, fixed seed) in `home`; returns the landed files."""
    subprocess.run(
        [lakemail(), *simulate_argv(events, seed)],
        env=env_for(home),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return landed_files(home)


def lake_of(home: Path) -> LakeResource:
    """The lake of a benchmark's home."""
    return LakeResource(uri=str(home / "lake"))


def landed_files(home: Path) -> list[Path]:
    """Landed (renamed, so complete) event files, as the ingest lists them."""
    landing = LandingResource(uri=str(home / "landing"))
    return [landing.root / f.path for f in landing.list_files("events")]


def ingest_log(home: Path) -> pl.DataFrame:
    """The lake's ingest_log (empty before the first commit)."""
    return lake_of(home).read("ingest_log", INGEST_LOG_SCHEMA, ["source_file", "landed_at", "committed_at"])


@dataclass(frozen=True)
class ChildResult:
    returncode: int
    seconds: float
    peak_rss_mb: float
    output: str


def run_child(argv: list[str], env: dict[str, str], log: Path) -> ChildResult:
    """Run a child to completion; its own peak RSS comes from wait4, not from RUSAGE_CHILDREN's max."""
    with log.open("wb") as out:
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    return ChildResult(child.returncode, seconds, usage.ru_maxrss / 1024, text)

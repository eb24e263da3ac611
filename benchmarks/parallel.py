"""Worker processes for building pre-built lakes: generating and writing data files is CPU-bound.

Jobs are picklable callables (module-level functions under `functools.partial`) that write data files
and return their add actions; the parent commits them in order, so the log is the same as if one
process had written it. Shoppers travel as a Parquet file, read once per worker.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import polars as pl

T = TypeVar("T")
WORKERS = max(1, min(2, os.cpu_count() or 1))  # the reference machine has 2 cores


def run_jobs(jobs: Sequence[Callable[[], T]], workers: int = WORKERS, *, isolate: bool = False) -> list[T]:
    """Each job's result, in order; in `workers` spawned processes when there is more than one job.

    `isolate` runs even a single job in a worker, so that its memory never becomes this process's: a
    child this process forks later starts with this process's memory in its peak RSS.
    """
    if not isolate and (len(jobs) <= 1 or workers <= 1):
        return [job() for job in jobs]
    context = multiprocessing.get_context("spawn")  # no fork of a process holding Polars' thread pool
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_call, jobs))


def _call(job: Callable[[], T]) -> T:
    return job()


@functools.lru_cache(maxsize=2)
def read_people(path: str) -> pl.DataFrame:
    """The shoppers a job works on (written once per lake by the parent)."""
    return pl.read_parquet(path)


def people_path(home: Path) -> str:
    return str(home / "people.parquet")


def save_people(people: pl.DataFrame, home: Path) -> str:
    path = people_path(home)
    people.write_parquet(path)
    return path

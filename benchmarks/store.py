"""The state store of a pre-built lake: built by `lakemail state rebuild` (timed), then looked up.

A pre-built lake (`prebuilt`, `history_lake`) is written straight into Delta, so it has no state store;
the first micro-batch on it would find none and rebuild it from the lake (`stores.state.sync`), and a
measured run would measure a rebuild. So the store is built first, by the command an operator runs,
in a child: its wall time and peak RSS are the rebuild figure (issue #15: at 5M users / 50M events).
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import env_for, lakemail, run_child
from benchmarks.parallel import read_people

COUNT_LINE = re.compile(r"^(\w+)\s+([\d,]+)$", re.MULTILINE)
SIZE_LINE = re.compile(r"^stamps: batch (\d+), .*; ([\d,.]+) MB$", re.MULTILINE)
DONE_LINE = re.compile(r"^rebuilt .* in ([\d.]+) s, peak RSS ([\d,]+) MB$", re.MULTILINE)
LOOKUP_NAMESPACES = ("profiles", "customers")  # a profile: the merged state and the CRM row


@dataclass(frozen=True)
class RebuildRun:
    """What one `lakemail state rebuild` cost, and what it made."""

    wall_seconds: float  # the child, start to exit (interpreter and imports included)
    seconds: float  # as the command reports it: the rebuild itself
    peak_rss_mb: float  # as the command reports it (getrusage of its own process)
    size_mb: float
    batch: int
    keys: dict[str, int] = field(default_factory=dict)

    @property
    def total_keys(self) -> int:
        return sum(self.keys.values())


def parse_rebuild(text: str, wall_seconds: float) -> RebuildRun:
    """The figures `lakemail state rebuild` prints; raises when it did not finish."""
    done, size = DONE_LINE.search(text), SIZE_LINE.search(text)
    if done is None or size is None:
        raise RuntimeError(f"lakemail state rebuild did not finish:\n{text[-3000:]}")
    keys = {name: int(n.replace(",", "")) for name, n in COUNT_LINE.findall(text)}
    return RebuildRun(
        wall_seconds,
        float(done.group(1)),
        float(done.group(2).replace(",", "")),
        float(size.group(2).replace(",", "")),
        int(size.group(1)),
        keys,
    )


def rebuild_store(home: Path) -> RebuildRun:
    """`lakemail state rebuild` on `home` in a child."""
    result = run_child([lakemail(), "state", "rebuild"], env_for(home), home / "rebuild.log")
    if result.returncode != 0:
        raise RuntimeError(f"lakemail state rebuild exited {result.returncode}:\n{result.output[-3000:]}")
    return parse_rebuild(result.output, result.seconds)


@dataclass(frozen=True)
class Lookups:
    """Milliseconds per profile lookup (both namespaces in one read transaction), and how many hit."""

    latencies_ms: list[float]
    found: int


def lookup_profiles(state_path: str, people_file: str, count: int, seed: int = 5) -> Lookups:
    """`count` lookups of uniformly random known shoppers, one at a time, through the store's reader.

    Run it in a worker (`parallel.run_jobs(isolate=True)`): the store's pages it maps stay out of the
    benchmark process, whose memory every later child inherits at fork.
    """
    from resources.state import StateResource  # the store's module opens LMDB: only in the worker

    users = read_people(people_file)["user_id"].to_list()
    pick = random.Random(seed)
    store = StateResource(uri=state_path).store()
    latencies, found = [], 0
    for _ in range(count):
        user = pick.choice(users)
        started = time.perf_counter()
        with store.reader() as reader:
            hits = [reader.get_many(namespace, [user]) for namespace in LOOKUP_NAMESPACES]
        latencies.append((time.perf_counter() - started) * 1000)
        found += bool(hits[0])
    return Lookups(latencies, found)

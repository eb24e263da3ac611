"""The lake's writer locks: one per lane, so that an ingest commit never waits for a delivery.

`ingest` guards what the ingest lane writes (events, quarantine, identities, ingest_log, catalog,
customers, profile state); `decide` what the decide lane writes (triggers, trigger_state, sends). Work
that changes everything (erasure, maintenance, a state rebuild, what the emails earn) takes both, always
in the order of `LANES`, so that two such holders never deadlock.

`flock` locks belong to an open file: two threads of one process (the runner's two lanes) exclude each
other as two processes do, and the kernel releases a lock when its holder dies, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

INGEST, DECIDE = "ingest", "decide"
LANES = (INGEST, DECIDE)  # the one order in which locks are taken


def lock_path(root: Path, lane: str) -> Path:
    return root / f"_lakemail_{lane}.lock"


@contextmanager
def _one(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def lane_locks(root: Path | None, lanes: tuple[str, ...]) -> Iterator[None]:
    """Hold the locks of `lanes` (in `LANES` order, whatever order they are named in) under `root`.

    Without a local folder (an object store) nothing is locked here: delta-rs' own locking provider
    keeps commits atomic, and one run per lane is then the orchestrator's job.
    """
    unknown = set(lanes) - set(LANES)
    if unknown:
        raise ValueError(f"unknown lake lane(s): {', '.join(sorted(unknown))}")
    if root is None:
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        for lane in (lane for lane in LANES if lane in lanes):
            held.enter_context(_one(lock_path(root, lane)))
        yield

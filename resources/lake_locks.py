"""The lake's writer locks: one per lane, so that an ingest commit never waits for a delivery.

`ingest` guards what the ingest lane writes (events, quarantine, identities, ingest_log, catalog,
customers, profile_updates); `decide` what the decide lane writes (triggers, trigger_state, sends);
`profiles` the profiles refresh (profile_state, profiles), held from what a fold or a refresh reads to
its commit, minutes on a big lake; `measure` what the emails earn (attributions, experiments), held from
its reads of the whole lake to its commits, as long on a big lake. Work that changes everything (erasure,
maintenance, a state rebuild) takes all four, always in the order of `LANES`, so that two such holders
never deadlock. `measure` and `profiles` come first: such work waits for a long measurement or fold
holding no other lock, so neither lane stalls behind them (a fold takes `ingest` inside it, briefly, for
its delete; a measurement too, once, to set up the tables the ingest sets up).

`flock` locks belong to an open file: two threads of one process (the runner's two lanes) exclude each
other as two processes do, and the kernel releases a lock when its holder dies, even on SIGKILL.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

MEASURE, PROFILES, INGEST, DECIDE = "measure", "profiles", "ingest", "decide"
LANES = (MEASURE, PROFILES, INGEST, DECIDE)  # the one order in which locks are taken


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


class LakeLocks:
    """The lake's lock methods, for `resources.lake.LakeResource` (its `root`)."""

    @property
    def root(self) -> Path | None:
        raise NotImplementedError

    def ingest_lock(self) -> AbstractContextManager[None]:
        """The ingest lane's writer lock (events, quarantine, identities, ingest_log, reference, partials)."""
        return lane_locks(self.root, (INGEST,))

    def decide_lock(self) -> AbstractContextManager[None]:
        """The decide lane's writer lock (triggers, trigger_state, sends): never waited for by ingest."""
        return lane_locks(self.root, (DECIDE,))

    def profiles_lock(self) -> AbstractContextManager[None]:
        """The profiles refresh's lock (profile_state, profiles), from what it reads to its commit: an
        erasure waits for it rather than be undone by it; never waited for by either lane."""
        return lane_locks(self.root, (PROFILES,))

    def measure_lock(self) -> AbstractContextManager[None]:
        """What the emails earn (attributions, experiments), from its reads to its commits: an erasure
        waits for it rather than be undone by it; never waited for by either lane (found by review: it
        took every lock, so no micro-batch committed while it read the whole lake)."""
        return lane_locks(self.root, (MEASURE,))

    def writer_lock(self) -> AbstractContextManager[None]:
        """Every lock, in their fixed order: for work that changes every table (erasure, maintenance, a
        state rebuild); no micro-batch of either lane, profiles refresh or measurement commits meanwhile."""
        return lane_locks(self.root, LANES)

"""What wakes an idle lane of `lakemail runner` before its next poll (#17).

A lane with nothing to do polls the lake every `POLL_SECONDS` (0.25 s): a file landing, or a batch the
store commits, waited up to a poll (0.125 s on average) before a run started, in every landed -> email.
Between polls the lane now looks at a signal that costs a few microseconds, every `WAKE_SECONDS`, and
polls at once when it moves:

- ingest: the landing zone's `events/` folder (its mtime and inode): a producer's file renamed into it,
  or a new sub-folder, changes it (a file landing deeper is seen at the next poll, as before);
- decide: the state store's ingest stamp, the last batch the store holds: what the decide lane decides
  from (`orchestration.lanes.DecideWork`), moved by the ingest lane's store commit in another process.

The polls stay: due triggers and outbox rows, and whatever a signal does not show, are found by them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from orchestration.lanes import stored_batch
from resources.landing import LandingResource
from resources.state import StateResource

WAKE_SECONDS = 0.02
Signal = Callable[[], Hashable]


def landing_signal(landing: LandingResource) -> Signal | None:
    """The landing zone's `events/` folder as it stands (None: the landing zone is not a folder here)."""
    try:
        folder = landing.root / "events"
    except ValueError:
        return None
    return lambda: _folder_stamp(folder)


def store_signal(state: StateResource) -> Signal:
    """The last batch the state store holds (None while there is no store)."""
    return lambda: stored_batch(state)


def idle(stop: threading.Event, seconds: float, signal: Signal | None) -> bool:
    """Wait up to `seconds`, or until `stop` is set or `signal` moves; whether it moved."""
    if signal is None:
        stop.wait(seconds)
        return False
    seen, deadline = signal(), time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        stop.wait(min(WAKE_SECONDS, left))
        if signal() != seen:
            return True
    return False


def _folder_stamp(folder: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(folder)
    except OSError:
        return None
    return found.st_mtime_ns, found.st_ino

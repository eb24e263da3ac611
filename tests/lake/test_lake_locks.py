"""The lake's writer locks (#15): one per lane, so an ingest commit never waits for a delivery; work that
changes everything takes both, in one fixed order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from resources.lake import LakeResource
from resources.lake_locks import lane_locks

Lock = Callable[[LakeResource], AbstractContextManager[None]]
INGEST: Lock = LakeResource.ingest_lock
DECIDE: Lock = LakeResource.decide_lock
BOTH: Lock = LakeResource.writer_lock


def acquired_within(lake: LakeResource, lock: Lock, seconds: float) -> bool:
    """Whether another thread gets `lock` within `seconds` (it lets go at once)."""
    got = threading.Event()

    def take() -> None:
        with lock(lake):
            got.set()

    threading.Thread(target=take, daemon=True).start()
    return got.wait(seconds)


@pytest.mark.parametrize(
    ("held", "wanted", "waits"),
    [
        (DECIDE, INGEST, False),  # a delivery in flight: the next ingest commit goes ahead
        (INGEST, DECIDE, False),
        (INGEST, INGEST, True),  # one writer per lane
        (DECIDE, DECIDE, True),
        (DECIDE, BOTH, True),  # erasure, maintenance, a state rebuild wait for either lane
        (INGEST, BOTH, True),
        (BOTH, INGEST, True),
        (BOTH, DECIDE, True),
    ],
    ids=[
        "decide-held-ingest-goes",
        "ingest-held-decide-goes",
        "ingest-ingest",
        "decide-decide",
        "decide-held-both-waits",
        "ingest-held-both-waits",
        "both-held-ingest-waits",
        "both-held-decide-waits",
    ],
)
def test_each_lane_has_its_own_lock_and_both_exclude_either(
    lake: LakeResource, held: Lock, wanted: Lock, waits: bool
) -> None:
    with held(lake):
        assert acquired_within(lake, wanted, 0.5 if waits else 5.0) is not waits
    assert acquired_within(lake, wanted, 5.0)  # and it gets it once the holder lets go


def test_both_locks_are_taken_in_one_order_whatever_order_they_are_named_in(lake: LakeResource) -> None:
    """Two holders of both locks, named in opposite orders, never deadlock (200 rounds each)."""
    root = lake.root
    assert root is not None
    done: list[str] = []

    def hammer(lanes: tuple[str, ...]) -> None:
        for _ in range(200):
            with lane_locks(root, lanes):
                time.sleep(0)
        done.append("/".join(lanes))

    threads = [
        threading.Thread(target=hammer, args=(lanes,), daemon=True)
        for lanes in (("ingest", "decide"), ("decide", "ingest"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(done) == ["decide/ingest", "ingest/decide"]


def test_an_unknown_lane_is_refused(lake: LakeResource) -> None:
    with pytest.raises(ValueError, match="unknown lake lane"), lane_locks(lake.root, ("sends",)):
        pass

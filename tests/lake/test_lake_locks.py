"""The lake's writer locks (#15): one per lane, so an ingest commit never waits for a delivery, one for
the profiles refresh and one for what the emails earn, which neither lane waits for; work that changes
everything takes all four, in one fixed order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from resources.lake import LakeResource
from resources.lake_locks import lane_locks
from tests.lake.overlap import Overlapping

Lock = Callable[[LakeResource], AbstractContextManager[None]]
INGEST: Lock = LakeResource.ingest_lock
DECIDE: Lock = LakeResource.decide_lock
PROFILES: Lock = LakeResource.profiles_lock
MEASURE: Lock = LakeResource.measure_lock
ALL: Lock = LakeResource.writer_lock


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
        (DECIDE, ALL, True),  # erasure, maintenance, a state rebuild wait for either lane
        (INGEST, ALL, True),
        (ALL, INGEST, True),
        (ALL, DECIDE, True),
        (PROFILES, INGEST, False),  # a fold in flight: neither lane waits for it
        (PROFILES, DECIDE, False),
        (INGEST, PROFILES, False),
        (PROFILES, PROFILES, True),  # one fold or profiles rewrite at a time
        (PROFILES, ALL, True),  # an erasure waits for the fold rather than be undone by it
        (ALL, PROFILES, True),
        (MEASURE, INGEST, False),  # what the emails earn, reading the whole lake: neither lane waits
        (MEASURE, DECIDE, False),
        (MEASURE, PROFILES, False),
        (INGEST, MEASURE, False),
        (MEASURE, MEASURE, True),  # one measurement at a time
        (MEASURE, ALL, True),  # an erasure waits for it rather than be undone by it
        (ALL, MEASURE, True),
    ],
    ids=[
        "decide-held-ingest-goes",
        "ingest-held-decide-goes",
        "ingest-ingest",
        "decide-decide",
        "decide-held-all-waits",
        "ingest-held-all-waits",
        "all-held-ingest-waits",
        "all-held-decide-waits",
        "profiles-held-ingest-goes",
        "profiles-held-decide-goes",
        "ingest-held-profiles-goes",
        "profiles-profiles",
        "profiles-held-all-waits",
        "all-held-profiles-waits",
        "measure-held-ingest-goes",
        "measure-held-decide-goes",
        "measure-held-profiles-goes",
        "ingest-held-measure-goes",
        "measure-measure",
        "measure-held-all-waits",
        "all-held-measure-waits",
    ],
)
def test_each_lane_has_its_own_lock_and_all_exclude_each(
    lake: LakeResource, held: Lock, wanted: Lock, waits: bool
) -> None:
    with held(lake):
        assert acquired_within(lake, wanted, 0.5 if waits else 5.0) is not waits
    assert acquired_within(lake, wanted, 5.0)  # and it gets it once the holder lets go


def test_an_erasure_waiting_for_a_fold_holds_up_neither_lane(
    lake: LakeResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The profiles lock comes first: work that takes every lock waits for a long fold holding none."""
    taken: list[str] = []

    def take_all() -> None:
        with ALL(lake):
            taken.append("all")

    with PROFILES(lake):
        waiter = Overlapping(monkeypatch, take_all).start()  # once it waits on a lock the fold holds
        assert waiter.waited
        assert acquired_within(lake, INGEST, 5.0)
        assert acquired_within(lake, DECIDE, 5.0)
    waiter.join()
    assert taken == ["all"]


def test_an_erasure_waiting_for_a_measurement_holds_up_neither_lane(
    lake: LakeResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The measure lock comes first too: work that takes every lock waits for a long measurement holding
    none of the lanes' locks."""
    taken: list[str] = []

    def take_all() -> None:
        with ALL(lake):
            taken.append("all")

    with MEASURE(lake):
        waiter = Overlapping(monkeypatch, take_all).start()
        assert waiter.waited
        assert acquired_within(lake, INGEST, 5.0)
        assert acquired_within(lake, DECIDE, 5.0)
        assert acquired_within(lake, PROFILES, 5.0)
    waiter.join()
    assert taken == ["all"]


def test_the_locks_are_taken_in_one_order_whatever_order_they_are_named_in(lake: LakeResource) -> None:
    """Holders of several locks, named in different orders, never deadlock (200 rounds each)."""
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
        for lanes in (
            ("ingest", "decide"),
            ("decide", "ingest"),
            ("decide", "ingest", "profiles"),
            ("ingest", "profiles"),  # a fold's delete inside its own lock
            ("ingest", "measure"),  # a measurement's table set-up inside its own lock
        )
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(done) == [
        "decide/ingest",
        "decide/ingest/profiles",
        "ingest/decide",
        "ingest/measure",
        "ingest/profiles",
    ]


def test_an_unknown_lane_is_refused(lake: LakeResource) -> None:
    with pytest.raises(ValueError, match="unknown lake lane"), lane_locks(lake.root, ("sends",)):
        pass

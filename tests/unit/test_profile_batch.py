"""Profile lookups in batches (#16.3): lookups waiting while one batch is read are answered by the next
single call; a failure reaches every lookup of its batch, and the next batch is read all the same."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from services.collector.profile_batch import MAX_BATCH, ProfileBatcher
from services.collector.profile_store import Profile


class Lookup:
    """A store stand-in: records each call; the first call waits until released (a slow derivation)."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.fail = fail

    def __call__(self, users: Sequence[str]) -> dict[str, Profile | None]:
        self.calls.append(list(users))
        if len(self.calls) == 1:
            assert self.release.wait(10)
        if self.fail and len(self.calls) == 1:
            raise RuntimeError("store gone")
        return {u: Profile({"user_id": u}, {"ingest": 1}) if u.startswith("u") else None for u in users}


def test_lookups_that_wait_are_answered_by_one_call() -> None:
    lookup = Lookup()

    async def scenario() -> list[Profile | None]:
        batcher = ProfileBatcher(lookup)
        first = asyncio.create_task(batcher.get("u-0"))
        await asyncio.sleep(0.05)  # the first batch is being read
        rest = [asyncio.create_task(batcher.get(u)) for u in ["u-1", "u-2", "x-3", "u-1"]]
        await asyncio.sleep(0.05)
        lookup.release.set()
        return [await first, *[await r for r in rest]]

    answers = asyncio.run(scenario())
    assert lookup.calls == [["u-0"], ["u-1", "u-2", "x-3"]]  # the same user once per batch
    assert [a.row["user_id"] if a else None for a in answers] == ["u-0", "u-1", "u-2", None, "u-1"]


def test_a_failed_batch_fails_its_lookups_only_and_batches_are_bounded() -> None:
    lookup = Lookup(fail=True)

    async def scenario() -> int:
        batcher = ProfileBatcher(lookup)
        first = asyncio.create_task(batcher.get("u-0"))
        await asyncio.sleep(0.05)
        many = [asyncio.create_task(batcher.get(f"u-{n}")) for n in range(1, MAX_BATCH + 11)]
        await asyncio.sleep(0.05)
        lookup.release.set()
        with pytest.raises(RuntimeError):
            await first
        return sum(1 for r in await asyncio.gather(*many) if r is not None)

    answered = asyncio.run(scenario())
    assert answered == MAX_BATCH + 10
    assert [len(c) for c in lookup.calls] == [1, MAX_BATCH, 10]

"""Profile lookups in batches: the lookups that arrive while one batch is read wait for the next.

Deriving a profile is a vectorised Polars query whose cost is mostly per call, not per row: one call
for every lookup waiting answers them all in about the time of one. At low load a batch is one lookup
(no added wait); under load the batches grow instead of the queue. One batch is read at a time, in
the thread pool (store reads and the derivation block).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool

from services.collector.profile_store import Profile

MAX_BATCH = 256  # lookups answered by one derivation

Lookup = Callable[[Sequence[str]], dict[str, Profile | None]]


class ProfileBatcher:
    """`await get(user_id)`: the profile (None: unknown, anonymous-only or erased) from `lookup`."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._waiting: dict[str, list[asyncio.Future[Profile | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def get(self, user_id: str) -> Profile | None:
        future: asyncio.Future[Profile | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(user_id, []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        return await future

    async def _read(self) -> None:
        while self._waiting:
            users = list(self._waiting)[:MAX_BATCH]
            batch = {user: self._waiting.pop(user) for user in users}
            try:
                found = await run_in_threadpool(self._lookup, users)
            except Exception as error:  # every lookup of the batch gets it (the route answers 500/503)
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                continue
            for user, futures in batch.items():
                for future in futures:
                    if not future.done():  # a client that went away
                        future.set_result(found.get(user))

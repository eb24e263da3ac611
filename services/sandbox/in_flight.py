"""Mail-send requests being answered, by `send_id`: one at a time, and a look-up after them.

A request takes its send's turn on receipt, before any scripted fault delays it, and keeps it until
its message is stored or refused. A later request for the same send waits for it, then finds the
message stored and is answered with it (no second message); a look-up by `send_id` waits for every
request received before it, so it never says "not taken" of a message still on its way in.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class InFlight:
    """Per-send turns, first come first served (one event loop: no thread touches this)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    @asynccontextmanager
    async def turn(self, send_id: str, wait: float | None = None) -> AsyncIterator[None]:
        """Hold `send_id`'s turn: after every request for it received before, before those after.

        Raises TimeoutError when `wait` seconds pass before the turn comes (None: wait as long as it takes).
        """
        lock = self._locks.setdefault(send_id, asyncio.Lock())
        self._users[send_id] += 1
        try:
            await asyncio.wait_for(lock.acquire(), wait)
            try:
                yield
            finally:
                lock.release()
        finally:
            self._users[send_id] -= 1
            if not self._users[send_id]:  # nobody holds or waits for it: forget it
                del self._users[send_id], self._locks[send_id]

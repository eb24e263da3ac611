"""Group commit: the messages of many concurrent requests land as one file, one fsync for all of them.

A request hands its lines to `GroupCommitter.commit` and waits. Files start at most one per `linger`
seconds: a request that finds the committer idle and the last file started longer ago than that lands at
once (a quiet collector answers in the time of one fsync), the others gather until `linger` after the
last file's start (or until `max_messages` / `max_bytes`), so a busy collector writes a few files a second
however many requests come. Each file is landed with `resources.landing.land`: a temporary name, fsync,
rename, fsync of the folder. Only then are its requests told it is done, so a 200 always means durable.
While one file is being written the next gathers. A failed write fails every request of that file: none of
them is answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resources.landing import land
from services.collector.wire import stamp

log = logging.getLogger(__name__)
Writer = Callable[[Path, str, bytes], Path]


class QueueFull(Exception):
    """The committer holds as many bytes as it may: come back later (429)."""


class CommitFailed(Exception):
    """The file could not be written; nothing of it is acknowledged (503)."""


@dataclass
class CommitStats:
    """Files landed, messages and bytes in them, and fsyncs (two per file: the file and its folder)."""

    files: int = 0
    messages: int = 0
    bytes: int = 0
    failures: int = 0

    @property
    def fsyncs(self) -> int:
        return 2 * self.files


@dataclass
class _Waiting:
    data: bytes
    messages: int
    done: asyncio.Future[str]


@dataclass
class GroupCommitter:
    """Lands the lines of waiting requests in `folder`, many requests per file (see the module)."""

    folder: Path
    linger: float = 0.1
    max_messages: int = 5000
    max_bytes: int = 16 * 1024 * 1024
    max_queued_bytes: int = 64 * 1024 * 1024
    writer: Writer = land
    on_landed: Callable[[int], None] | None = None  # hears the size of each file landed
    stats: CommitStats = field(default_factory=CommitStats)
    _waiting: list[_Waiting] = field(default_factory=list)
    _queued_bytes: int = 0  # waiting plus being written
    _last_start: float = float("-inf")  # when the last file started (the loop's clock)
    _arrived: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _sequence: int = 0

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def start(self) -> None:
        """Start the committing task on the running loop."""
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group commit")

    async def stop(self) -> None:
        """Land what is waiting, then stop."""
        if self._task is None:
            return
        while self._queued_bytes and not self._task.done():  # waiting or being written
            await asyncio.sleep(self.linger / 4)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def commit(self, data: bytes, messages: int) -> str:
        """Wait until `data` (NDJSON lines of `messages` messages) is durable; returns its file's name.

        Raises QueueFull at once when the committer already holds `max_queued_bytes`, CommitFailed
        when the file could not be written.
        """
        if self._task is None or self._arrived is None:
            raise RuntimeError("the committer is not started")
        if self._queued_bytes + len(data) > self.max_queued_bytes:
            raise QueueFull(f"{self._queued_bytes} bytes wait to be landed")
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(data, messages, done))
        self._queued_bytes += len(data)
        self._arrived.set()
        return await asyncio.shield(done)  # a caller that goes away does not cancel the others' file

    async def _run(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            while not self._full():
                remaining = self._last_start + self.linger - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            taken, self._waiting = self._waiting, []
            self._arrived.clear()
            if taken:
                self._last_start = loop.time()
                await self._land(taken)
            if self._waiting:  # arrived while writing: they land `linger` after this file started
                self._arrived.set()

    def _full(self) -> bool:
        return (
            sum(w.messages for w in self._waiting) >= self.max_messages
            or sum(len(w.data) for w in self._waiting) >= self.max_bytes
        )

    async def _land(self, taken: list[_Waiting]) -> None:
        data = b"".join(w.data for w in taken)
        messages = sum(w.messages for w in taken)
        try:
            path = await asyncio.to_thread(self.writer, self.folder, self._next_name(), data)
        except Exception as error:  # any failure: not one of these requests may hear 200
            self.stats.failures += 1
            log.error("landing %s messages failed: %s", messages, error)
            outcome: tuple[str | None, BaseException | None] = (None, CommitFailed(str(error)))
        else:
            self.stats.files += 1
            self.stats.messages += messages
            self.stats.bytes += len(data)
            if self.on_landed is not None:
                self.on_landed(len(data))
            outcome = (path.name, None)
        finally:
            self._queued_bytes -= len(data)
        for waiting in taken:
            if waiting.done.done():
                continue
            if outcome[1] is not None:
                waiting.done.set_exception(outcome[1])
            else:
                waiting.done.set_result(str(outcome[0]))

    def _next_name(self) -> str:
        """`collector-<UTC time>-<pid>-<n>.ndjson`: sorts by time, unique per process."""
        self._sequence += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        return f"collector-{stamp}-{os.getpid()}-{self._sequence:08d}.ndjson"


async def land_one(committer: GroupCommitter, message: dict[str, Any], at: datetime) -> bool:
    """Land one message the collector made itself (a click, an unsubscribe), received `at`; False (and a
    warning without its data) when it could not be: the committer is full or the write failed."""
    received = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = stamp([message], sent_at=None, received_at=received).lines
    try:
        await committer.commit(b"".join(lines), len(lines))
    except (QueueFull, CommitFailed) as error:
        log.warning("a %s event could not be landed: %s", message.get("event"), type(error).__name__)
        return False
    return True

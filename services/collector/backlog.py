"""Bounded disk: the collector stops taking messages (503 with Retry-After) while the landing zone holds
more than it may of what the micro-batches have not ingested yet, or the disk is nearly full.

A probe measures the backlog every `interval` seconds off the event loop; between two probes the
collector adds what it landed itself, so a burst cannot overshoot the bound by more than one request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import backlog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backlog:
    """Landed files not ingested yet (count and bytes) and the free bytes of the landing zone's disk."""

    files: int
    bytes: int
    free_bytes: int
    oldest_landed_at: float | None = None  # epoch seconds of the oldest file waiting (None: none waits)


@dataclass(frozen=True)
class BacklogLimits:
    max_files: int = 20_000
    max_bytes: int = 1024 * 1024 * 1024
    min_free_bytes: int = 256 * 1024 * 1024


def landing_backlog(lake_uri: str, landing_uri: str) -> Callable[[], Backlog]:
    """A probe of the real backlog: landed files that `ingest_log` has no row for, and the disk's room."""
    lake, landing = LakeResource(uri=lake_uri), LandingResource(uri=landing_uri)

    def probe() -> Backlog:
        _, pending = backlog(lake, landing)
        free = shutil.disk_usage(landing.root if landing.root.exists() else landing.root.parent).free
        oldest = pending["landed_at"].min() if pending.height else None
        at = oldest.timestamp() if isinstance(oldest, datetime) else None
        return Backlog(pending.height, int(pending["bytes"].sum() or 0), free, at)

    return probe


class BacklogGate:
    """Says why new messages must wait (`refusal`), from the last probe plus what landed since."""

    def __init__(
        self, probe: Callable[[], Backlog], limits: BacklogLimits | None = None, interval: float = 1.0
    ) -> None:
        self.probe, self.limits, self.interval = probe, limits or BacklogLimits(), interval
        self.last: Backlog | None = None
        self._files_since = self._bytes_since = 0
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Measure now (off the loop); a failed probe keeps the last figures and says so in the log."""
        try:
            measured = await asyncio.to_thread(self.probe)
        except Exception as error:
            log.warning("backlog probe failed (the last figures stand): %s", error)
            return
        self.last, self._files_since, self._bytes_since = measured, 0, 0

    def landed(self, size: int) -> None:
        """One file of `size` bytes landed by this collector since the last probe."""
        self._files_since += 1
        self._bytes_since += size

    def refusal(self) -> str | None:
        """Why the collector must not take messages now, None when it may."""
        if self.last is None:
            return None
        files = self.last.files + self._files_since
        size = self.last.bytes + self._bytes_since
        if files > self.limits.max_files:
            return f"{files} landed files wait to be ingested (bound {self.limits.max_files})"
        if size > self.limits.max_bytes:
            return f"{size} landed bytes wait to be ingested (bound {self.limits.max_bytes})"
        if self.last.free_bytes - self._bytes_since < self.limits.min_free_bytes:
            return f"the landing zone's disk has less than {self.limits.min_free_bytes} bytes free"
        return None

    async def start(self) -> None:
        """Probe once, then every `interval` seconds in the background."""
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="backlog probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()

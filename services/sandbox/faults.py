"""Scripted provider faults: queued through `POST /api/faults`, consumed in order by mail-send requests.

When each kind applies (to authenticated requests only; a 401 consumes nothing, nor does a request
answered with the message an earlier request of the same send stored):
- `status` and `rate_limit` answer before the payload is validated, as an overloaded provider would;
- `slow` delays, then the request is validated and processed normally;
- `accept_then_hang` needs a valid payload: it stores the message, then holds the answer for `seconds`
  before the 202. An invalid payload gets its 400 and leaves this fault queued for the next request.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

KINDS = ("status", "rate_limit", "slow", "accept_then_hang")
MAX_SECONDS = 600.0


class FaultError(ValueError):
    """A fault request that cannot be scripted (the message says which field and why)."""


@dataclass
class Fault:
    """One scripted fault; `times` is how many more requests it applies to."""

    kind: str
    times: int = 1
    status: int = 0  # kind "status": the HTTP status to answer
    seconds: float = 0.0  # slow / accept_then_hang: the delay; rate_limit: seconds until the reset

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"kind": self.kind, "times": self.times}
        if self.kind == "status":
            shown["status"] = self.status
        elif self.kind == "rate_limit":
            shown["reset_seconds"] = self.seconds
        else:
            shown["seconds"] = self.seconds
        return shown

    def rate_limit_headers(self, now: float) -> dict[str, str]:
        """`X-RateLimit-Reset` (integer epoch seconds, in the future) and `Retry-After` (whole seconds)."""
        reset = math.ceil(now + max(self.seconds, 0.001))
        return {"X-RateLimit-Reset": str(reset), "Retry-After": str(max(1, math.ceil(reset - now)))}


def parse_faults(payload: object) -> list[Fault]:
    """One fault object or a list of them, validated."""
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise FaultError("expected a fault object or a non-empty list of them")
    return [_fault(item) for item in items]


def _fault(item: object) -> Fault:
    if not isinstance(item, dict):
        raise FaultError("a fault must be an object")
    kind = item.get("kind")
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}")
    times = item.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise FaultError("times must be a positive integer")
    if kind == "status":
        status = item.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise FaultError("status must be an integer from 400 to 599")
        return Fault(kind, times, status=status)
    field = "reset_seconds" if kind == "rate_limit" else "seconds"
    seconds = item.get(field, 1 if kind == "rate_limit" else None)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_SECONDS:
        raise FaultError(f"{field} must be a number from 0 to {MAX_SECONDS:g}")
    return Fault(kind, times, seconds=float(seconds))


class FaultQueue:
    """Pending faults, first in first out; each request consumes one `times` of the head fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()

    def add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._queue.extend(faults)

    def pending(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.as_dict() for fault in self._queue]

    def clear(self) -> int:
        """Drop every pending fault; returns how many there were."""
        with self._lock:
            count = len(self._queue)
            self._queue.clear()
            return count

    def peek(self) -> Fault | None:
        with self._lock:
            return self._queue[0] if self._queue else None

    def take(self, fault: Fault) -> None:
        """Consume one application of `fault` (the head, as `peek` returned it)."""
        with self._lock:
            if self._queue and self._queue[0] is fault:
                fault.times -= 1
                if fault.times <= 0:
                    self._queue.popleft()

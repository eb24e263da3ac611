"""The wire format the simulator writes: Segment-spec messages as NDJSON lines, and their timestamps.

Time is integer milliseconds since the epoch; timestamps are ISO-8601 UTC with milliseconds, built from
a cached second and a precomputed millisecond suffix (the hot path writes >100k of them a second).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

LineKind = Literal["ok", "duplicate", "malformed"]
Message = dict[str, Any]
MAX_LINE_BYTES = 32 * 1024  # Segment's limit for one message; longer lines are quarantined
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLIS = tuple(f".{milli:03d}Z" for milli in range(1000))


@dataclass(frozen=True, slots=True)
class SimLine:
    """One NDJSON line (no newline), what it is, and for a malformed line why."""

    data: bytes
    kind: LineKind
    reason: str | None = None
    message_id: str | None = None


@lru_cache(maxsize=8192)
def iso_second(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS` of a second since the epoch (cached: seconds repeat a lot)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. `2026-11-22T10:00:00.123Z`."""
    return iso_second(epoch_ms // 1000) + MILLIS[epoch_ms % 1000]


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of a timezone-aware datetime (integer arithmetic, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def uuid4(raw: bytes) -> str:
    """16 random bytes as a version-4 shaped UUID string."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"

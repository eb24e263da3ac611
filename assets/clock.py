"""The run's one clock: `now` from the run config (the wall clock only when none is given)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg


class EngineConfig(dg.Config):
    """`now` (ISO-8601) evaluates time-based triggers as of that instant; none means the clock."""

    now: str | None = None


def engine_now(config: EngineConfig) -> datetime:
    return engine_clock(config)[0]


def engine_clock(config: EngineConfig) -> tuple[datetime, timedelta]:
    """The run's `now`, and how far it is from the wall clock (zero when the run config gives none).

    Every decision of the run is taken at `now`; the offset only moves wall-clock facts (when a file
    landed, when a provider answered) onto the run's timeline, so durations stay real durations.
    """
    wall = datetime.now(UTC)
    if config.now is None:
        return wall, timedelta(0)
    moment = datetime.fromisoformat(config.now)
    now = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return now, now - wall


def run_now(run_config: Mapping[str, Any]) -> datetime:
    """The run's `now` as its run config gives it to its ops (the lanes' configs give each op the same one),
    for a step without a config of its own (the in-run checks); the wall clock when none is given."""
    for op in (run_config.get("ops") or {}).values():
        now = ((op or {}).get("config") or {}).get("now")
        if now is not None:
            return engine_now(EngineConfig(now=now))
    return datetime.now(UTC)

"""The run's one clock: `now` from the run config (the wall clock only when none is given)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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

"""The run's one clock: `now` from the run config (the wall clock only when none is given)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg


class EngineConfig(dg.Config):
    """`now` (ISO-8601) evaluates time-based triggers as of that instant; none means the clock."""

    now: str | None = None


def engine_now(config: EngineConfig) -> datetime:
    if config.now is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(config.now)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

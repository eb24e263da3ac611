"""Pure parts of `lakemail status`: latency percentiles and the health verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl


def latency_percentiles(events: pl.DataFrame, start: pl.Expr, end: pl.Expr) -> dict[str, float | None]:
    """p50/p95/p99/max of `end - start` in seconds over `events` (None when there are none)."""
    seconds = events.select(((end - start).dt.total_microseconds() / 1e6).alias("s"))["s"].drop_nulls()
    if seconds.len() == 0:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "count": seconds.len(),
        "p50": round(float(seconds.quantile(0.50, "linear") or 0), 3),
        "p95": round(float(seconds.quantile(0.95, "linear") or 0), 3),
        "p99": round(float(seconds.quantile(0.99, "linear") or 0), 3),
        "max": round(float(seconds.max() or 0), 3),  # type: ignore[arg-type]
    }


@dataclass(frozen=True)
class TableFreshness:
    """When a table last committed, measured against the newest landed file."""

    name: str
    last_commit_at: datetime | None
    lag_seconds: float | None  # newest landed file -> last commit; None when nothing landed
    stale: bool


def table_freshness(
    name: str, last_commit_at: datetime | None, newest_landed_at: datetime | None, max_lag: timedelta
) -> TableFreshness:
    """A table is stale when it last committed more than `max_lag` before the newest landed file."""
    if newest_landed_at is None:
        return TableFreshness(name, last_commit_at, None, False)
    if last_commit_at is None:
        return TableFreshness(name, None, None, True)
    lag = (newest_landed_at - last_commit_at).total_seconds()
    return TableFreshness(name, last_commit_at, round(lag, 3), lag > max_lag.total_seconds())


@dataclass(frozen=True)
class Health:
    """The verdict and the reasons behind an unhealthy one."""

    healthy: bool
    problems: list[str] = field(default_factory=list)


def judge(
    *,
    backlog_oldest_seconds: float | None,
    freshness: list[TableFreshness],
    last_run_status: str | None,
    failed_files_last_hour: int,
    max_lag: timedelta,
) -> Health:
    """Healthy when nothing waits too long, every ingest table is fresh, and the last run did not fail."""
    problems: list[str] = []
    if backlog_oldest_seconds is not None and backlog_oldest_seconds > max_lag.total_seconds():
        problems.append(f"backlog: oldest waiting file landed {backlog_oldest_seconds:.0f} s ago")
    problems += [f"stale table: {f.name}" for f in freshness if f.stale]
    if last_run_status in ("FAILURE", "CANCELED"):
        problems.append(f"last micro-batch run: {last_run_status}")
    if failed_files_last_hour:
        problems.append(f"{failed_files_last_hour} landed file(s) failed in the last hour")
    return Health(not problems, problems)

"""Pure parts of `lakemail status`: latency percentiles and the health verdict."""

from __future__ import annotations

from collections.abc import Sequence
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
    # A commit after the newest landed file is up to date: no lag, not a negative one.
    lag = max(0.0, (newest_landed_at - last_commit_at).total_seconds())
    return TableFreshness(name, last_commit_at, round(lag, 3), lag > max_lag.total_seconds())


@dataclass(frozen=True)
class Health:
    """The verdict and the reasons behind an unhealthy one."""

    healthy: bool
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunInFlight:
    """A micro-batch run queued or running, and why its executor is gone (None while it lives)."""

    run_id: str
    status: str
    age_seconds: float
    gone: str | None = None


FAILED_STATUSES = ("FAILURE", "CANCELED")  # a lane whose last finished run ended so: until one succeeds


@dataclass(frozen=True)
class LaneState:
    """One lane (#15) as status sees it: what takes it, its last finished run, the work waiting for it."""

    name: str
    takers: Sequence[str] | None = None  # None: unknown (a runner on an object-store lake leaves no beat)
    last_status: str | None = None  # its last finished run's (None: none finished yet)
    last_run_id: str | None = None
    waiting_seconds: float | None = None  # how long work has waited for a run of it (None: nothing waits)
    waiting_for: str = ""  # what waits, for the problem's line


@dataclass(frozen=True)
class OpenFailure:
    """A failed run of a job beside the lanes with no later run of it succeeded (of its request, for an
    erasure: `per_request`)."""

    job: str
    run_id: str
    status: str
    per_request: bool = False

    def problem(self) -> str:
        run = f"last run {self.status} ({self.run_id})"
        if self.per_request:
            return f"{self.job}: a request's {run}, no later run of it succeeded"
        return f"{self.job}: {run}, no later run succeeded"


@dataclass(frozen=True)
class FailedCertificate:
    """An erasure whose certificate found traces of the person left (its run succeeded), with no later
    erasure of that person (the same user key) certified clean."""

    request_id: str
    age_seconds: float

    def problem(self) -> str:
        return (
            f"erasure: certificate {self.request_id} ({self.age_seconds:.0f} s ago) found traces left, "
            "no later erasure of that person passed: its `checks` in `erasures` say where; remove them "
            "and erase the person again"
        )


@dataclass(frozen=True)
class ErasureWaiting:
    """GDPR erasure requests waiting in the landing zone's erasure folder (how many, the oldest's age) and
    the erasure runs queued or running, any of which may be taking them."""

    pending_requests: int = 0
    oldest_age_seconds: float | None = None
    runs_in_flight: int = 0

    def problem(self, max_lag: timedelta) -> str | None:
        """Requests waiting longer than `max_lag` with no erasure run to take them (the sensor launches one
        within seconds of a request landing, and again after a failed run's backoff): count and age only,
        never a file's name."""
        waited, pending = self.oldest_age_seconds, self.pending_requests
        if not pending or self.runs_in_flight or waited is None or waited <= max_lag.total_seconds():
            return None
        return (
            f"erasure: {pending} request(s) wait, the oldest for {waited:.0f} s, and no erasure run is "
            "queued or running (the Dagster daemon's `erasure_sensor` launches one within seconds): start "
            "`lakemail up` or turn the sensor on"
        )


def judge(
    *,
    backlog_oldest_seconds: float | None,
    freshness: list[TableFreshness],
    failed_files_last_hour: int,
    max_lag: timedelta,
    backlog_files: int = 0,
    in_flight: Sequence[RunInFlight] = (),
    takers: Sequence[str] | None = None,
    lanes: Sequence[LaneState] = (),
    failures: Sequence[OpenFailure | FailedCertificate] = (),
    erasure: ErasureWaiting | None = None,
) -> Health:
    """Healthy when nothing waits too long or with nobody to take it, every ingest table is fresh, no
    run is stuck, no lane's last run failed and no other job has an open failure. `takers`: what takes
    the ingest lane's files now (None: unknown); `lanes`: each lane's state (`lane_problems`); `erasure`:
    the erasure requests waiting (`ErasureWaiting.problem`)."""
    problems: list[str] = []
    limit = max_lag.total_seconds()
    for run in in_flight:
        if run.gone is not None:
            problems.append(f"stuck run {run.run_id}: {run.status} for {run.age_seconds:.0f} s, {run.gone}")
        elif run.age_seconds > limit:
            problems.append(f"run {run.run_id} has been {run.status} for {run.age_seconds:.0f} s")
    if backlog_files and takers is not None and not takers:
        problems.append(
            f"backlog: {backlog_files} file(s) wait and nothing takes them "
            "(no `lakemail runner` heartbeat for the ingest lane, no Dagster daemon running its sensor): "
            "start `lakemail up` or turn the sensor on"
        )
    if backlog_oldest_seconds is not None and backlog_oldest_seconds > limit:
        problems.append(f"backlog: oldest waiting file landed {backlog_oldest_seconds:.0f} s ago")
    problems += [f"stale table: {f.name}" for f in freshness if f.stale]
    for lane in lanes:
        problems += lane_problems(lane, max_lag)
    problems += [failure.problem() for failure in failures]
    if erasure is not None and (waiting := erasure.problem(max_lag)) is not None:
        problems.append(waiting)
    if failed_files_last_hour:
        problems.append(f"{failed_files_last_hour} landed file(s) failed in the last hour")
    return Health(not problems, problems)


def lane_problems(lane: LaneState, max_lag: timedelta) -> list[str]:
    """A lane whose last finished run failed (until a later run of it succeeds), and work waiting longer
    than `max_lag` for a lane that nothing takes (or nothing known to: judged by age alone)."""
    problems: list[str] = []
    if lane.last_status in FAILED_STATUSES:
        problems.append(
            f"{lane.name} lane: last run {lane.last_status} ({lane.last_run_id}), no later run succeeded"
        )
    waited = lane.waiting_seconds
    if waited is not None and waited > max_lag.total_seconds() and not lane.takers:
        nobody = (
            f" and nothing takes it (no `lakemail runner` heartbeat for the {lane.name} lane, "
            "no Dagster daemon running its sensor): start `lakemail up` or turn the sensor on"
            if lane.takers is not None
            else ""
        )
        problems.append(f"{lane.name} lane: work waiting for {waited:.0f} s ({lane.waiting_for}){nobody}")
    return problems

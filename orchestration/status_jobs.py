"""`lakemail status`: the open failures of the jobs beside the lanes (the audits, maintenance, the
profiles refresh, what the emails earn, erasure), each until a later run of it succeeds.

A scheduled job's next run does the same work again, so its last finished run says whether it works. An
erasure run carries out its own requests (`run_config_for`), so another person's erasure honours nothing
of a request whose run failed: that failure stays open until a later run of the same request succeeds,
or a run over every pending request (no config: the UI's) does. A job that never ran has not failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import dagster as dg

from assets.erasure import ERASE_OP
from orchestration.jobs import ERASURE_JOB, SCHEDULED_JOBS
from orchestration.status_lanes import FINISHED, run_summary
from transforms.operations.status import FAILED_STATUSES


def job_failures(instance: dg.DagsterInstance | None, now: datetime) -> list[dict[str, Any]]:
    """The open failures of the scheduled jobs and of erasure requests, as `run_summary`s."""
    if instance is None:
        return []
    found: list[dg.RunRecord] = []
    for job in SCHEDULED_JOBS:
        last = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=FINISHED), limit=1)
        found += [r for r in last if r.dagster_run.status.value in FAILED_STATUSES]
    erasures = instance.get_run_records(dg.RunsFilter(job_name=ERASURE_JOB, statuses=FINISHED))
    found += erasure_failures(erasures)
    return [summary for r in found if (summary := run_summary([r], now)) is not None]


def requested(run: dg.DagsterRun) -> tuple[str, ...] | None:
    """The request files an erasure run was given (None: every pending request)."""
    config: dict[str, Any] = dict(run.run_config or {})
    ops: dict[str, Any] = config.get("ops") or {}
    paths = ((ops.get(ERASE_OP) or {}).get("config") or {}).get("requests")
    return None if paths is None else tuple(str(p) for p in paths)


def erasure_failures(newest_first: Iterable[dg.RunRecord]) -> list[dg.RunRecord]:
    """The failed erasure runs with a request no later run carried out (each request's newest failure),
    back to the last run over every pending request that succeeded."""
    cleared: set[str] = set()  # requests a later run carried out
    named: set[str] = set()  # requests a later failure names already
    found: list[dg.RunRecord] = []
    for record in newest_first:
        run = record.dagster_run
        paths, failed = requested(run), run.status.value in FAILED_STATUSES
        if paths is None and not failed:
            break  # it carried out every request pending then
        keys = {"every pending request"} if paths is None else set(paths)
        if not failed:
            cleared |= keys
        elif keys - cleared - named:
            found.append(record)
            named |= keys
    return found

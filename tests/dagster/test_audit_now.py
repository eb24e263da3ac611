"""The audit takes the run's `now` from its run config (found by review): it read the wall clock for its
window and its freshness limits while every other job takes time from its run config (assets/clock.py).
Its monitor checks, in the same run, judge as of the same `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.operations.checks import INGEST_TABLES
from tests.conftest import land
from tests.dagster.test_audits import audit_definitions, resources_of
from tests.events_data import file_lines
from tests.lake.test_checks import good_lake

AUDIT = "audit_results"


def audit_at(now: datetime | None) -> dict[str, object]:
    """The hourly audit's run config, as of `now` (None: the wall clock)."""
    at = None if now is None else now.isoformat()
    return {"ops": {AUDIT: {"config": {"window_hours": 1.0, "now": at}}}}


def judged(run: dg.ExecuteInProcessResult) -> tuple[dict[tuple[str, str], bool], int]:
    """Each freshness verdict by (step: the audit or a monitor, table), and the events in the window."""
    fresh, count = {}, -1
    for e in run.get_asset_check_evaluations():
        on = e.asset_key.to_user_string()
        if e.check_name.endswith("_fresh"):
            fresh["audit" if on == AUDIT else "monitor", e.check_name.removesuffix("_fresh")] = e.passed
        if e.check_name == "ingest_latency_slo":
            count = int(e.metadata["count"].value)  # type: ignore[arg-type]
    return fresh, count


def test_the_audit_judges_freshness_and_its_window_as_of_the_run_s_now(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    good_lake(settings, lake, landing)  # 499 events, ingested just now
    land(settings, "late.ndjson", file_lines("late", 5))  # landed just now, waiting for the next batch
    job = audit_definitions(INGEST_TABLES, resources_of(settings, lake, landing)).resolve_job_def("audit_job")
    steps = ("audit", "monitor")

    wall = job.execute_in_process(instance=instance, run_config=audit_at(None))
    assert wall.success
    assert judged(wall) == ({(s, t): True for s in steps for t in INGEST_TABLES}, 499)

    # Two hours on: the file has waited two hours (over the 5-minute lag) and the last hour holds no event.
    later = datetime.now(UTC) + timedelta(hours=2)
    run = job.execute_in_process(instance=instance, run_config=audit_at(later))
    assert run.success
    assert judged(run) == ({(s, t): False for s in steps for t in INGEST_TABLES}, 0)
    [materialization] = run.get_asset_materialization_events()
    assert materialization.materialization.metadata["now"].value == later.isoformat()

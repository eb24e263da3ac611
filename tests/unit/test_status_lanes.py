"""The status verdict lane by lane (#15): a lane's last finished run, and work waiting for a lane with
nothing to take it (orchestration/status_lanes.py gathers both from Dagster and the lake)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from transforms.operations.status import ErasureWaiting, LaneState, OpenFailure, judge

LAG = timedelta(minutes=2)
NOBODY = (
    " and nothing takes it (no `lakemail runner` heartbeat for the decide lane, "
    "no Dagster daemon running its sensor)"
)
WHY = "a batch the engine has not seen"


@pytest.mark.parametrize(
    ("lane", "problem"),
    [
        (LaneState("decide", last_status="SUCCESS"), None),
        (LaneState("decide"), None),  # nothing finished yet
        (
            LaneState("decide", last_status="FAILURE", last_run_id="r-1"),
            "decide lane: last run FAILURE (r-1), no later run succeeded",
        ),
        (
            LaneState("ingest", last_status="CANCELED", last_run_id="r-2"),
            "ingest lane: last run CANCELED (r-2), no later run succeeded",
        ),
        (LaneState("decide", takers=[], waiting_seconds=119, waiting_for=WHY), None),  # within the lag
        (
            LaneState("decide", takers=[], waiting_seconds=121, waiting_for=WHY),
            f"decide lane: work waiting for 121 s ({WHY}){NOBODY}: start `lakemail up` or turn the sensor on",
        ),
        (LaneState("decide", takers=["lakemail runner"], waiting_seconds=900, waiting_for=WHY), None),
        (  # an object-store lake: a runner leaves no heartbeat here, judged by age alone
            LaneState("decide", takers=None, waiting_seconds=900, waiting_for=WHY),
            f"decide lane: work waiting for 900 s ({WHY})",
        ),
    ],
)
def test_each_lane_is_judged_by_its_last_finished_run_and_its_waiting_work(
    lane: LaneState, problem: str | None
) -> None:
    verdict = judge(
        backlog_oldest_seconds=None, freshness=[], failed_files_last_hour=0, max_lag=LAG, lanes=[lane]
    )
    assert verdict.problems == ([problem] if problem else [])
    assert verdict.healthy is (problem is None)


def test_files_wait_for_the_ingest_lanes_takers() -> None:
    verdict = judge(
        backlog_oldest_seconds=3,
        freshness=[],
        failed_files_last_hour=0,
        max_lag=LAG,
        backlog_files=1,
        takers=[],
    )
    [problem] = verdict.problems
    assert (
        problem.startswith("backlog: 1 file(s) wait and nothing takes them") and "the ingest lane" in problem
    )


def test_an_open_failure_of_a_job_beside_the_lanes_is_unhealthy() -> None:
    failures = [
        OpenFailure("audit_job", "r-1", "FAILURE"),
        OpenFailure("erasure_job", "r-2", "CANCELED", True),
    ]
    verdict = judge(
        backlog_oldest_seconds=None, freshness=[], failed_files_last_hour=0, max_lag=LAG, failures=failures
    )
    assert verdict.problems == [
        "audit_job: last run FAILURE (r-1), no later run succeeded",
        "erasure_job: a request's last run CANCELED (r-2), no later run of it succeeded",
    ]
    assert not verdict.healthy


def test_erasure_requests_waiting_past_the_max_lag_with_no_run_are_unhealthy() -> None:
    def verdict(waiting: ErasureWaiting) -> list[str]:
        return judge(
            backlog_oldest_seconds=None, freshness=[], failed_files_last_hour=0, max_lag=LAG, erasure=waiting
        ).problems

    limit = LAG.total_seconds()
    assert verdict(ErasureWaiting(2, limit + 1)) == [
        f"erasure: 2 request(s) wait, the oldest for {limit + 1:.0f} s, and no erasure run is queued or "
        "running (the Dagster daemon's `erasure_sensor` launches one within seconds): start `lakemail up` "
        "or turn the sensor on"
    ]
    assert verdict(ErasureWaiting(2, limit)) == []  # not yet past the lag
    assert verdict(ErasureWaiting(2, limit + 1, runs_in_flight=1)) == []  # a run takes them
    assert verdict(ErasureWaiting(0, None)) == []

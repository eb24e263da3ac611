"""`lakemail runner`'s lanes read the lake once a run (#17): a lane alone in its process takes the run its
poll decided (before, every run was decided twice, the second time under the one-run lock: 10 % of the
decide runner's time went to polls); a lane that waited for the other lane's run decides again."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, cast

import dagster as dg
import pytest

import orchestration.runner as runner
from orchestration.metrics.observer import RunObserver
from transforms.ingest.batch import SensorDecision

RUNS = 3


class BusyOnce:
    """`_ONE_RUN` as the other lane's run holds it once: the first non-blocking acquire fails."""

    def __init__(self) -> None:
        self.lock, self.busy = threading.Lock(), True

    def acquire(self, blocking: bool = True) -> bool:
        if not blocking and self.busy:
            self.busy = False
            return False
        return self.lock.acquire(blocking)

    def release(self) -> None:
        self.lock.release()


def serve(monkeypatch: pytest.MonkeyPatch, decisions: list[SensorDecision]) -> tuple[int, list[str]]:
    """The decide lane served until `decisions` run out; how many times it decided, and the runs' keys."""
    stop, keys, asked = threading.Event(), list[str](), [0]

    def decide(_: object) -> SensorDecision:
        asked[0] += 1
        if len(decisions) == 1:
            stop.set()
        return decisions.pop(0)

    def execute_leased(*_: Any, tags: dict[str, str], run_id: str, **__: Any) -> SimpleNamespace:
        keys.append(tags["lakemail/batch_key"])
        return SimpleNamespace(success=True, run_id=run_id)

    monkeypatch.setattr(runner, "execute_leased", execute_leased)
    lane = runner._Lane("decide", cast(dg.JobDefinition, None), decide, lambda _: {})
    lane.serve(cast(dg.DagsterInstance, None), stop, 0, runner.InFlight(), RunObserver(), None)
    return asked[0], keys


def test_a_lane_alone_in_its_process_decides_once_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    decisions = [SensorDecision(run_key=f"decide-b{i}-e{i}") for i in range(RUNS)]
    asked, keys = serve(monkeypatch, decisions)
    assert keys == [f"decide-b{i}-e{i}" for i in range(RUNS)]
    assert asked == RUNS


def test_a_lane_that_waited_for_the_other_lanes_run_decides_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "_ONE_RUN", BusyOnce())
    nothing = SensorDecision(skip_reason="the other lane's run took it")
    decisions = [SensorDecision(run_key="decide-b1-e0"), nothing, SensorDecision(run_key="decide-b2-e1")]
    asked, keys = serve(monkeypatch, decisions)
    assert keys == ["decide-b2-e1"]  # the first decision, taken again after the wait, was gone
    assert asked == 3

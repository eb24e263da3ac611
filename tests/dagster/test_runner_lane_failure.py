"""`lakemail runner` of both lanes: one lane's loop fails while the other lane has a run in flight. The
runner stops as it does for a signal (that run finishes within the grace period), says which lane failed
and shows its error, and exits 1."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest

import orchestration.runner as runner
from orchestration.settings import Settings
from transforms.ingest.batch import SensorDecision

BOUND_S = 60  # only reached when the runner never lets the run finish (the bug)


def test_a_lane_failing_while_the_other_has_a_run_in_flight_stops_the_runner_as_a_signal_would(
    settings: Settings,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    in_flight, grace = threading.Event(), threading.Event()
    said, runs = list[str](), list[str]()

    def say(message: str) -> None:
        said.append(message)
        if "letting run" in message:
            grace.set()

    def evaluate_ingest(*_: Any) -> SensorDecision:  # fails once the decide run is in flight
        in_flight.wait(BOUND_S)
        raise OSError("No such file or directory: ingest_log/part-0.parquet")

    def execute_leased(*_: Any, run_id: str, **__: Any) -> SimpleNamespace:  # ends once told to finish
        runs.append(run_id)
        in_flight.set()
        assert grace.wait(BOUND_S)
        return SimpleNamespace(success=True, run_id=run_id)

    monkeypatch.setattr(runner, "_say", say)
    monkeypatch.setattr(runner.signal, "signal", lambda *_: None)  # this test's process keeps its own
    monkeypatch.setattr(runner, "evaluate_ingest", evaluate_ingest)
    monkeypatch.setattr(runner, "evaluate_decide", lambda *_: SensorDecision(run_key="decide-b1-e0"))
    monkeypatch.setattr(runner, "execute_leased", execute_leased)
    assert runner.main(settings, instance) == 1
    failed = "the ingest lane failed, stopping: OSError: No such file or directory: ingest_log/part-0.parquet"
    assert failed in said
    assert f"a lane failed: letting run {runs[0]} (decide) finish (up to 10 s)" in said
    assert "OSError: No such file or directory" in capsys.readouterr().err  # its traceback

"""`lakemail runner`: one lane's loop fails while the other lane has a run in flight: the runner stops as
it does for a signal (that run finishes within the grace period), says which lane failed and shows its
error, and exits 1. A poll whose lake read raced an erasure's vacuum is no failure of the lane."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import dagster as dg
import polars as pl
import pytest
from deltalake import DeltaTable

import orchestration.runner as runner
from orchestration.lanes import POLL_MISSES, evaluate_decide
from orchestration.metrics.observer import RunObserver
from orchestration.settings import Settings
from resources import lake_held
from resources.lake import LakeResource
from transforms.ingest.batch import SensorDecision
from transforms.schema import TRIGGERS_SCHEMA

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


def serve_decide_lane(decide: Any, stop: threading.Event) -> None:
    """The runner's decide lane with `decide`, polling at once (no wall-clock wait) until `stop`."""
    lane = runner._Lane("decide", cast(dg.JobDefinition, None), decide, lambda _: {})
    lane.serve(cast(dg.DagsterInstance, None), stop, 0, runner.InFlight(), RunObserver(), None)


def test_a_poll_whose_read_races_an_erasures_vacuum_is_polled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poll brings `trigger_state` up to date, an erasure deletes a row and vacuums at retention 0,
    then the poll reads the files of the version it saw: FileNotFoundError. The lane says so and polls
    again (before, its loop died and took the runner down)."""
    lake, now = LakeResource(uri=str(tmp_path / "lake")), datetime(2026, 11, 20, tzinfo=UTC)
    lake.write("trigger_state", pl.DataFrame([{"trigger_id": "t1", "due_at": now}], schema=TRIGGERS_SCHEMA))
    updated, uses, raced = lake_held._updated, list[str](), list[str]()

    def updated_then_erasure(folder: Path, table: DeltaTable, stamp: lake_held.Stamp) -> bool:
        fresh = updated(folder, table, stamp)
        uses.append(folder.name)
        # The poll's second use of the table: after its engine stamp, the read of the due times.
        if uses.count("trigger_state") == 2 and folder.name == "trigger_state":
            raced.append(folder.name)
            DeltaTable(str(folder)).delete("trigger_id = 't1'")
            DeltaTable(str(folder)).vacuum(
                retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True
            )
        return fresh

    lake.app_version("trigger_state", "any")  # held from now on, as between a runner's polls
    monkeypatch.setattr(lake_held, "_updated", updated_then_erasure)
    said, decided, stop = list[str](), list[SensorDecision](), threading.Event()
    monkeypatch.setattr(runner, "_say", said.append)

    def decide(_: object) -> SensorDecision:
        if raced:  # the second poll is the last
            stop.set()
        decided.append(evaluate_decide(lake, False, now))
        return decided[-1]

    serve_decide_lane(decide, stop)
    assert raced and len(said) == 1
    assert said[0].startswith("decide lane: reading the lake failed (FileNotFoundError: No such file")
    assert said[0].endswith("); polling again")
    assert [d.skip_reason for d in decided] == [
        "no batch the engine has not seen, no trigger or outbox row due"
    ]


def test_lake_reads_failing_poll_after_poll_stop_the_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    said, polls = list[str](), list[int]()
    monkeypatch.setattr(runner, "_say", said.append)

    def decide(_: object) -> SensorDecision:
        polls.append(1)
        raise FileNotFoundError("No such file or directory: trigger_state/part-0.parquet")

    with pytest.raises(FileNotFoundError):
        serve_decide_lane(decide, threading.Event())
    assert len(polls) == POLL_MISSES and len(said) == POLL_MISSES - 1

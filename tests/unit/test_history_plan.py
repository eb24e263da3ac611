"""A SQLite home's event log finds a run's events by the run's index however many runs it holds (#17)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from orchestration.history_storage import LakemailEventLogStorage

# What Dagster asks for `get_records_for_run(run_id, of_type=ASSET_MATERIALIZATION)`, in short.
QUERY = (
    "SELECT id FROM event_logs WHERE run_id = ? AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id"
)


def test_a_runs_events_are_looked_up_by_its_run_id_after_many_runs(tmp_path: Path) -> None:
    """Without statistics SQLite looked a run's materializations up by the event type's index, every run's
    materializations (309 ms after 10,000 runs, three times a micro-batch); the storage gathers them."""
    LakemailEventLogStorage(str(tmp_path)).dispose()  # the schema
    with sqlite3.connect(tmp_path / "event_log.db") as db:
        kinds = ["ASSET_MATERIALIZATION", "STEP_START", "STEP_OUTPUT", "STEP_SUCCESS"]
        rows = [(f"run-{i // 40}", kinds[i % 4], "{}") for i in range(40_000)]
        db.executemany("INSERT INTO event_logs (run_id, dagster_event_type, event) VALUES (?, ?, ?)", rows)
    storage = LakemailEventLogStorage(str(tmp_path))  # a process starting on that history
    try:
        with storage._engine.connect() as conn:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + QUERY, ("run-7",)).fetchall()
    finally:
        storage.dispose()
    assert "idx_events_by_run_id" in str(plan), plan

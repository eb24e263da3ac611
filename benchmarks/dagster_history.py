"""Dagster history of thousands of past runs, cloned from one real run of the instance, in seconds.

Real runs cost a second or more each: 10,000 would take hours. A real micro-batch run of the same
instance is copied instead: its rows in the run storage (`runs`, `run_tags`), in the event log's
database (`event_logs`, `asset_check_executions`, `asset_event_tags`, with storage ids renumbered so
checks point at their own run's events: lakemail's one database of every run's events, or Dagster's
default index shard) and its per-run event-log shard (the default's) and compute-log folder on disk, a
clone every `every` seconds before the template. Schema names are those of Dagster's SQLite storage.
"""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how the SQLite storage writes DATETIME / TIMESTAMP columns


def shift_stamp(text: str | None, seconds: float) -> str | None:
    """A storage timestamp moved by `seconds` (None stays None)."""
    if text is None:
        return None
    parsed = datetime.strptime(text if "." in text else text + ".000000", STAMP)
    return (parsed + timedelta(seconds=seconds)).strftime(STAMP)


def renumber(old_ids: list[int], base: int) -> dict[int, int]:
    """New storage ids after `base` for a run's events, in their order."""
    return {old: base + i + 1 for i, old in enumerate(sorted(old_ids))}


def clone_runs(dagster_home: Path, template: str, count: int, *, every: float = 5.0) -> list[str]:
    """Add `count` finished copies of run `template`, one every `every` s before it; their run ids."""
    history = dagster_home / "history"
    ids = [str(uuid.uuid4()) for _ in range(count)]
    shifts = [-(count - k) * every for k in range(count)]
    with closing(sqlite3.connect(history / "runs.db")) as runs, runs:
        _clone_run_rows(runs, template, ids, shifts)
    # lakemail's SQLite home keeps every run's events in one database (orchestration.history_storage);
    # Dagster's default, an index and a database per run.
    consolidated = history / "event_log.db"
    with closing(sqlite3.connect(_existing(consolidated, history / "runs" / "index.db"))) as index, index:
        _clone_index_rows(index, template, ids, shifts)
    shard = history / "runs" / f"{template}.db"
    logs = dagster_home / "storage" / template
    for run_id in ids:
        if shard.exists():
            shutil.copyfile(shard, shard.with_name(f"{run_id}.db"))
        if logs.is_dir():
            shutil.copytree(logs, logs.with_name(run_id))
    return ids


def _existing(*paths: Path) -> Path:
    """The first of `paths` that exists (sqlite3 would create a missing one, empty)."""
    found = next((path for path in paths if path.exists()), None)
    if found is None:
        raise FileNotFoundError(f"no event log database: {', '.join(map(str, paths))}")
    return found


def _clone_run_rows(db: sqlite3.Connection, template: str, ids: list[str], shifts: list[float]) -> None:
    columns = (
        "snapshot_id, pipeline_name, mode, status, run_body, partition, partition_set, "
        "create_timestamp, update_timestamp, start_time, end_time, backfill_id"
    )
    row = db.execute(f"SELECT {columns} FROM runs WHERE run_id = ?", (template,)).fetchone()
    if row is None:
        raise ValueError(f"no run {template} in the run storage")
    tags = db.execute('SELECT "key", value FROM run_tags WHERE run_id = ?', (template,)).fetchall()
    snapshot, job, mode, status, body, partition, partition_set, created, updated, start, end, fill = row
    rows, tag_rows = [], []
    for run_id, shift in zip(ids, shifts, strict=True):
        times = (shift_stamp(created, shift), shift_stamp(updated, shift), start + shift, end + shift)
        run = (run_id, snapshot, job, mode, status, body.replace(template, run_id), partition, partition_set)
        rows.append((*run, *times, fill))
        tag_rows += [(run_id, key, value) for key, value in tags]
    db.executemany(f"INSERT INTO runs (run_id, {columns}) VALUES ({', '.join('?' * 13)})", rows)
    db.executemany('INSERT INTO run_tags (run_id, "key", value) VALUES (?, ?, ?)', tag_rows)


def _clone_index_rows(db: sqlite3.Connection, template: str, ids: list[str], shifts: list[float]) -> None:
    events = db.execute(
        "SELECT id, event, dagster_event_type, timestamp, step_key, asset_key, partition "
        "FROM event_logs WHERE run_id = ? ORDER BY id",
        (template,),
    ).fetchall()
    checks = db.execute(
        "SELECT asset_key, check_name, partition, execution_status, evaluation_event, "
        "evaluation_event_timestamp, evaluation_event_storage_id, materialization_event_storage_id "
        "FROM asset_check_executions WHERE run_id = ?",
        (template,),
    ).fetchall()
    old_ids = [e[0] for e in events]
    marks = ", ".join("?" * len(old_ids)) or "NULL"
    tags = db.execute(
        'SELECT event_id, asset_key, "key", value, event_timestamp FROM asset_event_tags '
        f"WHERE event_id IN ({marks})",
        old_ids,
    ).fetchall()
    base = db.execute("SELECT COALESCE(MAX(id), 0) FROM event_logs").fetchone()[0]
    event_rows, check_rows, tag_rows = [], [], []
    for k, (run_id, shift) in enumerate(zip(ids, shifts, strict=True)):
        new = renumber(old_ids, base + k * len(old_ids))
        for old, body, kind, stamp, step, asset, partition in events:
            moved = shift_stamp(stamp, shift)
            event_rows.append(
                (new[old], run_id, body.replace(template, run_id), kind, moved, step, asset, partition)
            )
        for asset, name, partition, state, body, stamp, evaluation, materialization in checks:
            at, storage = shift_stamp(stamp, shift), (new.get(evaluation), new.get(materialization))
            check_rows.append(
                (asset, name, partition, run_id, state, body.replace(template, run_id), at, *storage)
            )
        tag_rows += [(new[e], asset, key, value, shift_stamp(at, shift)) for e, asset, key, value, at in tags]
    db.executemany(
        "INSERT INTO event_logs (id, run_id, event, dagster_event_type, timestamp, step_key, asset_key, "
        "partition) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        event_rows,
    )
    db.executemany(
        "INSERT INTO asset_check_executions (asset_key, check_name, partition, run_id, execution_status, "
        "evaluation_event, evaluation_event_timestamp, evaluation_event_storage_id, "
        "materialization_event_storage_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        check_rows,
    )
    db.executemany(
        'INSERT INTO asset_event_tags (event_id, asset_key, "key", value, event_timestamp) '
        "VALUES (?, ?, ?, ?, ?)",
        tag_rows,
    )

"""What a micro-batch takes: pending landed files, the sensor's decision, and commit groups."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import polars as pl

LANDED_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "bytes": pl.Int64(),
    "landed_at": pl.Datetime("us", "UTC"),
}


def pending_files(landed: pl.DataFrame, ingest_log: pl.DataFrame) -> pl.DataFrame:
    """Landed files (LANDED_SCHEMA) that `ingest_log` has no row for at that path and size, by path."""
    recorded = ingest_log.select("source_file", "bytes").unique()
    return landed.join(recorded, on=["source_file", "bytes"], how="anti").sort("source_file")


def batch_run_key(pending: pl.DataFrame) -> str:
    """Deterministic run key of a batch manifest: the same files at the same sizes give the same key."""
    digest = hashlib.sha256()
    for path, size in pending.select("source_file", "bytes").iter_rows():
        digest.update(f"{path}\0{size}\n".encode())
    return f"batch-{digest.hexdigest()[:24]}"


@dataclass(frozen=True)
class SensorDecision:
    """Launch one run for `files` under `run_key`, or skip for `skip_reason`."""

    files: tuple[str, ...] = ()
    run_key: str | None = None
    skip_reason: str | None = None


def decide_batch(
    pending: pl.DataFrame,
    *,
    run_in_flight: bool,
    next_due: datetime | None = None,
    now: datetime | None = None,
) -> SensorDecision:
    """One run for everything pending, unless a micro-batch is still running (it takes the rest next).

    With no new file, a run still starts once the earliest pending trigger is due (`next_due` <= `now`):
    time-based triggers fire when no events land.
    """
    if run_in_flight:
        return SensorDecision(skip_reason=f"a micro-batch run is in flight; {pending.height} file(s) wait")
    if pending.height == 0:
        if next_due is not None and now is not None and next_due <= now:
            return SensorDecision(files=(), run_key=f"due-{next_due.isoformat()}")
        return SensorDecision(skip_reason="no new landed files and no trigger due")
    return SensorDecision(files=tuple(pending["source_file"]), run_key=batch_run_key(pending))


def commit_groups(pending: pl.DataFrame, max_bytes: int) -> list[list[str]]:
    """Consecutive groups of files of at most `max_bytes` each (a larger file is a group of its own)."""
    groups: list[list[str]] = []
    current: list[str] = []
    size = 0
    for path, nbytes in pending.select("source_file", "bytes").iter_rows():
        if current and size + nbytes > max_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(path)
        size += nbytes
    if current:
        groups.append(current)
    return groups

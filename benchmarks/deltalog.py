"""Delta commits written straight into `_delta_log`, for pre-built lakes delta-rs would take too long on.

Through delta-rs a tiny commit costs about 45 ms and a partitioned append about 4 us a row: a lake of
10,000 past micro-batches, or 50M past events, would take tens of minutes. Here Polars writes the
Parquet files, and each add action carries the statistics delta-rs writes (min, max and null count of
the table's `delta.dataSkippingStatsColumns`, times in milliseconds), so readers skip files as they
would in a lake delta-rs wrote. The table itself is created by the repo's own writer (protocol,
schema, configuration); checkpoints come from delta-rs (`checkpoint`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from deltalake import DeltaTable

Action = dict[str, Any]
CHECKPOINT_INTERVAL = 100  # delta-rs' default: a checkpoint at every 100th version


def stat_value(value: object) -> object:
    """A statistic as the Delta log holds it: times in UTC milliseconds, dates ISO, numbers as they are."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def file_stats(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """numRecords and min / max / null counts of `columns` (those `frame` has) of one data file."""
    present = [c for c in columns if c in frame.columns]
    if not present or frame.height == 0:
        return {"numRecords": frame.height, "minValues": {}, "maxValues": {}, "nullCount": {}}
    low = frame.select(pl.col(present).min()).row(0, named=True)
    high = frame.select(pl.col(present).max()).row(0, named=True)
    nulls = frame.select(pl.col(present).null_count()).row(0, named=True)
    return {
        "numRecords": frame.height,
        "minValues": {c: stat_value(v) for c, v in low.items() if v is not None},
        "maxValues": {c: stat_value(v) for c, v in high.items() if v is not None},
        "nullCount": {c: int(v) for c, v in nulls.items()},
    }


def grouped_stats(
    frame: pl.DataFrame, keys: Sequence[str], columns: Sequence[str]
) -> dict[tuple[object, ...], dict[str, Any]]:
    """`file_stats` of each group of `keys` at once (a file per group), by the group's key values."""
    present = [c for c in columns if c in frame.columns]
    parts = [pl.len().alias("_n")]
    for kind in ("min", "max", "null_count"):
        parts += [getattr(pl.col(c), kind)().alias(f"_{kind}_{c}") for c in present]
    out = {}
    for row in frame.group_by(list(keys)).agg(parts).iter_rows(named=True):
        out[tuple(row[k] for k in keys)] = {
            "numRecords": row["_n"],
            "minValues": {c: stat_value(row[f"_min_{c}"]) for c in present if row[f"_min_{c}"] is not None},
            "maxValues": {c: stat_value(row[f"_max_{c}"]) for c in present if row[f"_max_{c}"] is not None},
            "nullCount": {c: int(row[f"_null_count_{c}"]) for c in present},
        }
    return out


@dataclass(frozen=True)
class Layout:
    """How a table's data files are written (picklable: worker processes write files, the parent commits)."""

    root: Path
    stats_columns: tuple[str, ...]
    partition_columns: tuple[str, ...]

    @classmethod
    def of(cls, uri: str) -> Layout:
        metadata = DeltaTable(uri).metadata()
        stats = metadata.configuration.get("delta.dataSkippingStatsColumns") or ""
        return cls(Path(uri), tuple(c for c in stats.split(",") if c), tuple(metadata.partition_columns))

    def write_file(self, frame: pl.DataFrame, stats: dict[str, Any] | None = None) -> Action:
        """Write `frame` (one partition value per partition column) as a data file; its add action.

        `stats`, when given, are the file's (from `grouped_stats`), else they are computed here.
        """
        values = {c: stat_value(frame[c][0]) for c in self.partition_columns}
        folder = "/".join(f"{c}={v}" for c, v in values.items())
        name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
        relative = f"{folder}/{name}" if folder else name
        (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
        frame.drop(self.partition_columns).write_parquet(self.root / relative, compression="zstd")
        add = {
            "path": relative,
            "partitionValues": {c: str(v) for c, v in values.items()},
            "size": (self.root / relative).stat().st_size,
            "modificationTime": _now_ms(),
            "dataChange": True,
            "stats": json.dumps(stats or file_stats(frame, self.stats_columns), separators=(",", ":")),
        }
        return {"add": add}

    def write_files(self, frames: Sequence[pl.DataFrame]) -> list[Action]:
        """A data file per non-empty frame."""
        return [self.write_file(f) for f in frames if f.height]

    def copy_file(self, add: Action) -> Action:
        """A copy of the data file of `add` under a new name (same rows and statistics); its add action."""
        item = add["add"]
        folder, _, _ = item["path"].rpartition("/")
        relative = f"{folder}/" if folder else ""
        relative += f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
        shutil.copyfile(self.root / item["path"], self.root / relative)
        return {"add": {**item, "path": relative, "modificationTime": _now_ms()}}


class RawTable:
    """A Delta table delta-rs created, appended to (or overwritten) by writing its log directly."""

    def __init__(self, uri: str) -> None:
        self.root = Path(uri)
        self.layout = Layout.of(uri)
        self.version = DeltaTable(uri).version()

    def write_file(self, frame: pl.DataFrame) -> Action:
        return self.layout.write_file(frame)

    def copy_file(self, add: Action) -> Action:
        return self.layout.copy_file(add)

    def commit(
        self,
        actions: Sequence[Action],
        *,
        txns: Mapping[str, int] | None = None,
        mode: str = "Append",
        operation: str = "WRITE",
    ) -> int:
        """Write the next version with `actions` and app transactions `txns`; returns the version."""
        info = {"timestamp": _now_ms(), "operation": operation, "operationParameters": {"mode": mode}}
        lines: list[Action] = [{"commitInfo": {**info, "clientVersion": "lakemail-bench"}}, *actions]
        lines += [{"txn": {"appId": app, "version": v}} for app, v in (txns or {}).items()]
        path = self.root / "_delta_log" / f"{self.version + 1:020d}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never over another commit
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(json.dumps(line, separators=(",", ":")) for line in lines) + "\n")
        self.version += 1
        return self.version

    def append(
        self, frames: Sequence[pl.DataFrame], *, txns: Mapping[str, int] | None = None
    ) -> list[Action]:
        """One commit adding a data file per non-empty frame (only `txns` when none); the add actions."""
        adds = self.layout.write_files(frames)
        self.commit(adds, txns=txns)
        return adds

    def last_checkpoint(self) -> int | None:
        """The version delta-rs would have checkpointed last by now (every 100th), if any."""
        last = (self.version + 1) // CHECKPOINT_INTERVAL * CHECKPOINT_INTERVAL - 1
        return last if last > 0 else None

    def checkpoint_like_delta_rs(self) -> None:
        """Write the checkpoint delta-rs would have left by now."""
        version = self.last_checkpoint()
        if version is not None:
            checkpoint(str(self.root), version)


def checkpoint(uri: str, version: int) -> None:
    """A checkpoint of `version` (delta-rs replays the log up to it: about 1 ms a version)."""
    DeltaTable(uri, version=version).create_checkpoint()


def remove(add: Action, at_ms: int | None = None) -> Action:
    """The remove action of a file an earlier `add` action added."""
    item = add["add"]
    return {
        "remove": {
            "path": item["path"],
            "dataChange": True,
            "deletionTimestamp": at_ms if at_ms is not None else _now_ms(),
            "extendedFileMetadata": True,
            "partitionValues": item["partitionValues"],
            "size": item["size"],
        }
    }


def _now_ms() -> int:
    return int(time.time() * 1000)

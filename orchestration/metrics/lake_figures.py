"""Figures of the lake, the landing zone, the state store and the Dagster instance, measured on demand
(`measure_*`) and cached by `LakeFigures`; pure reads, no Prometheus types."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from orchestration.jobs import LANE_JOBS
from orchestration.lanes import runs_in_flight
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from resources.state_lmdb import close_environment
from stores.ingest import backlog
from stores.operations.probe import DATA_OPERATIONS

FRESHNESS_TABLES = ("ingest_log", "events", "triggers", "sends")  # every micro-batch writes the first
HISTORY_DEPTH = 20


@dataclass
class Work:
    """The backlog, the tables' last data commits, the runs in flight and the last successful run."""

    backlog_files: int = 0
    backlog_bytes: int = 0
    oldest_landed_at: float | None = None  # epoch seconds
    last_commit: dict[str, float] = field(default_factory=dict)  # table -> epoch seconds
    runs_in_flight: int = 0
    oldest_run_started: float | None = None
    last_success: float | None = None
    state_store_lag_batches: int | None = None  # None: there is no state store


@dataclass
class Disk:
    """Bytes of the lake and of Dagster's storage, and their filesystems' size and free room."""

    lake_bytes: int = 0
    dagster_bytes: int = 0
    filesystems: dict[str, tuple[int, int]] = field(default_factory=dict)  # volume -> (size, available)


def folder_bytes(root: Path | None) -> int:
    """Bytes of the files under `root` (0 when it is missing); files vanishing meanwhile are skipped."""
    total = 0
    if root is None or not root.exists():
        return 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # removed by a vacuum since the listing
    return total


def last_data_commit(lake: LakeResource, name: str) -> float | None:
    """When `name` last took data in (not compaction, vacuum or deletes), epoch seconds."""
    table = lake.table(name)
    if table is None:
        return None
    commits = [c for c in table.history(HISTORY_DEPTH) if c.get("operation") in DATA_OPERATIONS]
    return commits[0]["timestamp"] / 1000 if commits else None


class StateLag:
    """The state store's lag behind the lake in batches; reopens a store that `state rebuild` replaced."""

    def __init__(self, state: StateResource) -> None:
        self.state = state
        self._inode: int | None = None

    def batches(self, lake: LakeResource) -> int | None:
        data = self.state.path / "data.mdb"
        try:
            inode = data.stat().st_ino
        except FileNotFoundError:
            return None
        if self._inode is not None and inode != self._inode:
            close_environment(self.state.path)  # replaced by a rebuild: read the new one
        self._inode = inode
        store = self.state.existing()
        return None if store is None else max(0, lake.committed_batch() - store.stamps()["ingest"])


def measure_work(
    lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance, state: StateLag
) -> Work:
    _, pending = backlog(lake, landing)
    oldest = pending["landed_at"].min() if pending.height else None
    work = Work(
        backlog_files=pending.height,
        backlog_bytes=int(pending["bytes"].sum() or 0),
        oldest_landed_at=oldest.timestamp() if isinstance(oldest, datetime) else None,
    )
    for name in FRESHNESS_TABLES:
        if (at := last_data_commit(lake, name)) is not None:
            work.last_commit[name] = at
    flights = runs_in_flight(instance)  # either lane's (#15)
    work.runs_in_flight = len(flights)
    starts = [r.start_time or r.create_timestamp.timestamp() for r in flights]
    work.oldest_run_started = min(starts, default=None)
    last = [  # the ingest lane's: what a landed file waits for
        record
        for job in LANE_JOBS["ingest"]
        for record in instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
        )
    ]
    if last:
        work.last_success = max(r.end_time or r.create_timestamp.timestamp() for r in last)
    work.state_store_lag_batches = state.batches(lake)
    return work


def measure_disk(settings: Settings) -> Disk:
    lake_root = LakeResource(uri=settings.lake_uri).root
    disk = Disk(lake_bytes=folder_bytes(lake_root), dagster_bytes=folder_bytes(settings.dagster_home))
    for volume, path in (("lake", lake_root), ("dagster", settings.dagster_home)):
        if path is not None and path.exists():
            usage = shutil.disk_usage(path)
            disk.filesystems[volume] = (usage.total, usage.free)
    return disk


def now_epoch() -> float:
    return datetime.now(UTC).timestamp()

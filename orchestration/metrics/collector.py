"""`LakeFigures`: the lake's figures as Prometheus gauges, measured at most every `every_s` (disk sizes
every `disk_every_s`: a walk of the lake's files), however often Prometheus scrapes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import dagster as dg
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestration.metrics.lake_figures import Disk, StateLag, Work, measure_disk, measure_work, now_epoch
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource

log = logging.getLogger("lakemail")
T = TypeVar("T")
STATE_LAG_HELP = (
    "Micro-batches the lake has committed that the state store has not (lake batch - store ingest stamp). "
    "Each ingest run commits its batch to the store right after the lake and first applies any batch the "
    "store missed, so it is 0 but between a crash after a lake commit and the next ingest run. "
    "0 when there is no store (see lakemail_state_store_present)."
)


class LakeFigures(Collector):
    """Backlog, freshness, runs in flight, last success, state-store lag and disk use, cached."""

    def __init__(
        self,
        settings: Settings,
        instance: dg.DagsterInstance,
        *,
        every_s: float = 2.0,
        disk_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.instance, self.clock = settings, instance, clock
        self.every_s, self.disk_every_s = every_s, disk_every_s
        self.lake, self.landing = (
            LakeResource(uri=settings.lake_uri),
            LandingResource(uri=settings.landing_uri),
        )
        self.state = StateLag(StateResource(uri=settings.state_store_uri))
        self._lock = threading.Lock()
        self._work: tuple[float, Work] | None = None
        self._disk: tuple[float, Disk] | None = None

    def figures(self) -> tuple[Work, Disk]:
        """The cached figures, measured again once they are older than their interval (a failed
        measurement keeps the last figures and says so in the log)."""
        with self._lock:
            now = self.clock()
            if self._work is None or now - self._work[0] >= self.every_s:
                work = _measured(lambda: measure_work(self.lake, self.landing, self.instance, self.state))
                self._work = (now, work or (self._work[1] if self._work else Work()))
            if self._disk is None or now - self._disk[0] >= self.disk_every_s:
                disk = _measured(lambda: measure_disk(self.settings))
                self._disk = (now, disk or (self._disk[1] if self._disk else Disk()))
            return self._work[1], self._disk[1]

    def collect(self) -> Iterator[Metric]:
        work, disk = self.figures()
        yield from work_families(work, now_epoch())
        yield from disk_families(disk)


def _measured(measure: Callable[[], T]) -> T | None:
    try:
        return measure()
    except Exception as error:  # a table mid-commit, a file vanishing: the last figures stand
        log.warning("metrics: measuring the lake failed (%s: %s)", type(error).__name__, error)
        return None


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def work_families(work: Work, now: float) -> Iterator[Metric]:
    yield _gauge(
        "lakemail_backlog_files", "Landed files not ingested yet (no ingest_log row).", work.backlog_files
    )
    yield _gauge("lakemail_backlog_bytes", "Bytes of the landed files not ingested yet.", work.backlog_bytes)
    age = max(0.0, now - work.oldest_landed_at) if work.oldest_landed_at is not None else 0.0
    yield _gauge(
        "lakemail_backlog_oldest_age_seconds",
        "Age of the oldest landed file not ingested yet (0: none).",
        age,
    )
    commits = GaugeMetricFamily(
        "lakemail_table_last_commit_timestamp_seconds",
        "When the table last took data in (a write or merge; not compaction or vacuum), Unix time.",
        labels=["table"],
    )
    for table, at in sorted(work.last_commit.items()):
        commits.add_metric([table], at)
    yield commits
    yield _gauge(
        "lakemail_runs_in_flight", "Micro-batch runs queued or running (Dagster).", work.runs_in_flight
    )
    running = max(0.0, now - work.oldest_run_started) if work.oldest_run_started is not None else 0.0
    yield _gauge(
        "lakemail_oldest_run_in_flight_seconds",
        "How long the oldest micro-batch run in flight has run (0: none).",
        running,
    )
    yield _gauge(
        "lakemail_last_successful_run_timestamp_seconds",
        "When the last successful micro-batch run (any launcher) ended, Unix time (0: never).",
        work.last_success or 0.0,
    )
    lag = work.state_store_lag_batches
    yield _gauge(
        "lakemail_state_store_present", "1 when the state store exists, else 0.", 0 if lag is None else 1
    )
    yield _gauge("lakemail_state_store_lag_batches", STATE_LAG_HELP, lag or 0)


def disk_families(disk: Disk) -> Iterator[Metric]:
    yield _gauge(
        "lakemail_lake_size_bytes", "Bytes of the lake's files (every version Delta keeps).", disk.lake_bytes
    )
    yield _gauge(
        "lakemail_dagster_storage_size_bytes",
        "Bytes of Dagster's storage under DAGSTER_HOME (runs, event logs, schedules: SQLite by default).",
        disk.dagster_bytes,
    )
    size = GaugeMetricFamily(
        "lakemail_filesystem_size_bytes", "Size of the filesystem holding the volume.", labels=["volume"]
    )
    free = GaugeMetricFamily(
        "lakemail_filesystem_avail_bytes",
        "Bytes an unprivileged writer can still use there.",
        labels=["volume"],
    )
    for volume, (total, available) in sorted(disk.filesystems.items()):
        size.add_metric([volume], total)
        free.add_metric([volume], available)
    yield size
    yield free

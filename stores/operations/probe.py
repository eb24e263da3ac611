"""What a check reads from the lake: a `Probe` on the lake and the landing zone, scoped by a `Scope`.

In a micro-batch the checks look at what the latest batch added; the hourly monitors and the audits
look at a window, or at the whole lake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import polars as pl
from deltalake import DeltaTable

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateStore
from stores.ingest import BACKLOG_READ, landed_frame
from transforms.ingest.batch import arrivals
from transforms.operations.checks import Thresholds
from transforms.schema import INGEST_LOG_SCHEMA

# Which columns scope a table's rows: its batch number (in-run) and its time column (audit windows).
# identities, profiles and sends are small (one row per edge, user, email): checks read them whole.
SCOPE_COLUMNS: dict[str, tuple[str | None, str | None]] = {
    "events": ("batch_id", "ingested_at"),
    "quarantine": ("batch_id", "ingested_at"),
    "ingest_log": ("batch_id", "committed_at"),
    "triggers": (None, "decided_at"),
}
# Commits that bring data in (compaction, vacuum, deletes and rollbacks say nothing about freshness).
DATA_OPERATIONS = frozenset({"WRITE", "MERGE", "CREATE TABLE", "STREAMING UPDATE"})
HISTORY_DEPTH = 20


@dataclass(frozen=True)
class Scope:
    """Rows a check reads: of the batches `first_batch`..`batch_id` (in-run: every batch the run committed;
    `batch_id` alone: that one), or since a time (audits); neither means the whole lake. In-run, the
    decisions of the engine run `evaluation` (the run's `triggers` commit; None: a run without one)."""

    batch_id: int | None = None
    since: datetime | None = None
    first_batch: int | None = None
    evaluation: int | None = None

    @property
    def whole_lake(self) -> bool:
        return self.batch_id is None and self.since is None

    @property
    def in_run(self) -> bool:
        """A micro-batch's scope (it names the last batch, of the run or the lake); an audit's names none."""
        return self.batch_id is not None

    @property
    def first(self) -> int | None:
        """The first batch in scope (the last, `batch_id`, unless the run committed more)."""
        return self.batch_id if self.first_batch is None else self.first_batch


@dataclass
class Probe:
    """What a check evaluation reads from: the lake, the landing zone, a scope, limits and the time."""

    lake: LakeResource
    landing: LandingResource
    scope: Scope
    thresholds: Thresholds
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: StateStore | None = None  # in a micro-batch: the store, for checks that read what it wrote
    _tables: dict[str, DeltaTable | None] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> DeltaTable | None:
        """The table's snapshot, loaded once per probe (so all its checks see one version)."""
        if name not in self._tables:
            self._tables[name] = self.lake.table(name)
        return self._tables[name]

    def whole(self, name: str) -> pl.LazyFrame | None:
        table = self.table(name)
        return None if table is None else pl.scan_delta(table)

    def scoped(self, name: str) -> pl.LazyFrame | None:
        """Rows of `name` in scope, or None when the table does not exist yet."""
        frame = self.whole(name)
        batch_column, time_column = SCOPE_COLUMNS.get(name, (None, None))
        if frame is None:
            return None
        if batch_column and self.scope.batch_id is not None:
            return frame.filter(pl.col(batch_column).is_between(self.scope.first, self.scope.batch_id))
        if time_column and self.scope.since is not None:
            return frame.filter(pl.col(time_column) >= self.scope.since)
        return frame

    @cached_property
    def landed_at(self) -> list[datetime]:
        """When each `events/` file landed, as first taken (`arrivals`): a ctime that moved later (erasure
        blanked a line, a chmod) is no file waiting."""
        listed = landed_frame(self.landing.list_files("events"))
        paths = listed["source_file"].implode()
        taken = self.lake.scan("ingest_log", INGEST_LOG_SCHEMA).filter(pl.col("source_file").is_in(paths))
        return arrivals(listed, taken.select(BACKLOG_READ).collect())["landed_at"].to_list()

    def last_data_commit(self, name: str) -> datetime | None:
        return last_data_commit(self.table(name))


def last_data_commit(table: DeltaTable | None) -> datetime | None:
    """When `table` last brought data in (DATA_OPERATIONS: not a compaction, vacuum or delete)."""
    if table is None:
        return None
    for history in (table.history(HISTORY_DEPTH), table.history()):  # all of it only when needed
        writes = [c for c in history if c.get("operation") in DATA_OPERATIONS]
        if writes:
            return datetime.fromtimestamp(writes[0]["timestamp"] / 1000, UTC)
    return None

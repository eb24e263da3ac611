"""Arithmetic of a maintenance pass: per-table file and byte counts, the history cutoff, the report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TableMaintenance:
    """What compaction, vacuum and log cleanup did to one Delta table."""

    table: str
    files_before: int  # data files on disk (live and removed-but-not-vacuumed)
    files_after: int
    bytes_before: int
    bytes_after: int
    bytes_reclaimed: int  # sizes of the files that were on disk before and are gone after
    active_files_before: int  # files of the table's current version
    active_files_after: int
    version_before: int
    version_after: int


def table_maintenance(
    table: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    *,
    active_files: tuple[int, int],
    versions: tuple[int, int],
) -> TableMaintenance:
    """The report of one table from its data files ({path: size}) on disk before and after."""
    return TableMaintenance(
        table=table,
        files_before=len(before),
        files_after=len(after),
        bytes_before=sum(before.values()),
        bytes_after=sum(after.values()),
        # Files that compaction wrote are not "reclaimed" space: only what vacuum removed counts.
        bytes_reclaimed=sum(size for path, size in before.items() if path not in after),
        active_files_before=active_files[0],
        active_files_after=active_files[1],
        version_before=versions[0],
        version_after=versions[1],
    )


@dataclass(frozen=True)
class MaintenanceReport:
    """A whole maintenance pass: every lake table, and the Dagster history it pruned."""

    tables: list[TableMaintenance] = field(default_factory=list)
    runs_deleted: int = 0
    ticks_deleted: int = 0

    @property
    def files_before(self) -> int:
        return sum(t.files_before for t in self.tables)

    @property
    def files_after(self) -> int:
        return sum(t.files_after for t in self.tables)

    @property
    def bytes_reclaimed(self) -> int:
        return sum(t.bytes_reclaimed for t in self.tables)


def history_cutoff(now: datetime, retention_days: float) -> datetime:
    """The moment before which finished runs and ticks are deleted."""
    if retention_days < 0:
        raise ValueError("history_retention_days must not be negative")
    return now - timedelta(days=retention_days)


TABLE_COLUMNS = (
    ("table", "table"),
    ("files before", "files_before"),
    ("files after", "files_after"),
    ("active before", "active_files_before"),
    ("active after", "active_files_after"),
    ("bytes before", "bytes_before"),
    ("bytes after", "bytes_after"),
    ("bytes reclaimed", "bytes_reclaimed"),
    ("version before", "version_before"),
    ("version after", "version_after"),
)


def tables_markdown(tables: list[TableMaintenance]) -> str:
    """The per-table report as a markdown table (for the UI's metadata panel)."""
    if not tables:
        return "no Delta tables in the lake yet"
    head = "| " + " | ".join(title for title, _ in TABLE_COLUMNS) + " |\n"
    rule = "|" + "---|" * len(TABLE_COLUMNS) + "\n"
    rows = "".join(
        "| " + " | ".join(str(getattr(t, attr)) for _, attr in TABLE_COLUMNS) + " |\n" for t in tables
    )
    return head + rule + rows

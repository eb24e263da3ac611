"""What one micro-batch's ingest did (`IngestReport`), for asset metadata and the CLI, and how a committed
batch adds to it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

PREVIEW = (
    "event_type",
    "event_name",
    "event_ts",
    "event_date",
    "product_id",
)  # a batch's first events, shown


@dataclass
class IngestReport:
    """What one micro-batch's ingest did, for asset metadata and the CLI."""

    batches: list[int] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    accepted: int = 0  # events
    reference_rows: int = 0  # accepted rows of customers/ and catalog/ files: lines add up with them
    duplicates: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    failed_files: list[str] = field(default_factory=list)
    retrying_files: list[str] = field(default_factory=list)  # failed transiently, taken again later
    changed_files: list[str] = field(default_factory=list)
    oldest_landed_at: datetime | None = None
    committed_at: datetime | None = None
    preview: pl.DataFrame | None = None
    reference_files: Counter[str] = field(default_factory=Counter)
    catalog_changes: int = 0

    @property
    def lag_seconds(self) -> float | None:
        if self.oldest_landed_at is None or self.committed_at is None:
            return None
        return (self.committed_at - self.oldest_landed_at).total_seconds()


def record(
    report: IngestReport,
    batch_id: int,
    events: pl.DataFrame,
    quarantine: pl.DataFrame,
    entries: pl.DataFrame,
    committed_at: datetime,
) -> None:
    report.batches.append(batch_id)
    report.files += entries.height
    report.lines += int(entries["lines"].sum())
    report.accepted += events.height
    reference = entries.filter(~pl.col("source_file").str.starts_with("events/"))
    report.reference_rows += int(reference["accepted"].sum())
    report.duplicates += int(entries["duplicates"].sum())
    report.quarantined.update(dict(quarantine["reason"].value_counts().iter_rows()))
    oldest = entries["landed_at"].min()
    if isinstance(oldest, datetime) and (report.oldest_landed_at is None or oldest < report.oldest_landed_at):
        report.oldest_landed_at = oldest
    report.committed_at = committed_at
    if events.height:
        report.preview = events.select(PREVIEW).head(5)

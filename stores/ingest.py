"""The ingest stage of a micro-batch: landed files -> events, quarantine, identities, ingest_log.

Exactly once: the lake is the record of what was ingested. Under the lake's writer lock a batch
(1) rolls back rows of a batch that did not complete (its number is above `ingest_log`'s last one),
(2) takes the files that `ingest_log` has no row for, (3) writes quarantine, events and identities,
each commit tagged with the batch number, and (4) commits `ingest_log` last. A crash anywhere before
(4) is undone by the next batch's (1); a crash after (4) leaves nothing to redo.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandedFile, LandingResource
from stores.reference import REFERENCE_FOLDERS, merge_reference, reference_counts
from transforms.ingest.batch import LANDED_SCHEMA, commit_groups, pending_files
from transforms.ingest.events import dedupe_dates, identity_edges
from transforms.ingest.files import FileResult, assemble_batch, process_file
from transforms.ingest.reference import ReferenceResult, parse_reference
from transforms.schema import (
    EVENTS_SCHEMA,
    IDENTITIES_SCHEMA,
    INGEST_LOG_SCHEMA,
    UTC_TS,
)

log = logging.getLogger(__name__)
# Rolled back by batch number; identities only adds missing edges, customers and catalog keep the latest row.
APPEND_TABLES = ("quarantine", "events", "catalog_changes")
INGEST_FOLDERS = ("events", "customers", "catalog")  # the landing folders a micro-batch takes
DEFAULT_MAX_BATCH_BYTES = 128 * 1024 * 1024
PARSE_THREADS = 2  # the reference machine has 2 cores
LOG_ROW_COLUMNS = ("source_file", "bytes", "sha256", "batch_id", "status", "detail", "landed_at")


@dataclass
class IngestReport:
    """What one micro-batch's ingest did, for asset metadata and the CLI."""

    batches: list[int] = field(default_factory=list)
    files: int = 0
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    failed_files: list[str] = field(default_factory=list)
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


def landed_frame(files: list[LandedFile]) -> pl.DataFrame:
    """Landed files as a LANDED_SCHEMA frame."""
    rows = [(f.path, f.size, f.landed_at) for f in files]
    return pl.DataFrame(rows, schema=LANDED_SCHEMA, orient="row")


def landed_files(landing: LandingResource) -> list[LandedFile]:
    """Finished files in every folder a micro-batch takes."""
    return [f for folder in INGEST_FOLDERS for f in landing.list_files(folder)]


def backlog(lake: LakeResource, landing: LandingResource) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(every landed file, those the lake has not ingested), both LANDED_SCHEMA: what the sensor and
    `lakemail status` see waiting."""
    landed = landed_frame(landed_files(landing))
    return landed, pending_files(landed, lake.read("ingest_log", INGEST_LOG_SCHEMA, ["source_file", "bytes"]))


def ingest(
    lake: LakeResource,
    landing: LandingResource,
    manifest: list[str] | None = None,
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
) -> IngestReport:
    """Ingest `manifest` (default: everything landed) that the lake has not ingested yet, exactly once."""
    report = IngestReport()
    with lake.writer_lock():
        roll_back_incomplete_batch(lake)
        if manifest is None:
            landed = landed_files(landing)
        else:
            landed = [f for f in (landing.stat(p) for p in manifest) if f is not None]
        ingest_log = lake.read("ingest_log", INGEST_LOG_SCHEMA, ["source_file", "bytes", "sha256"])
        pending = pending_files(landed_frame(landed), ingest_log)
        listed = {path: (size, at) for path, size, at in pending.iter_rows()}
        for group in commit_groups(pending, max_batch_bytes):
            _ingest_group(lake, landing, group, listed, ingest_log, report)
    return report


def roll_back_incomplete_batch(lake: LakeResource) -> None:
    """Delete rows written by a batch that crashed before its `ingest_log` commit."""
    committed = lake.committed_batch()
    for name in APPEND_TABLES:
        if lake.batch_version(name) > committed:
            log.warning("rolling back table %s: batch %s did not complete", name, lake.batch_version(name))
            lake.delete_batches_after(name, committed)


def _ingest_group(
    lake: LakeResource,
    landing: LandingResource,
    group: list[str],
    listed: dict[str, tuple[int, datetime]],
    ingest_log: pl.DataFrame,
    report: IngestReport,
) -> None:
    batch_id = lake.committed_batch() + 1
    ingested_at = datetime.now(UTC)
    recorded = set(ingest_log.select("source_file", "sha256").iter_rows())
    known_paths = set(ingest_log["source_file"])

    def read_one(path: str) -> tuple[dict[str, object] | None, FileResult | ReferenceResult | None]:
        row: dict[str, object] = dict.fromkeys(LOG_ROW_COLUMNS)
        size, landed_at = listed[path]
        row.update(source_file=path, batch_id=batch_id, bytes=size, landed_at=landed_at)
        try:
            raw, content = landing.read(path)
            row.update(bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())
            if (path, row["sha256"]) in recorded:
                return None, None  # same bytes already ingested (e.g. its mtime changed): nothing to do
            if path in known_paths:
                row.update(status="changed", detail="landed again with other bytes; not re-read")
                return row, None
            reference = next(
                (k for folder, (k, _) in REFERENCE_FOLDERS.items() if path.startswith(folder)), None
            )
            parse = partial(parse_reference, reference) if reference else process_file
            result = parse(
                content, source_file=path, landed_at=landed_at, ingested_at=ingested_at, batch_id=batch_id
            )
            row.update(status="committed")
            return row, result
        except Exception as error:  # a bad file never blocks the files behind it
            log.warning("landing file %s failed: %s", path, type(error).__name__)
            row.update(status="failed", detail=f"{type(error).__name__}: {error}"[:500])
            return row, None

    # Polars releases the GIL while it parses: two files at a time use both cores. map keeps file order,
    # so "first occurrence wins" in the dedupe stays deterministic.
    with ThreadPoolExecutor(max_workers=PARSE_THREADS) as pool:
        outcomes = list(pool.map(read_one, group))
    results = [result for _, result in outcomes if isinstance(result, FileResult)]
    references = [
        (str(row["source_file"]), r)
        for row, r in outcomes
        if isinstance(r, ReferenceResult) and row is not None
    ]
    log_rows = [row for row, _ in outcomes if row is not None]
    report.changed_files += [str(r["source_file"]) for r in log_rows if r["status"] == "changed"]
    report.failed_files += [str(r["source_file"]) for r in log_rows if r["status"] == "failed"]
    _commit(lake, batch_id, results, references, log_rows, report)


def _commit(
    lake: LakeResource,
    batch_id: int,
    results: list[FileResult],
    references: list[tuple[str, ReferenceResult]],
    log_rows: list[dict[str, object]],
    report: IngestReport,
) -> None:
    dates = sorted({d for r in results for d in r.events["event_date"].unique().to_list()})
    rows = assemble_batch(results, seen_event_ids(lake, dates))
    quarantine = pl.concat([rows.quarantine, *[r.quarantine for _, r in references]])
    lake.append("quarantine", quarantine, batch_id=batch_id)
    lake.append("events", rows.events, batch_id=batch_id, partition_by=["event_date"])
    merge_identities(lake, identity_edges(rows.events), batch_id)
    counts = pl.concat([rows.counts, reference_counts(references)])
    report.catalog_changes += merge_reference(lake, references, batch_id)
    report.reference_files.update(path.split("/", 1)[0] for path, _ in references)
    committed_at = datetime.now(UTC)
    entries = (
        pl.DataFrame(log_rows, schema={c: INGEST_LOG_SCHEMA[c] for c in LOG_ROW_COLUMNS})
        .join(counts, on="source_file", how="left")
        .with_columns(
            pl.col("lines", "accepted", "quarantined", "duplicates").fill_null(0),
            pl.lit(committed_at, dtype=UTC_TS).alias("committed_at"),
        )
        .select([pl.col(c).cast(t) for c, t in INGEST_LOG_SCHEMA.items()])
    )
    lake.append("ingest_log", entries, batch_id=batch_id)
    _record(report, batch_id, rows.events, quarantine, entries, committed_at)


def _record(
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
    report.duplicates += int(entries["duplicates"].sum())
    report.quarantined.update(dict(quarantine["reason"].value_counts().iter_rows()))
    oldest = entries["landed_at"].min()
    if isinstance(oldest, datetime) and (report.oldest_landed_at is None or oldest < report.oldest_landed_at):
        report.oldest_landed_at = oldest
    report.committed_at = committed_at
    if events.height:
        report.preview = events.select(
            "event_type", "event_name", "event_ts", "event_date", "product_id"
        ).head(5)


def seen_event_ids(lake: LakeResource, dates: list[date]) -> pl.Series:
    """event_ids already in the lake where copies of events on `dates` can be (partition-pruned)."""
    if not dates:
        return pl.Series("event_id", [], dtype=pl.String)
    events = lake.scan("events", EVENTS_SCHEMA).filter(pl.col("event_date").is_in(dedupe_dates(dates)))
    return events.select("event_id").collect()["event_id"]


def merge_identities(lake: LakeResource, edges: pl.DataFrame, batch_id: int) -> None:
    """Add new anonymous -> user edges and move first_seen_at back when seen earlier (idempotent).

    Not a Delta MERGE: delta-rs writes a filter built from the source's values (person ids) into the
    commit's record, and `_delta_log` must never hold one. New edges are appended; the rare earlier
    sighting of a known edge rewrites this small table whole, which records no predicate.
    """
    key = ["anonymous_id", "user_id"]
    existing = lake.read("identities", IDENTITIES_SCHEMA)
    known = edges.join(existing, on=key, how="inner", suffix="_known")
    if known.filter(pl.col("first_seen_at") < pl.col("first_seen_at_known")).height == 0:
        lake.append("identities", edges.join(existing, on=key, how="anti"), batch_id=batch_id)
        return
    merged = (
        pl.concat([existing, edges.select(list(IDENTITIES_SCHEMA))])
        .group_by(key)
        .agg(pl.col("first_seen_at").min())
        .sort(key)
    )
    lake.overwrite("identities", merged.select(list(IDENTITIES_SCHEMA)), batch_id=batch_id)

"""The ingest stage of a micro-batch: landed files -> events, quarantine, identities, ingest_log.

Exactly once: the lake is the record of what was ingested. Under the lake's writer lock a batch
(1) rolls back rows of a batch that did not complete (its number is above `ingest_log`'s last one;
`identities`: `roll_back_identities`), (2) takes the files that `ingest_log` has no row for, (3) writes
quarantine, events and identities, each commit tagged with the batch number, and (4) commits `ingest_log`
last. A crash anywhere before (4) is undone by the next batch's (1); a crash after (4) leaves nothing to redo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import partial

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandedFile, LandingResource
from resources.state import StateReader, StateResource, StateStore
from stores.identities import RolledBack, merge_identities, roll_back_identities
from stores.ingest_files import (
    CHANGED,
    LOG_ROW_COLUMNS,
    FileOutcome,
    Ingested,
    landed_manifest,
    produced_ahead,
    read_ahead,
    read_landed,
    stamped,
    validated,
)
from stores.ingest_report import PREVIEW, IngestReport, record
from stores.ingest_tables import set_up_tables
from stores.profiles import append_updates
from stores.reference import merge_reference, reference_counts
from stores.state.batch import (
    CHANGES_READ,
    BatchRows,
    event_changes,
    event_state,
    log_changes,
    partial_rows,
)
from stores.state.live_profiles import HeldProfiles
from stores.state.reads import landed_log, seen_ids
from stores.state.sync import ready
from stores.suppressions import record_unsubscribes
from transforms.ingest.batch import (
    DEFAULT_MAX_BATCH_BYTES,
    FAILED,
    LANDED_SCHEMA,
    RETRYING,
    arrivals,
    commit_groups,
    pending_files,
    reflected_until,
)
from transforms.ingest.events import dedupe_dates, identity_edges
from transforms.ingest.files import FileResult, assemble_batch
from transforms.ingest.reference import ReferenceResult
from transforms.profiles.partials import partials
from transforms.schema import (
    EVENTS_SCHEMA,
    INGEST_LOG_SCHEMA,
    SUPPRESSIONS_SCHEMA,
    UTC_TS,
)
from transforms.state import StateChanges

log = logging.getLogger(__name__)
# Rolled back by batch number (identities by its version before); customers and catalog keep the latest row.
APPEND_TABLES = ("quarantine", "events", "catalog_changes")
INGEST_FOLDERS = ("events", "customers", "catalog")  # the landing folders a micro-batch takes
PARSE_THREADS = 2  # the reference machine has 2 cores
# Landed bytes parsed ahead of the commit (#17): the readers use the core the commit leaves idle.
READ_AHEAD_BYTES = 16 * 1024 * 1024
# Validated bytes held ahead of the commit, beyond the pass being validated (a pass: GROUP_LINES lines).
VALIDATE_AHEAD_BYTES = 16 * 1024 * 1024
VALIDATE_THREADS = 2  # passes validated at once: the commit waited on one
BACKLOG_READ = ["source_file", "bytes", "batch_id", "status", "landed_at", "committed_at", "modified_at"]
LOG_READ = [*BACKLOG_READ, "sha256"]


def landed_frame(files: list[LandedFile]) -> pl.DataFrame:
    """Landed files as a LANDED_SCHEMA frame."""
    rows = [(f.path, f.size, f.landed_at, f.modified_at) for f in files]
    return pl.DataFrame(rows, schema=LANDED_SCHEMA, orient="row")


def landed_files(landing: LandingResource) -> list[LandedFile]:
    """Finished files in every folder a micro-batch takes."""
    return [f for folder in INGEST_FOLDERS for f in landing.list_files(folder)]


def backlog(
    lake: LakeResource, landing: LandingResource, now: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(every landed file (LANDED_SCHEMA, landing times as first taken: `arrivals`), those to take at
    `now` (PENDING_SCHEMA)): what the sensor and `lakemail status` see waiting."""
    landed = landed_frame(landed_files(landing))
    taken = lake.read("ingest_log", INGEST_LOG_SCHEMA, BACKLOG_READ)
    return arrivals(landed, taken), pending_files(landed, taken, now)


def reflected_as_of(
    landing: LandingResource, reader: StateReader, now: datetime, offset: timedelta
) -> datetime:
    """On the run's clock (`now`; `offset` places wall-clock landing times on it): the moment the state
    store `reader` sees reflects every landed line up to (`transforms.ingest.batch.reflected_until`)."""
    landed = landed_frame(landed_files(landing))
    taken = landed_log(reader, landed["source_file"].to_list(), BACKLOG_READ)
    return reflected_until(landed, taken, now - offset) + offset


def ingest(
    lake: LakeResource,
    landing: LandingResource,
    manifest: list[str] | None = None,
    *,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    now: datetime | None = None,
    retry: Collection[str] = (),
    state: StateResource | None = None,
    secret: str | None = None,
) -> IngestReport:
    """Ingest `manifest` (default: everything landed) that the lake has not ingested yet, exactly once;
    files failing transiently are taken again once their backoff is over at `now`, `retry` ones at once.

    Commits hold at most `max_batch_bytes` of decompressed content (a bigger file goes alone). With a
    `state` store, it is caught up with the lake first (`stores.state.sync.ready`), the batch asks it
    which files, event ids and identity edges it holds, and each batch's changes are committed to it
    right after the batch's `ingest_log` commit. `secret` keys the suppressions of `Unsubscribed` events.
    """
    report = IngestReport()
    with lake.ingest_lock():  # the ingest lane (#15): never waits for a delivery
        rolled = roll_back_incomplete_batch(lake)
        set_up_tables(lake)  # the public tables a first batch may not write, empty (queryable by name)
        store = ready(lake, state, rolled.distrust).store if state is not None else None
        if manifest is None:
            landed = landed_files(landing)
        else:
            landed = landed_manifest(landing, [*manifest, *retry], partial(landed_files, landing))
        if store is None:
            ingest_log = lake.read("ingest_log", INGEST_LOG_SCHEMA, LOG_READ)
        else:
            ingest_log = landed_log(store, [f.path for f in landed], LOG_READ)
        pending = pending_files(landed_frame(landed), ingest_log, now, retry)
        by_path = {f.path: f for f in landed}
        ingested = Ingested.of(ingest_log)

        def read_one(item: tuple[str, int, datetime]) -> FileOutcome:
            path, attempt, landed_at = item  # landed_at: as first taken (a retry keeps it)
            return read_landed(landing, replace(by_path[path], landed_at=landed_at), attempt, ingested)

        # Two files parsed at a time (Polars releases the GIL), in file order: the dedupe stays deterministic.
        outcomes = read_ahead(
            read_one,
            pending.select("source_file", "attempt", "landed_at").iter_rows(),
            PARSE_THREADS,
            budget=READ_AHEAD_BYTES,
            weight=lambda item: by_path[item[0]].size,
        )
        # Event files validated many at a time (transforms.ingest.group), a group ahead of the commit.
        outcomes = produced_ahead(
            validated(outcomes, workers=VALIDATE_THREADS), VALIDATE_AHEAD_BYTES, lambda o: o.content_bytes
        )
        _commit_groups(lake, outcomes, max_batch_bytes, report, store, secret)
    return report


def _commit_groups(
    lake: LakeResource,
    outcomes: Iterable[FileOutcome],
    max_batch_bytes: int,
    report: IngestReport,
    store: StateStore | None,
    secret: str | None,
) -> None:
    """Commit `outcomes` in groups of at most `max_batch_bytes`. A group's store commit and record of
    partials run behind it while the next group is gathered (#17: the commit waited on the store's fsync
    with the validation stalled behind it); in order, and the next group waits for them before it reads
    the store."""
    held = HeldProfiles()  # the profile states each group commits, read by the next (#17)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-store") as behind:
        finishing: Future[None] | None = None
        for group in commit_groups(((o, o.content_bytes) for o in outcomes), max_batch_bytes):
            if finishing is not None:
                finishing.result()
            finishing = behind.submit(_commit(lake, group, report, store, secret, held))
        if finishing is not None:
            finishing.result()


def roll_back_incomplete_batch(lake: LakeResource) -> RolledBack:
    """Delete rows written by a batch that crashed before its `ingest_log` commit (returns what became of
    its `identities` edges)."""
    committed = lake.committed_batch()
    for name in APPEND_TABLES:
        if lake.batch_version(name) > committed:
            log.warning("rolling back table %s: batch %s did not complete", name, lake.batch_version(name))
            lake.delete_batches_after(name, committed)
    return roll_back_identities(lake, committed)


def _commit(
    lake: LakeResource,
    outcomes: list[FileOutcome],
    report: IngestReport,
    store: StateStore | None = None,
    secret: str | None = None,
    held: HeldProfiles | None = None,
) -> Callable[[], None]:
    """Commit a group to the lake (its `ingest_log` row last); returns what is left: `_finish`."""
    batch_id = lake.committed_batch() + 1
    log_rows = [{**o.row, "batch_id": batch_id} for o in outcomes]
    report.changed_files += [str(r["source_file"]) for r in log_rows if r["status"] == CHANGED]
    report.failed_files += [str(r["source_file"]) for r in log_rows if r["status"] == FAILED]
    report.retrying_files += [str(r["source_file"]) for r in log_rows if r["status"] == RETRYING]
    parsed = [(str(o.row["source_file"]), stamped(o.result, batch_id)) for o in outcomes if o.result]
    results = [r for _, r in parsed if isinstance(r, FileResult)]
    references = [(path, r) for path, r in parsed if isinstance(r, ReferenceResult)]
    rows = assemble_batch(results, _seen(lake, store, results)).stamped(batch_id)
    del parsed, results  # assembled: the files' own rows freed before the commits (#17, peak RSS)
    outcomes.clear()  # the caller's group list holds them too
    edges = identity_edges(rows.events)
    # Partials and store changes computed on a thread while the Delta commits run (#17); the store's after.
    # Each step holds only the columns it reads, and the batch keeps only those once Delta has its events:
    # the text columns are freed before the state's last steps, where the peak RSS was (#17).
    kept = rows.events.select(list(dict.fromkeys([*CHANGES_READ, *PREVIEW])))  # and the report's preview
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-state") as pool:
        part_ahead = pool.submit(partials, partial_rows(rows.events))
        ahead = pool.submit(lambda: event_state(store, kept, edges, part_ahead.result(), held))
        quarantine = pl.concat([rows.quarantine, *[r.quarantine for _, r in references]])
        lake.append("quarantine", quarantine, batch_id=batch_id)
        lake.append("events", rows.events, batch_id=batch_id, partition_by=["event_date"])
        merge_identities(lake, edges, batch_id, store)  # the store holds the batch before's edges
        suppressed = record_unsubscribes(lake, rows.events, secret) if secret is not None else None
        rows = replace(rows, events=kept)
        counts = pl.concat([rows.counts, reference_counts(references)])
        written: dict[str, pl.DataFrame] = {}
        report.catalog_changes += merge_reference(lake, references, batch_id, written)
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
        lake.append("ingest_log", entries, batch_id=batch_id)  # the batch is committed
        part, changes = part_ahead.result(), ahead.result()
    suppressions = suppressed if suppressed is not None else pl.DataFrame(schema=SUPPRESSIONS_SCHEMA)
    record(report, batch_id, rows.events, quarantine, entries, committed_at)
    batch = BatchRows(batch_id, entries, rows.events, edges, suppressions, written, part)
    return partial(_finish, lake, batch, store, changes, held)


def _finish(
    lake: LakeResource,
    batch: BatchRows,
    store: StateStore | None,
    changes: StateChanges | None,
    held: HeldProfiles | None,
) -> None:
    """A committed batch's store commit (None `changes`: computed here), then its record of partials."""
    assert batch.partials is not None
    if store is not None:
        if changes is None:  # a shopper changed hands: the lake as of this batch answers (rare)
            changes = event_changes(store, lake, batch.events, batch.edges, batch.partials, held)
        changes.update(log_changes(store, batch))
        store.commit(batch.batch_id, changes, lane="ingest")
        if held is not None:
            held.committed()
    append_updates(lake, batch.batch_id, batch.partials)  # the lake's record (profiles refresh folds them)


def _seen(lake: LakeResource, store: StateStore | None, results: list[FileResult]) -> pl.Series:
    """The event ids of `results` accepted before: the store's index (no horizon), else the lake's
    partitions a day either side of the events' dates."""
    if store is not None:
        ids = [r.events["event_id"] for r in results]
        return seen_ids(store, pl.concat(ids) if ids else pl.Series("event_id", [], dtype=pl.String))
    dates = sorted({d for r in results for d in r.events["event_date"].unique().to_list()})
    return seen_event_ids(lake, dates)


def seen_event_ids(lake: LakeResource, dates: list[date]) -> pl.Series:
    """event_ids already in the lake where copies of events on `dates` can be (partition-pruned)."""
    if not dates:
        return pl.Series("event_id", [], dtype=pl.String)
    events = lake.scan("events", EVENTS_SCHEMA).filter(pl.col("event_date").is_in(dedupe_dates(dates)))
    return events.select("event_id").collect()["event_id"]

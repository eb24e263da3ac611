"""What a micro-batch takes: pending landed files, the sensor's decision, and commit groups.

A landed file is known by its path, size and mtime (`modified_at`, which erasure's rewrites keep): a file
renamed into place again is taken again (and compared by sha256 with what was ingested), one that failed
for a transient reason (an I/O error) is taken again after a backoff, and the operator can take any
failed one again. Its `landed_at` (when it appeared in the zone: its ctime, `resources.landing`) is a time,
not part of what it is known by: the one `ingest_log` holds for it once it has been taken (`arrivals`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import polars as pl

T = TypeVar("T")
RETRYING, FAILED = "retrying", "failed"  # ingest_log statuses of a transient and of a final failure
MAX_ATTEMPTS = 5  # reads of a file with transient failures before it is `failed` (`lakemail retry`)
RETRY_BASE = timedelta(minutes=1)  # the wait after the first failed attempt; x4 after each further one
RETRY_FACTOR = 4
# Decompressed landed bytes one commit takes at most (`LAKEMAIL_MAX_BATCH_MB`). A backlog's commit costs
# more per group than per line (every shopper's profile state is merged, encoded and rewritten once a
# group): #17 measured 128 -> 192 MB at -14 % CPU and +200 MB peak RSS on a 1M-line backlog.
DEFAULT_MAX_BATCH_MB = 192
DEFAULT_MAX_BATCH_BYTES = DEFAULT_MAX_BATCH_MB * 1024 * 1024
PENDING_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "bytes": pl.Int64(),
    "landed_at": pl.Datetime("us", "UTC"),
    "modified_at": pl.Datetime("us", "UTC"),
    "attempt": pl.Int64(),  # failed attempts since the last final outcome (0: a new file)
}

LANDED_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "bytes": pl.Int64(),
    "landed_at": pl.Datetime("us", "UTC"),  # when it appeared in the landing zone (ctime)
    "modified_at": pl.Datetime("us", "UTC"),  # its mtime, as its producer left it
}
# What tells one landing of a path from the next. ingest_log rows written before `modified_at` existed
# hold the mtime as their `landed_at` (`_logged`).
IDENTITY = ["source_file", "bytes", "modified_at"]


def _logged(ingest_log: pl.DataFrame) -> pl.DataFrame:
    """`ingest_log` (with source_file, bytes, landed_at and maybe modified_at) keyed by IDENTITY."""
    if "modified_at" not in ingest_log.columns:
        return ingest_log.with_columns(pl.col("landed_at").alias("modified_at"))
    return ingest_log.with_columns(pl.coalesce("modified_at", "landed_at").alias("modified_at"))


def arrivals(landed: pl.DataFrame, ingest_log: pl.DataFrame) -> pl.DataFrame:
    """Landed files (LANDED_SCHEMA) with the `landed_at` their `ingest_log` rows recorded when they were
    first taken: a ctime that moved since (a chmod, a link, erasure blanking a line) is not a new landing
    time. Files not taken yet keep the listing's."""
    first = _logged(ingest_log).group_by(IDENTITY).agg(pl.col("landed_at").min().alias("_logged_at"))
    return (
        landed.join(first, on=IDENTITY, how="left")
        .with_columns(pl.coalesce("_logged_at", "landed_at").alias("landed_at"))
        .select([pl.col(c).cast(t) for c, t in LANDED_SCHEMA.items()])
    )


def retry_after(attempts: int) -> timedelta:
    """How long a file waits after its `attempts`-th failed read: 1, 4, 16, 64 minutes."""
    return RETRY_BASE * RETRY_FACTOR ** max(attempts - 1, 0)


def failed_attempts(ingest_log: pl.DataFrame) -> pl.DataFrame:
    """Per file whose last row is `retrying` or `failed`: source_file, status, attempts (its `retrying`
    rows since its last other outcome) and when it last failed (`failed_at`)."""
    failing = ingest_log.filter(pl.col("status").is_in([RETRYING, FAILED]))["source_file"].unique()
    rows = ingest_log.filter(pl.col("source_file").is_in(failing.implode())).sort("batch_id")
    since = pl.col("batch_id").filter(pl.col("status") != RETRYING).max().fill_null(-1)
    return (
        rows.group_by("source_file")
        .agg(
            pl.col("status").last(),
            ((pl.col("status") == RETRYING) & (pl.col("batch_id") > since))
            .sum()
            .cast(pl.Int64)
            .alias("attempts"),
            pl.col("committed_at").last().alias("failed_at"),
        )
        .filter(pl.col("status").is_in([RETRYING, FAILED]))
        .sort("source_file")
    )


def pending_files(
    landed: pl.DataFrame,
    ingest_log: pl.DataFrame,
    now: datetime | None = None,
    retry: Collection[str] = (),
) -> pl.DataFrame:
    """Landed files (LANDED_SCHEMA) to take now, by path, with their `attempt` and `landed_at` (as first
    taken: `arrivals`) (PENDING_SCHEMA): those `ingest_log` has no row for at that path, size and mtime,
    those failing transiently whose backoff is over at `now`, and the paths in `retry` (the operator's)."""
    landed = arrivals(landed, ingest_log)
    new = landed.select(IDENTITY).join(_logged(ingest_log).select(IDENTITY), on=IDENTITY, how="anti")
    failing = failed_attempts(ingest_log)
    moment = now or datetime.now(UTC)
    due = [
        path
        for path, status, attempts, failed_at in failing.iter_rows()
        if status == RETRYING and failed_at is not None and failed_at + retry_after(attempts) <= moment
    ]
    take = pl.concat([new["source_file"], pl.Series("source_file", [*due, *retry], dtype=pl.String)])
    return (
        landed.filter(pl.col("source_file").is_in(take.implode()))
        .join(
            failing.select("source_file", pl.col("attempts").alias("attempt")), on="source_file", how="left"
        )
        .with_columns(pl.col("attempt").fill_null(0))
        .select([pl.col(c).cast(t) for c, t in PENDING_SCHEMA.items()])
        .sort("source_file")
    )


def reflected_until(landed: pl.DataFrame, ingest_log: pl.DataFrame, now: datetime) -> datetime:
    """The moment the lake (and the state store) reflects every landed line up to: the landing time of
    the oldest landed file (LANDED_SCHEMA) not taken yet or failing transiently, else `now`. A file that
    failed for good is not waited for: its lines will never come (`lakemail retry` takes it again)."""
    landed = arrivals(landed, ingest_log)
    new = landed.join(_logged(ingest_log).select(IDENTITY), on=IDENTITY, how="anti")["landed_at"]
    failing = failed_attempts(ingest_log).filter(pl.col("status") == RETRYING)["source_file"]
    retrying = landed.filter(pl.col("source_file").is_in(failing.implode()))["landed_at"]
    oldest = pl.concat([new, retrying]).min()
    return min(now, oldest) if isinstance(oldest, datetime) else now


def batch_run_key(pending: pl.DataFrame) -> str:
    """Deterministic run key of a batch manifest: the same files, sizes, landing times and attempts give
    the same key (a file landed again, or due again after a failure, gives a new one)."""
    digest = hashlib.sha256()
    columns = [c for c in PENDING_SCHEMA if c in pending.columns]
    for row in pending.select(columns).iter_rows():
        digest.update("\0".join(map(str, row)).encode() + b"\n")
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


def commit_groups(sized: Iterable[tuple[T, int]], max_bytes: int) -> Iterator[list[T]]:
    """Consecutive groups of (item, bytes) of at most `max_bytes` each (a larger item is a group of its
    own), each yielded as soon as it is complete: the sizes can be learnt while reading."""
    current: list[T] = []
    size = 0
    for item, nbytes in sized:
        if current and size + nbytes > max_bytes:
            yield current
            current, size = [], 0
        current.append(item)
        size += nbytes
    if current:
        yield current

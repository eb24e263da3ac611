"""Reading the landed files of a micro-batch: each file -> its parsed rows and its `ingest_log` row.

A bad file never stops the batch: it gets a row with a reason. Permanent failures (not a regular file,
a name that is not UTF-8, over the size bound, not gzip, a type the ingest does not take) are `failed`
at once; transient ones (an OSError: an I/O error, a file still being written) are `retrying` and taken
again after a backoff, `failed` after MAX_ATTEMPTS (`lakemail retry` takes a failed file again).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import queue
import threading
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar, cast

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandedFile, LandingResource
from resources.landing_read import FileTooLarge
from stores.reference import REFERENCE_FOLDERS
from transforms.ingest.batch import FAILED, MAX_ATTEMPTS, RETRYING, failed_attempts, retry_after
from transforms.ingest.files import FileResult
from transforms.ingest.group import GROUP_LINES, ParsedFile, parse_file, validate_group
from transforms.ingest.reference import ReferenceResult, parse_reference
from transforms.schema import INGEST_LOG_SCHEMA, batch_column

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
LOG_ROW_COLUMNS = (
    "source_file",
    "bytes",
    "sha256",
    "batch_id",
    "status",
    "detail",
    "landed_at",
    "modified_at",
)
# BadGzipFile and FileTooLarge are OSErrors, but permanent: tested before the transient OSError.
PERMANENT_ERRORS = (FileTooLarge, gzip.BadGzipFile, EOFError, zlib.error, ValueError)
COMMITTED, CHANGED, UNCHANGED = "committed", "changed", "unchanged"


@dataclass(frozen=True)
class FileOutcome:
    """One landed file read: its ingest_log row (batch_id set at commit), what it parsed into, and the
    decompressed bytes it brings into the batch (LAKEMAIL_MAX_BATCH_MB counts these)."""

    row: dict[str, object]
    # an event file is read into a ParsedFile, then validated with its neighbours into a FileResult
    result: ParsedFile | FileResult | ReferenceResult | None = None
    content_bytes: int = 0


@dataclass(frozen=True)
class Ingested:
    """What `ingest_log` says was ingested: (path, sha256) of committed files, and their paths."""

    files: frozenset[tuple[str, str]]
    paths: frozenset[str]

    @classmethod
    def of(cls, ingest_log: pl.DataFrame) -> Ingested:
        done = ingest_log.filter(pl.col("status") == COMMITTED).select("source_file", "sha256")
        return cls(frozenset(done.iter_rows()), frozenset(done["source_file"]))


def read_landed(
    landing: LandingResource, landed: LandedFile, attempt: int, ingested: Ingested
) -> FileOutcome:
    """Read and parse one landed file (`attempt`: its failed reads so far); never raises."""
    row: dict[str, object] = dict.fromkeys(LOG_ROW_COLUMNS)
    path = landed.path
    row.update(
        source_file=path, bytes=landed.size, landed_at=landed.landed_at, modified_at=landed.modified_at
    )
    if landed.problem is not None:
        log.warning("landing entry %s is never read: %s", path, landed.problem)
        return FileOutcome({**row, "status": FAILED, "detail": landed.problem})
    try:
        raw, content = landing.read(path)
        sha256 = hashlib.sha256(raw).hexdigest()
        row.update(bytes=len(raw), sha256=sha256)
        if (path, sha256) in ingested.files:
            detail = "landed again with the bytes already ingested (same sha256); not re-read"
            return FileOutcome({**row, "status": UNCHANGED, "detail": detail})
        if path in ingested.paths:
            detail = "landed again with other bytes (another sha256); not re-read"
            return FileOutcome({**row, "status": CHANGED, "detail": detail})
        reference = next((k for folder, (k, _) in REFERENCE_FOLDERS.items() if path.startswith(folder)), None)
        result: ParsedFile | ReferenceResult
        if reference is None:
            result = parse_file(content, source_file=path, landed_at=landed.landed_at)
        else:
            at, kind = datetime.now(UTC), reference
            result = parse_reference(
                kind, content, source_file=path, landed_at=landed.landed_at, ingested_at=at, batch_id=0
            )
        return FileOutcome({**row, "status": COMMITTED}, result, len(content))
    except PERMANENT_ERRORS as error:
        return FileOutcome(_failed(row, error, f"{type(error).__name__}: {error}"))
    except OSError as error:  # transient: an I/O error, a file still changing, a permission being fixed
        return FileOutcome(_failed(row, error, f"{type(error).__name__}: {error}", attempt + 1))
    except Exception as error:  # a bad file never blocks the files behind it
        return FileOutcome(_failed(row, error, f"{type(error).__name__}: {error}"))


def _failed(
    row: dict[str, object], error: Exception, reason: str, attempt: int | None = None
) -> dict[str, object]:
    log.warning("landing file %s failed: %s", row["source_file"], type(error).__name__)
    if attempt is None:
        return {**row, "status": FAILED, "detail": reason[:500]}
    if attempt < MAX_ATTEMPTS:
        wait = retry_after(attempt)
        detail = f"attempt {attempt} of {MAX_ATTEMPTS} failed, taken again after {wait}: {reason}"
        return {**row, "status": RETRYING, "detail": detail[:500]}
    detail = f"gave up after {attempt} attempts (`lakemail retry` takes it again): {reason}"
    return {**row, "status": FAILED, "detail": detail[:500]}


def validated(
    outcomes: Iterable[FileOutcome], lines: int = GROUP_LINES, workers: int = 1
) -> Iterator[FileOutcome]:
    """`outcomes` in order, their parsed event files validated together some `lines` lines a pass
    (`transforms.ingest.group`): the per-call cost is paid per pass, not per file, and only a pass's
    parsed lines are held (not a whole commit group's); `workers` passes at a time, on threads of their
    own (Polars releases the GIL). Rows carry batch 0 until the batch is assembled and stamped."""
    for done in read_ahead(_validated, _passes(outcomes, lines), workers):
        yield from done


def _passes(outcomes: Iterable[FileOutcome], lines: int) -> Iterator[list[FileOutcome]]:
    """`outcomes` in runs of some `lines` parsed lines (the last one shorter)."""
    held: list[FileOutcome] = []
    count = 0
    for outcome in outcomes:
        held.append(outcome)
        count += outcome.result.lines if isinstance(outcome.result, ParsedFile) else 0
        if count >= lines:
            yield held
            held, count = [], 0
    if held:
        yield held


def _validated(held: list[FileOutcome]) -> list[FileOutcome]:
    parsed = [o.result for o in held if isinstance(o.result, ParsedFile)]
    results = iter(validate_group(parsed, ingested_at=datetime.now(UTC), batch_id=0) if parsed else [])
    return [replace(o, result=next(results)) if isinstance(o.result, ParsedFile) else o for o in held]


def stamped(result: ParsedFile | FileResult | ReferenceResult, batch_id: int) -> FileResult | ReferenceResult:
    """`result` ready for the batch numbered `batch_id` (an event file must be `validated` first): a
    reference file's rows carry the number; an event file's get it with the batch's others once they are
    assembled (`transforms.ingest.files.BatchRows.stamped`: one column a group, not two a file, #17)."""
    if isinstance(result, ParsedFile):
        raise TypeError(f"{result.source_file} was parsed but not validated")
    if isinstance(result, FileResult):
        return result
    return replace(result, quarantine=result.quarantine.with_columns(batch_column(batch_id)))


def read_ahead(
    read: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    budget: int = 0,
    weight: Callable[[T], int] = lambda _: 0,
) -> Iterator[R]:
    """`read` over `items` on `workers` threads, in order. At least `workers` results are in flight, and
    more while their `weight`s (bytes) stay within `budget`: the readers keep parsing while the consumer
    validates and commits (#17), and a batch holds only what it commits and that bounded read-ahead."""
    queue: deque[tuple[Future[R], int]] = deque()
    pending = iter(items)
    following = next(pending, None)
    held = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            while following is not None and (len(queue) < workers or 0 < held + weight(following) <= budget):
                cost = weight(following)
                queue.append((pool.submit(read, following), cost))
                held += cost
                following = next(pending, None)
            if not queue:
                return
            future, cost = queue.popleft()
            held -= cost
            yield future.result()


def produced_ahead(items: Iterable[T], budget: int, weight: Callable[[T], int]) -> Generator[T, None, None]:
    """`items` in order, produced on a thread of their own up to `budget` (by `weight`) ahead of the
    consumer, always at least one: the validation of the next pass runs while the consumer commits
    (#17: Polars and delta-rs release the GIL). An error in the producer is raised to the consumer;
    a consumer that stops early stops the producer."""
    handoff: queue.Queue[tuple[str, object]] = queue.Queue()
    room = threading.Condition()
    held = [0]
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                cost = weight(item)
                with room:
                    while not (stop.is_set() or held[0] == 0 or held[0] + cost <= budget):
                        room.wait()
                    if stop.is_set():
                        return
                    held[0] += cost
                handoff.put(("item", item))
            handoff.put(("end", None))
        except BaseException as error:  # handed to the consumer, raised there
            handoff.put(("error", error))

    producer = threading.Thread(target=produce, name="ingest-validate", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            item = cast(T, value)
            with room:
                held[0] -= weight(item)
                room.notify_all()
            yield item
    finally:
        stop.set()
        with room:
            room.notify_all()
        producer.join()


def landed_manifest(
    landing: LandingResource, manifest: Iterable[str], listed: Callable[[], list[LandedFile]]
) -> list[LandedFile]:
    """The landed entries of `manifest` (paths as the listing gives them), gone ones left out: a stat
    each, and one listing (`listed`) only for paths a stat cannot find (a name stored escaped)."""
    paths = list(dict.fromkeys(manifest))
    found = {p: f for p in paths if (f := landing.stat(p)) is not None}
    if len(found) < len(paths):
        found.update({f.path: f for f in listed() if f.path in set(paths) - set(found)})
    return [found[p] for p in paths if p in found]


def failed_files(lake: LakeResource, through: int | None = None) -> pl.DataFrame:
    """Landed files whose last outcome is `retrying` or `failed`: source_file, status, attempts, failed_at;
    as of batch `through` (ingest_log's rows up to it: the same files whatever was committed since)."""
    log = lake.read("ingest_log", INGEST_LOG_SCHEMA)
    return failed_attempts(log if through is None else log.filter(pl.col("batch_id") <= through))

"""A commit group's landed files -> one FileResult per file, validated and normalised in ONE pass (#17).

`process_file` pays Polars' per-call cost (planning some forty expressions) per file: on 1,000-line
files that is most of the drain. Here each file is screened on its own (`parse_file`: its lines split and
the suspect ones judged with orjson; the ingest runs it on its reader threads), then the lines of all files
of a pass are read in one Polars call, validated and turned into rows together (`validate_group`) and
split back by file. A file's rows are
exactly what `process_file` gives it (tests/unit/test_parse_paths.py).

Inside the pass a message is known by one number, `file index << 32 | source line` (a landed file
has far fewer than 2**32 lines), so that the per-line steps keep working on `source_line` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import polars as pl

from transforms.ingest.events import rejection_reasons, to_events
from transforms.ingest.files import (
    SEGMENT_BYTES,
    FileResult,
    combined,
    finish_segment,
    process_file,
    segments,
)
from transforms.ingest.parse import (
    REJECTS_SCHEMA,
    ScreenedLines,
    not_strings,
    raw_line,
    read_screened,
    read_segment,
    reject_row,
    screen_lines,
)
from transforms.schema import UTC_TS, batch_column
from transforms.spec import Reason

_SHIFT = 32
# Lines validated in one pass: ~8 simulator files, the per-call cost paid once. Passes are validated two
# at a time (stores.ingest.VALIDATE_THREADS); 2**13-line passes drained 1M lines as fast as 2**12 and
# faster than 2**14 (35 s against 38 s), with a lower peak RSS (2.19-2.22 GB against 2.29-2.31 GB).
GROUP_LINES = 1 << 13


@dataclass(frozen=True)
class Segment:
    """One screened segment of a file: the physical lines before it, and its lines (not yet read)."""

    before: int
    screened: ScreenedLines


@dataclass(frozen=True)
class ParsedFile:
    """A landed event file parsed (not yet validated): what `validate_group` takes."""

    source_file: str
    landed_at: datetime
    segments: list[Segment]

    @property
    def lines(self) -> int:
        return sum(s.screened.lines for s in self.segments)


def parse_file(
    data: bytes, *, source_file: str, landed_at: datetime, segment_bytes: int = SEGMENT_BYTES
) -> ParsedFile:
    """Screen one landed file segment by segment (blank segments skipped, as `process_file` does); its
    lines are read with the rest of their pass (`validate_group`)."""
    parts = [
        Segment(before, screen_lines(segment))
        for before, segment in segments(data, segment_bytes)
        if not segment.isspace()
    ]
    return ParsedFile(source_file, landed_at, parts)


def process_files(
    files: Sequence[tuple[str, bytes, datetime]],
    *,
    ingested_at: datetime,
    batch_id: int,
    segment_bytes: int = SEGMENT_BYTES,
) -> list[FileResult]:
    """(source_file, content, landed_at) of each file -> its FileResult, in the order given."""
    parsed = [parse_file(d, source_file=n, landed_at=a, segment_bytes=segment_bytes) for n, d, a in files]
    return validate_group(parsed, ingested_at=ingested_at, batch_id=batch_id)


def validate_group(files: Sequence[ParsedFile], *, ingested_at: datetime, batch_id: int) -> list[FileResult]:
    """Each parsed file's FileResult (in the order given), validated and turned into rows together, some
    GROUP_LINES lines a pass (the pass's copies of a whole commit group would raise the peak RSS)."""
    results: list[FileResult] = []
    run: list[ParsedFile] = []
    lines = 0
    for file in files:
        run.append(file)
        lines += file.lines
        if lines >= GROUP_LINES:
            results += _validate(run, ingested_at, batch_id)
            run, lines = [], 0
    return results + (_validate(run, ingested_at, batch_id) if run else [])


def _validate(files: Sequence[ParsedFile], ingested_at: datetime, batch_id: int) -> list[FileResult]:
    parts: list[tuple[int, ScreenedLines]] = []
    keys, screen_rejects, shifts = [], [], []
    raw: dict[int, list[bytes]] = {}  # the first number of each segment -> its physical lines
    for index, file in enumerate(files):
        for segment in file.segments:
            first = (index << _SHIFT) + segment.before
            parts.append((first, segment.screened))
            keys.append((first, file.landed_at, file.source_file))
            raw[first] = segment.screened.raw
            screen_rejects += segment.screened.rejects  # numbered in their segment: shifted below
            shifts += [first] * len(segment.screened.rejects)
    if not parts:
        return file_by_file(files, ingested_at=ingested_at, batch_id=batch_id)
    # The pass's lines in one read (one per file cost ~0.6 s of CPU a 170k lines, #17), then each
    # segment's landing time and file over its rows, in one step for the pass.
    messages, read_rejects = read_screened(parts)
    offsets, landed, name = (pl.Series(values) for values in zip(*keys, strict=True))
    which = offsets.search_sorted(messages["source_line"], side="left") - 1
    messages = messages.with_columns(
        landed.cast(UTC_TS).gather(which).alias("_landed"), name.gather(which).alias("_file")
    )
    shift = pl.Series(shifts, dtype=pl.Int64)
    screened = pl.DataFrame(screen_rejects, schema=REJECTS_SCHEMA).with_columns(pl.col("source_line") + shift)
    rejected_lines = pl.concat([screened, pl.DataFrame(read_rejects, schema=REJECTS_SCHEMA)])
    starts = sorted(raw)
    # Looked for once per pass, on one chunk, not per file on Polars' chunks of its read (#17).
    found = not_strings(messages, partial(raw_line, raw, starts))
    checked = rejection_reasons(messages, pl.col("_landed"), found)
    valid = checked.filter(pl.col("reason").is_null())
    try:
        events, refused = to_events(
            valid,
            source_file=pl.col("_file"),
            landed_at=pl.col("_landed"),
            ingested_at=ingested_at,
            batch_id=batch_id,
        )
    except (pl.exceptions.PolarsError, ValueError):  # a rare string where an object belongs: file by file
        return file_by_file(files, ingested_at=ingested_at, batch_id=batch_id)
    rejected = checked.filter(pl.col("reason").is_not_null()).select("source_line", "reason", "detail")
    late = [reject_row(n, Reason(r), d, raw_line(raw, starts, n)) for n, r, d in rejected.iter_rows()]
    late += [reject_row(n, Reason(r), d, raw_line(raw, starts, n)) for n, r, d in refused.iter_rows()]
    quarantine = pl.concat([rejected_lines, pl.DataFrame(late, schema=REJECTS_SCHEMA)])
    return _split(files, events, quarantine, ingested_at, batch_id)


def file_by_file(files: Sequence[ParsedFile], *, ingested_at: datetime, batch_id: int) -> list[FileResult]:
    """What `process_file` gives each file, from its parsed segments."""
    results = []
    for f in files:
        if not f.segments:
            at = f.landed_at
            results.append(
                process_file(
                    b"", source_file=f.source_file, landed_at=at, ingested_at=ingested_at, batch_id=batch_id
                )
            )
            continue
        parts = [
            finish_segment(
                read_segment(s.screened), s.before, f.source_file, f.landed_at, ingested_at, batch_id
            )
            for s in f.segments
        ]
        results.append(combined(f.source_file, parts))
    return results


def _split(
    files: Sequence[ParsedFile],
    events: pl.DataFrame,
    quarantine: pl.DataFrame,
    ingested_at: datetime,
    batch_id: int,
) -> list[FileResult]:
    """The group's rows back by file, `source_line` as each file numbers it."""
    line = (pl.col("source_line") % (1 << _SHIFT)).alias("source_line")
    # Both frames are in file order: each file's rows are one slice (no copy).
    events, ends = events.with_columns(line), _ends(events["source_line"], len(files))
    quarantine = quarantine.sort("source_line")
    rejects_ends = _ends(quarantine["source_line"], len(files))
    # The columns every file's rows share, made once (a `lit` of a zoned datetime is not cheap, #17).
    quarantine = quarantine.select(
        pl.lit("").alias("source_file"),
        line,
        "reason",
        "detail",
        "raw",
        pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
        batch_column(batch_id),
    )
    none = quarantine.clear()
    results = []
    for number, file in enumerate(files):
        first = rejects_ends[number - 1] if number else 0
        count = rejects_ends[number] - first
        rows = (
            quarantine.slice(first, count).with_columns(pl.lit(file.source_file).alias("source_file"))
            if count
            else none
        )
        start = ends[number - 1] if number else 0
        kept = events.slice(start, ends[number] - start)
        results.append(FileResult(file.source_file, kept, rows, file.lines))
    return results


def _ends(numbers: pl.Series, files: int) -> list[int]:
    """Per file index, the end of its rows in `numbers` (group numbers, ascending)."""
    bounds = pl.Series([(i + 1) << _SHIFT for i in range(files)], dtype=pl.Int64)
    return numbers.search_sorted(bounds, side="left").to_list()

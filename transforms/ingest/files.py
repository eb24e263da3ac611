"""One landed file -> events and quarantine rows; a batch of files -> deduplicated rows and counts."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from transforms.ingest.events import drop_seen, rejection_reasons, to_events
from transforms.ingest.parse import (
    REJECTS_SCHEMA,
    ParsedLines,
    classify_line,
    not_strings,
    parse_lines,
    reject_row,
)
from transforms.schema import EVENTS_SCHEMA, QUARANTINE_SCHEMA, UTC_TS, batch_column
from transforms.spec import Reason

# A file is parsed this many bytes at a time: its list of lines costs up to ~10x its bytes (256 MB of
# newlines made 2 GB of list), a segment's list only up to ~10x this.
SEGMENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FileResult:
    """What one landed file holds: valid events (duplicates not yet removed) and quarantined lines."""

    source_file: str
    events: pl.DataFrame
    quarantine: pl.DataFrame
    lines: int


def segments(data: bytes, size: int = SEGMENT_BYTES) -> Iterator[tuple[int, bytes]]:
    """(physical lines before it, segment) of `data`, cut after a newline every `size` bytes or so; a
    cut never leaves a line starting with a BOM at the head of a segment (only the file's own is dropped)."""
    if len(data) <= size:
        yield 0, data
        return
    start = lines_before = 0
    while start < len(data):
        end = start + size
        while end < len(data):
            newline = data.find(b"\n", end - 1)
            end = len(data) if newline < 0 else newline + 1
            if not data.startswith(codecs.BOM_UTF8, end):
                break
            end += 1
        segment = data[start:end]
        yield lines_before, segment
        lines_before += segment.count(b"\n")
        start = end


def process_file(
    data: bytes,
    *,
    source_file: str,
    landed_at: datetime,
    ingested_at: datetime,
    batch_id: int,
    segment_bytes: int = SEGMENT_BYTES,
    line_by_line: bool = False,
) -> FileResult:
    """Parse, validate and normalise one landed file; every non-blank line ends in events or quarantine.

    `line_by_line` judges every line with orjson before Polars reads it (the slow path, for tests:
    the fast one gives the same rows)."""
    parts = [
        _process_segment(segment, before, source_file, landed_at, ingested_at, batch_id, line_by_line)
        for before, segment in segments(data, segment_bytes)
        # blank lines are skipped and not counted: a segment of nothing else (a bomb of newlines) is
        # skipped whole instead of line by line
        if not segment.isspace()
    ] or [_process_segment(b"", 0, source_file, landed_at, ingested_at, batch_id)]
    return combined(source_file, parts)


def combined(source_file: str, parts: list[FileResult]) -> FileResult:
    """A file's result from those of its segments (in file order)."""
    if len(parts) == 1:
        return parts[0]
    return FileResult(
        source_file,
        pl.concat([p.events for p in parts]),
        pl.concat([p.quarantine for p in parts]),
        sum(p.lines for p in parts),
    )


def _process_segment(
    data: bytes,
    before: int,
    source_file: str,
    landed_at: datetime,
    ingested_at: datetime,
    batch_id: int,
    line_by_line: bool = False,
) -> FileResult:
    """One segment of a file whose first `before` physical lines came before it."""
    parsed = parse_lines(data, line_by_line=line_by_line)
    return finish_segment(parsed, before, source_file, landed_at, ingested_at, batch_id)


def finish_segment(
    parsed: ParsedLines,
    before: int,
    source_file: str,
    landed_at: datetime,
    ingested_at: datetime,
    batch_id: int,
) -> FileResult:
    """A parsed segment validated and turned into rows (`transforms.ingest.group` does this for many files
    at once, and falls back to this file by file)."""
    found = not_strings(parsed.messages, lambda number: parsed.raw[number - 1])
    checked = rejection_reasons(parsed.messages, landed_at, found)
    valid = checked.filter(pl.col("reason").is_null())
    rejected = checked.filter(pl.col("reason").is_not_null())
    rejects = [
        reject_row(line, reason, detail, parsed.raw[line - 1])
        for line, reason, detail in rejected.select("source_line", "reason", "detail").iter_rows()
    ]
    try:
        events, refused = to_events(
            valid, source_file=source_file, landed_at=landed_at, ingested_at=ingested_at, batch_id=batch_id
        )
    except (pl.exceptions.PolarsError, ValueError):
        # A string where an object belongs (`"properties": "{...}"`) slipped through; orjson finds it.
        valid, late_rejects = _recheck(valid, parsed.raw)
        rejects.extend(late_rejects)
        events, refused = to_events(
            valid, source_file=source_file, landed_at=landed_at, ingested_at=ingested_at, batch_id=batch_id
        )
    rejects.extend(reject_row(n, Reason(r), d, parsed.raw[n - 1]) for n, r, d in refused.iter_rows())
    quarantine = pl.concat([parsed.rejects, pl.DataFrame(rejects, schema=REJECTS_SCHEMA)]).select(
        pl.lit(source_file).alias("source_file"),
        "source_line",
        "reason",
        "detail",
        "raw",
        pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
        batch_column(batch_id),
    )
    if before:
        events = events.with_columns(pl.col("source_line") + before)
        quarantine = quarantine.with_columns(pl.col("source_line") + before)
    return FileResult(source_file, events, quarantine.sort("source_line"), parsed.lines)


def _recheck(valid: pl.DataFrame, raw: list[bytes]) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    keep: list[bool] = []
    rejects: list[dict[str, object]] = []
    for line_no in valid["source_line"]:
        found = classify_line(raw[line_no - 1])
        keep.append(found is None)
        if found is not None:
            rejects.append(reject_row(line_no, found[0], found[1], raw[line_no - 1]))
    return valid.filter(pl.Series(keep, dtype=pl.Boolean)), rejects


@dataclass(frozen=True)
class BatchRows:
    """A batch ready to commit: new events, quarantine rows, and per-file counts for `ingest_log`."""

    events: pl.DataFrame
    quarantine: pl.DataFrame
    counts: pl.DataFrame  # source_file, lines, accepted, quarantined, duplicates

    def stamped(self, batch_id: int) -> BatchRows:
        """The batch's rows with the number it is committed under (validated rows carry 0 until then)."""
        batch = batch_column(batch_id)
        return replace(
            self, events=self.events.with_columns(batch), quarantine=self.quarantine.with_columns(batch)
        )


def assemble_batch(results: list[FileResult], seen_ids: pl.Series) -> BatchRows:
    """Deduplicate a batch's events (within it and against `seen_ids`) and count every line of each file."""
    # One chunk, not one per file: every later step on the batch pays per chunk (3x on the identity edges).
    valid = (
        pl.concat([r.events for r in results], rechunk=True)
        if results
        else pl.DataFrame(schema=EVENTS_SCHEMA)
    )
    kept = drop_seen(valid, seen_ids)
    quarantine = (
        pl.concat([r.quarantine for r in results]) if results else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    files = pl.DataFrame(
        {"source_file": [r.source_file for r in results], "lines": [r.lines for r in results]},
        schema={"source_file": pl.String, "lines": pl.Int64},
    )

    def per_file(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.group_by("source_file").agg(pl.len().cast(pl.Int64).alias(name))

    counts = (
        files.join(per_file(valid, "valid"), on="source_file", how="left")
        .join(per_file(kept, "accepted"), on="source_file", how="left")
        .join(per_file(quarantine, "quarantined"), on="source_file", how="left")
        .fill_null(0)
        .select(
            "source_file",
            "lines",
            "accepted",
            "quarantined",
            (pl.col("valid") - pl.col("accepted")).alias("duplicates"),
        )
    )
    return BatchRows(kept, quarantine, counts)

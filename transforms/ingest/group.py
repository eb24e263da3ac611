"""A commit group's landed files -> one FileResult per file, validated and normalised in ONE pass (#17).

`process_file` pays Polars' per-call cost (planning some forty expressions) per file: on 1,000-line
files that is most of the drain. Here each file is still parsed on its own (screen.py, one read per
segment), but the messages of all files are validated and turned into rows together, then split
back by file. A file's rows are exactly what `process_file` gives it (tests/unit/test_parse_paths.py).

Inside the pass a message is known by one number, `file index << 32 | source line` (a landed file
has far fewer than 2**32 lines), so that the per-line steps keep working on `source_line` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl

from transforms.ingest.events import rejection_reasons, to_events
from transforms.ingest.files import SEGMENT_BYTES, FileResult, process_file, segments
from transforms.ingest.parse import REJECTS_SCHEMA, not_strings, parse_lines, reject_row
from transforms.schema import UTC_TS
from transforms.spec import Reason

_SHIFT = 32


def process_files(
    files: Sequence[tuple[str, bytes, datetime]],
    *,
    ingested_at: datetime,
    batch_id: int,
    segment_bytes: int = SEGMENT_BYTES,
) -> list[FileResult]:
    """(source_file, content, landed_at) of each file -> its FileResult, in the order given."""
    parts, found, rejects, counts = [], [], [], []
    raw: dict[int, list[bytes]] = {}  # the first number of each segment -> its physical lines
    for index, (name, data, landed_at) in enumerate(files):
        lines = 0
        for before, segment in segments(data, segment_bytes):
            if segment.isspace():
                continue
            parsed = parse_lines(segment)
            key = (index << _SHIFT) + before
            found.append(not_strings(parsed.messages, parsed.raw))
            parts.append(
                parsed.messages.with_columns(
                    pl.col("source_line") + key,
                    pl.lit(landed_at, dtype=UTC_TS).alias("_landed"),
                    pl.lit(name).alias("_file"),
                )
            )
            rejects.append(parsed.rejects.with_columns(pl.col("source_line") + key))
            raw[key] = parsed.raw
            lines += parsed.lines
        counts.append(lines)
    if not parts:
        return [
            process_file(d, source_file=n, landed_at=a, ingested_at=ingested_at, batch_id=batch_id)
            for n, d, a in files
        ]
    checked = rejection_reasons(pl.concat(parts), pl.col("_landed"), pl.concat(found))
    valid = checked.filter(pl.col("reason").is_null())
    try:
        events, out_of_range = to_events(
            valid,
            source_file=pl.col("_file"),
            landed_at=pl.col("_landed"),
            ingested_at=ingested_at,
            batch_id=batch_id,
        )
    except (pl.exceptions.PolarsError, ValueError):  # a rare string where an object belongs: file by file
        return [
            process_file(d, source_file=n, landed_at=a, ingested_at=ingested_at, batch_id=batch_id)
            for n, d, a in files
        ]
    rejected = checked.filter(pl.col("reason").is_not_null()).select("source_line", "reason", "detail")
    late = [reject_row(n, Reason(r), d, _raw_line(raw, n)) for n, r, d in rejected.iter_rows()]
    late += [reject_row(n, Reason(r), d, _raw_line(raw, n)) for n, r, d in out_of_range.iter_rows()]
    quarantine = pl.concat([*rejects, pl.DataFrame(late, schema=REJECTS_SCHEMA)])
    return _split(files, counts, events, quarantine, ingested_at, batch_id)


def _raw_line(raw: dict[int, list[bytes]], number: int) -> bytes:
    """The physical line that message `number` came from (a file of one segment: its own key)."""
    key = number - (number % (1 << _SHIFT))
    if key not in raw or number - key > len(raw[key]):
        key = max(k for k in raw if k <= number)  # a file cut into segments: rare
    return raw[key][number - key - 1]


def _split(
    files: Sequence[tuple[str, bytes, datetime]],
    counts: list[int],
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
    quarantine = quarantine.with_columns(line)
    results = []
    for number, (name, _, _) in enumerate(files):
        first = rejects_ends[number - 1] if number else 0
        rows = quarantine.slice(first, rejects_ends[number] - first).select(
            pl.lit(name).alias("source_file"),
            "source_line",
            "reason",
            "detail",
            "raw",
            pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
            pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
        )
        start = ends[number - 1] if number else 0
        kept = events.slice(start, ends[number] - start)
        results.append(FileResult(name, kept, rows, counts[number]))
    return results


def _ends(numbers: pl.Series, files: int) -> list[int]:
    """Per file index, the end of its rows in `numbers` (group numbers, ascending)."""
    bounds = pl.Series([(i + 1) << _SHIFT for i in range(files)], dtype=pl.Int64)
    return numbers.search_sorted(bounds, side="left").to_list()

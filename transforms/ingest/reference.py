"""Landed `customers/` and `catalog/` files -> typed rows and line-level quarantine.

Reference files are small next to the event stream (a CRM export, a product feed), so every line is
checked in Python (a few microseconds a row) instead of a vectorised path with a per-line fallback.
As for events, every non-blank line (CSV: every data row) ends as a row or as a quarantine row. The
records come from `reference_records`, their values from `reference_values`; the latest row per key
and the catalog's changes are in `reference_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from transforms.ingest.parse import REJECTS_SCHEMA, reject_row, split_lines
from transforms.ingest.reference_records import csv_records, ndjson_records
from transforms.ingest.reference_tables import SOURCE_SCHEMA, conformed
from transforms.ingest.reference_values import KINDS, Rejected, typed_row
from transforms.schema import QUARANTINE_SCHEMA, UTC_TS, batch_column


@dataclass(frozen=True)
class ReferenceResult:
    """Rows of one landed reference file (table schema + source columns) and its quarantined lines."""

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    lines: int  # non-blank NDJSON lines / CSV data rows (+ an unusable header): rows + quarantine


def parse_reference(
    kind: str, content: bytes, *, source_file: str, landed_at: datetime, ingested_at: datetime, batch_id: int
) -> ReferenceResult:
    """Read a landed `customers/` or `catalog/` file (CSV by a `.csv` name, else NDJSON); never raises."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    spec, landed = KINDS[kind], _as_utc(landed_at)
    from_csv = source_file.removesuffix(".gz").endswith(".csv")
    lines = split_lines(content)
    records = csv_records(lines, spec) if from_csv else ndjson_records(lines)
    rows: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    for number, record in records:
        try:
            if isinstance(record, Rejected):
                raise record
            rows.append(
                {**typed_row(record, spec, from_csv=from_csv, landed_at=landed), "source_line": number}
            )
        except Rejected as reject:
            raw = lines[number - 1].removesuffix(b"\r")
            rejects.append(reject_row(number, reject.reason, reject.detail, raw))
    frame = pl.DataFrame(rows, schema={**spec.schema, **SOURCE_SCHEMA}).with_columns(
        pl.lit(source_file, dtype=pl.String).alias("source_file")
    )
    quarantine = _quarantine(rejects, source_file=source_file, ingested_at=ingested_at, batch_id=batch_id)
    return ReferenceResult(frame, quarantine, len(rows) + len(rejects))


def _quarantine(
    rejects: list[dict[str, object]], *, source_file: str, ingested_at: datetime, batch_id: int
) -> pl.DataFrame:
    """QUARANTINE_SCHEMA rows of one file's rejected lines."""
    frame = pl.DataFrame(rejects, schema=REJECTS_SCHEMA).select(
        pl.lit(source_file, dtype=pl.String).alias("source_file"),
        "source_line",
        "reason",
        "detail",
        "raw",
        pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
        batch_column(batch_id),
    )
    return conformed(frame, QUARANTINE_SCHEMA)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

"""Landed `customers/` and `catalog/` files -> typed rows and line-level quarantine; latest row per key.

Reference files are small next to the event stream (a CRM export, a product feed), so every line is
checked in Python (a few microseconds a row) instead of a vectorised path with a per-line fallback.
As for events, every non-blank line (CSV: every data row) ends as a row or as a quarantine row.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import polars as pl

from transforms.ingest.events import EARLIEST, MAX_AHEAD
from transforms.ingest.parse import REJECTS_SCHEMA, reject_row, split_lines
from transforms.schema import (
    CATALOG_CHANGE_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    MAX_LINE_BYTES,
    QUARANTINE_SCHEMA,
    UTC_TS,
    Reason,
)

SOURCE_SCHEMA: dict[str, pl.DataType] = {"source_file": pl.String(), "source_line": pl.Int64()}
TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {"user_id": CUSTOMERS_SCHEMA, "product_id": CATALOG_SCHEMA}
CONSENT_WORDS = {"true": True, "false": False}
CSV_CONSENT_WORDS = {**CONSENT_WORDS, "1": True, "0": False, "yes": True, "no": False}
PRICE_EPSILON = 1e-9  # 100.00 -> 90.00 is a 10 % drop even though 100.0 * 0.9 is not exact in floats
EARLIEST_UTC = EARLIEST.replace(tzinfo=UTC)


class _Reject(Exception):
    """One line's quarantine reason and detail (control flow inside this module only)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


Converter = Callable[[str, object, bool], object]  # (field, landed value, from CSV) -> typed value


def _text(field: str, value: object, from_csv: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common in CRM exports
    if not isinstance(value, str):
        raise _Reject(Reason.WRONG_TYPE, f"{field} must be a string, got {type(value).__name__}")
    return value.strip() or None


def _lower_text(field: str, value: object, from_csv: bool) -> str | None:
    text = _text(field, value, from_csv)
    return None if text is None else text.lower()


def _email(field: str, value: object, from_csv: bool) -> str | None:
    text = _text(field, value, from_csv)
    if text is None:
        return None
    local, at, domain = text.rpartition("@")
    if not (local and at and domain):
        raise _Reject(Reason.WRONG_TYPE, f"{field} must look like name@domain")
    return f"{local}@{domain.lower()}"  # domains are case-insensitive; local parts may not be


def _consent(field: str, value: object, from_csv: bool) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    words = CSV_CONSENT_WORDS if from_csv else CONSENT_WORDS
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    if isinstance(value, str) and not value.strip():
        return None
    raise _Reject(Reason.WRONG_TYPE, f"{field} must be a boolean ({', '.join(words)})")


def _number(field: str, value: object, from_csv: bool) -> float | None:
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif from_csv and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        raise _Reject(Reason.WRONG_TYPE, f"{field} must be a non-negative number")
    return number


def _count(field: str, value: object, from_csv: bool) -> int | None:
    if value is None:
        return None
    try:
        number = _number(field, value, from_csv)
    except _Reject:
        number = None
    if number is None or not number.is_integer() or number >= 2**63:
        raise _Reject(Reason.WRONG_TYPE, f"{field} must be a non-negative integer")
    return int(number)


@dataclass(frozen=True)
class _Kind:
    schema: dict[str, pl.DataType]
    required: tuple[str, ...]
    fields: dict[str, Converter]


KINDS: dict[str, _Kind] = {
    "customers": _Kind(
        CUSTOMERS_SCHEMA,
        ("user_id",),
        {
            "user_id": _text,
            "email": _email,
            "first_name": _text,
            "locale": _text,
            "timezone": _text,
            "loyalty_tier": _lower_text,
            "marketing_consent": _consent,
        },
    ),
    "catalog": _Kind(
        CATALOG_SCHEMA,
        ("product_id", "name", "price"),
        {
            "product_id": _text,
            "name": _text,
            "category": _text,
            "price": _number,
            "currency": _text,
            "stock": _count,
            "url": _text,
            "image_url": _text,
        },
    ),
}


def _updated_at(value: object, landed_at: datetime) -> datetime:
    if value is None or (isinstance(value, str) and not value.strip()):
        return landed_at
    try:
        parsed = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise _Reject(Reason.INVALID_TIMESTAMP, "updated_at is not an ISO-8601 timestamp")
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    # A far-future updated_at would win `latest_rows` for ever, so it is refused as for events.
    if parsed > landed_at + MAX_AHEAD or parsed < EARLIEST_UTC:
        raise _Reject(Reason.TIMESTAMP_OUT_OF_RANGE, "updated_at more than 24 h after landing or before 2000")
    return parsed


def _typed(
    record: dict[str, object], kind: _Kind, *, from_csv: bool, landed_at: datetime
) -> dict[str, object]:
    """One table row from a landed record, or _Reject for the first problem found."""
    for field in kind.required:
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise _Reject(Reason.MISSING_FIELD, f"{field} is required")
    row = {field: convert(field, record.get(field), from_csv) for field, convert in kind.fields.items()}
    row["updated_at"] = _updated_at(record.get("updated_at"), landed_at)
    return row


Record = dict[str, object] | _Reject


def _checked_line(raw: bytes) -> str:
    if len(raw) > MAX_LINE_BYTES:
        raise _Reject(Reason.LINE_TOO_LONG, f"{len(raw)} bytes > {MAX_LINE_BYTES}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Reject(Reason.INVALID_UTF8, f"byte {error.start}: {error.reason}") from None


def _ndjson_records(lines: list[bytes]) -> Iterator[tuple[int, Record]]:
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            _checked_line(raw)
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise _Reject(Reason.INVALID_JSON, str(error)[:200]) from None
            if not isinstance(value, dict):
                raise _Reject(Reason.NOT_AN_OBJECT, f"a JSON {type(value).__name__}, not an object")
            yield number, value
        except _Reject as reject:
            yield number, reject


def _cells(raw: bytes) -> list[str]:
    text = _checked_line(raw).removesuffix("\r")
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise _Reject(Reason.WRONG_TYPE, f"not a CSV record: {error}") from None


def _header(cells: list[str], kind: _Kind) -> dict[str, int]:
    """Column name -> position (the first of repeated names), or _Reject when the key columns are absent."""
    positions: dict[str, int] = {}
    for position, name in enumerate(cells):
        positions.setdefault(name.strip().lower(), position)
    absent = [field for field in kind.required if field not in positions]
    if absent:
        raise _Reject(Reason.MISSING_FIELD, f"CSV header lacks {', '.join(absent)}")
    return positions


def _fields(cells: list[str], header: dict[str, int], width: int) -> dict[str, object]:
    if len(cells) != width:
        reason = Reason.MISSING_FIELD if len(cells) < width else Reason.WRONG_TYPE
        raise _Reject(reason, f"{len(cells)} fields, the header has {width}")
    return {name: cells[position] or None for name, position in header.items()}


def _csv_records(lines: list[bytes], kind: _Kind) -> Iterator[tuple[int, Record]]:
    """Data rows as records; an unusable header is itself quarantined and so are the rows after it.

    One record per physical line: a quoted newline is not supported, so that one stray quote cannot
    swallow the rest of the file into a single field.
    """
    header: dict[str, int] | None = None
    width = 0
    header_problem: str | None = None
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            cells = _cells(raw)
            if header is None and header_problem is None:
                header, width = _header(cells, kind), len(cells)
                continue
            if header is None:
                raise _Reject(Reason.MISSING_FIELD, f"no usable CSV header ({header_problem})")
            yield number, _fields(cells, header, width)
        except _Reject as reject:
            if header is None and header_problem is None:
                header_problem = f"line {number}: {reject.reason}"
            yield number, reject


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
    records = _csv_records(lines, spec) if from_csv else _ndjson_records(lines)
    rows: list[dict[str, object]] = []
    rejects: list[dict[str, object]] = []
    for number, record in records:
        try:
            if isinstance(record, _Reject):
                raise record
            rows.append({**_typed(record, spec, from_csv=from_csv, landed_at=landed), "source_line": number})
        except _Reject as reject:
            raw = lines[number - 1].removesuffix(b"\r")
            rejects.append(reject_row(number, reject.reason, reject.detail, raw))
    frame = pl.DataFrame(rows, schema={**spec.schema, **SOURCE_SCHEMA}).with_columns(
        pl.lit(source_file, dtype=pl.String).alias("source_file")
    )
    quarantine = pl.DataFrame(rejects, schema=REJECTS_SCHEMA).select(
        pl.lit(source_file, dtype=pl.String).alias("source_file"),
        "source_line",
        "reason",
        "detail",
        "raw",
        pl.lit(ingested_at, dtype=UTC_TS).alias("ingested_at"),
        pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"),
    )
    return ReferenceResult(frame, _conformed(quarantine, QUARANTINE_SCHEMA), len(rows) + len(rejects))


def _conformed(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with exactly `schema`'s columns, in its order and types."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def latest_rows(existing: pl.DataFrame, incoming: pl.DataFrame, key: str) -> pl.DataFrame:
    """The latest row per `key` by `updated_at`; ties go to the later source_file, then source_line.

    Rows without source columns (the table as stored) count as earliest in a tie, and a tie in time and
    source falls to the row's content, so the order of rows within `existing` or `incoming` never matters.
    """
    if key not in TABLE_SCHEMAS:
        raise ValueError(f"key must be one of {', '.join(TABLE_SCHEMAS)}, not {key!r}")
    schema = TABLE_SCHEMAS[key]
    full = {**schema, **SOURCE_SCHEMA}

    def aligned(frame: pl.DataFrame) -> pl.DataFrame:
        missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in full.items() if name not in frame]
        return _conformed(frame.with_columns(missing), full)

    order = [
        key,
        "updated_at",
        "source_file",
        "source_line",
        *(c for c in schema if c not in (key, "updated_at")),
    ]
    return (
        pl.concat([aligned(existing), aligned(incoming)])
        .sort(order, nulls_last=False)
        .unique(key, keep="last", maintain_order=True)
        .select(list(schema))
        .sort(key)
    )


def catalog_changes(before: pl.DataFrame, after: pl.DataFrame, *, min_drop: float = 0.10) -> pl.DataFrame:
    """back_in_stock (a known stock of 0 -> > 0) and price_drop (down >= `min_drop`) per product in both."""
    if not 0.0 < min_drop < 1.0:
        raise ValueError("min_drop must be between 0 and 1 (exclusive)")
    joined = after.select("product_id", "price", "stock", "updated_at").join(
        before.select("product_id", "price", "stock"), on="product_id", how="inner", suffix="_before"
    )
    back = joined.filter((pl.col("stock_before") == 0) & (pl.col("stock") > 0)).select(
        "product_id",
        pl.lit("back_in_stock").alias("change"),
        pl.col("stock_before").alias("old_value"),
        pl.col("stock").alias("new_value"),
        pl.col("updated_at").alias("changed_at"),
    )
    dropped = (pl.col("price_before") > 0) & (
        pl.col("price") <= pl.col("price_before") * (1.0 - min_drop) + PRICE_EPSILON
    )
    drop = joined.filter(dropped).select(
        "product_id",
        pl.lit("price_drop").alias("change"),
        pl.col("price_before").alias("old_value"),
        pl.col("price").alias("new_value"),
        pl.col("updated_at").alias("changed_at"),
    )
    changes = pl.concat([_conformed(back, CATALOG_CHANGE_SCHEMA), _conformed(drop, CATALOG_CHANGE_SCHEMA)])
    return changes.sort("product_id", "change")

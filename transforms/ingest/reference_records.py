"""Lines of a landed reference file as records: NDJSON objects, or CSV data rows keyed by the header.

A line that cannot be a record (too long, not UTF-8, not JSON, not an object, a bad CSV row) comes out
as `Rejected` in its place, so every non-blank line yields exactly one item.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

import orjson

from transforms.ingest.reference_values import Kind, Rejected
from transforms.spec import MAX_LINE_BYTES, Reason

Record = dict[str, object] | Rejected


def checked_line(raw: bytes) -> str:
    """`raw` as text, or Rejected when it is too long (a CR ending it not counted) or not UTF-8."""
    size = len(raw) - raw.endswith(b"\r")
    if size > MAX_LINE_BYTES:
        raise Rejected(Reason.LINE_TOO_LONG, f"{size} bytes > {MAX_LINE_BYTES}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Rejected(Reason.INVALID_UTF8, f"byte {error.start}: {error.reason}") from None


def ndjson_records(lines: list[bytes]) -> Iterator[tuple[int, Record]]:
    """(line number, JSON object or Rejected) for every non-blank line."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            checked_line(raw)
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                raise Rejected(Reason.INVALID_JSON, str(error)[:200]) from None
            if not isinstance(value, dict):
                raise Rejected(Reason.NOT_AN_OBJECT, f"a JSON {type(value).__name__}, not an object")
            yield number, value
        except Rejected as reject:
            yield number, reject


def _cells(raw: bytes) -> list[str]:
    text = checked_line(raw).removesuffix("\r")
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise Rejected(Reason.WRONG_TYPE, f"not a CSV record: {error}") from None


def _header(cells: list[str], kind: Kind) -> dict[str, int]:
    """Column name -> position (the first of repeated names), or Rejected when the key columns are absent."""
    positions: dict[str, int] = {}
    for position, name in enumerate(cells):
        positions.setdefault(name.strip().lower(), position)
    absent = [field for field in kind.required if field not in positions]
    if absent:
        raise Rejected(Reason.MISSING_FIELD, f"CSV header lacks {', '.join(absent)}")
    return positions


def _fields(cells: list[str], header: dict[str, int], width: int) -> dict[str, object]:
    if len(cells) != width:
        reason = Reason.MISSING_FIELD if len(cells) < width else Reason.WRONG_TYPE
        raise Rejected(reason, f"{len(cells)} fields, the header has {width}")
    return {name: cells[position] or None for name, position in header.items()}


def csv_records(lines: list[bytes], kind: Kind) -> Iterator[tuple[int, Record]]:
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
                raise Rejected(Reason.MISSING_FIELD, f"no usable CSV header ({header_problem})")
            yield number, _fields(cells, header, width)
        except Rejected as reject:
            if header is None and header_problem is None:
                header_problem = f"line {number}: {reject.reason}"
            yield number, reject

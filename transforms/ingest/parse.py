"""Landed NDJSON bytes -> one row per message, with line-level quarantine.

Polars reads a whole chunk of lines in Rust, but fails the whole chunk on one bad line. So a clean
chunk takes the vectorised path only; a chunk that fails is classified
line by line with orjson (~1 us a line) and its good lines are read again by Polars. Dirty files
cost about twice a clean one, clean files pay no per-line Python.

Both paths give a line the same verdict. Where the two readers disagree:
- a lone surrogate escape (`"\\ud800"`): orjson rejects it, Polars reads a high one as NUL (so
  distinct message ids would collide). A chunk with one goes to orjson: `invalid_json`.
- an integer beyond 2**128 - 1 (`1` and 50 zeros): orjson reads it as a double, Polars rejects it.
  The line is read again with it written as that double (`1e+50`, as Segment's JavaScript reads it).
Polars' text of an object field is not always JSON: objects.py writes such texts again.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass

import orjson
import polars as pl

from transforms.ingest.context import scrub_raw
from transforms.ingest.numbers import exponent_form
from transforms.ingest.objects import repair_objects
from transforms.spec import (
    MAX_LINE_BYTES,
    OBJECT_FIELDS,
    RAW_MESSAGE_SCHEMA,
    RAW_QUARANTINE_BYTES,
    SCALAR_FIELDS,
    Reason,
)

CHUNK_LINES = 4096
# A `\\uD800`-`\\uDFFF` escape (after an even run of backslashes): a high-low pair, or a lone one (6 bytes).
_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source_line": pl.Int64(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
}


@dataclass(frozen=True)
class ParsedLines:
    """Messages read from one file (`source_line` 1-based) and the lines that could not be read."""

    messages: pl.DataFrame
    rejects: pl.DataFrame
    lines: int  # non-blank lines: every one ends as a message or a reject
    raw: list[bytes]  # the physical lines, so that a later check can quote a rejected one


def split_lines(data: bytes) -> list[bytes]:
    """Physical lines of a landed file: UTF-8 BOM dropped, a final newline does not add a line."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def parse_lines(data: bytes, chunk_lines: int = CHUNK_LINES) -> ParsedLines:
    """Read every line of a landed NDJSON file into messages or rejects, never losing one."""
    lines = split_lines(data)
    escapes = b"\\" in data  # one memchr; without a backslash no line needs the checks for escapes
    messages: list[pl.DataFrame] = []
    rejects: list[dict[str, object]] = []
    blank = 0
    dirty = False
    for start in range(0, len(lines), chunk_lines):
        chunk = lines[start : start + chunk_lines]
        # Dirt comes in files, not evenly: after one dirty chunk, skip the doomed vectorised try.
        fast = None if dirty else _read_clean_chunk(chunk, first_line=start + 1, escapes=escapes)
        if fast is not None:
            messages.append(fast)
            continue
        dirty = True
        frame, chunk_rejects, chunk_blank = _read_dirty_chunk(chunk, first_line=start + 1)
        messages.append(frame)
        rejects.extend(chunk_rejects)
        blank += chunk_blank
    frame = (
        pl.concat(messages)
        if messages
        else pl.DataFrame(schema={**RAW_MESSAGE_SCHEMA, "source_line": pl.Int64()})
    )
    return ParsedLines(
        messages=repair_objects(frame, lines) if escapes else frame,
        rejects=pl.DataFrame(rejects, schema=REJECTS_SCHEMA),
        lines=len(lines) - blank,
        raw=lines,
    )


def _read(lines: list[bytes]) -> pl.DataFrame:
    return _read_joined(b"\n".join(lines))


def _read_joined(data: bytes) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(data), schema=RAW_MESSAGE_SCHEMA)


def has_lone_surrogate(data: bytes) -> bool:
    """Whether JSON text `data` escapes a surrogate that is not half of a pair (as orjson rejects)."""
    if b"\\" not in data or (b"\\ud" not in data and b"\\uD" not in data):  # memchr first: 20x faster
        return False
    return any(len(match.group(1)) == 6 for match in _SURROGATE.finditer(data))


def _read_clean_chunk(chunk: list[bytes], first_line: int, *, escapes: bool = True) -> pl.DataFrame | None:
    """The chunk read in one go, or None when any line needs a closer look."""
    # Shortest valid message is `{}`; a shorter line is blank (or a bare CR) and must be skipped by number.
    if min(map(len, chunk)) < 2 or max(map(len, chunk)) > MAX_LINE_BYTES:
        return None
    data = b"\n".join(chunk)
    if escapes and has_lone_surrogate(data):
        return None
    try:
        frame = _read_joined(data)
    except pl.exceptions.PolarsError:
        return None
    if frame.height != len(chunk):  # Polars skipped a whitespace-only line: numbering would shift
        return None
    return frame.with_columns(
        pl.int_range(first_line, first_line + len(chunk), dtype=pl.Int64).alias("source_line")
    )


def _read_dirty_chunk(
    chunk: list[bytes], first_line: int
) -> tuple[pl.DataFrame, list[dict[str, object]], int]:
    good: list[bytes] = []
    good_numbers: list[int] = []
    rejects: list[dict[str, object]] = []
    blank = 0
    for offset, line in enumerate(chunk):
        if not line.strip():
            blank += 1
            continue
        found = classify_line(line)
        if found is None:
            good.append(line)
            good_numbers.append(first_line + offset)
        else:
            reason, detail = found
            rejects.append(reject_row(first_line + offset, reason, detail, line))
    frame, unreadable = _read_numbered(good, good_numbers)
    return frame, rejects + unreadable, blank


def _read_numbered(lines: list[bytes], numbers: list[int]) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """Lines orjson accepted, read by Polars with their `source_line`s; the rare line Polars rejects
    is found by halving (a few reads, not one per line) and read again (`_read_rewritten`)."""
    try:
        frame = _read(lines) if lines else pl.DataFrame(schema=RAW_MESSAGE_SCHEMA)
        return frame.with_columns(pl.Series("source_line", numbers, dtype=pl.Int64)), []
    except pl.exceptions.PolarsError:
        if len(lines) == 1:
            return _read_rewritten(lines[0], numbers[0])
    half = len(lines) // 2
    head, head_rejects = _read_numbered(lines[:half], numbers[:half])
    tail, tail_rejects = _read_numbered(lines[half:], numbers[half:])
    return pl.concat([head, tail]), head_rejects + tail_rejects


def _read_rewritten(line: bytes, number: int) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """One line that orjson reads and Polars does not, read again with its long numbers as doubles
    (`1e+50`, numbers.py); quarantined when Polars cannot read that either."""
    try:
        frame = _read([exponent_form(line.decode()).encode()])
        return frame.with_columns(pl.Series("source_line", [number], dtype=pl.Int64)), []
    except pl.exceptions.PolarsError as error:
        empty = pl.DataFrame(schema={**RAW_MESSAGE_SCHEMA, "source_line": pl.Int64()})
        return empty, [reject_row(number, Reason.INVALID_JSON, str(error)[:200], line)]


def classify_line(line: bytes) -> tuple[Reason, str] | None:
    """Why one line cannot be read as a message (structure only), or None when it can."""
    if len(line) > MAX_LINE_BYTES:
        return Reason.LINE_TOO_LONG, f"{len(line)} bytes > {MAX_LINE_BYTES}"
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as utf8_error:
            return Reason.INVALID_UTF8, f"byte {utf8_error.start}: {utf8_error.reason}"
        return Reason.INVALID_JSON, str(error)[:200]
    if not isinstance(message, dict):
        return Reason.NOT_AN_OBJECT, f"a JSON {type(message).__name__}, not an object"
    for field in OBJECT_FIELDS:
        value = message.get(field)
        if value is not None and not isinstance(value, dict):
            return Reason.WRONG_TYPE, f"{field} must be an object, got {type(value).__name__}"
    return None


def not_strings(messages: pl.DataFrame, raw: list[bytes]) -> pl.Series:
    """Per message, the first field of SCALAR_FIELDS that holds an object or array (null: none).

    Polars reads an object into a String column as its JSON text, so `[42]` and `"[42]"` read the
    same. Only messages with a field that begins with `[` or `{` are looked at again, in their raw
    line (`source_line` 1-based into `raw`), with orjson.
    """
    bracket = [pl.col(f).str.starts_with("[") | pl.col(f).str.starts_with("{") for f in SCALAR_FIELDS]
    suspect = messages.select(pl.any_horizontal(bracket).fill_null(False)).to_series()
    found = pl.Series("not_a_string", [None] * messages.height, dtype=pl.String)
    if not suspect.any():
        return found
    rows = suspect.arg_true()
    lines = messages["source_line"].gather(rows).to_list()
    return found.scatter(rows, pl.Series([_first_not_string(raw[n - 1]) for n in lines], dtype=pl.String))


def _first_not_string(line: bytes) -> str | None:
    message = orjson.loads(line)
    return next((f for f in SCALAR_FIELDS if isinstance(message.get(f), dict | list)), None)


def reject_row(source_line: int, reason: Reason, detail: str, line: bytes) -> dict[str, object]:
    """A quarantine row for one line, its raw text scrubbed (IPs truncated, no write key; context.py),
    bounded and decoded lossily."""
    raw = scrub_raw(line)[:RAW_QUARANTINE_BYTES].decode("utf-8", errors="replace")
    return {"source_line": source_line, "reason": str(reason), "detail": detail, "raw": raw}

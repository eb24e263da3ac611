"""Landed NDJSON bytes -> one row per message, with line-level quarantine.

Polars reads many lines in one call in Rust, but fails the whole call on one bad line. So the few
lines that may be bad are found first by their bytes (screen.py: no JSON parse) and judged line by
line with orjson (~1 us a line); every other line is read by Polars once, in one call per segment.
A line the screen let through that still fails the call is found by halving (a few reads, not one
per line) and judged alone. `line_by_line` judges every line with orjson first: the slow path that
the fast one must match, verdict for verdict (tests/unit/test_parse_paths.py).

Both paths give a line the same verdict. Where the two readers disagree:
- a lone surrogate escape (`"\\ud800"`): orjson rejects it, Polars reads a high one as NUL (so
  distinct message ids would collide). The screen flags such a line: `invalid_json`.
- an integer beyond 2**128 - 1 (`1` and 50 zeros): orjson reads it as a double, Polars rejects it.
  The line is read again with it written as that double (`1e+50`, as Segment's JavaScript reads it).
- an object field holding a string (`"properties": "{}"`): Polars reads its text, which may look like
  an object. The screen flags the line and orjson judges it: `wrong_type`.
- a name given twice: Polars reads the first value, orjson the last; orjson's take the first (members.py).
Polars' text of an object field is not always JSON, nor always the number sent: objects.py writes
such texts again.
"""

from __future__ import annotations

import codecs
import io
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial, reduce
from operator import or_

import orjson
import polars as pl

from transforms.ingest.context import scrub_raw
from transforms.ingest.members import first_members
from transforms.ingest.numbers import exponent_form, rounded
from transforms.ingest.objects import repair_objects, written_raw
from transforms.ingest.screen import SURROGATE, flagged_lines
from transforms.spec import (
    MAX_LINE_BYTES,
    OBJECT_FIELDS,
    RAW_MESSAGE_SCHEMA,
    RAW_QUARANTINE_BYTES,
    SCALAR_FIELDS,
    Reason,
)

CHUNK_LINES = 1 << 16  # lines a Polars call reads at most (a 16 MB segment holds ~22k simulated lines)
MESSAGE_SCHEMA: dict[str, pl.DataType] = {**RAW_MESSAGE_SCHEMA, "source_line": pl.Int64()}
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
    lines = _without_bom(data).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _without_bom(data: bytes) -> bytes:
    return data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data


@dataclass(frozen=True)
class ScreenedLines:
    """A segment's lines after the screen, before Polars reads them: the lines orjson rejected, and the
    numbers (1-based) of those left to read. Many segments are read in one call (`read_screened`, #17)."""

    raw: list[bytes]  # the physical lines
    rejects: list[dict[str, object]]
    read: list[int] | None  # None: every line
    lines: int  # non-blank lines
    escapes: bool  # a backslash somewhere: objects.py may write texts again

    def to_read(self, offset: int) -> tuple[list[bytes], list[int]]:
        """(lines Polars reads, their numbers plus `offset`)."""
        if self.read is None:
            return self.raw, list(range(offset + 1, offset + len(self.raw) + 1))
        return [self.raw[n - 1] for n in self.read], [offset + n for n in self.read]


def parse_lines(data: bytes, chunk_lines: int = CHUNK_LINES, *, line_by_line: bool = False) -> ParsedLines:
    """Read every line of a landed NDJSON file into messages or rejects, never losing one."""
    return read_segment(screen_lines(data, line_by_line=line_by_line), chunk_lines)


def screen_lines(data: bytes, *, line_by_line: bool = False) -> ScreenedLines:
    """The lines of `data` that may be bad (screen.py) judged with orjson; the others left to Polars."""
    lines = split_lines(data)
    flagged = set(range(len(lines))) if line_by_line else flagged_lines(_without_bom(data), lines)
    rejects: list[dict[str, object]] = []
    skipped = set()  # blank or rejected: the rest are read by Polars
    for index in sorted(flagged):
        line = lines[index]
        if not line.strip():
            skipped.add(index)
            continue
        found = classify_line(line)
        if found is not None:
            skipped.add(index)
            rejects.append(reject_row(index + 1, found[0], found[1], line))
    blank = len(skipped) - len(rejects)
    numbers = [n for n in range(1, len(lines) + 1) if n - 1 not in skipped] if skipped else None
    return ScreenedLines(lines, rejects, numbers, len(lines) - blank, b"\\" in data)


def read_segment(screened: ScreenedLines, chunk_lines: int = CHUNK_LINES) -> ParsedLines:
    """One screened segment read (`source_line`: its own line numbers)."""
    messages, rejects = read_screened([(0, screened)], chunk_lines)
    return ParsedLines(
        messages=messages,
        rejects=pl.DataFrame(screened.rejects + rejects, schema=REJECTS_SCHEMA).sort("source_line"),
        lines=screened.lines,
        raw=screened.raw,
    )


def read_screened(
    parts: Sequence[tuple[int, ScreenedLines]], chunk_lines: int = CHUNK_LINES
) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """The messages of screened segments (each with the number its lines count from, ascending), read in
    as few Polars calls as `chunk_lines` allows: one call per file paid most of the read's CPU (#17).

    Returns them with `source_line` = offset + line, and the rejects found in the reads (not the
    screen's own: `ScreenedLines.rejects`, numbered in their segment)."""
    good: list[bytes] = []
    numbers: list[int] = []
    for offset, part in parts:
        lines, numbered = part.to_read(offset)
        good += lines
        numbers += numbered
    frames: list[pl.DataFrame] = []
    rejects: list[dict[str, object]] = []
    for start in range(0, len(good), chunk_lines):
        frame, unreadable = _read_numbered(
            good[start : start + chunk_lines], numbers[start : start + chunk_lines]
        )
        frames.append(frame)
        rejects.extend(unreadable)
    if not frames:
        frame = pl.DataFrame(schema=MESSAGE_SCHEMA)
    else:
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=True)
    raw = {offset: part.raw for offset, part in parts}
    line_of = partial(raw_line, raw, sorted(raw))
    frame, late = _objects_judged(frame, line_of)
    rejects.extend(late)
    # Objects to write again from the line: a character Polars writes raw, a double it writes rounded.
    redo = [n for o, p in parts if p.escapes for n, line in enumerate(p.raw, o + 1) if written_raw(line)]
    redo += frame.filter(rounded(OBJECT_FIELDS))["source_line"].to_list()
    return (repair_objects(frame, redo, line_of) if redo else frame), rejects


def raw_line(raw: dict[int, list[bytes]], starts: list[int], number: int) -> bytes:
    """The physical line that message `number` came from: its segment is the last one starting below it
    (`starts`: the keys of `raw`, sorted). The last line of a segment has the number the next segment
    starts at, so `<=` would take the next segment's line."""
    key = starts[bisect_left(starts, number) - 1]
    return raw[key][number - key - 1]


def _objects_judged(
    frame: pl.DataFrame, line_of: Callable[[int], bytes]
) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """`frame` without the messages whose object field Polars read as something but an object and
    orjson rejects (a line the screen let through: it is judged as the slow path judges it)."""
    # On each Series, not in a `select`: a `select` on a frame read by `read_ndjson` costs ~0.3 ms whatever
    # it computes (`select_seq` 0.04 ms; measured, cause not found): 0.2-0.5 against 0.8-1.2 ms a file (#17).
    odd = reduce(or_, [frame[f].is_not_null() & ~opens_with(frame[f], "{") for f in OBJECT_FIELDS])
    rows = odd.arg_true()
    if rows.is_empty():
        return frame, []
    rejects, drop = [], []
    for row, number in zip(rows.to_list(), frame["source_line"].gather(rows).to_list(), strict=True):
        found = classify_line(line_of(number))
        if found is not None:
            drop.append(row)
            rejects.append(reject_row(number, found[0], found[1], line_of(number)))
    if not drop:
        return frame, []
    keep = pl.Series([True] * frame.height).scatter(drop, False)
    return frame.filter(keep), rejects


def opens_with(texts: pl.Series, char: str) -> pl.Series:
    """Whether each text starts with the ASCII `char` (null stays null), as two compares with `char` and
    the next character: they read the few bytes Polars keeps inline, `str.starts_with` ran 3-6x slower."""
    return (texts >= char) & (texts < chr(ord(char) + 1))


def _read(lines: list[bytes]) -> pl.DataFrame:
    frame = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=RAW_MESSAGE_SCHEMA)
    if frame.height != len(lines):  # Polars skipped a whitespace-only line: numbering would shift
        raise pl.exceptions.ComputeError("a line was skipped")
    return frame


def has_lone_surrogate(data: bytes) -> bool:
    """Whether JSON text `data` escapes a surrogate that is not half of a pair (as orjson rejects)."""
    if b"\\" not in data or (b"\\ud" not in data and b"\\uD" not in data):  # memchr first: 20x faster
        return False
    return any(len(match.group(1)) == 6 for match in SURROGATE.finditer(data))


def _read_numbered(lines: list[bytes], numbers: list[int]) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """Lines orjson accepted, read by Polars with their `source_line`s; the rare line Polars rejects
    is found by halving (a few reads, not one per line) and read again (`_read_rewritten`)."""
    try:
        frame = _read(lines) if lines else pl.DataFrame(schema=RAW_MESSAGE_SCHEMA)
        return frame.with_columns(pl.Series("source_line", numbers, dtype=pl.Int64)), []
    except pl.exceptions.PolarsError:
        if len(lines) == 1:
            found = classify_line(lines[0])  # a line the screen let through: judged as the slow path does
            if found is not None:
                return pl.DataFrame(schema=MESSAGE_SCHEMA), [reject_row(numbers[0], *found, lines[0])]
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
        rejected = reject_row(number, Reason.INVALID_JSON, str(error)[:200], line)
        return pl.DataFrame(schema=MESSAGE_SCHEMA), [rejected]


def classify_line(line: bytes) -> tuple[Reason, str] | None:
    """Why one line cannot be read as a message (structure only), or None when it can."""
    size = len(line) - line.endswith(b"\r")  # a CRLF file's CR is no part of the message
    if size > MAX_LINE_BYTES:
        return Reason.LINE_TOO_LONG, f"{size} bytes > {MAX_LINE_BYTES}"
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
    message = first_members(line, message, OBJECT_FIELDS)  # a repeated name: its first value, as Polars'
    for field in OBJECT_FIELDS:
        value = message.get(field)
        if value is not None and not isinstance(value, dict):
            return Reason.WRONG_TYPE, f"{field} must be an object, got {type(value).__name__}"
    return None


def not_strings(messages: pl.DataFrame, line_of: Callable[[int], bytes]) -> pl.Series:
    """Per message, the first field of SCALAR_FIELDS that holds an object or array (null: none).

    Polars reads an object into a String column as its JSON text, so `[42]` and `"[42]"` read the
    same. Only messages with a field that begins with `[` or `{` are looked at again, in their raw
    line (`line_of(source_line)`), with orjson.
    """
    bracket = [pl.col(f).str.starts_with("[") | pl.col(f).str.starts_with("{") for f in SCALAR_FIELDS]
    suspect = messages.select(pl.any_horizontal(bracket).fill_null(False)).to_series()
    found = pl.Series("not_a_string", [None] * messages.height, dtype=pl.String)
    if not suspect.any():
        return found
    rows = suspect.arg_true()
    lines = messages["source_line"].gather(rows).to_list()
    return found.scatter(rows, pl.Series([_first_not_string(line_of(n)) for n in lines], dtype=pl.String))


def _first_not_string(line: bytes) -> str | None:
    message = first_members(line, orjson.loads(line), SCALAR_FIELDS)
    return next((f for f in SCALAR_FIELDS if isinstance(message.get(f), dict | list)), None)


def reject_row(source_line: int, reason: Reason, detail: str, line: bytes) -> dict[str, object]:
    """A quarantine row for one line, its raw text scrubbed (IPs truncated, no write key; context.py),
    bounded and decoded lossily."""
    raw = scrub_raw(line)[:RAW_QUARANTINE_BYTES].decode("utf-8", errors="replace")
    return {"source_line": source_line, "reason": str(reason), "detail": detail, "raw": raw}

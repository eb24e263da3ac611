"""Which lines of a landed segment need a verdict of their own before the one vectorised read (#17).

Polars rejects a whole read for one bad line, and it reads a few lines that orjson (the line-by-line
verdict, parse.classify_line) rejects. So the lines that may be either are found first, by their
bytes and by a few searches over the whole segment (memchr-fast, nothing per clean line but a length
and two byte compares); only those are judged line by line, the rest are read by Polars in one go.
A line is flagged when it:
- is blank, shorter than `{}`, or longer than a landed line may be (Segment's 32 KB and the stamps; a
  CR ending the line is not counted: CRLF files are accepted);
- does not start with `{` and end with `}` (a truncated line, an array, a BOM, leading blanks);
- is not UTF-8 (one decode of the whole segment; line by line only when it fails);
- escapes a lone surrogate (`\\ud800`: Polars reads it as NUL, orjson rejects it);
- gives an object field a value that is not an object or null (`"properties": "{}"`, `: [1]`), or
  has a key with a `\\u` escape (which may spell an object field's name).
A line that is not flagged and still fails the read is found by halving (parse.py); one whose object
field Polars reads as something else than an object is judged again after the read.
"""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from itertools import accumulate

from transforms.spec import MAX_LINE_BYTES, OBJECT_FIELDS

# A `\\uD800`-`\\uDFFF` escape (after an even run of backslashes): a high-low pair, or a lone one (6 bytes).
SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
)
_FIELDS = b"|".join(field.encode() for field in OBJECT_FIELDS)
# An object field's key, then a string that Polars reads as a text starting with `{` (`"{}"`, or an
# escape such as `"\\u007b}"`). Any other value that is not an object or null is read as a text that
# does not start with `{`, which parse.py judges after the read. Any occurrence flags the line (nested,
# or inside a string): a superset is only a little more work. Looked for only when the segment holds
# `"{` or `"\\u` (a JSON string starting so), which clean events never do: a memchr, not a regex.
_STRING_OBJECT = re.compile(rb'"(?:' + _FIELDS + rb')"\s*:\s*"(?:\{|\\u)')
# A `\\uXXXX` escape in a string followed by a colon: a key that may spell an object field's name.
_ESCAPED_KEY = re.compile(rb'\\u[0-9a-fA-F]{4}(?:[^"\\\n]|\\.)*"\s*:')
# `"{` in the segment: the regex engine skips to each `{` and looks one byte back; 2x faster than
# `b'"{' in body`, whose search stops at every `"` of the JSON (#17).
_QUOTED_BRACE = re.compile(rb'\{(?<="\{)')
_MAX_DECODES = 8  # UTF-8 errors found by decoding the rest of the segment, then line by line
_OPEN, _CLOSE, _CR = ord("{"), ord("}"), ord("\r")


def flagged_lines(body: bytes, lines: list[bytes]) -> set[int]:
    """0-based indexes into `lines` (the physical lines of `body`, BOM dropped) to judge one by one."""
    flagged = _odd_shapes(lines)
    offsets: list[int] = []
    escapes = b"\\" in body  # one memchr: clean events escape nothing
    if _QUOTED_BRACE.search(body) is not None or (escapes and b'"\\u' in body):
        offsets += [m.start() for m in _STRING_OBJECT.finditer(body)]
    if escapes and b"\\u" in body:
        offsets += [m.start() for m in _ESCAPED_KEY.finditer(body)]
        if b"\\ud" in body or b"\\uD" in body:
            offsets += [m.start() for m in SURROGATE.finditer(body) if len(m.group(1)) == 6]
    if offsets:
        starts = list(accumulate((len(line) + 1 for line in lines), initial=0))
        flagged.update(bisect_right(starts, offset) - 1 for offset in offsets)
    return flagged | _not_utf8(body, lines)


def _odd_shapes(lines: list[bytes]) -> set[int]:
    """Lines that are blank, too short or long, or not `{` ... `}` (a CR may end a line; it is not counted
    against the limit: the second test runs only for a line over it)."""
    return {
        i
        for i, line in enumerate(lines)
        if len(line) < 2
        or (len(line) > MAX_LINE_BYTES and len(line) - (line[-1] == _CR) > MAX_LINE_BYTES)
        or line[0] != _OPEN
        or line[-1] not in (_CLOSE, _CR)
    }


def _not_utf8(body: bytes, lines: list[bytes]) -> set[int]:
    """Indexes of the lines that are not UTF-8: one decode when all are."""
    view, position, found = memoryview(body), 0, set[int]()
    starts: list[int] = []
    for _ in range(_MAX_DECODES):
        try:
            codecs.utf_8_decode(view[position:], "strict", True)
            return found
        except UnicodeDecodeError as error:
            starts = starts or list(accumulate((len(line) + 1 for line in lines), initial=0))
            index = bisect_right(starts, position + error.start) - 1
            found.add(index)
            position = starts[index + 1] if index + 1 < len(starts) else len(body)
    first = bisect_right(starts, position) - 1
    return found | {i for i in range(max(first, 0), len(lines)) if not _is_utf8(lines[i])}


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

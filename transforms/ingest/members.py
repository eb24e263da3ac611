"""A name given twice at a landed message's top level: every path reads its first value, as Polars does.

JSON leaves a repeated name undefined. Polars (the vectorised read) keeps the first value, orjson (a
line judged alone, a line whose objects are written again, a field looked at again) the last; so a line
was judged on one value and kept with the other: `"properties": {...}, "properties": "x"` was wrong_type
line by line and kept with its object when read in one go, `"userId": ["x"], "userId": "u"` kept with
the user id `["x"]`. Where the ingest reads a line with orjson, a member the line repeats is now taken
from its first value, so every path judges and keeps what Polars reads.

A clean line costs a few byte counts and only where orjson reads it (the screen's flagged lines, and
the rare ones looked at again): it is scanned only when a name the caller reads occurs twice in its
bytes, or a `\\u` escape may spell one. Quarantining every repeated name instead would need the names
of every line: Polars cannot tell them, and a byte search of the 17 names it reads took 22 s over a
1M-line backlog where the whole screen takes 0.8 s (issue #17).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import cache
from typing import Any

import orjson

# A JSON string (escapes and all), or a bracket, comma or colon outside strings: a valid line's structure.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


def first_members(line: bytes, message: dict[str, Any], names: Collection[str]) -> dict[str, Any]:
    """`message` (`line` as orjson reads it, an object) with each of `names` that `line` gives twice at its
    top level holding the first value given, as Polars reads it (a name in a nested object is no member)."""
    if b"\\u" not in line and all(line.count(_quoted(name)) < 2 for name in names):
        return message
    first = _first_values(line, names)
    return {**message, **first} if first else message


@cache
def _quoted(name: str) -> bytes:
    return b'"' + name.encode() + b'"'


def _first_values(line: bytes, names: Collection[str]) -> dict[str, Any]:
    """The first value of each of `names` that the object `line` (valid JSON) gives more than once."""
    first: dict[str, bytes] = {}
    repeated: set[str] = set()
    depth, key, member, start, in_value = 0, b'""', None, 0, False
    for match in _TOKEN.finditer(line):
        token = match.group()
        if depth == 1:
            if token == b":":  # the value of the member named by `key` starts here
                name = orjson.loads(key)  # its escapes read: `"propert\u0069es"` is properties
                member, start, in_value = (name if name in names else None), match.end(), True
                continue
            if token in (b",", b"}"):  # it ends here
                if member is not None and member in first:
                    repeated.add(member)
                elif member is not None:
                    first[member] = line[start : match.start()]
                member, in_value = None, False
            elif not in_value and token[:1] == b'"':
                key = token
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
    return {name: orjson.loads(first[name]) for name in repeated}

"""A request body orjson refused, read again message by message, so one message cannot cost its batch.

orjson refuses some text that is JSON by its grammar: a lone UTF-16 surrogate escape (JavaScript's
JSON.stringify writes one for a string cut mid-emoji), nesting past 1024 levels, a number beyond a
double. Segment's clients drop a whole batch on a 400, so such a body is read again here: the envelope
and each message of its `batch` on their own, with Python's json (which takes lone surrogates and
raises RecursionError on depth instead of failing the whole text). Each message is found by counting
brackets outside strings, without recursion, so even one too deep to read is stepped over. A message
that cannot be read comes back as `Unreadable`; one read with a lone surrogate comes back as it is and
is refused when it is written (wire.stamp). Text that is not JSON by its grammar is still refused whole.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"[\w.+-]*")
# A string (skipped whole; one left open runs to the end, so a scan never starts again inside it and
# stays linear) or a bracket.
_MARKS = re.compile(r'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)|[\[\]{}]')
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


class NotJson(ValueError):
    """Text that is not JSON by its grammar: the body is refused whole."""


class TooManyMessages(ValueError):
    """A `batch` of more messages than the reader was asked to read: the body is refused whole, before
    the rest is read (reading message by message costs about 1.5 us each, 0.4 s for a body of 250,000)."""


class _Unwritable(Exception):
    """A number orjson would not read (beyond a double): the message holding it is refused."""


@dataclass(frozen=True)
class Unreadable:
    """A message of a batch that is JSON but cannot be read or landed; `detail` says why."""

    detail: str


def _int(text: str) -> int | float:
    """An integer as orjson reads it: beyond 64 bits, a double; beyond a double, refused."""
    if len(text) <= 21 and _INT64_MIN <= (value := int(text)) <= _UINT64_MAX:
        return value
    return _float(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Unwritable(f"the number {text[:40]} is beyond a double")
    return value


def _constant(text: str) -> Any:
    raise NotJson(f"{text} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


class _Cursor:
    """A position in the body's text, stepping over JSON whitespace."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        return self.text[self.pos : self.pos + 1]

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise NotJson(f"expected {char!r} at char {self.pos}")
        self.pos += 1

    def value(self) -> Any:
        """The value that starts here, decoded (grammar errors say where in the body)."""
        self.peek()
        value, self.pos = _DECODER.raw_decode(self.text, self.pos)
        return value

    def message(self) -> Any:
        """The value that starts here, or `Unreadable` (stepped over) when it is JSON but cannot be read."""
        start = self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        try:
            return self.value()
        except RecursionError:
            why = "nested too deep to read"
        except _Unwritable as error:
            why = str(error)
        self.pos = _value_end(self.text, start)
        return Unreadable(why)

    def items(self, close: str, item: Callable[[], None]) -> None:
        """`item` for each item of the container just opened, up to its `close`."""
        if self.peek() != close:
            item()
            while self.peek() == ",":
                self.pos += 1
                item()
        self.take(close)


def _value_end(text: str, start: int) -> int:
    """Where the value at `start` ends: brackets counted outside strings, never recursing."""
    if text[start : start + 1] not in ("[", "{"):  # a number
        return _SCALAR.match(text, start).end()  # type: ignore[union-attr]
    depth = 0
    for mark in _MARKS.finditer(text, start):
        if mark.group()[0] != '"':
            depth += 1 if mark.group() in ("[", "{") else -1
            if depth == 0:
                return mark.end()
    raise NotJson(f"a container not closed from char {start}")


def read_leniently(body: bytes, max_messages: int | None = None) -> dict[str, Any]:
    """The body's object with each `batch` message read on its own (`Unreadable` for one that cannot
    be); NotJson for a body that is not JSON (or not UTF-8), or whose envelope cannot be read;
    TooManyMessages as soon as its `batch` passes `max_messages`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotJson(f"not UTF-8: {error}") from None
    cursor, envelope = _Cursor(text), dict[str, Any]()

    def member() -> None:
        if cursor.peek() != '"':
            raise NotJson(f"expected a key at char {cursor.pos}")
        key = cursor.value()
        cursor.take(":")
        if key == "batch" and cursor.peek() == "[":
            cursor.pos += 1
            batch: list[Any] = []

            def one() -> None:
                if max_messages is not None and len(batch) >= max_messages:
                    raise TooManyMessages(f"more than {max_messages} messages in a batch")
                batch.append(cursor.message())

            cursor.items("]", one)
            envelope[key] = batch
        else:
            envelope[key] = cursor.value()

    try:
        cursor.take("{")
        cursor.items("}", member)
    except (RecursionError, _Unwritable) as error:  # outside the messages of a batch
        raise NotJson(str(error) or "nested too deep to read") from None
    if cursor.peek():
        raise NotJson(f"content after the body's object at char {cursor.pos}")
    return envelope

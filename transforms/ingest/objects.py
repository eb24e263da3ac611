"""A message's object fields as the lake stores them: JSON text that every reader takes back.

Polars reads an object into a String column as JSON text it writes itself, in the form Python's
`json.dumps` writes (`{"a": 1, "b": [1, 2]}`), but it escapes only `"`, newline and carriage return
in a value and nothing in a key: a backslash, a tab, another control character, or a quote or line
break in a key, is written raw, and the text is no longer JSON (Polars' own reader, DuckDB and orjson
reject it; a Windows path or a tab in a product name failed the whole file). Such a character can
only come from an escape in the landed line, so a line with one (`\\\\`, `\\t`, `\\u0001`, `\\"` in a
key, ...; rare) has its objects written again, in the same form, from its own values as orjson reads
them. So is a line whose objects hold a double Polars writes as another integer (numbers.py).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import orjson
import polars as pl

from transforms.ingest.members import first_members
from transforms.ingest.numbers import ROUNDED
from transforms.spec import OBJECT_FIELDS

# An escape of a character that Polars writes raw anywhere (a backslash, a control character but
# newline and carriage return), or in a key only (a quote, a newline, a carriage return): such an
# escape, then the rest of its string, closed and followed by a colon. Every match starts at a
# backslash, so a line without one is skipped by a memchr.
_RAW_WHEN_WRITTEN = re.compile(
    rb"\\(?:[\\bft]|u00(?:0[0-9bcefBCEF]|1[0-9a-fA-F]|5[cC])"
    rb'|(?:["nr]|u00(?:0[aAdD]|22))[^"\\]*(?:\\.[^"\\]*)*"\s*:)'
)


def written_raw(text: bytes) -> bool:
    """Whether JSON `text` escapes a character that Polars writes back raw where it stands."""
    return b"\\" in text and _RAW_WHEN_WRITTEN.search(text) is not None


class _Literal(str):
    """JSON punctuation on `_to_json_deep`'s stack (as opposed to a string value)."""


def to_json(value: object) -> str:
    """`value` (as orjson reads JSON) as JSON text in Polars' form (`json.dumps`' own)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except RecursionError:  # nested deeper than Python's stack allows (orjson reads 1,023 levels)
        return _to_json_deep(value)


def _to_json_deep(value: object) -> str:
    """`to_json` in a loop, not recursion."""
    out: list[str] = []
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Literal):
            out.append(item)
        elif isinstance(item, dict | list):
            # Pushed last member first: popped as `{`, key, value, `, `, key, value, ..., `}`.
            is_dict = isinstance(item, dict)
            members: list[tuple[object, object]] = (
                list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            )
            stack.append(_Literal("}" if is_dict else "]"))
            for i, (key, inner) in enumerate(reversed(members)):
                stack.append(inner)
                if is_dict:
                    stack.append(_Literal(json.dumps(key, ensure_ascii=False) + ": "))
                if i < len(members) - 1:
                    stack.append(_Literal(", "))
            stack.append(_Literal("{" if is_dict else "["))
        else:
            out.append(json.dumps(item, ensure_ascii=False))  # str, int, float (finite), bool, None
    return "".join(out)


def repair_objects(
    messages: pl.DataFrame, flagged: list[int], line_of: Callable[[int], bytes]
) -> pl.DataFrame:
    """`messages` with the object fields of the lines `flagged` (the numbers, as in `source_line`, of
    lines that escape a character Polars writes raw, `written_raw`, or hold a double it writes rounded,
    numbers.py) written again from `line_of(number)`."""
    rows = messages["source_line"].is_in(flagged).arg_true()
    if rows.is_empty():
        return messages
    decoded = [_decoded(line_of(n)) for n in messages["source_line"].gather(rows).to_list()]
    fixed = []
    for field in OBJECT_FIELDS:
        texts = messages[field].gather(rows).to_list()
        values = [message.get(field) for message in decoded]
        new = [to_json(v) if isinstance(v, dict) else t for v, t in zip(values, texts, strict=True)]
        fixed.append(messages[field].clone().scatter(rows, pl.Series(new, dtype=pl.String)))
    return messages.with_columns(fixed)


def _decoded(line: bytes) -> dict[str, object]:
    """A line as orjson reads it, a repeated object field's first value as Polars reads it (empty where
    only Polars reads it: its texts stay as Polars wrote them; anything but an object in an object field
    is quarantined by its check)."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return first_members(line, message, OBJECT_FIELDS) if isinstance(message, dict) else {}


def repair_member(texts: pl.Series, objects: pl.Series, key: str) -> pl.Series:
    """`texts` (the `key` member of each of `objects`' JSON texts, as Polars lifts it) written again
    where Polars may have written a character raw: where the object's text escapes one."""
    found = objects.str.contains("\\", literal=True)
    if not found.any():  # the common case: one vectorised look
        return texts
    rows = (found.fill_null(False) & texts.is_not_null()).arg_true().to_list()
    return _members_again(texts, objects, key, [row for row in rows if written_raw(objects[row].encode())])


def rounded_member(texts: pl.Series, objects: pl.Series, key: str) -> pl.Series:
    """`texts` (the `key` member of each of `objects`' JSON texts, as Polars lifts it) written again where
    Polars may have written a double rounded (numbers.py): the objects hold it as sent (`repair_objects`)."""
    return _members_again(
        texts, objects, key, texts.str.contains(ROUNDED).fill_null(False).arg_true().to_list()
    )


def _members_again(texts: pl.Series, objects: pl.Series, key: str, rows: list[int]) -> pl.Series:
    """`texts` with the members of `rows` written again from their objects as orjson reads them."""
    if not rows:
        return texts
    fixed = [_member_json(objects[row], key, texts[row]) for row in rows]
    return texts.clone().scatter(rows, pl.Series(fixed, dtype=pl.String))


def _member_json(obj: str, key: str, text: str | None) -> str | None:
    value = orjson.loads(obj).get(key)
    return to_json(value) if isinstance(value, dict | list) else text  # a string is lifted as itself


def read_objects(texts: pl.Series, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The JSON objects of `texts` (null: `{}`) read as one NDJSON text with `schema`, a row each.

    Polars writes an object's text on one line (a newline in a value is escaped), so joined they are one
    line each. One read of the joined texts took 191 ms where `str.json_decode` took 493 ms (Polars 2.1).
    The join is Polars' CSV writer with no quoting (each text and a newline, as they are): 0.10 s for 200k
    contexts (86 MB) where `str.join` and the bytes of its one string took 0.16-0.20 s (#17)."""
    if not len(texts):
        return pl.DataFrame(schema=schema)
    joined = io.BytesIO()
    texts.fill_null("{}").to_frame().write_csv(joined, include_header=False, quote_style="never")
    read = pl.read_ndjson(joined.getvalue(), schema=schema)
    if read.height != len(texts):
        raise ValueError("object column did not read back one row per message")
    return read

"""Segment's `context` object as typed columns, and IP addresses cut to their network part.

An IP address is personal data: only its network part (IPv4 /24, IPv6 /48) reaches the lake. Every
`"ip"` value of an event's objects (`context.ip` is Segment's; a shop may send more, at any depth)
and of a quarantined line's raw text is truncated, or made null when it is no address.

One rule everywhere, by pattern rather than by parsing the address, so that Polars (on the object
columns, vectorised) and Python (on the few odd rows and on quarantined lines) agree:
- four dot-separated groups of 1-3 digits: the first three, then `.0` (`203.0.113.195` -> `203.0.113.0`);
- IPv6 (optionally with a zone): up to its first three groups, then `::` (`2001:db8:85a3:1::7` ->
  `2001:db8:85a3::`, `2001:db8::1` -> `2001:db8::`, `::ffff:198.51.100.7` -> `::`);
- anything else (a string that is no address, a number, an object): null.
"""

from __future__ import annotations

import re
from functools import lru_cache

import orjson
import polars as pl

from transforms.ingest.objects import read_objects

_V4 = r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.[0-9]{1,3}"
_H = "[0-9a-fA-F]{1,4}"
_V6 = rf"(?:({_H}:{_H}:{_H}):|((?:{_H}:){{0,2}}{_H})?::)[0-9a-fA-F:.]*(?:%[0-9A-Za-z_.-]+)?"
_KEPT = rf'(?:"[0-9]{{1,3}}\.[0-9]{{1,3}}\.[0-9]{{1,3}}\.0"|"(?:{_H}(?::{_H}){{0,2}})?::"|null)'
# Polars writes an object it read back as `{"key": value, ...}`: one space after each colon.
_JSON_KEY = '"ip": '
_V4_RE, _V6_RE = re.compile(_V4), re.compile(_V6)
_RAW_IP = re.compile(rb'"ip"\s*:\s*"((?:[^"\\\n]|\\.)*)("|$)', re.MULTILINE)
_RAW_IP_OTHER = re.compile(rb'"ip"\s*:\s*(?=[^"\sn])[^,}\]\n]*')  # a number, object, array or boolean
_RAW_WRITE_KEY = re.compile(rb'"writeKey"\s*:\s*"(?:[^"\\\n]|\\.)*("|$)', re.MULTILINE)


@lru_cache(maxsize=65536)
def truncate_ip(value: str) -> str | None:
    """The network part of an IP address (the module's rule), or None when `value` is no address."""
    if match := _V4_RE.fullmatch(value):
        return match.group(1) + ".0"
    if match := _V6_RE.fullmatch(value):
        return (match.group(1) or match.group(2) or "") + "::"
    return None


def scrub_json_ips(texts: pl.Series) -> pl.Series:
    """JSON object texts (as Polars writes them) with every `ip` value truncated, at any depth."""
    if not texts.str.contains(_JSON_KEY, literal=True).any():
        return texts
    # Replaced, then counted in the result (in one `select` the two replacements ran twice, #17).
    scrubbed = texts.str.replace_all(f'"ip": "{_V4}"', '"ip": "${1}.0"').str.replace_all(
        f'"ip": "{_V6}"', '"ip": "${1}${2}::"'
    )
    left = scrubbed.str.count_matches(_JSON_KEY, literal=True) - scrubbed.str.count_matches(_JSON_KEY + _KEPT)
    odd = (left > 0).fill_null(False)
    if not odd.any():
        return scrubbed
    rows = odd.arg_true()
    fixed = [orjson.dumps(_scrub_value(orjson.loads(texts[i]))).decode() for i in rows.to_list()]
    return scrubbed.scatter(rows, pl.Series(fixed, dtype=pl.String))


def _scrub_value(value: object) -> object:
    """A decoded JSON value with every `ip` key's value truncated (None unless an address string)."""
    if isinstance(value, dict):
        return {k: _ip(v) if k == "ip" else _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v) for v in value]
    return value


def _ip(value: object) -> str | None:
    return truncate_ip(value) if isinstance(value, str) else None


def scrub_raw(line: bytes) -> bytes:
    """A landed line as the quarantine may keep it: every `"ip"` value truncated, no write key."""
    if b'"ip"' in line:
        line = _RAW_IP_OTHER.sub(b'"ip": null', _RAW_IP.sub(_raw_ip, line))
    if b'"writeKey"' in line:
        line = _RAW_WRITE_KEY.sub(b'"writeKey": "<removed>"', line)
    return line


def _raw_ip(match: re.Match[bytes]) -> bytes:
    kept = truncate_ip(match.group(1).decode("utf-8", errors="replace"))
    return b'"ip": ' + (b"null" if kept is None else b'"' + kept.encode() + match.group(2))


def context_columns(texts: pl.Series, columns: dict[str, tuple[str, pl.DataType]]) -> pl.DataFrame:
    """Typed columns (`columns`: dotted path into the object -> name, dtype) from `context` texts.

    One read of the joined texts takes the nested objects as structs (`objects.read_objects`; it takes
    an object where a string belongs as its text). Where a nested object has another shape (a campaign
    that is a string), the read fails and the paths are looked up in each text.
    """
    nested: dict[str, dict[str, pl.DataType]] = {}
    for path in columns:
        head, _, tail = path.partition(".")
        if tail:
            nested.setdefault(head, {})[tail] = pl.String()
    top = [path for path in columns if "." not in path]
    schema = {**{k: pl.String() for k in top}, **{k: pl.Struct(v) for k, v in nested.items()}}
    values = {path: _field(path) for path in columns}
    try:
        read = read_objects(texts, schema)
    except pl.exceptions.PolarsError:
        read = read_objects(texts, {k: pl.String() for k in (*top, *nested)})
        values = {path: _path_match(path) for path in columns}
    return read.select([_cast(values[path], dtype).alias(name) for path, (name, dtype) in columns.items()])


def _field(path: str) -> pl.Expr:
    head, _, tail = path.partition(".")
    return pl.col(head).struct.field(tail) if tail else pl.col(head)


def _path_match(path: str) -> pl.Expr:
    head, _, tail = path.partition(".")
    return pl.col(head).str.json_path_match(f"$.{tail}") if tail else pl.col(head)


def _cast(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Int64:
        return expr.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    return expr.cast(dtype, strict=False)

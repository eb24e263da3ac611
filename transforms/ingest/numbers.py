"""Numbers in landed messages: kept so that they read back, and checked against the typed columns.

JSON has one kind of number and Segment (JavaScript) reads every one as a double; so does the lake.
- Polars writes a double it read into an object's text in positional notation (`1e50` becomes a 1
  and 50 zeros), and its own reader rejects an integer beyond 2**128 - 1. Every number with such a
  run of digits is written again in exponent form (`1e+50`): the same double, and a text that Polars,
  DuckDB and every JSON reader take back. The message is kept. A regex over the JSON tokens does it,
  so the text keeps its form (and nesting depth does not matter).
- A typed column takes a number only when it fits: `quantity` a whole number within int64, `price`,
  `total` and `revenue` finite. A message with one that does not is quarantined as
  `number_out_of_range` rather than stored with a null in its place.
"""

from __future__ import annotations

import math
import re

import polars as pl

# 39 digits in a row: 1e38 or more (2**128 - 1 has 39 digits), or a long fraction such as `0.000...15`.
_LONG_DIGITS = "[0-9]{39}"
# A JSON string (kept as it is) or a JSON number (written again when it has such a run of digits).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?')
_LONG_RUN = re.compile(_LONG_DIGITS)


def readable_numbers(texts: pl.Series) -> pl.Series:
    """JSON texts with every number Polars cannot read back written in exponent form (`1e50`)."""
    suspect = texts.str.contains(_LONG_DIGITS).fill_null(False)
    if not suspect.any():
        return texts
    rows = suspect.arg_true()
    fixed = [exponent_form(texts[i]) for i in rows.to_list()]
    return texts.clone().scatter(rows, pl.Series(fixed, dtype=pl.String))


def exponent_form(text: str) -> str:
    """JSON `text` with every number of 39 digits or more in a row written as its double (`1e+50`)."""
    return _TOKEN.sub(_number, text)


def _number(match: re.Match[str]) -> str:
    token = match.group()
    if token.startswith('"') or not _LONG_RUN.search(token):
        return token
    value = float(token)
    return repr(value) if math.isfinite(value) else token  # an infinite one was never read as a number


def to_int64(texts: pl.Expr) -> pl.Expr:
    """Lifted texts as int64: an integer text exactly, a number text rounded toward zero (`2.0`, `2e3`),
    null where there is no number or it is beyond the int64 range."""
    return pl.coalesce(
        texts.cast(pl.Int64, strict=False), texts.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False)
    )


def out_of_range(texts: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, str] | None:
    """(true where a lifted text is a number that `dtype` cannot hold, what it must be), or None when
    any text fits `dtype`."""
    number = texts.cast(pl.Float64, strict=False)
    if dtype == pl.Int64:
        return number.is_not_null() & to_int64(texts).is_null(), "a whole number within the int64 range"
    if dtype == pl.Float64:
        return number.is_not_null() & ~number.is_finite(), "a finite number"
    return None


def first_out_of_range(columns: dict[str, tuple[str, pl.DataType]]) -> pl.Expr:
    """Per row of lifted texts (`columns`: key -> (column, dtype)), why the first key whose number
    its column cannot hold is out of range (null: every number fits)."""
    detail: pl.Expr = pl.lit(None, dtype=pl.String)
    for key, (_, dtype) in reversed(columns.items()):
        check = out_of_range(pl.col(key), dtype)
        if check is not None:
            bad, must = check
            text = pl.lit(f"properties.{key} must be {must}")
            detail = pl.when(bad.fill_null(False)).then(text).otherwise(detail)
    return detail

"""Numbers in landed messages: kept so that they read back, and checked against the typed columns.

JSON has one kind of number and Segment (JavaScript) reads every one as a double; so does the lake.
- Polars writes a double it read into an object's text in positional notation (`1e50` becomes a 1
  and 50 zeros), and its own reader rejects an integer beyond 2**128 - 1. Every number with such a
  run of digits is written again in exponent form (`1e+50`): the same double, and a text that Polars,
  DuckDB and every JSON reader take back. The message is kept. A regex over the JSON tokens does it,
  so the text keeps its form (and nesting depth does not matter).
- Polars writes a double as its shortest digits and then zeros, so from 2**54 on (17 digits) the
  integer it writes may not be the double (3.747385692837818e+16 is written 37473856928378180, the
  double is 37473856928378176), and a reader that takes an integer as one (Python, DuckDB's BIGINT)
  gets another number. Below 2**54 every even integer is a double, so such a write is exact. A line
  whose objects hold a number of 17 digits or more has them written again from its values as orjson
  reads them (objects.py): a double as Python writes it (`3.747385692837818e+16`), an integer as it was.
- A typed column takes a number only when it fits: `quantity` a whole number within int64, `price`,
  `total` and `revenue` finite. A message with one that does not is quarantined as
  `number_out_of_range` rather than stored with a null in its place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import polars as pl

# 39 digits in a row: 1e38 or more (2**128 - 1 has 39 digits), or a long fraction such as `0.000...15`.
_LONG_DIGITS = "[0-9]{39}"
# Polars writes a double's shortest digits (17 at most) and then zeros: each number of 39 digits it
# writes has 22 zeros in a row. A literal search for them is ~4 times cheaper than the regex.
LONG_NUMBER = "0" * 22
# A JSON string (kept as it is) or a JSON number (written again when it has such a run of digits).
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?')
_LONG_RUN = re.compile(_LONG_DIGITS)
# 17 digits that end a number as Polars writes it (then `, `, `}` or `]`; in a string, only a little more
# work). The delimiter lets the engine look for its literals first: 0.13 s for 200k messages' three
# objects where `[0-9]{17}` alone took 0.27 s.
ROUNDED = r"[0-9]{17}[,}\]]"


def long_numbers(columns: Sequence[str]) -> list[pl.Expr]:
    """Per column of JSON texts: whether one may hold a number Polars cannot read back (a scalar)."""
    return [pl.col(c).str.contains(LONG_NUMBER, literal=True).any().alias(c) for c in columns]


def rounded(columns: Sequence[str]) -> pl.Expr:
    """Per row of JSON texts: whether one of `columns` may hold a double Polars wrote as another integer."""
    return pl.any_horizontal(pl.col(c).str.contains(ROUNDED) for c in columns).fill_null(False)


def readable_numbers(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """`frame` with every number that Polars cannot read back in the JSON texts of `columns` (those
    that `long_numbers` found) written in exponent form (`1e+50`)."""
    fixed = []
    for column in columns:
        rows = frame[column].str.contains(LONG_NUMBER, literal=True).fill_null(False).arg_true()
        texts = [exponent_form(text) for text in frame[column].gather(rows).to_list()]
        fixed.append(frame[column].clone().scatter(rows, pl.Series(texts, dtype=pl.String)))
    return frame.with_columns(fixed) if fixed else frame


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
    """Lifted texts as int64: an integer text exactly, a whole number written otherwise as it (`2.0`,
    `2e3`), null where there is no whole number (`1.5` was kept rounded toward zero, as 1) or it is beyond
    the int64 range."""
    number = texts.cast(pl.Float64, strict=False)
    whole = pl.when(number == number.floor()).then(number)
    return pl.coalesce(texts.cast(pl.Int64, strict=False), whole.cast(pl.Int64, strict=False))


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


def any_out_of_range(columns: dict[str, tuple[str, pl.DataType]]) -> pl.Expr:
    """Per row of lifted texts (`columns`: key -> (column, dtype)): whether a number does not fit its
    column (cheap, in the lift's own select; `first_out_of_range` then says which, for the rare file)."""
    checks = [check[0] for key, (_, dtype) in columns.items() if (check := out_of_range(pl.col(key), dtype))]
    return pl.any_horizontal(checks).fill_null(False) if checks else pl.lit(False)

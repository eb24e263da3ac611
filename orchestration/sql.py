"""`lakemail sql`: SQL over every lake table by name, with time travel."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import polars as pl
from deltalake import DeltaTable

from resources.lake import LakeResource


class SqlError(ValueError):
    """A query or `--as-of` value that cannot be answered; the message says why."""


def parse_as_of(text: str | None) -> int | datetime | None:
    """`--as-of`: a table version (integer) or an ISO-8601 timestamp (UTC when it has no offset)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SqlError(f"--as-of {text!r} is neither a version number nor an ISO-8601 timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _scan(uri: str, as_of: int | datetime | None) -> pl.LazyFrame | None:
    if as_of is None:
        return pl.scan_delta(uri)
    table = DeltaTable(uri)
    if isinstance(as_of, int):
        if as_of > table.version():
            return None  # this table had not reached that version
        return pl.scan_delta(uri, version=as_of)
    created = min(int(h["timestamp"]) for h in table.history())
    if as_of.timestamp() * 1000 < created:
        return None  # the table did not exist yet at that time
    return pl.scan_delta(uri, version=as_of)


def run_query(lake_uri: str, query: str, as_of: int | datetime | None = None) -> pl.DataFrame:
    """Answer `query` over every table of the lake (each at `as_of` when given)."""
    context = pl.SQLContext()
    lake = LakeResource(uri=lake_uri)
    for name in lake.table_names():
        frame = _scan(lake.table_uri(name), as_of)
        if frame is not None:
            context.register(name, frame)
    try:
        return context.execute(query, eager=True)
    except (
        pl.exceptions.SQLInterfaceError,
        pl.exceptions.SQLSyntaxError,
        pl.exceptions.ColumnNotFoundError,
    ) as error:
        known = ", ".join(context.tables()) or "none yet"
        raise SqlError(f"{error}\n(tables: {known})") from None


def render(frame: pl.DataFrame, fmt: str) -> str:
    """The result as an aligned table, CSV or a JSON array of row objects."""
    if fmt == "csv":
        return frame.write_csv()
    if fmt == "json":
        buffer = io.StringIO()
        frame.write_json(buffer)
        return buffer.getvalue() + "\n"
    with pl.Config(tbl_rows=1000, tbl_cols=50, fmt_str_lengths=80, tbl_hide_dataframe_shape=False):
        return f"{frame}\n"

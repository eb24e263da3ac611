"""`lakemail sql`: SQL over every lake table by name, with time travel, and over nothing else.

Polars' SQL engine answers; its own parser says what a query is. Only one read-only query is
answered: the query runs as `SELECT * FROM (<query>) AS lakemail_query`, so anything that is not a
query (DDL, DML, EXPLAIN, SHOW, several statements) fails to parse, and DML inside a query is
refused by the engine. Polars' table functions (`read_csv`, `read_parquet`, `read_json`, `read_ipc`,
...) would read any file or URL the process can reach (the home's `.secret` among them): every
relation the query names is checked with the engine before it runs, and one that the engine would
take for a table function is refused. Every failure is a `SqlError` with a one-line message.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

# The engine's list of the relations a query names (what `pl.SQLContext.execute_global` uses too).
from polars._plr import PySQLContext

from resources.lake import LakeResource
from resources.state import StateResource
from stores.state.view import current_profiles

ALIAS = "lakemail_query"
ONLY_QUERIES = (
    "lakemail sql answers one read-only query (SELECT, WITH ... SELECT or VALUES) over the lake's "
    "tables; statements that change or define tables, EXPLAIN, SHOW and several statements are not run"
)
NOT_A_FUNCTION = "is not a supported table function"
MAX_MESSAGE = 400
# What the engine, the Delta reader or the file system raise over a query; PanicException is a
# BaseException (pyo3), so it is named here rather than caught as an Exception.
QUERY_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, DeltaError, OSError, ValueError)


class SqlError(ValueError):
    """A query or `--as-of` value that cannot be answered; the message says why, on one line."""


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


def one_line(error: BaseException) -> str:
    """The first line of an error's message (engines append plans and hints), bounded."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


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


def _frames(lake_uri: str, as_of: int | datetime | None) -> dict[str, pl.LazyFrame]:
    """Every lake table (at `as_of` when given) that existed then, by name."""
    lake = LakeResource(uri=lake_uri)
    frames: dict[str, pl.LazyFrame] = {}
    for name in lake.table_names():
        try:
            frame = _scan(lake.table_uri(name), as_of)
        except QUERY_ERRORS as error:
            raise SqlError(f"table {name} at --as-of {_shown(as_of)}: {one_line(error)}") from None
        if frame is not None:
            frames[name] = frame
    if as_of is not None and not frames and lake.table_names():
        when = f"had reached version {as_of}" if isinstance(as_of, int) else f"existed yet at {_shown(as_of)}"
        raise SqlError(f"no lake table {when} (--as-of)")
    return frames


def _shown(as_of: int | datetime | None) -> str:
    return as_of.isoformat() if isinstance(as_of, datetime) else str(as_of)


def _is_table_function(name: str) -> bool:
    """Whether the engine takes `name(...)` for a table function (asked with no arguments: no IO)."""
    quoted = '"' + name.replace('"', '""') + '"'
    try:
        pl.SQLContext().execute(f"SELECT * FROM {quoted}()", eager=True)
    except pl.exceptions.SQLInterfaceError as error:
        return NOT_A_FUNCTION not in str(error)
    except QUERY_ERRORS:
        return True  # e.g. "read_csv expects a file path": a function that wanted its arguments
    return True


def guarded(query: str) -> str:
    """`query` as the single read-only query over registered tables that the engine will run.

    Raises SqlError for a syntax error (at the user's own line and column), for anything but one
    query, and for a relation the engine would read as a table function (a file or URL).
    """
    try:
        PySQLContext.table_identifiers(query, include_schema=False, unique=False)
    except QUERY_ERRORS as error:
        raise SqlError(one_line(error)) from None
    body = query.strip().rstrip(";").rstrip()
    # A newline before the parenthesis: a trailing `-- comment` must not swallow it.
    wrapped = f"SELECT * FROM (\n{body}\n) AS {ALIAS}"
    try:
        names = PySQLContext.table_identifiers(wrapped, include_schema=True, unique=True)
    except QUERY_ERRORS:
        raise SqlError(ONLY_QUERIES) from None
    for name in names:
        for part in {name, *name.split(".")}:
            if _is_table_function(part):
                raise SqlError(
                    f"{part}(...) reads files or URLs; lakemail sql reads only the lake's tables by name"
                )
    return wrapped


def current_profiles_frame(lake_uri: str, state_uri: str) -> pl.LazyFrame | None:
    """`profiles` as of the last committed batch, from the state store (None: no store, or one that
    ahead of the lake, never trusted: the Delta table answers then)."""
    store = StateResource(uri=state_uri).existing()
    if store is None or store.stamps()["ingest"] > LakeResource(uri=lake_uri).committed_batch():
        return None
    rows, _ = current_profiles(store, datetime.now(UTC))
    return rows.lazy()


def run_query(
    lake_uri: str, query: str, as_of: int | datetime | None = None, state_uri: str | None = None
) -> pl.DataFrame:
    """Answer `query` over every table of the lake (each at `as_of` when given), and only those; with a
    `state_uri`, `profiles` (now) is the state store's, as of the last committed batch."""
    wrapped = guarded(query)
    frames = _frames(lake_uri, as_of)
    if state_uri is not None and as_of is None and "profiles" in query.lower():
        live = current_profiles_frame(lake_uri, state_uri)
        if live is not None:
            frames["profiles"] = live
    context = pl.SQLContext(frames)
    try:
        return context.execute(wrapped, eager=True)
    except QUERY_ERRORS as error:
        message = one_line(error)
        if "not found" in message:
            message += f" (tables{'' if as_of is None else ' then'}: {', '.join(frames) or 'none yet'})"
        elif "currently unsupported" in message:  # DML inside the query (`WITH ... DELETE`)
            message = f"{message}: {ONLY_QUERIES}"
        elif as_of is not None and isinstance(error, FileNotFoundError):
            when = _shown(as_of)
            gone = "its files were vacuumed (by maintenance or an erasure)"
            message = f"the lake at --as-of {when} is no longer readable: {gone}"
        raise SqlError(message) from None


def _nested(frame: pl.DataFrame) -> list[str]:
    return [name for name, dtype in frame.schema.items() if dtype.is_nested() or dtype == pl.Object]


def render(frame: pl.DataFrame, fmt: str) -> str:
    """The result as an aligned table, CSV or a JSON array of row objects."""
    if fmt == "csv" and (nested := _nested(frame)):
        raise SqlError(
            f"--format csv cannot hold the nested column(s) {', '.join(nested)}: "
            "use --format json, or select their fields"
        )
    try:
        return _render(frame, fmt)
    except QUERY_ERRORS as error:
        raise SqlError(f"--format {fmt}: {one_line(error)}") from None


def _render(frame: pl.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return frame.write_csv()
    if fmt == "json":
        buffer = io.StringIO()
        frame.write_json(buffer)
        return buffer.getvalue() + "\n"
    with pl.Config(tbl_rows=1000, tbl_cols=50, fmt_str_lengths=80, tbl_hide_dataframe_shape=False):
        return f"{frame}\n"

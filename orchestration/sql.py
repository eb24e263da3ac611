"""`lakemail sql`: SQL over every lake table by name, with time travel, and over nothing else.

Polars' SQL engine answers; its own parser says what a query is. Only one read-only query is
answered: the query runs as `SELECT * FROM (<query>) AS lakemail_query`, so anything that is not a
query (DDL, DML, EXPLAIN, SHOW, several statements) fails to parse, and DML inside a query is
refused by the engine. Polars' table functions (`read_csv`, `read_parquet`, `read_json`, `read_ipc`,
...) would read any file or URL the process can reach (the home's `.secret` among them): every
relation the query names is checked with the engine before it runs, and one that the engine would
take for a table function is refused. Every failure is a `SqlError` with a one-line message.

Every table of the public contract (`transforms.tables.PUBLIC_TABLES`) answers by name, empty with its
columns before its first write. The query runs on the run's one clock, in UTC (`orchestration.sql_time`).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

# The engine's list of the relations a query names (what `pl.SQLContext.execute_global` uses too).
from polars._plr import PySQLContext

from orchestration.sql_time import on_utc
from resources.lake import LakeResource
from resources.state import StateResource
from stores.state.view import current_profiles
from stores.triggers_pending import pending_rows
from transforms.tables import PUBLIC_TABLES

ALIAS = "lakemail_query"
ONLY_QUERIES = (
    "lakemail sql answers one read-only query (SELECT, WITH ... SELECT or VALUES) over the lake's "
    "tables; statements that change or define tables, EXPLAIN, SHOW and several statements are not run"
)
NOT_A_FUNCTION = "is not a supported table function"
# How the engine names a statement that changes or defines a table inside a query (`WITH ... DELETE`).
DML = re.compile(r"'(INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE|COPY|REPLACE)\b", re.IGNORECASE)
STRUCT_FIELDS = (
    "->, ->> and . read the fields of struct columns (cart_items[1]->>'name'); the JSON columns (properties, "
    "traits, context, products, fallbacks, figures) are text: match them with LIKE or regexp_like"
)
FIELD_ACCESS = "write a field of a list's element as cart_items[1]->>'name'"
NAIVE_COMPARED = "the lake's timestamps are UTC; AT TIME ZONE gives a local wall time, without a zone"
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
    if text.isascii() and text.isdigit():  # not `²` or `٣`: isdigit alone takes them, int() not all
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
    """Every lake table (at `as_of` when given) that existed then, by name; a public table that did not
    exist (yet) then is empty, with its columns."""
    lake = LakeResource(uri=lake_uri)
    frames: dict[str, pl.LazyFrame] = {}
    listed = lake.table_names()
    for name in sorted({*listed, *PUBLIC_TABLES}):
        uri = lake.table_uri(name)
        try:
            frame = _scan(uri, as_of) if name in listed or DeltaTable.is_deltatable(uri) else None
        except QUERY_ERRORS as error:
            raise SqlError(f"table {name} at --as-of {_shown(as_of)}: {one_line(error)}") from None
        if frame is not None:
            frames[name] = frame
    if as_of is not None and not frames and listed:
        when = f"had reached version {as_of}" if isinstance(as_of, int) else f"existed yet at {_shown(as_of)}"
        raise SqlError(f"no lake table {when} (--as-of)")
    empty = {name: pl.LazyFrame(schema=PUBLIC_TABLES[name]) for name in PUBLIC_TABLES if name not in frames}
    return dict(sorted({**frames, **empty}.items()))


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


def current_profiles_frame(lake_uri: str, state_uri: str, now: datetime) -> pl.LazyFrame | None:
    """`profiles` as of the last committed batch, from the state store (None: no store, or one that
    ahead of the lake, never trusted: the Delta table answers then)."""
    store = StateResource(uri=state_uri).existing()
    if store is None or store.stamps()["ingest"] > LakeResource(uri=lake_uri).committed_batch():
        return None
    rows, _ = current_profiles(store, now)
    return rows.lazy()


def run_query(
    lake_uri: str,
    query: str,
    as_of: int | datetime | None = None,
    state_uri: str | None = None,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Answer `query` over every table of the lake (each at `as_of` when given), and only those, with its
    clock at `now` (default: the wall clock) in UTC; with a `state_uri`, `profiles` (now) is the state
    store's, as of the last committed batch. `trigger_state` (now) is the pending set as of the last
    engine run: the table is a checkpoint of it, which the log's later rows bring up to date (#17)."""
    now = now or datetime.now(UTC)
    wrapped = on_utc(guarded(query), now)
    frames = _frames(lake_uri, as_of)
    if state_uri is not None and as_of is None and "profiles" in query.lower():
        live = current_profiles_frame(lake_uri, state_uri, now)
        if live is not None:
            frames["profiles"] = live
    if as_of is None and "trigger_state" in frames and "trigger_state" in query.lower():
        frames["trigger_state"] = pending_rows(LakeResource(uri=lake_uri)).lazy()
    context = pl.SQLContext(frames)
    try:
        return context.execute(wrapped, eager=True)
    except QUERY_ERRORS as error:
        raise SqlError(_explained(error, list(frames), as_of)) from None


def _explained(error: BaseException, tables: list[str], as_of: int | datetime | None) -> str:
    """What failed, on one line: the engine's words, and what the user can do instead."""
    message = one_line(error)
    if isinstance(error, pl.exceptions.StructFieldNotFoundError):  # the engine says only the field's name
        return f"no struct field {message!r}: {STRUCT_FIELDS}"
    if "not found" in message:
        return f"{message} (tables{'' if as_of is None else ' then'}: {', '.join(tables) or 'none yet'})"
    if "currently unsupported" in message:
        if DML.match(message):  # DML inside the query (`WITH ... DELETE`)
            return f"{message}: {ONLY_QUERIES}"
        what = message.split(": ", 1)[0]  # without the engine's parse tree
        hint = f"; {FIELD_ACCESS}" if "field access" in what else ""
        return f"Polars SQL does not support this: {what}{hint}"
    if as_of is not None and isinstance(error, FileNotFoundError):
        gone = "its files were vacuumed (by maintenance or an erasure)"
        return f"the lake at --as-of {_shown(as_of)} is no longer readable: {gone}"
    if "comparison between" in message and "Datetime(" in message:
        return f"{message} ({NAIVE_COMPARED})"
    return message


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

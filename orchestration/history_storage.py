"""A SQLite home's Dagster history (runs, every run's events): Dagster's storages, connections kept.

Dagster's SQLite storages open a new engine and connection for every read and write and close it after
one transaction; closing the last connection of a database in WAL mode checkpoints the write-ahead log
into it, two `fsync`s: 2-3 ms each time on this machine. A micro-batch run writes 30-60 events and
reads or writes its run record about 25 times in each lane: a fifth of a decide run's time (#17,
profiled). Here each process keeps a small pool of connections open, with `synchronous=NORMAL`: a
commit is a write to the log (0.04 ms), and SQLite checkpoints by itself as the log grows (every 1,000
pages).

What it costs: after a power loss (not a killed process) the last commits of the history may be gone;
the databases stay whole. The lake, not Dagster's history, is what lakemail's exactly-once rests on (a
run found failed or missing is only work taken again). The UI's live view of a run watches the event
log's write-ahead log as well as its database (Dagster's watcher only the database, which now changes
at checkpoints only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SQLITE_EVENT_LOG_FILENAME,
)
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.sqlite import create_db_conn_string
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import QueuePool
from watchdog.events import FileSystemEvent, PatternMatchingEventHandler
from watchdog.observers import Observer

WAL_SUFFIX = "-wal"


def _pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: no fsync per commit, only per checkpoint
    # Statistics for the query planner (sqlite_stat1), which SQLite never gathers by itself: without them
    # a run's events of one type (`get_records_for_run(run_id, of_type=...)`, the in-run checks' scope,
    # three times a micro-batch) were looked up by the event type's index, every run's events of that type:
    # 309 ms after 10,000 runs (#17, batch_history's aged home; 0.2 ms by the run id's index). Gathered at
    # each connection (kept for the process), sampled (`analysis_limit`): 6 ms on that 1.8 GB history.
    # (`PRAGMA optimize` would not: before SQLite 3.46 it skips the tables a connection has not used.)
    cursor.execute("PRAGMA analysis_limit=1000")
    try:
        cursor.execute("ANALYZE")
        dbapi_connection.commit()  # its write lock released at once
    except sqlite3.OperationalError:  # busy: another process writes; the statistics can wait
        pass
    cursor.close()


def kept_engine(conn_string: str) -> sa.Engine:
    """An engine whose few connections stay open for the process (threads take turns on them)."""
    engine = sa.create_engine(
        conn_string,
        poolclass=QueuePool,
        pool_size=2,
        max_overflow=8,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _pragmas)
    return engine


class LakemailEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """One SQLite database for every run's events (`base_dir/event_log.db`, WAL), connections kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # Before Dagster's constructor, which may already read or write (its schema, its indexes).
        self._engine = kept_engine(create_db_conn_string(base_dir, SQLITE_EVENT_LOG_FILENAME))
        self._known: set[str] = set()  # tables and columns seen: migrations add them, nothing drops them
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before every asset check event, reflecting the schema each time (#17)."""
        if table_name not in self._known:
            with self._engine.connect() as conn:
                if not self._engine.dialect.has_table(conn, table_name):
                    return False
            self._known.add(table_name)
        return True

    def _has_asset_key_col_on_connection(self, conn: sa.Connection, column_name: str) -> bool:
        """Dagster asks before every asset event and asset status read, reflecting the table each time."""
        if f"asset_keys.{column_name}" not in self._known:
            if not super()._has_asset_key_col_on_connection(conn, column_name):
                return False
            self._known.add(f"asset_keys.{column_name}")
        return True

    def watch(self, run_id: str, cursor: str | None, callback: Callable[..., Any]) -> None:
        if not self._obs:
            observer = Observer()
            observer.start()
            observer.schedule(_Watchdog(self), self._base_dir, recursive=True)
            self._obs = observer  # type: ignore[assignment]  # Dagster types it None until it watches
        self._watchers[run_id][callback] = cursor

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class _Watchdog(PatternMatchingEventHandler):
    """New events for the storage's watchers when the database or its write-ahead log changes."""

    def __init__(self, storage: LakemailEventLogStorage) -> None:
        self._storage = storage
        path = storage.get_db_path()
        super().__init__(patterns=[path, path + WAL_SUFFIX])

    def on_modified(self, event: FileSystemEvent) -> None:
        self._storage.on_modified()


class LakemailRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage (`base_dir/runs.db`), connections kept."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engine = kept_engine(conn_string)
        self._known: set[str] = set()  # columns seen: migrations add them, nothing drops them
        super().__init__(conn_string, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]  # Dagster's names its own class, not `cls`
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, str]
    ) -> LakemailRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    # Dagster asks before every run it creates and every read of run records, reflecting the table (#17).
    def has_run_stats_index_cols(self) -> bool:
        return self._once("runs.start_time", super().has_run_stats_index_cols)

    def has_backfill_id_column(self) -> bool:
        return self._once("runs.backfill_id", super().has_backfill_id_column)

    def _once(self, name: str, ask: Callable[[], bool]) -> bool:
        if name not in self._known:
            if not ask():
                return False
            self._known.add(name)
        return True

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()

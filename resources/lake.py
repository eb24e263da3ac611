"""The `lake` resource: lakemail's Delta Lake tables under one folder, and its writer locks (lake_locks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal

import dagster as dg
import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError
from pydantic import PrivateAttr

from resources.folders import local_folder
from resources.lake_config import table_configuration, writer_properties
from resources.lake_files import append_files, arrow_stream
from resources.lake_held import held_table
from resources.lake_locks import LakeLocks
from resources.lake_merge import HeldSince, merge
from transforms.evolution import struct_widening, widened
from transforms.schema import INGEST_APP_ID


class LakeResource(LakeLocks, dg.ConfigurableResource):
    """The Delta Lake tables under one folder (`LAKEMAIL_LAKE_URI`)."""

    uri: str
    # Set on a view of the lake as one reader saw it (`at`, `snapshot`): table name -> version read,
    # and the tables at those versions, each loaded once.
    _pins: dict[str, int | None] | None = PrivateAttr(default=None)
    _opened: dict[str, DeltaTable] = PrivateAttr(default_factory=dict)

    @property
    def root(self) -> Path | None:
        """The lake's folder; None for an object store, where nothing here reads the filesystem."""
        return local_folder(self.uri)

    def table_uri(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def table_names(self) -> list[str]:
        """Names of the Delta tables directly under the lake folder (none listed on an object store)."""
        root = self.root
        if root is None or not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "_delta_log").is_dir())

    def table(self, name: str, version: int | None = None) -> DeltaTable | None:
        """The table, at `version` when given (else the current one, or the one a view pins), or None when
        it was never written (or, in a view, was not yet)."""
        if self._pins is not None:
            if name not in self._pins:
                raise KeyError(f"table {name!r} is not in this view of the lake")
            pinned = self._pins[name]
            if pinned is None:
                return None
            if version is None or version == pinned:
                if name not in self._opened:
                    self._opened[name] = DeltaTable(self.table_uri(name), version=pinned)
                return self._opened[name]
        uri = self.table_uri(name)
        if not DeltaTable.is_deltatable(uri):
            return None
        return DeltaTable(uri, version=version) if version is not None else DeltaTable(uri)

    def held(self, name: str) -> AbstractContextManager[DeltaTable | None]:
        """Table `name` as of now, for a read or a write done within the block: held open between uses
        (`resources.lake_held`, #17); not for a lazy scan. In a view: the table it pins."""
        root = self.root if self._pins is None else None
        return held_table(root / name if root else None, self.table_uri(name), lambda: self.table(name))

    def at(self, versions: Mapping[str, int | None]) -> LakeResource:
        """A read-only view of the lake that reads each table of `versions` at that version (None: not
        written yet) and no other table: what one reader saw, read again the same way."""
        view = LakeResource(uri=self.uri)
        view._pins = dict(versions)
        return view

    def snapshot(self, names: Iterable[str]) -> LakeResource:
        """A view (`at`) of the tables `names` as they are now: later commits do not change what it reads."""
        return self.view_of({name: self.table(name) for name in names})

    def view_of(self, tables: Mapping[str, DeltaTable | None]) -> LakeResource:
        """A view (`at`) of `tables` (name -> table as opened, None: not written) at their versions."""
        view = self.at({name: table.version() if table else None for name, table in tables.items()})
        view._opened = {name: table for name, table in tables.items() if table is not None}
        return view

    @property
    def pinned(self) -> dict[str, int | None]:
        """The versions a view reads (empty for the lake itself)."""
        return dict(self._pins or {})

    def commit_of(self, name: str, app_id: str, version: int) -> int | None:
        """The version of table `name` whose commit recorded `app_id -> version`; None when no commit did,
        or when it is older than the table's log keeps."""
        table = self.table(name)
        if table is None or (table.transaction_version(app_id) or 0) < version:
            return None

        def recorded(at: int) -> int | None:
            try:
                return DeltaTable(self.table_uri(name), version=at).transaction_version(app_id) or 0
            except DeltaError:  # a version whose log was cleaned up: older than any readable one
                return None

        low, high = 0, table.version()  # the app's recorded version only grows with the table's
        while low < high:
            middle = (low + high) // 2
            reached = recorded(middle)
            low, high = (low, middle) if reached is not None and reached >= version else (middle + 1, high)
        return low if recorded(low) == version else None

    def version(self, name: str) -> int | None:
        """The table's current version, or None when it was never written."""
        with self.held(name) as table:
            return table.version() if table is not None else None

    def scan(
        self, name: str, schema: Mapping[str, pl.DataType], *, version: int | None = None
    ) -> pl.LazyFrame:
        """Table `name` (at `version` when given) with `schema`'s columns, lazily; an empty frame of
        `schema` when the table was never written. Every reader of a table goes through here; what a
        table from an earlier release lacks reads as null (`transforms.evolution`)."""
        return _rows(self.table(name, version), schema)

    def read(
        self,
        name: str,
        schema: Mapping[str, pl.DataType],
        columns: list[str] | None = None,
        *,
        version: int | None = None,
    ) -> pl.DataFrame:
        """`scan`, collected: the whole table or some of its columns."""
        if version is not None:
            return _rows(self.table(name, version), schema).select(columns or list(schema)).collect()
        return self.collect(name, schema, lambda rows: rows.select(columns or list(schema)))

    def collect(
        self, name: str, schema: Mapping[str, pl.DataType], query: Callable[[pl.LazyFrame], pl.LazyFrame]
    ) -> pl.DataFrame:
        """`query` over `scan(name, schema)`, collected at once: the table held open (#17, no open)."""
        with self.held(name) as table:
            return query(_rows(table, schema)).collect()

    def committed_batch(self) -> int:
        """The last batch number that completed (0 on a new lake)."""
        return self.app_version("ingest_log", INGEST_APP_ID)

    def batch_version(self, name: str) -> int:
        """The last batch number that wrote to `name` (0 when none did)."""
        return self.app_version(name, INGEST_APP_ID)

    def app_version(self, name: str, app_id: str) -> int:
        """The last version `app_id` recorded on table `name` (0 when it never wrote there)."""
        with self.held(name) as table:
            return (table.transaction_version(app_id) or 0) if table is not None else 0

    def write_tagged(
        self,
        name: str,
        frame: pl.DataFrame,
        tags: dict[str, int],
        *,
        mode: Literal["append", "overwrite"] = "append",
    ) -> None:
        """Write `frame` as one commit that records each `app_id -> version` of `tags`, rows or none (an
        empty append that wrote no commit left an engine run that decided nothing out of the log)."""
        transactions = [Transaction(app_id, version) for app_id, version in tags.items()]
        properties = CommitProperties(app_transactions=transactions)
        self.write(name, frame, commit_properties=properties, mode=mode, record_empty=True)

    def upsert(
        self,
        name: str,
        frame: pl.DataFrame,
        *,
        key: str,
        tags: dict[str, int] | None = None,
        insert_only: bool = False,
        whole: bool = False,
        since: str | None = None,
        held_since: HeldSince | None = None,
    ) -> None:
        """One commit (Delta MERGE on `key`, a non-personal id): new keys are inserted, existing rows
        replaced (kept as they are with `insert_only`: only the new ones appended). `tags` are recorded
        even when `frame` is empty. With `whole`, `frame` is the whole table: rows whose key it lacks are
        deleted too, and only the files holding a changed or deleted row are rewritten. `since`: a column
        no row changes after its insert, so that files below the frame's least value are not read;
        `held_since` (with `insert_only`): a column and the least value a row holding one of the frame's
        keys can have in it, so that files below it are not read (`resources.lake_merge`).
        """
        self._writable()
        transactions = [Transaction(app_id, version) for app_id, version in (tags or {}).items()]
        commit = CommitProperties(app_transactions=transactions)
        with self.held(name) as table:
            if table is None or (frame.height == 0 and not whole):
                if frame.height or transactions or table is None:
                    write_deltalake(
                        table if table is not None else self.table_uri(name),
                        frame.to_arrow(compat_level=pl.CompatLevel.oldest()),
                        mode="append",
                        configuration=None if table is not None else table_configuration(name),
                        writer_properties=writer_properties(),
                        commit_properties=commit,
                        schema_mode="merge" if table is not None else None,
                    )
                return
            modes = {"insert_only": insert_only, "whole": whole}
            merge(table, frame, key=key, commit=commit, **modes, since=since, held_since=held_since)

    def write(
        self,
        name: str,
        frame: pl.DataFrame,
        *,
        commit_properties: CommitProperties | None = None,
        partition_by: list[str] | None = None,
        mode: Literal["append", "overwrite"] = "append",
        record_empty: bool = False,
    ) -> None:
        """Write `frame` to table `name` as one commit (zstd; a new table gets `table_configuration`).

        An empty append only creates the table, so that queries on it work from the first batch (with
        `record_empty`, it is a commit of no rows, for what its `commit_properties` record). An
        append may bring columns the table does not have yet (a lake from an earlier release): they are
        added, and older rows read null; struct fields too, in a rewrite of the table as this one commit.
        An overwrite replaces the schema with `frame`'s, as it replaces the rows. An append to a local table
        is written in bounded memory (`resources.lake_files`) when it can be."""
        self._writable()
        with self.held(name) as table:
            exists = table is not None
            if frame.height == 0 and exists and mode == "append" and not record_empty:
                return
            if table is not None and mode == "append":
                present = pl.scan_delta(table).collect_schema()
                union = struct_widening(present, frame.schema)
                if union is not None:  # a struct gains a field: the table rewritten (transforms.evolution)
                    old = self.scan(name, union).collect()
                    frame = pl.concat(
                        [old, frame.select(widened(frame.schema, union))], how="vertical_relaxed"
                    )
                    mode, partition_by = "overwrite", table.metadata().partition_columns or None
                elif append_files(table, self.root, name, frame, present, commit_properties):  # bounded, #17
                    return
            write_deltalake(
                table if table is not None else self.table_uri(name),  # a held table: no open of its own
                arrow_stream(frame),
                mode=mode,
                partition_by=partition_by,
                configuration=None if exists else table_configuration(name),
                writer_properties=writer_properties(),
                commit_properties=commit_properties,
                schema_mode=("merge" if mode == "append" else "overwrite") if exists else None,
            )

    def append(
        self, name: str, frame: pl.DataFrame, *, batch_id: int, partition_by: list[str] | None = None
    ) -> None:
        """Append `frame` as one commit recording `batch_id` (callers check it before, under the lock)."""
        self.write(name, frame, commit_properties=_batch_commit(batch_id), partition_by=partition_by)

    def overwrite(self, name: str, frame: pl.DataFrame, *, batch_id: int) -> None:
        """Replace the table's rows with `frame` as one commit tagged `batch_id` (no predicate is logged)."""
        self.write(name, frame, commit_properties=_batch_commit(batch_id), mode="overwrite")

    def delete_batches_after(self, name: str, batch_id: int) -> None:
        """Remove the rows of batches that did not complete (their number is above `batch_id`)."""
        self._writable()
        with self.held(name) as table:
            if table is not None:
                table.delete(f"batch_id > {int(batch_id)}", writer_properties=writer_properties())

    def _writable(self) -> None:
        if self._pins is not None:
            raise RuntimeError("a view of the lake (`at`, `snapshot`) is read-only")


def _rows(table: DeltaTable | None, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """`table`'s rows with `schema`'s columns (what a table from an earlier release lacks reads null)."""
    if table is None:
        return pl.LazyFrame(schema=schema)
    rows = pl.scan_delta(table)
    return rows.select(widened(rows.collect_schema(), schema))


def _batch_commit(batch_id: int) -> CommitProperties:
    return CommitProperties(app_transactions=[Transaction(INGEST_APP_ID, batch_id)])

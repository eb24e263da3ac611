"""GDPR erasure in old table versions: the person's rows in data files that only old versions read.

`lakemail sql --as-of`, Polars' `read_delta(version=...)` and DuckDB's `delta_scan(version := ...)` read an
old version from its files for as long as they are there, so an erasure looks in them too, not only in the
current version: the files a full vacuum at retention 0 would delete (delta-rs lists them), still on
storage, less those only a compaction removed (`transforms.erasure.history`). Each is read as Parquet with
the person's filter in this process (no Delta predicate, nothing logged); person columns have no file
statistics, so none is skipped by them. A data file never changes: one read per erasure is enough.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl
import pyarrow.fs as pafs
from deltalake import DeltaTable

from resources.lake import LakeResource
from transforms.erasure.history import files_to_read
from transforms.erasure.match import mentions
from transforms.erasure.person import Person

READ_AT_ONCE = 64  # files read in parallel (each a lazy scan; a big table's history is thousands)


def log_actions(table_uri: str) -> pl.DataFrame:
    """version, add and remove paths (and the remove's dataChange) of every commit still in the table's
    `_delta_log`."""
    path = pl.Struct({"path": pl.String()})
    removed = pl.Struct({"path": pl.String(), "dataChange": pl.Boolean()})
    return (
        pl.scan_ndjson(
            f"{table_uri}/_delta_log/*.json",
            schema={"add": path, "remove": removed},
            include_file_paths="file",
        )
        .select(
            pl.col("file").str.extract(r"(\d+)\.json$").cast(pl.Int64).alias("version"),
            pl.col("add").struct.field("path").alias("add"),
            pl.col("remove").struct.field("path").alias("remove"),
            pl.col("remove").struct.field("dataChange").alias("data_change"),
        )
        .collect()
    )


def old_files(table: DeltaTable) -> list[str]:
    """Data files on storage that the current version does not read (relative paths): what a full vacuum
    at retention 0 would delete, less what delta-rs lists from its log but storage no longer has."""
    listed = table.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False, full=True)
    if not listed:
        return []
    storage, root = pafs.FileSystem.from_uri(table.table_uri)
    found = storage.get_file_info([f"{root.rstrip('/')}/{path}" for path in listed])
    return sorted(path for path, info in zip(listed, found, strict=True) if info.type == pafs.FileType.File)


@dataclass
class OldVersions:
    """The person's rows in the old data files of each table, each file read once (files never change)."""

    person: Person
    rows_in: dict[str, int] = field(default_factory=dict)  # file URI -> the person's rows in it

    def rows(self, lake: LakeResource, name: str) -> int:
        """The person's rows in data files of table `name` that old versions read and the current does
        not (0 for a table never written). Meant for a table whose current version holds none of theirs:
        a compacted file is taken to hold only rows of files read too (`transforms.erasure.history`)."""
        table = lake.table(name)
        if table is None:
            return 0
        present = old_files(table)
        if not present:
            return 0
        uri = lake.table_uri(name)
        files = [f"{uri}/{path}" for path in files_to_read(present, log_actions(uri))]
        self._read([f for f in files if f not in self.rows_in])
        return sum(self.rows_in[f] for f in files)

    def _read(self, files: list[str]) -> None:
        filters: dict[str, pl.Expr] = {}  # one filter per file schema (the person's regexes built once)
        for start in range(0, len(files), READ_AT_ONCE):
            chunk, counts = files[start : start + READ_AT_ONCE], []
            for uri in chunk:
                scan = pl.scan_parquet(uri)
                schema = scan.collect_schema()
                theirs = filters.setdefault(repr(schema), mentions(schema, self.person))
                counts.append(scan.filter(theirs).select(pl.len()))
            for uri, count in zip(chunk, pl.collect_all(counts), strict=True):
                self.rows_in[uri] = int(count.item())

    def check(self, lake: LakeResource, names: Iterable[str]) -> dict[str, int]:
        """Rows of the person in old data files of each table of `names` (the certificate's `history`)."""
        return {name: self.rows(lake, name) for name in names if lake.table(name) is not None}

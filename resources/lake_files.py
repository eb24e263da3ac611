"""An append to a local Delta table in bounded memory (#17): its Parquet files written by pyarrow from
zero-copy slices of the frame, then committed by delta-rs (`create_write_transaction`) as one commit.

delta-rs' own writer pulls its whole input ahead of itself: a 218k-row `events` group (a 243 MB frame) took
+280-320 MB of memory and 1.1-1.3 CPU-seconds there, against +26-35 MB and 0.6 CPU-seconds here (the frame's
strings handed over as Arrow string views, not copied); a 1,000-row append costs no more CPU. What delta-rs
does for the append is kept: the commit (its conflict checks, app transactions and checkpoints) and the
table's configuration, whose stats columns are the only ones stated (`transforms.delta_stats`). What this
writer does not handle exactly as delta-rs would (an object store, a table feature, a schema change, a column
that may not be null, a type outside the plain ones, a null or non-date partition value, many partitions, no
stats columns set) is left to delta-rs: `append_files` then returns False and writes nothing.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable
from deltalake.transaction import AddAction, RemoveAction

from transforms.delta_stats import file_stats, stats_aggregates

ROW_GROUP_ROWS = 65_536
SLICE_ROWS = 4_096  # rows handed to Arrow at a time
MAX_PARTITIONS = 8  # more partition values in one append: delta-rs writes it (each one here is a filter)
STATS_SETTING = "delta.dataSkippingStatsColumns"
PLAIN: tuple[type[pl.DataType], ...] = (pl.String, pl.Boolean, pl.Date, pl.Datetime, pl.Float32, pl.Float64)
PLAIN += (pl.Int8, pl.Int16, pl.Int32, pl.Int64)


STREAM_ROWS = 4_096  # rows to delta-rs at a time (#17: a 143k-row write +0-90 MB peak RSS, +220 in 16k)


def arrow_stream(frame: pl.DataFrame) -> pa.Table | pa.RecordBatchReader:
    """`frame` for delta-rs, a big one as a stream of slices (#17: peak RSS +313 MB, not +534 MB)."""
    if frame.height <= STREAM_ROWS:
        return frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    schema = frame.head(0).to_arrow(compat_level=pl.CompatLevel.oldest()).schema

    def batches() -> Iterator[pa.RecordBatch]:
        for part in frame.iter_slices(STREAM_ROWS):
            yield from part.to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def append_files(
    table: DeltaTable,
    lake: Path | None,
    name: str,
    frame: pl.DataFrame,
    table_schema: Mapping[str, pl.DataType],
    commit_properties: CommitProperties | None,
) -> bool:
    """Append `frame` to `table` (`name` in the folder `lake`, None on an object store; its schema as Polars
    reads it `table_schema`) as one commit; False, with nothing written, when it is delta-rs' to write."""
    if lake is None or frame.is_empty():  # an empty commit is delta-rs' (`record_empty`)
        return False
    root = lake / name
    stats_columns = _stats_columns(table)
    partitions = _partition(table, frame)
    if stats_columns is None or partitions is None or not _plain(table, frame, table_schema):
        return False
    part = partitions[0] if partitions else None
    actions: list[AddAction | RemoveAction] = []
    try:
        for value, rows in _pieces(frame, part):
            actions.append(_write_file(root, rows, part, value, stats_columns))
    except BaseException:
        for action in actions:  # never committed: nothing reads them
            (root / action.path).unlink(missing_ok=True)
        raise
    # Left in place if this raises: the commit may be in the log already (a post-commit hook failing, a
    # checkpoint), and an uncommitted file is only an orphan that vacuum removes.
    table.create_write_transaction(
        actions,
        mode="append",
        schema=table.schema(),
        partition_by=[part] if part else None,
        commit_properties=commit_properties,
    )
    return True


def _stats_columns(table: DeltaTable) -> list[str] | None:
    setting = table.metadata().configuration.get(STATS_SETTING)
    return [c for c in setting.split(",") if c] if setting else None


def _partition(table: DeltaTable, frame: pl.DataFrame) -> list[str] | None:
    """The table's partition columns, or None when this writer cannot place the rows: more than one column,
    not a date, a null value or too many values."""
    columns = [str(c) for c in table.metadata().partition_columns]
    if not columns:
        return columns
    if len(columns) > 1 or frame.schema.get(columns[0]) != pl.Date:
        return None
    values = frame.get_column(columns[0])
    return None if values.null_count() or values.n_unique() > MAX_PARTITIONS else columns


def _plain(table: DeltaTable, frame: pl.DataFrame, table_schema: Mapping[str, pl.DataType]) -> bool:
    """The table takes `frame` as it is: no writer feature, the same columns in the same order, each nullable
    and of a plain type."""
    protocol = table.protocol()
    if protocol.min_writer_version > 2 or protocol.writer_features:
        return False
    if list(table_schema.items()) != list(frame.schema.items()):
        return False
    arrow = pa.schema(table.schema().to_arrow())
    if not all(field.nullable for field in arrow):
        return False
    types = frame.schema.values()
    return all(isinstance(t, PLAIN) for t in types) and all(
        t.time_unit == "us" and t.time_zone == "UTC" for t in types if isinstance(t, pl.Datetime)
    )


def _pieces(frame: pl.DataFrame, part: str | None) -> Iterator[tuple[Any, pl.DataFrame]]:
    """The rows of each partition value (the frame itself when all share one), without that column."""
    if part is None:
        yield None, frame
        return
    values = frame.get_column(part).unique().sort()
    if len(values) == 1:
        yield values[0], frame.drop(part)
        return
    for value in values:  # one partition's copy at a time
        yield value, frame.filter(pl.col(part) == value).drop(part)


def _write_file(root: Path, rows: pl.DataFrame, part: str | None, value: Any, stats: list[str]) -> AddAction:
    name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    relative = f"{part}={value.isoformat()}/{name}" if part else name
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    arrow_schema = rows.head(0).to_arrow(compat_level=pl.CompatLevel.newest()).schema
    with pq.ParquetWriter(path, arrow_schema, compression="zstd", store_schema=False) as writer:
        held: list[pa.RecordBatch] = []
        for piece in rows.iter_slices(SLICE_ROWS):  # Arrow views of the frame's buffers, not copies
            held += piece.to_arrow(compat_level=pl.CompatLevel.newest()).to_batches()
            if sum(batch.num_rows for batch in held) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(held, arrow_schema), row_group_size=ROW_GROUP_ROWS)
                held = []
        if held:
            writer.write_table(pa.Table.from_batches(held, arrow_schema), row_group_size=ROW_GROUP_ROWS)
    columns = [c for c in stats if c in rows.columns]
    aggregates = rows.select(stats_aggregates(rows.schema, columns)).row(0, named=True)
    size = os.stat(path).st_size
    partition = {part: value.isoformat()} if part else {}
    modified = int(time.time() * 1000)
    return AddAction(relative, size, partition, modified, True, file_stats(aggregates, columns, rows.height))

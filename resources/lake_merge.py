"""The lake's MERGE on a key (`LakeResource.upsert`), and the two cheaper forms the outbox uses (#17).

A Delta MERGE joins the source with every file of the target: on `sends`, a table of many small files
(one or two a decide run until the hourly compaction), 0.2-0.7 s a MERGE of five rows on the 2-core
machine, twice a decide run, on the way of every email. So:

- `insert_only`: the keys the table already holds are looked up with a scan of the key column (the held
  table, no join: about 13 ms on 110 files) and only the others appended, as one commit with the tags. A
  MERGE that inserts when not matched does exactly this, under the same writer lock. That scan read every
  file of the table, O(every email ever sent) a decide run; with `held_since` (a column and the least
  value a held row of the frame's keys can have in it, the caller's argument: the outbox's in
  `stores.sends.enqueue`) Delta skips the files whose statistics are below it (rows with a null there are
  read). Without that value (None) every file is read.
- `since`: a column every row keeps from its insert on (the outbox's `created_at`), so that each row of
  the source matches target rows whose value is its own: the MERGE's predicate is bounded by the source's
  least value, and Delta skips the files whose statistics are below it (11 of 110 files read, measured).
  Only when that column of the source has no null: otherwise the MERGE reads every file.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from deltalake import CommitProperties, DeltaTable, write_deltalake

from resources.lake_config import writer_properties

HeldSince = tuple[str, datetime | None]  # insert_only: a column, and the least value a held row has in it


def merge(
    table: DeltaTable,
    frame: pl.DataFrame,
    *,
    key: str,
    commit: CommitProperties,
    insert_only: bool = False,
    whole: bool = False,
    since: str | None = None,
    held_since: HeldSince | None = None,
) -> None:
    """One commit: `frame`'s rows MERGEd into `table` on `key` (see `LakeResource.upsert`)."""
    if insert_only and not whole:
        fresh = frame.filter(~pl.col(key).is_in(held_keys(table, frame, key, held_since).implode()))
        write_deltalake(
            table,
            fresh.to_arrow(compat_level=pl.CompatLevel.oldest()),
            mode="append",
            writer_properties=writer_properties(),
            commit_properties=commit,
            schema_mode="merge",  # a column from a later release is added, not dropped
        )
        return
    merger = table.merge(
        frame.to_arrow(compat_level=pl.CompatLevel.oldest()),
        predicate=f"t.{key} = s.{key}" + (bound(frame, since) if since else ""),
        source_alias="s",
        target_alias="t",
        merge_schema=True,  # a column from a later release is added, not dropped
        writer_properties=writer_properties(),
        commit_properties=commit,
    )
    if whole:  # a row as it is is not updated, so a file of such rows is not rewritten
        differs = " OR ".join(f"(t.{c} IS DISTINCT FROM s.{c})" for c in frame.columns if c != key)
        merger = merger.when_matched_update_all(predicate=differs or None)
        merger = merger.when_not_matched_by_source_delete()
    elif not insert_only:
        merger = merger.when_matched_update_all()
    merger.when_not_matched_insert_all().execute()


def held_keys(table: DeltaTable, frame: pl.DataFrame, key: str, since: HeldSince | None = None) -> pl.Series:
    """The values of `frame[key]` that `table` holds already (one scan of its key column). With `since`
    (column, least value), only the rows at or after that value, or null in it: Delta skips the files whose
    statistics say they hold none, so the caller must know no held row of these keys lies below it. A
    value of None (not known): every row."""
    held = pl.col(key).is_in(frame[key].unique().implode())
    if since is not None and since[1] is not None:
        column, least = pl.col(since[0]), since[1] if since[1].tzinfo else since[1].replace(tzinfo=UTC)
        held = held & ((column >= least) | column.is_null())
    return pl.scan_delta(table).filter(held).select(key).collect()[key]


def bound(frame: pl.DataFrame, since: str) -> str:
    """` AND t.<since> >= <least value of frame[since]>` (timestamps, as UTC), or "" when a value is null
    or the frame is empty (no bound: every file is read)."""
    values = frame[since]
    least = values.min()
    if values.null_count() or not isinstance(least, datetime):
        return ""
    at = least if least.tzinfo is not None else least.replace(tzinfo=UTC)
    return f" AND t.{since} >= '{at.astimezone(UTC).isoformat()}'"

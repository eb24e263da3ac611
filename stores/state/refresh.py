"""The profiles refresh, off the micro-batch's hot path: the lake's profile record kept complete and
compact, and the `profiles` Delta table rewritten for the lake's other readers (DuckDB, Spark, Polars).

- `take_updates`: partials of committed batches that `profile_updates` lacks (a crash right after a
  batch's commit) are appended, in one commit under the writer lock.
- `fold`: when enough partials wait, `profile_state` is rewritten as the merge of every partial up to
  a batch (stores.state.profiles.profile_buckets, a hash bucket of shoppers at a time, streamed into one
  commit) and the folded updates are deleted, a short commit under the ingest lock.
- `write_profiles`: `profiles` is rewritten from the state store (its `profiles` and `customers`
  namespaces, a key range at a time, streamed into one commit), tagged PROFILES_APP with the batch it
  reflects (and ERASURES_APP); every row's `as_of` says when. The store, not the lake, because it holds
  the merged state of the last batch: a pass is a sequential read, where the lake would merge every
  partial again.

Both hold the lake's profiles lock from what they read to their commit, so an erasure (which takes every
lock) never lands in between to be undone, and two folds never overlap; neither lane waits for it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import CommitProperties, Transaction, write_deltalake

from resources.lake import LakeResource
from resources.lake_config import table_configuration, writer_properties
from resources.state import StateStore
from stores.profiles import append_updates, folded_batch, waiting_updates
from stores.state.profiles import profile_buckets
from stores.state.rebuild import SOURCE_TABLES
from stores.state.view import with_retries
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.schema import FOLD_APP, FOLD_EVERY_ROWS, PROFILES_SCHEMA

PROFILES_APP = "lakemail-profiles-batch"  # the `profiles` table: the batch its rows reflect
ERASURES_APP = "lakemail-profiles-erasures"  # ... and the erasures before it (`erasures_seen`)


def _arrow_schema(schema: dict[str, pl.DataType]) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow(compat_level=pl.CompatLevel.oldest()).schema


def _stream(
    lake: LakeResource,
    name: str,
    schema: dict[str, pl.DataType],
    frames: Iterator[pl.DataFrame],
    tags: dict[str, int],
) -> int:
    """Overwrite table `name` with `frames` as one commit recording `tags`, streamed (bounded memory)."""
    arrow = _arrow_schema(schema)
    written = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal written
        for frame in frames:
            written += frame.height
            table = frame.select(list(schema)).to_arrow(compat_level=pl.CompatLevel.oldest()).cast(arrow)
            yield from table.to_batches()

    exists = lake.table(name) is not None
    write_deltalake(
        lake.table_uri(name),
        pa.RecordBatchReader.from_batches(arrow, batches()),
        mode="overwrite",
        schema_mode="overwrite" if exists else None,
        configuration=None if exists else table_configuration(name),
        writer_properties=writer_properties(),
        commit_properties=CommitProperties(app_transactions=[Transaction(a, v) for a, v in tags.items()]),
    )
    return written


def take_updates(lake: LakeResource) -> int:
    """Append the partials of committed batches `profile_updates` has not taken (under the writer lock)."""
    with lake.ingest_lock():  # the ingest lane's tables only (#15): a delivery goes on meanwhile
        return append_updates(lake, lake.committed_batch())


def fold(lake: LakeResource, *, every: int = FOLD_EVERY_ROWS) -> int | None:
    """Fold every partial into `profile_state` once `every` wait; the batch folded up to, or None."""
    if waiting_updates(lake) < every:
        return None
    # From the snapshot to the commit: an erasure (or another fold) waits rather than be undone by this
    # one; the micro-batches of either lane do not.
    with lake.profiles_lock():
        seen = lake.snapshot(SOURCE_TABLES)
        upto = seen.committed_batch()
        if upto <= folded_batch(seen):
            return None
        with tempfile.TemporaryDirectory(prefix="lakemail-fold-") as folder:
            # Buckets go to Parquet first: delta-rs cannot read the lake from inside its own write.
            for n, state in enumerate(profile_buckets(seen)):
                canonical(state).sort("principal").write_parquet(Path(folder) / f"{n:06d}.parquet")
            if folded_batch(lake) >= upto:  # a newer fold committed (a lake without locks): never go back
                return None
            parts = sorted(Path(folder).glob("*.parquet"))
            states = (pl.read_parquet(part) for part in parts)
            _stream(lake, "profile_state", PARTIAL_SCHEMA, states, {FOLD_APP: upto})
        with lake.ingest_lock():  # the ingest lane's (#15), briefly; folded partials go at the next vacuum
            table = lake.table("profile_updates")
            if table is not None:
                table.delete(f"batch_id <= {int(upto)}", writer_properties=writer_properties())
    return upto


def erasures_seen(lake: LakeResource) -> int:
    """What `profiles` records of the erasures before it (the `erasures` table's version + 1; 0: none)."""
    version = lake.version("erasures")
    return 0 if version is None else version + 1


def write_profiles(lake: LakeResource, store: StateStore, as_of: datetime) -> tuple[int, int]:
    """Rewrite `profiles` from the store as of its last batch; (that batch, rows written)."""
    with lake.profiles_lock():  # from the store's read to the commit: an erasure waits, not undone
        erased = erasures_seen(lake)  # before the store's read: an erasure after it brings a rewrite
        batch, chunks = with_retries(store, as_of)
        tagged = lake.app_version("profiles", PROFILES_APP), lake.app_version("profiles", ERASURES_APP)
        if tagged == (batch, erased) and lake.table("profiles") is not None:
            return batch, -1  # no batch committed and nobody erased since the last refresh
        tags = {PROFILES_APP: batch, ERASURES_APP: erased}
        return batch, _stream(lake, "profiles", PROFILES_SCHEMA, chunks, tags)

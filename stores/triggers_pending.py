"""The trigger engine's pending candidates: `trigger_state`, a checkpoint of them, and the log after it (#17).

Each engine run appends its rows to `triggers` tagged with its number (RUN_APP), the last ingest batch it
saw (BATCH_APP) and the rows every run has logged so far (LOGGED_APP). `trigger_state` holds the pending
set as of the run its own RUN_APP names; the pending set as of the last run is that checkpoint with the
rows of the later runs applied (`pending_rows`; they are found by file skipping on `evaluation`, as
runs append in order). Every run rewrote `trigger_state` whole: O(all pending) a run (3M: 8 s a run).

A run rewrites it once the rows logged since the checkpoint exceed max(CHECKPOINT_MIN_ROWS, a
CHECKPOINT_SHARE-th of the pending set) (`checkpoint_due`): a checkpoint of P rows follows at least P/4
logged rows, so checkpoints cost at most 4 rows written per row logged (amortised O(what a run logs)),
and a reader of the pending set reads at most a quarter more rows than it holds, or 10,000 (a few ms). A
crash after the run's `triggers` commit loses nothing: the log holds the run, the checkpoint lags. The
run writes it from the store (`stores.decide.engine`: 200k candidates ~1 s, whatever the number of small
files the log's rows since sit in); an erasure from the lake (`checkpoint`).

Runs before this recorded BATCH_APP on `trigger_state` only, which each of them rewrote: such a lake's
checkpoint is complete as of its RUN_APP, and its last batch is read from there (`considered_batch`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

import polars as pl

from resources.lake import LakeResource
from resources.state import StateReader, StateResource
from transforms.schema import BATCH_APP, LOGGED_APP, PENDING_DECISIONS, RUN_APP, TRIGGERS_SCHEMA
from transforms.state_keys import SEPARATOR

CHECKPOINT_MIN_ROWS = 10_000
CHECKPOINT_SHARE = 4
DUE_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # a `pending_due` key's time (`transforms.state_keys.due_key`)


def apply(pending: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """The pending set after `rows`: the latest row per trigger_id, terminal ones dropped."""
    latest = (
        pl.concat([pending.with_columns(pl.lit(0).alias("_o")), rows.with_columns(pl.lit(1).alias("_o"))])
        .sort("_o", "evaluation", maintain_order=True)
        .unique("trigger_id", keep="last", maintain_order=True)
        .drop("_o")
    )
    return latest.filter(pl.col("decision").is_in(PENDING_DECISIONS)).sort("trigger_id")


def pending_rows(lake: LakeResource, trigger_ids: Collection[str] | None = None) -> pl.DataFrame:
    """The pending candidates as of the last engine run `lake` (or a view of it) holds; only those of
    `trigger_ids` when given (an erasure's). The checkpoint's run is read before its rows, and they before
    the log's: a reader holding no lock may meet a newer checkpoint than the run it read, and applying
    again the rows such a checkpoint already holds changes nothing (every later row is applied too)."""
    since = lake.app_version("trigger_state", RUN_APP)
    ids = None if trigger_ids is None else pl.Series(list(trigger_ids), dtype=pl.String)

    def picked(rows: pl.LazyFrame) -> pl.LazyFrame:
        return rows if ids is None else rows.filter(pl.col("trigger_id").is_in(ids.implode()))

    def later(rows: pl.LazyFrame) -> pl.LazyFrame:
        return picked(rows.filter(pl.col("evaluation") > since))

    checkpoint = lake.collect("trigger_state", TRIGGERS_SCHEMA, picked)
    return apply(checkpoint, lake.collect("triggers", TRIGGERS_SCHEMA, later))


def first_due(reader: StateReader) -> datetime | None:
    """The earliest due time of the store's pending candidates: the first key of its due index."""
    for key, _ in reader.scan("pending_due", limit=1):
        return datetime.strptime(key.split(SEPARATOR, 1)[0], DUE_FORMAT).replace(tzinfo=UTC)
    return None


def next_due(lake: LakeResource, state: StateResource | None = None) -> datetime | None:
    """The earliest due time among pending candidates (the decide lane wakes a run for it): the store's
    due index when there is a store (one key), else the lake's pending set. A store behind the lake's last
    run (it died before its store commit) does not hold a run back: that run's sends wait for the outbox,
    so the lane runs anyway, and the run catches the store up."""
    store = state.existing() if state is not None else None
    if store is not None:
        with store.reader() as reader:
            return first_due(reader)
    due = pending_rows(lake)["due_at"].min()
    return due if isinstance(due, datetime) else None


def considered_batch(lake: LakeResource) -> int:
    """The last ingest batch an engine run saw: the BATCH_APP of its `triggers` commit. A lake whose runs
    recorded it on `trigger_state` only answers from there (when its last run died before rewriting
    `trigger_state`, the batches that run saw are seen again: the next run proposes what it proposed,
    and its decided triggers stay decided)."""
    with lake.held("triggers") as table:
        if table is None:
            return 0
        batch = table.transaction_version(BATCH_APP)
    return batch if batch is not None else lake.app_version("trigger_state", BATCH_APP)


def checkpoint_due(since: int, pending: int) -> bool:
    """Whether an engine run rewrites `trigger_state`: `since` rows were logged after it, more than
    CHECKPOINT_MIN_ROWS and than a CHECKPOINT_SHARE-th of the `pending` candidates."""
    return since > max(CHECKPOINT_MIN_ROWS, pending // CHECKPOINT_SHARE)


def write_checkpoint(lake: LakeResource, pending: pl.DataFrame, *, run: int, batch: int, logged: int) -> None:
    """`trigger_state` rewritten as `pending`, the pending set as of engine run `run`."""
    tags = {RUN_APP: run, BATCH_APP: batch, LOGGED_APP: logged}
    lake.write_tagged("trigger_state", pending.select(list(TRIGGERS_SCHEMA)), tags, mode="overwrite")


def checkpoint(lake: LakeResource) -> bool:
    """Rewrite `trigger_state` from the lake when it lags the last engine run; whether it did. An erasure
    does, before it deletes a person's rows: it deletes every row of a trigger id it finds in `triggers`,
    and a checkpoint's older row of that id (one that named nobody: its shopper was anonymous then) would
    otherwise come back as pending; from a complete checkpoint it goes, as from the table every run
    rewrote."""
    with lake.held("triggers") as table:
        if table is None:
            return False
        run, logged = table.transaction_version(RUN_APP) or 0, table.transaction_version(LOGGED_APP) or 0
    if lake.version("trigger_state") is not None and lake.app_version("trigger_state", RUN_APP) >= run:
        return False
    write_checkpoint(lake, pending_rows(lake), run=run, batch=considered_batch(lake), logged=logged)
    return True

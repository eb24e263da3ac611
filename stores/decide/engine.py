"""The trigger engine run: decide from the state store, log to Delta, then commit to the store.

1. Finish a run that crashed between its two Delta commits (`stores.triggers.recover`) and bring the
   store level with the lake (`stores.decide.sync.ready`).
2. Read the world (`stores.decide.world.store_world`) from one store snapshot over the batches no run
   has considered yet, and decide (`transforms.triggers.decide.evaluate`). Until the ingest lane has
   committed the lake's last batch to the store, the run reads the lake instead (`decide`).
3. Delta first (the record): the rows appended to `triggers`, the pending candidates to `trigger_state`.
4. Then the store: the run's changes (`transforms.triggers.store_changes`), stamped with its number.
   A crash between 3 and 4 is caught up from the log at the next run's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from resources.lake import LakeResource
from resources.state import StateReader, StateResource
from stores.decide.sync import commit_run, ready
from stores.decide.world import before, store_world
from stores.triggers import ENGINE_TABLES, EngineReport, apply, engine_world, pending_rows, recover
from transforms.schema import BATCH_APP, READ_APP, RUN_APP, TRIGGERS_SCHEMA
from transforms.state import StateChanges, decode
from transforms.triggers.decide import World, evaluate
from transforms.triggers.policies import Policy
from transforms.triggers.store_changes import run_changes


@dataclass
class Decided:
    """What an engine run decided, before anything is written."""

    seen: LakeResource  # the snapshot it read
    world: World
    rows: pl.DataFrame  # the `triggers` rows
    pending: pl.DataFrame  # `trigger_state` after them
    changes: StateChanges  # the store's


def decide(
    lake: LakeResource,
    state: StateResource,
    *,
    now: datetime,
    secret: str,
    delays: dict[str, timedelta] | None = None,
    policy: Policy | None = None,
) -> Decided:
    """Read and decide (no write): the next engine run at `now` over `lake` and the store.

    A store whose ingest lane has not reached the lake's last batch yet is not decided from: the run
    reads the lake as before the store (`stores.triggers.engine_world`) and still keeps the decision
    lane's namespaces current."""
    seen = lake.snapshot(ENGINE_TABLES)
    last_batch = seen.app_version("trigger_state", BATCH_APP)
    evaluation = seen.app_version("triggers", RUN_APP) + 1
    with state.reader() as reader:
        if reader.stamps()["ingest"] < seen.committed_batch():
            world = engine_world(
                seen, now=now, secret=secret, delays=delays, policy=policy, evaluation=evaluation
            )
            rows = evaluate(world)
            pending = apply(pending_rows(seen), rows)
        else:
            world = store_world(
                seen,
                reader,
                now=now,
                secret=secret,
                evaluation=evaluation,
                last_batch=last_batch,
                horizon=max(seen.committed_batch(), last_batch),
                delays=delays,
                policy=policy,
            )
            rows = evaluate(world)
            pending = _pending_after(reader, rows)
        return Decided(seen, world, rows, pending, run_changes(rows, before(reader, rows), now))


def run_engine(
    lake: LakeResource,
    state: StateResource,
    *,
    now: datetime,
    secret: str,
    delays: dict[str, timedelta] | None = None,
    policy: Policy | None = None,
) -> EngineReport:
    """Decide every candidate touched by new batches or due by `now`; log the rows, then store them.

    The run records the versions of ENGINE_TABLES on its `triggers` commit (`lakemail replay`).
    """
    recover(lake)
    ready(lake, state)
    run = decide(lake, state, now=now, secret=secret, delays=delays, policy=policy)
    evaluation, pending = run.world.evaluation, run.pending
    read = {READ_APP + name: version for name, version in run.seen.pinned.items() if version is not None}
    lake.write_tagged("triggers", run.rows, {RUN_APP: evaluation, **read})
    tags = {RUN_APP: evaluation, BATCH_APP: run.world.batch_id}
    lake.write_tagged("trigger_state", pending, tags, mode="overwrite")
    commit_run(state, evaluation, run.changes)
    due_next = pending["due_at"].min()
    return EngineReport(
        evaluation,
        run.world.batch_id,
        run.rows,
        pending.height,
        due_next if isinstance(due_next, datetime) else None,
    )


def _pending_after(reader: StateReader, rows: pl.DataFrame) -> pl.DataFrame:
    """`trigger_state` after `rows`: every pending candidate of the store, updated by the run's rows (the
    one read of the run that follows the pending set, not the batch: `trigger_state` is rewritten whole)."""
    values = [value for _, value in reader.scan("pending_triggers")]
    held = decode(values, TRIGGERS_SCHEMA) if values else pl.DataFrame(schema=TRIGGERS_SCHEMA)
    return apply(held, rows)

"""The trigger engine run: decide from the state store, log to Delta, then commit to the store.

1. Bring the store level with the lake (`stores.decide.sync.ready`: a run that died after its `triggers`
   commit is caught up from the log).
2. Read the world (`stores.decide.world.store_world`) from one store snapshot over the batches no run
   has considered yet and the store holds (a batch in Delta but not yet in the store waits for the next
   run), and decide (`transforms.triggers.decide.evaluate`).
3. Delta first (the record): the rows appended to `triggers`, tagged with the run's number, the last
   batch it saw and the rows logged so far.
4. Then the store: the run's changes (`transforms.triggers.store_changes`), and the deletes of the stale
   viewers it read (`store_world`), stamped with its number. A crash between 3 and 4 is caught up from
   the log at the next run's start (the stale viewers then wait for the product's next change; `state
   check` tolerates them).
5. Once the rows logged since `trigger_state` was last written are many (`checkpoint_due`), it is
   rewritten from the store's pending candidates: a checkpoint (`stores.triggers_pending`), not the
   pending set every run rewrote whole (#17). The run's pending count and next due time are the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from resources.lake import LakeResource
from resources.lake_held import held_snapshot
from resources.state import StateResource
from stores.decide.sync import commit_run, ready
from stores.decide.world import before, store_world
from stores.triggers import ENGINE_TABLES, EngineReport, engine_world
from stores.triggers_pending import checkpoint_due, considered_batch, first_due, write_checkpoint
from transforms.schema import BATCH_APP, LOGGED_APP, READ_APP, RUN_APP, TRIGGERS_SCHEMA
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

    The run decides the batches the store holds (#15): its read transaction is opened before the lake's
    snapshot is pinned, so every batch up to the store's ingest stamp is in the snapshot (each batch
    commits to Delta first), while a batch the ingest lane has committed to Delta but not yet to the
    store waits for the next run (it is never decided from half-written state). Only a store behind the
    batches the engine has already considered (restored from an older copy; the ingest lane's catch-up
    levels it) is not decided from: the run reads the lake (`stores.triggers.engine_world`)."""
    # The snapshot's tables held open between runs (#17); the run keeps their versions (`at`), not them.
    with state.reader() as reader, held_snapshot(lake, ENGINE_TABLES) as seen:
        stored = reader.stamps()["ingest"]
        last_batch = considered_batch(seen)
        evaluation = seen.app_version("triggers", RUN_APP) + 1
        pruned = StateChanges()  # the stale viewers the store's world read (`store_world`)
        if stored < last_batch:
            world = engine_world(
                seen, now=now, secret=secret, delays=delays, policy=policy, evaluation=evaluation
            )
        else:
            world, pruned = store_world(
                seen,
                reader,
                now=now,
                secret=secret,
                evaluation=evaluation,
                last_batch=last_batch,
                horizon=min(stored, seen.committed_batch()),
                delays=delays,
                policy=policy,
            )
        rows = evaluate(world)
        changes = run_changes(rows, before(reader, rows), now)
        changes.update(pruned)
        return Decided(lake.at(seen.pinned), world, rows, changes)


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
    ready(lake, state)
    run = decide(lake, state, now=now, secret=secret, delays=delays, policy=policy)
    seen, evaluation, batch = run.seen, run.world.evaluation, run.world.batch_id
    logged = seen.app_version("triggers", LOGGED_APP) + run.rows.height
    read = {READ_APP + name: version for name, version in seen.pinned.items() if version is not None}
    tags = {RUN_APP: evaluation, BATCH_APP: batch, LOGGED_APP: logged}
    lake.write_tagged("triggers", run.rows, {**tags, **read})
    commit_run(state, evaluation, run.changes)
    store = state.store()
    with store.reader() as reader:
        due_next = first_due(reader)
    pending = store.counts()["pending_triggers"]
    since = logged - seen.app_version("trigger_state", LOGGED_APP)
    rewrite = seen.version("trigger_state") is None or checkpoint_due(since, pending)
    if rewrite:  # from the store, as the run left it (a decode of every pending value: only now and then)
        write_checkpoint(lake, _stored_pending(state), run=evaluation, batch=batch, logged=logged)
    return EngineReport(evaluation, batch, run.rows, pending, due_next, checkpoint=rewrite)


def _stored_pending(state: StateResource) -> pl.DataFrame:
    """Every pending candidate of the store (one scan of `pending_triggers`)."""
    with state.reader() as reader:
        values = [value for _, value in reader.scan("pending_triggers")]
    held = decode(values, TRIGGERS_SCHEMA) if values else pl.DataFrame(schema=TRIGGERS_SCHEMA)
    return held.sort("trigger_id")

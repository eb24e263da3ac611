"""The decision lane's side of the state store: its commit after each engine run, and bringing the store
level with the lake before one (Delta is the system of record; the store is derived from it).

- No store (a first start, a deleted folder), or one whose keys an earlier release wrote (its KEY_FORMAT
  stamp): rebuilt from the lake.
- A store ahead of the lake (a stamp past the lake's last batch or engine run: a restored lake, a
  foreign store): rebuilt, never trusted.
- The `triggers` stamp behind the lake's last engine run (a run crashed after its Delta commits and
  before its store commit, or the store is an older copy): the logged rows of each missing run are
  applied from the `triggers` log, run by run (one batch-sized read each); far behind: rebuilt.
- The `ingest` stamp behind the lake's last batch: the ingest lane keeps its namespaces current batch
  by batch; an engine run decides the batches the store holds (`stores.decide.engine.decide`).
  `refresh_ingest` makes them equal to the lake (the ingest lane's stand-in in tests and benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from resources.lake import LakeResource
from resources.state import StateResource
from stores.decide.world import before
from stores.state.namespaces import READERS
from stores.state.rebuild import SOURCE_TABLES, rebuild
from transforms.schema import RUN_APP, TRIGGERS_SCHEMA
from transforms.state import NAMESPACES, StateChanges
from transforms.state_keys import KEY_FORMAT, store_key
from transforms.triggers.store_changes import run_changes

# The namespaces the decision lane commits; the ingest lane commits the others (the decision lane only
# deletes stale `product_viewers`, each if it still holds what the run read: `stores.decide.world`).
DECISION_NAMESPACES = (
    "pending_triggers",
    "pending_due",
    "pending_principals",
    "decided_triggers",
    "recent_sends",
)
INGEST_NAMESPACES = tuple(n for n in NAMESPACES if n not in DECISION_NAMESPACES)
OLD_KEYS = "keys written by an earlier release"
MAX_CATCH_UP = 50  # more missing engine runs than this: a rebuild is cheaper than replaying them


@dataclass
class Readiness:
    rebuilt: str | None = None  # why the store was rebuilt (None: it was not)
    caught_up: int = 0  # engine runs applied from the log


def commit_run(state: StateResource, evaluation: int, changes: StateChanges) -> None:
    """The engine run's store changes, stamped with its number on the `triggers` lane."""
    state.commit(evaluation, changes, lane="triggers")


def ready(lake: LakeResource, state: StateResource) -> Readiness:
    """Make the store level with `lake` for the decision lane (before an engine run decides)."""
    store = state.existing() if state.exists() else None  # a folder deleted under an open store: gone
    if store is None:
        rebuild(lake, state)
        return Readiness(rebuilt="no store")
    stamps = store.stamps()
    batch, run = lake.committed_batch(), lake.app_version("triggers", RUN_APP)
    reason = None
    if store.key_format() != KEY_FORMAT:
        reason = OLD_KEYS
    elif stamps["ingest"] > batch or stamps["triggers"] > run:
        reason = "store ahead of the lake"
    elif run - stamps["triggers"] > MAX_CATCH_UP:
        reason = "decision lane far behind the lake"
    if reason is not None:
        if not rebuild(lake, state, for_key_format=reason == OLD_KEYS):  # the other lane rebuilt it meanwhile
            return ready(lake, state)
        return Readiness(rebuilt=reason)
    for evaluation in range(stamps["triggers"] + 1, run + 1):
        catch_up(lake, state, evaluation)
    return Readiness(caught_up=run - stamps["triggers"])


def refresh_ingest(lake: LakeResource, state: StateResource) -> None:
    """The ingest lane's namespaces made equal to the lake's, the decision lane's left as they are.

    The ingest lane keeps them current batch by batch; until it has committed a batch, this stands in
    (it reads what a rebuild reads: the whole lake, off the hot path once that lane is in place)."""
    seen = lake.snapshot(SOURCE_TABLES)
    store = state.store()
    changes = StateChanges()
    for namespace in INGEST_NAMESPACES:
        present: set[str] = set()
        for chunk in READERS[namespace](seen):
            for key, value in chunk.select("key", "value").iter_rows():
                changes.put(namespace, key, value.encode())
                present.add(store_key(key))
        for key, _ in store.scan(namespace):
            if key not in present:
                changes.delete_stored(namespace, key)
    store.commit(seen.committed_batch(), changes, lane="ingest")


def logged_rows(lake: LakeResource, evaluation: int) -> pl.DataFrame:
    """The `triggers` rows engine run `evaluation` logged (file skipping on `evaluation`)."""
    log = lake.scan("triggers", TRIGGERS_SCHEMA).filter(pl.col("evaluation") == evaluation)
    return log.select(list(TRIGGERS_SCHEMA)).collect()


def catch_up(lake: LakeResource, state: StateResource, evaluation: int) -> None:
    """Apply engine run `evaluation`'s logged rows to the store, as that run would have."""
    rows = logged_rows(lake, evaluation)
    changes = StateChanges()
    if rows.height:
        with state.reader() as reader:
            seen = before(reader, rows)
        now = rows["decided_at"].max()
        assert isinstance(now, datetime)
        changes = run_changes(rows, seen, now)
    commit_run(state, evaluation, changes)

"""Catch-up and trust: the state store made current with the lake at the start of every ingest run.

Called under the lake's writer lock, so no batch commits meanwhile. The lake is the system of record:
- no store (first start, the folder deleted) -> rebuild from the lake;
- a store whose keys an earlier release wrote (its KEY_FORMAT stamp, `transforms.state_keys`) -> rebuild: an
  upgraded home rebuilds itself rather than misread them;
- a store stamp newer than the lake (a lake restored from a backup, a store copied from elsewhere) ->
  rebuild: a store ahead of the lake is never trusted;
- the ingest stamp behind the lake (a crash after a batch's Delta commits and before its store commit,
  a store restored from an older copy) -> the missing batches are applied from the lake, batch by batch
  (its ingest_log rows, its events by batch_id, their identity edges and suppressions, its customers
  and catalog rows), or the store is rebuilt when more than MAX_CATCH_UP batches are missing, a
  shopper changed hands in one of them (only the lake as of that batch could say how) or the lake as of
  that batch is gone (its `customers` / `catalog` version vacuumed by an erasure or by maintenance);
- the store differs from the lake where a batch that did not complete wrote (`distrust`, the ingest's
  `stores.identities.RolledBack`: a store rebuilt while `identities` held its edges, or edges kept)
  -> rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from resources.lake import LakeResource
from resources.state import StateResource, StateStore
from resources.vacuumed import VACUUMED
from stores.reference import REFERENCE_FOLDERS
from stores.state.batch import BatchRows, batch_changes
from stores.state.live_profiles import NeedsLake
from stores.state.rebuild import lake_stamps, rebuild
from stores.suppressions import SUPPRESSING, UNSUBSCRIBED
from transforms.ingest.events import identity_edges
from transforms.schema import (
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    INGEST_APP_ID,
    INGEST_LOG_SCHEMA,
    SUPPRESSIONS_SCHEMA,
)
from transforms.state_keys import KEY_FORMAT

log = logging.getLogger(__name__)
MAX_CATCH_UP = 100  # missing batches applied one by one; more than this: a rebuild (bounded, chunked)
SCHEMAS = {"customers": CUSTOMERS_SCHEMA, "catalog": CATALOG_SCHEMA}


@dataclass
class Readiness:
    """The store, current with the lake, and what it took: "current", "caught up N" or "rebuilt: why"."""

    store: StateStore
    action: str


def ready(
    lake: LakeResource, state: StateResource, distrust: Callable[[StateStore], str | None] | None = None
) -> Readiness:
    """Make the store current with `lake` (call under the lake's writer lock) and return it; `distrust`
    says why a current store still differs from the lake (it is rebuilt then)."""
    readiness = _current(lake, state)
    why = distrust(readiness.store) if distrust is not None else None
    return readiness if why is None else _rebuilt(lake, state, why)


def _current(lake: LakeResource, state: StateResource) -> Readiness:
    store = state.existing()
    if store is None:
        return _rebuilt(lake, state, "no state store")
    if (written := store.key_format()) != KEY_FORMAT:
        why = f"its keys are written as release format {written}, not {KEY_FORMAT}"
        log.warning("rebuilding the state store from the lake: %s", why)
        if not rebuild(lake, state, for_key_format=True):  # the other lane rebuilt it meanwhile
            return _current(lake, state)
        return Readiness(state.store(), f"rebuilt: {why}")
    mine = store.stamps()  # before the lake's: a lane committing meanwhile only moves the lake ahead
    theirs = lake_stamps(lake)
    ahead = [lane for lane, n in mine.items() if n > theirs.get(lane, 0)]
    if ahead:
        return _rebuilt(lake, state, f"the store is ahead of the lake ({', '.join(ahead)})")
    behind = theirs["ingest"] - mine["ingest"]
    if behind == 0:
        return Readiness(store, "current")
    if behind > MAX_CATCH_UP:
        return _rebuilt(lake, state, f"{behind} batches behind the lake")
    try:
        for batch_id in range(mine["ingest"] + 1, theirs["ingest"] + 1):
            store.commit(batch_id, batch_changes(store, None, lake_batch(lake, batch_id)), lane="ingest")
    except NeedsLake as why:
        return _rebuilt(lake, state, f"a missing batch needs the lake as it was: {why}")
    log.warning("state store caught up %s batches from the lake", behind)
    return Readiness(store, f"caught up {behind}")


def _rebuilt(lake: LakeResource, state: StateResource, why: str) -> Readiness:
    log.warning("rebuilding the state store from the lake: %s", why)
    rebuild(lake, state)
    return Readiness(state.store(), f"rebuilt: {why}")


def lake_batch(lake: LakeResource, batch_id: int) -> BatchRows:
    """What committed batch `batch_id` wrote, read back from the lake (file skipping on batch_id)."""
    entries = lake.scan("ingest_log", INGEST_LOG_SCHEMA).filter(pl.col("batch_id") == batch_id).collect()
    events = lake.scan("events", EVENTS_SCHEMA).filter(pl.col("batch_id") == batch_id).collect()
    edges = identity_edges(events)
    return BatchRows(
        batch_id, entries, events, edges, _suppressions(lake, events, edges), _reference(lake, entries)
    )


def _suppressions(lake: LakeResource, events: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """The rows a batch of `events` (its identity `edges`) added, among others the table
    holds (keyed by HMAC: without the secret they are not told apart; the store keeps each row once)."""
    held = lake.scan("suppressions", SUPPRESSIONS_SCHEMA)
    suppressing = events.filter(pl.col("event_name").is_in(list(SUPPRESSING)))
    own = pl.col("since").is_in(suppressing["event_ts"].unique().implode())
    if edges.height:  # they may claim an anonymous id that unsubscribed in any earlier batch: every row
        return held.filter((pl.col("reason") == UNSUBSCRIBED) | own).collect()  # (a small table)
    if suppressing.height == 0:
        return pl.DataFrame(schema=SUPPRESSIONS_SCHEMA)
    return held.filter(own).collect()


def _reference(lake: LakeResource, entries: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """customers / catalog as the batch left them, when it took files of theirs (every row: the table)."""
    taken = entries.filter(pl.col("status") == "committed")["source_file"].to_list()
    rows: dict[str, pl.DataFrame] = {}
    for folder, (name, _) in REFERENCE_FOLDERS.items():
        if not any(path.startswith(folder) for path in taken):
            continue
        batch_id = int(entries["batch_id"][0])
        version = lake.commit_of(name, INGEST_APP_ID, batch_id)
        if version is None:
            raise NeedsLake(f"{name} as of batch {batch_id} is no longer in its log")
        try:
            rows[name] = lake.read(name, SCHEMAS[name], version=version)
        except VACUUMED as error:  # an erasure (retention 0) or maintenance removed that version's files
            raise NeedsLake(f"{name} as of batch {batch_id} was vacuumed") from error
    return rows

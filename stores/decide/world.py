"""What an engine run decides from, read from the state store (one snapshot) and batch-sized Delta reads.

From Delta only what the new batches wrote: the principals their events touched and their catalog
changes (file skipping on `batch_id`). Everything else is a keyed lookup or a prefix / range scan of the
store: the shoppers' merged state and identity links, customers, suppressions, the catalog rows of the
products involved, their viewers in the window of a change, the pending candidates of the principals
involved and the due ones, the already-decided trigger ids and each shopper's recent sends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from resources.lake import LakeResource
from resources.state import StateReader
from stores.decide import reads
from stores.triggers import HISTORY, catalog_changes_between, touched_principals
from transforms.principals import user_of
from transforms.profiles.derive import derive
from transforms.profiles.merge import linked_principals, renamed_to
from transforms.state import StateChanges
from transforms.triggers.decide import World, with_decided
from transforms.triggers.policies import Policy
from transforms.triggers.rules.catalog_alerts import in_window, stale_marked
from transforms.triggers.store_changes import Before


def store_world(
    lake: LakeResource,
    reader: StateReader,
    *,
    now: datetime,
    secret: str,
    evaluation: int,
    last_batch: int,
    horizon: int,
    delays: dict[str, timedelta] | None = None,
    policy: Policy | None = None,
) -> tuple[World, StateChanges]:
    """The world of engine run `evaluation` over batches (`last_batch`, `horizon`]; `lake` is its snapshot.
    With it, the store changes of what it read: the stale viewers of the changed products deleted.

    A changed product's viewers are read whole (one range scan), but only those a change wants (the
    rules' window, `catalog_alerts.in_window`) reach the world: the others' state, links, pending
    candidates and sends are not read (#17: a price drop on a product viewed by 500k shoppers over a
    year read them all, for the last month's). Those no later change can want (`stale_marked`: seen
    more than the window before the product's newest change, which this run decides) are deleted, each
    only if the store still holds what was read (`delete_if`: the ingest lane may have put a newer view
    since). So the store keeps a product's viewers of the 30 days before its last decided change and
    those after, whatever its history; a rebuild leaves the stale ones out alike
    (`stores.state.namespaces.viewer_entries`)."""
    changes = catalog_changes_between(lake, last_batch, horizon)
    found = reads.viewer_entries(reader, changes["product_id"])
    viewers = in_window(found, changes).select(list(reads.VIEWER_ROWS))
    pruned = StateChanges()
    for key, value in stale_marked(found, changes).filter(pl.col("stale")).select("key", "value").iter_rows():
        pruned.delete_if("product_viewers", key, value)
    world = world_of(
        lake,
        reader,
        changes,
        viewers,
        now=now,
        secret=secret,
        evaluation=evaluation,
        last_batch=last_batch,
        horizon=horizon,
        delays=delays,
        policy=policy,
    )
    return world, pruned


def world_of(
    lake: LakeResource,
    reader: StateReader,
    changes: pl.DataFrame,
    viewers: pl.DataFrame,
    *,
    now: datetime,
    secret: str,
    evaluation: int,
    last_batch: int,
    horizon: int,
    delays: dict[str, timedelta] | None = None,
    policy: Policy | None = None,
) -> World:
    """`store_world`'s world, its catalog `changes` alerting `viewers` (reads.VIEWER_ROWS): every shopper
    of `viewers` is involved (her state, links, pending candidates, sends are read)."""
    due = reads.due_ids(reader, now)
    due_rows = reads.pending_rows(reader, due)
    touched = touched_principals(lake, last_batch, horizon)
    principals = sorted(set(touched) | set(due_rows["principal"]) | set(viewers["principal"]))
    state, links = reads.profile_state(reader, principals)
    users = [u for u in map(user_of, state["principal"]) if u is not None]
    customers = reads.customers(reader, users, links)
    profiles = derive(state, customers, now)
    involved = set(principals) | set(state["principal"]) | linked_principals(links)
    pending = reads.pending_rows(reader, {*reads.pending_of(reader, involved), *due})
    products = {*changes["product_id"], *pending["anchor"].drop_nulls()}
    world = World(
        now=now,
        state=state,
        profiles=profiles,
        pending=pending,
        decided=pl.Series([], dtype=pl.String),
        history=_history(reader, [*users, *renamed_to(links)], now),  # a renamed user's sends count
        suppressed=reads.suppressed_users(reader, profiles, secret),
        catalog=reads.catalog(reader, products),
        catalog_changes=changes,
        catalog_viewers=viewers,
        links=links,
        customers=customers,
        delays=delays or {},
        policy=policy or Policy(),
        lake_version=_version(lake, "events"),
        batch_id=horizon,
        evaluation=evaluation,
    )
    return with_decided(
        world,
        lambda proposed: reads.decided_ids(reader, proposed),
        lambda decided: reads.renewable(reader, decided),
    )


def _history(reader: StateReader, users: list[str], now: datetime) -> pl.DataFrame:
    sent = reads.recent_sends(reader, users).filter(pl.col("decided_at") >= now - HISTORY)
    return sent.select("user_id", "kind", "anchor", "decided_at")


def _version(lake: LakeResource, name: str) -> int:
    version = lake.version(name)
    return version if version is not None else -1


def before(reader: StateReader, rows: pl.DataFrame) -> Before:
    """What the store holds for the keys of an engine run's log `rows` (before they are applied)."""
    ids = rows["trigger_id"].unique().to_list()
    senders = rows.filter(pl.col("decision") == "send")["user_id"].drop_nulls().unique().to_list()
    return Before(
        pending=reads.pending_rows(reader, ids),
        decided=set(reader.get_many("decided_triggers", ids)),
        sends=reads.recent_sends(reader, senders),
    )

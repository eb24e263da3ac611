"""One micro-batch's changes to the state store, from what the batch wrote to the lake (#15, ingest lane).

`batch_changes` turns a committed batch (its ingest_log rows, accepted events, identity edges, new
suppressions and reference rows) into the `StateChanges` that take the store from the lake before the
batch to the lake after it: the same keys and values that `stores.state.rebuild` would write, so a live
store equals a rebuilt one (`stores.state.rebuild.check`). The ingest commits them right after the
batch's `ingest_log` commit; `stores.state.sync` builds the same `BatchRows` from the lake to catch up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from resources.lake import LakeResource
from resources.state import StateStore
from stores.state.live_profiles import HeldProfiles, NeedsLake, profile_changes
from stores.state.namespaces import (
    LANDED_RECORD,
    LINK_FIELDS,
    SUPPRESSION,
    VALUE_SCHEMAS,
    VIEWED_EVENTS,
    listed,
)
from transforms.profiles.partials import partials, principal
from transforms.profiles.revenue import reads_properties
from transforms.schema import CATALOG_SCHEMA, CUSTOMERS_SCHEMA
from transforms.state import LINK_ANON, LINK_USER, StateChanges, decode, encode
from transforms.state_keys import joined_key

# What the store's changes read of a batch's events (#17, peak RSS: the ingest's state thread holds no more).
# The partials read all but these (the lake's record-keeping, the raw properties, context not profiled;
# `partial_rows` keeps the raw properties of the few orders and refunds whose worth is read off them):
NOT_IN_PARTIALS = (
    "properties",
    "context_user_agent",
    "context_ip",
    "context_library_name",
    "context_page_url",
    "context_page_path",
    "context_page_referrer",
    "source_file",
    "source_line",
    "original_timestamp",
    "sent_at",
    "received_at",
    "landed_at",
    "ingested_at",
)
# and `event_changes` these only (event ids, product viewers; the profiles come from the partials):
CHANGES_READ = ("event_id", "batch_id", "event_name", "event_ts", "product_id", "user_id", "anonymous_id")
REFERENCE_KEYS = {"customers": ("user_id", CUSTOMERS_SCHEMA), "catalog": ("product_id", CATALOG_SCHEMA)}


def partial_rows(events: pl.DataFrame) -> pl.DataFrame:
    """`events` (EVENTS_SCHEMA) as the partials read them: without NOT_IN_PARTIALS, but for `properties`,
    kept (null elsewhere) where an order's or a refund's worth is read off its `subtotal` (an order stating
    neither `revenue` nor `total`: transforms.profiles.revenue.reads_properties)."""
    kept = pl.when(reads_properties()).then(pl.col("properties")).alias("properties")
    return events.select(*(c for c in events.columns if c not in NOT_IN_PARTIALS), kept)


@dataclass
class BatchRows:
    """What one committed batch wrote: `log` (INGEST_LOG_SCHEMA rows), `events` (accepted, EVENTS_SCHEMA; the
    ingest keeps only their CHANGES_READ columns past its Delta commits), `edges` (its identity edges,
    IDENTITIES_SCHEMA), `suppressions` (rows it added, SUPPRESSIONS_SCHEMA) and `reference` (table -> the
    rows of `customers` / `catalog` after it, for the keys it brought)."""

    batch_id: int
    log: pl.DataFrame
    events: pl.DataFrame
    edges: pl.DataFrame
    suppressions: pl.DataFrame
    reference: dict[str, pl.DataFrame] = field(default_factory=dict)
    partials: pl.DataFrame | None = None  # partials(events), when the caller has them


def batch_changes(store: StateStore, lake: LakeResource | None, rows: BatchRows) -> StateChanges:
    """The store changes of one committed batch (`lake`, as of right after it, is read only when a shopper
    changes hands; None: `live_profiles.NeedsLake` is raised then)."""
    part = rows.partials if rows.partials is not None else partials(rows.events)
    changes = event_changes(store, lake, rows.events, rows.edges, part)
    changes.update(log_changes(store, rows))
    return changes


def event_changes(
    store: StateStore,
    lake: LakeResource | None,
    events: pl.DataFrame,
    edges: pl.DataFrame,
    part: pl.DataFrame,
    held: HeldProfiles | None = None,
) -> StateChanges:
    """The part of `batch_changes` that its accepted `events` make (event ids, product viewers, profiles
    with their partials `part`): the ingest computes it while the batch's Delta commits run (#17).
    `held`: the profile states the run's last commit put (`live_profiles.HeldProfiles`)."""
    changes = StateChanges()
    ids = events.select("event_id", "batch_id").unique("event_id", keep="first").lazy()
    changes.put_many("event_ids", encode(ids, pl.col("event_id"), VALUE_SCHEMAS["event_ids"]).collect())
    _viewers(store, changes, events)
    profile_changes(store, lake, part, edges, changes, held)
    return changes


def event_state(
    store: StateStore | None,
    events: pl.DataFrame,
    edges: pl.DataFrame,
    part: pl.DataFrame,
    held: HeldProfiles | None = None,
) -> StateChanges | None:
    """The store changes a batch's accepted `events` (their CHANGES_READ columns) and their partials `part`
    make without the lake, settled (None without a store, or when a shopper changed hands: `event_changes`
    with the lake after the batch then)."""
    if store is None:
        return None
    try:
        return event_changes(store, None, events, edges, part, held).settle()  # sorted off the commit
    except NeedsLake:
        return None


def log_changes(store: StateStore, rows: BatchRows) -> StateChanges:
    """The rest of `batch_changes`: landed files, identity links, suppressions, customers and catalog
    (namespaces that `event_changes` does not touch)."""
    changes = StateChanges()
    landed = rows.log.select(pl.col("source_file").alias("_key"), *LANDED_RECORD)
    relist(store, changes, "landed_files", landed, "records", LANDED_RECORD, lambda f: f)
    link_rows = pl.concat(
        [
            rows.edges.select(
                (pl.lit(side) + pl.col(key)).alias("_key"),
                pl.col(other).alias("id"),
                "first_seen_at",
                "aliased_at",
            )
            for side, key, other in (
                (LINK_ANON, "anonymous_id", "user_id"),
                (LINK_USER, "user_id", "anonymous_id"),
            )
        ]
    )
    relist(store, changes, "identity_links", link_rows, "links", LINK_FIELDS, _earliest)
    unsubscribed = rows.suppressions.select(pl.col("user_key").alias("_key"), *SUPPRESSION)
    relist(store, changes, "suppressions", unsubscribed, "reasons", SUPPRESSION, lambda f: f.unique())
    for name, (key, schema) in REFERENCE_KEYS.items():
        if name in rows.reference and rows.reference[name].height:
            changes.put_many(name, encode(rows.reference[name].lazy(), pl.col(key), schema).collect())
    return changes


def _earliest(rows: pl.DataFrame) -> pl.DataFrame:
    """One link per (side, other id): the earliest sighting and alias, as `identities` keeps them."""
    return rows.group_by("_key", "id").agg(pl.col("first_seen_at").min(), pl.col("aliased_at").min())


def relist(
    store: StateStore,
    changes: StateChanges,
    namespace: str,
    new: pl.DataFrame,
    name: str,
    fields: dict[str, pl.DataType],
    combine: Callable[[pl.DataFrame], pl.DataFrame],
) -> None:
    """Put, for each `_key` of `new`, the list `name` of its stored structs and its `new` rows (`combine`
    merges the two as the lake does), encoded as the rebuild encodes it."""
    if new.height == 0:
        return
    held = store.get_frame(namespace, new["_key"])
    columns = ["_key", *fields]
    frames = [new.select([pl.col("_key"), *[pl.col(c).cast(t) for c, t in fields.items()]])]
    if held.height:
        old = decode(held["value"], VALUE_SCHEMAS[namespace]).with_columns(held["key"].alias("_key"))
        frames.append(old.select("_key", name).explode(name).drop_nulls(name).unnest(name).select(columns))
    merged = combine(pl.concat(frames, how="vertical_relaxed")).lazy()
    rows = listed(merged, pl.col("_key"), name, fields)
    changes.put_many(namespace, encode(rows, pl.col("_key"), VALUE_SCHEMAS[namespace]).collect())


def _viewers(store: StateStore, changes: StateChanges, events: pl.DataFrame) -> None:
    """`product_viewers`: the newest view or cart add per product and principal (a view landing late for a
    viewer an engine run deleted as stale puts it back, stale: `stores.state.namespaces.viewer_entries`)."""
    viewed = events.filter(pl.col("event_name").is_in(VIEWED_EVENTS) & pl.col("product_id").is_not_null())
    if viewed.height == 0:
        return
    last = (
        viewed.group_by("product_id", principal().alias("principal"))
        .agg(pl.col("event_ts").max().alias("last_ts"))
        .select(joined_key(pl.col("product_id"), pl.col("principal")).alias("_key"), "principal", "last_ts")
    )
    found = store.get_frame("product_viewers", last["_key"])
    if found.height:
        held = decode(found["value"], VALUE_SCHEMAS["product_viewers"]).with_columns(_key=found["key"])
        both = pl.concat([last, held.select("_key", "principal", "last_ts")])
        last = both.group_by("_key").agg(pl.col("principal").first(), pl.col("last_ts").max())
    value = VALUE_SCHEMAS["product_viewers"]
    changes.put_many("product_viewers", encode(last.lazy(), pl.col("_key"), value).collect())

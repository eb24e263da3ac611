"""What each namespace of the state store holds, read from the lake alone: (key, value) chunks.

Every reader here takes the lake (a pinned snapshot during a rebuild or check) and yields frames of
`key` and `value` (the JSON `transforms.state.encode` makes), in chunks of at most CHUNK_ROWS keys for
the namespaces that grow with the lake (event ids, landed files); profiles come in hash buckets
(`stores.state.profiles`). The value schemas below are how a caller decodes them (`transforms.state.decode`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator

import polars as pl

from resources.lake import LakeResource
from stores.state.profiles import profile_chunks
from stores.triggers import HISTORY
from stores.triggers_pending import considered_batch, pending_rows
from transforms.profiles.partials import principal
from transforms.profiles.state import VIEWED_OR_CARTED
from transforms.schema import (
    CATALOG_CHANGES_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    IDENTITIES_SCHEMA,
    INGEST_LOG_SCHEMA,
    PENDING_DECISIONS,
    SUPPRESSIONS_SCHEMA,
    TRIGGERS_SCHEMA,
    UTC_TS,
)
from transforms.state import LINK_ANON, LINK_USER, encode
from transforms.state_keys import due_key, joined_key
from transforms.triggers.rules.catalog_alerts import stale_marked

CHUNK_ROWS = 200_000
Chunks = Iterator[pl.DataFrame]

# + landed_at, committed_at (#15, ingest lane), modified_at: what `pending_files` and the retry backoff
# read, so a batch answers "which landed files are new" from the store (a record from before modified_at
# decodes it as null: `transforms.ingest.batch` then reads landed_at, which held the mtime)
LANDED_RECORD = {
    "batch_id": pl.Int64(),
    "bytes": pl.Int64(),
    "sha256": pl.String(),
    "status": pl.String(),
    "landed_at": UTC_TS,
    "committed_at": UTC_TS,
    "modified_at": UTC_TS,
}
# an identities edge seen from one side: the other side's id, and the edge's times (IDENTITIES_SCHEMA)
LINK_FIELDS: dict[str, pl.DataType] = {"id": pl.String(), "first_seen_at": UTC_TS, "aliased_at": UTC_TS}
LINK = pl.Struct(LINK_FIELDS)
DECIDED = ("trigger_id", "kind", "user_id", "decision", "decided_at", "evaluation")
SEND = {"trigger_id": pl.String(), "kind": pl.String(), "anchor": pl.String(), "decided_at": UTC_TS}
SUPPRESSION = {"reason": pl.String(), "since": UTC_TS}
VIEWED_EVENTS = list(VIEWED_OR_CARTED)
# namespace -> the schema of its values (profiles: transforms.profiles.state.PARTIAL_SCHEMA)
VALUE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "landed_files": {"records": pl.List(pl.Struct(LANDED_RECORD))},
    "event_ids": {"batch_id": pl.Int64()},
    "identity_links": {"links": pl.List(LINK)},
    "pending_triggers": TRIGGERS_SCHEMA,
    "pending_due": {"trigger_id": pl.String()},
    "pending_principals": {"trigger_id": pl.String()},
    "decided_triggers": {c: TRIGGERS_SCHEMA[c] for c in DECIDED},
    "recent_sends": {"sends": pl.List(pl.Struct(SEND))},
    "suppressions": {"reasons": pl.List(pl.Struct(SUPPRESSION))},
    "catalog": CATALOG_SCHEMA,
    "product_viewers": {"principal": pl.String(), "last_ts": UTC_TS},
    "customers": CUSTOMERS_SCHEMA,
}


def listed(rows: pl.LazyFrame, key: pl.Expr, name: str, fields: dict[str, pl.DataType]) -> pl.LazyFrame:
    """One row per `key`: a list column `name` of `fields` structs, sorted by every field."""
    columns = list(fields)
    return rows.group_by(key.alias("_key")).agg(pl.struct(columns).sort_by(columns).alias(name))


def _chunks(frame: pl.LazyFrame) -> Chunks:
    yield from frame.collect_batches(chunk_size=CHUNK_ROWS, engine="streaming")


def landed_files(lake: LakeResource) -> Chunks:
    log = lake.scan("ingest_log", INGEST_LOG_SCHEMA)
    rows = listed(log, pl.col("source_file"), "records", LANDED_RECORD)
    schema = VALUE_SCHEMAS["landed_files"]
    yield from _chunks(encode(rows, pl.col("_key"), schema))


def event_ids(lake: LakeResource) -> Chunks:
    events = lake.scan("events", EVENTS_SCHEMA).filter(pl.col("batch_id") <= lake.committed_batch())
    yield from _chunks(encode(events, pl.col("event_id"), VALUE_SCHEMAS["event_ids"]))


def identity_links(lake: LakeResource) -> Chunks:
    edges = lake.scan("identities", IDENTITIES_SCHEMA)
    schema = VALUE_SCHEMAS["identity_links"]
    for side, key, other in ((LINK_ANON, "anonymous_id", "user_id"), (LINK_USER, "user_id", "anonymous_id")):
        side_key = (pl.lit(side) + pl.col(key)).alias("side")
        rows = edges.select(side_key, pl.col(other).alias("id"), "first_seen_at", "aliased_at")
        links = listed(rows, pl.col("side"), "links", LINK_FIELDS)
        yield encode(links, pl.col("_key"), schema).collect(engine="streaming")


def _of(lake: LakeResource, table: str, trigger_ids: Collection[str] | None) -> pl.LazyFrame:
    """`table`'s rows (TRIGGERS_SCHEMA), only those of `trigger_ids` when given (an erasure's)."""
    rows = lake.scan(table, TRIGGERS_SCHEMA)
    return rows if trigger_ids is None else rows.filter(pl.col("trigger_id").is_in(list(trigger_ids)))


def _pending(lake: LakeResource, trigger_ids: Collection[str] | None) -> pl.LazyFrame:
    """The pending candidates as of the lake's last engine run (`trigger_state`, a checkpoint, brought up
    to date from the log: `stores.triggers_pending`), only those of `trigger_ids` when given."""
    return pending_rows(lake, trigger_ids).lazy()


def pending_triggers(lake: LakeResource, trigger_ids: Collection[str] | None = None) -> Chunks:
    pending = _pending(lake, trigger_ids)
    yield encode(pending, pl.col("trigger_id"), TRIGGERS_SCHEMA).collect()


def pending_due(lake: LakeResource, trigger_ids: Collection[str] | None = None) -> Chunks:
    pending = _pending(lake, trigger_ids).filter(pl.col("due_at").is_not_null())
    key = due_key(pl.col("due_at"), pl.col("trigger_id"))
    yield encode(pending, key, VALUE_SCHEMAS["pending_due"]).collect()


def pending_principals(lake: LakeResource, trigger_ids: Collection[str] | None = None) -> Chunks:
    pending = _pending(lake, trigger_ids)
    key = joined_key(pl.col("principal"), pl.col("trigger_id"))
    yield encode(pending, key, VALUE_SCHEMAS["pending_principals"]).collect()


def decided_triggers(lake: LakeResource, trigger_ids: Collection[str] | None = None) -> Chunks:
    log = _of(lake, "triggers", trigger_ids).filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    first = log.group_by("trigger_id").agg(
        pl.col(c).sort_by("evaluation", "decided_at", "decision").first() for c in DECIDED[1:]
    )
    yield from _chunks(encode(first, pl.col("trigger_id"), VALUE_SCHEMAS["decided_triggers"]))


def recent_sends(lake: LakeResource) -> Chunks:
    """Each sender's `send` decisions of the HISTORY before their own last one: what the engine keeps
    (`transforms.triggers.store_changes.sends_changes` trims a sender's at each send, `now` being its
    `decided_at`), and more than a run reads (HISTORY before its `now`, never before the last send). It
    was the HISTORY before the newest send of anyone: a sender mailed 18 days before it had a value in
    the live store and none in a rebuild, so `check` was unequal with nothing wrong."""
    sent = lake.scan("triggers", TRIGGERS_SCHEMA).filter(
        (pl.col("decision") == "send") & pl.col("user_id").is_not_null()
    )
    since = pl.col("decided_at").max().over("user_id") - HISTORY
    recent = sent.filter(pl.col("decided_at") >= since).unique(["trigger_id", *SEND])
    rows = listed(recent, pl.col("user_id"), "sends", SEND)
    yield encode(rows, pl.col("_key"), VALUE_SCHEMAS["recent_sends"]).collect(engine="streaming")


def suppressions(lake: LakeResource) -> Chunks:
    rows = lake.scan("suppressions", SUPPRESSIONS_SCHEMA).unique()
    reasons = listed(rows, pl.col("user_key"), "reasons", SUPPRESSION)
    yield encode(reasons, pl.col("_key"), VALUE_SCHEMAS["suppressions"]).collect()


def catalog(lake: LakeResource) -> Chunks:
    yield encode(lake.scan("catalog", CATALOG_SCHEMA), pl.col("product_id"), CATALOG_SCHEMA).collect()


def customers(lake: LakeResource) -> Chunks:
    yield encode(lake.scan("customers", CUSTOMERS_SCHEMA), pl.col("user_id"), CUSTOMERS_SCHEMA).collect()


def viewer_entries(lake: LakeResource) -> Chunks:
    """Who viewed or carted each product, and when last (key, value), each marked `stale` or not.

    Every view counts, as in the live store (`stores.state.batch`): the price-drop and back-in-stock rules
    take a viewer whose last view is in the 30 days before the catalog's `changed_at`, which can be earlier
    than the newest view (a feed landing late), so a window from the newest view (as it was) dropped
    viewers a change still wants, and made `check` unequal for any store whose views span more than 30
    days. What no change from now on can want is `stale` (#17): a viewer last seen more than those 30
    days before the newest change of the product that an engine run has decided (`catalog_changes` up to
    the batch the last run saw: `considered_batch`), since a product's changes never go back in time
    (`transforms.triggers.rules.catalog_alerts.stale_marked`). An engine run deletes the stale viewers of
    the products it reads (`stores.decide.world.store_world`): no lake fact says which a live store still
    holds (a run that died before its store commit, a view landing late for a viewer deleted), so a stale
    one is in the store or not, with any value, and `check` tolerates either."""
    events = lake.scan("events", EVENTS_SCHEMA).filter(
        pl.col("event_name").is_in(VIEWED_EVENTS)
        & pl.col("product_id").is_not_null()
        & (pl.col("batch_id") <= lake.committed_batch())
    )
    last = events.group_by(pl.col("product_id"), principal().alias("principal")).agg(
        pl.col("event_ts").max().alias("last_ts")
    )
    decided = lake.scan("catalog_changes", CATALOG_CHANGES_SCHEMA).filter(
        pl.col("batch_id") <= considered_batch(lake)
    )
    key = joined_key(pl.col("product_id"), pl.col("principal"))
    marked = stale_marked(last, decided)
    yield from _chunks(encode(marked, key, VALUE_SCHEMAS["product_viewers"], keep=("stale",)))


def product_viewers(lake: LakeResource) -> Chunks:
    """The viewers a change can still want (`viewer_entries`, the stale ones left out)."""
    for chunk in viewer_entries(lake):
        yield chunk.filter(~pl.col("stale")).drop("stale")


# Namespaces keyed by (or with) a trigger id, read for only some trigger ids (an erasure's).
TRIGGER_READERS: dict[str, Callable[[LakeResource, Collection[str]], Chunks]] = {
    "pending_triggers": pending_triggers,
    "pending_due": pending_due,
    "pending_principals": pending_principals,
    "decided_triggers": decided_triggers,
}
# Namespaces `check` reads with a `stale` mark: a stale key may be in the store or not (`viewer_entries`).
CHECK_READERS: dict[str, Callable[[LakeResource], Chunks]] = {"product_viewers": viewer_entries}
READERS: dict[str, Callable[[LakeResource], Chunks]] = {
    "landed_files": landed_files,
    "event_ids": event_ids,
    "identity_links": identity_links,
    "profiles": profile_chunks,
    "pending_triggers": pending_triggers,
    "pending_due": pending_due,
    "pending_principals": pending_principals,
    "decided_triggers": decided_triggers,
    "recent_sends": recent_sends,
    "suppressions": suppressions,
    "catalog": catalog,
    "product_viewers": product_viewers,
    "customers": customers,
}

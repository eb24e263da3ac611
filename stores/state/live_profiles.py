"""A batch's partials merged into the store's `profiles`, resolving anonymous principals as the lake does.

The store holds one merged state per *resolved* principal (`stores.state.profiles.profile_buckets`): a
user id with every partial of the anonymous ids it claims, or `anon:<id>` while nobody claims it. An
anonymous id is claimed by its earliest identities edge (`transforms.profiles.merge.resolve`). Per batch:

- a partial goes to the principal its key resolves to after the batch's edges, merged with its state;
- an anonymous id claimed for the first time brings its state into its user's, and its key is deleted;
- an id claimed by another user than before (an earlier sighting of another edge) cannot be split out of
  the state it was merged into: both users are merged again from the lake's partials (rare).
"""

from __future__ import annotations

import polars as pl

from resources.lake import LakeResource
from resources.state import StateStore
from stores.state.namespaces import VALUE_SCHEMAS
from stores.state.profiles import canonical, lake_states
from transforms.profiles.merge import merge_partials
from transforms.profiles.state import ANON, PARTIAL_SCHEMA
from transforms.schema import UTC_TS
from transforms.state import StateChanges, decode, encode, store_key


class NeedsLake(RuntimeError):
    """Only the lake as of the batch could say what it changed (a shopper's anonymous id moved to another
    user; a table version no longer in the log): the caller rebuilds the store instead."""


EDGES = {"anonymous_id": pl.String(), "user_id": pl.String(), "first_seen_at": UTC_TS}


def _claims(links: pl.DataFrame) -> dict[str, str]:
    """anonymous id -> the user that claims it: the earliest edge, ties to the smaller user id
    (as `transforms.profiles.merge.resolve`)."""
    first = links.sort("first_seen_at", "user_id").unique("anonymous_id", keep="first", maintain_order=True)
    return dict(first.select("anonymous_id", "user_id").iter_rows())


def _stored_links(store: StateStore, anons: list[str]) -> pl.DataFrame:
    """The stored identities edges of `anons` (EDGES)."""
    found = store.get_many("identity_links", [ANON + a for a in anons])
    if not found:
        return pl.DataFrame(schema=EDGES)
    by_key = {store_key(ANON + a): a for a in anons}
    rows = decode(list(found.values()), VALUE_SCHEMAS["identity_links"]).with_columns(
        pl.Series("anonymous_id", [by_key[k] for k in found], dtype=pl.String)
    )
    links = rows.explode("links").drop_nulls("links").unnest("links")
    return links.select("anonymous_id", pl.col("id").alias("user_id"), "first_seen_at")


def _with_edges(links: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    both = pl.concat([links, edges.select(list(EDGES))], how="vertical_relaxed")
    return both.group_by("anonymous_id", "user_id").agg(pl.col("first_seen_at").min())


def _states(store: StateStore, keys: list[str]) -> pl.DataFrame:
    found = store.get_many("profiles", keys)
    if not found:
        return pl.DataFrame(schema=PARTIAL_SCHEMA)
    return decode(list(found.values()), PARTIAL_SCHEMA)


def profile_changes(
    store: StateStore,
    lake: LakeResource | None,
    batch: pl.DataFrame,
    edges: pl.DataFrame,
    changes: StateChanges,
) -> None:
    """Merge the batch's partials (`batch`, PARTIAL_SCHEMA) and identity `edges` into `changes`; `lake`
    (the lake right after this batch) answers for shoppers that change hands, None: raise NeedsLake."""
    anons = sorted(
        {p.removeprefix(ANON) for p in batch["principal"] if p.startswith(ANON)} | set(edges["anonymous_id"])
    )
    before_links = _stored_links(store, anons)
    before, after = _claims(before_links), _claims(_with_edges(before_links, edges))
    moved = {a: u for a, u in before.items() if after.get(a) != u}
    again = set(moved.values()) | {after[a] for a in moved}  # merged again from the lake
    newly = {a: u for a, u in after.items() if a not in before and u not in again}
    for anon in after:
        changes.delete("profiles", ANON + anon)
    if again and lake is None:
        raise NeedsLake(f"{len(moved)} anonymous ids changed hands")
    if again:
        assert lake is not None
        merged = lake_states(lake, sorted(again))
        _put(changes, merged)
    resolved = batch.with_columns(
        pl.col("principal").replace({ANON + a: u for a, u in after.items()}).alias("principal")
    ).filter(~pl.col("principal").is_in(sorted(again)))
    if resolved.height == 0 and not newly:
        return
    keys = sorted(set(resolved["principal"]) | set(newly.values()) | {ANON + a for a in newly})
    held = _states(store, keys).with_columns(
        pl.col("principal").replace({ANON + a: u for a, u in newly.items()}).alias("principal")
    )
    rows = pl.concat([held, resolved.select(list(PARTIAL_SCHEMA))], how="vertical_relaxed")
    # Engagement adds floats: merge in the rebuild's order, so the same partials give the same last bit.
    rows = rows.sort("principal", "first_ts", "last_ts", "engagement", nulls_last=True)
    _put(changes, merge_partials(rows))


def _put(changes: StateChanges, state: pl.DataFrame) -> None:
    if state.height:
        encoded = encode(canonical(state).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()
        changes.put_many("profiles", encoded)

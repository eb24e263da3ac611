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

from dataclasses import dataclass, field

import polars as pl

from resources.lake import LakeResource
from resources.state import StateStore
from stores.state.namespaces import VALUE_SCHEMAS
from stores.state.profiles import lake_states
from transforms.principals import anonymous_of, of_anonymous, of_user
from transforms.profiles.merge import claims, merge_partials
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.schema import UTC_TS
from transforms.state import LINK_ANON, StateChanges, decode, encode


class NeedsLake(RuntimeError):
    """Only the lake as of the batch could say what it changed (a shopper's anonymous id moved to another
    user; a table version no longer in the log): the caller rebuilds the store instead."""


EDGES = {"anonymous_id": pl.String(), "user_id": pl.String(), "first_seen_at": UTC_TS}


def _stored_links(store: StateStore, anons: list[str]) -> pl.DataFrame:
    """The stored identities edges of `anons` (EDGES)."""
    found = store.get_many("identity_links", [LINK_ANON + a for a in anons])
    if not found:
        return pl.DataFrame(schema=EDGES)
    rows = decode(list(found.values()), VALUE_SCHEMAS["identity_links"]).with_columns(
        pl.Series("anonymous_id", [k.removeprefix(LINK_ANON) for k in found], dtype=pl.String)
    )
    links = rows.explode("links").drop_nulls("links").unnest("links")
    return links.select("anonymous_id", pl.col("id").alias("user_id"), "first_seen_at")


def _with_edges(links: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    both = pl.concat([links, edges.select(list(EDGES))], how="vertical_relaxed")
    return both.group_by("anonymous_id", "user_id").agg(pl.col("first_seen_at").min())


@dataclass
class HeldProfiles:
    """The profile states that a run's last store commit put, decoded (#17).

    A backlog's commit groups touch mostly the same shoppers: each group reads their states here
    instead of decoding them (~6.5 KB of JSON each) from the store again. It holds only what this run
    committed, while it holds the ingest lock (erasures and rebuilds take both lanes' locks), so the
    store holds exactly these values; it is bounded by one group's shoppers."""

    states: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PARTIAL_SCHEMA))
    pending: pl.DataFrame | None = None  # what the group being computed puts, held once it is committed

    def committed(self) -> None:
        """The pending states are in the store now."""
        if self.pending is not None:
            self.states, self.pending = self.pending, None


def _states(store: StateStore, keys: list[str], held: HeldProfiles | None = None) -> pl.DataFrame:
    cached = pl.DataFrame(schema=PARTIAL_SCHEMA)
    if held is not None and held.states.height:
        cached = held.states.filter(pl.col("principal").is_in(keys))
        known = set(cached["principal"])
        keys = [k for k in keys if k not in known]
    found = store.get_many("profiles", keys) if keys else {}
    if not found:
        return cached
    return pl.concat([cached, decode(list(found.values()), PARTIAL_SCHEMA)])


def profile_changes(
    store: StateStore,
    lake: LakeResource | None,
    batch: pl.DataFrame,
    edges: pl.DataFrame,
    changes: StateChanges,
    held: HeldProfiles | None = None,
) -> None:
    """Merge the batch's partials (`batch`, PARTIAL_SCHEMA) and identity `edges` into `changes`; `lake`
    (the lake right after this batch) answers for shoppers that change hands, None: raise NeedsLake.
    `held`: the states the run's last commit put (read before the store's), given what this one puts."""
    batch_anons = {a for a in map(anonymous_of, batch["principal"]) if a is not None}
    anons = sorted(batch_anons | set(edges["anonymous_id"]))
    before_links = _stored_links(store, anons)
    before, after = claims(before_links), claims(_with_edges(before_links, edges))
    moved = {a: u for a, u in before.items() if after.get(a) != u}
    again = set(moved.values()) | {after[a] for a in moved}  # merged again from the lake
    newly = {a: u for a, u in after.items() if a not in before and u not in again}
    for anon in after:
        changes.delete("profiles", of_anonymous(anon))
    if again and lake is None:
        raise NeedsLake(f"{len(moved)} anonymous ids changed hands")
    put: list[pl.DataFrame] = []
    if again:
        assert lake is not None
        put.append(_put(changes, lake_states(lake, sorted(again))))
    to_user = {of_anonymous(a): of_user(u) for a, u in after.items()}
    resolved = batch.with_columns(pl.col("principal").replace(to_user)).filter(
        ~pl.col("principal").is_in([of_user(u) for u in sorted(again)])
    )
    if resolved.height or newly:
        joining = {of_anonymous(a): of_user(u) for a, u in newly.items()}
        keys = sorted(set(resolved["principal"]) | set(joining.values()) | set(joining))
        stored = _states(store, keys, held).with_columns(pl.col("principal").replace(joining))
        rows = pl.concat([stored, resolved.select(list(PARTIAL_SCHEMA))], how="vertical_relaxed")
        # Engagement adds floats: merge in the rebuild's order, so the same partials give the same last bit.
        rows = rows.sort("principal", "first_ts", "last_ts", "engagement", nulls_last=True)
        put.append(_put(changes, merge_partials(rows)))
    if held is not None:  # what the store holds for these principals once `changes` is committed
        deleted = sorted(changes.deletes.get("profiles", set()))
        states = pl.concat([pl.DataFrame(schema=PARTIAL_SCHEMA), *put])
        held.pending = states.filter(~pl.col("principal").is_in(deleted))


def _put(changes: StateChanges, state: pl.DataFrame) -> pl.DataFrame:
    """Put the merged `state`; returns it as the store holds it (lists in canonical order)."""
    if state.height == 0:
        return pl.DataFrame(schema=PARTIAL_SCHEMA)
    stored = canonical(state)
    changes.put_many("profiles", encode(stored.lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect())
    return stored

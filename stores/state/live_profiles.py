"""A batch's partials merged into the store's `profiles`, resolving principals as the lake does.

The store holds one merged state per *resolved* principal (`stores.state.profiles.profile_buckets`): a
user id with every partial of the anonymous ids it claims and of the user ids an alias renamed to it, or
`anon:<id>` while nobody claims it. An anonymous id is claimed by its earliest identities edge, a renamed
user id by its earliest alias, and claims are followed to where they end
(`transforms.profiles.merge.principal_claims`). Per batch:

- a partial goes to the principal its key resolves to after the batch's edges, merged with its state;
- a principal claimed for the first time (an anonymous id, a renamed user) brings its state into the one
  its claims end at, and its key is deleted;
- a principal claimed by another user than before (an earlier sighting of another edge) cannot be split
  out of the state it was merged into: both users are merged again from the lake's partials (rare).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from resources.lake import LakeResource
from resources.state import StateStore
from stores.state.links import store_lookup
from stores.state.profiles import lake_states
from transforms.principals import ANON
from transforms.profiles.aliases import claim_links, rooted
from transforms.profiles.merge import direct_claims, merge_partials
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.schema import IDENTITIES_SCHEMA
from transforms.state import StateChanges, decode, encode


class NeedsLake(RuntimeError):
    """Only the lake as of the batch could say what it changed (a shopper's anonymous id moved to another
    user; a table version no longer in the log): the caller rebuilds the store instead."""


def _with_edges(links: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """The stored `links` and a batch's `edges` as `identities` holds them after it (earliest times)."""
    both = pl.concat([links, edges.select(list(IDENTITIES_SCHEMA))], how="vertical_relaxed")
    return both.group_by("anonymous_id", "user_id").agg(
        pl.col("first_seen_at").min(), pl.col("aliased_at").min()
    )


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
    if not keys:
        return cached
    found = store.get_frame("profiles", pl.Series(keys, dtype=pl.String))["value"]
    return pl.concat([cached, decode(found, PARTIAL_SCHEMA)])


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
    asked = pl.concat([batch["principal"], (ANON + edges["anonymous_id"]).rename("principal")])
    stored = claim_links(store_lookup(store), asked, edges)
    before, after = _claims(stored), _claims(_with_edges(stored, edges))
    moved = [p for p, to in before[0].items() if after[0].get(p) != to]
    ends = after[1]
    # merged again from the lake: where the moved principals' claimers end now, the old and the new
    again = {ends.get(c, c) for p in moved for c in (before[0][p], after[0].get(p)) if c is not None}
    newly = {p: end for p, end in ends.items() if p not in before[1] and end not in again}
    for principal in ends:  # claimed: its state is its claimer's
        changes.delete("profiles", principal)
    if again and lake is None:
        raise NeedsLake(f"{len(moved)} anonymous ids or renamed users changed hands")
    put: list[pl.DataFrame] = []
    if again:
        assert lake is not None
        put.append(_put(changes, lake_states(lake, sorted(again))))
    resolved = batch.with_columns(pl.col("principal").replace(ends)).filter(
        ~pl.col("principal").is_in(sorted(again))
    )
    if resolved.height or newly:
        keys = sorted(set(resolved["principal"]) | set(newly.values()) | set(newly))
        states = _states(store, keys, held).with_columns(pl.col("principal").replace(newly))
        rows = pl.concat([states, resolved.select(list(PARTIAL_SCHEMA))], how="vertical_relaxed")
        # Engagement adds floats: merge in the rebuild's order, so the same partials give the same last bit.
        rows = rows.sort("principal", "first_ts", "last_ts", "engagement", nulls_last=True)
        put.append(_put(changes, merge_partials(rows)))
    if held is not None:  # what the store holds for these principals once `changes` is committed
        deleted = sorted(changes.deletes.get("profiles", set()))
        states = pl.concat([pl.DataFrame(schema=PARTIAL_SCHEMA), *put])
        held.pending = states.filter(~pl.col("principal").is_in(deleted))


def _claims(links: pl.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """(principal -> the principal that claims it, principal -> the one its claims end at) of `links`."""
    direct = direct_claims(links)
    return dict(direct.select("principal", "_to").iter_rows()), dict(rooted(direct).iter_rows())


def _put(changes: StateChanges, state: pl.DataFrame) -> pl.DataFrame:
    """Put the merged `state`; returns it as the store holds it (lists in canonical order)."""
    if state.height == 0:
        return pl.DataFrame(schema=PARTIAL_SCHEMA)
    stored = canonical(state)
    changes.put_many("profiles", encode(stored.lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect())
    return stored

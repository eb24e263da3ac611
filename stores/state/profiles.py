"""Profile state per shopper from the lake, in hash buckets of the resolved principal (bounded memory).

The state of a shopper is every partial the lake holds for it (`profile_state`, the `profile_updates`
since its fold, and the partials of committed batches that `profile_updates` has not taken yet), re-keyed
through `identities` and merged: what `stores.profiles.state_for` computes for everyone, a bucket at a
time. A resolved principal's partials all fall in one bucket, so each bucket merges on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from resources.lake import LakeResource
from stores.profiles import lake_lookup, lake_partials
from transforms.principals import user_of
from transforms.profiles.aliases import group_links
from transforms.profiles.merge import merge_partials, principal_claims, resolve
from transforms.profiles.state import PARTIAL_SCHEMA, canonical, fill_lists
from transforms.schema import IDENTITIES_SCHEMA
from transforms.state import decode, encode

BUCKET_ROWS = 250_000  # partial rows merged at a time
ENGAGEMENT_TOLERANCE = 1e-12


def all_partials(lake: LakeResource) -> pl.LazyFrame:
    """Every partial of the committed batches (PARTIAL_SCHEMA, not yet resolved or merged)."""
    return pl.concat(lake_partials(lake), how="vertical_relaxed")


def lake_states(lake: LakeResource, principals: list[str]) -> pl.DataFrame:
    """The merged state of `principals` (where claims end) from the lake's partials: every partial of theirs
    and of the principals whose claims end at them, as `profile_buckets` merges them (a shopper that changed
    hands)."""
    lookup = lake_lookup(lake)
    members = group_links(lookup, [u for u in map(user_of, principals) if u is not None])  # users' edges
    linked = pl.concat([members, lookup("anonymous_id", members["anonymous_id"].unique().sort())]).unique()
    claimed = principal_claims(linked).filter(pl.col("_to").is_in(principals))["principal"]
    keys = pl.concat([pl.Series(principals, dtype=pl.String), claimed]).implode()
    rows = all_partials(lake).filter(pl.col("principal").is_in(keys)).collect()
    rows = resolve(rows, linked).filter(pl.col("principal").is_in(principals))
    rows = rows.sort("principal", "first_ts", "last_ts", "engagement", nulls_last=True)
    return merge_partials(rows) if rows.height else pl.DataFrame(schema=PARTIAL_SCHEMA)


def profile_buckets(lake: LakeResource) -> Iterator[pl.DataFrame]:
    """The merged state of every principal (PARTIAL_SCHEMA), a bucket of principals at a time."""
    identities = lake.read("identities", IDENTITIES_SCHEMA)
    rows = all_partials(lake)
    total = int(rows.select(pl.len()).collect().item())
    buckets = max(1, -(-total // BUCKET_ROWS))
    resolved = rows.join(principal_claims(identities).lazy(), on="principal", how="left").with_columns(
        (pl.coalesce("_to", "principal").hash(seed=15) % buckets).alias("_bucket")
    )
    for bucket in range(buckets):
        chunk = resolved.filter(pl.col("_bucket") == bucket).select(list(PARTIAL_SCHEMA)).collect()
        # Engagement adds floats: the same partials in the same order give the same last bit.
        chunk = chunk.sort("principal", "first_ts", "last_ts", "engagement", nulls_last=True)
        if chunk.height:
            yield merge_partials(resolve(chunk, identities))


def same_profiles(expected: bytes, found: bytes) -> bool:
    """Whether two encoded states are the same but for the last bits of `engagement` (a float sum whose
    rounding depends on how the partials were grouped: a live store merges them batch by batch), and a
    list a value written before it existed (`refunds`, `moves`, `checkout_lines`, `cart_checkouts`) lacks
    (null, as every reader takes it: empty)."""
    pair = fill_lists(decode([expected, found], PARTIAL_SCHEMA))
    rest = [c for c in PARTIAL_SCHEMA if c != "engagement"]
    if pair.select(rest).n_unique() != 1:
        return False
    a, b = pair["engagement"].to_list()
    if a is None or b is None:
        return a is b
    return bool(abs(a - b) <= ENGAGEMENT_TOLERANCE * max(1.0, abs(a)))


def profile_chunks(lake: LakeResource) -> Iterator[pl.DataFrame]:
    """(key, value) of the `profiles` namespace, a bucket at a time."""
    for state in profile_buckets(lake):
        yield encode(canonical(state).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()

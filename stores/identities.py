"""The `identities` table: anonymous id -> user id edges, each with its earliest sighting."""

from __future__ import annotations

import polars as pl

from resources.lake import LakeResource
from transforms.schema import IDENTITIES_SCHEMA


def merge_identities(lake: LakeResource, edges: pl.DataFrame, batch_id: int) -> None:
    """Add new anonymous -> user edges and move first_seen_at back when seen earlier (idempotent).

    Not a Delta MERGE: delta-rs writes a filter built from the source's values (person ids) into the
    commit's record, and `_delta_log` must never hold one. New edges are appended; the rare earlier
    sighting of a known edge rewrites this small table whole, which records no predicate.
    """
    key = ["anonymous_id", "user_id"]
    existing = lake.read("identities", IDENTITIES_SCHEMA)
    known = edges.join(existing, on=key, how="inner", suffix="_known")
    if known.filter(pl.col("first_seen_at") < pl.col("first_seen_at_known")).height == 0:
        lake.append("identities", edges.join(existing, on=key, how="anti"), batch_id=batch_id)
        return
    merged = (
        pl.concat([existing, edges.select(list(IDENTITIES_SCHEMA))])
        .group_by(key)
        .agg(pl.col("first_seen_at").min())
        .sort(key)
    )
    lake.overwrite("identities", merged.select(list(IDENTITIES_SCHEMA)), batch_id=batch_id)

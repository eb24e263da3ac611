"""A shopper's events landed in random batches and folded as the state store folds them (the fold
property tests: any batching merges to the state of all the events at once)."""

from __future__ import annotations

import random

import polars as pl

from transforms.profiles.merge import merge_partials
from transforms.profiles.partials import partials
from transforms.profiles.state import PARTIAL_SCHEMA


def batched(events: pl.DataFrame, seed: int) -> pl.DataFrame:
    """The state of `events` landed in up to five batches of a random order, merged as the store does:
    its state and each batch's partials."""
    ids = events["event_id"].to_list()
    random.Random(seed).shuffle(ids)
    cuts = sorted(random.Random(seed + 1).sample(range(1, len(ids)), k=min(4, len(ids) - 1)))
    state = pl.DataFrame(schema=PARTIAL_SCHEMA)
    for batch in [ids[a:b] for a, b in zip([0, *cuts], [*cuts, len(ids)], strict=True)]:
        part = partials(events.filter(pl.col("event_id").is_in(batch)))
        state = merge_partials(pl.concat([part, state]))
    return state

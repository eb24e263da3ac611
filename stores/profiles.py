"""The profile store: an append-only log of per-batch partials, folded now and then into a base.

A micro-batch appends one partial per principal it touched to `profile_updates` (cost follows the
batch). `profile_state` is the fold of all partials up to a batch number, recorded as a Delta
application transaction on its commit; `profiles` is derived from it at the same fold. Readers
see base + updates after the fold (`state_for`), which is what `lakemail sql` shows as `profiles`.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from resources.lake import LakeResource
from transforms.profiles.derive import derive
from transforms.profiles.merge import merge_partials, resolve
from transforms.profiles.partials import partials
from transforms.profiles.state import ANON, PARTIAL_SCHEMA
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import (
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    FOLD_APP,
    IDENTITIES_SCHEMA,
    PROFILES_SCHEMA,
    UPDATES_APP,
)


def batch_events(lake: LakeResource, batch_id: int) -> pl.DataFrame:
    """The events one batch committed (file skipping on the batch_id statistics)."""
    return lake.scan("events", EVENTS_SCHEMA).filter(pl.col("batch_id") == batch_id).collect()


def append_updates(lake: LakeResource, batch_id: int, events: pl.DataFrame) -> int:
    """Append the batch's partials, once: a batch already recorded is skipped. Returns rows written."""
    if lake.app_version("profile_updates", UPDATES_APP) >= batch_id:
        return 0
    rows = partials(events).with_columns(pl.lit(batch_id, dtype=pl.Int64).alias("batch_id"))
    lake.write_tagged("profile_updates", rows, {UPDATES_APP: batch_id})
    return rows.height


def folded_batch(lake: LakeResource) -> int:
    return lake.app_version("profile_state", FOLD_APP)


def of_users(
    lake: LakeResource, name: str, schema: dict[str, pl.DataType], users: list[str] | None
) -> pl.DataFrame:
    """The rows of table `name` whose user_id is one of `users` (every row when None)."""
    rows = lake.scan(name, schema)
    return (rows if users is None else rows.filter(pl.col("user_id").is_in(users))).collect()


def links_for(lake: LakeResource, users: list[str] | None) -> pl.DataFrame:
    """identities edges of `users` (all edges when None)."""
    return of_users(lake, "identities", IDENTITIES_SCHEMA, users)


def state_for(lake: LakeResource, principals: list[str] | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(merged state, identity links) of the users behind `principals` (everyone when None).

    Anonymous principals are resolved through identities first; the state then holds every partial
    of the resolved users, whatever key it was written under.
    """
    if principals is None:
        links = links_for(lake, None)
        keys = None
    else:
        anon = [p.removeprefix(ANON) for p in principals if p.startswith(ANON)]
        claimed = (
            lake.scan("identities", IDENTITIES_SCHEMA).filter(pl.col("anonymous_id").is_in(anon)).collect()
        )
        users = sorted({p for p in principals if not p.startswith(ANON)} | set(claimed["user_id"]))
        links = pl.concat([links_for(lake, users), claimed]).unique()
        keys = sorted(set(users) | {ANON + a for a in anon} | {ANON + a for a in links["anonymous_id"]})
    folded = folded_batch(lake)
    base = lake.scan("profile_state", PARTIAL_SCHEMA)
    updates = lake.scan("profile_updates", PROFILE_UPDATES_SCHEMA).filter(pl.col("batch_id") > folded)
    if keys is not None:
        base = base.filter(pl.col("principal").is_in(keys))
        updates = updates.filter(pl.col("principal").is_in(keys))
    rows = pl.concat([base, updates.select(list(PARTIAL_SCHEMA))]).collect()
    return merge_partials(resolve(rows, links)), links


def customers_for(lake: LakeResource, users: list[str] | None) -> pl.DataFrame:
    """customers rows of `users` (all rows when None)."""
    return of_users(lake, "customers", CUSTOMERS_SCHEMA, users)


def profiles_view(lake: LakeResource, as_of: datetime) -> pl.DataFrame:
    """`profiles` as readers see it: the base folded with every update since (PROFILES_SCHEMA)."""
    state, _ = state_for(lake, None)
    return derive(state, customers_for(lake, None), as_of)


def fold(lake: LakeResource, as_of: datetime) -> int:
    """Fold every update into `profile_state` and rewrite `profiles`; returns the batch folded up to."""
    upto = lake.app_version("profile_updates", UPDATES_APP)
    if upto <= folded_batch(lake):
        return upto
    state, _ = state_for(lake, None)
    lake.write_tagged("profile_state", state.sort("principal"), {FOLD_APP: upto}, mode="overwrite")
    profiles = derive(state, customers_for(lake, None), as_of)
    lake.write_tagged("profiles", profiles.select(list(PROFILES_SCHEMA)), {FOLD_APP: upto}, mode="overwrite")
    table = lake.table("profile_updates")
    if table is not None:  # folded partials are in the base now; their files go at the next vacuum
        table.delete(f"batch_id <= {int(upto)}")
    return upto


def waiting_updates(lake: LakeResource) -> int:
    """Partials not folded yet (a row count: Parquet footers answer it, no data is read)."""
    return int(lake.scan("profile_updates", PROFILE_UPDATES_SCHEMA).select(pl.len()).collect().item())

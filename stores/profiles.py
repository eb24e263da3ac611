"""The profile store in the lake: an append-only log of per-batch partials, folded now and then into a base.

A micro-batch appends one partial per principal it touched to `profile_updates` (cost follows the
batch), right after its commit. `profile_state` is the fold of all partials up to a batch number,
recorded as a Delta application transaction on its commit (`stores.state.refresh.fold`, off the hot
path). Readers of the lake see base + updates after the fold (`state_for`); the state store holds the
same merged state per shopper, current with the last batch (`stores.state.live_profiles`).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from resources.lake import LakeResource
from transforms.profiles.aliases import Lookup
from transforms.profiles.crm import crm_ids, shopper_rows
from transforms.profiles.derive import derive
from transforms.profiles.merge import linked_principals, merge_partials, principal_links, renamed_to, resolve
from transforms.profiles.partials import partials
from transforms.profiles.state import PARTIAL_SCHEMA
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import (
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    FOLD_APP,
    IDENTITIES_SCHEMA,
    UPDATES_APP,
    batch_column,
)


def batch_events(lake: LakeResource, batch_id: int) -> pl.DataFrame:
    """The events one batch committed (file skipping on the batch_id statistics)."""
    return lake.collect("events", EVENTS_SCHEMA, lambda rows: rows.filter(pl.col("batch_id") == batch_id))


def append_updates(lake: LakeResource, batch_id: int, batch_partials: pl.DataFrame | None = None) -> int:
    """Append the partials of batch `batch_id` (`batch_partials`: `transforms.profiles.partials.partials`
    of its events, read from the lake when None) and of any earlier committed batch not taken yet (a
    crash right after its commit), in one commit, once. Returns rows written."""
    taken = max(folded_batch(lake), lake.app_version("profile_updates", UPDATES_APP))
    if taken >= batch_id:
        return 0
    known = batch_partials is not None
    behind = (pl.col("batch_id") > taken) & (pl.col("batch_id") <= (batch_id - 1 if known else batch_id))
    groups = lake.collect("events", EVENTS_SCHEMA, lambda rows: rows.filter(behind)).group_by(
        "batch_id", maintain_order=True
    )
    frames = [partials(e).with_columns(batch_column(b)) for (b,), e in groups]
    if batch_partials is not None:
        frames.append(batch_partials.with_columns(batch_column(batch_id)))
    schema = {**PARTIAL_SCHEMA, "batch_id": pl.Int64()}
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    lake.write_tagged("profile_updates", rows.select(list(schema)), {UPDATES_APP: batch_id})
    return rows.height


def folded_batch(lake: LakeResource) -> int:
    return lake.app_version("profile_state", FOLD_APP)


def of_users(
    lake: LakeResource, name: str, schema: dict[str, pl.DataType], users: list[str] | None
) -> pl.DataFrame:
    """The rows of table `name` whose user_id is one of `users` (every row when None)."""
    theirs = pl.lit(True) if users is None else pl.col("user_id").is_in(users)
    return lake.collect(name, schema, lambda rows: rows.filter(theirs))


def links_for(lake: LakeResource, users: list[str] | None) -> pl.DataFrame:
    """identities edges of `users` (all edges when None)."""
    return of_users(lake, "identities", IDENTITIES_SCHEMA, users)


def lake_lookup(lake: LakeResource) -> Lookup:
    """The lake's `identities` rows as a claim walk's lookup (`transforms.profiles.aliases`)."""

    def lookup(column: str, ids: pl.Series) -> pl.DataFrame:
        wanted = ids.implode()
        return lake.collect(
            "identities", IDENTITIES_SCHEMA, lambda rows: rows.filter(pl.col(column).is_in(wanted))
        )

    return lookup


def state_for(lake: LakeResource, principals: list[str] | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(merged state, identity links) of the users behind `principals` (everyone when None).

    Principals are resolved through identities first (`merge.principal_links`: where their claims end);
    the state then holds every partial of the resolved users, whatever key it was written under.
    """
    if principals is None:
        links, ends = links_for(lake, None), None
        keys = None
    else:
        links, ends = principal_links(lake_lookup(lake), principals)
        keys = sorted({*ends, *linked_principals(links)})
    frames = [r if keys is None else r.filter(pl.col("principal").is_in(keys)) for r in lake_partials(lake)]
    rows = pl.concat(frames, how="vertical_relaxed").collect()
    state = merge_partials(resolve(rows, links))
    return (state if ends is None else state.filter(pl.col("principal").is_in(ends))), links


def lake_partials(lake: LakeResource) -> list[pl.LazyFrame]:
    """The lake's partials: the folded base, the updates since, and the partials of committed batches that
    `profile_updates` has not taken yet (a crash right after their commit; the profiles refresh adds them)."""
    folded = folded_batch(lake)
    base = lake.scan("profile_state", PARTIAL_SCHEMA)
    updates = lake.scan("profile_updates", PROFILE_UPDATES_SCHEMA).filter(pl.col("batch_id") > folded)
    frames = [base, updates.select(list(PARTIAL_SCHEMA))]
    taken, committed = max(folded, lake.app_version("profile_updates", UPDATES_APP)), lake.committed_batch()
    if taken < committed:
        missing = lake.scan("events", EVENTS_SCHEMA).filter(
            (pl.col("batch_id") > taken) & (pl.col("batch_id") <= committed)
        )
        frames.append(partials(missing.collect()).lazy())
    return frames


def customers_for(lake: LakeResource, users: list[str] | None) -> pl.DataFrame:
    """customers rows of `users` (all rows when None)."""
    return of_users(lake, "customers", CUSTOMERS_SCHEMA, users)


def shopper_customers(lake: LakeResource, users: list[str] | None, links: pl.DataFrame) -> pl.DataFrame:
    """The CRM rows of `users`' shoppers (everyone's when None), one each under the id she goes by now
    (`transforms.profiles.crm`): a user an alias renamed (`links`, as `state_for` gives them) is hers."""
    renamed = renamed_to(links)
    rows = customers_for(lake, None if users is None else crm_ids(users, renamed))
    return shopper_rows(rows, renamed, users)


def profiles_view(lake: LakeResource, as_of: datetime) -> pl.DataFrame:
    """`profiles` as readers see it: the base folded with every update since (PROFILES_SCHEMA)."""
    state, links = state_for(lake, None)
    return derive(state, shopper_customers(lake, None, links), as_of)


def waiting_updates(lake: LakeResource) -> int:
    """Partials not folded yet (a row count: Parquet footers answer it, no data is read)."""
    return int(lake.scan("profile_updates", PROFILE_UPDATES_SCHEMA).select(pl.len()).collect().item())

"""A shopper's CRM rows (pure): the `customers` rows of the user ids an `alias` made one shopper, as one.

The CRM keys a row by the user id it knows the customer by, and `customers` (and the state store) keep it
so. A user an alias renamed (`transforms.profiles.aliases`) is the new id's shopper, her events and state
included; her CRM row is too: every reader takes a shopper's rows under the id she goes by now, and of them
the one updated last stands, whole (`updated_at`; ties: the row under the id she goes by now, then the
greater id), as `customers` keeps each id's latest row. An id renamed away has no CRM row of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import polars as pl


def crm_ids(users: Iterable[str], renamed: Mapping[str, str]) -> list[str]:
    """The user ids whose CRM rows are those of `users`' shoppers: the id each goes by now (`renamed`: each
    user id an alias renamed -> the id it goes by now, `transforms.profiles.merge.renamed_to`), and every
    id renamed to one of those."""
    ends = {renamed.get(u, u) for u in users}
    return sorted(ends | {old for old, new in renamed.items() if new in ends})


def shopper_rows(
    customers: pl.DataFrame, renamed: Mapping[str, str], users: Collection[str] | None = None
) -> pl.DataFrame:
    """`customers` (CUSTOMERS_SCHEMA) one row per shopper, under the user id she goes by now (`renamed` as
    `crm_ids` takes it): the newest of her rows (see the module); only `users`' shoppers when given."""
    if renamed and customers.height:
        now = pl.col("user_id").replace(renamed)
        ranked = customers.with_columns(
            (pl.col("user_id") == now).alias("_own"), pl.col("user_id").alias("_was"), now.alias("user_id")
        )
        order = ["user_id", "updated_at", "_own", "_was"]
        customers = (
            ranked.sort(order, nulls_last=False)
            .unique("user_id", keep="last", maintain_order=True)
            .select(customers.columns)
        )
    if users is not None:
        ends = sorted({renamed.get(u, u) for u in users})
        customers = customers.filter(pl.col("user_id").is_in(ends))
    return customers

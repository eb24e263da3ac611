"""The state's `checkouts` list: checkouts as Segment's E-commerce spec sends them.

The spec's `Checkout Started` carries `order_id` (and shops add `checkout_id`), rarely `cart_id`, so
the carts alone would not see it. Each checkout is kept under one key (CHECKOUT_STATE): its cart's id
first, so a checkout that names its cart is the cart's (as the carts' `checkout_at` has it too),
else its checkout_id, else its order_id, else its own message. Partials merge like the rest of the
fold: minima of the ids, the latest start. Orders match checkouts by checkout_id or order_id in the
rules (transforms/triggers/rules/carts.py), else by shopper and time.
"""

from __future__ import annotations

import polars as pl

from transforms.profiles.state import CHECKOUT_STATE

_FIELDS = [f.name for f in CHECKOUT_STATE.fields]
_IDS = ("checkout_id", "order_id", "cart_id")


def checkout_key() -> pl.Expr:
    """A checkout's key from an event row: `cart_id` first, so ids of cart-keyed checkouts stay put.

    A checkout with no id at all is its own (keyed by its message id); a later start by the same
    shopper supersedes it (rules/carts.py), so a restarted checkout restarts the timer.
    """
    return pl.coalesce("cart_id", "checkout_id", "order_id", pl.lit("msg:") + pl.col("event_id"))


def checkout_partials(ev: pl.DataFrame) -> pl.DataFrame:
    """`principal`, `checkouts` (List[CHECKOUT_STATE]) from a batch's events (with a `principal` column)."""
    started = ev.filter(pl.col("event_name") == "Checkout Started").with_columns(
        checkout_key().alias("checkout_key")
    )
    per_key = started.group_by("principal", "checkout_key").agg(
        *[pl.col(c).min() for c in _IDS], pl.col("event_ts").max().alias("started_at")
    )
    return _nest(per_key)


def merge_checkouts(partial: pl.DataFrame) -> pl.DataFrame:
    """Partials' `checkouts` merged per principal (associative and commutative: minima and maxima)."""
    exploded = partial.select("principal", "checkouts").explode("checkouts").drop_nulls("checkouts")
    per_key = (
        exploded.unnest("checkouts")
        .group_by("principal", "checkout_key")
        .agg(*[pl.col(c).min() for c in _IDS], pl.col("started_at").max())
    )
    return _nest(per_key)


def _nest(per_key: pl.DataFrame) -> pl.DataFrame:
    nested = per_key.group_by("principal").agg(pl.struct(_FIELDS).alias("checkouts"))
    return nested.with_columns(pl.col("checkouts").cast(pl.List(CHECKOUT_STATE)))

"""The state's `checkouts` list: checkouts as Segment's E-commerce spec sends them.

The spec's `Checkout Started` carries `order_id` (and shops add `checkout_id`), rarely `cart_id`, so
the carts alone would not see it. Each checkout is kept under one key (CHECKOUT_STATE): its cart's id
first, so a checkout that names its cart is the cart's (as the carts' `checkout_at` has it too),
else its checkout_id, else its order_id, else its own message. Partials merge like the rest of the
fold: minima of the ids, the latest start. Orders match checkouts by checkout_id or order_id in the
rules (transforms/triggers/rules/carts.py), else by shopper and time.

The state's `cart_checkouts` list keeps every (cart, checkout_id, order_id) a checkout naming a cart named
(CART_CHECKOUT_STATE, a set): an order naming no cart but such a checkout's id is that cart's order
(`transforms.profiles.carts.order_carts`), whichever batch either lands in.
"""

from __future__ import annotations

import polars as pl

from transforms.profiles.state import CART_CHECKOUT_STATE, CHECKOUT_STATE

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


def cart_checkout_partials(ev: pl.DataFrame) -> pl.DataFrame:
    """`principal`, `cart_checkouts` (List[CART_CHECKOUT_STATE]) from a batch's events: the distinct ids
    each `Checkout Started` naming a cart and a checkout_id or an order_id named."""
    named = ev.filter(
        (pl.col("event_name") == "Checkout Started")
        & pl.col("cart_id").is_not_null()
        & (pl.col("checkout_id").is_not_null() | pl.col("order_id").is_not_null())
    )
    return _nest_links(named.select("principal", "cart_id", "checkout_id", "order_id"))


def merge_cart_checkouts(partial: pl.DataFrame) -> pl.DataFrame:
    """Partials' `cart_checkouts` merged per principal: their union (associative, commutative, idempotent)."""
    rows = (
        partial.select("principal", "cart_checkouts").explode("cart_checkouts").drop_nulls("cart_checkouts")
    )
    return _nest_links(rows.unnest("cart_checkouts"))


def _nest_links(rows: pl.DataFrame) -> pl.DataFrame:
    fields = [f.name for f in CART_CHECKOUT_STATE.fields]
    nested = rows.unique().group_by("principal").agg(pl.struct(fields).alias("cart_checkouts"))
    return nested.with_columns(pl.col("cart_checkouts").cast(pl.List(CART_CHECKOUT_STATE)))

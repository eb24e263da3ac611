"""Checkouts as Segment's E-commerce spec sends them, for abandoned_checkout and the cart's precedence.

The spec's `Checkout Started` carries `order_id` (and shops add `checkout_id`), rarely `cart_id`; the
profile state keeps carts by `cart_id` only, so such a checkout leaves no trace a rule can see. The
state needs a `checkouts` list per principal. This module holds its pieces, written as the profile
fold is (partials that merge in any order), for the profile stage to take in:

- `CHECKOUT_STATE`, the list's element, and `checkout_partials(ev)` / `merge_checkouts(partial)`, to be
  called from `transforms.profiles.partials.partials` / `merge_partials` (`ev` there has `principal`),
  with `"checkouts": pl.List(CHECKOUT_STATE)` added to `PARTIAL_SCHEMA`;
- `checkout_id` in the profile's `ORDER_STATE`, so that an order matches its checkout by that id too.

The rules (rules/carts.py) read `checkouts` when the state has it and fall back to the carts otherwise.
"""

from __future__ import annotations

import polars as pl

from transforms.schema import UTC_TS

CHECKOUT_STATE = pl.Struct(
    {
        "checkout_key": pl.String(),  # the cart's id, else checkout_id, else order_id, else `msg:<messageId>`
        "checkout_id": pl.String(),
        "order_id": pl.String(),
        "cart_id": pl.String(),
        "started_at": UTC_TS,  # the latest `Checkout Started` of it
    }
)
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

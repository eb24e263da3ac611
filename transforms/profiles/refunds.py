"""Refunds and cancellations: Segment e-commerce v2's `Order Refunded` and `Order Cancelled`, and what they
leave of an order's revenue.

Both name the order (`order_id`); a refund may say how much, read as an order's revenue is
(`transforms.profiles.revenue`: `revenue`, else `total`, else `subtotal`, else the price times quantity of
its `products[]`): a partial refund. A refund counts for its shopper's order of that id (the user id or any
stitched anonymous id), whenever it lands. Each message is one refund (its messageId), so the same message
landing twice is one refund, and two partial refunds of one order are two. `net_orders` says what is left
of each order:

- a cancellation, or a refund that states no amount, nets the order to 0 (`order_cancelled` /
  `order_refunded`);
- a partial refund subtracts its amount, never below 0, when its currency is the order's (one naming none
  is taken to be in the other's); refunds as much as the order or more: `order_refunded`;
- a partial refund in another currency is left out and counted (`unnetted`): amounts in different
  currencies are never added.

The state keeps the refunds as a set (REFUND_STATE per messageId), so the fold is associative and
commutative: a refund landing before its order, a duplicate, a rebuild give the same state.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from transforms.profiles.revenue import order_revenue
from transforms.profiles.state import REFUND_STATE, nest

REFUNDED, CANCELLED = "Order Refunded", "Order Cancelled"
REFUND_EVENTS = (REFUNDED, CANCELLED)
ORDER_CANCELLED, ORDER_REFUNDED = "order_cancelled", "order_refunded"  # why an order is over (its exits)
_FIELDS = [f.name for f in REFUND_STATE.fields]


def currency_code(expr: pl.Expr) -> pl.Expr:
    """An ISO 4217 code as written (` eur`, `Eur`, `EUR`): stripped, upper case; blank names none."""
    code = expr.str.strip_chars().str.to_uppercase()
    return pl.when(code != "").then(code)


def refund_rows(events: pl.DataFrame, *keep: str) -> pl.DataFrame:
    """`keep` and REFUND_STATE's fields of each refund or cancellation of `events` that names an order."""
    refunds = events.filter(pl.col("event_name").is_in(REFUND_EVENTS) & pl.col("order_id").is_not_null())
    return refunds.with_columns(order_revenue(refunds).alias("_stated")).select(
        *keep,
        "order_id",
        pl.col("event_id").alias("refund_id"),
        (pl.col("event_name") == CANCELLED).alias("cancelled"),
        pl.col("_stated").abs().alias("amount"),  # some shops send it negative
        currency_code(pl.col("currency")).alias("currency"),
        pl.col("event_ts").alias("refunded_at"),
    )


def refund_partials(ev: pl.DataFrame) -> pl.DataFrame:
    """`principal`, `refunds` (List[REFUND_STATE]) from a batch's events (with a `principal` column)."""
    return _nest_once(refund_rows(ev, "principal"))


def merge_refunds(partial: pl.DataFrame) -> pl.DataFrame:
    """Partials' `refunds` merged per principal: the union, one per (order, message)."""
    exploded = partial.select("principal", "refunds").explode("refunds").drop_nulls("refunds")
    return _nest_once(exploded.unnest("refunds"))


def _nest_once(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` as each principal's `refunds`, one per (order, message): the least by content, so any
    grouping of the same rows keeps the same one."""
    ordered = rows.sort("principal", *_FIELDS, nulls_last=True)
    once = ordered.unique(["principal", "order_id", "refund_id"], keep="first", maintain_order=True)
    return nest(once, "refunds", REFUND_STATE)


def net_orders(orders: pl.DataFrame, refunds: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """`orders` (`keys`, order_id, revenue, currency) with `revenue` net of their `refunds` (`keys`,
    REFUND_STATE's fields), `ended` (ORDER_CANCELLED, ORDER_REFUNDED or null) and `unnetted` (partial
    refunds left out: another currency), as the module says. An order without revenue keeps none."""
    indexed = orders.with_row_index("_order")
    theirs = refunds.select(*keys, "order_id", "cancelled", "amount", pl.col("currency").alias("_in"))
    joined = indexed.select("_order", *keys, "order_id", "currency").join(theirs, on=[*keys, "order_id"])
    partial = ~pl.col("cancelled") & pl.col("amount").is_not_null()
    same = pl.col("_in").is_null() | pl.col("currency").is_null() | (pl.col("_in") == pl.col("currency"))
    per_order = joined.group_by("_order").agg(
        pl.col("cancelled").any().alias("_cancelled"),
        (~pl.col("cancelled") & pl.col("amount").is_null()).any().alias("_whole"),
        (partial & same).any().alias("_netted"),
        pl.col("amount").filter(partial & same).sort().sum().alias("_refunded"),
        (partial & ~same).sum().cast(pl.Int64).alias("unnetted"),
    )
    revenue, refunded = pl.col("revenue"), pl.col("_refunded")
    over = pl.col("_netted").fill_null(False) & (refunded >= revenue).fill_null(False)
    whole = pl.col("_cancelled").fill_null(False) | pl.col("_whole").fill_null(False) | over
    ended = (
        pl.when(pl.col("_cancelled")).then(pl.lit(ORDER_CANCELLED)).when(whole).then(pl.lit(ORDER_REFUNDED))
    )
    left = (
        pl.when(revenue.is_null())
        .then(revenue)
        .when(whole)
        .then(pl.lit(0.0))
        .when(pl.col("_netted").fill_null(False))
        .then((revenue - refunded).clip(lower_bound=0.0))
        .otherwise(revenue)
    )
    out = indexed.join(per_order, on="_order", how="left", maintain_order="left")
    return out.with_columns(
        left.alias("revenue"), ended.alias("ended"), pl.col("unnetted").fill_null(0)
    ).drop("_order", "_cancelled", "_whole", "_netted", "_refunded")

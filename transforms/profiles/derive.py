"""Profile rows (PROFILES_SCHEMA) derived from merged partial states and the CRM's customers.

Traits take the newer of the event-sourced value and the CRM's (marketing consent: the consent
object's only where neither states one); the cart, order, browsing and engagement columns are read
off the merged state's lists as of a given moment.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms.principals import principal_user
from transforms.profiles.baskets import checkout_carts
from transforms.profiles.carts import cart_rows, line_units, open_carts
from transforms.profiles.refunds import net_orders
from transforms.profiles.state import (
    ENGAGEMENT_HALF_LIFE,
    EPOCH,
    LINE_STATE,
    ORDER_STATE,
    RECENT_ORDER,
    RECENT_SEARCHES,
    RECENT_VIEWS,
    TRAITS,
    fill_lists,
)
from transforms.schema import CART_LINE, PROFILES_SCHEMA, UTC_TS


def derive(state: pl.DataFrame, customers: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """PROFILES_SCHEMA rows for the known users of `state` (merged, resolved) and `customers` (CRM)."""
    users = state.with_columns(principal_user(pl.col("principal")).alias("principal"))
    known = users.filter(pl.col("principal").is_not_null()).rename({"principal": "user_id"})
    crm = customers.select(
        "user_id",
        *[pl.col(t).cast(pl.String).alias(f"crm_{t}") for t in (*TRAITS, "loyalty_tier")],
        pl.col("updated_at").alias("crm_at"),
    )
    joined = known.join(crm, on="user_id", how="full", coalesce=True)
    # a trait or the CRM row outranks the consent object, whatever the times (transforms.profiles.traits)
    stated = pl.coalesce("marketing_consent", "category_consent").alias("marketing_consent")
    consent = pl.col("marketing_consent").str.to_lowercase().is_in(["true", "1", "yes"])
    out = (
        fill_lists(joined.with_columns(_newest(t) for t in TRAITS))
        .with_columns(stated)
        .with_columns(
            pl.when(pl.col("marketing_consent").is_null())
            .then(None)
            .otherwise(consent)
            .alias("marketing_consent"),
            pl.col("crm_loyalty_tier").alias("loyalty_tier"),
        )
        .pipe(checkout_carts, "user_id")
        .pipe(_with_current_cart)
        .pipe(_with_cart_items)
        .pipe(_net_of_refunds)
        .with_columns(_activity_traits(as_of))
    )
    return out.select([pl.col(c).cast(t) for c, t in PROFILES_SCHEMA.items()]).sort("user_id")


def _activity_traits(as_of: datetime) -> list[pl.Expr]:
    """Cart value, checkout, order, browsing and engagement columns read off the state's lists."""
    return [
        pl.col("cart_items")
        .list.eval((pl.element().struct.field("price") * pl.element().struct.field("quantity")).sum())
        .list.first()
        .fill_null(0.0)
        .round(2)
        .alias("cart_value"),
        pl.max_horizontal(  # a checkout naming its cart is in both; one naming none only in checkouts
            pl.col("carts").list.eval(pl.element().struct.field("checkout_at").max()).list.first(),
            pl.col("checkouts").list.eval(pl.element().struct.field("started_at").max()).list.first(),
        ).alias("last_checkout_at"),
        *_order_traits(),
        _distinct_recent("views", "product_id", RECENT_VIEWS).alias("recent_views"),
        _distinct_recent("searches", "query", RECENT_SEARCHES).alias("recent_searches"),
        _top_category().alias("top_category"),
        (pl.col("engagement") - _tau_lit(as_of)).exp().round(6).alias("engagement_score"),
        pl.col("last_ts").alias("last_seen_at"),
        pl.lit(as_of, dtype=UTC_TS).alias("as_of"),
    ]


def _tau_lit(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds() / ENGAGEMENT_HALF_LIFE.total_seconds()


def _newest(trait: str) -> pl.Expr:
    """The event-sourced trait or the CRM's, whichever is newer (events win a tie)."""
    crm_newer = pl.col(f"{trait}_ts").is_null() | (pl.col("crm_at") > pl.col(f"{trait}_ts"))
    pick_crm = crm_newer & pl.col(f"crm_{trait}").is_not_null()
    return pl.when(pick_crm).then(pl.col(f"crm_{trait}")).otherwise(pl.col(trait)).alias(trait)


def _with_current_cart(frame: pl.DataFrame) -> pl.DataFrame:
    """`cart_id` / `cart_updated_at`: the open cart (`open_carts`); `_cart_ordered_at`, its latest order."""
    current = open_carts(cart_rows(frame, "user_id"), "user_id").rename(
        {"changed_at": "cart_updated_at", "ordered_at": "_cart_ordered_at"}
    )
    return frame.join(current, on="user_id", how="left")


def _with_cart_items(frame: pl.DataFrame) -> pl.DataFrame:
    """`cart_items`: the current cart's lines with units left after its latest order (`line_units`), by
    product id."""
    current = frame.filter(pl.col("cart_id").is_not_null())
    line = pl.col("_line").struct
    lines = (
        current.select(
            "user_id",
            "cart_id",
            pl.col("_cart_ordered_at").alias("ordered_at"),
            pl.col("lines").alias("_line"),
        )
        .explode("_line")
        .drop_nulls("_line")
        .filter(line.field("cart_id") == pl.col("cart_id"))
        .select(
            "user_id",
            "cart_id",
            "ordered_at",
            *[line.field(f.name) for f in LINE_STATE.fields if f.name != "cart_id"],
        )
    )
    moves, baskets = (
        current.select("user_id", c).explode(c).drop_nulls(c).unnest(c) for c in ("moves", "checkout_lines")
    )
    items = (
        line_units(lines, moves, baskets, "user_id")
        .filter(pl.col("units") > 0)
        .with_columns(pl.col("units").alias("quantity"))
        .select("user_id", *[f.name for f in CART_LINE.fields])
        .sort("user_id", "product_id")
        .group_by("user_id", maintain_order=True)
        .agg(pl.struct([f.name for f in CART_LINE.fields]).alias("cart_items"))
    )
    joined = frame.join(items, on="user_id", how="left")
    return joined.with_columns(pl.col("cart_items").fill_null(pl.lit([], dtype=pl.List(CART_LINE))))


def _net_of_refunds(frame: pl.DataFrame) -> pl.DataFrame:
    """`orders` with each one's revenue net of the shopper's refunds and cancellations of it
    (`transforms.profiles.refunds.net_orders`): `lifetime_value` is what the shopper spent and kept. The
    orders stay (`order_count`, `last_order_at`, what was bought): the shopper placed them."""
    refunded = pl.col("refunds").list.len() > 0
    if not frame.select(refunded.any()).item():
        return frame
    theirs = frame.filter(refunded)
    orders = theirs.select("user_id", "orders").explode("orders").drop_nulls("orders").unnest("orders")
    refunds = theirs.select("user_id", "refunds").explode("refunds").drop_nulls("refunds").unnest("refunds")
    fields = [f.name for f in ORDER_STATE.fields]
    net = net_orders(orders, refunds, ["user_id"]).group_by("user_id").agg(pl.struct(fields).alias("_net"))
    joined = frame.join(net, on="user_id", how="left", maintain_order="left")
    net_orders_of = pl.col("_net").cast(pl.List(ORDER_STATE))
    return joined.with_columns(pl.coalesce(net_orders_of, "orders").alias("orders")).drop("_net")


def _order_traits() -> list[pl.Expr]:
    order = pl.element().struct
    orders = pl.col("orders")
    return [
        orders.list.eval(order.field("ordered_at").max()).list.first().alias("last_order_at"),
        orders.list.len().cast(pl.Int64).alias("order_count"),
        orders.list.eval(order.field("revenue").sort().sum())
        .list.first()
        .fill_null(0.0)
        .round(2)
        .alias("lifetime_value"),
        orders.list.eval(order.field("products").explode().drop_nulls().unique().sort()).alias(
            "purchased_products"
        ),
    ]


def _distinct_recent(column: str, field: str, n: int) -> pl.Expr:
    """The `n` most recent distinct `field`s of `column`'s entries (RECENT_ORDER), whatever the list's
    order: a stored state's lists are in canonical (ascending) order, where the first `n` were the oldest."""
    entry = pl.element().struct
    fields = [entry.field(name) for name in RECENT_ORDER[column]]
    latest = pl.element().sort_by(fields, descending=True, nulls_last=True)
    distinct = latest.struct.field(field).drop_nulls().unique(maintain_order=True)
    return pl.col(column).list.eval(distinct.head(n))


def _top_category() -> pl.Expr:
    count = pl.element().struct
    return (
        pl.col("categories")
        .list.eval(
            count.field("category").sort_by(
                [count.field("n"), count.field("category")], descending=[True, False]
            )
        )
        .list.first()
    )

"""Profile rows (PROFILES_SCHEMA) derived from merged partial states and the CRM's customers.

Traits take the newer of the event-sourced value and the CRM's (marketing consent: the consent
object's only where neither states one); the cart, order, browsing and engagement columns are read
off the merged state's lists as of a given moment.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from transforms.principals import principal_user
from transforms.profiles.refunds import net_orders
from transforms.profiles.state import (
    ENGAGEMENT_HALF_LIFE,
    EPOCH,
    IMPLICIT_CART,
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


def cart_rows(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """One row per cart of each shopper (`key`) of `frame` (its `carts`, `orders` and `lines` lists): cart_id,
    changed_at, checkout_at, and `ordered_at` the cart's latest order, the latest of the orders naming it
    and the first one its fold saw. A shop that keeps the cart id across orders reuses it: what happens
    to the cart after its latest order is a new cart (`open_carts`, `line_units`). The implicit cart
    (IMPLICIT_CART: cart events naming no cart) is emptied by any order of the shopper, which it has no
    id to be named by, and is a cart only once something was added to it: a removal naming no cart alone
    (a shop naming its carts on adds only) leaves the shopper's named cart the open one."""
    carts = frame.select(key, "carts").explode("carts").drop_nulls("carts").unnest("carts")
    orders = frame.select(key, "orders").explode("orders").drop_nulls("orders").unnest("orders")
    placed = orders.filter(pl.col("ordered_at").is_not_null())
    latest = (
        placed.filter(pl.col("cart_id").is_not_null())
        .group_by(key, "cart_id")
        .agg(pl.col("ordered_at").max().alias("_latest"))
    )
    any_order = placed.group_by(key).agg(pl.col("ordered_at").max().alias("_any"))
    implicit = (pl.col("cart_id") == IMPLICIT_CART).fill_null(False)
    joined = carts.join(latest, on=[key, "cart_id"], how="left", maintain_order="left").join(
        any_order, on=key, how="left", maintain_order="left"
    )
    ordered_at = pl.max_horizontal("ordered_at", "_latest", pl.when(implicit).then(pl.col("_any")))
    rows = joined.with_columns(ordered_at.alias("ordered_at")).drop("_latest", "_any")
    return rows.filter(~implicit | pl.col(key).is_in(_filled_implicit(frame, key).implode()))


def _filled_implicit(frame: pl.DataFrame, key: str) -> pl.Series:
    """The shoppers (`key`) of `frame` whose implicit cart ever had a unit added."""
    lines = frame.select(key, "lines").explode("lines").drop_nulls("lines")
    line = pl.col("lines").struct
    return lines.filter((line.field("cart_id") == IMPLICIT_CART) & (line.field("added") > 0))[key].unique()


def open_carts(carts: pl.DataFrame, key: str) -> pl.DataFrame:
    """Per shopper (`key`), the open cart: of `carts` (`cart_rows`), the one without an order since its
    last change changed last, ties by cart id (descending); `key`, `cart_id`, `changed_at`, `ordered_at`.
    An emptied cart stays open (it has no lines to show); a cart only a checkout named never is; a cart
    changed after its order is open again. The profile's cart, and so the email's; the cart and checkout
    rules' exits read it too (rules/carts.py)."""
    ordered = (pl.col("ordered_at") >= pl.col("changed_at")).fill_null(False)
    return (
        carts.filter(pl.col("changed_at").is_not_null() & ~ordered)
        .sort("changed_at", "cart_id", descending=True)
        .unique(key, keep="first")
        .select(key, "cart_id", "changed_at", "ordered_at")
    )


def units_left(ordered_at: pl.Expr) -> pl.Expr:
    """Whether a cart line (`last_ts`) was touched after the cart's latest order (`ordered_at`), which took
    what it held then; true when either is null."""
    return ~(pl.col("last_ts") <= ordered_at).fill_null(False)


def line_units(lines: pl.DataFrame, moves: pl.DataFrame, key: str) -> pl.DataFrame:
    """`lines` (`key`, cart_id, product_id, added, removed, last_ts and `ordered_at`, the cart's latest order)
    with `units`: the units put in the line after that order less those taken out after it (every unit
    when there is none; may be negative). Counted from the line's `moves` (MOVE_STATE rows of `key`), so a
    product carted before the order and again after it counts only the units carted after. Units the
    moves do not account for (a line folded before moves existed, `added - removed - moved`) count as
    made at the line's last touch (`units_left`), as they always did."""
    line = [key, "cart_id", "product_id"]
    after = pl.col("ordered_at").is_null() | (pl.col("ts") > pl.col("ordered_at"))
    moved = (
        moves.select(*line, "ts", "units")
        .join(lines.select(*line, "ordered_at"), on=line, how="inner", nulls_equal=True)
        .group_by(line)
        .agg(pl.col("units").filter(after).sum().alias("_after"), pl.col("units").sum().alias("_moved"))
    )
    joined = lines.join(moved, on=line, how="left", nulls_equal=True, maintain_order="left")
    rest = pl.col("added") - pl.col("removed") - pl.col("_moved").fill_null(0)
    units = pl.col("_after").fill_null(0) + pl.when(units_left(pl.col("ordered_at"))).then(rest).otherwise(0)
    return joined.with_columns(units.alias("units")).drop("_after", "_moved")


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
    moves = current.select("user_id", "moves").explode("moves").drop_nulls("moves").unnest("moves")
    items = (
        line_units(lines, moves, "user_id")
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

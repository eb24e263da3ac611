"""Profiles as a commutative fold: a batch's events become one partial state per principal.

A batch's events become one *partial* row per principal (a user id, or `anon:<anonymous_id>` before an
identify). Partials merge associatively and commutatively: maxima, minima, sums, last-writer-wins by
event time (ties broken by value), and top-N lists by time. So a late or reordered event gives the same
profile as one on time, and a batch costs what its events cost: the store appends partials and a
periodic fold merges them (`transforms.profiles.merge`). Identity is resolved at merge time, so an
anonymous cart follows its shopper once an identify links them, however late the link arrives; the
profile rows are derived from the merged state (`transforms.profiles.derive`).
"""

from __future__ import annotations

import polars as pl

from transforms.principals import principal as principal_of
from transforms.profiles.baskets import LINE_TIES, checkout_items, checkout_line_partials
from transforms.profiles.checkouts import cart_checkout_partials, checkout_partials
from transforms.profiles.products import ORDER_PRODUCTS, order_products
from transforms.profiles.refunds import currency_code, refund_partials
from transforms.profiles.revenue import order_revenue
from transforms.profiles.state import (
    ADDED_EVENTS,
    CART_EVENTS,
    CART_STATE,
    CATEGORY_COUNT,
    IMPLICIT_CART,
    LINE_DETAILS,
    LINE_STATE,
    MOVE_STATE,
    ORDER_STATE,
    RECENT_SEARCHES,
    SEARCH,
    STATED,
    VIEW,
    VIEW_STATE,
    conform,
    fill_lists,
    first_orders,
    latest_statement,
    line_moves,
    log_sum_exp,
    nest,
    tau,
    top_recent,
)
from transforms.profiles.traits import read_traits


def principal() -> pl.Expr:
    """The key partials are kept under (`transforms.principals`): the user's, else the anonymous id's."""
    return principal_of(pl.col("user_id"), pl.col("anonymous_id"))


def partials(events: pl.DataFrame) -> pl.DataFrame:
    """One partial state per principal from a batch of `events` rows (PARTIAL_SCHEMA)."""
    ev = _with_traits(events)
    base = ev.group_by("principal").agg(
        pl.col("event_ts").min().alias("first_ts"),
        pl.col("event_ts").max().alias("last_ts"),
        pl.col("event_ts")
        .filter((pl.col("event_type") == "identify") & pl.col("_email").is_not_null())
        .min()
        .alias("identified_at"),
        pl.col("event_ts")
        .filter((pl.col("_marketing_consent") == "true") | (pl.col("_category_consent") == "true"))
        .min()
        .alias("consented_at"),
        pl.col("event_ts").filter(pl.col("event_name") == "Unsubscribed").min().alias("unsubscribed_at"),
        log_sum_exp(tau("event_ts")).alias("engagement"),
    )
    items = checkout_items(ev)
    listed = pl.col("event_id").is_in(items["event_id"].unique().implode()) if items.height else pl.lit(False)
    ev = ev.with_columns(listed.alias("_listed"))  # a checkout listing products: a change of its cart
    parts = (
        _carts,
        checkout_partials,
        cart_checkout_partials,
        _orders,
        refund_partials,
        _views,
        _searches,
        _categories,
    )
    lists = [_lines(ev, items), checkout_line_partials(items), *(part(ev) for part in parts)]
    for frame in [*_stated(ev), *lists]:
        base = base.join(frame, on="principal", how="left")
    return conform(fill_lists(base))


def _with_traits(events: pl.DataFrame) -> pl.DataFrame:
    """`events` with their principal and one `_<name>` column per STATED name (transforms.profiles.traits;
    time zone, locale: context too)."""
    return (
        pl.concat([events, read_traits(events)], how="horizontal")
        .with_columns(principal().alias("principal"))
        .with_columns(
            pl.coalesce("_timezone", "timezone").alias("_timezone"),
            pl.coalesce("_locale", "locale").alias("_locale"),
        )
    )


def _stated(ev: pl.DataFrame) -> list[pl.DataFrame]:
    """Per STATED name, one row per principal that states it: the value of its latest event stating it
    (ties: the greatest value) and that event's time."""
    return [latest_statement(ev, pl.col(f"_{t}").is_not_null(), f"_{t}", "event_ts", t) for t in STATED]


def cart_of() -> pl.Expr:
    """An event's cart: its `cart_id`; a cart event naming none, the shopper's implicit cart (IMPLICIT_CART);
    null for any other event naming none (an order or a checkout names its cart or none at all)."""
    implicit = pl.when(pl.col("event_name").is_in(CART_EVENTS)).then(pl.lit(IMPLICIT_CART))
    return pl.coalesce(pl.col("cart_id"), implicit).alias("cart_id")


def _lines(ev: pl.DataFrame, items: pl.DataFrame) -> pl.DataFrame:
    """Cart lines per (cart, product): units added and removed, product details as of the last event (the
    products a checkout listed too: `items`, ITEM_SCHEMA, none added or removed); and their moves
    (MOVE_STATE: the units each cart event put in or took out, per moment)."""
    cart = ev.filter(pl.col("event_name").is_in(CART_EVENTS)).with_columns(cart_of())
    quantity = pl.col("quantity").fill_null(1).clip(lower_bound=0)
    added = pl.col("event_name").is_in(ADDED_EVENTS)
    removed = pl.col("event_name") == "Product Removed"
    touched = ["principal", "cart_id", "product_id", "event_ts", "event_id", *(c for c, _ in LINE_DETAILS)]
    counted = cart.select(
        *touched,
        pl.when(added).then(quantity).otherwise(0).alias("_added"),
        pl.when(removed).then(quantity).otherwise(0).alias("_removed"),
    )
    zero = pl.lit(0, dtype=counted.schema["_added"])
    listed = items.select(*touched, zero.alias("_added"), zero.alias("_removed"))
    # At one moment, the details as the merge picks them (`baskets.fold_lines`), not by message id: else a
    # `Product Added` and a checkout of one product at one moment (a "buy now") gave one price in a batch
    # and another when they landed apart (found by review: the live store and a rebuild differed).
    ties = [{a: c for c, a in LINE_DETAILS}[t] for t in LINE_TIES]
    lines = (
        pl.concat([counted, listed])
        .sort("event_ts", *ties, nulls_last=False)
        .group_by("principal", "cart_id", "product_id")
        .agg(
            *[pl.col(c).drop_nulls().last().alias(a) for c, a in LINE_DETAILS],
            pl.col("_added").sum().alias("added"),
            pl.col("_removed").sum().alias("removed"),
            pl.col("event_ts").max().alias("last_ts"),
        )
    )
    signed = pl.when(added).then(quantity).otherwise(-quantity).alias("units")
    moves = line_moves(
        cart.select("principal", "cart_id", "product_id", pl.col("event_ts").alias("ts"), signed)
    )
    return nest(lines, "lines", LINE_STATE).join(nest(moves, "moves", MOVE_STATE), on="principal", how="left")


def _carts(ev: pl.DataFrame) -> pl.DataFrame:
    """Per cart: the last change (a cart event, or a checkout naming it that listed products: `_listed`),
    the last checkout start and the first order."""
    changes = pl.col("event_name").is_in(CART_EVENTS) | pl.col("_listed")
    carts = (
        ev.filter(pl.col("cart_id").is_not_null() | pl.col("event_name").is_in(CART_EVENTS))
        .with_columns(cart_of())
        .group_by("principal", "cart_id")
        .agg(
            pl.col("event_ts").filter(changes).max().alias("changed_at"),
            pl.col("event_ts").filter(pl.col("event_name") == "Checkout Started").max().alias("checkout_at"),
            pl.col("event_ts").filter(pl.col("event_name") == "Order Completed").min().alias("ordered_at"),
        )
    )
    return nest(carts, "carts", CART_STATE)


def _orders(ev: pl.DataFrame) -> pl.DataFrame:
    """Distinct orders (the same order_id twice is one order: the first sighting wins; an order without
    an order_id is one order all the same, keyed by its message id, so that it exits carts and checkouts).
    """
    completed = ev.filter(pl.col("event_name") == "Order Completed")
    orders = completed.with_columns(
        pl.col("products").map_batches(order_products, ORDER_PRODUCTS).alias("_products"),
        order_revenue(completed).alias("revenue"),  # revenue, else total, subtotal, products[]
    ).with_columns(
        pl.coalesce("order_id", pl.lit("msg:") + pl.col("event_id")).alias("order_id"),
        pl.col("_products").list.eval(pl.element().struct.field("product_id")).alias("products"),
        pl.col("_products").list.eval(pl.element().struct.field("category")).alias("categories"),
        pl.col("event_ts").alias("ordered_at"),
        currency_code(pl.col("currency")).alias("currency"),
    )
    return nest(first_orders(orders), "orders", ORDER_STATE)


def _views(ev: pl.DataFrame) -> pl.DataFrame:
    views = ev.filter((pl.col("event_name") == "Product Viewed") & pl.col("product_id").is_not_null()).select(
        "principal", pl.col("event_ts").alias("ts"), "product_id", "category"
    )
    return nest(top_recent(views, VIEW_STATE), "views", VIEW)


def _searches(ev: pl.DataFrame) -> pl.DataFrame:
    searches = ev.filter(
        (pl.col("event_name") == "Products Searched") & pl.col("query").is_not_null()
    ).select("principal", pl.col("event_ts").alias("ts"), "query")
    return nest(top_recent(searches, RECENT_SEARCHES), "searches", SEARCH)


def _categories(ev: pl.DataFrame) -> pl.DataFrame:
    counts = (
        ev.filter(pl.col("category").is_not_null())
        .group_by("principal", "category")
        .agg(pl.len().cast(pl.Int64).alias("n"))
    )
    return nest(counts, "categories", CATEGORY_COUNT)

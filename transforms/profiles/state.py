"""The partial state of a profile: its columns (PARTIAL_SCHEMA), and the shapes the fold and its merge share.

A partial is one row per principal (`transforms.principals`: a user's, or `anon:<anonymous_id>` before an
identify); its list columns hold per-cart, per-checkout, per-order and recent-activity structs
(`transforms.profiles.partials`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from transforms.schema import UTC_TS

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ENGAGEMENT_HALF_LIFE = timedelta(days=7)
RECENT_VIEWS, RECENT_SEARCHES, VIEW_STATE = 10, 10, 50
TRAITS = ("email", "first_name", "timezone", "locale", "marketing_consent")
# Traits and the consent object's say on marketing (transforms.profiles.traits): each kept with its time
# (`<name>_ts`), the last statement by event time winning; `category_consent` has no CRM column.
STATED = (*TRAITS, "category_consent")
# Events that put a product in the cart: Segment's `Wishlist Product Added to Cart` moves a wishlist item into
# the cart (`product_id`, `cart_id`, `quantity`, ...), for the cart as a `Product Added` (found by review).
ADDED_EVENTS = ("Product Added", "Wishlist Product Added to Cart")
CART_EVENTS = (*ADDED_EVENTS, "Product Removed")
# Events of a shopper's interest in a product, for back_in_stock and price_drop: viewed or carted.
VIEWED_OR_CARTED = ("Product Viewed", *ADDED_EVENTS)
# The cart of a shopper's cart events that name none (`cart_id` is optional in Segment's e-commerce spec):
# one cart per shopper, kept under this id like a named one. Not the shopper's id: the `cart_id` of
# `profiles` and the `anchor` of `triggers` show it as it is. Any order of the shopper empties it (it has
# no id an order could name: `transforms.profiles.derive.cart_rows`); its trigger ids name the shopper
# (`transforms.triggers.rules.carts`).
IMPLICIT_CART = "implicit"

LINE_STATE = pl.Struct(
    {
        "cart_id": pl.String(),
        "product_id": pl.String(),
        "name": pl.String(),
        "category": pl.String(),
        "price": pl.Float64(),
        "image_url": pl.String(),
        "url": pl.String(),
        "added": pl.Int64(),
        "removed": pl.Int64(),
        "last_ts": UTC_TS,
    }
)
# Product details of a cart line: (events column, LINE_STATE field), the last known value wins.
LINE_DETAILS = (
    ("product_name", "name"),
    ("category", "category"),
    ("price", "price"),
    ("image_url", "image_url"),
    ("url", "url"),
)
# A cart line's moves: the units it gained (`Product Added`, +quantity) and lost (`Product Removed`,
# -quantity) at each moment, per (cart_id, product_id, ts), so that what is left of a line after its cart's
# latest order can be counted whenever that order arrives, late ones included (`derive.line_units`).
# Bounded: a line keeps its MOVES_PER_LINE latest moments; older ones are one move at the latest of them,
# their sum (`line_moves`). Exact unless a line changes at more than MOVES_PER_LINE moments after its cart's
# latest order: then its older moves count as made at the latest of them, as a line folded before moves
# existed counts all its units (`derive.line_units`).
MOVE_STATE = pl.Struct({"cart_id": pl.String(), "product_id": pl.String(), "ts": UTC_TS, "units": pl.Int64()})
MOVES_PER_LINE = 16
CART_STATE = pl.Struct(
    {"cart_id": pl.String(), "changed_at": UTC_TS, "checkout_at": UTC_TS, "ordered_at": UTC_TS}
)
# A checkout as Segment's spec sends it: `Checkout Started` names its cart, its checkout or its order,
# or nothing at all (transforms.profiles.checkouts).
CHECKOUT_STATE = pl.Struct(
    {
        "checkout_key": pl.String(),  # the cart's id, else checkout_id, else order_id, else `msg:<messageId>`
        "checkout_id": pl.String(),
        "order_id": pl.String(),
        "cart_id": pl.String(),
        "started_at": UTC_TS,  # the latest `Checkout Started` of it
    }
)
# The products of a cart's latest `Checkout Started` that listed some (Segment's spec sends the checkout's
# `products[]`): the cart as it was at checkout time (transforms.profiles.baskets). They replace the cart's
# lines at that moment, and the cart's moves after it apply on top (`carts.line_units`). `cart_id` null:
# the checkout named no cart; it is the shopper's open cart then (`baskets.checkout_carts`). Per cart only
# the lines of its latest checkout are kept (by `started_at`, then `checkout`), so partials merge in any
# order to the same list.
CHECKOUT_LINE_STATE = pl.Struct(
    {
        "cart_id": pl.String(),
        "product_id": pl.String(),
        "started_at": UTC_TS,
        "checkout": pl.String(),  # the checkout's messageId: of two at one moment, the greater's lines
        "units": pl.Int64(),  # its quantities of the product, summed (1 when not stated)
    }
)
# The ids a `Checkout Started` naming a cart named with it (its checkout_id, its order_id): an order naming
# no cart is of each cart a checkout of the shopper named with the order's checkout_id or order_id (Segment's
# spec puts those on orders, `cart_id` on checkouts at most: `carts.order_carts`). Distinct rows, a set.
CART_CHECKOUT_STATE = pl.Struct({"cart_id": pl.String(), "checkout_id": pl.String(), "order_id": pl.String()})
ORDER_STATE = pl.Struct(
    {
        "order_id": pl.String(),  # the shop's order id, else `msg:<messageId>` (an order all the same)
        "cart_id": pl.String(),
        "checkout_id": pl.String(),
        "revenue": pl.Float64(),  # revenue, else total, subtotal, its priced products (profiles.revenue)
        "ordered_at": UTC_TS,
        "products": pl.List(pl.String()),
        "categories": pl.List(pl.String()),
        "currency": pl.String(),  # ISO 4217 as written, stripped and in upper case (a refund's must match)
    }
)
# A refund or cancellation of an order (Segment's `Order Refunded` / `Order Cancelled`), one per message:
# what nets an order's revenue (transforms.profiles.refunds), for its profile, post_purchase and the reports.
REFUND_STATE = pl.Struct(
    {
        "order_id": pl.String(),  # the order it refunds: the shopper's order of that id
        "refund_id": pl.String(),  # its messageId: the same message landing again is the same refund
        "cancelled": pl.Boolean(),  # `Order Cancelled`: the whole order, whatever the amount
        "amount": pl.Float64(),  # as an order's revenue is read (profiles.revenue); null: the whole order
        "currency": pl.String(),
        "refunded_at": UTC_TS,
    }
)
VIEW = pl.Struct({"ts": UTC_TS, "product_id": pl.String(), "category": pl.String()})
SEARCH = pl.Struct({"ts": UTC_TS, "query": pl.String()})
# The recent lists' entry fields: most recent first is these fields in order, descending, nulls last
# (`top_recent`'s cut); a list itself may be in any order (the store keeps them in `canonical` order).
RECENT_ORDER = {"views": tuple(f.name for f in VIEW.fields), "searches": tuple(f.name for f in SEARCH.fields)}
CATEGORY_COUNT = pl.Struct({"category": pl.String(), "n": pl.Int64()})

PARTIAL_SCHEMA: dict[str, pl.DataType] = {
    "principal": pl.String(),
    "first_ts": UTC_TS,
    "last_ts": UTC_TS,
    **{column: dtype for t in STATED for column, dtype in ((t, pl.String()), (f"{t}_ts", UTC_TS))},
    "identified_at": UTC_TS,  # the first identify with an email
    # The first message that said yes to marketing (a consent trait or the consent object): with
    # identified_at and the CRM row, when the welcome is due (transforms.triggers.rules.lifecycle).
    "consented_at": UTC_TS,
    "unsubscribed_at": UTC_TS,
    "lines": pl.List(LINE_STATE),
    "moves": pl.List(MOVE_STATE),  # added after `lines`: a state folded before reads it as empty
    "carts": pl.List(CART_STATE),
    "checkouts": pl.List(CHECKOUT_STATE),
    "checkout_lines": pl.List(CHECKOUT_LINE_STATE),  # added later: a state folded before reads it as empty
    "cart_checkouts": pl.List(CART_CHECKOUT_STATE),  # added later: a state folded before reads it as empty
    "orders": pl.List(ORDER_STATE),
    "refunds": pl.List(REFUND_STATE),
    "views": pl.List(VIEW),
    "searches": pl.List(SEARCH),
    "categories": pl.List(CATEGORY_COUNT),
    "engagement": pl.Float64(),  # log of sum(exp((ts - EPOCH) / half-life)) over events
}


def tau(column: str) -> pl.Expr:
    """`column`'s time in engagement half-lives since EPOCH."""
    seconds = (pl.col(column) - pl.lit(EPOCH, dtype=UTC_TS)).dt.total_microseconds() / 1e6
    return seconds / ENGAGEMENT_HALF_LIFE.total_seconds()


def log_sum_exp(expr: pl.Expr) -> pl.Expr:
    """log(sum(exp(expr))) without overflow: how engagement adds up."""
    top = expr.max()
    return top + (expr - top).exp().sum().log()


def first_orders(orders: pl.DataFrame) -> pl.DataFrame:
    """One row per (principal, order_id): the earliest sighting, ties broken by content."""
    order = ("ordered_at", "cart_id", "checkout_id", "revenue", "currency")
    return orders.sort(order, nulls_last=True).unique(
        ["principal", "order_id"], keep="first", maintain_order=True
    )


def latest_statement(rows: pl.DataFrame, present: pl.Expr, value: str, at: str, name: str) -> pl.DataFrame:
    """Per principal among the `present` rows: `name`, the `value` of its latest row by `at` (ties: the
    greatest value), and `<name>_ts`, that time. One sort of the rows, not one per principal (#17)."""
    stating = rows.filter(present).select(
        "principal", pl.col(value).alias(name), pl.col(at).alias(f"{name}_ts")
    )
    stamp = pl.col(f"{name}_ts")
    return stating.sort(stamp, name).group_by("principal").agg(pl.col(name).last(), stamp.max())


def line_moves(moves: pl.DataFrame) -> pl.DataFrame:
    """`moves` (principal, cart_id, product_id, ts, units) as the state keeps them: one per line and moment,
    units summed; a line's moments past its MOVES_PER_LINE latest as one move at the latest of them, their
    sum. Associative and commutative: the cut falls where it would over all the moves at once, as a line's
    cut-off moments are behind MOVES_PER_LINE of its moments wherever they are merged again."""
    line = ["principal", "cart_id", "product_id"]
    summed = moves.group_by(*line, "ts").agg(pl.col("units").sum())
    if summed.height <= MOVES_PER_LINE:  # no line can have more
        return summed
    crowded = summed.with_columns((pl.len().over(line) > MOVES_PER_LINE).alias("_crowded"))
    if not crowded["_crowded"].any():  # a rank of every line's moments costs 6x this check (#17)
        return summed
    many = crowded.filter("_crowded").drop("_crowded")
    ranked = many.with_columns(pl.col("ts").rank("ordinal", descending=True).over(line).alias("_rank"))
    older = ranked.filter(pl.col("_rank") > MOVES_PER_LINE)
    folded = older.group_by(line).agg(pl.col("ts").max(), pl.col("units").sum())
    kept = ranked.filter(pl.col("_rank") <= MOVES_PER_LINE).drop("_rank")
    return pl.concat(
        [crowded.filter(~pl.col("_crowded")).drop("_crowded"), kept, folded.select(summed.columns)]
    )


def top_recent(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` most recent rows per principal (ties by content, so the cut is deterministic)."""
    order = [c for c in frame.columns if c != "principal"]
    return (
        frame.unique()
        .sort(order, descending=True, nulls_last=True)
        .group_by("principal", maintain_order=True)
        .head(n)
    )


def nest(frame: pl.DataFrame, name: str, dtype: pl.Struct) -> pl.DataFrame:
    """`frame`'s rows as a list column `name` of `dtype` structs, one row per principal."""
    fields = [f.name for f in dtype.fields]
    return frame.group_by("principal").agg(pl.struct(fields).alias(name))


def fill_lists(frame: pl.DataFrame) -> pl.DataFrame:
    """PARTIAL_SCHEMA's list columns of `frame` with an empty list where they are null."""
    lists = [c for c, t in PARTIAL_SCHEMA.items() if isinstance(t, pl.List)]
    return frame.with_columns(
        pl.col(c).fill_null(pl.lit([], dtype=PARTIAL_SCHEMA[c])) for c in lists if c in frame.columns
    )


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with PARTIAL_SCHEMA's columns, in its order and types."""
    return frame.select([pl.col(c).cast(t) for c, t in PARTIAL_SCHEMA.items()])


def canonical(state: pl.DataFrame) -> pl.DataFrame:
    """`state` with each list column's elements in sorted order (nulls last): the merge treats them as
    sets and leaves their order to the grouping, so the same state is always stored as the same bytes.

    Each list's elements sorted in one sort of them all, by row and then value, not one sort per list:
    `list.eval` paid a fixed cost per list (a backlog group's 9k states: 0.11 against 0.28 CPU-s, #17)."""
    rows = pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
    every = state.select(rows)
    lists = [c for c, t in PARTIAL_SCHEMA.items() if isinstance(t, pl.List)]
    fixed = []
    for column in lists:
        items = state.select(rows, column).explode(column, keep_nulls=False)  # empty and null lists: none
        by_row = items.sort("_row", column, nulls_last=True).group_by("_row", maintain_order=True)
        ordered = by_row.agg(column)
        sorted_lists = every.join(ordered, on="_row", how="left", maintain_order="left")[column]
        fixed.append(pl.coalesce(sorted_lists, state[column]).alias(column))  # empty or null: as it was
    return state.with_columns(fixed)

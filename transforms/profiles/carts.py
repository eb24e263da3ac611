"""A shopper's carts as the merged state tells them: each cart's last change and latest order, the open cart,
and the units left in each line. The profile's cart (`transforms.profiles.derive`) and the cart and checkout
rules (`transforms.triggers.rules.carts`) read them alike.

A line's units are counted from a cut: the cart's latest order, which took what the cart held then, or the
cart's latest checkout that listed its products (CHECKOUT_LINE_STATE), which says what it held then: that
checkout's quantities, and the moves after it on top (`line_units`).
"""

from __future__ import annotations

import polars as pl

from transforms.profiles.state import IMPLICIT_CART


def cart_rows(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """One row per cart of each shopper (`key`) of `frame` (its `carts`, `orders`, `lines`, `checkout_lines`,
    `cart_checkouts`, `checkouts` lists): cart_id, changed_at, checkout_at, and `ordered_at` the cart's
    latest order, the latest of the orders of it (naming it, or its checkout naming it: `order_carts`) and
    the first one its fold saw. A shop that keeps the cart id across orders reuses it: what happens to the
    cart after its latest order is a new cart (`open_carts`, `line_units`). The implicit cart (IMPLICIT_CART:
    cart events naming no cart) is emptied by any order of the shopper, which it has no id to be named by,
    and is a cart only once something was added to it (or a checkout listed its products): a removal naming
    no cart alone (a shop naming its carts on adds only) leaves the shopper's named cart the open one."""
    carts = frame.select(key, "carts").explode("carts").drop_nulls("carts").unnest("carts")
    orders = frame.select(key, "orders").explode("orders").drop_nulls("orders").unnest("orders")
    placed = orders.filter(pl.col("ordered_at").is_not_null())
    latest = (
        order_carts(frame, placed, key)
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


def order_carts(frame: pl.DataFrame, orders: pl.DataFrame, key: str) -> pl.DataFrame:
    """`key`, `cart_id`, `ordered_at`: the carts of `orders` (ORDER_STATE rows of `frame`'s shoppers `key`).
    An order's cart is the one it names; an order naming none is of each cart a `Checkout Started` of the
    shopper named with the order's checkout_id or its order_id (`cart_checkouts`, and the `checkouts` naming
    a cart, a state's only record of them when folded before that list), whatever their times: it ends the
    cart exactly as an order naming it would (Segment's spec puts `checkout_id` / `order_id` on orders, the
    `cart_id` on the checkout at most; found by review: the cart stayed open with what was bought)."""
    ended = orders.select(key, "cart_id", "ordered_at")
    unnamed = orders.filter(pl.col("cart_id").is_null())
    if unnamed.height == 0:
        return ended.filter(pl.col("cart_id").is_not_null())
    ids = ["cart_id", "checkout_id", "order_id"]
    theirs = frame.filter(pl.col(key).is_in(unnamed[key].unique().implode()))
    listed = [
        theirs.select(key, c).explode(c).drop_nulls(c).unnest(c) for c in ("cart_checkouts", "checkouts")
    ]
    links = pl.concat([rows.select(key, *ids) for rows in listed]).filter(pl.col("cart_id").is_not_null())
    linked = [
        unnamed.select(key, name, "ordered_at")
        .drop_nulls(name)
        .join(links.select(key, "cart_id", name).drop_nulls().unique(), on=[key, name])
        .select(key, "cart_id", "ordered_at")
        for name in ("checkout_id", "order_id")
    ]
    return pl.concat([ended.filter(pl.col("cart_id").is_not_null()), *linked])


def _filled_implicit(frame: pl.DataFrame, key: str) -> pl.Series:
    """The shoppers (`key`) of `frame` whose implicit cart ever had a unit added, or a checkout's products."""
    lines = frame.select(key, "lines").explode("lines").drop_nulls("lines")
    line = pl.col("lines").struct
    added = lines.filter((line.field("cart_id") == IMPLICIT_CART) & (line.field("added") > 0))[key]
    listed = frame.select(key, "checkout_lines").explode("checkout_lines").drop_nulls("checkout_lines")
    checked_out = listed.filter(pl.col("checkout_lines").struct.field("cart_id") == IMPLICIT_CART)[key]
    return pl.concat([added, checked_out]).unique()


def open_carts(carts: pl.DataFrame, key: str) -> pl.DataFrame:
    """Per shopper (`key`), the open cart: of `carts` (`cart_rows`), the one without an order since its
    last change changed last, ties by cart id (descending); `key`, `cart_id`, `changed_at`, `ordered_at`.
    An emptied cart stays open (it has no lines to show); a cart only a checkout without products named
    never is; a cart changed after its order is open again. The profile's cart, and so the email's; the cart
    and checkout rules' exits read it too (rules/carts.py)."""
    ordered = (pl.col("ordered_at") >= pl.col("changed_at")).fill_null(False)
    return (
        carts.filter(pl.col("changed_at").is_not_null() & ~ordered)
        .sort("changed_at", "cart_id", descending=True)
        .unique(key, keep="first")
        .select(key, "cart_id", "changed_at", "ordered_at")
    )


def units_left(cut: pl.Expr) -> pl.Expr:
    """Whether a cart line (`last_ts`) was touched after the cart's `cut` (its latest order, which took what
    it held then, or its checkout, which said what it held); true when either is null."""
    return ~(pl.col("last_ts") <= cut).fill_null(False)


def latest_checkout_lines(rows: pl.DataFrame, key: str) -> pl.DataFrame:
    """Of CHECKOUT_LINE_STATE rows (with `key`), those of each cart's latest checkout: the latest
    `started_at`, then the greatest `checkout` (associative and commutative: the fold's merge)."""
    cart = [key, "cart_id"]
    latest = rows.filter(pl.col("started_at") == pl.col("started_at").max().over(cart))
    return latest.filter(pl.col("checkout") == pl.col("checkout").max().over(cart)).unique()


def line_units(lines: pl.DataFrame, moves: pl.DataFrame, baskets: pl.DataFrame, key: str) -> pl.DataFrame:
    """`lines` (`key`, cart_id, product_id, added, removed, last_ts and `ordered_at`, the cart's latest order)
    with `units`: what is in the line after the cart's cut (`ordered_at`, or the start of the cart's latest
    checkout listing products, `baskets` rows of CHECKOUT_LINE_STATE, when it came after that order), less
    what was taken out after it: the checkout's quantity (0 after an order), then the line's `moves`
    (MOVE_STATE rows of `key`) after the cut; may be negative. So a product carted before the order and again
    after it counts only the units carted after, and a checkout's products are the cart at checkout time.
    Units the moves do not account for (a line folded before moves existed, `added - removed - moved`)
    count as made at the line's last touch (`units_left`), as they always did."""
    line, cart = [key, "cart_id", "product_id"], [key, "cart_id"]
    latest = latest_checkout_lines(baskets.select(*line, "started_at", "checkout", "units"), key)
    resets = latest.group_by(cart).agg(pl.col("started_at").max().alias("_reset"))
    base = latest.group_by(line).agg(pl.col("units").sum().alias("_base"))
    reset = pl.col("_reset").is_not_null() & (
        pl.col("ordered_at").is_null() | (pl.col("_reset") > pl.col("ordered_at"))
    )
    cut = pl.when(pl.col("_reset_valid")).then(pl.col("_reset")).otherwise(pl.col("ordered_at"))
    cuts = (
        lines.join(resets, on=cart, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(reset.alias("_reset_valid"))
        .with_columns(cut.alias("_cut"))
    )
    after = pl.col("_cut").is_null() | (pl.col("ts") > pl.col("_cut"))
    moved = (
        moves.select(*line, "ts", "units")
        .join(cuts.select(*line, "_cut"), on=line, how="inner", nulls_equal=True)
        .group_by(line)
        .agg(pl.col("units").filter(after).sum().alias("_after"), pl.col("units").sum().alias("_moved"))
    )
    joined = cuts.join(moved, on=line, how="left", nulls_equal=True, maintain_order="left").join(
        base, on=line, how="left", nulls_equal=True, maintain_order="left"
    )
    rest = pl.col("added") - pl.col("removed") - pl.col("_moved").fill_null(0)
    listed = pl.when(pl.col("_reset_valid")).then(pl.col("_base").fill_null(0)).otherwise(0)
    untold = pl.when(units_left(pl.col("_cut"))).then(rest).otherwise(0)
    units = listed + pl.col("_after").fill_null(0) + untold
    return joined.with_columns(units.alias("units")).drop(
        "_reset", "_reset_valid", "_cut", "_after", "_moved", "_base"
    )

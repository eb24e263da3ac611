"""A checkout's products as its cart's lines: Segment e-commerce v2's `Checkout Started` lists `products[]`
(`product_id`, `name`, `price`, `quantity`, ...), and some shops track checkouts without `Product Added`.

The rule (found by review: such a shopper's abandoned_checkout email was aborted `empty_cart`): a checkout
that lists products says what its cart holds at checkout time. Its products replace the lines of the cart
it names (`cart_id`), or of the shopper's open cart when it names none (the implicit cart when the shopper
has none open); `Product Added` / `Removed` after it apply on top (`transforms.profiles.carts.line_units`).
An order of the cart (or, for a checkout naming no cart, any order of the shopper) at or after the checkout
ends it, as it ends the cart. A product without a `product_id` is left out (no catalog row or cart line
could be its).

The fold keeps per cart the lines of its latest such checkout (CHECKOUT_LINE_STATE), their details in
`lines` (as a cart event's, no units added or removed), and the checkout as a change of a cart it names.
A checkout naming no cart is kept under a null cart id: which cart was open then is known only once every
partial is merged, so `checkout_carts` puts it in its cart when profiles and rules read the state.
"""

from __future__ import annotations

import polars as pl

from transforms.ingest.numbers import to_int64
from transforms.profiles.carts import cart_rows, latest_checkout_lines, open_carts
from transforms.profiles.products import decode_products
from transforms.profiles.state import (
    CART_STATE,
    CHECKOUT_LINE_STATE,
    IMPLICIT_CART,
    LINE_DETAILS,
    LINE_STATE,
    nest,
)
from transforms.schema import UTC_TS

STARTED = "Checkout Started"
_TEXTS = ("product_id", "name", "category", "price", "quantity", "image_url", "url")
# A line's details in the order that breaks ties between lines touched at one moment (`fold_lines`, and a
# batch's cart events and checkouts: `partials._lines`).
LINE_TIES = ("name", "price", "category", "image_url", "url")
CHECKOUT_PRODUCTS = pl.List(pl.Struct(dict.fromkeys(_TEXTS, pl.String())))
# A checkout's product as a cart event's columns (partials._lines): the events' names of the line details.
ITEM_SCHEMA: dict[str, pl.DataType] = {
    "principal": pl.String(),
    "cart_id": pl.String(),
    "event_id": pl.String(),
    "event_ts": UTC_TS,
    "product_id": pl.String(),
    "product_name": pl.String(),
    "category": pl.String(),
    "price": pl.Float64(),
    "image_url": pl.String(),
    "url": pl.String(),
    "units": pl.Int64(),
}


def checkout_items(ev: pl.DataFrame) -> pl.DataFrame:
    """The products of the `Checkout Started` events of `ev` (with a `principal`) that have a `product_id`,
    one row each (ITEM_SCHEMA): only checkouts' texts are decoded, in one vectorised read (each alone only
    when that fails, as orders' are: `products.decode_products`)."""
    started = ev.filter((pl.col("event_name") == STARTED) & pl.col("products").is_not_null())
    if started.height == 0:
        return pl.DataFrame(schema=ITEM_SCHEMA)
    decoded = started.select(
        "principal",
        "cart_id",
        "event_id",
        "event_ts",
        decode_products(started["products"], CHECKOUT_PRODUCTS),
    )
    items = decoded.explode("products").drop_nulls("products").unnest("products")
    product_id = pl.col("product_id").str.strip_chars()
    price = pl.col("price").cast(pl.Float64, strict=False)
    return items.filter(product_id != "").select(
        "principal",
        "cart_id",
        "event_id",
        "event_ts",
        "product_id",
        pl.col("name").alias("product_name"),
        "category",
        pl.when(price.is_finite()).then(price).alias("price"),
        "image_url",
        "url",
        to_int64(pl.col("quantity")).fill_null(1).clip(lower_bound=0).alias("units"),
    )


def checkout_line_partials(items: pl.DataFrame) -> pl.DataFrame:
    """`principal`, `checkout_lines` (CHECKOUT_LINE_STATE) from a batch's `checkout_items`: per cart (null:
    none named) the products of its latest checkout, each product's units summed."""
    rows = items.group_by("principal", "cart_id", "event_ts", "event_id", "product_id").agg(
        pl.col("units").sum()
    )
    named = rows.rename({"event_ts": "started_at", "event_id": "checkout"})
    return nest(latest_checkout_lines(named, "principal"), "checkout_lines", CHECKOUT_LINE_STATE)


def merge_checkout_lines(partial: pl.DataFrame) -> pl.DataFrame:
    """Partials' `checkout_lines` merged per principal: each cart's latest checkout's."""
    rows = (
        partial.select("principal", "checkout_lines").explode("checkout_lines").drop_nulls("checkout_lines")
    )
    latest = latest_checkout_lines(rows.unnest("checkout_lines"), "principal")
    return nest(latest, "checkout_lines", CHECKOUT_LINE_STATE)


def fold_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """LINE_STATE rows (with `principal`) merged per cart and product: units summed, the last touch, each
    detail as of the latest line stating it (ties: by the details, so any grouping gives the same)."""
    return (
        lines.sort("last_ts", *LINE_TIES, nulls_last=False)
        .group_by("principal", "cart_id", "product_id")
        .agg(
            *[pl.col(a).drop_nulls().last() for _, a in LINE_DETAILS],
            pl.col("added").sum(),
            pl.col("removed").sum(),
            pl.col("last_ts").max(),
        )
    )


def fold_carts(carts: pl.DataFrame) -> pl.DataFrame:
    """CART_STATE rows (with `principal`) merged per cart: the last change and checkout, the first order."""
    return carts.group_by("principal", "cart_id").agg(
        pl.col("changed_at").max(), pl.col("checkout_at").max(), pl.col("ordered_at").min()
    )


def _cartless(frame: pl.DataFrame) -> pl.DataFrame:
    """Per principal of `frame`, the start of its checkout naming no cart (`_started`) that no order of the
    shopper at or after it ended, and the cart it is for (`_cart`): the open cart, else the implicit one."""
    listed = (
        frame.select("principal", "checkout_lines").explode("checkout_lines").drop_nulls("checkout_lines")
    )
    line = pl.col("checkout_lines").struct
    cartless = listed.filter(line.field("cart_id").is_null())
    started = (
        cartless.group_by("principal").agg(line.field("started_at").max().alias("_started")).drop_nulls()
    )
    if started.height == 0:
        return started.with_columns(pl.lit(None, dtype=pl.String).alias("_cart"))
    orders = frame.select("principal", "orders").explode("orders").drop_nulls("orders")
    last = orders.group_by("principal").agg(
        pl.col("orders").struct.field("ordered_at").max().alias("_ordered")
    )
    live = started.join(last, on="principal", how="left").filter(
        ~(pl.col("_ordered") >= pl.col("_started")).fill_null(False)
    )
    theirs = frame.filter(pl.col("principal").is_in(live["principal"].implode()))
    opened = open_carts(cart_rows(theirs, "principal"), "principal").select(
        "principal", pl.col("cart_id").alias("_cart")
    )
    return live.join(opened, on="principal", how="left").select(
        "principal", "_started", pl.coalesce("_cart", pl.lit(IMPLICIT_CART)).alias("_cart")
    )


def checkout_carts(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """`frame` (merged states of shoppers `key`) with each shopper's checkout naming no cart put in the cart
    it was for (`_cartless`): its lines and line details under that cart's id, the cart changed at its start.
    A checkout an order ended stays as it is (under no cart: no cart reads it). Idempotent; only the
    shoppers with such a checkout are read again."""
    named = frame.rename({key: "principal"}) if key != "principal" else frame
    for_cart = _cartless(named)
    if for_cart.height == 0:
        return frame
    theirs = named.filter(pl.col("principal").is_in(for_cart["principal"].implode()))
    into = pl.when(pl.col("cart_id").is_null()).then(pl.col("_cart")).otherwise(pl.col("cart_id"))

    def moved(column: str) -> pl.DataFrame:
        rows = theirs.select("principal", column).explode(column).drop_nulls(column).unnest(column)
        placed = rows.join(for_cart, on="principal", how="left").with_columns(into.alias("cart_id"))
        return placed.drop("_started", "_cart")

    changed = for_cart.select(
        "principal",
        pl.col("_cart").alias("cart_id"),
        pl.col("_started").alias("changed_at"),
        *[pl.lit(None, dtype=UTC_TS).alias(c) for c in ("checkout_at", "ordered_at")],
    )
    carts = theirs.select("principal", "carts").explode("carts").drop_nulls("carts").unnest("carts")
    lists = {
        "lines": (fold_lines(moved("lines")), LINE_STATE),
        "checkout_lines": (latest_checkout_lines(moved("checkout_lines"), "principal"), CHECKOUT_LINE_STATE),
        "carts": (fold_carts(pl.concat([carts, changed])), CART_STATE),
    }
    placed = for_cart.select("principal", pl.lit(True).alias("_placed"))
    for name, (rows, dtype) in lists.items():
        placed = placed.join(nest(rows, f"_{name}", dtype), on="principal", how="left")
    joined = named.join(placed, on="principal", how="left", maintain_order="left")
    hit = pl.col("_placed").fill_null(False)
    empty = {name: pl.lit([], dtype=pl.List(dtype)) for name, (_, dtype) in lists.items()}
    swapped = [
        pl.when(hit)
        .then(pl.col(f"_{c}").fill_null(empty[c]))
        .otherwise(pl.col(c))
        .cast(named.schema[c])
        .alias(c)
        for c in lists
    ]
    out = joined.with_columns(swapped).select(named.columns)
    return out.rename({"principal": key}) if key != "principal" else out

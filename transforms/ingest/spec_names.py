"""Segment's spec names as Segment's own destinations read them: event names and the keyed ids.

lakemail decides on the e-commerce v2 and Email spec names exactly (`Order Completed` ends a cart). Real
sources send variants that Segment's destinations take for the same event: analytics.js's facade matches
`/^[ _]?order[ _]?completed[ _]?$/i` and v1's `Completed Order` alike (segmentio/analytics-events), and its
property reader (obj-case) finds `order_id` and `orderId` alike. So the ingest stores the spec's name for
such a variant in `event_name`, and reads a keyed id's camelCase spelling when the snake_case one names
none; `properties` keeps the text as sent. Any other name is kept as sent.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

# The spec names lakemail decides on or counts (PRODUCT.md; transforms/profiles, measure, sends, stores/):
# e-commerce v2 (segment-docs spec/ecommerce/v2.md) and the Email spec's (spec/email.md).
SPEC_NAMES = (
    "Products Searched",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Wishlist Product Added to Cart",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "Order Refunded",
    "Order Cancelled",
    "Email Link Clicked",
    "Email Bounced",
    "Email Marked as Spam",
    "Unsubscribed",
)
# Names from before v2 that Segment still reads as these: the v1 names v2.md gives each event as its alias
# (`Started Order` from its GA Enhanced E-Commerce destinations), and the action-first order in which
# analytics-events matches every v2 name (`Started Checkout`, `Viewed Cart`, `Refunded Order`, ...).
V1_NAMES = {
    "Searched Products": "Products Searched",
    "Viewed Product": "Product Viewed",
    "Added Product": "Product Added",
    "Removed Product": "Product Removed",
    "Viewed Cart": "Cart Viewed",
    "Started Checkout": "Checkout Started",
    "Started Order": "Checkout Started",
    "Completed Order": "Order Completed",
    "Refunded Order": "Order Refunded",
    "Cancelled Order": "Order Cancelled",
}
# Between words: a run of whitespace, `_` or `-`, or none (`order_completed`, `OrderCompleted`).
_SEPARATORS = r"[\s_-]+"
# The comparable form of a sent name (`_key`: lower case, no separators) -> the spec's name.
SPEC_KEYS = {
    name.lower().replace(" ", ""): spec for name, spec in [*V1_NAMES.items(), *((n, n) for n in SPEC_NAMES)]
}
# The properties' keyed ids (events.KEY_IDS) -> their camelCase spelling, read when the id names none.
CAMEL_IDS = {
    "cart_id": "cartId",
    "checkout_id": "checkoutId",
    "order_id": "orderId",
    "product_id": "productId",
}
# The camelCase ids as working columns of the properties' read (`_orderId`, ...), dropped once read.
CAMEL_COLUMNS: dict[str, tuple[str, pl.DataType]] = {
    camel: (f"_{camel}", pl.String()) for camel in CAMEL_IDS.values()
}

CAMEL_LOOK = "_camel_ids"


def camel_look() -> pl.Expr:
    """Whether a `properties` text may give a camelCase id: one of Polars' texts (the ones read, keys as
    they stand) names a key ending in `Id`. Reading CAMEL_COLUMNS costs the read of 200k properties 5 %
    (13 ms of CPU); this look, 10 ms."""
    return pl.col("properties").str.contains('Id"', literal=True).any().alias(CAMEL_LOOK)


def _key(names: pl.Series) -> pl.Series:
    """Each name's comparable form: lower case, without whitespace, `_` or `-` (Segment's destinations
    take `OrderCompleted` and `ordercompleted` for `Order Completed` too: the separator is optional)."""
    return names.str.replace_all(_SEPARATORS, "").str.to_lowercase()


def spec_event_names(names: pl.Series) -> pl.Series:
    """`names` (a track's `event`, null for the other types) with each variant of a spec name as the spec
    writes it. Only the distinct names not written so already are looked at: one `is_in` over the rows
    when every name is the spec's, and nothing written again unless one is a variant."""
    other = names.is_not_null() & ~names.is_in(SPEC_NAMES)
    if not other.any():
        return names
    sent = names.filter(other).unique()
    spec = _key(sent).replace_strict(SPEC_KEYS, default=None, return_dtype=pl.String)
    found = pl.DataFrame({"sent": sent, "spec": spec}).drop_nulls()
    if found.is_empty():
        return names
    return names.replace(found["sent"], found["spec"])


def spec_event_name(event: pl.Expr) -> pl.Expr:
    """`spec_event_names` as an expression over a column."""
    return event.map_batches(spec_event_names, return_dtype=pl.String)


def keyed_ids(lifted: pl.DataFrame, snakes: Sequence[str]) -> pl.DataFrame:
    """`lifted` (the properties' typed columns, and CAMEL_COLUMNS when read) with each keyed id of `snakes` as
    its snake_case text, else its camelCase one, and without CAMEL_COLUMNS. One of whitespace only names
    none (a blank `cart_id` made every shopper's blank cart one trigger instance). A camelCase id that no
    message sent is not looked at: most batches pay four null counts."""
    ids = {}
    for snake in snakes:
        camel = CAMEL_COLUMNS[CAMEL_IDS[snake]][0]
        sent = camel in lifted.columns and lifted[camel].null_count() < lifted.height
        ids[snake] = (pl.coalesce(_named(snake), _named(camel)) if sent else _named(snake)).alias(snake)
    working = {column for column, _ in CAMEL_COLUMNS.values()}
    # One select: `with_columns` then `drop` took 3x as long (30 ms for 200k rows, Polars 2.1).
    return lifted.select(ids.get(c, pl.col(c)) for c in lifted.columns if c not in working)


def _named(column: str) -> pl.Expr:
    """A text column, null where it is of whitespace only."""
    return pl.when(pl.col(column).str.strip_chars() != "").then(pl.col(column))

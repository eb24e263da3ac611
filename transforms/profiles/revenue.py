"""What an order (or a refund of one) is worth when its message says so in other words than `revenue`.

Segment's e-commerce v2 spec (segment-docs, spec/ecommerce/v2.md, `Order Completed`) gives an order
`revenue` ("excluding shipping and tax"), `total` ("revenue with discounts and coupons added in"; in the
spec's example, subtotal plus shipping and tax), `subtotal` ("order total after discounts but before taxes
and shipping") and `products[]` (`price`, `quantity`), and a shop sends some of them. Everywhere lakemail
counts an order's revenue (the profile's `lifetime_value`, `attributions`, `experiments`, `lakemail report`)
and a refund's amount, it is the first of these that the message states:

1. `revenue`;
2. else `total`, as Segment reads an order: its facade's `Track.revenue()` is `properties.revenue`, else, for
   an `Order Completed`, `properties.total` (segmentio/facade lib/track.js), what the analytics.js
   destinations report as revenue (Mixpanel, Amplitude, Intercom, ...); lakemail read it so before too;
3. else `subtotal` (like `revenue`, before taxes and shipping; Friendbuy's purchase action also falls back
   on it: total, else subtotal, else revenue);
4. else the sum of price x quantity (1 when not stated) of its priced `products[]` (a price or quantity
   given as a numeric text counts, as the lake reads its typed columns);
5. else none: null (the profile adds nothing, `attributions` credit 0).

A value is stated when it is a number, or a text the lake reads as one (Polars' cast: `"22.5"`), as the
typed columns `revenue` and `total` are lifted; 0 is stated (a free order is worth 0). It is taken as sent,
sign included, as `revenue` always was (a refund's amount is its absolute value: `refunds.refund_rows`). A
`revenue` or `total` that is no finite number is quarantined at ingest (`number_out_of_range`), as before;
`subtotal` is no typed column (an order keeps it in `properties` only), so one that is no finite number, or
no number, is not stated and the next source is read. The names are single words in the spec, so a
camelCase source spells them alike (transforms.ingest.spec_names reads camelCase keyed ids only).
"""

from __future__ import annotations

import math

import orjson
import polars as pl

from transforms.ingest.objects import read_objects

# The order in which a message's figures are read (the module's list): the first one stated wins.
SOURCES = ("revenue", "total", "subtotal", "products")
# The events whose worth lakemail reads: orders, and their refunds and cancellations (profiles.refunds).
VALUED_EVENTS = ("Order Completed", "Order Refunded", "Order Cancelled")


def reads_properties() -> pl.Expr:
    """Per `events` row, whether `order_revenue` may read its `properties` (for its `subtotal`): an order, a
    refund or a cancellation that states neither `revenue` nor `total` (the ingest's partials keep the
    `properties` of these rows only: stores.state.batch.partial_rows)."""
    unstated = pl.col("revenue").is_null() & pl.col("total").is_null()
    return pl.col("event_name").is_in(VALUED_EVENTS) & unstated


def order_revenue(rows: pl.DataFrame) -> pl.Series:
    """Per row of `rows` (`revenue`, `total`, `properties` and `products` as the `events` table holds
    them), the revenue it states as the module says (Float64; null: none). `subtotal` and `products[]` are
    read only for the rows that state neither `revenue` nor `total` (most orders state one: no cost)."""
    stated = rows.select(pl.coalesce("revenue", "total").cast(pl.Float64).alias("revenue")).to_series()
    unstated = stated.is_null().arg_true()
    if unstated.is_empty():
        return stated
    subtotals = subtotal_values(rows["properties"].gather(unstated))
    priced = products_value(rows["products"].gather(unstated))
    return stated.clone().scatter(unstated, subtotals.fill_null(priced))


def subtotal_values(properties: pl.Series) -> pl.Series:
    """Per `properties` JSON text, its `subtotal` when that is a finite number or a text the lake reads as
    one (read as the ingest reads `revenue`: the same reader and cast); null otherwise."""
    texts = read_objects(properties, {"subtotal": pl.String()})["subtotal"]
    number = texts.cast(pl.Float64, strict=False)
    return pl.select(pl.when(number.is_finite()).then(number)).to_series().alias("subtotal")


def products_value(texts: pl.Series) -> pl.Series:
    """Per `products` JSON text, the sum of price x quantity (1 when not stated) of its priced products;
    null when none is priced or the text is no list. Read in Python: orders without `revenue`, `total`
    and `subtotal`, and refunds, are few, and a shop's `products` may hold anything."""
    return pl.Series([_value(text) for text in texts], dtype=pl.Float64)


def _value(text: str | None) -> float | None:
    try:
        products = orjson.loads(text) if text is not None else None
    except orjson.JSONDecodeError:
        return None
    lines = [_line(p) for p in products] if isinstance(products, list) else []
    priced = [line for line in lines if line is not None]
    total = sum(priced)
    return total if priced and math.isfinite(total) else None


def _line(product: object) -> float | None:
    """A product's price x quantity (1 when not stated); null without a price."""
    if not isinstance(product, dict):
        return None
    price, quantity = _number(product.get("price")), product.get("quantity")
    count = 1.0 if quantity is None else _number(quantity)
    return None if price is None or count is None else price * count


def _number(value: object) -> float | None:
    """A JSON number, or a text the lake reads as one in its typed columns (`"price": "9.99"` is the
    event's price 9.99: Polars' cast of the text): a product line priced `"10"` is priced (found by
    review: it was not, so a partial refund naming it netted its whole order to 0)."""
    if isinstance(value, str):
        value = pl.Series([value], dtype=pl.String).cast(pl.Float64, strict=False)[0]
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond any double
        return None

"""An order's or a checkout's `products` as the profile reads them, whatever the shop sent.

`products` is kept as sent (the JSON text of the order's `products` member), and a shop, or anyone with
the public write key, may send anything there: an object, a string, a list of numbers, an id that is an
object. One vectorised decode reads a batch's well-formed lists; when it fails, each text is read alone,
and one that still fails keeps only its products that are objects and their scalar ids and categories
(found by review: one `Order Completed` with `"products": {"a": 1}` failed every batch's profile partials
after its events were committed, so the ingest stalled for everyone, run after run). A text is read the
same whatever batch it is in. Every field is read as text (a number as written), for the caller to type.
A product's `productId` is its `product_id` when that names none, as the ingest reads an event's ids
(`transforms.ingest.spec_names.CAMEL_IDS`; found by review: a shop sending camelCase ids sends its
products so too, and its checkouts made no cart lines, its orders no purchased products).
"""

from __future__ import annotations

import orjson
import polars as pl

from transforms.ingest.spec_names import CAMEL_IDS

_FIELDS = ("product_id", "category")
ORDER_PRODUCTS = pl.List(pl.Struct(dict.fromkeys(_FIELDS, pl.String())))
_CAMEL = CAMEL_IDS["product_id"]


def order_products(texts: pl.Series) -> pl.Series:
    """Each `products` text as ORDER_PRODUCTS (null: no list of products)."""
    return decode_products(texts, ORDER_PRODUCTS)


def decode_products(texts: pl.Series, dtype: pl.List) -> pl.Series:
    """Each `products` text as `dtype` (a list of structs of text fields with `product_id`; null: no list of
    products), a product's `productId` read when `product_id` names none. `productId` is decoded only when
    a text names it: one literal look."""
    if not texts.str.contains(f'{_CAMEL}"', literal=True).any():
        return _decode(texts, dtype)
    inner = dtype.inner
    assert isinstance(inner, pl.Struct)
    wide = pl.List(pl.Struct([*inner.fields, pl.Field(_CAMEL, pl.String())]))
    item = pl.element().struct
    snake, camel = item.field("product_id"), item.field(_CAMEL)
    named = [(field.str.strip_chars() != "").fill_null(False) for field in (snake, camel)]
    product_id = pl.when(~named[0] & named[1]).then(camel).otherwise(snake).alias("product_id")
    fields = [product_id if f.name == "product_id" else item.field(f.name) for f in inner.fields]
    read = _decode(texts, wide).to_frame().select(pl.first().list.eval(pl.struct(fields)))
    return read.to_series().cast(dtype)


def _decode(texts: pl.Series, dtype: pl.List) -> pl.Series:
    try:
        return texts.str.json_decode(dtype)
    except pl.exceptions.PolarsError:
        return pl.Series(texts.name, [_alone(text, dtype) for text in texts], dtype=dtype)


def _decoded(text: str, dtype: pl.List) -> list[dict[str, str | None]] | None:
    value = pl.Series([text]).str.json_decode(dtype)[0]
    return None if value is None else value.to_list()


def _alone(text: str | None, dtype: pl.List) -> list[dict[str, str | None]] | None:
    if text is None:
        return None
    try:
        return _decoded(text, dtype)
    except pl.exceptions.PolarsError:
        pass
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, list):
        return None
    inner = dtype.inner
    assert isinstance(inner, pl.Struct)
    fields = {f.name for f in inner.fields}
    kept = [
        {k: v for k, v in item.items() if k in fields and _scalar(v)}
        for item in value
        if isinstance(item, dict)
    ]
    try:
        return _decoded(orjson.dumps(kept).decode(), dtype)
    except (pl.exceptions.PolarsError, orjson.JSONEncodeError):
        return None


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)

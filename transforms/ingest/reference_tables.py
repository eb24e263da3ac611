"""The stored reference tables: the latest row per key (`customers`, `catalog`), and catalog changes.

Rows fresh from a landed file carry their source (SOURCE_SCHEMA), which breaks ties in `latest_rows`;
`catalog_changes` compares two versions of the catalog for the back-in-stock and price-drop triggers.
"""

from __future__ import annotations

import polars as pl

from transforms.schema import CATALOG_CHANGE_SCHEMA, CATALOG_SCHEMA, CUSTOMERS_SCHEMA

SOURCE_SCHEMA: dict[str, pl.DataType] = {"source_file": pl.String(), "source_line": pl.Int64()}
TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {"user_id": CUSTOMERS_SCHEMA, "product_id": CATALOG_SCHEMA}
PRICE_EPSILON = 1e-9  # 100.00 -> 90.00 is a 10 % drop even though 100.0 * 0.9 is not exact in floats
MIN_PRICE_DROP = 0.10  # PRODUCT.md §4: a price drop is the price down by at least 10 %


def conformed(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with exactly `schema`'s columns, in its order and types."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


_HEAD = ("product_id", "updated_at")  # a catalog row's order before its source and the rest


def _aligned(frame: pl.DataFrame, full: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with exactly `full`'s columns (the missing ones null)."""
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in full.items() if name not in frame]
    return conformed(frame.with_columns(missing), full)


def latest_rows(existing: pl.DataFrame, incoming: pl.DataFrame, key: str) -> pl.DataFrame:
    """The latest row per `key` by `updated_at`; ties go to the later source_file, then source_line.

    Rows without source columns (the table as stored) count as earliest in a tie, and a tie in time and
    source falls to the row's content, so the order of rows within `existing` or `incoming` never matters.
    """
    if key not in TABLE_SCHEMAS:
        raise ValueError(f"key must be one of {', '.join(TABLE_SCHEMAS)}, not {key!r}")
    schema = TABLE_SCHEMAS[key]
    full = {**schema, **SOURCE_SCHEMA}
    order = [
        key,
        "updated_at",
        "source_file",
        "source_line",
        *(c for c in schema if c not in (key, "updated_at")),
    ]
    return (
        pl.concat([_aligned(existing, full), _aligned(incoming, full)])
        .sort(order, nulls_last=False)
        .unique(key, keep="last", maintain_order=True)
        .select(list(schema))
        .sort(key)
    )


def price_dropped(old: pl.Expr, new: pl.Expr, min_drop: float = MIN_PRICE_DROP) -> pl.Expr:
    """Whether the price went from `old` (positive) down to `new` by at least `min_drop`: when the change
    is seen, and again right before its email goes (the rule's exit, the email's content)."""
    return (old > 0) & (new <= old * (1.0 - min_drop) + PRICE_EPSILON)


def is_price_drop(old: float, new: float) -> bool:
    """`price_dropped` for one product's two prices."""
    return old > 0 and new <= old * (1.0 - MIN_PRICE_DROP) + PRICE_EPSILON


def catalog_changes(
    before: pl.DataFrame, incoming: pl.DataFrame, *, min_drop: float = MIN_PRICE_DROP
) -> pl.DataFrame:
    """back_in_stock (a known stock of 0 -> > 0) and price_drop (down >= `min_drop`) at each step of a
    product's rows: `before` (the catalog before a batch), then `incoming` (the batch's rows, with or
    without SOURCE_SCHEMA, or the catalog after it) in `latest_rows`' order. So a batch holding 3 -> 0 -> 5
    restocks as two batches would: the changes never depend on how files were grouped. A row older than
    the product's stored one never was its latest: no step. A product's first row is no change."""
    if not 0.0 < min_drop < 1.0:
        raise ValueError("min_drop must be between 0 and 1 (exclusive)")
    full = {**CATALOG_SCHEMA, **SOURCE_SCHEMA}
    stored = _aligned(before, full).with_columns(pl.lit(0).alias("_new"))
    stored_at = stored.select("product_id", pl.col("updated_at").alias("_stored_at"))
    newer = (
        _aligned(incoming, full)
        .join(stored_at, on="product_id", how="left")
        .filter(pl.col("_stored_at").is_null() | (pl.col("updated_at") >= pl.col("_stored_at")))
        .select(*full, pl.lit(1).alias("_new"))
    )
    # latest_rows' order; in a full tie the stored row first (it is what the batch starts from).
    order = [
        "product_id",
        "updated_at",
        *SOURCE_SCHEMA,
        "_new",
        *(c for c in CATALOG_SCHEMA if c not in _HEAD),
    ]
    steps = (
        pl.concat([stored, newer])
        .sort(order, nulls_last=False)
        .with_columns(pl.col("price", "stock").shift(1).over("product_id").name.suffix("_before"))
        .filter(pl.col("_new") == 1)
    )
    back = steps.filter((pl.col("stock_before") == 0) & (pl.col("stock") > 0)).select(
        "product_id",
        pl.lit("back_in_stock").alias("change"),
        pl.col("stock_before").alias("old_value"),
        pl.col("stock").alias("new_value"),
        pl.col("updated_at").alias("changed_at"),
    )
    dropped = price_dropped(pl.col("price_before"), pl.col("price"), min_drop)
    drop = steps.filter(dropped).select(
        "product_id",
        pl.lit("price_drop").alias("change"),
        pl.col("price_before").alias("old_value"),
        pl.col("price").alias("new_value"),
        pl.col("updated_at").alias("changed_at"),
    )
    changes = pl.concat([conformed(back, CATALOG_CHANGE_SCHEMA), conformed(drop, CATALOG_CHANGE_SCHEMA)])
    # One change per product, kind and moment (the table's key): steps at one `updated_at` count once.
    key = ["product_id", "change", "changed_at"]
    return changes.unique(key, keep="first", maintain_order=True).sort(key)

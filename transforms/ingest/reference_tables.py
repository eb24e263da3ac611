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


def latest_rows(existing: pl.DataFrame, incoming: pl.DataFrame, key: str) -> pl.DataFrame:
    """The latest row per `key` by `updated_at`; ties go to the later source_file, then source_line.

    Rows without source columns (the table as stored) count as earliest in a tie, and a tie in time and
    source falls to the row's content, so the order of rows within `existing` or `incoming` never matters.
    """
    if key not in TABLE_SCHEMAS:
        raise ValueError(f"key must be one of {', '.join(TABLE_SCHEMAS)}, not {key!r}")
    schema = TABLE_SCHEMAS[key]
    full = {**schema, **SOURCE_SCHEMA}

    def aligned(frame: pl.DataFrame) -> pl.DataFrame:
        missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in full.items() if name not in frame]
        return conformed(frame.with_columns(missing), full)

    order = [
        key,
        "updated_at",
        "source_file",
        "source_line",
        *(c for c in schema if c not in (key, "updated_at")),
    ]
    return (
        pl.concat([aligned(existing), aligned(incoming)])
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
    before: pl.DataFrame, after: pl.DataFrame, *, min_drop: float = MIN_PRICE_DROP
) -> pl.DataFrame:
    """back_in_stock (a known stock of 0 -> > 0) and price_drop (down >= `min_drop`) per product in both."""
    if not 0.0 < min_drop < 1.0:
        raise ValueError("min_drop must be between 0 and 1 (exclusive)")
    joined = after.select("product_id", "price", "stock", "updated_at").join(
        before.select("product_id", "price", "stock"), on="product_id", how="inner", suffix="_before"
    )
    back = joined.filter((pl.col("stock_before") == 0) & (pl.col("stock") > 0)).select(
        "product_id",
        pl.lit("back_in_stock").alias("change"),
        pl.col("stock_before").alias("old_value"),
        pl.col("stock").alias("new_value"),
        pl.col("updated_at").alias("changed_at"),
    )
    dropped = price_dropped(pl.col("price_before"), pl.col("price"), min_drop)
    drop = joined.filter(dropped).select(
        "product_id",
        pl.lit("price_drop").alias("change"),
        pl.col("price_before").alias("old_value"),
        pl.col("price").alias("new_value"),
        pl.col("updated_at").alias("changed_at"),
    )
    changes = pl.concat([conformed(back, CATALOG_CHANGE_SCHEMA), conformed(drop, CATALOG_CHANGE_SCHEMA)])
    return changes.sort("product_id", "change")

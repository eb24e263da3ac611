"""back_in_stock and price_drop: a catalog change for shoppers who viewed or carted the product."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.triggers.rules.base import RuleContext, finish

LOOKBACK = timedelta(days=30)


def _alerts(context: RuleContext, change: str) -> pl.DataFrame:
    changes = context.catalog_changes.filter(pl.col("change") == change)
    viewers = context.catalog_viewers.join(changes, on="product_id").filter(
        (pl.col("last_ts") >= pl.col("changed_at") - LOOKBACK) & (pl.col("last_ts") <= pl.col("changed_at"))
    )
    return viewers.select(
        "principal",
        pl.col("product_id").alias("anchor"),
        (pl.col("changed_at") + context.delay).alias("due_at"),
        pl.col("changed_at").alias("first_event_at"),
        pl.col("changed_at").cast(pl.String).alias("changed"),
        pl.format('{{"old": {}, "new": {}}}', "old_value", "new_value").alias("detail"),
    )


def back_in_stock_candidates(context: RuleContext) -> pl.DataFrame:
    return finish(_alerts(context, "back_in_stock"), "back_in_stock", ["principal", "anchor", "changed"])


def price_drop_candidates(context: RuleContext) -> pl.DataFrame:
    return finish(_alerts(context, "price_drop"), "price_drop", ["principal", "anchor", "changed"])


def _product_exit(candidates: pl.DataFrame, context: RuleContext, reason: pl.Expr) -> pl.Series:
    catalog = context.catalog.select(pl.col("product_id").alias("anchor"), "stock", "price")
    facts = candidates.select("anchor").join(catalog, on="anchor", how="left")
    return facts.select(reason.alias("exit_reason"))["exit_reason"]


def stock_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    return _product_exit(
        candidates, context, pl.when(pl.col("stock").fill_null(0) <= 0).then(pl.lit("out_of_stock_again"))
    )


def price_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    return _product_exit(
        candidates, context, pl.when(pl.col("stock").fill_null(0) <= 0).then(pl.lit("out_of_stock"))
    )

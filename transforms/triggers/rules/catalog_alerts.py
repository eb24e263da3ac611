"""back_in_stock and price_drop: a catalog change for shoppers who viewed or carted the product."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.ingest.reference_tables import price_dropped
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
    old = (
        pl.col("detail").str.json_path_match("$.old").cast(pl.Float64, strict=False)
        if "detail" in candidates.columns
        else pl.lit(None, pl.Float64)
    )
    facts = candidates.select("anchor", old.alias("old")).join(
        catalog, on="anchor", how="left", maintain_order="left"
    )
    return facts.select(reason.alias("exit_reason"))["exit_reason"]


def stock_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    return _product_exit(
        candidates, context, pl.when(pl.col("stock").fill_null(0) <= 0).then(pl.lit("out_of_stock_again"))
    )


def price_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Sold out, or the price no longer 10 % under the old one (a drop of 1 % is no price drop email)."""
    back_up = ~price_dropped(pl.col("old"), pl.col("price"))  # null (no old or no price): not known
    reason = (
        pl.when(pl.col("stock").fill_null(0) <= 0)
        .then(pl.lit("out_of_stock"))
        .when(back_up.fill_null(False))
        .then(pl.lit("price_back_up"))
    )
    return _product_exit(candidates, context, reason)

"""back_in_stock and price_drop: a catalog change for shoppers who viewed or carted the product.

A change wants the viewers whose last view or cart add is in the LOOKBACK before its `changed_at`
(`in_window`). A product's changes never go back in time: a catalog row older than the product's
stored one is no step (`transforms.ingest.reference_tables.catalog_changes`), and the stored row is
the newest, so every change a later batch brings has a `changed_at` at or after the newest one of the
batches before. A viewer last seen more than LOOKBACK before that newest change is wanted by no later
change (`stale_marked`): the state store drops it (#17).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

import polars as pl

from transforms.ingest.reference_tables import price_dropped
from transforms.triggers.rules.base import RuleContext, finish

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)
LOOKBACK = timedelta(days=30)  # PRODUCT.md §4: "viewed or carted the product in the last 30 days"
# A viewer (`last_ts`) that a change (`changed_at`) of the same product wants.
IN_WINDOW = pl.col("last_ts").is_between(pl.col("changed_at") - LOOKBACK, pl.col("changed_at"))


def in_window(viewers: pl.DataFrame, changes: pl.DataFrame) -> pl.DataFrame:
    """The rows of `viewers` (principal, product_id, last_ts, ...) that some change of `changes` wants
    (IN_WINDOW, whatever its kind): the only ones the rules below read, in their order."""
    if viewers.height == 0 or changes.height == 0:
        return viewers.clear()
    rows = viewers.with_row_index("_row")
    wanted = rows.select("_row", "product_id", "last_ts").join(
        changes.select("product_id", "changed_at"), on="product_id"
    )
    kept = wanted.filter(IN_WINDOW)["_row"].implode()
    return rows.filter(pl.col("_row").is_in(kept)).drop("_row")


def stale_marked(viewers: Frame, changes: Frame) -> Frame:
    """`viewers` with `stale`: whether no change from now on can want the row, `changes` being changes
    decided so far (all of them, or some: then fewer are stale): last seen more than LOOKBACK before the
    newest `changed_at` of its product there (a later change is never earlier: the module's docstring)."""
    newest = changes.group_by("product_id").agg(pl.col("changed_at").max().alias("_newest"))
    stale = (pl.col("last_ts") < pl.col("_newest") - LOOKBACK).fill_null(False).alias("stale")
    marked = viewers.join(newest, on="product_id", how="left", maintain_order="left")
    return marked.with_columns(stale).drop("_newest")


def _alerts(context: RuleContext, change: str) -> pl.DataFrame:
    changes = context.catalog_changes.filter(pl.col("change") == change)
    viewers = context.catalog_viewers.join(changes, on="product_id").filter(IN_WINDOW)
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

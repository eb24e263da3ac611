"""browse_abandonment: a product viewed twice within 24 h, not added to the cart, then 2 h of quiet."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.triggers.rules.base import RuleContext, exploded, finish

WINDOW = timedelta(hours=24)
REENTRY = timedelta(days=14)
RECENT_ORDER = timedelta(days=10)


def _viewed_twice(context: RuleContext) -> pl.DataFrame:
    views = exploded(context.state, "views").filter(pl.col("ts") >= context.now - WINDOW - context.delay)
    return (
        views.group_by("principal", "product_id")
        .agg(
            pl.len().alias("views"), pl.col("ts").min().alias("first_view"), pl.col("ts").max().alias("last")
        )
        .filter((pl.col("views") >= 2) & (pl.col("last") - pl.col("first_view") <= WINDOW))
    )


def browse_candidates(context: RuleContext) -> pl.DataFrame:
    """Due `delay` after the shopper's last activity; one per (shopper, product) per 14-day period."""
    seen = context.state.select("principal", "last_ts")
    viewed = _viewed_twice(context).join(seen, on="principal")
    period_days = int(REENTRY.total_seconds() // 86400)
    rows = viewed.select(
        "principal",
        pl.col("product_id").alias("anchor"),
        (pl.col("last_ts") + context.delay).alias("due_at"),
        pl.col("first_view").alias("first_event_at"),
        (pl.col("first_view").dt.epoch("d") // period_days).cast(pl.String).alias("period"),
    )
    return finish(rows, "browse_abandonment", ["principal", "anchor", "period"])


def browse_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Added to the cart since the first view, or an order in the last 10 days."""
    added = (
        exploded(context.state, "lines")
        .group_by("principal", pl.col("product_id").alias("anchor"))
        .agg(pl.col("last_ts").max().alias("added_at"))
    )
    ordered = (
        exploded(context.state, "orders")
        .group_by("principal")
        .agg(pl.col("ordered_at").max().alias("ordered_at"))
    )
    facts = (
        candidates.select("principal", "anchor", "first_event_at")
        .join(added, on=["principal", "anchor"], how="left")
        .join(ordered, on="principal", how="left")
    )
    reason = (
        pl.when(pl.col("added_at") >= pl.col("first_event_at"))
        .then(pl.lit("added_to_cart"))
        .when(pl.col("ordered_at") >= context.now - RECENT_ORDER)
        .then(pl.lit("ordered_recently"))
    )
    return facts.select(reason.alias("exit_reason"))["exit_reason"]

"""welcome (first identify with an email) and post_purchase (3 days after an order: cross-sell)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.profiles.state import ANON
from transforms.triggers.rules.base import RuleContext, exploded, finish

WELCOME_WINDOW = timedelta(days=2)  # an identify older than this is no longer news


def welcome_candidates(context: RuleContext) -> pl.DataFrame:
    known = context.state.filter(
        ~pl.col("principal").str.starts_with(ANON)
        & pl.col("identified_at").is_not_null()
        & (pl.col("identified_at") >= context.now - WELCOME_WINDOW)
    )
    rows = known.select(
        "principal",
        pl.lit(None, dtype=pl.String).alias("anchor"),
        (pl.col("identified_at") + context.delay).alias("due_at"),
        pl.col("identified_at").alias("first_event_at"),
    )
    return finish(rows, "welcome", ["principal"])


def post_purchase_candidates(context: RuleContext) -> pl.DataFrame:
    orders = exploded(context.state, "orders").filter(
        pl.col("ordered_at") >= context.now - context.delay - timedelta(hours=24)
    )
    rows = orders.select(
        "principal",
        pl.col("order_id").alias("anchor"),
        (pl.col("ordered_at") + context.delay).alias("due_at"),
        pl.col("ordered_at").alias("first_event_at"),
    )
    return finish(rows, "post_purchase", ["anchor"])

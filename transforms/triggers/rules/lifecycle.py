"""welcome (first identify with an email) and post_purchase (3 days after an order: cross-sell)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from transforms.profiles.state import ANON
from transforms.triggers.rules.base import RuleContext, exploded, finish

WELCOME_WINDOW = timedelta(days=2)  # an identify older than this is no longer news
# Product ids of its order a post_purchase decision keeps in `detail` (the `triggers` table's column):
# the first ones, enough to find the order's category; a 32 KB order line could carry a thousand.
ORDER_PRODUCTS = 20


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
    # The order's products: the email cross-sells from their category (content reads them back).
    ids = pl.col("products").list.eval(pl.element().drop_nulls().unique(maintain_order=True))
    ids = ids.list.head(ORDER_PRODUCTS)
    detail = pl.when(ids.list.len() > 0).then(pl.struct(ids.alias("products")).struct.json_encode())
    rows = orders.select(
        "principal",
        pl.col("order_id").alias("anchor"),
        (pl.col("ordered_at") + context.delay).alias("due_at"),
        pl.col("ordered_at").alias("first_event_at"),
        detail.alias("detail"),
    )
    return finish(rows, "post_purchase", ["anchor"])


def order_detail(products: Sequence[str | None] | None) -> str | None:
    """`post_purchase_candidates`' `detail` of an order with `products`, one order in plain Python."""
    ids = list(dict.fromkeys(p for p in products or () if p is not None))[:ORDER_PRODUCTS]
    return json.dumps({"products": ids}, ensure_ascii=False, separators=(",", ":")) if ids else None

"""abandoned_cart and abandoned_checkout: a cart left with items, a checkout left without an order."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.triggers.rules.base import RuleContext, exploded, finish


def cart_facts(state: pl.DataFrame) -> pl.DataFrame:
    """Per (principal, cart): last change, last checkout, first order, and units still in it."""
    carts = exploded(state, "carts")
    units = (
        exploded(state, "lines")
        .with_columns((pl.col("added") - pl.col("removed")).clip(lower_bound=0).alias("units"))
        .group_by("principal", "cart_id")
        .agg(pl.col("units").sum())
    )
    return carts.join(units, on=["principal", "cart_id"], how="left").with_columns(
        pl.col("units").fill_null(0)
    )


def _recent(facts: pl.DataFrame, column: str, context: RuleContext, lateness: timedelta) -> pl.DataFrame:
    since = context.now - context.delay - lateness
    return facts.filter(pl.col(column).is_not_null() & (pl.col(column) >= since))


def cart_candidates(context: RuleContext) -> pl.DataFrame:
    """Every cart changed recently; due `delay` after its last change (each change restarts the timer)."""
    facts = _recent(cart_facts(context.state), "changed_at", context, timedelta(hours=24))
    rows = facts.select(
        "principal",
        pl.col("cart_id").alias("anchor"),
        (pl.col("changed_at") + context.delay).alias("due_at"),
        pl.col("changed_at").alias("first_event_at"),
    )
    return finish(rows, "abandoned_cart", ["anchor"])


def checkout_candidates(context: RuleContext) -> pl.DataFrame:
    facts = _recent(cart_facts(context.state), "checkout_at", context, timedelta(hours=24))
    rows = facts.select(
        "principal",
        pl.col("cart_id").alias("anchor"),
        (pl.col("checkout_at") + context.delay).alias("due_at"),
        pl.col("checkout_at").alias("first_event_at"),
    )
    return finish(rows, "abandoned_checkout", ["anchor"])


def _facts_for(candidates: pl.DataFrame, context: RuleContext) -> pl.DataFrame:
    facts = cart_facts(context.state).rename({"cart_id": "anchor"})
    return candidates.select("principal", "anchor").join(facts, on=["principal", "anchor"], how="left")


def cart_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Ordered, emptied, or handed over to abandoned_checkout (it takes precedence)."""
    facts = _facts_for(candidates, context)
    reason = (
        pl.when(pl.col("ordered_at").is_not_null())
        .then(pl.lit("order_completed"))
        .when(pl.col("units").fill_null(0) == 0)
        .then(pl.lit("cart_emptied"))
        .when(pl.col("checkout_at").is_not_null() & (pl.col("checkout_at") >= pl.col("changed_at")))
        .then(pl.lit("abandoned_checkout_takes_precedence"))
    )
    return facts.select(reason.alias("exit_reason"))["exit_reason"]


def checkout_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    facts = _facts_for(candidates, context)
    reason = pl.when(pl.col("ordered_at").is_not_null()).then(pl.lit("order_completed"))
    return facts.select(reason.alias("exit_reason"))["exit_reason"]

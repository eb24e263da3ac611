"""welcome (an email and marketing consent, first) and post_purchase (3 days after an order: cross-sell;
it exits when the order is cancelled or fully refunded before it goes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta

import polars as pl

from transforms.principals import anonymous, user_principal
from transforms.profiles.aliases import renamed_users
from transforms.profiles.merge import principal_claims
from transforms.profiles.refunds import net_orders
from transforms.triggers.rules.base import CANDIDATE_SCHEMA, RuleContext, exploded, finish, trigger_ids

WELCOME_WINDOW = timedelta(days=2)  # a welcome older than this is no longer news
# Product ids of its order a post_purchase decision keeps in `detail` (the `triggers` table's column):
# the first ones, enough to find the order's category; a 32 KB order line could carry a thousand.
ORDER_PRODUCTS = 20


def welcome_candidates(context: RuleContext) -> pl.DataFrame:
    """Users with an email and marketing consent now, welcomed from the first moment they had both: the
    later of their first identify with an email and the first yes to marketing (an event's, or the CRM
    row's since its `updated_at`). Consent given after the identify moves the welcome there; without
    consent there is no candidate, so a later yes still finds the welcome undecided (one per user)."""
    yes = pl.col("marketing_consent").fill_null(False)
    user = user_principal(pl.col("user_id")).alias("principal")
    consenting = context.profiles.filter(yes).select(user)
    crm = context.customers.filter(yes).select(user, pl.col("updated_at").alias("_crm_at"))
    since = pl.min_horizontal(_first_yes(), "_crm_at")
    known = (
        context.state.filter(~anonymous(pl.col("principal")) & pl.col("identified_at").is_not_null())
        .join(consenting, on="principal", how="semi")
        .join(crm, on="principal", how="left")
        .filter(since.is_not_null())
        .with_columns(pl.max_horizontal("identified_at", since).alias("_welcome_at"))
        .filter(pl.col("_welcome_at") >= context.now - WELCOME_WINDOW)
    )
    rows = known.select(
        "principal",
        pl.lit(None, dtype=pl.String).alias("anchor"),
        (pl.col("_welcome_at") + context.delay).alias("due_at"),
        pl.col("_welcome_at").alias("first_event_at"),
    )
    return finish(rows, "welcome", ["principal"])


def welcome_twins(candidates: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """The welcomes among `candidates` under the trigger id of each user id an alias renamed to theirs
    (`links`: `principal_claims`): one welcome per shopper, whatever id they go by (CANDIDATE_SCHEMA, the
    shopper's principal kept)."""
    renamed = renamed_users(principal_claims(links))
    claimed = renamed.select(pl.col("_to").alias("principal"), pl.col("principal").alias("_was"))
    rows = (
        candidates.filter(pl.col("kind") == "welcome").join(claimed, on="principal").sort("principal", "_was")
    )
    return rows.with_columns(trigger_ids("welcome", rows["_was"])).select(list(CANDIDATE_SCHEMA))


def _first_yes() -> pl.Expr:
    """When events first said yes to marketing: `consented_at`; a state folded before it was kept (null)
    has only its statements' times, when they say yes."""
    stated = [
        pl.when(pl.col(c) == "true").then(pl.col(f"{c}_ts"))
        for c in ("marketing_consent", "category_consent")
    ]
    return pl.coalesce("consented_at", pl.min_horizontal(stated))


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


def post_purchase_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """`order_cancelled` when the shopper cancelled the candidate's order (its anchor), `order_refunded`
    when they were refunded all of it (`transforms.profiles.refunds.net_orders`: a refund without an
    amount, or as much as the order or more in its currency); null while something of it stands. A
    partial refund keeps the email: the shopper kept the rest."""
    orders = exploded(context.state, "orders")
    refunds = exploded(context.state, "refunds")
    ended = (
        net_orders(orders, refunds, ["principal"])
        .filter(pl.col("ended").is_not_null())
        .select("principal", pl.col("order_id").alias("anchor"), pl.col("ended").alias("exit_reason"))
        .sort("exit_reason")  # a cancellation's reason first
        .unique(["principal", "anchor"], keep="first", maintain_order=True)
    )
    found = candidates.select("principal", "anchor").join(
        ended, on=["principal", "anchor"], how="left", maintain_order="left"
    )
    return found["exit_reason"]


def order_detail(products: Sequence[str | None] | None) -> str | None:
    """`post_purchase_candidates`' `detail` of an order with `products`, one order in plain Python."""
    ids = list(dict.fromkeys(p for p in products or () if p is not None))[:ORDER_PRODUCTS]
    return json.dumps({"products": ids}, ensure_ascii=False, separators=(",", ":")) if ids else None

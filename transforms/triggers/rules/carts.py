"""abandoned_cart and abandoned_checkout: a cart left with items, a checkout left without an order.

An order exits a cart or a checkout whether or not it names them (Segment's spec puts `order_id` /
`checkout_id` on orders, not `cart_id`): any order by the same shopper (identity is resolved in the
state) at or after the cart's last change, or the checkout's start. Checkouts come from the state's
`checkouts` list (transforms/profiles/checkouts.py) and from the carts' checkouts. A cart the shopper
has since left for another, or a checkout that named it, exits when due (`cart_changed`): the email of
the cart the shopper has now is the one to send. A cart's latest order is the latest naming it, or
naming (by `checkout_id` or `order_id`) a checkout of the shopper that named it
(`transforms.profiles.carts.order_carts`). A cart id the shop keeps across orders is a new cart once it
changes after its latest order (`transforms.profiles.carts.cart_rows`), and its instance follows the one
before even when that one was sent (`cart_refilled`).

The implicit cart (IMPLICIT_CART: the cart events of a shop that names no cart) is every shopper's, so
its instances are keyed by the shopper (the principal), not by the cart id alone. Before an identify
that is the anonymous principal, or a user id an alias renamed since: the identified (renamed) shopper's
instance follows the earlier one as a named cart's single id does (`claimed_twins`,
`transforms.triggers.exits.withheld`).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.principals import anonymous
from transforms.profiles.baskets import checkout_carts
from transforms.profiles.carts import cart_rows, line_units, open_carts
from transforms.profiles.merge import principal_claims
from transforms.profiles.state import IMPLICIT_CART
from transforms.triggers.rules.base import CANDIDATE_SCHEMA, RuleContext, exploded, finish, trigger_ids

CART = "abandoned_cart"
OWN = ["principal", "anchor"]  # what the implicit cart's trigger ids are made of


def cart_state(context: RuleContext) -> pl.DataFrame:
    """The state with each checkout naming no cart in the cart it was for (`baskets.checkout_carts`), as
    the profile reads it: the carts the rules see are the profile's (and the email's)."""
    return context.once("cart_state", lambda state: checkout_carts(state, "principal"))


def state_facts(context: RuleContext) -> pl.DataFrame:
    """`cart_facts` of the context's `cart_state`, once an evaluation (four rules' steps read them)."""
    return context.once("cart_facts", lambda _state: cart_facts(cart_state(context)))


def cart_facts(state: pl.DataFrame) -> pl.DataFrame:
    """Per (principal, cart) of `state` (`cart_state`): last change, last checkout, latest order
    (`cart_rows`), and units still in it (`line_units`: those its latest order took are gone, a cart id
    reused after an order starts empty, a checkout's products are the cart at checkout time)."""
    carts = cart_rows(state, "principal")
    lines = exploded(state, "lines").join(
        carts.select("principal", "cart_id", "ordered_at"), on=["principal", "cart_id"], how="left"
    )
    units = (
        line_units(lines, exploded(state, "moves"), exploded(state, "checkout_lines"), "principal")
        .with_columns(pl.col("units").clip(lower_bound=0))
        .group_by("principal", "cart_id")
        .agg(pl.col("units").sum())
    )
    return carts.join(units, on=["principal", "cart_id"], how="left").with_columns(
        pl.col("units").fill_null(0)
    )


def last_orders(state: pl.DataFrame) -> pl.DataFrame:
    """Per principal, the time of its latest order (`last_order_at`), whatever cart it names or not."""
    orders = exploded(state, "orders")
    return orders.group_by("principal").agg(pl.col("ordered_at").max().alias("last_order_at"))


def checkouts(state: pl.DataFrame) -> pl.DataFrame:
    """The shoppers' checkouts (principal, anchor = checkout_key, ids, started_at): the state's
    `checkouts` and the carts' checkouts, which agree on a checkout that names its cart (both key it by
    the cart's id) and which are its only record in a state folded before the list existed."""
    listed = exploded(state, "checkouts").rename({"checkout_key": "anchor"})
    carts = exploded(state, "carts").filter(pl.col("checkout_at").is_not_null())
    from_carts = carts.select(
        "principal",
        pl.col("cart_id").alias("anchor"),
        pl.lit(None, dtype=pl.String).alias("checkout_id"),
        pl.lit(None, dtype=pl.String).alias("order_id"),
        "cart_id",
        pl.col("checkout_at").alias("started_at"),
    )
    both = pl.concat([listed.select(from_carts.columns), from_carts])
    ids = [pl.col(c).min() for c in ("checkout_id", "order_id", "cart_id")]
    return both.group_by("principal", "anchor").agg(*ids, pl.col("started_at").max())


def _recent(facts: pl.DataFrame, column: str, context: RuleContext, lateness: timedelta) -> pl.DataFrame:
    since = context.now - context.delay - lateness
    return facts.filter(pl.col(column).is_not_null() & (pl.col(column) >= since))


def cart_candidates(context: RuleContext) -> pl.DataFrame:
    """Every cart changed recently; due `delay` after its last change (each change restarts the timer)."""
    facts = _recent(state_facts(context), "changed_at", context, timedelta(hours=24))
    rows = facts.select(
        "principal",
        pl.col("cart_id").alias("anchor"),
        (pl.col("changed_at") + context.delay).alias("due_at"),
        pl.col("changed_at").alias("first_event_at"),
    )
    # A named cart's instance is the cart's, whoever carts in it (one id per cart id); the implicit cart's
    # is the shopper's: every shopper has one.
    implicit = (pl.col("anchor") == IMPLICIT_CART).fill_null(False)
    named, own = finish(rows.filter(~implicit), CART, ["anchor"]), finish(rows.filter(implicit), CART, OWN)
    return pl.concat([named, own])


def cart_refilled(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Per candidate, its cart's latest order before its last change (null: none, or the cart is ordered):
    what was put in it after that order is a new fill of the cart, whose instance follows the one before
    whatever that one's decision (`transforms.triggers.exits.follows`)."""
    facts = state_facts(context).rename({"cart_id": "anchor"})
    facts = _join(candidates.select("principal", "anchor"), facts, ["principal", "anchor"])
    refilled = pl.when(pl.col("ordered_at") < pl.col("changed_at")).then(pl.col("ordered_at"))
    return facts.select(refilled.alias("refilled_at"))["refilled_at"]


def claimed_twins(candidates: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """The identified shoppers' implicit-cart candidates among `candidates` under the trigger id each
    principal they claim (`links`, identities rows: `principal_claims`, their anonymous ids and the user ids
    an alias renamed to theirs) gave the cart before (CANDIDATE_SCHEMA, the shopper's principal kept)."""
    own = candidates.filter(
        (pl.col("kind") == CART) & (pl.col("anchor") == IMPLICIT_CART) & ~anonymous(pl.col("principal"))
    )
    claimed = principal_claims(links).select(
        pl.col("_to").alias("principal"), pl.col("principal").alias("_was")
    )
    rows = own.join(claimed, on="principal", how="inner").sort("principal", "_was")
    if rows.height == 0:
        return pl.DataFrame(schema=CANDIDATE_SCHEMA)
    ids = trigger_ids(CART, rows["_was"], rows["anchor"])
    return rows.with_columns(ids).select(list(CANDIDATE_SCHEMA))


def checkout_candidates(context: RuleContext) -> pl.DataFrame:
    """Every checkout started recently; due `delay` after its (latest) start."""
    facts = _recent(checkouts(context.state), "started_at", context, timedelta(hours=24))
    # The cart it named, if any: the email shows that cart, or the shopper's open one (spec shape).
    # Encoded, not formatted: a cart id is the client's string, quotes and backslashes included.
    named = pl.when(pl.col("cart_id").is_not_null()).then(pl.struct("cart_id").struct.json_encode())
    rows = facts.select(
        "principal",
        "anchor",
        (pl.col("started_at") + context.delay).alias("due_at"),
        pl.col("started_at").alias("first_event_at"),
        named.alias("detail"),
    )
    return finish(rows, "abandoned_checkout", ["anchor"])


def _join(left: pl.DataFrame, right: pl.DataFrame, on: str | list[str]) -> pl.DataFrame:
    return left.join(right, on=on, how="left", maintain_order="left")


def _ordered_since(column: str) -> pl.Expr:
    """The cart's own order, or any order by the same shopper at or after `column`."""
    since = pl.col("last_order_at") >= pl.col(column)
    return pl.col("ordered_at").is_not_null() | since.fill_null(False)


def cart_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Ordered since its last change (its own latest order or any of the shopper's: an order before the
    last change is of an earlier fill of a cart id the shop reuses), emptied, handed over to
    abandoned_checkout (a checkout by the same shopper started since the cart's last change takes
    precedence), or, when due, `cart_changed`: it is no longer the shopper's open cart (`open_carts`, the
    profile's cart, which content shows: it would abort the email, and a send decision would take the
    cooldown and the frequency cap from the email of the cart the shopper has now)."""
    state = cart_state(context)
    facts = state_facts(context).rename({"cart_id": "anchor"})
    facts = _join(candidates.select("principal", "anchor"), facts, ["principal", "anchor"])
    facts = _join(facts, last_orders(state), "principal")
    started = checkouts(state)  # any checkout of the shopper, named after the cart or not
    latest = started.group_by("principal").agg(pl.col("started_at").max().alias("checkout_at"))
    facts = _join(facts.drop("checkout_at"), latest, "principal")
    opened = open_carts(state_facts(context), "principal")  # its carts: cart_rows, once an evaluation
    facts = _join(facts, opened.select("principal", pl.col("cart_id").alias("_open")), "principal")
    since = [(pl.col(c) >= pl.col("changed_at")).fill_null(False) for c in ("ordered_at", "last_order_at")]
    reason = (
        pl.when(since[0] | since[1])
        .then(pl.lit("order_completed"))
        .when(pl.col("units").fill_null(0) == 0)
        .then(pl.lit("cart_emptied"))
        .when(pl.col("checkout_at").is_not_null() & (pl.col("checkout_at") >= pl.col("changed_at")))
        .then(pl.lit("abandoned_checkout_takes_precedence"))
        .when(pl.col("anchor") != pl.col("_open"))  # null: no cart of the shopper is open
        .then(pl.lit("cart_changed"))
    )
    return facts.select(reason.alias("exit_reason"))["exit_reason"]


def checkout_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Ordered (the same checkout_id or order_id, the cart's own order, or any order by the shopper
    since the start), superseded by a later checkout of the shopper (it restarts the timer), or, when
    due, `cart_changed`: the cart it named is no longer the shopper's open one (`open_carts`, the
    profile's cart, which content shows: it would abort the email, and a send decision would take the
    frequency cap from the email of the shopper's new cart), or `cart_emptied`: that cart, or the open
    one when it named none, is there and has nothing in it (content would abort `empty_cart`, the cap
    taken alike)."""
    state = cart_state(context)
    started = checkouts(state)
    facts = _join(candidates.select("principal", "anchor"), started, ["principal", "anchor"])
    facts = _join(facts, last_orders(state), "principal")
    cart_units = state_facts(context)
    facts = _join(facts, cart_units.select("principal", "cart_id", "ordered_at"), ["principal", "cart_id"])
    facts = _join(facts, _matched_orders(state, facts), ["principal", "anchor"])
    latest = started.group_by("principal").agg(pl.col("started_at").max().alias("_latest"))
    facts = _join(facts, latest, "principal")
    opened = open_carts(state_facts(context), "principal")  # its carts: cart_rows, once an evaluation
    facts = _join(facts, opened.select("principal", pl.col("cart_id").alias("_open")), "principal")
    filled = cart_units.select("principal", pl.col("cart_id").alias("_open"), "units")
    facts = _join(facts.drop("units", strict=False), filled, ["principal", "_open"])
    reason = (
        pl.when(_ordered_since("started_at") | pl.col("_matched").fill_null(False))
        .then(pl.lit("order_completed"))
        .when(pl.col("_latest") > pl.col("started_at"))
        .then(pl.lit("checkout_restarted"))
        .when(pl.col("cart_id") != pl.col("_open"))  # null: it named no cart, or none is open
        .then(pl.lit("cart_changed"))
        .when(pl.col("_open").is_not_null() & (pl.col("units").fill_null(0) == 0))  # nothing to show
        .then(pl.lit("cart_emptied"))
    )
    return facts.select(reason.alias("exit_reason"))["exit_reason"]


def _matched_orders(state: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """(principal, anchor) of checkouts an order of the shopper names, by order_id or checkout_id."""
    orders = exploded(state, "orders")
    named = [
        facts.join(orders.select("principal", c).drop_nulls(), on=["principal", c], how="semi")
        for c in ("order_id", "checkout_id")
    ]
    return (
        pl.concat(named).select("principal", "anchor").unique().with_columns(pl.lit(True).alias("_matched"))
    )

"""Partials merged: re-keyed to user ids by identity edges, then folded into one state per principal.

The merge is associative and commutative (maxima, minima, sums, last-writer-wins by time with ties broken
by value, top-N by time), so partials merge in any order and any grouping to the same state.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from transforms.principals import anonymous_principal, of_anonymous, of_user, user_of, user_principal
from transforms.profiles.aliases import (
    Lookup,
    claim_links,
    group_links,
    link_id,
    renamed_ids,
    rooted,
    user_claims,
)
from transforms.profiles.baskets import fold_carts, fold_lines, merge_checkout_lines
from transforms.profiles.checkouts import merge_cart_checkouts, merge_checkouts
from transforms.profiles.refunds import merge_refunds
from transforms.profiles.state import (
    CART_STATE,
    CATEGORY_COUNT,
    LINE_STATE,
    MOVE_STATE,
    ORDER_STATE,
    PARTIAL_SCHEMA,
    RECENT_SEARCHES,
    SEARCH,
    STATED,
    VIEW,
    VIEW_STATE,
    conform,
    fill_lists,
    first_orders,
    latest_statement,
    line_moves,
    log_sum_exp,
    nest,
    top_recent,
)


def first_claims(identities: pl.DataFrame) -> pl.DataFrame:
    """The identities edge that claims each anonymous id: the earliest, ties to the smaller user id."""
    return identities.sort("first_seen_at", "user_id").unique(
        "anonymous_id", keep="first", maintain_order=True
    )


def claims(identities: pl.DataFrame) -> dict[str, str]:
    """anonymous id -> the user that claims it (`first_claims`)."""
    return dict(first_claims(identities).select("anonymous_id", "user_id").iter_rows())


def direct_claims(identities: pl.DataFrame) -> pl.DataFrame:
    """`principal` (an anonymous id's, or a user's an alias renamed) -> `_to`, the principal of the user that
    claims it (`first_claims`, `aliases.user_claims`), and `_at`, the claim's time (aliases.CLAIMS)."""
    anonymous = first_claims(identities).select(
        anonymous_principal(pl.col("anonymous_id")).alias("principal"),
        user_principal(pl.col("user_id")).alias("_to"),
        pl.col("first_seen_at").alias("_at"),
    )
    return pl.concat([anonymous, user_claims(identities)])


def principal_claims(identities: pl.DataFrame) -> pl.DataFrame:
    """`principal` -> `_to`, the principal its claims end at (`direct_claims`, followed: `aliases.rooted`)."""
    return rooted(direct_claims(identities))


def principal_links(lookup: Lookup, principals: Iterable[str]) -> tuple[pl.DataFrame, list[str]]:
    """(links, ends): the identities edges that say where `principals` end and what else ends there
    (`aliases.claim_links` of them, `aliases.group_links` of the users they end at), and those ends, with
    those of every user an edge of theirs names: the principals whose merged states hold theirs."""
    wanted = set(principals)
    forward = claim_links(lookup, wanted)
    theirs = forward.filter(pl.col("anonymous_id").is_in(sorted(map(link_id, wanted))))
    ending = dict(principal_claims(forward).iter_rows())
    ends = {ending.get(p, p) for p in wanted | set(map(of_user, theirs["user_id"]))}
    users = sorted(u for u in map(user_of, ends) if u is not None)
    return pl.concat([forward, group_links(lookup, users, own_known=True)]).unique(), sorted(ends)


def linked_principals(links: pl.DataFrame) -> set[str]:
    """Every principal `links` (identities rows) name on their anonymous side: the anonymous ids', and the
    users' an alias renamed."""
    renamed = links.filter(pl.col("aliased_at").is_not_null())["anonymous_id"]
    return {*map(of_anonymous, links["anonymous_id"]), *map(of_user, renamed)}


def renamed_to(links: pl.DataFrame) -> dict[str, str]:
    """Each user id `links` (identities rows) rename -> the user id it goes by now (where its claims end)."""
    return renamed_ids(principal_claims(links))


def resolve(partial: pl.DataFrame, identities: pl.DataFrame) -> pl.DataFrame:
    """Partials re-keyed to the principal their claims end at (`principal_claims`): a user's where an
    identities edge links their anonymous one, the new user's where an alias renamed theirs."""
    links = principal_claims(identities)
    return (
        partial.join(links, on="principal", how="left")
        .with_columns(pl.coalesce("_to", "principal").alias("principal"))
        .drop("_to")
    )


def merge_partials(partial: pl.DataFrame) -> pl.DataFrame:
    """Partials with the same principal merged into one (associative, commutative, PARTIAL_SCHEMA)."""
    if partial.height == partial["principal"].n_unique():
        return fill_lists(partial.select(list(PARTIAL_SCHEMA)))  # a list a table lacked reads as null
    base = partial.group_by("principal").agg(
        pl.col("first_ts").min(),
        pl.col("last_ts").max(),
        pl.col("identified_at").min(),
        pl.col("consented_at").min(),
        pl.col("unsubscribed_at").min(),
        log_sum_exp(pl.col("engagement").drop_nulls()).alias("engagement"),
    )
    parts = (
        _merge_lines,
        _merge_moves,
        _merge_carts,
        merge_checkouts,
        merge_checkout_lines,
        merge_cart_checkouts,
        _merge_orders,
        merge_refunds,
        _merge_recent,
        _merge_categories,
    )
    for frame in [*_merge_stated(partial), *(part(partial) for part in parts)]:
        base = base.join(frame, on="principal", how="left")
    return conform(fill_lists(base))


def _merge_stated(partial: pl.DataFrame) -> list[pl.DataFrame]:
    """Per STATED name, one row per principal whose partials state it: the value stated last (ties: the
    greatest value) and its time."""
    return [latest_statement(partial, pl.col(f"{t}_ts").is_not_null(), t, f"{t}_ts", t) for t in STATED]


def _explode(partial: pl.DataFrame, column: str) -> pl.DataFrame:
    return partial.select("principal", column).explode(column).drop_nulls(column).unnest(column)


def _merge_lines(partial: pl.DataFrame) -> pl.DataFrame:
    return nest(fold_lines(_explode(partial, "lines")), "lines", LINE_STATE)


def _merge_moves(partial: pl.DataFrame) -> pl.DataFrame:
    return nest(line_moves(_explode(partial, "moves")), "moves", MOVE_STATE)


def _merge_carts(partial: pl.DataFrame) -> pl.DataFrame:
    return nest(fold_carts(_explode(partial, "carts")), "carts", CART_STATE)


def _merge_orders(partial: pl.DataFrame) -> pl.DataFrame:
    return nest(first_orders(_explode(partial, "orders")), "orders", ORDER_STATE)


def _merge_recent(partial: pl.DataFrame) -> pl.DataFrame:
    views = nest(top_recent(_explode(partial, "views"), VIEW_STATE), "views", VIEW)
    searches = nest(top_recent(_explode(partial, "searches"), RECENT_SEARCHES), "searches", SEARCH)
    return views.join(searches, on="principal", how="full", coalesce=True)


def _merge_categories(partial: pl.DataFrame) -> pl.DataFrame:
    counts = _explode(partial, "categories").group_by("principal", "category").agg(pl.col("n").sum())
    return nest(counts, "categories", CATEGORY_COUNT)

"""Principals (pure): the key a shopper's profile partials and state, trigger candidates and state-store
entries are kept under, built from a user or anonymous id and read back, in Python and in Polars.

An anonymous shopper's principal is `anon:<anonymous_id>`; a user's is its user id as itself, so every key a
lake or store holds stays valid, but for a user id that would read as another principal: one that starts
with `anon:`, after any number of `user:` (RESERVED), is kept as `user:<user id>`. Found by review: a user id
is any string (Segment's spec), and the user `anon:abc` was the anonymous shopper `abc`: one profile (the
shopper's cart in the user's emails, the user's address on the shopper's), and erasing one erased the other.
"""

from __future__ import annotations

import re

import polars as pl

ANON = "anon:"
USER = "user:"
RESERVED = r"^(?:user:)*anon:"  # user ids kept as `user:<id>` (the only ones `user:<id>` reads back as)
_RESERVED = re.compile(RESERVED)


def of_user(user_id: str) -> str:
    """The principal of a user: its id, or `user:<id>` when the id would read as another principal."""
    reserved = user_id.startswith((ANON, USER)) and _RESERVED.match(user_id)  # startswith first: cheaper
    return USER + user_id if reserved else user_id


def of_anonymous(anonymous_id: str) -> str:
    """The principal of an anonymous id: `anon:<id>`."""
    return ANON + anonymous_id


def is_anonymous(principal: str) -> bool:
    return principal.startswith(ANON)


def user_of(principal: str) -> str | None:
    """The user id a principal names (None: an anonymous one)."""
    if principal.startswith(ANON):
        return None
    if principal.startswith(USER) and _RESERVED.match(rest := principal[len(USER) :]):
        return rest
    return principal


def anonymous_of(principal: str) -> str | None:
    """The anonymous id a principal names (None: a user's)."""
    return principal[len(ANON) :] if principal.startswith(ANON) else None


def user_principal(user_ids: pl.Expr) -> pl.Expr:
    """`of_user` of each id (null stays null; named as `user_ids`)."""
    return pl.when(~user_ids.str.contains(RESERVED)).then(user_ids).otherwise(pl.lit(USER) + user_ids)


def anonymous_principal(anonymous_ids: pl.Expr) -> pl.Expr:
    """`of_anonymous` of each id (null stays null)."""
    return pl.lit(ANON) + anonymous_ids


def principal(user_ids: pl.Expr, anonymous_ids: pl.Expr) -> pl.Expr:
    """The principal of each row: its user's, else its anonymous id's."""
    return pl.coalesce(user_principal(user_ids), anonymous_principal(anonymous_ids))


def anonymous(principals: pl.Expr) -> pl.Expr:
    """Whether each principal is an anonymous id's."""
    return principals.str.starts_with(ANON)


def principal_user(principals: pl.Expr) -> pl.Expr:
    """`user_of` of each principal (null for an anonymous one; named as `principals`)."""
    rest = principals.str.strip_prefix(USER)
    escaped = principals.str.starts_with(USER) & rest.str.contains(RESERVED)
    return pl.when(~anonymous(principals) & ~escaped).then(principals).when(escaped).then(rest)

"""The `suppressions` table: `Unsubscribed` events -> rows (keyed by the HMAC user key, never the id), and
who of a set of shoppers it holds (the one predicate the trigger engine, the sender and replay use)."""

from __future__ import annotations

import polars as pl

from resources.lake import LakeResource
from transforms.erasure.records import suppressed, user_key
from transforms.profiles.merge import claims
from transforms.schema import IDENTITIES_SCHEMA, SUPPRESSIONS_SCHEMA

UNSUBSCRIBED = "unsubscribed"


def record_unsubscribes(lake: LakeResource, events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """Add an `unsubscribed` suppression per user who unsubscribed in `events` (idempotent); returns the
    rows of `events` the table holds now (SUPPRESSIONS_SCHEMA: added now, or by an earlier attempt of the
    same batch), which the state store takes."""
    rows = unsubscribe_rows(events, secret, _claims(lake, events))
    if rows.height == 0:
        return rows
    existing = lake.read("suppressions", SUPPRESSIONS_SCHEMA)
    new = rows.join(existing, on=["user_key", "reason"], how="anti")
    lake.write("suppressions", new)
    return pl.concat([new, rows.join(existing, on=list(SUPPRESSIONS_SCHEMA), how="semi")])


def _anonymous_unsubscribes(events: pl.DataFrame) -> pl.Series:
    unsubscribed = (pl.col("event_name") == "Unsubscribed") & pl.col("user_id").is_null()
    return events.filter(unsubscribed)["anonymous_id"].drop_nulls().unique()


def _claims(lake: LakeResource, events: pl.DataFrame) -> dict[str, str]:
    """anonymous id -> the user that claims it, as profiles resolve it, for the anonymous ids that
    unsubscribed in `events` without a user id. The batch's own edges are in `identities` already: the
    ingest merges them first."""
    anons = _anonymous_unsubscribes(events)
    if anons.is_empty():
        return {}
    edges = lake.scan("identities", IDENTITIES_SCHEMA).filter(pl.col("anonymous_id").is_in(anons.implode()))
    return claims(edges.collect())


def unsubscribe_rows(events: pl.DataFrame, secret: str, claims: dict[str, str] | None = None) -> pl.DataFrame:
    """One `unsubscribed` row per user who unsubscribed in `events`, since their first such event; an
    `Unsubscribed` with only an anonymous id counts for the user `claims` says claims it (found by review:
    a preference centre's unsubscribe from a browser that had logged in suppressed nobody)."""
    user = pl.coalesce("user_id", pl.col("anonymous_id").replace_strict(claims or {}, default=None))
    unsubscribed = events.filter(pl.col("event_name") == "Unsubscribed").with_columns(user.alias("user_id"))
    unsubscribed = unsubscribed.filter(pl.col("user_id").is_not_null())
    first = unsubscribed.group_by("user_id").agg(pl.col("event_ts").min().alias("since"))
    rows = pl.DataFrame(
        {
            "user_key": [user_key(u, secret) for u in first["user_id"]],
            "reason": UNSUBSCRIBED,
            "since": first["since"],
        },
        schema=SUPPRESSIONS_SCHEMA,
    )
    return rows


def suppressed_users(lake: LakeResource, profiles: pl.DataFrame, secret: str) -> frozenset[str]:
    """The users of `profiles` whose id or address is in `suppressions`: nobody mails them."""
    keys = set(lake.read("suppressions", SUPPRESSIONS_SCHEMA, ["user_key"])["user_key"])
    return suppressed(profiles, keys, secret)

"""The `suppressions` table: `Unsubscribed` events -> rows (keyed by the HMAC user key, never the id), and
who of a set of shoppers it holds (the one predicate the trigger engine, the sender and replay use)."""

from __future__ import annotations

import polars as pl

from resources.lake import LakeResource
from transforms.erasure.records import suppressed, user_key
from transforms.schema import SUPPRESSIONS_SCHEMA

UNSUBSCRIBED = "unsubscribed"


def record_unsubscribes(lake: LakeResource, events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """Add an `unsubscribed` suppression per user who unsubscribed in `events` (idempotent); returns the
    rows of `events` the table holds now (SUPPRESSIONS_SCHEMA: added now, or by an earlier attempt of the
    same batch), which the state store takes."""
    rows = unsubscribe_rows(events, secret)
    if rows.height == 0:
        return rows
    existing = lake.read("suppressions", SUPPRESSIONS_SCHEMA)
    new = rows.join(existing, on=["user_key", "reason"], how="anti")
    lake.write("suppressions", new)
    return pl.concat([new, rows.join(existing, on=list(SUPPRESSIONS_SCHEMA), how="semi")])


def unsubscribe_rows(events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """One `unsubscribed` row per user who unsubscribed in `events`, since their first such event."""
    unsubscribed = events.filter((pl.col("event_name") == "Unsubscribed") & pl.col("user_id").is_not_null())
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

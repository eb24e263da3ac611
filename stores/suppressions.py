"""The `suppressions` table: `Unsubscribed` events -> rows (keyed by the HMAC user key, never the id), and
who of a set of shoppers it holds (the one predicate the trigger engine, the sender and replay use).

An `Unsubscribed` with only an anonymous id is remembered under the id's own key (`anonymous_key`: no
user's, no address's) and suppresses the user who claims the id, as profiles resolve it, from the batch
whose identities edges make the claim: the same batch, or any later one (found by review: a browser's
unsubscribe linked to its user a batch later suppressed nobody, and the user was still mailed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from resources.lake import LakeResource
from transforms.erasure.records import anonymous_key, suppressed, user_key
from transforms.ingest.events import identity_edges
from transforms.profiles.merge import claims
from transforms.schema import IDENTITIES_SCHEMA, SUPPRESSIONS_SCHEMA

UNSUBSCRIBED = "unsubscribed"


def record_unsubscribes(lake: LakeResource, events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """Add an `unsubscribed` suppression per user who unsubscribed in `events`, per anonymous id that did
    without a user id, and per user who claims such an id after `events` (its identities edges merged
    first, as the ingest does); idempotent. Returns the rows of `events` the table holds now
    (SUPPRESSIONS_SCHEMA: added now, or by an earlier attempt of the same batch), which the state store
    takes."""
    own = unsubscribe_rows(events, secret)
    rows = _first(pl.concat([own, _claimed(lake, events, own, secret)]))
    if rows.height == 0:
        return rows
    existing = lake.read("suppressions", SUPPRESSIONS_SCHEMA)
    new = rows.join(existing, on=["user_key", "reason"], how="anti")
    lake.write("suppressions", new)
    return pl.concat([new, rows.join(existing, on=list(SUPPRESSIONS_SCHEMA), how="semi")])


def unsubscribe_rows(events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """One `unsubscribed` row per user who unsubscribed in `events`, and one per anonymous id that did
    without a user id (under its `anonymous_key`), since their first such event."""
    unsubscribed = events.filter(pl.col("event_name") == "Unsubscribed")
    users = unsubscribed.filter(pl.col("user_id").is_not_null())
    anonymous = unsubscribed.filter(pl.col("user_id").is_null() & pl.col("anonymous_id").is_not_null())
    by_user = users.group_by("user_id").agg(pl.col("event_ts").min())
    by_anon = anonymous.group_by("anonymous_id").agg(pl.col("event_ts").min())
    return _rows(
        [
            *((user_key(u, secret), t) for u, t in by_user.iter_rows()),
            *((anonymous_key(a, secret), t) for a, t in by_anon.iter_rows()),
        ]
    )


def _claimed(lake: LakeResource, events: pl.DataFrame, own: pl.DataFrame, secret: str) -> pl.DataFrame:
    """`unsubscribed` rows for the users who claim an anonymous id that unsubscribed (in `own`, or in an
    earlier batch: the table's row under its key), among the ids `events` unsubscribed from or link."""
    unsubscribed = events.filter((pl.col("event_name") == "Unsubscribed") & pl.col("user_id").is_null())
    touched = pl.concat([unsubscribed["anonymous_id"], identity_edges(events)["anonymous_id"]])
    by_key = {anonymous_key(a, secret): a for a in touched.drop_nulls().unique()}
    if not by_key:
        return _rows([])
    keys = pl.Series(list(by_key), dtype=pl.String).implode()
    held = lake.scan("suppressions", SUPPRESSIONS_SCHEMA).filter(
        pl.col("user_key").is_in(keys) & (pl.col("reason") == UNSUBSCRIBED)
    )
    remembered = pl.concat([own.filter(pl.col("user_key").is_in(keys)), held.collect()])
    if remembered.height == 0:
        return _rows([])
    anons = pl.Series([by_key[k] for k in remembered["user_key"].unique()], dtype=pl.String).implode()
    edges = lake.scan("identities", IDENTITIES_SCHEMA).filter(pl.col("anonymous_id").is_in(anons))
    owner = claims(edges.collect())  # the batch's own edges are in `identities` already
    return _rows(
        (user_key(owner[by_key[k]], secret), since)
        for k, since in remembered.select("user_key", "since").iter_rows()
        if by_key[k] in owner
    )


def _rows(keyed: Iterable[tuple[str, datetime]]) -> pl.DataFrame:
    pairs = list(keyed)
    rows = {"user_key": [k for k, _ in pairs], "reason": UNSUBSCRIBED, "since": [t for _, t in pairs]}
    return pl.DataFrame(rows, schema=SUPPRESSIONS_SCHEMA)


def _first(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per key and reason: the earliest."""
    first = rows.group_by("user_key", "reason").agg(pl.col("since").min())
    return first.select(list(SUPPRESSIONS_SCHEMA)).sort("user_key", "reason")


def suppressed_users(lake: LakeResource, profiles: pl.DataFrame, secret: str) -> frozenset[str]:
    """The users of `profiles` whose id or address is in `suppressions`: nobody mails them."""
    keys = set(lake.read("suppressions", SUPPRESSIONS_SCHEMA, ["user_key"])["user_key"])
    return suppressed(profiles, keys, secret)

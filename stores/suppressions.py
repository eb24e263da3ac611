"""The `suppressions` table: `Unsubscribed` events -> rows (keyed by the HMAC user key, never the id), and
who of a set of shoppers it holds (the one predicate the trigger engine, the sender and replay use).

An `Unsubscribed` with only an anonymous id is remembered under the id's own key (`anonymous_key`: no
user's, no address's) and suppresses the user who claims the id, as profiles resolve it, from the batch
whose identities edges make the claim: the same batch, or any later one (found by review: a browser's
unsubscribe linked to its user a batch later suppressed nobody, and the user was still mailed). So does a
user's, once an alias renames the user (Segment's previousId as a user id): the user it is renamed to is
suppressed too, whichever comes first (`transforms.profiles.aliases`). One that
names an address (the Segment Email spec's recipient, `context.traits.email`, or an `email` property)
suppresses that address too: an email tool's event carries its own id for the recipient, not the shop's.

Bounces and spam complaints (PRODUCT.md section 6: "bounces and unsubscribes -> suppressions") arrive as the
Segment Email spec's `Email Bounced` and `Email Marked as Spam` events, whoever lands them (a provider's
event relay, Segment's own email sources, the sender for a provider's synchronous refusal): a row per
address (`address_key` of the event's `email` property or `context.traits.email`), else per user, reason
`hard_bounce` or `complaint`. A bounce its producer calls soft or transient (`bounce_type`) suppresses
nobody: the next email may well arrive.

None of these events sent to the collector with a public write key (LAKEMAIL_WRITE_KEY, in every browser)
reaches `events`: the ingest quarantines it as `untrusted_suppression` (transforms.ingest.trust).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import polars as pl

from resources.lake import LakeResource
from stores.profiles import lake_lookup
from transforms.erasure.records import address_key, anonymous_key, suppressed, user_key
from transforms.ingest.events import identity_edges
from transforms.ingest.trust import UNSUBSCRIBED_EVENT
from transforms.principals import of_anonymous, of_user, user_of
from transforms.profiles.aliases import claim_links
from transforms.profiles.merge import principal_claims
from transforms.schema import SUPPRESSIONS_SCHEMA
from transforms.sends.refusals import BOUNCED, COMPLAINED

UNSUBSCRIBED = "unsubscribed"
# The events that suppress, and the reason each writes (PRODUCT.md's `suppressions` reasons). Only trusted
# ones reach `events`: the ingest quarantines them under a public write key (transforms.ingest.trust).
SUPPRESSING = {UNSUBSCRIBED_EVENT: UNSUBSCRIBED, BOUNCED: "hard_bounce", COMPLAINED: "complaint"}
SOFT_BOUNCES = ("soft", "transient", "softbounce", "soft_bounce", "temporary")


def record_unsubscribes(lake: LakeResource, events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """Add an `unsubscribed` suppression per user who unsubscribed in `events`, per anonymous id that did
    without a user id, and per user who claims such an id after `events` (its identities edges merged
    first, as the ingest does); idempotent. Returns the rows of `events` the table holds now
    (SUPPRESSIONS_SCHEMA: added now, or by an earlier attempt of the same batch), which the state store
    takes."""
    own = unsubscribe_rows(events, secret)
    rows = _first(pl.concat([own, _claimed(lake, events, own, secret), delivery_rows(events, secret)]))
    if rows.height == 0:
        return rows
    existing = lake.read("suppressions", SUPPRESSIONS_SCHEMA)
    new = rows.join(existing, on=["user_key", "reason"], how="anti")
    lake.write("suppressions", new)
    return pl.concat([new, rows.join(existing, on=list(SUPPRESSIONS_SCHEMA), how="semi")])


def unsubscribe_rows(events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """One `unsubscribed` row per user who unsubscribed in `events`, one per anonymous id that did
    without a user id (under its `anonymous_key`), and one per address an `Unsubscribed` names (the
    Segment Email spec's recipient, `context.traits.email`, or an `email` property: an email tool's
    event names its own id for the recipient, or a relay's, not the shop's user id), since their first
    such event."""
    unsubscribed = events.filter(pl.col("event_name") == "Unsubscribed")
    users = unsubscribed.filter(pl.col("user_id").is_not_null())
    anonymous = unsubscribed.filter(pl.col("user_id").is_null() & pl.col("anonymous_id").is_not_null())
    named = unsubscribed.select(_address().alias("email"), "event_ts").filter(pl.col("email") != "")
    by_user = users.group_by("user_id").agg(pl.col("event_ts").min())
    by_anon = anonymous.group_by("anonymous_id").agg(pl.col("event_ts").min())
    return _rows(
        [
            *((user_key(u, secret), t) for u, t in by_user.iter_rows()),
            *((anonymous_key(a, secret), t) for a, t in by_anon.iter_rows()),
            *((address_key(e, secret), t) for e, t in named.iter_rows()),
        ]
    )


def _address() -> pl.Expr:
    """The address an email event names: its `email` property, else `context.traits.email` (blanks
    around it taken off; null when it names none)."""
    props, context = pl.col("properties"), pl.col("context")
    named = pl.coalesce(props.str.json_path_match("$.email"), context.str.json_path_match("$.traits.email"))
    return named.str.strip_chars()


def delivery_rows(events: pl.DataFrame, secret: str) -> pl.DataFrame:
    """`hard_bounce` and `complaint` rows for the `Email Bounced` (not soft) and `Email Marked as Spam`
    events of `events`: under the address they name, else the user's key; nobody's when neither."""
    kind = (
        pl.col("properties")
        .str.json_path_match("$.bounce_type")
        .str.to_lowercase()
        .str.replace_all(r"[\s-]", "_")
    )
    # The two names first: the JSON path of every event's properties cost 0.2 CPU-s a 250k events (#17).
    named = events.filter(pl.col("event_name").is_in([BOUNCED, COMPLAINED]))
    found = named.filter(
        (pl.col("event_name") == COMPLAINED) | ~kind.is_in(SOFT_BOUNCES).fill_null(False)
    ).select(
        pl.col("event_name").replace_strict(SUPPRESSING, return_dtype=pl.String).alias("reason"),
        _address().alias("email"),
        "user_id",
        "event_ts",
    )
    keyed = [
        (address_key(email, secret) if email else user_key(user, secret), reason, since)
        for reason, email, user, since in found.iter_rows()
        if email or user
    ]
    return pl.DataFrame(
        {
            "user_key": [k for k, _, _ in keyed],
            "reason": [r for _, r, _ in keyed],
            "since": [t for *_, t in keyed],
        },
        schema=SUPPRESSIONS_SCHEMA,
    )


def _claimed(lake: LakeResource, events: pl.DataFrame, own: pl.DataFrame, secret: str) -> pl.DataFrame:
    """`unsubscribed` rows for the users where the claims of a principal that unsubscribed end (an
    anonymous id that did, or a user an alias renamed: in `own`, or in an earlier batch, the table's row
    under its key), among the principals `events` unsubscribed from or link."""
    unsubscribed = events.filter(pl.col("event_name") == "Unsubscribed")
    edges = identity_edges(events)
    anons = pl.concat(
        [unsubscribed.filter(pl.col("user_id").is_null())["anonymous_id"], edges["anonymous_id"]]
    )
    renamed = edges.filter(pl.col("aliased_at").is_not_null())["anonymous_id"]  # previous ids, as users
    users = pl.concat([unsubscribed["user_id"], renamed])
    by_key = {anonymous_key(a, secret): of_anonymous(a) for a in anons.drop_nulls().unique()}
    by_key |= {user_key(u, secret): of_user(u) for u in users.drop_nulls().unique()}
    if not by_key:
        return _rows([])
    keys = pl.Series(list(by_key), dtype=pl.String).implode()
    unsubscribed_keys = pl.col("user_key").is_in(keys) & (pl.col("reason") == UNSUBSCRIBED)
    held = lake.collect("suppressions", SUPPRESSIONS_SCHEMA, lambda rows: rows.filter(unsubscribed_keys))
    remembered = pl.concat([own.filter(pl.col("user_key").is_in(keys)), held])
    if remembered.height == 0:
        return _rows([])
    principals = sorted({by_key[k] for k in remembered["user_key"]})
    # the batch's own edges are in `identities` already
    ends = dict(principal_claims(claim_links(lake_lookup(lake), principals)).iter_rows())
    rows = []
    for k, since in remembered.select("user_key", "since").iter_rows():
        end = ends.get(by_key[k])  # None: nobody claims it
        if end is not None and (user := user_of(end)) is not None:
            rows.append((user_key(user, secret), since))
    return _rows(rows)


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

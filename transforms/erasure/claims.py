"""GDPR erasure, pure part: anonymous ids a person shares with other users, and what of them is theirs.

An anonymous id is a browser's cookie or an app's install id, chosen by the client: a shared computer,
a shopper logging into someone else's account, or anyone holding the public write key can identify a
second user with it. Erasing Y, who had identified with X's anonymous id A, used to take A as Y's key
and delete every row holding it: X's events, identity edge, profile partials and candidates, and X's
profile in the state store (found by review). An anonymous id linked to the person and to another user
(an `identities` edge, or a landed line not ingested yet) is now *shared*, and the erasure of the person:
- never erases a row or landed line that carries another user's id (their `user_id` or `principal`, or
  the id of a user linked to a shared id) because it holds the shared id; one holding a key of the person
  alone (their user id, an address of theirs, an anonymous id only they use) still goes, as before;
- erases the shared id's anonymous rows (no user id: browsing before a login, their `anon:` partials,
  candidates and state-store keys) only when the person claimed the id first, as profiles merge them
  (`transforms.profiles.merge.first_claims`: the earliest edge, ties to the smaller user id; a link not
  ingested yet counts after every ingested one). Profiles read those rows as the first claimant's: kept
  when that is another user, they stay that user's profile, unchanged by the erasure; erased when it is
  the person, since once their edge is gone the next claimant's profile would take the person's
  browsing. What is kept no longer names the person (their edge and rows are gone) and goes with the
  erasure of the last user linked to the id.
The certificate counts the shared ids (`shared_ids`: claimed first by the person, `kept_ids`: by another)
and what still holds one of them after the erasure, left on purpose (`kept_rows`, `kept_lines`).

A user an `alias` renamed (previousId u-old, userId u-new) is one shopper with the new id: profiles, the
store and the engine merge u-old into u-new (`transforms.profiles.aliases`). The erasure of either id
took u-old as an anonymous id only, so u-old's profile partials (her address), state-store keys and
product views stayed, the certificate passed, and `lakemail state check` found the store (which had
dropped u-old) unequal to a rebuild (found by review). The person is now the whole shopper
(`merged_users`): every user whose claims end where the erased id's do (renamed into it, in turn, or
it into them: erasing the old id erases the new one too), each one a key of theirs alone as the user
id is, with the anonymous ids linked to any of them taken as above. A user an alias of theirs named but
did not claim (renamed to another user first) is another user's, and stays.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from transforms.principals import of_user, user_of
from transforms.profiles.aliases import Lookup, claim_links, group_links, renamed_users
from transforms.profiles.merge import first_claims, principal_claims

NOT_INGESTED = datetime.max.replace(tzinfo=UTC)  # a landed link's time: after every ingested edge
EDGE_SCHEMA = {"anonymous_id": pl.String(), "user_id": pl.String(), "first_seen_at": pl.Datetime("us", "UTC")}


@dataclass(frozen=True)
class Claims:
    """The person's anonymous ids as the erasure takes them (all sorted)."""

    theirs: tuple[str, ...]  # whose anonymous rows are the person's: no other user, or claimed first by them
    shared: tuple[str, ...]  # of `theirs`, those another user is linked to as well
    kept: tuple[str, ...]  # linked to the person, but claimed first by another user: none of it erased
    others: tuple[str, ...]  # the other users linked to any of them


def edges(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame`'s (anonymous_id, user_id, first_seen_at) edges, both ids set; no time: not ingested yet."""
    if "first_seen_at" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, EDGE_SCHEMA["first_seen_at"]).alias("first_seen_at"))
    return (
        frame.select(pl.col(c).cast(t) for c, t in EDGE_SCHEMA.items())
        .drop_nulls(["anonymous_id", "user_id"])
        .with_columns(pl.col("first_seen_at").fill_null(NOT_INGESTED))
    )


def merged_users(lookup: Lookup, user_id: str) -> tuple[str, ...]:
    """The other user ids an `alias` made one shopper with `user_id` (`transforms.profiles.aliases`), over
    the identities edges `lookup` finds: the user where `user_id`'s claims end, and every user whose claims
    end there (renamed into it, in turn, or `user_id` renamed into them), sorted."""
    me = of_user(user_id)
    forward = claim_links(lookup, [me])
    end = dict(principal_claims(forward).iter_rows()).get(me, me)
    found = pl.concat([forward, group_links(lookup, [user_of(end) or user_id])]).unique()
    ending = renamed_users(principal_claims(found)).filter(pl.col("_to") == end)
    users = {user_of(end), *map(user_of, ending["principal"])}
    return tuple(sorted(u for u in users if u is not None and u != user_id))


def claims(
    user_id: str, anonymous_ids: Iterable[str], linked: pl.DataFrame, merged: Collection[str] = ()
) -> Claims:
    """How the erasure of `user_id` takes each of their `anonymous_ids`, given `linked`: the edges (`edges`)
    of every user linked to one of them, the person's own included. `merged`: the other user ids of the
    same shopper (`merged_users`), the person's as `user_id` is; an anonymous id that is one of them (an
    alias's previous id) is theirs."""
    users = {user_id, *merged}
    ids = sorted(set(anonymous_ids))
    own = pl.DataFrame({"anonymous_id": ids, "user_id": [user_id] * len(ids)})  # a link `linked` lacks
    known = pl.concat([edges(linked).filter(pl.col("anonymous_id").is_in(ids)), edges(own)])
    first = first_claims(known.group_by("anonymous_id", "user_id").agg(pl.col("first_seen_at").min()))
    claimant = dict(first.select("anonymous_id", "user_id").iter_rows())
    other = known.filter(~pl.col("user_id").is_in(sorted(users)))
    shared = set(other["anonymous_id"])
    theirs = [a for a in ids if claimant[a] in users or a in users]
    return Claims(
        tuple(theirs),
        tuple(a for a in theirs if a in shared and a not in users),
        tuple(a for a in ids if a not in theirs),
        tuple(sorted(set(other["user_id"]))),
    )

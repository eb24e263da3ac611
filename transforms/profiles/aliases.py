"""Users an `alias` merges (pure): the claims identities edges make, followed to the principal they end at.

Segment's `alias` merges two identities: its previousId "might be an Anonymous ID assigned to that user or
a User ID you previously identified them with" (spec/alias.md: a user the shop renames, two accounts
merged), its userId is the identity kept. An edge links the previous id as an anonymous id (as an identify
does: `transforms.profiles.merge.first_claims`); an edge an alias made (`aliased_at`) also gives the user
of that id to the alias's user: the first alias of a previous id claims it (ties: the smaller user id), as
the first edge of an anonymous id does, and a previous id that is the alias's own user id claims nothing.

A claimer can be claimed in turn (a user renamed twice; the anonymous ids a renamed user claimed): each
principal resolves to the end of its claims (`rooted`). Claims that come back round (renamed, then renamed
back) end at the user their latest alias names. Whatever order the edges come in, the same edges give the
same principals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import polars as pl

from transforms.principals import ANON, anonymous, anonymous_of, principal_user, user_of, user_principal
from transforms.schema import IDENTITIES_SCHEMA

# identities rows (IDENTITIES_SCHEMA) whose `column` (anonymous_id or user_id) is one of the ids
Lookup = Callable[[str, pl.Series], pl.DataFrame]
CLAIMS = {"principal": pl.String(), "_to": pl.String(), "_at": pl.Datetime("us", "UTC")}


def first_aliases(identities: pl.DataFrame) -> pl.DataFrame:
    """The identities rows of each previous id's earliest alias (ties: the smaller user id), not to itself."""
    aliased = identities.filter(
        pl.col("aliased_at").is_not_null() & (pl.col("anonymous_id") != pl.col("user_id"))
    )
    return aliased.sort("aliased_at", "user_id").unique("anonymous_id", keep="first", maintain_order=True)


def user_claims(identities: pl.DataFrame) -> pl.DataFrame:
    """The user each alias's previous id, as a user id, is claimed by: its earliest alias (ties: the smaller
    user id), not itself (CLAIMS: the principals of both and the alias's time)."""
    return first_aliases(identities).select(
        user_principal(pl.col("anonymous_id")).alias("principal"),
        user_principal(pl.col("user_id")).alias("_to"),
        pl.col("aliased_at").alias("_at"),
    )


def rooted(direct: pl.DataFrame) -> pl.DataFrame:
    """`direct` claims (CLAIMS: one a principal) with `_to` the principal each ends at (principal, _to):
    claims of claimers followed; in claims that come back round, the user named by the latest of them
    (ties: the greater principals). A principal its claims end at is not listed."""
    hops = direct.filter(pl.col("principal").is_in(direct["_to"].implode()))
    if hops.height == 0:  # nobody claimed is a claimer (no user renamed): the claims end where they go
        return direct.select("principal", "_to")
    ends = _ends({p: (to, at) for p, to, at in hops.select("principal", "_to", "_at").iter_rows()})
    ended = direct.with_columns(pl.col("_to").replace(ends))
    return ended.filter(pl.col("principal") != pl.col("_to")).select("principal", "_to")


def _ends(claimed: dict[str, tuple[str, object]]) -> dict[str, str]:
    """Where each principal of `claimed` (principal -> its claimer, the claim's time; claimers only) ends."""
    ends: dict[str, str] = {}
    for start in claimed:
        path: list[str] = []
        at: dict[str, int] = {}
        node = start
        while node in claimed and node not in ends and node not in at:
            at[node] = len(path)
            path.append(node)
            node = claimed[node][0]
        if node in ends:
            end = ends[node]
        elif node in at:  # round: the user the latest claim of it names
            latest = max(path[at[node] :], key=lambda n: (claimed[n][1], claimed[n][0], n))
            end = claimed[latest][0]
        else:
            end = node
        ends.update(dict.fromkeys(path, end))
    return ends


def link_id(principal: str) -> str:
    """The id a principal's edges name it by as their anonymous side (an alias's previous id)."""
    anon = anonymous_of(principal)
    return anon if anon is not None else str(user_of(principal))


def link_ids(principals: pl.Expr) -> pl.Expr:
    """`link_id` of each principal."""
    return (
        pl.when(anonymous(principals))
        .then(principals.str.strip_prefix(ANON))
        .otherwise(principal_user(principals))
    )


def _ids(values: Iterable[str] | pl.Series) -> pl.Series:
    return values if isinstance(values, pl.Series) else pl.Series(list(values), dtype=pl.String)


def claim_links(
    lookup: Lookup, principals: Iterable[str] | pl.Series, extra: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The edges (IDENTITIES_SCHEMA) that say where `principals` end: each one's edges as an anonymous side,
    and those of every user an edge of theirs names, in turn (`extra`'s users too; not returned)."""
    found = [pl.DataFrame(schema=IDENTITIES_SCHEMA)]
    wanted = pl.DataFrame({"p": _ids(principals)}).select(link_ids(pl.col("p"))).to_series()
    if extra is not None:
        wanted = pl.concat([wanted, extra["user_id"]])
    wanted = wanted.drop_nulls().unique().sort()
    asked = wanted
    while wanted.len():
        rows = lookup("anonymous_id", wanted).select(list(IDENTITIES_SCHEMA))
        found.append(rows)
        named = rows["user_id"].unique()
        wanted = named.filter(~named.is_in(asked.implode())).sort()
        asked = pl.concat([asked, wanted])
    return pl.concat(found).unique()


def group_links(lookup: Lookup, users: Iterable[str] | pl.Series, *, own_known: bool = False) -> pl.DataFrame:
    """The edges (IDENTITIES_SCHEMA) of `users` (ids) and of every user id an alias of theirs renamed to
    theirs, in turn: as the user side, and as the anonymous side for those users (what else claims them;
    `own_known`: the caller has those of `users` themselves)."""
    found = [pl.DataFrame(schema=IDENTITIES_SCHEMA)]
    wanted = _ids(users).unique().sort()
    members, own = wanted, not own_known
    while wanted.len():
        if own:
            found.append(lookup("anonymous_id", wanted).select(list(IDENTITIES_SCHEMA)))
        own = True
        theirs = lookup("user_id", wanted).select(list(IDENTITIES_SCHEMA))
        found.append(theirs)
        renamed = theirs.filter(pl.col("aliased_at").is_not_null())["anonymous_id"].unique()
        wanted = renamed.filter(~renamed.is_in(members.implode())).sort()
        members = pl.concat([members, wanted])
    return pl.concat(found).unique()


def renamed_users(claims: pl.DataFrame) -> pl.DataFrame:
    """Of `claims` (principal, _to), those of user principals: the users aliases renamed."""
    return claims.filter(~anonymous(pl.col("principal")))


def renamed_ids(claims: pl.DataFrame) -> dict[str, str]:
    """Of `claims` (principal, _to), each user id an alias renamed -> the user id it goes by now."""
    users = renamed_users(claims).select(
        principal_user(pl.col("principal")), principal_user(pl.col("_to")).alias("_to")
    )
    return dict(users.iter_rows())


def first_known(links: pl.DataFrame) -> dict[str, str]:
    """Each user id of `links` (identities rows) an alias renamed her to -> the id she was first known by.

    A user whose earliest edge is an alias claiming its previous id for her (nothing of her id was seen
    before it: the rename made it) was that id before, followed back (renamed twice; renamed and back: the
    id the earliest of those aliases renamed). A user seen before the alias (a login's alias naming her
    anonymous id, two accounts merged into the one kept) is known by her own id. Only ids known by another
    are listed."""
    # Only an alias seen no earlier than the first sighting of its own pair can have made its user.
    shaped = links.filter(pl.col("aliased_at") == pl.col("first_seen_at"))["anonymous_id"]
    if shaped.len() == 0:
        return {}
    first = first_aliases(links.filter(pl.col("anonymous_id").is_in(shaped.implode())))
    first = first.select(pl.col("anonymous_id").alias("_from"), "user_id", "aliased_at")
    named = links.filter(pl.col("user_id").is_in(first["user_id"].implode()))
    seen = named.group_by("user_id").agg(pl.col("first_seen_at").min().alias("_seen"))
    made = first.join(seen, on="user_id").filter(pl.col("aliased_at") <= pl.col("_seen"))
    made = made.sort("aliased_at", "_from").unique("user_id", keep="first")
    return _starts({u: (was, at) for u, was, at in made.select("user_id", "_from", "aliased_at").iter_rows()})


def _starts(made: dict[str, tuple[str, datetime]]) -> dict[str, str]:
    """Where each user of `made` (user -> the id an alias renamed to it, the alias's time) starts."""
    starts: dict[str, str] = {}
    for user in made:
        path, node = [user], made[user][0]
        while node in made and node not in path:
            path.append(node)
            node = made[node][0]
        if node in path:  # round: the id the earliest alias of the round renamed
            node = made[min(path[path.index(node) :], key=lambda n: (made[n][1], made[n][0]))][0]
        if node != user:
            starts[user] = node
    return starts

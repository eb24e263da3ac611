"""A few shoppers' CRM rows from the state store as the profile API reads them, one read transaction at a
time: the store keeps each row under the id the CRM gave it (`customers`), and a user an `alias` renamed is
the new id's shopper, CRM row included (`transforms.profiles.crm`).

A claim walk (`transforms.profiles.merge.principal_links`) costs milliseconds; an API lookup, tens of
microseconds. Most aliases name an anonymous id (analytics.js's `alias(userId)`), which renames no user with
a CRM row, so a few keyed reads (`renames_near`) say first whether a walk can change anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
import polars as pl

from stores.state.links import Links, store_lookup
from transforms.principals import of_user
from transforms.profiles.crm import shopper_rows
from transforms.profiles.merge import principal_links, renamed_to
from transforms.schema import CUSTOMERS_SCHEMA
from transforms.state import LINK_ANON, LINK_USER, decode


def _aliased(value: bytes, own: str) -> set[str]:
    """The ids on the other side of the links `value` (an identity_links value of `own`) that an alias
    made, but `own`."""
    return {link["id"] for link in orjson.loads(value)["links"] if link.get("aliased_at")} - {own}


def renames_near(store: Links, users: Sequence[str]) -> bool:
    """Whether an alias may have renamed one of `users` away (an alias names it as its previous id), or
    renamed to one of them a user id with a CRM row or with links of its own (a chain of renames goes
    through such an id): when not, their CRM rows are their own."""
    sides = {LINK_ANON + u: (True, u) for u in users} | {LINK_USER + u: (False, u) for u in users}
    previous: set[str] = set()
    for key, value in store.get_many("identity_links", sides).items():
        away, user = sides[key]
        others = _aliased(value, user)
        if away and others:  # an alias named her as its previous id
            return True
        if not away:  # the ids aliases renamed to hers (anonymous ids, mostly)
            previous |= others
    if not previous:
        return False
    linked = store.get_many("identity_links", [LINK_USER + p for p in sorted(previous)])
    return bool(linked or store.get_many("customers", sorted(previous)))


def shopper_crm_values(store: Links, users: Sequence[str], values: Mapping[str, bytes]) -> dict[str, bytes]:
    """The stored CRM row (its bytes) of each of `users`' shoppers, by user id: `values` (the rows stored
    under `users`) with those of the ids an alias renamed to them folded in (the newest stands, under the
    user's id), and none for an id renamed away."""
    if not renames_near(store, users):
        return dict(values)
    links, _ = principal_links(store_lookup(store), [of_user(u) for u in users])
    renamed = renamed_to(links)
    wanted = set(users)
    own = {u: v for u, v in values.items() if u not in renamed}
    olds = sorted(old for old, new in renamed.items() if new in wanted)
    rows = {**own, **store.get_many("customers", olds)}
    if len(rows) == len(own):
        return own
    stored = decode(list(rows.values()), CUSTOMERS_SCHEMA).with_columns(pl.Series("_stored", list(rows)))
    folded = shopper_rows(stored, renamed, sorted(wanted - set(renamed)))
    out: dict[str, bytes] = {}
    for user, source in folded.select("user_id", "_stored").iter_rows():
        value = rows[source]
        out[user] = value if source == user else orjson.dumps({**orjson.loads(value), "user_id": user})
    return out

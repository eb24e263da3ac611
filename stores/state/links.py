"""identities edges as the state store keeps them (`identity_links`, keyed from both sides): the lookup the
claim walks of `transforms.profiles.aliases` take (the lake's: `stores.profiles.lake_lookup`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import polars as pl

from stores.state.namespaces import VALUE_SCHEMAS
from transforms.profiles.aliases import Lookup
from transforms.schema import IDENTITIES_SCHEMA
from transforms.state import LINK_ANON, LINK_USER, decode

SIDES = {"anonymous_id": (LINK_ANON, "user_id"), "user_id": (LINK_USER, "anonymous_id")}


class Links(Protocol):
    def get_many(self, namespace: str, keys: Iterable[str]) -> Mapping[str, bytes]: ...


def stored_links(store: Links, column: str, ids: pl.Series) -> pl.DataFrame:
    """The identities edges (IDENTITIES_SCHEMA) the store keeps for `ids` as their `column` side."""
    side, other = SIDES[column]
    found = store.get_many("identity_links", (side + ids).rename("key"))
    if not found:
        return pl.DataFrame(schema=IDENTITIES_SCHEMA)
    names = pl.Series(column, list(found), dtype=pl.String)
    rows = decode(list(found.values()), VALUE_SCHEMAS["identity_links"]).with_columns(
        names.str.strip_prefix(side)
    )
    edges = rows.explode("links").drop_nulls("links").unnest("links").rename({"id": other})
    return edges.select([pl.col(c).cast(t) for c, t in IDENTITIES_SCHEMA.items()])


def store_lookup(store: Links) -> Lookup:
    """The store's `stored_links` as a claim walk's lookup."""
    return lambda column, ids: stored_links(store, column, ids)

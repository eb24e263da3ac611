"""Who the erasure of a renamed shopper takes (`transforms.erasure.claims.merged_users`, found by review: the
ids an `alias` renamed were taken as anonymous ids only): every user whose claims end where the erased
id's do, whichever of her ids is erased; a user an alias named but did not claim is another's. The
anonymous ids of any of hers are hers, an old id is no id she shares, and landed aliases not ingested
yet are read as the ingest will take them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest

from transforms.erasure.claims import Claims, claims, merged_users
from transforms.erasure.landed import landed_aliases
from transforms.profiles.aliases import Lookup
from transforms.schema import IDENTITIES_SCHEMA

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _lookup(*rows: tuple[str, str, float, float | None]) -> Lookup:
    """A claim walk's lookup over identities edges (anonymous id, user id, first seen, aliased; minutes)."""

    def moment(minutes: float | None) -> datetime | None:
        return None if minutes is None else T0 + timedelta(minutes=minutes)

    frame = pl.DataFrame(
        [(a, u, moment(seen), moment(aliased)) for a, u, seen, aliased in rows],
        schema=IDENTITIES_SCHEMA,
        orient="row",
    )
    return lambda column, ids: frame.filter(pl.col(column).is_in(ids.implode()))


CHAIN = _lookup(("a1", "u1", 0, None), ("u1", "u2", 5, 5), ("u2", "u3", 9, 9), ("b1", "u9", 0, None))
FIRST = _lookup(("u1", "u3", 7, 7), ("u1", "u2", 3, 3))  # u1's first alias names u2
BACK = _lookup(("u1", "u2", 1, 1), ("u2", "u1", 8, 8))  # renamed, then renamed back
IDENTIFY = _lookup(("u1", "u2", 1, None), ("u3", "u3", 2, 2))  # no alias: nobody renamed
SHAPED = _lookup(("anon:x", "u2", 1, 1))  # a user id shaped like an anonymous principal


@pytest.mark.parametrize(
    ("lookup", "user", "expected"),
    [
        (CHAIN, "u1", ("u2", "u3")),
        (CHAIN, "u2", ("u1", "u3")),
        (CHAIN, "u3", ("u1", "u2")),
        (CHAIN, "u9", ()),
        (FIRST, "u1", ("u2",)),
        (FIRST, "u2", ("u1",)),
        (FIRST, "u3", ()),  # its alias of u1 came second: u1 is u2's
        (BACK, "u1", ("u2",)),
        (BACK, "u2", ("u1",)),
        (IDENTIFY, "u2", ()),
        (IDENTIFY, "u1", ()),
        (IDENTIFY, "u3", ()),
        (SHAPED, "u2", ("anon:x",)),
        (SHAPED, "anon:x", ("u2",)),
        (CHAIN, "nobody", ()),
    ],
)
def test_the_users_an_erasure_takes_with_the_erased_id(
    lookup: Lookup, user: str, expected: tuple[str, ...]
) -> None:
    assert merged_users(lookup, user) == expected


def test_an_old_id_and_its_anonymous_ids_are_hers_not_shared() -> None:
    """u-new erased, u-old hers: her phone `a` (linked to u-old only) is hers, and u-old, linked as an
    anonymous id to u-new and to u-x (a later alias), is no shared id: every row holding it is hers."""
    seen = T0
    linked = pl.DataFrame(
        [("a", "u-old", seen), ("u-old", "u-new", seen), ("u-old", "u-x", seen + timedelta(hours=1))],
        schema={
            "anonymous_id": pl.String(),
            "user_id": pl.String(),
            "first_seen_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    assert claims("u-new", ["a", "u-old"], linked, ["u-old"]) == Claims(("a", "u-old"), (), (), ("u-x",))
    assert claims("u-new", ["a", "u-old"], linked) == Claims(("u-old",), ("u-old",), ("a",), ("u-old", "u-x"))


def test_landed_aliases_are_read_as_sent() -> None:
    lines = [
        {"type": "alias", "userId": "u-new", "previousId": "u-old"},
        {"type": "alias", "userId": "u-2", "previousId": " "},  # a blank id names none
        {"type": "identify", "userId": "u-3", "previousId": "u-4"},  # not an alias
        {"type": "alias", "userId": 7, "previousId": "u-5"},  # no id
    ]
    content = b"\n".join(orjson.dumps(m) for m in lines) + b'\n{"previousId": broken\n'
    assert landed_aliases(content) == {("u-old", "u-new")}
    assert landed_aliases(b'{"type":"alias","userId":"u-1"}') == set()

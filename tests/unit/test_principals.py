"""Principals (`transforms.principals`, found by review): a user id that reads as another principal is kept
as `user:<id>`, every other user id as itself (the keys of existing lakes and stores stay valid); the
principal reads back as the id it was made of, in Python and in Polars alike; and the erasure takes an id
where a principal stands as a principal (`transforms.erasure.match`)."""

from __future__ import annotations

import polars as pl
import pytest

from transforms.erasure.match import Lines, mentions
from transforms.erasure.person import Person
from transforms.principals import (
    anonymous_of,
    of_anonymous,
    of_user,
    principal,
    principal_user,
    user_of,
    user_principal,
)

IDS = ["u-1", "anon:a-1", "user:x", "user:anon:x", "user:user:anon:", "anon:", "user:", "", "anon", "ANON:x"]


@pytest.mark.parametrize(
    ("user_id", "kept_as"),
    [
        ("u-1", "u-1"),
        ("user:x", "user:x"),  # an ordinary id, `user:` or not, is itself: existing keys stay valid
        ("anonymous:x", "anonymous:x"),
        ("ANON:x", "ANON:x"),
        ("anon:a-1", "user:anon:a-1"),  # would be anonymous `a-1`'s
        ("user:anon:x", "user:user:anon:x"),  # would be the user `anon:x`'s
    ],
)
def test_only_a_user_id_that_reads_as_another_principal_is_escaped(user_id: str, kept_as: str) -> None:
    assert of_user(user_id) == kept_as
    assert (user_of(kept_as), anonymous_of(kept_as)) == (user_id, None)


def test_principals_are_one_per_shopper_and_read_back_in_python_and_polars() -> None:
    made = [of_user(i) for i in IDS] + [of_anonymous(i) for i in IDS]
    assert len(set(made)) == len(made)  # no user's is another user's or an anonymous shopper's
    assert [user_of(p) for p in made] == [*IDS, *[None] * len(IDS)]
    assert [anonymous_of(p) for p in made] == [*[None] * len(IDS), *IDS]
    frame = pl.DataFrame({"user_id": [*IDS, None], "anonymous_id": [None] * len(IDS) + ["a-1"]})
    built = frame.select(principal(pl.col("user_id"), pl.col("anonymous_id")).alias("p"))["p"]
    assert built.to_list() == [*(of_user(i) for i in IDS), "anon:a-1"]
    assert frame.select(user_principal(pl.col("user_id")))["user_id"].to_list() == [*map(of_user, IDS), None]
    back = pl.DataFrame({"p": made}).select(principal_user(pl.col("p")))["p"]
    assert back.to_list() == [user_of(p) for p in made]


def test_an_id_where_a_principal_stands_is_another_shoppers() -> None:
    """The user `anon:a-1`'s id is anonymous `a-1`'s principal: erasing the user leaves the shopper's
    partial and store values, erasing the shopper's claimant leaves the user's."""
    user, claimant = Person("anon:a-1"), Person("u-1", ("a-1",))
    rows = pl.DataFrame({"principal": ["anon:a-1", "user:anon:a-1"], "user_id": [None, "anon:a-1"]})
    for person, theirs in ((user, [False, True]), (claimant, [True, False])):
        assert rows.select(mentions(rows.collect_schema(), person)).to_series().to_list() == theirs
    values = [b'{"principal":"anon:a-1","email":null}', b'{"principal":"user:anon:a-1","user_id":"anon:a-1"}']
    assert [Lines.of(user).theirs(v) for v in values] == [False, True]
    assert [Lines.of(claimant).theirs(v) for v in values] == [True, False]

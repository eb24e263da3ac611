"""The id a renamed shopper's experiment arms are hashed by (`aliases.first_known`): the id she was first
known by, so an `alias` renaming her (Segment's spec/alias.md: previousId her old user id) moves her neither
into nor out of the global holdout, nor to another A/B variant (found by a helper: both were hashed from the
id she goes by now). Only an id the alias made is followed back: an alias naming the anonymous id of a user
seen before (analytics.js's sign-up or login `alias`), or merging an account into one seen before, leaves her
own id. Segment-shaped messages through the real ingest parser and `identity_edges`."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, spec_message
from transforms.profiles.aliases import first_known
from transforms.triggers.renamed import arm_ids


def _identify(minutes: float, user: str, anon: str | None = None) -> dict[str, Any]:
    return spec_message("identify", at(minutes), user=user, anon=anon, email=f"{user}@example.com")


def _alias(minutes: float, user: str, previous: str, anon: str | None = None) -> dict[str, Any]:
    return spec_message("alias", at(minutes), user=user, anon=anon, previous_id=previous)


def _links(*batches: list[dict[str, Any]]) -> pl.DataFrame:
    shop = Shop()
    for batch in batches:
        shop.land(*batch)
    return shop.identities()


STORIES: dict[str, tuple[list[list[dict[str, Any]]], dict[str, str]]] = {
    "renamed by the shop's server": (
        [[_identify(0, "u-old")], [_alias(10, "u-new", "u-old")]],
        {"u-new": "u-old"},
    ),
    "renamed in her browser (analytics.js: her device's anonymous id on both)": (
        [
            [_identify(0, "u-old", "a-1")],
            [_alias(10, "u-new", "u-old", "a-1"), _identify(11, "u-new", "a-1")],
        ],
        {"u-new": "u-old"},
    ),
    "renamed twice": (
        [[_identify(0, "u-1")], [_alias(10, "u-2", "u-1")], [_alias(20, "u-3", "u-2")]],
        {"u-2": "u-1", "u-3": "u-1"},
    ),
    "renamed twice, the later alias landing first": (
        [[_identify(0, "u-1"), _alias(20, "u-3", "u-2")], [_alias(10, "u-2", "u-1")]],
        {"u-2": "u-1", "u-3": "u-1"},
    ),
    "renamed and renamed back": (
        [[_identify(0, "u-1")], [_alias(10, "u-2", "u-1")], [_alias(20, "u-1", "u-2")]],
        {"u-2": "u-1"},
    ),
    "an old id another alias claimed first": (
        [[_identify(0, "u-old")], [_alias(10, "u-x", "u-old")], [_alias(20, "u-new", "u-old")]],
        {"u-x": "u-old"},
    ),
    "the sign-up's alias after its identify (previousId her anonymous id)": (
        [[_identify(0, "u-1", "a-1"), _alias(1, "u-1", "a-1", "a-1")]],
        {},
    ),
    "a later login's alias of a user seen before": (
        [[_identify(0, "u-1", "a-1")], [_alias(100, "u-1", "a-2", "a-2")]],
        {},
    ),
    "two accounts merged into the one seen before": (
        [[_identify(0, "u-a", "a-1"), _identify(5, "u-b", "a-2")], [_alias(10, "u-b", "u-a", "a-2")]],
        {},
    ),
    # Nothing of u-1 was seen before the alias: she is known by its previous id from her first moment on.
    "the sign-up's alias before its identify": (
        [[_alias(0, "u-1", "a-1", "a-1"), _identify(1, "u-1", "a-1")]],
        {"u-1": "a-1"},
    ),
}


@pytest.mark.parametrize("story", list(STORIES))
def test_the_id_a_shoppers_arms_are_hashed_by_is_the_one_she_was_first_known_by(story: str) -> None:
    batches, expected = STORIES[story]
    assert first_known(_links(*batches)) == expected


def test_arm_ids_follow_renamed_users_back_and_leave_everyone_else() -> None:
    links = _links([_identify(0, "u-old"), _identify(0, "u-b", "a-b")], [_alias(10, "u-new", "u-old")])
    users = pl.Series("user_id", ["u-new", "u-b", None, "u-c"], dtype=pl.String)
    derived: dict[str, Any] = {}
    assert arm_ids(derived, links, users).to_list() == ["u-old", "u-b", None, "u-c"]
    assert arm_ids(derived, links.head(0), users).to_list() == ["u-new", "u-b", None, "u-c"]

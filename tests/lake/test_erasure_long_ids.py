"""An erasure left a key of the person in the state store when a joined key of theirs was longer than a
store key (found by review): `<product_id>|<principal>` and `<principal>|<trigger_id>` keys over 400 bytes
were kept whole as their hash, which names no part, so the erasure of a shopper with a 250-character id
(500 bytes in UTF-8, an id the erasure takes) or who viewed a product with a long id left them, certified
the person gone, and `lakemail state check` differed (exit 1) from then on, until a rebuild. A joined key
now hashes only a long part (`transforms.state_keys.joined_key`): the person's go, another shopper's stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from stores.erasure.requests import erase_user
from stores.state.rebuild import check
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at, message
from transforms.state_keys import HASHED_PART, split_key

LONG_PRODUCT = "p" * 450


def _hashed(home: Home) -> dict[str, int]:
    """How many keys of each joined namespace of the store have a part kept as its hash."""
    store = home.state.store()
    return {
        ns: sum(1 for key, _ in store.scan(ns) if any(p.startswith(HASHED_PART) for p in split_key(key)))
        for ns in ("product_viewers", "pending_principals")
    }


@pytest.mark.parametrize(("user", "product"), [("ü" * 250, "p1"), ("u-3", LONG_PRODUCT)])
def test_an_erasure_removes_the_person_s_hashed_joined_keys_and_keeps_another_s(
    tmp_path: Path, user: str, product: str
) -> None:
    home = Home(tmp_path)
    shoppers = [(user, product), ("u-other", LONG_PRODUCT)]  # the other's key is hashed too: it stays
    for who, viewed in shoppers:
        added = message("Product Added", at(0.5), user=who, cart_id="c1", product_id=viewed, price=5.0)
        home.batch(
            who[:8],
            at(1),
            _signup(who, at(0)),
            message("Product Viewed", at(0), user=who, product_id=viewed),
            added,
        )
    home.engine(at(2))
    before = _hashed(home)
    assert erase_user(home.lake, home.landing, user, secret=SECRET, state=home.state).passed
    assert check(home.lake, home.state).equal
    assert _hashed(home) == {"product_viewers": 1, "pending_principals": 0} != before

"""A shopper whose id is longer than a state-store key may be escaped the frequency cap (found by review):
the store keeps such a key as its hash, and `get_many` named what it found by the hash, so the engine read
that shopper's recent sends as another user's ("#sha256:..."), found no history, and mailed them again
within the cap's 16 hours; the store then kept only their newest sends, and `lakemail state check` said
`recent_sends` differed (exit 1) for as long as they stood. Anyone holding the public write key can send
such an id. `get_many` now names what it finds as it was asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from stores.state.rebuild import check
from tests.lake.test_unsubscribe_anonymous import Home, _cart, _signup
from tests.story import at, message


@pytest.mark.parametrize("user", ["u-1", "u" * 500, "ü" * 250])
def test_a_long_user_id_is_capped_as_any_other(tmp_path: Path, user: str) -> None:
    home = Home(tmp_path)
    home.batch("0", at(0), _signup(user, at(0)))
    home.engine(at(1))
    home.batch("1", at(2), _cart(user, at(2)))
    home.engine(at(64))
    assert home.decisions(user) == [("welcome", "send"), ("abandoned_cart", "capped")]
    assert check(home.lake, home.state).equal


def test_a_long_anonymous_id_s_cart_follows_its_shopper(tmp_path: Path) -> None:
    """The stored identity links of a long anonymous id are read under it (a guard of the readers that
    named what they found by the stored key): the guest's cart, filled again after the login, is the
    shopper's, and a second login keeps the link's first moment."""
    anon = "a" * 500
    home = Home(tmp_path)
    home.batch(
        "0", at(0), message("Product Added", at(0), anon=anon, cart_id="c1", product_id="p1", price=5.0)
    )
    home.batch("1", at(2), _signup("u-x", at(2), anon=anon))
    added = message("Product Added", at(3), anon=anon, cart_id="c1", product_id="p2", price=5.0)
    home.batch("2", at(3), added, _signup("u-x", at(3), anon=anon))  # logged in again: the same link
    home.engine(at(4))
    home.engine(at(64))
    assert home.decisions("u-x") == [("welcome", "send"), ("abandoned_cart", "capped")]
    assert check(home.lake, home.state).equal

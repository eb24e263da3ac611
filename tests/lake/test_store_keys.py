"""The state store's joined keys name their two ids unambiguously (found by review).

`product_viewers` (`<product_id>|<principal>`) and `pending_principals` (`<principal>|<trigger_id>`) joined
the ids with `|`, which an id may hold (Auth0's user ids are `auth0|5f7c...`): a shopper `abc` who viewed
product `p-1|auth0` was read back as `auth0|abc` viewing `p-1`, so p-1's restock emailed `auth0|abc`, and a
view of `p-1|victim-1` by `mallory` made a back_in_stock candidate for `victim-1|mallory`; the erasure of
`abc` (or of `auth0`) deleted `auth0|abc`'s keys. A joined key over 400 bytes was kept as its hash, so the
catalog triggers' prefix scan never found a viewer with a long id (or of a product with one): no
back_in_stock or price_drop email for them. Anyone holding the public write key can send such ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from stores.decide import reads
from stores.erasure.requests import erase_user
from stores.state.rebuild import check
from stores.triggers_pending import pending_rows
from tests.lake.decide_harness import SECRET, Shop, csv, lake_decides, minutes, sorted_rows
from tests.story import T0, message

SIGNUP = T0 - timedelta(days=3)  # the welcome emails: long before (no frequency cap left)
CATALOG = ("restock", "price_drop")


def _feeds(change: str, product: str) -> tuple[str, str]:
    """A first catalog feed and the one that changes `product` (back in stock, or 20 % off)."""
    before, after = ((10.0, 0), (10.0, 5)) if change == "restock" else ((10.0, 5), (8.0, 5))
    return csv([(product, *before)], SIGNUP), csv([(product, *after)], minutes(T0, 5))


def _shop(home: Path, users: list[str], views: list[tuple[str, str]], change: str, product: str) -> Shop:
    """`users` signed up days ago; `views` (user, product) at T0; then `product` changes (`change`)."""
    shop = Shop(home)
    first, changed = _feeds(change, product)
    signups = [
        message("identify", SIGNUP, user=u, email=f"s{n}@example.com", marketing_consent=True)
        for n, u in enumerate(users)
    ]
    shop.batch("b0", signups, SIGNUP, catalog=first)
    shop.engine(SIGNUP)
    viewed = [message("Product Viewed", T0, user=u, product_id=p) for u, p in views]
    shop.batch("b1", viewed, minutes(T0, 1))
    shop.engine(minutes(T0, 1))
    shop.batch("b2", [], minutes(T0, 10), catalog=changed)
    return shop


def _catalog_emails(rows: pl.DataFrame) -> list[tuple[str, str, str]]:
    alerts = rows.filter(pl.col("kind").is_in(["back_in_stock", "price_drop"]))
    return sorted(alerts.select("user_id", "anchor", "decision").rows())


def _alerts(shop: Shop, at: datetime) -> list[tuple[str, str, str]]:
    """(user, product, decision) of the catalog emails the next engine run decides from the store, after
    checking that the lake alone (`lakemail replay`'s readers) decides the same."""
    from_store, from_lake = sorted_rows(shop.decide(at).rows), lake_decides(shop, at)
    assert _catalog_emails(from_store) == _catalog_emails(from_lake)
    assert from_store.equals(from_lake)
    return _catalog_emails(from_store)


@pytest.mark.parametrize("change", CATALOG)
@pytest.mark.parametrize(
    ("victim", "viewer", "forged"),
    [("auth0|abc", "abc", "p-1|auth0"), ("victim-1", "mallory", "p-1|victim-1")],
)
def test_a_product_id_holding_the_separator_reaches_no_other_shopper(
    tmp_path: Path, change: str, victim: str, viewer: str, forged: str
) -> None:
    """Only who viewed p-1 hears of its change: `auth0|good` (a `|` in a user id is fine), not the victim,
    nor a principal made of the forged id's rest and the viewer."""
    users = [victim, viewer, "auth0|good"]
    shop = _shop(tmp_path / "shop", users, [(viewer, forged), ("auth0|good", "p-1")], change, "p-1")
    kind_of = {"restock": "back_in_stock", "price_drop": "price_drop"}[change]
    assert _alerts(shop, minutes(T0, 11)) == [("auth0|good", "p-1", "send")]
    report = shop.engine(minutes(T0, 11))
    assert report.rows.filter(pl.col("kind") == kind_of)["user_id"].to_list() == ["auth0|good"]
    assert check(shop.lake, shop.state).summary() == []


@pytest.mark.parametrize("change", CATALOG)
@pytest.mark.parametrize(
    ("viewer", "product"),
    [("u" * 450, "p-1"), ("ü" * 250, "p-1"), ("u-1", "p" * 450), ("ü" * 200, "p-1" * 70)],
)
def test_a_viewer_or_a_product_with_a_long_id_gets_its_catalog_email(
    tmp_path: Path, change: str, viewer: str, product: str
) -> None:
    shop = _shop(tmp_path / "shop", [viewer, "u-2"], [(viewer, product), ("u-2", product)], change, product)
    assert _alerts(shop, minutes(T0, 11)) == sorted([(viewer, product, "send"), ("u-2", product, "send")])
    shop.engine(minutes(T0, 11))
    assert check(shop.lake, shop.state).summary() == []


@pytest.mark.parametrize("user", ["u" * 450, "ü" * 190, "auth0|abc"])
def test_the_pending_candidates_of_a_long_or_joined_principal_are_found_by_it(
    tmp_path: Path, user: str
) -> None:
    """The principal index (`pending_principals`) answers for a shopper whose id is long or holds `|`, and
    for no other: the engine reads the candidates of the shoppers a batch touched through it."""
    shop = _shop(tmp_path / "shop", [user, "auth0"], [], "restock", "p-1")
    added = message("Product Added", minutes(T0, 20), user=user, cart_id="c1", product_id="p-1", price=5.0)
    shop.batch("b3", [added], minutes(T0, 21))
    shop.engine(minutes(T0, 21))
    pending = pending_rows(shop.lake)  # trigger_state (a checkpoint) and the log after it
    mine = pending.filter(pl.col("user_id") == user)["trigger_id"].to_list()
    assert len(mine) == 1
    with shop.state.reader() as reader:
        assert reads.pending_of(reader, [user]) == mine
        assert reads.pending_of(reader, ["auth0"]) == []
    assert check(shop.lake, shop.state).summary() == []


def test_an_erasure_of_an_id_leaves_the_shoppers_whose_ids_hold_it(tmp_path: Path) -> None:
    """Erasing `abc` (or `auth0`) takes none of `auth0|abc`'s keys: their viewers, pending candidates and
    recent sends stay, as the erased lake has them."""
    shop = _shop(tmp_path / "shop", ["auth0|abc", "abc", "auth0"], [("auth0|abc", "p-1")], "restock", "p-1")
    added = message(
        "Product Added", minutes(T0, 20), user="auth0|abc", cart_id="c1", product_id="p-1", price=5
    )
    shop.batch("b3", [added], minutes(T0, 21))
    shop.engine(minutes(T0, 21))
    for erased in ("abc", "auth0"):
        assert erase_user(shop.lake, shop.landing, erased, secret=SECRET, state=shop.state).passed
        assert check(shop.lake, shop.state).summary() == []
    with shop.state.reader() as reader:
        assert reads.recent_sends(reader, ["auth0|abc"]).height == 1
        assert len(reads.pending_of(reader, ["auth0|abc"])) == 1
        assert reads.viewers(reader, ["p-1"])["principal"].to_list() == ["auth0|abc"]

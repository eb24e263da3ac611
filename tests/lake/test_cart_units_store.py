"""A cart's units after its latest order over a real lake and state store: a product carted before an order
and again after it is one unit in the store's profile, the lake's and a rebuilt store's, whatever batch
the order lands in; and a lake and store from the release before cart lines had moves still read, take
new batches and fold, the store equal to the lake throughout (`stores.state.rebuild.check`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from resources.state import StateResource
from stores.profiles import profiles_view
from stores.state.rebuild import check, rebuild
from stores.state.refresh import fold
from stores.state.view import open_profiles
from tests.lake.decide_harness import Shop, minutes
from tests.story import message
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import UPDATES_APP
from transforms.state import StateChanges

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAY = 24 * 60
Carts = list[tuple[str, str | None, list[tuple[str, int]]]]


def _line(at: float, product: str, user: str = "u1", cart: str = "c1", quantity: int = 1) -> dict:
    fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "price": 10.0, "quantity": quantity}
    return message("Product Added", minutes(START, at), user=user, **fields)


def _order(at: float) -> dict:
    fields: dict[str, Any] = {
        "cart_id": "c1",
        "order_id": "o1",
        "revenue": 10.0,
        "products": [{"product_id": "mug"}],
    }
    return message("Order Completed", minutes(START, at), user="u1", **fields)


def _signed_up(home: Path) -> Shop:
    shop = Shop(home)
    signup = [
        message(
            "identify", minutes(START, -3 * DAY), user=u, email=f"{u}@example.com", marketing_consent=True
        )
        for u in ("u1", "u2")
    ]
    shop.batch("b-signup", signup, minutes(START, -3 * DAY))
    shop.engine(minutes(START, -3 * DAY))  # the welcome goes out days before the cart (the 16 h cap); a store
    return shop


def carts(state: StateResource, at: datetime) -> Carts:
    """Every profile's (user_id, cart_id, [(product, quantity)]) as the store serves them."""
    _, chunks = open_profiles(state.store(), at)
    return _carts(pl.concat(list(chunks)))


def _carts(profiles: pl.DataFrame) -> Carts:
    rows = profiles.sort("user_id")
    items = [[(i["product_id"], i["quantity"]) for i in r] for r in rows["cart_items"]]
    return list(zip(rows["user_id"], rows["cart_id"], items, strict=True))


def assert_everywhere(shop: Shop, at: datetime, expected: Carts, home: Path) -> None:
    """The live store, the lake's profiles and a store rebuilt from the lake serve `expected`; the live
    store checks equal to the lake."""
    report = check(shop.lake, shop.state)
    assert report.equal, report.summary()
    assert carts(shop.state, at) == expected
    assert _carts(profiles_view(shop.lake, at)) == expected
    rebuilt = StateResource(uri=str(home / f"rebuilt-{len(list(home.glob('rebuilt-*')))}"))
    rebuild(shop.lake, rebuilt)
    assert carts(rebuilt, at) == expected


def test_a_mug_carted_again_after_its_late_order_is_one_mug_in_the_store_and_the_lake(tmp_path: Path) -> None:
    shop = _signed_up(tmp_path / "shop")
    shop.batch("b0", [_line(0, "mug")], minutes(START, 1))
    shop.batch("b1", [_line(10, "mug")], minutes(START, 11))
    shop.batch("b2", [_order(5)], minutes(START, 12))  # the order lands after the second mug
    shop.engine(minutes(START, 12))
    expected: Carts = [("u1", "c1", [("mug", 1)]), ("u2", None, [])]
    assert_everywhere(shop, minutes(START, 12), expected, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    assert_everywhere(shop, minutes(START, 12), expected, tmp_path)


def _as_written_before(shop: Shop) -> None:
    """The shop's lake and store as the release before moves wrote them: `profile_updates` without the
    column, the store's profile states without the field."""
    lake = shop.lake
    updates = lake.read("profile_updates", PROFILE_UPDATES_SCHEMA).drop("moves")
    lake.write_tagged("profile_updates", updates, {UPDATES_APP: lake.committed_batch()}, mode="overwrite")
    assert "moves" not in pl.scan_delta(lake.table_uri("profile_updates")).collect_schema()
    old_way = StateChanges()
    for key, value in shop.state.store().scan("profiles"):
        state = orjson.loads(value)
        del state["moves"]
        old_way.put("profiles", key, orjson.dumps(state))
    shop.state.commit(lake.committed_batch(), old_way)
    assert all(b'"moves"' not in value for _, value in shop.state.store().scan("profiles"))


def test_a_lake_and_store_from_before_moves_read_take_new_batches_and_fold(tmp_path: Path) -> None:
    """u1 carted a mug and ordered it, u2 carted two cups, all before the upgrade: their lines read as they
    did (u1's taken by the order, u2's two cups). After it, u1 carts a cup and a mug again and u2 a third
    cup: the new line counts what came after the order; a line folded before counts its older units as
    the release before did (the state never knew when they were carted: all of them once the line is
    touched after the order)."""
    shop = _signed_up(tmp_path / "shop")
    shop.batch("b0", [_line(0, "mug"), _line(0, "cup", user="u2", cart="c2", quantity=2)], minutes(START, 1))
    shop.batch("b1", [_order(5)], minutes(START, 6))
    _as_written_before(shop)
    before: Carts = [("u1", None, []), ("u2", "c2", [("cup", 2)])]
    assert_everywhere(shop, minutes(START, 6), before, tmp_path)

    later = [_line(10, "cup"), _line(11, "mug"), _line(12, "cup", user="u2", cart="c2")]
    shop.batch("b2", later, minutes(START, 13))
    after: Carts = [("u1", "c1", [("cup", 1), ("mug", 2)]), ("u2", "c2", [("cup", 3)])]
    assert_everywhere(shop, minutes(START, 13), after, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    assert_everywhere(shop, minutes(START, 13), after, tmp_path)

"""The implicit cart over a real lake and state store (found by review: cart events naming no `cart_id` made
no cart). A shop that never names its carts gets its emails; a guest's implicit cart follows them when they
log in and change it. The live store decides, the lake's readers (`engine_world`: a store that is behind,
`lakemail replay`) propose the same, a replay of each run that sent agrees, `state check` finds the store
equal to the lake, and a store rebuilt from the lake serves the same profiles (cart id and lines)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from resources.state import StateResource
from stores.state.rebuild import check, rebuild
from stores.state.view import open_profiles
from tests.lake.decide_harness import Shop, assert_replays_as_sent, lake_decides, minutes, sorted_rows
from tests.story import message, spec_message
from transforms.profiles.state import IMPLICIT_CART
from transforms.schema import PENDING_DECISIONS

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAY = 24 * 60


def _cart(event: str, at: float, product: str, **who: Any) -> dict:
    """A spec-shaped cart event naming no cart."""
    fields: dict[str, Any] = {"product_id": product, "name": product.upper(), "price": 10.0, "quantity": 1}
    return spec_message(event, minutes(START, at), **({"user": "u1"} | who), **fields)


def _order(at: float) -> dict:
    fields: dict[str, Any] = {"order_id": "o1", "checkout_id": "k1", "revenue": 10.0, "products": []}
    return spec_message("Order Completed", minutes(START, at), user="u1", processed=True, **fields)


def _refilled_after_its_email(shop: Shop) -> float:
    adds = [_cart("Product Added", 0, "p1"), _cart("Product Added", 5, "p2")]
    shop.batch("b0", [*adds, _cart("Product Removed", 10, "p1")], minutes(START, 11))
    shop.engine(minutes(START, 11))
    shop.engine(minutes(START, 70))  # sent, showing p2
    shop.batch("b1", [_order(DAY)], minutes(START, DAY + 1))
    shop.engine(minutes(START, DAY + 1))
    shop.batch("b2", [_cart("Product Added", 8 * DAY, "p3")], minutes(START, 8 * DAY + 1))
    return 8 * DAY + 1  # the cart filled after the order is proposed anew


def _guest_logs_in(shop: Shop) -> float:
    shop.batch("b0", [_cart("Product Added", 0, "p1", user=None, anon="a1")], minutes(START, 1))
    shop.engine(minutes(START, 1))
    shop.engine(minutes(START, 61))  # due while the guest is anonymous: no_address
    login = spec_message("identify", minutes(START, 120), user="u1", anon="a1")
    shop.batch("b1", [login], minutes(START, 121))
    assert shop.decide(minutes(START, 121)).rows.filter(pl.col("kind") == "abandoned_cart").height == 0
    shop.engine(minutes(START, 121))  # a login alone starts nothing
    shop.batch("b2", [_cart("Product Added", 130, "p2", user=None, anon="a1")], minutes(START, 131))
    return 131  # the changed cart is proposed anew


STORIES: dict[str, tuple[Callable[[Shop], float], list[tuple[str, str]], list[str]]] = {
    "refilled after its email": (_refilled_after_its_email, [("send", "u1"), ("send", "u1")], ["p3"]),
    "guest logs in": (_guest_logs_in, [("no_address", "anon:a1"), ("send", "u1")], ["p1", "p2"]),
}


def _carts(state: StateResource, at: datetime) -> list[tuple[str, str | None, list[str]]]:
    """Every profile's (user_id, cart_id, cart product ids) as the store serves them."""
    _, chunks = open_profiles(state.store(), at)
    rows = pl.concat(list(chunks)).sort("user_id")
    items = [[i["product_id"] for i in r] for r in rows["cart_items"]]
    return list(zip(rows["user_id"], rows["cart_id"], items, strict=True))


@pytest.mark.parametrize("name", list(STORIES))
def test_the_store_the_lake_a_rebuild_and_a_replay_agree_on_the_implicit_cart(
    tmp_path: Path, name: str
) -> None:
    story, expected, lines = STORIES[name]
    shop = Shop(tmp_path / "shop")
    signup = message(
        "identify", minutes(START, -3 * DAY), user="u1", email="u1@example.com", marketing_consent=True
    )
    shop.batch("b-signup", [signup], minutes(START, -3 * DAY))
    shop.engine(minutes(START, -3 * DAY))  # the welcome goes out days before the cart (the 16 h cap)
    at = story(shop)
    live = sorted_rows(shop.decide(minutes(START, at)).rows)
    assert live.filter(pl.col("kind") == "abandoned_cart").height == 1, live
    assert lake_decides(shop, minutes(START, at)).equals(live)
    for later in (at, at + 60, at + 120, at + DAY):
        shop.engine(minutes(START, later))
    carts = shop.log().filter(pl.col("kind") == "abandoned_cart")
    terminal = carts.filter(~pl.col("decision").is_in(PENDING_DECISIONS)).sort("evaluation", "decided_at")
    assert set(terminal["anchor"]) == {IMPLICIT_CART}
    assert [(d, p) for d, p in terminal.select("decision", "principal").rows()] == expected
    assert terminal["trigger_id"].is_unique().all()
    report = check(shop.lake, shop.state)
    assert report.equal, report.summary()
    before = _carts(shop.state, minutes(START, at + 60))
    assert ("u1", IMPLICIT_CART, lines) in before
    rebuilt = StateResource(uri=str(tmp_path / "rebuilt"))
    rebuild(shop.lake, rebuilt)
    assert _carts(rebuilt, minutes(START, at + 60)) == before
    for sent in terminal.filter(pl.col("decision") == "send").rows(named=True):
        assert_replays_as_sent(shop, sent)

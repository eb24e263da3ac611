"""The cart's instances over a real lake and state store (found by review): a cart left for another exits
`cart_changed` when due, a guest's cart decided `no_address` starts a new instance when changed after
login, a cart id reused after its order is a new cart. The live store decides, the lake's readers
(`engine_world`: a store that is behind, `lakemail replay`) propose the same, a replay of the run that
sent agrees, and a store rebuilt from the lake holds what the live one holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from stores.state.rebuild import check
from tests.lake.decide_harness import Shop, assert_replays_as_sent, lake_decides, minutes, sorted_rows
from tests.story import message
from transforms.schema import PENDING_DECISIONS

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAYS3 = 3 * 24 * 60


def _add(at: float, product: str, cart: str = "c1", **who: Any) -> dict:
    fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "price": 10.0, "quantity": 1}
    return message("Product Added", minutes(START, at), **({"user": "u1"} | who), **fields)


def _two_carts(shop: Shop) -> float:
    shop.batch("b0", [_add(0, "p1")], minutes(START, 1))
    shop.engine(minutes(START, 1))
    shop.batch("b1", [_add(10, "p2", cart="c2")], minutes(START, 11))
    shop.engine(minutes(START, 11))
    return 60  # c1 falls due


def _guest_logs_in(shop: Shop) -> float:
    shop.batch("b0", [_add(0, "p1", user=None, anon="a1")], minutes(START, 1))
    shop.engine(minutes(START, 1))
    shop.engine(minutes(START, 61))  # due while the guest is anonymous: no_address
    login = message("identify", minutes(START, 120), user="u1", anon="a1")
    shop.batch("b1", [login, _add(121, "p2", anon="a1")], minutes(START, 122))
    return 122  # the changed cart is proposed anew


def _reused_after_order(shop: Shop) -> float:
    shop.batch("b0", [_add(0, "p1")], minutes(START, 1))
    shop.engine(minutes(START, 1))
    fields: dict[str, Any] = {"cart_id": "c1", "order_id": "o1", "revenue": 10.0}
    order = message("Order Completed", minutes(START, 10), user="u1", **fields)
    shop.batch("b1", [order], minutes(START, 11))
    shop.engine(minutes(START, 11))
    shop.batch("b2", [_add(2 * 24 * 60, "p2")], minutes(START, 2 * 24 * 60 + 1))
    return 2 * 24 * 60 + 1  # the refilled cart is proposed anew


STORIES: dict[str, tuple[Callable[[Shop], float], list[tuple[str, str, str]]]] = {
    "two carts": (_two_carts, [("c1", "exited", "cart_changed"), ("c2", "send", "all policies passed")]),
    "guest logs in": (
        _guest_logs_in,
        [("c1", "no_address", "anonymous shopper, no user id"), ("c1", "send", "all policies passed")],
    ),
    "reused after order": (
        _reused_after_order,
        [("c1", "exited", "order_completed"), ("c1", "send", "all policies passed")],
    ),
}


@pytest.mark.parametrize("name", list(STORIES))
def test_the_store_the_lake_and_a_replay_agree_on_the_carts_instances(tmp_path: Path, name: str) -> None:
    story, expected = STORIES[name]
    shop = Shop(tmp_path / "shop")
    signup = message(
        "identify", minutes(START, -DAYS3), user="u1", email="u1@example.com", marketing_consent=True
    )
    shop.batch("b-signup", [signup], minutes(START, -DAYS3))
    shop.engine(minutes(START, -DAYS3))  # the welcome goes out days before the cart (the 16 h cap)
    at = story(shop)
    live = sorted_rows(shop.decide(minutes(START, at)).rows)
    assert live.filter(pl.col("kind") == "abandoned_cart").height == 1, live
    assert lake_decides(shop, minutes(START, at)).equals(live)
    for later in (at, at + 60, at + 120, at + 24 * 60):
        shop.engine(minutes(START, later))
    carts = shop.log().filter(pl.col("kind") == "abandoned_cart")
    terminal = carts.filter(~pl.col("decision").is_in(PENDING_DECISIONS)).sort("decided_at", "anchor")
    assert terminal.select("anchor", "decision", "reason").rows() == expected
    assert terminal["trigger_id"].is_unique().all()
    report = check(shop.lake, shop.state)
    assert report.equal, report.summary()
    [sent] = terminal.filter(pl.col("decision") == "send").rows(named=True)
    assert_replays_as_sent(shop, sent)

"""A cart emptied, exited `cart_emptied`, then filled again, over a real lake and state store: the live
store decides the refilled cart's instance, the lake's readers (`engine_world`, what a store that is
behind and `lakemail replay` decide from) propose the same one, a replay of the run that sent it agrees,
and a store rebuilt from the lake holds what the live one holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from stores.state.rebuild import check
from tests.lake.decide_harness import Shop, assert_replays_as_sent, lake_decides, minutes, sorted_rows
from tests.story import message
from transforms.schema import PENDING_DECISIONS

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAYS3 = 3 * 24 * 60


def _line(name: str, at: float) -> dict:
    fields: dict[str, Any] = {"cart_id": "c1", "product_id": "p1", "price": 10.0, "quantity": 1}
    return message(name, minutes(START, at), user="u1", **fields)


def test_a_refilled_cart_is_one_new_instance_in_the_store_the_lake_and_a_replay(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop")
    signup = message(
        "identify", minutes(START, -DAYS3), user="u1", email="u1@example.com", marketing_consent=True
    )
    shop.batch("b-signup", [signup], minutes(START, -DAYS3))
    shop.engine(minutes(START, -DAYS3))  # the welcome goes out days before the cart (the 16 h cap)
    shop.batch("b0", [_line("Product Added", 0)], minutes(START, 1))
    shop.engine(minutes(START, 1))
    shop.batch("b1", [_line("Product Removed", 5)], minutes(START, 6))
    shop.engine(minutes(START, 6))  # emptied: held until due
    shop.engine(minutes(START, 65))  # due and still empty: exits
    shop.batch("b2", [_line("Product Added", 180)], minutes(START, 181))
    live = sorted_rows(shop.decide(minutes(START, 181)).rows)
    assert live.filter(pl.col("kind") == "abandoned_cart").select("decision", "due_at").rows() == [
        ("held", minutes(START, 240))
    ]
    assert lake_decides(shop, minutes(START, 181)).equals(live)
    for at in (181, 240, 24 * 60):
        shop.engine(minutes(START, at))
    carts = shop.log().filter(pl.col("kind") == "abandoned_cart")
    terminal = carts.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert terminal.select("decision", "reason").rows() == [
        ("exited", "cart_emptied"),
        ("send", "all policies passed"),
    ]
    assert terminal["trigger_id"].is_unique().all()
    report = check(shop.lake, shop.state)
    assert report.equal, report.summary()
    [sent] = terminal.filter(pl.col("decision") == "send").rows(named=True)
    assert_replays_as_sent(shop, sent)

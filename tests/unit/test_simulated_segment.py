"""The simulator speaks Segment's spec (issue 14): spec-shaped checkouts and orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
import pytest

from simulator.segment import SimLine
from simulator.shoppers import ShopperSimulator

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CHECKOUT_EVENTS = ("Checkout Started", "Order Completed")


@cache
def simulated(cart_ids: bool = False) -> tuple[SimLine, ...]:
    """15 simulated minutes of 300 shoppers with the default dirt."""
    sim = ShopperSimulator(users=300, seed=21, start=START, cart_ids=cart_ids)
    return tuple(
        line for minute in range(15) for line in sim.step(START + timedelta(minutes=minute + 1), 800)
    )


def messages(cart_ids: bool = False) -> list[dict[str, Any]]:
    return [orjson.loads(line.data) for line in simulated(cart_ids) if line.kind == "ok"]


@pytest.mark.parametrize("cart_ids", [False, True])
def test_checkouts_and_orders_carry_cart_id_only_when_the_shop_adds_it(cart_ids: bool) -> None:
    found = [m["properties"] for m in messages(cart_ids) if m.get("event") in CHECKOUT_EVENTS]
    assert len(found) > 20
    for properties in found:
        assert {"order_id", "checkout_id", "products", "revenue", "total", "currency"} <= set(properties)
        assert properties["products"] and all("product_id" in p for p in properties["products"])
        assert ("cart_id" in properties) is cart_ids

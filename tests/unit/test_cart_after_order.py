"""Golden stories of a cart carted again after its order: only what was put in after the cart's latest
order is in the cart, its email and its rule, however the order arrives (on time, late, in another batch).

Ann carts a mug, orders it, carts a mug again in the same cart (a shop that keeps its cart id across
orders, or a shop naming no cart: the implicit cart) and leaves. Her cart email shows one mug and one
mug's price; before the fix it showed two and twice the price (the state counted the line's units, not
when they were carted).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, message
from tests.unit.test_implicit_cart import rendered_cart
from transforms.profiles.derive import derive
from transforms.profiles.state import IMPLICIT_CART, canonical
from transforms.triggers.rules.carts import cart_facts

DAY = 24 * 60
CARTS = ["c1", None]  # a cart id kept across orders; none: the implicit cart


def signed_up() -> Shop:
    """A shop selling a mug (in stock, 12.50) and Ann, u1, who agreed to emails days before."""
    shop = Shop()
    shop.set_product("mug", at(-3 * DAY), price=12.5, stock=5, category="kitchen")
    shop.land(message("identify", at(-3 * DAY), user="u1", email="ann@example.com", marketing_consent=True))
    shop.run(at(-3 * DAY))
    return shop


def line(name: str, minutes: float, cart: str | None, quantity: int = 1) -> dict:
    fields: dict[str, Any] = {"product_id": "mug", "name": "Mug", "price": 12.5, "quantity": quantity}
    return message(name, at(minutes), user="u1", **fields, **({"cart_id": cart} if cart else {}))


def order(minutes: float, cart: str | None, order_id: str = "o1") -> dict:
    fields: dict[str, Any] = {"order_id": order_id, "revenue": 12.5, "products": [{"product_id": "mug"}]}
    return message("Order Completed", at(minutes), user="u1", **fields, **({"cart_id": cart} if cart else {}))


def cart_email(shop: Shop, now: datetime) -> dict[str, Any]:
    """The cart email of Ann's `send` decision as the send stage renders it at `now`: its cart block."""
    [decision] = shop.log.filter(
        (pl.col("kind") == "abandoned_cart") & (pl.col("decision") == "send")
    ).to_dicts()
    return rendered_cart(shop, decision, now)


def cart_decisions(shop: Shop) -> list[tuple[str, str]]:
    carts = shop.log.filter(pl.col("kind") == "abandoned_cart").sort("decided_at", "decision")
    return carts.select("decision", "reason").rows()


@pytest.mark.parametrize("cart", CARTS)
@pytest.mark.parametrize("late", [False, True], ids=["order on time", "order lands late"])
def test_a_mug_carted_again_after_its_order_is_one_mug_in_the_cart_email(
    cart: str | None, late: bool
) -> None:
    shop = signed_up()
    if late:  # the order lands after both adds, in its own batch: the state cannot know it when folding
        shop.land(line("Product Added", 0, cart))
        shop.land(line("Product Added", 10, cart))
        shop.land(order(5, cart))
    else:
        shop.land(line("Product Added", 0, cart), order(5, cart))
        shop.land(line("Product Added", 10, cart))
    shop.run(at(30))
    shop.run(at(70))
    assert cart_decisions(shop)[-1] == ("send", "all policies passed")
    email = cart_email(shop, at(70))
    assert [(li["name"], li["quantity"], li["line_total"]) for li in email["lines"]] == [("Mug", 1, "€12.50")]
    assert (email["count"], email["total"]) == (1, "€12.50")
    profile = derive(shop.state(), shop.customers, at(70)).row(0, named=True)
    assert (profile["cart_id"], profile["cart_value"]) == (cart or IMPLICIT_CART, 12.5)
    assert [item["quantity"] for item in profile["cart_items"]] == [1]


@pytest.mark.parametrize("cart", CARTS)
def test_a_mug_carted_and_taken_out_again_after_its_order_leaves_an_empty_cart(cart: str | None) -> None:
    """The rule's units count only what is put in after the order: the cart it empties exits
    `cart_emptied` (before the fix it held the ordered mug and was mailed)."""
    shop = signed_up()
    shop.land(line("Product Added", 0, cart), order(5, cart))
    shop.land(line("Product Added", 10, cart), line("Product Removed", 12, cart))
    shop.run(at(30))
    shop.run(at(75))
    assert cart_decisions(shop) == [("held", "waiting until due_at"), ("exited", "cart_emptied")]
    [facts] = cart_facts(shop.state()).rows(named=True)
    assert facts["units"] == 0
    assert derive(shop.state(), shop.customers, at(75))["cart_items"].to_list() == [[]]


def test_units_follow_every_order_of_the_cart_in_any_batching() -> None:
    """Two orders of a kept cart id and units put in and taken out around them: the state is the same
    whatever the batches, and the cart holds what came after the latest order (3 - 1 = 2 mugs)."""
    events = [
        line("Product Added", 0, "c1", 2),
        order(5, "c1"),
        line("Product Added", 10, "c1"),
        line("Product Removed", 11, "c1"),
        line("Product Added", 12, "c1", 4),
        order(20, "c1", "o2"),
        line("Product Added", 30, "c1", 3),
        line("Product Removed", 31, "c1"),
    ]
    shop = signed_up()
    shop.land(*events)
    whole = canonical(shop.state())
    for grouping in (events[::-1], events[1::2] + events[::2]):
        apart = signed_up()
        for event in grouping:
            apart.land(event)
        assert canonical(apart.state()).equals(whole)
    profile = derive(whole, shop.customers, at(40)).row(0, named=True)
    assert [(item["product_id"], item["quantity"]) for item in profile["cart_items"]] == [("mug", 2)]

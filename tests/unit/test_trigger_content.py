"""From a story's decision to its email: the engine's `send` row, read back as the send stage reads it
(`trigger_facts` over the row's `detail`), gives the content. The facts a rule notes reach the email."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, message
from transforms.profiles.derive import derive
from transforms.sends.catalog import Catalog
from transforms.sends.content import Shop as Sender
from transforms.sends.plan import Abort, Render, SendWorld, plan_row
from transforms.sends.rows import trigger_facts

DAY = 24 * 60
SENDER = Sender("Maison Demo", "https://shop.example", "1 Demo Street", "help@shop.example")


def signed_up(*products: tuple[str, str]) -> Shop:
    """A shop selling `products` (id, category; in stock) and a shopper, u1, who agreed to emails."""
    shop = Shop()
    for product_id, category in products:
        shop.set_product(product_id, at(-90 * DAY), price=20.0, stock=5, category=category)
    shop.land(message("identify", at(-90 * DAY), user="u1", email="u1@example.com", marketing_consent=True))
    shop.run(at(-90 * DAY))
    return shop


def order(minutes: float, order_id: str, *product_ids: str) -> dict:
    products = [{"product_id": p} for p in product_ids]
    return message("Order Completed", at(minutes), user="u1", order_id=order_id, products=products)


def email(shop: Shop, kind: str, now: datetime) -> Abort | Render:
    """The send stage's step for the shopper's `send` decision of `kind`, as it stands at `now`."""
    [decision] = shop.log.filter((pl.col("kind") == kind) & (pl.col("decision") == "send")).to_dicts()
    profiles = derive(shop.state(), shop.customers, now)
    row = {"send_id": "s-1", "status": "pending", "variant": "a", **decision}
    world = SendWorld(
        triggers={decision["trigger_id"]: decision},
        profiles={p["user_id"]: p for p in profiles.iter_rows(named=True)},
        aborts={},
        catalog=Catalog.of(shop.catalog),
    )
    step = plan_row(row, world, now=now, shop=SENDER, staleness=timedelta(hours=72), can_lookup=False)
    assert isinstance(step, Abort | Render)
    return step


def recommended(step: Abort | Render) -> list[str]:
    assert isinstance(step, Render), step
    return [card["name"] for card in step.content.context["recommendations"]]


def test_post_purchase_cross_sells_from_the_order_not_from_the_first_thing_ever_bought() -> None:
    """Ann bought a belt a month ago (`a-belt`: her purchases' first, alphabetically) and shirts today:
    three days on, the email cross-sells shirts, and neither of the shirts she bought."""
    shop = signed_up(("a-belt", "belts"), ("b-belt", "belts"), ("p-shirt", "shirts"), ("q-shirt", "shirts"))
    shop.land(order(-30 * DAY, "o-old", "a-belt"))
    shop.land(order(0, "o-new", "p-shirt"))
    shop.run(at(1))
    shop.run(at(3 * DAY))
    step = email(shop, "post_purchase", at(3 * DAY))
    assert recommended(step) == ["Q-Shirt"]
    [sent] = shop.log.filter((pl.col("kind") == "post_purchase") & (pl.col("decision") == "send")).to_dicts()
    assert (sent["anchor"], json.loads(sent["detail"])) == ("o-new", {"products": ["p-shirt"]})


def test_post_purchase_of_an_order_of_several_categories_takes_its_first_known_product() -> None:
    shop = signed_up(("a-belt", "belts"), ("b-belt", "belts"), ("p-shirt", "shirts"), ("q-shirt", "shirts"))
    shop.land(order(0, "o-1", "p-gone", "p-shirt", "a-belt"))  # p-gone: not in the catalog
    shop.run(at(3 * DAY))
    assert recommended(email(shop, "post_purchase", at(3 * DAY))) == ["Q-Shirt"]


CARTS = ["c1", 'c"1\\']  # a cart id is the client's string: quotes and backslashes too


def checkout_then(cart: str, *later: dict) -> Shop:
    """Ann fills `cart` with two mugs, starts checkout naming it at minute 10, and then does `later`."""
    shop = signed_up(("p-mug", "kitchen"), ("p-bowl", "kitchen"), ("p-sock", "socks"))
    add: dict[str, Any] = {"cart_id": cart, "product_id": "p-mug", "price": 20.0, "quantity": 2}
    shop.land(message("Product Added", at(0), user="u1", **add))
    shop.land(message("Checkout Started", at(10), user="u1", cart_id=cart), *later)
    shop.run(at(20))
    shop.run(at(40))
    return shop


@pytest.mark.parametrize("cart", CARTS)
def test_a_checkout_naming_the_shoppers_cart_shows_that_carts_lines(cart: str) -> None:
    step = email(checkout_then(cart), "abandoned_checkout", at(40))
    assert isinstance(step, Render)
    lines = step.content.context["cart"]["lines"]
    assert [(line["name"], line["quantity"]) for line in lines] == [("P-Mug", 2)]
    assert step.content.context["cta_url"] == "https://shop.example/checkout"


@pytest.mark.parametrize("cart", CARTS)
def test_a_checkout_naming_a_cart_the_shopper_left_for_another_says_nothing_of_the_other(
    cart: str,
) -> None:
    """After the checkout email was decided Ann fills a new cart, c2, with socks: the email may not offer
    the socks as the checkout she left (c2's own cart email is the one about them). The rule's exit
    withdraws it first (a left cart before the decision, and the re-check before sending: see
    test_checkout_left_cart.py); content's own abort is the guard behind it."""
    shop = checkout_then(cart)
    [decision] = shop.log.filter(pl.col("kind") == "abandoned_checkout")["detail"].unique().to_list()
    assert json.loads(decision) == {"cart_id": cart}
    sock: dict[str, Any] = {"cart_id": "c2", "product_id": "p-sock", "price": 5.0, "quantity": 1}
    shop.land(message("Product Added", at(41), user="u1", **sock))
    step = email(shop, "abandoned_checkout", at(45))
    assert isinstance(step, Abort) and step.reason == "cart_changed"


@pytest.mark.parametrize(
    ("detail", "facts"),
    [
        ('{"cart_id": "c-9"}', {"cart_id": "c-9"}),
        ('{"cart_id":"c\\"9"}', {"cart_id": 'c"9'}),
        ('{"products":["p2","p1"]}', {"products": ["p2", "p1"]}),
        ('{"products":["p2",7,null]}', {"products": ["p2"]}),
        ('{"cart_id": 9, "products": "p1"}', {}),
        ('["c-9"]', {}),
    ],
)
def test_trigger_facts_pass_the_named_cart_and_the_orders_products(
    detail: str, facts: dict[str, Any]
) -> None:
    assert trigger_facts({"anchor": "a", "detail": detail}) == {"anchor": "a", **facts}

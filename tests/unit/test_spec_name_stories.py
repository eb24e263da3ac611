"""Golden stories of shoppers whose sources send Segment's names as its destinations read them:
`order_completed`, v1's `Completed Order`, `Order Completed ` with a trailing blank, ids as `orderId`
(transforms/ingest/spec_names.py).

Regression (found by review): lakemail matched the spec's names exactly, so such an order did not end the
cart or the checkout (the buyer got the cart email), was not counted on the profile nor credited to an
email, and `orderId` / `cartId` / `checkoutId` / `productId` were not read; nor was a listed product's
`productId` (`products[]`: no cart lines, no purchased products).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.story import Shop, at, spec_message
from tests.unit.test_checkout_products import PRODUCTS, lines_of
from tests.unit.test_stories import DAY, anchored, signup
from tests.unit.test_trigger_content import email, signed_up
from transforms.measure.attribution import orders_of
from transforms.profiles.derive import derive
from transforms.profiles.state import canonical

pytestmark = pytest.mark.story  # many engine runs: `make test` runs it, the fast tier leaves it

CAMEL = {"cart_id": "cartId", "checkout_id": "checkoutId", "order_id": "orderId", "product_id": "productId"}
PRODUCT: dict[str, Any] = {"sku": "G-32", "name": "Shirt", "price": 40.0, "quantity": 1}


def ids(camel: bool, **named: str) -> dict[str, Any]:
    return {CAMEL[key]: value for key, value in named.items()} if camel else named


def cart_then_order(added: str, ordered: str, *, camel: bool) -> tuple[pl.DataFrame, dict, set, list, set]:
    """Ann adds a shirt to cart c1, then orders it (o1, no cart_id, as the spec has it) 20 minutes later.
    Returns the state, her profile, the decisions until 3 days after, the orders credited, the held ones."""
    shop = Shop()
    signup(shop, "u1")
    added_ids = ids(camel, cart_id="c1", product_id="p1")
    add = spec_message(added, at(0), user="u1", message_id="m-add", skew=timedelta(minutes=10), **added_ids)
    shop.land(add | {"properties": add["properties"] | PRODUCT})
    held = anchored(shop.run(at(5)))
    products = [{"product_id": "p1", "category": "shirts", **PRODUCT}]
    fields: dict[str, Any] = {"revenue": 40.0, "currency": "EUR", "products": products}
    order_ids = ids(camel, order_id="o1", checkout_id="k1")
    shop.land(
        spec_message(ordered, at(20), user="u1", message_id="m-order", processed=True, **order_ids, **fields)
    )
    decided = anchored(shop.run(at(60))) | anchored(shop.run(at(3 * DAY + 30)))
    profile = derive(shop.state(), shop.customers, at(3 * DAY + 30)).row(0, named=True)
    assert shop.events is not None
    credited = orders_of(shop.events, shop.identities()).select("order_event_id", "order_id").rows()
    return canonical(shop.state()), profile, decided, credited, held


@pytest.mark.parametrize(
    ("added", "ordered"),
    [
        ("Product Added", "order_completed"),
        ("Added Product", "Completed Order"),
        ("product_added", "Order completed"),
        ("Product Added", "Order Completed "),
    ],
)
def test_a_buyer_whose_source_sends_other_spellings_gets_no_cart_email(added: str, ordered: str) -> None:
    """Ann's order, named and keyed as her source sends it (`orderId`, ...), ends her cart as the spec's
    `Order Completed` does: the same state, profile, decisions and credited order, no cart email."""
    state, profile, decided, credited, held = cart_then_order(added, ordered, camel=True)
    spec_state, *spec = cart_then_order("Product Added", "Order Completed", camel=False)
    assert_frame_equal(state, spec_state)
    assert [profile, decided, credited, held] == spec
    assert held == {("abandoned_cart", "u1", "c1", "held", "waiting until due_at")}
    assert decided == {
        ("abandoned_cart", "u1", "c1", "exited", "order_completed"),
        ("post_purchase", "u1", "o1", "held", "waiting until due_at"),
        ("post_purchase", "u1", "o1", "send", "all policies passed"),
    }
    assert (profile["order_count"], profile["lifetime_value"], profile["last_order_at"]) == (1, 40.0, at(20))
    assert credited == [("m-order", "o1")]


def test_a_name_that_only_begins_as_the_spec_s_is_no_order() -> None:
    """`Order Completed Late` is another event (analytics.js's facade would take it, its first alternative
    being unanchored; the spec names no such event): Ann's cart email goes, no order is counted."""
    _, profile, decided, credited, _ = cart_then_order("Product Added", "Order Completed Late", camel=True)
    assert decided == {("abandoned_cart", "u1", "c1", "send", "all policies passed")}
    assert (profile["order_count"], credited) == (0, [])
    assert profile["cart_id"] == "c1"


def checkout_then_order(started: str, ordered: str, *, camel: bool) -> set:
    """Ann starts checkout k1 at 12:10 and orders at 12:08 by another device's clock, naming the checkout:
    only its checkout_id ties the order to it (PRODUCT.md: the same checkout_id or order_id, else any order
    by the shopper since)."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_message(started, at(10), user="u1", message_id="m-k1", **ids(camel, checkout_id="k1")))
    order_ids = ids(camel, order_id="o7", checkout_id="k1")
    shop.land(
        spec_message(ordered, at(8), user="u1", message_id="m-o7", processed=True, revenue=40.0, **order_ids)
    )
    return anchored(shop.run(at(60)))


@pytest.mark.parametrize(
    ("started", "ordered"), [("Started Checkout", "order_completed"), ("checkout_started", "Completed Order")]
)
def test_an_order_naming_the_checkout_by_checkout_id_exits_it(started: str, ordered: str) -> None:
    decided = checkout_then_order(started, ordered, camel=True)
    assert decided == checkout_then_order("Checkout Started", "Order Completed", camel=False)
    assert ("abandoned_checkout", "u1", "k1", "exited", "order_completed") in decided


@pytest.mark.parametrize("camel", [True, False])
def test_a_camel_case_shops_products_are_read_as_their_product_ids(camel: bool) -> None:
    """A shop that sends `productId` sends its products so too (Segment's destinations read either). Ann
    starts checkout listing 2 mugs as `products[].productId` (no `Product Added`): the checkout email lists
    them (not aborted `empty_cart`); she then orders a sock so listed: it is among her purchased products."""
    shop = signed_up(*PRODUCTS)
    mugs = [{**ids(camel, product_id="p-mug"), "name": "Mug", "price": 20.0, "quantity": 2}]
    shop.land(spec_message("Checkout Started", at(0), user="u1", products=mugs))
    shop.run(at(1))
    shop.run(at(31))
    assert lines_of(email(shop, "abandoned_checkout", at(31))) == [("P-Mug", 2, "€40.00")]
    socks = [{**ids(camel, product_id="p-sock"), "category": "socks"}]
    shop.land(spec_message("Order Completed", at(40), user="u1", order_id="o1", products=socks))
    profile = derive(shop.state(), shop.customers, at(41)).row(0, named=True)
    assert profile["purchased_products"] == ["p-sock"]

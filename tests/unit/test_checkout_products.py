"""Golden stories of Segment e-commerce v2's `Checkout Started` `products[]` and `Wishlist Product Added to
Cart` (found by review).

A shop that tracks checkouts server-side without `Product Added` sends the checkout's products only: its
abandoned_checkout email was decided `send` and aborted `empty_cart` at render (no cart lines), so those
shoppers never got it. A checkout's products are now the cart at checkout time: they replace the lines of
the cart it names, or of the shopper's open cart when it names none, and cart events after it apply on
top. A wishlist item moved to the cart is a cart line, as a `Product Added`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import polars as pl
import pytest

from tests.story import Shop, at, message, spec_message
from tests.unit.test_trigger_content import email, signed_up
from transforms.profiles.derive import derive
from transforms.profiles.one import derive_one
from transforms.profiles.state import IMPLICIT_CART, PARTIAL_SCHEMA, canonical
from transforms.sends.plan import Render
from transforms.state import encode

CARTS = ["c1", None]  # the checkout names its cart; it names none (Segment's own example)
PRODUCTS = (("p-cup", "kitchen"), ("p-mug", "kitchen"), ("p-sock", "socks"))  # each 20.00 in the catalog


def checkout(minutes: float, cart: str | None, *lines: tuple[str, int], **more: Any) -> dict:
    """A `Checkout Started` as Segment's spec has it: order_id, value, revenue, currency and `products`."""
    products = [
        {"product_id": p, "sku": p.upper(), "name": p[2:].title(), "price": 20.0, "quantity": q}
        for p, q in lines
    ]
    fields: dict[str, Any] = {"order_id": "o1", "value": 40.0, "revenue": 40.0, "currency": "EUR"}
    fields |= {"products": products, **({"cart_id": cart} if cart else {}), **more}
    return spec_message("Checkout Started", at(minutes), user="u1", **fields)


def cart_event(name: str, minutes: float, product: str, quantity: int = 1, cart: str | None = "c1") -> dict:
    fields: dict[str, Any] = {"product_id": product, "price": 20.0, "quantity": quantity}
    return message(name, at(minutes), user="u1", **fields, **({"cart_id": cart} if cart else {}))


def lines_of(step: Any) -> list[tuple[str, int, str]]:
    """(name, quantity, line total) of each cart line of a rendered email."""
    assert isinstance(step, Render), step
    return [(li["name"], li["quantity"], li["line_total"]) for li in step.content.context["cart"]["lines"]]


def profile_cart(shop: Shop, now: datetime) -> tuple[str | None, list[tuple[str, int]]]:
    """Ann's (cart_id, [(product, quantity)]) as `profiles` has it; the profile API's derive_one agrees."""
    state = shop.state()
    [row] = derive(state, shop.customers, now).to_dicts()
    [wire] = encode(canonical(state).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"]
    one = derive_one("u1", orjson.loads(wire), None, now)
    assert one is not None and (one["cart_id"], one["cart_items"]) == (row["cart_id"], row["cart_items"])
    return row["cart_id"], [(i["product_id"], i["quantity"]) for i in row["cart_items"]]


def kinds(shop: Shop, kind: str) -> list[tuple[str, str]]:
    rows = shop.log.filter(pl.col("kind") == kind).sort("decided_at", maintain_order=True)
    return rows.select("decision", "reason").rows()


@pytest.mark.parametrize("cart", CARTS)
def test_a_shopper_who_only_started_checkout_gets_the_checkout_email_with_its_products(
    cart: str | None,
) -> None:
    """No `Product Added` at all: the checkout lists 2 mugs and a sock. After 30 minutes the checkout email
    shows them (not aborted `empty_cart`); the cart email exits in its favour."""
    shop = signed_up(*PRODUCTS)
    shop.land(checkout(0, cart, ("p-mug", 2), ("p-sock", 1)))
    shop.run(at(5))
    shop.run(at(31))
    assert kinds(shop, "abandoned_checkout") == [
        ("held", "waiting until due_at"),
        ("send", "all policies passed"),
    ]
    assert kinds(shop, "abandoned_cart") == [("exited", "abandoned_checkout_takes_precedence")]
    step = email(shop, "abandoned_checkout", at(31))
    assert lines_of(step) == [("P-Mug", 2, "€40.00"), ("P-Sock", 1, "€20.00")]
    assert isinstance(step, Render) and step.content.context["cart"]["total"] == "€60.00"
    assert profile_cart(shop, at(31)) == (cart or IMPLICIT_CART, [("p-mug", 2), ("p-sock", 1)])


@pytest.mark.parametrize("cart", CARTS)
def test_the_checkouts_products_replace_the_cart_and_later_cart_events_apply_on_top(cart: str | None) -> None:
    """Ann carts 3 mugs in c1, starts checkout listing 1 mug and 2 socks (the cart as the shop has it then),
    takes a sock out and carts a cup: the checkout email shows 1 cup, 1 mug, 1 sock."""
    shop = signed_up(*PRODUCTS)
    shop.land(cart_event("Product Added", 0, "p-mug", 3))
    shop.land(checkout(10, cart, ("p-mug", 1), ("p-sock", 2)))
    shop.land(cart_event("Product Removed", 15, "p-sock"), cart_event("Product Added", 20, "p-cup"))
    for minutes in (20, 41):
        shop.run(at(minutes))
    assert kinds(shop, "abandoned_checkout")[-1] == ("send", "all policies passed")
    expected = [("P-Cup", 1, "€20.00"), ("P-Mug", 1, "€20.00"), ("P-Sock", 1, "€20.00")]
    assert lines_of(email(shop, "abandoned_checkout", at(41))) == expected
    assert profile_cart(shop, at(41)) == ("c1", [("p-cup", 1), ("p-mug", 1), ("p-sock", 1)])


def test_a_cart_named_by_adds_alone_takes_the_products_of_a_checkout_naming_no_cart_landing_first() -> None:
    """The spec shape (cart_id on the cart events only) with the checkout landing in an earlier batch than
    the cart event before it: the checkout still replaces c1's lines (whose cart is known only when the
    batches are merged)."""
    shop = signed_up(*PRODUCTS)
    shop.land(checkout(10, None, ("p-sock", 1)))
    shop.land(cart_event("Product Added", 0, "p-mug", 2))
    assert profile_cart(shop, at(11)) == ("c1", [("p-sock", 1)])


def test_an_order_after_the_checkout_ends_its_products() -> None:
    """The checkout (naming no cart) and then its order: no checkout email, and no cart left."""
    shop = signed_up(*PRODUCTS)
    order: dict[str, Any] = {
        "order_id": "o1",
        "revenue": 40.0,
        "currency": "EUR",
        "products": [{"product_id": "p-mug"}],
    }
    shop.land(checkout(0, None, ("p-mug", 2)), spec_message("Order Completed", at(5), user="u1", **order))
    shop.run(at(31))
    assert kinds(shop, "abandoned_checkout") == [("exited", "order_completed")]
    assert profile_cart(shop, at(31)) == (None, [])


def test_a_checkout_without_products_leaves_the_cart_as_it_was() -> None:
    shop = signed_up(*PRODUCTS)
    shop.land(cart_event("Product Added", 0, "p-mug", 2), checkout(10, "c1", products=[]))
    assert profile_cart(shop, at(11)) == ("c1", [("p-mug", 2)])


def test_a_wishlist_product_moved_to_the_cart_is_a_cart_line_not_a_view() -> None:
    """Ann views the mug twice, then moves it from her wishlist to cart c1 (Segment's `Wishlist Product
    Added to Cart`): the browse email exits `added_to_cart`, and the cart email shows the mug."""
    shop = signed_up(*PRODUCTS)
    views = [
        message("Product Viewed", at(m), user="u1", product_id="p-mug", category="kitchen")
        for m in (-30, -20)
    ]
    moved: dict[str, Any] = {
        "wishlist_id": "w1",
        "wishlist_name": "Loved",
        "cart_id": "c1",
        "product_id": "p-mug",
        "quantity": 1,
    }
    shop.land(*views, spec_message("Wishlist Product Added to Cart", at(0), user="u1", price=20.0, **moved))
    for minutes in (5, 61, 3 * 60):
        shop.run(at(minutes))
    assert kinds(shop, "browse_abandonment") == [("exited", "added_to_cart")]
    assert kinds(shop, "abandoned_cart") == [
        ("held", "waiting until due_at"),
        ("send", "all policies passed"),
    ]
    step = email(shop, "abandoned_cart", at(61))
    assert lines_of(step) == [("P-Mug", 1, "€20.00")]
    [state] = shop.state().to_dicts()
    assert len(state["views"]) == 2
    assert profile_cart(shop, at(61)) == ("c1", [("p-mug", 1)])


def test_shops_without_catalog_rows_still_show_the_checkouts_names() -> None:
    """A product the catalog lacks: its line is the name the checkout gave, without price or picture."""
    shop = signed_up()
    shop.land(checkout(0, None, ("p-lamp", 1)))
    shop.run(at(1))
    shop.run(at(31))
    step = email(shop, "abandoned_checkout", at(31))
    assert lines_of(step) == [("Lamp", 1, "")]

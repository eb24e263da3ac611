"""Golden stories of a cart line's details when two events touch it at one moment (found by review).

A "buy now" button sends `Product Added` and `Checkout Started` of one product with one timestamp, and the
checkout may state another price (a coupon) or another name. The details are the merge's pick at that
moment (`baskets.fold_lines`: by the details, not by message id), so the live store, which merges the
batches as they land, and a rebuild from the lake, which folds them at once, hold the same lines; and the
profile API (`derive_one`) shows the details the email shows.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.story import Shop, at, spec_message
from tests.unit.test_checkout_products import PRODUCTS, profile_cart
from tests.unit.test_trigger_content import signed_up
from transforms.profiles.state import canonical


def buy_now(add_id: str, checkout_id: str) -> list[dict]:
    """Ann's mug at 20.00 carted and checked out at 15.00 (a coupon) at one moment, with these message ids."""
    mug: dict[str, Any] = {"product_id": "p-mug", "name": "Mug", "quantity": 1}
    add = spec_message("Product Added", at(0), user="u1", message_id=add_id, cart_id="c1", price=20.0, **mug)
    listed = [{**mug, "price": 15.0}]
    checkout = spec_message(
        "Checkout Started", at(0), user="u1", message_id=checkout_id, cart_id="c1", products=listed
    )
    return [add, checkout]


def lines(shop: Shop) -> list[Any]:
    return canonical(shop.state())["lines"].to_list()


@pytest.mark.parametrize("ids", [("m-0", "m-9"), ("m-9", "m-0")])
def test_a_buy_now_folds_to_the_same_line_in_one_batch_or_two(ids: tuple[str, str]) -> None:
    """Landed in one batch or in two (either first): one line, one price, whatever the message ids."""
    together, apart, reversed_ = Shop(), Shop(), Shop()
    add, checkout = buy_now(*ids)
    together.land(add, checkout)
    apart.land(add)
    apart.land(checkout)
    reversed_.land(checkout)
    reversed_.land(add)
    assert lines(together) == lines(apart) == lines(reversed_)
    [[line]] = lines(together)
    assert (line["name"], line["price"]) == ("Mug", 20.0)


@pytest.mark.parametrize(
    ("added", "listed"),
    [
        ("https://shop.example/a", "https://shop.example/z"),
        ("https://shop.example/z", "https://shop.example/a"),
    ],
)
def test_the_profile_api_shows_the_line_the_email_shows_when_a_checkout_naming_no_cart_lands_with_an_add(
    added: str, listed: str
) -> None:
    """A `Product Added` to c1 and a checkout naming no cart, one moment, the same mug at other URLs: the
    checkout's line is put in c1 when the state is read; the profile API's cart line is the profile's."""
    shop = signed_up(*PRODUCTS)
    mug: dict[str, Any] = {"product_id": "p-mug", "name": "Mug", "price": 20.0}
    shop.land(spec_message("Product Added", at(0), user="u1", cart_id="c1", quantity=1, url=added, **mug))
    shop.land(spec_message("Checkout Started", at(0), user="u1", products=[{**mug, "url": listed}]))
    assert profile_cart(shop, at(1)) == ("c1", [("p-mug", 1)])  # derive_one == derive, details included

"""Golden stories of a cart line's details when two events touch it at one moment (found by review).

A "buy now" button sends `Product Added` and `Checkout Started` of one product with one timestamp, and the
checkout may state another price (a coupon) or another name. The details are the merge's pick at that
moment (`baskets.fold_lines`: by the details, not by message id), so the live store, which merges the
batches as they land, and a rebuild from the lake, which folds them at once, hold the same lines.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.story import Shop, at, spec_message
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

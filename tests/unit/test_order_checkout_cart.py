"""Golden stories of an order that names its checkout, not its cart (found by review): Segment's e-commerce
spec puts `checkout_id` and `order_id` on `Order Completed` and the `cart_id` on `Checkout Started` at
most. Ann carts a mug in cart K, starts checkout of K (checkout C, order O) and orders naming only C, or
only O. Her cart is closed exactly as by an order naming K: the profile (derive, derive_one) shows no open
cart, the cart and checkout rules exit `order_completed`, and a mug carted in K again after the order (a
shop keeping its cart ids) is the only line of the cart email. Before the fix K stayed open with the mug
she bought, in the profile, the profile API and the refilled cart's email.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import polars as pl
import pytest

from tests.story import Shop, at, message
from tests.unit.test_implicit_cart import rendered_cart
from transforms.profiles.baskets import checkout_carts
from transforms.profiles.carts import cart_rows, open_carts
from transforms.profiles.derive import derive
from transforms.profiles.one import derive_one
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.state import encode

pytestmark = pytest.mark.story  # many engine runs: `make test` runs it, the fast tier leaves it

DAY = 24 * 60
IDS = {"checkout only": {"checkout_id": "ck-1"}, "order only": {"order_id": "o-1"}}


def signed_up() -> Shop:
    """A shop selling a mug and socks, and Ann, u1, who agreed to emails days before."""
    shop = Shop()
    shop.set_product("mug", at(-3 * DAY), price=12.5, stock=5, category="kitchen")
    shop.set_product("sock", at(-3 * DAY), price=4.0, stock=5, category="kitchen")
    shop.land(message("identify", at(-3 * DAY), user="u1", email="ann@example.com", marketing_consent=True))
    shop.run(at(-3 * DAY))
    return shop


def added(minutes: float, product: str = "mug", user: str = "u1", cart: str = "K") -> dict:
    fields: dict[str, Any] = {"product_id": product, "name": product.title(), "price": 12.5, "quantity": 1}
    return message("Product Added", at(minutes), user=user, cart_id=cart, **fields)


def started(minutes: float, user: str = "u1", **ids: str) -> dict:
    """A spec `Checkout Started` of cart K (checkout ck-1 and order o-1 unless `ids` says otherwise)."""
    fields = {"cart_id": "K", "checkout_id": "ck-1", "order_id": "o-1", **ids}
    products = [{"product_id": "mug", "name": "Mug", "price": 12.5, "quantity": 1}]
    return message("Checkout Started", at(minutes), user=user, products=products, **fields)


def ordered(minutes: float, user: str = "u1", **ids: str) -> dict:
    """A spec `Order Completed` naming no cart: only the ids in `ids`."""
    fields: dict[str, Any] = {"revenue": 12.5, "products": [{"product_id": "mug"}], **ids}
    return message("Order Completed", at(minutes), user=user, **fields)


def profile_cart(shop: Shop, now: datetime, user: str = "u1") -> tuple[Any, ...]:
    """(cart_id, cart items) of `user`'s profile, as derive and as the profile API's derive_one give it."""
    state = shop.state()
    rows = {r["user_id"]: r for r in derive(state, shop.customers, now).iter_rows(named=True)}
    mine = state.filter(pl.col("principal") == user)
    [wire] = encode(canonical(mine).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"]
    one = derive_one(user, orjson.loads(wire), None, now)
    assert one is not None and (one["cart_id"], one["cart_items"]) == (
        rows[user]["cart_id"],
        rows[user]["cart_items"],
    )
    return rows[user]["cart_id"], [(i["product_id"], i["quantity"]) for i in rows[user]["cart_items"]]


def decisions(shop: Shop, kind: str) -> list[tuple[str, str]]:
    rows = shop.log.filter(pl.col("kind") == kind).sort("decided_at", "decision")
    return rows.select("decision", "reason").rows()


@pytest.mark.parametrize("ids", IDS.values(), ids=IDS.keys())
@pytest.mark.parametrize(
    "landing", ["one batch", "order in a later batch", "order lands first", "order listed first"]
)
def test_an_order_naming_only_its_checkout_or_order_id_closes_the_cart_its_checkout_named(
    ids: dict[str, str], landing: str
) -> None:
    shop = signed_up()
    cart, order = [added(0), started(5)], ordered(8, **ids)
    batches = {
        "one batch": [[*cart, order]],
        "order in a later batch": [cart, [order]],
        "order lands first": [[order], cart],
        "order listed first": [[order, *cart]],
    }[landing]
    for batch in batches:
        shop.land(*batch)
    assert profile_cart(shop, at(10)) == (None, [])
    [row] = cart_rows(checkout_carts(shop.state(), "principal"), "principal").rows(named=True)
    assert (row["cart_id"], row["ordered_at"]) == ("K", at(8))
    assert open_carts(cart_rows(shop.state(), "principal"), "principal").height == 0
    for minutes in (30, 40, 70):
        shop.run(at(minutes))
    assert decisions(shop, "abandoned_cart")[-1] == ("exited", "order_completed")
    assert decisions(shop, "abandoned_checkout")[-1] == ("exited", "order_completed")


@pytest.mark.parametrize("ids", IDS.values(), ids=IDS.keys())
def test_a_cart_refilled_after_an_order_through_its_checkout_shows_only_the_new_line(
    ids: dict[str, str],
) -> None:
    """A shop keeping cart K across orders: socks carted in K the next day are the cart's only line and its
    email's (before the fix the bought mug was in both), and the cart is a new fill of K."""
    shop = signed_up()
    shop.land(added(0), started(5))
    shop.land(ordered(8, **ids))
    shop.run(at(40))
    shop.land(added(DAY, "sock"))
    assert profile_cart(shop, at(DAY + 1)) == ("K", [("sock", 1)])
    shop.run(at(DAY + 61))
    assert decisions(shop, "abandoned_cart")[-1] == ("send", "all policies passed")
    [decision] = shop.log.filter(
        (pl.col("kind") == "abandoned_cart") & (pl.col("decision") == "send")
    ).to_dicts()
    email = rendered_cart(shop, decision, at(DAY + 61))
    assert [(li["name"], li["quantity"]) for li in email["lines"]] == [("Sock", 1)]
    assert (email["count"], email["total"]) == (1, "€4.00")


def test_every_checkout_of_the_cart_links_it_not_only_the_one_the_checkouts_list_keeps() -> None:
    """The checkouts list keeps a cart's checkout under the least of its ids (ck-1); the order names the
    restarted checkout's (ck-2) and its order id (o-2): the cart closes all the same."""
    for ids in ({"checkout_id": "ck-2"}, {"order_id": "o-2"}):
        shop = signed_up()
        shop.land(added(0), started(5), started(6, checkout_id="ck-2", order_id="o-2"))
        shop.land(ordered(8, **ids))
        [checkout] = shop.state()["checkouts"].to_list()[0]
        assert (checkout["checkout_id"], checkout["order_id"]) == ("ck-1", "o-1")
        assert profile_cart(shop, at(10)) == (None, [])


def test_a_state_folded_before_the_links_closes_the_cart_through_its_checkouts_list() -> None:
    """A state from the release before `cart_checkouts` (the list null): the checkouts list names the cart
    and the least of its ids, enough for an order of that checkout."""
    shop = signed_up()
    shop.land(added(0), started(5))
    shop.land(ordered(8, checkout_id="ck-1"))
    before = shop.state().with_columns(
        pl.lit(None, dtype=PARTIAL_SCHEMA["cart_checkouts"]).alias("cart_checkouts")
    )
    [row] = derive(before, shop.customers, at(10)).iter_rows(named=True)
    assert (row["cart_id"], row["cart_items"]) == (None, [])
    [wire] = encode(before.lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"]
    one = derive_one("u1", orjson.loads(wire), None, at(10))
    assert one is not None and (one["cart_id"], one["cart_items"]) == (None, [])


def test_an_order_of_another_checkout_or_another_shopper_leaves_the_cart_open() -> None:
    """Only the shopper's own checkout links: u1's order of checkout ck-9 (none of hers named K), and u2's
    order naming u1's ck-1, close nothing of u1's; an order naming a cart closes that cart only."""
    shop = signed_up()
    shop.land(added(0), started(5), added(0, user="u2", cart="K2"))
    shop.land(ordered(8, checkout_id="ck-9"), ordered(8, user="u2", checkout_id="ck-1"))
    assert profile_cart(shop, at(10)) == ("K", [("mug", 1)])
    assert profile_cart(shop, at(10), "u2") == ("K2", [("mug", 1)])
    shop.land(ordered(9, cart_id="K3", checkout_id="ck-1"))  # it names its cart: that one, not its checkout's
    assert profile_cart(shop, at(10)) == ("K", [("mug", 1)])

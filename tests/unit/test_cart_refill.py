"""A cart emptied and filled again (the simulator keeps the cart id when the last item goes): the shopper
gets one abandoned_cart email for the refilled cart, whether the refill came before the emptied cart
was due or after its instance had exited `cart_emptied`. A cart left empty sends nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl

from tests.story import Shop, at, message
from transforms.schema import PENDING_DECISIONS

DAY = 24 * 60


def _shop() -> Shop:
    """Ann signed up three days ago (her welcome went out then)."""
    shop = Shop()
    traits: dict[str, Any] = {"email": "u1@example.com", "marketing_consent": True}
    shop.land(message("identify", at(-3 * DAY), user="u1", **traits))
    shop.run(at(-3 * DAY))
    return shop


def _line(name: str, minutes: float) -> dict:
    fields: dict[str, Any] = {"cart_id": "c1", "product_id": "p1", "price": 40.0, "quantity": 1}
    return message(name, at(minutes), user="u1", **fields)


def _carts(shop: Shop) -> pl.DataFrame:
    return shop.log.filter(pl.col("kind") == "abandoned_cart")


def _terminal(shop: Shop) -> list[tuple[str, str]]:
    """The cart's terminal decisions, in order: (decision, reason)."""
    done = _carts(shop).filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    return done.select("decision", "reason").rows()


def _exactly_once(shop: Shop) -> None:
    done = shop.log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert done["trigger_id"].is_unique().all(), done


def test_a_cart_refilled_before_it_was_due_keeps_its_instance_and_sends_once() -> None:
    """Ann empties her cart at 12:05 and fills it again at 12:30: one email at 13:30, from one instance
    (the engine ran while the cart was empty, before it was due)."""
    shop = _shop()
    shop.land(_line("Product Added", 0), _line("Product Removed", 5))
    emptied = shop.run(at(10))
    assert emptied.select("decision", "due_at").rows() == [("held", at(65))]
    shop.land(_line("Product Added", 30))
    shop.run(at(40))
    assert shop.run(at(89)).filter(pl.col("decision") == "send").height == 0
    shop.run(at(90))
    shop.run(at(3 * 60))
    assert _terminal(shop) == [("send", "all policies passed")]
    assert _carts(shop)["trigger_id"].n_unique() == 1
    _exactly_once(shop)


def test_a_cart_refilled_after_it_exited_emptied_gets_one_email() -> None:
    """Ann empties her cart at 12:05; at 13:05 it exits `cart_emptied`. At 15:00 she fills the same cart
    again and leaves: a new instance of the cart's email goes out at 16:00, once."""
    shop = _shop()
    shop.land(_line("Product Added", 0), _line("Product Removed", 5))
    shop.run(at(10))
    shop.run(at(65))
    assert _terminal(shop) == [("exited", "cart_emptied")]
    shop.land(_line("Product Added", 3 * 60))
    shop.run(at(3 * 60 + 1))
    for minutes in (4 * 60, 5 * 60, DAY):
        shop.run(at(minutes))
    assert _terminal(shop) == [("exited", "cart_emptied"), ("send", "all policies passed")]
    sent = _carts(shop).filter(pl.col("decision") == "send")
    assert sent.select("user_id", "anchor", "decided_at").rows() == [("u1", "c1", at(4 * 60))]
    assert _carts(shop)["trigger_id"].n_unique() == 2  # the refilled cart's instance follows the exited one
    _exactly_once(shop)


def test_a_cart_emptied_twice_and_refilled_gets_one_email() -> None:
    """Filled, emptied and left till due twice over, then filled again: two instances exit `cart_emptied`,
    the third sends; each is decided once."""
    shop = _shop()
    for start in (0, 2 * 60):
        shop.land(_line("Product Added", start))
        shop.run(at(start + 1))
        shop.land(_line("Product Removed", start + 5))
        shop.run(at(start + 65))
    shop.land(_line("Product Added", 5 * 60))
    for minutes in (5 * 60 + 1, 6 * 60, 7 * 60, 2 * DAY):
        shop.run(at(minutes))
    assert _terminal(shop) == [
        ("exited", "cart_emptied"),
        ("exited", "cart_emptied"),
        ("send", "all policies passed"),
    ]
    assert _carts(shop)["trigger_id"].n_unique() == 3
    _exactly_once(shop)


def test_a_cart_left_empty_exits_emptied_when_due_and_sends_nothing() -> None:
    """Ann empties her cart at 12:05 and never comes back: held until 13:05, then `cart_emptied`; later
    runs add nothing."""
    shop = _shop()
    shop.land(_line("Product Added", 0), _line("Product Removed", 5))
    assert shop.run(at(10)).select("decision", "reason").rows() == [("held", "waiting until due_at")]
    assert shop.run(at(64)).height == 0
    assert shop.run(at(65)).select("decision", "reason").rows() == [("exited", "cart_emptied")]
    for minutes in (2 * 60, DAY, 2 * DAY):
        assert shop.run(at(minutes)).height == 0
    assert _terminal(shop) == [("exited", "cart_emptied")]
    assert _carts(shop).filter(pl.col("decision") == "send").height == 0


def test_the_carts_own_order_exits_it_at_once_and_a_late_change_from_before_it_changes_nothing() -> None:
    """The cart's own order exits it at once (not when due); a change of the cart from before the order,
    landing late, is of the fill the order took: it stays exited. (A change after the order is a new cart:
    tests/unit/test_cart_instances.py.)"""
    shop = _shop()
    order: dict[str, Any] = {
        "cart_id": "c1",
        "order_id": "o1",
        "revenue": 40.0,
        "products": [{"product_id": "p1"}],
    }
    shop.land(_line("Product Added", 0), message("Order Completed", at(10), user="u1", **order))
    shop.run(at(11))
    assert _terminal(shop) == [("exited", "order_completed")]
    shop.land(_line("Product Added", 5))
    for minutes in (61, 2 * 60 + 1, DAY):
        shop.run(at(minutes) + timedelta(seconds=1))
    assert _terminal(shop) == [("exited", "order_completed")]
    _exactly_once(shop)

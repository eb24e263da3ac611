"""A checkout names its cart; the shopper leaves that cart for another before the checkout email is due.

The email would show the cart the checkout named, and the shopper no longer has it (content aborts
`cart_changed`). Decided `send`, it would still take the frequency cap (one marketing email per user per
16 h), and the new cart's own email, due later, would be `capped`: nothing at all. The checkout rule's
exit withdraws it when due instead, so the new cart's email goes out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from tests.story import Shop, at, message
from tests.unit.test_trigger_content import email, signed_up
from transforms.sends.plan import Render
from transforms.triggers.exits import exit_reasons_now


def add(minutes: float, cart: str, product: str, quantity: int = 1) -> dict:
    fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "price": 20.0, "quantity": quantity}
    return message("Product Added", at(minutes), user="u1", **fields)


def remove(minutes: float, cart: str, product: str) -> dict:
    fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "quantity": 1}
    return message("Product Removed", at(minutes), user="u1", **fields)


def checkout(minutes: float, cart: str) -> dict:
    return message("Checkout Started", at(minutes), user="u1", cart_id=cart)


def story(*messages: dict, runs: tuple[float, ...] = (20, 40, 80)) -> Shop:
    """Ann (u1, who agreed to emails) does `messages`; the engine runs at `runs` (minutes): the checkout
    email is due 30 minutes after its start, a cart's an hour after its last change."""
    shop = signed_up(("p-mug", "kitchen"), ("p-sock", "socks"))
    shop.land(*messages)
    for minutes in runs:
        shop.run(at(minutes))
    return shop


def decided(shop: Shop, kind: str) -> list[tuple[str | None, str, str, datetime]]:
    """(anchor, decision, reason, decided_at) of the shopper's rows of `kind`, in order."""
    rows = shop.log.filter(pl.col("kind") == kind).sort("decided_at", maintain_order=True)
    return list(rows.select("anchor", "decision", "reason", "decided_at").iter_rows())


def test_a_checkout_of_a_cart_left_for_another_exits_and_the_new_carts_email_goes_out() -> None:
    """Ann starts checkout on c1 (a mug) at minute 10, then fills c2 with socks at 20 and leaves: at 40
    the checkout exits `cart_changed` (held until then), and at 80 c2's cart email is sent, not capped."""
    shop = story(add(0, "c1", "p-mug", 2), checkout(10, "c1"), add(20, "c2", "p-sock"))
    assert decided(shop, "abandoned_checkout") == [
        ("c1", "held", "waiting until due_at", at(20)),
        ("c1", "exited", "cart_changed", at(40)),
    ]
    assert shop.decisions() == {
        ("welcome", "u1", "send"),  # three months ago
        ("abandoned_cart", "u1", "exited"),  # c1: the checkout took it over
        ("abandoned_checkout", "u1", "exited"),
        ("abandoned_cart", "u1", "send"),  # c2
    }
    assert decided(shop, "abandoned_cart")[-1] == ("c2", "send", "all policies passed", at(80))
    step = email(shop, "abandoned_cart", at(80))
    assert isinstance(step, Render)
    assert [line["name"] for line in step.content.context["cart"]["lines"]] == ["P-Sock"]


def test_a_checkout_of_the_open_cart_still_sends() -> None:
    """Ann fills c1, then c2, and starts checkout on c2, the cart she has: its email goes at 40."""
    shop = story(add(0, "c1", "p-mug"), add(5, "c2", "p-sock"), checkout(10, "c2"), runs=(20, 40))
    assert decided(shop, "abandoned_checkout")[-1] == ("c2", "send", "all policies passed", at(40))
    step = email(shop, "abandoned_checkout", at(40))
    assert isinstance(step, Render)
    assert [line["name"] for line in step.content.context["cart"]["lines"]] == ["P-Sock"]


def test_back_on_the_named_cart_before_it_is_due_the_checkout_email_goes() -> None:
    """Ann fills c2 at 20 but is back on c1 at 30 (one more mug): when due, at 40, c1 is her cart again,
    so the checkout email goes (the exit is decided when due, as the email would be)."""
    shop = story(add(0, "c1", "p-mug"), checkout(10, "c1"), add(20, "c2", "p-sock"), runs=(25,))
    assert decided(shop, "abandoned_checkout") == [("c1", "held", "waiting until due_at", at(25))]
    shop.land(add(30, "c1", "p-mug"))
    shop.run(at(40))
    assert decided(shop, "abandoned_checkout")[-1] == ("c1", "send", "all policies passed", at(40))
    step = email(shop, "abandoned_checkout", at(40))
    assert isinstance(step, Render)
    assert [(line["name"], line["quantity"]) for line in step.content.context["cart"]["lines"]] == [
        ("P-Mug", 2)
    ]


def test_a_checkout_naming_no_cart_shows_the_open_one_and_is_not_withdrawn() -> None:
    """A checkout without a cart id (Segment's spec shape: an order id) is about the cart Ann has."""
    started = message("Checkout Started", at(10), user="u1", order_id="o-1")
    shop = story(add(0, "c1", "p-mug"), started, add(20, "c2", "p-sock"), runs=(20, 40))
    assert decided(shop, "abandoned_checkout")[-1] == ("o-1", "send", "all policies passed", at(40))


def recheck(shop: Shop, now: datetime) -> list[str | None]:
    """The exit reason of the checkout's `send` decision right before sending (stores.sends.read_world)."""
    sent = shop.log.filter((pl.col("kind") == "abandoned_checkout") & (pl.col("decision") == "send"))
    sent = sent.with_columns(pl.col("user_id").alias("principal"))
    return exit_reasons_now(sent, state=shop.state(), catalog=shop.catalog, now=now).to_list()


def test_the_recheck_before_sending_and_content_agree_on_the_shoppers_cart() -> None:
    """Decided `send` at 40 on c1; what Ann does after that: the re-check right before sending withdraws
    the email (`cart_changed`, `cart_emptied`) exactly when content would abort it (content's own abort
    stays a guard)."""
    for later, exit_reason, abort in [
        ((), None, None),
        ((add(41, "c2", "p-sock"),), "cart_changed", "cart_changed"),
        ((remove(41, "c1", "p-mug"),), "cart_emptied", "empty_cart"),  # still hers, and empty
        ((remove(41, "c1", "p-mug"), add(42, "c2", "p-sock")), "cart_changed", "cart_changed"),
    ]:
        shop = story(add(0, "c1", "p-mug"), checkout(10, "c1"), runs=(20, 40))
        if later:
            shop.land(*later)
        assert recheck(shop, at(45)) == [exit_reason], later
        step = email(shop, "abandoned_checkout", at(45))
        assert getattr(step, "reason", None) == abort, later


def test_a_checkout_whose_cart_is_emptied_before_it_is_due_exits_and_takes_no_cap() -> None:
    """Ann starts checkout on c1 at 10 and empties c1 at 20: at 40 the checkout exits `cart_emptied`
    (content would abort `empty_cart`; a `send` would take the cap from her next email). Refilled before
    40, it goes."""
    emptied = story(add(0, "c1", "p-mug"), checkout(10, "c1"), remove(20, "c1", "p-mug"), runs=(20, 40))
    assert decided(emptied, "abandoned_checkout")[-1] == ("c1", "exited", "cart_emptied", at(40))
    refilled = story(
        add(0, "c1", "p-mug"),
        checkout(10, "c1"),
        remove(20, "c1", "p-mug"),
        add(25, "c1", "p-sock"),
        runs=(30, 40),
    )
    assert decided(refilled, "abandoned_checkout")[-1][1:3] == ("send", "all policies passed")

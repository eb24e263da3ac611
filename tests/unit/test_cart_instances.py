"""One abandoned_cart email per cart (PRODUCT.md §4: "one instance per cart_id"), and not fewer.

A cart the shopper left for another exits when due (`cart_changed`): a `send` decision for it would be
aborted by content and still take the 7-day cooldown and the 16 h cap from the cart the shopper has now.
A cart decided without an email for a reason about the shopper then (no address, no consent, the
cooldown, the cap, ...) starts a new instance when it changes after that decision; one that got its
email (`send`), or stood for it in the holdout, does not. Found by review.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, message
from tests.unit.test_trigger_content import email
from transforms.profiles.derive import derive
from transforms.schema import PENDING_DECISIONS
from transforms.sends.plan import Render
from transforms.triggers.policies import Policy

pytestmark = pytest.mark.story  # many engine runs: `make test` runs it, the fast tier leaves it

DAY = 24 * 60


def _shop(*, signed_up: float = -3 * DAY, consent: bool = True, policy: Policy | None = None) -> Shop:
    """Ann (u1) identified with an email at `signed_up` (minutes), her welcome decided then."""
    shop = Shop() if policy is None else Shop(policy=policy)
    traits: dict[str, Any] = {"email": "u1@example.com", "marketing_consent": consent}
    shop.land(message("identify", at(signed_up), user="u1", **traits))
    shop.run(at(signed_up))
    return shop


def _add(minutes: float, cart: str = "c1", product: str = "p1", **who: Any) -> dict:
    fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "name": product.upper(), "price": 20.0}
    return message("Product Added", at(minutes), **({"user": "u1"} | who), **fields)


def _runs(shop: Shop, *minutes: float) -> None:
    for m in minutes:
        shop.run(at(m))


def _terminal(shop: Shop) -> list[tuple[str | None, str, str, datetime]]:
    """The carts' terminal decisions, in order: (anchor, decision, reason, decided_at)."""
    final = ~pl.col("decision").is_in(PENDING_DECISIONS)
    carts = shop.log.filter((pl.col("kind") == "abandoned_cart") & final)
    return carts.sort("decided_at", "anchor").select("anchor", "decision", "reason", "decided_at").rows()


def _exactly_once(shop: Shop) -> None:
    done = shop.log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert done["trigger_id"].is_unique().all(), done


def test_a_cart_left_for_another_exits_when_due_and_the_new_carts_email_goes_out() -> None:
    """Ann fills c1 at 12:00 and moves to a new cart c2 at 12:10: at 13:00 c1 exits `cart_changed` (no
    send decision, so no cooldown and no cap taken), at 13:10 c2's email goes out, showing c2."""
    shop = _shop()
    shop.land(_add(0, "c1", "p1"))
    shop.run(at(1))
    shop.land(_add(10, "c2", "p2"))
    _runs(shop, 11, 30, 60, 70, 2 * 60)
    assert _terminal(shop) == [
        ("c1", "exited", "cart_changed", at(60)),
        ("c2", "send", "all policies passed", at(70)),
    ]
    step = email(shop, "abandoned_cart", at(71))
    assert isinstance(step, Render), step
    assert [line["name"] for line in step.content.context["cart"]["lines"]] == ["P2"]
    _exactly_once(shop)


def test_back_on_the_first_cart_before_it_is_due_keeps_its_instance() -> None:
    """Ann moves to c2 at 12:10 and back to c1 at 12:20 (a change of c1): c1 is hers again, due at 13:20;
    c2, left for c1, exits when due."""
    shop = _shop()
    shop.land(_add(0, "c1", "p1"), _add(10, "c2", "p2"), _add(20, "c1", "p3"))
    _runs(shop, 21, 70, 80, 2 * 60)
    assert _terminal(shop) == [
        ("c2", "exited", "cart_changed", at(70)),
        ("c1", "send", "all policies passed", at(80)),
    ]
    assert shop.log.filter(pl.col("anchor") == "c1")["trigger_id"].n_unique() == 1
    _exactly_once(shop)


def test_a_guests_cart_due_before_login_gets_its_email_once_they_log_in_and_change_it() -> None:
    """A guest's cart falls due while anonymous (`no_address`); an hour later they log in as Ann and add to
    the same cart: the changed cart is a new instance, sent an hour after the change."""
    shop = _shop()
    shop.land(_add(0, user=None, anon="a1"))
    _runs(shop, 1, 61)
    assert _terminal(shop) == [("c1", "no_address", "anonymous shopper, no user id", at(61))]
    shop.land(message("identify", at(120), user="u1", anon="a1"), _add(121, product="p2", anon="a1"))
    _runs(shop, 122, 181, 300, DAY)
    assert _terminal(shop) == [
        ("c1", "no_address", "anonymous shopper, no user id", at(61)),
        ("c1", "send", "all policies passed", at(181)),
    ]
    assert shop.log.filter(pl.col("anchor") == "c1")["trigger_id"].n_unique() == 2
    _exactly_once(shop)


def test_a_login_alone_does_not_renew_a_cart_decided_without_an_address() -> None:
    """The guest logs in after the `no_address` decision but does not touch the cart: nothing more."""
    shop = _shop()
    shop.land(_add(0, user=None, anon="a1"))
    _runs(shop, 1, 61)
    shop.land(message("identify", at(120), user="u1", anon="a1"))
    _runs(shop, 121, 300, DAY)
    assert [d for _, d, _, _ in _terminal(shop)] == ["no_address"]


def test_a_cart_in_the_cooldown_gets_its_email_when_changed_after_it() -> None:
    """c1 is sent on day 0; c2 falls due on day 6 (`cooldown`); Ann changes c2 on day 8: its email goes."""
    shop = _shop()
    shop.land(_add(0, "c1"))
    _runs(shop, 1, 61)
    shop.land(_add(6 * DAY, "c2"))
    _runs(shop, 6 * DAY + 1, 6 * DAY + 61)
    shop.land(_add(8 * DAY, "c2", "p2"))
    _runs(shop, 8 * DAY + 1, 8 * DAY + 61, 9 * DAY)
    assert [(a, d) for a, d, _, _ in _terminal(shop)] == [("c1", "send"), ("c2", "cooldown"), ("c2", "send")]
    _exactly_once(shop)


def test_a_capped_or_unconsented_cart_changed_later_gets_its_email() -> None:
    """Ann signs up at 11:30 (welcome) and fills c1 at 12:00: capped at 13:00 (16 h). She changes it the
    next day: sent. Ann again, without consent then, gives it at 13:30 (her welcome goes) and changes her
    cart the next day: sent."""
    shop = _shop(signed_up=-30)
    shop.land(_add(0))
    _runs(shop, 1, 60)
    shop.land(_add(DAY, product="p2"))
    _runs(shop, DAY + 1, DAY + 60, 2 * DAY)
    assert [(a, d) for a, d, _, _ in _terminal(shop)] == [("c1", "capped"), ("c1", "send")]
    unconsented = _shop(consent=False)
    unconsented.land(_add(0))
    _runs(unconsented, 1, 60)
    unconsented.land(message("identify", at(90), user="u1", marketing_consent=True))
    unconsented.run(at(91))
    unconsented.land(_add(DAY, product="p2"))
    _runs(unconsented, DAY + 1, DAY + 60, 2 * DAY)
    assert [(a, d) for a, d, _, _ in _terminal(unconsented)] == [("c1", "no_consent"), ("c1", "send")]
    _exactly_once(shop)
    _exactly_once(unconsented)


def test_a_cart_that_got_its_email_or_stood_for_it_in_the_holdout_gets_no_second_one() -> None:
    """One instance per cart: after `send` or `holdout`, changing the cart again starts nothing."""
    for policy, decision in ((None, "send"), (Policy(holdout_rate=1.0), "holdout")):
        shop = _shop(policy=policy)
        shop.land(_add(0))
        _runs(shop, 1, 60)
        shop.land(_add(8 * DAY, product="p2"))  # past the cooldown
        _runs(shop, 8 * DAY + 1, 8 * DAY + 60, 9 * DAY)
        assert [d for _, d, _, _ in _terminal(shop)] == [decision]
        assert shop.log.filter(pl.col("kind") == "abandoned_cart")["trigger_id"].n_unique() == 1


def test_a_cart_id_reused_after_its_order_is_a_new_cart_with_only_what_was_added_since() -> None:
    """Ann orders c1 (the order names it) at 12:10; the shop keeps the cart id, and two days later she puts
    p2 in it and leaves: one email, showing p2 only (p1 was bought); the order exited the first fill."""
    shop = _shop()
    products = [{"product_id": "p1"}]
    ordered = message("Order Completed", at(10), user="u1", cart_id="c1", order_id="o1", products=products)
    shop.land(_add(0), ordered)
    shop.run(at(11))
    shop.land(_add(2 * DAY, product="p2"))
    _runs(shop, 2 * DAY + 1, 2 * DAY + 60, 3 * DAY)
    assert _terminal(shop) == [
        ("c1", "exited", "order_completed", at(11)),
        ("c1", "send", "all policies passed", at(2 * DAY + 60)),
    ]
    [profile] = derive(shop.state(), shop.customers, at(2 * DAY + 60)).to_dicts()
    assert (profile["cart_id"], [i["product_id"] for i in profile["cart_items"]]) == ("c1", ["p2"])
    step = email(shop, "abandoned_cart", at(2 * DAY + 61))
    assert isinstance(step, Render), step
    assert [line["name"] for line in step.content.context["cart"]["lines"]] == ["P2"]
    _exactly_once(shop)

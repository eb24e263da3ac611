"""The implicit cart (found by review): `cart_id` is optional in Segment's e-commerce v2 spec, and a shop
whose tracking never sends it got no cart at all: no abandoned_cart email, no `cart_items`, and no cart for
abandoned_checkout to take precedence over. Cart events naming no cart are now the shopper's implicit cart
(`implicit`, the same id for every shopper: its trigger ids name the shopper), emptied by any order of the
shopper; what is added after that order is a new cart, with its own instance, even after a `send`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, message, spec_message
from tests.unit.test_cart_instances import DAY, _exactly_once, _runs, _shop, _terminal
from tests.unit.test_trigger_content import SENDER
from transforms.profiles.derive import derive
from transforms.profiles.state import IMPLICIT_CART
from transforms.schema import PENDING_DECISIONS
from transforms.sends.catalog import Catalog
from transforms.sends.plan import Render, SendWorld, plan_row
from transforms.triggers.rules import carts as carts_rules

pytestmark = pytest.mark.story  # many engine runs: `make test` runs it, the fast tier leaves it


def _product(name: str) -> dict[str, Any]:
    return {"product_id": name, "sku": name.upper(), "name": name.upper(), "price": 20.0, "quantity": 1}


def _cart(event: str, minutes: float, product: str, **who: Any) -> dict:
    """A spec-shaped cart event naming no cart, as most analytics.js integrations send it."""
    return spec_message(event, at(minutes), **({"user": "u1"} | who), **_product(product))


def _order(minutes: float, order_id: str, *products: str, user: str = "u1") -> dict:
    """A spec-shaped `Order Completed`: order and checkout ids, its products, no `cart_id`."""
    fields: dict[str, Any] = {"order_id": order_id, "checkout_id": f"k-{order_id}", "revenue": 20.0}
    bought = [_product(p) for p in products]
    return spec_message("Order Completed", at(minutes), user=user, processed=True, products=bought, **fields)


def _profile(shop: Shop, now: datetime, user: str = "u1") -> tuple[str | None, list[str]]:
    """The shopper's `profiles` cart: (cart_id, the product ids of cart_items)."""
    [row] = derive(shop.state(), shop.customers, now).filter(pl.col("user_id") == user).to_dicts()
    return row["cart_id"], [item["product_id"] for item in row["cart_items"]]


def rendered_cart(shop: Shop, decision: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The cart block of the email of `decision` (a `send` row of the log) as the send stage plans it at
    `now`."""
    profiles = derive(shop.state(), shop.customers, now)
    world = SendWorld(
        triggers={decision["trigger_id"]: decision},
        profiles={p["user_id"]: p for p in profiles.iter_rows(named=True)},
        aborts={},
        catalog=Catalog.of(shop.catalog),
    )
    row = {"send_id": "s-1", "status": "pending", "variant": "a", **decision}
    step = plan_row(row, world, now=now, shop=SENDER, staleness=timedelta(hours=72), can_lookup=False)
    assert isinstance(step, Render), step
    cart: dict[str, Any] = step.content.context["cart"]
    return cart


def _lines(shop: Shop, trigger_id: str, now: datetime) -> list[str]:
    """The cart lines the email of decision `trigger_id` shows at `now` (the send stage's plan)."""
    [decision] = shop.log.filter(
        (pl.col("trigger_id") == trigger_id) & (pl.col("decision") == "send")
    ).to_dicts()
    return [line["name"] for line in rendered_cart(shop, decision, now)["lines"]]


def _sends(shop: Shop) -> list[dict[str, Any]]:
    carts = shop.log.filter((pl.col("kind") == "abandoned_cart") & (pl.col("decision") == "send"))
    return carts.sort("decided_at").to_dicts()


def test_a_shop_that_never_names_its_carts_gets_one_email_per_fill_of_the_implicit_cart() -> None:
    """Ann adds p1 and p2 and removes p1 (no cart_id anywhere): an hour later one email, showing P2, about
    the `implicit` cart. She orders (no cart_id) the next day: the cart is empty. She adds p3 on day 2: a
    new instance, within the 7-day cooldown of the first email (`cooldown`); she adds p4 on day 8: its
    email goes, showing P3 and P4 (P2 was bought)."""
    shop = _shop()
    shop.land(_cart("Product Added", 0, "p1"), _cart("Product Added", 5, "p2"))
    shop.land(_cart("Product Removed", 10, "p1"))
    _runs(shop, 11, 69, 70, 2 * 60)
    assert _terminal(shop) == [(IMPLICIT_CART, "send", "all policies passed", at(70))]
    assert _profile(shop, at(70)) == (IMPLICIT_CART, ["p2"])
    assert _lines(shop, _sends(shop)[0]["trigger_id"], at(71)) == ["P2"]
    shop.land(_order(DAY, "o1", "p2"))
    _runs(shop, DAY + 1)
    assert _profile(shop, at(DAY + 1)) == (None, [])
    shop.land(_cart("Product Added", 2 * DAY, "p3"))
    _runs(shop, 2 * DAY + 1, 2 * DAY + 60)
    shop.land(_cart("Product Added", 8 * DAY, "p4"))
    _runs(shop, 8 * DAY + 1, 8 * DAY + 60, 9 * DAY)
    assert [(a, d) for a, d, _, _ in _terminal(shop)] == [
        (IMPLICIT_CART, "send"),
        (IMPLICIT_CART, "cooldown"),
        (IMPLICIT_CART, "send"),
    ]
    assert _profile(shop, at(8 * DAY + 60)) == (IMPLICIT_CART, ["p3", "p4"])
    assert _lines(shop, _sends(shop)[1]["trigger_id"], at(8 * DAY + 61)) == ["P3", "P4"]
    _exactly_once(shop)


def test_an_order_naming_no_cart_exits_the_implicit_carts_instance() -> None:
    """Ann adds p1 and orders 20 minutes later (no cart_id on either): the instance exits at once
    (`order_completed`), no email, and the profile's cart is empty."""
    shop = _shop()
    shop.land(_cart("Product Added", 0, "p1"))
    shop.run(at(1))
    shop.land(_order(20, "o1", "p1"))
    _runs(shop, 21, 61, 2 * 60)
    assert _terminal(shop) == [(IMPLICIT_CART, "exited", "order_completed", at(21))]
    assert _profile(shop, at(2 * 60)) == (None, [])


def test_every_shopper_has_an_implicit_cart_of_their_own() -> None:
    """Ann and Bob both cart without a cart_id: two instances, two emails, each showing its own lines."""
    shop = _shop()
    shop.land(message("identify", at(-3 * DAY), user="u2", email="u2@example.com", marketing_consent=True))
    shop.run(at(-3 * DAY))
    shop.land(_cart("Product Added", 0, "p1"), _cart("Product Added", 1, "p2", user="u2"))
    _runs(shop, 2, 61, 62)
    sends = _sends(shop)
    assert sorted((s["user_id"], s["anchor"]) for s in sends) == [
        ("u1", IMPLICIT_CART),
        ("u2", IMPLICIT_CART),
    ]
    assert len({s["trigger_id"] for s in sends}) == 2
    assert _profile(shop, at(62), "u2") == (IMPLICIT_CART, ["p2"])
    _exactly_once(shop)


# Anonymous ids whose implicit-cart trigger id sorts after Ann's (a1) and before it (a4): the shopper's
# own instance stays whichever way the ids sort.
@pytest.mark.parametrize("anon", ["a1", "a4"])
def test_a_guests_implicit_cart_follows_them_when_they_log_in_before_it_is_due(anon: str) -> None:
    """Ann's implicit cart holds p2 (11:50, from her laptop, logged in); a guest (her phone) carts p1 at
    12:00 and logs in as Ann at 12:30: the two implicit carts are one, as a cart id the shop kept through
    the login would be: one email at 13:00 with both lines; the guest's instance is merged into hers."""
    shop = _shop()
    shop.land(_cart("Product Added", -10, "p2"), _cart("Product Added", 0, "p1", user=None, anon=anon))
    _runs(shop, 1)
    guest = shop.log.filter(pl.col("principal") == f"anon:{anon}")["trigger_id"].unique().to_list()
    shop.land(spec_message("identify", at(30), user="u1", anon=anon))
    _runs(shop, 31, 50, 60, 2 * 60, DAY)
    carts = shop.log.filter(pl.col("kind") == "abandoned_cart")
    final = carts.filter(~pl.col("decision").is_in(PENDING_DECISIONS)).sort("decided_at", "decision")
    assert final.select("decision", "reason", "decided_at").rows() == [
        ("exited", "merged_into_identified_shopper", at(31)),
        ("send", "all policies passed", at(60)),
    ]
    assert final["trigger_id"].to_list()[0] == guest[0]
    assert _profile(shop, at(60)) == (IMPLICIT_CART, ["p1", "p2"])
    assert _lines(shop, _sends(shop)[-1]["trigger_id"], at(61)) == ["P1", "P2"]
    _exactly_once(shop)


def test_a_guests_implicit_cart_due_before_login_is_followed_by_a_change_not_by_the_login() -> None:
    """As a named cart: the guest's cart falls due while anonymous (`no_address`); logging in alone starts
    nothing, adding to the cart after the login starts the instance that is sent."""
    for change, expected in ((False, ["no_address"]), (True, ["no_address", "send"])):
        shop = _shop()
        shop.land(_cart("Product Added", 0, "p1", user=None, anon="a1"))
        _runs(shop, 1, 61)
        login = [spec_message("identify", at(120), user="u1", anon="a1")]
        shop.land(*login, *([_cart("Product Added", 121, "p2", user=None, anon="a1")] if change else []))
        _runs(shop, 122, 181, 300, DAY)
        assert [d for _, d, _, _ in _terminal(shop)] == expected, change
        _exactly_once(shop)
        if change:
            assert _lines(shop, _sends(shop)[0]["trigger_id"], at(182)) == ["P1", "P2"]


def test_mixed_use_a_removal_naming_no_cart_leaves_the_named_cart_the_shoppers() -> None:
    """A shop naming its carts on adds only: a `Product Removed` without cart_id is no cart of its own,
    so c1 stays Ann's cart and its email goes. Adds naming no cart after c1 make the implicit cart the
    one she changed last: c1 exits `cart_changed` when due, the implicit cart's email goes."""
    named: dict[str, Any] = {"cart_id": "c1", **_product("p1")}
    shop = _shop()
    shop.land(spec_message("Product Added", at(0), user="u1", **named), _cart("Product Removed", 5, "p9"))
    _runs(shop, 6, 65, 2 * 60)
    assert [(a, d) for a, d, _, _ in _terminal(shop)] == [("c1", "send")]
    assert _profile(shop, at(65)) == ("c1", ["p1"])
    mixed = _shop()
    mixed.land(spec_message("Product Added", at(0), user="u1", **named), _cart("Product Added", 5, "p2"))
    _runs(mixed, 6, 60, 65, 2 * 60)
    assert [(a, d, r) for a, d, r, _ in _terminal(mixed)] == [
        ("c1", "exited", "cart_changed"),
        (IMPLICIT_CART, "send", "all policies passed"),
    ]
    assert _profile(mixed, at(65)) == (IMPLICIT_CART, ["p2"])


def test_a_named_cart_reused_after_its_email_and_its_order_is_a_new_cart() -> None:
    """The implicit cart's rule holds for a cart id the shop keeps: c1 is sent, ordered (the order names
    it), filled again on day 8: a second email, showing only the new line."""
    shop = _shop()
    add: dict[str, Any] = {"cart_id": "c1", **_product("p1")}
    shop.land(spec_message("Product Added", at(0), user="u1", **add))
    _runs(shop, 1, 60)
    shop.land(spec_message("Order Completed", at(DAY), user="u1", cart_id="c1", order_id="o1"))
    shop.land(spec_message("Product Added", at(8 * DAY), user="u1", **{**add, **_product("p2")}))
    _runs(shop, DAY + 1, 8 * DAY + 1, 8 * DAY + 60, 9 * DAY)
    assert [(a, d) for a, d, _, _ in _terminal(shop)] == [("c1", "send"), ("c1", "send")]
    assert _lines(shop, _sends(shop)[1]["trigger_id"], at(8 * DAY + 61)) == ["P2"]
    _exactly_once(shop)


def test_an_abandoned_checkout_takes_precedence_over_the_implicit_cart() -> None:
    """Ann adds p1 and starts a checkout (spec-shaped: order_id, no cart_id): the checkout email goes, the
    cart's instance exits for it."""
    shop = _shop()
    started: dict[str, Any] = {"order_id": "o1", "revenue": 20.0, "products": [_product("p1")]}
    shop.land(_cart("Product Added", 0, "p1"), spec_message("Checkout Started", at(10), user="u1", **started))
    _runs(shop, 11, 45, 70, 2 * 60)
    final = shop.log.filter(~pl.col("decision").is_in(PENDING_DECISIONS) & (pl.col("kind") != "welcome"))
    assert sorted(final.select("kind", "decision", "reason").rows()) == [
        ("abandoned_cart", "exited", "abandoned_checkout_takes_precedence"),
        ("abandoned_checkout", "send", "all policies passed"),
    ]


def test_an_evaluation_places_the_checkouts_in_their_carts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cart rules read the carts' state (checkouts naming no cart placed) in four steps: derived once
    an evaluation, not in each (a quarter of the engine's time, #17). The decisions are the same."""
    placed_states: list[pl.DataFrame] = []
    placed = carts_rules.checkout_carts

    def counted(state: pl.DataFrame, principal: str) -> pl.DataFrame:
        placed_states.append(state)
        return placed(state, principal)

    monkeypatch.setattr(carts_rules, "checkout_carts", counted)
    shop = _shop()
    shop.land(_cart("Product Added", 0, "p1"), _cart("Product Added", 5, "p2"))
    shop.run(at(11))
    first = len(placed_states)
    shop.run(at(70))  # the cart's instance is due: candidates, exit reasons and refills all read the carts
    assert len(placed_states) - first == 1, len(placed_states) - first
    assert not any(a is b for i, a in enumerate(placed_states) for b in placed_states[i + 1 :])
    assert _terminal(shop) == [(IMPLICIT_CART, "send", "all policies passed", at(70))]

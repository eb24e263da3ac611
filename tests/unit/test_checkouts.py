"""Spec-shaped checkouts (no `cart_id`): the profile state's `checkouts` list
(transforms/profiles/checkouts.py) and what abandoned_checkout decides on it."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.story import Shop, at, spec_message
from tests.unit.test_stories import SPEC_PRODUCT, WELCOME, signup, spec_add, spec_order
from transforms.profiles.checkouts import checkout_partials, merge_checkouts
from transforms.profiles.derive import derive
from transforms.profiles.partials import principal


def checkout(minutes: float, user: str | None = "u1", anon: str | None = None, **ids: Any) -> dict:
    """A spec-shaped `Checkout Started` (the spec's example carries `order_id`; no `cart_id`)."""
    fields = {"value": 40.0, "revenue": 40.0, "currency": "EUR", "products": [SPEC_PRODUCT], **ids}
    return spec_message("Checkout Started", at(minutes), user=user, anon=anon, **fields)


def decided(shop: Shop, kind: str) -> list[tuple[str, str]]:
    final = shop.log.filter((pl.col("kind") == kind) & ~pl.col("decision").is_in(["held"]))
    return final.select("decision", "reason").rows()


def test_spec_shaped_checkout_abandoner_gets_the_checkout_email_not_the_cart_one() -> None:
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0), checkout(10, order_id="o1"))
    shop.run(at(20))
    assert decided(shop, "abandoned_cart") == [("exited", "abandoned_checkout_takes_precedence")]
    assert shop.run(at(39)).height == 0
    shop.run(at(40))
    assert decided(shop, "abandoned_checkout") == [("send", "all policies passed")]
    shop.run(at(3 * 60))
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_checkout", "u1", "send"),
        ("abandoned_cart", "u1", "exited"),
    }


def test_spec_shaped_buyer_gets_neither_email() -> None:
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0), checkout(10, order_id="o1"), spec_order(20, order_id="o1"))
    shop.run(at(3 * 60))
    assert decided(shop, "abandoned_checkout") == [("exited", "order_completed")]
    assert decided(shop, "abandoned_cart") == [("exited", "order_completed")]


@pytest.mark.parametrize(
    ("started", "ordered", "exits"),
    [
        ({"order_id": "o1"}, {"order_id": "o1", "checkout_id": None}, True),
        ({"checkout_id": "k1"}, {"order_id": "o7", "checkout_id": "k1"}, True),
        ({"order_id": "o1", "checkout_id": "k1"}, {"order_id": "o-other", "checkout_id": "k-other"}, False),
    ],
)
def test_an_order_naming_the_checkout_exits_it_even_when_its_clock_says_before(
    started: dict[str, str], ordered: dict[str, Any], exits: bool
) -> None:
    """The order's event time is before the checkout's start (two devices' clocks): the ids still match,
    by order_id or by checkout_id (the order state keeps both)."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(checkout(10, **started), spec_order(8, **ordered))
    shop.run(at(60))
    expected = ("exited", "order_completed") if exits else ("send", "all policies passed")
    assert decided(shop, "abandoned_checkout") == [expected]


def test_orders_without_an_order_id_still_count_and_exit_the_cart_and_the_checkout() -> None:
    """Two orders that carry no id at all (each its own order, keyed by its message), after a cart and a
    checkout that named nothing either: no email, and two orders on the profile."""
    shop = Shop()
    signup(shop, "u1")
    anonymous_order: dict[str, Any] = {"order_id": None, "checkout_id": None}
    shop.land(spec_add(0), checkout(10), spec_order(20, **anonymous_order), spec_order(25, **anonymous_order))
    shop.run(at(3 * 60))
    assert decided(shop, "abandoned_checkout") == [("exited", "order_completed")]
    assert decided(shop, "abandoned_cart") == [("exited", "order_completed")]
    profile = derive(shop.state(), shop.customers, at(3 * 60)).row(0, named=True)
    assert (profile["order_count"], profile["lifetime_value"], profile["last_order_at"]) == (2, 80.0, at(25))


@pytest.mark.parametrize("cart_id", [None, "c1"])
def test_last_checkout_at_counts_checkouts_with_or_without_their_cart(cart_id: str | None) -> None:
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0), checkout(10, order_id="o1", cart_id=cart_id), checkout(12, user="u2"))
    [profile] = (
        derive(shop.state(), shop.customers, at(20)).filter(pl.col("user_id") == "u1").rows(named=True)
    )
    assert profile["last_checkout_at"] == at(10)


def test_an_anonymous_checkout_exits_on_the_order_after_login() -> None:
    shop = Shop()
    signup(shop, "u1")
    shop.land(checkout(0, user=None, anon="a1", checkout_id="k1"))
    shop.run(at(5))
    shop.land(spec_message("identify", at(10), user="u1", anon="a1"), spec_order(15, order_id="o9"))
    shop.run(at(60))
    assert decided(shop, "abandoned_checkout") == [("exited", "order_completed")]


def test_a_restarted_checkout_without_ids_restarts_the_timer() -> None:
    """No id at all: each start is its own checkout, and a later one supersedes it: one email, 30 min
    after the last start."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(checkout(10))
    shop.run(at(15))
    shop.land(checkout(25))
    shop.run(at(40))
    assert decided(shop, "abandoned_checkout") == [("exited", "checkout_restarted")]
    shop.run(at(55))
    assert decided(shop, "abandoned_checkout") == [
        ("exited", "checkout_restarted"),
        ("send", "all policies passed"),
    ]


class FoldedBeforeTheList(Shop):
    """A state folded before the `checkouts` list existed: the list reads empty, the carts have it all."""

    def state(self) -> pl.DataFrame:
        return super().state().with_columns(pl.col("checkouts").list.head(0))


def test_a_checkout_with_cart_id_keeps_the_cart_as_its_anchor() -> None:
    """A shop that adds `cart_id` (the simulator does): the cart is the anchor, and a state folded before
    the list existed decides the same."""
    with_list, before = Shop(), FoldedBeforeTheList()
    for shop in (with_list, before):
        signup(shop, "u1")
        shop.land(spec_add(0), checkout(10, cart_id="c1", checkout_id="k1"))
        shop.run(at(20))
        shop.run(at(40))
    columns = ["trigger_id", "kind", "anchor", "decision", "reason", "due_at"]
    assert_frame_equal(with_list.log.select(columns), before.log.select(columns))
    checkouts = with_list.log.filter(pl.col("kind") == "abandoned_checkout")
    assert checkouts.select("anchor", "decision").rows() == [("c1", "held"), ("c1", "send")]


def test_checkout_partials_merge_in_any_order() -> None:
    shop = Shop()
    shop.land(checkout(0, cart_id="c1", order_id="o1"), checkout(5, user="u2", checkout_id="k2"))
    shop.land(checkout(20, cart_id="c1", checkout_id="k1"), checkout(30))
    assert shop.events is not None
    ev = shop.events.with_columns(principal().alias("principal"))
    whole = checkout_partials(ev)
    halves = [checkout_partials(b) for b in ev.partition_by("batch_id")]

    def tidy(frame: pl.DataFrame) -> pl.DataFrame:
        rows = frame.explode("checkouts").unnest("checkouts")
        return rows.sort("principal", "checkout_key")

    for order in (halves, halves[::-1]):
        assert_frame_equal(tidy(merge_checkouts(pl.concat(order))), tidy(whole))
    keyed = tidy(whole).select("principal", "checkout_key", "checkout_id", "order_id", "started_at")
    assert keyed.filter(pl.col("checkout_key") == "c1").rows() == [("u1", "c1", "k1", "o1", at(20))]
    assert keyed.filter(pl.col("principal") == "u2").rows() == [("u2", "k2", "k2", None, at(5))]
    assert keyed["checkout_key"].str.starts_with("msg:").sum() == 1  # the start without any id

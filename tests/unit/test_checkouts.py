"""Spec-shaped checkouts (no `cart_id`) over the `checkouts` state of transforms/triggers/checkouts.py.

The profile state does not carry `checkouts` yet; `CheckoutShop` adds it to the golden-story shop the
way the profile fold will (`checkout_partials` per batch, resolved, `merge_checkouts`), so these
stories show what abandoned_checkout decides once it does. Without the list the rules fall back to
the carts (tests/unit/test_stories.py).
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.story import Shop, at, spec_message
from tests.unit.test_stories import SPEC_PRODUCT, WELCOME, signup, spec_add, spec_order
from transforms.profiles.merge import resolve
from transforms.profiles.partials import principal
from transforms.triggers.checkouts import CHECKOUT_STATE, checkout_partials, merge_checkouts


class CheckoutShop(Shop):
    """The story shop with the state's `checkouts` list, as the profile fold will keep it."""

    def state(self) -> pl.DataFrame:
        assert self.events is not None
        batches = self.events.with_columns(principal().alias("principal")).partition_by("batch_id")
        parts = resolve(pl.concat([checkout_partials(b) for b in batches]), self.identities())
        merged = merge_checkouts(parts)
        return (
            super()
            .state()
            .join(merged, on="principal", how="left")
            .with_columns(pl.col("checkouts").fill_null(pl.lit([], dtype=pl.List(CHECKOUT_STATE))))
        )


def checkout(minutes: float, user: str | None = "u1", anon: str | None = None, **ids: Any) -> dict:
    """A spec-shaped `Checkout Started` (the spec's example carries `order_id`; no `cart_id`)."""
    fields = {"value": 40.0, "revenue": 40.0, "currency": "EUR", "products": [SPEC_PRODUCT], **ids}
    return spec_message("Checkout Started", at(minutes), user=user, anon=anon, **fields)


def decided(shop: Shop, kind: str) -> list[tuple[str, str]]:
    final = shop.log.filter((pl.col("kind") == kind) & ~pl.col("decision").is_in(["held"]))
    return final.select("decision", "reason").rows()


def test_spec_shaped_checkout_abandoner_gets_the_checkout_email_not_the_cart_one() -> None:
    shop = CheckoutShop()
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
    shop = CheckoutShop()
    signup(shop, "u1")
    shop.land(spec_add(0), checkout(10, order_id="o1"), spec_order(20, order_id="o1"))
    shop.run(at(3 * 60))
    assert decided(shop, "abandoned_checkout") == [("exited", "order_completed")]
    assert decided(shop, "abandoned_cart") == [("exited", "order_completed")]


@pytest.mark.parametrize(("order_id", "exits"), [("o1", True), ("o-other", False)])
def test_an_order_naming_the_checkout_exits_it_even_when_its_clock_says_before(
    order_id: str, exits: bool
) -> None:
    """The order's event time is before the checkout's start (two devices' clocks): the ids still match."""
    shop = CheckoutShop()
    signup(shop, "u1")
    shop.land(checkout(10, order_id="o1"), spec_order(8, order_id=order_id))
    shop.run(at(60))
    expected = ("exited", "order_completed") if exits else ("send", "all policies passed")
    assert decided(shop, "abandoned_checkout") == [expected]


def test_an_anonymous_checkout_exits_on_the_order_after_login() -> None:
    shop = CheckoutShop()
    signup(shop, "u1")
    shop.land(checkout(0, user=None, anon="a1", checkout_id="k1"))
    shop.run(at(5))
    shop.land(spec_message("identify", at(10), user="u1", anon="a1"), spec_order(15, order_id="o9"))
    shop.run(at(60))
    assert decided(shop, "abandoned_checkout") == [("exited", "order_completed")]


def test_a_restarted_checkout_without_ids_restarts_the_timer() -> None:
    """No id at all: each start is its own checkout, and a later one supersedes it: one email, 30 min
    after the last start."""
    shop = CheckoutShop()
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


def test_a_checkout_with_cart_id_keeps_the_cart_as_its_anchor() -> None:
    """A shop that adds `cart_id` (the simulator does): the same trigger as before the list existed."""
    with_list, without = CheckoutShop(), Shop()
    for shop in (with_list, without):
        signup(shop, "u1")
        shop.land(spec_add(0), checkout(10, cart_id="c1", checkout_id="k1"))
        shop.run(at(40))
    columns = ["trigger_id", "kind", "anchor", "decision", "reason", "due_at"]
    assert_frame_equal(with_list.log.select(columns), without.log.select(columns))


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

"""Two shoppers sharing a cart id (one device, two accounts): cart and checkout trigger ids are keyed by
the anchor alone, so both shoppers' states propose the same id. It names one email and gets one decision
(the decide-store property found two terminal rows of one id in one engine run, #15)."""

from __future__ import annotations

from typing import Any

import polars as pl

from tests.story import Shop, at, message
from transforms.schema import PENDING_DECISIONS

DAY = 24 * 60


def _person(user: str) -> dict[str, Any]:
    return {"user": user, "email": f"{user}@example.com", "marketing_consent": True}


def _added(minutes: float, user: str) -> dict:
    return message("Product Added", at(minutes), user=user, product_id="p1", price=10.0, cart_id="c-shared")


def _shop(*messages: dict) -> Shop:
    """u1 and u2 signed up three days ago (their welcome emails went out then), then `messages`."""
    shop = Shop()
    shop.land(
        message("identify", at(-3 * DAY), **_person("u1")), message("identify", at(-3 * DAY), **_person("u2"))
    )
    shop.run(at(-3 * DAY + 1))
    shop.land(*messages)
    return shop


def _one_row_per_id_and_run(log: pl.DataFrame) -> None:
    """Each engine run logs at most one row of a trigger id, and a trigger id gets one terminal decision."""
    assert log.group_by("decided_at", "trigger_id").len().filter(pl.col("len") > 1).height == 0, log
    terminal = log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert terminal["trigger_id"].is_unique().all(), terminal


def test_a_shared_cart_gets_one_decision_for_the_shopper_who_changed_it_last() -> None:
    shop = _shop(_added(-180, "u1"), _added(-150, "u2"))
    shop.run(at(-120))  # both carts pending (due an hour after their last change)
    shop.run(at(0))
    _one_row_per_id_and_run(shop.log)
    carts = shop.log.filter(pl.col("kind") == "abandoned_cart")
    assert carts["trigger_id"].n_unique() == 1
    assert set(carts["principal"]) == {"u2"}
    sent = carts.filter(pl.col("decision") == "send")
    assert sent.select("user_id", "anchor").rows() == [("u2", "c-shared")]


def test_a_shared_checkout_gets_one_decision() -> None:
    checkout = [
        message("Checkout Started", at(m), user=u, cart_id="c-shared")
        for m, u in ((-170, "u1"), (-160, "u2"))
    ]
    shop = _shop(_added(-180, "u1"), _added(-175, "u2"), *checkout)
    shop.run(at(0))
    _one_row_per_id_and_run(shop.log)
    checkouts = shop.log.filter(pl.col("kind") == "abandoned_checkout")
    assert checkouts.select("principal", "decision").rows() == [("u2", "send")]

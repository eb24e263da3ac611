"""Properties of the trigger engine over a fixed, realistic set of events.

1. Order does not matter: however the events arrive (any interleaving into batches, messages repeated
   with the same messageId in the same or other batches, late events landing after later ones), once
   everything has landed the derived profiles and the decisions at a given time are those of landing
   everything in order in one batch.
2. Exactly once: however often the engine runs afterwards, a trigger gets at most one terminal decision,
   and so at most one `send`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tests.story import Shop, at, message
from transforms.profiles.derive import derive
from transforms.schema import PENDING_DECISIONS

DAY = 24 * 60
NOW = at(0)  # Friday 12:00 UTC: some candidates due, some held, some deferred for the night in Tokyo


def _events() -> list[dict]:
    """A morning in the shop, with fixed message ids (a repeat of one is the same message)."""
    count = iter(range(1000))

    def msg(kind: str, minutes: float, **fields: Any) -> dict:
        return message(kind, at(minutes), message_id=f"e-{next(count):03d}", **fields)

    def person(user: str, **traits: Any) -> dict[str, Any]:
        return {"user": user, "email": f"{user}@example.com", **traits}

    def product(pid: str, cart: str | None = None, **more: Any) -> dict[str, Any]:
        return {"product_id": pid, "category": "shirts", "price": 40.0, "cart_id": cart, **more}

    bought = [{"product_id": "p1", "category": "shirts"}, {"product_id": "p2", "category": "socks"}]
    return [
        # u1 signed up long ago, browses, fills cart c1, starts checkout, orders; then starts cart c1b.
        msg("identify", -3 * DAY, **person("u1", marketing_consent=True, first_name="Ann")),
        msg("Product Viewed", -300, user="u1", **product("p1")),
        msg("Product Viewed", -295, user="u1", **product("p1")),
        msg("Product Added", -290, user="u1", **product("p1", "c1", quantity=2)),
        msg("Product Added", -285, user="u1", **product("p2", "c1", price=9.5)),
        msg("Product Removed", -280, user="u1", **product("p1", "c1", quantity=1)),
        msg("Checkout Started", -270, user="u1", cart_id="c1"),
        msg("Order Completed", -260, user="u1", cart_id="c1", order_id="o1", revenue=49.5, products=bought),
        msg("Product Added", -100, user="u1", **product("p3", "c1b")),
        msg("identify", -90, user="u1", first_name="Annie"),
        # u2 signs up this morning (welcome), browses p4 twice, leaves a cart, checks out another.
        msg("identify", -240, **person("u2", marketing_consent=True)),
        msg("Product Viewed", -230, user="u2", **product("p4")),
        msg("Product Viewed", -200, user="u2", **product("p4")),
        msg("Product Added", -150, user="u2", **product("p5", "c2")),
        msg("Product Added", -45, user="u2", **product("p6", "c2b")),
        msg("Checkout Started", -40, user="u2", cart_id="c2b"),
        # u3 in Tokyo (21:00 now), no consent at first, then consents; a cart due at night.
        msg("identify", -2 * DAY, **person("u3", marketing_consent=False, timezone="Asia/Tokyo")),
        msg("identify", -120, user="u3", marketing_consent=True),
        msg("Product Added", -65, user="u3", **product("p1", "c3")),
        # A guest (a9) fills a cart, later logs in as u4 (welcome), orders another cart twice (retry).
        msg("Product Viewed", -400, anon="a9", **product("p7")),
        msg("Product Added", -390, anon="a9", **product("p7", "c9")),
        msg("identify", -20, anon="a9", **person("u4", marketing_consent=True)),
        msg("Order Completed", -3 * DAY - 60, user="u4", cart_id="c4", order_id="o4", revenue=20.0),
        msg("Order Completed", -3 * DAY - 59, user="u4", cart_id="c4", order_id="o4", revenue=20.0),
        # u5: an old order (post_purchase due now), unsubscribes; a cart emptied again.
        msg("identify", -5 * DAY, **person("u5", marketing_consent=True)),
        msg("Order Completed", -3 * DAY - 30, user="u5", order_id="o5", revenue=80.0, products=bought),
        msg("Product Added", -80, user="u5", **product("p2", "c5")),
        msg("Product Removed", -70, user="u5", **product("p2", "c5")),
        msg("Unsubscribed", -10, user="u5"),
        # u1 sends the socks of o1 back (a partial refund naming its product); u4 cancels o4.
        msg("Order Refunded", -200, user="u1", order_id="o1", products=[{"product_id": "p2", "price": 9.5}]),
        msg("Order Cancelled", -3 * DAY, user="u4", order_id="o4", revenue=20.0),
    ]


EVENTS = _events()
IN_ORDER = sorted(range(len(EVENTS)), key=lambda i: (EVENTS[i]["timestamp"], i))


def _shop(batches: list[list[int]]) -> Shop:
    shop = Shop()
    shop.set_product("p7", at(-10 * DAY), price=30.0, stock=0)
    for batch in batches:
        shop.land(*(EVENTS[i] for i in batch))
    shop.set_product("p7", at(-5), price=30.0, stock=4)  # back in stock for the guest turned u4
    return shop


def outcome(batches: list[list[int]], now: datetime = NOW) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Derived profiles and the engine's decisions at `now` once every batch has landed."""
    shop = _shop(batches)
    profiles = derive(shop.state(), shop.customers, now)
    decisions = shop.run(now).drop("batch_id").sort("trigger_id")  # batch_id counts the batches
    return profiles, decisions


@cache
def reference(now: datetime = NOW) -> tuple[pl.DataFrame, pl.DataFrame]:
    return outcome([IN_ORDER], now)


def test_reference_outcome_is_rich() -> None:
    """The fixed events exercise most rules and policies (else the property below proves little)."""
    profiles, decisions = reference()
    assert profiles["user_id"].to_list() == ["u1", "u2", "u3", "u4", "u5"]
    assert profiles.filter(pl.col("user_id") == "u4")["order_count"].to_list() == [1]
    assert profiles.select("lifetime_value").to_series().to_list() == [40.0, 0.0, 0.0, 0.0, 80.0]
    assert ("post_purchase", "exited", "order_cancelled") in set(
        decisions.select("kind", "decision", "reason").iter_rows()
    )
    assert set(decisions["kind"]) >= {"welcome", "abandoned_cart", "abandoned_checkout", "post_purchase"}
    assert set(decisions["decision"]) >= {"send", "held", "exited", "quiet_hours_deferred", "suppressed"}


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[int]]:
    """Every event at least once, some repeated, in any order, cut into batches of random sizes."""
    repeats = draw(st.lists(st.sampled_from(range(len(EVENTS))), max_size=10))
    order = draw(st.permutations([*range(len(EVENTS)), *repeats]))
    cuts = sorted(draw(st.sets(st.integers(1, len(order) - 1), max_size=8)))
    return [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]


@pytest.mark.deep
@settings(max_examples=25, deadline=None)
@given(deliveries(), st.sampled_from([NOW, at(90), at(3 * DAY)]))
def test_any_delivery_gives_the_same_profiles_and_decisions(batches: list[list[int]], now: datetime) -> None:
    profiles, decisions = outcome(batches, now)
    expected_profiles, expected_decisions = reference(now)
    assert_frame_equal(profiles, expected_profiles)
    assert_frame_equal(decisions, expected_decisions)


def _assert_exactly_once(log: pl.DataFrame) -> None:
    terminal = log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    per_trigger = terminal.group_by("trigger_id").agg(
        pl.len().alias("terminal"), (pl.col("decision") == "send").sum().alias("sends")
    )
    assert per_trigger.filter((pl.col("terminal") > 1) | (pl.col("sends") > 1)).height == 0, terminal


def test_repeated_runs_decide_each_trigger_once() -> None:
    """The engine runs 10 more times, every 7 hours after everything is due: nothing is decided twice."""
    shop = _shop([IN_ORDER])
    shop.run(NOW)
    for step in range(1, 11):
        shop.run(NOW + timedelta(days=3, hours=7 * step))
    _assert_exactly_once(shop.log)
    sends = shop.log.filter(pl.col("decision") == "send")
    assert set(sends.select("kind", "user_id", "anchor").iter_rows()) == {
        ("welcome", "u2", None),
        ("welcome", "u4", None),
        ("abandoned_cart", "u1", "c1b"),
        ("post_purchase", "u1", "o1"),
    }
    latest = shop.log.unique("trigger_id", keep="last", maintain_order=True)
    assert latest.filter(pl.col("decision").is_in(PENDING_DECISIONS)).height == 0


@pytest.mark.deep
@settings(max_examples=10, deadline=None)
@given(deliveries(), st.lists(st.integers(1, 12 * 60), min_size=10, max_size=10))
def test_runs_at_any_later_times_decide_each_trigger_once(batches: list[list[int]], gaps: list[int]) -> None:
    """Any delivery, then 10 runs at increasing times (gaps of up to 12 h): nothing is decided twice."""
    shop = _shop(batches)
    when = NOW
    for gap in gaps:
        shop.run(when)
        when += timedelta(minutes=gap)
    shop.run(NOW + timedelta(days=6))  # after everything is due (post_purchase: 3 days)
    _assert_exactly_once(shop.log)
    latest = shop.log.unique("trigger_id", keep="last", maintain_order=True)
    assert latest.filter(pl.col("decision").is_in(PENDING_DECISIONS)).height == 0

"""The trigger engine decides from the state store (#15): a live store (engine runs committing to it) and
a store rebuilt from the lake give the same decisions, and the live one equals what the lake implies."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resources.state import StateResource
from stores.decide.sync import DECISION_NAMESPACES
from stores.state.rebuild import check, rebuild
from stores.triggers import engine_world, run_snapshot
from tests.lake.decide_examples import UNSUBSCRIBED_ABANDONER
from tests.lake.decide_harness import POLICY, SECRET, Shop, csv, sorted_rows
from tests.story import message
from transforms.schema import PENDING_DECISIONS
from transforms.triggers.decide import evaluate

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
USERS = ("u1", "u2", "u3")
ANONS = ("a1", "a2", "a3")
PRODUCTS = ("p1", "p2")
ZONES = (None, "Asia/Tokyo", "America/New_York")


@st.composite
def an_event(draw: st.DrawFn, when: datetime) -> dict:
    user = draw(st.sampled_from((*USERS, None)))
    anon = draw(st.sampled_from((*ANONS, None))) if user is None or draw(st.booleans()) else None
    if user is None and anon is None:
        anon = "a1"
    kind = draw(st.sampled_from(("identify", "view", "view", "add", "remove", "checkout", "order", "unsub")))
    product = draw(st.sampled_from(PRODUCTS))
    cart = draw(st.sampled_from(("c1", "c2")))
    if kind == "identify" or (user is None and kind == "unsub"):
        who = user or draw(st.sampled_from(USERS))
        traits: dict[str, Any] = {
            "email": f"{who}@example.com",
            "marketing_consent": draw(st.sampled_from((True, True, False))),
        }
        if zone := draw(st.sampled_from(ZONES)):
            traits["timezone"] = zone
        return message("identify", when, user=who, anon=anon, **traits)
    names = {"view": "Product Viewed", "add": "Product Added", "remove": "Product Removed"}
    if kind in names:
        fields = {"product_id": product, "cart_id": cart, "price": 10.0, "quantity": 1}
        return message(names[kind], when, user=user, anon=anon, **fields)
    if kind == "checkout":
        return message("Checkout Started", when, user=user, anon=anon, cart_id=cart)
    if kind == "order":
        order = f"o-{cart}-{when.timestamp():.0f}"
        lines = draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3))  # in any order, repeated
        bought = [{"product_id": p} for p in lines]
        fields = {"cart_id": cart, "order_id": order, "revenue": 10.0, "products": bought}
        return message("Order Completed", when, user=user, anon=anon, **fields)
    return message("Unsubscribed", when, user=user)


@st.composite
def a_step(draw: st.DrawFn, start: datetime) -> tuple[list[dict], str | None, datetime]:
    """A batch of events (and perhaps a catalog feed) from `start`, and the engine run's `now`."""
    offsets = draw(st.lists(st.integers(0, 90), min_size=1, max_size=10))
    events = [draw(an_event(start + timedelta(minutes=m))) for m in sorted(offsets)]
    feed = None
    if draw(st.booleans()):
        rows = [(p, draw(st.sampled_from((8.0, 10.0))), draw(st.sampled_from((0, 5)))) for p in PRODUCTS]
        feed = csv(rows, start + timedelta(minutes=91))
    now = start + timedelta(minutes=95 + draw(st.integers(0, 26 * 60)))
    return events, feed, now


@st.composite
def a_history(draw: st.DrawFn) -> list[tuple[list[dict], str | None, datetime]]:
    steps = []
    start = START
    for _ in range(draw(st.integers(2, 4))):
        events, feed, now = draw(a_step(start))
        steps.append((events, feed, now))
        start = now
    return steps


def decision_lane_equal(shop: Shop) -> dict[str, str]:
    """The decision lane's namespaces that differ between the live store and the lake (none expected)."""
    report = check(shop.lake, shop.state)
    assert report.store_stamps == report.lake_stamps
    return {n: str(d) for n, d in report.namespaces.items() if n in DECISION_NAMESPACES and not d.equal}


def decided_twice(shop: Shop) -> list[str]:
    """Trigger ids with more than one terminal decision in the lake's log (exactly once: none)."""
    terminal = shop.log().filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    return terminal.filter(pl.col("trigger_id").is_duplicated())["trigger_id"].unique().to_list()


@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(history=a_history())
@example(history=UNSUBSCRIBED_ABANDONER)
def test_a_live_store_and_a_rebuilt_one_decide_the_same(history: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        shop = Shop(Path(folder) / "shop")
        rebuilt = StateResource(uri=str(Path(folder) / "rebuilt"))
        for step, (events, feed, now) in enumerate(history):
            shop.batch(f"b{step}", events, now, catalog=feed)
            shop.engine(now - timedelta(minutes=1))  # the batch's own run, then a later one
            live = shop.decide(now).rows
            rebuild(shop.lake, rebuilt)
            assert sorted_rows(shop.decide(now, rebuilt).rows).equals(sorted_rows(live))
            assert sorted_rows(shop.engine(now).rows).equals(sorted_rows(live))
            assert decided_twice(shop) == []
            assert decision_lane_equal(shop) == {}


def test_a_post_purchase_decision_notes_its_orders_products_alike_from_the_store_and_the_lake() -> None:
    """The engine decides from the store; `lakemail replay` decides again from the lake (`engine_world`):
    the same `detail`, the order's products in the order's own order, each once."""
    with tempfile.TemporaryDirectory() as folder:
        shop = Shop(Path(folder) / "shop")
        bought = [{"product_id": p} for p in ("p2", "p1", "p2")]
        events = [
            message("identify", START, user="u1", email="u1@example.com", marketing_consent=True),
            message("Order Completed", START, user="u1", order_id="o1", products=bought),
        ]
        now = START + timedelta(minutes=5)
        shop.batch("b0", events, now)
        report = shop.engine(now)
        seen = run_snapshot(shop.lake, report.evaluation)
        assert seen is not None
        world = engine_world(seen, now=now, secret=SECRET, policy=POLICY, evaluation=report.evaluation)

        def detail(rows: pl.DataFrame) -> list[str | None]:
            return rows.filter(pl.col("kind") == "post_purchase")["detail"].to_list()

        assert detail(report.rows) == detail(evaluate(world)) == ['{"products":["p2","p1"]}']


def test_a_checkout_of_a_cart_left_for_another_exits_alike_from_the_store_and_the_lake() -> None:
    """u1 starts checkout on c1 and then fills c2: when due, the engine (from the store) and a replay's
    `engine_world` (from the lake) both withdraw the checkout `cart_changed`, so no send decision takes
    the frequency cap, and c2's cart email goes out when it is due."""
    with tempfile.TemporaryDirectory() as folder:
        shop = Shop(Path(folder) / "shop")
        signup = START - timedelta(days=3)  # the welcome email: long before
        identify = message("identify", signup, user="u1", email="u1@example.com", marketing_consent=True)
        shop.batch("b0", [identify], signup)
        shop.engine(signup)
        added: dict[str, Any] = {"product_id": "p1", "price": 10.0, "quantity": 1}
        events = [
            message("Product Added", START, user="u1", cart_id="c1", **added),
            message("Checkout Started", START + timedelta(minutes=10), user="u1", cart_id="c1"),
            message("Product Added", START + timedelta(minutes=20), user="u1", cart_id="c2", **added),
        ]
        shop.batch("b1", events, START + timedelta(minutes=21))
        shop.engine(START + timedelta(minutes=21))
        now = START + timedelta(minutes=40)
        report = shop.engine(now)
        seen = run_snapshot(shop.lake, report.evaluation)
        assert seen is not None
        world = engine_world(seen, now=now, secret=SECRET, policy=POLICY, evaluation=report.evaluation)
        assert sorted_rows(evaluate(world)).equals(sorted_rows(report.rows))
        checkout = report.rows.filter(pl.col("kind") == "abandoned_checkout")
        assert checkout.select("anchor", "decision", "reason").rows() == [("c1", "exited", "cart_changed")]
        later = shop.engine(START + timedelta(minutes=80)).rows
        assert later.select("kind", "anchor", "decision").rows() == [("abandoned_cart", "c2", "send")]

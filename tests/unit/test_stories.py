"""Golden stories: small event stories and the exact decisions the trigger engine takes for them.

Each story lands Segment messages into an in-memory `Shop` (tests/story.py) and runs the engine at
chosen times. Shoppers sign up three days before the story (T0 is Friday 2026-11-20 12:00 UTC), so
their welcome email is out of the way of the frequency cap; stories assert it all the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.story import SECRET, Shop, at, message, spec_message
from transforms.erasure.records import address_key
from transforms.measure.attribution import orders_of
from transforms.profiles.derive import derive
from transforms.profiles.state import canonical
from transforms.triggers.exits import exit_reasons_now
from transforms.triggers.policies import Policy

pytestmark = pytest.mark.story  # many engine runs: `make test` runs it, the fast tier leaves it

DAY = 24 * 60
SIGNUP = at(-3 * DAY)  # Tuesday 12:00 UTC: daytime in UTC, so the welcome goes out at once
WELCOME = ("welcome", "u1", "send")


def signup(
    shop: Shop, *users: str, when: datetime = SIGNUP, consent: bool = True, timezone: str | None = None
) -> None:
    """Each user identifies with an email (and the given consent), then the engine runs."""
    for user in users:
        traits: dict[str, Any] = {"email": f"{user}@example.com", "marketing_consent": consent}
        if timezone is not None:
            traits["timezone"] = timezone
        shop.land(message("identify", when, user=user, **traits))
    shop.run(when)


def add(minutes: float, user: str | None = "u1", cart: str = "c1", product: str = "p1", **more: Any) -> dict:
    fields = {"cart_id": cart, "product_id": product, "price": 40.0, "quantity": 1, **more}
    return message("Product Added", at(minutes), user=user, **fields)


def order(minutes: float, user: str = "u1", cart: str = "c1", order_id: str = "o1", **more: Any) -> dict:
    products = [{"product_id": "p1", "category": "shirts"}]
    fields = {"cart_id": cart, "order_id": order_id, "revenue": 40.0, "products": products, **more}
    return message("Order Completed", at(minutes), user=user, **fields)


def view(minutes: float, user: str | None = "u1", product: str = "p1", anon: str | None = None) -> dict:
    return message("Product Viewed", at(minutes), user=user, anon=anon, product_id=product, category="shirts")


def rows(frame: pl.DataFrame) -> set[tuple[str, str | None, str, str, datetime]]:
    """Log rows as (kind, user_id, decision, reason, due_at)."""
    return set(frame.select("kind", "user_id", "decision", "reason", "due_at").iter_rows())


def said(frame: pl.DataFrame) -> set[tuple[str, str | None, str, str, datetime]]:
    """Log rows as (kind, user_id, decision, reason, decided_at)."""
    return set(frame.select("kind", "user_id", "decision", "reason", "decided_at").iter_rows())


def test_left_cart_gets_one_email_after_the_delay() -> None:
    """Ann puts a shirt in her cart and leaves: held for an hour, then one abandoned_cart email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0))
    assert rows(shop.run(at(30))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(60))}
    assert shop.run(at(59)).height == 0  # nothing new to say a minute before it is due
    assert rows(shop.run(at(60))) == {("abandoned_cart", "u1", "send", "all policies passed", at(60))}
    assert shop.run(at(120)).height == 0
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "send")}


def test_changing_the_cart_restarts_the_timer() -> None:
    """Ann adds a shirt, half an hour later swaps it for socks: the hour counts from the swap."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0))
    assert rows(shop.run(at(10))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(60))}
    shop.land(
        message("Product Removed", at(30), user="u1", cart_id="c1", product_id="p1", quantity=1),
        add(30, product="p2"),
    )
    assert rows(shop.run(at(60))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(90))}
    assert rows(shop.run(at(89))) == set()
    assert rows(shop.run(at(90))) == {("abandoned_cart", "u1", "send", "all policies passed", at(90))}
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "send")}


def test_late_order_cancels_the_cart_email() -> None:
    """Ann orders at 12:40, but the order lands only after the engine has held her cart: no email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0))
    assert rows(shop.run(at(10))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(60))}
    shop.land(order(40))  # event time 12:40, landed after the run at 12:10
    new = shop.run(at(60))
    assert ("abandoned_cart", "u1", "exited", "order_completed", at(60)) in rows(new)
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "exited")}
    assert rows(new.filter(pl.col("kind") == "post_purchase")) == {
        ("post_purchase", "u1", "held", "waiting until due_at", at(40 + 3 * DAY))
    }


def test_the_same_order_twice_counts_once() -> None:
    """The tracker retries an order (same messageId) in the same and a later batch: one order, one email."""
    shop = Shop()
    signup(shop, "u1")
    twice = order(0, message_id="m-order-1")
    shop.land(add(-10), twice, twice)
    shop.land(twice)
    profile = derive(shop.state(), shop.customers, at(10)).row(0, named=True)
    assert (profile["order_count"], profile["lifetime_value"], profile["last_order_at"]) == (1, 40.0, at(0))
    assert rows(shop.run(at(10))) == {
        ("abandoned_cart", "u1", "exited", "order_completed", at(50)),
        ("post_purchase", "u1", "held", "waiting until due_at", at(3 * DAY)),
    }
    assert rows(shop.run(at(3 * DAY))) == {
        ("post_purchase", "u1", "send", "all policies passed", at(3 * DAY))
    }
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_cart", "u1", "exited"),
        ("post_purchase", "u1", "send"),
    }


@pytest.mark.parametrize("blank", ["", " \t"])
def test_orders_whose_order_id_is_blank_go_as_orders_without_one(blank: str) -> None:
    """Regression (found by review): a shopper's orders with `"order_id": ""` (or blanks) were one order,
    keyed by it: the second was not counted, emailed about nor credited to an email. Each is its own, as
    without an order_id: in the state, the profile, the decisions and attribution's orders."""

    def story(**order_id: str) -> tuple[pl.DataFrame, dict[str, Any], set[tuple], list[str]]:
        shop = Shop()
        consent: dict[str, Any] = {"email": "u1@example.com", "marketing_consent": True}
        shop.land(message("identify", SIGNUP, user="u1", message_id="m-signup", **consent))
        shop.run(SIGNUP)
        orders = [("m-o0", at(0), 40.0), ("m-o60", at(60), 25.0)]
        shop.land(
            *[
                message("Order Completed", t, user="u1", message_id=m, revenue=r, **order_id)
                for m, t, r in orders
            ]
        )
        profile = derive(shop.state(), shop.customers, at(3 * DAY)).row(0, named=True)
        assert shop.events is not None
        credited = orders_of(shop.events, shop.identities())["order_event_id"].to_list()
        return canonical(shop.state()), profile, said(shop.run(at(3 * DAY + 60))), credited

    state, profile, decided, credited = story(order_id=blank)
    missing_state, *missing = story()
    assert_frame_equal(state, missing_state)
    assert [profile, decided, credited] == missing
    assert credited == ["m-o0", "m-o60"]
    assert (profile["order_count"], profile["lifetime_value"]) == (2, 65.0)
    assert decided == {
        ("post_purchase", "u1", "send", "all policies passed", at(3 * DAY + 60)),
        ("post_purchase", "u1", "capped", "frequency cap reached", at(3 * DAY + 60)),
    }


def anchored(frame: pl.DataFrame) -> set[tuple[str, str | None, str | None, str, str]]:
    """Log rows as (kind, user_id, anchor, decision, reason)."""
    return set(frame.select("kind", "user_id", "anchor", "decision", "reason").iter_rows())


@pytest.mark.parametrize("blank", ["", " \t"])
def test_carts_whose_cart_id_is_blank_go_as_carts_without_one(blank: str) -> None:
    """Regression (found by review): a cart_id of "" (or blanks) was a cart of that id, and a named cart's
    trigger instance is its id's, whoever carts in it: every shopper's blank cart was one instance, so one
    shopper got the email of all of them. Carts with cart_id "" and `blank` go as carts naming none: each
    shopper's implicit cart, Ann's with both lines, and an email each for Ann and Bob."""

    def story(*cart_ids: str) -> tuple[pl.DataFrame, list[tuple], set[tuple]]:
        shop = Shop()
        signup(shop, "u1", "u2")
        named = [{"cart_id": c} for c in cart_ids] or [{}, {}, {}]
        adds = [("u1", "p1", 0), ("u1", "p2", 5), ("u2", "p3", 10)]
        shop.land(
            *[
                message("Product Added", at(t), user=u, message_id=f"m-{p}", product_id=p, **cart)
                for (u, p, t), cart in zip(adds, named, strict=True)
            ]
        )
        profiles = derive(shop.state(), shop.customers, at(70)).sort("user_id")
        carts = [
            (p["user_id"], p["cart_id"], [i["product_id"] for i in p["cart_items"]])
            for p in profiles.to_dicts()
        ]
        return canonical(shop.state()).sort("principal"), carts, anchored(shop.run(at(70)))

    state, *told = story("", blank, blank)
    missing_state, *missing = story()
    assert told == missing
    assert_frame_equal(state, missing_state)
    assert told == [
        [("u1", "implicit", ["p1", "p2"]), ("u2", "implicit", ["p3"])],
        {
            ("abandoned_cart", "u1", "implicit", "send", "all policies passed"),
            ("abandoned_cart", "u2", "implicit", "send", "all policies passed"),
        },
    ]


@pytest.mark.parametrize("blank", ["", " \t"])
@pytest.mark.parametrize("column", ["checkout_id", "cart_id"])
def test_checkouts_whose_ids_are_blank_go_as_checkouts_without_them(column: str, blank: str) -> None:
    """Regression (found by review): a `Checkout Started` with a checkout_id (or cart_id) of "" or blanks was
    keyed by it: Ann's order of the day before naming the same blank matched her checkout (exited as ordered),
    and a checkout's trigger instance is its key's, so Bob's was Ann's instance, decided already. As without
    the id (PRODUCT.md: the same checkout_id or order_id, else any order by the shopper since): each checkout
    is its own (msg:<messageId>), not ordered by yesterday's order, and Ann and Bob each get the email."""

    def story(**ids: str) -> tuple[pl.DataFrame, set[tuple]]:
        shop = Shop()
        signup(shop, "u1", "u2")
        shop.land(message("Order Completed", at(-DAY), user="u1", message_id="m-o", order_id="o1", **ids))
        shop.land(message("Checkout Started", at(0), user="u1", message_id="m-k1", **ids))
        anns = anchored(shop.run(at(30)))
        shop.land(message("Checkout Started", at(10), user="u2", message_id="m-k2", **ids))
        return canonical(shop.state()).sort("principal"), anns | anchored(shop.run(at(40)))

    state, decided = story(**{column: blank})
    missing_state, missing = story()
    assert decided == missing
    assert_frame_equal(state, missing_state)
    assert decided == {
        ("abandoned_checkout", "u1", "msg:m-k1", "send", "all policies passed"),
        ("abandoned_checkout", "u2", "msg:m-k2", "send", "all policies passed"),
        ("post_purchase", "u1", "o1", "held", "waiting until due_at"),
    }


@pytest.mark.parametrize("blank", ["", " \t"])
def test_products_whose_product_id_is_blank_go_as_products_without_one(blank: str) -> None:
    """Regression (found by review): a product_id of "" (or blanks) was a product: Ann's views of a shirt and
    of socks, both sent with a blank id, were two views of one product, so she got a browse email about a
    product that is none (and it took the frequency cap from her cart email); her recent views and her cart
    line named it. As without a product_id: no view counts, her cart line has none, the cart email goes."""

    def story(**product_id: str) -> tuple[pl.DataFrame, list[Any], set[tuple]]:
        shop = Shop()
        signup(shop, "u1")
        shop.land(
            message("Product Viewed", at(0), user="u1", message_id="m-v0", category="shirts", **product_id),
            message("Product Viewed", at(10), user="u1", message_id="m-v10", category="socks", **product_id),
        )
        browsed = anchored(shop.run(at(130)))
        shop.land(
            message("Product Added", at(140), user="u1", message_id="m-add", cart_id="c1", **product_id)
        )
        profile = derive(shop.state(), shop.customers, at(150)).row(0, named=True)
        seen = [profile["recent_views"], [i["product_id"] for i in profile["cart_items"]]]
        return canonical(shop.state()), seen, browsed | anchored(shop.run(at(200)))

    state, *told = story(product_id=blank)
    missing_state, *missing = story()
    assert told == missing
    assert_frame_equal(state, missing_state)
    assert told == [[[], [None]], {("abandoned_cart", "u1", "c1", "send", "all policies passed")}]


def test_anonymous_cart_follows_the_shopper_after_login() -> None:
    """A guest (anonymous a1) fills a cart, then logs in as Ann: Ann gets the abandoned_cart email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0, user=None, anon="a1"))
    assert rows(shop.run(at(10))) == {("abandoned_cart", None, "held", "waiting until due_at", at(60))}
    shop.land(message("identify", at(20), user="u1", anon="a1"))
    new = shop.run(at(60))
    assert rows(new) == {("abandoned_cart", "u1", "send", "all policies passed", at(60))}
    assert new["principal"].to_list() == ["u1"]
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "send")}


def test_unsubscribed_shopper_is_suppressed() -> None:
    """Ann unsubscribes, then leaves a cart: the decision is `suppressed`, no email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(message("Unsubscribed", at(-60), user="u1"), add(0))
    assert rows(shop.run(at(60))) == {
        ("abandoned_cart", "u1", "suppressed", "user or address in suppressions", at(60))
    }
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "suppressed")}


def test_suppression_added_while_held_is_honoured() -> None:
    """Ann's address is suppressed (a bounce) while her cart email waits: suppressed at due time."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0))
    shop.run(at(30))
    shop.suppressions.add(address_key("U1@example.com ", SECRET))
    assert rows(shop.run(at(60))) == {
        ("abandoned_cart", "u1", "suppressed", "user or address in suppressions", at(60))
    }


def test_no_marketing_consent_no_email() -> None:
    """Bob signs up without marketing consent: neither his welcome nor his cart email goes out (no welcome
    is proposed until he consents: tests/unit/test_welcome_consent.py)."""
    shop = Shop()
    signup(shop, "u2", consent=False)
    shop.land(add(0, user="u2"))
    assert rows(shop.run(at(60))) == {("abandoned_cart", "u2", "no_consent", "no marketing consent", at(60))}
    assert shop.decisions() == {("abandoned_cart", "u2", "no_consent")}


def test_quiet_hours_defer_to_eight_in_the_morning_local_time() -> None:
    """Carts due at night in Tokyo and New York wait until 08:00 local time, then go out."""
    shop = Shop()
    midnight_utc = at(-3 * DAY - 12 * 60)  # 09:00 in Tokyo, 19:00 in New York: both get their welcome
    signup(shop, "tokyo", when=midnight_utc, timezone="Asia/Tokyo")
    signup(shop, "nyc", when=midnight_utc, timezone="America/New_York")
    assert shop.decisions() == {("welcome", "tokyo", "send"), ("welcome", "nyc", "send")}
    # Tokyo (UTC+9): cart 21:00 local, due 22:00 -> 08:00 next morning = 23:00 UTC the same day.
    shop.land(add(0, user="tokyo", cart="ct"))
    deferred = "quiet hours in the user's time zone"
    assert rows(shop.run(at(60))) == {
        ("abandoned_cart", "tokyo", "quiet_hours_deferred", deferred, at(11 * 60))
    }
    assert rows(shop.run(at(5 * 60))) == set()  # still night in Tokyo: nothing new
    assert said(shop.run(at(11 * 60))) == {
        ("abandoned_cart", "tokyo", "send", "all policies passed", at(11 * 60))
    }
    # New York (UTC-5 in November): cart 20:00 local, due 21:00 -> 08:00 the next morning = 13:00 UTC.
    shop.land(add(13 * 60, user="nyc", cart="cn"))
    assert rows(shop.run(at(14 * 60))) == {
        ("abandoned_cart", "nyc", "quiet_hours_deferred", deferred, at(25 * 60))
    }
    assert rows(shop.run(at(25 * 60) - timedelta(seconds=1))) == set()  # 07:59:59 in New York
    assert said(shop.run(at(25 * 60))) == {
        ("abandoned_cart", "nyc", "send", "all policies passed", at(25 * 60))
    }
    assert shop.decisions() == {
        ("welcome", "tokyo", "send"),
        ("welcome", "nyc", "send"),
        ("abandoned_cart", "tokyo", "send"),
        ("abandoned_cart", "nyc", "send"),
    }


def test_second_cart_within_seven_days_is_cooled_down() -> None:
    """Ann leaves a cart on Friday (email) and another on Sunday: the second is in the 7-day cooldown."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0))
    shop.run(at(60))
    shop.land(add(2 * DAY, cart="c2"))
    assert rows(shop.run(at(2 * DAY + 60))) == {
        (
            "abandoned_cart",
            "u1",
            "cooldown",
            "sent this kind to the user within its cooldown",
            at(2 * DAY + 60),
        )
    }
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_cart", "u1", "send"),
        ("abandoned_cart", "u1", "cooldown"),
    }


def test_holdout_is_five_percent_and_stable() -> None:
    """A 5 % holdout by a stable hash: the same users are held out in any shop, run and trigger."""
    users = [f"user-{i:04d}" for i in range(1000)]
    policy = Policy(holdout_rate=0.05)

    def held_out(shop: Shop, kind: str) -> set[str | None]:
        terminal = shop.log.filter((pl.col("kind") == kind) & (pl.col("decision") != "held"))
        assert terminal.height == len(users)
        assert set(terminal["decision"]) == {"send", "holdout"}
        return set(terminal.filter(pl.col("decision") == "holdout")["user_id"])

    first = Shop(policy=policy)
    first.land(
        *(message("identify", at(0), user=u, email=f"{u}@example.com", marketing_consent=True) for u in users)
    )
    first.run(at(0))
    welcome = held_out(first, "welcome")
    assert 0.035 <= len(welcome) / len(users) <= 0.065

    second = Shop(policy=policy)
    backwards = [
        message("identify", SIGNUP, user=u, email=f"{u}@example.com", marketing_consent=True) for u in users
    ]
    for chunk in range(0, len(users), 300):  # other batches, reversed order, another day
        second.land(*reversed(backwards[chunk : chunk + 300]))
    second.run(SIGNUP)
    second.land(*(add(0, user=u, cart=f"cart-{u}") for u in users))
    second.run(at(60))
    assert held_out(second, "welcome") == welcome
    assert held_out(second, "abandoned_cart") == welcome


def test_price_drop_of_ten_percent_reaches_viewers() -> None:
    """Ann viewed a shirt; its price drops 100 -> 90 (10 %): price_drop. A 5 % drop on socks: nothing."""
    shop = Shop()
    signup(shop, "u1")
    shop.set_product("p1", at(-2 * DAY), price=100.0, stock=5)
    shop.set_product("p2", at(-2 * DAY), price=100.0, stock=5)
    shop.land(view(-DAY, product="p1"), view(-DAY, product="p2"))
    assert shop.set_product("p1", at(0), price=90.0, stock=5).height == 1
    assert shop.set_product("p2", at(0), price=95.0, stock=5).height == 0
    new = shop.run(at(5))
    assert rows(new) == {("price_drop", "u1", "send", "all policies passed", at(0))}
    assert new["anchor"].to_list() == ["p1"]
    assert orjson.loads(new["detail"][0]) == {"old": 100.0, "new": 90.0}
    assert shop.decisions() == {WELCOME, ("price_drop", "u1", "send")}


def test_a_price_drop_that_is_no_longer_10_percent_when_due_exits() -> None:
    """100 -> 80 (20 %) for two shirts, their email an hour away: one is back up at 99 (1 %), the other at
    89 (11 %). When due, the first exits `price_back_up` (it was sent saying "1% off", review 23b), the
    second goes; at send time the same exit withdraws a decision whose price went back up since."""
    shop = Shop(delays={"price_drop": timedelta(hours=1)})
    signup(shop, "u1", "u2")
    for product in ("p1", "p2"):
        shop.set_product(product, at(-2 * DAY), price=100.0, stock=5)
    shop.land(view(-DAY, product="p1"), view(-DAY, user="u2", product="p2"))
    for product in ("p1", "p2"):
        shop.set_product(product, at(0), price=80.0, stock=5)
    shop.run(at(5))
    shop.set_product("p1", at(30), price=99.0, stock=5)
    shop.set_product("p2", at(30), price=89.0, stock=5)
    assert rows(shop.run(at(60))) == {
        ("price_drop", "u1", "exited", "price_back_up", at(60)),
        ("price_drop", "u2", "send", "all policies passed", at(60)),
    }
    sent = shop.log.filter(pl.col("decision") == "send", pl.col("kind") == "price_drop")
    shop.set_product("p2", at(90), price=95.0, stock=5)
    candidates = sent.with_columns(pl.col("user_id").alias("principal"))
    now = exit_reasons_now(candidates, state=shop.state(), catalog=shop.catalog, now=at(90))
    assert now.to_list() == ["price_back_up"]


def test_back_in_stock_reaches_viewers() -> None:
    """Ann viewed a sold-out shirt; stock goes 0 -> 5: back_in_stock for Ann, nothing for Bob who didn't."""
    shop = Shop()
    signup(shop, "u1", "u2")
    shop.set_product("p1", at(-2 * DAY), price=40.0, stock=0)
    shop.land(view(-DAY, product="p1"), view(-DAY, user="u2", product="p9"))
    shop.set_product("p1", at(0), price=40.0, stock=5)
    assert rows(shop.run(at(5))) == {("back_in_stock", "u1", "send", "all policies passed", at(0))}
    assert shop.decisions() == {WELCOME, ("welcome", "u2", "send"), ("back_in_stock", "u1", "send")}


def test_abandoned_checkout_takes_precedence_over_the_cart() -> None:
    """Ann starts checkout and stops: after 30 min an abandoned_checkout email, the cart email exits."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0), message("Checkout Started", at(10), user="u1", cart_id="c1"))
    assert rows(shop.run(at(20))) == {
        ("abandoned_checkout", "u1", "held", "waiting until due_at", at(40)),
        ("abandoned_cart", "u1", "exited", "abandoned_checkout_takes_precedence", at(60)),
    }
    assert rows(shop.run(at(40))) == {("abandoned_checkout", "u1", "send", "all policies passed", at(40))}
    assert shop.run(at(60)).height == 0
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_checkout", "u1", "send"),
        ("abandoned_cart", "u1", "exited"),
    }


def test_welcome_on_first_identify_with_consent() -> None:
    """Ann signs up with consent: welcome at once, and once only. Bob (no email), Cleo (no consent): none
    (Cleo's waits for her consent: tests/unit/test_welcome_consent.py)."""
    shop = Shop()
    shop.land(
        message("identify", at(0), user="u1", email="u1@example.com", marketing_consent=True),
        message("identify", at(0), user="u2", first_name="Bob"),
        message("identify", at(0), user="u3", email="u3@example.com", marketing_consent=False),
    )
    assert rows(shop.run(at(0))) == {("welcome", "u1", "send", "all policies passed", at(0))}
    shop.land(message("identify", at(60), user="u1", email="ann@example.com", first_name="Ann"))
    assert shop.run(at(60)).height == 0
    assert shop.decisions() == {WELCOME}


def test_browse_abandonment() -> None:
    """Ann views a shirt twice and goes quiet for 2 h: browse email. Bob views twice, then adds it: exits."""
    shop = Shop()
    signup(shop, "u1", "u2")
    shop.land(view(0), view(10), view(0, user="u2", product="p2"), view(10, user="u2", product="p2"))
    shop.land(add(20, user="u2", cart="c2", product="p2"))
    assert rows(shop.run(at(30))) == {
        ("browse_abandonment", "u1", "held", "waiting until due_at", at(130)),
        ("browse_abandonment", "u2", "exited", "added_to_cart", at(140)),
        ("abandoned_cart", "u2", "held", "waiting until due_at", at(80)),
    }
    assert rows(shop.run(at(130))) == {
        ("browse_abandonment", "u1", "send", "all policies passed", at(130)),
        ("abandoned_cart", "u2", "send", "all policies passed", at(80)),
    }
    assert shop.decisions() == {
        WELCOME,
        ("welcome", "u2", "send"),
        ("browse_abandonment", "u1", "send"),
        ("browse_abandonment", "u2", "exited"),
        ("abandoned_cart", "u2", "send"),
    }


def test_one_view_is_not_browse_abandonment() -> None:
    """Ann views a shirt once and leaves: no browse email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(view(0))
    assert rows(shop.run(at(3 * 60))) == set()
    assert shop.decisions() == {WELCOME}


def test_due_times_are_event_times_not_landing_times() -> None:
    """Ann's cart event lands 40 min late: it is still due an hour after she changed it."""
    shop = Shop()
    signup(shop, "u1")
    assert shop.run(at(40)).height == 0
    shop.land(add(0))
    assert rows(shop.run(at(41))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(60))}
    assert rows(shop.run(at(60) + timedelta(seconds=1))) == {
        ("abandoned_cart", "u1", "send", "all policies passed", at(60))
    }


def test_emptied_cart_exits() -> None:
    """Ann adds a shirt and takes it out again: no cart email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(add(0), message("Product Removed", at(5), user="u1", cart_id="c1", product_id="p1", quantity=1))
    assert rows(shop.run(at(65))) == {("abandoned_cart", "u1", "exited", "cart_emptied", at(65))}
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "exited")}


def test_frequency_cap_lets_the_higher_priority_email_through() -> None:
    """Ann's cart and her browsing are both due at 14:20: the cart email goes, the browse email is capped."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(view(0, product="p2"), view(10, product="p2"), add(20))
    assert said(shop.run(at(140))) == {
        ("abandoned_cart", "u1", "send", "all policies passed", at(140)),
        ("browse_abandonment", "u1", "capped", "frequency cap reached", at(140)),
    }
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_cart", "u1", "send"),
        ("browse_abandonment", "u1", "capped"),
    }


def test_cart_changed_while_deferred_is_due_after_the_change() -> None:
    """Tokyo: the cart email is deferred to 08:00; at 07:50 she adds socks, so it is due at 08:50 instead.

    The pending row must carry the new due time (never none), and the email goes out at 08:50.
    """
    shop = Shop()
    signup(shop, "tokyo", when=at(-3 * DAY - 12 * 60), timezone="Asia/Tokyo")
    shop.land(add(0, user="tokyo", cart="ct"))  # 21:00 in Tokyo
    deferred = "quiet hours in the user's time zone"
    assert rows(shop.run(at(60))) == {
        ("abandoned_cart", "tokyo", "quiet_hours_deferred", deferred, at(11 * 60))
    }
    shop.land(add(11 * 60 - 10, user="tokyo", cart="ct", product="p2"))  # 07:50 in Tokyo
    for minutes in (11 * 60 - 5, 11 * 60, 11 * 60 + 40):  # 07:55, 08:00 and 08:40 in Tokyo
        shop.run(at(minutes))
        pending = shop.log.filter(pl.col("kind") == "abandoned_cart").tail(1)
        assert pending["decision"].to_list() in (["held"], ["quiet_hours_deferred"]), minutes
        assert pending["due_at"].to_list() == [at(11 * 60 + 50)], minutes
    assert said(shop.run(at(11 * 60 + 50))) == {
        ("abandoned_cart", "tokyo", "send", "all policies passed", at(11 * 60 + 50))
    }
    assert shop.log.filter(pl.col("due_at").is_null()).height == 0


def test_anonymous_browsing_then_login_is_one_browse_email() -> None:
    """A guest views a shirt twice, then logs in as Ann: Ann gets one browse email, not two candidates."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(view(0, user=None, anon="a1"), view(10, user=None, anon="a1"))
    shop.run(at(30))
    shop.land(message("identify", at(40), user="u1", anon="a1"))
    shop.run(at(4 * 60))
    browse = shop.log.filter(pl.col("kind") == "browse_abandonment")
    assert browse.filter(pl.col("decision") == "send").height == 1  # one email, whatever key it began under
    assert shop.decisions() == {
        WELCOME,
        ("browse_abandonment", "u1", "send"),
        ("browse_abandonment", "u1", "exited"),  # the anonymous twin, merged into the user's candidate
    }
    assert set(browse.filter(pl.col("decision") == "exited")["reason"]) == {"merged_into_identified_shopper"}


def test_viewed_before_and_after_login_is_one_back_in_stock_email() -> None:
    """Ann viewed a sold-out shirt as a guest, logged in, and viewed it again: one back_in_stock email."""
    shop = Shop()
    signup(shop, "u1")
    shop.set_product("p1", at(-3 * DAY), price=40.0, stock=0)
    shop.land(view(-2 * DAY, user=None, anon="a1"))
    shop.land(message("identify", at(-2 * DAY + 10), user="u1", anon="a1"))
    shop.land(view(-DAY // 2))
    shop.set_product("p1", at(0), price=40.0, stock=5)
    shop.run(at(5))
    alerts = shop.log.filter(pl.col("kind") == "back_in_stock")
    assert alerts.filter(pl.col("decision") == "send").height == 1
    assert set(alerts.filter(pl.col("decision") != "send")["reason"]) <= {"merged_into_identified_shopper"}
    assert ("back_in_stock", "u1", "send") in shop.decisions()


# Spec-shaped stories: what Segment's official clients send (E-commerce v2: `cart_id` on cart events
# only; checkouts and orders carry `order_id` / `checkout_id` and `products`), clocks skewed.
SPEC_PRODUCT: dict[str, Any] = {
    "product_id": "p1",
    "sku": "G-32",
    "name": "Shirt",
    "price": 40.0,
    "quantity": 1,
}


def spec_add(minutes: float, user: str | None = "u1", anon: str | None = None, cart: str = "c1") -> dict:
    return spec_message(
        "Product Added",
        at(minutes),
        user=user,
        anon=anon,
        skew=timedelta(minutes=10),
        cart_id=cart,
        **SPEC_PRODUCT,
    )


def spec_checkout(minutes: float, user: str = "u1", order_id: str = "o1") -> dict:
    products = [SPEC_PRODUCT]
    fields: dict[str, Any] = {
        "order_id": order_id,
        "value": 40.0,
        "revenue": 40.0,
        "currency": "EUR",
        "products": products,
    }
    return spec_message("Checkout Started", at(minutes), user=user, skew=timedelta(minutes=-3), **fields)


def spec_order(minutes: float, user: str = "u1", order_id: str = "o1", **more: Any) -> dict:
    fields = {
        "checkout_id": "k1",
        "order_id": order_id,
        "total": 45.0,
        "revenue": 40.0,
        "currency": "EUR",
        "products": [{**SPEC_PRODUCT, "category": "shirts"}],
        **more,
    }
    return spec_message(
        "Order Completed", at(minutes), user=user, processed=True, skew=timedelta(minutes=7), **fields
    )


def sent(shop: Shop, kind: str) -> int:
    return shop.log.filter((pl.col("kind") == kind) & (pl.col("decision") == "send")).height


def test_spec_shaped_buyer_gets_no_cart_email() -> None:
    """Ann adds a shirt (cart c1), starts checkout and orders without `cart_id` (as the spec has it): no
    cart email."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0))
    assert rows(shop.run(at(5))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(60))}
    shop.land(spec_checkout(10), spec_order(20))
    assert ("abandoned_cart", "u1", "exited", "order_completed", at(60)) in rows(shop.run(at(60)))
    shop.run(at(3 * 60))
    assert sent(shop, "abandoned_cart") == sent(shop, "abandoned_checkout") == 0
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_cart", "u1", "exited"),
        ("abandoned_checkout", "u1", "exited"),
    }


def test_spec_shaped_buyer_whose_order_lands_late_gets_no_cart_email() -> None:
    """The order (no `cart_id`) lands only after the cart email was due: the email exits before going out."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0))
    shop.run(at(30))
    shop.land(spec_order(40))
    assert ("abandoned_cart", "u1", "exited", "order_completed", at(60)) in rows(shop.run(at(61)))
    assert sent(shop, "abandoned_cart") == 0


def test_anonymous_cart_then_login_and_an_order_under_the_user_id_gets_no_cart_email() -> None:
    """A guest fills cart c1, logs in (identify links a1 to Ann) and orders as Ann, without `cart_id`."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0, user=None, anon="a1"))
    assert rows(shop.run(at(5))) == {("abandoned_cart", None, "held", "waiting until due_at", at(60))}
    shop.land(spec_message("identify", at(10), user="u1", anon="a1"), spec_order(15))
    shop.run(at(2 * 60))
    assert sent(shop, "abandoned_cart") == 0
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "exited")}


def test_anonymous_cart_then_alias_and_an_order_under_the_user_id_gets_no_cart_email() -> None:
    """As above, but the app links the ids with `alias(previousId=a1, userId=u1)` (analytics-python)."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_add(0, user=None, anon="a1"))
    shop.run(at(5))
    shop.land(spec_message("alias", at(10), user="u1", previous_id="a1"), spec_order(15))
    shop.run(at(2 * 60))
    assert sent(shop, "abandoned_cart") == 0
    assert shop.decisions() == {WELCOME, ("abandoned_cart", "u1", "exited")}


def test_spec_shaped_abandoner_gets_exactly_one_cart_email() -> None:
    """Ann ordered last week; today she fills cart c2 and leaves: one cart email, her old order no exit."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(spec_order(-2 * DAY, order_id="o0"))
    shop.run(at(-2 * DAY + 5))
    shop.land(spec_add(0, cart="c2"), spec_message("Cart Viewed", at(2), user="u1", cart_id="c2"))
    assert rows(shop.run(at(30))) == {("abandoned_cart", "u1", "held", "waiting until due_at", at(60))}
    assert rows(shop.run(at(60))) == {("abandoned_cart", "u1", "send", "all policies passed", at(60))}
    shop.run(at(3 * 60))
    assert sent(shop, "abandoned_cart") == 1
    assert ("abandoned_cart", "u1", "send") in shop.decisions()


def test_spec_shaped_checkout_abandoner_gets_the_checkout_email_not_the_cart_one() -> None:
    """Ann fills cart c1 and starts checkout (spec shape: `order_id`, no `cart_id`), then leaves: after
    30 min the abandoned_checkout email; the cart email exits in its favour."""
    shop = Shop()
    signup(shop, "u1")
    started: dict[str, Any] = {"order_id": "o1", "value": 40.0, "currency": "EUR", "products": [SPEC_PRODUCT]}
    shop.land(spec_add(0), spec_message("Checkout Started", at(10), user="u1", **started))
    assert ("abandoned_cart", "u1", "exited", "abandoned_checkout_takes_precedence") in {
        r[:4] for r in shop.run(at(20)).select("kind", "user_id", "decision", "reason", "due_at").iter_rows()
    }
    shop.run(at(40))
    shop.run(at(3 * 60))
    assert shop.decisions() == {
        WELCOME,
        ("abandoned_checkout", "u1", "send"),
        ("abandoned_cart", "u1", "exited"),
    }


def test_spec_shaped_buyer_gets_no_checkout_email_either() -> None:
    shop = Shop()
    signup(shop, "u1")
    started: dict[str, Any] = {"order_id": "o1", "value": 40.0, "currency": "EUR", "products": [SPEC_PRODUCT]}
    shop.land(spec_add(0), spec_message("Checkout Started", at(10), user="u1", **started), spec_order(20))
    shop.run(at(3 * 60))
    checkout = shop.log.filter(pl.col("kind") == "abandoned_checkout")
    assert set(checkout["decision"]) == {"exited"}  # proposed, then withdrawn by the order


def test_a_group_call_naming_the_company_email_leaves_the_shopper_address_alone() -> None:
    """Ann buys for Initech: the shop's `group("initech", {name, email, plan})` (Segment's reserved group
    traits, the company's own) follows her login. Her profile keeps her address and name, and her cart
    email goes to her, not to Initech's billing address."""
    shop = Shop()
    traits: dict[str, Any] = {"email": "ann@example.com", "first_name": "Ann", "marketing_consent": True}
    shop.land(spec_message("identify", SIGNUP, user="u1", **traits))
    shop.run(SIGNUP)
    company: dict[str, Any] = {
        "name": "Initech",
        "email": "billing@initech.example",
        "plan": "enterprise",
        "employees": 329,
    }
    shop.land(spec_message("group", at(-5), user="u1", group_id="0e8c78ea9d97a7b8185e8632", **company))
    shop.land(spec_add(0))
    assert rows(shop.run(at(60))) == {("abandoned_cart", "u1", "send", "all policies passed", at(60))}
    profile = derive(shop.state(), shop.customers, at(60)).row(0, named=True)
    assert (profile["email"], profile["first_name"], profile["marketing_consent"]) == (
        "ann@example.com",
        "Ann",
        True,
    )


def test_a_first_name_sent_as_segment_camel_case_reserved_trait_greets_the_shopper() -> None:
    """analytics.js shops call `identify(userId, {firstName, email})` (Segment's reserved trait in camelCase;
    the spec takes `first_name` too): Ann's profile has her first name, so her email greets her by it. A
    message naming both is read by `first_name`, a null `first_name` by `firstName`."""
    shop = Shop()
    traits: dict[str, Any] = {"email": "ann@example.com", "firstName": "Ann", "marketing_consent": True}
    shop.land(spec_message("identify", SIGNUP, user="u1", **traits))
    shop.land(
        spec_message("identify", SIGNUP, user="u2", email="bo@example.com", firstName="B", first_name="Bo")
    )
    shop.land(
        spec_message("identify", SIGNUP, user="u3", email="cy@example.com", firstName="Cy", first_name=None)
    )
    profiles = derive(shop.state(), shop.customers, at(0))
    assert profiles.select("user_id", "first_name").rows() == [("u1", "Ann"), ("u2", "Bo"), ("u3", "Cy")]
    assert WELCOME in {r[:3] for r in said(shop.run(SIGNUP))}


def test_a_full_name_trait_alone_greets_the_shopper_by_its_first_word() -> None:
    """Shops that identify with Segment's reserved full-name trait only (`identify(userId, {name: "Ann
    Smith", email})`) had profiles without a first name and emails with the neutral greeting (found by
    review). Its first word is the first name, as Segment's facade reads `firstName()`; a first name
    stated beside it wins; a name of blanks or of another shape states none."""
    shop = Shop()
    spec_traits: dict[str, Any] = {
        "email": "ann@example.com",
        "name": "  Ann  Smith ",
        "marketing_consent": True,
    }
    shop.land(spec_message("identify", SIGNUP, user="u1", **spec_traits))
    shop.land(
        spec_message("identify", SIGNUP, user="u2", email="bo@example.com", name="Robert Ho", firstName="Bo")
    )
    shop.land(spec_message("identify", SIGNUP, user="u3", email="cy@example.com", name=" "))
    shop.land(spec_message("identify", SIGNUP, user="u4", email="di@example.com", name={"first": "Di"}))
    profiles = derive(shop.state(), shop.customers, at(0))
    assert profiles.select("user_id", "first_name").rows() == [
        ("u1", "Ann"),
        ("u2", "Bo"),
        ("u3", None),
        ("u4", None),
    ]
    assert WELCOME in {r[:3] for r in said(shop.run(SIGNUP))}


# Refunds and cancellations (Segment e-commerce v2's `Order Refunded` / `Order Cancelled`, shaped as its
# examples: `order_id`, `total` / `revenue`, `currency`, `products[]`): the post_purchase email exits when
# its order was cancelled or wholly refunded before it goes; the profile's lifetime_value is net of them.
SOCKS: dict[str, Any] = {"product_id": "p2", "sku": "S-1", "name": "Socks", "price": 5.0, "quantity": 2}


def two_item_order(minutes: float, user: str = "u1", order_id: str = "o1", **more: Any) -> dict:
    """Ann's spec-shaped order of a shirt (40) and two pairs of socks (2 x 5): revenue 50 EUR."""
    items = [{**SPEC_PRODUCT, "category": "shirts"}, {**SOCKS, "category": "socks"}]
    return spec_order(minutes, user=user, order_id=order_id, revenue=50.0, total=55.0, products=items, **more)


def spec_refund(minutes: float, user: str = "u1", order_id: str = "o1", **fields: Any) -> dict:
    return spec_message("Order Refunded", at(minutes), user=user, order_id=order_id, **fields)


def spec_cancel(minutes: float, user: str = "u1", order_id: str = "o1") -> dict:
    """Segment's `Order Cancelled` example, for Ann's order."""
    fields: dict[str, Any] = {
        "order_id": order_id,
        "affiliation": "Shop",
        "total": 55.0,
        "revenue": 50.0,
        "shipping": 3,
        "tax": 2,
        "currency": "EUR",
        "products": [{**SPEC_PRODUCT, "category": "shirts"}, {**SOCKS, "category": "socks"}],
    }
    return spec_message("Order Cancelled", at(minutes), user=user, **fields)


def value_and_count(shop: Shop, user: str = "u1") -> tuple[float, int]:
    profiles = derive(shop.state(), shop.customers, at(3 * DAY))
    row = profiles.filter(pl.col("user_id") == user).row(0, named=True)
    return row["lifetime_value"], row["order_count"]


def decided(shop: Shop, kind: str = "post_purchase") -> set[tuple[str | None, str, str]]:
    """(user_id, decision, reason) of the terminal decisions of `kind`."""
    final = shop.log.filter((pl.col("kind") == kind) & ~pl.col("decision").is_in(["held"]))
    return set(final.select("user_id", "decision", "reason").iter_rows())


def test_a_cancelled_order_gets_no_post_purchase_email() -> None:
    """Ann orders, then cancels an hour later: her cross-sell email, three days out, exits at once with
    `order_cancelled`; her profile keeps the order, worth 0 (found by review: the email still went)."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(two_item_order(0))
    assert rows(shop.run(at(5))) == {("post_purchase", "u1", "held", "waiting until due_at", at(3 * DAY))}
    assert value_and_count(shop) == (50.0, 1)
    shop.land(spec_cancel(60))
    assert said(shop.run(at(65))) == {("post_purchase", "u1", "exited", "order_cancelled", at(65))}
    assert shop.run(at(3 * DAY)).height == 0
    assert sent(shop, "post_purchase") == 0
    assert shop.decisions() == {WELCOME, ("post_purchase", "u1", "exited")}
    assert value_and_count(shop) == (0.0, 1)


@pytest.mark.parametrize(
    "refund",
    [
        {"total": 55.0, "currency": "EUR"},  # the spec's example: the order's total, more than its revenue
        {"revenue": 50.0, "currency": " eur "},  # the same currency, as written
        {},  # no amount: the whole order
        {"total": 30.0, "currency": "EUR", "products": [SOCKS]},  # then a second refund of the rest
    ],
)
def test_a_wholly_refunded_order_gets_no_post_purchase_email(refund: dict[str, Any]) -> None:
    shop = Shop()
    signup(shop, "u1")
    shop.land(two_item_order(0))
    shop.run(at(5))
    shop.land(spec_refund(DAY, **refund))
    if refund.get("total") == 30.0:  # 30 of 50 back: the email still goes, unless the rest follows
        assert shop.run(at(DAY + 5)).height == 0 and value_and_count(shop) == (20.0, 1)
        shop.land(spec_refund(DAY + 60, total=20.0, currency="EUR"))
    shop.run(at(2 * DAY))
    shop.run(at(3 * DAY))
    assert decided(shop) == {("u1", "exited", "order_refunded")}
    assert value_and_count(shop) == (0.0, 1)


def test_a_partial_refund_keeps_the_email_and_nets_the_lifetime_value_once() -> None:
    """Ann sends the socks back: a refund naming only its products (2 x 5). The tracker sends it twice
    (same messageId, two batches), and a 3 USD goodwill refund against her EUR order: neither counts
    again. The shirt stays hers: the cross-sell email goes."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(two_item_order(0))
    shop.run(at(5))
    socks = spec_refund(DAY, message_id="refund-1", products=[SOCKS])
    shop.land(socks)
    shop.land(socks, spec_refund(DAY + 1, total=3.0, currency="USD"))
    assert value_and_count(shop) == (40.0, 1)
    assert rows(shop.run(at(3 * DAY))) == {
        ("post_purchase", "u1", "send", "all policies passed", at(3 * DAY))
    }


def test_a_refund_landing_before_its_order_is_the_same_story() -> None:
    """A backfill lands Ann's refund a batch before her order: the same state, the same exit."""
    early, late = Shop(), Shop()
    for shop in (early, late):
        signup(shop, "u1")
    order, refund = two_item_order(0, message_id="order-1"), spec_refund(60, message_id="refund-1")
    early.land(refund)
    early.land(order)
    late.land(order)
    late.land(refund)
    assert_frame_equal(canonical(early.state()), canonical(late.state()))
    for shop in (early, late):
        assert said(shop.run(at(65))) == {("post_purchase", "u1", "exited", "order_refunded", at(65))}


def test_an_order_cancelled_after_its_email_was_decided_is_withdrawn_before_sending() -> None:
    """The email is decided `send` at its due time; the cancellation lands before the sender takes it:
    the check right before sending withdraws it (`order_cancelled`), as it does an order for a cart."""
    shop = Shop()
    signup(shop, "u1")
    shop.land(two_item_order(0))
    shop.run(at(5))
    shop.run(at(3 * DAY))
    decision = shop.log.filter((pl.col("kind") == "post_purchase") & (pl.col("decision") == "send"))
    assert decision.height == 1
    shop.land(spec_cancel(3 * DAY + 1))
    now = exit_reasons_now(decision, state=shop.state(), catalog=shop.catalog, now=at(3 * DAY + 2))
    assert now.to_list() == ["order_cancelled"]


@pytest.mark.parametrize("email", ["", "   ", "not-an-address"])
def test_an_email_trait_that_is_no_address_is_no_address(email: str) -> None:
    """`email: ""` (or no `@`) was decided `send` and then aborted `no_email` by the send stage (found by
    review): the decision said an email would go that never could. Now decided `no_address`."""
    shop = Shop()
    shop.land(message("identify", at(-60), user="u9", email=email, first_name="Nia", marketing_consent=True))
    shop.land(add(0, user="u9"))
    decided = {(k, d, r) for k, u, d, r, _ in rows(shop.run(at(60))) if u == "u9"}
    assert decided == {
        (kind, "no_address", "no email address known") for kind in ("welcome", "abandoned_cart")
    }


GUEST = "identified anonymously (an email, no user id): only users are mailed"


@pytest.mark.parametrize(
    ("traits", "reason"),
    [
        ({"email": "guest@example.com", "marketing_consent": True}, GUEST),
        ({"first_name": "Gus"}, "anonymous shopper, no user id"),
        (None, "anonymous shopper, no user id"),
    ],
)
def test_a_guests_reason_says_what_is_known_of_them(traits: dict[str, Any] | None, reason: str) -> None:
    """A guest at checkout identifies with an email and no userId (Segment's anonymous identify): its cart
    was decided `no_address`, 'anonymous shopper, never identified' (found by review: it was identified).
    Only users are mailed (PRODUCT.md: decisions, sends, the profile API and erasure name a user id), so it
    stays `no_address`, with a reason that is true."""
    shop = Shop()
    if traits is not None:
        shop.land(message("identify", at(-5), anon="g1", **traits))
    shop.land(message("Product Added", at(0), anon="g1", cart_id="c1", product_id="p1", price=40.0))
    decided = {(k, u, d, r) for k, u, d, r, _ in rows(shop.run(at(60)))}
    assert decided == {("abandoned_cart", None, "no_address", reason)}

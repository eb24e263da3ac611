"""A golden story in Segment's e-commerce v2 shape: `Product Added` names the cart, `Checkout Started` the
cart, the checkout and the order, `Order Completed` only the checkout and the order. The buyer gets no cart
or checkout email and the profile API shows her no open cart (found by review: the cart stayed open with
what she bought in the profile state and the profile API), whether the order lands with the checkout or in
a later micro-batch; a shopper who leaves at checkout gets the checkout email. Real micro-batch runs on a
Delta lake, mailing a real sandbox over HTTP on loopback; the profile API over the runs' state store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg
import httpx
import orjson
import polars as pl

from orchestration.settings import Settings
from resources.landing import LandingResource
from resources.shop import ShopResource
from resources.state import StateResource
from services.collector.app import CollectorConfig, create_collector_app
from services.collector.profile_store import ProfileStore
from services.collector.profiles import ProfileApi
from services.server import ServerThread
from tests.conftest import land
from tests.dagster.sends_harness import SHOPPERS, Mailbox, run, sends, signups
from tests.profile_shop import API_KEY, headers
from tests.story import at, spec_message

SECRET = "test-secret"  # LAKEMAIL_SECRET of the runs (tests.conftest)
CATALOG = [{"product_id": "p-mug", "name": "Stoneware mug", "category": "kitchen", "price": 12.5, "stock": 9}]
MUG: dict[str, Any] = {"product_id": "p-mug", "sku": "M-1", "name": "Mug", "price": 12.5, "quantity": 2}
BUYER, LATE_BUYER, LEAVER = SHOPPERS[:3]
START = 20 * 60  # the carts, a day after the welcomes (the 16 h cap)


def shopping(user: str, n: int) -> list[dict[str, Any]]:
    """`user` adds 2 mugs to cart cart-`n` and starts checkout of it (checkout ck-`n`, order o-`n`)."""
    added = spec_message("Product Added", at(START), user=user, cart_id=f"cart-{n}", **MUG)
    ids: dict[str, Any] = {"cart_id": f"cart-{n}", "checkout_id": f"ck-{n}", "order_id": f"o-{n}"}
    fields: dict[str, Any] = {"value": 25.0, "revenue": 25.0, "currency": "EUR", "products": [MUG]}
    return [added, spec_message("Checkout Started", at(START + 2), user=user, **ids, **fields)]


def ordered(user: str, n: int, minutes: float) -> dict[str, Any]:
    """The spec's `Order Completed` of checkout ck-`n`: its checkout and order ids, no cart."""
    fields: dict[str, Any] = {"total": 25.0, "revenue": 25.0, "currency": "EUR", "products": [MUG]}
    return spec_message(
        "Order Completed", at(minutes), user=user, checkout_id=f"ck-{n}", order_id=f"o-{n}", **fields
    )


def profile_api(settings: Settings, state: StateResource, *paths: str) -> list[dict[str, Any]]:
    """The answers of the collector's profile API over the runs' state store to GET `paths`."""
    shop = ShopResource()
    api = ProfileApi(
        ProfileStore(state, secret=SECRET),
        API_KEY,
        shop.shop(),
        timedelta(hours=shop.staleness_hours),
    )
    landing = LandingResource(uri=settings.landing_uri).root
    app = create_collector_app(CollectorConfig(landing=landing, write_keys=("wk",), profiles=api))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        answers = [client.get(path, headers=headers()) for path in paths]
    assert [a.status_code for a in answers] == [200] * len(paths)
    return [a.json() for a in answers]


def test_a_buyer_who_orders_naming_only_her_checkout_gets_no_cart_email_and_has_no_open_cart(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance, state: StateResource
) -> None:
    feed = b"".join(orjson.dumps(row) + b"\n" for row in CATALOG)
    LandingResource(uri=mail_settings.landing_uri).land("catalog/products.ndjson", feed)
    signups(mail_settings, [BUYER, LATE_BUYER, LEAVER])
    run(mail_settings, instance, 5)  # the welcomes go out
    carts = [
        *shopping(BUYER, 1),
        ordered(BUYER, 1, START + 4),
        *shopping(LATE_BUYER, 2),
        *shopping(LEAVER, 3),
    ]
    land(mail_settings, "carts.ndjson", [orjson.dumps(m) for m in carts])
    run(mail_settings, instance, START + 5)
    land(mail_settings, "late-order.ndjson", [orjson.dumps(ordered(LATE_BUYER, 2, START + 6))])
    for minutes in (START + 7, START + 33, START + 63, START + 90):
        run(mail_settings, instance, minutes)

    outbox = sends(mail_settings).filter(pl.col("kind").is_in(["abandoned_cart", "abandoned_checkout"]))
    assert outbox.select("user_id", "kind", "status").rows() == [(LEAVER, "abandoned_checkout", "sent")]
    kinds = [m["custom_args"]["kind"] for m in mailbox.messages()]
    assert sorted(k for k in kinds if k != "welcome") == ["abandoned_checkout"]

    paths = [f"/v1/profiles/{user}" for user in (BUYER, LATE_BUYER, LEAVER)]
    buyer, late_buyer, leaver = profile_api(mail_settings, state, *paths)
    for profile in (buyer, late_buyer):
        assert (profile["cart_id"], profile["cart_items"], profile["order_count"]) == (None, [], 1)
    assert (leaver["cart_id"], [i["quantity"] for i in leaver["cart_items"]]) == ("cart-3", [2])
    [content] = profile_api(mail_settings, state, f"/v1/profiles/{BUYER}/content?kind=abandoned_cart")
    assert (content["aborted"], content.get("cart")) == ("empty_cart", None), content

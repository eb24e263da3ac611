"""An event's links never reach an email (found by review): anyone holding the public write key (it is
in the browser snippet) can land a `Product Added` with `url: https://evil.example/login`. A line whose
product the catalog lacks kept that link, and the send stage signed it into the shop's click redirect,
so the shop's own email carried a shop-signed link to the attacker's page; a known product without a
catalog picture showed the event's. Links and pictures come from the catalog, the shop and lakemail only:
such a line shows its name and quantity and links to the shop's home, and the send records why."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import dagster as dg
import httpx
import orjson
import polars as pl
import pytest

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
from tests.story import at, message
from transforms.sends.clicks import verify_click_token

SECRET = "test-secret"  # LAKEMAIL_SECRET of the runs (tests.conftest)
CLICKS = "https://click.example"
HOME = ShopResource().home_url
EVIL = {"url": "https://evil.example/login", "image_url": "https://evil.example/pixel.gif"}
# The shop's catalog: the tote has a page but no picture; the hat the cart names is not in it.
TOTE_PAGE = "https://shop.example/products/p-tote"
TOTE = {
    "product_id": "p-tote",
    "name": "Canvas tote",
    "category": "bags",
    "price": 25.0,
    "stock": 5,
    "url": TOTE_PAGE,
}


@pytest.fixture
def mail_settings(mail_settings: Settings) -> Settings:
    """tests/dagster/conftest.py's, with the click redirect these tests read the links of."""
    return replace(mail_settings, click_url=CLICKS)


def cart_email(
    settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance, user: str
) -> dict[str, Any]:
    """The shopper's abandoned-cart email, sent by a micro-batch a day after her welcome (the cap)."""
    LandingResource(uri=settings.landing_uri).land("catalog/products.ndjson", orjson.dumps(TOTE) + b"\n")
    signups(settings, [user])
    run(settings, instance, 5)  # the welcome goes out
    cart = [
        message("Product Added", at(20 * 60), user=user, cart_id="c1", product_id="p-hat", name="Old Hat",
                category="hats", price=15.0, quantity=2, **EVIL),
        message("Product Added", at(20 * 60 + 1), user=user, cart_id="c1", product_id="p-tote",
                name="Canvas tote", price=25.0, quantity=1, **EVIL),
    ]  # fmt: skip
    land(settings, "cart.ndjson", [orjson.dumps(m) for m in cart])
    run(settings, instance, 20 * 60 + 62)
    [mail] = [m for m in mailbox.messages() if m["custom_args"]["kind"] == "abandoned_cart"]
    return mail


def signed_links(body: str) -> list[str]:
    """The URL signed into each click-redirect link of `body` (every one a valid token of ours)."""
    links = [verify_click_token(t, SECRET) for t in re.findall(re.escape(CLICKS) + r"/c/([\w.\-]+)", body)]
    assert links and all(link is not None for link in links)
    return [link.url for link in links if link is not None]


def content(settings: Settings, user: str) -> httpx.Response:
    """`GET /v1/profiles/{user}/content` of the collector's profile API over the runs' state store."""
    state = StateResource(uri=settings.state_store_uri)
    shop = ShopResource()
    api = ProfileApi(
        ProfileStore(state, secret=SECRET), API_KEY, shop.shop(), timedelta(hours=shop.staleness_hours)
    )
    landing = LandingResource(uri=settings.landing_uri).root
    app = create_collector_app(CollectorConfig(landing=landing, write_keys=("wk",), profiles=api))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        return client.get(f"/v1/profiles/{user}/content", headers=headers())


def test_an_events_link_reaches_neither_the_email_its_click_links_nor_the_content_api(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    user = SHOPPERS[0]
    mail = cart_email(mail_settings, mailbox, instance, user)
    answer = content(mail_settings, user)
    assert answer.status_code == 200
    leaks = {
        "html": "evil.example" in mail["html"],
        "text": "evil.example" in mail["text"],
        "html's click links": any("evil.example" in url for url in signed_links(mail["html"])),
        "text's click links": any("evil.example" in url for url in signed_links(mail["text"])),
        "content API": "evil.example" in answer.text,
    }
    assert not any(leaks.values()), leaks
    for body in (mail["html"], mail["text"]):
        assert "Old Hat" in body and "Canvas tote" in body
        assert set(signed_links(body)) >= {HOME, TOTE_PAGE}  # the hat's line links to the shop's home
    assert mail["html"].count("<img") == 0  # the hat is unknown, the tote has no catalog picture
    missing = {"block": "cart_line", "reason": "product_not_in_catalog"}
    [row] = sends(mail_settings).filter(pl.col("kind") == "abandoned_cart").to_dicts()
    assert missing in json.loads(row["fallbacks"]) and missing in answer.json()["fallbacks"]
    lines = {line["name"]: line for line in answer.json()["cart"]["lines"]}
    hat, tote = lines["Old Hat"], lines["Canvas tote"]
    assert (hat["url"], hat["image_url"], hat["price"]) == (HOME, "", "")
    assert (tote["url"], tote["image_url"]) == (TOTE_PAGE, "")

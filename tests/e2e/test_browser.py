"""A real headless Chromium (Debian's chromium + chromium-driver; `make test` installs them when missing)
clicks through the demo shop: lakemail.js sends page, product, cart and identify events that land with the
cookie's anonymous id, the identify linking it to the user."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from services.collector.app import CollectorConfig, create_collector_app
from services.server import ServerThread
from simulator.shop import make_catalog
from tests.e2e.chromium import KEY, chromium, landed


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path) as driver:
        yield driver


def click(driver: webdriver.Chrome, selector: str) -> None:
    WebDriverWait(driver, 15).until(ready.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()


def shop_through(driver: webdriver.Chrome, url: str) -> str:
    """Home -> a product -> add to cart -> cart -> sign up with consent; the anonymous id's cookie."""
    driver.get(f"{url}/shop")
    click(driver, ".product-link")
    click(driver, "#add-to-cart")
    WebDriverWait(driver, 15).until(ready.visibility_of_element_located((By.ID, "added")))
    click(driver, "#cart-link")
    WebDriverWait(driver, 15).until(ready.presence_of_element_located((By.ID, "cart-lines")))
    click(driver, "#signup-link")
    WebDriverWait(driver, 15).until(ready.presence_of_element_located((By.NAME, "email")))
    driver.find_element(By.NAME, "email").send_keys("ada@example.com")
    driver.find_element(By.NAME, "first_name").send_keys("Ada")
    click(driver, "#consent")
    click(driver, "#signup")
    WebDriverWait(driver, 15).until(ready.visibility_of_element_located((By.ID, "signed-up")))
    cookie = driver.get_cookie("lm_aid")
    assert cookie is not None and cookie["value"]
    return str(cookie["value"])


def wanted(messages: list[dict[str, Any]]) -> set[str]:
    """What of the click-through has landed: message types and track events."""
    return {m.get("event") or m["type"] for m in messages}


def test_the_demo_shop_in_chromium_lands_the_shoppers_events(
    tmp_path: Path, browser: webdriver.Chrome
) -> None:
    config = CollectorConfig(
        landing=tmp_path / "landing", write_keys=(KEY,), linger=0.05, shop_catalog=make_catalog(seed=0)
    )
    expected = {"page", "Product Viewed", "Product Added", "Cart Viewed", "identify", "Signed Up"}
    with ServerThread(create_collector_app(config)) as server:
        anonymous_id = shop_through(browser, server.url)
        browser.get("about:blank")  # the sign-up page goes: whatever it still holds leaves by beacon
        deadline = time.monotonic() + 20
        while not expected <= wanted(landed(tmp_path)) and time.monotonic() < deadline:
            time.sleep(0.1)
    messages = landed(tmp_path)
    assert expected <= wanted(messages)
    assert {m["anonymousId"] for m in messages} == {anonymous_id}  # one shopper, one first-party cookie
    pages = sorted((m for m in messages if m["type"] == "page"), key=lambda m: m["timestamp"])
    product_path = pages[1]["properties"]["path"]
    assert [p["properties"]["path"] for p in pages] == ["/shop", product_path, "/shop/cart", "/shop/signup"]
    (identify,) = [m for m in messages if m["type"] == "identify"]
    assert identify["userId"] and identify["traits"] == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "marketing_consent": True,
    }
    (added,) = [m for m in messages if m.get("event") == "Product Added"]
    assert added["properties"]["product_id"] == product_path.rsplit("/", 1)[1]
    assert added["properties"]["cart_id"] and added["context"]["library"]["name"] == "lakemail.js"
    assert all(m["receivedAt"] and m["sentAt"] and m["messageId"] for m in messages)
    assert len({m["messageId"] for m in messages}) == len(messages)

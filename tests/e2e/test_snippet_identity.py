"""lakemail.js's ids and context in a real headless Chromium against a real collector on 127.0.0.1: the
anonymous and user ids shared by a site's subdomains and renewed on every visit, one anonymous id per page
where cookies are blocked, the campaign (utm_*) context, and analytics.js's argument forms and callbacks."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.chromium import SITE, chromium, collector, events, landed_when

DAY = 86400
BLOCK_COOKIES = {"profile.default_content_setting_values.cookies": 2}


def test_the_sites_subdomains_share_the_anonymous_and_the_user_id(tmp_path: Path) -> None:
    # The cookies were host-only: www.shop.example and checkout.shop.example each made an anonymous id of
    # their own, and the checkout did not know the user identified on www (its events came anonymous).
    with collector(tmp_path) as url, chromium(tmp_path) as driver:
        port = urlsplit(url).port
        driver.get(f"http://www.{SITE}:{port}/shop")
        driver.execute_script("lakemail.identify('u-42', {email: 'ada@example.com'});")
        driver.get(f"http://checkout.{SITE}:{port}/shop/cart")
        cookies = {c["name"]: c for c in driver.get_cookies()}
        driver.get("about:blank")
        messages = landed_when(tmp_path, lambda m: events(m, "Cart Viewed") and len(m) >= 4)
    assert len({m["anonymousId"] for m in messages}) == 1
    (cart,) = events(messages, "Cart Viewed")
    assert cart["userId"] == "u-42" and cart["context"]["page"]["url"].startswith(f"http://checkout.{SITE}")
    assert cookies["lm_aid"]["domain"] == f".{SITE}" and cookies["lm_uid"]["domain"] == f".{SITE}"
    assert cookies["lm_aid"]["sameSite"] == "Lax" and not cookies["lm_aid"]["httpOnly"]


def test_the_anonymous_id_is_kept_a_year_from_the_last_visit(tmp_path: Path) -> None:
    # The cookie was written once: a shopper who came every day lost their anonymous id a year after the
    # first visit (seven days under Safari's cap on script cookies). Each page now renews it, and an older
    # host-only cookie's id moves to the site's domain.
    with collector(tmp_path) as url, chromium(tmp_path) as driver:
        port = urlsplit(url).port
        driver.get(f"http://www.{SITE}:{port}/health")  # a page of the site without the snippet
        driver.add_cookie(
            {"name": "lm_aid", "value": "aid-old", "path": "/", "expiry": int(time.time()) + DAY}
        )
        driver.get(f"http://www.{SITE}:{port}/shop/cart")
        (cookie,) = [c for c in driver.get_cookies() if c["name"] == "lm_aid"]
        driver.get(f"http://checkout.{SITE}:{port}/shop")
        driver.get("about:blank")
        messages = landed_when(tmp_path, lambda m: len([x for x in m if x["type"] == "page"]) >= 2)
    assert cookie["value"] == "aid-old" and cookie["expiry"] > time.time() + 364 * DAY
    assert cookie["domain"] == f".{SITE}"
    assert {m["anonymousId"] for m in messages} == {"aid-old"}


def test_where_cookies_are_blocked_a_page_keeps_one_anonymous_id_and_its_user(tmp_path: Path) -> None:
    # Cookies blocked (a browser setting, a privacy extension): every message got an anonymous id of its
    # own, as did every lakemail.anonymousId(), so one visit was many shoppers, and identify was forgotten
    # by the next call. The ids now live in the page's memory where no cookie can be written.
    calls = (
        "lakemail.track('One', {}); lakemail.identify('u-7'); lakemail.track('Two', {});"
        "return [lakemail.anonymousId(), lakemail.anonymousId(), lakemail.user()];"
    )
    with collector(tmp_path) as url, chromium(tmp_path, prefs=BLOCK_COOKIES) as driver:
        driver.get(f"{url}/shop")
        anonymous_id, again, user = driver.execute_script(calls)
        messages = landed_when(tmp_path, lambda m: events(m, "Two") and len(m) >= 4)
    assert anonymous_id == again and user == "u-7"
    assert {m["anonymousId"] for m in messages} == {anonymous_id}
    assert events(messages, "Two")[0]["userId"] == "u-7" and "userId" not in events(messages, "One")[0]


def test_every_message_carries_the_campaign_of_the_pages_utm_parameters(tmp_path: Path) -> None:
    # context.campaign (lifted into the lake's context_campaign_* columns) was never sent: a shopper who came
    # from an email's utm link was not known to have.
    query = "utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale&utm_term=shoes&utm_content=hero"
    with collector(tmp_path) as url, chromium(tmp_path) as driver:
        driver.get(f"{url}/shop?{query}&utm_other=x&q=1")
        driver.execute_script("lakemail.track('Clicked', {});")
        messages = landed_when(tmp_path, lambda m: events(m, "Clicked") and len(m) >= 2)
        driver.get(f"{url}/shop/cart")
        later = landed_when(tmp_path, lambda m: events(m, "Cart Viewed"))
    campaign = {"source": "newsletter", "medium": "email", "name": "spring sale", "term": "shoes"}
    assert [m["context"].get("campaign") for m in messages] == [campaign | {"content": "hero"}] * 2
    assert "campaign" not in events(later, "Cart Viewed")[0]["context"]  # a page without utm_* has none


def test_analytics_js_argument_forms_and_callbacks(tmp_path: Path) -> None:
    # page(category, name) made `name` the category and spread the name's letters into properties
    # ({"0": "S", "1": "i", ...}); a callback (analytics.js runs it 300 ms later: shops navigate in it)
    # never ran; properties that were no object landed as such, and the ingest quarantined the message.
    calls = (
        "window.__called = [];"
        "lakemail.page('Docs', 'Install', {step: 2}, {}, function () { __called.push('page'); });"
        "lakemail.page('Docs', 'Signup');"
        "lakemail.track('Clicked', 'not properties', function () { __called.push('track'); });"
        "lakemail.identify('u-1', {plan: 'pro'}, {}, function () { __called.push('identify'); });"
    )
    with collector(tmp_path) as url, chromium(tmp_path) as driver:
        driver.get(f"{url}/shop")
        driver.execute_script(calls)
        WebDriverWait(driver, 5).until(lambda d: len(d.execute_script("return window.__called;")) == 3)
        called = driver.execute_script("return window.__called;")
        messages = landed_when(tmp_path, lambda m: events(m, "Clicked") and len(m) >= 5)
    assert sorted(called) == ["identify", "page", "track"]
    pages = {m.get("name"): m for m in messages if m["type"] == "page"}
    assert pages["Install"]["category"] == "Docs" and pages["Install"]["properties"]["step"] == 2
    assert pages["Signup"]["category"] == "Docs" and "0" not in pages["Signup"]["properties"]
    assert pages["Signup"]["properties"]["path"] == "/shop"
    assert events(messages, "Clicked")[0]["properties"] == {}
    (identify,) = [m for m in messages if m["type"] == "identify"]
    assert identify["userId"] == "u-1" and identify["traits"] == {"plan": "pro"}

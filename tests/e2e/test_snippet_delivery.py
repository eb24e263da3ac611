"""lakemail.js delivering in a real headless Chromium to a real collector on 127.0.0.1: batches within the
browser's 64 KB budget for keepalive requests and beacons (and the collector's 32 KB and 500 KB), a message
that is no JSON dropped without breaking the page, a 429/503's Retry-After honoured, and what could not be
delivered before the shopper left (the collector refusing, the beacon budget spent) sent by the next page."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.chromium import (
    Messages,
    Refusing,
    chromium,
    collector,
    console,
    events,
    landed_when,
    watch_posts,
)


def pages(messages: Messages) -> Messages:
    return [m for m in messages if m["type"] == "page"]


def page_landed(messages: Messages) -> bool:
    return bool(pages(messages))


def run_in_shop(
    tmp_path: Path, script: str, done: Callable[[Messages], object]
) -> tuple[Messages, list[str]]:
    """`script` run in the shop's page (raises if the snippet throws into it): what landed once `done`
    holds, and the page's console lines."""
    with collector(tmp_path) as url, chromium(tmp_path) as driver:
        driver.get(f"{url}/shop")
        driver.execute_script(script)
        return landed_when(tmp_path, done), console(driver)


def test_a_burst_over_the_browsers_keepalive_budget_lands_in_batches_under_it(tmp_path: Path) -> None:
    # 20 messages of 4 KB and 3 of 30 KB: one batch of 20 (the snippet's count) was 170 KB, which a
    # keepalive fetch may not carry (64 KB): it failed, was retried as it was forever, and held back every
    # later message. A message over the collector's 32 KB is dropped in the page, with a warning.
    burst = (
        "for (var i = 0; i < 20; i++) lakemail.track('Big', {i: i, pad: 'x'.repeat(4000)});"
        "for (var j = 0; j < 3; j++) lakemail.track('Heavy', {j: j, pad: 'y'.repeat(30000)});"
        "lakemail.track('Huge', {pad: 'z'.repeat(40000)}); lakemail.track('After', {});"
    )
    messages, lines = run_in_shop(
        tmp_path,
        burst,
        lambda m: len(events(m, "Big")) == 20 and len(events(m, "Heavy")) == 3 and events(m, "After"),
    )
    assert sorted(m["properties"]["i"] for m in events(messages, "Big")) == list(range(20))
    assert sorted(m["properties"]["j"] for m in events(messages, "Heavy")) == [0, 1, 2]
    assert events(messages, "After") and not events(messages, "Huge")
    assert any("Huge" in line and "32768" in line for line in lines), lines
    assert len({m["messageId"] for m in messages}) == len(messages)


def test_a_message_that_is_no_json_is_dropped_without_breaking_the_page(tmp_path: Path) -> None:
    # A circular object (a framework's state, a DOM event) or a BigInt in properties made JSON.stringify
    # throw at send time: into the shop's own call on the 20th message, and in the timer otherwise, where it
    # left the snippet "sending" for good: the page's every message, those before it included, was lost.
    calls = (
        "var loop = {}; loop.self = loop; lakemail.track('Loop', loop);"
        "lakemail.track('Big number', {n: BigInt(1)});"
        "for (var i = 0; i < 20; i++) lakemail.track('After', {i: i});"
    )
    # run_in_shop raises if the snippet throws into the caller
    messages, lines = run_in_shop(tmp_path, calls, lambda m: len(events(m, "After")) == 20 and page_landed(m))
    assert len(events(messages, "After")) == 20 and page_landed(messages)
    assert not events(messages, "Loop") and not events(messages, "Big number")
    assert any("Loop" in line for line in lines) and any("Big number" in line for line in lines), lines
    assert not any("Uncaught" in line for line in lines), lines


def test_a_refused_batch_waits_for_retry_after_before_anything_is_sent_again(tmp_path: Path) -> None:
    # The collector's 503 says Retry-After: 5; the snippet sent again after 2 s (its own backoff), and at
    # once whenever 20 more messages queued meanwhile.
    refusing = Refusing()
    with collector(tmp_path, refusing) as url, chromium(tmp_path) as driver:
        driver.get(f"{url}/shop")
        landed_when(tmp_path, page_landed)
        watch_posts(driver)
        refusing.on = True
        time.sleep(0.5)  # the probe (every 0.1 s) has seen it
        driver.execute_script("lakemail.track('Waiting', {}); lakemail.flush();")
        time.sleep(1)  # refused
        driver.execute_script("for (var i = 0; i < 25; i++) lakemail.track('Burst', {i: i});")
        refusing.on = False
        messages = landed_when(tmp_path, lambda m: events(m, "Waiting") and len(events(m, "Burst")) == 25)
        posts = driver.execute_script("return window.__posts;")
    assert len(events(messages, "Waiting")) == 1 and len(events(messages, "Burst")) == 25
    assert len(posts) >= 2
    assert min(later - posts[0] for later in posts[1:]) >= 4900, posts  # ms: Retry-After 5 s


def test_what_the_collector_refused_before_the_shopper_left_lands_from_a_later_page(tmp_path: Path) -> None:
    # The collector over its bound answers 503 for a while; a shopper goes on to the next page meanwhile. The
    # snippet sent what it held by beacon into the refusal and lost it: here the 'During' event and the
    # cart page's page and 'Cart Viewed'. Now it keeps them in localStorage; a later page sends them.
    refusing = Refusing()
    with collector(tmp_path, refusing) as url, chromium(tmp_path) as driver:
        driver.get(f"{url}/shop")
        landed_when(tmp_path, page_landed)
        refusing.on = True
        time.sleep(0.5)
        driver.execute_script("lakemail.track('During', {}); lakemail.flush();")
        time.sleep(1)  # refused
        driver.get(f"{url}/shop/cart")
        time.sleep(1.5)  # its messages are sent and refused too
        refusing.on = False
        driver.get(f"{url}/shop/signup")
        messages = landed_when(tmp_path, lambda m: events(m, "During") and len(pages(m)) == 3)
    assert len(events(messages, "During")) == 1 and len(events(messages, "Cart Viewed")) == 1
    assert sorted(m["properties"]["path"] for m in pages(messages)) == ["/shop", "/shop/cart", "/shop/signup"]


def test_a_queue_over_the_beacon_budget_when_the_shopper_leaves_lands_from_the_next_page(
    tmp_path: Path,
) -> None:
    # Four 30 KB messages queued when the shopper clicks on: one beacon of 120 KB is over the 64 KB a page may
    # have in flight as it goes, and so was the keepalive fetch tried instead: all four were lost.
    with collector(tmp_path) as url, chromium(tmp_path) as driver:
        driver.get(f"{url}/shop")
        landed_when(tmp_path, page_landed)
        driver.execute_script(
            "for (var i = 0; i < 4; i++) lakemail.track('Heavy', {i: i, pad: 'x'.repeat(30000)});"
        )
        driver.get(f"{url}/shop/cart")
        messages = landed_when(tmp_path, lambda m: len(events(m, "Heavy")) == 4)
    assert sorted(m["properties"]["i"] for m in events(messages, "Heavy")) == [0, 1, 2, 3]
    assert len({m["messageId"] for m in messages}) == len(messages)

"""`make run`'s shoppers read their email (#19): they open the sandbox's messages, click their links
through the collector's click redirect with their own browser, and some buy; decided by seed and send."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from orchestration.cli import main
from orchestration.supervisor import Plan, part_commands
from simulator.inbox import Arrival, InboxReader, Response, react
from simulator.population import new_shopper
from simulator.shoppers import ShopperSimulator

SINCE = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
LINK = "http://127.0.0.1:8000/c/{}.mac{}"


def message(n: int, to: str | None = None, minutes: float = 1.0) -> dict[str, object]:
    """A sandbox message as `GET /api/messages` lists it, with two click links."""
    links = [LINK.format(f"tok{n}x{i}", i) for i in range(2)]
    received = SINCE + timedelta(minutes=minutes)
    return {
        "id": f"m-{n}",
        "to": to or f"shopper{n}@example.com",
        "subject": "You left something",
        "html": "".join(f'<a href="{link}">x</a>' for link in links),
        "text": "\n".join(f"See it: {link}" for link in links)
        + "\nUnsubscribe: http://127.0.0.1:8025/unsubscribe/s-1.x",
        "received_at": received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "custom_args": {"send_id": f"s-{n:024x}", "kind": "abandoned_cart", "variant": "a"},
    }


def test_what_a_shopper_does_with_an_email_is_decided_by_the_seed_and_the_send() -> None:
    response = Response()
    mails = [message(n) for n in range(1, 4001)]
    first = [react(7, m, response) for m in mails]
    assert first == [react(7, m, response) for m in mails]  # the same seed: the same responses
    assert first != [react(8, m, response) for m in mails]
    reactions = [r for r in first if r is not None]
    clicked = [r for r in reactions if r.click is not None]
    assert len(reactions) == 4000
    assert 0.14 < len(clicked) / 4000 < 0.22  # opens 45 % x clicks 40 %
    assert 0.25 < sum(r.buys for r in clicked) / len(clicked) < 0.45  # only clickers buy, 35 % of them
    assert not any(r.buys for r in reactions if r.click is None)
    assert 0.07 < sum(r.scan is not None for r in reactions) / 4000 < 0.13
    assert all(
        r.click in (LINK.format(f"tok{r.shopper}x0", 0), LINK.format(f"tok{r.shopper}x1", 1)) for r in clicked
    )
    assert all(15.0 <= r.after <= 90.0 for r in reactions)  # never "too soon" for the collector


def test_an_email_to_someone_else_or_without_a_click_link_is_left_alone() -> None:
    assert react(0, message(1, to="someone@elsewhere.example"), Response()) is None
    assert react(0, {**message(1), "text": "no links", "html": "<p>none</p>"}, Response()) is None
    assert react(0, {**message(1), "custom_args": {}}, Response()) is None


def test_the_reader_clicks_delivered_emails_through_the_redirect_with_the_shoppers_browser() -> None:
    inbox_requests: list[httpx.Request] = []
    web_requests: list[httpx.Request] = []
    mails = [message(3), message(5, minutes=-5.0)]  # the second came before the reader started

    def sandbox(request: httpx.Request) -> httpx.Response:
        inbox_requests.append(request)
        return httpx.Response(200, json=mails)

    def collector(request: httpx.Request) -> httpx.Response:
        web_requests.append(request)
        return httpx.Response(302, headers={"Location": "https://shop.example/p/p-00001"})

    everyone = Response(opens=1.0, clicks=1.0, buys=1.0, scanned=1.0)
    inbox = httpx.Client(
        base_url="http://sandbox",
        headers={"Authorization": "Bearer k"},
        transport=httpx.MockTransport(sandbox),
    )
    web = httpx.Client(transport=httpx.MockTransport(collector))
    reader = InboxReader("http://sandbox", "k", 0, since=SINCE, response=everyone, inbox=inbox, web=web)
    reader.tick(100.0)
    assert (
        inbox_requests[0].url.path == "/api/messages"
        and inbox_requests[0].headers["Authorization"] == "Bearer k"
    )
    scanner = [(r.method, r.url.path) for r in web_requests]
    assert scanner == [("HEAD", "/c/tok3x0.mac0")]  # at once, and only the email from after `since`
    assert list(reader.arrivals()) == []
    expected = react(0, mails[0], everyone)
    assert expected is not None and expected.click is not None
    reader.tick(100.0 + expected.after - 0.1)
    assert len(web_requests) == 1  # not yet: a person reads it later
    reader.tick(100.0 + expected.after)
    click = web_requests[1]
    assert (click.method, str(click.url)) == ("GET", expected.click)
    assert click.headers["User-Agent"] == new_shopper(0, 3).user_agent  # a browser, not python-httpx
    assert "Authorization" not in click.headers  # the sandbox's key never leaves for a link
    assert list(reader.arrivals()) == [Arrival(3, "abandoned_cart", True)]
    reader.tick(1000.0)  # the inbox again: the same email is not read, clicked or bought twice
    assert len(inbox_requests) >= 3 and len(web_requests) == 2 and list(reader.arrivals()) == []
    assert reader.counts == {"read": 1, "scanned": 1, "clicked": 1}


def test_an_inbox_that_cannot_be_read_is_counted_and_tried_again() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    inbox = httpx.Client(base_url="http://sandbox", transport=httpx.MockTransport(down))
    reader = InboxReader("http://sandbox", "k", 0, since=SINCE, inbox=inbox)
    reader.tick(0.0)
    reader.tick(1.0)  # within the poll interval: not asked again
    reader.tick(10.0)
    assert reader.counts == {"inbox_errors": 2}


def messages_of(sim: ShopperSimulator, steps: int) -> list[dict[str, Any]]:
    """The ok messages of `steps` steps of 20 lines, one simulated second apart."""
    start = SINCE
    found = []
    for i in range(1, steps + 1):
        for line in sim.step(start + timedelta(seconds=i), 20):
            if line.kind == "ok":
                found.append(orjson.loads(line.data))
    return found


def test_a_shopper_who_clicks_and_buys_comes_from_the_email_and_orders() -> None:
    sim = ShopperSimulator(users=200, seed=4, start=SINCE)
    sim.from_email(42, "abandoned_cart", buys=True)
    sim.from_email(43, "welcome", buys=False)
    sim.from_email(999, "welcome", buys=True)  # no such shopper: nothing happens
    messages = messages_of(sim, 60)
    buyer = [m for m in messages if m.get("anonymousId") == new_shopper(4, 42).anonymous_id]
    orders = [m for m in buyer if m.get("event") == "Order Completed"]
    assert len(orders) >= 1 and orders[0]["userId"] == "u-000042"
    assert orders[0]["properties"]["revenue"] > 0
    campaign = buyer[0]["context"]["campaign"]
    assert campaign == {"source": "lakemail", "medium": "email", "name": "abandoned_cart"}
    looker = [m for m in messages if m.get("anonymousId") == new_shopper(4, 43).anonymous_id]
    assert any(m.get("event") == "Product Viewed" for m in looker)
    again = ShopperSimulator(users=200, seed=4, start=SINCE)
    again.from_email(42, "abandoned_cart", buys=True)
    again.from_email(43, "welcome", buys=False)
    again.from_email(999, "welcome", buys=True)
    assert messages_of(again, 60) == messages  # deterministic per seed


def test_make_runs_shoppers_read_the_sandboxs_inbox() -> None:
    plan = Plan(3000, 200, 20.0, True, 8025, True, True, True)
    simulator = part_commands(plan)["simulator"]
    assert simulator[simulator.index("--inbox") + 1] == "http://127.0.0.1:8025"
    assert "--inbox" not in part_commands(replace(plan, sandbox=False))["simulator"]  # a real provider's


def test_the_inbox_is_read_in_real_time_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKEMAIL_HOME", str(tmp_path))
    fast = ["simulate", "--users", "5", "--rate", "10", "--duration", "1", "--fast"]
    assert main([*fast, "--inbox", "http://127.0.0.1:8025"]) == 2
    assert "--inbox" in capsys.readouterr().err
    assert not (tmp_path / "landing").exists()  # refused before anything landed

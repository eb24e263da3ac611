"""Click tracking (#19): every marketing link of every email goes through the signed redirect, which lands
an `Email Link Clicked` event and goes only where the token says; bots are flagged, not counted."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.collector.app import create_collector_app
from services.collector.backlog import Backlog, BacklogLimits
from tests.unit.test_collector import config, landed
from tests.unit.test_render import RENDERER, UNSUBSCRIBE, content
from transforms.sends.clicks import (
    MAX_TOKEN_CHARS,
    ClickLink,
    _b64,
    _mac,
    bot_reason,
    click_token,
    tracked_context,
    verify_click_token,
)
from transforms.sends.content import KINDS
from transforms.sends.safety import URL_LIMIT, safe_url

SECRET = "test-secret"
NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
LINK = ClickLink(
    "s-abc", "t-abc", "abandoned_cart", "b", "cart", "https://shop.example/cart?x=1", 1_700_000_000
)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"


def test_a_token_says_what_it_was_made_for_and_nothing_else_passes() -> None:
    token = click_token(LINK, SECRET)
    assert verify_click_token(token, SECRET) == LINK
    payload, _, mac = token.rpartition(".")
    assert verify_click_token(token, "another-secret") is None
    assert verify_click_token(payload[:-2] + "AA." + mac, SECRET) is None  # tampered with
    assert verify_click_token("s-abc.xyz", SECRET) is None
    for url in ("http://shop.example/", "javascript:alert(1)", "https://user@evil.example/"):
        assert (
            verify_click_token(click_token(replace(LINK, url=url), SECRET), SECRET) is None
        )  # signed, unsafe
    assert verify_click_token(click_token(replace(LINK, role="other"), SECRET), SECRET) is None


@pytest.mark.parametrize(
    ("method", "agent", "after", "reason"),
    [
        ("GET", BROWSER, 120, None),
        ("HEAD", BROWSER, 120, "head_request"),
        ("GET", "", 120, "no_user_agent"),
        ("GET", "Mozilla/5.0 (compatible; Barracuda Sentinel)", 120, "scanner_user_agent"),
        ("GET", "python-requests/2.32", 120, "scanner_user_agent"),
        ("GET", "Mozilla/5.0 (compatible; bingbot/2.0)", 120, "scanner_user_agent"),
        ("GET", BROWSER, 3, "too_soon_after_delivery"),
    ],
)
def test_machines_are_told_from_people(method: str, agent: str, after: float, reason: str | None) -> None:
    issued = NOW - timedelta(seconds=after)
    assert bot_reason(method, agent, issued.timestamp(), NOW) == reason


def tracked(url: str, role: str) -> str:
    return "https://click.example/c/" + click_token(replace(LINK, url=url, role=role), SECRET)


@pytest.mark.parametrize("kind", KINDS)
def test_every_marketing_link_of_every_kind_goes_through_the_redirect(kind: str) -> None:
    made = content(kind)
    context = tracked_context(made.context, kind, tracked)
    parts = RENDERER.render(
        replace(made, context=context), kind=kind, variant="a", unsubscribe_url=UNSUBSCRIBE
    )
    hrefs = re.findall(r'href="([^"]+)"', parts.html)
    links = [h for h in hrefs if h != UNSUBSCRIBE.replace("&", "&amp;")]
    assert links and all(h.startswith("https://click.example/c/") for h in links)
    roles = {verify_click_token(h.rsplit("/", 1)[1], SECRET).role for h in links}  # type: ignore[union-attr]
    assert "recommendation" in roles and "home" in roles
    assert ("cart" in roles) == (kind in ("abandoned_cart", "abandoned_checkout"))
    text_links = re.findall(r"https://\S+", parts.text)
    assert all(u.startswith("https://click.example/c/") or u == UNSUBSCRIBE for u in text_links)


def click(tmp_path: Path, path: str, method: str = "GET", agent: str = BROWSER) -> httpx.Response:
    cfg = config(tmp_path, click_secret=SECRET, clock=lambda: NOW)

    async def main() -> httpx.Response:
        app = create_collector_app(cfg)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
                return await client.request(method, path, headers={"User-Agent": agent})

    return asyncio.run(main())


def test_a_click_lands_its_event_and_redirects_only_to_the_signed_url(tmp_path: Path) -> None:
    link = replace(LINK, issued_at=(NOW - timedelta(minutes=5)).timestamp())
    answer = click(tmp_path, "/c/" + click_token(link, SECRET))
    assert answer.status_code == 302 and answer.headers["location"] == link.url
    [event] = landed(tmp_path)
    assert event["event"] == "Email Link Clicked" and event["anonymousId"] == "s-abc"
    assert event["properties"] == {
        "send_id": "s-abc",
        "trigger_id": "t-abc",
        "kind": "abandoned_cart",
        "variant": "b",
        "role": "cart",
        "link_url": link.url,
        "bot": False,
    }
    assert event["context"]["userAgent"] == BROWSER and event["receivedAt"] == "2026-11-20T09:30:00.000Z"


def test_over_the_backlog_bound_the_shopper_is_redirected_the_click_counted_not_landed(
    tmp_path: Path,
) -> None:
    """Tracking answered 503 over the bound, but each click still landed a file (found by review)."""
    over = Backlog(files=3, bytes=0, free_bytes=10**12)
    cfg = config(tmp_path, click_secret=SECRET, probe=lambda: over, limits=BacklogLimits(max_files=2))
    path = "/c/" + click_token(replace(LINK, issued_at=(NOW - timedelta(minutes=5)).timestamp()), SECRET)

    async def main() -> tuple[list[httpx.Response], str]:
        app = create_collector_app(cfg)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
                clicks = [await client.get(path, headers={"User-Agent": BROWSER}) for _ in range(3)]
                return clicks, (await client.get("/metrics")).text

    clicks, metrics = asyncio.run(main())
    assert [(c.status_code, c.headers["location"]) for c in clicks] == [(302, LINK.url)] * 3
    assert landed(tmp_path) == []
    assert 'lakemail_collector_unlanded_clicks_total{reason="backlog_full"} 3.0' in metrics


def test_a_scanner_is_redirected_and_flagged_a_forged_token_is_not_found(tmp_path: Path) -> None:
    head = click(tmp_path, "/c/" + click_token(LINK, SECRET), method="HEAD")
    assert head.status_code == 302
    [event] = landed(tmp_path)
    assert event["properties"]["bot"] is True and event["properties"]["bot_reason"] == "head_request"
    forged = click_token(replace(LINK, url="https://evil.example/"), "not-our-secret")
    for path in ("/c/" + forged, "/c/nothing", "/c/" + click_token(LINK, SECRET) + "x"):
        answer = click(tmp_path, path)
        assert answer.status_code == 404 and "location" not in answer.headers
    assert len(landed(tmp_path)) == 1


JAPANESE = "https://shop.example.jp/商品/" + "北欧デザインのセラミックマグカップ" * 30  # 537 characters
WIDEST = "https://shop.example/" + "😀" * (URL_LIMIT - len("https://shop.example/"))  # 4 bytes each


@pytest.mark.parametrize("url", [JAPANESE, WIDEST], ids=["japanese", "widest"])
def test_every_link_safe_url_keeps_makes_a_token_the_collector_takes(tmp_path: Path, url: str) -> None:
    """A 537-character Japanese product link made a 4317-character token, over the collector's 4096: the
    click was a 404, the shopper never reached the product (found by review 23b)."""
    assert safe_url(url, "") == url
    link = replace(LINK, url=url, issued_at=(NOW - timedelta(minutes=5)).timestamp())
    token = click_token(link, SECRET)
    assert len(token) <= MAX_TOKEN_CHARS and verify_click_token(token, SECRET) == link
    answer = click(tmp_path, "/c/" + token)
    assert answer.status_code == 302 and httpx.URL(answer.headers["location"]) == httpx.URL(url)
    [event] = landed(tmp_path)
    assert event["properties"]["link_url"] == url


def test_a_token_made_with_escaped_json_still_verifies() -> None:
    """Emails already sent carry tokens whose JSON was ASCII-escaped: their clicks still count."""
    link = replace(LINK, url="https://shop.example.jp/商品/マグカップ")
    fields = [
        link.send_id,
        link.trigger_id,
        link.kind,
        link.variant,
        link.role,
        link.url,
        int(link.issued_at),
    ]
    payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
    assert "\\u" in json.dumps(fields)
    assert verify_click_token(f"{payload}.{_mac(payload, SECRET)}", SECRET) == link

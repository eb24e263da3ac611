"""Segment's `context` on the simulated messages, and where a session comes from.

A session is on the shop's website (analytics.js: `context.page` with path, url, referrer, search and
title) or, for a share of the shoppers on a phone, in the shop's app (analytics-ios / -android: `screen`
calls, `context.app` and `context.os`, no page). A share of the website sessions arrives from a
marketing campaign: its UTM parameters are in the landing page's URL and, as a shop that keeps them for
the session does, in `context.campaign` of every message of the session. Every message carries the
library, locale, timezone, userAgent and the shopper's IP address.

A share of the sessions lands as a Segment export would have it (`processed`): `timestamp` already
corrected for the device's clock, `originalTimestamp` the device's time, `sentAt` and `receivedAt`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simulator.population import Shopper
from simulator.segment import Message

APP_SHARE = 0.35  # of the sessions of shoppers on a phone: in the shop's app, not on the website
CAMPAIGN_SHARE = 0.30  # of the website sessions: arrived from a marketing campaign (UTM parameters)
PROCESSED_SHARE = 0.25  # of the sessions: landed from a Segment export (with `originalTimestamp`)
WEB_LIBRARY = {"name": "analytics.js", "version": "npm:next-1.70.0"}
APP = {"name": "Shop Example", "version": "3.4.1", "build": "341", "namespace": "example.shop"}
# Shoppers on a phone (by their user agent) and the app library and operating system of that phone.
PHONES: tuple[tuple[str, Message, Message], ...] = (
    ("iPhone", {"name": "analytics-ios", "version": "4.1.8"}, {"name": "iOS", "version": "18.1"}),
    ("Android", {"name": "analytics-android", "version": "4.11.3"}, {"name": "Android", "version": "15"}),
)
# (context.campaign, referrer of the landing page)
CAMPAIGNS: tuple[tuple[dict[str, str], str], ...] = (
    (
        {"source": "google", "medium": "cpc", "name": "winter_sale", "term": "winter jacket"},
        "https://www.google.com/",
    ),
    ({"source": "newsletter", "medium": "email", "name": "weekly_picks", "content": "hero"}, ""),
    ({"source": "instagram", "medium": "social", "name": "new_in"}, "https://l.instagram.com/"),
    ({"source": "facebook", "medium": "paid_social", "name": "retargeting"}, "https://www.facebook.com/"),
    (
        {"source": "partner_blog", "medium": "affiliate", "name": "gift_guide"},
        "https://blog.partner.example/",
    ),
)
UTM = (("source", "utm_source"), ("medium", "utm_medium"), ("name", "utm_campaign"), ("term", "utm_term"))
REFERRERS = ("", "", "https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a session comes from: app or website, a Segment export or not, its context and first page."""

    app: bool
    processed: bool
    base: Message  # the session's context but its page
    referrer: str  # of the first page
    search: str  # of the first page: the campaign's UTM parameters, or ""


def draw_origin(shopper: Shopper, rnd: Callable[[], float]) -> Origin:
    """A new session's origin, drawn from the simulation's random stream."""
    phone = next((p for p in PHONES if p[0] in shopper.user_agent), None)
    app = phone is not None and rnd() < APP_SHARE
    processed = rnd() < PROCESSED_SHARE
    if app:
        return Origin(True, processed, base_context(shopper, phone), "", "")
    r = rnd()
    if r < CAMPAIGN_SHARE:
        campaign, referrer = CAMPAIGNS[int(r / CAMPAIGN_SHARE * len(CAMPAIGNS))]
        search = "?" + "&".join(f"{utm}={campaign[k].replace(' ', '+')}" for k, utm in UTM if k in campaign)
        return Origin(False, processed, base_context(shopper, None, campaign), referrer, search)
    referrer = REFERRERS[int((r - CAMPAIGN_SHARE) / (1 - CAMPAIGN_SHARE) * len(REFERRERS))]
    return Origin(False, processed, base_context(shopper), referrer, "")


def email_origin(shopper: Shopper, kind: str) -> Origin:
    """A website session that arrived from a lakemail email's link (the campaign is the trigger kind)."""
    campaign = {"source": "lakemail", "medium": "email", "name": kind or "email"}
    search = "?" + "&".join(f"{utm}={campaign[k]}" for k, utm in UTM if k in campaign)
    return Origin(False, False, base_context(shopper, None, campaign), "", search)


def web_origin(shopper: Shopper) -> Origin:
    """A website session that arrived directly, as the shopper's device sends it (no draw)."""
    return Origin(False, False, base_context(shopper), "", "")


def base_context(
    shopper: Shopper, phone: tuple[str, Message, Message] | None = None, campaign: Message | None = None
) -> Message:
    """The context every message of a session carries (the page aside)."""
    context: Message = {"library": WEB_LIBRARY if phone is None else phone[1]}
    if phone is not None:
        context |= {"app": APP, "os": phone[2]}
    context |= {
        "locale": shopper.locale,
        "timezone": shopper.timezone,
        "userAgent": shopper.user_agent,
        "ip": shopper.ip,
    }
    if campaign is not None:
        context["campaign"] = campaign
    return context


def page_context(page: dict[str, str], referrer: str, search: str) -> dict[str, str]:
    """analytics.js's `context.page` (and `page` properties) for `page` of the shop."""
    return {
        "path": page["path"],
        "referrer": referrer,
        "search": search,
        "title": page["title"],
        "url": page["url"] + search,
    }

"""The simulator speaks Segment's spec (issue 14): spec-shaped checkouts and orders, messages as a
Segment export has them, screen / group / alias, and `context`; and the ingest takes all of it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
import polars as pl
import pytest

from simulator.segment import SimLine
from simulator.shoppers import ShopperSimulator
from transforms.ingest.events import identity_edges
from transforms.ingest.files import FileResult, process_file

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LANDED = START + timedelta(minutes=15)
CHECKOUT_EVENTS = ("Checkout Started", "Order Completed")


@cache
def simulated(cart_ids: bool = False) -> tuple[SimLine, ...]:
    """15 simulated minutes of 300 shoppers with the default dirt."""
    sim = ShopperSimulator(users=300, seed=21, start=START, cart_ids=cart_ids)
    return tuple(
        line for minute in range(15) for line in sim.step(START + timedelta(minutes=minute + 1), 800)
    )


def messages(cart_ids: bool = False) -> list[dict[str, Any]]:
    return [orjson.loads(line.data) for line in simulated(cart_ids) if line.kind == "ok"]


@cache
def ingested() -> FileResult:
    data = b"\n".join(line.data for line in simulated()) + b"\n"
    return process_file(
        data, source_file="events/sim.ndjson", landed_at=LANDED, ingested_at=LANDED, batch_id=1
    )


def share(count: int, total: int) -> float:
    assert total > 0
    return count / total


@pytest.mark.parametrize("cart_ids", [False, True])
def test_checkouts_and_orders_carry_cart_id_only_when_the_shop_adds_it(cart_ids: bool) -> None:
    found = [m["properties"] for m in messages(cart_ids) if m.get("event") in CHECKOUT_EVENTS]
    assert len(found) > 20
    for properties in found:
        assert {"order_id", "checkout_id", "products", "revenue", "total", "currency"} <= set(properties)
        assert properties["products"] and all("product_id" in p for p in properties["products"])
        assert ("cart_id" in properties) is cart_ids


def test_a_share_of_messages_is_as_a_segment_export_has_it() -> None:
    """`originalTimestamp` the device's time, `timestamp` corrected with `sentAt` and `receivedAt`."""
    found = messages()
    processed = [m for m in found if "originalTimestamp" in m]
    assert 0.15 < share(len(processed), len(found)) < 0.4
    skewed = 0
    for m in processed:
        at = {
            key: datetime.fromisoformat(m[key])
            for key in ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
        }
        assert at["timestamp"] == at["receivedAt"] - (at["sentAt"] - at["originalTimestamp"])
        skewed += at["timestamp"] != at["originalTimestamp"]
    assert skewed > 0  # a device clock that was off, already corrected


def test_screen_group_and_alias_messages_appear_in_a_realistic_mix() -> None:
    types = Counter(m["type"] for m in messages())
    total = sum(types.values())
    assert 0.005 < share(types["screen"], total) < 0.08  # the shop's app, a small share
    assert types["alias"] > 20 and types["group"] > 5
    assert types["track"] > types["page"] > types["screen"]


def test_messages_carry_segment_context() -> None:
    found = messages()
    contexts = [m["context"] for m in found]
    assert all({"library", "locale", "timezone", "userAgent", "ip"} <= set(c) for c in contexts)
    libraries = Counter(c["library"]["name"] for c in contexts)
    assert set(libraries) == {"analytics.js", "analytics-ios", "analytics-android"}
    pages = [c["page"] for c in contexts if "page" in c]
    assert all(set(p) == {"path", "url", "referrer", "search", "title"} for p in pages)
    assert any(p["referrer"].startswith("https://shop.example/") for p in pages)
    assert any(p["search"].startswith("?utm_source=") for p in pages)
    campaigns = [c["campaign"] for c in contexts if "campaign" in c]
    assert 0.1 < share(len(campaigns), len(found)) < 0.5
    assert all({"source", "medium", "name"} <= set(c) for c in campaigns)


def test_the_ingest_accepts_every_message_but_the_intended_dirt() -> None:
    result = ingested()
    malformed = Counter(line.reason for line in simulated() if line.kind == "malformed")
    assert dict(Counter(result.quarantine["reason"].to_list())) == dict(malformed)
    assert result.events.height == sum(line.kind != "malformed" for line in simulated())
    assert set(result.events["event_type"]) == {"track", "identify", "page", "screen", "group", "alias"}


def test_alias_lines_give_identity_edges() -> None:
    aliases = {(m["previousId"], m["userId"]) for m in messages() if m["type"] == "alias"}
    events = ingested().events
    alone = events.filter(pl.col("event_type") == "alias").with_columns(anonymous_id=pl.lit(None, pl.String))
    edges = set(identity_edges(alone).select("anonymous_id", "user_id").iter_rows())
    assert len(aliases) > 20 and edges == aliases
    assert aliases <= set(identity_edges(events).select("anonymous_id", "user_id").iter_rows())


def test_campaign_and_context_columns_are_filled_after_ingest() -> None:
    events = ingested().events
    filled = events.select(pl.all().is_not_null().mean())
    assert 0.1 < filled["context_campaign_source"].item() < 0.5
    assert filled["context_campaign_medium"].item() == filled["context_campaign_name"].item()
    assert filled["context_library_name"].item() == filled["context_ip"].item() == 1.0
    assert 0.7 < filled["context_page_referrer"].item() < 1.0  # app messages have no page
    assert 0.15 < filled["original_timestamp"].item() < 0.4
    sources = set(events["context_campaign_source"].drop_nulls())
    assert {"google", "newsletter"} <= sources
    assert events["context_ip"].str.contains(r"(\.0|::)$").all()  # kept only truncated

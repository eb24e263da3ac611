"""Segment's own documented payloads (tests/fixtures/segment/README.md) go through the ingest whole.

Every event of the E-commerce v2 spec, as `analytics-python` sends it, and the complete example of
each core call are accepted without quarantine, with the fields the trigger rules need extracted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from transforms.ingest.events import identity_edges
from transforms.ingest.files import FileResult, assemble_batch, process_file
from transforms.profiles.partials import partials

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "segment"
LANDED = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
SPEC_EVENTS = [
    "Products Searched",
    "Product List Viewed",
    "Product List Filtered",
    "Promotion Viewed",
    "Promotion Clicked",
    "Product Clicked",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Checkout Step Viewed",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Order Updated",
    "Order Completed",
    "Order Refunded",
    "Order Cancelled",
    "Coupon Entered",
    "Coupon Applied",
    "Coupon Denied",
    "Coupon Removed",
    "Product Added to Wishlist",
    "Product Removed from Wishlist",
    "Wishlist Product Added to Cart",
    "Product Shared",
    "Cart Shared",
    "Product Reviewed",
]
MONOPOLY, UNO = "507f1f77bcf86cd799439011", "505bd76785ebb509fc183733"
ORDER = "50314b8e9bcf000000000000"
COUPON_CART = "923923929jd29jd92dj9j93fj3"
PRODUCT = {"product_id": MONOPOLY, "sku": "G-32", "price": 18.99, "category": "Games", "brand": "Hasbro"}
# What each event's rule-relevant columns hold, from the documented example (unlisted columns: null).
EXPECTED: dict[str, dict[str, object]] = {
    "Products Searched": {"query": "blue roses"},
    "Product List Viewed": {"category": "Deals", "products": [MONOPOLY, UNO]},
    "Product List Filtered": {"products": ["507f1f77bcf86cd798439011", "505bd76785ebb509fc283733"]},
    "Promotion Viewed": {},
    "Promotion Clicked": {},
    "Product Clicked": {**PRODUCT, "quantity": 1},
    "Product Viewed": {**PRODUCT, "quantity": 1, "currency": "usd"},
    "Product Added": {**PRODUCT, "quantity": 1, "cart_id": "skdjsidjsdkdj29j"},
    "Product Removed": {**PRODUCT, "quantity": 1, "cart_id": "ksjdj92dj29dj92d2j"},
    "Cart Viewed": {"cart_id": "d92jd29jd92jd29j92d92jd", "products": [MONOPOLY, UNO]},
    "Checkout Started": {"order_id": ORDER, "revenue": 25.0, "currency": "USD", "products": [MONOPOLY, UNO]},
    "Checkout Step Viewed": {"checkout_id": ORDER},
    "Checkout Step Completed": {"checkout_id": ORDER},
    "Payment Info Entered": {
        "checkout_id": "39f39fj39f3jf93fj9fj39fj3f",
        "order_id": "dkfsjidfjsdifsdfksdjfkdsfjsdfkdsf",
    },
    "Order Updated": {
        "order_id": ORDER,
        "total": 27.5,
        "revenue": 25.0,
        "currency": "USD",
        "products": [MONOPOLY, UNO],
    },
    "Order Completed": {
        "checkout_id": "fksdjfsdjfisjf9sdfjsd9f",
        "order_id": ORDER,
        "total": 27.5,
        "revenue": 22.5,
        "currency": "USD",
        "products": [MONOPOLY, UNO],
    },
    "Order Refunded": {"order_id": ORDER, "total": 30.0, "currency": "USD", "products": [MONOPOLY, UNO]},
    "Order Cancelled": {
        "order_id": ORDER,
        "total": 30.0,
        "revenue": 25.0,
        "currency": "USD",
        "products": [MONOPOLY, UNO],
    },
    "Coupon Entered": {"order_id": ORDER, "cart_id": COUPON_CART},
    "Coupon Applied": {"order_id": ORDER, "cart_id": COUPON_CART},
    "Coupon Denied": {"order_id": ORDER, "cart_id": COUPON_CART},
    "Coupon Removed": {"order_id": ORDER, "cart_id": COUPON_CART},
    "Product Added to Wishlist": {**PRODUCT, "quantity": 1},
    "Product Removed from Wishlist": {**PRODUCT, "quantity": 1},
    "Wishlist Product Added to Cart": {**PRODUCT, "quantity": 1, "cart_id": "99j2d92j9dj29dj29d2d"},
    "Product Shared": PRODUCT,
    "Cart Shared": {"cart_id": "d92jd29jd92jd29j92d92jd", "products": [MONOPOLY, UNO]},
    "Product Reviewed": {"product_id": MONOPOLY},
}
RULE_COLUMNS = (
    "product_id",
    "sku",
    "category",
    "brand",
    "price",
    "quantity",
    "cart_id",
    "order_id",
    "checkout_id",
    "total",
    "revenue",
    "currency",
    "query",
    "products",
)


def ingest(name: str) -> FileResult:
    data = (FIXTURES / name).read_bytes()
    return process_file(data, source_file=f"events/{name}", landed_at=LANDED, ingested_at=LANDED, batch_id=1)


@pytest.fixture(scope="module")
def ecommerce() -> pl.DataFrame:
    result = ingest("ecommerce_v2.ndjson")
    assert result.quarantine.select("source_line", "reason", "detail").rows() == []
    assert result.lines == result.events.height == len(SPEC_EVENTS)
    return result.events


def test_every_ecommerce_v2_event_is_accepted_in_the_spec_order(ecommerce: pl.DataFrame) -> None:
    assert ecommerce["event_name"].to_list() == SPEC_EVENTS
    assert set(ecommerce["user_id"]) == {"97980cfea0067"}
    assert ecommerce["anonymous_id"].null_count() == len(SPEC_EVENTS)
    assert set(ecommerce["context_library_name"]) == {"analytics-python"}


@pytest.mark.parametrize("event", SPEC_EVENTS)
def test_the_fields_each_rule_needs_are_extracted(ecommerce: pl.DataFrame, event: str) -> None:
    row = ecommerce.filter(pl.col("event_name") == event).row(0, named=True)
    found = {c: row[c] for c in RULE_COLUMNS if row[c] is not None}
    if "products" in found:
        found["products"] = [p["product_id"] for p in orjson.loads(found["products"])]
    assert found == EXPECTED[event]


def test_the_batch_sent_at_the_collector_copied_corrects_the_clock() -> None:
    """timestamp 12:00:00.000, sentAt 12:00:05.123456 (client clock), receivedAt 12:00:05.203 (server)."""
    first = ingest("ecommerce_v2.ndjson").events.row(0, named=True)
    assert first["sent_at"] == datetime(2026, 11, 20, 12, 0, 5, 123456, tzinfo=UTC)
    assert first["event_ts"] == datetime(2026, 11, 20, 12, 0, 0, 79544, tzinfo=UTC)


def test_the_state_the_rules_read_holds_the_spec_cart_and_order(ecommerce: pl.DataFrame) -> None:
    state = partials(ecommerce).row(0, named=True)
    carts = {c["cart_id"] for c in state["carts"]}
    assert {"skdjsidjsdkdj29j", "ksjdj92dj29dj92d2j", "99j2d92j9dj29dj29d2d"} <= carts
    order = next(o for o in state["orders"] if o["order_id"] == ORDER)
    assert (order["revenue"], order["products"]) == (22.5, [MONOPOLY, UNO])
    assert [v["product_id"] for v in state["views"]] == [MONOPOLY]
    assert [s["query"] for s in state["searches"]] == ["blue roses"]


@pytest.fixture(scope="module")
def calls() -> FileResult:
    return ingest("spec_calls.ndjson")


def test_every_core_call_example_is_accepted(calls: FileResult) -> None:
    assert calls.quarantine.select("source_line", "reason", "detail").rows() == []
    events = calls.events
    assert events["event_type"].to_list() == [
        "identify",
        "page",
        "screen",
        "group",
        "alias",
        "track",
        "track",
    ]
    assert events.select("page_name", "group_id", "previous_id").rows()[1:5] == [
        ("Home", None, None),
        ("Home", None, None),
        (None, "0e8c78ea9d97a7b8185e8632", None),
        (None, None, "39239-239239-239239-23923"),
    ]
    assert orjson.loads(events["traits"][0])["email"] == "peter@example.com"
    assert orjson.loads(events["properties"][1]) == {
        "title": "Welcome | Initech",
        "url": "http://www.example.com",
    }


def test_the_docs_track_example_keeps_the_time_segment_corrected(calls: FileResult) -> None:
    track = calls.events.row(5, named=True)
    assert track["event_ts"] == datetime(2015, 12, 12, 19, 11, 1, 249000, tzinfo=UTC)
    assert track["original_timestamp"] == datetime(2015, 12, 12, 19, 11, 1, 152000, tzinfo=UTC)
    assert (track["context_page_path"], track["context_page_url"]) == (
        "/academy/",
        "https://segment.com/academy/",
    )


def test_the_common_fields_example_fills_the_context_columns(calls: FileResult) -> None:
    row = calls.events.row(6, named=True)
    assert {k: row[k] for k in row if k.startswith("context_")} == {
        "context_ip": "8.8.8.0",
        "context_user_agent": (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/113.0.0.0 Safari/537.36"
        ),
        "context_library_name": "analytics.js",
        "context_campaign_source": "Newsletter",
        "context_campaign_medium": "email",
        "context_campaign_name": "TPS Innovation Newsletter",
        "context_page_url": "https://segment.com/academy/",
        "context_page_path": "/academy/",
        "context_page_referrer": "",
    }
    assert (row["locale"], row["timezone"]) == ("en-US", "Europe/Amsterdam")
    context = orjson.loads(row["context"])
    assert context["device"]["model"] == "iPhone7,2" and context["ip"] == "8.8.8.0"


def test_no_raw_ip_of_the_examples_reaches_the_events(calls: FileResult) -> None:
    text = calls.events.write_ndjson()
    assert "8.8.8.8" not in text and "108.0.78.21" not in text
    assert calls.events["context_ip"].to_list() == ["8.8.8.0"] * 5 + ["108.0.78.0", "8.8.8.0"]


def test_the_alias_example_links_previous_and_anonymous_ids_to_its_user(calls: FileResult) -> None:
    edges = identity_edges(calls.events).select("anonymous_id", "user_id").rows()
    assert edges == [
        ("23adfd82-aa0f-45a7-a756-24f2a7a4c895", "AiUGstSDIg"),
        ("39239-239239-239239-23923", "507f191e81"),
        ("3a12eab0-bca7-11e4-8dfc-aa07a5b093db", "97980cfea0067"),
        ("507f191e810c19729de860ea", "507f191e81"),
        ("507f191e810c19729de860ea", "97980cfea0067"),
    ]


def test_the_docs_reuse_of_one_message_id_counts_as_duplicates(calls: FileResult) -> None:
    counts = assemble_batch([calls], pl.Series([], dtype=pl.String)).counts
    assert counts.select("lines", "accepted", "quarantined", "duplicates").rows() == [(7, 2, 0, 5)]

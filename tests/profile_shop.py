"""A small shop in a real lake and state store for the profile API's tests: events, catalog and CRM rows
landed as producers land them, taken by the real ingest, the store made by `lakemail state rebuild`'s
code (the micro-batch does not write the store yet)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.state.rebuild import rebuild

API_KEY = "profile-api-test-key-0123456789"
NOW = datetime.now(UTC).replace(microsecond=0)
ADA, NONAME, GHOST = "u-ada-lovelace", "u-noname-9", "anon-ghost-1"
ADA_ANON = "anon-ada-browser"
PRODUCTS = [
    {
        "product_id": "p-1",
        "image_url": "https://shop.example/p-1.jpg",
        "name": "Sandal",
        "category": "shoes",
        "price": 59.9,
        "stock": 3,
    },
    {
        "product_id": "p-2",
        "image_url": "https://shop.example/p-2.jpg",
        "name": "Boot",
        "category": "shoes",
        "price": 120.0,
        "stock": 5,
    },
    {
        "product_id": "p-3",
        "image_url": "https://shop.example/p-3.jpg",
        "name": "Loafer",
        "category": "shoes",
        "price": 80.0,
        "stock": 0,
    },
    {
        "product_id": "p-4",
        "image_url": "https://shop.example/p-4.jpg",
        "name": "Scarf",
        "category": "accessories",
        "price": 20.0,
        "stock": 9,
    },
]
_count = iter(range(1, 1_000_000))


def message(
    kind: str, minutes: float, *, user: str | None = None, anon: str | None = None, **fields: Any
) -> bytes:
    """A Segment message `minutes` before NOW; `kind` is `identify` or a track event name."""
    when = (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {"messageId": f"pm-{next(_count)}", "timestamp": when}
    body |= {"userId": user} if user else {}
    body |= {"anonymousId": anon} if anon else {}
    if kind == "identify":
        body |= {"type": "identify", "traits": fields}
    else:
        body |= {"type": "track", "event": kind, "properties": fields}
    return orjson.dumps(body)


def added(minutes: float, product: str, cart: str, **who: str) -> bytes:
    row = next(p for p in PRODUCTS if p["product_id"] == product)
    return message(
        "Product Added", minutes, cart_id=cart, product_id=product, name=row["name"],
        category=row["category"], price=row["price"], quantity=1, **who,
    )  # fmt: skip


def first_batch() -> list[bytes]:
    """Ada carts anonymously, then signs up (the identify stitches her cart); a shopper without a
    first name carts a product the catalog does not know; a visitor who never identifies browses."""
    return [
        message("Product Viewed", 50, anon=ADA_ANON, product_id="p-1", category="shoes"),
        added(45, "p-1", "cart-ada", anon=ADA_ANON),
        message("identify", 40, user=ADA, anon=ADA_ANON, email="ada@example.com", first_name="Ada",
                marketing_consent=True),
        message("identify", 30, user=NONAME, email="noname@example.com", marketing_consent=True),
        message("Product Added", 25, user=NONAME, cart_id="cart-nn", product_id="p-gone", name="Old Hat",
                category="hats", price=15.0, quantity=2),
        message("Product Viewed", 20, anon=GHOST, product_id="p-2", category="shoes"),
    ]  # fmt: skip


def build_shop(lake: LakeResource, landing: LandingResource, state: StateResource) -> None:
    """Land and ingest the first batch with the catalog and a CRM row, then rebuild the store."""
    landing.land("catalog/products.ndjson", b"\n".join(orjson.dumps(p) for p in PRODUCTS) + b"\n")
    crm = {"user_id": ADA, "email": "ada@example.com", "loyalty_tier": "gold"}
    landing.land("customers/crm.ndjson", orjson.dumps(crm) + b"\n")
    landing.land("events/first.ndjson", b"\n".join(first_batch()) + b"\n")
    ingest(lake, landing)
    rebuild(lake, state)


def headers(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}

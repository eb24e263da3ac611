"""Email content, pure part: what each kind of email says, its fallbacks and its aborts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from transforms.schema import CATALOG_SCHEMA
from transforms.sends.content import KINDS, Content, Shop, build_content

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STALENESS = timedelta(days=2)
HOME = "https://shop.example"
SHOP = Shop(
    name="Maison Demo",
    home_url=HOME,
    postal_address="1 Demo Street, Paris",
    support_email="help@shop.example",
)
BESTSELLERS = ["p-socks", "p-linen", "p-belt"]


def product(
    pid: str, name: str | None, category: str | None, price: float | None, stock: int, **extra: Any
) -> dict:
    row = {
        "product_id": pid,
        "name": name,
        "category": category,
        "price": price,
        "currency": "EUR",
        "stock": stock,
        "url": f"https://shop.example/products/{pid}",
        "image_url": f"https://img.shop.example/{pid}.jpg",
        "updated_at": NOW,
    }
    return {**row, **extra}


def catalog_frame(*extra: dict) -> pl.DataFrame:
    rows = [
        product("p-linen", "Linen shirt", "shirts", 59.0, 3),
        product("p-oxford", "Oxford shirt", "shirts", 65.0, 2),
        product("p-denim", "Denim shirt", "shirts", 72.5, 1),
        product("p-flannel", "Flannel shirt", "shirts", 55.0, 0),  # sold out
        product("p-socks", "Wool socks", "socks", 12.0, 10),
        product("p-belt", "Leather belt", "belts", 38.0, 4),
        product("p-bare", "Plain tee", "tees", 18.0, 5, image_url=None),
    ]
    by_id = {row["product_id"]: row for row in [*rows, *extra]}  # an extra row replaces its namesake
    return pl.DataFrame(list(by_id.values()), schema=CATALOG_SCHEMA)


def line(pid: str, quantity: int | None = 1, **extra: Any) -> dict:
    return {"product_id": pid, "name": f"event name {pid}", "category": None, "quantity": quantity,
            "price": 1.0, "image_url": None, "url": None, **extra}  # fmt: skip


def profile(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "user_id": "u-ada",
        "email": "ada@example.com",
        "first_name": "Ada",
        "loyalty_tier": "Gold",
        "cart_id": "c-1",
        "cart_items": [line("p-linen", 2)],
        "purchased_products": ["p-socks"],
        "recent_views": ["p-oxford", "p-linen"],
        "top_category": "shirts",
        "as_of": NOW - timedelta(hours=1),
    }
    return {**base, **overrides}


ANCHORS = {"abandoned_cart": "c-1", "abandoned_checkout": "c-1", "welcome": None, "post_purchase": "o-1"}


def trigger(kind: str, **overrides: Any) -> dict[str, Any]:
    base = {"trigger_id": f"t-{kind}", "kind": kind, "anchor": ANCHORS.get(kind, "p-oxford"), "variant": "a"}
    return {**base, **overrides}


def content(kind: str = "abandoned_cart", catalog: pl.DataFrame | None = None, **overrides: Any) -> Content:
    trig = trigger(kind, **overrides.pop("trigger", {}))
    return build_content(
        kind,
        profile=profile(**overrides),
        trigger=trig,
        catalog=catalog_frame() if catalog is None else catalog,
        bestsellers=BESTSELLERS,
        now=NOW,
        shop=SHOP,
        staleness=STALENESS,
    )


GREETING = {"block": "greeting", "reason": "no_first_name"}
LINKED_NAME = {"block": "greeting", "reason": "link_in_first_name"}
LINKED_LINE = {"block": "cart_line", "reason": "link_in_name"}
MISSING = {"block": "cart_line", "reason": "product_not_in_catalog"}
NO_IMAGE = {"block": "cart_line", "reason": "no_image"}
NO_PRICE = {"block": "cart_line", "reason": "no_price"}
NO_RECS = {"block": "recommendations", "reason": "no_recommendations"}
STALE = {"block": "profile", "reason": "stale_profile"}
STALE_RECS = {"block": "recommendations", "reason": "stale_profile"}
PRODUCT_NO_IMAGE = {"block": "product", "reason": "no_image"}


@pytest.mark.parametrize(
    ("kind", "overrides", "expected"),
    [
        ("abandoned_cart", {}, []),
        ("abandoned_cart", {"first_name": None}, [GREETING]),
        ("abandoned_cart", {"first_name": "  \r\n "}, [GREETING]),
        ("abandoned_cart", {"cart_items": [line("p-linen"), line("p-gone")]}, [MISSING]),
        ("abandoned_cart", {"cart_items": [line("p-gone"), line("p-linen"), line("p-gone-2")]}, [MISSING]),
        ("abandoned_cart", {"cart_items": [line("p-bare")]}, [NO_IMAGE, NO_RECS]),
        ("abandoned_cart", {"cart_items": [line("p-socks")], "purchased_products": []}, [NO_RECS]),
        ("abandoned_cart", {"as_of": NOW - timedelta(days=3)}, [STALE, STALE_RECS]),
        ("abandoned_cart", {"as_of": None}, [STALE, STALE_RECS]),
        (
            "abandoned_cart",
            {"as_of": NOW - timedelta(days=3), "first_name": "", "cart_items": [line("p-gone")]},
            # a stale cart shows names and links only: why a line links home, no image or price fallbacks
            [STALE, GREETING, MISSING, STALE_RECS],
        ),
        ("abandoned_checkout", {"cart_items": [line("p-gone")]}, [MISSING, NO_RECS]),
        ("browse_abandonment", {}, []),
        ("browse_abandonment", {"trigger": {"anchor": "p-bare"}}, [PRODUCT_NO_IMAGE, NO_RECS]),
        ("welcome", {}, []),
        ("welcome", {"top_category": None, "first_name": None}, [GREETING, NO_RECS]),
        ("post_purchase", {"purchased_products": ["p-linen"]}, []),
        ("post_purchase", {}, [NO_RECS]),  # bought socks: no other socks
        ("post_purchase", {"trigger": {"products": ["p-gone", "p-denim"]}}, []),  # the order's own products
        ("back_in_stock", {"as_of": NOW - timedelta(days=30)}, [STALE, STALE_RECS]),
        ("price_drop", {"trigger": {"old_price": 80.0}}, []),
    ],
)  # fmt: skip
def test_build_content_fallbacks(
    kind: str, overrides: dict[str, Any], expected: list[dict[str, str]]
) -> None:
    result = content(kind, **overrides)
    assert result.aborted is None
    assert result.fallbacks == expected


def test_names_from_events_never_carry_a_link() -> None:
    """Found by review: the write key is public, so a first name or the name of a carted product the
    catalog lacks is anyone's text; one such as `prize at evil.example/win` went into the subject and the
    body, where mail clients link it. The catalog's own names are the shop's and stay as they are."""
    bait = "Claim your prize at evil.example/win"
    catalog = catalog_frame(product("p-io", "Acme.io speaker", "audio", 20.0, 1))
    items = [line("p-gone", name=bait), line("p-io", name=bait), line("p-nameless", name="Plain mug")]
    result = content(first_name=bait, cart_items=items, catalog=catalog)
    assert result.fallbacks == [LINKED_NAME, MISSING, LINKED_LINE, NO_RECS]
    assert "evil" not in repr(result.context) and result.context["first_name"] == ""
    names = [line["name"] for line in result.context["cart"]["lines"]]
    assert names == ["Item", "Acme.io speaker", "Plain mug"]
    assert content("welcome", first_name="Dr. Who").context["first_name"] == "Dr. Who"


def test_cart_line_without_catalog_image_or_price() -> None:
    catalog = catalog_frame(product("p-mystery", "Mystery box", "boxes", None, 1, image_url=None))
    result = content(catalog=catalog, cart_items=[line("p-mystery", price=None)])
    assert result.fallbacks == [NO_IMAGE, NO_PRICE, NO_RECS]
    assert result.context["cart"]["total"] == ""  # a partial total would mislead


NAMED_C9 = {"anchor": "o-1", "cart_id": "c-9"}  # the facts of a checkout that named cart c-9 (hers is c-1)


@pytest.mark.parametrize(
    ("kind", "overrides", "reason"),
    [
        ("abandoned_cart", {"cart_items": []}, "empty_cart"),
        ("abandoned_cart", {"cart_items": None}, "empty_cart"),
        ("abandoned_checkout", {"cart_items": [line("p-linen", 0)]}, "empty_cart"),
        ("abandoned_cart", {"cart_id": "c-2"}, "cart_changed"),
        ("abandoned_checkout", {"trigger": NAMED_C9}, "cart_changed"),
        ("abandoned_cart", {"email": None}, "no_email"),
        ("welcome", {"email": ""}, "no_email"),
        ("welcome", {"email": "not-an-address"}, "no_email"),
        ("back_in_stock", {"trigger": {"anchor": "p-unknown"}}, "product_not_in_catalog"),
        ("price_drop", {"trigger": {"anchor": "p-unknown"}}, "product_not_in_catalog"),
        ("browse_abandonment", {"trigger": {"anchor": None}}, "product_not_in_catalog"),
        ("back_in_stock", {"trigger": {"anchor": "p-flannel"}}, "out_of_stock"),
        ("price_drop", {"trigger": {"old_price": 60.0}}, "no_price_drop"),
    ],
)
def test_build_content_aborts(kind: str, overrides: dict[str, Any], reason: str) -> None:
    result = content(kind, **overrides)
    assert result.aborted == reason
    assert result.context == {}


def test_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="unknown email kind"):
        content("winback")


def test_cart_lines_take_current_catalog_values_and_names_but_never_links_from_the_event() -> None:
    """An event's `url` / `image_url` are anyone's (the write key is public): a line links to the
    catalog's page of its product, else the shop's home, and shows the catalog's picture or none."""
    catalog = catalog_frame(
        product("p-nameless", None, "shirts", None, 2, url=None, image_url="javascript:alert(1)"),
        product("p-pictureless", "Cap", "hats", 9.0, 2, image_url=None),
    )
    evil = {"url": "https://evil.example/login", "image_url": "https://evil.example/pixel.gif"}
    items = [
        line("p-linen", 2, name="Old name", price=40.0, **evil),
        line(
            "p-nameless", None, name="Event name", price=9.5, url="https://evil.example/e", image_url="data:x"
        ),
        line("p-gone", 1, name="Gone item", price=20.0, **evil),
        line("p-pictureless", 1, **evil),
    ]
    result = content(catalog=catalog, cart_items=items)
    cart = result.context["cart"]
    linen, nameless, gone, pictureless = cart["lines"]
    assert "evil.example" not in repr(result.context)
    assert result.fallbacks == [NO_IMAGE, MISSING]
    assert linen == {
        "name": "Linen shirt",
        "url": "https://shop.example/products/p-linen",
        "image_url": "https://img.shop.example/p-linen.jpg",
        "price": "€59.00",
        "quantity": 2,
        "line_total": "€118.00",
    }
    assert (nameless["name"], nameless["price"], nameless["quantity"]) == ("Event name", "€9.50", 1)
    assert (nameless["url"], nameless["image_url"]) == (HOME, "")  # no catalog link, unsafe image dropped
    assert (pictureless["url"], pictureless["image_url"]) == (
        "https://shop.example/products/p-pictureless",
        "",
    )
    assert gone == {
        "name": "Gone item",
        "url": HOME,
        "image_url": "",
        "price": "",
        "quantity": 1,
        "line_total": "",
    }
    assert cart["total"] == "" and cart["count"] == 5


def test_cart_total_computed_in_python() -> None:
    items = [line("p-linen", 2), line("p-denim", 1), line("p-oxford", None)]
    result = content(cart_items=items)
    assert result.context["cart"]["total"] == "€255.50"  # 2 x 59 + 72.5 + 65
    assert result.context["cta_url"] == "https://shop.example/cart"
    assert content("abandoned_checkout").context["cta_url"] == "https://shop.example/checkout"


def test_recommendations_exclude_cart_and_purchases() -> None:
    result = content(cart_items=[line("p-linen")], purchased_products=["p-denim"])
    assert [r["name"] for r in result.context["recommendations"]] == ["Oxford shirt"]
    assert result.context["recommendations_source"] == "personal"


def test_bestsellers_in_rank_order_when_no_recommendations() -> None:
    result = content("welcome", top_category=None, purchased_products=[])
    assert [r["name"] for r in result.context["recommendations"]] == [
        "Wool socks",
        "Linen shirt",
        "Leather belt",
    ]
    assert result.context["recommendations_source"] == "bestsellers"


def test_stale_profile_gives_generic_content() -> None:
    result = content(as_of=NOW - timedelta(days=3), cart_items=[line("p-linen", 2), line("p-oxford")])
    context = result.context
    assert context["generic"] is True and context["loyalty_tier"] == ""
    assert context["cart"]["total"] == ""
    assert [(x["name"], x["price"], x["image_url"], x["quantity"]) for x in context["cart"]["lines"]] == [
        ("Linen shirt", "", "", 0),
        ("Oxford shirt", "", "", 0),
    ]
    assert context["recommendations_source"] == "bestsellers"


def test_staleness_bound_is_inclusive_of_fresh_profiles() -> None:
    assert content(as_of=NOW - STALENESS).fallbacks == []
    assert content(as_of=(NOW - STALENESS).replace(tzinfo=None)).fallbacks == []  # naive means UTC
    assert content(as_of=NOW - STALENESS - timedelta(seconds=1)).fallbacks == [STALE, STALE_RECS]


def test_post_purchase_cross_sells_the_order_category_without_what_was_bought() -> None:
    bought = ["p-belt", "p-linen"]  # sorted, as profiles keep them: not in order of purchase
    result = content("post_purchase", purchased_products=bought, trigger={"products": ["p-linen"]})
    assert [r["name"] for r in result.context["recommendations"]] == ["Denim shirt", "Oxford shirt"]
    without_products = content("post_purchase", purchased_products=bought)
    assert without_products.fallbacks == [NO_RECS]  # belts: nothing else to cross-sell


def test_price_drop_context() -> None:
    product_context = content("price_drop", trigger={"old_price": 80.0}).context["product"]
    assert product_context["price"] == "€65.00"
    assert (product_context["old_price"], product_context["drop_percent"]) == ("€80.00", 19)
    plain = content("price_drop").context["product"]  # no old price known: still valid, shown plainly
    assert (plain["old_price"], plain["drop_percent"]) == ("", 0)


@pytest.mark.parametrize(
    ("old_price", "aborted"),
    [(66.0, "no_price_drop"), (72.0, "no_price_drop"), (72.5, None), (65.0, "no_price_drop")],
    ids=["1-percent", "9.7-percent", "10.3-percent", "none"],
)
def test_a_price_drop_email_needs_the_price_still_10_percent_down(
    old_price: float, aborted: str | None
) -> None:
    """Decided on a 10 % drop, sent later: back up to 1 % under the old price since, the email said
    "1% off" (found by review 23b). The catalog's price is 65.00."""
    assert content("price_drop", trigger={"old_price": old_price}).aborted == aborted


def plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return isinstance(value, str | int | float | bool)


@pytest.mark.parametrize("kind", KINDS)
def test_context_holds_plain_values_only(kind: str) -> None:
    result = content(kind, trigger={"old_price": 90.0})
    assert result.aborted is None
    assert plain(result.context)
    assert result.context["kind"] == kind and result.context["shop"]["name"] == "Maison Demo"


def test_a_spec_shaped_checkout_is_about_the_shoppers_open_cart() -> None:
    """Segment's checkouts carry `order_id`, not `cart_id`: the anchor is the order, the cart the open one."""
    result = content("abandoned_checkout", trigger={"anchor": "o-1"})
    assert result.aborted is None
    assert result.context["cart"]["lines"]

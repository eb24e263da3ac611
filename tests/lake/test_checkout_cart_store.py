"""A checkout's `products[]` as its cart over a real lake and state store (found by review: a shopper with
only `Checkout Started` got an abandoned_checkout decision `send` that the send stage aborted `empty_cart`).
The live store, the lake's profiles and a rebuilt store serve the checkout's lines, before and after a fold,
and `state check` finds them equal; the engine decides the checkout emails from the store as the lake's
readers do, a replay agrees, and the profile API's `/content` (over HTTP on loopback) shows the lines. A lake
and store from the release before read, take new batches and fold."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl

from resources.shop import ShopResource
from services.collector.app import CollectorConfig, create_collector_app
from services.collector.profile_store import ProfileStore
from services.collector.profiles import ProfileApi
from services.server import ServerThread
from stores.state.refresh import fold
from tests.lake.decide_harness import SECRET, Shop, assert_replays_as_sent, lake_decides, minutes, sorted_rows
from tests.lake.test_cart_units_store import Carts, assert_everywhere
from tests.story import message, spec_message
from transforms.profiles.state import IMPLICIT_CART
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import UPDATES_APP
from transforms.state import StateChanges

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAY = 24 * 60
API_KEY = "profile-api-key"


def _checkout(at: float, user: str, *lines: tuple[str, int], **ids: Any) -> dict:
    """A spec-shaped `Checkout Started` (order_id, value, products[]); `ids` may name its cart."""
    products = [
        {"product_id": p, "sku": p.upper(), "name": p.title(), "price": 10.0, "quantity": q} for p, q in lines
    ]
    fields: dict[str, Any] = {"order_id": f"o-{user}", "value": 30.0, "currency": "EUR", **ids}
    return spec_message("Checkout Started", minutes(START, at), user=user, products=products, **fields)


def _added(at: float, user: str, product: str, quantity: int = 1, **cart: Any) -> dict:
    fields: dict[str, Any] = {
        "product_id": product,
        "name": product.title(),
        "price": 10.0,
        "quantity": quantity,
    }
    return spec_message("Product Added", minutes(START, at), user=user, **fields, **cart)


def signed_up(home: Path) -> Shop:
    shop = Shop(home)
    users = ("u1", "u2", "u3")
    signup = [
        message(
            "identify", minutes(START, -3 * DAY), user=u, email=f"{u}@example.com", marketing_consent=True
        )
        for u in users
    ]
    shop.batch("b-signup", signup, minutes(START, -3 * DAY))
    shop.engine(minutes(START, -3 * DAY))  # the welcomes go out days before (the 16 h cap)
    return shop


@contextmanager
def profile_api(shop: Shop) -> Iterator[httpx.Client]:
    """The collector's profile API over the shop's store, on an ephemeral loopback port."""
    sender = ShopResource()
    api = ProfileApi(
        ProfileStore(shop.state, secret=SECRET), API_KEY, sender.shop(), timedelta(days=365 * 50)
    )
    app = create_collector_app(CollectorConfig(landing=shop.landing.root, write_keys=("wk",), profiles=api))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_the_store_the_lake_a_rebuild_the_engine_and_the_profile_api_show_the_checkouts_products(
    tmp_path: Path,
) -> None:
    """u1 only starts checkout (no cart named), then carts a cup naming no cart: on top of the checkout.
    u2 carts 3 mugs in c2, then starts checkout of c2 listing 1 mug and 1 sock: the checkout's lines.
    u3 starts checkout and orders it: no cart left."""
    shop = signed_up(tmp_path / "shop")
    first = [_checkout(0, "u1", ("mug", 2), ("sock", 1)), _added(0, "u2", "mug", 3, cart_id="c2")]
    shop.batch("b0", [*first, _checkout(0, "u3", ("cup", 1))], minutes(START, 1))
    before: Carts = [
        ("u1", IMPLICIT_CART, [("mug", 2), ("sock", 1)]),
        ("u2", "c2", [("mug", 3)]),
        ("u3", IMPLICIT_CART, [("cup", 1)]),
    ]
    assert_everywhere(shop, minutes(START, 1), before, tmp_path)

    order: dict[str, Any] = {
        "order_id": "o-u3",
        "revenue": 10.0,
        "currency": "EUR",
        "products": [{"product_id": "cup"}],
    }
    later = [
        _checkout(10, "u2", ("mug", 1), ("sock", 1), cart_id="c2"),
        _added(8, "u1", "cup"),
        spec_message("Order Completed", minutes(START, 9), user="u3", **order),
    ]
    shop.batch("b1", later, minutes(START, 11))
    after: Carts = [
        ("u1", IMPLICIT_CART, [("cup", 1), ("mug", 2), ("sock", 1)]),
        ("u2", "c2", [("mug", 1), ("sock", 1)]),
        ("u3", None, []),
    ]
    assert_everywhere(shop, minutes(START, 11), after, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    assert_everywhere(shop, minutes(START, 11), after, tmp_path)

    for at in (11, 31, 41):
        live = sorted_rows(shop.decide(minutes(START, at)).rows)
        assert lake_decides(shop, minutes(START, at)).equals(live)
        shop.engine(minutes(START, at))
    checkouts = shop.log().filter(pl.col("kind") == "abandoned_checkout")
    decided = checkouts.filter(pl.col("decision").is_in(["send", "exited"]))
    assert sorted(decided.select("user_id", "decision", "reason").rows()) == [
        ("u1", "send", "all policies passed"),
        ("u2", "send", "all policies passed"),
        ("u3", "exited", "order_completed"),
    ]
    for sent in decided.filter(pl.col("decision") == "send").rows(named=True):
        assert_replays_as_sent(shop, sent)

    with profile_api(shop) as client:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        for user, lines in (("u1", [("Cup", 1), ("Mug", 2), ("Sock", 1)]), ("u2", [("Mug", 1), ("Sock", 1)])):
            content = client.get(f"/v1/profiles/{user}/content?kind=abandoned_checkout", headers=auth).json()
            assert content["aborted"] is None
            assert [(line["name"], line["quantity"]) for line in content["cart"]["lines"]] == lines
        empty = client.get("/v1/profiles/u3/content?kind=abandoned_checkout", headers=auth).json()
        assert empty["aborted"] == "empty_cart"


def _as_written_before(shop: Shop) -> None:
    """The shop's lake and store as the release before checkout lines wrote them: `profile_updates` without
    the column, the store's profile states without the field."""
    lake = shop.lake
    updates = lake.read("profile_updates", PROFILE_UPDATES_SCHEMA).drop("checkout_lines")
    lake.write_tagged("profile_updates", updates, {UPDATES_APP: lake.committed_batch()}, mode="overwrite")
    assert "checkout_lines" not in pl.scan_delta(lake.table_uri("profile_updates")).collect_schema()
    old_way = StateChanges()
    for key, value in shop.state.store().scan("profiles"):
        state = orjson.loads(value)
        del state["checkout_lines"]
        old_way.put("profiles", key, orjson.dumps(state))
    shop.state.commit(lake.committed_batch(), old_way)


def test_a_lake_and_store_from_before_checkout_lines_read_take_new_batches_and_fold(tmp_path: Path) -> None:
    """u2's cart (3 mugs in c2) was folded before the upgrade; after it, her checkout of c2 listing 1 mug
    and 1 sock is her cart, in the store, the lake and a rebuild alike, before and after a fold."""
    shop = signed_up(tmp_path / "shop")
    shop.batch("b0", [_added(0, "u2", "mug", 3, cart_id="c2")], minutes(START, 1))
    _as_written_before(shop)
    before: Carts = [("u1", None, []), ("u2", "c2", [("mug", 3)]), ("u3", None, [])]
    assert_everywhere(shop, minutes(START, 1), before, tmp_path)
    shop.batch("b1", [_checkout(10, "u2", ("mug", 1), ("sock", 1), cart_id="c2")], minutes(START, 11))
    after: Carts = [("u1", None, []), ("u2", "c2", [("mug", 1), ("sock", 1)]), ("u3", None, [])]
    assert_everywhere(shop, minutes(START, 11), after, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    assert_everywhere(shop, minutes(START, 11), after, tmp_path)

"""An order naming only its checkout or its order id closes the cart its checkout named, over a real lake and
state store (found by review: the cart stayed open with what was bought). The live store, the lake's
profiles and a rebuilt store (`lakemail state rebuild`) show no open cart, before and after a fold, the
order landing with the checkout, after it or before it; `state check` finds them equal; the engine
decides from the store as the lake's readers do; the profile API over HTTP shows no cart. A lake and
store from the release before the links close the cart through the checkouts list. Any batches of such
stories keep the live store equal to a rebuilt one."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stores.state.refresh import fold
from tests.lake.decide_harness import Shop, lake_decides, minutes, sorted_rows
from tests.lake.test_cart_units_store import Carts, assert_everywhere, carts
from tests.lake.test_checkout_cart_store import profile_api, signed_up
from tests.lake.test_state_live import ingest_cut, resources
from tests.story import spec_message
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import UPDATES_APP
from transforms.state import StateChanges

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAY = 24 * 60
API_KEY = "profile-api-key"
USERS = ("u1", "u2", "u3")


def _shopping(at: float, user: str) -> list[dict]:
    """`user` carts a mug in cart k-`user` and starts checkout of it (ck-`user`, order o-`user`)."""
    mug: dict[str, Any] = {"product_id": "mug", "name": "Mug", "price": 10.0, "quantity": 1}
    added = spec_message("Product Added", minutes(START, at), user=user, cart_id=f"k-{user}", **mug)
    ids: dict[str, Any] = {"cart_id": f"k-{user}", "checkout_id": f"ck-{user}", "order_id": f"o-{user}"}
    started = spec_message("Checkout Started", minutes(START, at + 2), user=user, products=[mug], **ids)
    return [added, started]


def _ordered(at: float, user: str, **ids: str) -> dict:
    fields: dict[str, Any] = {"revenue": 10.0, "currency": "EUR", "products": [{"product_id": "mug"}], **ids}
    return spec_message("Order Completed", minutes(START, at), user=user, **fields)


def test_the_store_the_lake_a_rebuild_the_engine_and_the_profile_api_close_the_cart(tmp_path: Path) -> None:
    """u1 orders naming only her checkout, with it; u2 only his order id, a batch later; u3's order (naming
    her checkout) lands a batch before her cart and checkout."""
    shop = signed_up(tmp_path / "shop")
    first = [*_shopping(0, "u1"), _ordered(5, "u1", checkout_id="ck-u1"), *_shopping(0, "u2")]
    shop.batch("b0", [*first, _ordered(6, "u3", checkout_id="ck-u3")], minutes(START, 7))
    during: Carts = [("u1", None, []), ("u2", "k-u2", [("mug", 1)]), ("u3", None, [])]
    assert_everywhere(shop, minutes(START, 7), during, tmp_path)

    shop.batch("b1", [_ordered(8, "u2", order_id="o-u2"), *_shopping(0, "u3")], minutes(START, 9))
    closed: Carts = [(u, None, []) for u in USERS]
    assert_everywhere(shop, minutes(START, 9), closed, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    assert_everywhere(shop, minutes(START, 9), closed, tmp_path)

    for at in (9, 33, 63):
        live = sorted_rows(shop.decide(minutes(START, at)).rows)
        assert lake_decides(shop, minutes(START, at)).equals(live)
        shop.engine(minutes(START, at))
    carts_and_checkouts = shop.log().filter(pl.col("kind").is_in(["abandoned_cart", "abandoned_checkout"]))
    assert carts_and_checkouts.filter(pl.col("decision") == "send").height == 0
    final = carts_and_checkouts.filter(pl.col("decision") == "exited")["reason"].unique().to_list()
    assert final == ["order_completed"]

    with profile_api(shop) as client:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        for user in USERS:
            profile = client.get(f"/v1/profiles/{user}", headers=auth).json()
            assert (profile["cart_id"], profile["cart_items"], profile["order_count"]) == (None, [], 1)


def _as_written_before(shop: Shop) -> None:
    """The lake and store as the release before the links wrote them: no column, no field."""
    lake = shop.lake
    updates = lake.read("profile_updates", PROFILE_UPDATES_SCHEMA).drop("cart_checkouts")
    lake.write_tagged("profile_updates", updates, {UPDATES_APP: lake.committed_batch()}, mode="overwrite")
    assert "cart_checkouts" not in pl.scan_delta(lake.table_uri("profile_updates")).collect_schema()
    old_way = StateChanges()
    for key, value in shop.state.store().scan("profiles"):
        state = orjson.loads(value)
        del state["cart_checkouts"]
        old_way.put("profiles", key, orjson.dumps(state))
    shop.state.commit(lake.committed_batch(), old_way)


def test_a_lake_and_store_from_before_the_links_close_the_cart_through_the_checkouts_list(
    tmp_path: Path,
) -> None:
    """u1's cart and checkout were folded before the upgrade; her order of that checkout lands after it."""
    shop = signed_up(tmp_path / "shop")
    shop.batch("b0", _shopping(0, "u1"), minutes(START, 3))
    _as_written_before(shop)
    assert carts(shop.state, minutes(START, 3))[0] == ("u1", "k-u1", [("mug", 1)])
    shop.batch("b1", [_ordered(5, "u1", checkout_id="ck-u1")], minutes(START, 6))
    after: Carts = [(u, None, []) for u in USERS]
    assert_everywhere(shop, minutes(START, 6), after, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    assert_everywhere(shop, minutes(START, 6), after, tmp_path)


def _messages(user: str, at: int, what: str, ref: str) -> list[dict]:
    if what == "cart and checkout":
        return [{**m, "messageId": f"{m['messageId']}-{ref}"} for m in _shopping(at, user)]
    ids = {"checkout_id": f"ck-{ref}"} if what == "order by checkout" else {"order_id": f"o-{ref}"}
    return [{**_ordered(at, user, **ids), "messageId": f"order-{user}-{what}-{ref}-{at}"}]


stories = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2"]),
        st.integers(0, 30),
        st.sampled_from(["cart and checkout", "order by checkout", "order by order id"]),
        st.sampled_from(["u1", "u2"]),  # whose checkout an order names: a shopper's own or another's
    ),
    min_size=2,
    max_size=8,
)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(story=stories, cuts=st.lists(st.integers(1, 7), max_size=3))
def test_a_live_store_equals_a_rebuilt_one_after_any_batches_of_orders_and_checkouts(
    story: list[tuple[str, int, str, str]], cuts: list[int]
) -> None:
    rows = [m for user, at, what, ref in story for m in _messages(user, at, what, ref)]
    with tempfile.TemporaryDirectory() as folder:
        ingest_cut(resources(Path(folder)), rows, cuts)

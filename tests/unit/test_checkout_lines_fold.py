"""A checkout's products (CHECKOUT_LINE_STATE) in the fold: any order and grouping of batches merges to the
same state, and the profile's cart is what the events say in time order: a checkout listing products sets
the cart (the one it names, or the shopper's open one), cart events after it add and take out, an order of
the cart empties it. At one moment, cart events come before a checkout, and a checkout before an order.
The profile API's derive_one reads the same cart off the stored state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.batching import batched
from tests.story import at, message
from transforms.ingest.files import process_file
from transforms.profiles.derive import derive
from transforms.profiles.merge import merge_partials
from transforms.profiles.one import derive_one
from transforms.profiles.partials import partials
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.schema import CUSTOMERS_SCHEMA
from transforms.state import encode

LANDED = datetime(2026, 12, 1, tzinfo=UTC)
NO_CRM = pl.DataFrame(schema=CUSTOMERS_SCHEMA)
PRODUCTS = ("cup", "mug")
RANK = {"Product Added": 0, "Product Removed": 0, "Checkout Started": 1, "Checkout (no cart)": 1}
Step = tuple[int, str, str, int, tuple[tuple[str, int], ...]]
lists = st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(0, 3)), min_size=1, max_size=3).map(tuple)
# (minute, what, product, quantity, checkout products): all in cart c1, or a checkout naming no cart.
# At most 16 steps: no line changes at more moments than its moves keep (MOVES_PER_LINE).
steps = st.lists(
    st.tuples(
        st.integers(0, 12),
        st.sampled_from(
            ["Product Added", "Product Removed", "Checkout Started", "Checkout (no cart)", "Order Completed"]
        ),
        st.sampled_from(PRODUCTS),
        st.integers(0, 3),
        lists,
    ),
    min_size=1,
    max_size=16,
)


def events_of(story: list[Step]) -> pl.DataFrame:
    """The events rows of `story` (u1's), parsed as the ingest parses them."""
    messages = []
    for n, (minute, name, product, quantity, listed) in enumerate(story):
        fields: dict[str, Any] = {"cart_id": "c1", "product_id": product, "quantity": quantity, "price": 2.0}
        if name.startswith("Checkout"):
            fields = {"order_id": f"o{n}", "products": [{"product_id": p, "quantity": q} for p, q in listed]}
            fields |= {"cart_id": "c1"} if name == "Checkout Started" else {}
            name = "Checkout Started"
        elif name == "Order Completed":
            fields = {"order_id": f"o{n}", "cart_id": "c1"}
        messages.append(message(name, at(minute), user="u1", message_id=f"m{n:02d}", **fields))
    data = b"\n".join(orjson.dumps(m) for m in messages)
    return process_file(data, source_file="s", landed_at=LANDED, ingested_at=LANDED, batch_id=1).events


def expected_cart(story: list[Step]) -> list[tuple[str, int]]:
    """The cart after `story`, event by event in time order (at one moment: cart events, checkouts by
    message id, orders)."""
    order = sorted(enumerate(story), key=lambda s: (s[1][0], RANK.get(s[1][1], 2), s[0]))
    units: dict[str, int] = {}
    for _, (_, name, product, quantity, listed) in order:
        if name == "Order Completed":
            units = {}
        elif name.startswith("Checkout"):
            units = {}
            for p, q in listed:
                units[p] = units.get(p, 0) + q
        else:
            units[product] = units.get(product, 0) + (quantity if name == "Product Added" else -quantity)
    return sorted((p, u) for p, u in units.items() if u > 0)


@pytest.mark.deep
@settings(max_examples=40, deadline=None)  # 60 took 11-17 s on CI
@given(story=steps, seed=st.integers(0, 10**6))
def test_checkout_products_merge_in_any_order_and_are_the_cart_at_checkout_time(
    story: list[Step], seed: int
) -> None:
    events = events_of(story)
    whole = merge_partials(partials(events))
    state = batched(events, seed)  # as the store: its state and the batch's partials
    assert canonical(state).drop("engagement").equals(canonical(whole).drop("engagement"))
    [profile] = derive(state, NO_CRM, at(60)).to_dicts()
    assert [(i["product_id"], i["quantity"]) for i in profile["cart_items"]] == expected_cart(story)
    [wire] = encode(canonical(state).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"]
    one = derive_one("u1", orjson.loads(wire), None, at(60))
    assert one is not None and (one["cart_id"], one["cart_items"]) == (
        profile["cart_id"],
        profile["cart_items"],
    )

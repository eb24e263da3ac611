"""An order naming only its checkout (`checkout_id`) or its order (`order_id`) in the fold: any order and
grouping of batches merges to one state (the checkouts' links, CART_CHECKOUT_STATE, included), and that
state's carts are those of the same story with each such order naming the cart its checkout named: the
profile (derive and the profile API's derive_one) and the cart rules' facts alike, whatever the times of
the checkout and the order."""

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
from transforms.profiles.baskets import checkout_carts
from transforms.profiles.derive import derive
from transforms.profiles.merge import merge_partials
from transforms.profiles.one import derive_one
from transforms.profiles.partials import partials
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.schema import CUSTOMERS_SCHEMA
from transforms.state import encode
from transforms.triggers.rules.carts import cart_facts

LANDED = datetime(2026, 12, 1, tzinfo=UTC)
NO_CRM = pl.DataFrame(schema=CUSTOMERS_SCHEMA)
CART = ("Product Added", "Product Removed")
CHECKOUTS = ("Checkout Started", "Checkout (no cart)")
ORDERS = ("Order by checkout_id", "Order by order_id", "Order of the cart")
CARTS = ("c1", "c2")
# (minute, what, cart, product, quantity, the story's step an order names the checkout or order of, listed)
Step = tuple[int, str, str, str, int, int, bool]
steps = st.lists(
    st.tuples(
        st.integers(0, 12),
        st.sampled_from([*CART, *CHECKOUTS, *ORDERS]),
        st.sampled_from(CARTS),
        st.sampled_from(("cup", "mug")),
        st.integers(0, 3),
        st.integers(0, 15),
        st.booleans(),
    ),
    min_size=1,
    max_size=16,
)


def _named(story: list[Step], ref: int) -> str | None:
    """The cart the checkout of step `ref` named, if it is one that named a cart."""
    if ref < len(story) and story[ref][1] == "Checkout Started":
        return story[ref][2]
    return None


def events_of(story: list[Step], twin: bool) -> pl.DataFrame:
    """u1's events of `story`; `twin`: each order naming a checkout's or an order's id names the cart that
    checkout named instead (and no id of a checkout)."""
    messages = []
    for n, (minute, name, cart, product, quantity, ref, listed) in enumerate(story):
        fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "quantity": quantity, "price": 2.0}
        if name in CHECKOUTS:
            products = [{"product_id": product, "quantity": quantity}] if listed else []
            fields = {"checkout_id": f"ck{n}", "order_id": f"o{n}", "products": products}
            fields |= {"cart_id": cart} if name == "Checkout Started" else {}
            name = "Checkout Started"
        elif name in ORDERS:
            own = {"checkout_id": f"ck{ref}"} if name == "Order by checkout_id" else {"order_id": f"o{ref}"}
            fields = {"cart_id": cart} if name == "Order of the cart" else own
            if twin and name != "Order of the cart":
                named = _named(story, ref)
                fields = {"order_id": fields.get("order_id", f"x{n}")} | ({"cart_id": named} if named else {})
            fields.setdefault("order_id", f"x{n}")
            name = "Order Completed"
        messages.append(message(name, at(minute), user="u1", message_id=f"m{n:02d}", **fields))
    data = b"\n".join(orjson.dumps(m) for m in messages)
    return process_file(data, source_file="s", landed_at=LANDED, ingested_at=LANDED, batch_id=1).events


CART_COLUMNS = ("cart_id", "cart_items", "cart_value", "cart_updated_at", "last_order_at")


def carts_of(state: pl.DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The profile's cart columns and the cart rules' facts (per cart: changes, order, units)."""
    [profile] = derive(state, NO_CRM, at(60)).select(CART_COLUMNS).to_dicts()
    facts = cart_facts(checkout_carts(state, "principal")).drop("principal").sort("cart_id").to_dicts()
    return profile, facts


@pytest.mark.deep
@settings(max_examples=40, deadline=None)  # 60 took 11-17 s on CI
@given(story=steps, seed=st.integers(0, 10**6))
def test_an_order_of_a_checkout_is_an_order_of_its_cart_in_any_batching(story: list[Step], seed: int) -> None:
    events = events_of(story, twin=False)
    whole = merge_partials(partials(events))
    state = batched(events, seed)
    assert canonical(state).drop("engagement").equals(canonical(whole).drop("engagement"))
    twin = merge_partials(partials(events_of(story, twin=True)))
    assert carts_of(state) == carts_of(twin)
    [wire] = encode(canonical(state).lazy(), pl.col("principal"), PARTIAL_SCHEMA).collect()["value"]
    one = derive_one("u1", orjson.loads(wire), None, at(60))
    [profile] = derive(state, NO_CRM, at(60)).to_dicts()
    assert one is not None and (one["cart_id"], one["cart_items"]) == (
        profile["cart_id"],
        profile["cart_items"],
    )

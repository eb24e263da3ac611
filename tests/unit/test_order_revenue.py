"""What an order states it is worth (transforms/profiles/revenue.py): `revenue`, else `total`, else
`subtotal`, else its `products[]`' price x quantity (1 when not stated), else none; read alike by the
profile's partials, attribution (none: 0) and a refund's amount (its absolute value), on messages through
the real ingest.

Regression (a known gap): an order stating only `subtotal` or `products[]` was worth nothing to all three.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.ingest.files import process_file
from transforms.measure.attribution import orders_of
from transforms.profiles.partials import partials
from transforms.profiles.refunds import refund_rows
from transforms.profiles.revenue import order_revenue
from transforms.schema import IDENTITIES_SCHEMA

LANDED = datetime(2026, 11, 20, 13, tzinfo=UTC)
NO_LINKS = pl.DataFrame(schema=IDENTITIES_SCHEMA)
SHIRTS = {"price": 10, "quantity": 2}
MUG = {"price": 5}  # one: quantity unstated

CASES: dict[str, tuple[dict[str, Any], float | None]] = {
    "revenue": ({"revenue": 40.0, "total": 47.0, "subtotal": 38.0, "products": [SHIRTS]}, 40.0),
    "only total": ({"total": 45.0}, 45.0),
    "only subtotal": ({"subtotal": 30.0}, 30.0),
    "only products[]": ({"products": [SHIRTS, MUG]}, 25.0),
    "total before subtotal (Segment's facade)": ({"total": 27.5, "subtotal": 22.5}, 27.5),
    "subtotal before products[]": ({"subtotal": 22.5, "products": [SHIRTS]}, 22.5),
    "a stated 0 is stated": ({"revenue": 0, "total": 30.0}, 0.0),
    "no number in revenue: the next": ({"revenue": "n/a", "subtotal": 12.0}, 12.0),
    "a subtotal as text": ({"subtotal": "22.5"}, 22.5),
    "a subtotal that is no number": ({"subtotal": "n/a", "products": [MUG]}, 5.0),
    "a subtotal that is no finite number": ({"subtotal": "NaN", "products": [MUG]}, 5.0),
    "a subtotal that is an object": ({"subtotal": {"amount": 3}}, None),
    "a negative subtotal, as sent": ({"subtotal": -5.0}, -5.0),
    "products priced as text": ({"products": [{"price": "10", "quantity": "2"}, {"name": "unpriced"}]}, 20.0),
    "products[] that is no list": ({"products": {"price": 10}}, None),
    "nothing stated": ({"currency": "EUR"}, None),
}


def events(*properties: dict[str, Any], name: str = "Order Completed") -> pl.DataFrame:
    """One `name` message per `properties` (order o-<n> of u-1, a minute apart) through the ingest."""
    messages = [
        {"type": "track", "event": name, "messageId": f"m-{n:03d}", "userId": "u-1"}
        | {"timestamp": f"2026-11-20T12:{n % 60:02d}:00Z", "properties": {"order_id": f"o-{n}", **props}}
        for n, props in enumerate(properties)
    ]
    data = b"\n".join(orjson.dumps(m) for m in messages)
    result = process_file(data, source_file="o", landed_at=LANDED, ingested_at=LANDED, batch_id=1)
    assert result.quarantine.height == 0, result.quarantine
    return result.events.sort("event_id")


def consumers(rows: pl.DataFrame) -> tuple[list[float | None], list[float], list[float | None]]:
    """Per order o-<n>: the profile state's revenue, the attributed revenue, and the amount of the same
    message as a refund."""
    state = partials(rows).select("orders").explode("orders").unnest("orders")
    profile = dict(zip(state["order_id"], state["revenue"], strict=True))
    credited = dict(orders_of(rows, NO_LINKS).select("order_id", "revenue").iter_rows())
    refunded = refund_rows(rows.with_columns(pl.lit("Order Refunded").alias("event_name")))
    amounts = dict(refunded.select("order_id", "amount").iter_rows())
    keys = sorted(profile, key=lambda k: int(k.split("-")[1]))
    return [profile[k] for k in keys], [credited[k] for k in keys], [amounts[k] for k in keys]


@pytest.mark.parametrize(("properties", "worth"), list(CASES.values()), ids=list(CASES))
def test_an_order_is_worth_the_first_figure_it_states(
    properties: dict[str, Any], worth: float | None
) -> None:
    rows = events(properties)
    assert order_revenue(rows).to_list() == [worth]
    profile, credited, refunded = consumers(rows)
    assert (profile, credited) == ([worth], [0.0 if worth is None else worth])
    assert refunded == [None if worth is None else abs(worth)]  # a refund stating none: the whole order


def test_orders_of_a_batch_are_read_each_as_alone() -> None:
    """A batch mixing orders stating `revenue` with ones that do not: each its own figure (the fallback
    reads only the rows that state neither `revenue` nor `total`, and puts each back in its place)."""
    cases = list(CASES.values())
    rows = events(*(props for props, _ in cases))
    worths = [worth for _, worth in cases]
    assert order_revenue(rows).to_list() == worths
    profile, credited, _ = consumers(rows)
    assert (profile, credited) == (worths, [0.0 if w is None else w for w in worths])


# A model of the rule over generated orders: figures as numbers, numeric texts or other values.
CENTS = st.integers(-(10**6), 10**6).map(lambda cents: cents / 100)
FIGURE = st.one_of(st.none(), CENTS, CENTS.map(repr), st.sampled_from(["n/a", "", "12 EUR", True]))
SUBTOTAL = st.one_of(FIGURE, st.sampled_from(["NaN", "inf", "-Infinity", [1]]))
PRODUCT = st.fixed_dictionaries(
    {}, optional={"price": st.one_of(CENTS, CENTS.map(repr), st.just("n/a")), "quantity": st.integers(0, 5)}
)
PRODUCTS = st.lists(PRODUCT)


def _number(value: Any) -> float | None:
    """A stated figure as the module reads one: a number, or a numeric text (finite)."""
    if value is None or isinstance(value, bool | list):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def model(properties: dict[str, Any]) -> float | None:
    for key in ("revenue", "total", "subtotal"):
        if (number := _number(properties.get(key))) is not None:
            return number
    lines = [(_number(p.get("price")), p.get("quantity", 1)) for p in properties.get("products") or []]
    priced = [price * quantity for price, quantity in lines if price is not None]
    return sum(priced) if priced else None


@pytest.mark.deep  # 2-3 s: `make test` runs it, the fast tier leaves it
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={"revenue": FIGURE, "total": FIGURE, "subtotal": SUBTOTAL, "products": PRODUCTS},
        ),
        min_size=1,
        max_size=6,
    )
)
def test_the_fallback_is_the_model(orders: list[dict[str, Any]]) -> None:
    rows = events(*orders)
    expected = [model(o) for o in orders]
    assert order_revenue(rows).to_list() == expected
    profile, credited, refunded = consumers(rows)
    assert (profile, credited) == (expected, [0.0 if w is None else w for w in expected])
    assert refunded == [None if w is None else abs(w) for w in expected]

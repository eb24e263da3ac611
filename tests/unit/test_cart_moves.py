"""A cart line's moves (MOVE_STATE): merged in any order and grouping to the same state, bounded at
MOVES_PER_LINE moments a line, and exact as long as a line changes at no more moments after its cart's
latest order; beyond, its older moves count as made at the latest of them."""

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
from transforms.profiles.partials import partials
from transforms.profiles.state import MOVES_PER_LINE, canonical, line_moves
from transforms.schema import CUSTOMERS_SCHEMA, UTC_TS

LANDED = datetime(2026, 12, 1, tzinfo=UTC)
NO_CRM = pl.DataFrame(schema=CUSTOMERS_SCHEMA)
# (minute, event name, product, quantity): cart lines of cart c1 and its orders
steps = st.lists(
    st.tuples(
        st.integers(0, 40),
        st.sampled_from(["Product Added", "Product Added", "Product Removed", "Order Completed"]),
        st.sampled_from(["mug", "cup"]),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=70,
)


def events_of(story: list[tuple[int, str, str, int]]) -> pl.DataFrame:
    """The events rows of `story` (u1's, in cart c1), parsed as the ingest parses them."""
    messages = []
    for n, (minute, name, product, quantity) in enumerate(story):
        fields: dict[str, Any] = {"cart_id": "c1", "product_id": product, "quantity": quantity, "price": 2.0}
        if name == "Order Completed":
            fields = {"cart_id": "c1", "order_id": f"o{n}"}
        messages.append(message(name, at(minute), user="u1", **fields))
    data = b"\n".join(orjson.dumps(m) for m in messages)
    return process_file(data, source_file="s", landed_at=LANDED, ingested_at=LANDED, batch_id=1).events


def expected_items(story: list[tuple[int, str, str, int]]) -> tuple[list[tuple[str, int]], bool]:
    """The cart's (product, units) after its latest order as the bounded moves count them, and whether
    that count is exact (no line changed at more than MOVES_PER_LINE moments after the order)."""
    orders = [at(m) for m, name, _, _ in story if name == "Order Completed"]
    latest, changed = (
        max(orders, default=None),
        max(at(m) for m, name, _, _ in story if name != "Order Completed"),
    )
    items, bounded = [], True
    for product in ("cup", "mug"):
        units: dict[datetime, int] = {}
        for minute, name, p, quantity in story:
            if p == product and name != "Order Completed":
                units[at(minute)] = units.get(at(minute), 0) + (
                    quantity if name == "Product Added" else -quantity
                )
        moments = sorted(units, reverse=True)
        kept, older = moments[:MOVES_PER_LINE], moments[MOVES_PER_LINE:]
        after = sum(units[t] for t in kept if latest is None or t > latest)
        if older and (latest is None or older[0] > latest):  # the older ones, as made at the latest of them
            after += sum(units[t] for t in older)
        true = sum(u for t, u in units.items() if latest is None or t > latest)
        bounded &= after == true or len([t for t in moments if latest is None or t > latest]) > MOVES_PER_LINE
        if after > 0 and units:
            items.append((product, after))
    return (items if latest is None or changed > latest else []), bounded


@pytest.mark.deep
@settings(max_examples=40, deadline=None)  # 60 took 11-17 s on CI
@given(story=steps, seed=st.integers(0, 10**6))
def test_moves_merge_in_any_order_and_count_what_came_after_the_latest_order(
    story: list[tuple[int, str, str, int]], seed: int
) -> None:
    if all(name == "Order Completed" for _, name, _, _ in story):
        story = [*story, (41, "Product Added", "mug", 1)]
    events = events_of(story)
    whole = merge_partials(partials(events))
    state = batched(events, seed)  # as the store: its state and the batch's partials
    assert canonical(state).drop("engagement").equals(canonical(whole).drop("engagement"))
    assert state["moves"].list.len().item() <= 2 * MOVES_PER_LINE
    [profile] = derive(state, NO_CRM, at(60)).to_dicts()
    items, bounded = expected_items(story)
    assert [(i["product_id"], i["quantity"]) for i in profile["cart_items"]] == items
    assert bounded


def test_a_line_keeps_its_latest_moments_and_its_older_ones_as_one_move() -> None:
    """20 moments of one line: the 16 latest as they are, the 4 oldest as one move at the latest of them."""
    times = [at(minute) for minute in range(20)]
    moves = pl.DataFrame(
        {"principal": "u1", "cart_id": "c1", "product_id": "mug", "ts": times, "units": [1] * 20},
        schema_overrides={"ts": UTC_TS},
    )
    kept = line_moves(pl.concat([moves, moves.head(3)])).sort("ts")  # a moment seen twice: its sum
    assert kept.height == MOVES_PER_LINE + 1 == 17
    assert kept.select("ts", "units").row(0) == (at(3), 2 + 2 + 2 + 1)
    assert kept["ts"].to_list()[1:] == times[4:]
    assert line_moves(kept).sort("ts").equals(kept)  # what is cut stays cut

"""`canonical` (one sort of every list's elements by row and value, #17) orders each list exactly as a
sort of each list on its own does: nulls in fields, null elements, empty and null lists included."""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_profile_one import states
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.state import decode

LISTS = [c for c, t in PARTIAL_SCHEMA.items() if isinstance(t, pl.List)]


def _per_list(state: pl.DataFrame) -> pl.DataFrame:
    """The definition: each list sorted on its own (nulls last)."""
    return state.with_columns(pl.col(c).list.eval(pl.element().sort(nulls_last=True)) for c in LISTS)


@pytest.mark.deep  # 7-16 s: `make test` runs it, the fast tier (under a minute) leaves it
@settings(max_examples=150, deadline=None)
@given(many=st.lists(states, min_size=1, max_size=6), holes=st.lists(st.sampled_from(LISTS), max_size=4))
def test_canonical_is_a_sort_of_each_list(many: list[dict[str, Any]], holes: list[str]) -> None:
    rows = []
    for number, state in enumerate(many):
        state = {"principal": f"u{number}", **state}
        for column in holes[: number + 1]:  # a null element in some lists, a null list in others
            state[column] = None if number % 3 == 2 else [*(state.get(column) or []), None]
        rows.append(orjson.dumps(state))
    frame = decode(rows, PARTIAL_SCHEMA)
    assert canonical(frame).equals(_per_list(frame))
    assert canonical(frame.reverse()).equals(_per_list(frame.reverse()))

"""`newest_lists` (one top-k per shopper) keeps exactly the entries `top_recent` then `nest` keep (#17):
the merge took them from a sort of every row; ties, nulls and repeated rows included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.profiles.state import VIEW, nest, newest_lists, top_recent

BASE = datetime(2026, 12, 1, tzinfo=UTC)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "anon:a"]),
        st.one_of(st.none(), st.integers(0, 4).map(lambda m: BASE + timedelta(minutes=m))),
        st.one_of(st.none(), st.sampled_from(["p-1", "p-2", "p-3"])),
        st.one_of(st.none(), st.sampled_from(["shoes", "hats"])),
    ),
    max_size=60,
)


def _sorted_lists(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    lists = frame.with_columns(pl.col("views").list.eval(pl.element().sort(nulls_last=True)))
    return sorted(lists.rows(), key=lambda row: row[0])


@settings(max_examples=200, deadline=None)
@given(rows=ROWS, n=st.integers(1, 6))
def test_newest_lists_keep_what_the_sorted_cut_keeps(rows: list[tuple[object, ...]], n: int) -> None:
    schema = {"principal": pl.String(), **{f.name: f.dtype for f in VIEW.fields}}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    expected = nest(top_recent(frame, n), "views", VIEW)
    assert _sorted_lists(newest_lists(frame, n, "views", VIEW)) == _sorted_lists(expected)

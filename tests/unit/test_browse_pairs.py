"""browse_abandonment's pairs of views (#17): found from each view's neighbour in (shopper, product, time)
order, they are what the rule's text says, checked against a plain loop over each product's views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.profiles.state import VIEW
from transforms.triggers.rules.base import RuleContext
from transforms.triggers.rules.browse import REENTRY, STAMP, WINDOW, _viewed_twice

T0 = datetime(2026, 11, 1, tzinfo=UTC)
PYTHON_STAMP = STAMP.replace("%.6f", ".%f")
COLUMNS = ["principal", "product_id", "episode", "first_view", "qualified_at", "paired_with"]


def _context(views: dict[str, list[tuple[str, datetime]]]) -> RuleContext:
    state = pl.DataFrame(
        [
            {"principal": who, "views": [{"ts": ts, "product_id": p, "category": "c"} for p, ts in seen]}
            for who, seen in views.items()
        ],
        schema={"principal": pl.String, "views": pl.List(VIEW)},
    )
    empty = pl.DataFrame()
    return RuleContext(state, T0, timedelta(hours=2), empty, empty, empty)


def _expected(views: dict[str, list[tuple[str, datetime]]]) -> set[tuple[object, ...]]:
    """The latest paired view of each product a shopper viewed, by a loop over its sorted views."""
    rows: set[tuple[object, ...]] = set()
    for who, seen in views.items():
        for product in {p for p, _ in seen}:
            times = sorted(ts for p, ts in seen if p == product)
            latest = None
            start = first = times[0]
            for i, ts in enumerate(times):
                paired = i > 0 and ts - times[i - 1] <= WINDOW
                start = start if paired else ts
                block = (ts - start) // REENTRY
                if not paired or block != (times[i - 1] - start) // REENTRY:
                    first = ts
                if paired:
                    episode = f"{start.strftime(PYTHON_STAMP)}+{block}"
                    latest = (who, product, episode, first, ts, times[i - 1])
            if latest is not None:
                rows.add(latest)
    return rows


HOURS = st.integers(0, 40 * 24).map(lambda h: T0 + timedelta(hours=h))  # ties and gaps of 24 h and 14 days
VIEWS = st.dictionaries(
    st.sampled_from(["u:a", "u:b", "a:c"]),
    st.lists(
        st.tuples(st.sampled_from(["p1", "p2"]), HOURS),
        min_size=1,
        max_size=30,
    ),
    min_size=1,
)


@settings(max_examples=80, deadline=None)
@given(VIEWS)
def test_pairs_runs_and_blocks_are_what_a_loop_over_each_products_views_finds(
    views: dict[str, list[tuple[str, datetime]]],
) -> None:
    found = _viewed_twice(_context(views)).select(COLUMNS)
    assert set(found.rows()) == _expected(views)


def test_views_at_the_same_instant_pair_with_each_other_in_every_shopper() -> None:
    """Found while making the rule faster: of two views at the same instant, the latest pair's `paired_with`
    was the one before them or their twin, as a group's sort happened to order them."""
    views = {
        f"u:{n}": [("p1", T0), ("p1", T0 + timedelta(hours=3)), ("p1", T0 + timedelta(hours=3))]
        for n in range(2_000)
    }
    found = _viewed_twice(_context(views))
    assert found.height == 2_000
    assert found["paired_with"].unique().to_list() == [T0 + timedelta(hours=3)]

"""`attributions` on a real lake (#19): merged on the order's event id, so a rerun changes nothing and a
late click moves the credit without a second row; each run's credits are the whole table, so a credit
no longer earned goes (found by review: it stayed, and a duplicate order landing later was credited twice)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from resources.lake import LakeResource
from stores.measure import ATTRIBUTIONS, run_attribution
from tests.unit.test_attribution import WINDOW, click, hours, order, send
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA
from transforms.schema import EVENTS_SCHEMA, IDENTITIES_SCHEMA, SENDS_SCHEMA


def land(lake: LakeResource, events: list[dict[str, object]]) -> None:
    lake.write(
        "events", pl.DataFrame([dict.fromkeys(EVENTS_SCHEMA) | e for e in events], schema=EVENTS_SCHEMA)
    )


def test_rerun_is_identical_and_a_late_click_moves_the_credit(lake: LakeResource) -> None:
    sends = [send("s-a", 0), send("s-b", 10), send("s-c", 0, user="u-2")]
    lake.write("sends", pl.DataFrame(sends, schema=SENDS_SCHEMA))
    land(lake, [order("o1", 20), order("o2", 30, user="u-2"), order("o3", 400)])

    first = run_attribution(lake, WINDOW)
    table = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("order_event_id")
    version = lake.version(ATTRIBUTIONS)
    assert (first.orders, first.credited, first.merged) == (3, 2, 2)
    assert table.select("order_event_id", "send_id", "rule").rows() == [
        ("o1", "s-b", "send"),
        ("o2", "s-c", "send"),
    ]

    again = run_attribution(lake, WINDOW)
    assert (again.credited, again.merged) == (2, 0)
    assert lake.version(ATTRIBUTIONS) == version  # nothing to merge: no commit
    assert_frame_equal(lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("order_event_id"), table)

    land(lake, [click("c1", "s-a", 1)])  # a click that landed late: the credit moves to the clicked send
    late = run_attribution(lake, WINDOW)
    after = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("order_event_id")
    assert late.merged == 1 and late.by_rule == {"click": 1, "send": 1}
    assert after.select("order_event_id", "send_id", "rule").rows() == [
        ("o1", "s-a", "click"),
        ("o2", "s-c", "send"),
    ]


def test_a_duplicate_order_landing_later_is_still_one_credit(lake: LakeResource) -> None:
    """The same order_id in a second message (another messageId) that lands a batch later but sorts first
    (same time, smaller id): the order keeps its first message's id, one row, its revenue once."""
    lake.write("sends", pl.DataFrame([send("s-a", 0)], schema=SENDS_SCHEMA))
    land(lake, [order("zz-msg-1", 20, order_id="ORD-1", batch_id=1)])
    run_attribution(lake, WINDOW)
    version = lake.version(ATTRIBUTIONS)

    land(lake, [order("aa-msg-2", 20, order_id="ORD-1", batch_id=2)])
    again = run_attribution(lake, WINDOW)
    table = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)
    assert table.select("order_event_id", "order_id", "send_id").rows() == [("zz-msg-1", "ORD-1", "s-a")]
    assert table["revenue"].sum() == 40.0 and again.revenue == {"EUR": 40.0}
    assert (again.credited, again.merged, again.withdrawn) == (1, 0, 0)
    assert lake.version(ATTRIBUTIONS) == version  # the same credit under the same key: no commit


def _restitched(lake: LakeResource) -> None:
    """A late identify with an earlier first_seen_at: anonymous a-1 was u-2's (no send) before u-1's."""
    edge = {"anonymous_id": "a-1", "user_id": "u-2", "first_seen_at": hours(5)}
    lake.write("identities", pl.DataFrame([edge], schema=IDENTITIES_SCHEMA))


def _as_it_was(lake: LakeResource) -> None:
    """Nothing new in the lake: only the window changes."""


WITHDRAWN = {
    "the anonymous order is re-stitched to a shopper with no send": (_restitched, WINDOW),
    "the window is shortened to 1 h: the order came 20 h after the send": (_as_it_was, timedelta(hours=1)),
}


@pytest.mark.parametrize("case", list(WITHDRAWN))
def test_a_credit_no_longer_earned_is_withdrawn(lake: LakeResource, case: str) -> None:
    change, window = WITHDRAWN[case]
    sends = [send("s-a", 0), send("s-c", 29.5, user="u-3")]
    lake.write("sends", pl.DataFrame(sends, schema=SENDS_SCHEMA))
    edge = {"anonymous_id": "a-1", "user_id": "u-1", "first_seen_at": hours(15)}
    lake.write("identities", pl.DataFrame([edge], schema=IDENTITIES_SCHEMA))
    land(
        lake, [order("o1", 20, user=None, anonymous_id="a-1", order_id="ORD-9"), order("o3", 30, user="u-3")]
    )
    first = run_attribution(lake, WINDOW)
    assert first.credited == 2

    change(lake)
    again = run_attribution(lake, window)
    table = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)
    assert table.select("order_event_id", "user_id", "send_id").rows() == [("o3", "u-3", "s-c")]
    assert (again.credited, again.merged, again.withdrawn) == (1, 0, 1)
    version = lake.version(ATTRIBUTIONS)
    assert run_attribution(lake, window).withdrawn == 0 and lake.version(ATTRIBUTIONS) == version

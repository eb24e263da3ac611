"""`attributions` on a real lake (#19): merged on the order's event id, so a rerun changes nothing and a
late click moves the credit without a second row."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from resources.lake import LakeResource
from stores.measure import ATTRIBUTIONS, run_attribution
from tests.unit.test_attribution import WINDOW, click, order, send
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA
from transforms.schema import EVENTS_SCHEMA, SENDS_SCHEMA


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

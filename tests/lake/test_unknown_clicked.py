"""A send whose provider call timed out (`unknown`: the email may have gone) and that a person then clicked
was delivered: the click carries its send_id. Attribution credits it by the click rule and the experiments
count it as sent and clicked; `sends` keeps saying `unknown`. An `unknown` send nobody clicked earns
nothing (no proof it went out)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from resources.lake import LakeResource
from stores.measure import ATTRIBUTIONS, run_attribution, run_experiments
from tests.lake.measure_world import (
    T0,
    WINDOW,
    accepted,
    clicked,
    decided,
    hours,
    ordered,
    outbox,
    timed_out,
    write,
)
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA
from transforms.schema import SENDS_SCHEMA

CALLED = T0 + timedelta(minutes=1)  # the provider call (its answer, or its timeout)


def test_a_clicked_unknown_send_earns_the_click_and_counts_as_sent(lake: LakeResource) -> None:
    decisions = [decided(u) for u in ("u-1", "u-2", "u-3")]
    rows = outbox(decisions)
    sends = [timed_out(rows["u-1"], CALLED), accepted(rows["u-2"], CALLED), timed_out(rows["u-3"], CALLED)]
    messages = [clicked(sends[0], hours(2), issued=CALLED)]
    messages += [ordered(u, hours(3), 40.0) for u in ("u-1", "u-2", "u-3")]
    write(lake, decisions, sends, messages)

    report = run_attribution(lake, WINDOW)
    credits = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("user_id")
    assert (report.orders, report.credited, report.by_rule) == (3, 2, {"click": 1, "send": 1})
    assert credits.select("user_id", "send_id", "rule").rows() == [
        ("u-1", rows["u-1"]["send_id"], "click"),
        ("u-2", rows["u-2"]["send_id"], "send"),
    ]
    clicked_credit = credits.row(0, named=True)
    assert clicked_credit["clicked_at"] == hours(2)
    assert clicked_credit["sent_at"] == T0  # it went no earlier than its outbox row was made

    [arm] = run_experiments(lake, WINDOW, hours(24 * 6)).filter(pl.col("arm") == "a").to_dicts()
    assert (arm["exposed"], arm["sent"], arm["clicked"], arm["converted"]) == (3, 2, 1, 3)
    statuses = lake.read("sends", SENDS_SCHEMA).sort("user_id")["status"].to_list()
    assert statuses == ["unknown", "sent", "unknown"]  # measured as delivered, never rewritten

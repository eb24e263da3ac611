"""What the emails earn, net of refunds and cancellations (Segment e-commerce v2's `Order Refunded` and
`Order Cancelled`), on a real lake through the real ingest: `attributions`, `experiments` and `lakemail
report` credit each order's revenue less what was refunded of it (found by review: they ignored both).
The same numbers whichever lands first, a refund or its order, with the refunds' messages landing twice,
and on a rerun; the state store, with the refunds in its profiles, equals a rebuilt one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from orchestration.cli import main
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.measure import ATTRIBUTIONS, run_attribution, run_experiments
from stores.profiles import profiles_view
from stores.state.rebuild import check
from tests.lake.measure_world import WINDOW, accepted, decided, hours, outbox
from tests.story import spec_message
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA
from transforms.schema import SENDS_SCHEMA, TRIGGERS_SCHEMA

TREATED, HELD = ["u-1", "u-2", "u-3", "u-4"], ["h-1", "h-2"]
SHIRT = {"product_id": "p1", "name": "Shirt", "price": 10.0, "quantity": 1, "category": "shirts"}


def order(user: str, revenue: float) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order_id": f"o-{user}",
        "total": revenue + 5,
        "revenue": revenue,
        "currency": "EUR",
    }
    return spec_message("Order Completed", hours(3), user=user, message_id=f"order-{user}", **fields)


def refund(user: str, event: str = "Order Refunded", **fields: Any) -> dict[str, Any]:
    when = hours(30)  # the next day, within the window
    return spec_message(event, when, user=user, message_id=f"refund-{user}", order_id=f"o-{user}", **fields)


ORDERS = [order("u-1", 40.0), order("u-2", 50.0), order("u-3", 30.0), order("u-4", 20.0), order("h-1", 10.0)]
REFUNDS = [
    refund("u-1", "Order Cancelled", total=45.0, revenue=40.0, currency="EUR"),  # -> 0
    refund("u-2", products=[SHIRT]),  # a partial refund naming its product only: 50 - 10 -> 40
    refund("u-3"),  # no amount: the whole order -> 0
    refund("u-4", total=5.0, currency="USD"),  # another currency than the order's: left, and noted
    refund("h-1", total=4.0, currency="eur"),  # -> 6
]


def land(landing: LandingResource, name: str, messages: list[dict[str, Any]]) -> None:
    landing.land(f"events/{name}.ndjson", b"\n".join(orjson.dumps(m) for m in messages) + b"\n")


def mail(lake: LakeResource) -> None:
    """The treated shoppers got their abandoned_cart email at T0 + 0.1 h; h-1 and h-2 were held out."""
    decisions = [decided(u) for u in TREATED] + [decided(u, "holdout") for u in HELD]
    rows = outbox(decisions)
    lake.write("triggers", pl.DataFrame(decisions, schema=TRIGGERS_SCHEMA))
    lake.write("sends", pl.DataFrame([accepted(rows[u], hours(0.1)) for u in TREATED], schema=SENDS_SCHEMA))


def shop(root: Path, refunds_first: bool) -> tuple[LakeResource, StateResource]:
    """The orders and refunds in two batches (which first: `refunds_first`), then every refund's message
    again in a third (a tracker's retry: the same messageIds)."""
    lake, landing = LakeResource(uri=str(root / "lake")), LandingResource(uri=str(root / "landing"))
    state = StateResource(uri=str(root / "state"))
    mail(lake)
    batches = (
        [("refunds", REFUNDS), ("orders", ORDERS)]
        if refunds_first
        else [("orders", ORDERS), ("refunds", REFUNDS)]
    )
    for name, messages in [*batches, ("again", REFUNDS)]:
        land(landing, name, messages)
        ingest(lake, landing, state=state, secret="test-secret")
    return lake, state


@pytest.mark.parametrize("refunds_first", [False, True], ids=["orders-first", "refunds-first"])
def test_revenue_is_net_of_refunds_whatever_lands_first_and_twice(
    tmp_path: Path, refunds_first: bool
) -> None:
    lake, state = shop(tmp_path, refunds_first)
    report = run_attribution(lake, WINDOW)
    assert report.revenue == {"EUR": 60.0}  # 0 + 40 + 0 + 20 (was 140)
    assert (report.orders, report.credited, report.refunded, report.unnetted) == (5, 4, 2, 1)
    credited = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("user_id")
    assert credited.select("user_id", "revenue").rows() == [
        ("u-1", 0.0),
        ("u-2", 40.0),
        ("u-3", 0.0),
        ("u-4", 20.0),
    ]

    arms = {r["arm"]: r for r in run_experiments(lake, WINDOW, hours(24 * 6)).to_dicts()}
    a, held = arms["a"], arms["holdout"]
    assert (a["converted"], a["revenue"], a["revenue_per_shopper"]) == (
        4,
        60.0,
        15.0,
    )  # cancelled: still converted
    assert (held["converted"], held["revenue"], a["revenue_uplift"]) == (1, 6.0, 12.0)
    assert "1 partial refund in another currency than the order's: not taken off revenue" in a["note"]

    again = run_attribution(lake, WINDOW)  # a rerun: nothing to merge, the same table
    assert (again.merged, again.revenue) == (0, report.revenue)
    assert_frame_equal(lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("user_id"), credited)

    profiles = profiles_view(lake, hours(24 * 6)).sort("user_id")
    assert profiles.select("user_id", "order_count", "lifetime_value").rows() == [
        ("h-1", 1, 6.0),
        ("u-1", 1, 0.0),
        ("u-2", 1, 40.0),
        ("u-3", 1, 0.0),
        ("u-4", 1, 20.0),
    ]
    assert check(lake, state).equal


def test_the_report_prints_revenue_net_of_refunds(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shop(cli_home, refunds_first=True)
    assert main(["report", "--format", "json"]) == 0
    arms = {r["arm"]: r for r in json.loads(capsys.readouterr().out)["arms"]}
    assert (arms["a"]["revenue"], arms["holdout"]["revenue"]) == (60.0, 6.0)
    assert main(["report"]) == 0
    assert "1 partial refund in another currency than the order's" in capsys.readouterr().out


def test_a_refund_of_products_priced_as_text_nets_what_it_names_not_the_whole_order(tmp_path: Path) -> None:
    """The lake reads `"price": "10"` as the number 10 (an event's typed `price`); a refund's products
    priced so were unpriced, so a partial refund of 10 netted its order of 40 to 0 (found by review)."""
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    state = StateResource(uri=str(tmp_path / "state"))
    mail(lake)
    text_price = {**SHIRT, "price": "10", "quantity": None}  # one shirt, its price as text
    text_quantity = {**SHIRT, "quantity": "2"}  # two shirts
    refunds = [refund("u-1", products=[text_price]), refund("u-2", products=[text_quantity])]
    land(landing, "orders", ORDERS[:2])
    land(landing, "refunds", refunds)
    ingest(lake, landing, state=state, secret="test-secret")
    report = run_attribution(lake, WINDOW)
    assert (report.revenue, report.refunded) == ({"EUR": 60.0}, 0)  # 40 - 10 and 50 - 20 (was 0 and 0)
    credited = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("user_id")
    assert credited.select("user_id", "revenue").rows() == [("u-1", 30.0), ("u-2", 30.0)]
    arms = {r["arm"]: r for r in run_experiments(lake, WINDOW, hours(24 * 6)).to_dicts()}
    assert (arms["a"]["converted"], arms["a"]["revenue"]) == (2, 60.0)
    profiles = profiles_view(lake, hours(24 * 6)).sort("user_id")
    assert profiles.select("user_id", "lifetime_value").rows() == [("u-1", 30.0), ("u-2", 30.0)]

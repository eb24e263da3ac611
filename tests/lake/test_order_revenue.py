"""Golden story: orders shaped as Segment's e-commerce v2 spec allows, stating their worth without `revenue`
(only `total`, only `subtotal`, only `products[]`), through the real ingest into a real lake: the profiles'
`lifetime_value`, `attributions`, `experiments`, `lakemail report` and `lakemail sql` all count what each
order states, read in one order (transforms/profiles/revenue.py: revenue, else total, else subtotal, else
products[] price x quantity), and a refund's amount is read alike.

Regression (a known gap): an order stating only `subtotal` or `products[]` was counted with revenue 0 in
`attributions` and the report, and added nothing to the profile's `lifetime_value`; a refund stating only
`subtotal` netted its whole order to 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestration.cli import main
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.measure import ATTRIBUTIONS, run_attribution, run_experiments
from stores.profiles import profiles_view
from stores.state.rebuild import check
from tests.lake.measure_world import WINDOW, hours
from tests.lake.test_refunds import land, mail
from tests.story import spec_message
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA

SHIRT = {"product_id": "p1", "name": "Shirt", "category": "shirts", "price": 10.0, "quantity": 2}
MUG = {"product_id": "p2", "name": "Mug", "category": "kitchen", "price": 5}  # quantity unstated: 1
STATED: dict[str, dict[str, Any]] = {
    "u-1": {"total": 45.0},  # only total (revenue with shipping and tax): 45
    "u-2": {"subtotal": 30.0},  # only subtotal: 30, less the refund of 10 below
    "u-3": {"products": [SHIRT, MUG]},  # only products[]: 10 x 2 + 5 = 25
    "u-4": {"revenue": 20.0, "total": 27.5, "subtotal": 18.0, "products": [SHIRT]},  # revenue first: 20
    "h-1": {"subtotal": "12.5", "products": [MUG]},  # a subtotal as text reads as the lake reads numbers
}
WORTH = {"u-1": 45.0, "u-2": 20.0, "u-3": 25.0, "u-4": 20.0, "h-1": 12.5}


def order(user: str) -> dict[str, Any]:
    fields = {"order_id": f"o-{user}", "checkout_id": f"k-{user}", "currency": "EUR", **STATED[user]}
    return spec_message("Order Completed", hours(3), user=user, message_id=f"order-{user}", **fields)


def shop(root: Path) -> tuple[LakeResource, StateResource]:
    """The treated shoppers (u-1 to u-4) got their abandoned_cart email, h-1 and h-2 were held out; the
    orders land in one batch, u-2's partial refund (10, as `subtotal` only) the next day in another."""
    lake, landing = LakeResource(uri=str(root / "lake")), LandingResource(uri=str(root / "landing"))
    state = StateResource(uri=str(root / "state"))
    mail(lake)
    refund = spec_message(
        "Order Refunded", hours(30), user="u-2", message_id="refund-u-2", order_id="o-u-2", subtotal=10.0
    )
    for name, messages in [("orders", [order(u) for u in STATED]), ("refunds", [refund])]:
        land(landing, name, messages)
        ingest(lake, landing, state=state, secret="test-secret")
    return lake, state


def test_orders_stating_total_subtotal_or_products_count_what_they_state(tmp_path: Path) -> None:
    lake, state = shop(tmp_path)
    report = run_attribution(lake, WINDOW)
    assert report.revenue == {"EUR": 110.0}  # 45 + 20 + 25 + 20 (was 65: 45 + 0 + 0 + 20)
    assert (report.orders, report.credited, report.refunded) == (5, 4, 0)
    credited = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).sort("user_id")
    treated = ["u-1", "u-2", "u-3", "u-4"]
    assert credited.select("user_id", "revenue").rows() == [(u, WORTH[u]) for u in treated]

    arms = {r["arm"]: r for r in run_experiments(lake, WINDOW, hours(24 * 6)).to_dicts()}
    a, held = arms["a"], arms["holdout"]
    assert (a["converted"], a["revenue"], a["revenue_per_shopper"]) == (4, 110.0, 27.5)
    assert (held["converted"], held["revenue"], a["revenue_uplift"]) == (1, 12.5, 27.5 - 6.25)

    profiles = profiles_view(lake, hours(24 * 6)).sort("user_id")
    assert profiles.select("user_id", "order_count", "lifetime_value").rows() == [
        (u, 1, WORTH[u]) for u in sorted(WORTH)
    ]
    assert check(lake, state).equal  # the live store's orders are the rebuilt store's


def test_the_report_and_sql_show_what_such_orders_state(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(cli_home)
    assert main(["report", "--format", "json"]) == 0
    arms = {r["arm"]: r for r in json.loads(capsys.readouterr().out)["arms"]}
    assert (arms["a"]["revenue"], arms["holdout"]["revenue"]) == (110.0, 12.5)
    query = "select user_id, lifetime_value from profiles order by user_id"
    assert main(["sql", query, "--format", "json"]) == 0  # answered from the state store
    rows = json.loads(capsys.readouterr().out)
    assert [(r["user_id"], r["lifetime_value"]) for r in rows] == sorted(WORTH.items())

"""What the emails earn credits the shopper, not the id string: an `alias` whose `previousId` is her old user
id (Segment's spec/alias.md: a renamed user, one shopper since the rename) makes her sends, clicks, orders
and experiment assignments under either id hers (found by review: an order placed as u-new was not credited
to the email u-old was sent and clicked, and she was two shoppers in `experiments`: exposed as u-old and
never converting, exposed again as u-new). Messages in Segment's shapes through the real ingest (events,
identities), outbox rows as a delivery leaves them, clicks as the collector lands them, on a real lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from stores.measure import ATTRIBUTIONS, run_attribution, run_experiments
from tests.lake.decide_harness import Shop
from tests.lake.measure_world import WINDOW, accepted, clicked, decided, hours, outbox
from tests.story import spec_message
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA
from transforms.schema import SENDS_SCHEMA, TRIGGERS_SCHEMA

CART = "abandoned_cart"


def _signup(user: str, anon: str | None = None) -> dict[str, Any]:
    traits: dict[str, Any] = {"email": f"{user}@example.com", "marketing_consent": True}
    return spec_message("identify", hours(-2), user=user, anon=anon, **traits)


def _alias(at: float, user: str, previous: str) -> dict[str, Any]:
    return spec_message("alias", hours(at), user=user, previous_id=previous)


def _order(at: float, revenue: float, user: str | None = None, anon: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"order_id": f"o-{user or anon}-{at}", "revenue": revenue, "currency": "EUR"}
    return spec_message("Order Completed", hours(at), user=user, anon=anon, **fields)


def _again(user: str, decision: str, at: float) -> dict[str, Any]:
    """A later decision of the cart kind for `user`, at T0 + `at` hours."""
    row = decided(user, decision)
    return row | {"trigger_id": f"t-{user}-{CART}-{at}", "decided_at": hours(at), "due_at": hours(at)}


def _mailed(shop: Shop, decisions: list[dict[str, Any]], sends: list[dict[str, Any]]) -> None:
    shop.lake.write("triggers", pl.DataFrame(decisions, schema=TRIGGERS_SCHEMA), mode="overwrite")
    shop.lake.write("sends", pl.DataFrame(sends, schema=SENDS_SCHEMA), mode="overwrite")


def test_a_renamed_shoppers_order_is_credited_to_the_email_her_old_id_clicked_and_she_is_one_shopper(
    tmp_path: Path,
) -> None:
    """Ann (u-old) is sent a cart email and clicks it; the shop renames her u-new and she orders as u-new.
    Bob is in the holdout as u-b-old, renamed u-b-new, and orders as u-b-new. Ann is decided again as u-new
    (cooldown): the same shopper, still assigned where she was first."""
    shop = Shop(tmp_path / "shop")
    shop.batch("b0", [_signup("u-old"), _signup("u-b-old")], hours(-1))
    decisions = [decided("u-old"), decided("u-b-old", "holdout"), _again("u-new", "cooldown", 30)]
    ann = accepted(outbox(decisions)["u-old"], hours(0.1))
    _mailed(shop, decisions, [ann])
    renamed = [_alias(3, "u-new", "u-old"), _alias(3, "u-b-new", "u-b-old")]
    shop.batch("b1", [clicked(ann, hours(2), issued=hours(0)), *renamed], hours(4))
    shop.batch("b2", [_order(20, 40.0, user="u-new"), _order(21, 15.0, user="u-b-new")], hours(22))

    report = run_attribution(shop.lake, WINDOW)
    credits = shop.lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)
    assert (report.orders, report.credited, report.by_rule) == (2, 1, {"click": 1})
    assert credits.select("send_id", "user_id", "rule", "revenue", "clicked_at").rows() == [
        (ann["send_id"], "u-new", "click", 40.0, hours(2))
    ]

    arms = run_experiments(shop.lake, WINDOW, hours(24 * 7)).filter(pl.col("kind") == CART)
    figures = arms.select("arm", "exposed", "sent", "clicked", "converted", "revenue").sort("arm")
    assert figures.rows() == [("a", 1, 1, 1, 1, 40.0), ("holdout", 1, 0, 0, 1, 15.0)]


ORDERED_AS = {
    "her old user id (a device still signed in as u-old)": {"user": "u-old"},
    "the anonymous id she identified with as u-old": {"anon": "a-1"},
}


@pytest.mark.parametrize("case", list(ORDERED_AS))
def test_an_order_under_the_old_id_is_credited_to_the_email_sent_to_the_new_one(
    tmp_path: Path, case: str
) -> None:
    """Ann signs up as u-old (anonymous id a-1), is renamed u-new, is sent a cart email as u-new, and an
    order lands under an id of hers from before the rename."""
    shop = Shop(tmp_path / "shop")
    shop.batch("b0", [_signup("u-old", anon="a-1"), _alias(-1, "u-new", "u-old")], hours(-0.5))
    decisions = [decided("u-new")]
    ann = accepted(outbox(decisions)["u-new"], hours(0.1))
    _mailed(shop, decisions, [ann])
    shop.batch("b1", [_order(10, 25.0, **ORDERED_AS[case])], hours(11))

    run_attribution(shop.lake, WINDOW)
    credits = shop.lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)
    assert credits.select("send_id", "user_id", "rule", "revenue").rows() == [
        (ann["send_id"], "u-new", "send", 25.0)
    ]
    [arm] = run_experiments(shop.lake, WINDOW, hours(24 * 7)).to_dicts()
    assert (arm["exposed"], arm["sent"], arm["converted"], arm["revenue"]) == (1, 1, 1, 25.0)

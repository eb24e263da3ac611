"""A post_purchase decision's `detail`: written by the rule in Polars over every order, and by the
profile API in plain Python for the one order it previews (`order_detail`); the same text."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

from tests.story import at
from transforms.profiles.state import ORDER_STATE
from transforms.triggers.rules.base import RuleContext
from transforms.triggers.rules.lifecycle import ORDER_PRODUCTS, order_detail, post_purchase_candidates

STATE = {"principal": pl.String(), "orders": pl.List(ORDER_STATE)}


@pytest.mark.parametrize(
    "products",
    [
        ["p2", "p1", None, "p2"],
        ['q"x', "é\\", "p1"],
        [f"p{n}" for n in range(ORDER_PRODUCTS + 5)],
        [],
        [None],
        None,
    ],
)
def test_the_rules_detail_and_its_one_order_form_agree(products: list[str | None] | None) -> None:
    """The rule writes `detail` in Polars; the profile API previews one order in Python: same text."""
    orders = [[{"order_id": "o1", "ordered_at": at(0), "products": products}]]
    state = pl.DataFrame({"principal": ["u1"], "orders": orders}, schema=STATE)
    context = RuleContext(state, at(60), timedelta(days=3), pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
    [detail] = post_purchase_candidates(context)["detail"].to_list()
    assert detail == order_detail(products)
    ids = list(dict.fromkeys(p for p in products or () if p is not None))
    assert (json.loads(detail)["products"] if detail else []) == ids[:ORDER_PRODUCTS]

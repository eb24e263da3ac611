"""The catalog as emails read it: recommendations in a category, and the bestseller ranking."""

from __future__ import annotations

import polars as pl

from tests.unit.test_content import catalog_frame
from transforms.sends.catalog import bestseller_ranking, recommendations


def test_recommendations_same_category_in_stock_not_excluded() -> None:
    picked = recommendations(catalog_frame(), category="shirts", exclude=["p-linen"])
    assert picked["product_id"].to_list() == ["p-denim", "p-oxford"]  # flannel is sold out
    assert picked.schema == catalog_frame().schema


def test_recommendations_limit_and_deterministic_order() -> None:
    shuffled = catalog_frame().sample(fraction=1.0, shuffle=True, seed=7)
    first = recommendations(shuffled, category="shirts", exclude=[], limit=2)
    again = recommendations(catalog_frame().reverse(), category="shirts", exclude=[], limit=2)
    assert first["product_id"].to_list() == again["product_id"].to_list() == ["p-denim", "p-linen"]


def test_recommendations_empty_without_category_or_match() -> None:
    assert recommendations(catalog_frame(), category=None, exclude=[]).is_empty()
    assert recommendations(catalog_frame(), category="hats", exclude=[]).is_empty()
    assert recommendations(catalog_frame(), category="socks", exclude=["p-socks"]).is_empty()


def test_bestsellers_rank_by_distinct_shoppers() -> None:
    added = pl.DataFrame(
        {"principal": ["a", "a", "a", "b", "c", "b"], "product_id": ["p1", "p1", "p1", "p2", "p2", None]}
    )
    assert bestseller_ranking(added) == ["p2", "p1"]
    assert bestseller_ranking(added.clear()) == []

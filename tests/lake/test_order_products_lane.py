"""The ingest lane with an order whose `products` is no list of objects (found by review: the batch's
profile partials raised ComputeError, so the batch, and every one after it, failed for everyone)."""

from __future__ import annotations

from pathlib import Path

from tests.lake.test_unsubscribe_anonymous import Home, _signup
from tests.story import at, message


def test_a_batch_with_an_order_of_odd_products_is_taken_and_its_shoppers_decided(tmp_path: Path) -> None:
    home = Home(tmp_path)
    odd = [
        message("Order Completed", at(1), user="u-2", order_id=f"o-{n}", revenue=5.0, products=products)
        for n, products in enumerate(["p-4", {"a": 1}, [[1]], [{"product_id": {"a": 1}}]])
    ]
    home.batch("0", at(2), _signup("u-1", at(0)), _signup("u-2", at(0)), *odd)
    assert home.lake.committed_batch() == 1
    home.engine(at(3))
    assert home.decisions("u-1") == home.decisions("u-2") == [("welcome", "send")]

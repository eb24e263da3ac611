"""One order's odd `products` never stops the ingest (found by review): an `Order Completed` whose
`products` was an object, a string or a list of numbers passed validation (only `properties`, `traits` and
`context` must be objects), then failed the batch's profile partials after its events were committed:
every later run failed the same way and no file behind it was taken."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.state.rebuild import check
from transforms.profiles.products import ORDER_PRODUCTS, order_products

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ODD = [
    {"a": 1},
    "x",
    [1, "a", None],
    [{"product_id": {"x": 1}, "category": "c"}, {"product_id": "p2"}],
    [[1]],
]


def order(n: int, products: object) -> dict:
    return {
        "messageId": f"o-{n}",
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "timestamp": f"2026-12-05T10:{n:02d}:00Z",
        "properties": {"order_id": f"order-{n}", "total": 10, "products": products},
    }


def lines(messages: list[dict]) -> bytes:
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


def test_odd_products_are_read_as_what_they_hold(tmp_path: Path) -> None:
    texts = pl.Series("products", [orjson.dumps(p).decode() for p in ODD] + ['[{"product_id": 7}]', None])
    assert order_products(texts).to_list() == [
        None,
        None,
        [],
        [{"product_id": None, "category": "c"}, {"product_id": "p2", "category": None}],
        [],
        [{"product_id": "7", "category": None}],  # as the batch's one decode reads it
        None,
    ]
    assert order_products(texts.tail(2)).dtype == ORDER_PRODUCTS


@pytest.mark.parametrize("with_store", [True, False])
def test_an_order_with_odd_products_never_stops_the_ingest(tmp_path: Path, with_store: bool) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    state = StateResource(uri=str(tmp_path / "state")) if with_store else None
    signup = {"messageId": "i-1", "type": "identify", "userId": "u1", "timestamp": "2026-12-05T09:00:00Z"}
    landing.land("events/a.ndjson", lines([signup, *[order(n, p) for n, p in enumerate(ODD)]]))
    ingest(lake, landing, now=NOW, state=state, secret="s")
    landing.land("events/b.ndjson", lines([order(30, [{"product_id": "p9", "category": "mugs"}])]))
    ingest(lake, landing, now=NOW, state=state, secret="s")

    assert lake.committed_batch() == 2
    log = lake.read("ingest_log", {"source_file": pl.String(), "accepted": pl.Int64()})
    assert sorted(log.rows()) == [("events/a.ndjson", 6), ("events/b.ndjson", 1)]
    if state is not None:
        report = check(lake, state)
        assert report.store_stamps == report.lake_stamps
        assert [n for n, d in report.namespaces.items() if not d.equal] == []

"""The ingest's state thread holds only the event columns it reads (#17, peak RSS): the partials made from
`events` without NOT_IN_PARTIALS (`partial_rows`: but the properties of an order or a refund stating neither
`revenue` nor `total`, whose worth is its `subtotal`), and the store changes made from CHANGES_READ alone,
are the ones the whole rows give, on Segment's documented payloads, a consent object in `context`, and an
order and a refund stating a `subtotal` only."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest

from resources.state import StateResource
from stores.state.batch import CHANGES_READ, event_state, partial_rows
from transforms.ingest.events import identity_edges
from transforms.ingest.files import process_file
from transforms.profiles.partials import partials
from transforms.profiles.state import canonical
from transforms.schema import EVENTS_SCHEMA

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "segment"
LANDED = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
CONSENT = {
    "type": "identify",
    "messageId": "consent-1",
    "userId": "u-consent",
    "timestamp": "2026-11-20T12:00:00Z",
    "traits": {"email": "c@example.com"},
    "context": {"ip": "203.0.113.9", "consent": {"categoryPreferences": {"marketing": True}}},
}
SUBTOTAL_ONLY = [  # worth 30, less 10 (transforms/profiles/revenue.py)
    {"type": "track", "messageId": f"{name}-s", "userId": "u-sub", "timestamp": f"2026-11-20T12:0{n}:00Z"}
    | {"event": name, "properties": {"order_id": "o-sub", "subtotal": subtotal, "currency": "EUR"}}
    for n, (name, subtotal) in enumerate([("Order Completed", 30.0), ("Order Refunded", 10.0)])
]


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    lines = [
        (FIXTURES / name).read_bytes().rstrip(b"\n") for name in ("ecommerce_v2.ndjson", "spec_calls.ndjson")
    ]
    data = b"\n".join([*lines, *map(orjson.dumps, [CONSENT, *SUBTOTAL_ONLY])])
    result = process_file(
        data, source_file="events/golden.ndjson", landed_at=LANDED, ingested_at=LANDED, batch_id=1
    )
    assert result.events.height > 30 and set(EVENTS_SCHEMA) <= set(result.events.columns)
    return result.events


def test_the_partials_of_the_columns_they_read_are_those_of_the_whole_rows(events: pl.DataFrame) -> None:
    whole = canonical(partials(events)).sort("principal")
    assert whole.filter(pl.col("principal") == "u-consent").height == 1
    first = {"orders": "revenue", "refunds": "amount"}
    ordered = whole.filter(pl.col("principal") == "u-sub").select(
        pl.col(name).list.first().struct.field(field) for name, field in first.items()
    )
    assert ordered.rows() == [(30.0, 10.0)]
    assert canonical(partials(partial_rows(events))).sort("principal").equals(whole)


def test_the_store_changes_of_the_columns_they_read_are_those_of_the_whole_rows(
    events: pl.DataFrame, tmp_path: Path
) -> None:
    part, edges = partials(events), identity_edges(events)
    store = StateResource(uri=str(tmp_path / "state")).store()
    whole = event_state(store, events, edges, part)
    narrow = event_state(store, events.select(CHANGES_READ), edges, part)
    assert whole is not None and narrow is not None
    for namespace in ("event_ids", "product_viewers", "profiles"):
        assert list(narrow.ordered_puts(namespace)) == list(whole.ordered_puts(namespace)) != []

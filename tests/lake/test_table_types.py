"""The tables a micro-batch's ingest creates have the column types the lake's contract declares
(`transforms.schema`): a table takes the types of its first rows, so a literal of the wrong width made
`catalog_changes.batch_id` a 32-bit integer where every other table's is 64-bit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from transforms.schema import (
    CATALOG_CHANGES_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    IDENTITIES_SCHEMA,
    INGEST_LOG_SCHEMA,
    QUARANTINE_SCHEMA,
)

SEGMENT = Path(__file__).parent.parent / "fixtures" / "segment"
DECLARED = {
    "events": EVENTS_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "ingest_log": INGEST_LOG_SCHEMA,
    "identities": IDENTITIES_SCHEMA,
    "catalog": CATALOG_SCHEMA,
    "catalog_changes": CATALOG_CHANGES_SCHEMA,
    "customers": CUSTOMERS_SCHEMA,
}


def test_every_table_the_ingest_creates_has_the_declared_types(tmp_path: Path) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    state = StateResource(uri=str(tmp_path / "state"))
    events = (SEGMENT / "ecommerce_v2.ndjson").read_bytes() + (SEGMENT / "spec_calls.ndjson").read_bytes()
    landing.land("events/a.ndjson", events + b"{broken\n")
    landing.land("customers/crm.csv", b"user_id,email,first_name\nu1,a@example.com,Ana\n")
    landing.land(
        "catalog/feed.csv", b"product_id,name,price,stock,updated_at\np1,Mug,10.0,0,2026-11-20T10:00:00Z\n"
    )
    ingest(lake, landing, state=state, secret="test-secret", now=datetime(2026, 11, 20, 11, tzinfo=UTC))
    # Back in stock and 20 % cheaper: two catalog changes, the table's first rows.
    landing.land(
        "catalog/feed2.csv", b"product_id,name,price,stock,updated_at\np1,Mug,8.0,5,2026-11-20T12:00:00Z\n"
    )
    ingest(lake, landing, state=state, secret="test-secret", now=datetime(2026, 11, 20, 13, tzinfo=UTC))
    assert pl.read_delta(f"{lake.uri}/catalog_changes")["change"].sort().to_list() == [
        "back_in_stock",
        "price_drop",
    ]
    found = {name: dict(pl.read_delta(f"{lake.uri}/{name}").schema) for name in DECLARED}
    wrong = {
        f"{name}.{column}": f"{found[name].get(column)} (declared {dtype})"
        for name, schema in DECLARED.items()
        for column, dtype in schema.items()
        if found[name].get(column) != dtype
    }
    assert wrong == {}

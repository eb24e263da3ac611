"""Erasure reaches old Delta versions (found by review): rows the current version no longer held (trigger
candidates decided since, profile partials folded away) stayed in the old versions that `lakemail sql
--as-of` and Polars' `read_delta(version=...)` read, and the certificate said "no trace left"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from orchestration.sql import SqlError, run_query
from stores.erasure.history import OldVersions, old_files
from stores.erasure.requests import erase_user
from stores.state.refresh import fold
from stores.triggers_pending import checkpoint
from tests.lake.decide_harness import SECRET, Shop
from tests.story import message
from transforms.erasure.person import Person
from transforms.schema import INGEST_LOG_SCHEMA, TRIGGERS_SCHEMA

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
USER, EMAIL, OTHER = "u-erin", "erin.history@example.com", "u-olga"


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def holds_person(frame: pl.DataFrame) -> bool:
    text = frame.write_ndjson().lower()
    return USER in text or EMAIL in text


def crm(updated: datetime, tier: str) -> str:
    """A CRM file with the other shopper's row only."""
    return f"user_id,email,loyalty_tier,updated_at\n{OTHER},olga@example.com,{tier},{updated.isoformat()}\n"


def versions(shop: Shop, name: str) -> list[int]:
    return list(range(DeltaTable(shop.lake.table_uri(name)).version() + 1))


def readable(shop: Shop, name: str, version: int) -> pl.DataFrame | None:
    """`name` at `version` as Polars and `lakemail sql --as-of` read it; None when its files are gone."""
    try:
        frame = pl.read_delta(shop.lake.table_uri(name), version=version)
    except Exception as error:  # the Delta reader's, for a file the erasure removed
        assert "no such file" in str(error).lower() or "not found" in str(error).lower(), error
        with pytest.raises(SqlError, match="vacuumed"):
            run_query(shop.lake.uri, f"select * from {name}", as_of=version)
        return None
    sql = run_query(shop.lake.uri, f"select * from {name}", as_of=version)
    assert sql.height == frame.height
    return frame


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    """Erin's cart waits in `trigger_state` and leaves it once decided; her partials are folded away."""
    shop = Shop(tmp_path / "shop")
    signup = message("identify", at(0), user=USER, email=EMAIL, first_name="Erin", marketing_consent=True)
    cart = message("Product Added", at(1), user=USER, cart_id="c1", product_id="p1", price=9.5)
    olga = message("identify", at(0), user=OTHER, email="olga@example.com", marketing_consent=True)
    shop.batch("b1", [signup, cart, olga], at(2), customers=crm(at(0), "silver"))
    shop.engine(at(5))  # the cart email held until its delay has passed
    shop.batch("b2", [], at(30), customers=crm(at(30), "gold"))  # Olga's CRM row, updated
    shop.engine(at(300))  # decided: Erin's candidates leave the pending set
    assert checkpoint(shop.lake)  # and `trigger_state`, once it is rewritten (a checkpoint: #17)
    assert fold(shop.lake, every=1) == 2  # her partials go from profile_updates into profile_state
    return shop


def test_rows_only_old_versions_hold_are_made_unreadable(shop: Shop) -> None:
    lake = shop.lake
    for name in ("trigger_state", "profile_updates"):  # as the review found them: only in old versions
        assert not holds_person(pl.read_delta(lake.table_uri(name)))
        assert any(holds_person(pl.read_delta(lake.table_uri(name), version=v)) for v in versions(shop, name))
    held = lake.read("trigger_state", TRIGGERS_SCHEMA, version=0)
    assert held.filter(pl.col("principal") == USER).height > 0

    certificate = erase_user(lake, shop.landing, USER, secret=SECRET, state=shop.state)

    assert certificate.passed
    by_table = {t.table: t for t in certificate.tables}
    for name in ("trigger_state", "profile_updates"):
        erased = by_table[name]
        assert (erased.outcome, erased.method, erased.rows_deleted) == ("erased", "vacuum", 0), name
        assert erased.old_rows > 0 and erased.files_removed and erased.versions_unreadable, name
    assert set(certificate.checks["history"]) == set(certificate.checks["tables"])
    assert not any(certificate.checks["history"].values())
    for name in lake.table_names():  # no readable version of any table holds her
        for version in versions(shop, name):
            frame = readable(shop, name, version)
            assert frame is None or not holds_person(frame), (name, version)
    # Others keep their history where she never was: Olga's first CRM row is still read at version 0.
    assert by_table["customers"].outcome == "no rows"
    first = readable(shop, "customers", 0)
    assert first is not None and first["loyalty_tier"].to_list() == ["silver"]


def test_an_old_version_holding_the_person_fails_the_certificate(shop: Shop) -> None:
    # A table the erasure keeps (ingest_log: its rows name files) held her address in an old version.
    lake = shop.lake
    stray = {"source_file": "events/stray.ndjson", "status": "failed", "detail": f"from {EMAIL}"}
    row = pl.DataFrame([{c: stray.get(c) for c in INGEST_LOG_SCHEMA}], schema=INGEST_LOG_SCHEMA)
    write_deltalake(lake.table_uri("ingest_log"), row.to_arrow(), mode="append")
    DeltaTable(lake.table_uri("ingest_log")).delete("source_file = 'events/stray.ndjson'")

    certificate = erase_user(lake, shop.landing, USER, secret=SECRET, state=shop.state)

    assert not certificate.passed
    checks = certificate.checks
    assert checks["tables"]["ingest_log"] == 0 and checks["history"]["ingest_log"] == 1
    assert {name for name, rows in checks["history"].items() if rows} == {"ingest_log"}


def test_files_a_compaction_removed_are_not_read(shop: Shop) -> None:
    # events loses files only to compaction (and to erasures, which vacuum): its history is never read.
    lake = shop.lake
    shop.batch("b3", [message("Product Viewed", at(301), user=OTHER, product_id="p2")], at(302))
    DeltaTable(lake.table_uri("events")).optimize.compact()
    events = DeltaTable(lake.table_uri("events"))
    assert len(old_files(events)) == 2  # both batches' files, compacted: still on disk for time travel
    old = OldVersions(Person(OTHER))  # her rows are in the compacted files, and in the current version
    assert old.rows(lake, "events") == 0 and old.rows_in == {}
    assert old.rows(lake, "customers") == 1 and len(old.rows_in) == 1  # an upsert's old file is read

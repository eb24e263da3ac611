"""A consent given in the CRM, in a batch without events of the shopper, brings their welcome: the engine
runs consider the users whose `customers` row a batch brought, from the store and from the lake alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from stores.triggers import ENGINE_TABLES, engine_world, touched_principals
from tests.lake.decide_harness import POLICY, SECRET, Shop, sorted_rows
from tests.story import message
from transforms.schema import PENDING_DECISIONS
from transforms.triggers.decide import evaluate

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC


def crm(updated: datetime, *rows: tuple[str, str]) -> str:
    """A CRM file: (user_id, marketing_consent) rows, all updated at `updated`."""
    lines = "".join(f"{user},{user}@example.com,{consent},{updated.isoformat()}\n" for user, consent in rows)
    return "user_id,email,marketing_consent,updated_at\n" + lines


def welcomes(shop: Shop) -> list[tuple[str, str]]:
    log = shop.log().filter((pl.col("kind") == "welcome") & ~pl.col("decision").is_in(PENDING_DECISIONS))
    return sorted(log.select("user_id", "decision").iter_rows())


def test_a_crm_consent_without_events_brings_the_welcome(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop")
    signup = [message("identify", START, user=u, email=f"{u}@example.com") for u in ("u1", "u2")]
    shop.batch("b0", signup, START)
    shop.engine(START)
    assert welcomes(shop) == []  # no consent: no welcome, and none decided for good

    now = START + timedelta(minutes=31)
    shop.batch("b1", [], now, customers=crm(START + timedelta(minutes=30), ("u1", "true"), ("u2", "false")))
    lake = shop.lake.snapshot(ENGINE_TABLES)
    assert touched_principals(lake, 1, 2) == ["u1", "u2"]
    from_lake = evaluate(engine_world(lake, now=now, secret=SECRET, policy=POLICY, evaluation=2))
    live = shop.decide(now).rows
    assert sorted_rows(from_lake).equals(sorted_rows(live))  # the lake's readers (replay) agree
    shop.engine(now)
    assert welcomes(shop) == [("u1", "send")]

    later = now + timedelta(hours=1)  # the rows change again (u2 consents): u1 is not welcomed twice
    shop.batch("b2", [], later, customers=crm(later, ("u1", "true"), ("u2", "true")))
    assert touched_principals(shop.lake.snapshot(ENGINE_TABLES), 2, 3) == ["u1", "u2"]
    shop.engine(later)
    assert welcomes(shop) == [("u1", "send"), ("u2", "send")]
    shop.batch("b3", [message("Product Viewed", later, user="u1", product_id="p1")], later)
    assert touched_principals(shop.lake.snapshot(ENGINE_TABLES), 3, 4) == ["u1"]  # no CRM rows: events'


def test_crm_rows_count_as_new_when_the_version_they_are_compared_with_was_vacuumed(tmp_path: Path) -> None:
    """The decide lane compares `customers` with the version the last batch it saw left; an erasure since
    (its delete, then its vacuum at retention 0) removed that version's files while the lane was behind
    the ingest lane. Every row counts as new, as when that version's log is gone; before, every engine run
    failed on the missing file and the decide lane stalled."""
    shop = Shop(tmp_path / "shop")
    signup = [message("identify", START, user=u, email=f"{u}@example.com") for u in ("u1", "u2")]
    shop.batch("b0", signup, START, customers=crm(START, ("u1", "false"), ("u2", "false"), ("u3", "false")))
    shop.engine(START)
    now = START + timedelta(minutes=31)
    shop.batch("b1", [], now, customers=crm(now, ("u1", "true"), ("u2", "false"), ("u3", "false")))
    customers = shop.lake.table_uri("customers")  # erasing u3 (stores.erasure.lake): delete, then vacuum
    DeltaTable(customers).delete("user_id = 'u3'")
    DeltaTable(customers).vacuum(
        retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True
    )
    assert touched_principals(shop.lake.snapshot(ENGINE_TABLES), 1, 2) == ["u1", "u2"]
    shop.engine(now)
    assert welcomes(shop) == [("u1", "send")]

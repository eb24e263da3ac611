"""The decide lane's poll (`DecideWork.of`, the runner's and the sensor's rule) reads the due times of the
pending triggers and outbox rows only when nothing else is to do (#17: a busy lane's poll read both tables
before every run, for a decision the new batch had already made)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from orchestration.lanes import DecideWork, evaluate_decide
from stores.ingest import ingest
from stores.sends import enqueue
from tests.lake.decide_harness import SECRET, Shop
from tests.story import message

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def land_and_ingest(shop: Shop, name: str, messages: list[dict], now: datetime) -> None:
    """`messages` landed as one file and ingested: the store's next batch."""
    shop.landing.land(f"events/{name}.ndjson", b"".join(orjson.dumps(m) + b"\n" for m in messages))
    ingest(shop.lake, shop.landing, now=now, state=shop.state, secret=SECRET)


def test_the_due_times_are_read_only_when_no_batch_or_decision_waits(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    added = message("Product Added", START, user="u-1", product_id="p1", cart_id="c1", price=10.0)
    land_and_ingest(shop, "b1", [added], START)
    shop.engine(START + timedelta(seconds=1))  # the cart candidate waits for its delay
    due = DecideWork.of(shop.lake, shop.state).due
    assert due is not None and due > START + timedelta(seconds=1)

    viewed = message("Product Viewed", START + timedelta(seconds=2), user="u-2", product_id="p2")
    land_and_ingest(shop, "b2", [viewed], START + timedelta(seconds=2))
    busy = DecideWork.of(shop.lake, shop.state, due=False)
    assert busy.new_batches() and busy.due is None  # a run is due anyway: no due time read
    assert DecideWork.of(shop.lake, shop.state).due == due  # asked for: read
    decision = evaluate_decide(shop.lake, False, START + timedelta(seconds=3), shop.state)
    assert decision.run_key == "decide-b2-e1"

    shop.engine(START + timedelta(seconds=3))
    enqueue(shop.lake, provider="sandbox", now=START + timedelta(seconds=3))  # the run's sends step
    idle = DecideWork.of(shop.lake, shop.state, due=False)
    assert not idle.new_batches() and not idle.unqueued() and idle.due == due  # nothing else: read
    assert evaluate_decide(shop.lake, False, due, shop.state).run_key == f"decide-b2-e2-due-{due.isoformat()}"

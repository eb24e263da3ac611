"""An engine run no longer rewrites `trigger_state` whole (#17): each run scanned every pending candidate of
the store, decoded them all and overwrote the table, so its cost grew with the pending set (post_purchase
waits 3 days after every order: 24k pending 0.1 s a run, 244k 0.7 s, 3M 8 s). `trigger_state` is now a
checkpoint of the pending set, rewritten once the rows logged since it are many
(`stores.triggers_pending.checkpoint_due`); the run's pending count and next due time come from the store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from stores.state.rebuild import check
from stores.triggers_pending import apply
from tests.lake.decide_harness import Shop
from tests.story import message
from transforms.schema import TRIGGERS_SCHEMA

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def buyers(n: int, count: int, when: datetime) -> list[dict]:
    """`count` new shoppers of batch `n` sign up and order: a welcome each, and a post_purchase candidate
    held for 3 days (the pending set grows with every order)."""
    messages = []
    for i in range(count):
        user = f"u{n}-{i}"
        product = {"product_id": "p1", "price": 10.0, "quantity": 1}
        messages += [
            message("identify", when, user=user, email=f"{user}@example.com", marketing_consent=True),
            message("Order Completed", when, user=user, order_id=f"o{n}-{i}", total=10.0, products=[product]),
        ]
    return messages


def whole_history(shop: Shop) -> pl.DataFrame:
    """The pending set the whole `triggers` log implies."""
    return apply(pl.DataFrame(schema=TRIGGERS_SCHEMA), shop.lake.read("triggers", TRIGGERS_SCHEMA))


def test_a_run_that_logs_few_rows_leaves_trigger_state_as_it_was(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    versions, pending = [], []
    for n in range(4):
        shop.batch(f"b{n}", buyers(n, 2, at(10 * n)), at(10 * n + 1))
        report = shop.engine(at(10 * n + 2))
        versions.append(shop.lake.version("trigger_state"))
        pending.append(report.pending)
    assert pending == [2, 4, 6, 8]
    # Made by the first run, then left: 4 rows a run, far under the rows a checkpoint waits for.
    assert versions == [0] * 4
    assert shop.lake.version("triggers") == 3  # every run is in the log
    history = whole_history(shop)
    assert history.height == report.pending
    assert report.next_due == history["due_at"].min() == at(2) + timedelta(days=3) - timedelta(minutes=2)
    assert check(shop.lake, shop.state).equal


def test_a_quiet_run_commits_to_triggers_so_it_reads_fresh(tmp_path: Path) -> None:
    """`triggers_fresh` took trigger_state's commits as covering the log's (a run that decides nothing
    rewrote it); a run that logs no row commits to `triggers` itself (its tags), which now suffices."""
    shop = Shop(tmp_path)
    shop.batch("b0", buyers(0, 2, at(0)), at(1))
    shop.engine(at(2))
    before = shop.lake.table("triggers")
    assert before is not None
    quiet = shop.engine(at(3))
    assert quiet.rows.height == 0 and quiet.pending == 2
    after = shop.lake.table("triggers")
    assert after is not None and after.version() == before.version() + 1
    [last] = after.history(1)
    assert last["operation"] == "WRITE" and last["timestamp"] >= before.history(1)[0]["timestamp"]

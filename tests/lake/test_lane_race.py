"""The two lanes overlap (#15.4): a decide run that starts while the ingest lane has committed a batch to
Delta but not yet to the state store decides up to the store's batch (from the store, never falling back
to reading the whole lake) and loses nothing: that batch is decided, once, by the next run.

The ingest runs for real in a thread, held right after its `ingest_log` commit (before the store's and
`profile_updates`' commits: the instant a decide run in another process may pin its snapshot), while an
engine run decides under the decide lane's lock."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest

import stores.ingest
from orchestration.lanes import DecideWork, evaluate_ingest
from resources.state import StateResource
from resources.state_lmdb import close_environment
from stores.decide.engine import run_engine
from stores.ingest import ingest
from stores.triggers_pending import considered_batch
from tests.lake.decide_harness import POLICY, SECRET, Shop
from tests.story import message
from transforms.state import StateChanges

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC


class Held:
    """`stores.ingest.log_changes` held until released: it runs once the batch's Delta commits are done,
    before the store's commit."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.committed, self.go = threading.Event(), threading.Event()
        real = stores.ingest.log_changes

        def held(*args: object, **kwargs: object) -> object:
            self.committed.set()
            assert self.go.wait(60), "the test never released the ingest"
            return real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(stores.ingest, "log_changes", held)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    yield Shop(tmp_path)


def land(shop: Shop, name: str, messages: list[dict]) -> None:
    shop.landing.land(f"events/{name}.ndjson", b"".join(orjson.dumps(m) + b"\n" for m in messages))


def engine(shop: Shop, now: datetime) -> pl.DataFrame:
    lake = shop.lake
    with lake.decide_lock():  # the decide lane's lock only: the ingest lane holds its own meanwhile
        return run_engine(lake, shop.state, now=now, secret=SECRET, policy=POLICY).rows


def test_a_batch_in_delta_but_not_yet_in_the_store_is_decided_by_the_next_run(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(shop, "b1", [message("Product Viewed", START, anon="a0", product_id="p1")])
    ingest(shop.lake, shop.landing, now=START, state=shop.state, secret=SECRET)
    assert engine(shop, START + timedelta(seconds=1)).height == 0
    traits = {"email": "u1@example.com", "marketing_consent": True}
    land(shop, "b2", [message("identify", START + timedelta(seconds=2), user="u1", anon="a1", **traits)])
    held = Held(monkeypatch)
    lane = threading.Thread(
        target=ingest,
        args=(shop.lake, shop.landing),
        kwargs={"now": START, "state": shop.state, "secret": SECRET},
    )
    lane.start()
    try:
        assert held.committed.wait(60), "the ingest never reached its store commit"
        assert shop.lake.committed_batch() == 2 and shop.state.stamps()["ingest"] == 1
        during = engine(shop, START + timedelta(seconds=3))  # batch 2 is in Delta, not in the store
        assert considered_batch(shop.lake) == 1  # it waits for the next run
    finally:
        held.go.set()
        lane.join(60)
    assert shop.state.stamps()["ingest"] == 2
    after = engine(shop, START + timedelta(seconds=4))
    decided = pl.concat([during, after])
    welcome = decided.filter(pl.col("kind") == "welcome")
    assert welcome.height == 1, decided  # decided once, by the run after the store's commit
    assert welcome["decision"].item() == "send" and after.height == welcome.height
    # Every trigger exactly one terminal decision: the log holds no id twice.
    log = shop.log()
    assert log["trigger_id"].n_unique() == log.height


def test_a_store_behind_the_lake_holds_the_decide_lane_and_starts_an_ingest_run(shop: Shop) -> None:
    """After a crash between a batch's Delta and store commits, the decide lane counts the store's batch
    (its runs would decide nothing new) and the ingest lane runs with no file to catch the store up."""
    land(shop, "b1", [message("Product Viewed", START, anon="a0", product_id="p1")])
    ingest(shop.lake, shop.landing, now=START, state=shop.state, secret=SECRET)
    engine(shop, START + timedelta(seconds=1))
    lake = shop.lake
    assert evaluate_ingest(lake, shop.landing, False, shop.state).run_key is None
    work = DecideWork.of(lake, shop.state)
    assert work.committed == work.considered == 1
    shop.state.store().set_stamps({**shop.state.stamps(), "ingest": 0})  # batch 1 not in the store
    assert DecideWork.of(lake, shop.state).committed == 0  # no batch for the decide lane to wait on
    catch_up = evaluate_ingest(lake, shop.landing, False, shop.state)
    assert catch_up.run_key == "catch-up-b1-s0" and catch_up.files == ()
    assert evaluate_ingest(lake, shop.landing, True, shop.state).run_key is None  # one at a time
    ingest(lake, shop.landing, [], now=START, state=shop.state, secret=SECRET)  # what that run does
    assert shop.state.stamps()["ingest"] == 1
    assert evaluate_ingest(lake, shop.landing, False, shop.state).run_key is None


def test_a_store_another_process_replaced_is_read_afresh(tmp_path: Path) -> None:
    """The two runners are two processes (#15.4): when one of them (or `lakemail state rebuild`) puts a
    rebuilt store in place, the other reads and commits to the new one, not the folder it had open."""
    state, other = StateResource(uri=str(tmp_path / "state")), StateResource(uri=str(tmp_path / "new"))
    state.commit(1, StateChanges())
    assert state.stamps()["ingest"] == 1  # this process has the store open
    other.commit(5, StateChanges())
    close_environment(other.path)
    (tmp_path / "state").rename(tmp_path / "retired")  # what a rebuild in another process does
    (tmp_path / "new").rename(tmp_path / "state")
    assert state.stamps()["ingest"] == 5
    state.commit(6, StateChanges())
    assert StateResource(uri=str(tmp_path / "retired")).stamps()["ingest"] == 1  # nothing went there
    shutil.rmtree(tmp_path / "state")
    assert state.existing() is None  # a removed store is gone, not served from memory

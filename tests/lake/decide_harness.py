"""A shop over a real lake and state store without Dagster: micro-batches (ingest + profile partials +
unsubscribes, as the micro-batch job's first two steps) and trigger-engine runs, each at a given `now`."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from resources.state_lmdb import close_environment
from stores.decide.engine import Decided, decide, run_engine
from stores.decide.sync import refresh_ingest
from stores.ingest import ingest
from stores.profiles import append_updates, batch_events
from stores.suppressions import record_unsubscribes
from stores.triggers import ENGINE_TABLES, EngineReport, engine_world, run_snapshot
from transforms.schema import RUN_APP, TRIGGERS_SCHEMA, UPDATES_APP
from transforms.triggers.decide import evaluate
from transforms.triggers.policies import Policy

SECRET = "test-secret"
# No holdout (every shopper can be mailed); quiet hours and the caps stay on.
POLICY = Policy(holdout_rate=0.0)


@dataclass
class Shop:
    home: Path

    @property
    def lake(self) -> LakeResource:
        return LakeResource(uri=str(self.home / "lake"))

    @property
    def landing(self) -> LandingResource:
        return LandingResource(uri=str(self.home / "landing"))

    @property
    def state(self) -> StateResource:
        return StateResource(uri=str(self.home / "state"))

    def batch(
        self,
        name: str,
        messages: Iterable[dict],
        now: datetime,
        catalog: str | None = None,
        customers: str | None = None,
    ) -> None:
        """Land `messages` (and a catalog feed CSV, a CRM CSV) and take them in as one micro-batch; the store
        (when there is one) takes the batch as the ingest lane will commit it."""
        lines = b"".join(orjson.dumps(m) + b"\n" for m in messages)
        if lines:
            self.landing.land(f"events/{name}.ndjson", lines)
        if catalog is not None:
            self.landing.land(f"catalog/{name}.csv", catalog.encode())
        if customers is not None:
            self.landing.land(f"customers/{name}.csv", customers.encode())
        lake = self.lake
        ingest(lake, self.landing, now=now, secret=SECRET)  # Unsubscribed -> suppressions, as the lane does
        for batch_id in range(
            lake.app_version("profile_updates", UPDATES_APP) + 1, lake.committed_batch() + 1
        ):
            events = batch_events(lake, batch_id)
            append_updates(lake, batch_id)  # its partials, from its events in the lake
            record_unsubscribes(lake, events, SECRET)
        if self.state.exists() and self.state.stamps()["ingest"] <= lake.committed_batch():
            refresh_ingest(lake, self.state)  # the ingest lane's store commit (never over one ahead)

    def engine(self, now: datetime) -> EngineReport:
        lake = self.lake
        with lake.writer_lock():
            return run_engine(lake, self.state, now=now, secret=SECRET, policy=POLICY)

    def decide(self, now: datetime, state: StateResource | None = None) -> Decided:
        """What the next engine run would decide at `now` from `state` (this shop's store by default)."""
        return decide(self.lake, state or self.state, now=now, secret=SECRET, policy=POLICY)

    def log(self) -> pl.DataFrame:
        return sorted_rows(self.lake.read("triggers", TRIGGERS_SCHEMA))

    def drop_store(self) -> None:
        close_environment(self.state.path)
        shutil.rmtree(self.state.path)

    def copy_store(self, to: Path) -> None:
        shutil.copytree(self.state.path, to)

    def restore_store(self, copy: Path) -> None:
        self.drop_store()
        shutil.copytree(copy, self.state.path)


def sorted_rows(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(list(TRIGGERS_SCHEMA)).sort("evaluation", "trigger_id", "decision")


def csv(rows: Iterable[tuple[str, float, int]], updated_at: datetime) -> str:
    """A catalog feed: product_id, name, price, stock, all updated at `updated_at`."""
    when = updated_at.isoformat()
    lines = "".join(f"{p},Item {p},{price},{stock},{when}\n" for p, price, stock in rows)
    return "product_id,name,price,stock,updated_at\n" + lines


def minutes(start: datetime, n: float) -> datetime:
    return start + timedelta(minutes=n)


def lake_decides(shop: Shop, at: datetime) -> pl.DataFrame:
    """What the next run decides at `at` from the lake alone (the engine's lake readers)."""
    seen = shop.lake.snapshot(ENGINE_TABLES)
    evaluation = seen.app_version("triggers", RUN_APP) + 1
    world = engine_world(seen, now=at, secret=SECRET, policy=POLICY, evaluation=evaluation)
    return sorted_rows(evaluate(world))


def assert_replays_as_sent(shop: Shop, sent: dict) -> None:
    """A replay of the run that decided `sent` (a `send` row of the log) decides it the same."""
    seen = run_snapshot(shop.lake, sent["evaluation"])
    assert seen is not None
    world = engine_world(
        seen, now=sent["decided_at"], secret=SECRET, policy=POLICY, evaluation=sent["evaluation"]
    )
    replayed = evaluate(world).filter(pl.col("trigger_id") == sent["trigger_id"])
    assert replayed.select("decision", "reason", "due_at").rows() == [
        ("send", "all policies passed", sent["due_at"])
    ]

"""The pending set read from the lake (`stores.triggers_pending.pending_rows`): `trigger_state`, a checkpoint
rewritten now and then, with the `triggers` rows of the runs after it applied, is the pending set the whole
log implies: after runs with and without a checkpoint, after a run killed at any point, after an
erasure, and on a lake whose runs rewrote `trigger_state` every time (before #17's checkpoint)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import stores.decide.engine
import stores.triggers_pending
from orchestration.sql import run_query
from stores.decide.engine import decide
from stores.decide.sync import commit_run, ready
from stores.erasure.requests import erase_user
from stores.state.rebuild import check, rebuild
from stores.triggers import EngineReport
from stores.triggers_pending import apply, checkpoint_due, next_due, pending_rows
from tests.lake.decide_harness import POLICY, SECRET, Shop
from tests.lake.test_trigger_state_checkpoint import at, buyers, whole_history
from tests.story import message
from transforms.schema import (
    BATCH_APP,
    LOGGED_APP,
    PENDING_DECISIONS,
    READ_APP,
    RUN_APP,
    TRIGGERS_SCHEMA,
)

# Engine runs: three batches of two buyers (each a welcome and a post_purchase held 3 days), then the day
# their post_purchase emails are due. With CHECKPOINT_MIN_ROWS = 4: the first run makes `trigger_state`,
# the second logs 4 rows (not more than 4: no checkpoint), the third 8 since the first, the fourth 6.
README = Path(__file__).resolve().parents[2] / "README.md"
RUNS = [at(2), at(12), at(22), at(3 * 24 * 60 + 60)]
CHECKPOINTS = [True, False, True, True]


@pytest.fixture(autouse=True)
def few_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stores.triggers_pending, "CHECKPOINT_MIN_ROWS", 4)


class Killed(Exception):
    """The process dies here."""


def run(shop: Shop, n: int) -> EngineReport:
    if n < 3:
        shop.batch(f"b{n}", buyers(n, 2, RUNS[n] - timedelta(minutes=2)), RUNS[n] - timedelta(minutes=1))
    return shop.engine(RUNS[n])


def readme_pending(shop: Shop) -> pl.DataFrame:
    """The pending set as README's query for any Delta reader (Polars SQL here) finds it."""
    text = " ".join(README.read_text().split())
    found = re.search(r"any other Delta reader applies the log itself, e\.g\. [^:]*: `([^`]*)`", text)
    assert found is not None
    tables = {name: pl.scan_delta(shop.lake.table_uri(name)) for name in ("triggers", "trigger_state")}
    return pl.SQLContext(tables).execute(found.group(1), eager=True).drop("n").sort("trigger_id")


def assert_resolved(shop: Shop, *, store: bool = True) -> pl.DataFrame:
    """The lake's pending set is the log's, and the store holds it (`lakemail state check`)."""
    resolved = pending_rows(shop.lake)
    assert_frame_equal(resolved, whole_history(shop))
    if store:
        assert check(shop.lake, shop.state).summary() == []
    return resolved


def assert_decided_once(shop: Shop) -> None:
    terminal = shop.log().filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert terminal["trigger_id"].n_unique() == terminal.height


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    shop = Shop(tmp_path_factory.mktemp("clean"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stores.triggers_pending, "CHECKPOINT_MIN_ROWS", 4)
        for n in range(len(RUNS)):
            run(shop, n)
    yield shop


def test_the_pending_set_is_the_checkpoint_and_the_log_after_it(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    made, counts = [], []
    for n in range(len(RUNS)):
        report = run(shop, n)
        made.append(report.checkpoint)
        resolved = assert_resolved(shop)
        counts.append(report.pending)
        assert report.pending == resolved.height and report.next_due == resolved["due_at"].min()
        assert next_due(shop.lake) == report.next_due  # from the lake, as without a store
        shown = run_query(shop.lake.uri, "select * from trigger_state order by trigger_id")
        assert_frame_equal(shown, resolved, check_dtypes=False)  # `lakemail sql`: the pending set
        assert_frame_equal(readme_pending(shop), resolved, check_dtypes=False)
        lake = shop.lake
        since = lake.app_version("triggers", LOGGED_APP) - lake.app_version("trigger_state", LOGGED_APP)
        assert not checkpoint_due(since, report.pending)  # what a reader applies stays bounded
        checkpointed = lake.app_version("trigger_state", RUN_APP)
        assert checkpointed == report.evaluation if report.checkpoint else checkpointed < report.evaluation
    assert made == CHECKPOINTS
    assert counts == [2, 4, 6, 0]  # the post_purchase emails decided on the fourth
    assert shop.log()["decision"].value_counts().sort("decision").rows() == [("held", 6), ("send", 12)]


@pytest.mark.parametrize(
    ("since", "pending", "due"),
    [(4, 0, False), (5, 0, True), (5, 19, True), (5, 20, False), (6, 23, True), (0, 0, False)],
)
def test_a_checkpoint_waits_for_more_rows_than_a_quarter_of_the_pending_set(
    since: int, pending: int, due: bool
) -> None:
    assert checkpoint_due(since, pending) is due  # CHECKPOINT_MIN_ROWS = 4 here


@pytest.mark.parametrize("point", ["logged", "stored", "checkpointed"])
def test_a_run_killed_anywhere_ends_as_a_clean_one(tmp_path: Path, clean: Shop, point: str) -> None:
    """Run 3 (a checkpoint due) dies after its `triggers` commit, after its store commit, or after its
    checkpoint: the next runs decide as a clean shop did, nothing twice, and the lake's pending set is
    the log's at every step."""
    shop = Shop(tmp_path)
    writes = stores.decide.engine.write_checkpoint

    def dies(*args: object, **kwargs: object) -> None:
        if point == "checkpointed":
            writes(*args, **kwargs)  # type: ignore[arg-type]
        raise Killed(point)

    for n in range(len(RUNS)):
        if n != 2:
            run(shop, n)
            assert_resolved(shop, store=False)
            continue
        with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
            patch.setattr(
                stores.decide.engine, "commit_run" if point == "logged" else "write_checkpoint", dies
            )
            run(shop, n)
        assert shop.state.stamps()["triggers"] == (2 if point == "logged" else 3)
        assert_frame_equal(pending_rows(shop.lake), whole_history(shop))  # the log has the run
    assert shop.log().equals(clean.log())
    assert_decided_once(shop)
    assert check(shop.lake, shop.state).summary() == []


def test_an_erasure_leaves_none_of_the_persons_pending_rows(tmp_path: Path) -> None:
    """Erin's post_purchase waits in the checkpoint, her cart candidate only in the log after it."""
    shop = Shop(tmp_path)
    run(shop, 0)  # u0-0, u0-1: in the checkpoint
    erin = "u0-0"
    added = message("Product Added", at(10), user=erin, cart_id="c1", product_id="p2", price=5.0)
    shop.batch("cart", [added], at(11))
    report = shop.engine(at(12))
    assert not report.checkpoint and report.pending == 3
    theirs = (pl.col("user_id") == erin) | (pl.col("principal") == erin)
    checkpointed = shop.lake.read("trigger_state", TRIGGERS_SCHEMA)
    assert checkpointed.filter(theirs).height == 1 and pending_rows(shop.lake).filter(theirs).height == 2

    certificate = erase_user(shop.lake, shop.landing, erin, secret=SECRET, state=shop.state)

    assert certificate.passed
    assert shop.lake.app_version("trigger_state", RUN_APP) == report.evaluation  # from a whole checkpoint
    resolved = assert_resolved(shop)
    assert resolved.filter(theirs).height == 0 and resolved["user_id"].to_list() == ["u0-1"]
    shop.engine(RUNS[3])  # the other buyer's email is decided; nothing of Erin's comes back
    assert shop.log().filter(theirs).height == 0
    assert_resolved(shop)


def old_run(shop: Shop, now: datetime, *, dies: bool = False) -> None:
    """An engine run as before the checkpoint: `triggers` tagged with the run and what it read, then
    `trigger_state` rewritten whole with the run and its last batch, then the store (`dies`: not the last
    two: a run that died after its first commit)."""
    lake = shop.lake
    with lake.writer_lock():
        ready(lake, shop.state)
        decided = decide(lake, shop.state, now=now, secret=SECRET, policy=POLICY)
        evaluation = decided.world.evaluation
        read = {READ_APP + name: v for name, v in decided.seen.pinned.items() if v is not None}
        lake.write_tagged("triggers", decided.rows, {RUN_APP: evaluation, **read})
        if dies:
            return
        pending = apply(lake.read("trigger_state", TRIGGERS_SCHEMA), decided.rows)
        tags = {RUN_APP: evaluation, BATCH_APP: decided.world.batch_id}
        lake.write_tagged("trigger_state", pending, tags, mode="overwrite")
        commit_run(shop.state, evaluation, decided.changes)


@pytest.mark.parametrize("dies", [False, True], ids=["whole", "last-run-died-before-trigger-state"])
def test_a_lake_of_runs_before_the_checkpoint_carries_on(tmp_path: Path, clean: Shop, dies: bool) -> None:
    shop = Shop(tmp_path)
    for n in (0, 1):
        shop.batch(f"b{n}", buyers(n, 2, RUNS[n] - timedelta(minutes=2)), RUNS[n] - timedelta(minutes=1))
        old_run(shop, RUNS[n], dies=dies and n == 1)
    lake = shop.lake
    assert lake.app_version("triggers", BATCH_APP) == lake.app_version("triggers", LOGGED_APP) == 0
    assert_frame_equal(pending_rows(lake), whole_history(shop))
    if not dies:
        rebuild(lake, shop.state)  # a store made from such a lake (the other case: caught up by the run)
    for n in range(2, len(RUNS)):
        run(shop, n)
        assert_resolved(shop, store=False)
    assert shop.log().equals(clean.log())  # no batch seen twice, nothing decided twice
    assert_decided_once(shop)
    assert check(shop.lake, shop.state).summary() == []

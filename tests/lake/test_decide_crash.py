"""The decision lane's store survives what the lake survives (#15): a crash between the engine's Delta
commits and its store commit, a deleted store, a store restored from an older copy; each ends with the
decisions and the outbox of a clean run. And an engine run reads only what the new batch wrote."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import stores.decide.engine
from stores.decide.sync import DECISION_NAMESPACES, refresh_ingest
from stores.sends import enqueue
from stores.state.rebuild import check
from tests.lake.decide_harness import Shop, csv, sorted_rows
from tests.story import message
from transforms.schema import SENDS_SCHEMA

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def identify(minutes: float, user: str, anon: str | None = None) -> dict:
    return message(
        "identify", at(minutes), user=user, anon=anon, email=f"{user}@example.com", marketing_consent=True
    )


def add(minutes: float, who: dict, cart: str, product: str) -> dict:
    fields: dict[str, Any] = {"cart_id": cart, "product_id": product, "price": 10.0, "quantity": 1}
    return message("Product Added", at(minutes), **who, **fields)


def view(minutes: float, who: dict, product: str) -> dict:
    return message("Product Viewed", at(minutes), **who, product_id=product)


U1, U2, U3, A1 = {"user": "u1"}, {"user": "u2"}, {"user": "u3"}, {"anon": "a1"}
# (events, catalog feed, engine runs at these minutes)
BATCHES: list[tuple[list[dict], str | None, list[float]]] = [
    (
        [identify(0, "u1"), identify(1, "u2"), view(2, A1, "p1"), view(20, A1, "p1"), add(5, U1, "c1", "p2")],
        csv([("p1", 10.0, 0), ("p2", 10.0, 3)], at(25)),
        [30],
    ),
    (
        [identify(40, "u3", "a1"), add(41, U2, "c2", "p1"), view(42, U3, "p2")],
        csv([("p1", 8.0, 5)], at(45)),
        [50],
    ),
    ([add(70, U3, "c3", "p2"), view(71, U2, "p2"), view(90, U2, "p2")], None, [100, 130]),
    ([message("Unsubscribed", at(140), user="u2")], None, [180, 20 * 60, 3 * 24 * 60]),
]
Hook = Callable[[Shop, int], None]


class Killed(Exception):
    """The process dies here."""


def killed(*args: object) -> None:
    raise Killed("killed after the engine's Delta commits, before its store commit")


def play(shop: Shop, before_run: Hook | None = None, crash: frozenset[int] = frozenset()) -> None:
    """Every batch, then its engine runs (each followed by the send stage's enqueue); the runs numbered
    in `crash` die after their Delta commits (no store commit, no send stage)."""
    run = 0
    for n, (events, feed, runs) in enumerate(BATCHES):
        shop.batch(f"b{n}", events, at(runs[0] - 1), catalog=feed)
        for minutes in runs:
            run += 1
            if before_run is not None:
                before_run(shop, run)
            if run in crash:
                with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
                    patch.setattr(stores.decide.engine, "commit_run", killed)
                    shop.engine(at(minutes))
                assert shop.state.stamps()["triggers"] == run - 1  # logged in Delta, not in the store
                continue
            shop.engine(at(minutes))
            enqueue(shop.lake, provider="sandbox", now=at(minutes))


def outbox(shop: Shop) -> pl.DataFrame:
    sends = shop.lake.read("sends", SENDS_SCHEMA, ["send_id", "trigger_id", "user_id", "kind", "status"])
    return sends.sort("send_id")


def assert_like_a_clean_run(shop: Shop, clean: Shop) -> None:
    assert shop.log().equals(clean.log())
    assert outbox(shop).equals(outbox(clean))
    report = check(shop.lake, shop.state)
    assert report.store_stamps == report.lake_stamps
    assert [n for n, d in report.namespaces.items() if n in DECISION_NAMESPACES and not d.equal] == []


# One module-scoped lake for the module's tests, built on one worker (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("decide_crash")


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    shop = Shop(tmp_path_factory.mktemp("clean"))
    play(shop)
    log = shop.log()
    assert {"send", "held", "exited", "suppressed"} <= set(log["decision"]), log
    assert outbox(shop).height >= 2
    assert_like_a_clean_run(shop, shop)
    return shop


def test_a_crash_between_the_delta_commits_and_the_store_commit_is_caught_up(
    tmp_path: Path, clean: Shop
) -> None:
    shop = Shop(tmp_path)
    play(shop, crash=frozenset({2, 4, 5}))  # two in a row: both caught up from the log
    assert_like_a_clean_run(shop, clean)


def test_a_deleted_store_is_rebuilt_from_the_lake(tmp_path: Path, clean: Shop) -> None:
    def delete(shop: Shop, run: int) -> None:
        if run in (3, 6):
            shop.drop_store()

    shop = Shop(tmp_path)
    play(shop, delete)
    assert_like_a_clean_run(shop, clean)


def test_a_store_restored_from_an_older_copy_catches_up(tmp_path: Path, clean: Shop) -> None:
    backup = tmp_path / "backup"

    def restore(shop: Shop, run: int) -> None:
        if run == 2:
            shop.copy_store(backup)
        if run == 6:
            shop.restore_store(backup)  # four engine runs and two batches behind
            refresh_ingest(shop.lake, shop.state)  # the ingest lane catches up its side at its start

    shop = Shop(tmp_path / "shop")
    play(shop, restore)
    assert_like_a_clean_run(shop, clean)


def test_a_store_ahead_of_the_lake_is_rebuilt_not_trusted(tmp_path: Path, clean: Shop) -> None:
    shop = Shop(tmp_path / "shop")
    play(shop)
    ahead = tmp_path / "ahead"
    shop.copy_store(ahead)
    shutil.rmtree(shop.home / "lake")  # the lake restored from a backup older than the store
    shutil.rmtree(shop.home / "landing")
    shop.restore_store(ahead)
    with pytest.raises(AssertionError):
        assert_like_a_clean_run(shop, clean)
    play(shop)
    assert_like_a_clean_run(shop, clean)


def data_files(shop: Shop) -> set[Path]:
    return {p for p in (shop.home / "lake").rglob("*.parquet") if "_delta_log" not in p.parts}


def test_an_engine_run_reads_only_what_the_new_batch_wrote(tmp_path: Path, clean: Shop) -> None:
    """Every data file but the new batch's `events` and `catalog_changes` is deleted before the run: a
    run that read any table whole (or filtered one on users) fails; this one decides as the clean run."""
    shop = Shop(tmp_path)
    *before, (events, feed, runs) = BATCHES
    played = list(BATCHES)
    BATCHES[:] = before
    try:
        play(shop)
    finally:
        BATCHES[:] = played
    older = data_files(shop)
    shop.batch("b3", events, at(runs[0] - 1), catalog=feed)
    refresh_ingest(shop.lake, shop.state)  # the ingest lane's store commit
    new = data_files(shop) - older
    kept = {p for p in new if p.relative_to(shop.home / "lake").parts[0] in ("events", "catalog_changes")}
    assert kept
    for path in data_files(shop) - kept:
        path.unlink()
    report = shop.engine(at(runs[0]))
    expected = clean.log().filter(pl.col("evaluation") == report.evaluation)
    assert sorted_rows(report.rows).equals(expected) and expected.height > 0

"""An engine run that decides nothing keeps the store level with the lake (found by review).

Its `triggers` append was empty, and an empty append wrote no commit, so the engine run's number was
never recorded in the log while the store was stamped with it: the next engine run found the store ahead
of the lake and rebuilt it from the whole lake, and so did every run after each quiet one (in a live
shop, most of them). The same held for a batch that brought no profile partials."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from stores.decide.sync import ready
from stores.profiles import append_updates
from stores.state.rebuild import check
from tests.lake.decide_harness import Shop
from tests.story import message
from transforms.schema import RUN_APP, UPDATES_APP

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def signup(minutes: float, user: str) -> dict:
    return message("identify", at(minutes), user=user, email=f"{user}@example.com", marketing_consent=True)


def test_engine_runs_that_decide_nothing_leave_the_store_level_with_the_lake(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.batch("b1", [signup(0, "u1")], at(1))
    first = shop.engine(at(2))
    assert first.rows.height > 0  # the welcome
    for minute in (3, 4, 5):  # nothing new, nothing due
        quiet = shop.engine(at(minute))
        assert quiet.rows.height == 0
        assert shop.lake.app_version("triggers", RUN_APP) == quiet.evaluation  # the run is in the log
        assert ready(shop.lake, shop.state).rebuilt is None  # the store is level: no rebuild
    assert check(shop.lake, shop.state).equal
    shop.batch("b2", [signup(6, "u2")], at(7))
    assert shop.engine(at(8)).rows.height > 0
    assert ready(shop.lake, shop.state).rebuilt is None


def test_a_batch_without_profile_partials_is_recorded_as_taken(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    shop.batch("b1", [signup(0, "u1")], at(1))
    shop.landing.land("events/bad.ndjson", b"not json\n")  # a batch of one quarantined line
    shop.batch("b2", [], at(2))
    batch = shop.lake.committed_batch()
    assert batch == 2
    assert append_updates(shop.lake, batch) == 0
    assert shop.lake.app_version("profile_updates", UPDATES_APP) == batch

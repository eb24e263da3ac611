"""`lakemail state check` stays equal as time goes by (found by a helper, 2026-12-06): a rebuild kept only
the views of the 30 days before the newest view and the sends of the 17 days before the newest send, the
live store every view and a sender's sends until their next, so any store whose views spanned more than
30 days, or with a send 18 days old, was reported unequal with nothing wrong; an erasure of the newest
viewer moved the window. Worse, a rebuilt store lost a viewer a price drop still wanted (a feed whose
`changed_at` is earlier than the newest view), so it decided otherwise than the live store."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from stores.decide import reads
from stores.erasure.requests import erase_user
from stores.state.rebuild import check, rebuild
from tests.lake.decide_harness import csv
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at, spec_message
from transforms.schema import TRIGGERS_SCHEMA

DAY = 24 * 60  # minutes


def _equal(home: Home) -> None:
    report = check(home.lake, home.state)
    assert report.equal, report.summary()


def test_views_over_forty_days_check_equal_and_after_erasing_the_newest_viewer(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.batch(
        "b1", at(-40 * DAY + 1), spec_message("Product Viewed", at(-40 * DAY), user="u-x", product_id="p1")
    )
    home.batch("b2", at(1), spec_message("Product Viewed", at(0), user="u-y", product_id="p2"))
    _equal(home)
    assert erase_user(home.lake, home.landing, "u-y", secret=SECRET, state=home.state).passed
    _equal(home)


def test_a_send_eighteen_days_old_checks_equal(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.batch("b1", at(-20 * DAY + 1), _signup("u-x", at(-20 * DAY)))
    home.engine(at(-20 * DAY + 2))
    home.batch("b2", at(1), _signup("u-y", at(0)))
    home.engine(at(2))
    assert home.decisions("u-x") == home.decisions("u-y") == [("welcome", "send")]
    _equal(home)
    home.batch("b3", at(3 * DAY), _signup("u-x", at(3 * DAY - 1)))  # u-x touched again: still equal
    home.engine(at(3 * DAY + 1))
    _equal(home)


def _price_drop_story(home: Home, *, rebuilt: bool) -> list[tuple[str, str]]:
    """u-x viewed p1 30 days and half an hour before u-y's view of p2; p1's price drops an hour before
    u-y's view (`changed_at`), in a feed landing with it. (kind, decision) of u-x's rows after a run."""
    home.landing.land("catalog/feed-1.csv", csv([("p1", 20.0, 4), ("p2", 9.0, 4)], at(-31 * DAY)).encode())
    home.batch(
        "b1",
        at(-30 * DAY - 29),
        _signup("u-x", at(-31 * DAY)),
        spec_message("Product Viewed", at(-30 * DAY - 30), user="u-x", product_id="p1"),
    )
    home.landing.land("catalog/feed-2.csv", csv([("p1", 15.0, 4), ("p2", 9.0, 4)], at(-60)).encode())
    home.batch("b2", at(1), spec_message("Product Viewed", at(0), user="u-y", product_id="p2"))
    if rebuilt:
        rebuild(home.lake, home.state)
    home.engine(at(2))
    log = home.lake.read("triggers", TRIGGERS_SCHEMA).filter(pl.col("user_id") == "u-x")
    return sorted(log.select("kind", "decision").rows())


def test_a_rebuilt_store_keeps_a_viewer_a_late_price_drop_wants(tmp_path: Path) -> None:
    home = Home(tmp_path / "live")
    live = _price_drop_story(home, rebuilt=False)
    assert live == [("price_drop", "send")]
    assert _price_drop_story(Home(tmp_path / "rebuilt"), rebuilt=True) == live
    _equal(home)


def test_views_far_apart_in_one_batch_check_equal(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.batch(
        "b1",
        at(1),
        spec_message("Product Viewed", at(-40 * DAY), user="u-x", product_id="p1"),
        spec_message("Product Viewed", at(0), user="u-y", product_id="p1"),
    )
    _equal(home)
    with home.state.reader() as reader:  # the live store keeps the late view, as a rebuild does
        assert sorted(reads.viewers(reader, ["p1"])["principal"]) == ["u-x", "u-y"]

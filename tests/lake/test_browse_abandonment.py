"""browse_abandonment over a real lake and state store (PRODUCT.md §4): a product viewed twice within 24 h,
not carted, after 2 h of quiet; re-entry 14 days after the last browse email; event time throughout.

Found by review: the rule took the span from the first to the last view since `now` - 26 h, so a pair
after an older view, or a pair landing late, was no candidate, and a third view did not move the due
time; and instances were keyed by 14-day blocks counted from 1970, so a `cooldown` decision used up the
rest of its block and views 14 days after an email got none.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from resources.state import StateResource
from stores.decide.sync import DECISION_NAMESPACES
from stores.state.rebuild import check, rebuild
from stores.triggers import engine_world, run_snapshot
from tests.lake.decide_harness import POLICY, SECRET, Shop, sorted_rows
from tests.story import message
from transforms.schema import PENDING_DECISIONS
from transforms.triggers.decide import evaluate

KIND = "browse_abandonment"
HOUR = 60
DAY = 24 * HOUR


def signed_up(folder: Path, start: datetime) -> Shop:
    """A shop whose shopper u1 signed up (welcome sent) three days before `start`."""
    shop = Shop(folder / "shop")
    signup = start - timedelta(days=3)
    shop.batch(
        "signup",
        [message("identify", signup, user="u1", email="u1@example.com", marketing_consent=True)],
        signup,
    )
    shop.engine(signup)
    return shop


def land_views(shop: Shop, name: str, start: datetime, minutes: list[float], landed: float) -> None:
    """Views of p1 by u1 at `minutes` after `start`, landing as one batch at `landed`."""
    views = [
        message("Product Viewed", start + timedelta(minutes=m), user="u1", product_id="p1", category="shirts")
        for m in minutes
    ]
    shop.batch(name, views, start + timedelta(minutes=landed))


def browse(shop: Shop) -> list[tuple[str, datetime, datetime]]:
    """The browse rows of the log: (decision, due_at, decided_at), in the order they were decided."""
    rows = shop.log().filter(pl.col("kind") == KIND).sort("evaluation")
    return rows.select("decision", "due_at", "decided_at").rows()


def test_two_views_within_24_hours_after_an_older_view_are_a_pair(tmp_path: Path) -> None:
    """One view on day 1 at 12:00, two on day 2 at 12:30 and 12:40: the day-2 pair is 10 minutes apart,
    whatever the span since the day-1 view (24 h 40 min). Before: no candidate at all."""
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    shop = signed_up(tmp_path, start)
    land_views(shop, "d1", start, [0], 1)
    shop.engine(start + timedelta(minutes=1))
    land_views(shop, "d2", start, [DAY + 30, DAY + 40], DAY + 41)
    for minutes in (DAY + 41, DAY + 2 * HOUR + 40, 2 * DAY):
        shop.engine(start + timedelta(minutes=minutes))
    due = start + timedelta(minutes=DAY + 2 * HOUR + 40)  # 2 h after the last view
    assert browse(shop) == [("held", due, start + timedelta(minutes=DAY + 41)), ("send", due, due)]


def test_a_pair_landing_late_in_one_batch_is_decided_as_it_happened(tmp_path: Path) -> None:
    """Views 20 h apart land together 7 h after the second: due 2 h after it, sent when they land (on
    time it sends too). Before: the first view was older than `now` - 26 h, so no candidate."""
    start = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    shop = signed_up(tmp_path, start)
    land_views(shop, "late", start, [0, 20 * HOUR], 27 * HOUR)
    shop.engine(start + timedelta(minutes=27 * HOUR))
    due, landed = start + timedelta(hours=22), start + timedelta(hours=27)
    assert browse(shop) == [("send", due, landed)]


def test_a_later_view_moves_the_due_time(tmp_path: Path) -> None:
    """Views at 0 h, 23 h and 24.5 h: one instance, due 2 h after the last view (26.5 h), not 30 min after
    it. Before: the third view made the span 24.5 h, the candidate was not proposed again, and its due time
    (25 h) stayed."""
    start = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    shop = signed_up(tmp_path, start)
    for index, minutes in enumerate((0, 23 * HOUR, 24 * HOUR + 30)):
        land_views(shop, f"v{index}", start, [minutes], minutes + 1)
        shop.engine(start + timedelta(minutes=minutes + 1))
    shop.engine(start + timedelta(hours=25))
    assert [decision for decision, _, _ in browse(shop)] == ["held", "held"]
    shop.engine(start + timedelta(hours=26, minutes=30))
    due = start + timedelta(hours=26, minutes=30)
    assert browse(shop)[1:] == [("held", due, start + timedelta(minutes=24 * HOUR + 31)), ("send", due, due)]
    assert shop.log().filter(pl.col("kind") == KIND)["trigger_id"].n_unique() == 1


def pair(shop: Shop, name: str, start: datetime, day: float) -> datetime:
    """Two views of p1, 10 min apart, `day` days after `start`, landing at once; engine runs then and 2 h
    later. Returns the time of the second view."""
    at = day * DAY
    land_views(shop, name, start, [at, at + 10], at + 11)
    shop.engine(start + timedelta(minutes=at + 11))
    shop.engine(start + timedelta(minutes=at + 131))
    return start + timedelta(minutes=at + 10)


def test_browse_emails_re_enter_14_days_after_the_last_one(tmp_path: Path) -> None:
    """An email on 10-21; views the next day: `cooldown`; views 14 days after the email: an email; the day
    after: `cooldown` again. Before: the 11-04 views fell in the 14-day block (from 1970) that the 10-22
    `cooldown` had used up, and got nothing. The live store, a rebuilt one and a replay agree."""
    start = datetime(2026, 10, 9, 12, 0, tzinfo=UTC)
    shop = signed_up(tmp_path, start)
    for name, day in (("k", 12), ("k1a", 13 + 3 / 24), ("k1b", 26 + 3 / 24), ("k2", 27 + 6 / 24)):
        pair(shop, name, start, day)
    final = [(d, decided.date().isoformat()) for d, _, decided in browse(shop) if d != "held"]
    assert final == [
        ("send", "2026-10-21"),
        ("cooldown", "2026-10-22"),
        ("send", "2026-11-04"),
        ("cooldown", "2026-11-05"),
    ]
    same_everywhere(shop, tmp_path, start + timedelta(days=28))


def test_views_within_the_14_days_landing_after_them_are_in_cooldown(tmp_path: Path) -> None:
    """An email on 10-21 at 14:11; views on 11-04 at 05:00 (before the 14 days are over) land at 15:00,
    after: `cooldown` by event time, not a second email. Before: sent (the cooldown counted to the run)."""
    start = datetime(2026, 10, 9, 12, 0, tzinfo=UTC)
    shop = signed_up(tmp_path, start)
    sent = pair(shop, "k", start, 12)
    views = 26 * DAY - 7 * HOUR  # 11-04 05:00
    land_views(shop, "late", start, [views, views + 10], 26 * DAY + 3 * HOUR)
    shop.engine(start + timedelta(minutes=26 * DAY + 3 * HOUR))
    final = [(d, decided) for d, _, decided in browse(shop) if d != "held"]
    assert final == [
        ("send", sent + timedelta(minutes=121)),
        ("cooldown", start + timedelta(days=26, hours=3)),
    ]


def same_everywhere(shop: Shop, folder: Path, now: datetime) -> None:
    """Every trigger decided once; a store rebuilt from the lake and a replay of the last run decide what
    the live store does; the live store's decision namespaces are what the lake implies."""
    terminal = shop.log().filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert terminal["trigger_id"].is_duplicated().sum() == 0
    rebuilt = StateResource(uri=str(folder / "rebuilt"))
    rebuild(shop.lake, rebuilt)
    live = shop.decide(now).rows
    assert sorted_rows(shop.decide(now, rebuilt).rows).equals(sorted_rows(live))
    report = check(shop.lake, shop.state)
    assert [n for n, d in report.namespaces.items() if n in DECISION_NAMESPACES and not d.equal] == []
    last = shop.log()["evaluation"].max()
    assert isinstance(last, int)
    seen = run_snapshot(shop.lake, last)
    assert seen is not None
    then = shop.log().filter(pl.col("evaluation") == last)
    when = then["decided_at"].max()
    assert isinstance(when, datetime)
    world = engine_world(seen, now=when, secret=SECRET, policy=POLICY, evaluation=last)
    assert sorted_rows(evaluate(world)).equals(sorted_rows(then))

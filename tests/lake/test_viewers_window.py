"""A catalog change reads only the viewers its window wants, and the store forgets the stale ones (#17).

The decide run read every viewer a changed product ever had (`product_viewers` was never pruned) and put
them all in the world: a price drop on a product viewed by 500k shoppers over a year read 500k profiles
for the last month's. Now only the viewers in the 30 days before a change reach the world, with the same
decisions, and the run deletes those no later change can want (last seen more than 30 days before the
product's newest decided change: its changes never go back in time); a rebuild leaves them out, and
`state check` tolerates a stale one that a late view brings back.

The story: p1 costs 20 from 120 days ago. Five shoppers signed up long ago; p1 was viewed by u-old 100
days ago, by u-gone 30 days and a minute before the change, by u-edge 30 days before it, by u-in 20 days
ago, and by u-after an hour ago, who also left a cart (pending, due in 5 minutes). A feed landing now
says the price dropped to 15 two hours ago (`changed_at` in the past, before u-after's view).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from resources.state import StateResource
from stores.decide import reads
from stores.decide.engine import decide
from stores.decide.sync import commit_run
from stores.decide.world import store_world, world_of
from stores.state.rebuild import check, rebuild
from stores.triggers import ENGINE_TABLES, catalog_changes_between, engine_world
from stores.triggers_pending import considered_batch
from tests.lake.decide_harness import POLICY, csv, sorted_rows
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at, spec_message
from transforms.schema import RUN_APP
from transforms.state import StateChanges
from transforms.state_keys import SEPARATOR, key_part
from transforms.triggers.decide import World, evaluate

DAY = 24 * 60  # minutes
CHANGED = -120  # minutes: when the price dropped, as the late feed says
VIEWS = {  # who viewed p1, when (minutes)
    "u-old": -100 * DAY,
    "u-gone": CHANGED - 30 * DAY - 1,
    "u-edge": CHANGED - 30 * DAY,
    "u-in": -20 * DAY,
    "u-after": -60,
}
WANTED = ["u-edge", "u-in"]  # in the 30 days before the change (both ends included)
STALE = ["u-gone", "u-old"]  # before those 30 days: no later change of p1 can want them
NOW = at(1)


def _shop(root: Path) -> Home:
    home = Home(root)
    home.landing.land("catalog/feed-1.csv", csv([("p1", 20.0, 4), ("p2", 9.0, 4)], at(-120 * DAY)).encode())
    home.batch("b0", at(-101 * DAY + 1), *(_signup(u, at(-101 * DAY)) for u in VIEWS))
    home.engine(at(-101 * DAY + 2))  # the welcomes: long before
    views = [spec_message("Product Viewed", at(t), user=u, product_id="p1") for u, t in VIEWS.items()]
    cart = spec_message(
        "Product Added", at(-55), user="u-after", product_id="p2", cart_id="c-after", price=9.0
    )
    home.batch("b1", at(-50), *views, cart)
    home.engine(at(-49))  # u-after's cart waits until at(5)
    home.landing.land("catalog/feed-2.csv", csv([("p1", 15.0, 4), ("p2", 9.0, 4)], at(CHANGED)).encode())
    home.batch("b2", at(0), spec_message("Product Viewed", at(0), user="u-other", product_id="p2"))
    return home


def _worlds(home: Home) -> tuple[World, World, StateChanges]:
    """(the run's world, the world of every viewer the store holds, the run's stale deletes) at NOW."""
    seen = home.lake.snapshot(ENGINE_TABLES)
    last, evaluation = considered_batch(seen), seen.app_version("triggers", RUN_APP) + 1
    with home.state.reader() as reader:
        horizon = min(reader.stamps()["ingest"], seen.committed_batch())
        world, pruned = store_world(
            seen,
            reader,
            now=NOW,
            secret=SECRET,
            evaluation=evaluation,
            last_batch=last,
            horizon=horizon,
            policy=POLICY,
        )
        changes = catalog_changes_between(seen, last, horizon)
        everyone = world_of(
            seen,
            reader,
            changes,
            reads.viewers(reader, changes["product_id"]),
            now=NOW,
            secret=SECRET,
            evaluation=evaluation,
            last_batch=last,
            horizon=horizon,
            policy=POLICY,
        )
    return world, everyone, pruned


def _viewers(home: Home, state: StateResource | None = None) -> dict[str, datetime]:
    """principal -> last_ts of p1's viewers in `state` (the shop's store by default)."""
    with (state or home.state).reader() as reader:
        found = reads.viewers(reader, ["p1"])
    return dict(found.select("principal", "last_ts").iter_rows())


def _equal(home: Home) -> None:
    report = check(home.lake, home.state)
    assert report.equal, report.summary()


def test_a_late_price_drop_decides_as_with_every_viewer_and_reads_only_its_window(tmp_path: Path) -> None:
    home = _shop(tmp_path)
    world, everyone, pruned = _worlds(home)
    rows = sorted_rows(evaluate(world))
    assert rows.equals(sorted_rows(evaluate(everyone)))  # the same decisions as from every viewer
    seen = home.lake.snapshot(ENGINE_TABLES)
    lake_world = engine_world(seen, now=NOW, secret=SECRET, policy=POLICY, evaluation=world.evaluation)
    assert rows.equals(sorted_rows(evaluate(lake_world)))  # and as replay's, from the lake
    sends = rows.filter(pl.col("kind") == "price_drop").select("user_id", "decision").rows()
    assert sorted(sends) == [(u, "send") for u in WANTED]
    assert sorted(world.catalog_viewers["principal"]) == WANTED
    assert sorted(world.state["principal"]) == [*WANTED, "u-other"]  # only theirs read
    assert {*VIEWS, "u-other"} <= set(everyone.state["principal"])  # as every viewer's was
    stale = {f"{key_part('p1')}{SEPARATOR}{key_part(u)}" for u in STALE}
    assert set(pruned.deletes_if["product_viewers"]) == stale  # deleted at the run's commit


def test_the_run_deletes_the_stale_viewers_and_a_rebuild_leaves_them_out(tmp_path: Path) -> None:
    home = _shop(tmp_path)
    assert sorted(_viewers(home)) == sorted(VIEWS)
    _equal(home)  # nothing decided yet: none is stale
    home.engine(NOW)
    assert sorted(_viewers(home)) == ["u-after", *WANTED]
    _equal(home)
    rebuilt = StateResource(uri=str(tmp_path / "rebuilt"))
    rebuild(home.lake, rebuilt)
    assert _viewers(home, rebuilt) == _viewers(home)
    assert home.decisions("u-in")[-1] == ("price_drop", "send")


def test_a_stale_viewer_a_late_view_brings_back_checks_equal_and_a_new_view_counts(tmp_path: Path) -> None:
    home = _shop(tmp_path)
    home.engine(NOW)
    late = spec_message("Product Viewed", at(-90 * DAY), user="u-old", product_id="p1")  # stale again
    fresh = spec_message("Product Viewed", at(2), user="u-gone", product_id="p1")
    home.batch("b3", at(3), late, fresh)
    assert _viewers(home)["u-old"] == at(-90 * DAY) and _viewers(home)["u-gone"] == at(2)
    report = check(home.lake, home.state)
    assert report.equal, report.summary()
    assert report.namespaces["product_viewers"].stale == 1  # held, tolerated: no change can want it


def test_a_view_put_between_the_runs_read_and_its_commit_stays(tmp_path: Path) -> None:
    """The ingest lane puts u-old's new view after the run read the old one as stale: the run's delete
    is of the value it read, so the new view stays (an unconditional delete lost it)."""
    home = _shop(tmp_path)
    run = decide(home.lake, home.state, now=NOW, secret=SECRET, policy=POLICY)
    home.batch("b3", at(2), spec_message("Product Viewed", at(2), user="u-old", product_id="p1"))
    commit_run(home.state, run.world.evaluation, run.changes)
    assert sorted(_viewers(home)) == ["u-after", *WANTED, "u-old"]
    assert _viewers(home)["u-old"] == at(2)


def test_a_conditional_delete_deletes_only_a_key_that_holds_the_value_given(tmp_path: Path) -> None:
    store = Home(tmp_path).state.store()
    puts = StateChanges()
    for key in ("k1", "k2"):
        puts.put("product_viewers", key, b'{"v":1}')
    store.commit(1, puts)
    deletes = StateChanges()
    deletes.delete_if("product_viewers", "k1", b'{"v":1}')
    deletes.delete_if("product_viewers", "k2", b'{"v":0}')  # it holds another value now: kept
    deletes.delete_if("product_viewers", "k3", b'{"v":1}')  # none: nothing to do
    store.commit(1, deletes, lane="triggers")
    assert store.get_many("product_viewers", ["k1", "k2", "k3"]) == {"k2": b'{"v":1}'}
    assert len(deletes) == 3
    merged = StateChanges()
    merged.update(deletes)
    assert merged.deletes_if == deletes.deletes_if

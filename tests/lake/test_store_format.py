"""A state store whose keys an earlier release wrote is rebuilt, never misread (KEY_FORMAT).

Release format 1 joined two ids with a bare `|` (`p-1|auth0|abc`: `abc` viewing `p-1|auth0`, read back as
`auth0|abc` viewing `p-1`) and stamped no format. An upgraded home meets such a store wherever it first
opens it to write: the ingest lane's catch-up, the engine's, an erasure; each rebuilds it from the lake,
and `lakemail state check` says it must be rebuilt until then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import lmdb
import orjson
import polars as pl
import pytest

from resources.lake import LakeResource
from resources.state_lmdb import FORMAT, close_environment
from stores.decide.sync import ready as decide_ready
from stores.erasure.requests import erase_user
from stores.ingest import ingest
from stores.state import rebuild as rebuild_module
from stores.state.namespaces import Chunks
from stores.state.rebuild import check
from stores.state.sync import Readiness
from stores.state.sync import ready as ingest_ready
from tests.lake.decide_harness import SECRET, Shop, minutes
from tests.lake.test_store_keys import SIGNUP, _feeds, _shop
from tests.story import T0, message
from transforms.state import NAMESPACES
from transforms.state_keys import KEY_FORMAT, split_key

USERS = ("auth0|abc", "abc", "u-ok")


def _as_release_1(shop: Shop) -> None:
    """Rewrite the shop's store as release format 1 had it: joined keys `<a>|<b>` (viewers' values without
    the principal), no format stamp."""
    path = shop.state.path
    close_environment(path)
    env = lmdb.open(str(path), max_dbs=len(NAMESPACES) + 2)
    with env.begin(write=True) as txn:
        for namespace in ("product_viewers", "pending_principals"):
            db = env.open_db(namespace.encode(), txn=txn)
            rows = [(split_key(k.decode()), orjson.loads(v)) for k, v in txn.cursor(db)]
            txn.drop(db, delete=False)
            for parts, value in rows:
                first, second = (part.split(":", 1)[1] for part in parts)  # short ids: `<size>:<id>`
                value.pop("principal", None)
                txn.put(f"{first}|{second}".encode(), orjson.dumps(value), db=db)
        assert txn.delete(FORMAT, db=env.open_db(b"_meta", txn=txn))
    env.close()


def _upgraded(home: Path) -> Shop:
    """`abc` viewed `p-1|auth0`, `u-ok` viewed `p-1`, p-1 came back in stock: all in a store release 1
    wrote. The last engine run decided (welcomes), so the store is level with the lake: only its format
    calls for a rebuild (after a run that decides nothing the next one rebuilds it anyway)."""
    shop = Shop(home)
    first, changed = _feeds("restock", "p-1")
    signups = [
        message("identify", SIGNUP, user=u, email=f"{u}@example.com", marketing_consent=True) for u in USERS
    ]
    shop.batch("b0", signups, SIGNUP, catalog=first)
    shop.engine(SIGNUP)
    views = [message("Product Viewed", T0, user="abc", product_id="p-1|auth0")]
    views.append(message("Product Viewed", T0, user="u-ok", product_id="p-1"))
    shop.batch("b1", views, minutes(T0, 1))
    shop.batch("b2", [], minutes(T0, 10), catalog=changed)
    _as_release_1(shop)
    return shop


def _ingest(shop: Shop) -> None:
    shop.landing.land("events/later.ndjson", orjson.dumps(message("Product Viewed", T0, user="u-2")) + b"\n")
    ingest(shop.lake, shop.landing, now=minutes(T0, 12), state=shop.state, secret=SECRET)


def _engine(shop: Shop) -> None:
    shop.engine(minutes(T0, 11))


def _erase(shop: Shop) -> None:
    assert erase_user(shop.lake, shop.landing, "abc", secret=SECRET, state=shop.state).passed


@pytest.mark.parametrize("first_write", [_ingest, _engine, _erase])
def test_a_store_of_release_format_1_is_rebuilt_where_it_is_first_written(
    tmp_path: Path, first_write: Callable[[Shop], None]
) -> None:
    shop = _upgraded(tmp_path / "shop")
    found = check(shop.lake, shop.state)
    assert not found.equal and found.key_format == 1
    assert found.summary() == [
        f"the store's keys are written as release format 1, this release's is {KEY_FORMAT}: it must be "
        "rebuilt (the next ingest run does it, or `lakemail state rebuild`)"
    ]
    first_write(shop)
    assert shop.state.store().key_format() == KEY_FORMAT
    shop.engine(minutes(T0, 11))
    assert check(shop.lake, shop.state).summary() == []
    alerts = shop.log().filter(pl.col("kind") == "back_in_stock")
    assert alerts.select("user_id", "anchor", "decision").rows() == [("u-ok", "p-1", "send")]


def test_a_new_store_is_stamped_with_this_release_s_format(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop", ["u-1"], [("u-1", "p-1")], "restock", "p-1")
    assert shop.state.store().key_format() == KEY_FORMAT
    assert check(shop.lake, shop.state).summary() == []


def test_at_an_upgrade_a_lane_that_waited_for_the_other_s_rebuild_does_not_rebuild_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both lanes find the old store; the second waits for the first's rebuild (`rebuilding`), then finds
    the store anew and only checks it (found by review: it rebuilt the whole store a second time)."""
    shop = _upgraded(tmp_path / "shop")
    inside, go, reads = threading.Event(), threading.Event(), []
    original = rebuild_module.READERS["customers"]

    def paused(lake: LakeResource) -> Chunks:
        reads.append(1)
        if len(reads) == 1:  # the decide lane's rebuild, half built
            inside.set()
            assert go.wait(30)
        yield from original(lake)

    monkeypatch.setitem(rebuild_module.READERS, "customers", paused)
    decide_lane = threading.Thread(target=decide_ready, args=(shop.lake, shop.state))
    decide_lane.start()
    assert inside.wait(30)
    found: list[Readiness] = []
    ingest_lane = threading.Thread(target=lambda: found.append(ingest_ready(shop.lake, shop.state)))
    ingest_lane.start()
    ingest_lane.join(1.0)  # waiting for the decide lane's rebuild
    go.set()
    decide_lane.join(30)
    ingest_lane.join(30)
    assert len(reads) == 1 and found and found[0].action == "current"
    assert check(shop.lake, shop.state).summary() == []

"""A renamed shopper keeps her experiment arm: an `alias` whose `previousId` is her old user id (Segment's
spec/alias.md: one shopper since the rename) does not move her into or out of the global holdout, nor to
another A/B variant (found by a helper: both were hashed from the id she goes by now, so a holdout shopper
renamed was mailed as u-new while `experiments` still counted her in the holdout, her first assignment,
with the holdout's `sent` above 0; a mailed shopper renamed into the holdout's hash got no more email; one
renamed across the variants' hash got the other variant). The ids are picked by the real hash: hal-old is
in the holdout and hal-new not, sue-old mailed and sue-new in the holdout, ann-old's cart variant `a` and
ann-new's `b`. Segment-shaped messages through the real ingest, on a real lake and state store, under the
product's policy (the 5 % holdout): the engine from the store and from the lake decides her second cart
in her first cart's arm (`state check`: the store is what a rebuild makes), the send stage mails what
that arm says, and `experiments` counts her once, there, with no email in the holdout."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from resources.state import StateResource
from stores.decide.engine import Decided, decide, run_engine
from stores.measure import run_experiments
from stores.sends import run_sends
from stores.state.rebuild import check
from stores.triggers import ENGINE_TABLES, EngineReport, engine_world
from tests.lake.decide_harness import SECRET, Shop, minutes, sorted_rows
from tests.lake.test_alias_users_store import START, _added, _alias, _ordered
from tests.story import spec_message
from tests.unit.test_plan import sender_for
from transforms.schema import RUN_APP, SENDS_SCHEMA
from transforms.triggers.decide import evaluate
from transforms.triggers.policies import Policy, in_holdout, variants

DAY = 24 * 60
CART = "abandoned_cart"
POLICY = Policy()  # the product's: a 5 % holdout, variants a and b
SECOND = 8 * DAY  # her second cart: past the cart email's 7-day cooldown
WINDOW = timedelta(days=10)  # both carts' emails in the window from her first assignment


class ArmedShop(Shop):
    """The harness's shop deciding under the product's policy (the harness's has no holdout)."""

    def engine(self, now: datetime) -> EngineReport:
        with self.lake.writer_lock():
            return run_engine(self.lake, self.state, now=now, secret=SECRET, policy=POLICY)

    def decide(self, now: datetime, state: StateResource | None = None) -> Decided:
        return decide(self.lake, state or self.state, now=now, secret=SECRET, policy=POLICY)


def _lake_decides(shop: Shop, at: datetime) -> pl.DataFrame:
    """What the next run decides at `at` from the lake alone (the engine's lake readers)."""
    seen = shop.lake.snapshot(ENGINE_TABLES)
    evaluation = seen.app_version("triggers", RUN_APP) + 1
    world = engine_world(seen, now=at, secret=SECRET, policy=POLICY, evaluation=evaluation)
    return sorted_rows(evaluate(world))


def _arm(user: str) -> tuple[str, str]:
    """The cart email's decision and variant the hash gives `user`."""
    held = in_holdout(pl.Series([user]), POLICY.holdout_rate)[0]
    variant = variants(pl.Series([CART]), pl.Series([user]), POLICY.variants)[0]
    return ("holdout" if held else "send", variant)


def _mail(shop: Shop, now: datetime) -> None:
    """The send stage at `now`, against a provider that takes every email the moment it is asked."""

    def provider(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the sandbox's look-up: nothing taken before
            return httpx.Response(200, json=[])
        return httpx.Response(202, headers={"X-Message-Id": "m-1"})

    with httpx.Client(transport=httpx.MockTransport(provider)) as client, shop.lake.decide_lock():
        sender = replace(sender_for(client, wall_clock=lambda: now), secret=SECRET)
        run_sends(shop.lake, shop.state, shop.landing, sender, now=now)


def _carts(rows: pl.DataFrame) -> list[tuple[Any, ...]]:
    return rows.filter(pl.col("kind") == CART).select("user_id", "decision", "variant").rows()


def _first_cart(home: Path, old: str, new: str) -> ArmedShop:
    """She signed up as `old` days before (her welcome expired unsent), carts and is decided an hour later
    as `old`; the shop renames her `new`, and she orders as `new`; 8 days later she carts again as `new`."""
    shop = ArmedShop(home)
    traits: dict[str, Any] = {"email": f"{old}@example.com", "marketing_consent": True}
    signup = spec_message("identify", minutes(START, -3 * DAY), user=old, timezone="Europe/London", **traits)
    shop.batch("b0", [signup, _added(0, old)], minutes(START, 1))
    shop.engine(minutes(START, 61))
    _mail(shop, minutes(START, 61))
    assert _carts(shop.log()) == [(old, *_arm(old))]
    renamed = [_alias(120, new, old), _ordered(130, new), _added(SECOND, new)]
    shop.batch("b1", renamed, minutes(START, SECOND + 1))
    return shop


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hal-old", "hal-new"),  # in the holdout as hal-old, hal-new's hash is mailed
        ("sue-old", "sue-new"),  # mailed as sue-old, sue-new's hash is in the holdout
        ("ann-old", "ann-new"),  # variant a as ann-old, b by ann-new's hash
    ],
)
def test_a_renamed_shoppers_second_cart_is_decided_mailed_and_measured_in_her_first_arm(
    tmp_path: Path, old: str, new: str
) -> None:
    assert _arm(old) != _arm(new)  # the hash puts her ids apart
    shop = _first_cart(tmp_path / "shop", old, new)
    due = minutes(START, SECOND + 61)
    live = sorted_rows(shop.decide(due).rows)
    assert _carts(live) == [(new, *_arm(old))]
    assert _lake_decides(shop, due).equals(live)
    report = check(shop.lake, shop.state)  # a rebuilt store is this one: it decides the same
    assert report.equal, report.summary()

    shop.engine(due)
    _mail(shop, due)
    decision, variant = _arm(old)
    mailed = shop.lake.read("sends", SENDS_SCHEMA).filter(pl.col("kind") == CART).sort("created_at")
    expected = [(old, variant, "sent"), (new, variant, "sent")] if decision == "send" else []
    assert mailed.select("user_id", "variant", "status").rows() == expected

    arms = run_experiments(shop.lake, WINDOW, minutes(START, 10 * DAY)).filter(pl.col("kind") == CART)
    figures = arms.select("arm", "exposed", "sent", "converted").rows()
    assert figures == [("holdout" if decision == "holdout" else variant, 1, len(expected), 1)]

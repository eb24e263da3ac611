"""`lakemail replay` reads the lake as the engine run did, with the engine's own readers: replaying an
unchanged engine finds no difference, whatever happened to the lake since."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import dagster as dg
import orjson
import polars as pl
import pytest

from orchestration.process import process_once
from orchestration.replay import ReplayError, replay
from orchestration.settings import Settings
from tests.conftest import land, table
from tests.story import at, message
from transforms.triggers.policies import Policy

USER = "u-ann"
# No holdout, quiet hours or frequency cap in the way: the decisions below depend on suppressions alone.
POLICY = Policy(holdout_rate=0.0, quiet_hours=False, cap_short=(9, timedelta(hours=1)))


@pytest.fixture
def shop(settings: Settings) -> Settings:
    return replace(settings, policy=POLICY)


def land_messages(settings: Settings, name: str, *messages: dict) -> None:
    land(settings, name, [orjson.dumps(m) for m in messages])


def run(settings: Settings, instance: dg.DagsterInstance, when: datetime) -> None:
    assert process_once(settings, instance, now=when.isoformat())["status"] == "SUCCESS"


def cart_decision(settings: Settings, decision: str) -> int:
    """The engine run (evaluation) that decided the cart email `decision`."""
    log = table(settings, "triggers")
    [evaluation] = log.filter((pl.col("kind") == "abandoned_cart") & (pl.col("decision") == decision))[
        "evaluation"
    ].to_list()
    return int(evaluation)


def signup_and_cart(settings: Settings, *before_cart: dict) -> None:
    land_messages(
        settings,
        "a.ndjson",
        message("identify", at(-60), user=USER, email="ann@example.com", marketing_consent=True),
        *before_cart,
        message("Product Added", at(0), user=USER, cart_id="c1", product_id="p1", name="Mug", price=9.5),
    )


def test_replay_of_a_suppressed_shoppers_run_agrees_with_the_engine(
    shop: Settings, instance: dg.DagsterInstance, secret: str
) -> None:
    signup_and_cart(shop, message("Unsubscribed", at(-30), user=USER))
    run(shop, instance, at(5))
    run(shop, instance, at(61))
    evaluation = cart_decision(shop, "suppressed")
    result = replay(shop, "abandoned_cart", evaluation, secret=secret)
    assert result.now["decision"].to_list() == ["suppressed"]
    assert result.diff.height == 0


def test_replay_reads_suppressions_as_the_run_did_not_as_they_are_now(
    shop: Settings, instance: dg.DagsterInstance, secret: str
) -> None:
    signup_and_cart(shop)
    run(shop, instance, at(5))
    run(shop, instance, at(61))
    evaluation = cart_decision(shop, "send")
    land_messages(shop, "b.ndjson", message("Unsubscribed", at(70), user=USER))  # after the email went
    run(shop, instance, at(75))
    assert table(shop, "suppressions").height == 1
    result = replay(shop, "abandoned_cart", evaluation, secret=secret)
    assert result.now["decision"].to_list() == ["send"]
    assert result.diff.height == 0


def test_replay_decides_with_the_delays_the_engine_runs_with(
    shop: Settings, instance: dg.DagsterInstance, secret: str
) -> None:
    shop = replace(shop, delays={"LAKEMAIL_ABANDONED_CART_DELAY": timedelta(minutes=10)})
    signup_and_cart(shop)
    run(shop, instance, at(5))
    run(shop, instance, at(11))
    evaluation = cart_decision(shop, "send")
    result = replay(shop, "abandoned_cart", evaluation, secret=secret)
    assert result.diff.height == 0


def test_replay_of_a_run_that_decided_nothing_of_the_kind_says_so(
    shop: Settings, instance: dg.DagsterInstance, secret: str
) -> None:
    signup_and_cart(shop)
    run(shop, instance, at(5))
    with pytest.raises(ReplayError, match="decided nothing of kind 'browse_abandonment'"):
        replay(shop, "browse_abandonment", 1, secret=secret)
    with pytest.raises(ReplayError, match="unknown trigger kind"):
        replay(shop, "no_such_kind", 1, secret=secret)

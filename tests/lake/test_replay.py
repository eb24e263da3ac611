"""`lakemail replay` reads the lake as the engine run did, with the engine's own readers: replaying an
unchanged engine finds no difference, whatever happened to the lake since."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import dagster as dg
import orjson
import polars as pl
import pytest

import transforms.triggers.rules.browse as browse_rule
from orchestration.process import erase_once, process_once
from orchestration.replay import ReplayError, render_replay, replay
from orchestration.settings import Settings
from tests.conftest import land, table
from tests.story import at, message
from transforms.triggers.policies import Policy
from transforms.triggers.rules.base import RuleContext, exploded

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


def test_replay_of_a_run_that_decided_nothing_of_the_kind_finds_nothing_and_no_run_says_so(
    shop: Settings, instance: dg.DagsterInstance, secret: str
) -> None:
    signup_and_cart(shop)
    run(shop, instance, at(5))
    result = replay(shop, "browse_abandonment", 1, secret=secret)
    assert (result.then.height, result.now.height, result.diff.height) == (0, 0, 0)
    with pytest.raises(ReplayError, match="engine run 7 decided nothing, of any kind"):
        replay(shop, "abandoned_cart", 7, secret=secret)
    with pytest.raises(ReplayError, match="unknown trigger kind"):
        replay(shop, "no_such_kind", 1, secret=secret)


def test_replay_shows_the_candidates_an_edited_rule_would_add(
    shop: Settings, instance: dg.DagsterInstance, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifecycle engineer lowers browse abandonment to one view: the replay of a run shows the
    shoppers it would add, not only the decisions the run made (it showed "0 of 1 decisions differ")."""
    land_messages(
        shop,
        "a.ndjson",
        message("identify", at(-60), user=USER, email="ann@example.com", marketing_consent=True),
        message("identify", at(-60), user="u-bob", email="bob@example.com", marketing_consent=True),
        message("Product Viewed", at(0), user=USER, product_id="p1"),
        message("Product Viewed", at(1), user=USER, product_id="p1"),
        message("Product Viewed", at(1), user="u-bob", product_id="p2"),  # one view: no candidate
    )
    run(shop, instance, at(5))
    browse = table(shop, "triggers").filter(pl.col("kind") == "browse_abandonment")
    assert browse["user_id"].to_list() == [USER]
    [evaluation] = browse["evaluation"].to_list()
    unchanged = replay(shop, "browse_abandonment", evaluation, secret=secret)
    assert (unchanged.now.height, unchanged.diff.height) == (1, 0)

    viewed_twice = browse_rule._viewed_twice

    def viewed_once(context: RuleContext) -> pl.DataFrame:
        """The rule's episodes, and a product viewed once as an episode of its own."""
        twice = viewed_twice(context)
        views = exploded(context.state, "views").join(twice, on=["principal", "product_id"], how="anti")
        once = views.group_by("principal", "product_id").agg(
            pl.col("ts").min().alias("first_view"),
            pl.col("ts").max().alias("qualified_at"),
            pl.col("ts").max().alias("paired_with"),
        )
        return pl.concat([twice, once.with_columns(pl.lit("once").alias("episode")).select(twice.columns)])

    monkeypatch.setattr(browse_rule, "_viewed_twice", viewed_once)
    result = replay(shop, "browse_abandonment", evaluation, secret=secret)
    assert result.now["user_id"].to_list() == [USER, "u-bob"]
    [added] = result.diff.rows(named=True)
    assert (added["decision"], added["decision_replay"]) == (None, "held")
    assert "1 decisions differ (1 then, 2 in the replay; 1 the run did not decide)" in render_replay(result)


def test_replay_of_a_run_whose_table_versions_were_vacuumed_says_so(
    shop: Settings, instance: dg.DagsterInstance, secret: str
) -> None:
    """An erasure vacuums the older versions of the tables that held the person at once (maintenance after
    its retention): the run's snapshot cannot be read again. A ReplayError (the CLI's one line, exit 2),
    not polars' FileNotFoundError."""
    bob = message("identify", at(-60), user="u-bob", email="bob@example.com", marketing_consent=True)
    bobs_cart = message("Product Added", at(0), user="u-bob", cart_id="c2", product_id="p1", price=9.5)
    signup_and_cart(shop, bob, bobs_cart)
    run(shop, instance, at(5))
    run(shop, instance, at(61))
    evaluation = table(shop, "triggers")["evaluation"].max()  # the run that decided both carts
    assert isinstance(evaluation, int)
    assert erase_once(shop, "u-bob", instance)[0]
    with pytest.raises(
        ReplayError, match=rf"engine run {evaluation} cannot be replayed: .* is gone, vacuumed"
    ):
        replay(shop, "abandoned_cart", evaluation, secret=secret)

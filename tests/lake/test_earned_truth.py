"""What the emails earn, against a known truth (#19): a simulated month (fast mode) with true effects per
trigger kind and variant; the report's 95 % intervals cover them, a kind without an effect shows an
interval around 0, and the holdout is 5 % of the shoppers within its sampling error. Fixed seeds."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import polars as pl
import pytest

from resources.lake import LakeResource
from simulator.truth import Truth, simulate_truth
from stores.measure import ATTRIBUTIONS, measure_now, run_attribution, run_experiments
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA, HOLDOUT

NOW = datetime(2026, 4, 10, tzinfo=UTC)  # every window of the month has closed


@pytest.mark.parametrize("seed", [1, 2])
def test_the_report_finds_the_truth_put_in(lake: LakeResource, seed: int) -> None:
    truth = Truth()
    simulate_truth(lake, truth, seed=seed)
    figures = run_experiments(lake, truth.window, NOW)
    assert figures.equals(measure_now(lake, truth.window, NOW))  # the report and the asset agree
    exposed, held_out = (
        int(figures["exposed"].sum()),
        int(figures.filter(pl.col("arm") == HOLDOUT)["exposed"].sum()),
    )
    rate = truth.policy.holdout_rate  # the global holdout: 5 % of the shoppers, within its sampling error
    assert abs(held_out / exposed - rate) <= 3 * math.sqrt(rate * (1 - rate) / exposed)
    for kind in truth.kinds:
        arms = {r["arm"]: r for r in figures.filter(pl.col("kind") == kind).iter_rows(named=True)}
        assert set(arms) == {"a", "b", HOLDOUT}
        for variant in ("a", "b"):
            row, true = arms[variant], truth.uplift(kind, variant)
            assert row["uplift_low"] <= true <= row["uplift_high"], (kind, variant, row)
            assert row["note"] is None  # big enough to tell
            clicks = truth.kinds[kind].open_rate * truth.kinds[kind].click_rate  # scanners are not counted
            assert abs(row["click_rate"] - clicks) < 0.02
        assert arms[HOLDOUT]["click_rate"] == 0.0
    cart = figures.filter((pl.col("kind") == "abandoned_cart") & (pl.col("arm") != HOLDOUT))
    assert (cart["uplift_low"] > 0).all() and (cart["p_value"] < 0.05).all()  # +4 and +5 points: found
    welcome = figures.filter((pl.col("kind") == "welcome") & (pl.col("arm") != HOLDOUT))
    assert ((welcome["uplift_low"] < 0) & (welcome["uplift_high"] > 0)).all()  # no effect: 0 inside


def test_attribution_of_the_simulated_month_credits_each_order_once(lake: LakeResource) -> None:
    truth = Truth(shoppers_per_kind=2_000)
    simulate_truth(lake, truth, seed=3)
    report = run_attribution(lake, truth.window)
    credited = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)
    assert credited.height == report.credited > 0 and credited["order_event_id"].is_unique().all()
    assert set(report.by_rule) == {"click", "send"}
    assert (credited["converted_at"] - credited["sent_at"] <= truth.window).all()
    assert run_attribution(lake, truth.window).merged == 0

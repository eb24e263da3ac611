"""Experiments (#19): the statistics against published values, and who is measured from when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from transforms.measure.experiments import assignments, daily_sums, outcomes, pooled, summarize
from transforms.measure.plot import experiments_png
from transforms.measure.report import experiments_markdown, experiments_text
from transforms.measure.stats import mean_difference, rate_difference, two_proportion_p, wilson
from transforms.schema import TRIGGERS_SCHEMA, UTC_TS

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def test_intervals_match_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17: 873-890, tables I and II.
    assert wilson(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=5e-5)
    assert rate_difference(56, 70, 48, 80) == pytest.approx((0.2, 0.0524, 0.3339), abs=5e-5)
    assert rate_difference(9, 10, 3, 10) == pytest.approx((0.6, 0.1705, 0.8090), abs=5e-5)
    assert two_proportion_p(56, 70, 48, 80) == pytest.approx(0.00805, abs=5e-5)  # chi2 = 7.023, z = 2.650
    assert wilson(0, 0) == (None, None) and rate_difference(1, 2, 0, 0) == (None, None, None)
    diff, low, high = mean_difference(30.0, 500.0, 3, 10.0, 100.0, 2)  # means 10 and 5
    assert diff == 5.0 and low is not None and high is not None and low < 5.0 < high


def decision(user: str, kind: str, decision: str, at: float, variant: str = "a") -> dict[str, object]:
    row = dict.fromkeys(TRIGGERS_SCHEMA)
    when = T0 + timedelta(hours=at)
    fields = {"trigger_id": f"t-{user}-{kind}-{at}", "kind": kind, "user_id": user, "decision": decision}
    return row | fields | {"variant": variant, "decided_at": when}


def test_each_shopper_is_measured_from_their_first_assignment_in_their_arm() -> None:
    triggers = pl.DataFrame(
        [
            decision("u-1", "abandoned_cart", "held", 0),  # not yet an assignment
            decision("u-1", "abandoned_cart", "send", 1, "b"),
            decision("u-1", "abandoned_cart", "cooldown", 30, "b"),  # the same shopper again: once
            decision("u-2", "abandoned_cart", "holdout", 2),
            decision("u-3", "abandoned_cart", "capped", 3),  # intention to treat: variant a
            decision("u-4", "abandoned_cart", "no_consent", 3),  # never in the experiment
        ],
        schema=TRIGGERS_SCHEMA,
    )
    assigned = assignments(triggers).sort("user_id")
    assert assigned.select("user_id", "arm").rows() == [("u-1", "b"), ("u-2", "holdout"), ("u-3", "a")]
    orders = pl.DataFrame(
        {
            "user_id": ["u-1", "u-2", "u-2", "u-3"],
            "converted_at": [T0 + timedelta(hours=h) for h in (0.5, 20, 21, 24 * 6)],
            "revenue": [99.0, 10.0, 5.0, 50.0],
        },
        schema={"user_id": pl.String, "converted_at": UTC_TS, "revenue": pl.Float64},
    )
    no_clicks = pl.DataFrame(schema={"send_id": pl.String, "clicked_at": UTC_TS})
    sends = pl.DataFrame(schema={"send_id": pl.String, "user_id": pl.String, "kind": pl.String})
    got = outcomes(assigned, orders, no_clicks, sends, timedelta(days=5)).sort("user_id")
    # u-1 ordered before the send; u-2 twice within the window; u-3 after it
    assert got.select("user_id", "converted", "revenue").rows() == [
        ("u-1", False, 0.0),
        ("u-2", True, 15.0),
        ("u-3", False, 0.0),
    ]
    figures = summarize(pooled(daily_sums(got)), T0)
    holdout = figures.filter(pl.col("arm") == "holdout").row(0, named=True)
    arm_b = figures.filter(pl.col("arm") == "b").row(0, named=True)
    assert (holdout["exposed"], holdout["converted"], holdout["uplift"]) == (1, 1, None)
    assert arm_b["uplift"] == -1.0 and "too small" in arm_b["note"]
    assert "abandoned_cart" in experiments_markdown(figures) and "too small" in experiments_text(figures)
    assert experiments_png(figures).startswith(b"\x89PNG")

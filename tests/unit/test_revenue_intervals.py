"""Revenue intervals (found by review): Student's t instead of the normal quantile, Welch-Satterthwaite for
the difference, no zero-wide interval for an arm in which nobody bought, none for one shopper; against
written-out formulas and tables, and as properties."""

from __future__ import annotations

import math
import statistics

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.measure.experiments import summarize
from transforms.measure.report import HEADERS, cells
from transforms.measure.stats import Z95, mean_difference, mean_interval, rate_difference
from transforms.measure.student_t import LARGE_DF, t95


def t_density(t: float, df: float) -> float:
    """Written out here: Gamma((df + 1) / 2) / (sqrt(df pi) Gamma(df / 2)) (1 + t^2 / df)^(-(df + 1) / 2)."""
    norm = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return norm * (1 + t * t / df) ** (-(df + 1) / 2)


def test_the_t_quantile_is_students() -> None:
    """The intervals' quantile (found by review: the normal's 1.96 at any size)."""
    assert t95(1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-12)  # Cauchy: 12.706
    assert t95(2) == pytest.approx(0.95 * math.sqrt(2 / (4 * 0.975 * 0.025)), rel=1e-12)  # 4.303
    table = {3: 3.182446, 5: 2.570582, 10: 2.228139, 30: 2.042272, 39: 2.022691, 120: 1.979930}
    assert {df: t95(df) for df in table} == pytest.approx(table, abs=1e-6)
    for df in (1.5, 4.7, 26.3):  # Welch-Satterthwaite's are not whole: the density integrates to 95 %
        q, steps = t95(df), 20_000  # Simpson's rule over [0, q], doubled
        h = q / steps
        odd_even = sum((4 if i % 2 else 2) * t_density(i * h, df) for i in range(1, steps))
        assert 2 * h / 3 * (t_density(0, df) + odd_even + t_density(q, df)) == pytest.approx(0.95, abs=1e-9)
    assert t95(LARGE_DF - 1e-6) == pytest.approx(t95(LARGE_DF + 1e-6), rel=1e-10)  # both methods agree
    assert t95(1000) == pytest.approx(1.962339, abs=1e-6) and t95(float("inf")) == Z95


def sums_of(values: list[float]) -> tuple[float, float, int]:
    return sum(values), sum(v * v for v in values), len(values)


def test_revenue_intervals_are_t_intervals_and_none_for_one_shopper() -> None:
    """Found by review: one shopper's revenue had the interval (50, 50), two of 0 and 100 had 50 -+ 98."""
    assert mean_interval(*sums_of([50.0])) == (50.0, None, None)
    assert mean_difference(*sums_of([50.0]), *sums_of([0.0, 0.0])) == (50.0, None, None)
    mean, low, high = mean_interval(*sums_of([0.0, 100.0]))
    assert (mean, low, high) == pytest.approx((50.0, 50 - 635.3102, 50 + 635.3102), abs=1e-4)  # t95(1) * 50
    # equal variances and sizes: Welch-Satterthwaite's df is 2(n - 1), here 38: t95(38) = 2.024394
    held = [0.0] * 16 + [10.0, 20.0, 30.0, 40.0]
    treated = [v + 5.0 for v in held]
    diff, low, high = mean_difference(*sums_of(treated), *sums_of(held))
    se = math.sqrt(2 * statistics.variance(held) / 20)
    assert (diff, low, high) == pytest.approx((5.0, 5.0 - 2.024394 * se, 5.0 + 2.024394 * se), abs=1e-5)


def test_large_samples_keep_the_normal_intervals() -> None:
    values = [0.0] * 97_000 + [float(20 + i % 90) for i in range(3000)]
    mean, sd, n = statistics.mean(values), statistics.stdev(values), len(values)
    normal = (mean, mean - Z95 * sd / math.sqrt(n), mean + Z95 * sd / math.sqrt(n))
    assert mean_interval(*sums_of(values)) == pytest.approx(normal, rel=5e-4)  # 3 significant digits
    held = values[::2]
    se = math.sqrt(sd**2 / n + statistics.variance(held) / len(held))
    diff = mean - statistics.mean(held)
    got = mean_difference(*sums_of(values), *sums_of(held))
    assert got == pytest.approx((diff, diff - Z95 * se, diff + Z95 * se), rel=5e-4)


def test_an_arm_in_which_nobody_bought_does_not_make_the_revenue_uplift_certain() -> None:
    """Found by review: 1000 treated, 30 bought at 50.00, 50 held out, none bought: conversion uplift
    +3.0 points [-4.2, +4.3] (p 0.21) but revenue uplift 1.50 [0.97, 2.03], because the holdout's
    revenue was 0.00 [0.00, 0.00]. Now the holdout's is its Wilson 0 of 50 (< 7.13 %) times 50.00, and
    the uplift's combines the two intervals (MOVER): it covers 0 as the conversion's does."""
    treated, held = [50.0] * 30 + [0.0] * 970, [0.0] * 50
    _, rate_low, rate_high = rate_difference(30, 1000, 0, 50)
    assert rate_low is not None and rate_high is not None and rate_low < 0 < rate_high
    upper = Z95**2 / (50 + Z95**2) * 50.0  # Wilson's upper bound of 0 in 50, z^2 / (n + z^2), times 50.00
    assert mean_interval(*sums_of(held), 50.0) == pytest.approx((0.0, 0.0, upper), abs=1e-9)
    half = 1.962341 * statistics.stdev(treated) / math.sqrt(1000)  # t95(999)
    low, high = 1.5 - math.hypot(half, upper), 1.5 + half
    assert mean_difference(*sums_of(treated), *sums_of(held)) == pytest.approx((1.5, low, high), abs=1e-4)
    assert low == pytest.approx(-2.1065, abs=1e-4) and low < 0 < high  # conversion x 50.00: -2.10, +2.13


def arm(kind: str, name: str, values: list[float], converted: int) -> dict[str, object]:
    """One pooled row of `experiments.pooled`: an arm whose shoppers spent `values`."""
    total, squares, n = sums_of(values)
    counts = {"exposed": n, "sent": 0, "clicked": 0, "converted": converted, "other_currency_orders": 0}
    return {"kind": kind, "arm": name, "day": None, **counts, "revenue": total, "revenue_sq": squares} | {
        "currency": "EUR",
        "other_currencies": [],
    }


def test_the_report_shows_the_holdouts_uncertainty_and_na_for_one_shopper() -> None:
    """Found by review: the holdout of the reproduction above showed "0.00 [0.00, 0.00]", and one shopper
    "50.00 [50.00, 50.00]". The all-0 holdout is scaled by what the kind's buyers spent (50.00 here)."""
    rows = [
        arm("abandoned_cart", "a", [50.0] * 30 + [0.0] * 970, 30),
        arm("abandoned_cart", "holdout", [0.0] * 50, 0),
        arm("welcome", "a", [50.0], 1),
        arm("welcome", "holdout", [0.0] * 3, 0),
        arm("post_purchase", "a", [0.0] * 5, 0),  # nobody in the kind spent anything: nothing to scale by
        arm("post_purchase", "holdout", [0.0] * 5, 0),
    ]
    figures = summarize(pl.DataFrame(rows, infer_schema_length=None), None)
    table = {(r[0], r[1]): dict(zip(HEADERS, r, strict=True)) for r in cells(figures)}
    money, uplift = "revenue/shopper [95% CI]", "revenue uplift [95% CI]"
    assert table["abandoned_cart", "holdout"][money] == "0.00 [0.00, 3.57]"
    assert table["abandoned_cart", "a"][uplift] == "+1.50 [-2.11, +2.03]"
    assert table["abandoned_cart", "a"]["uplift pts [95% CI]"] == "+3.0 [-4.2, +4.3]"
    assert (table["welcome", "a"][money], table["welcome", "a"][uplift]) == ("50.00 [n/a]", "+50.00 [n/a]")
    assert table["welcome", "holdout"][money] == "0.00 [0.00, 28.07]"  # Wilson 0 of 3: < 56.1 %
    assert table["post_purchase", "a"][money] == "0.00 [n/a]"
    assert table["post_purchase", "a"][uplift] == "+0.00 [n/a]"
    held = figures.filter(pl.col("kind") == "welcome", pl.col("arm") == "a").row(0, named=True)
    assert (held["revenue_low"], held["revenue_high"], held["revenue_uplift_low"]) == (None, None, None)


spends = st.lists(st.sampled_from([0.0, 0.0, 0.0, 20.0, 35.0, 50.0, 120.0]), min_size=2, max_size=40)


def width(interval: tuple[float | None, float | None, float | None]) -> float:
    estimate, low, high = interval
    assert estimate is not None and low is not None and high is not None
    assert low <= estimate <= high  # the interval holds its estimate
    return high - low


@settings(max_examples=200, deadline=None)
@given(values=spends, more=st.integers(2, 5))
def test_a_mean_interval_holds_its_mean_has_width_and_narrows_with_more_shoppers(
    values: list[float], more: int
) -> None:
    wide = width(mean_interval(*sums_of(values), 50.0))
    assert 0 < width(mean_interval(*sums_of(values * more), 50.0)) < wide


@settings(max_examples=200, deadline=None)
@given(treated=spends, held=spends, more=st.integers(2, 5))
def test_a_revenue_uplift_interval_holds_its_uplift_has_width_and_narrows_with_more_shoppers(
    treated: list[float], held: list[float], more: int
) -> None:
    if not any(treated + held):  # nobody spent anything: no order value, no interval
        assert mean_difference(*sums_of(treated), *sums_of(held))[1:] == (None, None)
        return
    wide = width(mean_difference(*sums_of(treated), *sums_of(held)))
    assert 0 < width(mean_difference(*sums_of(treated * more), *sums_of(held * more))) < wide

"""The statistics of the experiments (pure, standard library only): Wilson intervals for rates,
Newcombe's interval and a z-test for a difference of rates, Student's t intervals for a mean and (Welch)
for a difference of means, which an arm whose values have no spread does not shrink to nothing, and the
minimum detectable effect of an arm."""

from __future__ import annotations

import math

from transforms.measure.student_t import Z95, t95

Z80_POWER = 0.8416212335729143  # one-sided 80 % power
Interval = tuple[float | None, float | None]


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """The Wilson score interval of `successes / trials` ((None, None) without trials)."""
    if trials <= 0:
        return None, None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_difference(x1: int, n1: int, x0: int, n0: int) -> tuple[float | None, float | None, float | None]:
    """(p1 - p0, low, high): Newcombe's hybrid score interval (his method 10), from two Wilson intervals."""
    if n1 <= 0 or n0 <= 0:
        return None, None, None
    p1, p0 = x1 / n1, x0 / n0
    (l1, u1), (l0, u0) = wilson(x1, n1), wilson(x0, n0)
    assert l1 is not None and u1 is not None and l0 is not None and u0 is not None
    diff = p1 - p0
    return diff, diff - math.hypot(p1 - l1, u0 - p0), diff + math.hypot(u1 - p1, p0 - l0)


def two_proportion_p(x1: int, n1: int, x0: int, n0: int) -> float | None:
    """The two-sided p-value of the pooled two-proportion z-test of p1 = p0."""
    if n1 <= 0 or n0 <= 0:
        return None
    pooled = (x1 + x0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:
        return 1.0  # both arms all 0 or all 1: no evidence of a difference
    return math.erfc(abs(x1 / n1 - x0 / n0) / se / math.sqrt(2))


def mean_and_variance(total: float, squares: float, n: int) -> tuple[float, float]:
    """Mean and sample variance of n values from their sum and sum of squares."""
    mean = total / n
    variance = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return mean, variance


def _spreadless(variance: float, squares: float, n: int) -> bool:
    """Whether n values with this sample variance are all equal (up to rounding of the sums)."""
    return variance <= 1e-10 * squares / n


def order_value(total: float, squares: float) -> float | None:
    """What a converting shopper is taken to spend when a conversion rate becomes revenue per shopper:
    sum v^2 / sum v over the arms' shoppers (those who spent nothing add 0 to both), the revenue-weighted
    mean order value. Converters counted in units of it vary as much, relative to their mean, as the
    revenue does (n shoppers converting rarely at p, order values V: mean n p E[V], variance ~ n p E[V^2]);
    it is never below the mean order value nor the root mean square, so the interval it scales errs wide.
    None when nobody spent anything."""
    return squares / total if total > 0 and squares > 0 else None


def _without_spread(mean: float, n: int, value: float | None) -> Interval:
    """The interval of n equal values (n >= 2): the conversion rate's Wilson interval times an order value.
    All 0 (nobody in the arm spent anything): 0 of n converted, times `value` (`order_value` of the arms
    compared with it; no interval without one). All `mean` != 0: n of n, times `mean`."""
    if mean == 0:
        if value is None or not value > 0:
            return None, None
        _, high = wilson(0, n)
        assert high is not None
        return 0.0, high * value
    low, _ = wilson(n, n)
    assert low is not None
    return min(low * mean, mean), max(low * mean, mean)


def mean_interval(
    total: float, squares: float, n: int, value: float | None = None
) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high) of n values (revenue per shopper) from their sum and sum of squares, 95 %.

    Student's t interval, mean -+ t95(n - 1) s / sqrt(n) (Student 1908). Values without spread (an arm
    in which nobody bought: all 0) would make that zero-wide though the arm's revenue is as uncertain as
    its conversion rate: their interval is the Wilson interval of that rate (Wilson 1927) times an order
    value, `value` (`_without_spread`, `order_value`: revenue per shopper = conversion rate x order value).
    One value has no interval at all (low, high None), nor has an all-0 arm without a `value`.
    """
    if n <= 0:
        return None, None, None
    mean, variance = mean_and_variance(total, squares, n)
    if n < 2:
        return mean, None, None
    if _spreadless(variance, squares, n):
        return (mean, *_without_spread(mean, n, value))
    half = t95(n - 1) * math.sqrt(variance / n)
    return mean, mean - half, mean + half


def welch_df(v1: float, n1: int, v0: float, n0: int) -> float:
    """The Welch-Satterthwaite degrees of freedom of mean1 - mean0 (both variances > 0, n >= 2)."""
    a, b = v1 / n1, v0 / n0
    return (a + b) ** 2 / (a * a / (n1 - 1) + b * b / (n0 - 1))


def mean_difference(
    sum1: float, sq1: float, n1: int, sum0: float, sq0: float, n0: int, value: float | None = None
) -> tuple[float | None, float | None, float | None]:
    """(mean1 - mean0, low, high), 95 %.

    Both arms with spread: Welch's interval, d -+ t95(df) sqrt(v1/n1 + v0/n0) with the Welch-Satterthwaite
    df (Welch 1947; Satterthwaite 1946). An arm without spread (see `mean_interval`) would add nothing to
    Welch's standard error, so the difference would look as sure as the other arm alone: then the two
    arms' own intervals are combined by MOVER (Zou & Donner 2008, Statistics in Medicine 27: 1693-1702;
    what Newcombe's interval in `rate_difference` does with Wilson's):
    low = d - sqrt((m1 - l1)^2 + (u0 - m0)^2), high = d + sqrt((u1 - m1)^2 + (m0 - l0)^2).
    `value` scales an all-0 arm's interval (default: the two arms' `order_value`). An arm of fewer than 2
    (or one `mean_interval` gives none) leaves the difference without an interval.
    """
    if n1 <= 0 or n0 <= 0:
        return None, None, None
    (m1, v1), (m0, v0) = mean_and_variance(sum1, sq1, n1), mean_and_variance(sum0, sq0, n0)
    diff = m1 - m0
    if n1 < 2 or n0 < 2:
        return diff, None, None
    if not (_spreadless(v1, sq1, n1) or _spreadless(v0, sq0, n0)):
        half = t95(welch_df(v1, n1, v0, n0)) * math.sqrt(v1 / n1 + v0 / n0)
        return diff, diff - half, diff + half
    value = order_value(sum1 + sum0, sq1 + sq0) if value is None else value
    _, l1, u1 = mean_interval(sum1, sq1, n1, value)
    _, l0, u0 = mean_interval(sum0, sq0, n0, value)
    if l1 is None or u1 is None or l0 is None or u0 is None:
        return diff, None, None
    return diff, diff - math.hypot(m1 - l1, u0 - m0), diff + math.hypot(u1 - m1, m0 - l0)


def minimum_detectable_effect(x1: int, n1: int, x0: int, n0: int) -> float | None:
    """The smallest difference of rates that a two-sided 5 % test finds with 80 % power at these sizes
    (at the pooled rate; 0.5, the worst case, while nothing has converted yet)."""
    if n1 <= 0 or n0 <= 0:
        return None
    pooled = (x1 + x0) / (n1 + n0)
    if not 0 < pooled < 1:
        pooled = 0.5
    return (Z95 + Z80_POWER) * math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))

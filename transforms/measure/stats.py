"""The statistics of the experiments (pure, standard library only): Wilson intervals for rates,
Newcombe's interval and a z-test for a difference of rates, normal intervals for a mean and (Welch) for a
difference of means, and the minimum detectable effect of an arm."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95 %
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


def mean_interval(total: float, squares: float, n: int) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high) of n values from their sum and sum of squares: the normal 95 % interval."""
    if n <= 0:
        return None, None, None
    mean, variance = mean_and_variance(total, squares, n)
    half = Z95 * math.sqrt(variance / n)
    return mean, mean - half, mean + half


def mean_difference(
    sum1: float, sq1: float, n1: int, sum0: float, sq0: float, n0: int
) -> tuple[float | None, float | None, float | None]:
    """(mean1 - mean0, low, high): the normal 95 % interval with Welch's standard error."""
    if n1 <= 0 or n0 <= 0:
        return None, None, None
    (m1, v1), (m0, v0) = mean_and_variance(sum1, sq1, n1), mean_and_variance(sum0, sq0, n0)
    half = Z95 * math.sqrt(v1 / n1 + v0 / n0)
    return m1 - m0, m1 - m0 - half, m1 - m0 + half


def minimum_detectable_effect(x1: int, n1: int, x0: int, n0: int) -> float | None:
    """The smallest difference of rates that a two-sided 5 % test finds with 80 % power at these sizes
    (at the pooled rate; 0.5, the worst case, while nothing has converted yet)."""
    if n1 <= 0 or n0 <= 0:
        return None
    pooled = (x1 + x0) / (n1 + n0)
    if not 0 < pooled < 1:
        pooled = 0.5
    return (Z95 + Z80_POWER) * math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))

"""Pure statistics for the benchmark figures: summaries over repeats, percentiles, target verdicts."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Min, median and max of one metric over the repeats of a figure."""

    low: float
    median: float
    high: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no values to summarize")
    return Summary(low=min(values), median=statistics.median(values), high=max(values), n=len(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0-100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    below, above = math.floor(rank), math.ceil(rank)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


@dataclass(frozen=True)
class Target:
    """A number a figure must reach: `value >= limit` when `at_least`, else `value <= limit`."""

    label: str
    limit: float
    at_least: bool
    unit: str = ""


@dataclass(frozen=True)
class Verdict:
    target: Target
    value: float
    met: bool
    margin: float  # relative distance to the limit: > 0 is headroom, < 0 is how far it missed


def judge(target: Target, value: float) -> Verdict:
    if target.limit == 0:
        raise ValueError("a target limit of 0 has no relative margin")
    distance = (value - target.limit) / target.limit
    margin = distance if target.at_least else -distance
    return Verdict(target=target, value=value, met=margin >= 0, margin=margin)


def describe(verdict: Verdict) -> str:
    """'met (23% headroom)' or 'missed by 40%'."""
    pct = abs(verdict.margin) * 100
    return f"met ({pct:.0f}% headroom)" if verdict.met else f"**missed** by {pct:.0f}%"

"""The experiments' picture (pure: PNG bytes, no file): per trigger kind, each arm's conversion rate
and each variant's uplift against the holdout, with their 95 % intervals."""

from __future__ import annotations

import io

import polars as pl

from transforms.measure.tables import HOLDOUT


def _errors(frame: pl.DataFrame, value: str, low: str, high: str) -> list[list[float]]:
    return [
        [max(0.0, v - lo) * 100 for v, lo in zip(frame[value], frame[low], strict=True)],
        [max(0.0, hi - v) * 100 for v, hi in zip(frame[value], frame[high], strict=True)],
    ]


def experiments_png(pooled: pl.DataFrame, title: str = "What the emails earn") -> bytes:
    """A two-panel PNG of pooled experiment figures (one row per kind and arm)."""
    # Imported here: matplotlib costs every process that loads the definitions or the CLI ~1 s otherwise.
    # No pyplot: no global state, Agg renders the PNG.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 1.2 + 0.45 * max(1, pooled.height)), layout="constrained", dpi=90)
    rates, uplifts = figure.subplots(1, 2, sharey=False)
    shown = pooled.filter(pl.col("conversion_rate").is_not_null()).sort("kind", "arm", descending=True)
    labels = [f"{k} · {a}" for k, a in zip(shown["kind"], shown["arm"], strict=True)]
    colors = ["0.55" if a == HOLDOUT else "C0" for a in shown["arm"]]
    rates.barh(labels, shown["conversion_rate"] * 100, color=colors)
    if shown.height:
        errors = _errors(shown, "conversion_rate", "conversion_low", "conversion_high")
        rates.errorbar(shown["conversion_rate"] * 100, labels, xerr=errors, fmt="none", ecolor="black")
    rates.set_xlabel("conversion in the window, % (95 % CI)")
    arms = pooled.filter(pl.col("uplift").is_not_null()).sort("kind", "arm", descending=True)
    arm_labels = [f"{k} · {a}" for k, a in zip(arms["kind"], arms["arm"], strict=True)]
    if arms.height:
        errors = _errors(arms, "uplift", "uplift_low", "uplift_high")
        uplifts.errorbar(arms["uplift"] * 100, arm_labels, xerr=errors, fmt="o", color="C1", capsize=3)
    uplifts.axvline(0, color="0.3", linewidth=0.8)
    uplifts.set_xlabel("uplift over the holdout, points (95 % CI)")
    if not arms.height:
        uplifts.text(0.5, 0.5, "no variant with a holdout yet", ha="center", transform=uplifts.transAxes)
    figure.suptitle(title)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()

"""The benchmark plot: steady-state latency percentiles over the run, and backlog throughput side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure as MplFigure  # no pyplot: no global state, Agg renders the PNG
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

from benchmarks.stats import percentile

WINDOW = 30  # files, so about 30 s of the steady run at one file a second
QUANTILES = ((50, "-"), (95, "--"), (99, ":"))


def rolling_percentile(values: Sequence[float], q: float, window: int = WINDOW) -> list[float]:
    """The q-th percentile of each trailing window of `values` (shorter at the start)."""
    if window < 1:
        raise ValueError("window must be >= 1")
    return [percentile(values[max(0, i + 1 - window) : i + 1], q) for i in range(len(values))]


def write_plot(
    path: Path,
    steady_latencies: Mapping[str, Sequence[float]],
    throughput: Mapping[str, float],
    *,
    window: int = WINDOW,
) -> Path:
    """A two-panel PNG at `path`: rolling p50/p95/p99 per series over the steady run; events/s per engine.

    `steady_latencies`: series name -> landed -> committed seconds per file, in landing order.
    `throughput`: name (e.g. floor, lakemail, spark) -> events/s on the same backlog. A name in both
    keeps one color.
    """
    figure = MplFigure(figsize=(11, 4.2), layout="constrained")
    latency, rate = figure.subplots(1, 2, width_ratios=(3, 2))
    color = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys([*steady_latencies, *throughput]))}
    for name, values in steady_latencies.items():
        for q, style in QUANTILES:
            line = rolling_percentile(values, q, window)
            latency.plot(line, style, color=color[name], label=f"{name} p{q}")
    latency.set(
        title=f"Steady state: landed -> committed, rolling {window}-file window",
        xlabel="file (about one a second)",
        ylabel="seconds",
        ylim=(0, None),
    )
    latency.grid(alpha=0.3)
    if steady_latencies:
        latency.legend(fontsize="small", ncols=len(steady_latencies))
    names, values = list(throughput), list(throughput.values())
    bars = rate.barh(names, values, color=[color[name] for name in names])
    rate.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=3, fontsize="small")
    rate.set(title="Backlog: events/s (higher is better)", xlabel="events/s")
    rate.set_xlim(0, max(values, default=1) * 1.25)
    rate.xaxis.set_major_locator(MaxNLocator(nbins=4))
    rate.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    rate.invert_yaxis()  # first name on top
    rate.grid(axis="x", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: no diff on upgrade
    return path

"""The peer's figures for BENCHMARKS.md, and lakemail against the peer with the issue's targets."""

from __future__ import annotations

from benchmarks.figures import Figure
from benchmarks.peers.results import PeerResults
from benchmarks.stats import Target, percentile

# Issue #7: lakemail drains a backlog at least 4x as fast as Spark, at no more than 1.5x its p50 latency.
PEER_THROUGHPUT = Target("backlog events/s, lakemail / Spark", 4.0, at_least=True, unit="x")
PEER_P50 = Target("landed -> committed p50, lakemail / Spark", 1.5, at_least=False, unit="x")

LAKEMAIL_RATE = "events/s (lines / wall seconds of the child)"
LAKEMAIL_P50 = "landed -> committed p50"
SPARK_RATE = "events/s (lines / wall seconds of the child)"
SPARK_P50 = "landed -> committed p50"


def _context(results: PeerResults, part: str) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in results.versions.items())
    settings = "; ".join(f"{name}: {value}" for name, value in results.settings.items())
    return (
        f"Measured {results.measured.get(part, 'at an unrecorded time')} ({versions}). Settings: {settings}."
    )


def backlog_figure(results: PeerResults) -> Figure:
    runs = results.backlog
    title = "Peer: Spark Structured Streaming on the same backlog"
    figure = Figure("peer_spark_backlog", title, commands=results.commands["backlog"])
    figure.add(SPARK_RATE, "events/s", [r.events_per_s for r in runs])
    figure.add("events/s (lines / query seconds)", "events/s", [r.query_events_per_s for r in runs])
    figure.add("wall seconds (child start to exit)", "s", [r.wall_seconds for r in runs])
    figure.add("query seconds (start to availableNow termination)", "s", [r.query_seconds for r in runs])
    figure.add("startup seconds (child start to SparkSession)", "s", [r.startup_seconds for r in runs])
    figure.add("peak RSS of the process tree (python + JVM)", "MB", [r.peak_rss_mb for r in runs])
    figure.add("rows written to parquet", "rows", [float(r.rows_written) for r in runs])
    figure.notes += [
        f"{runs[-1].lines:,} landed lines, {runs[-1].batches} batch(es).",
        _context(results, "backlog"),
    ]
    return figure


def steady_figure(results: PeerResults) -> Figure:
    runs = results.steady
    title = f"Peer: Spark Structured Streaming fed at 1,000 events/s for {results.steady_seconds:g} s"
    figure = Figure("peer_spark_steady", title, commands=results.commands["steady"])
    for q in (50, 95, 99):
        figure.add(f"landed -> committed p{q}", "s", [percentile(r.latencies, q) for r in runs])
    figure.add("landed -> committed max", "s", [max(r.latencies) for r in runs])
    figure.add("batch seconds p50 (triggerExecution)", "s", [percentile(r.batch_seconds, 50) for r in runs])
    figure.add("batch seconds p95 (triggerExecution)", "s", [percentile(r.batch_seconds, 95) for r in runs])
    figure.add("files measured per repeat", "files", [float(r.files) for r in runs])
    figure.add("max backlog while feeding", "files", [float(max(r.backlog, default=0)) for r in runs])
    figure.add("peak RSS of the process tree (python + JVM)", "MB", [r.peak_rss_mb for r in runs])
    figure.notes += [_context(results, "steady"), *results.notes]
    return figure


def peer_figures(results: PeerResults) -> list[Figure]:
    """The peer's own figures, for the parts it has runs of."""
    figures = [backlog_figure(results)] if results.backlog else []
    return figures + ([steady_figure(results)] if results.steady else [])


def comparison_figure(results: PeerResults, drain: Figure | None, steady: Figure | None) -> Figure | None:
    """lakemail's medians over the peer's, judged against the issue's targets (None: nothing to pair)."""
    figure = Figure("peer_comparison", "lakemail against the Spark peer")
    if drain is not None and results.backlog:
        spark = backlog_figure(results).median(SPARK_RATE)
        figure.check(
            PEER_THROUGHPUT, figure.add(PEER_THROUGHPUT.label, "x", [drain.median(LAKEMAIL_RATE) / spark])
        )
    if steady is not None and results.steady:
        spark = steady_figure(results).median(SPARK_P50)
        figure.check(PEER_P50, figure.add(PEER_P50.label, "x", [steady.median(LAKEMAIL_P50) / spark]))
    if not figure.rows:
        return None
    figure.notes.append(
        "Ratios of medians: lakemail's from this run, Spark's from benchmarks/peers/results.json "
        f"(written {results.date}), separate runs on the same kind of machine."
    )
    return figure

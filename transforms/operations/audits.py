"""The audits' own predicates (latency SLO, hourly quarantine and failure trends) and their result rows."""

from __future__ import annotations

from datetime import datetime

import orjson
import polars as pl

from transforms.operations.checks import CheckOutcome, Figure, Frame
from transforms.schema import UTC_TS

TREND_HOURS = 24  # per-hour figures kept in an audit row (the whole window still counts in the totals)
AUDIT_RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "audit": pl.String(),
    "run_at": UTC_TS,
    "passed": pl.Boolean(),
    "figures": pl.String(),  # JSON object of counts and rates
}


def latency_slo(frame: Frame, *, start: str, end: str, target_p95_s: float) -> CheckOutcome:
    """Passes when the p95 of `end - start` over the rows is at most `target_p95_s` (or there are none)."""
    seconds = (pl.col(end) - pl.col(start)).dt.total_microseconds() / 1e6
    row = (
        frame.lazy()
        .select(seconds.alias("s"))
        .select(
            pl.len().alias("count"),
            *[pl.col("s").quantile(q, "linear").alias(f"p{round(q * 100)}_s") for q in (0.5, 0.95, 0.99)],
            pl.col("s").max().alias("max_s"),
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    figures: dict[str, Figure] = {"count": int(row.pop("count")), "target_p95_s": target_p95_s}
    figures.update({name: round(float(value), 3) for name, value in row.items() if value is not None})
    p95 = row["p95_s"]
    return CheckOutcome(p95 is None or p95 <= target_p95_s, figures)


def hourly_trend(ingest_log: Frame) -> pl.DataFrame:
    """Per commit hour: files, lines, quarantined lines and failed files (from `ingest_log` rows)."""
    return (
        ingest_log.lazy()
        .group_by(pl.col("committed_at").dt.truncate("1h").alias("hour"))
        .agg(
            pl.len().alias("files"),
            pl.col("lines").sum(),
            pl.col("quarantined").sum(),
            (pl.col("status") == "failed").sum().alias("failed_files"),
        )
        .sort("hour")
        .collect()
    )


def _per_hour(trend: pl.DataFrame, column: str) -> dict[str, Figure]:
    return {
        f"{column}_{hour:%Y-%m-%dT%H}h": int(value)
        for hour, value in trend.tail(TREND_HOURS).select("hour", column).iter_rows()
    }


def quarantine_trend(trend: pl.DataFrame, reasons: pl.DataFrame, max_rate: float) -> CheckOutcome:
    """Passes when no hour of `trend` quarantined more than `max_rate` of its lines; `reasons` holds
    the window's quarantine rows per `reason` (`rows`)."""
    rates = trend.select(
        pl.when(pl.col("lines") > 0).then(pl.col("quarantined") / pl.col("lines")).otherwise(0.0).alias("r")
    )["r"]
    over = int((rates > max_rate).sum())
    worst = max(rates.to_list(), default=0.0)
    figures: dict[str, Figure] = {
        "hours": trend.height,
        "lines": int(trend["lines"].sum()),
        "quarantined": int(trend["quarantined"].sum()),
        "worst_hour_rate": round(worst, 6),
        "hours_over_limit": over,
        "max_rate": max_rate,
        **{f"reason_{reason}": int(rows) for reason, rows in reasons.sort("reason").iter_rows()},
        **_per_hour(trend, "quarantined"),
    }
    return CheckOutcome(over == 0, figures)


def failure_trend(trend: pl.DataFrame) -> CheckOutcome:
    """Passes when no landed file failed to read in the window of `trend`."""
    failed = int(trend["failed_files"].sum())
    figures: dict[str, Figure] = {
        "hours": trend.height,
        "files": int(trend["files"].sum()),
        "failed_files": failed,
        "hours_with_failures": int((trend["failed_files"] > 0).sum()),
        **_per_hour(trend, "failed_files"),
    }
    return CheckOutcome(failed == 0, figures)


def audit_rows(run_at: datetime, outcomes: dict[str, CheckOutcome]) -> pl.DataFrame:
    """One `audit_results` row per audit of a run."""
    rows = [
        (name, run_at, outcome.passed, orjson.dumps(outcome.figures, option=orjson.OPT_SORT_KEYS).decode())
        for name, outcome in outcomes.items()
    ]
    return pl.DataFrame(rows, schema=AUDIT_RESULTS_SCHEMA, orient="row")

"""Ingest's data-quality predicates: the quarantine rate, files reconciling with their rows, freshness."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from transforms.operations.checks import CheckOutcome, Figure, Frame, one_row


def quarantine_rate(ingest_log: Frame, max_rate: float) -> CheckOutcome:
    """Passes when quarantined lines are at most `max_rate` of the lines of committed files."""
    figures = one_row(
        ingest_log.lazy()
        .filter(pl.col("status") == "committed")
        .select(pl.len().alias("files"), pl.col("lines").sum(), pl.col("quarantined").sum())
    )
    rate = figures["quarantined"] / figures["lines"] if figures["lines"] else 0.0
    return CheckOutcome(rate <= max_rate, {**figures, "rate": round(rate, 6), "max_rate": max_rate})


def files_reconcile(ingest_log: Frame, event_rows: Frame, quarantine_rows: Frame) -> CheckOutcome:
    """Passes when each committed file has lines = accepted + duplicates + quarantined, and as many
    events and quarantine rows (`source_file`, `rows`) as it accepted and quarantined; rows of a file
    with no committed log row count as extra. (An erasure adjusts `ingest_log` with the rows it deletes.)
    """
    counted = (
        ingest_log.lazy()
        .filter(pl.col("status") == "committed")
        .select("source_file", "lines", "accepted", "duplicates", "quarantined", logged=pl.lit(1))
        .join(event_rows.lazy().rename({"rows": "event_rows"}), on="source_file", how="full", coalesce=True)
        .join(quarantine_rows.lazy().rename({"rows": "q_rows"}), on="source_file", how="full", coalesce=True)
        .with_columns(
            pl.col("lines", "accepted", "duplicates", "quarantined", "event_rows", "q_rows").fill_null(0)
        )
    )
    figures = one_row(
        counted.select(
            pl.col("logged").sum().alias("files"),
            (pl.col("lines") != pl.col("accepted") + pl.col("duplicates") + pl.col("quarantined"))
            .sum()
            .alias("count_mismatches"),
            (pl.col("event_rows") > pl.col("accepted")).sum().alias("files_with_extra_events"),
            (pl.col("event_rows") < pl.col("accepted")).sum().alias("files_with_fewer_events"),
            (pl.col("q_rows") > pl.col("quarantined")).sum().alias("files_with_extra_quarantine"),
            (pl.col("q_rows") < pl.col("quarantined")).sum().alias("files_with_fewer_quarantine"),
        )
    )
    return CheckOutcome(all(count == 0 for name, count in figures.items() if name != "files"), dict(figures))


def table_fresh(
    last_commit: datetime | None, landed_at: Sequence[datetime], *, now: datetime, max_lag: timedelta
) -> CheckOutcome:
    """Passes unless a file that landed after the table's last commit has waited more than `max_lag`.

    Judging by the waiting files, not by the newest file alone, keeps a quiet table fresh when one file
    has just landed after an idle hour, and still flags a stuck pipeline while files keep arriving.
    """
    waiting = [t for t in landed_at if last_commit is None or t > last_commit]
    oldest_wait = (now - min(waiting)).total_seconds() if waiting else 0.0
    figures: dict[str, Figure] = {
        "landed_files": len(landed_at),
        "waiting_files": len(waiting),
        "oldest_wait_s": round(oldest_wait, 3),
        "max_lag_s": max_lag.total_seconds(),
    }
    if last_commit is not None:
        figures["commit_age_s"] = round((now - last_commit).total_seconds(), 3)
        if landed_at:
            figures["behind_newest_landed_s"] = round(
                max(0.0, (max(landed_at) - last_commit).total_seconds()), 3
            )
    return CheckOutcome(oldest_wait <= max_lag.total_seconds(), figures)

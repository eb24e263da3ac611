"""Data-quality predicates over lake tables: pure Polars, each returning counts and rates, never ids.

Here: the outcome and limits every check shares, and the shape checks any table gets (unique key,
required columns). The stage checks are in `ingest_checks` and `send_checks`, the audits' own in `audits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

Figure = int | float | str
Frame = pl.DataFrame | pl.LazyFrame

# Columns every row must have (the public table contract); ONE_OF: at least one of each group.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": (
        "event_id",
        "event_type",
        "event_ts",
        "received_at",
        "landed_at",
        "ingested_at",
        "event_date",
        "source_file",
        "source_line",
        "batch_id",
    ),
    "quarantine": ("source_file", "source_line", "reason", "ingested_at", "batch_id"),
    "ingest_log": (
        "source_file",
        "bytes",
        "lines",
        "accepted",
        "quarantined",
        "duplicates",
        "batch_id",
        "status",
        "committed_at",
    ),
    "identities": ("anonymous_id", "user_id", "first_seen_at"),
    "profiles": ("user_id", "as_of"),
    "triggers": ("trigger_id", "kind", "principal", "decision", "decided_at", "lake_version"),
    "sends": ("send_id", "trigger_id", "user_id", "template", "provider", "status", "attempts"),
}
ONE_OF_COLUMNS: dict[str, tuple[tuple[str, ...], ...]] = {"events": (("user_id", "anonymous_id"),)}


@dataclass(frozen=True)
class CheckOutcome:
    """Whether a check passed, and the counts and rates that say why (no ids, no emails)."""

    passed: bool
    figures: dict[str, Figure]


@dataclass(frozen=True)
class Thresholds:
    """Limits the checks and audits hold the lake to."""

    quarantine_rate_max: float = 0.01  # the simulator's default dirt is 0.2 %
    freshness_lag: timedelta = timedelta(minutes=5)
    send_budget: timedelta = timedelta(minutes=15)  # from due to a terminal outbox row
    ingest_p95_target_s: float = 10.0
    send_p95_target_s: float = 30.0


def one_row(frame: pl.LazyFrame) -> dict[str, int]:
    """The one row of an aggregate `frame` as integer figures (a null counts as 0)."""
    row = frame.collect(engine="streaming").row(0, named=True)
    return {name: int(value or 0) for name, value in row.items()}


def unique_key(frame: Frame, key: Sequence[str]) -> CheckOutcome:
    """Passes when no value of `key` is on more than one row."""
    figures = one_row(
        frame.lazy()
        .group_by(list(key))
        .agg(pl.len().alias("_count"))
        .select(
            pl.col("_count").sum().alias("rows"),
            pl.len().alias("keys"),
            (pl.col("_count") > 1).sum().alias("duplicate_keys"),
        )
    )
    figures["extra_rows"] = figures["rows"] - figures["keys"]
    return CheckOutcome(figures["duplicate_keys"] == 0, dict(figures))


def required_non_null(
    frame: Frame, required: Sequence[str], one_of: Sequence[Sequence[str]] = ()
) -> CheckOutcome:
    """Passes when every `required` column is set on every row, and one column of each `one_of` group."""
    lazy = frame.lazy()
    present = set(lazy.collect_schema().names())
    absent = [c for c in [*required, *(c for group in one_of for c in group)] if c not in present]
    if absent:
        return CheckOutcome(False, {"absent_columns": len(absent), "absent": ", ".join(sorted(absent))})
    figures = one_row(
        lazy.select(
            pl.len().alias("rows"),
            *[pl.col(c).null_count().alias(f"null_{c}") for c in required],
            *[
                pl.all_horizontal([pl.col(c).is_null() for c in group])
                .sum()
                .alias("null_" + "_and_".join(group))
                for group in one_of
            ],
        )
    )
    passed = all(count == 0 for name, count in figures.items() if name.startswith("null_"))
    return CheckOutcome(passed, dict(figures))

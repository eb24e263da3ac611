"""Data-quality predicates over lake tables: pure Polars, each returning counts and rates, never ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

Figure = int | float | str
Frame = pl.DataFrame | pl.LazyFrame

TERMINAL_SEND_STATUSES = ("sent", "failed_permanent", "aborted")
TREND_HOURS = 24  # per-hour figures kept in an audit row (the whole window still counts in the totals)

# Columns every row must have (PRODUCT.md section 3); ONE_OF: at least one of each group.
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


def _one_row(frame: pl.LazyFrame) -> dict[str, int]:
    row = frame.collect(engine="streaming").row(0, named=True)
    return {name: int(value or 0) for name, value in row.items()}


def unique_key(frame: Frame, key: Sequence[str]) -> CheckOutcome:
    """Passes when no value of `key` is on more than one row."""
    figures = _one_row(
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
    figures = _one_row(
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


def quarantine_rate(ingest_log: Frame, max_rate: float) -> CheckOutcome:
    """Passes when quarantined lines are at most `max_rate` of the lines of committed files."""
    figures = _one_row(
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
    figures = _one_row(
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


def sends_sent_once(sends: Frame) -> CheckOutcome:
    """Passes when no trigger_id was sent twice and no send_id is on two outbox rows."""
    lazy = sends.lazy()
    sent_twice = (
        lazy.filter(pl.col("status") == "sent")
        .group_by("trigger_id")
        .len()
        .filter(pl.col("len") > 1)
        .select(pl.len())
    )
    doubled_ids = lazy.group_by("send_id").len().filter(pl.col("len") > 1).select(pl.len())
    figures = _one_row(
        pl.concat(
            [
                lazy.select(pl.len().alias("rows"), (pl.col("status") == "sent").sum().alias("sent")),
                sent_twice.select(pl.col("len").alias("trigger_ids_sent_twice")),
                doubled_ids.select(pl.col("len").alias("duplicate_send_ids")),
            ],
            how="horizontal",
        )
    )
    return CheckOutcome(figures["trigger_ids_sent_twice"] + figures["duplicate_send_ids"] == 0, dict(figures))


def sends_terminal_within_budget(
    decisions: Frame, sends: Frame, *, now: datetime, budget: timedelta
) -> CheckOutcome:
    """Passes when every `send` decision whose budget (from due_at, else decided_at) has run out has a
    terminal outbox row (sent, failed_permanent, aborted), and a `sent` one went out within the budget.
    """
    outbox = (
        sends.lazy()
        .group_by("trigger_id")
        .agg(
            pl.col("status").is_in(TERMINAL_SEND_STATUSES).any().alias("terminal"),
            pl.col("sent_at").filter(pl.col("status") == "sent").min().alias("sent_at"),
        )
    )
    deadline = pl.coalesce("due_at", "decided_at") + pl.lit(budget)
    judged = (
        decisions.lazy()
        .filter(pl.col("decision") == "send")
        .with_columns(deadline.alias("deadline"))
        .join(outbox, on="trigger_id", how="left")
    )
    overdue = pl.col("deadline") <= pl.lit(now)
    figures = _one_row(
        judged.select(
            pl.len().alias("send_decisions"),
            overdue.sum().alias("past_budget"),
            (overdue & pl.col("terminal").is_null()).sum().alias("missing"),
            (overdue & ~pl.col("terminal")).sum().alias("not_terminal"),
            (pl.col("sent_at") > pl.col("deadline")).sum().alias("sent_late"),
        )
    )
    passed = figures["missing"] + figures["not_terminal"] + figures["sent_late"] == 0
    return CheckOutcome(passed, {**figures, "budget_s": budget.total_seconds()})


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

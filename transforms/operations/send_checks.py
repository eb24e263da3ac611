"""The send stage's data-quality predicates: nothing sent twice, every send decision settled in time."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from transforms.operations.checks import CheckOutcome, Frame, one_row

TERMINAL_SEND_STATUSES = ("sent", "failed_permanent", "aborted")


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
    figures = one_row(
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
    figures = one_row(
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

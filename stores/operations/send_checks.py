"""The outbox's lake checks: `sends_trigger_id_sent_once` and `sends_terminal_within_budget`.

`sent_once` in a window (the hourly audit) judges every row of the trigger ids sent in it, read from the
whole table; over the whole lake (the nightly audit), every row. In a micro-batch it judged the same,
so every delivery run read the trigger id and send id of every email ever sent (#17); now it reads the
rows that the window's sends could have been doubled by, found by file skipping (`_doubles_in_run`).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from stores.operations.probe import Probe
from transforms.operations.checks import CheckOutcome
from transforms.operations.send_checks import sends_sent_once, sends_terminal_within_budget
from transforms.sends.rows import held_since

BOUNDING = ("created_at", "due_at", "sent_at")  # what the in-run read is bounded by (older tables lack some)


def sent_once(probe: Probe) -> CheckOutcome:
    """No trigger id sent twice, no send id on two rows: among the rows of the trigger ids sent in the
    scope's window (in-run: those that could double them), or among all rows."""
    sends = probe.whole("sends")
    if sends is None:
        return CheckOutcome(True, {"rows": 0})
    since = probe.scope.since
    if since is None:
        return sends_sent_once(sends)
    recent = sends.filter(pl.col("sent_at") >= since)
    if probe.scope.in_run and set(BOUNDING) <= set(sends.collect_schema().names()):
        return sends_sent_once(_doubles_in_run(sends, recent, since))
    return sends_sent_once(sends.join(recent.select("trigger_id").unique(), on="trigger_id", how="semi"))


def _doubles_in_run(sends: pl.LazyFrame, recent: pl.LazyFrame, since: datetime) -> pl.LazyFrame:
    """The rows of the trigger ids sent since `since`, read from the rows created since their earliest
    `due_at` (and any without a `created_at`): Delta skips the files older than that by their statistics.

    Nothing that could double them lies before: every row of a trigger is created by an `enqueue` of a
    `send` decision of it (a MERGE that inserts instead of updating copies a row's `created_at`), at the
    `now` of a decide-lane run no earlier than that decision's (the lane's runs take turns, under its
    lock, and `enqueue` runs in the run that decided or a later one), and a `send` is decided only once
    due: at or after the `due_at` its rows carry. So, with one terminal decision per trigger id (the blocking
    `triggers_terminal_decision_unique`, in the run that took it), each row of a trigger sent in the window
    was created at or after the `due_at` of its rows that were. A double left by a second decision of the
    trigger, or by a run whose clock went back (`--now` in the past), may lie before: the hourly audit reads
    each of its window's sent trigger ids in the whole table, and the nightly one reads it all.
    """
    found = recent.select("trigger_id", "due_at").collect()
    if found.height == 0:
        return pl.LazyFrame(schema=sends.collect_schema())
    ids = pl.col("trigger_id").is_in(found["trigger_id"].unique().implode())
    earliest = held_since(found)  # the bound the outbox's enqueue reads held send ids by, on one argument
    if earliest is None:
        return sends.filter(ids)  # a row without a due_at (an earlier release): all their rows, as audited
    created = pl.col("created_at")
    return sends.filter(((created >= earliest) | created.is_null() | (pl.col("sent_at") >= since)) & ids)


def terminal_within_budget(probe: Probe) -> CheckOutcome:
    """Every `send` decision whose budget ran out (in the window: in it) has a terminal outbox row."""
    decisions = probe.whole("triggers")
    if decisions is None:
        return CheckOutcome(True, {"send_decisions": 0})
    budget = probe.thresholds.send_budget
    if probe.scope.since is not None:  # decisions whose budget ran out in the scope
        deadline = pl.coalesce("due_at", "decided_at") + pl.lit(budget)
        decisions = decisions.filter(deadline >= probe.scope.since)
    decisions = decisions.filter(pl.col("decision") == "send")
    sends = probe.whole("sends")
    if sends is None:
        sends = pl.LazyFrame(
            schema={"trigger_id": pl.String, "status": pl.String, "sent_at": pl.Datetime("us", "UTC")}
        )
    sends = sends.join(decisions.select("trigger_id"), on="trigger_id", how="semi")
    return sends_terminal_within_budget(decisions, sends, now=probe.now, budget=budget)

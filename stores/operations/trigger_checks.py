"""`triggers_terminal_decision_unique`: one terminal decision per trigger id, against every earlier one.

In a micro-batch the check judges the terminal decisions its engine run committed (the scope's
`evaluation`) against every earlier terminal decision of the same trigger ids, whenever it was taken,
without reading the log whole: the state store's `decided_triggers` names, per trigger id, the engine
run of its first terminal decision (what the engine itself asks before it decides), and only those runs'
rows are read from the log to confirm it (file skipping on `evaluation`; an id the store lacks is looked
up in the whole log). An id the store lost is re-decided by the engine and indexed as this run's: that
is a store out of step with the lake, which `lakemail state check` reports, and the hourly audit (the
window's decisions against the whole log) and the nightly one (the whole log) find the doubled decision.
"""

from __future__ import annotations

import polars as pl

from resources.state import StateStore
from stores.operations.probe import Probe
from stores.state.namespaces import VALUE_SCHEMAS
from transforms.operations.checks import CheckOutcome, unique_key
from transforms.schema import PENDING_DECISIONS
from transforms.state import decode

TERMINAL = ~pl.col("decision").is_in(PENDING_DECISIONS)
IDS = {"trigger_id": pl.String(), "evaluation": pl.Int64()}


def terminal_unique(probe: Probe) -> CheckOutcome:
    """In-run: the run's terminal decisions, once each and none decided before; in a window: the window's
    trigger ids, once each in the whole log; otherwise the whole log."""
    log = probe.whole("triggers")
    if log is None:
        return unique_key(pl.LazyFrame(schema={"trigger_id": pl.String}), ["trigger_id"])
    terminal = log.filter(TERMINAL)
    scope = probe.scope
    if scope.evaluation is not None:
        return _run_unique(terminal, scope.evaluation, probe.state)
    if scope.since is not None:
        recent = terminal.filter(pl.col("decided_at") >= scope.since).select("trigger_id").unique()
        terminal = terminal.join(recent, on="trigger_id", how="semi")
    return unique_key(terminal.select("trigger_id"), ["trigger_id"])


def _run_unique(terminal: pl.LazyFrame, evaluation: int, store: StateStore | None) -> CheckOutcome:
    ids = terminal.filter(pl.col("evaluation") == evaluation).select("trigger_id").collect()["trigger_id"]
    outcome = unique_key(ids.to_frame(), ["trigger_id"])
    first, missing = _first_runs(store, ids.unique().sort())
    earlier = first.filter(pl.col("evaluation") < evaluation)
    where = pl.col("evaluation").is_in(earlier["evaluation"].unique().implode()) & pl.col("trigger_id").is_in(
        earlier["trigger_id"].implode()
    )
    if missing.len():
        where = where | pl.col("trigger_id").is_in(missing.implode())
    before = terminal.filter(where & (pl.col("evaluation") < evaluation)).select("trigger_id").unique()
    decided_before = before.select(pl.len()).collect().item() if earlier.height or missing.len() else 0
    figures = {**outcome.figures, "decided_before": decided_before, "not_in_state_store": missing.len()}
    return CheckOutcome(outcome.passed and decided_before == 0, figures)


def _first_runs(store: StateStore | None, ids: pl.Series) -> tuple[pl.DataFrame, pl.Series]:
    """(trigger_id, evaluation of its first terminal decision) of `ids` from the store's index, and the
    ids it does not hold (all of them without a store)."""
    found = store.get_many("decided_triggers", ids) if store is not None and ids.len() else {}
    if not found:
        return pl.DataFrame(schema=IDS), ids
    first = decode(list(found.values()), VALUE_SCHEMAS["decided_triggers"]).select(list(IDS))
    return first, ids.filter(~ids.is_in(first["trigger_id"].implode()))

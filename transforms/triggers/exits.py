"""The rules' exits: why a candidate is withdrawn, which exits wait for its due time, and the instance that
follows an exited one when the rule wants its anchor again.

An abandoned cart that is emptied does not exit at once: it exits when due if it is still empty, so a
refill before then keeps its one instance (and restarts the timer). A cart filled again after its instance
has exited gets a new instance, whose trigger id is derived from the exited one's (`renewal_ids`): every
instance still gets exactly one terminal decision, and the live store, a rebuilt one and a replay derive
the same ids from the same log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from transforms.triggers.rules import RULES, Rule, RuleContext
from transforms.triggers.rules.base import renewal_ids

ContextFor = Callable[[Rule], RuleContext]
Lookup = Callable[[pl.Series], pl.Series]  # of these trigger ids, those the decision log says it of


def exits(live: pl.DataFrame, context_for: ContextFor) -> pl.Series:
    """Each row's exit reason (null: still wanted), by its kind's rule. `live` needs kind, principal, anchor
    and the columns the rules read (trigger_id, first_event_at)."""
    reasons = pl.Series("exit_reason", [None] * live.height, dtype=pl.String)
    indexed = live.with_row_index("_row")
    for kind, rule in RULES.items():
        subset = indexed.filter(pl.col("kind") == kind)
        if subset.height == 0:
            continue
        found = rule.exit_reason(subset, context_for(rule))
        reasons = reasons.scatter(subset["_row"], found)
    return reasons


def exit_reasons_now(
    rows: pl.DataFrame, *, state: pl.DataFrame, catalog: pl.DataFrame, now: datetime
) -> pl.Series:
    """Each decided row's exit reason against the state now (null: still wanted), as rules define it.

    The check right before an email goes out: an order, an emptied cart or a sold-out product since
    the decision withdraws it. `rows` need trigger_id, kind, principal, anchor and first_event_at.
    """

    def context_for(rule: Rule) -> RuleContext:
        empty = pl.DataFrame()
        return RuleContext(state, now, rule.default_delay, catalog, empty, empty)

    return exits(rows, context_for)


def exit_waits() -> pl.Expr:
    """Whether a row's `exit_reason` is one its rule decides only when due (`Rule.exits_when_due`)."""
    pairs = [f"{kind}\x1f{reason}" for kind, rule in RULES.items() for reason in rule.exits_when_due]
    keyed = pl.concat_str([pl.col("kind"), pl.col("exit_reason")], separator="\x1f")
    return keyed.is_in(pairs).fill_null(False)


def renewing_kinds() -> list[str]:
    return [kind for kind, rule in RULES.items() if rule.renews]


def renewed(candidates: pl.DataFrame, exited: pl.Series, context_for: ContextFor) -> pl.DataFrame:
    """`candidates` (CANDIDATE_SCHEMA) with each one of a renewing rule whose instance exited (its id is in
    `exited`) and that the rule wants again now (no exit reason: the cart has items and no order since
    its last change) under the id of the instance that follows, and of the one after that while that
    exited too. A candidate its rule still withdraws keeps its id (decided: it proposes nothing)."""
    hit = pl.col("kind").is_in(renewing_kinds()) & pl.col("trigger_id").is_in(exited.implode())
    indexed = candidates.with_row_index("_row")
    subset = indexed.filter(hit)
    if subset.height == 0:
        return candidates
    wanted = subset.filter(exits(subset.drop("_row"), context_for).is_null())
    ids = candidates["trigger_id"]
    for kind in wanted["kind"].unique(maintain_order=True):
        rows = wanted.filter(pl.col("kind") == kind)
        current = rows["trigger_id"]
        while (again := current.is_in(exited.implode())).any():
            current = renewal_ids(kind, current).zip_with(again, current)
        ids = ids.scatter(rows["_row"], current)
    return candidates.with_columns(ids.alias("trigger_id"))


def looked_up(
    candidates: pl.DataFrame, decided_of: Lookup, exited_of: Lookup, context_for: ContextFor
) -> tuple[pl.Series, pl.Series]:
    """(decided, exited): the trigger ids of `candidates` and of the instances that follow exited ones
    (`renewed`) that have a terminal decision, and those of renewing rules whose decision is `exited`.
    One lookup of the candidates' ids; another only for the followers a refill names."""
    decided, exited = _ids([]), _ids([])
    asked, proposed = _ids([]), candidates
    while (new := _new_ids(proposed, asked)).len():
        asked = asked.append(new)
        found = decided_of(new)
        renewing = pl.col("kind").is_in(renewing_kinds()) & pl.col("trigger_id").is_in(found.implode())
        ids = proposed.filter(renewing)["trigger_id"].unique()
        decided = decided.append(found.rename("trigger_id"))
        exited = exited.append(exited_of(ids).rename("trigger_id") if ids.len() else _ids([]))
        proposed = renewed(candidates, exited, context_for)
    return decided, exited


def _new_ids(proposed: pl.DataFrame, asked: pl.Series) -> pl.Series:
    ids = proposed["trigger_id"].unique()
    return ids.filter(~ids.is_in(asked.implode()))


def _ids(values: list[str]) -> pl.Series:
    return pl.Series("trigger_id", values, dtype=pl.String)

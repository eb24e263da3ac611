"""The rules' exits: why a candidate is withdrawn, which exits wait for its due time, and the instance that
follows a decided one when the rule wants its anchor again.

An abandoned cart that is emptied does not exit at once: it exits when due if it is still empty, so a
refill before then keeps its one instance (and restarts the timer). A cart filled again after its instance
has exited gets a new instance, whose trigger id is derived from the decided one's (`renewal_ids`): every
instance still gets exactly one terminal decision, and the live store, a rebuilt one and a replay derive
the same ids from the same log. So does a cart that changes after a decision that sent nothing and was
about the shopper then, not the cart (`no_address`, `no_consent`, `cooldown`, `capped`, `suppressed`,
`expired`): a guest who logs in and adds to the cart, a shopper past the cooldown. `send` and `holdout`
are the anchor's one instance for good (the spec's "one instance per cart_id": one email per cart, and
the holdout stands for that email, so the arms stay comparable).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from transforms.schema import TERMINAL_DECISIONS, TRIGGERS_SCHEMA
from transforms.triggers.rules import RULES, Rule, RuleContext
from transforms.triggers.rules.base import renewal_ids

ContextFor = Callable[[Rule], RuleContext]
Lookup = Callable[[pl.Series], pl.Series]  # of these trigger ids, those the decision log says it of
# The decisions that end an anchor's instances for good: an email went out (or, held out, would have).
ONCE_PER_ANCHOR = ("send", "holdout")
RENEWABLE = tuple(d for d in TERMINAL_DECISIONS if d not in ONCE_PER_ANCHOR)
RENEWABLE_SCHEMA: dict[str, pl.DataType] = {
    c: TRIGGERS_SCHEMA[c] for c in ("trigger_id", "decision", "decided_at")
}
# Of these trigger ids, those whose (first) terminal decision is RENEWABLE: one row each, RENEWABLE_SCHEMA.
Renewable = Callable[[pl.Series], pl.DataFrame]


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


def no_renewable() -> pl.DataFrame:
    return pl.DataFrame(schema=RENEWABLE_SCHEMA)


def renewable_rows(terminal: pl.DataFrame) -> pl.DataFrame:
    """Of log rows with a terminal decision (trigger_id, decision, decided_at, evaluation), each id's first
    one (as the store's `decided_triggers` keeps it) when RENEWABLE: RENEWABLE_SCHEMA."""
    first = terminal.sort("evaluation", "decided_at", "decision").unique("trigger_id", keep="first")
    return first.filter(pl.col("decision").is_in(RENEWABLE)).select(list(RENEWABLE_SCHEMA)).sort("trigger_id")


def renewed(candidates: pl.DataFrame, renewable: pl.DataFrame, context_for: ContextFor) -> pl.DataFrame:
    """`candidates` (CANDIDATE_SCHEMA) with each one of a renewing rule whose instance was decided without an
    email (its id is in `renewable`, RENEWABLE_SCHEMA) and that the rule wants again now (no exit reason:
    the cart has items, is the shopper's and has no order since its last change), if it `follows` that
    decision, under the id of the instance that follows, and of the one after that while that was decided
    too. A candidate its rule still withdraws, or that does not follow, keeps its id (decided: it proposes
    nothing)."""
    known = renewable["trigger_id"].implode()
    hit = pl.col("kind").is_in(renewing_kinds()) & pl.col("trigger_id").is_in(known)
    indexed = candidates.with_row_index("_row")
    subset = indexed.filter(hit)
    if subset.height == 0:
        return candidates
    wanted = subset.filter(exits(subset.drop("_row"), context_for).is_null())
    ids = candidates["trigger_id"]
    for kind in wanted["kind"].unique(maintain_order=True):
        rows = wanted.filter(pl.col("kind") == kind)
        current = rows["trigger_id"]
        while (again := follows(current, rows["due_at"], renewable)).any():
            current = renewal_ids(kind, current).zip_with(again, current)
        ids = ids.scatter(rows["_row"], current)
    return candidates.with_columns(ids.alias("trigger_id"))


def follows(ids: pl.Series, due_at: pl.Series, renewable: pl.DataFrame) -> pl.Series:
    """Per id: its decision is in `renewable` and a new instance follows it: after `exited`, as soon as the
    rule wants the anchor again (a refill, a change after the order); after a decision about the shopper
    (no address, the cooldown...), once the anchor changed since: the candidate is due after that
    decision (`due_at` > `decided_at`; the decided instance was due at or before it)."""
    rows = pl.DataFrame({"trigger_id": ids, "due_at": due_at}).with_row_index("_row")
    once = renewable.sort("decided_at", "decision").unique("trigger_id", keep="first")
    joined = rows.join(once, on="trigger_id", how="left").sort("_row")
    changed = (pl.col("decision") == "exited") | (pl.col("due_at") > pl.col("decided_at"))
    return joined.select(changed.fill_null(False).alias("follows"))["follows"]


def looked_up(
    candidates: pl.DataFrame, decided_of: Lookup, renewable_of: Renewable, context_for: ContextFor
) -> tuple[pl.Series, pl.DataFrame]:
    """(decided, renewable): the trigger ids of `candidates` and of the instances that follow decided ones
    (`renewed`) that have a terminal decision, and the rows (RENEWABLE_SCHEMA) of those of renewing rules
    whose decision is RENEWABLE. One lookup of the candidates' ids; another only for the followers a
    change names."""
    decided, renewable = _ids([]), no_renewable()
    asked, proposed = _ids([]), candidates
    while (new := _new_ids(proposed, asked)).len():
        asked = asked.append(new)
        found = decided_of(new)
        renewing = pl.col("kind").is_in(renewing_kinds()) & pl.col("trigger_id").is_in(found.implode())
        ids = proposed.filter(renewing)["trigger_id"].unique()
        decided = decided.append(found.rename("trigger_id"))
        if ids.len():
            renewable = pl.concat([renewable, renewable_of(ids).select(list(RENEWABLE_SCHEMA))])
        proposed = renewed(candidates, renewable, context_for)
    return decided, renewable


def _new_ids(proposed: pl.DataFrame, asked: pl.Series) -> pl.Series:
    ids = proposed["trigger_id"].unique()
    return ids.filter(~ids.is_in(asked.implode()))


def _ids(values: list[str]) -> pl.Series:
    return pl.Series("trigger_id", values, dtype=pl.String)

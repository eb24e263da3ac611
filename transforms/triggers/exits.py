"""The rules' exits: why a candidate is withdrawn, which exits wait for its due time, and the instance that
follows a decided one when the rule wants its anchor again.

An abandoned cart that is emptied does not exit at once: it exits when due if it is still empty, so a
refill before then keeps its one instance (and restarts the timer). A cart filled again after its instance
has exited gets a new instance, whose trigger id is derived from the decided one's (`renewal_ids`): every
instance still gets exactly one terminal decision, and the live store, a rebuilt one and a replay derive
the same ids from the same log. So does a cart that changes after a decision that sent nothing and was
about the shopper then, not the cart (`no_address`, `no_consent`, `cooldown`, `capped`, `suppressed`,
`expired`): a guest who logs in and adds to the cart, a shopper past the cooldown. `send` and `holdout`
are the anchor's one instance (the spec's "one instance per cart_id": one email per cart, and the
holdout stands for that email, so the arms stay comparable) until an order empties it: what is put in
a cart after its order is a new cart (`Rule.refilled`: a cart id the shop keeps, the implicit cart).

A rule whose trigger ids name the shopper (the implicit cart's, the welcome's) gives an anonymous
shopper's candidate, or a renamed user's under the old id (an `alias`), another id than the identified
shopper's. The identified shopper's then follows the earlier one's instance as the next instance of one
id would (`withheld`): a login alone after the anonymous cart was decided `no_address` starts nothing; a
change after that decision does; a renamed user welcomed under the old id is not welcomed again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl

from transforms.schema import TERMINAL_DECISIONS, TRIGGERS_SCHEMA, UTC_TS
from transforms.triggers.rules import RULES, Rule, RuleContext
from transforms.triggers.rules.base import Derived, renewal_ids

ContextFor = Callable[[Rule], RuleContext]
Lookup = Callable[[pl.Series], pl.Series]  # of these trigger ids, those the decision log says it of
# The decisions that end an anchor's instances until it is emptied and filled again (`Rule.refilled`): an
# email went out (or, held out, would have).
ONCE_PER_ANCHOR = ("send", "holdout")
RENEWABLE = tuple(d for d in TERMINAL_DECISIONS if d not in ONCE_PER_ANCHOR)
RENEWABLE_SCHEMA: dict[str, pl.DataType] = {
    c: TRIGGERS_SCHEMA[c] for c in ("trigger_id", "decision", "decided_at")
}
# Of these trigger ids, those with a terminal decision: one row each (the first), RENEWABLE_SCHEMA.
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

    derived: Derived = {}  # what the rules derive from `state` alike, once for all of them

    def context_for(rule: Rule) -> RuleContext:
        empty = pl.DataFrame()
        return RuleContext(state, now, rule.default_delay, catalog, empty, empty, derived=derived)

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
    one (as the store's `decided_triggers` keeps it): RENEWABLE_SCHEMA."""
    first = terminal.sort("evaluation", "decided_at", "decision").unique("trigger_id", keep="first")
    return first.select(list(RENEWABLE_SCHEMA)).sort("trigger_id")


def renewed(candidates: pl.DataFrame, renewable: pl.DataFrame, context_for: ContextFor) -> pl.DataFrame:
    """`candidates` (CANDIDATE_SCHEMA) with each one of a renewing rule whose instance was decided (its id
    is in `renewable`, RENEWABLE_SCHEMA) and that the rule wants again now (no exit reason: the cart has
    items, is the shopper's and has no order since its last change), if it `follows` that decision, under
    the id of the instance that follows, and of the one after that while that was decided too. A
    candidate its rule still withdraws, or that does not follow, keeps its id (decided: it proposes
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
        rule, rows = RULES[kind], wanted.filter(pl.col("kind") == kind)
        context = context_for(rule)
        refilled = rule.refilled(rows.drop("_row"), context) if rule.refilled else None
        current = rows["trigger_id"]
        while (again := follows(current, rows["due_at"], renewable, refilled, context.delay)).any():
            current = renewal_ids(kind, current).zip_with(again, current)
        ids = ids.scatter(rows["_row"], current)
    return candidates.with_columns(ids.alias("trigger_id"))


def follows(
    ids: pl.Series,
    due_at: pl.Series,
    renewable: pl.DataFrame,
    refilled_at: pl.Series | None = None,
    delay: timedelta = timedelta(0),
) -> pl.Series:
    """Per id: its decision is in `renewable` and a new instance follows it: after `exited`, as soon as the
    rule wants the anchor again (a refill, a change after the order); after a decision about the shopper
    (no address, the cooldown...), once the anchor changed since: the candidate is due after that
    decision (`due_at` > `decided_at`; the decided instance was due at or before it); after any decision,
    `send` and `holdout` too, once the anchor was emptied after what that instance was about and filled
    again: `refilled_at` (`Rule.refilled`) later than `decided_at - delay`, a bound on that instance's
    last change (it was due `delay` after it, and decided at or after its due time)."""
    refilled = refilled_at if refilled_at is not None else pl.Series([None] * ids.len(), dtype=UTC_TS)
    rows = pl.DataFrame({"trigger_id": ids, "due_at": due_at, "_refilled": refilled}).with_row_index("_row")
    once = renewable.sort("decided_at", "decision").unique("trigger_id", keep="first")
    joined = rows.join(once, on="trigger_id", how="left").sort("_row")
    about_shopper = pl.col("decision").is_in(RENEWABLE) & (pl.col("due_at") > pl.col("decided_at"))
    emptied = pl.col("_refilled") > pl.col("decided_at") - pl.lit(delay)
    changed = (pl.col("decision") == "exited") | about_shopper | emptied
    return joined.select(changed.fill_null(False).alias("follows"))["follows"]


def twins_of(candidates: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """Every rule's `Rule.twins` of `candidates` (CANDIDATE_SCHEMA): the ids the identified shoppers'
    candidates had while they were anonymous (`links`: identities rows)."""
    frames = [
        rule.twins(candidates.filter(pl.col("kind") == kind), links)
        for kind, rule in RULES.items()
        if rule.twins is not None
    ]
    return pl.concat(frames) if frames else candidates.clear()


def instances(
    candidates: pl.DataFrame,
    renewable: pl.DataFrame,
    decided: pl.Series,
    pending: pl.Series,
    links: pl.DataFrame,
    context_for: ContextFor,
) -> pl.DataFrame:
    """`candidates` under the ids of their instances now (`renewed`), less the new ones (not `pending`)
    that wait on the shopper's decided instance from before an identify (`withheld`)."""
    twins = twins_of(candidates, links)
    proposed = renewed(candidates, renewable, context_for)
    waits = withheld(proposed, twins, renewable, decided, context_for)
    return proposed.filter(~(waits & ~proposed["trigger_id"].is_in(pending.implode())))


def withheld(
    proposed: pl.DataFrame,
    twins: pl.DataFrame,
    renewable: pl.DataFrame,
    decided: pl.Series,
    context_for: ContextFor,
) -> pl.Series:
    """Per row of `proposed`, whether it waits on an anonymous twin (`twins_of`: same kind, shopper and
    anchor): the instance the shopper had before the identify was decided, and none follows it
    (`renewed`: a changed cart is followed, a login alone is not)."""
    if twins.height == 0:
        return pl.Series("withheld", [False] * proposed.height, dtype=pl.Boolean)
    ended = renewed(twins, renewable, context_for).filter(pl.col("trigger_id").is_in(decided.implode()))
    keys = ended.select("kind", "principal", "anchor").unique().with_columns(pl.lit(True).alias("withheld"))
    on = ["kind", "principal", "anchor"]  # a welcome has no anchor: null matches null
    joined = proposed.join(keys, on=on, how="left", maintain_order="left", nulls_equal=True)
    return joined["withheld"].fill_null(False)


def looked_up(
    candidates: pl.DataFrame,
    links: pl.DataFrame,
    decided_of: Lookup,
    renewable_of: Renewable,
    context_for: ContextFor,
) -> tuple[pl.Series, pl.DataFrame]:
    """(decided, renewable): the trigger ids of `candidates`, of their anonymous twins (`twins_of`, by the
    shoppers' `links`) and of the instances that follow decided ones (`renewed`) that have a terminal
    decision, and the rows (RENEWABLE_SCHEMA: the decision) of those of renewing rules. One lookup of the
    candidates' ids; another only for the followers a change names."""
    candidates = pl.concat([candidates, twins_of(candidates, links)])
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

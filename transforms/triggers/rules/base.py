"""What a trigger rule is: data (kind, delay, priority) plus two pure Polars functions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from transforms.schema import CUSTOMERS_SCHEMA, PROFILES_SCHEMA, UTC_TS

# A candidate: one possible email, keyed by a deterministic trigger_id.
CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "trigger_id": pl.String(),
    "kind": pl.String(),
    "principal": pl.String(),  # a user id, or `anon:<anonymous_id>` until an identify links it
    "anchor": pl.String(),
    "due_at": UTC_TS,
    "first_event_at": UTC_TS,
    "detail": pl.String(),  # rule-specific facts as JSON (e.g. the old price of a price drop)
}


# A name -> the state a frame was derived from, and the frame (`RuleContext.once`).
Derived = dict[str, tuple[pl.DataFrame, pl.DataFrame]]

# Earlier `send` decisions, as the engine keeps them (World.history): who got which kind about what, when.
SENT_HISTORY: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "kind": pl.String(),
    "anchor": pl.String(),
    "decided_at": UTC_TS,
}

RENEWED = "renewed"  # the part that derives a follower's trigger id from the decided one's


@dataclass(frozen=True)
class RuleContext:
    """What rules see: merged profile state (PARTIAL_SCHEMA, one row per principal) and the time."""

    state: pl.DataFrame
    now: datetime
    delay: timedelta
    catalog: pl.DataFrame
    catalog_changes: pl.DataFrame
    catalog_viewers: pl.DataFrame  # principal, product_id, last_ts: who viewed or carted changed products
    # The users' profile rows (PROFILES_SCHEMA: consent as it stands) and CRM rows (CUSTOMERS_SCHEMA).
    profiles: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PROFILES_SCHEMA))
    customers: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CUSTOMERS_SCHEMA))
    # The users' earlier sends (SENT_HISTORY, within stores.triggers.HISTORY): browse re-entry counts on them.
    history: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SENT_HISTORY))
    # What rules derive from `state` alike (`once`), shared by the contexts of one evaluation.
    derived: Derived = field(default_factory=dict, compare=False, repr=False)

    def once(self, name: str, derive: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
        """`derive(state)`, computed once for the contexts sharing `derived` and this very `state` (the
        cart rules read the carts' state four times an evaluation: a quarter of the engine's time, #17)."""
        kept = self.derived.get(name)
        if kept is None or kept[0] is not self.state:
            kept = (self.state, derive(self.state))
            self.derived[name] = kept
        return kept[1]


@dataclass(frozen=True)
class Rule:
    """A trigger kind: `candidates` proposes, `exit_reason` withdraws (null = still wanted)."""

    kind: str
    default_delay: timedelta
    priority: int  # lower goes first when the frequency cap allows only one email
    candidates: Callable[[RuleContext], pl.DataFrame]
    exit_reason: Callable[[pl.DataFrame, RuleContext], pl.Series]
    cooldown: timedelta | None = None  # no second send of this kind to the user within it
    cooldown_by_anchor: bool = False  # the cooldown counts per (user, anchor), e.g. per product
    max_lateness: timedelta = timedelta(hours=24)  # after due_at + this, the candidate expires
    # Exit reasons that wait for due_at: the candidate stays held and exits when due only if the reason
    # still holds then (an emptied cart filled again before it is due keeps its one instance).
    exits_when_due: tuple[str, ...] = ()
    # An instance decided without an email is followed by a new one (a new trigger id) once the rule wants
    # its anchor again (`transforms.triggers.exits.renewed`): a cart filled again after its instance exited
    # `cart_emptied`, a guest's cart decided `no_address` and changed after login, get their email.
    renews: bool = False
    # Per candidate of a renewing rule, when its anchor was last emptied (a cart by an order) before the
    # change it is due from (null: never): a fill after that is a new instance whatever the decision
    # before, `send` included (`transforms.triggers.exits.follows`).
    refilled: Callable[[pl.DataFrame, RuleContext], pl.Series] | None = None
    # Of candidates whose trigger id names the shopper, each under the id it had before an identify
    # linked the shopper's anonymous id, or an alias renamed the user (`links`: identities rows): the
    # instance the identified shopper's follows (`transforms.triggers.exits.withheld`).
    twins: Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame] | None = None
    marketing: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)


def trigger_id(kind: str, *parts: str) -> str:
    """A deterministic id: the same candidate always gets the same id, in any run."""
    return "t-" + hashlib.sha256("\x1f".join((kind, *parts)).encode()).hexdigest()[:24]


def trigger_ids(kind: str, *columns: pl.Series) -> pl.Series:
    """`trigger_id(kind, *row)` per row of `columns` (each value as `str` gives it: a null is `None`)."""
    if all(c.dtype == pl.String for c in columns):  # the parts joined by Polars: 2x faster (#17)
        parts = [pl.lit(kind), *[c.fill_null("None") for c in columns]]
        joined = pl.select(pl.concat_str(parts, separator="\x1f")).to_series()
        digests = ["t-" + hashlib.sha256(text.encode()).hexdigest()[:24] for text in joined]
        return pl.Series("trigger_id", digests, pl.String)
    return pl.Series(
        "trigger_id",
        [trigger_id(kind, *map(str, values)) for values in zip(*columns, strict=True)],
        pl.String,
    )


def renewal_ids(kind: str, exited: pl.Series) -> pl.Series:
    """The trigger id of the instance that follows each decided one: derived from its id alone, so every
    run (live, rebuilt, replayed) names the same follower."""
    return trigger_ids(kind, exited, pl.Series([RENEWED] * exited.len(), dtype=pl.String))


def empty_candidates() -> pl.DataFrame:
    return pl.DataFrame(schema=CANDIDATE_SCHEMA)


def finish(frame: pl.DataFrame, kind: str, id_columns: list[str]) -> pl.DataFrame:
    """Candidate rows of `kind` with their trigger ids, in CANDIDATE_SCHEMA."""
    if frame.height == 0:
        return empty_candidates()
    ids = trigger_ids(kind, *[frame[c] for c in id_columns])
    out = frame.with_columns(ids, pl.lit(kind).alias("kind"))
    if "detail" not in out.columns:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("detail"))
    return out.select([pl.col(c).cast(t) for c, t in CANDIDATE_SCHEMA.items()])


def exploded(state: pl.DataFrame, column: str) -> pl.DataFrame:
    """One row per element of a list column of the state, with its principal."""
    return state.select("principal", column).explode(column).drop_nulls(column).unnest(column)


def no_exit(candidates: pl.DataFrame, context: RuleContext) -> pl.Series:
    return pl.Series("exit_reason", [None] * candidates.height, dtype=pl.String)

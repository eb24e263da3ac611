"""The trigger engine: candidates from profile state, then one decision each, with its reason.

`evaluate` is pure: everything it needs is passed in, so the golden stories, the property test and
the `triggers` asset run the same code. A candidate stays pending (`held`, `quiet_hours_deferred`)
until its due time, then gets exactly one terminal decision; its log rows carry the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

import polars as pl

from transforms.principals import anonymous, principal_user, user_principal
from transforms.schema import CUSTOMERS_SCHEMA, PENDING_DECISIONS, TRIGGERS_SCHEMA, UTC_TS, batch_column
from transforms.triggers.exits import Lookup, Renewable, exit_waits, exits, instances, looked_up, no_renewable
from transforms.triggers.policies import Policy, capped, in_holdout, quiet_until, resumed_due, variants
from transforms.triggers.renamed import arm_ids, claims_of, renamed_history
from transforms.triggers.rules import RULES, Rule, RuleContext
from transforms.triggers.rules.base import CANDIDATE_SCHEMA, Derived

QUIET = "quiet hours in the user's time zone"
GUEST = "identified anonymously (an email, no user id): only users are mailed"  # the log, outbox, erasure
# An address as the send stage takes one (sends/content.py: `@`): `email: ""` was decided `send` (review).
HAS_ADDRESS = pl.col("email").str.contains("@", literal=True).fill_null(False)


@dataclass(frozen=True)
class World:
    """What the engine sees at one evaluation (I/O has already read it for the users involved)."""

    now: datetime
    state: pl.DataFrame  # merged, identity-resolved partial state (PARTIAL_SCHEMA) of the users involved
    profiles: pl.DataFrame  # PROFILES_SCHEMA rows of the same users
    pending: pl.DataFrame  # TRIGGERS_SCHEMA: the latest row of each candidate not decided yet
    decided: pl.Series  # trigger ids that already have a terminal decision (among those proposed)
    history: pl.DataFrame  # earlier `send` decisions: user_id, kind, anchor, decided_at
    suppressed: frozenset[str]  # user ids whose user key or address is in `suppressions`
    catalog: pl.DataFrame
    catalog_changes: pl.DataFrame
    catalog_viewers: pl.DataFrame
    links: pl.DataFrame  # identities rows (IDENTITIES_SCHEMA): where the principals involved end
    customers: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CUSTOMERS_SCHEMA))  # theirs
    delays: dict[str, timedelta] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    lake_version: int = 0
    batch_id: int = 0
    evaluation: int = 0
    candidates: pl.DataFrame | None = None  # every rule's, before `decided` (`with_decided`: rules run once)
    # Of `decided`, those of renewing rules (`Rule.renews`) with their decision (exits.RENEWABLE_SCHEMA:
    # trigger_id, decision, decided_at): such an instance is followed by a new one once its rule wants the
    # anchor again and it changed since (a refilled cart, a guest's after login; `exits.follows`).
    renewable: pl.DataFrame = field(default_factory=no_renewable)
    derived: Derived = field(default_factory=dict, compare=False, repr=False)  # `RuleContext.once`


def delay_for(rule: Rule, delays: dict[str, timedelta]) -> timedelta:
    return delays.get(rule.kind, rule.default_delay)


def propose(world: World) -> pl.DataFrame:
    """Every rule's candidates from the state, minus those already decided (CANDIDATE_SCHEMA); one decided
    and wanted again is proposed as the instance that follows it (`exits.renewed`); a new one that waits on
    the shopper's instance from before an identify is not (`exits.withheld`)."""
    proposed = world.candidates if world.candidates is not None else all_candidates(world)
    ids = (world.renewable, world.decided, world.pending["trigger_id"])
    proposed = instances(proposed, *ids, world.links, partial(_context, world))
    return _one_per_id(proposed.filter(~pl.col("trigger_id").is_in(world.decided.implode())))


def all_candidates(world: World) -> pl.DataFrame:
    """Every rule's candidates from the state (CANDIDATE_SCHEMA), decided or not, twins not merged."""
    frames = [rule.candidates(_context(world, rule)) for rule in RULES.values()]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)


def with_decided(world: World, decided_of: Lookup, renewable_of: Renewable) -> World:
    """`world` with `decided` looked up (`decided_of`: the decided ones among proposed trigger ids) and
    `renewable` (`renewable_of`: their decisions), the ids of instances that follow decided ones and of
    the shoppers' instances from before an identify included (`exits.looked_up`, `exits.twins_of`); its
    candidates kept, so that `propose` does not run the rules again."""
    candidates = all_candidates(world)
    context_for = partial(_context, world)
    decided, renewable = looked_up(candidates, world.links, decided_of, renewable_of, context_for)
    return replace(world, decided=decided, renewable=renewable, candidates=candidates)


def _one_per_id(proposed: pl.DataFrame) -> pl.DataFrame:
    """One candidate per trigger id. Named cart, checkout and order ids are keyed by the anchor alone, so
    shoppers sharing a cart id (one device, two accounts) propose the same id: it names one email and
    gets one decision: an identified shopper's before an anonymous one's, then the one changed last
    (then by principal). The rows keep their order."""
    indexed = proposed.with_row_index("_row")
    order = [anonymous(pl.col("principal")), pl.col("first_event_at"), pl.col("principal"), pl.col("_row")]
    latest = indexed.sort(order, descending=[False, True, False, False], nulls_last=True)
    latest = latest.unique("trigger_id", keep="first")
    return indexed.filter(pl.col("_row").is_in(latest["_row"].implode())).drop("_row")


def _context(world: World, rule: Rule) -> RuleContext:
    return RuleContext(
        state=world.state,
        now=world.now,
        delay=delay_for(rule, world.delays),
        catalog=world.catalog,
        catalog_changes=world.catalog_changes,
        catalog_viewers=world.catalog_viewers,
        profiles=world.profiles,
        customers=world.customers,
        history=_sent(world),
        derived=world.derived,
    )


def live_candidates(world: World, proposed: pl.DataFrame) -> pl.DataFrame:
    """Pending candidates updated by fresh proposals (a fresh proposal knows the latest due time), marked
    `_fresh` (proposed now) or not (only pending)."""
    lateness = pl.col("kind").replace_strict(_lateness(), return_dtype=pl.Duration("us"))
    before = world.pending.select(
        "trigger_id", pl.col("decision").alias("previous"), pl.col("due_at").alias("previous_due")
    )
    fresh = proposed.with_columns(
        (pl.col("due_at") + lateness).alias("expires_at"), pl.lit(True).alias("_fresh")
    ).join(before, on="trigger_id", how="left")
    untouched = (
        world.pending.join(proposed.select("trigger_id"), on="trigger_id", how="anti")
        .select(*CANDIDATE_SCHEMA, "expires_at", pl.lit(False).alias("_fresh"))
        .join(before, on="trigger_id", how="left")
    )
    return pl.concat([fresh, untouched.select(fresh.columns)])


def _lateness() -> dict[str, timedelta]:
    return {kind: rule.max_lateness for kind, rule in RULES.items()}


def _sent(world: World) -> pl.DataFrame:
    """The earlier sends, under the user ids they go by now (`renamed.renamed_history`)."""
    return renamed_history(world.derived, world.history, world.links)


def _resolve_users(world: World, live: pl.DataFrame) -> pl.DataFrame:
    resolved = live.join(claims_of(world.derived, world.links), on="principal", how="left").with_columns(
        pl.coalesce("_to", "principal").alias("principal")
    )
    resolved = resolved.drop("_to").with_columns(principal_user(pl.col("principal")).alias("user_id"))
    return resolved.with_columns(arm_ids(world.derived, world.links, resolved["user_id"]).alias("_arm"))


def _exit_reasons(world: World, live: pl.DataFrame) -> pl.Series:
    return exits(live, lambda rule: _context(world, rule))


def evaluate(world: World) -> pl.DataFrame:
    """Log rows (TRIGGERS_SCHEMA) for every candidate whose decision or due time changes now."""
    live = _resolve_users(world, live_candidates(world, propose(world)))
    if live.height == 0:
        return pl.DataFrame(schema=TRIGGERS_SCHEMA)
    live = live.with_columns(_exit_reasons(world, live))
    live = live.with_columns(_merge_twins(live))
    live = live.with_columns(exit_waits().alias("_exit_waits"))
    facts = world.profiles.select("user_id", "email", "marketing_consent", "timezone")
    guests = world.state.select("principal", pl.col("identified_at").is_not_null().alias("_identified"))
    live = live.join(facts, on="user_id", how="left").join(guests, on="principal", how="left")
    live = live.with_columns(
        pl.col("user_id").is_in(list(world.suppressed)).alias("_suppressed"),
        in_holdout(live["_arm"], world.policy.holdout_rate).alias("_holdout"),  # a rename keeps her arm
        _cooldown(world, live).alias("_cooldown"),
        quiet_until(world.now, live["timezone"], world.policy).alias("_quiet_until"),
        pl.col("kind").replace_strict({k: r.priority for k, r in RULES.items()}).alias("priority"),
    )
    decided = _decide(live, world.now)
    return _changes(_apply_cap(decided, world), world)


def _cooldown(world: World, live: pl.DataFrame) -> pl.Series:
    """Whether the user got a `send` of the row's kind within its cooldown (per anchor if the rule says).

    A per-anchor cooldown (browse: re-entry 14 days after the product's last email) counts back from the
    row's due time, the moment its email would go by the shopper's events: views within the 14 days stay
    in it though a late batch or a night's deferral decides them after (PRODUCT.md §4, event time). The
    others count back from now."""
    cooldowns = {kind: rule.cooldown for kind, rule in RULES.items() if rule.cooldown is not None}
    by_anchor = [kind for kind, rule in RULES.items() if rule.cooldown_by_anchor]
    now = pl.lit(world.now, dtype=UTC_TS)
    keyed = pl.col("kind").is_in(by_anchor)
    length = pl.col("kind").replace_strict(cooldowns, default=None, return_dtype=pl.Duration("us"))
    reference = pl.when(keyed).then(pl.min_horizontal("due_at", now)).otherwise(now)
    rows = live.select("kind", "user_id", "anchor", (reference - length).alias("_since")).with_row_index(
        "_row"
    )
    sent = _sent(world).filter(pl.col("kind").is_in(list(cooldowns)))  # user_id, kind, anchor, decided_at
    per_user = rows.join(sent.filter(keyed.not_()).drop("anchor"), on=["kind", "user_id"])
    per_anchor = rows.join(sent.filter(keyed), on=["kind", "user_id", "anchor"])
    hits = pl.concat([f.select("_row", "_since", "decided_at") for f in (per_user, per_anchor)])
    hit_rows = hits.filter(pl.col("decided_at") > pl.col("_since"))["_row"]
    return rows["_row"].is_in(hit_rows.implode()).rename("_cooldown")


def _decide(live: pl.DataFrame, now: datetime) -> pl.DataFrame:
    at = pl.lit(now, dtype=UTC_TS)
    # An exit its rule decides when due (an emptied cart) waits: held until due_at, then decided anew.
    exiting = pl.col("exit_reason").is_not_null() & ~(pl.col("_exit_waits") & (pl.col("due_at") > at))
    rules: list[tuple[pl.Expr, str, pl.Expr]] = [
        (exiting, "exited", pl.col("exit_reason")),
        (pl.col("due_at") > at, "held", pl.lit("waiting until due_at")),  # kept deferred below
        (at > pl.col("expires_at"), "expired", pl.lit("not sendable before expires_at")),
        (pl.col("user_id").is_null() & pl.col("_identified").fill_null(False), "no_address", pl.lit(GUEST)),
        (pl.col("user_id").is_null(), "no_address", pl.lit("anonymous shopper, no user id")),
        (~HAS_ADDRESS, "no_address", pl.lit("no email address known")),
        (pl.col("marketing_consent").fill_null(False).not_(), "no_consent", pl.lit("no marketing consent")),
        (pl.col("_suppressed"), "suppressed", pl.lit("user or address in suppressions")),
        # Quiet hours before the holdout: both arms are assigned at the moment the email would go, so a
        # night-time order exits a holdout candidate as it exits a treated one (found by review: the
        # holdout was assigned at night, the treated arms at 08:00 only if still wanted, biasing uplift).
        (
            pl.col("_quiet_until").is_not_null() & (pl.col("_quiet_until") > pl.col("expires_at")),
            "expired",
            pl.lit("quiet hours last past expires_at"),
        ),
        (
            pl.col("_quiet_until").is_not_null(),
            "quiet_hours_deferred",
            pl.lit("quiet hours in the user's time zone"),
        ),
        (pl.col("_holdout"), "holdout", pl.lit("global holdout group")),
        (pl.col("_cooldown"), "cooldown", pl.lit("sent this kind to the user within its cooldown")),
    ]
    decision: pl.Expr = pl.lit("send")
    reason: pl.Expr = pl.lit("all policies passed")
    for condition, name, why in reversed(rules):
        decision = pl.when(condition).then(pl.lit(name)).otherwise(decision)
        reason = pl.when(condition).then(why).otherwise(reason)
    # An untouched deferred candidate waits for its 08:00 without a new row; a changed one is held anew.
    untouched = (decision == "held") & (pl.col("previous") == "quiet_hours_deferred")
    still_deferred = untouched & (pl.col("due_at") == pl.col("previous_due"))
    deferred_now = decision == "quiet_hours_deferred"
    return live.with_columns(
        pl.when(still_deferred).then(pl.lit("quiet_hours_deferred")).otherwise(decision).alias("decision"),
        pl.when(still_deferred).then(pl.lit(QUIET)).otherwise(reason).alias("reason"),
        pl.when(deferred_now).then(pl.col("_quiet_until")).otherwise(pl.col("due_at")).alias("due_at"),
    )


def _merge_twins(live: pl.DataFrame) -> pl.Series:
    """Exit reasons, with candidates of the same shopper, kind and anchor merged into one.

    Before an identify a candidate is keyed by the anonymous principal; after it, the same email is
    proposed for the user. The user-keyed one stays (the one the state proposes now: the anonymous one
    is only pending, its principal resolved to the user too); the other exits, so one email goes out.
    """
    preference = pl.when(pl.col("principal") == user_principal(pl.col("user_id"))).then(0).otherwise(1)
    order = pl.struct(~pl.col("_fresh"), preference.alias("p"), pl.col("trigger_id")).rank("ordinal")
    twin = pl.col("user_id").is_not_null() & (order.over("kind", "user_id", "anchor") > 1)
    reasons = live.select(
        pl.when(twin).then(pl.lit("merged_into_identified_shopper")).otherwise(pl.col("exit_reason"))
    )
    return reasons.to_series().alias("exit_reason")


def _apply_cap(decided: pl.DataFrame, world: World) -> pl.DataFrame:
    sending = decided.filter(pl.col("decision") == "send")
    if sending.height == 0:
        return decided
    skip = capped(sending, _sent(world), world.now, world.policy)
    ids = sending.filter(skip)["trigger_id"]
    return decided.with_columns(
        pl.when(pl.col("trigger_id").is_in(ids.implode()))
        .then(pl.lit("capped"))
        .otherwise(pl.col("decision"))
        .alias("decision"),
        pl.when(pl.col("trigger_id").is_in(ids.implode()))
        .then(pl.lit("frequency cap reached"))
        .otherwise(pl.col("reason"))
        .alias("reason"),
    )


def _changes(decided: pl.DataFrame, world: World) -> pl.DataFrame:
    """Rows that say something new: a first sighting, a new decision, or a pending row's new due time."""
    unchanged = (
        pl.col("decision").is_in(PENDING_DECISIONS)
        & (pl.col("decision") == pl.col("previous"))
        & (pl.col("due_at") == pl.col("previous_due"))
    )
    out = decided.filter(~unchanged.fill_null(False))
    return (
        out.with_columns(
            variants(out["kind"], out["_arm"], world.policy.variants).alias("variant"),
            resumed_due(world.now).alias("due_at"),  # here, after the cap (it orders by the rule's due)
            pl.lit(world.now, dtype=UTC_TS).alias("decided_at"),
            pl.lit(world.lake_version, dtype=pl.Int64).alias("lake_version"),
            batch_column(world.batch_id),
            pl.lit(world.evaluation, dtype=pl.Int64).alias("evaluation"),
        )
        .select([pl.col(c).cast(t) for c, t in TRIGGERS_SCHEMA.items()])
        .sort("trigger_id")
    )

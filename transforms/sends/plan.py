"""The send stage's plan, pure: for each due outbox row, what this run does with it.

A row is aborted (with a reason), rendered and sent, or left waiting; one that may already have
reached the provider is first looked up there, or, where the provider cannot be asked but dedupes on the
send's idempotency key, an `unknown` one is sent again with that key. The plan reads only the world the
run read once (`SendWorld`) and the run's `now`; the calls themselves and their answers are
`stores.sends_delivery`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import polars as pl

from transforms.sends.catalog import Catalog
from transforms.sends.content import Content, Shop, build_content
from transforms.sends.rows import Attempt, Waits, aborted, after_attempt, trigger_facts
from transforms.triggers.policies import Policy, quiet_until
from transforms.triggers.rules import RULES

INTERRUPTED = Attempt(status="unknown", attempts=0, last_error="interrupted_during_send")
HELD_BY_CIRCUIT = Attempt(status="retrying", attempts=0, last_error="circuit_open", circuit_open=True)
EXPIRED = "expired"  # the decision's email can no longer go: past its rule's max lateness after due_at
QUIET_HOURS = "quiet_hours"  # waiting for the end of the shopper's quiet hours (no attempt made)


@dataclass(frozen=True)
class SendWorld:
    """The facts a run checks its due rows against, read once per run."""

    triggers: Mapping[str, Mapping[str, Any]]  # the `send` decisions, by trigger_id
    profiles: Mapping[str, Mapping[str, Any]]  # by user_id
    aborts: Mapping[str, str]  # trigger_id -> why its email must not go now (exit, suppression, consent)
    catalog: Catalog
    marked: frozenset[str] = frozenset()  # send_ids whose HTTP call may have started (attempt markers)
    bestsellers: Sequence[str] | None = None  # None: not read (only emails that fall back need them)
    policy: Policy = field(default_factory=Policy)  # the engine's: quiet hours, checked again when sending


@dataclass(frozen=True)
class Abort:
    """No email: the row ends `aborted` with `reason` (never person data)."""

    reason: str
    fallbacks: list[dict[str, str]] | None = None  # None: keep the row's


@dataclass(frozen=True)
class Wait:
    """No call in this run: the row reads as `attempt` says and waits (from the run's `now`)."""

    attempt: Attempt


@dataclass(frozen=True)
class Defer:
    """No call in this run and no attempt: the row keeps its attempts and is due again at `until`."""

    until: datetime
    reason: str = QUIET_HOURS


@dataclass(frozen=True)
class Stop:
    """No call, ever again: an `unknown` send (it may have gone) that must not go now is not sent again;
    the row stays `unknown`, `last_error` says why (never person data), and it is due no more."""

    reason: str


@dataclass(frozen=True)
class Render:
    """Render `content` for `to` and send it: the one step that sends an email."""

    content: Content
    kind: str
    variant: str
    to: str
    custom_args: Mapping[str, str]


@dataclass(frozen=True)
class Ask:
    """A call for this row may have reached the provider: ask it first; if it never took the email, `then`."""

    then: Abort | Render | Defer


Step = Abort | Wait | Defer | Stop | Render | Ask


@dataclass(frozen=True)
class Planned:
    """One due row and this run's step for it."""

    row: dict[str, Any]
    step: Step

    @property
    def calls_provider(self) -> bool:
        return isinstance(self.step, Render | Ask)


def abort_reasons(
    decided: pl.DataFrame,
    exits: Sequence[str | None],
    suppressed: frozenset[str],
    profiles: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """trigger_id -> why its email must not go now: suppressed, then no consent, then the rule's exit.

    `decided` holds the `send` decisions (trigger_id, user_id), `exits` their exit reasons now.
    """
    reasons = {t: f"exited: {r}" for t, r in zip(decided["trigger_id"], exits, strict=True) if r is not None}
    for trigger_id, user_id in decided.select("trigger_id", "user_id").iter_rows():
        if user_id in suppressed:
            reasons[trigger_id] = "suppressed"
        elif (profiles.get(user_id) or {}).get("marketing_consent") is False:
            reasons[trigger_id] = "no_consent"
    return reasons


def plan_row(
    row: Mapping[str, Any],
    world: SendWorld,
    *,
    now: datetime,
    shop: Shop,
    staleness: timedelta,
    can_lookup: bool,
    resends: bool = False,
) -> Step | None:
    """This run's step for one due row (None: leave it as it is).

    A row whose call may have reached the provider is asked about first where the provider can say
    (`can_lookup`); else an `unknown` one is sent again where the provider dedupes on its idempotency
    key (`resends`), with the re-check of any send; else it is never sent blindly again."""
    if row["status"] == "unknown" or row["send_id"] in world.marked:
        if can_lookup:
            return Ask(then=_fresh(row, world, now=now, shop=shop, staleness=staleness))
        if resends and row["status"] == "unknown":
            fresh = _fresh(row, world, now=now, shop=shop, staleness=staleness)
            return Stop(fresh.reason) if isinstance(fresh, Abort) else fresh
        # Nobody can say whether it went (an interrupted call becomes `unknown`, resent later if it may).
        return None if row["status"] == "unknown" else Wait(INTERRUPTED)
    return _fresh(row, world, now=now, shop=shop, staleness=staleness)


def plan_sends(
    rows: Iterable[Mapping[str, Any]],
    world: SendWorld,
    *,
    now: datetime,
    shop: Shop,
    staleness: timedelta,
    can_lookup: bool,
    resends: bool = False,
) -> list[Planned]:
    """The plan of every due row, in the rows' order (rows left as they are are left out)."""
    planned = []
    for row in rows:
        step = plan_row(
            row, world, now=now, shop=shop, staleness=staleness, can_lookup=can_lookup, resends=resends
        )
        if step is not None:
            planned.append(Planned(dict(row), step))
    return planned


def wants_bestsellers(planned: Planned) -> bool:
    """Whether the row's email falls back to bestsellers (plan it again once they are read)."""
    step = planned.step.then if isinstance(planned.step, Ask) else planned.step
    return isinstance(step, Render) and step.content.context.get("recommendations_source") == "bestsellers"


def decided_row(planned: Planned, *, now: datetime, waits: Waits) -> dict[str, Any]:
    """The new state of a row whose step needs no call (Abort, Wait, Defer or Stop)."""
    step = planned.step
    if isinstance(step, Abort):
        return aborted(planned.row, step.reason, step.fallbacks)
    if isinstance(step, Wait):
        return after_attempt(planned.row, step.attempt, now=now, waits=waits)
    if isinstance(step, Defer):
        return deferred(planned.row, step)
    if isinstance(step, Stop):
        return {**planned.row, "last_error": f"not sent again: {step.reason}", "next_attempt_at": None}
    raise ValueError(f"a {type(step).__name__} step needs the provider")


def deferred(row: Mapping[str, Any], step: Defer, *, asked: bool = False) -> dict[str, Any]:
    """The row waiting for `step.until`, attempts and status unchanged (but one `asked` about and found
    never taken is `retrying`: its call is over; an `unknown` one to be sent again stays `unknown`)."""
    status = "retrying" if asked and row["status"] == "unknown" else row["status"]
    return {**row, "status": status, "last_error": step.reason, "next_attempt_at": step.until}


def _fresh(
    row: Mapping[str, Any], world: SendWorld, *, now: datetime, shop: Shop, staleness: timedelta
) -> Abort | Render | Defer:
    """Abort, wait or render, as the world stands now (the re-check right before the call)."""
    reason = world.aborts.get(row["trigger_id"])
    if reason is not None:
        return Abort(reason)
    trigger = world.triggers.get(row["trigger_id"])
    if trigger is None:
        return Abort("decision_not_found")
    profile = world.profiles.get(row["user_id"]) or {}
    held = _not_now(row, profile.get("timezone"), world.policy, now)
    if held is not None:
        return held
    content = build_content(
        row["kind"],
        profile=profile,
        trigger=trigger_facts(trigger),
        catalog=world.catalog,
        bestsellers=world.bestsellers or [],
        now=now,
        shop=shop,
        staleness=staleness,
    )
    if content.aborted:
        return Abort(content.aborted, content.fallbacks)
    variant = row["variant"] or "a"
    tracking = {"send_id": row["send_id"], "trigger_id": row["trigger_id"], "kind": row["kind"]}
    return Render(
        content,
        kind=row["kind"],
        variant=variant,
        to=profile.get("email") or "",
        custom_args={**tracking, "variant": variant},
    )


def _not_now(
    row: Mapping[str, Any], timezone: str | None, policy: Policy, now: datetime
) -> Abort | Defer | None:
    """The engine's expiry and quiet hours, checked again when the email would go: a row held by
    retries or an open circuit may come due at night, or a day late (None: it may go now)."""
    rule, due_at = RULES.get(row["kind"]), row.get("due_at")
    expires_at = due_at + rule.max_lateness if rule is not None and due_at is not None else None
    if expires_at is not None and now > expires_at:
        return Abort(EXPIRED)
    until = _quiet_until(now, timezone, policy)
    if until is None:
        return None
    return Abort(EXPIRED) if expires_at is not None and until > expires_at else Defer(until)


@lru_cache(maxsize=1024)
def _quiet_until(now: datetime, timezone: str | None, policy: Policy) -> datetime | None:
    """The end of the shopper's quiet hours when `now` falls in them (once per run and time zone)."""
    end: datetime | None = quiet_until(now, pl.Series([timezone], dtype=pl.String), policy)[0]
    return end

"""Shoppers with a known truth (#19): how emails change what they do, so `lakemail report` can be
checked against what was put in.

Fast mode over a simulated month. Each shopper becomes a candidate of one trigger kind once; the real
policies assign them (the global holdout and the A/B variant by stable hash, `transforms.triggers`),
and the decision log, the outbox and the shoppers' responses are written to the lake as the chain
would: a `send` gets a delivered email, which the shopper opens and clicks with the kind's rates
(and a link scanner opens some of them at once: flagged, not counted); then they order within the
window with the kind's base rate, plus the variant's true effect when they got the email. The effect
acts through the click (a clicker converts more), so the arm's conversion is base + effect exactly.

Why the decision log is modelled rather than produced by running the micro-batches: the engine's
decisions are tested on their own, the comparison needs tens of thousands of candidates per kind for
intervals narrow enough to mean something, and a simulated month of real micro-batches takes many
minutes per thousand shoppers on the 2-core machine. The responses are modelled from the decision
log, as the issue allows (treatment = a `send` decision, control = `holdout`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from resources.lake import LakeResource
from transforms.measure.tables import CLICK_EVENT, ORDER_EVENT
from transforms.principals import of_user
from transforms.schema import EVENTS_SCHEMA, SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.message import send_id_for
from transforms.triggers.policies import Policy, in_holdout, variants
from transforms.triggers.rules.base import trigger_id

START = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class KindTruth:
    """What one trigger kind's email truly does: base conversion without it, the effect per variant."""

    base: float  # P(an order within the window) without the email
    effect: dict[str, float]  # variant -> added probability of an order (absolute: 0.04 = 4 points)
    open_rate: float = 0.45
    click_rate: float = 0.4  # of those who open
    revenue: float = 60.0  # mean revenue of an order


@dataclass(frozen=True)
class Truth:
    """The simulated world: each kind's truth, its candidates, the month, the link scanners' share."""

    kinds: dict[str, KindTruth] = field(
        default_factory=lambda: {
            "abandoned_cart": KindTruth(0.10, {"a": 0.04, "b": 0.05}),
            "browse_abandonment": KindTruth(0.04, {"a": 0.02, "b": 0.02}),
            "welcome": KindTruth(0.06, {"a": 0.0, "b": 0.0}),  # a kind with no true effect
        }
    )
    shoppers_per_kind: int = 20_000
    days: int = 30
    window: timedelta = timedelta(days=5)
    scanned: float = 0.1  # share of emails a link scanner opens within seconds of delivery
    policy: Policy = field(default_factory=Policy)

    def uplift(self, kind: str, variant: str) -> float:
        """The true uplift of `variant` of `kind` against no email (percentage points as a fraction)."""
        return self.kinds[kind].effect[variant]


@dataclass
class _World:
    triggers: list[dict[str, Any]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _event(name: str, at: datetime, number: int, **fields: Any) -> dict[str, Any]:
    times = {"event_ts": at, "received_at": at, "landed_at": at, "ingested_at": at, "event_date": at.date()}
    prefix = "click" if name == CLICK_EVENT else "order"
    return {
        "event_id": f"sim-{prefix}-{number}",
        "event_type": "track",
        "event_name": name,
        **times,
        **fields,
    }


def _click(world: _World, send: dict[str, Any], at: datetime, bot: bool) -> None:
    props: dict[str, Any] = {"send_id": send["send_id"], "kind": send["kind"], "variant": send["variant"]}
    props |= {"bot": True, "bot_reason": "too_soon_after_delivery"} if bot else {"bot": False}
    fields = {"anonymous_id": send["send_id"], "properties": json.dumps(props)}
    world.events.append(_event(CLICK_EVENT, at, len(world.events), **fields))


def _respond(
    world: _World, rng: random.Random, truth: KindTruth, send: dict[str, Any], scanned: bool
) -> bool:
    """The clicks on a delivered email (a scanner's, flagged, and the shopper's); whether they clicked."""
    if scanned:
        _click(world, send, send["sent_at"] + timedelta(seconds=2), bot=True)
    clicked = rng.random() < truth.open_rate and rng.random() < truth.click_rate
    if clicked:
        _click(world, send, send["sent_at"] + timedelta(hours=rng.uniform(0.5, 24)), bot=False)
    return clicked


def _order(world: _World, rng: random.Random, user: str, at: datetime, revenue: float) -> None:
    number = len(world.events)
    amount = round(rng.expovariate(1 / revenue), 2)
    fields = {"user_id": user, "order_id": f"sim-o-{number}", "revenue": amount, "currency": "EUR"}
    world.events.append(_event(ORDER_EVENT, at, number, **fields))


def _candidate(
    world: _World, rng: random.Random, truth: Truth, kind: str, user: str, arm: tuple[bool, str]
) -> None:
    """One shopper's decision, email, clicks and orders."""
    held_out, variant = arm
    facts = truth.kinds[kind]
    decided = START + timedelta(days=rng.uniform(0, truth.days))
    consent = rng.random() >= 0.05  # a few never enter the experiment (no marketing consent)
    decision = "no_consent" if not consent else "holdout" if held_out else "send"
    tid = trigger_id(kind, user, "sim")
    row: dict[str, Any] = {
        "trigger_id": tid,
        "kind": kind,
        "user_id": user,
        "principal": of_user(user),
        "anchor": "sim",
    }
    row |= {"decision": decision, "variant": variant, "decided_at": decided, "due_at": decided}
    world.triggers.append(row)
    if rng.random() < 0.2:  # an order long before: outside every window
        _order(world, rng, user, decided - timedelta(days=rng.uniform(6, 20)), facts.revenue)
    chance, after = facts.base, decided
    if decision == "send":
        sent: dict[str, Any] = {"send_id": send_id_for(tid), "trigger_id": tid, "user_id": user, "kind": kind}
        sent |= {"variant": variant, "status": "sent", "provider": "sandbox", "attempts": 1}
        sent |= {"created_at": decided, "sent_at": decided + timedelta(minutes=1)}
        world.sends.append(sent)
        reach = facts.open_rate * facts.click_rate
        if _respond(world, rng, facts, sent, rng.random() < truth.scanned):
            chance, after = facts.base + facts.effect[variant] / reach, world.events[-1]["event_ts"]
    if rng.random() < chance:
        span = (decided + truth.window - after).total_seconds()
        _order(world, rng, user, after + timedelta(seconds=rng.uniform(60, span * 0.9)), facts.revenue)


def simulate_truth(lake: LakeResource, truth: Truth | None = None, seed: int = 0) -> dict[str, int]:
    """Write a simulated month of decisions, sends, clicks and orders with `truth` into an empty lake."""
    truth = truth or Truth()
    if lake.table("triggers") is not None:
        raise ValueError("simulate_truth writes a lake of its own: this one already has a decision log")
    rng, world = random.Random(seed), _World()
    for k, kind in enumerate(sorted(truth.kinds)):
        users = pl.Series([f"sim-u-{seed}-{k}-{i}" for i in range(truth.shoppers_per_kind)])
        held = in_holdout(users, truth.policy.holdout_rate)
        picked = variants(pl.Series([kind] * len(users)), users, truth.policy.variants)
        for user, arm in zip(users, zip(held, picked, strict=True), strict=True):
            _candidate(world, rng, truth, kind, user, arm)
    lake.write("triggers", pl.DataFrame(world.triggers, schema=TRIGGERS_SCHEMA))
    lake.write("sends", pl.DataFrame(world.sends, schema=SENDS_SCHEMA))
    lake.write("events", pl.DataFrame(world.events, schema=EVENTS_SCHEMA))
    return {"decisions": len(world.triggers), "sends": len(world.sends), "events": len(world.events)}

"""Quiet hours and expiry checked again when a held email finally goes (found by review 23b: a send
held by `retrying` or an open circuit went whenever it came due, 03:00 local or days late)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from stores.sends_delivery import AttemptMarkers, Delivery, SendsReport
from tests.unit.test_delivery import accepted
from tests.unit.test_plan import PROFILE, SHOP, due, sender_for, world
from transforms.sends.plan import EXPIRED, QUIET_HOURS, Abort, Ask, Defer, Planned, Render, decided_row
from transforms.sends.plan import plan_row as plan_one
from transforms.sends.rows import Waits
from transforms.triggers.policies import Policy

DECIDED = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # 20:00 in Paris, before its quiet hours
PARIS_8AM = datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
HELD = {"status": "retrying", "attempts": 10, "last_error": "circuit_open", "due_at": DECIDED}


def plan(now: datetime, policy: Policy | None = None, **fields: object) -> object:
    profile = {**PROFILE, "timezone": "Europe/Paris", "as_of": now}
    facts = world(profiles={"u1": profile}, policy=policy or Policy())
    return plan_one(
        due("t-1", **(HELD | fields)), facts, now=now, shop=SHOP, staleness=timedelta(days=2), can_lookup=True
    )


@pytest.mark.parametrize(
    ("now", "step"),
    [
        (datetime(2026, 11, 20, 19, 59, tzinfo=UTC), Render),  # 20:59 Paris: not yet quiet
        (datetime(2026, 11, 20, 20, 0, tzinfo=UTC), Defer(PARIS_8AM)),  # 21:00 Paris
        (datetime(2026, 11, 21, 2, 0, tzinfo=UTC), Defer(PARIS_8AM)),  # 03:00 Paris
        (PARIS_8AM, Render),  # 08:00 Paris: it goes
        (DECIDED + timedelta(hours=24), Render),  # 20:00 Paris, 24 h after due: still in time
        (DECIDED + timedelta(hours=24, seconds=1), Abort(EXPIRED)),  # past its 24 h
        (datetime(2026, 11, 21, 20, 0, tzinfo=UTC), Abort(EXPIRED)),  # 21:00 Paris: 08:00 is too late
        (datetime(2026, 11, 25, 2, 0, tzinfo=UTC), Abort(EXPIRED)),  # days late
    ],
)
def test_a_held_email_waits_out_quiet_hours_and_expires_after_24_h(now: datetime, step: object) -> None:
    planned = plan(now)
    assert isinstance(planned, Render) if step is Render else planned == step


def test_waiting_for_08_00_is_not_an_attempt() -> None:
    night = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    step = plan(night)
    assert isinstance(step, Defer)
    row = decided_row(Planned(due("t-1", **HELD), step), now=night, waits=Waits())
    assert (row["status"], row["attempts"]) == ("retrying", 10)
    assert (row["last_error"], row["next_attempt_at"]) == (QUIET_HOURS, PARIS_8AM)
    pending = decided_row(Planned(due(due_at=DECIDED), step), now=night, waits=Waits())
    assert (pending["status"], pending["attempts"], pending["next_attempt_at"]) == ("pending", 0, PARIS_8AM)


def test_without_quiet_hours_a_held_email_goes_at_night_but_still_expires() -> None:
    off = Policy(quiet_hours=False)
    assert isinstance(plan(datetime(2026, 11, 21, 2, 0, tzinfo=UTC), off), Render)
    assert plan(datetime(2026, 11, 22, 2, 0, tzinfo=UTC), off) == Abort(EXPIRED)


def test_the_exit_and_suppression_still_come_first() -> None:
    profile = {**PROFILE, "timezone": "Europe/Paris"}
    facts = world(profiles={"u1": profile}, aborts={"t-1": "suppressed"})
    night = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    step = plan_one(
        due("t-1", **HELD), facts, now=night, shop=SHOP, staleness=timedelta(days=2), can_lookup=True
    )
    assert step == Abort("suppressed")


def test_an_unknown_send_never_taken_waits_for_08_00_once_asked_about(tmp_path: Path) -> None:
    night = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    step = plan(night, status="unknown", last_error="ReadTimeout")
    assert step == Ask(then=Defer(PARIS_8AM))
    asked: list[str] = []

    def sandbox(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, json=[]) if request.url.path == "/api/messages" else accepted("m-1")

    with httpx.Client(transport=httpx.MockTransport(sandbox)) as client:
        delivery = Delivery(sender_for(client), AttemptMarkers(tmp_path), night, timedelta(0), SendsReport())
        delivery.run([Planned(due("t-1", **(HELD | {"status": "unknown"})), step)])
    [row] = delivery.changed
    assert asked == ["/api/messages"]  # asked, never sent at night
    assert (row["status"], row["last_error"], row["next_attempt_at"]) == ("retrying", QUIET_HOURS, PARIS_8AM)

"""A provider misbehaving for a whole run (or for hours): every row the run touches keeps a status."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from stores.sends_delivery import AttemptMarkers, Delivery, SendsReport
from tests.unit.test_plan import RUN_NOW, SHOP, due, sender_for, world
from transforms.sends.plan import Planned, plan_sends


def planned(*rows: dict[str, object]) -> list[Planned]:
    return plan_sends(
        list(rows), world(), now=RUN_NOW, shop=SHOP, staleness=timedelta(days=2), can_lookup=True
    )


def test_a_provider_down_for_hours_keeps_the_row_retrying_at_the_cap(tmp_path: Path) -> None:
    """After ~2 h of 5xx the row has 45 attempts: its next run's backoff overflowed (the run raised,
    its marker stayed, the email ended `unknown`)."""
    row = due("t-1", status="retrying", attempts=45, last_error="HTTP 503: down")
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503))) as client:
        delivery = Delivery(
            sender_for(client, sleep=lambda s: None),
            AttemptMarkers(tmp_path),
            RUN_NOW,
            timedelta(0),
            SendsReport(),
        )
        delivery.run(planned(row))
    [after] = delivery.changed
    assert (after["status"], after["attempts"]) == ("retrying", 50)
    assert after["next_attempt_at"] == RUN_NOW + timedelta(minutes=15)


@pytest.mark.parametrize("headers", [{"Retry-After": "999999999999"}, {"X-RateLimit-Reset": "1e15"}])
def test_a_rate_limit_asking_for_ages_holds_the_rows_a_day(tmp_path: Path, headers: dict[str, str]) -> None:
    """The wait no timedelta holds crashed the run (OverflowError) with every called row's marker left."""
    with httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(429, headers=headers))
    ) as client:
        delivery = Delivery(
            sender_for(client), AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport()
        )
        delivery.run(planned(due("t-1"), due("t-2")))
    assert [(r["status"], r["last_error"]) for r in delivery.changed] == [("retrying", "HTTP 429")] * 2
    assert {r["next_attempt_at"] for r in delivery.changed} == {RUN_NOW + timedelta(days=1)}

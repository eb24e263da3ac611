"""The send stage's plan for each due row (pure), and the run's calls that carry it out (HTTP stubbed)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from resources.providers import SandboxProvider
from resources.templates import TemplateRenderer
from stores.sends_delivery import AttemptMarkers, Delivery, Sender, SendsReport
from tests.unit.test_delivery import accepted
from tests.unit.test_sending import NOW, decision
from transforms.schema import CATALOG_SCHEMA
from transforms.sends.catalog import Catalog
from transforms.sends.content import Shop
from transforms.sends.message import ORIGIN_ARG, origin_mark, send_id_for
from transforms.sends.plan import (
    INTERRUPTED,
    Abort,
    Ask,
    Planned,
    Render,
    SendWorld,
    Step,
    Wait,
    abort_reasons,
    decided_row,
    plan_row,
    plan_sends,
    wants_bestsellers,
)
from transforms.sends.rows import Waits

SHOP = Shop("Maison Demo", "https://shop.example", "1 Demo Street", "help@shop.example")


PROFILE = {"user_id": "u1", "email": "u1@example.com", "first_name": "Ada", "as_of": NOW, "top_category": "c"}


def due(trigger_id: str = "t-1", **fields: object) -> dict[str, object]:
    row = {"send_id": send_id_for(trigger_id), "trigger_id": trigger_id, "user_id": "u1", "kind": "welcome"}
    return row | {"variant": "b", "status": "pending", "attempts": 0, "fallbacks": "[]"} | fields


def world(**fields: object) -> SendWorld:
    catalog = pl.DataFrame(
        [{"product_id": "p1", "name": "Mug", "category": "c", "price": 9.5, "currency": "EUR", "stock": 3}],
        schema=CATALOG_SCHEMA,
    )
    facts: dict[str, object] = {
        "triggers": {"t-1": decision("t-1"), "t-2": decision("t-2")},
        "profiles": {"u1": PROFILE},
        "aborts": {},
        "catalog": Catalog.of(catalog),
    }
    return SendWorld(**(facts | fields))  # type: ignore[arg-type]


def plan(row: dict[str, object], facts: SendWorld, can_lookup: bool = True) -> Step | None:
    return plan_row(row, facts, now=NOW, shop=SHOP, staleness=timedelta(days=2), can_lookup=can_lookup)


def test_the_plan_renders_what_may_go_and_aborts_what_may_not() -> None:
    step = plan(due(), world())
    assert isinstance(step, Render) and (step.kind, step.variant) == ("welcome", "b")
    assert step.to == "u1@example.com" and step.content.context["first_name"] == "Ada"
    tracking = {"send_id": send_id_for("t-1"), "trigger_id": "t-1", "kind": "welcome", "variant": "b"}
    assert step.custom_args == tracking
    assert plan(due(), world(aborts={"t-1": "exited: order_completed"})) == Abort("exited: order_completed")
    assert plan(due("t-9"), world()) == Abort("decision_not_found")
    nameless = plan(due(), world(profiles={"u1": {**PROFILE, "email": None}}))
    assert isinstance(nameless, Abort) and nameless.reason == "no_email"


def test_suppression_beats_consent_which_beats_the_rules_exit() -> None:
    decided = pl.DataFrame({"trigger_id": ["t-1", "t-2", "t-3", "t-4"], "user_id": ["u1", "u2", "u3", "u4"]})
    exits = ["order_completed", "order_completed", "cart_emptied", None]
    profiles = {"u2": {"marketing_consent": False}, "u4": {"marketing_consent": True}}
    assert abort_reasons(decided, exits, frozenset({"u1"}), profiles) == {
        "t-1": "suppressed",
        "t-2": "no_consent",
        "t-3": "exited: cart_emptied",
    }


def test_a_row_whose_call_may_have_started_is_asked_about_first_or_never_resent() -> None:
    marked = world(marked=frozenset({send_id_for("t-1")}))
    fresh = plan(due(), world())
    assert isinstance(fresh, Render)
    assert plan(due(), marked) == Ask(then=fresh)
    assert plan(due(status="unknown"), world()) == Ask(then=fresh)
    interrupted = plan(due(), marked, can_lookup=False)
    assert interrupted == Wait(INTERRUPTED)
    row = decided_row(Planned(due(), interrupted), now=NOW, waits=Waits(lookup_after=None))
    assert (row["status"], row["last_error"]) == ("unknown", "interrupted_during_send")
    assert row["next_attempt_at"] is None
    assert plan(due(status="unknown"), world(), can_lookup=False) is None  # left as it is


def test_bestsellers_are_only_wanted_when_an_email_falls_back_to_them() -> None:
    rows = [due(), due("t-2", status="unknown", user_id="u2")]
    planned = plan_sends(rows, world(), now=NOW, shop=SHOP, staleness=timedelta(days=2), can_lookup=False)
    assert [p.row["trigger_id"] for p in planned] == ["t-1"] and not wants_bestsellers(planned[0])
    no_category = world(profiles={"u1": {**PROFILE, "top_category": None}})
    fallback = plan_sends(rows, no_category, now=NOW, shop=SHOP, staleness=timedelta(days=2), can_lookup=True)
    assert [wants_bestsellers(p) for p in fallback] == [True, False]  # u2 has no profile: no email
    step = plan(due(), replace(no_category, bestsellers=("p1",)))
    assert isinstance(step, Render)
    assert [card["name"] for card in step.content.context["recommendations"]] == ["Mug"]


def sender_for(client: httpx.Client, **fields: Any) -> Sender:
    return Sender(
        provider=SandboxProvider(api_key="k", base_url="http://sandbox.test"),
        client=client,
        renderer=TemplateRenderer(),
        shop=SHOP,
        sender="Maison Demo <shop@example.com>",
        unsubscribe_url=lambda token: f"https://shop.example/unsubscribe/{token}",
        unsubscribe_mailto="mailto:unsubscribe@shop.example",
        secret="s",
        staleness=timedelta(days=2),
        **fields,
    )


def planned_rows(*trigger_ids: str) -> list[Planned]:
    rows = [due(t) for t in trigger_ids]
    return plan_sends(rows, world(), now=RUN_NOW, shop=SHOP, staleness=timedelta(days=2), can_lookup=True)


RUN_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # the run's clock; the wall's is elsewhere


def test_a_refused_key_holds_the_rest_of_the_run_for_the_cool_off_from_the_runs_now(tmp_path: Path) -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"errors": [{"message": "bad key"}]})

    markers = AttemptMarkers(tmp_path / "markers")
    interrupted = Planned(due("t-3", status="unknown"), Ask(then=Abort("whatever")))
    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        sender = sender_for(client, waits=Waits(cool_off=timedelta(minutes=5)))
        delivery = Delivery(sender, markers, RUN_NOW, timedelta(0), SendsReport())
        delivery.run([*planned_rows("t-1", "t-2"), interrupted])
    assert len(calls) == 1 and delivery.report.circuit_open  # the probe, then nothing
    assert delivery.report.circuit_note == " (circuit open: the provider refused our credentials)"
    refused, held = sorted(delivery.changed, key=lambda row: row["trigger_id"])
    assert refused["last_error"].startswith("HTTP 401") and held["last_error"] == "circuit_open"
    assert {r["status"] for r in delivery.changed} == {"retrying"}
    assert [r["next_attempt_at"] for r in delivery.changed] == [RUN_NOW + timedelta(minutes=5)] * 2
    assert markers.marked(send_id_for("t-1")) and not markers.marked(send_id_for("t-2"))
    assert "t-3" not in {r["trigger_id"] for r in delivery.changed}  # unknown stays unknown: not resent later


def test_a_sent_email_is_dated_on_the_runs_timeline(tmp_path: Path) -> None:
    wall_start = RUN_NOW + timedelta(days=3)
    with httpx.Client(transport=httpx.MockTransport(lambda r: accepted("m-1"))) as client:
        sender = sender_for(client, wall_clock=lambda: wall_start + timedelta(seconds=2))
        delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, RUN_NOW - wall_start, SendsReport())
        delivery.run(planned_rows("t-1"))
    [sent] = delivery.changed
    assert (sent["status"], sent["provider_message_id"]) == ("sent", "m-1")
    assert sent["sent_at"] == RUN_NOW + timedelta(seconds=2)
    assert delivery.report.example is not None and "Ada" not in delivery.report.example


def test_a_message_stored_by_someone_else_under_the_send_id_does_not_settle_an_interrupted_send(
    tmp_path: Path,
) -> None:
    """Anyone with the sandbox's default key can store a message under a real send_id (#13, point 12):
    the look-up trusts only a message with this home's mark, so the email itself still goes out."""
    [fresh] = planned_rows("t-1")
    assert isinstance(fresh.step, Render)
    send_id = fresh.row["send_id"]
    posted: list[dict[str, Any]] = []

    def sandbox(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/messages":
            return httpx.Response(200, json=[{"id": "forged", "custom_args": {"send_id": send_id}}])
        posted.append(json.loads(request.content))
        return accepted("m-real")

    with httpx.Client(transport=httpx.MockTransport(sandbox)) as client:
        delivery = Delivery(
            sender_for(client), AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport()
        )
        delivery.run([Planned({**fresh.row, "last_error": None}, Ask(then=fresh.step))])
    [row] = delivery.changed
    assert (row["status"], row["provider_message_id"]) == ("sent", "m-real")
    [payload] = posted
    assert payload["custom_args"][ORIGIN_ARG] == origin_mark(send_id, "s")  # what a later look-up trusts

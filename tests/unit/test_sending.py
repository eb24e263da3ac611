"""The send stage's pure part: outbox rows, each due row's plan, what a row says after each attempt."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl

from resources.email import LOOKUP_FAILED, lookup
from resources.providers import SandboxProvider, SendGridProvider
from transforms.schema import CATALOG_SCHEMA, SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.catalog import Catalog, bestseller_ranking
from transforms.sends.content import Shop
from transforms.sends.message import send_id_for
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
from transforms.sends.rows import (
    Attempt,
    Waits,
    aborted,
    after_attempt,
    latency_ms,
    outbox_rows,
    retry_at,
    run_summary,
    trigger_facts,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def decision(trigger_id: str, decision: str = "send", **fields: object) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(TRIGGERS_SCHEMA)
    return (
        row
        | {
            "trigger_id": trigger_id,
            "kind": "welcome",
            "user_id": "u1",
            "principal": "u1",
            "decision": decision,
            "variant": "b",
            "first_event_at": NOW - timedelta(minutes=2),
            "due_at": NOW - timedelta(minutes=2),
        }
        | fields
    )


def test_outbox_rows_are_pending_one_per_send_decision_with_the_landing_time() -> None:
    decisions = pl.DataFrame(
        [decision("t-1"), decision("t-1"), decision("t-2", "holdout"), decision("t-3", user_id="u3")],
        schema=TRIGGERS_SCHEMA,
    )
    landed = pl.DataFrame(
        {
            "principal": ["u1", "u1"],
            "event_ts": [NOW - timedelta(minutes=2), NOW - timedelta(minutes=9)],
            "landed_at": [NOW - timedelta(minutes=1), NOW - timedelta(minutes=8)],
        }
    )
    rows = outbox_rows(decisions, landed, provider="sandbox", now=NOW)
    assert rows.schema == pl.Schema(SENDS_SCHEMA)
    assert rows["trigger_id"].to_list() == ["t-1", "t-3"]
    assert rows["send_id"].to_list() == [send_id_for("t-1"), send_id_for("t-3")]
    assert set(rows["status"]) == {"pending"} and set(rows["attempts"]) == {0}
    assert rows["landed_at"].to_list() == [NOW - timedelta(minutes=1), NOW - timedelta(minutes=1)]
    assert rows["template"].to_list() == ["welcome", "welcome"]
    assert rows["next_attempt_at"].to_list() == [NOW, NOW]


def test_latency_counts_from_when_the_email_could_go() -> None:
    landed, due = NOW - timedelta(seconds=3), NOW - timedelta(seconds=1)
    assert latency_ms(NOW, landed, None) == 3000
    assert latency_ms(NOW, landed, due) == 1000  # a delayed trigger: from its due time
    assert latency_ms(NOW, None, None) is None


def test_after_attempt_records_each_outcome() -> None:
    row = outbox_rows(
        pl.DataFrame([decision("t-1")], schema=TRIGGERS_SCHEMA),
        pl.DataFrame(
            schema={
                "principal": pl.String,
                "event_ts": SENDS_SCHEMA["sent_at"],
                "landed_at": SENDS_SCHEMA["sent_at"],
            }
        ),
        provider="sandbox",
        now=NOW,
    ).row(0, named=True)
    sent = after_attempt(row, Attempt("sent", 4, provider_message_id="m-1"), now=NOW)
    assert (sent["status"], sent["attempts"], sent["provider_message_id"]) == ("sent", 4, "m-1")
    assert sent["sent_at"] == NOW and sent["latency_ms"] == 120_000 and sent["next_attempt_at"] is None
    waiting = after_attempt(row, Attempt("retrying", 5, last_error="HTTP 503"), now=NOW)
    assert waiting["next_attempt_at"] == NOW + timedelta(seconds=15)
    again = after_attempt(waiting, Attempt("retrying", 5), now=NOW)
    assert (again["attempts"], again["next_attempt_at"]) == (10, NOW + timedelta(minutes=8))  # 15 s x 2**5
    hinted = after_attempt(row, Attempt("retrying", 1, retry_in=120.0), now=NOW)
    assert hinted["next_attempt_at"] == NOW + timedelta(seconds=120)
    unknown = after_attempt(
        row, Attempt("unknown", 1), now=NOW, waits=Waits(lookup_after=timedelta(seconds=3))
    )
    assert unknown["next_attempt_at"] == NOW + timedelta(seconds=3) and unknown["sent_at"] is None
    gone = aborted(row, "exited: order_completed", [{"block": "greeting", "reason": "no_first_name"}])
    assert (gone["status"], gone["next_attempt_at"]) == ("aborted", None)
    assert json.loads(gone["fallbacks"]) == [{"block": "greeting", "reason": "no_first_name"}]


def test_an_open_circuit_waits_the_cool_off_whatever_the_hint() -> None:
    attempt = Attempt("retrying", 1, circuit_open=True, retry_in=999.0)
    assert retry_at(NOW, attempt, 3, Waits(cool_off=timedelta(seconds=7))) == NOW + timedelta(seconds=7)


def test_trigger_facts_read_the_old_price_and_ignore_bad_detail() -> None:
    assert trigger_facts({"anchor": "p1", "detail": '{"old": 20.0, "new": 15.0}'}) == {
        "anchor": "p1",
        "old_price": 20.0,
    }
    assert trigger_facts({"anchor": "p1", "detail": "not json"}) == {"anchor": "p1"}
    assert trigger_facts({"anchor": "p1", "detail": '{"old": "20"}'}) == {"anchor": "p1"}


def test_bestsellers_rank_by_distinct_shoppers() -> None:
    added = pl.DataFrame(
        {"principal": ["a", "a", "a", "b", "c", "b"], "product_id": ["p1", "p1", "p1", "p2", "p2", None]}
    )
    assert bestseller_ranking(added) == ["p2", "p1"]
    assert bestseller_ranking(added.clear()) == []


def test_run_summary_counts_statuses_fallbacks_and_latency() -> None:
    rows = pl.DataFrame(
        {
            "status": ["sent", "sent", "aborted", "retrying", "unknown"],
            "attempts": [1, 3, 0, 5, 1],
            "latency_ms": [100, 300, None, None, None],
            "fallbacks": ['[{"block": "greeting", "reason": "no_first_name"}]', "[]", "[]", "[]", None],
        }
    )
    summary = run_summary(rows)
    assert {k: summary[k] for k in ("sent", "retried", "aborted", "waiting", "unknown", "failed")} == {
        "sent": 2,
        "retried": 2,
        "aborted": 1,
        "waiting": 1,
        "unknown": 1,
        "failed": 0,
    }
    assert summary["fallbacks"] == {"greeting:no_first_name": 1}
    assert (summary["latency_p50_ms"], summary["latency_p95_ms"]) == (200, 290)


def test_the_sandbox_can_be_asked_for_a_send_and_sendgrid_cannot() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/messages"
        found = request.url.params["send_id"] == "s-known"
        return httpx.Response(200, json=[{"id": "m-7"}] if found else [])

    provider = SandboxProvider(api_key="k", base_url="http://sandbox.test")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert lookup(provider, "s-known", client) == "m-7"
        assert lookup(provider, "s-other", client) is None
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503))) as client:
        assert lookup(provider, "s-known", client) == LOOKUP_FAILED
    assert SendGridProvider(api_key="k").lookup_request("s-known") is None


def test_a_sent_row_is_on_the_run_timeline_and_its_latency_is_wall_clock_time() -> None:
    # The run says it is NOW; the wall clock says a week later. The event landed 2 s (wall) before the
    # run started, and the provider said yes 1.5 s (wall) after: 3.5 s of real latency.
    wall_start = NOW + timedelta(days=7)
    row = {"attempts": 0, "landed_at": wall_start - timedelta(seconds=2), "due_at": NOW - timedelta(hours=1)}
    answered = Attempt("sent", 1, answered_at=wall_start + timedelta(seconds=1.5))
    sent = after_attempt(row, answered, now=NOW, offset=NOW - wall_start)
    assert sent["sent_at"] == NOW + timedelta(seconds=1.5)
    assert sent["latency_ms"] == 3500
    delayed = after_attempt(
        {**row, "due_at": NOW + timedelta(seconds=1)}, answered, now=NOW, offset=NOW - wall_start
    )
    assert delayed["latency_ms"] == 500  # a delayed trigger counts from its due time (run timeline)


def test_an_unknown_row_nobody_can_ask_about_is_never_due_again() -> None:
    unknown = after_attempt({"attempts": 1}, Attempt("unknown", 1), now=NOW, waits=Waits(lookup_after=None))
    assert (unknown["status"], unknown["next_attempt_at"]) == ("unknown", None)


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

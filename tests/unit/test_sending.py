"""Outbox rows, pure: rows from decisions, a row after each attempt (on the run's clock), summaries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl

from resources.email import LOOKUP_FAILED, lookup
from resources.providers import SandboxProvider, SendGridProvider
from transforms.schema import SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.message import ORIGIN_ARG, origin_mark, send_id_for
from transforms.sends.rows import (
    Attempt,
    Waits,
    aborted,
    after_attempt,
    latency_ms,
    outbox_rows,
    rate_limit_holds,
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


def test_a_rate_limit_window_is_waited_to_the_second_and_read_back_from_the_rows_it_holds() -> None:
    """A 429 that named its window: the row is due at its end, not at its backoff (4 min after 4
    attempts), as the rows it holds are; a run reads the window from them, and from no other row."""
    limited = Attempt("retrying", 1, last_error="rate_limited: HTTP 429", rate_limited=True, retry_in=2.0)
    assert retry_at(NOW, limited, 4) == NOW + timedelta(seconds=2)
    assert retry_at(NOW, Attempt("retrying", 1, retry_in=2.0), 4) == NOW + timedelta(minutes=4)
    rows = pl.DataFrame(
        {
            "status": ["retrying", "pending", "unknown", "retrying", "sent", "aborted"],
            "last_error": [
                "rate_limited: HTTP 429: slow down",
                "rate_limited",
                "rate_limited",
                "HTTP 429",  # a 429 that named no window holds only its own row
                "rate_limited",
                "rate_limited",
            ],
        }
    )
    assert rows.select(rate_limit_holds())["status"].to_list() == [True] * 3 + [False] * 3


def test_a_row_retried_for_hours_waits_the_cap_without_overflowing() -> None:
    """Each run adds its attempts (5 a run); 15 s x 2**45 no longer fits a timedelta (~2 h of 5xx)."""
    for attempts in (6, 45, 1000, 10**9):
        assert retry_at(NOW, Attempt("retrying", 5), attempts) == NOW + timedelta(minutes=15)
    assert retry_at(NOW, Attempt("retrying", 5), 2) == NOW + timedelta(minutes=1)  # below the cap: 15 s x 4


def test_trigger_facts_read_the_old_price_and_ignore_bad_detail() -> None:
    assert trigger_facts({"anchor": "p1", "detail": '{"old": 20.0, "new": 15.0}'}) == {
        "anchor": "p1",
        "old_price": 20.0,
    }
    assert trigger_facts({"anchor": "p1", "detail": "not json"}) == {"anchor": "p1"}
    assert trigger_facts({"anchor": "p1", "detail": '{"old": "20"}'}) == {"anchor": "p1"}


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
    ours = {"send_id": "s-known", ORIGIN_ARG: origin_mark("s-known", "home-secret")}

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/messages"
        assert request.headers["Authorization"] == "Bearer k"
        found = request.url.params["send_id"] == "s-known"
        return httpx.Response(200, json=[{"id": "m-7", "custom_args": ours}] if found else [])

    provider = SandboxProvider(api_key="k", base_url="http://sandbox.test")
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert lookup(provider, "s-known", client, secret="home-secret") == "m-7"
        assert lookup(provider, "s-other", client, secret="home-secret") is None
        assert lookup(provider, "s-known", client, secret="another-home") is None
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503))) as client:
        assert lookup(provider, "s-known", client, secret="home-secret") == LOOKUP_FAILED
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

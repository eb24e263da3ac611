"""A provider misbehaving for a whole run (or for hours): every row the run touches keeps a status."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from resources.email import LOOKUP_FAILED, DeliveryResult, EmailProviderResource, deliver, lookup
from resources.providers import EmailProvider, PostmarkProvider, SendGridProvider, WebhookProvider
from stores.sends_delivery import AttemptMarkers, Delivery, SendsReport
from tests.unit.test_delivery import EMAIL
from tests.unit.test_plan import RUN_NOW, SHOP, due, sender_for, world
from tests.unit.test_sending import decision
from transforms.sends.plan import Planned, plan_sends
from transforms.sends.policy import REDIRECT_HINT
from transforms.sends.rows import Waits


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
    calls: list[httpx.Request] = []

    def limit(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(limit)) as client:
        delivery = Delivery(
            sender_for(client), AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport()
        )
        delivery.run(planned(due("t-1"), due("t-2")))
    assert [(r["status"], r["last_error"]) for r in delivery.changed] == [
        ("retrying", "rate_limited: HTTP 429"),
        ("pending", "rate_limited"),  # held by the window, never called
    ]
    assert len(calls) == 1
    assert {r["next_attempt_at"] for r in delivery.changed} == {RUN_NOW + timedelta(days=1)}


def test_a_429_heard_mid_run_holds_every_row_not_yet_called_until_its_window_ends(tmp_path: Path) -> None:
    """The probe is taken; the next call hears 429 with Retry-After: 120 (past the run's 60 s budget).
    The row after it was called all the same (found by review): now it waits for the window, uncalled."""
    answers = [
        httpx.Response(202, headers={"X-Message-Id": "m-1"}),
        httpx.Response(429, headers={"Retry-After": "120"}, json={"errors": [{"message": "slow down"}]}),
    ]
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answers.pop(0) if answers else httpx.Response(202, headers={"X-Message-Id": "m-late"})

    facts = world(triggers={t: decision(t) for t in ("t-1", "t-2", "t-3")})
    rows = [due(t) for t in ("t-1", "t-2", "t-3")]
    steps = plan_sends(rows, facts, now=RUN_NOW, shop=SHOP, staleness=timedelta(days=2), can_lookup=True)
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        report = SendsReport()
        delivery = Delivery(
            sender_for(client, concurrency=1), AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), report
        )
        delivery.run(steps)
    assert len(calls) == 2
    window_end = RUN_NOW + timedelta(seconds=120)
    assert [
        (r["trigger_id"], r["status"], r["last_error"], r["next_attempt_at"]) for r in delivery.changed
    ] == [
        ("t-1", "sent", None, None),
        ("t-2", "retrying", "rate_limited: HTTP 429: slow down", window_end),
        ("t-3", "pending", "rate_limited", window_end),
    ]
    assert delivery.paused_until() == window_end and not report.circuit_open


def test_a_window_an_earlier_run_heard_holds_every_call_and_leaves_the_rest_as_it_was(
    tmp_path: Path,
) -> None:
    calls: list[httpx.Request] = []

    def take(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(202, headers={"X-Message-Id": "m-1"})

    window = RUN_NOW + timedelta(seconds=40)
    retrying = due("t-2", status="retrying", attempts=3, last_error="HTTP 503")
    with httpx.Client(transport=httpx.MockTransport(take)) as client:
        held = Delivery(
            sender_for(client), AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport(), window=window
        )
        held.run(planned(due("t-1"), retrying))
        assert calls == []
        assert [
            (r["status"], r["attempts"], r["last_error"], r["next_attempt_at"]) for r in held.changed
        ] == [
            ("pending", 0, "rate_limited", window),
            ("retrying", 3, "rate_limited", window),
        ]
        ended = Delivery(
            sender_for(client), AttemptMarkers(tmp_path), window, timedelta(0), SendsReport(), window=window
        )
        ended.run(planned(due("t-1")))  # at its end, calls go
    assert len(calls) == 1 and [r["status"] for r in ended.changed] == ["sent"]


def to_https(
    status: int, path: str | None = None, calls: list[httpx.Request] | None = None
) -> httpx.MockTransport:
    def redirect(request: httpx.Request) -> httpx.Response:
        (calls if calls is not None else []).append(request)
        target = request.url.copy_with(scheme="https", path=path or request.url.path)
        return httpx.Response(status, headers={"Location": str(target)}, text="<html>moved</html>")

    return httpx.MockTransport(redirect)


@pytest.mark.parametrize(
    ("provider", "status"),
    [
        (WebhookProvider("http://hooks.example/send?token=hook-secret", "k"), 308),
        (PostmarkProvider("tok", "http://api.postmarkapp.com"), 301),
        (PostmarkProvider("tok", "http://api.postmarkapp.com"), 302),  # nginx's `return https://...`
    ],
)
def test_a_provider_url_that_redirects_opens_the_circuit_and_the_emails_wait(
    tmp_path: Path, provider: EmailProvider, status: int
) -> None:
    """A redirected POST was not taken: every email was `unknown` for good, and no circuit opened."""
    calls: list[httpx.Request] = []
    with httpx.Client(transport=to_https(status, calls=calls)) as client:
        sender = replace(sender_for(client, waits=Waits(cool_off=timedelta(minutes=5))), provider=provider)
        delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned(due("t-1"), due("t-2")))
    assert len(calls) == 1  # the probe, then the circuit holds the rest
    report = delivery.report
    assert (report.circuit_open, report.circuit_cause) == (True, "configuration")
    assert (
        report.circuit_note == " (circuit open: the provider settings are wrong, see the sends' last_error)"
    )
    probe, held = delivery.changed
    assert probe["last_error"] == f"HTTP {status}: redirected, not followed ({REDIRECT_HINT})"
    assert held["last_error"] == "circuit_open"
    assert {(r["status"], r["next_attempt_at"]) for r in delivery.changed} == {
        ("retrying", RUN_NOW + timedelta(minutes=5))
    }


@pytest.mark.parametrize(
    ("provider", "again"),
    [
        (PostmarkProvider("tok", "http://api.postmarkapp.com"), None),  # no key: never resent
        (WebhookProvider("http://hooks.example/send"), RUN_NOW + timedelta(seconds=15)),  # its key: resent
    ],
)
def test_a_redirect_after_the_request_was_acted_on_stays_unknown(
    tmp_path: Path, provider: EmailProvider, again: object
) -> None:
    """A post-redirect-get (a 303, or a 302 to another path) may follow an email taken: never resent
    blindly (the webhook's only with its idempotency key, after the retry backoff)."""
    for status in (303, 302):
        with httpx.Client(transport=to_https(status, path="/thanks")) as client:
            sender = replace(sender_for(client), provider=provider)
            delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport())
            delivery.run(planned(due("t-1")))
        [row] = delivery.changed
        assert (row["status"], row["next_attempt_at"], delivery.report.circuit_open) == (
            "unknown",
            again,
            False,
        )


def h11_refuses(request: httpx.Request) -> httpx.Response:
    """What httpx raises over a real connection for a header value with a line break (h11's words)."""
    raise httpx.LocalProtocolError(f"Illegal header value {request.headers['X-Postmark-Server-Token']!r}")


@pytest.mark.parametrize(
    ("provider", "error"),
    [
        (PostmarkProvider("pm-secret\n"), "LocalProtocolError"),
        (SendGridProvider("SG.secret\u2019"), "UnicodeEncodeError"),  # httpx cannot even build the request
    ],
)
def test_a_key_httpx_refuses_to_send_opens_the_circuit_and_the_emails_wait(
    tmp_path: Path, provider: EmailProvider, error: str
) -> None:
    """Every email was `failed_permanent` (a line break), or the run crashed leaving markers (non-ASCII)."""
    with httpx.Client(transport=httpx.MockTransport(h11_refuses)) as client:
        sender = replace(sender_for(client, waits=Waits(cool_off=timedelta(minutes=5))), provider=provider)
        delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned(due("t-1"), due("t-2")))
    assert (delivery.report.circuit_open, delivery.report.circuit_cause) == (True, "configuration")
    probe, held = delivery.changed
    assert probe["last_error"] == (
        f"{error}: not sent, no valid request (check LAKEMAIL_ESP_API_KEY, LAKEMAIL_ESP_URL)"
    )
    assert held["last_error"] == "circuit_open"
    assert {(r["status"], r["next_attempt_at"]) for r in delivery.changed} == {
        ("retrying", RUN_NOW + timedelta(minutes=5))
    }


def test_an_error_body_of_an_odd_shape_fails_the_email_not_the_run(tmp_path: Path) -> None:
    """A 422 whose `ErrorCode` is a list raised out of the delivery: the run failed, the row's marker
    stayed, and the next run took the refused email for an interrupted one (`unknown`, never sent)."""
    answer = httpx.Response(422, json={"ErrorCode": [10], "Message": "no such mailbox"})
    with httpx.Client(transport=httpx.MockTransport(lambda r: answer)) as client:
        sender = replace(sender_for(client), provider=WebhookProvider("https://hooks.example/send"))
        delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned(due("t-1"), due("t-2")))
    assert [(r["status"], r["last_error"]) for r in delivery.changed] == [
        ("failed_permanent", "HTTP 422: no such mailbox")
    ] * 2
    assert not delivery.report.circuit_open


class Drip(httpx.SyncByteStream):
    """An answer's body a byte a second, each inside any read timeout; `clock` is its seconds."""

    def __init__(self, size: int = 24) -> None:
        self.size, self.now, self.sent = size, 0.0, 0

    def clock(self) -> float:
        return self.now

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.size):
            self.now += 1.0
            self.sent += 1
            yield b"x"


# A call may take its connect timeout (1 s) plus its read timeout (2 s), the whole answer included.
SLOW_LINK = EmailProviderResource(connect_timeout_s=1.0, read_timeout_s=2.0)


def test_an_answer_dripped_past_the_calls_deadline_is_a_timeout_after_the_request_left() -> None:
    """Each byte came inside the read timeout: one call held the run for as long as the provider liked."""
    drip = Drip()
    accepted = httpx.MockTransport(
        lambda r: httpx.Response(202, headers={"X-Message-Id": "m-1"}, stream=drip)
    )
    with SLOW_LINK.client(accepted) as client:
        result = deliver(SLOW_LINK.provider(), EMAIL, client, clock=drip.clock, monotonic=drip.clock)
    assert result == DeliveryResult("unknown", None, attempts=1, last_error="ReadTimeout")
    assert drip.sent == 4  # the first byte past 3 s ends it, not the 24th
    whole = Drip(size=2)  # an answer within the deadline is read as ever
    on_time = httpx.MockTransport(
        lambda r: httpx.Response(202, headers={"X-Message-Id": "m-2"}, stream=whole)
    )
    with SLOW_LINK.client(on_time) as client:
        result = deliver(SLOW_LINK.provider(), EMAIL, client, clock=whole.clock, monotonic=whole.clock)
    assert (result.status, result.provider_message_id) == ("sent", "m-2")


def test_a_dripping_provider_leaves_the_send_unknown_to_be_looked_up(tmp_path: Path) -> None:
    drip = Drip()
    with SLOW_LINK.client(httpx.MockTransport(lambda r: httpx.Response(202, stream=drip))) as client:
        sender = sender_for(client, monotonic=drip.clock, waits=Waits(lookup_after=timedelta(seconds=10)))
        delivery = Delivery(sender, AttemptMarkers(tmp_path), RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned(due("t-1")))
        [row] = delivery.changed
        assert (row["status"], row["last_error"]) == ("unknown", "ReadTimeout")
        assert row["next_attempt_at"] == RUN_NOW + timedelta(seconds=10)
    answer = Drip()  # the look-up's answer drips too: it cannot say (not "none there")
    with SLOW_LINK.client(httpx.MockTransport(lambda r: httpx.Response(200, stream=answer))) as client:
        assert (
            lookup(sender.provider, row["send_id"], client, secret="s", monotonic=answer.clock)
            == LOOKUP_FAILED
        )

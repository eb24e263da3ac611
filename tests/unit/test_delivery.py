"""Delivery policy, the send loop and a run's calls: retries, backoff, ambiguity, the circuit, no leaks."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resources.email import DeliveryResult, EmailProviderResource, deliver
from resources.providers import (
    EmailProvider,
    PostmarkProvider,
    SandboxProvider,
    SendGridProvider,
    WebhookProvider,
)
from resources.templates import TemplateRenderer
from stores.sends_delivery import AttemptMarkers, Delivery, Sender, SendsReport
from tests.unit.test_sending import SHOP, due, world
from transforms.schema import SEND_STATUSES
from transforms.sends.message import Email, send_id_for
from transforms.sends.plan import Planned, plan_sends
from transforms.sends.policy import (
    RetryBudget,
    Verdict,
    classify,
    classify_response,
    describe_error,
    retry_delay,
)
from transforms.sends.rows import Waits

NOW = 1_700_000_000.0
KEY = "SG.very-secret-key"
EMAIL = Email(
    send_id=send_id_for("t-1"),
    to="ada@example.org",
    sender="lakemail <shop@example.com>",
    subject="s",
    preheader="p",
    html="<p>h</p>",
    text="h",
    custom_args={"kind": "welcome"},
)
Step = httpx.Response | type[httpx.RequestError]


@dataclass
class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    now: float = NOW
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Script:
    """A transport answering with `steps` in order, recording each request and the fake time it came."""

    steps: list[Step]
    time: FakeTime
    seen: list[tuple[httpx.Request, float]] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request, self.time.now))
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, httpx.Response):
            return step
        raise step("scripted", request=request)


def run(
    steps: Sequence[Step],
    provider: EmailProvider | None = None,
    *,
    max_attempts: int = 5,
    max_seconds: float = 60.0,
) -> tuple[DeliveryResult, Script]:
    time = FakeTime()
    script = Script(list(steps), time)
    with httpx.Client(transport=httpx.MockTransport(script.handler)) as client:
        result = deliver(
            provider or SendGridProvider(KEY),
            EMAIL,
            client,
            max_attempts=max_attempts,
            max_seconds=max_seconds,
            sleep=time.sleep,
            clock=time.clock,
            rng=random.Random(7),
        )
    return result, script


def accepted(message_id: str = "sg-1") -> httpx.Response:
    return httpx.Response(202, headers={"X-Message-Id": message_id})


VERDICTS = {
    Verdict.SENT: (200, 202, 204),
    Verdict.RETRY: (408, 429, 500, 502, 503, 504),
    Verdict.AUTH: (401, 403),
    Verdict.PERMANENT: (400, 404, 413, 422),
    Verdict.UNKNOWN: (101, 302, 304),
}


@pytest.mark.parametrize(("status", "verdict"), [(s, v) for v, codes in VERDICTS.items() for s in codes])
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


@pytest.mark.parametrize(
    ("code", "verdict"), [(300, Verdict.PERMANENT), (406, Verdict.PERMANENT), (400, Verdict.AUTH)]
)
def test_a_postmark_account_error_opens_the_circuit(code: int, verdict: Verdict) -> None:
    body = json.dumps({"ErrorCode": code, "Message": "x"}).encode()
    assert classify_response(422, body) is verdict
    assert classify_response(503, body) is Verdict.RETRY


def test_retry_after_seconds() -> None:
    assert retry_delay(0, {"Retry-After": "7"}, now=NOW, rng=random.Random(1)) == 7.0
    assert retry_delay(3, {"retry-after": " 2 "}, now=NOW, rng=random.Random(1)) == 2.0


def test_retry_after_http_date() -> None:
    headers = {"Retry-After": formatdate(NOW + 42, usegmt=True)}
    assert retry_delay(0, headers, now=NOW, rng=random.Random(1)) == pytest.approx(42.0)
    past = {"Retry-After": formatdate(NOW - 42, usegmt=True)}
    assert retry_delay(0, past, now=NOW, rng=random.Random(1)) == 0.0


def test_rate_limit_reset_epoch_is_never_undercut() -> None:
    reset = {"X-RateLimit-Reset": str(int(NOW) + 45)}
    assert retry_delay(0, reset, now=NOW + 0.5, rng=random.Random(1)) == pytest.approx(44.5)
    # Both hints: the later one wins, so we never call before the reset.
    both = {"X-RateLimit-Reset": str(int(NOW) + 45), "Retry-After": "3"}
    assert retry_delay(0, both, now=NOW, rng=random.Random(1)) == 45.0
    # A reset beyond the cap is still honoured: the budget, not the backoff, decides whether to wait.
    assert retry_delay(0, {"X-RateLimit-Reset": str(int(NOW) + 600)}, now=NOW, rng=random.Random(1)) == 600.0


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf", "-5x"])
def test_unusable_hints_fall_back_to_backoff(value: str) -> None:
    delay = retry_delay(2, {"Retry-After": value, "X-RateLimit-Reset": value}, now=NOW, rng=random.Random(1))
    assert 0.0 <= delay <= 0.5 * 2**2


@given(attempt=st.integers(0, 40), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_within_the_cap(attempt: int, seed: int) -> None:
    delay = retry_delay(attempt, {}, now=NOW, rng=random.Random(seed), base=0.5, cap=30.0)
    assert 0.0 <= delay <= min(30.0, 0.5 * 2**attempt)


def test_backoff_spreads_over_the_window() -> None:
    rng = random.Random(3)
    delays = [retry_delay(4, {}, now=NOW, rng=rng) for _ in range(200)]
    assert min(delays) < 1.0 and max(delays) > 7.0  # window is [0, 8]: jitter, not a fixed step


def test_retry_budget() -> None:
    budget = RetryBudget(max_attempts=3, max_seconds=10.0)
    assert budget.allows(1, 0.0, 10.0) and budget.allows(2, 5.0, 5.0)
    assert not budget.allows(3, 0.0, 0.0) and not budget.allows(1, 5.0, 5.1)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryBudget(max_attempts=0)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {
                "errors": [
                    {
                        "message": "The from address does not match a verified Sender Identity.",
                        "field": "from",
                    }
                ]
            },
            "HTTP 400: The from address does not match a verified Sender Identity.",
        ),
        (
            422,
            {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ada@example.org'."},
            "HTTP 422: Invalid 'To' address: '<address>'. (ErrorCode 300)",
        ),
        (500, None, "HTTP 500"),
    ],
)
def test_describe_error_keeps_the_message_without_the_address(
    status: int, body: object, expected: str
) -> None:
    raw = json.dumps(body).encode() if body is not None else b"<html>oops</html>"
    assert describe_error(status, raw) == expected


def test_describe_error_is_truncated() -> None:
    body = json.dumps({"errors": [{"message": "x" * 5000}]}).encode()
    assert len(describe_error(400, body)) == 300


def test_503_three_times_then_accepted() -> None:
    result, script = run([httpx.Response(503)] * 3 + [accepted("sg-42")])
    assert result == DeliveryResult("sent", "sg-42", attempts=4, last_error=None, retried=True)
    assert len(script.seen) == 4 and len(script.time.sleeps) == 3
    assert all(0.0 <= s <= 0.5 * 2**i for i, s in enumerate(script.time.sleeps))


def test_429_waits_until_the_rate_limit_resets() -> None:
    reset = int(NOW) + 20
    result, script = run([httpx.Response(429, headers={"X-RateLimit-Reset": str(reset)}), accepted()])
    assert result.status == "sent" and result.attempts == 2
    assert script.time.sleeps == [20.0]
    assert script.seen[1][1] >= reset


def test_retry_after_is_honoured() -> None:
    result, script = run([httpx.Response(503, headers={"Retry-After": "9"}), accepted()])
    assert result.status == "sent" and script.time.sleeps == [9.0]


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_a_request_that_never_left_is_retried(error: type[httpx.RequestError]) -> None:
    result, script = run([error, accepted()])
    assert (result.status, result.attempts, result.retried) == ("sent", 2, True)
    assert len(script.seen) == 2


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError]
)
def test_a_request_that_may_have_arrived_is_unknown_and_not_resent(error: type[httpx.RequestError]) -> None:
    result, script = run([error, accepted()])
    assert result == DeliveryResult("unknown", None, attempts=1, last_error=error.__name__, retried=False)
    assert len(script.seen) == 1 and script.time.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_opens_the_circuit_after_one_request(status: int) -> None:
    body = {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked"}]}
    result, script = run([httpx.Response(status, json=body), accepted()])
    assert (result.status, result.circuit_open, result.attempts) == ("retrying", True, 1)
    assert result.last_error is not None and result.last_error.startswith(f"HTTP {status}: The provided")
    assert len(script.seen) == 1 and script.time.sleeps == []


def test_a_permanent_error_keeps_the_provider_message() -> None:
    body = {"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to"}]}
    result, script = run([httpx.Response(400, json=body), accepted()])
    assert result == DeliveryResult(
        "failed_permanent", None, attempts=1, last_error="HTTP 400: Does not contain a valid address."
    )
    assert len(script.seen) == 1


def test_attempts_exhausted_leaves_the_send_retrying() -> None:
    result, script = run([httpx.Response(503)], max_attempts=3)
    assert (result.status, result.attempts, result.retried, result.circuit_open) == (
        "retrying",
        3,
        True,
        False,
    )
    assert result.last_error == "HTTP 503"
    assert len(script.seen) == 3 and len(script.time.sleeps) == 2


def test_a_wait_beyond_the_time_budget_is_not_slept() -> None:
    result, script = run([httpx.Response(429, headers={"Retry-After": "120"}), accepted()], max_seconds=60.0)
    assert (result.status, result.attempts) == ("retrying", 1)
    assert script.time.sleeps == []


def test_never_sleeps_past_the_time_budget() -> None:
    result, script = run([httpx.Response(500)], max_attempts=1000, max_seconds=5.0)
    assert result.status == "retrying" and result.attempts > 3
    assert sum(script.time.sleeps) <= 5.0
    assert script.time.now - NOW <= 5.0


def test_every_result_status_is_a_send_status() -> None:
    outcomes = [run([accepted()])[0], run([httpx.ReadTimeout])[0], run([httpx.Response(400)])[0]]
    outcomes.append(run([httpx.Response(503)], max_attempts=1)[0])
    assert {r.status for r in outcomes} == {"sent", "unknown", "failed_permanent", "retrying"}
    assert {r.status for r in outcomes} <= set(SEND_STATUSES)


@pytest.mark.parametrize(
    ("provider", "response", "expected"),
    [
        (SendGridProvider(KEY), accepted("sg-7"), "sg-7"),
        (SandboxProvider(), accepted("sandbox-3"), "sandbox-3"),
        (SendGridProvider(KEY), httpx.Response(202), None),
        (PostmarkProvider(KEY), httpx.Response(200, json={"ErrorCode": 0, "MessageID": "pm-9"}), "pm-9"),
        (PostmarkProvider(KEY), httpx.Response(200, text="not json"), None),
        (WebhookProvider("https://h.example.com"), httpx.Response(200, json={"id": 12}), "12"),
        (WebhookProvider("https://h.example.com"), accepted("hdr-1"), "hdr-1"),
        (WebhookProvider("https://h.example.com"), httpx.Response(204), None),
    ],
)
def test_the_provider_message_id_is_read_per_provider(
    provider: EmailProvider, response: httpx.Response, expected: str | None
) -> None:
    result, _ = run([response], provider=provider)
    assert result.status == "sent" and result.provider_message_id == expected


def test_the_address_never_reaches_last_error() -> None:
    body = {
        "ErrorCode": 406,
        "Message": "You tried to send to recipient(s) that have been marked as inactive. ada@example.org",
    }
    result, _ = run([httpx.Response(422, json=body)], provider=PostmarkProvider(KEY))
    assert result.status == "failed_permanent"
    assert result.last_error is not None and "ada@example.org" not in result.last_error


def test_the_api_key_never_shows(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = EmailProviderResource(esp="sendgrid", api_key=KEY)
    assert KEY not in repr(resource) and KEY not in str(resource)
    monkeypatch.setenv("LAKEMAIL_ESP_API_KEY", KEY)
    bound = EmailProviderResource(esp="sendgrid", api_key=dg.EnvVar("LAKEMAIL_ESP_API_KEY"))
    assert KEY not in repr(bound)
    answers: list[Callable[[], Step]] = [
        lambda: httpx.Response(401, json={"errors": [{"message": "authorization required"}]}),
        lambda: httpx.Response(400, json={"errors": [{"message": "bad"}]}),
        lambda: httpx.ReadTimeout,
        lambda: accepted(),
    ]
    for answer in answers:
        result, script = run([answer()], provider=resource.provider())
        assert script.seen[0][0].headers["Authorization"] == f"Bearer {KEY}"  # it is used...
        assert KEY not in repr(result)  # ...and never reported


def test_the_resource_client_has_its_timeouts_and_delivers() -> None:
    resource = EmailProviderResource(connect_timeout_s=1.5, read_timeout_s=4.0)
    transport = httpx.MockTransport(lambda request: accepted("sb-1"))
    with resource.client(transport) as client:
        assert client.timeout == httpx.Timeout(connect=1.5, read=4.0, write=4.0, pool=1.5)
        assert not client.follow_redirects
        result = deliver(resource.provider(), EMAIL, client, max_attempts=resource.max_attempts)
    assert result == DeliveryResult("sent", "sb-1", attempts=1)


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
    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        sender = sender_for(client, waits=Waits(cool_off=timedelta(minutes=5)))
        delivery = Delivery(sender, markers, RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned_rows("t-1", "t-2"))
    assert len(calls) == 1 and delivery.report.circuit_open  # the probe, then nothing
    refused, held = sorted(delivery.changed, key=lambda row: row["trigger_id"])
    assert refused["last_error"].startswith("HTTP 401") and held["last_error"] == "circuit_open"
    assert {r["status"] for r in delivery.changed} == {"retrying"}
    assert [r["next_attempt_at"] for r in delivery.changed] == [RUN_NOW + timedelta(minutes=5)] * 2
    assert markers.marked(send_id_for("t-1")) and not markers.marked(send_id_for("t-2"))


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

"""The send loop over httpx (`resources.email`): retries, waits, ambiguity, the circuit, no leaks."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg
import httpx
import pytest

from resources.email import DeliveryResult, EmailProviderResource, deliver, lookup
from resources.provider_pause import ProviderPause
from resources.providers import (
    USER_AGENT,
    EmailProvider,
    PostmarkProvider,
    SandboxProvider,
    SendGridProvider,
    WebhookProvider,
)
from transforms.schema import SEND_STATUSES
from transforms.sends.message import Email, send_id_for

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


def test_a_retry_waits_for_a_rate_limit_window_another_call_heard() -> None:
    """Calls of one run share a pause: a 503's retry starts after the window another call's 429 named,
    not after its own short backoff (found by review: the other rows kept calling through the window)."""
    time = FakeTime()
    pause = ProviderPause(time.clock)
    pause.hold(30.0)
    script = Script([httpx.Response(503), accepted()], time)
    with httpx.Client(transport=httpx.MockTransport(script.handler)) as client:
        result = deliver(
            SendGridProvider(KEY), EMAIL, client, sleep=time.sleep, clock=time.clock, pause=pause
        )
    assert (result.status, result.attempts, result.rate_limited) == ("sent", 2, False)
    assert script.time.sleeps == [30.0] and script.seen[1][1] >= NOW + 30


def test_a_429_naming_its_window_holds_every_call_and_one_heard_meanwhile_ends_the_tries() -> None:
    time = FakeTime()
    pause = ProviderPause(time.clock)
    script = Script([httpx.Response(429, headers={"Retry-After": "9"}), httpx.Response(503)], time)

    def sleep(seconds: float) -> None:  # while this call waits, another hears a 429 for 100 s
        time.sleep(seconds)
        pause.hold(100.0)

    with httpx.Client(transport=httpx.MockTransport(script.handler)) as client:
        result = deliver(SendGridProvider(KEY), EMAIL, client, sleep=sleep, clock=time.clock, pause=pause)
    assert script.time.sleeps == [9.0] and len(script.seen) == 1  # no call within the other's window
    assert (result.status, result.attempts, result.retry_in) == ("retrying", 1, 100.0)
    limited, _ = run([httpx.Response(429, headers={"Retry-After": "90"})])  # past the 60 s budget
    assert (limited.status, limited.rate_limited, limited.retry_in) == ("retrying", True, 90.0)
    unnamed, _ = run([httpx.Response(429)], max_attempts=1)  # no window named: its own backoff only
    assert (unnamed.status, unnamed.rate_limited, unnamed.retry_in) == ("retrying", False, None)


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


@pytest.mark.parametrize("esp", ["sandbox", "sendgrid", "postmark"])
def test_a_key_no_header_can_carry_fails_before_any_email(esp: str) -> None:
    with pytest.raises(ValueError, match="LAKEMAIL_ESP_API_KEY must be printable ASCII") as raised:
        EmailProviderResource(esp=esp, api_key="tok-secret\n").provider()
    assert "tok-secret" not in str(raised.value)


def test_the_resource_client_has_its_timeouts_and_delivers() -> None:
    resource = EmailProviderResource(connect_timeout_s=1.5, read_timeout_s=4.0)
    transport = httpx.MockTransport(lambda request: accepted("sb-1"))
    with resource.client(transport) as client:
        assert client.timeout == httpx.Timeout(connect=1.5, read=4.0, write=4.0, pool=1.5)
        assert not client.follow_redirects
        result = deliver(resource.provider(), EMAIL, client, max_attempts=resource.max_attempts)
    assert result == DeliveryResult("sent", "sb-1", attempts=1)


@pytest.mark.parametrize(
    "provider",
    [
        SendGridProvider(KEY),
        SandboxProvider(KEY),
        PostmarkProvider(KEY),
        WebhookProvider("https://hooks.example.com/mail", KEY),
    ],
    ids=lambda p: p.name,
)
def test_every_provider_call_says_it_is_lakemail(provider: EmailProvider) -> None:
    """No User-Agent went out: `client.send` does not add the client's default headers (#13, point 13)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[]) if request.method == "GET" else accepted("m-1")

    with EmailProviderResource().client(httpx.MockTransport(answer)) as client:
        deliver(provider, EMAIL, client)
        if provider.lookup_request("s-1") is not None:
            assert lookup(provider, "s-1", client, secret="s") is None
    assert [r.headers.get("User-Agent") for r in seen] == [USER_AGENT] * len(seen)
    assert re.fullmatch(r"lakemail/\d+\.\d+\S*", USER_AGENT)

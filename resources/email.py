"""The delivery loop over httpx (retries, circuit breaker, look-ups) and the `email` Dagster resource.

The policy (what a status means, how long to wait) is pure and lives in `transforms.sends.policy`.
Nothing here logs an address, a user id or the api key.
"""

from __future__ import annotations

import functools
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
import httpx
from pydantic import Field

from resources.deadline import send_within
from resources.provider_metrics import count_answer, count_retry
from resources.provider_pause import ProviderPause
from resources.providers import (
    NOT_SENT,
    REFUSED_LOCALLY,
    USER_AGENT,
    DeliveryStatus,
    EmailProvider,
    provider_for,
)
from transforms.sends.message import Email, sent_by_us
from transforms.sends.policy import (
    RetryBudget,
    Verdict,
    classify_response,
    describe_error,
    inactive_recipient,
    retry_delay,
    server_delay,
)


@dataclass(frozen=True)
class DeliveryResult:
    """How one send ended in this run. `last_error` holds status codes, error classes, provider messages."""

    status: DeliveryStatus
    provider_message_id: str | None = None
    attempts: int = 0  # tries made, a connection that failed included
    last_error: str | None = None
    retried: bool = False
    circuit_open: bool = False  # every send would fail alike: stop sending the rest of the batch
    circuit_cause: str | None = None  # why: "credentials" (401/403), "configuration" (a redirect, a bad key)
    retry_in: float | None = None  # `retrying`: the wait the provider asked for that did not fit this run
    inactive_recipient: bool = False  # `failed_permanent`: the provider refuses the address (suppress it)
    rate_limited: bool = False  # the last answer was a 429 naming its window (`retry_in`): all calls wait


@dataclass(frozen=True)
class _Outcome:
    verdict: Verdict
    error: str | None = None
    message_id: str | None = None
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    inactive: bool = False
    rate_limited: bool = False  # a 429


def _attempt(
    provider: EmailProvider, email: Email, client: httpx.Client, monotonic: Callable[[], float]
) -> _Outcome:
    """One request and what it means. Only the exception class is kept: messages may hold the URL or key."""
    try:
        request = provider.build_request(email)
    except UnicodeEncodeError as exc:
        if exc.encoding != "ascii":  # httpx encodes header values as ASCII; the body (UTF-8) is the email's
            raise
        return _Outcome(Verdict.CONFIG, _refused(exc))
    try:
        response = send_within(client, request, monotonic)
    except NOT_SENT as exc:
        count_answer(provider.name, type(exc).__name__)
        return _Outcome(Verdict.RETRY, type(exc).__name__)
    except REFUSED_LOCALLY as exc:
        return _Outcome(Verdict.CONFIG, _refused(exc))
    except httpx.RequestError as exc:
        # Read / write timeouts (an answer past the call's deadline too), a dropped connection, a garbled
        # answer: the request may have reached the provider, and resending could deliver the email twice.
        count_answer(provider.name, type(exc).__name__)
        return _Outcome(Verdict.UNKNOWN, type(exc).__name__)
    count_answer(provider.name, response.status_code)
    verdict = classify_response(
        response.status_code,
        response.content,
        same_target=_same_target(response),
        idempotent=provider.idempotent,
    )
    if verdict is Verdict.SENT:
        return _Outcome(verdict, message_id=provider.message_id(response))
    error = describe_error(response.status_code, response.content)
    inactive = verdict is Verdict.PERMANENT and inactive_recipient(response.status_code, response.content)
    limited = response.status_code == 429
    return _Outcome(verdict, error, headers=response.headers, inactive=inactive, rate_limited=limited)


def _refused(error: Exception) -> str:
    """`last_error` of a request refused before anything was sent: a header (the key) or the URL."""
    return (
        f"{type(error).__name__}: not sent, no valid request (check LAKEMAIL_ESP_API_KEY, LAKEMAIL_ESP_URL)"
    )


def _same_target(response: httpx.Response) -> bool:
    """Whether a redirect leads to the URL the request went to but for its scheme, host or port."""
    location = response.headers.get("Location")
    if location is None:
        return False
    try:
        target = response.request.url.join(location)
    except httpx.InvalidURL:
        return False
    return target.raw_path == response.request.url.raw_path


# Why a verdict opens the circuit (what the run's log and metadata say).
CIRCUIT_CAUSES = {Verdict.AUTH: "credentials", Verdict.CONFIG: "configuration"}
_FINAL: dict[Verdict, DeliveryStatus] = {
    Verdict.SENT: "sent",
    Verdict.PERMANENT: "failed_permanent",
    Verdict.UNKNOWN: "unknown",
    Verdict.AUTH: "retrying",
    Verdict.CONFIG: "retrying",
    Verdict.RETRY: "retrying",
}


def deliver(
    provider: EmailProvider,
    email: Email,
    client: httpx.Client,
    *,
    max_attempts: int = 5,
    max_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    pause: ProviderPause | None = None,
) -> DeliveryResult:
    """Send `email` once, retrying what is safe to retry within `max_attempts` and `max_seconds`.

    - connect errors (the request never left), 408, 429 and 5xx are retried after `retry_delay`
      (honouring Retry-After / X-RateLimit-Reset); when attempts or time run out the result is
      `retrying`: the send is not failed, it stays in the outbox for a later run;
    - a timeout or broken connection after the request was sent is `unknown` at once, never resent here
      (the provider may have taken it; a later run may send it again where the provider dedupes on its
      idempotency key); so is an answer still arriving past the call's deadline (`resources.deadline`,
      by `monotonic`), and a 409 to a request with an idempotency key (one with that key under way);
    - 401/403 (or a Postmark account error) stops at once: `retrying` with `circuit_open`, so the
      caller holds the rest of the batch instead of hammering a provider that refuses us; so does a
      redirect of the request itself (a provider URL that is not the API's own), and a request httpx
      refuses to make (a key with a line break or a non-ASCII character);
    - any other 4xx is `failed_permanent`, with the status and the provider's message (no address);
      Postmark's inactive recipient (422, ErrorCode 406) says so (`inactive_recipient`): suppress it.
    Never sleeps past `max_seconds`: a wait that would overrun it ends the run's attempts instead.
    `pause`, shared by a run's calls: a 429 naming its window holds them all (`rate_limited`), and no retry
    starts within a window another call heard (one heard while this call waits ends its tries).
    """
    budget = RetryBudget(max_attempts=max_attempts, max_seconds=max_seconds)
    rng = rng or random.Random()
    pause = pause or ProviderPause(clock)  # alone, it holds only this call's own windows
    started = clock()
    attempts = 0
    while True:
        outcome = _attempt(provider, email, client, monotonic)
        attempts += 1
        hinted = named = None
        if outcome.verdict is Verdict.RETRY:
            now = clock()
            named = server_delay(outcome.headers, now=now) if outcome.rate_limited else None
            own = retry_delay(
                attempts - 1, outcome.headers, now=now, rng=rng, base=budget.base, cap=budget.cap
            )
            delay, ends = pause.wait(own, window=named), pause.ends
            if budget.allows(attempts, now - started, delay):
                count_retry(provider.name)
                sleep(delay)
                if pause.ends == ends:
                    continue
                hinted, named = pause.left(), None  # another call heard a longer window meanwhile
            else:
                hinted = pause.longer(server_delay(outcome.headers, now=now))
        return _result(outcome, attempts, retry_in=hinted, rate_limited=bool(named))


def _result(
    outcome: _Outcome, attempts: int, *, retry_in: float | None, rate_limited: bool
) -> DeliveryResult:
    return DeliveryResult(
        status=_FINAL[outcome.verdict],
        provider_message_id=outcome.message_id,
        attempts=attempts,
        last_error=outcome.error,
        retried=attempts > 1,
        circuit_open=outcome.verdict in CIRCUIT_CAUSES,
        circuit_cause=CIRCUIT_CAUSES.get(outcome.verdict),
        retry_in=retry_in,
        inactive_recipient=outcome.inactive,
        rate_limited=rate_limited,
    )


LOOKUP_FAILED = "lookup_failed"


def lookup(
    provider: EmailProvider,
    send_id: str,
    client: httpx.Client,
    *,
    secret: str,
    monotonic: Callable[[], float] = time.monotonic,
) -> str | None:
    """The provider's message id for `send_id`, None when it has none; LOOKUP_FAILED when it cannot say.

    Only a message that carries this home's mark for `send_id` (made with `secret` when it was sent)
    counts: one stored by anyone else under the same id does not settle the send. Only call it for
    providers whose `lookup_request` is not None.
    """
    request = provider.lookup_request(send_id)
    if request is None:
        raise ValueError(f"{provider.name} cannot look up sends")
    try:
        response = send_within(client, request, monotonic)
    except httpx.HTTPError as exc:
        count_answer(provider.name, type(exc).__name__)
        return LOOKUP_FAILED
    count_answer(provider.name, response.status_code)
    if response.status_code != 200:
        return LOOKUP_FAILED
    return provider.looked_up(response, lambda args: sent_by_us(args, send_id, secret))


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi, SSL_CERT_FILE), made once per process: loading the CA
    bundle takes tens of milliseconds, and every micro-batch opens a client."""
    return httpx.create_ssl_context()


class EmailProviderResource(dg.ConfigurableResource):
    """The email provider (`LAKEMAIL_ESP`); bind `api_key` with `dg.EnvVar("LAKEMAIL_ESP_API_KEY")`."""

    esp: str = "sandbox"
    url: str | None = None
    api_key: str = Field(default="", repr=False)  # never in a repr, a log line or metadata
    sender: str = "lakemail <shop@example.com>"
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0  # each read; a call as a whole gets connect_timeout_s + read_timeout_s
    max_attempts: int = 5
    max_seconds: float = 60.0  # one email's retries within a run
    run_seconds: float = 120.0  # all of a run's deliveries; the rest waits for the next run
    concurrency: int = 8  # emails in flight at once; the first of a run goes alone, as a probe
    circuit_cool_off_s: float = 30.0  # after a 401/403, the outbox waits this long before one more try
    lookup_after_s: float = 10.0  # an `unknown` send is looked up (where the provider can say) after this

    def provider(self) -> EmailProvider:
        """The configured provider; ValueError naming the variable when the configuration is unusable."""
        return provider_for(self.esp, self.url, self.api_key)

    def client(self, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        """An HTTP client with this resource's timeouts, to use as a context manager (`transport`: tests)."""
        timeout = httpx.Timeout(
            connect=self.connect_timeout_s,
            read=self.read_timeout_s,
            write=self.read_timeout_s,
            pool=self.connect_timeout_s,
        )
        # No redirects: a send API that redirects is misconfigured, and a POST must not wander off.
        return httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            verify=tls_context(),
        )

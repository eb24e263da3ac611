"""Email providers over httpx, the delivery loop (retries, circuit breaker) and the Dagster resource.

The policy (what a status means, how long to wait) is pure and lives in `transforms.delivery`; the
request bodies live in `transforms.payloads`. Nothing here logs an address, a user id or the api key.
"""

from __future__ import annotations

import functools
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import dagster as dg
import httpx
from pydantic import Field

from orchestration.settings import ESPS
from transforms.content import Shop
from transforms.delivery import (
    RetryBudget,
    Verdict,
    classify_response,
    describe_error,
    retry_delay,
    server_delay,
)
from transforms.outbound import Email
from transforms.payloads import postmark_payload, sendgrid_payload, webhook_payload

SANDBOX_URL = "http://127.0.0.1:8025"
SANDBOX_API_KEY = "sandbox-key"  # the local sandbox's default key (not a secret: loopback only)
SENDGRID_URL = "https://api.sendgrid.com"
POSTMARK_URL = "https://api.postmarkapp.com"
USER_AGENT = "lakemail/0.1"
JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}

DeliveryStatus = Literal["sent", "retrying", "failed_permanent", "unknown"]

# The request never reached the provider: always safe to try again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Refused by httpx itself before anything was sent, and it would be refused again.
REFUSED_LOCALLY = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class EmailProvider(Protocol):
    """One email service: how to ask it to send an email, and where its answer keeps the message id."""

    @property
    def name(self) -> str: ...

    def build_request(self, email: Email) -> httpx.Request: ...

    def message_id(self, response: httpx.Response) -> str | None: ...

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        """A request asking the provider whether it holds the email of `send_id` (None: it cannot say)."""
        ...

    def looked_up(self, response: httpx.Response) -> str | None:
        """The message id of the email `lookup_request` asked about, or None when it has none."""
        ...


def _bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _json_field(response: httpx.Response, key: str) -> str | None:
    try:
        document = response.json()
    except ValueError:  # not JSON (json.JSONDecodeError and UnicodeDecodeError are both ValueErrors)
        return None
    value = document.get(key) if isinstance(document, dict) else None
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True)
class SendGridProvider:
    """SendGrid v3: `POST {base}/v3/mail/send` with a bearer key; the id comes back in `X-Message-Id`."""

    api_key: str = field(default="", repr=False)
    base_url: str = SENDGRID_URL
    name: str = "sendgrid"

    def build_request(self, email: Email) -> httpx.Request:
        url = f"{self.base_url.rstrip('/')}/v3/mail/send"
        headers = {**JSON_HEADERS, **_bearer(self.api_key)}
        return httpx.Request("POST", url, json=sendgrid_payload(email), headers=headers)

    def message_id(self, response: httpx.Response) -> str | None:
        return response.headers.get("X-Message-Id") or None

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        return None  # the Email Activity API is delayed and a paid add-on: not a reliable answer

    def looked_up(self, response: httpx.Response) -> str | None:
        return None


@dataclass(frozen=True)
class SandboxProvider(SendGridProvider):
    """The local sandbox: the SendGrid v3 API on 127.0.0.1:8025 (the key is sent when one is set).

    It can be asked whether it holds a send (`GET /api/messages?send_id=`), so an interrupted or
    ambiguous send is settled by asking, not by guessing.
    """

    base_url: str = SANDBOX_URL
    name: str = "sandbox"

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        url = f"{self.base_url.rstrip('/')}/api/messages"
        return httpx.Request("GET", url, params={"send_id": send_id}, headers=_bearer(self.api_key))

    def looked_up(self, response: httpx.Response) -> str | None:
        try:
            found = response.json()
        except ValueError:
            return None
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            return None
        return str(found[0].get("id") or "") or None


@dataclass(frozen=True)
class PostmarkProvider:
    """Postmark: `POST {base}/email` with `X-Postmark-Server-Token`; the id is `MessageID` in the JSON."""

    api_key: str = field(default="", repr=False)
    base_url: str = POSTMARK_URL
    name: str = "postmark"

    def build_request(self, email: Email) -> httpx.Request:
        headers = {**JSON_HEADERS, "X-Postmark-Server-Token": self.api_key}
        return httpx.Request(
            "POST", f"{self.base_url.rstrip('/')}/email", json=postmark_payload(email), headers=headers
        )

    def message_id(self, response: httpx.Response) -> str | None:
        return _json_field(response, "MessageID")

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        return None  # outbound message search is by recipient or tag, not by our id: no reliable answer

    def looked_up(self, response: httpx.Response) -> str | None:
        return None


@dataclass(frozen=True)
class WebhookProvider:
    """Any HTTP endpoint: the email as JSON, an optional bearer key, `send_id` as the idempotency key."""

    url: str
    api_key: str = field(default="", repr=False)
    name: str = "webhook"

    def build_request(self, email: Email) -> httpx.Request:
        # The receiver may dedupe on Idempotency-Key; lakemail still never resends an `unknown` send.
        headers = {**JSON_HEADERS, **_bearer(self.api_key), "Idempotency-Key": email.send_id}
        return httpx.Request("POST", self.url, json=webhook_payload(email), headers=headers)

    def message_id(self, response: httpx.Response) -> str | None:
        return _json_field(response, "id") or response.headers.get("X-Message-Id") or None

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        return None

    def looked_up(self, response: httpx.Response) -> str | None:
        return None


def provider_for(esp: str, url: str | None, api_key: str) -> EmailProvider:
    """The provider named by `LAKEMAIL_ESP`, at `url` (`LAKEMAIL_ESP_URL`) when given, else its default.

    Raises ValueError naming the variable at fault; the message never holds the key or the URL.
    """
    if esp not in ESPS:
        raise ValueError(f"LAKEMAIL_ESP={esp!r} must be one of {', '.join(ESPS)}")
    if url is not None:
        _check_url(url)
    if esp in ("sendgrid", "postmark") and not api_key:
        raise ValueError(f"LAKEMAIL_ESP={esp} needs LAKEMAIL_ESP_API_KEY")
    if esp == "sandbox":
        return SandboxProvider(api_key, url or SANDBOX_URL)
    if esp == "sendgrid":
        return SendGridProvider(api_key, url or SENDGRID_URL)
    if esp == "postmark":
        return PostmarkProvider(api_key, url or POSTMARK_URL)
    if url is None:
        raise ValueError("LAKEMAIL_ESP=webhook needs LAKEMAIL_ESP_URL")
    return WebhookProvider(url, api_key)


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("LAKEMAIL_ESP_URL must be an http:// or https:// URL")


@dataclass(frozen=True)
class DeliveryResult:
    """How one send ended in this run. `last_error` holds status codes, error classes, provider messages."""

    status: DeliveryStatus
    provider_message_id: str | None = None
    attempts: int = 0  # tries made, a connection that failed included
    last_error: str | None = None
    retried: bool = False
    circuit_open: bool = False  # the provider refused our credentials: stop sending the rest of the batch
    retry_in: float | None = None  # `retrying`: the wait the provider asked for that did not fit this run


@dataclass(frozen=True)
class _Outcome:
    verdict: Verdict
    error: str | None = None
    message_id: str | None = None
    headers: httpx.Headers = field(default_factory=httpx.Headers)


def _attempt(provider: EmailProvider, email: Email, client: httpx.Client) -> _Outcome:
    """One request and what it means. Only the exception class is kept: messages may hold the URL."""
    try:
        response = client.send(provider.build_request(email))
    except NOT_SENT as exc:
        return _Outcome(Verdict.RETRY, type(exc).__name__)
    except REFUSED_LOCALLY as exc:
        return _Outcome(Verdict.PERMANENT, type(exc).__name__)
    except httpx.RequestError as exc:
        # Read / write timeouts, a dropped connection, a garbled answer: the request may have reached
        # the provider, and resending could deliver the email twice.
        return _Outcome(Verdict.UNKNOWN, type(exc).__name__)
    verdict = classify_response(response.status_code, response.content)
    if verdict is Verdict.SENT:
        return _Outcome(verdict, message_id=provider.message_id(response))
    return _Outcome(verdict, describe_error(response.status_code, response.content), headers=response.headers)


_FINAL: dict[Verdict, DeliveryStatus] = {
    Verdict.SENT: "sent",
    Verdict.PERMANENT: "failed_permanent",
    Verdict.UNKNOWN: "unknown",
    Verdict.AUTH: "retrying",
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
) -> DeliveryResult:
    """Send `email` once, retrying what is safe to retry within `max_attempts` and `max_seconds`.

    - connect errors (the request never left), 408, 429 and 5xx are retried after `retry_delay`
      (honouring Retry-After / X-RateLimit-Reset); when attempts or time run out the result is
      `retrying`: the send is not failed, it stays in the outbox for a later run;
    - a timeout or broken connection after the request was sent is `unknown` at once, never resent here
      (the provider may have taken it; none of ours takes an idempotency key);
    - 401/403 (or a Postmark account error) stops at once: `retrying` with `circuit_open`, so the
      caller holds the rest of the batch instead of hammering a provider that refuses us;
    - any other 4xx is `failed_permanent`, with the status and the provider's message (no address).
    Never sleeps past `max_seconds`: a wait that would overrun it ends the run's attempts instead.
    """
    budget = RetryBudget(max_attempts=max_attempts, max_seconds=max_seconds)
    rng = rng or random.Random()
    started = clock()
    attempts = 0
    while True:
        outcome = _attempt(provider, email, client)
        attempts += 1
        if outcome.verdict is Verdict.RETRY:
            now = clock()
            delay = retry_delay(
                attempts - 1, outcome.headers, now=now, rng=rng, base=budget.base, cap=budget.cap
            )
            if budget.allows(attempts, now - started, delay):
                sleep(delay)
                continue
            hinted = server_delay(outcome.headers, now=now)
        else:
            hinted = None
        return DeliveryResult(
            status=_FINAL[outcome.verdict],
            provider_message_id=outcome.message_id,
            attempts=attempts,
            last_error=outcome.error,
            retried=attempts > 1,
            circuit_open=outcome.verdict is Verdict.AUTH,
            retry_in=hinted,
        )


LOOKUP_FAILED = "lookup_failed"


def lookup(provider: EmailProvider, send_id: str, client: httpx.Client) -> str | None:
    """The provider's message id for `send_id`, None when it has none; LOOKUP_FAILED when it cannot say.

    Only call it for providers whose `lookup_request` is not None.
    """
    request = provider.lookup_request(send_id)
    if request is None:
        raise ValueError(f"{provider.name} cannot look up sends")
    try:
        response = client.send(request)
    except httpx.HTTPError:
        return LOOKUP_FAILED
    if response.status_code != 200:
        return LOOKUP_FAILED
    return provider.looked_up(response)


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
    read_timeout_s: float = 10.0
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


class ShopResource(dg.ConfigurableResource):
    """Who the emails come from and where their links go (the demo shop unless configured)."""

    name: str = "Lakemail Demo Shop"
    home_url: str = "https://shop.example"  # the simulator's demo shop
    postal_address: str = "Lakemail Demo Shop, 1 Example Street, 10115 Berlin, Germany"
    support_email: str = "support@shop.example"
    currency: str = "EUR"
    public_url: str = SANDBOX_URL  # serves /unsubscribe/<token> (the collector or the sandbox)
    unsubscribe_mailto: str = "mailto:unsubscribe@shop.example"
    staleness_hours: float = 72.0  # a profile older than this gets generic content

    def shop(self) -> Shop:
        return Shop(
            name=self.name,
            home_url=self.home_url,
            postal_address=self.postal_address,
            support_email=self.support_email,
            currency=self.currency,
        )

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.public_url.rstrip('/')}/unsubscribe/{token}"

"""The email providers lakemail speaks (SendGrid v3, the sandbox, Postmark, a webhook): request and answer.

Request bodies are pure (`transforms.sends.payloads`); nothing here logs an address or the api key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import ClassVar, Literal, Protocol

import httpx

from transforms.sends.message import Email
from transforms.sends.payloads import postmark_payload, sendgrid_payload, webhook_payload

ESPS = ("sandbox", "sendgrid", "postmark", "webhook")
SANDBOX_URL = "http://127.0.0.1:8025"
SANDBOX_API_KEY = "sandbox-key"  # the local sandbox's default key (not a secret: loopback only)
SENDGRID_URL = "https://api.sendgrid.com"
POSTMARK_URL = "https://api.postmarkapp.com"
MAX_PORT = 65535


def _version() -> str:
    try:
        return metadata.version("lakemail")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0"


# On every request itself: `client.send(request)` does not add the client's default headers.
USER_AGENT = f"lakemail/{_version()}"
JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": USER_AGENT}

DeliveryStatus = Literal["sent", "retrying", "failed_permanent", "unknown"]
Trusted = Callable[[Mapping[str, object]], bool]  # a looked-up message's custom args -> sent by us

# The request never reached the provider: always safe to try again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Refused by httpx itself before anything was sent, and it would be refused again (the settings' fault).
REFUSED_LOCALLY = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class EmailProvider(Protocol):
    """One email service: how to ask it to send an email, and where its answer keeps the message id."""

    @property
    def name(self) -> str: ...

    @property
    def idempotent(self) -> bool:
        """Whether every request carries the send's idempotency key (its `send_id`), so the receiver takes
        a resend of the same send as the first: an `unknown` send may then be sent again."""
        ...

    def build_request(self, email: Email) -> httpx.Request: ...

    def message_id(self, response: httpx.Response) -> str | None: ...

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        """A request asking the provider whether it holds the email of `send_id` (None: it cannot say)."""
        ...

    def looked_up(self, response: httpx.Response, trusted: Trusted) -> str | None:
        """The message id of the email `lookup_request` asked about, or None when it has none.

        Only a message whose custom args `trusted` accepts counts: the provider's key may be shared.
        """
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
    idempotent: ClassVar[bool] = False  # v3 mail send takes no idempotency key

    def build_request(self, email: Email) -> httpx.Request:
        url = f"{self.base_url.rstrip('/')}/v3/mail/send"
        headers = {**JSON_HEADERS, **_bearer(self.api_key)}
        return httpx.Request("POST", url, json=sendgrid_payload(email), headers=headers)

    def message_id(self, response: httpx.Response) -> str | None:
        return response.headers.get("X-Message-Id") or None

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        return None  # the Email Activity API is delayed and a paid add-on: not a reliable answer

    def looked_up(self, response: httpx.Response, trusted: Trusted) -> str | None:
        return None


@dataclass(frozen=True)
class SandboxProvider(SendGridProvider):
    """The local sandbox: the SendGrid v3 API on 127.0.0.1:8025 (the key is sent when one is set).

    It can be asked whether it holds a send (`GET /api/messages?send_id=`), so an interrupted or
    ambiguous send is settled by asking, not by guessing; anyone with its key can store a message
    under a `send_id`, so only a message `trusted` accepts (this home's mark on it) settles one.
    """

    base_url: str = SANDBOX_URL
    name: str = "sandbox"

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        url = f"{self.base_url.rstrip('/')}/api/messages"
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **_bearer(self.api_key)}
        return httpx.Request("GET", url, params={"send_id": send_id}, headers=headers)

    def looked_up(self, response: httpx.Response, trusted: Trusted) -> str | None:
        try:
            found = response.json()
        except ValueError:
            return None
        for message in found if isinstance(found, list) else []:
            args = message.get("custom_args") if isinstance(message, dict) else None
            if isinstance(args, dict) and trusted(args) and message.get("id"):
                return str(message["id"])
        return None


@dataclass(frozen=True)
class PostmarkProvider:
    """Postmark: `POST {base}/email` with `X-Postmark-Server-Token`; the id is `MessageID` in the JSON."""

    api_key: str = field(default="", repr=False)
    base_url: str = POSTMARK_URL
    name: str = "postmark"
    idempotent: ClassVar[bool] = False  # its email API takes no idempotency key

    def build_request(self, email: Email) -> httpx.Request:
        headers = {**JSON_HEADERS, "X-Postmark-Server-Token": self.api_key}
        return httpx.Request(
            "POST", f"{self.base_url.rstrip('/')}/email", json=postmark_payload(email), headers=headers
        )

    def message_id(self, response: httpx.Response) -> str | None:
        return _json_field(response, "MessageID")

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        return None  # outbound message search is by recipient or tag, not by our id: no reliable answer

    def looked_up(self, response: httpx.Response, trusted: Trusted) -> str | None:
        return None


@dataclass(frozen=True)
class WebhookProvider:
    """Any HTTP endpoint: the email as JSON, an optional bearer key, `send_id` as the idempotency key."""

    url: str
    api_key: str = field(default="", repr=False)
    name: str = "webhook"
    idempotent: ClassVar[bool] = True  # `Idempotency-Key: <send_id>` on every request, a resend's too

    def build_request(self, email: Email) -> httpx.Request:
        # The receiver dedupes on Idempotency-Key: an `unknown` send is sent again with the same key.
        headers = {**JSON_HEADERS, **_bearer(self.api_key), "Idempotency-Key": email.send_id}
        return httpx.Request("POST", self.url, json=webhook_payload(email), headers=headers)

    def message_id(self, response: httpx.Response) -> str | None:
        return _json_field(response, "id") or response.headers.get("X-Message-Id") or None

    def lookup_request(self, send_id: str) -> httpx.Request | None:
        return None

    def looked_up(self, response: httpx.Response, trusted: Trusted) -> str | None:
        return None


def provider_for(esp: str, url: str | None, api_key: str) -> EmailProvider:
    """The provider named by `LAKEMAIL_ESP`, at `url` (`LAKEMAIL_ESP_URL`) when given, else its default.

    Raises ValueError naming the variable at fault; the message never holds the key or the URL.
    """
    if esp not in ESPS:
        raise ValueError(f"LAKEMAIL_ESP={esp!r} must be one of {', '.join(ESPS)}")
    check_endpoint(esp, url)
    if esp in ("sendgrid", "postmark") and not api_key:
        raise ValueError(f"LAKEMAIL_ESP={esp} needs LAKEMAIL_ESP_API_KEY")
    check_api_key(api_key)
    if esp == "sandbox":
        return SandboxProvider(api_key, url or SANDBOX_URL)
    if esp == "sendgrid":
        return SendGridProvider(api_key, url or SENDGRID_URL)
    if esp == "postmark":
        return PostmarkProvider(api_key, url or POSTMARK_URL)
    if url is None:
        raise ValueError("LAKEMAIL_ESP=webhook needs LAKEMAIL_ESP_URL")
    return WebhookProvider(url, api_key)


def check_endpoint(esp: str, url: str | None) -> None:
    """ValueError naming LAKEMAIL_ESP_URL (never its value) unless provider `esp` can be reached at `url`
    (None: its default): start-up checks it too, since `provider_for` refusing it failed every send step."""
    if url is not None:
        _check_url(url)
    elif esp == "webhook":
        raise ValueError("LAKEMAIL_ESP=webhook needs LAKEMAIL_ESP_URL")


def check_api_key(api_key: str) -> None:
    """ValueError naming LAKEMAIL_ESP_API_KEY (never its value) unless it is printable ASCII without spaces:
    an HTTP header cannot carry anything else, so every send would be refused before it left."""
    if any(not "\x21" <= char <= "\x7e" for char in api_key):
        raise ValueError(
            "LAKEMAIL_ESP_API_KEY must be printable ASCII without spaces or line breaks "
            "(a key read from a file often ends in a newline)"
        )


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    # a port out of range was taken, and every send failed to connect (the circuit opened, for good)
    port_ok = parsed is not None and (parsed.port is None or 1 <= parsed.port <= MAX_PORT)
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host or not port_ok:
        raise ValueError(f"LAKEMAIL_ESP_URL must be an http:// or https:// URL (any port 1 to {MAX_PORT})")

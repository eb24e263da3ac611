"""Provider request bodies and the HTTP requests built from them, against each provider's documented shape."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pytest

from resources.providers import (
    POSTMARK_URL,
    SANDBOX_URL,
    SENDGRID_URL,
    EmailProvider,
    PostmarkProvider,
    SandboxProvider,
    SendGridProvider,
    WebhookProvider,
    provider_for,
)
from services.sandbox.mail import parse_mail
from transforms.sends.message import Email, send_id_for
from transforms.sends.payloads import postmark_payload, sendgrid_payload, split_address, webhook_payload

SEND_ID = send_id_for("t-1")
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://shop.example.com/u/s-abc.mac>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
EMAIL = Email(
    send_id=SEND_ID,
    to="ada@example.org",
    sender="lakemail <shop@example.com>",
    subject="You left something behind",
    preheader="Your cart is waiting",
    html="<p>Hi Ada</p>",
    text="Hi Ada",
    headers=UNSUBSCRIBE,
    custom_args={"trigger_id": "t-1", "kind": "abandoned_cart", "variant": "a"},
)
ARGS = {"trigger_id": "t-1", "kind": "abandoned_cart", "variant": "a", "send_id": SEND_ID}


def test_sendgrid_payload_has_the_documented_shape() -> None:
    assert sendgrid_payload(EMAIL) == {
        "personalizations": [{"to": [{"email": "ada@example.org"}], "custom_args": ARGS}],
        "from": {"email": "shop@example.com", "name": "lakemail"},
        "subject": "You left something behind",
        "content": [
            {"type": "text/plain", "value": "Hi Ada"},
            {"type": "text/html", "value": "<p>Hi Ada</p>"},
        ],
        "custom_args": ARGS,
        "headers": UNSUBSCRIBE,
        "categories": ["abandoned_cart"],
    }


def test_sendgrid_custom_args_are_strings_and_carry_the_send_id() -> None:
    email = Email(SEND_ID, "a@example.org", "shop@example.com", "s", "p", "<p>h</p>", "t", {}, {})
    body = sendgrid_payload(email)
    assert body["custom_args"] == {"send_id": SEND_ID}
    assert body["personalizations"][0]["custom_args"] == {"send_id": SEND_ID}
    assert all(isinstance(v, str) for v in sendgrid_payload(EMAIL)["custom_args"].values())
    # No kind: no category; no headers: no headers field; a bare sender has no name.
    assert "categories" not in body and "headers" not in body
    assert body["from"] == {"email": "shop@example.com"}


def test_sendgrid_leaves_out_an_empty_part_and_keeps_text_plain_first() -> None:
    html_only = Email(SEND_ID, "a@example.org", "s@example.com", "s", "p", "<p>h</p>", "", {}, {})
    assert sendgrid_payload(html_only)["content"] == [{"type": "text/html", "value": "<p>h</p>"}]
    types = [part["type"] for part in sendgrid_payload(EMAIL)["content"]]
    assert types == ["text/plain", "text/html"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lakemail <shop@example.com>", ("shop@example.com", "lakemail")),
        ('"Shop, Inc." <shop@example.com>', ("shop@example.com", "Shop, Inc.")),
        ("shop@example.com", ("shop@example.com", None)),
        ("  shop@example.com ", ("shop@example.com", None)),
        ("Acme, Inc. <shop@acme.example>", ("shop@acme.example", "Acme, Inc.")),
        ("Shop: Paris <shop@acme.example>", ("shop@acme.example", "Shop: Paris")),
        ('"Say \\"hi\\"" <shop@acme.example>', ("shop@acme.example", 'Say "hi"')),
        ("<shop@acme.example>", ("shop@acme.example", None)),
    ],
)
def test_split_address(text: str, expected: tuple[str, str | None]) -> None:
    assert split_address(text) == expected


@pytest.mark.parametrize(
    ("sender", "name", "postmark"),
    [
        ("Acme, Inc. <shop@acme.example>", "Acme, Inc.", '"Acme, Inc." <shop@acme.example>'),
        ("Acme Inc. <shop@acme.example>", "Acme Inc.", '"Acme Inc." <shop@acme.example>'),
        ("Shop: Paris <shop@acme.example>", "Shop: Paris", '"Shop: Paris" <shop@acme.example>'),
        (
            'Le "Chic", Paris <shop@acme.example>',
            'Le "Chic", Paris',
            '"Le \\"Chic\\", Paris" <shop@acme.example>',
        ),
        ("Café Olé <shop@acme.example>", "Café Olé", "Café Olé <shop@acme.example>"),
    ],
)
def test_a_shop_name_with_punctuation_reaches_every_provider_whole(
    sender: str, name: str, postmark: str
) -> None:
    """`LAKEMAIL_FROM="Acme, Inc. <...>"` gave SendGrid (and the sandbox) the from address `Acme`: every
    email refused 400, `failed_permanent` (found by review); Postmark needs such a name quoted."""
    email = replace(EMAIL, sender=sender)
    body = sendgrid_payload(email)
    assert body["from"] == {"email": "shop@acme.example", "name": name}
    assert parse_mail(json.dumps(body).encode()).sender == "shop@acme.example"  # the sandbox takes it
    assert postmark_payload(email)["From"] == postmark
    assert split_address(postmark) == ("shop@acme.example", name)


def test_postmark_payload_has_the_documented_shape() -> None:
    assert postmark_payload(EMAIL) == {
        "From": "lakemail <shop@example.com>",
        "To": "ada@example.org",
        "Subject": "You left something behind",
        "TextBody": "Hi Ada",
        "HtmlBody": "<p>Hi Ada</p>",
        "Headers": [
            {"Name": "List-Unsubscribe", "Value": "<https://shop.example.com/u/s-abc.mac>"},
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        ],
        "Metadata": ARGS,
        "MessageStream": "broadcast",
        "Tag": "abandoned_cart",
    }


def test_webhook_payload_carries_every_field() -> None:
    assert webhook_payload(EMAIL) == {
        "send_id": SEND_ID,
        "to": "ada@example.org",
        "from": "lakemail <shop@example.com>",
        "subject": "You left something behind",
        "preheader": "Your cart is waiting",
        "text": "Hi Ada",
        "html": "<p>Hi Ada</p>",
        "headers": UNSUBSCRIBE,
        "custom_args": ARGS,
    }


@pytest.mark.parametrize(
    ("provider", "url", "auth", "body"),
    [
        (
            SendGridProvider("SG.key"),
            "https://api.sendgrid.com/v3/mail/send",
            ("Authorization", "Bearer SG.key"),
            sendgrid_payload(EMAIL),
        ),
        (
            SandboxProvider("local-key"),
            "http://127.0.0.1:8025/v3/mail/send",
            ("Authorization", "Bearer local-key"),
            sendgrid_payload(EMAIL),
        ),
        (
            PostmarkProvider("pm-token"),
            "https://api.postmarkapp.com/email",
            ("X-Postmark-Server-Token", "pm-token"),
            postmark_payload(EMAIL),
        ),
        (
            WebhookProvider("https://hooks.example.com/mail?x=1", "hook-key"),
            "https://hooks.example.com/mail?x=1",
            ("Authorization", "Bearer hook-key"),
            webhook_payload(EMAIL),
        ),
    ],
    ids=["sendgrid", "sandbox", "postmark", "webhook"],
)
def test_each_provider_builds_its_documented_request(
    provider: EmailProvider, url: str, auth: tuple[str, str], body: dict[str, Any]
) -> None:
    request = provider.build_request(EMAIL)
    assert request.method == "POST"
    assert str(request.url) == url
    assert request.headers[auth[0]] == auth[1]
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert json.loads(request.content) == body


def test_webhook_sends_the_send_id_as_idempotency_key_and_no_auth_without_a_key() -> None:
    request = WebhookProvider("http://127.0.0.1:9000/hook").build_request(EMAIL)
    assert request.headers["Idempotency-Key"] == SEND_ID
    assert "Authorization" not in request.headers


def test_sandbox_without_a_key_sends_no_authorization_header() -> None:
    assert "Authorization" not in SandboxProvider().build_request(EMAIL).headers


@pytest.mark.parametrize(
    ("esp", "url", "kind", "base"),
    [
        ("sandbox", None, SandboxProvider, SANDBOX_URL),
        ("sandbox", "http://127.0.0.1:9025/", SandboxProvider, "http://127.0.0.1:9025/"),
        ("sendgrid", None, SendGridProvider, SENDGRID_URL),
        ("sendgrid", "https://api.eu.sendgrid.com", SendGridProvider, "https://api.eu.sendgrid.com"),
        ("postmark", None, PostmarkProvider, POSTMARK_URL),
    ],
)
def test_provider_for_picks_the_provider_and_its_base_url(
    esp: str, url: str | None, kind: type, base: str
) -> None:
    provider = provider_for(esp, url, "key")
    assert type(provider) is kind and provider.name == esp
    assert provider.build_request(EMAIL).url.host == httpx.URL(base).host
    assert provider.build_request(EMAIL).url.port == httpx.URL(base).port


def test_provider_for_webhook() -> None:
    provider = provider_for("webhook", "https://hooks.example.com/mail", "")
    assert isinstance(provider, WebhookProvider) and provider.name == "webhook"
    assert provider.build_request(EMAIL).url == httpx.URL("https://hooks.example.com/mail")


@pytest.mark.parametrize(
    ("esp", "url", "api_key", "variable"),
    [
        ("mailgun", None, "key", "LAKEMAIL_ESP"),
        ("webhook", None, "key", "LAKEMAIL_ESP_URL"),
        ("sendgrid", None, "", "LAKEMAIL_ESP_API_KEY"),
        ("postmark", None, "", "LAKEMAIL_ESP_API_KEY"),
        ("sandbox", "ftp://files.example.com", "key", "LAKEMAIL_ESP_URL"),
        ("webhook", "not a url", "key", "LAKEMAIL_ESP_URL"),
    ],
)
def test_provider_for_names_the_variable_at_fault(
    esp: str, url: str | None, api_key: str, variable: str
) -> None:
    with pytest.raises(ValueError, match=variable) as raised:
        provider_for(esp, url, api_key)
    assert "files.example.com" not in str(raised.value)


def test_provider_repr_hides_the_key() -> None:
    for provider in (
        SendGridProvider("SG.secret"),
        PostmarkProvider("SG.secret"),
        WebhookProvider("http://h", "SG.secret"),
    ):
        assert "SG.secret" not in repr(provider)

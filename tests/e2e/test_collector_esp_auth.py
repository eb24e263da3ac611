"""Who may post the providers' webhooks, on the real collector on a real socket (found by review: they took
the tracking write key as HTTP Basic user, and that key is public, in every page's `/lakemail.js`, so anyone
could land forged bounces and spam reports and suppress any shopper's address). They take their own
secret, LAKEMAIL_ESP_WEBHOOK_KEY, as the Basic password, or SendGrid's Signed Event Webhook when its key is
configured; with neither they are off (503); the write key lands nothing."""

from __future__ import annotations

import base64
import contextlib
import gzip
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from services.server import ServerThread
from tests.e2e.test_collector_esp import AUTH, WEBHOOK_KEY, postmark, sendgrid
from tests.e2e.test_collector_unsubscribe import SECRET, collector_app, collector_lines
from tests.story import at
from transforms.erasure.records import address_key
from transforms.schema import SUPPRESSIONS_SCHEMA

NOW = at(50)  # the collector's clock (collector_app)
FORGED = postmark("Bounce", "HardBounce", "victim@example.com", 666)
SPAM = [sendgrid("spamreport", "victim@example.com", "sg-666")]


def basic(user: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


WRITE_KEY_POSTS = [basic("wk"), basic("wk", "wk"), basic("lakemail", "wk"), basic(WEBHOOK_KEY), {}]


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., httpx.Client]]:
    """Serves the collector of `lakemail serve collector` (write key `wk`) with these environment values."""
    monkeypatch.delenv("LAKEMAIL_API_KEY", raising=False)
    with contextlib.ExitStack() as stack:

        def start(settings: Settings, **env: str | None) -> httpx.Client:
            for name, value in env.items():
                if value is None:
                    monkeypatch.delenv(name, raising=False)
                else:
                    monkeypatch.setenv(name, value)
            server = stack.enter_context(ServerThread(collector_app(settings)))
            return stack.enter_context(httpx.Client(base_url=server.url))

        yield start


def test_the_public_write_key_lands_no_bounce_and_suppresses_no_one(
    settings: Settings, serve: Callable[..., httpx.Client], instance: dg.DagsterInstance
) -> None:
    collector = serve(settings, LAKEMAIL_ESP_WEBHOOK_KEY=WEBHOOK_KEY)
    for headers in WRITE_KEY_POSTS:  # the write key as user or password, the secret as user, nothing
        forged = collector.post("/v1/esp/postmark", content=orjson.dumps(FORGED), headers=headers)
        spam = collector.post("/v1/esp/sendgrid", content=orjson.dumps(SPAM), headers=headers)
        assert (forged.status_code, spam.status_code) == (401, 401), headers
        assert forged.json()["code"] == "invalid_webhook_key"
        assert WEBHOOK_KEY not in forged.text
    assert collector_lines(settings) == []

    real = postmark("Bounce", "HardBounce", "gone@example.com", 1001)
    taken = collector.post("/v1/esp/postmark", content=orjson.dumps(real), headers=AUTH)
    assert taken.json() == {"success": True, "landed": 1, "ignored": 0}
    assert [m["messageId"] for m in collector_lines(settings)] == ["postmark-1001"]
    assert process_once(settings, instance, now=at(60).isoformat())["status"] == "SUCCESS"
    rows = LakeResource(uri=settings.lake_uri).read("suppressions", SUPPRESSIONS_SCHEMA)
    assert rows.select("user_key", "reason").rows() == [
        (address_key("gone@example.com", SECRET), "hard_bounce")
    ]


def test_without_a_webhook_key_the_webhooks_are_off(
    settings: Settings, serve: Callable[..., httpx.Client]
) -> None:
    collector = serve(settings, LAKEMAIL_ESP_WEBHOOK_KEY=None, LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY=None)
    needs = {
        "postmark": "LAKEMAIL_ESP_WEBHOOK_KEY",
        "sendgrid": "LAKEMAIL_ESP_WEBHOOK_KEY or LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY",
    }
    for provider, body in [("postmark", orjson.dumps(FORGED)), ("sendgrid", orjson.dumps(SPAM))]:
        for headers in [*WRITE_KEY_POSTS, AUTH]:
            off = collector.post(f"/v1/esp/{provider}", content=body, headers=headers)
            assert (off.status_code, off.json()["code"]) == (503, "webhook_not_configured"), headers
            assert off.json()["message"] == f"the {provider} webhook is off until {needs[provider]} is set"
    assert collector_lines(settings) == []


def signed(key: ec.EllipticCurvePrivateKey, body: bytes, when: datetime) -> dict[str, str]:
    """SendGrid's Signed Event Webhook headers: ECDSA P-256 / SHA-256 over the timestamp then the body."""
    stamp = str(int(when.timestamp()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def public_text(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def test_a_signed_sendgrid_post_lands_and_a_tampered_or_stale_one_does_not(
    settings: Settings, serve: Callable[..., httpx.Client]
) -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    collector = serve(
        settings, LAKEMAIL_ESP_WEBHOOK_KEY=None, LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY=public_text(key)
    )
    body = orjson.dumps([sendgrid("bounce", "erin@example.com", "sg-1", type="bounce")])
    tampered = body.replace(b"erin@", b"olga@")
    late, early = NOW - timedelta(hours=37), NOW + timedelta(hours=37)

    def post(content: bytes, headers: dict[str, Any]) -> httpx.Response:
        return collector.post("/v1/esp/sendgrid", content=content, headers=headers)

    refused = {
        "tampered": post(tampered, signed(key, body, NOW)),
        "another key": post(body, signed(other, body, NOW)),
        "stale": post(body, signed(key, body, late)),
        "from the future": post(body, signed(key, body, early)),
        "unsigned": post(body, {}),
        "write key": post(body, basic("wk")),
        "no signature": post(body, signed(key, body, NOW) | {"X-Twilio-Email-Event-Webhook-Signature": ""}),
        "not base64": post(body, signed(key, body, NOW) | {"X-Twilio-Email-Event-Webhook-Signature": "%%"}),
        "other stamp": post(body, signed(key, body, NOW) | {"X-Twilio-Email-Event-Webhook-Timestamp": "1"}),
    }
    codes = {name: (r.status_code, r.json()["code"]) for name, r in refused.items()}
    assert codes == {
        "tampered": (401, "invalid_signature"),
        "another key": (401, "invalid_signature"),
        "stale": (401, "stale_signature"),
        "from the future": (401, "stale_signature"),
        "unsigned": (401, "invalid_signature"),
        "write key": (401, "invalid_signature"),
        "no signature": (401, "invalid_signature"),
        "not base64": (401, "invalid_signature"),
        "other stamp": (401, "stale_signature"),
    }
    assert collector_lines(settings) == []

    taken = post(body, signed(key, body, NOW - timedelta(hours=25)))  # a retry a day on: in the window
    assert taken.json() == {"success": True, "landed": 1, "ignored": 0}
    squeezed = gzip.compress(orjson.dumps(SPAM))  # signed as sent: the compressed bytes
    taken = post(squeezed, signed(key, squeezed, NOW) | {"Content-Encoding": "gzip"})
    assert taken.json() == {"success": True, "landed": 1, "ignored": 0}
    assert [m["messageId"] for m in collector_lines(settings)] == ["sendgrid-sg-1", "sendgrid-sg-666"]
    # Postmark has no signature: without LAKEMAIL_ESP_WEBHOOK_KEY its webhook stays off
    off = collector.post("/v1/esp/postmark", content=orjson.dumps(FORGED), headers=AUTH)
    assert (off.status_code, off.json()["code"]) == (503, "webhook_not_configured")

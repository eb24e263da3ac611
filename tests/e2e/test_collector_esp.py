"""The providers' event webhooks on the real collector, on a real socket, and what the real ingest makes of
them (found by a review: with LAKEMAIL_ESP=sendgrid or postmark nothing landed the bounces and spam
complaints those providers report only through their webhooks, so nothing suppressed a bounced address).
A hard bounce and a complaint suppress their address, a transient bounce no one; a webhook the
provider posts again lands duplicates the ingest counts and drops; no address reaches a log or a metric."""

from __future__ import annotations

import base64
import contextlib
import gzip
from collections.abc import Callable, Iterator
from datetime import timedelta, timezone
from typing import Any

import dagster as dg
import httpx
import orjson
import polars as pl
import pytest
from deltalake import write_deltalake

from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from services.collector.esp import ESP_MAX_BODY_BYTES
from services.server import ServerThread
from stores.suppressions import suppressed_users
from tests.e2e.test_collector_unsubscribe import SECRET, collector_app, collector_lines
from tests.story import at
from transforms.erasure.records import address_key
from transforms.schema import SENDS_SCHEMA, SUPPRESSIONS_SCHEMA
from transforms.sends.message import ORIGIN_ARG, origin_mark, send_id_for

WEBHOOK_KEY = "esp-webhook-key-0123456789"  # LAKEMAIL_ESP_WEBHOOK_KEY: never the write key (`wk`)
# the URL's `https://lakemail:<key>@host/...`: the key is the HTTP Basic password
AUTH = {"Authorization": "Basic " + base64.b64encode(f"lakemail:{WEBHOOK_KEY}".encode()).decode()}
SENDS = {user: send_id_for(f"t-{user}") for user in ("u-erin", "u-olga", "u-pat")}
SENT_AT = int(at(10).timestamp())


def ours(user: str) -> dict[str, str]:
    """The custom args of the email lakemail sent to `user` (transforms.sends.payloads)."""
    send_id = SENDS[user]
    return {
        "send_id": send_id,
        "trigger_id": f"t-{user}",
        "kind": "welcome",
        ORIGIN_ARG: origin_mark(send_id, SECRET),
    }


def sendgrid(event: str, email: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, "timestamp": SENT_AT, "event": event, "sg_event_id": event_id} | fields


def postmark(record: str, kind: str | None, email: str, event_id: int, **fields: Any) -> dict[str, Any]:
    bounced_at = at(20).astimezone(timezone(timedelta(hours=-5))).isoformat().replace("+00:00", "Z")
    body = {
        "RecordType": record,
        "ID": event_id,
        "Email": email,
        "BouncedAt": bounced_at,
        "MessageID": "pm-1",
    }
    return body | ({"Type": kind} if kind else {}) | fields


SENDGRID_BATCH = [
    sendgrid("processed", "erin@example.com", "sg-0", **ours("u-erin")),
    sendgrid(
        "bounce", "erin@example.com", "sg-1", type="bounce", reason="550 5.1.1 no such user", **ours("u-erin")
    ),
    sendgrid("bounce", "olga@example.com", "sg-2", type="blocked", **ours("u-olga")),
    sendgrid("spamreport", "dan@example.com", "sg-3"),
    sendgrid("dropped", "eve@example.com", "sg-4", reason="Bounced Address"),
    sendgrid("delivered", "pat@example.com", "sg-5", **ours("u-pat")),
    sendgrid("open", "pat@example.com", "sg-6", **ours("u-pat")),
    # Olga's send id under another home's mark (a shared SendGrid account): no send, no user of ours
    sendgrid("bounce", "mallory@example.com", "sg-7", send_id=SENDS["u-olga"], **{ORIGIN_ARG: "forged"}),
]
POSTMARK_POSTS = [
    postmark("Bounce", "HardBounce", "gone@example.com", 1001),
    postmark("Bounce", "SoftBounce", "olga@example.com", 1002, Metadata=ours("u-olga")),
    postmark("SpamComplaint", "SpamComplaint", "pat@example.com", 1003, Metadata=ours("u-pat")),
    postmark("Delivery", None, "pat@example.com", 1004, Metadata=ours("u-pat")),
]


@pytest.fixture
def serve(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., httpx.Client]]:
    """Serves the collector as `lakemail serve collector` configures it, the sends of SENDS in the lake."""
    monkeypatch.delenv("LAKEMAIL_API_KEY", raising=False)
    monkeypatch.setenv("LAKEMAIL_ESP_WEBHOOK_KEY", WEBHOOK_KEY)
    rows = [{"send_id": s, "trigger_id": f"t-{u}", "user_id": u, "status": "sent"} for u, s in SENDS.items()]
    frame = pl.DataFrame({c: [r.get(c) for r in rows] for c in SENDS_SCHEMA}, schema=SENDS_SCHEMA)
    write_deltalake(f"{settings.lake_uri}/sends", frame.to_arrow())
    with contextlib.ExitStack() as stack:

        def start(**changes: Any) -> httpx.Client:
            server = stack.enter_context(ServerThread(collector_app(settings, **changes)))
            return stack.enter_context(httpx.Client(base_url=server.url))

        yield start


def test_provider_webhooks_land_bounces_and_complaints_that_suppress(
    settings: Settings,
    serve: Callable[..., httpx.Client],
    instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = serve()
    body = orjson.dumps(SENDGRID_BATCH)
    assert collector.post("/v1/esp/sendgrid", content=body).status_code == 401  # no key
    wrong = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
    assert (
        collector.post("/v1/esp/postmark", content=orjson.dumps(POSTMARK_POSTS[0]), headers=wrong).status_code
        == 401
    )
    assert collector_lines(settings) == []
    with caplog.at_level("DEBUG"):
        first = collector.post("/v1/esp/sendgrid", content=body, headers=AUTH)
        again = collector.post("/v1/esp/sendgrid", content=body, headers=AUTH)  # SendGrid's retry
        marks = [
            collector.post("/v1/esp/postmark", content=orjson.dumps(p), headers=AUTH) for p in POSTMARK_POSTS
        ]
    assert first.json() == again.json() == {"success": True, "landed": 5, "ignored": 3}
    assert [m.json()["landed"] for m in marks] == [1, 1, 1, 0]
    landed = {m["messageId"]: m for m in collector_lines(settings)}
    assert len(collector_lines(settings)) == 5 * 2 + 3
    who = {
        i: (m["event"], m.get("userId") or m["anonymousId"], m["properties"].get("bounce_type"))
        for i, m in landed.items()
    }
    assert who == {
        "sendgrid-sg-1": ("Email Bounced", "u-erin", "hard"),
        "sendgrid-sg-2": ("Email Bounced", "u-olga", "transient"),
        "sendgrid-sg-3": ("Email Marked as Spam", "esp:sendgrid", None),
        "sendgrid-sg-4": ("Email Bounced", "esp:sendgrid", "hard"),
        "sendgrid-sg-7": ("Email Bounced", "esp:sendgrid", "hard"),
        "postmark-1001": ("Email Bounced", "esp:postmark", "hard"),
        "postmark-1002": ("Email Bounced", "u-olga", "transient"),
        "postmark-1003": ("Email Marked as Spam", "u-pat", None),
    }
    assert landed["sendgrid-sg-1"]["properties"] == {
        "email": "erin@example.com",
        "provider": "sendgrid",
        "bounce_type": "hard",
        "send_id": SENDS["u-erin"],
    }
    assert "send_id" not in landed["sendgrid-sg-7"]["properties"]  # another home's mark names no send of ours
    assert landed["sendgrid-sg-1"]["context"]["traits"] == {"email": "erin@example.com"}
    assert landed["sendgrid-sg-1"]["timestamp"] == "2026-11-20T12:10:00.000Z"  # the provider's time
    assert landed["postmark-1001"]["timestamp"] == "2026-11-20T12:20:00.000Z"
    assert landed["postmark-1001"]["receivedAt"] == "2026-11-20T12:50:00.000Z"  # the collector's clock
    logged = " ".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "sendgrid webhook: 5 landed, 3 ignored, 0 refused" in logged
    metrics = collector.get("/metrics").text
    assert 'lakemail_collector_esp_events_total{kind="hard_bounce",provider="sendgrid"} 6.0' in metrics
    assert 'lakemail_collector_esp_events_total{kind="ignored",provider="postmark"} 1.0' in metrics
    for secret in ("@example.com", "u-erin", "u-olga", "u-pat", SENDS["u-erin"], "550 5.1.1"):
        assert secret not in logged and secret not in metrics

    ingested_and_suppressed(settings, instance, sorted(landed))


def ingested_and_suppressed(settings: Settings, instance: dg.DagsterInstance, landed: list[str]) -> None:
    """The real micro-batch over what the webhooks landed: one event each, the retry's five duplicates,
    a suppression for each hard bounce and complaint (not Olga's transient bounces)."""
    assert process_once(settings, instance, now=at(60).isoformat())["status"] == "SUCCESS"
    lake = LakeResource(uri=settings.lake_uri)
    events = lake.read("events", {"event_id": pl.String(), "event_name": pl.String(), "user_id": pl.String()})
    email_events = events.filter(pl.col("event_name").str.starts_with("Email ")).sort("event_id")
    assert email_events["event_id"].to_list() == landed
    assert email_events.filter(pl.col("event_id") == "sendgrid-sg-1")["user_id"].to_list() == ["u-erin"]
    assert pl.read_delta(f"{settings.lake_uri}/ingest_log")["duplicates"].sum() == 5  # the retry's five
    rows = lake.read("suppressions", SUPPRESSIONS_SCHEMA).select("user_key", "reason").rows()
    expected = [
        ("erin@example.com", "hard_bounce"),
        ("eve@example.com", "hard_bounce"),
        ("mallory@example.com", "hard_bounce"),
        ("gone@example.com", "hard_bounce"),
        ("dan@example.com", "complaint"),
        ("pat@example.com", "complaint"),
    ]
    assert sorted(rows) == sorted((address_key(email, SECRET), reason) for email, reason in expected)
    shoppers = pl.DataFrame(
        {
            "user_id": ["u-erin", "u-olga", "u-pat"],
            "email": ["erin@example.com", "olga@example.com", "pat@example.com"],
        }
    )
    assert suppressed_users(lake, shoppers, SECRET) == {"u-erin", "u-pat"}


def test_malformed_and_oversized_webhooks_are_refused(
    settings: Settings, serve: Callable[..., httpx.Client]
) -> None:
    collector = serve()

    def post(provider: str, body: bytes, **headers: str) -> httpx.Response:
        return collector.post(f"/v1/esp/{provider}", content=body, headers=AUTH | headers)

    for provider, body, code in [
        ("sendgrid", b"{not json", "invalid_json"),
        ("sendgrid", orjson.dumps(SENDGRID_BATCH[1]), "invalid_batch"),  # one event, not SendGrid's array
        ("postmark", orjson.dumps(POSTMARK_POSTS), "invalid_json"),
        ("sendgrid", orjson.dumps([7, sendgrid("bounce", "", "sg-9")]), "not_an_object"),
        (
            "postmark",
            orjson.dumps(postmark("Bounce", "HardBounce", "a@example.com", 1, BouncedAt="soon")),
            "invalid_timestamp",
        ),
        ("sendgrid", b"[" + b" " * ESP_MAX_BODY_BYTES + b"]", "batch_too_large"),
        ("sendgrid", gzip.compress(b"[" + b" " * ESP_MAX_BODY_BYTES + b"]"), "batch_too_large"),
    ]:
        encoding = {"Content-Encoding": "gzip"} if body[:2] == b"\x1f\x8b" else {}
        refused = post(provider, body, **encoding)
        assert (refused.status_code, refused.json()["code"]) == (400, code), (provider, body[:40])
    assert collector_lines(settings) == []

    # A big SendGrid batch (over Segment's 500 KB) lands, gzipped or not; its one bad event is named.
    filler = [sendgrid("delivered", "x@example.com", f"sg-d{i}", padding="p" * 200) for i in range(2700)]
    batch = orjson.dumps([*filler, SENDGRID_BATCH[3], {"event": "bounce", "timestamp": SENT_AT}])
    assert 600_000 < len(batch) < ESP_MAX_BODY_BYTES
    taken = post("sendgrid", gzip.compress(batch), **{"Content-Encoding": "gzip"})
    assert taken.status_code == 200 and (taken.json()["landed"], taken.json()["ignored"]) == (1, 2700)
    assert [(r["index"], r["reason"]) for r in taken.json()["rejected"]] == [(2701, "missing_field")]
    assert [m["messageId"] for m in collector_lines(settings)] == ["sendgrid-sg-3"]


def test_a_webhook_that_cannot_land_is_not_answered_200(
    settings: Settings, serve: Callable[..., httpx.Client]
) -> None:
    def full(folder: object, name: str, data: bytes) -> object:
        raise OSError("No space left on device")

    collector = serve(writer=full)
    answer = collector.post("/v1/esp/postmark", content=orjson.dumps(POSTMARK_POSTS[0]), headers=AUTH)
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")  # Postmark posts it again
    assert collector_lines(settings) == []


def test_a_lake_that_cannot_be_read_costs_the_user_not_the_bounce(
    settings: Settings, serve: Callable[..., httpx.Client], caplog: pytest.LogCaptureFixture
) -> None:
    def unreadable(send_ids: object) -> dict[str, str]:
        raise OSError("the lake's object store is down")

    collector = serve(users_for_sends=unreadable)
    answer = collector.post("/v1/esp/sendgrid", content=orjson.dumps(SENDGRID_BATCH[1:2]), headers=AUTH)
    assert answer.json() == {"success": True, "landed": 1, "ignored": 0}
    [bounce] = collector_lines(settings)
    assert (bounce["anonymousId"], "userId" in bounce) == ("esp:sendgrid", False)
    assert bounce["properties"]["send_id"] == SENDS["u-erin"]  # the address and the send still land
    assert "could not be looked up (OSError)" in caplog.text

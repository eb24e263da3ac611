"""Who may suppress a shopper through the tracking API, on the real collector on a real socket and through a
real micro-batch (found by review: LAKEMAIL_WRITE_KEY is public, in every page's `/lakemail.js` and the
demo shop, and an `Unsubscribed`, `Email Bounced` or `Email Marked as Spam` posted with it was ingested
as-is: anyone could stop any shopper's email with curl, by user id or address). A public key's suppressing
messages land and are quarantined `untrusted_suppression`, its batch's other messages kept; a secret
server key's (LAKEMAIL_SERVER_WRITE_KEY) suppress; a client cannot forge the collector's mark. Nor can a
public key's message claim a trusted one's id beforehand, which made the real one a duplicate (found by
review: a `page` sent as `unsubscribe-<send_id>` left the shopper no way out): its event id is its own."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg
import httpx
import orjson
import polars as pl
import pytest
from segment.analytics.client import Client

from orchestration.process import erase_once, process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.state import StateResource
from services.server import ServerThread
from tests.e2e.test_collector_unsubscribe import (
    ERIN,
    FORM,
    ONE_CLICK,
    SECRET,
    collector_app,
    collector_lines,
    record_send,
)
from tests.story import at
from transforms.erasure.records import address_key, user_key
from transforms.schema import SUPPRESSIONS_SCHEMA

SERVER_KEY = "server-key-e2e-0123456789"
PUBLIC_KEY = "wk"  # collector_app's LAKEMAIL_WRITE_KEY: the one the snippet and the shop carry


WHEN = {"timestamp": at(10).isoformat()}


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def email_event(event: str, user: str, message_id: str, when: datetime, **fields: Any) -> dict[str, Any]:
    """A Segment Email spec message: the recipient's address in `context.traits.email`."""
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "messageId": message_id,
        "timestamp": when.isoformat(),
        "properties": {"email_id": "18vzF7u3z", "email_subject": "Your cart", "list_id": "1425"},
        "context": {"traits": {"email": f"{user}@example.com"}},
        **fields,
    }


@pytest.fixture
def collector(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """The collector of `lakemail serve collector` with LAKEMAIL_SERVER_WRITE_KEY set, as a client of it."""
    monkeypatch.delenv("LAKEMAIL_API_KEY", raising=False)
    monkeypatch.setenv("LAKEMAIL_SERVER_WRITE_KEY", f"another-server-key-0123, {SERVER_KEY}")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerThread(collector_app(settings)))
        yield stack.enter_context(httpx.Client(base_url=server.url))


def ingest(settings: Settings, instance: dg.DagsterInstance, minute: int = 60) -> LakeResource:
    assert process_once(settings, instance, now=at(minute).isoformat())["status"] == "SUCCESS"
    return LakeResource(uri=settings.lake_uri)


def table(lake: LakeResource, name: str) -> pl.DataFrame:
    return pl.read_delta(f"{lake.uri}/{name}")


def suppressed(lake: LakeResource) -> set[tuple[str, str]]:
    return set(lake.read("suppressions", SUPPRESSIONS_SCHEMA).select("user_key", "reason").rows())


def untrusted(lake: LakeResource) -> list[str]:
    """The messageIds the quarantine holds as `untrusted_suppression`, from their raw lines."""
    rows = table(lake, "quarantine").filter(pl.col("reason") == "untrusted_suppression")
    return sorted(orjson.loads(raw)["messageId"] for raw in rows["raw"])


def test_a_public_keys_unsubscribe_is_quarantined_and_a_server_keys_suppresses(
    settings: Settings, collector: httpx.Client, instance: dg.DagsterInstance
) -> None:
    # As a page's analytics.js batches (the key as Basic user): the attack, next to a shopper's view
    batch = [
        email_event("Unsubscribed", "ann", "m-unsub-ann", at(10)),
        email_event("Email Bounced", "bob", "m-bounce-bob", at(10), bounce_type="hard"),
        email_event("email marked as spam", "cy", "m-spam-cy", at(10)),
        {"type": "track", "event": "Product Viewed", "userId": "ann", "messageId": "m-view"} | WHEN,
    ]
    taken = collector.post("/v1/batch", content=orjson.dumps({"batch": batch}), headers=basic(PUBLIC_KEY))
    assert (taken.status_code, taken.json()) == (200, {"success": True})  # one bad message costs no other
    # as the snippet sends: the key in the body, text/plain, the short path
    body = {**email_event("Unsubscribed", "dee", "m-unsub-dee", at(11)), "writeKey": PUBLIC_KEY}
    snippet = collector.post("/v1/t", content=orjson.dumps(body), headers={"Content-Type": "text/plain"})
    assert snippet.json() == {"success": True}
    # the shop's back end, with Segment's own library and a server key
    errors: list[Any] = []
    client = Client(SERVER_KEY, host=str(collector.base_url), on_error=lambda e, b: errors.append(e))
    email = email_event("Unsubscribed", "eve", "m-unsub-eve", at(12))
    client.track(
        user_id="eve",
        event="Unsubscribed",
        properties=email["properties"],
        context=email["context"],
        timestamp=at(12),
        message_id="m-unsub-eve",
    )
    client.flush()
    client.shutdown()
    assert errors == []

    lake = ingest(settings, instance)
    assert untrusted(lake) == ["m-bounce-bob", "m-spam-cy", "m-unsub-ann", "m-unsub-dee"]
    assert sorted(table(lake, "events")["event_id"]) == ["m-unsub-eve", "~public:m-view"]
    assert suppressed(lake) == {
        (user_key("eve", SECRET), "unsubscribed"),
        (address_key("eve@example.com", SECRET), "unsubscribed"),
    }
    log = table(lake, "ingest_log").select(pl.col("lines", "accepted", "quarantined", "duplicates").sum())
    assert log.row(0) == (6, 2, 4, 0)  # every landed line accounted for


def test_a_client_cannot_forge_the_collectors_mark(
    settings: Settings, collector: httpx.Client, instance: dg.DagsterInstance
) -> None:
    forged = [
        email_event("Unsubscribed", "ann", f"m-forged-{n}", at(10), lakemailKeyKind=value)
        for n, value in enumerate(["server", None, "", False, {"kind": "server"}])
    ]
    taken = collector.post("/v1/batch", content=orjson.dumps({"batch": forged}), headers=basic(PUBLIC_KEY))
    assert taken.json() == {"success": True}
    # a server key's message that claims to be a public key's is the server's: the mark is the collector's
    claimed = email_event("Unsubscribed", "eve", "m-claimed", at(10), lakemailKeyKind="public")
    assert collector.post("/v1/track", content=orjson.dumps(claimed), headers=basic(SERVER_KEY)).json() == {
        "success": True
    }
    marks = {line["messageId"]: line.get("lakemailKeyKind") for line in collector_lines(settings)}
    assert marks == {**{f"m-forged-{n}": "public" for n in range(5)}, "m-claimed": None}

    lake = ingest(settings, instance)
    assert untrusted(lake) == [f"m-forged-{n}" for n in range(5)]
    assert suppressed(lake) == {
        (user_key("eve", SECRET), "unsubscribed"),
        (address_key("eve@example.com", SECRET), "unsubscribed"),
    }


SUCCESS = {"success": True}


def test_a_public_key_cannot_claim_the_id_of_a_shoppers_unsubscribe(
    settings: Settings, collector: httpx.Client, instance: dg.DagsterInstance
) -> None:
    mailed = record_send(settings)  # Erin's email: its unsubscribe event's id is computable, and fixed
    # The attack, before Erin unsubscribes: a harmless page under the public key, with that id
    claim = {"type": "page", "userId": "mallory", "messageId": f"unsubscribe-{mailed.send_id}"} | WHEN
    assert (
        collector.post("/v1/page", content=orjson.dumps(claim), headers=basic(PUBLIC_KEY)).json() == SUCCESS
    )
    lake = ingest(settings, instance)
    assert table(lake, "events")["user_id"].to_list() == ["mallory"]  # accepted, before Erin unsubscribes

    assert collector.post(mailed.path, content=ONE_CLICK, headers=FORM).status_code == 200  # Erin's
    lake = ingest(settings, instance, 61)
    assert suppressed(lake) == {(user_key(ERIN, SECRET), "unsubscribed")}
    events = table(lake, "events").sort("batch_id").select("event_id", "event_name", "user_id")
    assert events.rows() == [
        (f"~public:unsubscribe-{mailed.send_id}", None, "mallory"),
        (f"unsubscribe-{mailed.send_id}", "Unsubscribed", ERIN),
    ]
    log = table(lake, "ingest_log").select(pl.col("accepted", "duplicates").sum())
    assert log.row(0) == (2, 0)


def test_each_kind_of_keys_retries_are_one_event_and_erasure_finds_them(
    settings: Settings, collector: httpx.Client, instance: dg.DagsterInstance
) -> None:
    view = {"type": "track", "event": "Product Viewed", "userId": "ann", "messageId": "m-1"} | WHEN
    ids = ["m-1", "~public:m-1"]  # a server key's message, a public key's of the same messageId
    for minute in (60, 61):  # each sent, then retried a batch later
        for key in (PUBLIC_KEY, SERVER_KEY):
            sent = collector.post("/v1/track", content=orjson.dumps(view), headers=basic(key))
            assert sent.json() == SUCCESS
        lake = ingest(settings, instance, minute)
        assert sorted(table(lake, "events")["event_id"]) == ids
    log = table(lake, "ingest_log").select(pl.col("lines", "accepted", "duplicates").sum())
    assert log.row(0) == (4, 2, 2)
    state = StateResource(uri=settings.state_store_uri)
    assert sorted(state.get_many("event_ids", ids)) == ids  # the dedupe index, with no horizon

    passed, _ = erase_once(settings, "ann", instance)
    assert passed and table(lake, "events").is_empty()
    assert state.get_many("event_ids", ids) == {}

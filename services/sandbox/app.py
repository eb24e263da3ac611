"""The email-provider sandbox: a SendGrid v3 compatible mail-send API, an inbox page, faults, unsubscribes.

Routes: `POST /v3/mail/send`; `GET /api/messages[?send_id=&limit=]`, `GET /api/messages/{id}`;
`GET /api/stats`, `DELETE /api/stats`; `GET|POST|DELETE /api/faults` (see services.sandbox.faults);
`GET /` (inbox), `GET /messages/{id}`; `GET|POST /unsubscribe/{token}` (RFC 8058: only POST acts);
`GET /metrics` (Prometheus): without the key, as it holds counts only (no address, id or token).
Every route answers only a request whose `Host` is loopback at the server's port (services.sandbox.hosts:
DNS rebinding cannot lend a web page the inbox).
The mail-send API and every `/api/*` route take the same bearer key (`LAKEMAIL_ESP_API_KEY`), and
`POST /api/faults` only `application/json`: a web page can send neither, so it cannot script faults.
A mail-send request repeating a stored send (its `send_id` and custom args) is answered with that
message's id and stores nothing, and a look-up by `send_id` waits for the send's requests in flight
(services.sandbox.in_flight): an outbox that asks after a timeout never sends one email twice.
Nothing here logs addresses, names, user ids or tokens.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from services.metrics import add_metrics
from services.sandbox.api import LOOKUP_WAIT_S, UNAUTHORIZED, add_api_routes, authorized, errors
from services.sandbox.faults import Fault, FaultQueue
from services.sandbox.hosts import LoopbackHostsOnly
from services.sandbox.in_flight import InFlight
from services.sandbox.mail import MailRequest, parse_mail, send_key_of
from services.sandbox.mail_errors import ApiError, MailValidationError
from services.sandbox.metrics import sandbox_registry
from services.sandbox.pages import PAGE_HEADERS, inbox_page, message_page, notice_page, placeholder_svg
from services.sandbox.store import MessageStore, RequestStats, StoredMessage, utc_now_iso
from services.sandbox.unsubscribe import land_event
from services.unsubscribe import add_unsubscribe_routes, user_for_send

log = logging.getLogger(__name__)
INBOX_LIMIT = 200


@dataclass(frozen=True)
class _State:
    api_key: str
    store: MessageStore
    stats: RequestStats = field(default_factory=RequestStats)
    faults: FaultQueue = field(default_factory=FaultQueue)
    in_flight: InFlight = field(default_factory=InFlight)


def create_sandbox_app(
    store_dir: Path,
    api_key: str,
    *,
    lake_uri: str,
    landing_uri: str,
    secret: str,
    lookup_wait_s: float = LOOKUP_WAIT_S,
) -> FastAPI:
    """The sandbox app: messages kept in `store_dir`, unsubscribes checked in the lake, landed as events."""
    if not api_key:
        raise ValueError("the sandbox needs a non-empty API key")
    state = _State(api_key, MessageStore(store_dir))
    app = FastAPI(
        title="lakemail email-provider sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # request spans would carry unsubscribe tokens in their URLs: no telemetry out of this app
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(LoopbackHostsOnly)
    app.post("/v3/mail/send")(partial(_mail_send, state))
    add_metrics(app, sandbox_registry(state.store, state.stats, state.faults))
    add_api_routes(app, api_key, state.store, state.stats, state.faults, state.in_flight, lookup_wait_s)
    _add_page_routes(app, state.store)
    _add_unsubscribe_routes(app, lake_uri=lake_uri, landing_uri=landing_uri, secret=secret)
    return app


async def _mail_send(state: _State, request: Request) -> Response:
    """`POST /v3/mail/send`: auth, then the send's turn (services.sandbox.in_flight): the message an
    earlier request of the same send stored, else the head fault, validate, store."""
    if not authorized(request.headers.get("authorization"), state.api_key):
        state.stats.record(401)
        return errors(401, [UNAUTHORIZED])
    body = await request.body()
    key = send_key_of(body)
    if key is None:
        response, hold = await _take(state, body, None)
    else:
        async with state.in_flight.turn(key.send_id):  # on receipt, before any fault's delay
            stored = await run_in_threadpool(state.store.replay, key.send_id, key.custom_args)
            if stored is not None:
                state.stats.record(202, send_id=key.send_id, replayed=True)
                return Response(status_code=202, headers={"X-Message-Id": stored})
            response, hold = await _take(state, body, key.send_id)
    if hold:  # stored, but the caller hears nothing for a while (a look-up need not wait for that)
        await _hold(request, hold)
    return response


async def _take(state: _State, body: bytes, send_id: str | None) -> tuple[Response, float]:
    """The head fault (see services.sandbox.faults), then validate and store; the answer, and how long
    to hold it back."""
    fault = state.faults.peek()
    kind = fault.kind if fault else None
    if fault is not None and kind != "accept_then_hang":
        state.faults.take(fault)
        early = _fault_response(fault)
        if early is not None:
            state.stats.record(early.status_code, send_id=send_id, fault=kind)
            return early, 0.0
        await asyncio.sleep(fault.seconds)  # "slow": then carry on as usual
    try:
        mail = parse_mail(body)
    except MailValidationError as invalid:
        state.stats.record(400, send_id=send_id, fault=kind)
        return errors(400, invalid.errors), 0.0
    hold = 0.0
    if fault is not None and kind == "accept_then_hang":
        state.faults.take(fault)  # no await since peek(), so no other request took it meanwhile
        hold = fault.seconds
    message_id = await run_in_threadpool(_accept, state.store, mail)
    state.stats.record(202, send_id=send_id, fault=kind)
    return Response(status_code=202, headers={"X-Message-Id": message_id}), hold


def _add_page_routes(app: FastAPI, store: MessageStore) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def inbox() -> HTMLResponse:
        found = await run_in_threadpool(store.list_messages, limit=INBOX_LIMIT)
        return _page(inbox_page(found, await run_in_threadpool(store.count)))

    @app.get("/messages/{message_id}", response_class=HTMLResponse)
    async def show_message(message_id: str) -> HTMLResponse:
        found = await run_in_threadpool(store.get, message_id)
        if found is None:
            return _page(notice_page("Not found", "There is no message with this id."), 404)
        return _page(message_page(found))

    @app.get("/demo/img/{name}")
    async def demo_image(name: str) -> Response:
        headers = {**PAGE_HEADERS, "Cache-Control": "max-age=86400"}
        return Response(placeholder_svg(name), media_type="image/svg+xml", headers=headers)


def _add_unsubscribe_routes(app: FastAPI, *, lake_uri: str, landing_uri: str, secret: str) -> None:
    async def land(event: dict[str, Any], now: datetime) -> bool:
        await run_in_threadpool(land_event, landing_uri, event, now)
        return True

    find_user = partial(user_for_send, lake_uri)
    add_unsubscribe_routes(
        app, secret=secret, find_user=find_user, land=land, clock=partial(datetime.now, UTC)
    )


def _accept(store: MessageStore, mail: MailRequest) -> str:
    """Store one message per personalization; returns the request's X-Message-Id."""
    message_id = secrets.token_urlsafe(16)
    received_at = utc_now_iso()
    store.add(
        [
            StoredMessage(
                message_id if i == 0 else f"{message_id}.{i}",
                ", ".join(d.to),
                d.subject,
                mail.html,
                mail.text,
                d.headers,
                d.custom_args,
                received_at,
                mail.payload,
            )
            for i, d in enumerate(mail.deliveries)
        ]
    )
    return message_id


async def _hold(request: Request, seconds: float) -> None:
    """Wait `seconds`, or less once the caller has hung up: then there is nobody left to answer."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(left, 0.05))


def _fault_response(fault: Fault) -> JSONResponse | None:
    """The answer a status or rate-limit fault gives instead of processing; None for delaying faults."""
    if fault.kind == "status":
        return errors(fault.status, [ApiError(f"scripted fault: HTTP {fault.status}")])
    if fault.kind == "rate_limit":
        return errors(429, [ApiError("too many requests")], fault.rate_limit_headers(time.time()))
    return None


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

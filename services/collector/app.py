"""The collector's HTTP app: Segment's Tracking API (`POST /v1/batch`, `/v1/track`, `/v1/identify`,
`/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`, and the short paths Segment's browser and mobile
libraries post to, `/v1/b` and `/v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a`), `GET /health`,
`GET /metrics` (Prometheus, no key: counts only), `/lakemail.js`, the click redirect `/c/{token}`
(services.collector.clicks), the emails' unsubscribe links `GET|POST /unsubscribe/{token}`
(services.unsubscribe), the email providers' event webhooks `POST /v1/esp/sendgrid` and
`/v1/esp/postmark` (services.collector.esp: their own secret or SendGrid's signature, never the write
key: services.collector.esp_auth), the profile API `/v1/profiles/{user_id}`
(services.collector.profiles) and the demo shop.

Write keys are public (LAKEMAIL_WRITE_KEY: every browser holds one) or secret server keys
(LAKEMAIL_SERVER_WRITE_KEY); a public key's messages land marked so, and the ingest lets none of them
suppress a shopper (services.collector.write_keys).

Answers: 200 `{"success": true}` once every kept message is durable in the landing zone (with
`rejected` listing the first 100 messages of a batch that were not kept, by index, and `rejected_more`
counting the others); 400 with a reason code for a body that is not a JSON batch, is over 500 KB or
10,000 messages, or holds no message that can be kept; 401 for an unknown write key; 415 for an
encoding other than gzip; 429 (this collector is busy) or 503 (the landing zone's backlog is over its
bound, or a write failed) with `Retry-After` and `X-RateLimit-Reset`, the same seconds (wire.retry_headers).
Never a 3xx (but for the click redirect, which no tracking client calls): Segment's Node client takes any
3xx as delivered, so trailing-slash redirects are off. Nothing here logs keys or message data.

A body must arrive within `body_seconds` (408 past them, connection closed: services.reading); a client
that hangs up before its answer is counted as 499.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC
from functools import partial
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.requests import ClientDisconnect

from services.collector.backlog import BacklogGate
from services.collector.clicks import add_click_route
from services.collector.commit import CommitFailed, GroupCommitter, QueueFull, land_one
from services.collector.config import CollectorConfig
from services.collector.esp import PROVIDERS, EspWebhooks, esp_events_counter
from services.collector.esp_auth import EspAuth
from services.collector.metrics import CollectorFigures, ignored_sent_at_counter, rejected_counter
from services.collector.profiles import add_profile_routes
from services.collector.shop import add_shop_routes, add_snippet_route
from services.collector.wire import (
    MAX_BODY_BYTES,
    RETRY_HEADERS,
    TYPES,
    OffLoop,
    WireError,
    basic_user,
    listing,
    read_body,
    retry_headers,
    take,
)
from services.collector.write_keys import WriteKeys, check_server_keys
from services.metrics import add_metrics
from services.reading import CLIENT_CLOSED, BodyTimeout, closing, timed
from services.unsubscribe import add_unsubscribe_routes

log = logging.getLogger(__name__)
CORS_HEADERS = ["Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count"]
# A request's work once it may be taken: (request, the write key of its Authorization header, if any).
Handler = Callable[[Request, str | None], Awaitable[Response]]


@dataclass
class _State:
    config: CollectorConfig
    committer: GroupCommitter
    gate: BacklogGate
    keys: WriteKeys
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    in_flight: int = 0
    body_key_in_flight: int = 0  # of in_flight, those whose key is only in the body
    off_loop: OffLoop = field(default_factory=OffLoop)  # a big body's messages are read in a thread

    def __post_init__(self) -> None:
        self.rejected = rejected_counter(self.registry)
        self.ignored_sent_at = ignored_sent_at_counter(self.registry)
        self.registry.register(CollectorFigures(self.committer, self.gate, lambda: self.in_flight))


def create_collector_app(config: CollectorConfig) -> FastAPI:
    """The collector app; its lifespan starts the group committer and the backlog probe."""
    if not config.write_keys or not all(config.write_keys):
        raise ValueError("the collector needs at least one non-empty write key")
    check_server_keys(config.server_write_keys, config.write_keys)
    gate = BacklogGate(config.probe, config.limits, config.probe_seconds)
    committer = GroupCommitter(
        config.landing / "events",
        linger=config.linger,
        max_messages=config.max_messages_per_file,
        max_queued_bytes=config.max_queued_bytes,
        writer=config.writer,
        on_landed=gate.landed,
    )
    state = _State(config, committer, gate, WriteKeys(config.write_keys, config.server_write_keys))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        committer.start()
        await gate.start()
        try:
            yield
        finally:
            await committer.stop()  # what is waiting lands before the process goes
            await gate.stop()

    app = FastAPI(
        title="lakemail collector",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},  # request bodies carry PII
    )
    app.router.redirect_slashes = False  # a 307 to `/v1/batch` would be "delivered" for Node's client
    _add_tracking_routes(app, state)
    _add_webhooks(app, state)
    app.get("/health")(partial(_health, state))
    add_metrics(app, state.registry)
    add_snippet_route(app)
    if config.click_secret:
        add_click_route(app, committer, gate, config.click_secret, config.clock, state.registry)
    if config.click_secret and config.user_for_send is not None:
        lands, secret, find_user = partial(land_one, committer), config.click_secret, config.user_for_send
        clock, seconds = config.clock, config.body_seconds
        add_unsubscribe_routes(
            app, secret=secret, find_user=find_user, land=lands, clock=clock, body_seconds=seconds
        )
    if config.profiles is not None:
        add_profile_routes(app, config.profiles, state.registry)
    if config.shop_catalog is not None:
        add_shop_routes(app, config.shop_catalog, config.write_keys[0])
    return app


def _add_tracking_routes(app: FastAPI, state: _State) -> None:
    """Segment's Tracking API, open to browsers (CORS)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST"],
        allow_headers=CORS_HEADERS,
        expose_headers=RETRY_HEADERS,  # else a page's analytics.js cannot read a 429's wait
    )
    # Segment's analytics.js posts to `<apiHost>/<the type's initial>` (`/b` when it batches), its
    # Swift and Kotlin libraries to `<apiHost>/b`, with apiHost `<host>/v1`: the same endpoints.
    for path in ("/v1/batch", "/v1/b"):
        app.post(path)(_route(state, partial(_accept, state, None), key_in_body=True))
    for kind in TYPES:
        for path in (f"/v1/{kind}", f"/v1/{kind[0]}"):
            app.post(path)(_route(state, partial(_accept, state, kind), key_in_body=True))


def _route(state: _State, handler: Handler, *, key_in_body: bool) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of `handler` (its only parameter the request: nothing else is read from a query)."""

    async def route(request: Request) -> Response:
        return await _guarded(state, request, handler, key_in_body)

    return route


async def _guarded(state: _State, request: Request, handler: Handler, key_in_body: bool) -> Response:
    """One request that lands: refuse it early when it cannot be kept, else let `handler` land it.
    Without `key_in_body` (the webhooks) no write key is read: `handler` checks the webhooks' own."""
    header_key = basic_user(request.headers.get("authorization")) if key_in_body else None
    if header_key is not None and state.keys.kind(header_key) is None:
        return _error(401, "invalid_write_key", "unknown write key")
    if (why := state.gate.refusal()) is not None:
        log.warning("refusing messages: %s", why)
        return _error(503, "backlog_full", why, retry_after=5)
    # A key only in the body is known once the body is read (in time): such requests may not take every
    # slot from those whose key is known already
    body_key = header_key is None
    if state.in_flight >= state.config.max_requests or (
        body_key and state.body_key_in_flight >= state.config.max_body_key_requests
    ):
        return _error(429, "too_many_requests", "too many requests at once", retry_after=1)
    state.in_flight += 1
    state.body_key_in_flight += body_key
    try:
        return await handler(timed(request, state.config.body_seconds), header_key)
    except WireError as refused:
        log.debug("refused a request: %s", refused.reason)
        return _error(refused.status, refused.reason, refused.detail)
    except BodyTimeout as late:
        return closing(_error(408, "request_timeout", str(late)))
    except ClientDisconnect:  # nobody reads this answer: it counts the request as the client's doing
        return Response(status_code=CLIENT_CLOSED)
    except QueueFull as busy:
        return _error(429, "too_many_requests", str(busy), retry_after=1)
    except CommitFailed:
        return _error(503, "landing_failed", "the messages could not be written; retry", retry_after=1)
    finally:
        state.in_flight -= 1
        state.body_key_in_flight -= body_key


async def _accept(state: _State, kind: str | None, request: Request, header_key: str | None) -> Response:
    raw = await read_body(request.stream(), request.headers.get("content-length"), MAX_BODY_BYTES)
    received_at = state.config.clock().astimezone(UTC).isoformat(timespec="milliseconds")
    encoding = request.headers.get("content-encoding")
    work = partial(take, raw, encoding, kind, received_at.replace("+00:00", "Z"), state.keys.kind, header_key)
    kept = await state.off_loop.run(work, raw, encoding)
    for reason, count in Counter(refused["reason"] for refused in kept.rejected).items():
        state.rejected.labels(reason=reason).inc(count)
    if kept.rejected and not kept.lines:
        first = kept.rejected[0]
        return _error(400, first["reason"], first["detail"], **listing(kept.rejected))
    if kept.lines:
        await state.committer.commit(b"".join(kept.lines), len(kept.lines))
        state.ignored_sent_at.inc(kept.ignored_sent_at)
    body: dict[str, Any] = {"success": True}
    if kept.rejected:
        log.info("kept %s messages of a batch, refused %s", len(kept.lines), len(kept.rejected))
        body |= listing(kept.rejected)
    return JSONResponse(body)


def _add_webhooks(app: FastAPI, state: _State) -> None:
    """The providers' event webhooks (services.collector.esp), landing through the tracking committer."""
    config, counted = state.config, esp_events_counter(state.registry)
    auth = EspAuth.of(config.esp_webhook_key, config.sendgrid_public_key, config.write_keys)
    lookup = config.users_for_sends
    esp = EspWebhooks(
        state.committer, config.clock, config.click_secret, lookup, counted, auth, state.off_loop
    )
    for provider in PROVIDERS:
        app.post(f"/v1/esp/{provider}")(_route(state, partial(_webhook, esp, provider), key_in_body=False))


async def _webhook(esp: EspWebhooks, provider: str, request: Request, header_key: str | None) -> Response:
    return await esp.land(provider, request)  # it checks the webhooks' own credentials, not a write key


async def _health(state: _State) -> JSONResponse:
    """Whether messages are taken now, what has landed, the backlog last measured (no message data)."""
    stats, last = state.committer.stats, state.gate.last
    refusal = state.gate.refusal()
    return JSONResponse(
        {
            "accepting": refusal is None,
            "refusal": refusal,
            "files": stats.files,
            "messages": stats.messages,
            "bytes": stats.bytes,
            "fsyncs": stats.fsyncs,
            "failures": stats.failures,
            "queued_bytes": state.committer.queued_bytes,
            "backlog": None if last is None else {"files": last.files, "bytes": last.bytes},
        }
    )


def _error(
    status: int, reason: str, detail: str, *, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    """An error as Segment's clients read it (`code`, `message`), with the wait when it passes."""
    headers = retry_headers(retry_after) if retry_after is not None else None
    body = {"success": False, "code": reason, "message": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers)

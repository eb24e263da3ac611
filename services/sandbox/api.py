"""The sandbox's own API (`/api/*`): its messages, its request counts, its fault script.

A look-up (`GET /api/messages?send_id=`) answers after every mail-send request of that send received
before it: one still held by a `slow` fault is waited for (up to LOOKUP_WAIT_S, then 503: ask again),
so "none" means the send was never taken, not "not stored yet".

Every route takes the bearer key of the mail-send API (`LAKEMAIL_ESP_API_KEY`): without it, anyone on
the host could read the mail or script faults. `POST /api/faults` takes `application/json` only, so a
web page cannot post one with a form or a `text/plain` fetch (those need no CORS preflight).
"""

from __future__ import annotations

import hmac
import json
import math

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.sandbox.faults import FaultQueue, parse_faults
from services.sandbox.in_flight import InFlight
from services.sandbox.mail_errors import ApiError, error_body
from services.sandbox.store import MessageStore, RequestStats

UNAUTHORIZED = ApiError("The provided authorization grant is invalid, expired, or revoked")
JSON_ONLY = ApiError("faults are posted as application/json", "content-type")
IN_FLIGHT = ApiError("a mail-send request of this send_id is still being answered: ask again", "send_id")
LOOKUP_WAIT_S = 5.0  # a look-up's wait for a send's request in flight (below the outbox's read timeout)


class Unauthorized(Exception):
    """A request without the sandbox's key: answered 401 with the mail-send API's error body."""


def authorized(header: str | None, api_key: str) -> bool:
    scheme, _, key = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(key.strip().encode(), api_key.encode())


def errors(status: int, found: list[ApiError], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(found), status_code=status, headers=headers)


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").partition(";")[0].strip().lower() == "application/json"


def add_api_routes(
    app: FastAPI,
    api_key: str,
    store: MessageStore,
    stats: RequestStats,
    faults: FaultQueue,
    in_flight: InFlight,
    lookup_wait_s: float = LOOKUP_WAIT_S,
) -> None:
    """`/api/messages`, `/api/stats`, `/api/faults`, every one behind the key."""

    async def key_required(request: Request) -> None:
        if not authorized(request.headers.get("authorization"), api_key):
            raise Unauthorized

    api = APIRouter(prefix="/api", dependencies=[Depends(key_required)])

    _add_message_routes(api, store, in_flight, lookup_wait_s)

    @api.get("/stats")
    async def get_stats() -> JSONResponse:
        snapshot = stats.snapshot()
        snapshot["mail_send"]["replayed"] = await run_in_threadpool(store.replays)
        return JSONResponse(snapshot)

    @api.delete("/stats")
    async def reset_stats() -> Response:
        stats.reset()
        return Response(status_code=204)

    @api.get("/faults")
    async def list_faults() -> JSONResponse:
        return JSONResponse(faults.pending())

    @api.post("/faults")
    async def add_faults(request: Request) -> JSONResponse:
        if not _is_json(request.headers.get("content-type")):
            return errors(415, [JSON_ONLY])
        try:
            faults.add(parse_faults(json.loads(await request.body())))
        except ValueError as bad:  # not JSON, or a FaultError
            return errors(400, [ApiError(f"invalid fault: {bad}", "faults")])
        return JSONResponse(faults.pending(), 201)

    @api.delete("/faults")
    async def clear_faults() -> JSONResponse:
        return JSONResponse({"cleared": faults.clear()})

    app.add_exception_handler(Unauthorized, lambda request, exc: errors(401, [UNAUTHORIZED]))
    app.include_router(api)


def _add_message_routes(
    api: APIRouter, store: MessageStore, in_flight: InFlight, lookup_wait_s: float
) -> None:
    """`/api/messages[?send_id=&limit=]` (a look-up when by `send_id`) and `/api/messages/{id}`."""

    @api.get("/messages")
    async def list_messages(send_id: str | None = None, limit: int | None = None) -> JSONResponse:
        if send_id is None:
            found = await run_in_threadpool(store.list_messages, limit=limit)
            return JSONResponse([m.public() for m in found])
        try:  # a look-up: after every request of the send received before it (services.sandbox.in_flight)
            async with in_flight.turn(send_id, wait=lookup_wait_s):
                found = await run_in_threadpool(store.list_messages, send_id=send_id, limit=limit)
        except TimeoutError:
            return errors(503, [IN_FLIGHT], {"Retry-After": str(math.ceil(lookup_wait_s))})
        return JSONResponse([m.public() for m in found])

    @api.get("/messages/{message_id}")
    async def get_message(message_id: str) -> JSONResponse:
        found = await run_in_threadpool(store.get, message_id)
        if found is None:
            return errors(404, [ApiError("no message with this id", "message_id")])
        return JSONResponse({**found.public(), "payload": found.payload})

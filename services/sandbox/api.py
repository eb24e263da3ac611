"""The sandbox's own API (`/api/*`): its messages, its request counts, its fault script.

Every route takes the bearer key of the mail-send API (`LAKEMAIL_ESP_API_KEY`): without it, anyone on
the host could read the mail or script faults. `POST /api/faults` takes `application/json` only, so a
web page cannot post one with a form or a `text/plain` fetch (those need no CORS preflight).
"""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.sandbox.faults import FaultQueue, parse_faults
from services.sandbox.mail_errors import ApiError, error_body
from services.sandbox.store import MessageStore, RequestStats

UNAUTHORIZED = ApiError("The provided authorization grant is invalid, expired, or revoked")
JSON_ONLY = ApiError("faults are posted as application/json", "content-type")


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
    app: FastAPI, api_key: str, store: MessageStore, stats: RequestStats, faults: FaultQueue
) -> None:
    """`/api/messages`, `/api/stats`, `/api/faults`, every one behind the key."""

    async def key_required(request: Request) -> None:
        if not authorized(request.headers.get("authorization"), api_key):
            raise Unauthorized

    api = APIRouter(prefix="/api", dependencies=[Depends(key_required)])

    @api.get("/messages")
    async def list_messages(send_id: str | None = None, limit: int | None = None) -> JSONResponse:
        found = await run_in_threadpool(store.list_messages, send_id=send_id, limit=limit)
        return JSONResponse([m.public() for m in found])

    @api.get("/messages/{message_id}")
    async def get_message(message_id: str) -> JSONResponse:
        found = await run_in_threadpool(store.get, message_id)
        if found is None:
            return errors(404, [ApiError("no message with this id", "message_id")])
        return JSONResponse({**found.public(), "payload": found.payload})

    @api.get("/stats")
    async def get_stats() -> JSONResponse:
        return JSONResponse(stats.snapshot())

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

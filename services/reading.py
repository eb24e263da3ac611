"""A request body read under a deadline, for the services' routes that read one (the collector's
tracking and webhook routes, the unsubscribe POST).

Uvicorn waits for a body as long as the client likes: a client that sends its headers and one byte
would hold its request (and the collector's slot for it) for ever. `timed` gives the whole body
`seconds` from the moment the route takes the request; past them reading raises BodyTimeout, which a
route answers 408 and closes the connection (`closing`). A client that hangs up mid-body raises Starlette's
ClientDisconnect instead: nobody reads that answer, which is counted as CLIENT_CLOSED (nginx's 499).
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

R = TypeVar("R", bound=Response)

BODY_SECONDS = 10.0  # 500 KB at 50 KB/s: a slow phone gets there, a client sending nothing does not
CLIENT_CLOSED = 499  # the status counted for a request whose client hung up before its answer


class BodyTimeout(Exception):
    """The request's body did not arrive within its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request body did not arrive within {seconds:g} s")


def timed(request: Request, seconds: float) -> Request:
    """`request` whose body must have arrived `seconds` from now (reading it past then: BodyTimeout)."""
    receive, deadline = request.receive, asyncio.get_running_loop().time() + seconds
    done = False

    async def receive_in_time() -> Message:
        nonlocal done
        if done:  # the body is in: what comes now (a disconnect) is no longer the client's debt
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout(seconds) from None
        done = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    return Request(request.scope, receive_in_time)


def closing(response: R) -> R:
    """`response` closing its connection: the rest of a body not waited for is never read."""
    response.headers["Connection"] = "close"
    return response

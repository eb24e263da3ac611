"""`GET|POST /unsubscribe/{token}`, RFC 8058's one-click unsubscribe, for the collector (where recipients'
links point in production) and the sandbox (the local default): one route, one page, one event.

The token (transforms.sends.message) is the send's id and its HMAC with LAKEMAIL_SECRET: no person data.
A GET only asks (a mail scanner following links must never unsubscribe); a POST, RFC 8058's body
`List-Unsubscribe=One-Click` or the page's button, finds the send's user in the lake's `sends` and lands
an `Unsubscribed` event for them, whose messageId is fixed per send, so a second POST is a duplicate the
ingest drops. A token that is not intact is a 400 and lands nothing; a body that does not arrive within
`body_seconds` a 408 (services.reading). Nothing here logs the token, the send or the user.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jinja2
import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from resources.lake import LakeResource
from services.reading import BODY_SECONDS, CLIENT_CLOSED, BodyTimeout, closing, timed
from transforms.schema import SENDS_SCHEMA
from transforms.sends.message import verify_unsubscribe_token

log = logging.getLogger(__name__)
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
MAX_FORM_BYTES = 4096  # `List-Unsubscribe=One-Click` or the button's `confirm=yes`: never more
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the URL holds a token: never leak it onwards
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}
Lander = Callable[[dict[str, Any], datetime], Awaitable[bool]]  # (event, now) -> landed durably

_PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ title }}</title>
<style>
 body { font: 16px/1.5 system-ui, sans-serif; margin: 3rem auto; max-width: 32rem; padding: 0 1rem;
        color: #1d2433; }
 button { font: inherit; padding: .5rem 1.2rem; border: 0; border-radius: 4px; background: #2456d6;
          color: #fff; }
</style></head>
<body><h1>{{ title }}</h1><p>{{ detail }}</p>
{% if confirm %}<form method="post"><input type="hidden" name="confirm" value="yes">
<button type="submit">Unsubscribe</button></form>{% endif %}
</body></html>
"""
)


def unsubscribe_page(title: str, detail: str, *, confirm: bool = False) -> str:
    """A short page; with `confirm`, a form that POSTs back to the same URL (the unsubscribe button)."""
    return _PAGE.render(title=title, detail=detail, confirm=confirm)


ASK = unsubscribe_page("Unsubscribe?", "Press the button to stop receiving these emails.", confirm=True)
DONE = unsubscribe_page("Unsubscribed", "You will not receive these emails any more.")
INVALID = unsubscribe_page("Invalid link", "This unsubscribe link is not valid.")
UNKNOWN = unsubscribe_page("Unknown email", "We cannot find the email this link came from.")
TOO_LARGE = unsubscribe_page("Invalid request", "This request is not an unsubscribe.")
LATER = unsubscribe_page("Please try again", "We could not record your unsubscribe just now; try again.")
TOO_SLOW = unsubscribe_page("Please try again", "Your request did not arrive in time; try again.")


def is_one_click(body: bytes) -> bool:
    """Whether a form-encoded POST body is RFC 8058's `List-Unsubscribe=One-Click`."""
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return ONE_CLICK_VALUE in fields.get(ONE_CLICK_FIELD, [])


def user_for_send(lake_uri: str, send_id: str) -> str | None:
    """The `user_id` of a send in the lake's `sends` table; None when the table or the send is unknown."""
    sends = LakeResource(uri=lake_uri).scan("sends", SENDS_SCHEMA)
    # send_id is a hash, not person data, so it may be a scan predicate (and end in file statistics)
    found = sends.filter(pl.col("send_id") == send_id).select("user_id").drop_nulls().head(1)
    users = found.collect()["user_id"].to_list()
    return users[0] if users else None


def users_for_sends(lake_uri: str, send_ids: Sequence[str]) -> dict[str, str]:
    """The `user_id` of each of `send_ids` the lake's `sends` table holds (the others are left out)."""
    sends = LakeResource(uri=lake_uri).scan("sends", SENDS_SCHEMA)
    found = sends.filter(pl.col("send_id").is_in(list(send_ids))).select("send_id", "user_id").drop_nulls()
    return dict(found.unique("send_id").collect().iter_rows())


def unsubscribe_event(user_id: str, send_id: str, method: str, now: datetime) -> dict[str, Any]:
    """The Segment `track` message; its messageId is fixed per send, so a second POST is a duplicate."""
    return {
        "type": "track",
        "event": "Unsubscribed",
        "userId": user_id,
        "messageId": f"unsubscribe-{send_id}",
        "timestamp": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {"send_id": send_id, "method": method},
    }


def add_unsubscribe_routes(
    app: FastAPI,
    *,
    secret: str,
    find_user: Callable[[str], str | None],
    land: Lander,
    clock: Callable[[], datetime],
    body_seconds: float = BODY_SECONDS,
) -> None:
    """Serve `GET|POST /unsubscribe/{token}` on `app`: tokens signed with `secret`, the send's user by
    `find_user` (blocking: run in a thread), the event landed by `land` (a 503 when it could not be);
    a POST's body must arrive within `body_seconds`."""

    async def ask(token: str) -> HTMLResponse:
        if verify_unsubscribe_token(token, secret) is None:
            return _page(INVALID, 400)
        return _page(ASK)

    async def unsubscribe(token: str, request: Request) -> Response:
        send_id = verify_unsubscribe_token(token, secret)
        if send_id is None:
            return _page(INVALID, 400)
        try:
            body = await _form(timed(request, body_seconds))
        except BodyTimeout:
            return closing(_page(TOO_SLOW, 408))
        except ClientDisconnect:  # nobody reads an answer: it counts the request as the client's doing
            return Response(status_code=CLIENT_CLOSED)
        if body is None:
            return _page(TOO_LARGE, 413)
        method = "one_click" if is_one_click(body) else "page"
        user_id = await run_in_threadpool(find_user, send_id)
        if user_id is None:
            return _page(UNKNOWN, 404)
        now = clock()
        if not await land(unsubscribe_event(user_id, send_id, method, now), now):
            return _page(LATER, 503, retry_after=5)
        log.info("unsubscribe landed (method=%s)", method)
        return _page(DONE)

    app.get("/unsubscribe/{token}", include_in_schema=False)(ask)
    app.post("/unsubscribe/{token}", include_in_schema=False)(unsubscribe)


async def _form(request: Request) -> bytes | None:
    """The POST body, or None once it passes MAX_FORM_BYTES (never buffered past it)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return bytes(body)


def _page(html: str, status: int = 200, *, retry_after: int | None = None) -> HTMLResponse:
    headers = PAGE_HEADERS if retry_after is None else {**PAGE_HEADERS, "Retry-After": str(retry_after)}
    return HTMLResponse(html, status_code=status, headers=headers)

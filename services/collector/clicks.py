"""`GET /c/{token}`: the signed click redirect of every marketing link in lakemail's emails.

A valid token lands an `Email Link Clicked` event (its send, trigger, kind, variant and the link's role;
`bot` and `bot_reason` when a HEAD, a scanner's user agent or a click seconds after delivery says a
machine opened it) and answers 302 to the `https:` URL signed into the token, and only to it. A token
that is not ours, or not intact, is a 404: never a redirect anywhere else. The shopper is sent on even
when the event cannot land (a full landing zone): a lost click beats a broken link. The event names
the send (`anonymousId` is the send_id): who clicked is in `sends`, not in the link or the event.
While the landing zone's backlog is over its bound (services.collector.backlog) the event is not landed
either, as tracking's messages are not; each click not landed counts in
`lakemail_collector_unlanded_clicks_total`, by reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from prometheus_client import CollectorRegistry

from services.collector.backlog import BacklogGate
from services.collector.commit import GroupCommitter, land_one
from services.collector.metrics import unlanded_clicks_counter
from transforms.sends.clicks import ClickLink, bot_reason, verify_click_token

CLICK_EVENT = "Email Link Clicked"
USER_AGENT_LIMIT = 512
NOT_FOUND = "<!doctype html><title>Link not found</title><p>This link is not valid (or no longer is).</p>"
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def click_message(link: ClickLink, *, user_agent: str, reason: str | None, at: datetime) -> dict[str, Any]:
    """The Segment track message of one click (no person data: the send stands for the shopper)."""
    properties: dict[str, Any] = {**link.properties(), "bot": reason is not None}
    if reason is not None:
        properties["bot_reason"] = reason
    return {
        "type": "track",
        "event": CLICK_EVENT,
        "messageId": f"click-{uuid.uuid4()}",
        "anonymousId": link.send_id,
        "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": properties,
        "context": {"userAgent": user_agent[:USER_AGENT_LIMIT], "library": {"name": "lakemail-click"}},
    }


def add_click_route(
    app: FastAPI,
    committer: GroupCommitter,
    gate: BacklogGate,
    secret: str,
    clock: Callable[[], datetime],
    registry: CollectorRegistry,
) -> None:
    """Serve `GET` (and `HEAD`, a scanner's) `/c/{token}` on `app`, landing clicks through `committer`
    while `gate` lets messages in; the clicks not landed are counted in `registry`."""
    unlanded = unlanded_clicks_counter(registry)

    async def click(token: str, request: Request) -> Response:
        link = verify_click_token(token, secret)
        if link is None:
            return HTMLResponse(NOT_FOUND, status_code=404, headers=HEADERS)
        now = clock()
        user_agent = request.headers.get("user-agent") or ""
        reason = bot_reason(request.method, user_agent, link.issued_at, now)
        message = click_message(link, user_agent=user_agent, reason=reason, at=now)
        # landed or not, the shopper gets where the link leads
        if gate.refusal() is not None:
            unlanded.labels(reason="backlog_full").inc()
        elif not await land_one(committer, message, now):
            unlanded.labels(reason="landing_failed").inc()
        return RedirectResponse(link.url, status_code=302, headers=HEADERS)

    app.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)(click)

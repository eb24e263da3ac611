"""`GET /metrics` on the services (collector, sandbox): HTTP request counts and durations by route, plus
each service's own collectors, in a registry per app (so tests can build many apps in one process).

The route label is the route's template (`/messages/{message_id}`, never the id or token in the path);
a request no route matched counts as `unmatched`; a method outside HTTP's usual set as `other` (any
client can send any token as a method: each would be a series of its own). No key is asked: the figures
hold no person data.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))


def _route(scope: Scope) -> str:
    """The template of the route that answered (the router notes it in the request's scope)."""
    return str(getattr(scope.get("route"), "path", "unmatched"))


def _method(scope: Scope) -> str:
    """The request's method, or `other` for one outside METHODS: the label's values stay bounded."""
    method = str(scope["method"])
    return method if method in METHODS else "other"


class _Counting:
    """Pure ASGI middleware counting each HTTP request (a `BaseHTTPMiddleware` costs a task group and
    a stream per request: a good share of a fast route's time, e.g. the profile API's)."""

    def __init__(self, app: ASGIApp, requests: Counter, durations: Histogram) -> None:
        self.app, self.requests, self.durations = app, requests, durations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            route = _route(scope)
            self.requests.labels(route=route, method=_method(scope), code=str(status)).inc()
            self.durations.labels(route=route).observe(time.perf_counter() - started)


def add_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """Count every request of `app` and serve `registry` at `GET /metrics`."""
    requests = Counter(
        "lakemail_http_requests_total",
        "HTTP requests answered, by route template, method and status code.",
        ["route", "method", "code"],
        registry=registry,
    )
    durations = Histogram(
        "lakemail_http_request_duration_seconds",
        "Time to answer an HTTP request, by route template.",
        ["route"],
        buckets=DURATION_BUCKETS,
        registry=registry,
    )

    app.add_middleware(_Counting, requests=requests, durations=durations)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(generate_latest, registry)  # collectors may read files
        return Response(body, media_type=CONTENT_TYPE_LATEST)

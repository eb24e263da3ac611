"""`GET /metrics` on the services (collector, sandbox): HTTP request counts and durations by route, plus
each service's own collectors, in a registry per app (so tests can build many apps in one process).

The route label is the route's template (`/messages/{message_id}`, never the id or token in the path);
a request no route matched counts as `unmatched`. No key is asked: the figures hold no person data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _route(request: Request) -> str:
    """The template of the route that answered (the router notes it in the request's scope)."""
    return str(getattr(request.scope.get("route"), "path", "unmatched"))


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

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route(request)
        requests.labels(route=route, method=request.method, code=str(response.status_code)).inc()
        durations.labels(route=route).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(generate_latest, registry)  # collectors may read files
        return Response(body, media_type=CONTENT_TYPE_LATEST)

"""The profile API benchmark's open-loop client (#16) against a real server on loopback: every request
is sent once at its due time and counted by its answer, and a server that never answers cannot keep it
running past its grace period."""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.open_loop import open_loop
from services.server import ServerThread


async def _answer(request: Request) -> Response:
    n = int(request.path_params["n"])
    if request.headers.get("authorization") != "Bearer k":
        return Response(status_code=401)
    if n == 0:
        await asyncio.sleep(3600)  # never answers
    return Response(b"x" * n, status_code=503 if n % 10 == 3 else 200)


APP = Starlette(routes=[Route("/r/{n:int}", _answer)])


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_every_request_is_sent_at_its_time_and_counted_by_its_answer() -> None:
    with ServerThread(APP) as server:
        result = open_loop(
            "127.0.0.1", _port(server.url), lambda n: f"/r/{n + 1}",
            headers={"Authorization": "Bearer k"}, rate=200, seconds=0.5, connections=4,
        )  # fmt: skip
    assert result.statuses == {200: 90, 503: 10}
    assert (len(result.latencies), result.failures) == (90, 10)
    assert 0.45 <= result.elapsed < 10
    figures = result.figures()
    assert figures["http_failures"] == 10 and figures["http_p99_ms"] >= figures["http_p50_ms"] > 0
    assert figures["client_cpu_us_per_request"] > 0


def test_a_server_that_never_answers_ends_as_failures_after_the_grace() -> None:
    started = time.monotonic()
    with ServerThread(APP) as server:
        result = open_loop(
            "127.0.0.1", _port(server.url), lambda n: "/r/0",
            headers={"Authorization": "Bearer k"}, rate=20, seconds=0.25, connections=2, grace=0.5,
        )  # fmt: skip
    assert (result.failures, result.latencies) == (5, [])
    assert time.monotonic() - started < 10

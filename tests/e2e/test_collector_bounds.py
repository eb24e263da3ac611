"""The collector on a real socket against clients that do not play along: a request head that never ends,
a head or a body that never comes, a key-less crowd, a client that hangs up mid-body. Each gets an
answer or a closed connection within its bound, and nobody else is held up past it."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.collector.app import CollectorConfig, create_collector_app
from services.server import ServerThread
from transforms.sends.message import unsubscribe_token

KEY = "wk-bounds"
SECRET = "bounds-secret"
AUTH = "Authorization: Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
GOOD = {"batch": [{"type": "track", "event": "x", "userId": "u1", "timestamp": "2026-01-01T00:00:00Z"}]}


def config(tmp_path: Path, **changes: Any) -> CollectorConfig:
    base = CollectorConfig(landing=tmp_path, write_keys=(KEY,), linger=0.01)
    return replace(base, **changes)


@contextlib.contextmanager
def serving(cfg: CollectorConfig, **options: Any) -> Iterator[tuple[str, int]]:
    with ServerThread(create_collector_app(cfg), **options) as server:
        _, port = server.url.removeprefix("http://").split(":")
        yield server.url, int(port)


def connect(port: int, head: bytes, timeout: float = 5.0) -> socket.socket:
    """A connection that sent `head` (and maybe the start of a body), then nothing."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn.sendall(head)
    return conn


def answer(conn: socket.socket) -> bytes:
    """What the server sent before it closed the connection (b"" for a close without an answer); a
    server that neither answers nor closes within the socket's timeout fails the test."""
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def first_answer(conn: socket.socket) -> bytes:
    """The first bytes the server sends (an answer to a connection it keeps open)."""
    return conn.recv(65536)


def in_flight(url: str) -> float:
    found = re.search(
        r"^lakemail_collector_requests_in_flight (\S+)$", httpx.get(url + "/metrics").text, re.M
    )
    return float(found.group(1)) if found else -1.0


def wait_in_flight(url: str, expected: float) -> float:
    deadline = time.monotonic() + 5
    while (count := in_flight(url)) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


def slow_post(port: int, *, auth: bool, path: str = "/v1/batch") -> socket.socket:
    """A POST that promises 1000 bytes of body and sends one."""
    header = f"{AUTH}\r\n" if auth else ""
    return connect(
        port, f"POST {path} HTTP/1.1\r\nHost: x\r\n{header}Content-Length: 1000\r\n\r\n{{".encode()
    )


def test_a_request_head_past_its_bound_is_refused_not_buffered(tmp_path: Path) -> None:
    with serving(config(tmp_path)) as (_, port):
        conn = connect(port, b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 64 * 1024)
        with conn:
            got = answer(conn)
    assert got == b"" or got.startswith(b"HTTP/1.1 400 ")  # refused: never waited on for more


def test_a_connection_that_does_not_send_its_head_in_time_is_closed(tmp_path: Path) -> None:
    with serving(config(tmp_path), head_seconds=0.3) as (url, port):
        idle, partial = connect(port, b""), connect(port, b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
        with idle, partial:
            started = time.monotonic()
            assert (answer(idle), answer(partial)) == (b"", b"")
            assert time.monotonic() - started < 3
        with httpx.Client(base_url=url) as client:  # a kept-alive client within its time is served
            assert client.get("/health").status_code == client.get("/health").status_code == 200


def test_a_body_that_does_not_come_in_time_gets_408_and_frees_its_slot(tmp_path: Path) -> None:
    with serving(config(tmp_path, max_requests=2, body_seconds=0.3)) as (url, port):
        slow = [slow_post(port, auth=True) for _ in range(2)]
        with slow[0], slow[1]:
            answers = [answer(conn) for conn in slow]  # each answered, then closed
        for got in answers:
            assert got.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in got
        assert httpx.post(url + "/v1/batch", json=GOOD, auth=(KEY, "")).status_code == 200


def test_requests_with_the_key_only_in_the_body_cannot_take_every_slot(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_requests=4, max_body_key_requests=2, body_seconds=30)
    with serving(cfg) as (url, port):
        reading = [slow_post(port, auth=False) for _ in range(2)]
        assert wait_in_flight(url, 2) == 2
        refused = [slow_post(port, auth=False) for _ in range(2)]
        with contextlib.ExitStack() as stack:
            for conn in reading + refused:
                stack.enter_context(conn)
            for conn in refused:
                assert first_answer(conn).startswith(b"HTTP/1.1 429 ")
            keyed = httpx.post(url + "/v1/batch", json=GOOD, auth=(KEY, ""))
            in_body = httpx.post(url + "/v1/batch", json=GOOD | {"writeKey": KEY})
        assert wait_in_flight(url, 0) == 0  # the key-less readers hung up: their slots are free again
        after = httpx.post(url + "/v1/batch", json=GOOD | {"writeKey": KEY})
    assert (keyed.status_code, in_body.status_code) == (200, 429)
    assert after.status_code == 200


def requests_counted(url: str, route: str, code: str) -> float:
    pattern = (
        rf'lakemail_http_requests_total\{{code="{code}",method="POST",route="{re.escape(route)}"\}} (\S+)'
    )
    found = re.search(pattern, httpx.get(url + "/metrics").text)
    return float(found.group(1)) if found else 0.0


def wait_counted(url: str, route: str, code: str, expected: float) -> float:
    deadline = time.monotonic() + 5
    while (count := requests_counted(url, route, code)) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return count


def test_a_client_hanging_up_mid_body_is_counted_as_499_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config(tmp_path, click_secret=SECRET, user_for_send=lambda send_id: "u-1")
    path = "/unsubscribe/" + unsubscribe_token("s-1", SECRET)
    with caplog.at_level(logging.INFO), serving(cfg) as (url, port):
        for conn in (
            slow_post(port, auth=True),
            slow_post(port, auth=False),
            slow_post(port, auth=False, path=path),
        ):
            conn.close()
        assert wait_counted(url, "/v1/batch", "499", 2) == 2
        assert wait_counted(url, "/unsubscribe/{token}", "499", 1) == 1
        assert requests_counted(url, "/v1/batch", "500") == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_an_unsubscribe_body_that_does_not_come_in_time_gets_408(tmp_path: Path) -> None:
    cfg = config(tmp_path, click_secret=SECRET, user_for_send=lambda send_id: "u-1", body_seconds=0.3)
    path = "/unsubscribe/" + unsubscribe_token("s-1", SECRET)
    with serving(cfg) as (_, port), slow_post(port, auth=False, path=path) as conn:
        assert answer(conn).startswith(b"HTTP/1.1 408 ")

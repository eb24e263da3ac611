"""The collector on a real socket as Segment's browser and mobile libraries and hostile clients speak to
it: the short paths those libraries post to, tokens and keys that are not ASCII, and small bodies of many
bad messages (a short answer, an event loop that goes on answering)."""

from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.collector.app import CollectorConfig, create_collector_app
from services.server import ServerThread
from tests.e2e.test_collector import ESP_KEY, start_collector
from transforms.sends.clicks import verify_click_token
from transforms.sends.message import verify_unsubscribe_token

KEY, SECRET = "wk-paths", "paths-secret"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


AUTH = basic(KEY)
ESP_AUTH = {"Authorization": "Basic " + base64.b64encode(f"lakemail:{ESP_KEY}".encode()).decode()}
BROWSER = {"Content-Type": "text/plain", "Origin": "https://shop.example"}  # analytics.js: no preflight


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[str]:
    config = CollectorConfig(
        landing=tmp_path / "landing",
        write_keys=(KEY,),
        linger=0.01,
        click_secret=SECRET,
        user_for_send=lambda send_id: None,  # serves /unsubscribe/{token}
        esp_webhook_key=ESP_KEY,
    )
    with ServerThread(create_collector_app(config)) as server:
        yield server.url


def landed(tmp_path: Path) -> list[dict[str, Any]]:
    folder = tmp_path / "landing" / "events"
    files = sorted(f for f in folder.iterdir() if not f.name.startswith(".")) if folder.exists() else []
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def message(kind: str, n: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = {"event": "Product Viewed"} if kind == "track" else {}
    return {"type": kind, "anonymousId": "a-1", "messageId": f"{kind}-{n}", "timestamp": now, **fields}


def test_the_short_paths_of_segments_browser_and_mobile_libraries_land_like_the_long_ones(
    tmp_path: Path, collector: str
) -> None:
    # analytics.js posts each call to `${apiHost}/${type.charAt(0)}` and, batching, to `${apiHost}/b`
    # (the write key in the body); analytics-swift and analytics-kotlin post to `${apiHost}/b` (kotlin
    # gzipped, as text/plain). apiHost is `<host>/v1`.
    kinds = ("track", "identify", "page", "screen", "group", "alias")
    with httpx.Client(base_url=collector, timeout=10) as http:
        singles = [
            http.post(
                f"/v1/{kind[0]}", content=orjson.dumps(message(kind, 1) | {"writeKey": KEY}), headers=BROWSER
            )
            for kind in kinds
        ]
        batched = {"batch": [message("track", 2)], "writeKey": KEY, "sentAt": message("page", 0)["timestamp"]}
        browser_batch = http.post("/v1/b", content=orjson.dumps(batched), headers=BROWSER)
        mobile = gzip.compress(orjson.dumps({"batch": [message("screen", 3)]}))
        mobile_batch = http.post(
            "/v1/b", content=mobile, headers=AUTH | {"Content-Type": "text/plain", "Content-Encoding": "gzip"}
        )
        wrong_key = http.post("/v1/t", content=orjson.dumps(message("track", 4) | {"writeKey": "nope"}))
        no_key = http.post("/v1/b", content=orjson.dumps({"batch": [message("track", 5)]}))
        preflight = http.options(
            "/v1/b", headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
        )
        metrics = http.get("/metrics").text
    answers = [*singles, browser_batch, mobile_batch]
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert all(a.headers["access-control-allow-origin"] == "*" for a in singles)
    assert (wrong_key.status_code, no_key.status_code, preflight.status_code) == (401, 401, 200)
    found = sorted((m["messageId"], m["type"]) for m in landed(tmp_path))
    assert found == sorted([(f"{k}-1", k) for k in kinds] + [("track-2", "track"), ("screen-3", "screen")])
    assert 'route="/v1/t"' in metrics and 'route="/v1/b"' in metrics  # by template, as the long routes


def first_line(url: str, request: bytes) -> bytes:
    """The status line the server answers `request` (raw bytes, as no client library would send them)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(4096).split(b"\r\n")[0]


def test_tokens_and_keys_that_are_not_ascii_are_refused_not_a_500(collector: str) -> None:
    # compare_digest raised TypeError on a str that is not ASCII, b64decode ValueError: 500s
    assert verify_click_token("abc.é", SECRET) is None and verify_unsubscribe_token("s-1.é", SECRET) is None
    requests = {
        b"GET /c/abc.%C3%A9": b"HTTP/1.1 404 ",
        b"HEAD /c/abc.%C3%A9": b"HTTP/1.1 404 ",
        b"GET /unsubscribe/s-1.%C3%A9": b"HTTP/1.1 400 ",
        b"POST /unsubscribe/s-1.%C3%A9": b"HTTP/1.1 400 ",
    }
    body = b'{"batch": []}'
    for line, expected in requests.items():
        request = line + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        assert first_line(collector, request).startswith(expected), line
    for path in (b"/v1/batch", b"/v1/esp/sendgrid"):
        latin1 = b"Authorization: Basic \xe9\xe9\xe9\xe9\r\n"  # a header value of bytes outside ASCII
        request = b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (path, latin1, len(body))
        assert first_line(collector, request + body).startswith(b"HTTP/1.1 401 "), path


def ones(count: int) -> bytes:
    return b"[" + b",".join([b"1"] * count) + b"]"


def test_a_small_body_of_many_bad_messages_gets_a_short_answer(tmp_path: Path, collector: str) -> None:
    with httpx.Client(base_url=collector, headers=AUTH, timeout=60) as http:
        every_one_bad = http.post("/v1/batch", content=b'{"batch":' + ones(10_000) + b"}")
        some_good = orjson.dumps({"batch": [message("page", 1), *[1] * 150, message("page", 2)]})
        mixed = http.post("/v1/batch", content=some_good)
        too_many = http.post("/v1/batch", content=b'{"batch":' + ones(10_001) + b"}")  # 20 KB
        webhook = http.post("/v1/esp/sendgrid", content=ones(500_000), headers=ESP_AUTH)  # SendGrid's 1 MB
        metrics = http.get("/metrics").text
    bad = every_one_bad.json()
    assert every_one_bad.status_code == 400 and len(every_one_bad.content) < 10_000  # was 770 KB
    assert [r["index"] for r in bad["rejected"]] == list(range(100)) and bad["rejected_more"] == 9_900
    assert bad["code"] == "not_an_object"
    assert mixed.status_code == 200 and mixed.json()["rejected_more"] == 50
    assert [r["index"] for r in mixed.json()["rejected"]] == list(range(1, 101))
    assert sorted(m["messageId"] for m in landed(tmp_path)) == ["page-1", "page-2"]
    assert (too_many.status_code, too_many.json()["code"]) == (400, "batch_too_large")
    assert webhook.status_code == 400 and len(webhook.content) < 10_000  # was 42 MB
    assert len(webhook.json()["rejected"]) == 100 and webhook.json()["rejected_more"] == 499_900
    assert 'lakemail_collector_rejected_messages_total{reason="not_an_object"} 10150.0' in metrics
    assert 'lakemail_collector_esp_events_total{kind="refused",provider="sendgrid"} 500000.0' in metrics


def test_the_collector_answers_while_big_bodies_are_read(tmp_path: Path) -> None:
    # Reading 500,000 events of a 1 MB webhook body took the event loop for a second or more: every
    # other request (the profile API's, /health) waited behind it. It is read in a worker thread now.
    process, url = start_collector(tmp_path)  # its own process: no thread of this one takes its GIL
    waits: list[float] = []
    stop, body = threading.Event(), ones(500_000)

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                started = time.monotonic()
                assert http.get("/health").status_code == 200
                waits.append(time.monotonic() - started)
                time.sleep(0.01)

    def post() -> None:
        with httpx.Client(base_url=url, headers=ESP_AUTH, timeout=60) as http:
            assert http.post("/v1/esp/sendgrid", content=body).status_code == 400

    posters = [threading.Thread(target=post) for _ in range(4)]
    prober = threading.Thread(target=probe)
    try:
        prober.start()
        started = time.monotonic()
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join(120)
        took = time.monotonic() - started
    finally:
        stop.set()
        prober.join(30)
        process.terminate()
        process.wait(30)
    # on the loop, /health waited for most of the four readings (one at least); now, for none of them
    assert len(waits) > 10 and max(waits) < took / 5, f"/health waited {max(waits):.2f} s of {took:.2f} s"
